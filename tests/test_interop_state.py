"""state_dict / load_state_dict: stable names, exact copies, refusals that leave the model unchanged; and the
optional integrations stay optional (``import neurocore`` imports neither onnx nor torch)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from interop_zoo import INPUT_SHAPES, ZOO, inputs, layer_stacks, randomize, zoo_model
from reliability import property_settings

import neurocore as nc
from conftest import assert_unchanged, snapshot


def test_names_are_attribute_paths():
    model = zoo_model("residual_nested", "float32")
    state = model.state_dict()
    assert list(state) == [
        "layers.0.weight", "layers.0.bias",
        "layers.1.layers.0.weight", "layers.1.layers.0.bias",
        "layers.1.layers.2.layers.0.weight", "layers.1.layers.2.layers.0.bias",
        "layers.1.layers.2.layers.0.running_mean", "layers.1.layers.2.layers.0.running_var",
        "layers.1.layers.2.layers.1.weight",
        "layers.3.weight", "layers.3.bias",
    ]
    inner_bn = model.layers[1].layers[2].layers[0]
    assert np.array_equal(state["layers.1.layers.2.layers.0.running_var"], inner_bn.running_var)
    assert np.array_equal(state["layers.3.weight"], model.layers[3].weight)
    assert state["layers.0.weight"].shape == (4, 8) and state["layers.0.weight"].dtype == np.float32


def test_values_are_copies():
    model = zoo_model("mlp", "float64")
    state = model.state_dict()
    state["layers.0.weight"][...] = 7.0
    assert not np.any(model.layers[0].weight == 7.0)


@pytest.mark.parametrize("name", list(ZOO))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_is_bitwise(name, dtype):
    source = zoo_model(name, dtype, seed=3)
    target = nc.Sequential(ZOO[name](), dtype=dtype, seed=99, input_shape=INPUT_SHAPES.get(name))
    target.load_state_dict(source.state_dict())
    for key, value in source.state_dict().items():
        assert np.array_equal(value, target.state_dict()[key]), key
    x = inputs(source, 5)
    assert np.array_equal(source.predict(x), target.predict(x))


def test_values_are_cast_to_the_model_dtype():
    model = nc.Sequential([nc.Dense(2, 3), nc.BatchNorm(3)], dtype="float32")
    state = {k: np.full(v.shape, 2, dtype=np.int64) for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    assert np.array_equal(model.layers[0].weight, np.full((2, 3), 2.0, np.float32))
    assert model.state_dict()["layers.1.running_var"].dtype == np.float32


def test_safetensors_round_trip(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    model = zoo_model("batchnorm_dropout", "float64", seed=5)
    safetensors_numpy.save_file(model.state_dict(), tmp_path / "weights.safetensors")
    again = nc.Sequential(ZOO["batchnorm_dropout"](), dtype="float64")
    again.load_state_dict(safetensors_numpy.load_file(tmp_path / "weights.safetensors"))
    for key, value in model.state_dict().items():
        assert np.array_equal(value, again.state_dict()[key]), key


def _bad_states(model):
    good = model.state_dict()
    first = next(iter(good))
    yield "a list", list(good.values()), TypeError, "mapping"
    yield "None", None, TypeError, "mapping"
    yield "a missing name", {k: v for k, v in good.items() if k != "layers.1.running_var"}, ValueError, \
        "missing 'layers.1.running_var'"
    yield "an unexpected name", {**good, "layers.9.weight": np.ones(3)}, ValueError, "unexpected 'layers.9.weight'"
    yield "a non-string name", {**good, 3: np.ones(3)}, TypeError, "strings"
    yield "a wrong shape", {**good, first: good[first].T}, ValueError, "must have shape (10, 12)"
    yield "NaN", {**good, first: np.full_like(good[first], np.nan)}, ValueError, "finite"
    yield "beyond float32", {**good, first: np.full(good[first].shape, 1e300)}, ValueError, "finite in float32"
    yield "strings", {**good, first: np.full(good[first].shape, "a")}, TypeError, "real numbers"
    yield "a negative variance", {**good, "layers.1.running_var": -np.ones(12)}, ValueError, ">= 0"
    yield "a ragged list", {**good, "layers.0.bias": [[1.0], [1.0, 2.0]]}, TypeError, "array-like"


@pytest.mark.parametrize("case", [c[0] for c in _bad_states(zoo_model("batchnorm_dropout", "float32"))])
def test_bad_state_is_refused_and_nothing_changes(case):
    model = zoo_model("batchnorm_dropout", "float32")
    bad = next(c for c in _bad_states(model) if c[0] == case)
    before, stats = snapshot(model), model.state_dict()
    with pytest.raises(bad[2], match=bad[3].replace("(", r"\(").replace(")", r"\)")):
        model.load_state_dict(bad[1])
    assert_unchanged(model, before)
    for key, value in stats.items():
        assert np.array_equal(value, model.state_dict()[key])


@property_settings(40)
@given(stack=layer_stacks(), seed=st.integers(0, 2**32 - 1))
def test_any_stack_round_trips_through_its_state_dict(stack, seed):
    layers, _ = stack
    model = nc.Sequential(layers, dtype="float64", seed=0)
    randomize(model, seed)
    rebuilt = nc.Sequential([layer._clone() for layer in layers], dtype="float64", seed=1)
    rebuilt.load_state_dict(model.state_dict())
    assert list(rebuilt.state_dict()) == list(model.state_dict())
    for key, value in model.state_dict().items():
        assert np.array_equal(value, rebuilt.state_dict()[key]), key
    x = inputs(model, 3, seed)
    assert np.array_equal(model.predict(x), rebuilt.predict(x))


def test_import_neurocore_imports_neither_onnx_nor_torch():
    code = ("import sys, neurocore as nc; nc.Sequential([nc.Dense(2, 2)]).state_dict(); "
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'torch', 'safetensors') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("missing, call", [
    ("onnx", lambda m, p: m.to_onnx(p)),
    ("torch", lambda m, p: m.to_torch()),
    ("torch", lambda m, p: nc.from_torch(object())),
])
def test_a_missing_extra_names_the_pip_command(missing, call, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, missing, None)   # `import missing` raises ImportError
    model = nc.Sequential([nc.Dense(2, 2)])
    with pytest.raises(ImportError, match=rf'pip install "neurocore\[{missing}\]"'):
        call(model, tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())
