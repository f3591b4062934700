"""Data sets read in place: fit/predict/evaluate on uint8/int16/float16/float32/float64 arrays and np.memmap,
rows gathered, cast and standardised per batch in C++ — bitwise the same as on the cast array — and a
>= 2 GiB memmap trained without copying it (RssAnon)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reliability import property_settings, under_sanitizer

import neurocore as nc

HERE = os.path.dirname(os.path.abspath(__file__))


def _net(dtype, cols=20, seed=0, batchnorm=False):
    layers = [nc.Dense(cols, 16), nc.ReLU()] + ([nc.BatchNorm(16)] if batchnorm else []) + [nc.Dense(16, 3)]
    return nc.Sequential(layers, dtype=dtype, seed=seed)


def _fit(x, dtype, **kw):
    y = np.arange(x.shape[0]) % 3
    model = _net(dtype, x.shape[1])
    history = model.fit(x, y, optimizer=nc.SGD(lr=0.05, momentum=0.9), epochs=2, batch_size=16, seed=4, verbose=0,
                        **kw)
    return model, history


def _weights(model):
    return np.concatenate([p.ravel() for p in model.parameters()])


def _memmap(tmp_path, arr):
    path = tmp_path / f"x_{arr.dtype.name}.bin"
    mm = np.memmap(path, dtype=arr.dtype, mode="w+", shape=arr.shape)
    mm[...] = arr
    mm.flush()
    return np.memmap(path, dtype=arr.dtype, mode="r", shape=arr.shape)


RNG = np.random.default_rng(0)
STORED = {
    "uint8": RNG.integers(0, 256, (101, 20)).astype(np.uint8),
    "int16": RNG.integers(-3000, 3000, (101, 20)).astype(np.int16),
    "float16": RNG.standard_normal((101, 20)).astype(np.float16),
    "float32": RNG.standard_normal((101, 20)).astype(np.float32),
    "float64": RNG.standard_normal((101, 20)),
}


@pytest.mark.parametrize("model_dtype", ["float32", "float64"])
@pytest.mark.parametrize("stored", sorted(STORED))
def test_a_memmap_of_any_storage_type_trains_as_its_cast_array(tmp_path, stored, model_dtype):
    raw = STORED[stored]
    scale = 1 / 255 if stored == "uint8" else 1e-3 if stored == "int16" else None
    cast = raw.astype(model_dtype)
    if scale is not None:
        cast = cast * np.dtype(model_dtype).type(scale)
    ref, ref_h = _fit(cast, model_dtype)
    mm = _memmap(tmp_path, raw)
    got, got_h = _fit(mm, model_dtype, scale=scale)
    assert _weights(got).tobytes() == _weights(ref).tobytes()
    assert got_h == ref_h
    np.testing.assert_array_equal(got.predict(mm, batch_size=7, scale=scale), ref.predict(cast, batch_size=7))
    y = np.arange(101) % 3
    assert got.evaluate(mm, y, scale=scale) == ref.evaluate(cast, y)


@pytest.mark.parametrize("model_dtype", ["float32", "float64"])
def test_per_feature_standardisation_on_the_fly(tmp_path, model_dtype):
    raw = STORED["uint8"]
    mean = raw.mean(axis=0)
    std = raw.std(axis=0) + 0.5
    t = np.dtype(model_dtype).type
    standardised = (raw.astype(model_dtype) - mean.astype(model_dtype)) / std.astype(model_dtype)
    ref, ref_h = _fit(standardised, model_dtype, validation_data=(standardised[:30], np.arange(30) % 3))
    mm = _memmap(tmp_path, raw)
    got, got_h = _fit(mm, model_dtype, scale=(mean, std), validation_data=(raw[:30], np.arange(30) % 3))
    assert _weights(got).tobytes() == _weights(ref).tobytes()
    assert got_h == ref_h
    np.testing.assert_array_equal(got.predict(mm, scale=(mean, std)), ref.predict(standardised))
    # a number for the mean or std applies to every feature
    np.testing.assert_array_equal(got.predict(raw, scale=(t(3), t(2))),
                                  got.predict((raw.astype(model_dtype) - t(3)) / t(2)))


def test_uint8_images_standardised_per_channel_train_a_conv_net(tmp_path):
    images = np.random.default_rng(3).integers(0, 256, (40, 6, 6, 3)).astype(np.uint8)
    y = np.arange(40) % 3
    mean, std = np.array([120.0, 110.0, 100.0]), np.array([60.0, 50.0, 70.0])   # per channel, broadcast over pixels
    standardised = (images.astype(np.float32) - mean.astype(np.float32)) / std.astype(np.float32)

    def conv_net():
        return nc.Sequential([nc.Conv2D(3, 4, 3), nc.ReLU(), nc.Flatten(), nc.Dense(64, 3)], input_shape=(6, 6, 3), seed=0)

    ref, got = conv_net(), conv_net()
    ref.fit(standardised, y, epochs=2, batch_size=8, seed=1, verbose=0)
    mm = _memmap(tmp_path, images)
    got.fit(mm, y, epochs=2, batch_size=8, seed=1, verbose=0, scale=(mean, std))
    assert _weights(got).tobytes() == _weights(ref).tobytes()
    np.testing.assert_array_equal(got.predict(mm, scale=(mean, std)), ref.predict(standardised))


def test_validation_split_of_a_memmap_trains_on_row_indices(tmp_path):
    raw = STORED["uint8"]
    ref, ref_h = _fit(raw.astype(np.float32), "float32", validation_split=0.25)
    got, got_h = _fit(_memmap(tmp_path, raw), "float32", validation_split=0.25)
    assert _weights(got).tobytes() == _weights(ref).tobytes()
    assert got_h == ref_h


def test_batchnorm_and_noise_read_cast_batches():
    raw = STORED["int16"]
    y = np.arange(101) % 3
    for kw in ({"augment": nc.GaussianNoise(0.1)}, {}):
        a, b = _net("float32", batchnorm=True), _net("float32", batchnorm=True)
        a.fit(raw, y, epochs=1, batch_size=12, seed=1, verbose=0, **kw)
        b.fit(raw.astype(np.float32), y, epochs=1, batch_size=12, seed=1, verbose=0, **kw)
        assert _weights(a).tobytes() == _weights(b).tobytes()


def test_every_float16_value_casts_exactly():
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    values = bits.view(np.float16).reshape(-1, 1)
    model = nc.Sequential([nc.Dense(1, 1)], dtype="float32")
    model.layers[0].weight[...] = 1
    model.layers[0].bias[...] = 0
    got = model.predict(values, batch_size=4096)[:, 0]
    want = values[:, 0].astype(np.float32)
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[finite], want[finite])   # subnormals included
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.array_equal(got[np.isinf(want)], want[np.isinf(want)])


@property_settings(60)
@given(stored=st.sampled_from(sorted(STORED)), model_dtype=st.sampled_from(["float32", "float64"]),
       rows=st.integers(1, 40), cols=st.integers(1, 20), chunk=st.integers(1, 50),
       mode=st.sampled_from(["plain", "scale", "standardise"]), seed=st.integers(0, 2**16))
def test_predict_casts_and_standardises_every_row_as_numpy_does(stored, model_dtype, rows, cols, chunk, mode, seed):
    rng = np.random.default_rng(seed)
    raw = np.ascontiguousarray(rng.choice(STORED[stored].ravel(), size=(rows, cols)))
    t = np.dtype(model_dtype).type
    model = nc.Sequential([nc.Dense(cols, 3)], dtype=model_dtype, seed=seed)
    cast = raw.astype(model_dtype)
    scale = None
    if mode == "scale":
        scale = float(rng.uniform(0.01, 2))
        cast = cast * t(scale)
    elif mode == "standardise":
        mean, std = rng.standard_normal(cols), rng.uniform(0.5, 3, cols)
        scale = (mean, std)
        cast = (cast - mean.astype(model_dtype)) / std.astype(model_dtype)
    np.testing.assert_array_equal(model.predict(raw, batch_size=chunk, scale=scale), model.predict(cast, batch_size=chunk))


def test_nan_in_a_float_memmap_is_refused_with_its_position(tmp_path):
    raw = STORED["float16"].copy()
    raw[57, 3] = np.nan
    with pytest.raises(ValueError, match=r"X must be finite; found nan at row 57, column 3"):
        _fit(_memmap(tmp_path, raw), "float32")


@pytest.mark.parametrize("scale, error, match", [
    ("a", TypeError, "scale must be a real number"),
    (0, ValueError, "scale must be non-zero"),
    (float("nan"), ValueError, "scale must be finite"),
    ((1.0,), ValueError, r"a number or a pair \(mean, std\)"),
    ((np.zeros(3), np.ones(20)), ValueError, r"scale mean must be a number or broadcast to the input shape \(20,\)"),
    ((np.zeros(20), np.zeros(20)), ValueError, "scale std must be > 0"),
    ((np.zeros(20), np.full(20, np.inf)), ValueError, "scale std must be finite"),
    (("x", 1.0), TypeError, "scale mean must hold real numbers"),
])
def test_bad_scale_is_refused_before_training(scale, error, match):
    model = _net("float32")
    before = _weights(model).copy()
    with pytest.raises(error, match=match):
        model.fit(STORED["uint8"], np.arange(101) % 3, verbose=0, scale=scale)
    with pytest.raises(error, match=match):
        model.predict(STORED["uint8"], scale=scale)
    assert _weights(model).tobytes() == before.tobytes()


def test_training_on_a_2_gib_memmap_keeps_anonymous_memory_flat(tmp_path):
    if not os.path.exists("/proc/self/status"):
        pytest.skip("RssAnon is read from /proc (Linux)")
    if under_sanitizer():
        pytest.skip("AddressSanitizer's shadow memory is anonymous memory of its own")
    probe = subprocess.run([sys.executable, os.path.join(HERE, "memmap_rss_probe.py"), str(tmp_path / "big.u8")],
                           capture_output=True, text=True, timeout=600)
    assert probe.returncode == 0, probe.stderr
    result = json.loads(probe.stdout)
    assert result["bytes"] >= 2 << 30
    assert result["finite_predictions"] and np.isfinite(result["loss"])
    grown_mb = (result["peak_kb"] - result["base_kb"]) / 1024
    assert grown_mb < 200, f"RssAnon grew by {grown_mb:.0f} MB while training on a 2 GiB memmap"
    assert not (tmp_path / "big.u8").exists()
