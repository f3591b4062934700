"""Loss values and gradients vs the float64 reference (PyTorch reductions), incl. extreme logits."""

from __future__ import annotations

import numpy as np
import pytest

import neurocore as nc
import reference as ref
from conftest import assert_close

SHAPES = [(1, 1), (1, 5), (7, 3), (64, 10)]


def value_rel(dtype):
    return 1e-5 if dtype == np.float32 else 1e-12


def check(loss, out, target, ref_fn, dtype, label):
    out_before = out.copy()
    target_before = np.array(target, copy=True)
    value, grad = loss(out, target)
    assert isinstance(value, float), label
    assert isinstance(grad, np.ndarray) and grad.shape == out.shape and grad.dtype == dtype, label
    assert np.array_equal(out, out_before) and np.array_equal(target, target_before), "loss modified its inputs"
    exp_value, exp_grad = ref_fn(out, target)
    assert np.isfinite(value) and np.all(np.isfinite(grad)), label
    assert value == pytest.approx(exp_value, rel=value_rel(dtype), abs=value_rel(dtype) * 1e-3), label
    assert_close(grad, exp_grad, dtype, factor=2.0, err_msg=label)
    return value, grad


def test_mse(dtype, rng):
    for shape in SHAPES:
        out = rng.standard_normal(shape).astype(dtype)
        t = rng.standard_normal(shape).astype(dtype)
        check(nc.MSELoss(), out, t, ref.mse, dtype, f"mse {shape}")


def test_mse_reduction_is_mean_over_all_elements(dtype):
    out = np.zeros((4, 5), dtype=dtype)
    t = np.ones((4, 5), dtype=dtype)
    value, grad = nc.MSELoss()(out, t)
    assert value == pytest.approx(1.0)
    np.testing.assert_allclose(grad, -2.0 / 20, rtol=1e-6)


def test_bce(dtype, rng):
    for shape in SHAPES:
        p = rng.uniform(0.02, 0.98, size=shape).astype(dtype)
        t = rng.integers(0, 2, size=shape).astype(dtype)
        check(nc.BCELoss(), p, t, ref.bce, dtype, f"bce {shape}")
        soft = rng.uniform(0, 1, size=shape).astype(dtype)
        check(nc.BCELoss(), p, soft, ref.bce, dtype, f"bce soft {shape}")


def test_bce_saturated_probabilities_are_clamped_like_torch(dtype):
    # log(0) is clamped at -100 per element, as torch.nn.BCELoss does
    p = np.array([[0.0, 1.0, 0.0, 1.0, 0.5]], dtype=dtype)
    t = np.array([[1.0, 0.0, 0.0, 1.0, 1.0]], dtype=dtype)
    value, grad = nc.BCELoss()(p, t)
    expected = (100.0 + 100.0 + 0.0 + 0.0 + np.log(2.0)) / 5
    assert value == pytest.approx(expected, rel=1e-6)
    assert np.all(np.isfinite(grad))
    assert grad[0, 0] < 0 and grad[0, 1] > 0, "gradient must point towards the target"
    assert grad[0, 4] == pytest.approx(-1.0 / 0.25 / 5 * 0.5, rel=1e-5)


def test_bce_with_logits(dtype, rng):
    for shape in SHAPES:
        z = (4 * rng.standard_normal(shape)).astype(dtype)
        t = rng.integers(0, 2, size=shape).astype(dtype)
        check(nc.BCEWithLogitsLoss(), z, t, ref.bce_with_logits, dtype, f"bcel {shape}")
        soft = rng.uniform(0, 1, size=shape).astype(dtype)
        check(nc.BCEWithLogitsLoss(), z, soft, ref.bce_with_logits, dtype, f"bcel soft {shape}")


def test_bce_with_logits_extreme(dtype):
    z = np.array([[1e4, -1e4, 1e4, -1e4, 800.0, -800.0, 88.0, -88.0, 30.0, -30.0, 0.0]], dtype=dtype)
    t = np.array([[0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.5, 0.5, 1.0]], dtype=dtype)
    value, grad = check(nc.BCEWithLogitsLoss(), z, t, ref.bce_with_logits, dtype, "bcel extreme")
    # 1e4 + 1e4 + 800 + 800 + 15 + 15 + log 2 over 11 elements
    assert value == pytest.approx((2e4 + 1600 + 30 + np.log(2.0)) / 11, rel=1e-6)


def test_cross_entropy(dtype, rng):
    for n, c in [(1, 1), (1, 5), (7, 3), (64, 10), (5, 33)]:
        z = (3 * rng.standard_normal((n, c))).astype(dtype)
        y = rng.integers(0, c, size=n)
        check(nc.CrossEntropyLoss(), z, y, ref.cross_entropy, dtype, f"ce {(n, c)}")


def test_cross_entropy_reduction_is_mean_over_batch(dtype):
    z = np.zeros((4, 10), dtype=dtype)
    y = np.array([0, 3, 9, 2])
    value, grad = nc.CrossEntropyLoss()(z, y)
    assert value == pytest.approx(np.log(10.0), rel=1e-6)
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-6)
    assert grad[1, 3] == pytest.approx((0.1 - 1.0) / 4, rel=1e-5)
    assert grad[1, 4] == pytest.approx(0.1 / 4, rel=1e-5)


@pytest.mark.parametrize("label_dtype", [np.int64, np.int32, np.uint8, np.intp])
def test_cross_entropy_label_dtypes(dtype, label_dtype, rng):
    z = rng.standard_normal((6, 4)).astype(dtype)
    y = np.array([0, 1, 2, 3, 3, 1], dtype=label_dtype)
    check(nc.CrossEntropyLoss(), z, y, ref.cross_entropy, dtype, str(label_dtype))


def test_cross_entropy_extreme_logits(dtype):
    z = np.array([
        [1e4, -1e4, 0.0],
        [-1e4, 1e4, 0.0],
        [1e4, 1e4, -1e4],
        [-1e4, -1e4, -1e4],
        [5e3, -5e3, 5e3 - 2.0],
    ], dtype=dtype)
    y = np.array([0, 0, 1, 2, 2])
    value, grad = check(nc.CrossEntropyLoss(), z, y, ref.cross_entropy, dtype, "ce extreme")
    expected = (0.0 + 2e4 + np.log(2.0) + np.log(3.0) + (2.0 + np.log1p(np.exp(-2.0)))) / 5
    assert value == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(grad[1], [(1.0 - 1.0) / 5 - 0.2, 0.2, 0.0], atol=1e-6)


def test_losses_accept_float64_targets_for_float32_outputs(rng):
    out = rng.uniform(0.1, 0.9, size=(5, 3)).astype(np.float32)
    t = rng.integers(0, 2, size=(5, 3)).astype(np.float64)
    for loss, fn in ((nc.MSELoss(), ref.mse), (nc.BCELoss(), ref.bce), (nc.BCEWithLogitsLoss(), ref.bce_with_logits)):
        a = loss(out, t)
        b = loss(out, t.astype(np.float32))
        assert a[0] == b[0]
        assert np.array_equal(a[1], b[1])
        assert a[0] == pytest.approx(fn(out, t)[0], rel=1e-5)


def test_losses_ignore_memory_layout(dtype, rng):
    z = rng.standard_normal((20, 6)).astype(dtype)
    p = rng.uniform(0.05, 0.95, size=(20, 6)).astype(dtype)
    t = rng.uniform(0, 1, size=(20, 6)).astype(dtype)
    labels = rng.integers(0, 6, size=40)[::2]
    for loss, out, target in ((nc.MSELoss(), z, t), (nc.BCELoss(), p, t), (nc.BCEWithLogitsLoss(), z, t),
                              (nc.CrossEntropyLoss(), z, labels)):
        v1, g1 = loss(out, target)
        big = np.zeros((40, 12), dtype=dtype)
        big[::2, ::2] = out
        v2, g2 = loss(np.asfortranarray(out), np.asfortranarray(target))
        v3, g3 = loss(big[::2, ::2], target)
        assert v1 == v2 == v3, type(loss).__name__
        assert np.array_equal(g1, g2) and np.array_equal(g1, g3), type(loss).__name__
