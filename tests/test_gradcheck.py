"""float64 central-difference checks of Sequential.backward (weights, biases, inputs) and of the
loss gradients, independent of the reference implementation."""

from __future__ import annotations

import numpy as np
import pytest

import neurocore as nc
import reference as ref
from reference import assert_grad, numeric_grad

NETS = {
    "tanh": lambda: [nc.Dense(4, 5), nc.Tanh(), nc.Dense(5, 3)],
    "sigmoid_softmax": lambda: [nc.Dense(3, 4), nc.Sigmoid(), nc.Dense(4, 4), nc.Softmax()],
    "leaky": lambda: [nc.Dense(3, 6), nc.LeakyReLU(alpha=0.2), nc.Dense(6, 2)],
    "relu_nobias": lambda: [nc.Dense(4, 5, bias=False), nc.ReLU(), nc.Dense(5, 2)],
    "activation_first": lambda: [nc.Tanh(), nc.Dense(3, 4), nc.Sigmoid(), nc.Dense(4, 2, bias=False)],
    "identity_deep": lambda: [nc.Dense(2, 3), nc.Identity(), nc.Dense(3, 3), nc.Tanh(), nc.Dense(3, 2)],
}


def build(name, seed=0):
    model = nc.Sequential(NETS[name](), dtype="float64", seed=seed)
    rng = np.random.default_rng(seed + 100)
    for layer in model.layers:
        if isinstance(layer, nc.Dense) and layer.bias is not None:
            layer.bias[...] = 0.5 * rng.standard_normal(layer.bias.shape)
    return model






def away_from_kinks(model, x, margin=1e-3):
    """True when no ReLU/LeakyReLU input is within margin of 0 (central differences would straddle it)."""
    specs = ref.layer_specs(model)
    _, cache = ref.seq_forward(specs, x)
    for spec, (inp, _) in zip(specs, cache):
        if spec[0] in ("relu", "leaky_relu") and np.min(np.abs(inp)) < margin:
            return False
    return True


@pytest.mark.parametrize("net", list(NETS))
def test_backward_matches_central_differences(net):
    model = build(net)
    rng = np.random.default_rng(7)
    d_in = next(layer.in_features for layer in model.layers if isinstance(layer, nc.Dense))
    x = rng.standard_normal((5, d_in))
    assert away_from_kinks(model, x)
    out = model.forward(x)
    r = rng.standard_normal(out.shape)

    def f():
        return float(np.sum(model.forward(x) * r))

    model.forward(x)
    gx = model.backward(r).copy()
    grads = [g.copy() for g in model.gradients()]
    params = model.parameters()
    assert len(params) == len(grads)
    for i, p in enumerate(params):
        assert_grad(grads[i], numeric_grad(f, p), f"{net} parameter {i} {p.shape}")
    assert_grad(gx, numeric_grad(f, x), f"{net} input")


LOSS_CASES = {
    "mse": ([nc.Dense(4, 5), nc.Tanh(), nc.Dense(5, 3)], lambda rng, n: rng.standard_normal((n, 3))),
    "bce": ([nc.Dense(4, 5), nc.Tanh(), nc.Dense(5, 3), nc.Sigmoid()],
            lambda rng, n: rng.integers(0, 2, size=(n, 3)).astype(np.float64)),
    "bce_soft_targets": ([nc.Dense(4, 3), nc.Sigmoid()], lambda rng, n: rng.uniform(0, 1, size=(n, 3))),
    "bce_with_logits": ([nc.Dense(4, 5), nc.Sigmoid(), nc.Dense(5, 2)],
                        lambda rng, n: rng.integers(0, 2, size=(n, 2)).astype(np.float64)),
    "cross_entropy": ([nc.Dense(4, 6), nc.Tanh(), nc.Dense(6, 4)], lambda rng, n: rng.integers(0, 4, size=n)),
}
LOSS_OBJECTS = {
    "mse": nc.MSELoss,
    "bce": nc.BCELoss,
    "bce_soft_targets": nc.BCELoss,
    "bce_with_logits": nc.BCEWithLogitsLoss,
    "cross_entropy": nc.CrossEntropyLoss,
}


@pytest.mark.parametrize("case", list(LOSS_CASES))
def test_loss_gradient_through_network(case):
    layers, make_target = LOSS_CASES[case]
    model = nc.Sequential(layers, dtype="float64", seed=3)
    loss = LOSS_OBJECTS[case]()
    rng = np.random.default_rng(11)
    x = rng.standard_normal((6, 4))
    t = make_target(rng, 6)

    def f():
        return loss(model.forward(x), t)[0]

    value, gout = loss(model.forward(x), t)
    assert isinstance(value, float)
    assert gout.shape == model.forward(x).shape
    # the loss gradient itself, by central differences on the output
    out = model.forward(x)
    num_out = numeric_grad(lambda: loss(out, t)[0], out)
    assert_grad(gout, num_out, f"{case} d loss / d output")
    model.forward(x)
    model.backward(gout)
    grads = [g.copy() for g in model.gradients()]
    for i, p in enumerate(model.parameters()):
        assert_grad(grads[i], numeric_grad(f, p), f"{case} parameter {i}")
