"""Sequential.to_onnx, checked by onnxruntime: every layer kind, both dtypes, batch 1 and 257."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from interop_zoo import BATCHES, ZOO, assert_matches, inputs, layer_kinds, layer_stacks, randomize, zoo_model
from reliability import property_settings

import neurocore as nc
from conftest import assert_unchanged, snapshot

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from neurocore.interop import onnx_export  # noqa: E402  (needs onnx)


def run_onnx(path, x):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": x})[0]


def test_the_zoo_covers_every_layer_kind():
    kinds = set().union(*(layer_kinds(build()) for build in ZOO.values()))
    assert kinds == {cls.__name__ for cls in onnx_export._EXPORTERS}
    assert kinds == {name for name in nc.__all__ if isinstance(getattr(nc, name), type)
                     and issubclass(getattr(nc, name), nc.layers.Layer)}


@pytest.mark.parametrize("name", list(ZOO))
def test_onnxruntime_equals_predict(name, dtype, tmp_path):
    model = zoo_model(name, dtype)
    path = tmp_path / "model.onnx"
    model.to_onnx(path)
    for batch in BATCHES:
        x = inputs(model, batch)
        out = run_onnx(path, x)
        assert out.dtype == model.dtype
        assert_matches(out, model.predict(x), dtype, f"{name} batch {batch}")


def test_the_file_is_checked_and_self_describing(tmp_path):
    model = zoo_model("residual_nested", "float64")
    model.to_onnx(tmp_path / "m.onnx", opset=13)
    proto = onnx.load(tmp_path / "m.onnx")
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == 13
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert (inp.name, out.name) == ("input", "output")
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 4]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["batch", 2]
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    for key, value in model.state_dict().items():
        if not key.endswith("running_var"):   # BatchNorm stores 1/sqrt(var + eps) instead, as the core uses it
            assert inits[key].dtype == np.float64 and np.array_equal(inits[key], value), key
    assert all(v.dtype == np.float64 for v in inits.values())
    assert not any(n.op_type == "Dropout" for n in proto.graph.node)


def test_float64_uses_only_operators_with_float64_kernels(tmp_path):
    model = zoo_model("every_activation", "float64")
    model.to_onnx(tmp_path / "m.onnx")
    ops = {n.op_type for n in onnx.load(tmp_path / "m.onnx").graph.node}
    assert not ops & {"Erf", "Elu", "LeakyRelu", "Gelu"}
    float32 = zoo_model("every_activation", "float32")
    float32.to_onnx(tmp_path / "f.onnx")
    assert {"Erf", "Elu", "LeakyRelu"} <= {n.op_type for n in onnx.load(tmp_path / "f.onnx").graph.node}


@pytest.mark.parametrize("activation", [nc.GELU(), nc.ELU(0.3), nc.LeakyReLU(0.01), nc.Sigmoid(), nc.Tanh()])
def test_float64_activations_are_exact_over_their_whole_range(activation, tmp_path):
    """x from -40 to 40 (every branch, the erf fit's end at |x| = 6 sqrt 2, the tails) through identity weights."""
    model = nc.Sequential([nc.Dense(1, 1, bias=False), activation], dtype="float64")
    model.layers[0].weight[...] = 1.0
    model.to_onnx(tmp_path / "m.onnx")
    x = np.concatenate([np.linspace(-40, 40, 20001), [0.0, -0.0, 6 * math.sqrt(2), 1e-300, -1e-300]])[:, None]
    got, want = run_onnx(tmp_path / "m.onnx", x), model.predict(x)
    # elementwise relative to max(|value|, 1): a relative bound, except at the zero crossing and the tails
    assert np.max(np.abs(got - want) / np.maximum(np.abs(want), 1.0)) <= 1e-13


def test_erf_fit_matches_math_erf():
    coef = onnx_export.erfc_scaled_chebyshev()
    t = np.linspace(0, onnx_export.ERFC_FIT_END, 7777)
    fit = np.exp(-t * t) * np.polynomial.chebyshev.chebval(t * (2 / onnx_export.ERFC_FIT_END) - 1, coef)
    assert np.max(np.abs(fit - [math.erfc(v) for v in t])) < 1e-14


@pytest.mark.parametrize("opset", [13, 17, 18])
def test_opsets(opset, tmp_path):
    model = zoo_model("every_activation", "float32")
    model.to_onnx(tmp_path / "m.onnx", opset=opset)
    x = inputs(model, 9)
    assert_matches(run_onnx(tmp_path / "m.onnx", x), model.predict(x), "float32")


@property_settings(25)
@given(stack=layer_stacks(), dtype=st.sampled_from(["float32", "float64"]), seed=st.integers(0, 2**32 - 1))
def test_any_stack_exports_exactly(stack, dtype, seed, tmp_path_factory):
    model = nc.Sequential(stack[0], dtype=dtype, seed=0)
    randomize(model, seed)
    path = tmp_path_factory.mktemp("onnx") / "m.onnx"
    model.to_onnx(path)
    x = inputs(model, 7, seed)
    assert_matches(run_onnx(path, x), model.predict(x), dtype)


# ------------------------------------------------------------------------------------------ refusals
def test_an_unwritable_path_is_an_os_error_and_nothing_is_written(tmp_path):
    model = zoo_model("mlp", "float32")
    with pytest.raises(FileNotFoundError, match="to_onnx cannot write"):
        model.to_onnx(tmp_path / "no such folder" / "m.onnx")
    with pytest.raises(IsADirectoryError, match="to_onnx cannot write"):
        model.to_onnx(tmp_path)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(FileExistsError, match="not a regular file; not replaced"):   # never replaces a device
        model.to_onnx(fifo)
    assert fifo.is_fifo()
    fifo.unlink()
    if os.geteuid() != 0:   # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(PermissionError, match="to_onnx cannot write"):
            model.to_onnx(locked / "m.onnx")
        assert not list(locked.iterdir())
    assert [p.name for p in tmp_path.iterdir()] == (["locked"] if os.geteuid() != 0 else [])


def test_an_existing_file_is_kept_when_export_fails(tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous")
    model = zoo_model("every_activation", "float32")
    monkeypatch.delitem(onnx_export._EXPORTERS, nc.GELU)   # as a layer kind without an exporter
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"layer layers\.8 GELU\(\) \(GELU\) has no ONNX exporter"):
        model.to_onnx(path)
    assert path.read_bytes() == b"previous" and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    assert_unchanged(model, before)


@pytest.mark.parametrize("path, opset, error, match", [
    (3, 17, TypeError, "path must be a str"),
    (b"m.onnx", 17, TypeError, "path must be a str"),
    (None, 17, TypeError, "path must be a str"),
    ("m.onnx", 12, ValueError, r"opset must be in \[13, "),
    ("m.onnx", 10**6, ValueError, "opset must be in"),
    ("m.onnx", 17.0, TypeError, "opset must be an integer"),
    ("m.onnx", "17", TypeError, "opset must be an integer"),
    ("m.onnx", True, TypeError, "opset must be an integer"),
])
def test_bad_arguments(path, opset, error, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = zoo_model("mlp", "float32")
    with pytest.raises(error, match=match):
        model.to_onnx(path, opset=opset)
    assert not list(tmp_path.iterdir())
