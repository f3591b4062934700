"""Activation kernels (``nc._core.activation_forward`` / ``activation_backward``) vs the reference.

Shapes whose lengths are not multiples of the SIMD width exercise the vector tails; inputs up to
|x| = 1e4 check that nothing overflows; float32 sigmoid/tanh are checked against float64
``np.exp``/``np.tanh`` to ~1e-6 relative.
"""

from __future__ import annotations

import numpy as np
import pytest

import neurocore as nc
import reference as ref
from conftest import assert_close, tol

SHAPES = [(1, 1), (1, 7), (3, 5), (7, 17), (13, 33), (64, 100)]
ALPHA = 0.05


def act_input(rng, shape, dtype):
    return (3.0 * rng.standard_normal(shape)).astype(dtype)


def extreme_values(dtype):
    base = np.array([0.0, 1e-30, 1e-8, 1e-4, 0.01, 0.5, 1.0, 2.5, 9.0, 15.0, 17.0, 20.0, 30.0, 40.0, 60.0,
                     80.0, 87.0, 88.5, 89.0, 100.0, 300.0, 709.0, 710.0, 800.0, 1e3, 5e3, 1e4])
    vals = np.concatenate([base, -base[1:]])
    # 53 values: pad to a non-multiple of any vector width, in several rows
    vals = np.concatenate([vals, vals[::-1]])
    return vals.reshape(2, -1).astype(dtype)


def backward_scale(name, y, dy):
    """Magnitude the rounding error of dx is relative to.

    tanh: 1 - y*y cancels for |y| ~ 1, so the error is relative to |dy|, not to |dx|;
    softmax: y * (dy - sum(dy * y)) is relative to |y| * max|dy|.
    """
    dy = np.abs(dy.astype(np.float64))
    if name in ("tanh", "sigmoid"):
        return dy
    if name == "softmax":
        return 2 * np.abs(y.astype(np.float64)) * dy.max(axis=1, keepdims=True)
    return np.zeros(1)


@pytest.mark.parametrize("name", ref.ACTIVATIONS)
def test_forward_matches_reference(isa, threads, dtype, name, rng):
    for shape in SHAPES:
        x = act_input(rng, shape, dtype)
        x_before = x.copy()
        y = nc._core.activation_forward(name, x, alpha=ALPHA)
        assert isinstance(y, np.ndarray) and y.dtype == dtype and y.shape == shape
        assert np.array_equal(x, x_before), "forward modified its input"
        expected = ref.act_forward(name, x, ALPHA)
        assert_close(y, expected, dtype, scale=np.zeros(1), factor=4.0, err_msg=f"{name} {shape}")


@pytest.mark.parametrize("name", ref.ACTIVATIONS)
def test_backward_matches_reference(isa, threads, dtype, name, rng):
    for shape in SHAPES:
        x = act_input(rng, shape, dtype)
        y = ref.act_forward(name, x, ALPHA).astype(dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        y_before, dy_before = y.copy(), dy.copy()
        dx = nc._core.activation_backward(name, y, dy, alpha=ALPHA)
        assert isinstance(dx, np.ndarray) and dx.dtype == dtype and dx.shape == shape
        assert np.array_equal(y, y_before) and np.array_equal(dy, dy_before), "backward modified its inputs"
        expected = ref.act_backward(name, y, dy, ALPHA)
        scale = backward_scale(name, y, dy)
        assert_close(dx, expected, dtype, scale=scale, factor=4.0, err_msg=f"{name} {shape}")


def test_relu_and_leaky_relu_are_exact(isa, dtype, rng):
    x = act_input(rng, (13, 33), dtype)
    assert np.array_equal(nc._core.activation_forward("relu", x), np.maximum(x, 0))
    assert np.array_equal(nc._core.activation_forward("identity", x), x)
    y = nc._core.activation_forward("leaky_relu", x, alpha=0.0)
    assert np.array_equal(y, np.maximum(x, 0))
    dy = rng.standard_normal(x.shape).astype(dtype)
    y = np.maximum(x, 0)
    assert np.array_equal(nc._core.activation_backward("relu", y, dy), np.where(y > 0, dy, 0).astype(dtype))
    assert np.array_equal(nc._core.activation_backward("identity", x, dy), dy)


@pytest.mark.parametrize("name", ref.ACTIVATIONS)
def test_extreme_inputs_finite_and_correct(isa, dtype, name):
    x = extreme_values(dtype)
    y = nc._core.activation_forward(name, x, alpha=ALPHA)
    assert np.all(np.isfinite(y)), f"{name} overflowed: {y}"
    expected = ref.act_forward(name, x, ALPHA)
    if name in ("sigmoid", "tanh"):
        # float32 within ~1e-6 relative of float64 where the value is not tiny (atol = 1 ulp of 1)
        rtol, atol = (1e-6, float(np.finfo(np.float32).eps)) if dtype == np.float32 else (1e-12, 1e-15)
        np.testing.assert_allclose(y, expected, rtol=rtol, atol=atol, err_msg=name)
        lo, hi = (0.0, 1.0) if name == "sigmoid" else (-1.0, 1.0)
        assert np.all((y >= lo) & (y <= hi))
    else:
        assert_close(y, expected, dtype, scale=np.zeros(1), factor=4.0, err_msg=name)
    dy = np.ones_like(x)
    dx = nc._core.activation_backward(name, y, dy, alpha=ALPHA)
    assert np.all(np.isfinite(dx)), f"{name} backward not finite: {dx}"
    expected_dx = ref.act_backward(name, y, dy, ALPHA)
    scale = backward_scale(name, y, dy)
    assert_close(dx, expected_dx, dtype, scale=scale, factor=4.0, err_msg=name + " backward")


def test_sigmoid_left_tail_keeps_relative_accuracy(isa, dtype):
    # sigmoid(x) ~ exp(x) for very negative x: a formula like 1 - sigmoid(-x) or 0.5 + 0.5 tanh(x/2)
    # loses every digit there (and flushes to 0), which breaks log-probabilities downstream.
    x = -np.array([[10.0, 17.0, 20.0, 30.0, 40.0, 50.0, 60.0, 68.0]]).astype(dtype)
    y = nc._core.activation_forward("sigmoid", x)
    expected = ref.sigmoid(x)
    np.testing.assert_allclose(y, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_float32_close_to_float64_over_a_range(isa):
    x64 = np.linspace(-30, 30, 6003).reshape(3, -1)
    x32 = x64.astype(np.float32)
    for name, oracle in (("sigmoid", lambda v: 1.0 / (1.0 + np.exp(-v))), ("tanh", np.tanh)):
        y32 = nc._core.activation_forward(name, x32)
        np.testing.assert_allclose(y32, oracle(x32.astype(np.float64)), rtol=1e-6,
                                   atol=float(np.finfo(np.float32).eps), err_msg=name)
        y64 = nc._core.activation_forward(name, x64)
        np.testing.assert_allclose(y64, oracle(x64), rtol=1e-12, atol=1e-15, err_msg=name)


def test_softmax_extreme_rows(isa, dtype):
    x = np.array([
        [1e4, -1e4, 0.0, 1e4 - 1.0, 5.0],
        [-1e4, -1e4, -1e4, -1e4, -1e4],
        [1e4, 1e4, 1e4, 1e4, 1e4],
        [-1e4, -1e4 + 2.0, -1e4 + 1.0, -9000.0, -1e4],
        [0.0, 0.0, 0.0, 0.0, 0.0],
    ]).astype(dtype)
    y = nc._core.activation_forward("softmax", x)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=0, atol=10 * np.finfo(dtype).eps)
    assert_close(y, ref.softmax(x), dtype, scale=np.zeros(1), factor=4.0)
    np.testing.assert_allclose(y[1], 0.2, rtol=tol(dtype))
    assert y[3, 3] == pytest.approx(1.0, rel=tol(dtype))


def test_softmax_is_row_wise_over_wide_rows(isa, dtype, rng):
    # rows wider than any vector width / tile: the normaliser must cover the whole row
    x = rng.standard_normal((3, 4099)).astype(dtype)
    y = nc._core.activation_forward("softmax", x)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=0, atol=1e-4 if dtype == np.float32 else 1e-12)
    assert_close(y, ref.softmax(x), dtype, scale=np.zeros(1), factor=4.0)


def test_leaky_relu_alpha_is_honoured(isa, dtype, rng):
    x = act_input(rng, (7, 17), dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    for alpha in (0.01, 0.2, 0.5):
        y = nc._core.activation_forward("leaky_relu", x, alpha=alpha)
        assert_close(y, ref.act_forward("leaky_relu", x, alpha), dtype, scale=np.zeros(1), err_msg=str(alpha))
        dx = nc._core.activation_backward("leaky_relu", y, dy, alpha=alpha)
        assert_close(dx, ref.act_backward("leaky_relu", y, dy, alpha), dtype, scale=np.zeros(1), err_msg=str(alpha))


def test_unknown_activation_rejected(dtype):
    x = np.zeros((2, 3), dtype=dtype)
    with pytest.raises(ValueError, match="swish"):
        nc._core.activation_forward("swish", x)
    with pytest.raises(ValueError, match="swish"):
        nc._core.activation_backward("swish", x, x)
    with pytest.raises(ValueError):
        nc._core.activation_backward("tanh", x, np.zeros((3, 2), dtype=dtype))
