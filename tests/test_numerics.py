"""Numerics at the edges: inputs of magnitude 1e4 and 1e-30, all-equal logits, a batch of one, one class only.
Everything finite and equal to the float64 reference (within the rounding ``rounding.py`` allows), on every
kernel table and in both dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import rounding

import neurocore as nc
import reference as ref
from conftest import assert_close, tol

STACKS = {
    "relu-softmax": lambda d: [nc.Dense(d, 24), nc.ReLU(), nc.Dense(24, 7), nc.Softmax()],
    "sigmoid-tanh": lambda d: [nc.Dense(d, 19), nc.Sigmoid(), nc.Dense(19, 11), nc.Tanh(), nc.Dense(11, 3)],
    "leaky-sigmoid": lambda d: [nc.Dense(d, 17), nc.LeakyReLU(alpha=0.2), nc.Dense(17, 2), nc.Sigmoid()],
    "tanh-identity": lambda d: [nc.Dense(d, 9, bias=False), nc.Tanh(), nc.Identity(), nc.Dense(9, 4)],
    "softmax-hidden": lambda d: [nc.Dense(d, 13), nc.Softmax(), nc.Dense(13, 5)],
}
D = 12
MAGNITUDES = [1e4, 1e-30]


def _model(stack, dtype, seed=0):
    model = nc.Sequential(STACKS[stack](D), dtype=np.dtype(dtype).name, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for layer in model.layers:
        if isinstance(layer, nc.Dense) and layer.bias is not None:
            layer.bias[...] = 0.3 * rng.standard_normal(layer.bias.shape)
    return model


def _check_forward_backward(model, x, dtype, what):
    specs = ref.layer_specs(model)
    out = model.forward(x)
    fwd = rounding.forward_scales(specs, x)
    factor = rounding.comparison_factor(dtype, rounding.accumulation_length(specs, x))
    assert np.isfinite(out).all(), f"non-finite forward {what}"
    rounding.assert_matches(out, fwd[1][-1][1], dtype, fwd[0][-1], factor, err_msg=f"forward {what}")
    gout = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    gx = model.backward(gout)
    exp_gx, exp_grads = ref.seq_backward(specs, fwd[1], gout)
    (d, gs), (da, ga) = rounding.backward_scales(specs, x, gout, tol(dtype) * factor, fwd)
    assert np.isfinite(gx).all(), f"non-finite dL/dx {what}"
    rounding.assert_matches(gx, exp_gx, dtype, d, factor, da, err_msg=f"dL/dx {what}")
    for i, (g, e) in enumerate(zip(model.gradients(), exp_grads)):
        assert np.isfinite(g).all(), f"non-finite gradient {i} {what}"
        rounding.assert_matches(g, e, dtype, gs[i], factor, ga[i], err_msg=f"gradient {i} {what}")


@pytest.mark.parametrize("magnitude", MAGNITUDES, ids=["1e4", "1e-30"])
@pytest.mark.parametrize("stack", list(STACKS))
def test_extreme_input_magnitudes(isa, dtype, stack, magnitude):
    model = _model(stack, dtype)
    rng = np.random.default_rng(2)
    for batch in (1, 5, 33):
        x = (magnitude * rng.standard_normal((batch, D))).astype(dtype)
        _check_forward_backward(model, x, dtype, f"{stack} |x|~{magnitude:g} batch={batch}")


LOSS_TARGETS = {
    "mse": lambda rng, n, c, scale: scale * rng.standard_normal((n, c)),
    "bce_with_logits": lambda rng, n, c, scale: rng.integers(0, 2, (n, c)).astype(float),
    "cross_entropy": lambda rng, n, c, scale: rng.integers(0, c, n),
}
LOSS_OBJECTS = {"mse": nc.MSELoss, "bce_with_logits": nc.BCEWithLogitsLoss, "cross_entropy": nc.CrossEntropyLoss,
                "bce": nc.BCELoss}


def _check_loss(name, out, target, dtype, what):
    value, grad = LOSS_OBJECTS[name]()(out, target)
    exp_value, exp_grad = ref.LOSSES[name](out, target)
    assert np.isfinite(value) and np.isfinite(grad).all(), f"non-finite {name} {what}: {value}"
    assert grad.dtype == dtype and grad.shape == out.shape
    # the loss is a sum of per-element terms: rounding is relative to the sum of their magnitudes
    rounding.assert_matches(np.array(value), np.array(exp_value), dtype, np.abs(exp_value), 8.0,
                            err_msg=f"{name} value {what}")
    rounding.assert_matches(grad, exp_grad, dtype, np.abs(exp_grad).max(), 8.0, err_msg=f"{name} gradient {what}")


@pytest.mark.parametrize("magnitude", MAGNITUDES + [1.0], ids=["1e4", "1e-30", "1"])
@pytest.mark.parametrize("name", list(LOSS_TARGETS))
def test_losses_at_extreme_magnitudes(isa, dtype, name, magnitude):
    rng = np.random.default_rng(3)
    for n, c in ((1, 1), (1, 5), (9, 4), (64, 10)):
        if name == "cross_entropy" and c == 1:
            continue  # one class: its own test below
        out = (magnitude * rng.standard_normal((n, c))).astype(dtype)
        target = LOSS_TARGETS[name](rng, n, c, magnitude)
        if name == "mse" or name == "bce_with_logits":
            target = target.astype(dtype)
        _check_loss(name, out, target, dtype, f"|out|~{magnitude:g} shape={(n, c)}")


@pytest.mark.parametrize("p", [0.0, 1.0, 1e-30, 1 - 1e-7, 0.5])
def test_bce_on_saturated_probabilities_is_finite(isa, dtype, p):
    """A network ending in a sigmoid can output exactly 0 or 1: BCE clamps its logs (like PyTorch)."""
    out = np.full((4, 3), p, dtype=dtype)
    target = np.array([[0, 1, 1], [1, 0, 0], [0, 0, 1], [1, 1, 0]], dtype=dtype)
    _check_loss("bce", out, target, dtype, f"p={p}")


@pytest.mark.parametrize("level", [0.0, 1e4, -1e4, 1e-30, "max"])
def test_all_equal_logits(isa, dtype, level):
    """Equal logits: softmax is uniform, cross-entropy is log(C) with gradient (1/C - onehot)/n, even at the
    largest finite value (max-subtraction must happen before exp)."""
    level = float(np.finfo(dtype).max) / 2 if level == "max" else level
    n, c = 6, 5
    z = np.full((n, c), level, dtype=dtype)
    labels = np.arange(n) % c
    value, grad = nc.CrossEntropyLoss()(z, labels)
    assert value == pytest.approx(np.log(c), rel=10 * tol(dtype))
    expected = np.full((n, c), 1.0 / c)
    expected[np.arange(n), labels] -= 1.0
    assert_close(grad, expected / n, dtype, factor=4)
    y = nc._core.activation_forward("softmax", z)
    assert_close(y, np.full((n, c), 1.0 / c), dtype, factor=4)
    dy = np.random.default_rng(4).standard_normal((n, c)).astype(dtype)
    dx = nc._core.activation_backward("softmax", y, dy)
    assert_close(dx, ref.act_backward("softmax", np.full((n, c), 1.0 / c), dy), dtype, scale=np.abs(dy).max(),
                 factor=4)
    if abs(level) < 1e300:
        value, grad = nc.BCEWithLogitsLoss()(z, (labels[:, None] == np.arange(c)).astype(dtype))
        exp_value, exp_grad = ref.bce_with_logits(z, (labels[:, None] == np.arange(c)).astype(float))
        assert np.isfinite(value) and value == pytest.approx(exp_value, rel=10 * tol(dtype))
        assert_close(grad, exp_grad, dtype, factor=4)


def test_network_with_all_equal_inputs_and_zero_weights(isa, dtype):
    """Zero weights make every logit equal (the bias): forward, backward, loss and a training step stay
    finite and equal to the reference."""
    model = nc.Sequential([nc.Dense(D, 8, init="zeros"), nc.Tanh(), nc.Dense(8, 6, init="zeros"), nc.Softmax()],
                          dtype=dtype.name, seed=0)
    x = np.full((4, D), 1e4, dtype=dtype)
    _check_forward_backward(model, x, dtype, "zero weights")
    specs = ref.layer_specs(model)
    labels = np.array([0, 1, 2, 5])
    model.fit(x, labels, loss="cross_entropy", optimizer=nc.SGD(lr=0.1), epochs=2,
              batch_size=4, shuffle=False, verbose=0)
    trained, _ = ref.fit(specs, x, labels, "cross_entropy", 0.1, epochs=2, batch_size=4)
    for i, (p, e) in enumerate(zip(model.parameters(), ref.seq_params(trained))):
        assert_close(p, e, dtype, factor=10, err_msg=f"parameter {i}")


@pytest.mark.parametrize("stack", list(STACKS))
def test_batch_of_one_everywhere(isa, dtype, stack):
    model = _model(stack, dtype, seed=5)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, D)).astype(dtype)
    _check_forward_backward(model, x, dtype, f"{stack} batch of one")
    specs = ref.layer_specs(model)
    out = model.predict(x, batch_size=1)
    assert_close(out, ref.seq_forward(specs, x)[0], dtype, factor=8)
    n_out = out.shape[1]
    y = rng.standard_normal((1, n_out)).astype(dtype)
    hist = model.fit(x, y, loss="mse", optimizer=nc.SGD(lr=0.05, momentum=0.9), epochs=3, batch_size=1,
                     shuffle=False, verbose=0)
    trained, ref_hist = ref.fit(specs, x, y, "mse", 0.05, momentum=0.9, epochs=3, batch_size=1)
    for i, (p, e) in enumerate(zip(model.parameters(), ref.seq_params(trained))):
        assert_close(p, e, dtype, factor=16, err_msg=f"parameter {i}")
    np.testing.assert_allclose(hist["loss"], ref_hist, rtol=16 * tol(dtype), atol=16 * tol(dtype))
    assert np.isfinite(model.evaluate(x, y, loss="mse")["loss"])


def test_one_class_only(isa, dtype):
    """A single output class: softmax is 1, the cross-entropy loss and its gradient are exactly 0, training
    leaves the weights unchanged (no weight decay), accuracy is 1."""
    model = nc.Sequential([nc.Dense(D, 6), nc.Tanh(), nc.Dense(6, 1)], dtype=dtype.name, seed=0)
    rng = np.random.default_rng(7)
    x = (1e4 * rng.standard_normal((20, D))).astype(dtype)
    labels = np.zeros(20, dtype=np.int64)
    out = model.forward(x)
    value, grad = nc.CrossEntropyLoss()(out, labels)
    assert value == 0.0 and np.all(grad == 0.0)
    before = [p.copy() for p in model.parameters()]
    hist = model.fit(x, labels, optimizer=nc.SGD(lr=0.5, momentum=0.9), epochs=2, batch_size=7, verbose=0)
    assert hist["loss"] == [0.0, 0.0] and hist["accuracy"] == [1.0, 1.0]
    for a, b in zip(model.parameters(), before):
        assert np.array_equal(a, b)
    assert model.evaluate(x, labels) == {"loss": 0.0, "accuracy": 1.0}
    assert np.all(nc._core.activation_forward("softmax", out) == 1.0)


@pytest.mark.parametrize("loss", ["cross_entropy", "bce_with_logits", "bce"])
def test_every_label_the_same_class(isa, dtype, loss):
    """Data with one class present only (all labels 0 of 4, all targets 1): finite, equal to the reference."""
    layers = [nc.Dense(D, 10), nc.ReLU(), nc.Dense(10, 4)] + ([nc.Sigmoid()] if loss == "bce" else [])
    model = nc.Sequential(layers, dtype=dtype.name, seed=3)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((30, D)).astype(dtype)
    y = np.zeros(30, dtype=np.int64) if loss == "cross_entropy" else np.ones((30, 4), dtype=dtype)
    specs = ref.layer_specs(model)
    hist = model.fit(x, y, loss=loss, optimizer=nc.SGD(lr=0.1), epochs=3, batch_size=8, shuffle=False, verbose=0)
    trained, ref_hist = ref.fit(specs, x, y, loss, 0.1, epochs=3, batch_size=8)
    assert all(np.isfinite(hist["loss"]))
    for i, (p, e) in enumerate(zip(model.parameters(), ref.seq_params(trained))):
        assert_close(p, e, dtype, factor=16, err_msg=f"parameter {i}")
    np.testing.assert_allclose(hist["loss"], ref_hist, rtol=16 * tol(dtype))


@pytest.mark.parametrize("magnitude,lr", [(1e4, 1e-9), (1e-30, 0.1)], ids=["1e4", "1e-30"])
def test_fit_on_extreme_data_matches_reference(isa, dtype, magnitude, lr):
    model = _model("sigmoid-tanh", dtype, seed=9)
    rng = np.random.default_rng(10)
    x = (magnitude * rng.standard_normal((40, D))).astype(dtype)
    y = rng.integers(0, 3, 40)
    specs = ref.layer_specs(model)
    hist = model.fit(x, y, optimizer=nc.SGD(lr=lr, momentum=0.9), epochs=2, batch_size=16, shuffle=False,
                     verbose=0)
    trained, ref_hist = ref.fit(specs, x, y, "cross_entropy", lr, momentum=0.9, epochs=2, batch_size=16)
    assert all(np.isfinite(hist["loss"]))
    for i, (p, e) in enumerate(zip(model.parameters(), ref.seq_params(trained))):
        assert np.isfinite(p).all()
        assert_close(p, e, dtype, factor=50, err_msg=f"parameter {i}")
    np.testing.assert_allclose(hist["loss"], ref_hist, rtol=50 * tol(dtype))
