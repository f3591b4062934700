"""Results do not depend on the thread count: forward, backward, gemm and fit are bitwise equal with
1, 2, 3 and 5 threads (more than the cores), on every kernel table."""

from __future__ import annotations

import numpy as np
import pytest

import neurocore as nc

THREAD_COUNTS = [1, 2, 3, 5]


def big_model(dtype):
    return nc.Sequential([nc.Dense(200, 300), nc.ReLU(), nc.Dense(300, 170), nc.Tanh(), nc.Dense(170, 10),
                          nc.Softmax()], dtype=dtype.name, seed=0)


def per_thread_count(fn):
    results = []
    for n in THREAD_COUNTS:
        nc.set_num_threads(n)
        assert nc.get_num_threads() == n
        results.append(fn())
    return results


def assert_all_equal(results, what):
    first = results[0]
    for n, other in zip(THREAD_COUNTS[1:], results[1:]):
        assert len(first) == len(other)
        for i, (a, b) in enumerate(zip(first, other)):
            assert np.array_equal(a, b), f"{what}[{i}] differs between 1 and {n} threads"


def test_set_get_num_threads(restore_threads):
    for n in (1, 2, 3):
        nc.set_num_threads(n)
        assert nc.get_num_threads() == n
        assert nc.cpu_info()["num_threads"] == n


def test_forward_backward_bitwise_across_threads(isa, dtype, restore_threads):
    model = big_model(dtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((301, 200)).astype(dtype)
    gout = rng.standard_normal((301, 10)).astype(dtype)

    def run():
        out = model.forward(x)
        gx = model.backward(gout)
        return [out, gx] + [g.copy() for g in model.gradients()]

    results = per_thread_count(run)
    assert np.any(results[0][2] != 0)
    assert_all_equal(results, "forward/backward")


@pytest.mark.parametrize("form", [(False, False), (False, True), (True, False)])
def test_gemm_bitwise_across_threads(isa, dtype, form, restore_threads):
    rng = np.random.default_rng(1)
    m, n, k = 301, 263, 517
    a = rng.standard_normal((k, m) if form[0] else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if form[1] else (k, n)).astype(dtype)
    bias = rng.standard_normal(n).astype(dtype)
    results = per_thread_count(lambda: [nc._core.gemm(a, b, trans_a=form[0], trans_b=form[1], bias=bias,
                                                      activation="relu")])
    assert_all_equal(results, "gemm")


def test_activations_bitwise_across_threads(isa, dtype, restore_threads):
    rng = np.random.default_rng(2)
    x = (5 * rng.standard_normal((513, 300))).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)

    def run():
        out = []
        for name in ("sigmoid", "tanh", "relu", "leaky_relu", "softmax"):
            y = nc._core.activation_forward(name, x)
            out += [y, nc._core.activation_backward(name, y, dy)]
        return out

    assert_all_equal(per_thread_count(run), "activations")


def test_fit_bitwise_across_threads(dtype, restore_threads):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 200)).astype(dtype)
    y = rng.integers(0, 10, size=300)

    def run():
        model = nc.Sequential([nc.Dense(200, 96), nc.ReLU(), nc.Dense(96, 10)], dtype=dtype.name, seed=0)
        hist = model.fit(x, y, loss="cross_entropy", optimizer=nc.SGD(lr=0.05, momentum=0.9), epochs=2,
                         batch_size=64, shuffle=True, seed=4, verbose=0)
        ev = model.evaluate(x, y, loss="cross_entropy")
        return [p.copy() for p in model.parameters()] + [np.array(hist["loss"]), np.array([ev["loss"]])]

    assert_all_equal(per_thread_count(run), "fit")


def test_losses_bitwise_across_threads(dtype, restore_threads):
    rng = np.random.default_rng(5)
    z = rng.standard_normal((1000, 37)).astype(dtype)
    labels = rng.integers(0, 37, size=1000)
    t = rng.uniform(0, 1, size=z.shape).astype(dtype)
    p = rng.uniform(0.01, 0.99, size=z.shape).astype(dtype)

    def run():
        out = []
        for value, grad in (nc.CrossEntropyLoss()(z, labels), nc.MSELoss()(z, t), nc.BCELoss()(p, t),
                            nc.BCEWithLogitsLoss()(z, t)):
            out += [np.array([value]), grad]
        return out

    assert_all_equal(per_thread_count(run), "losses")


def test_concurrent_models_in_python_threads(dtype):
    """Two models trained at the same time from two Python threads (fit releases the GIL) end exactly where
    they end when trained one after the other: no shared scratch buffers between calls."""
    import threading

    rng = np.random.default_rng(6)
    data = [(rng.standard_normal((256, 150)).astype(dtype), rng.integers(0, 10, size=256)) for _ in range(2)]

    def train(i, out):
        model = nc.Sequential([nc.Dense(150, 200), nc.Tanh(), nc.Dense(200, 10)], dtype=dtype.name, seed=i)
        model.fit(data[i][0], data[i][1], loss="cross_entropy", optimizer=nc.SGD(lr=0.05, momentum=0.9),
                  epochs=3, batch_size=32, seed=i, verbose=0)
        x = data[1 - i][0]
        out[i] = [p.copy() for p in model.parameters()] + [model.predict(x), nc._core.gemm(x, x.T.copy())]

    sequential = [None, None]
    for i in range(2):
        train(i, sequential)
    concurrent = [None, None]
    workers = [threading.Thread(target=train, args=(i, concurrent)) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for i in range(2):
        assert concurrent[i] is not None
        for j, (a, b) in enumerate(zip(sequential[i], concurrent[i])):
            assert np.array_equal(a, b), f"model {i} array {j} differs when trained concurrently"


# The GEMM and the row kernels share their work out dynamically (a slow thread takes fewer slices or row
# blocks). Shapes that make the GEMM cut C along each dimension, with ragged last slices, A and B read in
# place or packed, and more than one KC slice: every split must give the one-thread bits.
GEMM_SPLIT_SHAPES = [(301, 263, 517), (64, 1024, 300), (1000, 40, 129), (37, 700, 33), (130, 16, 800), (7, 5000, 19)]


@pytest.mark.parametrize("shape", GEMM_SPLIT_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gemm_dynamic_split_bitwise_across_threads(isa, shape, restore_threads):
    rng = np.random.default_rng(7)
    m, n, k = shape
    a = rng.standard_normal((m, k)).astype(np.float32)
    at = np.ascontiguousarray(a.T)
    b = rng.standard_normal((k, n)).astype(np.float32)
    bt = np.ascontiguousarray(b.T)
    bias = rng.standard_normal(n).astype(np.float32)
    results = per_thread_count(lambda: [nc._core.gemm(a, b, bias=bias, activation="relu"),
                                        nc._core.gemm(at, b, trans_a=True), nc._core.gemm(a, bt, trans_b=True)])
    assert_all_equal(results, "gemm")


def test_results_do_not_depend_on_timing(restore_threads):
    """Three Python threads run 3-thread GEMMs, activations and predictions at once on this 2-core machine,
    so OpenMP threads are preempted at random and take slices in a different order every time: each result
    must still be bitwise the one computed alone with one thread."""
    import threading

    rng = np.random.default_rng(8)
    a = rng.standard_normal((300, 500)).astype(np.float32)
    b = rng.standard_normal((500, 400)).astype(np.float32)
    x = (4 * rng.standard_normal((600, 300))).astype(np.float32)

    def work(net):
        return [nc._core.gemm(a, b, activation="relu"), nc._core.activation_forward("sigmoid", x),
                nc._core.activation_backward("tanh", x, x), net.predict(a, batch_size=128)]

    nc.set_num_threads(1)
    nets = [nc.Sequential([nc.Dense(500, 300), nc.Tanh(), nc.Dense(300, 10)], seed=0) for _ in range(3)]
    expected = work(nets[0])
    nc.set_num_threads(3)
    results: list = [None] * 3
    errors: list = []

    def run(i):
        try:
            results[i] = [work(nets[i]) for _ in range(4)]
        except Exception as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    for per_thread in results:
        for got in per_thread:
            for j, (e, g) in enumerate(zip(expected, got)):
                assert np.array_equal(e, g), f"result {j} changed under contention"


def test_repeated_predict_and_forward_are_bitwise_stable(dtype, restore_threads):
    """predict and forward time one thread against all of them over their first calls and re-check later;
    whatever they pick, every call returns the same bits (here with a short last chunk, which runs the
    current favourite untimed)."""
    nc.set_num_threads(2)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((700, 256)).astype(dtype)
    model = nc.Sequential([nc.Dense(256, 512), nc.ReLU(), nc.Dense(512, 64)], dtype=dtype.name, seed=0)
    nc.set_num_threads(1)
    want_predict = model.predict(x, batch_size=256)
    want_forward = model.forward(x[:300])
    nc.set_num_threads(2)
    for _ in range(12):
        assert np.array_equal(model.predict(x, batch_size=256), want_predict)
    for _ in range(12):
        assert np.array_equal(model.forward(x[:300]), want_forward)
    gx = model.backward(np.ones((300, 64), dtype))   # the kept forward is intact after a tuned call
    assert gx.shape == (300, 256) and np.all(np.isfinite(gx))


def test_import_shortens_openmp_spin_only_for_the_import():
    """neurocore loads libgomp with a short spin-wait but leaves the environment as it was; a user's own
    GOMP_SPINCOUNT / OMP_WAIT_POLICY is kept."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import os, neurocore; print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'), "
            "neurocore._load_core.spin_wait_shortened)")
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    # shortened: set before libgomp was loaded (not after something imported _core first), and it is loaded
    linux = sys.platform.startswith("linux") and "gomp" in Path("/proc/self/maps").read_text()
    assert out.stdout.split() == ["None", "None", str(linux)]
    out = subprocess.run([sys.executable, "-c", code], env=dict(env, GOMP_SPINCOUNT="123"), capture_output=True,
                         text=True, check=True)
    assert out.stdout.split() == ["123", "None", "False"]
