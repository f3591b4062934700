"""Independent float64 NumPy reference for every neurocore operation.

This module is the oracle of the test-suite. It never calls into ``neurocore``
for arithmetic: everything is recomputed here in float64 from the inputs (the
only thing read from the library is the list of layers of a model, to know
which network to rebuild). Conventions follow ``api_contract.md``:

* weights ``W`` are ``(in_features, out_features)``, ``y = x @ W + b``;
* loss reductions follow PyTorch defaults (MSE / BCE / BCEWithLogits average
  over every element, cross-entropy averages over the batch);
* SGD is ``torch.optim.SGD`` with ``dampening=0``; Adam/AdamW follow ``torch.optim``;
* BatchNorm is ``torch.nn.BatchNorm1d`` (biased variance to normalise, unbiased for the running
  variance); Dropout is inverted dropout with a mask given by the caller.
"""

from __future__ import annotations

import math as _math

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
    if name == "gelu":
        return gelu(x)
    if name == "elu":
        return elu(x, alpha)
    raise ValueError(f"unknown activation {name!r}")


def act_backward(name, y, dy, alpha=0.01):
    """Backward of activation ``name`` from its forward OUTPUT ``y`` and upstream ``dy``.

    GELU's derivative is a function of its input: use :func:`gelu_grad`.
    """
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
    if name == "elu":
        return np.where(y > 0, dy, dy * (y + alpha))
    if name == "gelu":
        raise ValueError("GELU's derivative is a function of its input: use gelu_grad(x) * dy")
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
    "GELU": "gelu",
    "ELU": "elu",
}


def layer_specs(model):
    """Read a model's layers into plain specs (float64 copies of the parameters).

    Returns a list of ``("dense", W, b_or_None)`` and ``(act_name, alpha)`` tuples, and for the other
    layers ``("dropout", p)``, ``("batchnorm", gamma, beta, running_mean, running_var, momentum, eps)``
    (running arrays are updated in place by a training-mode :func:`seq_forward`) and
    ``("residual", [specs])``.
    """
    return _specs_of(model.layers)


def _specs_of(layers):
    specs = []
    for layer in layers:
        cls = type(layer).__name__
        if cls == "Dense":
            w = np.array(layer.weight, dtype=F64, copy=True)
            b = None if layer.bias is None else np.array(layer.bias, dtype=F64, copy=True)
            specs.append(("dense", w, b))
        elif cls in _ACT_CLASS_NAMES:
            alpha = float(getattr(layer, "alpha", 0.01))
            specs.append((_ACT_CLASS_NAMES[cls], alpha))
        elif cls == "Dropout":
            specs.append(("dropout", float(layer.p)))
        elif cls == "BatchNorm":
            specs.append(("batchnorm", np.array(layer.weight, dtype=F64), np.array(layer.bias, dtype=F64),
                          np.array(layer.running_mean, dtype=F64), np.array(layer.running_var, dtype=F64),
                          float(layer.momentum), float(layer.eps)))
        elif cls == "Residual":
            specs.append(("residual", _specs_of(layer.layers)))
        else:
            raise TypeError(f"reference does not know layer type {cls}")
    return specs


def copy_specs(specs):
    out = []
    for s in specs:
        if s[0] == "dense":
            out.append(("dense", s[1].copy(), None if s[2] is None else s[2].copy()))
        elif s[0] == "batchnorm":
            out.append(("batchnorm",) + tuple(a.copy() for a in s[1:5]) + s[5:])
        elif s[0] == "residual":
            out.append(("residual", copy_specs(s[1])))
        else:
            out.append(s)
    return out


def seq_params(specs):
    """Parameters in ``model.parameters()`` order: [W0, b0, W1, b1, ...], None biases skipped;
    gamma, beta of a BatchNorm; residual blocks in place."""
    out = []
    for s in specs:
        if s[0] == "dense":
            out.append(s[1])
            if s[2] is not None:
                out.append(s[2])
        elif s[0] == "batchnorm":
            out.extend([s[1], s[2]])
        elif s[0] == "residual":
            out.extend(seq_params(s[1]))
    return out


def seq_forward(specs, x, training=False, masks=None):
    """Forward pass; returns ``(output, cache)`` where cache[i] starts with (input_i, output_i).

    ``training`` selects batch statistics for BatchNorm (updating the specs' running statistics in
    place) and turns Dropout on; ``masks`` lists the dropout masks in network order (one per Dropout
    with p > 0 in training).
    """
    masks = list(masks) if masks is not None else []
    out, cache = _forward(specs, _f64(x), training, masks)
    if masks:
        raise ValueError(f"{len(masks)} dropout masks were not used")
    return out, cache


def _forward(specs, h, training, masks):
    cache = []
    for s in specs:
        kind = s[0]
        if kind == "dense":
            out = h @ s[1]
            if s[2] is not None:
                out = out + s[2][None, :]
            cache.append((h, out))
        elif kind == "dropout":
            if training and s[1] > 0:
                if not masks:
                    raise ValueError("a training-mode Dropout with p > 0 needs a mask")
                mask = _f64(masks.pop(0))
            else:
                mask = np.ones_like(h)
            out = h * mask
            cache.append((h, out, mask))
        elif kind == "batchnorm":
            _, gamma, beta, rm, rv, momentum, eps = s
            out, xhat, invstd, new_rm, new_rv = batchnorm_forward(h, gamma, beta, rm, rv, momentum, eps, training)
            rm[...] = new_rm
            rv[...] = new_rv
            cache.append((h, out, xhat, invstd, training))
        elif kind == "residual":
            inner_out, inner_cache = _forward(s[1], h, training, masks)
            out = h + inner_out
            cache.append((h, out, inner_cache))
        else:
            out = act_forward(kind, h, s[1])
            cache.append((h, out))
        h = out
    return h, cache


def seq_backward(specs, cache, dout):
    """Backward pass; returns ``(dx, grads)`` with grads in ``parameters()`` order."""
    d, grads_rev = _backward(specs, cache, _f64(dout))
    return d, grads_rev[::-1]


def _backward(specs, cache, d):
    grads_rev = []
    for s, c in zip(reversed(specs), reversed(cache)):
        kind = s[0]
        if kind == "dense":
            if s[2] is not None:
                grads_rev.append(d.sum(axis=0))
            grads_rev.append(c[0].T @ d)
            d = d @ s[1].T
        elif kind == "dropout":
            d = d * c[2]
        elif kind == "batchnorm":
            d, dgamma, dbeta = batchnorm_backward(d, c[2], c[3], s[1], c[4])
            grads_rev.extend([dbeta, dgamma])
        elif kind == "residual":
            d_inner, g_inner = _backward(s[1], c[2], d)
            grads_rev.extend(g_inner)
            d = d + d_inner
        elif kind == "gelu":
            d = d * gelu_grad(c[0])
        else:
            d = act_backward(kind, c[1], d, s[1])
    return d, grads_rev


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


# =========================================================================== #
# GELU, ELU, Dropout, BatchNorm helpers; Adam/AdamW, gradient clipping,
# learning-rate schedules, a general training loop
# =========================================================================== #
_erfc = np.vectorize(_math.erfc, otypes=[F64])
_SQRT1_2 = 1.0 / _math.sqrt(2.0)


def gelu(x):
    """Exact GELU x * Phi(x), Phi through erfc (no cancellation for x << 0)."""
    x = _f64(x)
    return x * 0.5 * _erfc(-x * _SQRT1_2)


def gelu_grad(x):
    """d gelu / dx = Phi(x) + x phi(x)."""
    x = _f64(x)
    return 0.5 * _erfc(-x * _SQRT1_2) + x * np.exp(-0.5 * x * x) / _math.sqrt(2.0 * _math.pi)


def elu(x, alpha=1.0):
    x = _f64(x)
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


def elu_grad(x, alpha=1.0):
    """d elu / dx from the INPUT x (1 for x > 0, alpha e^x otherwise)."""
    x = _f64(x)
    return np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0.0)))


def batchnorm_forward(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5, training=True):
    """torch.nn.BatchNorm1d on (batch, features).

    Returns ``(y, xhat, invstd, new_running_mean, new_running_var)``. Training normalises with the batch
    mean and the biased variance and updates the running variance with the unbiased one.
    """
    x = _f64(x)
    gamma, beta = _f64(gamma), _f64(beta)
    rm, rv = _f64(running_mean), _f64(running_var)
    if training:
        n = x.shape[0]
        if n < 2:
            raise ValueError("batch norm needs more than one sample in training")
        mean = x.mean(axis=0)
        var = ((x - mean) ** 2).mean(axis=0)
        new_rm = (1 - momentum) * rm + momentum * mean
        new_rv = (1 - momentum) * rv + momentum * var * n / (n - 1)
    else:
        mean, var = rm, rv
        new_rm, new_rv = rm.copy(), rv.copy()
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean) * invstd
    return gamma * xhat + beta, xhat, invstd, new_rm, new_rv


def batchnorm_backward(dy, xhat, invstd, gamma, training=True):
    """Returns ``(dx, dgamma, dbeta)``; in training the batch statistics are differentiated through."""
    dy, xhat = _f64(dy), _f64(xhat)
    gamma, invstd = _f64(gamma), _f64(invstd)
    dbeta = dy.sum(axis=0)
    dgamma = (dy * xhat).sum(axis=0)
    dxhat = dy * gamma
    if training:
        n = dy.shape[0]
        dx = invstd / n * (n * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0))
    else:
        dx = dxhat * invstd
    return dx, dgamma, dbeta


def seq_buffers(specs):
    """BatchNorm running statistics in network order: [mean0, var0, mean1, var1, ...]."""
    out = []
    for s in specs:
        if s[0] == "batchnorm":
            out.extend([s[3], s[4]])
        elif s[0] == "residual":
            out.extend(seq_buffers(s[1]))
    return out


def dense_weight_indices(specs):
    """Positions of the Dense weights in seq_params(specs) order (one per Dense layer, network order)."""
    idx, pos = [], 0
    for s in _flat(specs):
        if s[0] == "dense":
            idx.append(pos)
            pos += 1 if s[2] is None else 2
        elif s[0] == "batchnorm":
            pos += 2
    return idx


def _flat(specs):
    for s in specs:
        if s[0] == "residual":
            yield from _flat(s[1])
        else:
            yield s


# --------------------------------------------------------------------------- #
# Adam / AdamW (torch.optim semantics), gradient clipping
# --------------------------------------------------------------------------- #
class Adam:
    """torch.optim.Adam (L2 penalty added to the gradient), in place on float64 arrays."""

    decoupled = False

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.m = self.v = None
        self.t = 0

    def step(self, params, grads):
        if self.m is None:
            self.m = [np.zeros_like(_f64(p)) for p in params]
            self.v = [np.zeros_like(_f64(p)) for p in params]
        self.t += 1
        b1, b2 = self.betas
        bc1 = 1 - b1 ** self.t
        bc2 = 1 - b2 ** self.t
        for i, (p, g) in enumerate(zip(params, grads)):
            g = _f64(g)
            if self.decoupled:
                p *= 1 - self.lr * self.weight_decay
            elif self.weight_decay:
                g = g + self.weight_decay * p
            self.m[i] = b1 * self.m[i] + (1 - b1) * g
            self.v[i] = b2 * self.v[i] + (1 - b2) * g * g
            denom = np.sqrt(self.v[i]) / _math.sqrt(bc2) + self.eps
            p -= (self.lr / bc1) * self.m[i] / denom


class AdamW(Adam):
    """torch.optim.AdamW: p *= 1 - lr * weight_decay, then Adam on the plain gradient."""

    decoupled = True

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(lr, betas, eps, weight_decay)


def global_norm(grads):
    return float(np.sqrt(sum(float(np.sum(_f64(g) ** 2)) for g in grads)))


def clip_grads(grads, max_norm):
    """torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is < 1.
    Returns (clipped copies, norm before clipping)."""
    norm = global_norm(grads)
    coef = max_norm / (norm + 1e-6)
    if coef < 1.0:
        return [_f64(g) * coef for g in grads], norm
    return [_f64(g).copy() for g in grads], norm


# --------------------------------------------------------------------------- #
# learning-rate schedules (closed forms) and ReduceLROnPlateau
# --------------------------------------------------------------------------- #
def step_decay_lr(base, t, step_size, gamma):
    return base * gamma ** (t // step_size)


def exponential_lr(base, t, gamma):
    return base * gamma ** t


def cosine_lr(base, t, t_max, eta_min=0.0):
    t = min(t, t_max)
    return eta_min + (base - eta_min) * (1 + _math.cos(_math.pi * t / t_max)) / 2


def warmup_lr(base, t, warmup, start_factor=0.0, then=None):
    """Linear from start_factor * base to base over `warmup` units; then ``then(base, t - warmup)``."""
    if t < warmup:
        return base * (start_factor + (1 - start_factor) * t / warmup)
    return then(base, t - warmup) if then is not None else base


class ReduceLROnPlateau:
    """torch.optim.lr_scheduler.ReduceLROnPlateau(mode='min', threshold_mode='abs', cooldown=0)."""

    def __init__(self, lr, factor=0.1, patience=10, min_delta=1e-4, min_lr=0.0):
        self.lr, self.factor, self.patience, self.min_delta, self.min_lr = lr, factor, patience, min_delta, min_lr
        self.best = _math.inf
        self.bad = 0

    def step(self, value):
        if value < self.best - self.min_delta:
            self.best, self.bad = value, 0
        else:
            self.bad += 1
        if self.bad > self.patience:
            self.lr = max(self.lr * self.factor, self.min_lr)
            self.bad = 0
        return self.lr


# --------------------------------------------------------------------------- #
# a general training loop
# --------------------------------------------------------------------------- #
def train(specs, x, y, loss, optimizer, epochs=1, batch_size=32, lr_for_step=None, clip_norm=None,
          trainable=None, masks_for_step=None):
    """Reference of ``model.fit(..., shuffle=False)`` for any optimizer above and any spec.

    ``lr_for_step(epoch, step, n_steps)`` sets ``optimizer.lr`` before each step; ``trainable`` is a
    list of booleans in parameters() order (frozen parameters get no update and do not count in the
    clipping norm); ``masks_for_step(epoch, step)`` returns the dropout masks of a step.
    Returns ``(specs, history)``; history has "loss", "lr" (last lr of each epoch), "grad_norm"
    (per epoch, the mean over steps of each Dense weight gradient's norm) and "step_norm" (the
    global norm each step).
    """
    specs = copy_specs(specs)
    loss_fn = LOSSES[loss]
    x = _f64(x)
    y = np.asarray(y)
    n = x.shape[0]
    n_steps = -(-n // batch_size)
    history = {"loss": [], "lr": [], "grad_norm": [], "step_norm": []}
    dense_idx = dense_weight_indices(specs)
    for epoch in range(epochs):
        losses = []
        norms = np.zeros(len(dense_idx))
        for step in range(n_steps):
            xb = x[step * batch_size:(step + 1) * batch_size]
            yb = y[step * batch_size:(step + 1) * batch_size]
            masks = masks_for_step(epoch, step) if masks_for_step is not None else None
            out, cache = seq_forward(specs, xb, training=True, masks=masks)
            value, gout = loss_fn(out, yb)
            _, grads = seq_backward(specs, cache, gout)
            norms += [np.linalg.norm(grads[i]) for i in dense_idx]
            params = seq_params(specs)
            keep = trainable if trainable is not None else [True] * len(params)
            params = [p for p, k in zip(params, keep) if k]
            grads = [g for g, k in zip(grads, keep) if k]
            if clip_norm is not None:
                grads, norm = clip_grads(grads, clip_norm)
            else:
                norm = global_norm(grads)
            history["step_norm"].append(norm)
            if lr_for_step is not None:
                optimizer.lr = lr_for_step(epoch, step, n_steps)
            optimizer.step(params, grads)
            losses.append(value)
        history["loss"].append(float(np.mean(losses)))
        history["lr"].append(float(optimizer.lr))
        history["grad_norm"].append((norms / n_steps).tolist())
    return specs, history


# ----------------------------------------------------------------------------------------------
# Central-difference gradient checks (float64)
GRAD_H, GRAD_RTOL, GRAD_ATOL = 1e-6, 1e-6, 1e-8


def numeric_grad(f, arr, h=GRAD_H):
    """Central differences of scalar f() with respect to every entry of the live array arr."""
    g = np.zeros(arr.shape)
    for idx in np.ndindex(arr.shape):
        old = arr[idx]
        arr[idx] = old + h
        fp = f()
        arr[idx] = old - h
        fm = f()
        arr[idx] = old
        g[idx] = (fp - fm) / (2 * h)
    return g


def assert_grad(analytic, numeric, what, rtol=GRAD_RTOL, atol=GRAD_ATOL):
    analytic = np.asarray(analytic, dtype=np.float64)
    assert analytic.shape == numeric.shape, what
    assert np.max(np.abs(numeric)) > 1e-6, f"{what}: degenerate check (zero gradient)"
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol, err_msg=what)
