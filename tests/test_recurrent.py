"""RNN, LSTM and GRU against the float64 NumPy reference (recurrent_reference.py, itself checked against
central differences and torch.nn): forward, dL/dx and every weight gradient for T = 1..1000, F and H 1..128,
N = 1 and odd, both return_sequences, stacked layers and Dense on sequences, on every kernel set and dtype;
finite differences through the model in float64; bitwise identical results for 1, 2 and 3 threads; the
vanishing gradient of a long tanh RNN and clip_norm on an exploding one; fit options, save/load, frozen
layers, track_gradients; property tests and garbage input."""
from __future__ import annotations

import math

import numpy as np
import pytest
import recurrent_reference as ref
from hypothesis import given
from hypothesis import strategies as st
from reliability import ISAS, kernel_set, property_settings, thread_count

import neurocore as nc
import reference
from conftest import assert_close, assert_unchanged, snapshot

KINDS = {"rnn": ("rnn", "tanh"), "rnn_relu": ("rnn", "relu"), "lstm": ("lstm", "tanh"), "gru": ("gru", "tanh")}
TENSORS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def make_layer(name, n_in, hidden, return_sequences=False, bias=True):
    kind, nonlinearity = KINDS[name]
    if kind == "rnn":
        return nc.RNN(n_in, hidden, nonlinearity=nonlinearity, return_sequences=return_sequences, bias=bias)
    return {"lstm": nc.LSTM, "gru": nc.GRU}[kind](n_in, hidden, return_sequences=return_sequences, bias=bias)


def layer_params(layer):
    return {k: np.array(getattr(layer, k), dtype=np.float64) for k in TENSORS if getattr(layer, k) is not None}


def reference_run(name, layer, x, dy, return_sequences):
    """Reference output, dx and gradients of one layer for output gradient dy."""
    kind, nonlinearity = KINDS[name]
    hs, cache = ref.forward(kind, layer_params(layer), x, nonlinearity)
    dx, grads = ref.backward(cache, ref.output_grad(dy, hs.shape, return_sequences))
    return ref.output(hs, return_sequences), dx, grads


def check_layer(name, layer, model, x, dy, return_sequences, dtype, factor):
    out, dx, grads = reference_run(name, layer, x, dy, return_sequences)
    y = model.forward(x)
    got_dx = model.backward(dy)
    assert_close(y, out, dtype, factor=factor, err_msg=f"{name} output")
    assert_close(got_dx, dx, dtype, factor=factor, err_msg=f"{name} dx")
    for k, g in grads.items():
        assert_close(getattr(layer, "grad_" + k), g, dtype, factor=factor, err_msg=f"{name} grad_{k}")


# (N, T, F, H, return_sequences): T 1..40, F and H 1..128, N 1 and odd; vector widths and their edges
PARITY = [(1, 1, 1, 1, False), (3, 1, 5, 7, True), (1, 40, 3, 9, True), (5, 17, 8, 16, False),
          (7, 9, 33, 17, True), (3, 5, 128, 31, False), (5, 6, 13, 128, True), (1, 12, 64, 65, False)]


@pytest.mark.parametrize("name", list(KINDS))
@pytest.mark.parametrize("shape", PARITY, ids=lambda s: "N{}-T{}-F{}-H{}-{}".format(*s[:4], "seq" if s[4] else "last"))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_layer_matches_reference_on_every_kernel_set(name, shape, dtype):
    n, steps, n_in, hidden, return_sequences = shape
    rng = np.random.default_rng(n * 1000 + steps * 31 + hidden)
    layer = make_layer(name, n_in, hidden, return_sequences)
    model = nc.Sequential([layer], input_shape=(steps, n_in), dtype=dtype, seed=n + steps)
    x = rng.standard_normal((n, steps, n_in))
    dy = rng.standard_normal((n, steps, hidden) if return_sequences else (n, hidden))
    factor = 4 * math.sqrt(steps * max(n_in, hidden))   # float32 rounding grows with the sums and the steps
    for isa in ISAS:
        with kernel_set(isa):
            check_layer(name, layer, model, x, dy, return_sequences, dtype, factor)


@pytest.mark.parametrize("name", list(KINDS))
def test_without_bias(name):
    rng = np.random.default_rng(5)
    layer = make_layer(name, 4, 6, return_sequences=True, bias=False)
    model = nc.Sequential([layer], input_shape=(5, 4), dtype="float64", seed=0)
    assert layer.bias_ih is None and layer.bias_hh is None
    assert [a.shape for a in model.parameters()] == [(4, 6 * layer.gates), (6, 6 * layer.gates)]
    check_layer(name, layer, model, rng.standard_normal((3, 5, 4)), rng.standard_normal((3, 5, 6)), True,
                np.float64, 4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_stacked_layers_and_dense_on_every_step(dtype):
    """LSTM -> GRU -> RNN(relu) -> Dense applied at every step, against the reference chain."""
    rng = np.random.default_rng(11)
    n, steps = 5, 9
    layers = [nc.LSTM(3, 8, return_sequences=True), nc.GRU(8, 6, return_sequences=True),
              nc.RNN(6, 5, nonlinearity="relu", return_sequences=True), nc.Dense(5, 2)]
    model = nc.Sequential(layers, input_shape=(steps, 3), dtype=dtype, seed=3)
    assert model.output_shape == (steps, 2)
    x = rng.standard_normal((n, steps, 3))
    dy = rng.standard_normal((n, steps, 2))
    caches, h = [], x
    for layer, (kind, nl) in zip(layers[:3], [("lstm", "tanh"), ("gru", "tanh"), ("rnn", "relu")]):
        h, cache = ref.forward(kind, layer_params(layer), h, nl)
        caches.append(cache)
    w, b = np.float64(layers[3].weight), np.float64(layers[3].bias)
    out = h @ w + b
    d = dy @ w.T
    grads = [{"weight": np.einsum("ntf,nto->fo", h, dy), "bias": dy.sum(axis=(0, 1))}]
    for cache in reversed(caches):
        d, g = ref.backward(cache, d)
        grads.insert(0, g)
    assert_close(model.forward(x), out, dtype, factor=30)
    assert_close(model.backward(dy), d, dtype, factor=30)
    for layer, g in zip(layers, grads):
        for k, v in g.items():
            assert_close(getattr(layer, "grad_" + k), v, dtype, factor=30, err_msg=f"{layer!r} grad_{k}")


@pytest.mark.parametrize("name", list(KINDS))
def test_float64_finite_differences_through_the_model(name):
    """Central differences of sum(w * model(x)) with respect to every parameter and input entry."""
    rng = np.random.default_rng(2)
    layer = make_layer(name, 3, 4, return_sequences=name != "gru")
    model = nc.Sequential([layer, nc.Dense(4, 2)], input_shape=(5, 3), dtype="float64", seed=1)
    x = rng.standard_normal((2, 5, 3))
    w = rng.standard_normal((2, 5, 2) if layer.return_sequences else (2, 2))
    model.forward(x)
    dx = model.backward(w)
    analytic = [g.copy() for g in model.gradients()]

    def loss():
        return float(np.sum(w * model.forward(x)))

    for p, g, what in zip(model.parameters(), analytic, ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "W", "b"]):
        reference.assert_grad(g, reference.numeric_grad(loss, p), f"{name} {what}")
    reference.assert_grad(dx, reference.numeric_grad(loss, x), f"{name} dx")


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_equals_torch(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    layer = make_layer(name, 6, 10, return_sequences=True)
    model = nc.Sequential([layer], input_shape=(8, 6), dtype="float64", seed=0)
    t = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[name](6, 10, batch_first=True).double()
    with torch.no_grad():
        for k in TENSORS:
            src = getattr(layer, k)
            getattr(t, k + "_l0").copy_(torch.from_numpy(np.array(src.T if src.ndim == 2 else src)))
    x = rng.standard_normal((3, 8, 6))
    np.testing.assert_allclose(model.predict(x), t(torch.from_numpy(x))[0].detach().numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_bitwise_identical_for_1_2_3_threads(name, restore_threads):
    """Large enough that the per-step products and gate kernels do split between threads."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((96, 6, 20)).astype(np.float32)
    y = rng.integers(0, 3, 96)
    results = []
    for threads in (1, 2, 3):
        nc.set_num_threads(threads)
        model = nc.Sequential([make_layer(name, 20, 128, return_sequences=True), make_layer(name, 128, 64),
                               nc.Dense(64, 3)], input_shape=(6, 20), seed=0)
        model.fit(x, y, optimizer=nc.Adam(lr=1e-2), epochs=1, batch_size=48, shuffle=False, verbose=0)
        out = model.forward(x[:48], training=True)
        model.backward(np.ones_like(out))
        results.append([p.copy() for p in model.parameters()] + [g.copy() for g in model.gradients()] + [out])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)


def test_long_tanh_rnn_gradient_vanishes_without_overflow():
    """T = 1000: the gradient reaching the first steps is many orders below the last step's (the lecture's
    vanishing gradient), nothing overflows, and the result still equals the reference."""
    rng = np.random.default_rng(0)
    steps = 1000
    layer = nc.RNN(2, 8)
    model = nc.Sequential([layer, nc.Dense(8, 1)], input_shape=(steps, 2), dtype="float64", seed=0)
    x = rng.standard_normal((3, steps, 2))
    model.forward(x)
    dx = model.backward(np.ones((3, 1)))
    assert np.all(np.isfinite(dx))
    per_step = np.abs(dx).sum(axis=(0, 2))
    assert per_step[0] < 1e-12 * per_step[-1]
    d_last = np.ones((3, 1)) @ np.float64(model.layers[1].weight).T
    _, rdx, grads = reference_run("rnn", layer, x, d_last, False)
    assert_close(dx, rdx, np.float64, factor=10)
    assert_close(layer.grad_weight_hh, grads["weight_hh"], np.float64, factor=10)
    history = model.fit(x, rng.standard_normal((3, 1)), loss="mse", epochs=2, batch_size=3, verbose=0,
                        track_gradients=True)
    norms = np.array(history["grad_norm"])
    assert norms.shape == (2, 2) and np.all(np.isfinite(norms)) and np.all(norms > 0)


def test_clip_norm_bounds_an_exploding_gradient():
    """A relu RNN with W_hh = 1.5 I over 60 steps: gradients of ~1e10; clip_norm keeps every SGD step to
    lr * clip_norm, and training stays finite."""
    rng = np.random.default_rng(1)
    layer = nc.RNN(1, 4, nonlinearity="relu", bias=False)
    model = nc.Sequential([layer, nc.Dense(4, 1)], input_shape=(60, 1), dtype="float64", seed=0)
    layer.weight_hh = 1.5 * np.eye(4)
    layer.weight_ih = np.abs(layer.weight_ih) + 0.1
    x = np.abs(rng.standard_normal((8, 60, 1)))
    y = np.zeros((8, 1))
    model.forward(x)
    model.backward(np.ones((8, 1)))
    assert np.linalg.norm(layer.grad_weight_hh) > 1e8
    for _ in range(3):
        before = np.concatenate([p.ravel() for p in model.parameters()])
        history = model.fit(x, y, loss="mse", optimizer=nc.SGD(lr=0.01, clip_norm=1.0), epochs=1, batch_size=8,
                            verbose=0, track_gradients=True)
        after = np.concatenate([p.ravel() for p in model.parameters()])
        assert np.linalg.norm(after - before) <= 0.01 * (1.0 + 1e-6)
        assert np.isfinite(history["loss"][0]) and history["grad_norm"][0][0] > 1.0


def test_fit_learns_a_sequence_task_with_every_option():
    """Sum-of-signs classification: validation, schedule, Adam with clip_norm, dropout between layers,
    shuffled batches with a smaller last batch, input noise."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 12, 2)).astype(np.float32)
    y = (x[:, :, 0].sum(axis=1) > 0).astype(np.int64)
    model = nc.Sequential([nc.GRU(2, 16, return_sequences=True), nc.Dropout(0.1), nc.LSTM(16, 16), nc.Dense(16, 2)],
                          input_shape=(12, 2), seed=0)
    history = model.fit(x, y, optimizer=nc.Adam(lr=1e-2, clip_norm=1.0), epochs=12, batch_size=32,
                        validation_split=0.2, schedule=nc.schedules.CosineAnnealing(12), seed=0, verbose=0,
                        augment=nc.GaussianNoise(0.01), track_gradients=True)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["val_accuracy"][-1] > 0.85
    assert len(history["grad_norm"][0]) == 3   # GRU, LSTM, Dense


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(6)
    model = nc.Sequential([nc.LSTM(3, 5, return_sequences=True), nc.RNN(5, 4, nonlinearity="relu"),
                           nc.Dense(4, 2)], input_shape=(7, 3), dtype="float64", seed=2)
    x = rng.standard_normal((4, 7, 3))
    model.save(tmp_path / "m.npz")
    loaded = nc.load(tmp_path / "m.npz")
    assert loaded.input_shape == (7, 3) and repr(loaded.layers[1]) == "RNN(5, 4, nonlinearity='relu')"
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    other = nc.Sequential([nc.LSTM(3, 5, return_sequences=True), nc.RNN(5, 4, nonlinearity="relu"),
                           nc.Dense(4, 2)], input_shape=(7, 3), dtype="float64", seed=9)
    assert other.load_weights(tmp_path / "m.npz") == [0, 1, 2]
    np.testing.assert_array_equal(other.predict(x), model.predict(x))


def test_frozen_recurrent_layer():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((40, 5, 3))
    y = rng.integers(0, 2, 40)
    gru = nc.GRU(3, 6, return_sequences=True)
    model = nc.Sequential([gru, nc.LSTM(6, 4), nc.Dense(4, 2)], input_shape=(5, 3), dtype="float64", seed=0)
    gru.trainable = False
    frozen = [np.array(getattr(gru, k)) for k in TENSORS]
    lstm_before = np.array(model.layers[1].weight_hh)
    history = model.fit(x, y, optimizer=nc.Adam(lr=1e-2), epochs=2, batch_size=8, verbose=0, track_gradients=True)
    for k, v in zip(TENSORS, frozen):
        np.testing.assert_array_equal(getattr(gru, k), v)
    assert not np.array_equal(model.layers[1].weight_hh, lstm_before)
    assert math.isnan(history["grad_norm"][0][0]) and history["grad_norm"][0][1] > 0
    # frozen in the middle: dx still flows through it to the input
    gru.trainable = True
    model.layers[1].trainable = False
    model.forward(x[:3])
    assert np.abs(model.backward(np.ones((3, 2)))).sum() > 0


def test_default_init_is_pytorchs_and_init_names_work():
    lstm = nc.LSTM(10, 400)
    nc.Sequential([lstm], input_shape=(2, 10), seed=0)
    bound = 1 / math.sqrt(400)
    for k in TENSORS:
        v = getattr(lstm, k)
        assert v.dtype == np.float32 and np.abs(v).max() <= bound and np.abs(v).max() > 0.95 * bound
    gru = nc.GRU(3, 4, init="zeros")
    nc.Sequential([gru], input_shape=(2, 3), seed=0)
    assert all(not np.any(getattr(gru, k)) for k in TENSORS)
    rnn = nc.RNN(30, 40, init="glorot_uniform")
    nc.Sequential([rnn], input_shape=(2, 30), seed=0)
    assert np.abs(rnn.weight_ih).max() <= math.sqrt(6 / 70) and not np.any(rnn.bias_hh)


def test_views_are_zero_copy_and_shapes_follow_the_contract():
    lstm = nc.LSTM(3, 5, return_sequences=True)
    model = nc.Sequential([lstm, nc.Dense(5, 2)], input_shape=(4, 3), dtype="float64")
    assert lstm.weight_ih.shape == (3, 20) and lstm.weight_hh.shape == (5, 20)
    assert lstm.bias_ih.shape == (20,) and lstm.grad_bias_hh.shape == (20,)
    assert model.output_shape == (4, 2) and model.n_parameters == 3 * 20 + 5 * 20 + 40 + 5 * 2 + 2
    lstm.weight_hh[...] = 0
    lstm.bias_ih = np.ones(20)
    assert np.all(model.parameters()[2] == 1) and not np.any(model.parameters()[1])
    with pytest.raises(ValueError, match="shape"):
        lstm.weight_ih = np.zeros((20, 3))
    assert "LSTM(3, 5, return_sequences=True)" in repr(model)


# ---------------------------------------------------------------------------------------------- properties
@property_settings(40)
@given(name=st.sampled_from(list(KINDS)), n=st.integers(1, 9), steps=st.integers(1, 12), n_in=st.integers(1, 40),
       hidden=st.integers(1, 40), return_sequences=st.booleans(), bias=st.booleans(), isa=st.sampled_from(ISAS),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**32 - 1))
def test_property_random_shapes_match_reference(name, n, steps, n_in, hidden, return_sequences, bias, isa, threads,
                                               seed):
    rng = np.random.default_rng(seed)
    layer = make_layer(name, n_in, hidden, return_sequences, bias)
    model = nc.Sequential([layer], input_shape=(steps, n_in), dtype="float64", seed=seed % 1000)
    x = rng.standard_normal((n, steps, n_in))
    dy = rng.standard_normal((n, steps, hidden) if return_sequences else (n, hidden))
    with kernel_set(isa), thread_count(threads):
        check_layer(name, layer, model, x, dy, return_sequences, np.float64, 10)


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("name", list(KINDS))
def test_garbage_input_is_refused_and_leaves_the_model_unchanged(name):
    model = nc.Sequential([make_layer(name, 3, 4), nc.Dense(4, 2)], input_shape=(5, 3), seed=0)
    snap = snapshot(model)
    with pytest.raises(ValueError, match=r"^(RNN|LSTM|GRU)\(3, 4.*expects x of shape \(batch, 5, 3\), got shape \(2, 5, 4\)"):
        model.predict(np.zeros((2, 5, 4)))
    good = np.zeros((2, 5, 3))
    bad = {"2-D": np.zeros((2, 15)), "4-D": np.zeros((2, 5, 3, 1)), "wrong F": np.zeros((2, 5, 4)),
           "wrong T": np.zeros((2, 6, 3)), "T = 0": np.zeros((2, 0, 3)), "no samples": np.zeros((0, 5, 3))}
    for x in bad.values():
        with pytest.raises(ValueError, match=r"expects x of shape \(batch, 5, 3\)|at least one sample"):
            model.forward(x)
        with pytest.raises(ValueError):
            model.fit(x, np.zeros(len(x), np.int64), epochs=1, verbose=0)
    nan = good.copy()
    nan[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        model.fit(nan, np.zeros(2, np.int64), epochs=1, verbose=0)
    assert np.isnan(model.predict(nan)[1]).all() and np.isfinite(model.predict(nan)[0]).all()
    with pytest.raises(TypeError):
        model.forward(np.array([["a"]]))
    assert_unchanged(model, snap)
    assert model.predict(np.zeros((0, 5, 3))).shape == (0, 2)


def test_long_sequence_predict_in_memory_sized_chunks():
    # 6,000 steps keep 2.3 MB of gates per float64 sample, so predict's default chunk of 1024 samples would
    # size gigabytes of buffers; it caps its chunk at ~256 MiB (116 samples here) and the rows come out
    # the same bits as when predicted in small pieces.
    model = nc.Sequential([nc.LSTM(1, 8)], dtype="float64", input_shape=(6000, 1), seed=0)
    x = np.random.default_rng(1).standard_normal((130, 6000, 1))
    whole = model.predict(x)
    pieces = np.concatenate([model.predict(x[i:i + 50], batch_size=50) for i in range(0, 130, 50)])
    np.testing.assert_array_equal(whole, pieces)


def test_bad_layer_arguments_and_shapes():
    for bad in (lambda: nc.LSTM(0, 4), lambda: nc.GRU(3, 0), lambda: nc.RNN(3, 4, nonlinearity="sigmoid"),
                lambda: nc.LSTM(3, 4, init="orthogonal")):
        with pytest.raises(ValueError):
            bad()
    for bad in (lambda: nc.LSTM(3.5, 4), lambda: nc.GRU(3, 4, return_sequences="yes"), lambda: nc.RNN("3", 4)):
        with pytest.raises(TypeError):
            bad()
    with pytest.raises(ValueError, match="input_shape"):
        nc.Sequential([nc.LSTM(3, 4)])
    with pytest.raises(ValueError, match="sequences"):
        nc.Sequential([nc.Dense(3, 3), nc.LSTM(3, 4)])
    with pytest.raises(ValueError, match="3 features per step"):
        nc.Sequential([nc.GRU(3, 4)], input_shape=(5, 2))
    with pytest.raises(ValueError, match="sequences"):
        nc.Sequential([nc.LSTM(3, 4), nc.LSTM(4, 4)], input_shape=(5, 3))   # the first returns (batch, 4)
    with pytest.raises(ValueError):
        nc.Sequential([nc.LSTM(3, 4)], input_shape=(0, 3))
    with pytest.raises(ValueError):
        nc.Sequential([nc.LSTM(3, 4)], input_shape=(5, 3, 1))
