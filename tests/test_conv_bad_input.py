"""Image layers: garbage arguments, shape rules and random geometries.

* every constructor argument of Conv2D / MaxPool2D / AvgPool2D gets wrong types and values: TypeError or
  ValueError, never a crash;
* the shape rules (wrong ranks, an image smaller than the kernel, a pool that leaves nothing, a Dense that
  does not match the flattened width, channel mismatches, a missing input_shape) raise a ValueError naming
  the layer and the shapes;
* calls with wrongly shaped or garbage arrays leave the model unchanged;
* property tests: random geometries (kernel, stride, padding, channels, batch) equal the NumPy reference,
  and random arrays thrown at forward/predict/fit/backward never crash.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import reference_conv as rc
from hypothesis import given
from hypothesis import strategies as st
from reliability import DTYPES, ISAS, kernel_set, property_settings, thread_count

import neurocore as nc
from conftest import assert_close, assert_unchanged, snapshot

BAD = (ValueError, TypeError, OverflowError)


@pytest.mark.parametrize("make", [
    lambda: nc.Conv2D(0, 3, 3), lambda: nc.Conv2D(3, -1, 3), lambda: nc.Conv2D(3, 3, 0), lambda: nc.Conv2D(3, 3, 2.5),
    lambda: nc.Conv2D("3", 3, 3), lambda: nc.Conv2D(3, 3, (3,)), lambda: nc.Conv2D(3, 3, (3, 3, 3)),
    lambda: nc.Conv2D(3, 3, 3, stride=0), lambda: nc.Conv2D(3, 3, 3, stride=(1, None)),
    lambda: nc.Conv2D(3, 3, 3, padding=-1), lambda: nc.Conv2D(3, 3, 3, padding="full"),
    lambda: nc.Conv2D(3, 3, 3, stride=2, padding="same"), lambda: nc.Conv2D(3, 3, 3, padding=1.0),
    lambda: nc.Conv2D(3, 3, 3, bias="yes"), lambda: nc.Conv2D(3, 3, 3, init="nope"),
    lambda: nc.Conv2D(3, 3, 3, init=np.ones((3, 3, 3))), lambda: nc.Conv2D(3, 3, 3, init=np.full((3, 3, 3, 3), np.nan)),
    lambda: nc.Conv2D(2**40, 3, 3), lambda: nc.Conv2D(3, 3, True),
    lambda: nc.MaxPool2D(0), lambda: nc.MaxPool2D(2, stride=0), lambda: nc.MaxPool2D(2, padding=2),
    lambda: nc.AvgPool2D((2, 2, 2)), lambda: nc.AvgPool2D(3, padding=(1, 2)), lambda: nc.AvgPool2D(None),
    lambda: nc.MaxPool2D("2"), lambda: nc.AvgPool2D(2, stride=-1),
])
def test_constructor_garbage(make):
    with pytest.raises(BAD):
        make()


@pytest.mark.parametrize("layers,shape,pattern", [
    ([nc.Conv2D(1, 4, 5)], (3, 3, 1), r"Conv2D\(1, 4, kernel_size=5\) needs images of at least 5x5 .*\(3, 3, 1\)"),
    ([nc.Conv2D(1, 4, 3), nc.MaxPool2D(4)], (4, 4, 1), r"MaxPool2D\(4\) needs .*\(2, 2, 4\)"),
    ([nc.AvgPool2D(3, stride=2)], (2, 9, 1), r"AvgPool2D\(3, stride=2\) .*\(2, 9, 1\)"),
    ([nc.Conv2D(3, 4, 3)], (8, 8, 2), r"expects 3 input channels .*\(8, 8, 2\)"),
    ([nc.Conv2D(1, 4, 3), nc.Conv2D(5, 2, 1)], (8, 8, 1), r"expects 5 input channels .*\(6, 6, 4\)"),
    ([nc.Conv2D(1, 4, 3), nc.Flatten(), nc.Dense(100, 2)], (8, 8, 1), r"Dense\(100, 2\) expects 100 inputs .* 144"),
    ([nc.Conv2D(1, 4, 3), nc.Dense(144, 2)], (8, 8, 1), r"Dense\(144, 2\) takes \(batch, features\) .*\(6, 6, 4\).*Flatten"),
    ([nc.Conv2D(1, 4, 3)], (8, 8), r"takes \(batch, H, W, C\) images .*\(8, 8\)"),
    ([nc.Conv2D(1, 4, 3)], (1, 8, 8, 1), r"takes \(batch, H, W, C\) images .*\(1, 8, 8, 1\)"),
    ([nc.Dense(4, 4), nc.MaxPool2D(2)], None, r"MaxPool2D\(2\) takes \(batch, H, W, C\) .*\(4,\)"),
    ([nc.Conv2D(1, 4, 3), nc.BatchNorm(3)], (8, 8, 1), r"BatchNorm\(3\) expects 3 channels .*\(6, 6, 4\)"),
    ([nc.Residual([nc.Conv2D(4, 4, 3)])], (8, 8, 4), r"residual block that must keep .*\(8, 8, 4\).*\(6, 6, 4\)"),
    ([nc.GlobalAvgPool2D()], (5,), r"GlobalAvgPool2D\(\) takes \(batch, H, W, C\)"),
    ([nc.Conv2D(1, 4, 3)], None, r"input_shape=\(H, W, 1\): Conv2D\(1, 4, kernel_size=3\) fixes the channels"),
    ([nc.MaxPool2D(2)], None, r"input_shape=\(H, W, C\) when it starts with MaxPool2D\(2\)"),
    ([nc.Conv2D(1, 4, 3)], (8, 0, 1), r"input_shape entries must be >= 1"),
])
def test_shape_rules_name_the_layer_and_the_shapes(layers, shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        nc.Sequential(layers, input_shape=shape)


def image_model(dtype="float32"):
    return nc.Sequential([nc.Conv2D(2, 3, 3, padding=1), nc.ReLU(), nc.MaxPool2D(2), nc.Flatten(), nc.Dense(12, 2)],
                         dtype=dtype, input_shape=(4, 4, 2), seed=0)


@pytest.mark.parametrize("bad", [
    np.zeros((3, 4, 4)), np.zeros((3, 4, 4, 2, 1)), np.zeros((3, 4, 5, 2)), np.zeros((3, 2, 4, 4)),
    np.zeros((4, 4, 2)), np.zeros((3, 32)), "img", np.zeros((3, 4, 4, 2), dtype=complex),
])
def test_bad_images_leave_the_model_unchanged(bad, rng):
    model = image_model()
    x = rng.standard_normal((3, 4, 4, 2))
    y = model.forward(x, training=True)
    snap = snapshot(model)
    for call in (lambda: model.forward(bad), lambda: model.predict(bad), lambda: model.fit(bad, [0, 1, 0], verbose=0),
                 lambda: model.evaluate(bad, [0, 1, 0]), lambda: model.backward(bad)):
        with pytest.raises(BAD):
            call()
    assert_unchanged(model, snap)
    dx = model.backward(np.ones_like(y))   # the kept forward is still usable
    assert dx.shape == x.shape


def test_empty_and_nonfinite_images_are_refused_by_fit(rng):
    model = image_model()
    snap = snapshot(model)
    for bad in (np.zeros((0, 4, 4, 2)), np.full((3, 4, 4, 2), np.nan)):
        with pytest.raises(ValueError):
            model.fit(bad, np.zeros(len(bad), np.int64), verbose=0)
    with pytest.raises(ValueError, match="at least one sample"):
        model.forward(np.zeros((0, 4, 4, 2)))
    assert model.predict(np.zeros((0, 4, 4, 2))).shape == (0, 2)
    assert_unchanged(model, snap)


def test_messages_for_images_help():
    model = image_model()
    with pytest.raises(ValueError, match=r"\(batch, 4, 4, 2\), got shape \(4, 4, 2\) \(use x\[None\]"):
        model.predict(np.zeros((4, 4, 2)))
    with pytest.raises(ValueError, match=r"channels-last"):
        model.predict(np.zeros((3, 2, 4, 4)))
    with pytest.raises(ValueError, match=r"augment"):
        model.fit(np.zeros((4, 4, 4, 2)), [0, 1, 0, 1], augment=lambda b: b[:, :2], verbose=0)


@st.composite
def geometries(draw):
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    same = draw(st.booleans()) and sh == sw == 1
    pad = "same" if same else (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    h = draw(st.integers(max(1, kh - 4), 12))
    w = draw(st.integers(max(1, kw - 4), 12))
    pads = rc.same_pads(kh, kw) if same else (pad[0], pad[0], pad[1], pad[1])
    if h + pads[0] + pads[1] < kh or w + pads[2] + pads[3] < kw:
        h, w = kh, kw
    return dict(n=draw(st.integers(1, 9)), h=h, w=w, cin=draw(st.integers(1, 9)), cout=draw(st.integers(1, 20)),
                k=(kh, kw), s=(sh, sw), pad=pad, pads=pads)


@property_settings(40)
@given(g=geometries(), dtype=st.sampled_from(DTYPES), isa=st.sampled_from(ISAS), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**32 - 1))
def test_random_conv_geometries_match_the_reference(g, dtype, isa, threads, seed):
    rng = np.random.default_rng(seed)
    with kernel_set(isa), thread_count(threads):
        conv = nc.Conv2D(g["cin"], g["cout"], g["k"], stride=g["s"], padding=g["pad"])
        model = nc.Sequential([conv, nc.AvgPool2D(1)], dtype=dtype.name, input_shape=(g["h"], g["w"], g["cin"]))
        x = rng.standard_normal((g["n"], g["h"], g["w"], g["cin"])).astype(dtype)
        w, b = conv.weight.astype(np.float64), conv.bias.astype(np.float64) + rng.standard_normal(g["cout"])
        conv.bias = b
        b = conv.bias.astype(np.float64)
        y = model.forward(x, training=True)
        expected = rc.conv2d_forward(x, w, b, g["s"], g["pads"])
        assert_close(y, expected, dtype, scale=rc.conv2d_forward(np.abs(x), np.abs(w), np.abs(b), g["s"], g["pads"]), factor=4)
        dy = rng.standard_normal(y.shape)
        dx = model.backward(dy)
        rdx, rdw, _ = rc.conv2d_backward(x, w, dy, g["s"], g["pads"])
        sdx, sdw, _ = rc.conv2d_backward(np.abs(x), np.abs(w), np.abs(dy), g["s"], g["pads"])
        assert_close(dx, rdx, dtype, scale=sdx, factor=4)
        assert_close(conv.grad_weight, rdw, dtype, scale=sdw, factor=4)


@property_settings(40)
@given(shape=st.lists(st.integers(0, 6), min_size=0, max_size=5),
       dtype=st.sampled_from(["float64", "float32", "int8", "bool", "complex64", "U1"]),
       fill=st.sampled_from([0.0, np.nan, np.inf, 1e39]))
def test_random_arrays_never_crash(shape, dtype, fill):
    model = image_model()
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = np.full(shape, fill).astype(dtype)
    except (ValueError, OverflowError):
        return
    for call in (lambda: model.predict(arr), lambda: model.forward(arr, training=True),
                 lambda: model.fit(arr, np.zeros(len(arr) if arr.ndim else 1, np.int64), verbose=0)):
        try:
            call()
        except BAD:
            pass
