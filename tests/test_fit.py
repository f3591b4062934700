"""model.fit vs the reference training loop; determinism; history; learning real tasks."""

from __future__ import annotations

import numpy as np
import pytest

import neurocore as nc
import reference as ref
from conftest import assert_close
from neurocore import datasets

TASKS = {
    "cross_entropy": lambda: [nc.Dense(6, 12), nc.ReLU(), nc.Dense(12, 4)],
    "mse": lambda: [nc.Dense(6, 10), nc.Tanh(), nc.Dense(10, 3)],
    "bce": lambda: [nc.Dense(6, 10), nc.Tanh(), nc.Dense(10, 2), nc.Sigmoid()],
    "bce_with_logits": lambda: [nc.Dense(6, 8), nc.LeakyReLU(alpha=0.1), nc.Dense(8, 2, bias=False)],
}
LOSS_OBJECTS = {
    "cross_entropy": nc.CrossEntropyLoss,
    "mse": nc.MSELoss,
    "bce": nc.BCELoss,
    "bce_with_logits": nc.BCEWithLogitsLoss,
}
OPTIMS = {
    "plain": dict(lr=0.1),
    "momentum_wd": dict(lr=0.05, momentum=0.9, weight_decay=0.01),
    "nesterov": dict(lr=0.05, momentum=0.9, nesterov=True),
}


def task_data(task, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)).astype(dtype)
    if task == "cross_entropy":
        y = rng.integers(0, 4, size=n)
    elif task == "mse":
        y = rng.standard_normal((n, 3)).astype(dtype)
    else:
        y = rng.integers(0, 2, size=(n, 2)).astype(dtype)
    return x, y


def build(task, dtype, seed=0):
    return nc.Sequential(TASKS[task](), dtype=np.dtype(dtype).name, seed=seed)


@pytest.mark.parametrize("optim", list(OPTIMS))
@pytest.mark.parametrize("task", list(TASKS))
def test_fit_matches_reference_loop(dtype, task, optim):
    n, batch, epochs = 50, 16, 3  # batches of 16, 16, 16 and a last one of 2
    model = build(task, dtype)
    x, y = task_data(task, n, dtype)
    specs0 = ref.layer_specs(model)
    hist = model.fit(x, y, loss=task, optimizer=nc.SGD(**OPTIMS[optim]), epochs=epochs, batch_size=batch,
                     shuffle=False, verbose=0)
    o = OPTIMS[optim]
    specs, ref_hist = ref.fit(specs0, x, y, task, o["lr"], o.get("momentum", 0.0), o.get("nesterov", False),
                              o.get("weight_decay", 0.0), epochs=epochs, batch_size=batch)
    # float64: ~1e-10 after 12 steps; float32 accumulates rounding along the trajectory
    factor = 100.0 if dtype == np.float64 else 20.0
    for i, (p, e) in enumerate(zip(model.parameters(), ref.seq_params(specs))):
        assert_close(p, e, dtype, factor=factor, err_msg=f"parameter {i}")
    assert len(hist["loss"]) == epochs
    assert all(isinstance(v, float) for v in hist["loss"])
    np.testing.assert_allclose(hist["loss"], ref_hist, rtol=1e-10 if dtype == np.float64 else 1e-4)


@pytest.mark.parametrize("in_features", [1, 5, 70])
def test_shuffled_fit_matches_reference_on_the_same_permutations(dtype, in_features):
    """The first Dense layer reads each shuffled batch straight from the data set (row gathers inside
    its GEMMs, no copy): the result must equal the reference loop fed the permuted data, epoch by epoch.
    70 rows of 70 features reach the packed paths; one feature makes dW a single row (m = 1)."""
    n, batch, epochs, seed = 70, 9, 3, 11
    r = np.random.default_rng(in_features)
    x = r.standard_normal((n, in_features)).astype(dtype)
    y = r.integers(0, 3, size=n)
    model = nc.Sequential([nc.Dense(in_features, 7), nc.ReLU(), nc.Dense(7, 3)], dtype=np.dtype(dtype).name, seed=2)
    specs = ref.layer_specs(model)
    hist = model.fit(x, y, optimizer=nc.SGD(lr=0.1, momentum=0.9), epochs=epochs, batch_size=batch,
                     shuffle=True, seed=seed, verbose=0)
    rng, opt, ref_losses = np.random.default_rng(seed), ref.SGD(0.1, momentum=0.9), []
    for _ in range(epochs):
        order = rng.permutation(n)   # what fit draws for the epoch
        specs, h = ref.train(specs, x[order], y[order], "cross_entropy", opt, epochs=1, batch_size=batch)
        ref_losses += h["loss"]
    for i, (p, e) in enumerate(zip(model.parameters(), ref.seq_params(specs))):
        assert_close(p, e, dtype, factor=100.0 if dtype == np.float64 else 20.0, err_msg=f"parameter {i}")
    np.testing.assert_allclose(hist["loss"], ref_losses, rtol=1e-10 if dtype == np.float64 else 1e-4)


@pytest.mark.parametrize("n,batch", [(7, 1), (10, 32), (33, 33), (34, 11), (35, 34)])
def test_fit_batching_edge_cases(n, batch):
    model = build("mse", np.float64)
    x, y = task_data("mse", n, np.float64, seed=n)
    specs, ref_hist = ref.fit(ref.layer_specs(model), x, y, "mse", 0.05, 0.9, False, 0.0, epochs=2,
                              batch_size=batch)
    hist = model.fit(x, y, loss="mse", optimizer=nc.SGD(lr=0.05, momentum=0.9), epochs=2, batch_size=batch,
                     shuffle=False, verbose=0)
    for p, e in zip(model.parameters(), ref.seq_params(specs)):
        assert_close(p, e, np.float64, factor=100.0)
    np.testing.assert_allclose(hist["loss"], ref_hist, rtol=1e-10)


def test_history_loss_is_plain_mean_of_batch_losses():
    """A last batch of 1 counts once, as much as a full batch (not weighted by its size)."""
    model = build("mse", np.float64)
    x, y = task_data("mse", 9, np.float64, seed=3)
    start = [p.copy() for p in model.parameters()]
    hist = model.fit(x, y, loss="mse", optimizer=nc.SGD(lr=1e-12), epochs=1, batch_size=4, shuffle=False,
                     verbose=0)
    # with a negligible lr the weights hardly move: batch losses are those of the initial model
    for p, s in zip(model.parameters(), start):
        p[...] = s
    losses = [nc.MSELoss()(model.forward(x[i:i + 4]), y[i:i + 4])[0] for i in (0, 4, 8)]
    weighted = nc.MSELoss()(model.forward(x), y)[0]
    assert hist["loss"][0] == pytest.approx(np.mean(losses), rel=1e-9)
    assert abs(np.mean(losses) - weighted) > 1e-6  # the two definitions are distinguishable here


@pytest.mark.parametrize("task", list(TASKS))
def test_loss_string_and_object_are_identical(task):
    x, y = task_data(task, 40, np.float32)
    a, b = build(task, np.float32), build(task, np.float32)
    ha = a.fit(x, y, loss=task, optimizer=nc.SGD(lr=0.1), epochs=2, batch_size=8, shuffle=True, seed=5,
               verbose=0)
    hb = b.fit(x, y, loss=LOSS_OBJECTS[task](), optimizer=nc.SGD(lr=0.1), epochs=2, batch_size=8, shuffle=True,
               seed=5, verbose=0)
    assert ha["loss"] == hb["loss"]
    for p, q in zip(a.parameters(), b.parameters()):
        assert np.array_equal(p, q)


def test_fit_determinism_and_seed(dtype):
    x, y = task_data("cross_entropy", 64, dtype)

    def run(seed, shuffle=True):
        m = build("cross_entropy", dtype)
        h = m.fit(x, y, loss="cross_entropy", optimizer=nc.SGD(lr=0.1, momentum=0.9), epochs=3, batch_size=8,
                  shuffle=shuffle, seed=seed, verbose=0)
        return [p.copy() for p in m.parameters()], h["loss"]

    a, ha = run(0)
    b, hb = run(0)
    c, hc = run(1)
    d, _ = run(0, shuffle=False)
    for p, q in zip(a, b):
        assert np.array_equal(p, q), "same seed must give bitwise identical weights"
    assert ha == hb
    assert any(not np.array_equal(p, q) for p, q in zip(a, c)), "different seeds gave identical weights"
    assert ha != hc
    assert any(not np.array_equal(p, q) for p, q in zip(a, d)), "shuffle=True did not change the batch order"


def test_shuffle_is_a_permutation():
    """With one batch per epoch the order is irrelevant: shuffling must not drop or repeat samples."""
    x, y = task_data("mse", 40, np.float64)
    a, b = build("mse", np.float64), build("mse", np.float64)
    a.fit(x, y, loss="mse", optimizer=nc.SGD(lr=0.1), epochs=3, batch_size=40, shuffle=True, seed=3, verbose=0)
    b.fit(x, y, loss="mse", optimizer=nc.SGD(lr=0.1), epochs=3, batch_size=40, shuffle=False, verbose=0)
    for p, q in zip(a.parameters(), b.parameters()):
        assert_close(p, q.astype(np.float64), np.float64, factor=100.0)


def test_fit_continues_with_the_same_optimizer_state():
    x, y = task_data("mse", 30, np.float64)
    a, b = build("mse", np.float64), build("mse", np.float64)
    opt_a = nc.SGD(lr=0.05, momentum=0.9)
    a.fit(x, y, loss="mse", optimizer=opt_a, epochs=1, batch_size=8, shuffle=False, verbose=0)
    a.fit(x, y, loss="mse", optimizer=opt_a, epochs=1, batch_size=8, shuffle=False, verbose=0)
    b.fit(x, y, loss="mse", optimizer=nc.SGD(lr=0.05, momentum=0.9), epochs=2, batch_size=8, shuffle=False,
          verbose=0)
    for p, q in zip(a.parameters(), b.parameters()):
        assert np.array_equal(p, q)


def test_fit_does_not_modify_inputs_and_prints_nothing(capsys):
    x, y = task_data("cross_entropy", 20, np.float32)
    x0, y0 = x.copy(), y.copy()
    build("cross_entropy", np.float32).fit(x, y, loss="cross_entropy", optimizer=nc.SGD(lr=0.1), epochs=2,
                                          batch_size=4, verbose=0, validation_data=(x, y))
    assert np.array_equal(x, x0) and np.array_equal(y, y0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_epochs_zero_is_a_no_op():
    x, y = task_data("mse", 10, np.float64)
    model = build("mse", np.float64)
    before = [p.copy() for p in model.parameters()]
    hist = model.fit(x, y, loss="mse", optimizer=nc.SGD(lr=0.1), epochs=0, verbose=0)
    assert list(hist["loss"]) == []
    for p, q in zip(model.parameters(), before):
        assert np.array_equal(p, q)


def test_validation_history():
    x, y = task_data("cross_entropy", 60, np.float64)
    xv, yv = task_data("cross_entropy", 25, np.float64, seed=9)
    model = build("cross_entropy", np.float64)
    hist = model.fit(x, y, loss="cross_entropy", optimizer=nc.SGD(lr=0.1), epochs=3, batch_size=16,
                     shuffle=False, validation_data=(xv, yv), verbose=0)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert len(hist[key]) == 3, key
    assert all(0.0 <= a <= 1.0 for a in hist["accuracy"] + hist["val_accuracy"])
    out, _ = ref.seq_forward(ref.layer_specs(model), xv)
    value, _ = ref.cross_entropy(out, yv)
    assert hist["val_loss"][-1] == pytest.approx(value, rel=1e-10)
    assert hist["val_accuracy"][-1] == pytest.approx(np.mean(np.argmax(out, axis=1) == yv), abs=1e-12)
    ev = model.evaluate(xv, yv, loss="cross_entropy")
    assert ev["loss"] == pytest.approx(value, rel=1e-10)


def test_mse_fit_has_no_accuracy():
    x, y = task_data("mse", 20, np.float64)
    hist = build("mse", np.float64).fit(x, y, loss="mse", optimizer=nc.SGD(lr=0.01), epochs=1, verbose=0)
    assert "accuracy" not in hist


def test_digits_accuracy():
    x, y = datasets.load_digits()
    assert x.shape == (1797, 64) and y.shape == (1797,)
    assert set(np.unique(y)) == set(range(10))
    assert 0.0 <= x.min() and x.max() <= 1.0
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(x))
    train, test = perm[:1400], perm[1400:]
    model = nc.Sequential([nc.Dense(64, 64), nc.ReLU(), nc.Dense(64, 10)], seed=0)
    hist = model.fit(x[train], y[train], loss="cross_entropy", optimizer=nc.SGD(lr=0.1, momentum=0.9),
                     epochs=30, batch_size=32, seed=0, verbose=0)
    assert hist["loss"][-1] < hist["loss"][0]
    res = model.evaluate(x[test], y[test], loss="cross_entropy")
    acc = np.mean(np.argmax(model.predict(x[test]), axis=1) == y[test])
    assert res["accuracy"] == pytest.approx(acc)
    assert acc >= 0.95, f"digits test accuracy {acc:.3f}"


def test_regression_r2():
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, size=(1200, 4)).astype(np.float32)
    y = (np.sin(x[:, 0]) + 0.5 * x[:, 1] ** 2 - x[:, 2] * x[:, 3] / 2)[:, None].astype(np.float32)
    model = nc.Sequential([nc.Dense(4, 64), nc.Tanh(), nc.Dense(64, 64), nc.Tanh(), nc.Dense(64, 1)], seed=0)
    model.fit(x[:1000], y[:1000], loss="mse", optimizer=nc.SGD(lr=0.02, momentum=0.9), epochs=60,
              batch_size=32, seed=0, verbose=0)
    pred = model.predict(x[1000:])
    resid = np.sum((pred - y[1000:]) ** 2)
    total = np.sum((y[1000:] - y[1000:].mean()) ** 2)
    r2 = 1 - resid / total
    assert r2 >= 0.9, f"R^2 = {r2:.3f}"


def test_training_accuracy_history():
    """history['accuracy'] is measured on the training batches as they are seen; with a negligible lr it is
    the accuracy of the initial model."""
    x, y = task_data("cross_entropy", 64, np.float64)
    model = build("cross_entropy", np.float64)
    out, _ = ref.seq_forward(ref.layer_specs(model), x)
    hist = model.fit(x, y, loss="cross_entropy", optimizer=nc.SGD(lr=1e-12), epochs=2, batch_size=10,
                     shuffle=True, seed=0, verbose=0)
    expected = np.mean(np.argmax(out, axis=1) == y)
    assert hist["accuracy"] == [pytest.approx(expected, abs=1e-12)] * 2


def test_batch_size_larger_than_the_data_set():
    """batch_size > n means one batch of n rows: buffers are sized by the batch actually used, so a huge
    batch_size neither allocates for rows that do not exist nor changes the result."""
    x, y = task_data("cross_entropy", 10, np.float64)
    a, b = build("cross_entropy", np.float64), build("cross_entropy", np.float64)
    ha = a.fit(x, y, loss="cross_entropy", optimizer=nc.SGD(lr=0.1), epochs=2, batch_size=10, shuffle=False,
               verbose=0)
    hb = b.fit(x, y, loss="cross_entropy", optimizer=nc.SGD(lr=0.1), epochs=2, batch_size=2**62, shuffle=False,
               verbose=0)
    assert ha["loss"] == hb["loss"]
    for p, q in zip(a.parameters(), b.parameters()):
        assert np.array_equal(p, q)
    ev = b.evaluate(x, y, loss="cross_entropy", batch_size=2**62)
    assert ev["loss"] == pytest.approx(a.evaluate(x, y, loss="cross_entropy")["loss"], rel=1e-12)
