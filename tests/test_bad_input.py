"""Bad input raises ValueError/TypeError naming the rule and what was received; the model is unchanged."""

from __future__ import annotations

import numpy as np
import pytest

import neurocore as nc
from conftest import assert_unchanged, snapshot

BAD = (ValueError, TypeError)


def mnist_model(dtype="float32"):
    return nc.Sequential([nc.Dense(784, 16), nc.ReLU(), nc.Dense(16, 10)], dtype=dtype, seed=0)


def small_model(dtype="float64", last=None):
    layers = [nc.Dense(4, 5), nc.Tanh(), nc.Dense(5, 3)]
    if last is not None:
        layers.append(last)
    return nc.Sequential(layers, dtype=dtype, seed=0)


def trained_state(model, rng=None):
    """Give the model non-trivial gradients and a forward cache, so 'unchanged' covers them too."""
    rng = rng or np.random.default_rng(0)
    d_in = model.layers[0].in_features
    out = model.forward(rng.standard_normal((3, d_in)))
    model.backward(rng.standard_normal(out.shape))
    return snapshot(model)


# --------------------------------------------------------------------------- #
# forward / backward
# --------------------------------------------------------------------------- #
def test_wrong_width_message():
    model = mnist_model()
    snap = trained_state(model)
    with pytest.raises(ValueError) as info:
        model.forward(np.zeros((32, 780), dtype=np.float32))
    msg = str(info.value)
    assert "784" in msg and "(32, 780)" in msg, msg
    assert_unchanged(model, snap)


@pytest.mark.parametrize("shape", [(784,), (2, 784, 1), (), (1, 2, 392)])
def test_wrong_ndim(shape):
    model = mnist_model()
    snap = trained_state(model)
    with pytest.raises(ValueError, match=r"2-D|2D|ndim|dimension") as info:
        model.forward(np.zeros(shape, dtype=np.float32))
    assert str(shape) in str(info.value) or str(len(shape)) in str(info.value), str(info.value)
    assert_unchanged(model, snap)


@pytest.mark.parametrize("kind", ["complex", "object", "str"])
def test_non_real_arrays_rejected(kind):
    model = small_model()
    snap = trained_state(model)
    if kind == "complex":
        x = np.ones((2, 4), dtype=np.complex128)
    elif kind == "object":
        x = np.array([[1, 2, 3, None], [1, 2, 3, 4]], dtype=object)
    else:
        x = np.array([["a", "b", "c", "d"], ["e", "f", "g", "h"]])
    with pytest.raises(BAD, match=r"(?i)dtype|complex|object|str|<U|numeric|real|float") as info:
        model.forward(x)
    assert kind in str(info.value).lower() or "<u" in str(info.value).lower() or "dtype" in str(info.value)
    assert_unchanged(model, snap)
    with pytest.raises(BAD):
        model.fit(x, np.zeros((2, 3)), loss="mse", optimizer=nc.SGD(lr=0.1), epochs=1, verbose=0)
    assert_unchanged(model, snap)


def test_backward_before_forward():
    model = small_model()
    with pytest.raises((RuntimeError, ValueError), match="forward"):
        model.backward(np.ones((3, 3)))
    assert all(np.all(g == 0) for g in model.gradients())


@pytest.mark.parametrize("shape", [(3, 4), (2, 3), (4, 3), (3,), (3, 3, 1)])
def test_backward_wrong_shape(shape):
    model = small_model()
    snap = trained_state(model)  # forward cache holds a batch of 3 with 3 outputs
    with pytest.raises(ValueError, match=r"\(3, 3\)|shape") as info:
        model.backward(np.ones(shape))
    assert str(shape) in str(info.value), str(info.value)
    assert_unchanged(model, snap)


def test_backward_non_finite_shape_ok_but_complex_rejected():
    model = small_model()
    snap = trained_state(model)
    with pytest.raises(BAD):
        model.backward(np.ones((3, 3), dtype=np.complex128))
    assert_unchanged(model, snap)


# --------------------------------------------------------------------------- #
# construction
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("sizes", [(0, 5), (5, 0), (-1, 5), (5, -3)])
def test_zero_or_negative_layer_sizes(sizes):
    with pytest.raises(ValueError, match=str(min(sizes))):
        nc.Dense(*sizes)


@pytest.mark.parametrize("sizes", [(2.5, 3), (3, "4"), (None, 3)])
def test_non_integer_layer_sizes(sizes):
    with pytest.raises(BAD):
        nc.Dense(*sizes)


def test_non_chaining_layers():
    with pytest.raises(ValueError, match=r"5.*6|6.*5") as info:
        nc.Sequential([nc.Dense(4, 5), nc.ReLU(), nc.Dense(6, 3)])
    assert "Dense" in str(info.value) or "features" in str(info.value)


def test_bad_sequential_arguments():
    with pytest.raises(BAD):
        nc.Sequential([])
    with pytest.raises(BAD):
        nc.Sequential([nc.Dense(2, 3), "relu"])
    with pytest.raises(BAD, match="int32|float16|dtype"):
        nc.Sequential([nc.Dense(2, 3)], dtype="int32")
    with pytest.raises(BAD, match="float16|dtype"):
        nc.Sequential([nc.Dense(2, 3)], dtype=np.float16)
    with pytest.raises(BAD, match="swish|init"):
        nc.Dense(2, 3, init="swish")
    with pytest.raises(ValueError, match=r"\(2, 3\)|shape"):
        nc.Dense(2, 3, init=np.ones((3, 2)))


@pytest.mark.parametrize("alpha", [-0.1, float("nan"), float("inf")])
def test_bad_leaky_relu_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        nc.LeakyReLU(alpha=alpha)


def test_assign_weight_of_wrong_shape():
    model = small_model()
    snap = trained_state(model)
    with pytest.raises(ValueError, match=r"\(4, 5\)") as info:
        model.layers[0].weight = np.ones((5, 4))
    assert "(5, 4)" in str(info.value)
    with pytest.raises(ValueError, match=r"\(5,\)|5"):
        model.layers[0].bias = np.ones(4)
    with pytest.raises(BAD):
        model.layers[0].weight = np.ones((4, 5), dtype=np.complex128)
    assert_unchanged(model, snap)


# --------------------------------------------------------------------------- #
# losses
# --------------------------------------------------------------------------- #
def test_loss_target_shape_mismatch():
    out = np.zeros((4, 3))
    for loss in (nc.MSELoss(), nc.BCELoss(), nc.BCEWithLogitsLoss()):
        with pytest.raises(ValueError, match=r"\(4, 3\)") as info:
            loss(np.full((4, 3), 0.5), np.zeros((4, 2)))
        assert "(4, 2)" in str(info.value)
        with pytest.raises(ValueError):
            loss(np.full((4, 3), 0.5), np.zeros(4))
    with pytest.raises(ValueError, match=r"4|batch"):
        nc.CrossEntropyLoss()(out, np.zeros(5, dtype=np.int64))
    with pytest.raises(ValueError):
        nc.CrossEntropyLoss()(out, np.zeros((4, 1), dtype=np.int64))


@pytest.mark.parametrize("label", [3, -1, 100])
def test_cross_entropy_label_out_of_range(label):
    y = np.array([0, 1, label, 2])
    with pytest.raises(ValueError, match=str(label)) as info:
        nc.CrossEntropyLoss()(np.zeros((4, 3)), y)
    assert "3" in str(info.value)


@pytest.mark.parametrize("y", [np.array([0.0, 1.5, 2.0, 1.0]), np.array(["0", "1", "2", "1"]),
                               np.array([0, 1, 2, 1], dtype=np.complex128)])
def test_cross_entropy_non_integer_labels(y):
    with pytest.raises(BAD, match=r"(?i)integer|label"):
        nc.CrossEntropyLoss()(np.zeros((4, 3)), y)


# --------------------------------------------------------------------------- #
# fit
# --------------------------------------------------------------------------- #
def fit_setup(loss="cross_entropy"):
    model = small_model()
    snap = trained_state(model)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((10, 4))
    y = rng.integers(0, 3, size=10) if loss == "cross_entropy" else rng.uniform(0, 1, size=(10, 3))
    return model, snap, x, y


def run_fit(model, x, y, loss="cross_entropy", **kw):
    args = dict(loss=loss, optimizer=nc.SGD(lr=0.1), epochs=1, batch_size=4, verbose=0)
    args.update(kw)
    return model.fit(x, y, **args)


def test_fit_length_mismatch():
    model, snap, x, y = fit_setup()
    with pytest.raises(ValueError, match=r"10.*9|9.*10"):
        run_fit(model, x, y[:9])
    assert_unchanged(model, snap)


def test_fit_empty_x():
    model, snap, x, y = fit_setup()
    with pytest.raises(ValueError, match=r"(?i)empty|0 samples|no samples|\(0, 4\)"):
        run_fit(model, x[:0], y[:0])
    assert_unchanged(model, snap)


def test_fit_wrong_width():
    model, snap, x, y = fit_setup()
    with pytest.raises(ValueError, match=r"\(10, 5\)") as info:
        run_fit(model, np.ones((10, 5)), y)
    assert "4" in str(info.value)
    assert_unchanged(model, snap)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["x", "y"])
def test_fit_non_finite_data(bad, where):
    loss = "mse" if where == "y" else "cross_entropy"
    model, snap, x, y = fit_setup(loss)
    if where == "x":
        x[7, 2] = bad
    else:
        y[3, 1] = bad
    with pytest.raises(ValueError, match=r"(?i)nan|inf|finite"):
        run_fit(model, x, y, loss=loss)
    assert_unchanged(model, snap)


def test_fit_non_finite_validation_data():
    model, snap, x, y = fit_setup()
    xv = x.copy()
    xv[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"(?i)nan|finite"):
        run_fit(model, x, y, validation_data=(xv, y))
    assert_unchanged(model, snap)


@pytest.mark.parametrize("label", [3, -1])
def test_fit_labels_out_of_range(label):
    model, snap, x, y = fit_setup()
    y[5] = label
    with pytest.raises(ValueError, match=str(label)):
        run_fit(model, x, y)
    assert_unchanged(model, snap)


def test_fit_non_integer_labels():
    model, snap, x, y = fit_setup()
    yf = y.astype(np.float64)
    yf[2] = 0.5
    with pytest.raises(BAD, match=r"(?i)integer|label"):
        run_fit(model, x, yf)
    assert_unchanged(model, snap)


@pytest.mark.parametrize("loss", ["mse", "bce", "bce_with_logits"])
def test_fit_target_wrong_shape(loss):
    model, snap, x, y = fit_setup("mse")
    with pytest.raises(ValueError, match=r"\(10, 2\)|\(10, 3\)"):
        run_fit(model, x, y[:, :2], loss=loss)
    with pytest.raises(ValueError):
        run_fit(model, x, y[:, 0], loss=loss)
    assert_unchanged(model, snap)


@pytest.mark.parametrize("kw,pattern", [
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=-4), "batch_size"),
    (dict(epochs=-1), "epochs"),
    (dict(loss="hinge"), "hinge"),
    (dict(optimizer="adam"), "optimizer|SGD"),
])
def test_fit_bad_arguments(kw, pattern):
    model, snap, x, y = fit_setup()
    with pytest.raises(BAD, match=pattern):
        run_fit(model, x, y, **kw)
    assert_unchanged(model, snap)


@pytest.mark.parametrize("kw,pattern", [
    (dict(lr=0.0), "lr"),
    (dict(lr=-0.1), "lr"),
    (dict(lr=float("nan")), "lr"),
    (dict(lr=float("inf")), "lr"),
    (dict(lr=0.1, momentum=-0.1), "momentum"),
    (dict(lr=0.1, momentum=1.0), "momentum"),
    (dict(lr=0.1, momentum=1.5), "momentum"),
    (dict(lr=0.1, momentum=float("nan")), "momentum"),
    (dict(lr=0.1, nesterov=True), "nesterov"),
    (dict(lr=0.1, momentum=0.0, nesterov=True), "nesterov"),
    (dict(lr=0.1, weight_decay=-1e-4), "weight_decay"),
    (dict(lr=0.1, weight_decay=float("nan")), "weight_decay"),
])
def test_bad_sgd_hyperparameters(kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        nc.SGD(**kw)


def test_diverging_training_stops_with_epoch_and_step():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((64, 4)) * 10).astype(np.float32)
    y = (rng.standard_normal((64, 3)) * 10).astype(np.float32)
    model = nc.Sequential([nc.Dense(4, 8), nc.ReLU(), nc.Dense(8, 3)], dtype="float32", seed=0)
    with pytest.raises((FloatingPointError, ValueError, ArithmeticError, RuntimeError),
                       match=r"(?i)epoch\D*\d+.*(step|batch)\D*\d+|(step|batch)\D*\d+.*epoch\D*\d+") as info:
        model.fit(x, y, loss="mse", optimizer=nc.SGD(lr=1e4), epochs=5, batch_size=8, shuffle=False, verbose=0)
    assert any(w in str(info.value).lower() for w in ("nan", "inf", "finite", "diverg"))
    for p in model.parameters():
        assert np.all(np.isfinite(p)), "weights left non-finite after the divergence error"
