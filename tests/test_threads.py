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
