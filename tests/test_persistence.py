"""save/load: bit-exact round trips, optimizer state, atomic writes, corrupt files."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

import neurocore as nc


def build(dtype="float32", seed=0):
    return nc.Sequential(
        [nc.Dense(6, 9), nc.LeakyReLU(alpha=0.3), nc.Dense(9, 5, bias=False), nc.Sigmoid(), nc.Dense(5, 4),
         nc.Tanh(), nc.Dense(4, 3), nc.Softmax()],
        dtype=dtype, seed=seed,
    )


def describe(model):
    out = []
    for layer in model.layers:
        name = type(layer).__name__
        if name == "Dense":
            out.append((name, layer.in_features, layer.out_features, layer.bias is not None))
        elif name == "LeakyReLU":
            out.append((name, float(layer.alpha)))
        else:
            out.append((name,))
    return out


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("as_str", [True, False])
def test_round_trip_is_bit_exact(tmp_path, dtype, as_str):
    model = build(dtype)
    rng = np.random.default_rng(0)
    for p in model.parameters():
        p[...] = rng.standard_normal(p.shape)
    path = tmp_path / "model.npz"
    model.save(str(path) if as_str else path)
    loaded = nc.load(str(path) if as_str else path)
    assert isinstance(loaded, nc.Sequential)
    assert loaded.dtype == model.dtype
    assert describe(loaded) == describe(model)
    assert len(loaded.parameters()) == len(model.parameters())
    for a, b in zip(loaded.parameters(), model.parameters()):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    x = rng.standard_normal((7, 6)).astype(dtype)
    assert np.array_equal(loaded.forward(x), model.forward(x))
    # the loaded model is independent of the saved one, and its weights are live views too
    loaded.layers[0].weight[...] = 0
    assert not np.all(model.layers[0].weight == 0)
    assert np.all(loaded.parameters()[0] == 0)


def test_save_overwrites_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "m.npz"
    build(seed=0).save(path)
    second = build(seed=1)
    second.save(path)
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]
    loaded = nc.load(path)
    for a, b in zip(loaded.parameters(), second.parameters()):
        assert np.array_equal(a, b)


def test_failed_save_keeps_old_file_and_leaves_nothing_behind(tmp_path, monkeypatch):
    """save writes a temporary file and renames it over the target: a failure at the rename must leave the
    previous file intact and remove the temporary one."""
    path = tmp_path / "m.npz"
    first = build(seed=0)
    first.save(path)
    original = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("simulated failure while replacing the file")

    monkeypatch.setattr(os, "replace", boom)
    monkeypatch.setattr(os, "rename", boom)
    with pytest.raises(OSError):
        build(seed=1).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_save_into_missing_directory_fails_cleanly(tmp_path):
    target = tmp_path / "no_such_dir" / "m.npz"
    with pytest.raises(OSError):
        build().save(target)
    assert os.listdir(tmp_path) == []


def test_save_does_not_use_pickle(tmp_path):
    path = tmp_path / "m.npz"
    build().save(path)
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            arr = data[key]
            assert arr.dtype != object, key


def test_include_optimizer_round_trip_resumes_identically(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 6))
    y = rng.integers(0, 3, size=40)
    model = build("float64")
    opt = nc.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
    model.fit(x, y, loss="cross_entropy", optimizer=opt, epochs=2, batch_size=16, shuffle=False, verbose=0)
    path = tmp_path / "with_opt.npz"
    model.save(path, include_optimizer=True)
    loaded = nc.load(path)
    model.fit(x, y, loss="cross_entropy", optimizer=opt, epochs=2, batch_size=16, shuffle=False, verbose=0)
    assert isinstance(loaded.optimizer, nc.SGD), "loading an include_optimizer file must restore model.optimizer"
    # fit without an optimizer argument continues with the restored one
    loaded.fit(x, y, loss="cross_entropy", epochs=2, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(loaded.parameters(), model.parameters()):
        assert np.array_equal(a, b), "resumed training differs from uninterrupted training"
    # the momentum buffers matter: a fresh optimizer with the same settings ends elsewhere
    fresh = nc.load(path)
    fresh.fit(x, y, loss="cross_entropy", optimizer=nc.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
              epochs=2, batch_size=16, shuffle=False, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(fresh.parameters(), model.parameters()))


def test_without_optimizer_nothing_is_restored(tmp_path):
    model = build("float64")
    model.fit(np.ones((4, 6)), np.array([0, 1, 2, 0]), loss="cross_entropy", optimizer=nc.SGD(lr=0.1, momentum=0.9),
              epochs=1, verbose=0)
    path = tmp_path / "m.npz"
    model.save(path)
    assert nc.load(path).optimizer is None


def test_to_bytes_is_the_saved_file(tmp_path):
    model = build("float64")
    path = tmp_path / "m.npz"
    model.save(path)
    raw = nc.io.to_bytes(model)
    for source in (nc.io.from_bytes(raw), nc.io.from_bytes(path.read_bytes())):
        assert describe(source) == describe(model)
        for a, b in zip(source.parameters(), model.parameters()):
            assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="model bytes: not a valid neurocore model file"):
        nc.io.from_bytes(raw[: len(raw) // 2])


@pytest.mark.parametrize("copier", ["pickle", "deepcopy"])
def test_pickle_goes_through_npz_and_resumes_identically(copier):
    """A pickled model is rebuilt from npz bytes (no C++ object, no code of ours in the stream besides the
    loader): the copy is independent and, with its optimizer state, trains on exactly as the original."""
    import copy
    import pickle
    import pickletools

    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 6))
    y = rng.integers(0, 3, size=40)
    model = build("float32")
    model.fit(x, y, loss="cross_entropy", optimizer=nc.Adam(lr=0.01, weight_decay=0.1, decay_bias=False), epochs=2,
              batch_size=16, shuffle=False, verbose=0)
    if copier == "pickle":
        blob = pickle.dumps(model)
        ops = [(op.name, arg) for op, arg, _ in pickletools.genops(blob)]
        imports = [op for op, _ in ops if op in ("GLOBAL", "STACK_GLOBAL", "INST", "OBJ")]
        names = [arg for op, arg in ops if op in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE")]
        assert imports == ["STACK_GLOBAL"] and names == ["neurocore.io", "from_bytes"], ops
        twin = pickle.loads(blob)
    else:
        twin = copy.deepcopy(model)
    assert twin is not model and isinstance(twin.optimizer, nc.Adam) and twin.optimizer.decay_bias is False
    assert twin.optimizer.steps == model.optimizer.steps
    for a, b in zip(twin.parameters(), model.parameters()):
        assert np.array_equal(a, b)
        assert not np.shares_memory(a, b)
    for m in (model, twin):
        m.fit(x, y, loss="cross_entropy", epochs=2, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(twin.parameters(), model.parameters()):
        assert np.array_equal(a, b), "the copy trained differently from the original"


# --------------------------------------------------------------------------- #
# corrupt and foreign files
# --------------------------------------------------------------------------- #
def _valid_bytes(tmp_path):
    p = tmp_path / "valid.npz"
    build().save(p)
    return p.read_bytes()


def _expect_load_error(path):
    with pytest.raises((OSError, ValueError)) as info:
        nc.load(path)
    assert path.name in str(info.value), f"error does not name the file: {info.value!r}"
    return info.value


def test_load_missing_file(tmp_path):
    err = _expect_load_error(tmp_path / "missing.npz")
    assert isinstance(err, OSError)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_load_truncated_file(tmp_path, fraction):
    data = _valid_bytes(tmp_path)
    path = tmp_path / "truncated.npz"
    path.write_bytes(data[: int(len(data) * fraction)])
    _expect_load_error(path)


def test_load_random_bytes(tmp_path):
    path = tmp_path / "random.npz"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    _expect_load_error(path)


def test_load_text_file(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("this is not a model\n")
    _expect_load_error(path)


def test_load_foreign_npz(tmp_path):
    path = tmp_path / "foreign.npz"
    np.savez(path, a=np.arange(3), b=np.ones((2, 2)))
    _expect_load_error(path)


def test_load_plain_npy(tmp_path):
    path = tmp_path / "array.npy"
    np.save(path, np.arange(10))
    _expect_load_error(path)


def test_load_directory(tmp_path):
    d = tmp_path / "adir.npz"
    d.mkdir()
    _expect_load_error(d)


def _rewrite(tmp_path, name, mutate):
    src = tmp_path / "src.npz"
    build().save(src)
    with np.load(src, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    mutate(arrays)
    dst = tmp_path / name
    with zipfile.ZipFile(dst, "w") as zf:
        for key, arr in arrays.items():
            with zf.open(key + ".npy", "w") as fh:
                np.lib.format.write_array(fh, arr, allow_pickle=True)
    return dst


def test_load_rejects_pickled_object_arrays(tmp_path):
    def mutate(arrays):
        key = next(iter(arrays))
        arrays[key] = np.array([{"x": 1}, None], dtype=object)

    _expect_load_error(_rewrite(tmp_path, "pickled.npz", mutate))


def test_load_rejects_missing_member(tmp_path):
    def mutate(arrays):
        biggest = max(arrays, key=lambda k: arrays[k].size)
        del arrays[biggest]

    _expect_load_error(_rewrite(tmp_path, "missing_member.npz", mutate))


def test_load_rejects_wrong_parameter_size(tmp_path):
    def mutate(arrays):
        biggest = max(arrays, key=lambda k: arrays[k].size)
        arrays[biggest] = arrays[biggest].reshape(-1)[:-1].copy()

    _expect_load_error(_rewrite(tmp_path, "short_params.npz", mutate))


@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                    reason="AddressSanitizer cannot start under an address-space limit")
def test_load_checks_the_file_before_allocating(tmp_path):
    """A tiny corrupt file whose header claims a 30000 x 30000 layer (parameters stored: a 3 x 2 matrix) must
    be rejected as invalid, not make load allocate gigabytes first: run under a 2 GB address-space limit."""
    import json
    import subprocess
    import sys

    src = tmp_path / "src.npz"
    nc.Sequential([nc.Dense(3, 2)], seed=0).save(src)
    with np.load(src, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    header_key = next(k for k in arrays if arrays[k].dtype == np.uint8)
    header = json.loads(bytes(arrays[header_key]).decode("utf-8"))
    header["layers"][0].update(in_features=30000, out_features=30000)
    arrays[header_key] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    bad = tmp_path / "claims_huge_layer.npz"
    np.savez(bad, **arrays)
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
        "import neurocore as nc\n"
        "try:\n"
        "    nc.load(sys.argv[1])\n"
        "except (OSError, ValueError) as e:\n"
        "    print('ok' if 'claims_huge_layer' in str(e) else 'unnamed: ' + str(e))\n"
        "except BaseException as e:\n"
        "    print('wrong error: ' + type(e).__name__ + ': ' + str(e))\n"
        "else:\n"
        "    print('loaded')\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code, str(bad)], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "ok", out.stdout + out.stderr
