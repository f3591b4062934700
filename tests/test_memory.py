"""Memory: no leak over thousands of construct/train/save/load/destroy cycles; zero-copy views keep their
model's memory alive; huge requests fail cleanly (MemoryError/ValueError) without touching memory, and
integer overflow in sizes is caught."""

from __future__ import annotations

import gc
import os
import resource
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest
from reliability import rss_bytes, under_sanitizer

import neurocore as nc

CYCLES = 2000
WARMUP = 300
RSS_BOUND = 4 << 20   # bytes of growth allowed over CYCLES cycles (~2 KiB per cycle)


def _scratch_dir(tmp_path):
    """A tmpfs folder when there is one (save fsyncs: on a disk that would dominate the cycle time)."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        return tempfile.mkdtemp(prefix="neurocore-memtest-", dir=shm)
    return str(tmp_path)


def _cycle(i, x, y, folder):
    dtype = "float32" if i % 2 else "float64"
    model = nc.Sequential([nc.Dense(32, 64), nc.ReLU(), nc.Dense(64, 10)], dtype=dtype, seed=i % 7)
    model.fit(x, y, optimizer=nc.SGD(lr=0.05, momentum=0.9), epochs=1, batch_size=32, seed=i, verbose=0)
    out = model.forward(x[:16])
    model.backward(np.ones_like(out))
    path = os.path.join(folder, f"m{i % 3}.npz")
    model.save(path, include_optimizer=True)
    again = nc.load(path)
    pred = again.predict(x, batch_size=50)
    again.evaluate(x, y)
    views = again.parameters() + again.gradients()
    assert pred.shape == (len(x), 10) and len(views) == 8
    del model, again, views, pred, out


@pytest.mark.skipif(rss_bytes() is None, reason="needs /proc/self/statm")
@pytest.mark.skipif(under_sanitizer(), reason="ASan's quarantine keeps freed memory resident by design")
def test_rss_stays_flat_over_thousands_of_cycles(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 32)).astype(np.float32)
    y = rng.integers(0, 10, 128)
    folder = _scratch_dir(tmp_path)
    try:
        for i in range(WARMUP):  # allocator arenas, OpenMP pools, NumPy caches settle
            _cycle(i, x, y, folder)
        gc.collect()
        start = rss_bytes()
        for i in range(CYCLES):
            _cycle(i, x, y, folder)
        gc.collect()
        growth = rss_bytes() - start
    finally:
        if folder != str(tmp_path):
            for name in os.listdir(folder):
                os.unlink(os.path.join(folder, name))
            os.rmdir(folder)
    if os.environ.get("NEUROCORE_REPORT_COUNTS"):
        print(f"\nRSS growth over {CYCLES} cycles (after {WARMUP} warm-up): {growth / 1024:.0f} KiB")
    assert growth < RSS_BOUND, (f"RSS grew by {growth / 2**20:.1f} MiB over {CYCLES} construct/fit/save/load/"
                                f"destroy cycles (bound {RSS_BOUND / 2**20:.0f} MiB): a leak")


def _churn(shape, value, dtype):
    """Allocate and free models of the same size (reusing freed memory if the views' memory was freed)."""
    for _ in range(20):
        m = nc.Sequential([nc.Dense(*shape), nc.Tanh(), nc.Dense(shape[1], 3)], dtype=dtype, seed=0)
        for p in m.parameters():
            p[...] = value
        m.predict(np.full((64, shape[0]), value, dtype=dtype))
        del m


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_views_keep_their_model_memory_alive(dtype):
    model = nc.Sequential([nc.Dense(40, 30), nc.Tanh(), nc.Dense(30, 3)], dtype=dtype, seed=3)
    x = np.random.default_rng(1).standard_normal((8, 40)).astype(dtype)
    out = model.forward(x)
    model.backward(np.ones_like(out))
    layer = model.layers[0]
    w, b, gw, gb = layer.weight, layer.bias, layer.grad_weight, layer.grad_bias
    params, grads = model.parameters(), model.gradients()
    expected = [a.copy() for a in (w, b, gw, gb)] + [p.copy() for p in params] + [g.copy() for g in grads]
    del model
    gc.collect()
    _churn((40, 30), 123.0, dtype)
    now = [w, b, gw, gb] + params + grads
    for i, (a, e) in enumerate(zip(now, expected)):
        assert np.array_equal(a, e), f"view {i} changed after its model was deleted (memory reused)"
    w[...] = 5.0  # writing through a view of a deleted model is still safe
    params[-1][...] = -1.0
    _churn((40, 30), 7.0, dtype)
    assert np.all(w == 5.0) and np.all(params[-1] == -1.0)
    assert np.array_equal(layer.weight, w)  # the layer object still reaches the same memory


def test_outputs_are_independent_arrays():
    """forward/backward/predict return new arrays: a later call never rewrites an earlier result."""
    model = nc.Sequential([nc.Dense(6, 9), nc.ReLU(), nc.Dense(9, 4)], seed=0)
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((5, 6)), rng.standard_normal((300, 6))
    out1 = model.forward(x1)
    keep_out1 = out1.copy()
    gx1 = model.backward(np.ones_like(out1))
    keep_gx1 = gx1.copy()
    model.forward(x2)
    model.backward(np.full((300, 4), 3.0))
    p = model.predict(x2, batch_size=7)
    keep_p = p.copy()
    model.predict(x1)
    model.fit(x2, rng.integers(0, 4, 300), epochs=1, verbose=0)
    assert np.array_equal(out1, keep_out1)
    assert np.array_equal(gx1, keep_gx1)
    assert np.array_equal(p, keep_p)
    for a in (out1, gx1, p):
        assert not any(np.shares_memory(a, q) for q in model.parameters() + model.gradients())


# --------------------------------------------------------------------------- huge requests
def _peak_rss():
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sizes", [(10**6, 10**6), (3, 10**12), (10**12, 3), (10**7, 10**7)],
                         ids=["1e6x1e6", "3x1e12", "1e12x3", "1e7x1e7"])
def test_huge_layer_fails_before_allocating(sizes, dtype):
    peak = _peak_rss()
    with pytest.raises((MemoryError, ValueError)) as info:
        nc.Sequential([nc.Dense(*sizes)], dtype=dtype)
    assert str(info.value)
    grew = _peak_rss() - peak
    assert grew < 64 << 20, f"Dense{sizes} touched {grew / 2**20:.0f} MiB before failing"
    # and the library still works
    assert nc.Sequential([nc.Dense(3, 2)], dtype=dtype, seed=0).predict(np.ones((1, 3))).shape == (1, 2)


@pytest.mark.parametrize("layers", [
    lambda: [nc.Dense(2**40, 2**40)],
    lambda: [nc.Dense(2**62, 2)],
    lambda: [nc.Dense(2, 2**62)],
    lambda: [nc.Dense(7, (2**63 - 1) // 7)],          # in * out == INT64_MAX exactly: padding must not wrap
    lambda: [nc.Dense(1, 2**63 - 1)],
    lambda: [nc.Dense(2**31, 2**31 + 1)],
    lambda: [nc.Dense(2**63 - 1, 1), nc.ReLU()],
    lambda: [nc.Dense(4, 2**61), nc.ReLU(), nc.Dense(2**61, 4)],
    lambda: [nc.Dense(2**63, 1)],                      # past int64: must not reach C++ as garbage
    lambda: [nc.Dense(1, 2**64 + 3)],
], ids=["2^40x2^40", "2^62x2", "2x2^62", "7xINT64_MAX/7", "1xINT64_MAX", "2^31x2^31+1", "INT64_MAXx1",
        "sum-of-layers", "2^63x1", "1x2^64+3"])
def test_size_overflow_is_checked(layers):
    peak = _peak_rss()
    with pytest.raises((ValueError, OverflowError, MemoryError)) as info:
        nc.Sequential(layers(), dtype="float32")
    assert str(info.value)
    assert _peak_rss() - peak < 64 << 20


LIMITED_CHILD = textwrap.dedent(
    """
    import resource, sys
    limit = 3 << 30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import numpy as np
    import neurocore as nc

    def expect_memory_error(what, fn):
        try:
            fn()
        except (MemoryError, ValueError) as exc:
            print(f"{what}: {type(exc).__name__}", flush=True)
        else:
            print(f"{what}: no error", flush=True)

    expect_memory_error("layer", lambda: nc.Sequential([nc.Dense(30000, 30000)]))
    # a small model whose activations for a big batch do not fit: 100000 x 20000 floats per layer
    model = nc.Sequential([nc.Dense(2, 20000), nc.ReLU(), nc.Dense(20000, 2)], seed=0)
    x = np.ones((100000, 2), np.float32)
    before = [p.copy() for p in model.parameters()]
    # predict sizes its buffers for ~256 MiB whatever batch_size asks, so it answers instead of failing
    y = model.predict(x, batch_size=100000)
    print("predict:", "ok" if y.shape == (100000, 2) and np.isfinite(y).all() else "wrong", flush=True)
    expect_memory_error("forward", lambda: model.forward(x))
    expect_memory_error("fit", lambda: model.fit(x, np.zeros(100000, int), batch_size=100000, epochs=1, verbose=0))
    unchanged = all(np.array_equal(a, b) for a, b in zip(before, model.parameters()))
    # still usable afterwards
    small = np.ones((3, 2), np.float32)
    out = model.predict(small)
    model.forward(small)
    model.backward(np.ones((3, 2), np.float32))
    model.fit(small, np.array([0, 1, 0]), epochs=1, verbose=0)
    print(f"usable finite={bool(np.isfinite(out).all())} unchanged={unchanged}", flush=True)
    """
)


@pytest.mark.skipif(under_sanitizer(), reason="ASan reserves terabytes of shadow memory: no RLIMIT_AS under it")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS semantics")
def test_allocation_failure_under_an_address_space_limit_is_clean():
    """With a 3 GiB address-space limit: a 3.6 GB layer and 8 GB of activations fail with MemoryError, not a
    crash, and the model stays unchanged and usable; predict, which chunks its batch, still answers."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", LIMITED_CHILD], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert proc.returncode == 0, f"child died ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}"
    lines = proc.stdout.strip().splitlines()
    assert lines[:4] == ["layer: MemoryError", "predict: ok", "forward: MemoryError",
                         "fit: MemoryError"], proc.stdout
    assert lines[4] == "usable finite=True unchanged=True", proc.stdout
