"""float64 central differences through GELU, ELU, BatchNorm (training and inference), Residual blocks
and Dropout, independent of the reference implementation.

Dropout in training draws a new mask for every forward, so a finite difference needs the same mask in
every evaluation. The mask is a function of the model's seed and of how many training forwards it has
run: a fresh Sequential with the same seed, given the current parameters, draws the same mask in its
first training forward. Each evaluation below does exactly that.
"""

from __future__ import annotations

import numpy as np
import pytest

import neurocore as nc
import reference as ref
from reference import assert_grad, numeric_grad

SEED = 21

# name: (layers, training mode, has dropout with p > 0)
NETS = {
    "gelu_fused": (lambda: [nc.Dense(4, 5), nc.GELU(), nc.Dense(5, 3)], False),
    "gelu_lone": (lambda: [nc.GELU(), nc.Dense(4, 5), nc.Tanh(), nc.GELU(), nc.Dense(5, 2)], False),
    "elu_fused": (lambda: [nc.Dense(4, 5), nc.ELU(alpha=0.6), nc.Dense(5, 3), nc.ELU(alpha=1.7)], False),
    "elu_lone": (lambda: [nc.Dense(4, 5), nc.Tanh(), nc.ELU(alpha=1.3), nc.Dense(5, 2)], False),
    "batchnorm_train": (lambda: [nc.Dense(4, 5), nc.BatchNorm(5), nc.Tanh(), nc.Dense(5, 3),
                                 nc.BatchNorm(3, eps=1e-3)], True),
    "batchnorm_eval": (lambda: [nc.Dense(4, 5), nc.BatchNorm(5), nc.Tanh(), nc.Dense(5, 3),
                                nc.BatchNorm(3, eps=1e-3)], False),
    "batchnorm_first_train": (lambda: [nc.Dense(4, 4, bias=False), nc.BatchNorm(4), nc.Dense(4, 2)], True),
    "residual_nested": (lambda: [nc.Dense(3, 4), nc.Residual([nc.Dense(4, 6), nc.Tanh(), nc.Dense(6, 4),
                                                              nc.Residual([nc.Dense(4, 4), nc.GELU()])]),
                                 nc.Dense(4, 2)], False),
    "residual_first": (lambda: [nc.Residual([nc.Dense(3, 3), nc.Sigmoid()]), nc.Dense(3, 2)], False),
    "residual_bn_train": (lambda: [nc.Dense(3, 4), nc.Residual([nc.BatchNorm(4), nc.Dense(4, 4), nc.ELU(),
                                                                nc.Dropout(0.0)]), nc.Dense(4, 2)], True),
    "residual_bn_eval": (lambda: [nc.Dense(3, 4), nc.Residual([nc.BatchNorm(4), nc.Dense(4, 4), nc.ELU(),
                                                               nc.Dropout(0.5)]), nc.Dense(4, 2)], False),
    "dropout_train": (lambda: [nc.Dense(4, 6), nc.Tanh(), nc.Dropout(0.4), nc.Dense(6, 5),
                               nc.Residual([nc.Dense(5, 5), nc.Sigmoid(), nc.Dropout(0.6)]), nc.Dense(5, 2)], True),
    "everything_train": (lambda: [nc.Dense(4, 6), nc.BatchNorm(6), nc.GELU(), nc.Dropout(0.3),
                                  nc.Residual([nc.Dense(6, 6), nc.ELU(), nc.BatchNorm(6)]), nc.Dense(6, 3)], True),
}


def has_dropout(model):
    def walk(layers):
        for layer in layers:
            if isinstance(layer, nc.Dropout) and layer.p > 0:
                return True
            if isinstance(layer, nc.Residual) and walk(layer.layers):
                return True
        return False

    return walk(model.layers)


def build(name):
    model = nc.Sequential(NETS[name][0](), dtype="float64", seed=SEED)
    rng = np.random.default_rng(5)
    for layer in model.parameter_layers():
        if isinstance(layer, nc.BatchNorm):
            layer.weight[...] = rng.uniform(0.5, 1.5, layer.features)
            layer.bias[...] = 0.3 * rng.standard_normal(layer.features)
            layer.running_mean[...] = 0.3 * rng.standard_normal(layer.features)
            layer.running_var[...] = rng.uniform(0.5, 2.0, layer.features)
        elif layer.bias is not None:
            layer.bias[...] = 0.5 * rng.standard_normal(layer.bias.shape)
    return model






def away_from_elu_kinks(model, x, training, margin=1e-3):
    """No ELU (alpha != 1) input within margin of 0, where the derivative jumps."""
    specs = ref.layer_specs(model)
    _, cache = ref.seq_forward(specs, x, training=training)

    def walk(specs, cache):
        for s, c in zip(specs, cache):
            if s[0] == "residual":
                if not walk(s[1], c[2]):
                    return False
            elif s[0] == "elu" and s[1] != 1.0 and np.min(np.abs(c[0])) < margin:
                return False
        return True

    return walk(specs, cache)


@pytest.mark.parametrize("net", list(NETS))
def test_backward_matches_central_differences(net):
    master = build(net)
    training = NETS[net][1]
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, master.in_features)) * 1.5 + 0.3
    if not has_dropout(master) or not training:
        assert away_from_elu_kinks(master, x, training)

    if has_dropout(master) and training:
        def runner():
            """A fresh model with the master's current parameters: its first training forward draws the
            same dropout masks every time."""
            m = nc.Sequential(NETS[net][0](), dtype="float64", seed=SEED)
            m.load_weights(master)
            return m

        first = runner().forward(x, training=True)
        assert np.array_equal(first, runner().forward(x, training=True)), "masks not reproducible"
        assert not np.allclose(first, master.predict(x)), "dropout inactive in training"
    else:
        def runner():
            return master

    r = rng.standard_normal(runner().forward(x, training=training).shape)

    def f():
        return float(np.sum(runner().forward(x, training=training) * r))

    model = runner()
    model.forward(x, training=training)
    gx = model.backward(r).copy()
    grads = [g.copy() for g in model.gradients()]
    params = master.parameters()
    assert len(params) == len(grads)
    for i, p in enumerate(params):
        if training and i in bias_before_bn(master):
            # a bias followed by BatchNorm in training cancels out: its gradient is exactly zero
            np.testing.assert_allclose(grads[i], 0.0, atol=1e-12, err_msg=f"{net} parameter {i}")
            continue
        assert_grad(grads[i], numeric_grad(f, p), f"{net} parameter {i} {p.shape}")
    assert_grad(gx, numeric_grad(f, x), f"{net} input")


def bias_before_bn(model):
    """Indices in parameters() of Dense biases that feed a BatchNorm directly."""
    out, pos = [], 0
    layers = model.layers
    for i, layer in enumerate(layers):
        if isinstance(layer, nc.Dense):
            pos += 1
            if layer.bias is not None:
                if i + 1 < len(layers) and isinstance(layers[i + 1], nc.BatchNorm):
                    out.append(pos)
                pos += 1
        elif isinstance(layer, nc.BatchNorm):
            pos += 2
    return out


@pytest.mark.parametrize("loss_name,make_target", [
    ("cross_entropy", lambda rng, n: rng.integers(0, 3, size=n)),
    ("mse", lambda rng, n: rng.standard_normal((n, 3))),
])
def test_loss_gradient_through_batchnorm_training(loss_name, make_target):
    """d loss / d parameters in the training mode fit uses, through BatchNorm and GELU."""
    model = nc.Sequential([nc.Dense(4, 5), nc.GELU(), nc.BatchNorm(5), nc.Dense(5, 3)], dtype="float64", seed=2)
    loss = {"cross_entropy": nc.CrossEntropyLoss, "mse": nc.MSELoss}[loss_name]()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 4))
    t = make_target(rng, 7)

    def f():
        return loss(model.forward(x, training=True), t)[0]

    _, gout = loss(model.forward(x, training=True), t)
    model.backward(gout)
    grads = [g.copy() for g in model.gradients()]
    for i, p in enumerate(model.parameters()):
        assert_grad(grads[i], numeric_grad(f, p), f"{loss_name} parameter {i}")
