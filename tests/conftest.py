"""Shared fixtures and tolerances for the neurocore test-suite.

* ``isa``: every kernel table this CPU can run (``cpu_info()["isa_available"]``),
  selected with ``neurocore._core.set_isa`` and restored afterwards.
* ``threads``: 1 and 2 OpenMP threads (``set_num_threads``), restored afterwards.
* ``dtype``: float32 and float64.

Tolerances: float64 results must agree with the float64 reference to ~1e-12
relative to the magnitude of the quantity; float32 results to ~1e-5. Both are
far below the O(1) error a wrong index or a dropped term produces.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

import neurocore as nc

ISAS = list(nc.cpu_info()["isa_available"])
DTYPES = [np.dtype(np.float32), np.dtype(np.float64)]
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def tol(dtype):
    """Relative tolerance for results computed in ``dtype``."""
    return RTOL[np.dtype(dtype)]


def assert_close(actual, expected, dtype, scale=None, factor=1.0, err_msg=""):
    """Assert ``|actual - expected| <= t * (|expected| + scale)`` elementwise.

    ``t = tol(dtype) * factor``. ``scale`` is the magnitude rounding errors are
    relative to: an array broadcastable to ``expected`` (e.g. ``|A| @ |B|`` for a
    product) or, by default, ``max|expected|`` (an atol scaled by the magnitude).
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape} {err_msg}"
    assert np.all(np.isfinite(actual)), f"non-finite values {err_msg}"
    if scale is None:
        scale = np.max(np.abs(expected)) if expected.size else 0.0
    t = tol(dtype) * factor
    bound = t * (np.abs(expected) + scale) + np.finfo(np.float64).tiny
    err = np.abs(actual.astype(np.float64) - expected)
    bad = err > bound
    if np.any(bad):
        idx = np.unravel_index(np.argmax(err - bound), err.shape)
        raise AssertionError(
            f"{np.count_nonzero(bad)}/{err.size} entries off {err_msg}: at {idx} got {actual[idx]!r}, "
            f"expected {expected[idx]!r} (|err|={err[idx]:.3g} > bound {bound[idx]:.3g})"
        )


def snapshot(model):
    """Copies of every parameter and gradient, to check that a call left the model unchanged."""
    return [p.copy() for p in model.parameters()], [g.copy() for g in model.gradients()]


def assert_unchanged(model, snap):
    params, grads = snap
    now_p = model.parameters()
    now_g = model.gradients()
    assert len(now_p) == len(params) and len(now_g) == len(grads)
    for a, b in zip(now_p, params):
        assert np.array_equal(a, b, equal_nan=True), "a parameter changed"
    for a, b in zip(now_g, grads):
        assert np.array_equal(a, b, equal_nan=True), "a gradient changed"


@pytest.fixture(params=ISAS)
def isa(request):
    old = nc._core.get_isa()
    nc._core.set_isa(request.param)
    assert nc._core.get_isa() == request.param
    yield request.param
    nc._core.set_isa(old)


@pytest.fixture(params=[1, 2])
def threads(request):
    old = nc.get_num_threads()
    nc.set_num_threads(request.param)
    assert nc.get_num_threads() == request.param
    yield request.param
    nc.set_num_threads(old)


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture
def restore_threads():
    """For tests that change the thread count themselves."""
    old = nc.get_num_threads()
    yield
    nc.set_num_threads(old)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
