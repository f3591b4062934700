"""How far a float32/float64 forward or backward pass may honestly differ from the float64 reference.

``reference.py`` gives the exact values; this module gives, element by element, the *scale* of the
rounding error a correct implementation can make, so that a comparison can be tight for any stack of
layers, any width and any magnitude of the data (the property tests draw all of these at random):

* ``forward_scales``: for each layer output, a bound ``s`` with ``|error| <~ eps * K * s``: the
  absolute-value network (``|x| @ |W| + |b|``, activations through their Lipschitz constants).
* ``backward_scales``: the same for ``dL/dx`` and every gradient, plus an *allowance* for ReLU /
  LeakyReLU kinks: where a pre-activation is within rounding of 0, a correct float32 model may take
  either side of the kink, so its gradient may differ from the reference by that element's whole
  contribution. The allowance is that contribution propagated back (it is zero for almost every draw,
  so the comparison stays sharp).

``assert_matches`` turns these into an element-wise assertion through ``conftest.assert_close``.
"""

from __future__ import annotations

import numpy as np

import reference as ref
from conftest import assert_close, tol

_SLOPE_BOUND = {"identity": 1.0, "sigmoid": 0.25, "tanh": 1.0, "relu": 1.0, "leaky_relu": 1.0}


def _rowmax(a):
    return np.max(a, axis=1, keepdims=True)


def accumulation_length(specs, x):
    """K: the number of terms a rounding error can gather along the deepest path (sum of the widths)."""
    k = x.shape[1] + x.shape[0]  # the batch dimension is summed in dW and db
    for s in specs:
        if s[0] == "dense":
            k += s[1].shape[0] + s[1].shape[1]
    return k


def forward_scales(specs, x):
    """Error scale of every layer's output (list aligned with specs), and the reference cache."""
    _, cache = ref.seq_forward(specs, x)
    s = np.abs(np.asarray(x, dtype=np.float64))
    scales = []
    for spec, (_, y) in zip(specs, cache):
        name = spec[0]
        if name == "dense":
            s = s @ np.abs(spec[1])
            if spec[2] is not None:
                s = s + np.abs(spec[2])[None, :]
        elif name == "softmax":
            s = y * (2.0 * _rowmax(s) + 1.0)
        elif name == "sigmoid":
            s = y * (1.0 - y) * s + y
        elif name == "tanh":
            s = (1.0 - y * y) * s + np.abs(y)
        else:  # identity, relu, leaky_relu: slope <= 1
            s = s + np.abs(y)
        scales.append(s)
    return scales, cache


def backward_scales(specs, x, gout, rel, forward=None):
    """Error scales of (dx, grads) and the kink allowances (absolute), for a comparison at relative
    tolerance ``rel`` (pre-activations within ``rel * scale`` of a ReLU kink count as ambiguous).
    ``forward``: the ``forward_scales(specs, x)`` result, if already computed."""
    fwd, cache = forward if forward is not None else forward_scales(specs, x)
    abs_x = np.abs(np.asarray(x, dtype=np.float64))
    g = np.asarray(gout, dtype=np.float64)   # the true upstream gradient (reference primitives)
    d = np.abs(g)                            # error scale of the upstream gradient
    allow = np.zeros_like(d)                 # kink allowance carried by the upstream gradient (absolute)
    grad_scales, grad_allow = [], []
    for i in range(len(specs) - 1, -1, -1):
        spec = specs[i]
        inp, y = cache[i]
        s_in = abs_x if i == 0 else fwd[i - 1]
        name = spec[0]
        if name == "dense":
            w_abs = np.abs(spec[1])
            if spec[2] is not None:
                grad_scales.append(d.sum(axis=0))
                grad_allow.append(allow.sum(axis=0))
            grad_scales.append(s_in.T @ d)
            d = d @ w_abs.T
            if allow.any():
                grad_allow.append(np.abs(inp).T @ allow)
                allow = allow @ w_abs.T
            else:  # the usual case: no kink within rounding so far
                grad_allow.append(np.zeros(spec[1].shape))
                allow = np.zeros_like(d)
            g = g @ spec[1].T
            continue
        s_y = fwd[i]
        if name == "softmax":
            d = 2.0 * y * _rowmax(d) + y * np.sum(d * s_y, axis=1, keepdims=True) + d * s_y
            allow = 2.0 * y * _rowmax(allow)
        elif name in ("relu", "leaky_relu"):
            ambiguous = np.abs(inp) <= rel * s_in
            alpha = spec[1] if name == "leaky_relu" else 0.0
            allow = allow + ambiguous * (1.0 - alpha) * np.abs(g)
        else:
            d = d * (_SLOPE_BOUND[name] + 2.0 * s_y)
            allow = allow * _SLOPE_BOUND[name]
        g = ref.act_backward(name, y, g, spec[1])
    return (d, grad_scales[::-1]), (allow, grad_allow[::-1])


def comparison_factor(dtype, k, floor=4.0):
    """The factor on ``conftest.tol(dtype)`` that covers an error of ``2 * eps * k`` (rounding summed along
    K terms, with room): at least ``floor``."""
    eps = np.finfo(np.dtype(dtype)).eps
    return max(floor, 2.0 * eps * k / tol(dtype))


def assert_matches(actual, expected, dtype, scale, factor, allowance=None, err_msg=""):
    """``|actual - expected| <= tol(dtype) * factor * (|expected| + scale) + allowance + 4 * tiny``."""
    scale = np.asarray(scale, dtype=np.float64)
    # below the smallest normal number results may underflow (e.g. a softmax of far-apart logits)
    floor = 4.0 * np.finfo(np.dtype(dtype)).tiny
    if allowance is not None:
        floor = floor + np.asarray(allowance, dtype=np.float64)
    scale = scale + floor / (tol(dtype) * factor)
    assert_close(actual, expected, dtype, scale=scale, factor=factor, err_msg=err_msg)
