"""Independent float64 NumPy reference for every neurocore operation.

This module is the oracle of the test-suite. It never calls into ``neurocore``
for arithmetic: everything is recomputed here in float64 from the inputs (the
only thing read from the library is the list of layers of a model, to know
which network to rebuild). Conventions follow ``api_contract.md``:

* weights ``W`` are ``(in_features, out_features)``, ``y = x @ W + b``;
* loss reductions follow PyTorch defaults (MSE / BCE / BCEWithLogits average
  over every element, cross-entropy averages over the batch);
* SGD is ``torch.optim.SGD`` with ``dampening=0``.
"""

from __future__ import annotations

import numpy as np

F64 = np.float64
ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax")


def _f64(a):
    return np.asarray(a, dtype=F64)


# --------------------------------------------------------------------------- #
# activations
# --------------------------------------------------------------------------- #
def sigmoid(x):
    """Numerically stable logistic function (no overflow for |x| up to 1e308)."""
    x = _f64(x)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def softmax(x):
    """Row-wise softmax of a 2-D array, max-subtracted."""
    x = _f64(x)
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(x):
    x = _f64(x)
    z = x - x.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def act_forward(name, x, alpha=0.01):
    """Forward of activation ``name`` on ``x`` (2-D for softmax)."""
    x = _f64(x)
    if name == "identity":
        return x.copy()
    if name == "sigmoid":
        return sigmoid(x)
    if name == "tanh":
        return np.tanh(x)
    if name == "relu":
        return np.where(x > 0, x, 0.0)
    if name == "leaky_relu":
        return np.where(x > 0, x, alpha * x)
    if name == "softmax":
        return softmax(x)
    raise ValueError(f"unknown activation {name!r}")


def act_backward(name, y, dy, alpha=0.01):
    """Backward of activation ``name`` from its forward OUTPUT ``y`` and upstream ``dy``."""
    y = _f64(y)
    dy = _f64(dy)
    if name == "identity":
        return dy.copy()
    if name == "sigmoid":
        return dy * y * (1.0 - y)
    if name == "tanh":
        return dy * (1.0 - y * y)
    if name == "relu":
        return np.where(y > 0, dy, 0.0)
    if name == "leaky_relu":
        return np.where(y > 0, dy, alpha * dy)
    if name == "softmax":
        return y * (dy - (dy * y).sum(axis=1, keepdims=True))
    raise ValueError(f"unknown activation {name!r}")


# --------------------------------------------------------------------------- #
# gemm
# --------------------------------------------------------------------------- #
def gemm(a, b, trans_a=False, trans_b=False, bias=None, activation="identity", alpha=0.01):
    """``activation(op(a) @ op(b) + bias)`` in float64.

    The three forms used by a dense layer are ``X @ W`` (no transpose),
    ``dY @ W.T`` (``trans_b``) and ``X.T @ dY`` (``trans_a``).
    """
    a = _f64(a)
    b = _f64(b)
    if trans_a:
        a = a.T
    if trans_b:
        b = b.T
    c = a @ b
    if bias is not None:
        c = c + _f64(bias)[None, :]
    return act_forward(activation, c, alpha)


def gemm_error_scale(a, b, trans_a=False, trans_b=False, bias=None):
    """``|op(a)| @ |op(b)| + |bias|``: the natural scale of rounding errors of each entry."""
    a = np.abs(_f64(a))
    b = np.abs(_f64(b))
    if trans_a:
        a = a.T
    if trans_b:
        b = b.T
    s = a @ b
    if bias is not None:
        s = s + np.abs(_f64(bias))[None, :]
    return s


# --------------------------------------------------------------------------- #
# Sequential
# --------------------------------------------------------------------------- #
_ACT_CLASS_NAMES = {
    "Identity": "identity",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "ReLU": "relu",
    "LeakyReLU": "leaky_relu",
    "Softmax": "softmax",
}


def layer_specs(model):
    """Read a model's layers into plain specs (float64 copies of the parameters).

    Returns a list of ``("dense", W, b_or_None)`` and ``(act_name, alpha)`` tuples.
    """
    specs = []
    for layer in model.layers:
        cls = type(layer).__name__
        if cls == "Dense":
            w = np.array(layer.weight, dtype=F64, copy=True)
            b = None if layer.bias is None else np.array(layer.bias, dtype=F64, copy=True)
            specs.append(("dense", w, b))
        elif cls in _ACT_CLASS_NAMES:
            alpha = float(getattr(layer, "alpha", 0.01))
            specs.append((_ACT_CLASS_NAMES[cls], alpha))
        else:
            raise TypeError(f"reference does not know layer type {cls}")
    return specs


def copy_specs(specs):
    out = []
    for s in specs:
        if s[0] == "dense":
            out.append(("dense", s[1].copy(), None if s[2] is None else s[2].copy()))
        else:
            out.append(s)
    return out


def seq_params(specs):
    """Parameters in ``model.parameters()`` order: [W0, b0, W1, b1, ...], None biases skipped."""
    out = []
    for s in specs:
        if s[0] == "dense":
            out.append(s[1])
            if s[2] is not None:
                out.append(s[2])
    return out


def seq_forward(specs, x):
    """Forward pass; returns ``(output, cache)`` where cache[i] = (input_i, output_i)."""
    h = _f64(x)
    cache = []
    for s in specs:
        if s[0] == "dense":
            out = h @ s[1]
            if s[2] is not None:
                out = out + s[2][None, :]
        else:
            out = act_forward(s[0], h, s[1])
        cache.append((h, out))
        h = out
    return h, cache


def seq_backward(specs, cache, dout):
    """Backward pass; returns ``(dx, grads)`` with grads in ``parameters()`` order."""
    d = _f64(dout)
    grads_rev = []
    for s, (inp, out) in zip(reversed(specs), reversed(cache)):
        if s[0] == "dense":
            if s[2] is not None:
                grads_rev.append(d.sum(axis=0))
            grads_rev.append(inp.T @ d)
            d = d @ s[1].T
        else:
            d = act_backward(s[0], out, d, s[1])
    return d, grads_rev[::-1]


# --------------------------------------------------------------------------- #
# losses: (value, d value / d output)
# --------------------------------------------------------------------------- #
def mse(out, target):
    out = _f64(out)
    target = _f64(target)
    diff = out - target
    return float(np.mean(diff * diff)), 2.0 * diff / diff.size


def bce(p, target):
    """torch.nn.BCELoss: logs clamped at -100; grad (p - t) / max(p (1 - p), 1e-12) / N."""
    p = _f64(p)
    t = _f64(target)
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(p), -100.0)
        log_1mp = np.maximum(np.log1p(-p), -100.0)
    value = -np.mean(t * log_p + (1.0 - t) * log_1mp)
    grad = (p - t) / np.maximum(p * (1.0 - p), 1e-12) / p.size
    return float(value), grad


def bce_with_logits(z, target):
    z = _f64(z)
    t = _f64(target)
    value = np.mean(np.maximum(z, 0.0) - z * t + np.log1p(np.exp(-np.abs(z))))
    return float(value), (sigmoid(z) - t) / z.size


def cross_entropy(z, labels):
    z = _f64(z)
    labels = np.asarray(labels).astype(np.int64)
    n = z.shape[0]
    logp = log_softmax(z)
    value = -np.mean(logp[np.arange(n), labels])
    grad = softmax(z)
    grad[np.arange(n), labels] -= 1.0
    return float(value), grad / n


LOSSES = {
    "mse": mse,
    "bce": bce,
    "bce_with_logits": bce_with_logits,
    "cross_entropy": cross_entropy,
}


# --------------------------------------------------------------------------- #
# SGD
# --------------------------------------------------------------------------- #
class SGD:
    """torch.optim.SGD with dampening 0, acting on a list of float64 arrays in place."""

    def __init__(self, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        self.lr = lr
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.bufs = None

    def step(self, params, grads):
        if self.bufs is None:
            self.bufs = [None] * len(params)
        for i, (p, g) in enumerate(zip(params, grads)):
            g = _f64(g) + self.weight_decay * p
            if self.momentum != 0.0:
                if self.bufs[i] is None:
                    self.bufs[i] = g.copy()
                else:
                    self.bufs[i] = self.momentum * self.bufs[i] + g
                g = g + self.momentum * self.bufs[i] if self.nesterov else self.bufs[i]
            p -= self.lr * g


# --------------------------------------------------------------------------- #
# training loop
# --------------------------------------------------------------------------- #
def fit(specs, x, y, loss, lr, momentum=0.0, nesterov=False, weight_decay=0.0, epochs=1, batch_size=32,
        optimizer=None):
    """Reference of ``model.fit(..., shuffle=False)``.

    Batches are taken in order, the last one possibly smaller. Returns
    ``(specs, history_loss)``; ``specs`` is a trained copy, ``history_loss[e]``
    is the plain mean of epoch ``e``'s batch losses. Pass ``optimizer`` (a
    reference :class:`SGD`) to continue with existing momentum buffers.
    """
    specs = copy_specs(specs)
    loss_fn = LOSSES[loss]
    opt = optimizer if optimizer is not None else SGD(lr, momentum, nesterov, weight_decay)
    x = _f64(x)
    y = np.asarray(y)
    n = x.shape[0]
    history = []
    for _ in range(epochs):
        losses = []
        for start in range(0, n, batch_size):
            xb = x[start:start + batch_size]
            yb = y[start:start + batch_size]
            out, cache = seq_forward(specs, xb)
            value, gout = loss_fn(out, yb)
            _, grads = seq_backward(specs, cache, gout)
            opt.step(seq_params(specs), grads)
            losses.append(value)
        history.append(float(np.mean(losses)))
    return specs, history
