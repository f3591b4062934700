"""fit's training machinery: validation_split, EarlyStopping, epoch callbacks, augmentation (callables and
GaussianNoise), track_gradients, transfer learning (layers reused, load_weights) and save/load of models
with BatchNorm, Residual, Dropout and Adam."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import neurocore as nc
import reference as ref
from conftest import assert_close, assert_unchanged, snapshot


def id_data(n, d=4, k=3, seed=0, counts=None):
    """Rows whose first column is the row index (exact in float32), labels in [0, k)."""
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, d))
    x[:, 0] = np.arange(n)
    if counts is not None:
        y = np.repeat(np.arange(len(counts)), counts)
    else:
        y = r.integers(0, k, size=n)
    return x, y


def small_net(d=4, k=3, dtype="float64", seed=0):
    return nc.Sequential([nc.Dense(d, 8), nc.Tanh(), nc.Dense(8, k)], dtype=dtype, seed=seed)


class RowProbe:
    """An augment callable that records the rows of every batch and returns them unchanged."""

    def __init__(self):
        self.batches = []

    def __call__(self, xb):
        self.batches.append(np.array(xb, copy=True))
        return xb

    def ids(self):
        return np.concatenate([b[:, 0] for b in self.batches]).astype(np.int64)


# --------------------------------------------------------------------------------------------------
# validation_split
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,share,n_val", [(50, 0.1, 5), (47, 0.25, 12), (10, 0.5, 5), (9, 0.05, 1)])
def test_validation_split_sizes(n, share, n_val):
    x, y = id_data(n)
    probe = RowProbe()
    hist = small_net().fit(x, y, validation_split=share, epochs=1, batch_size=4, seed=0, augment=probe, verbose=0)
    ids = probe.ids()
    assert len(ids) == n - n_val, "training rows"
    assert len(set(ids.tolist())) == len(ids), "a training row was visited twice in one epoch"
    assert "val_loss" in hist and "val_accuracy" in hist


def test_validation_split_is_shuffled_reproducible_and_evaluated():
    x, y = id_data(60)
    runs = {}
    for seed in (0, 0, 1):
        model = small_net()
        probe = RowProbe()
        hist = model.fit(x, y, validation_split=0.2, epochs=1, batch_size=8, seed=seed, augment=probe, verbose=0)
        val_ids = np.setdiff1d(np.arange(60), probe.ids())
        assert len(val_ids) == 12
        # val_loss / val_accuracy are the held-out rows evaluated with the epoch's final weights
        ev = model.evaluate(x[val_ids], y[val_ids])
        assert hist["val_loss"][0] == pytest.approx(ev["loss"], rel=1e-12)
        assert hist["val_accuracy"][0] == pytest.approx(ev["accuracy"], rel=1e-12)
        runs.setdefault(seed, []).append(set(val_ids.tolist()))
    assert runs[0][0] == runs[0][1], "the same seed gave another split"
    assert runs[0][0] != runs[1][0], "the seed does not change the split"
    assert runs[0][0] != set(range(48, 60)) and runs[0][0] != set(range(12)), "the split is not shuffled"


@pytest.mark.parametrize("loss,counts,share,expected", [
    ("cross_entropy", [30, 15, 5], 0.2, [6, 3, 1]),
    ("cross_entropy", [20, 20, 20, 4], 0.25, [5, 5, 5, 1]),
    ("bce_with_logits", [40, 10], 0.2, [8, 2]),
])
def test_validation_split_is_stratified(loss, counts, share, expected):
    n = sum(counts)
    x, y = id_data(n, counts=counts)
    k = len(counts)
    if loss == "bce_with_logits":
        model = nc.Sequential([nc.Dense(4, 5), nc.Tanh(), nc.Dense(5, 1)], dtype="float64", seed=0)
        target = y.astype(np.float64).reshape(-1, 1)
    else:
        model = small_net(k=k)
        target = y
    probe = RowProbe()
    model.fit(x, target, loss=loss, validation_split=share, epochs=1, batch_size=7, seed=3, augment=probe,
              verbose=0)
    val_ids = np.setdiff1d(np.arange(n), probe.ids())
    assert np.bincount(y[val_ids], minlength=k).tolist() == expected


def test_validation_split_regression():
    x, _ = id_data(40)
    y = np.random.default_rng(1).standard_normal((40, 3))
    probe = RowProbe()
    hist = small_net().fit(x, y, loss="mse", validation_split=0.3, epochs=1, batch_size=5, seed=0, augment=probe,
                           verbose=0)
    assert len(probe.ids()) == 28 and "val_loss" in hist and "val_accuracy" not in hist
    assert set(probe.ids().tolist()) != set(range(28))


# --------------------------------------------------------------------------------------------------
# EarlyStopping
# --------------------------------------------------------------------------------------------------
def feed(es, values, key="val_loss"):
    """Run an EarlyStopping over a metric sequence; returns the epoch it stopped at (or None)."""
    es.on_train_begin(small_net())
    for epoch, v in enumerate(values):
        if es(epoch, {"loss": 0.0, "lr": 0.1, key: v}) is False:
            return epoch
    return None


def test_early_stopping_patience_counts_epochs_without_improvement():
    """patience=p: training stops after p consecutive epochs without improvement (Keras' rule, and the
    docstring's: 'has not improved ... for patience epochs')."""
    values = [1.0, 0.9, 0.95, 0.97, 0.99, 0.5]
    assert feed(nc.EarlyStopping(patience=0), values) == 2
    assert feed(nc.EarlyStopping(patience=1), values) == 2
    assert feed(nc.EarlyStopping(patience=2), values) == 3
    assert feed(nc.EarlyStopping(patience=3), values) == 4
    assert feed(nc.EarlyStopping(patience=4), values) is None


def test_early_stopping_stops_later_with_more_patience_and_tracks_best():
    values = [1.0, 0.9, 0.95, 0.97, 0.99, 1.2, 1.3, 1.4, 1.5]
    stops = [feed(nc.EarlyStopping(patience=p), values) for p in range(1, 6)]  # 0 and 1 both stop at the first miss
    assert all(a is not None for a in stops)
    assert stops == sorted(stops) and len(set(stops)) == len(stops)
    es = nc.EarlyStopping(patience=3)
    feed(es, values)
    assert es.best_epoch == 1 and es.best == 0.9


def test_early_stopping_min_delta():
    # steps of 0.05 do not count with min_delta=0.1; the best moves once the gap to the best exceeds it
    values = [1.0, 0.95, 0.9, 0.85, 0.8, 0.75]
    es = nc.EarlyStopping(patience=10, min_delta=0.1)
    assert feed(es, values) is None
    assert es.best_epoch == 3 and es.best == 0.85
    es = nc.EarlyStopping(patience=1, min_delta=0.1)
    assert feed(es, [1.0, 0.95, 0.92, 0.91, 0.5]) is not None, "sub-min_delta improvements reset the patience"
    es = nc.EarlyStopping(patience=10, min_delta=0.04)
    feed(es, values)
    assert es.best_epoch == 5
    # exactly min_delta better is not an improvement ("by more than min_delta")
    es = nc.EarlyStopping(patience=10, min_delta=0.25)
    feed(es, [1.0, 0.75, 0.7])
    assert es.best_epoch == 2


def test_early_stopping_mode_max_for_accuracy():
    es = nc.EarlyStopping(monitor="val_accuracy", patience=10)
    assert es.mode == "max"
    feed(es, [0.5, 0.7, 0.6, 0.65], key="val_accuracy")
    assert es.best_epoch == 1
    es = nc.EarlyStopping(monitor="loss", patience=10, mode="max")
    feed(es, [0.5, 0.7, 0.6], key="loss")
    assert es.best_epoch == 1


class Recorder:
    """A callback keeping a copy of the parameters and BatchNorm statistics after each epoch."""

    def __init__(self, model):
        self.model, self.states = model, []

    def __call__(self, epoch, metrics):
        arrays = list(self.model.parameters())
        for layer in self.model.parameter_layers():
            if isinstance(layer, nc.BatchNorm):
                arrays += [layer.running_mean, layer.running_var]
        self.states.append([a.copy() for a in arrays])


def noise_task():
    """Random inputs and labels: the model can only memorise, so the validation loss soon rises."""
    r = np.random.default_rng(0)
    return (r.standard_normal((40, 6)), r.integers(0, 3, size=40)), (r.standard_normal((40, 6)),
                                                                      r.integers(0, 3, size=40))


def overfitting_run(restore, patience=2, epochs=40):
    (x, y), (xv, yv) = noise_task()
    model = nc.Sequential([nc.Dense(6, 32), nc.BatchNorm(32), nc.ReLU(), nc.Dense(32, 3)], dtype="float64", seed=0)
    rec = Recorder(model)
    es = nc.EarlyStopping(patience=patience, restore_best_weights=restore)
    hist = model.fit(x, y, optimizer=nc.Adam(lr=0.02), epochs=epochs, batch_size=8, seed=0,
                     validation_data=(xv, yv), callbacks=[rec, es], verbose=0)
    return model, rec, es, hist


@pytest.mark.parametrize("restore", [True, False])
def test_early_stopping_in_fit_restores_the_best_epoch(restore):
    model, rec, es, hist = overfitting_run(restore)
    n_epochs = len(hist["loss"])
    assert n_epochs < 40, "training did not stop early"
    best = int(np.argmin(hist["val_loss"]))
    assert es.best_epoch == best and best < n_epochs - 1
    assert es.stopped_epoch == n_epochs - 1
    assert len(rec.states) == n_epochs
    final = list(model.parameters()) + [a for layer in model.parameter_layers() if isinstance(layer, nc.BatchNorm)
                                        for a in (layer.running_mean, layer.running_var)]
    want = rec.states[best] if restore else rec.states[-1]
    for i, (a, b) in enumerate(zip(final, want)):
        assert np.array_equal(a, b), f"array {i} is not the {'best' if restore else 'last'} epoch's"
    if restore:
        assert model.evaluate(*noise_task()[1])["loss"] == pytest.approx(hist["val_loss"][best], rel=1e-12)
        assert not np.array_equal(rec.states[best][0], rec.states[-1][0])


# --------------------------------------------------------------------------------------------------
# epoch callbacks
# --------------------------------------------------------------------------------------------------
def test_callbacks_receive_epoch_and_metrics_and_false_stops():
    x, y = id_data(30)
    calls_a, calls_b = [], []

    def a(epoch, metrics):
        calls_a.append((epoch, dict(metrics)))
        return False if epoch == 2 else None

    def b(epoch, metrics):
        calls_b.append(epoch)
        return True

    hist = small_net().fit(x, y, epochs=10, batch_size=8, validation_data=(x[:9], y[:9]), callbacks=[a, b],
                           verbose=0)
    assert [e for e, _ in calls_a] == [0, 1, 2]
    assert calls_b == [0, 1, 2], "every callback runs in the stopping epoch"
    assert len(hist["loss"]) == 3
    for epoch, metrics in calls_a:
        assert set(metrics) == {"loss", "accuracy", "lr", "val_loss", "val_accuracy"}
        for key, value in metrics.items():
            assert value == hist[key][epoch]


def test_callback_hooks_and_no_stop():
    events = []

    class Hooked:
        def on_train_begin(self, model):
            events.append(("begin", model))

        def __call__(self, epoch, metrics):
            events.append(("epoch", epoch))

        def on_train_end(self, model):
            events.append(("end", model))

    x, y = id_data(20)
    model = small_net()
    hist = model.fit(x, y, epochs=3, callbacks=[Hooked()], verbose=0)
    assert len(hist["loss"]) == 3
    assert events == [("begin", model), ("epoch", 0), ("epoch", 1), ("epoch", 2), ("end", model)]


# --------------------------------------------------------------------------------------------------
# augmentation
# --------------------------------------------------------------------------------------------------
def test_augment_called_once_per_batch_with_the_batch_rows():
    x, y = id_data(23)
    probe = RowProbe()
    small_net().fit(x, y, epochs=2, batch_size=5, shuffle=False, augment=probe, verbose=0)
    assert len(probe.batches) == 2 * 5
    for i, batch in enumerate(probe.batches):
        s = (i % 5) * 5
        assert np.array_equal(batch, x[s:s + 5]), f"batch {i}"
    probe = RowProbe()
    small_net().fit(x, y, epochs=3, batch_size=4, shuffle=True, seed=0, augment=probe, verbose=0)
    assert len(probe.batches) == 3 * 6
    assert [len(b) for b in probe.batches[:6]] == [4, 4, 4, 4, 4, 3]
    for e in range(3):
        ids = np.concatenate([b[:, 0] for b in probe.batches[6 * e:6 * e + 6]])
        assert sorted(ids.tolist()) == list(range(23)), f"epoch {e} does not visit every row once"
        assert not np.array_equal(ids, np.arange(23))


@pytest.mark.parametrize("shuffle", [False, True])
def test_augmented_batches_are_what_the_model_trains_on(dtype, shuffle):
    x, y = id_data(26, seed=2)
    x = x.astype(dtype)
    a = small_net(dtype=dtype.name)
    b = small_net(dtype=dtype.name)
    ha = a.fit(x, y, optimizer=nc.SGD(lr=0.1, momentum=0.9), epochs=3, batch_size=6, shuffle=shuffle, seed=4,
               augment=lambda xb: xb * 0.5 - 1.0, verbose=0)
    hb = b.fit(x * 0.5 - 1.0, y, optimizer=nc.SGD(lr=0.1, momentum=0.9), epochs=3, batch_size=6, shuffle=shuffle,
               seed=4, verbose=0)
    assert ha["loss"] == hb["loss"]
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert np.array_equal(pa, pb)


def test_augment_does_not_touch_the_callers_data():
    x, y = id_data(12)
    x_before = x.copy()

    def destructive(xb):
        xb[...] = 0
        return xb

    small_net().fit(x, y, epochs=1, batch_size=4, augment=destructive, verbose=0)
    assert np.array_equal(x, x_before)


def noise_recovery(std, seed, n=64, d=64):
    """A zero-initialised Dense(d, n) trained one step on targets I_n with MSE: dW = -2 x_noisy^T / n^2,
    so with lr = n^2 / 2 the weight after the step is x_noisy^T."""
    x = np.random.default_rng(5).standard_normal((n, d))
    model = nc.Sequential([nc.Dense(d, n, bias=False, init="zeros")], dtype="float64", seed=0)
    model.fit(x, np.eye(n), loss="mse", optimizer=nc.SGD(lr=n * n / 2), epochs=1, batch_size=n, shuffle=False,
              seed=seed, augment=nc.GaussianNoise(std) if std is not None else None, verbose=0)
    return model.layers[0].weight.T - x, x


def test_noise_recovery_trick_without_noise():
    noise, _ = noise_recovery(None, seed=0)
    assert np.max(np.abs(noise)) < 1e-12


@pytest.mark.parametrize("std", [0.1, 2.0])
def test_gaussian_noise_statistics(std):
    noise, _ = noise_recovery(std, seed=1)
    z = noise.ravel() / std
    assert np.std(z) == pytest.approx(1.0, rel=0.04)
    assert abs(np.mean(z)) < 0.06
    assert np.mean(np.abs(z) > 2) == pytest.approx(0.0455, abs=0.012)
    assert abs(np.corrcoef(noise[:, :-1].ravel(), noise[:, 1:].ravel())[0, 1]) < 0.06
    assert abs(np.corrcoef(noise[:-1].ravel(), noise[1:].ravel())[0, 1]) < 0.06


def test_gaussian_noise_reproducible_and_changes_training():
    a, _ = noise_recovery(0.5, seed=1)
    b, _ = noise_recovery(0.5, seed=1)
    c, _ = noise_recovery(0.5, seed=2)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    zero, _ = noise_recovery(0.0, seed=1)
    assert np.max(np.abs(zero)) < 1e-12, "GaussianNoise(0) added noise"
    # in an ordinary run: noise changes the weights, the same seed reproduces them
    x, y = id_data(40, seed=3)

    def run(aug, seed):
        m = small_net()
        h = m.fit(x, y, epochs=2, batch_size=8, seed=seed, augment=aug, validation_data=(x, y), verbose=0)
        return m, h

    m1, h1 = run(nc.GaussianNoise(0.3), 5)
    m2, _ = run(nc.GaussianNoise(0.3), 5)
    m3, _ = run(None, 5)
    assert all(np.array_equal(p, q) for p, q in zip(m1.parameters(), m2.parameters()))
    assert not np.allclose(m1.parameters()[0], m3.parameters()[0])
    # no noise at evaluation time
    assert h1["val_loss"][-1] == pytest.approx(m1.evaluate(x, y)["loss"], rel=1e-12)


# --------------------------------------------------------------------------------------------------
# track_gradients
# --------------------------------------------------------------------------------------------------
def tracked_net(dtype):
    return nc.Sequential([nc.Dense(5, 7), nc.Tanh(), nc.Dense(7, 6, bias=False), nc.BatchNorm(6),
                          nc.Residual([nc.Dense(6, 6), nc.GELU()]), nc.Dense(6, 3)], dtype=dtype.name, seed=4)


def test_track_gradients_values(dtype):
    r = np.random.default_rng(0)
    x, y = r.standard_normal((22, 5)).astype(dtype), r.integers(0, 3, size=22)
    model = tracked_net(dtype)
    specs = ref.layer_specs(model)
    twin = tracked_net(dtype)
    hist = model.fit(x, y, optimizer=nc.SGD(lr=0.1, momentum=0.5), epochs=3, batch_size=5, shuffle=False,
                     track_gradients=True, verbose=0)
    gn = hist["grad_norm"]
    assert len(gn) == 3 and all(isinstance(e, list) and len(e) == 4 for e in gn)
    # by hand: the same steps through forward/backward, norms of each Dense weight gradient
    opt = nc.SGD(lr=0.1, momentum=0.5)
    dense = [la for la in twin.parameter_layers() if isinstance(la, nc.Dense)]
    for epoch in range(3):
        norms = np.zeros(4)
        for s in range(0, 22, 5):
            _, g = nc.CrossEntropyLoss()(twin.forward(x[s:s + 5], training=True), y[s:s + 5])
            twin.backward(g)
            norms += [np.linalg.norm(la.grad_weight.astype(np.float64)) for la in dense]
            opt.step(twin)
        np.testing.assert_allclose(gn[epoch], norms / 5, rtol=1e-5 if dtype == np.float32 else 1e-12)
    # and the float64 reference loop
    _, ref_hist = ref.train(specs, x, y, "cross_entropy", ref.SGD(0.1, momentum=0.5), epochs=3, batch_size=5)
    np.testing.assert_allclose(gn, ref_hist["grad_norm"], rtol=1e-4 if dtype == np.float32 else 1e-10)


def test_track_gradients_off_by_default():
    x, y = id_data(10)
    hist = small_net().fit(x, y, epochs=1, verbose=0)
    assert "grad_norm" not in hist


def test_track_gradients_with_augment_and_early_stop():
    x, y = id_data(20)
    hist = small_net().fit(x, y, epochs=5, batch_size=6, augment=lambda xb: xb, track_gradients=True,
                           callbacks=[lambda e, m: e < 1], verbose=0)
    assert len(hist["grad_norm"]) == 2 and all(len(e) == 2 and min(e) > 0 for e in hist["grad_norm"])


# --------------------------------------------------------------------------------------------------
# transfer learning
# --------------------------------------------------------------------------------------------------
def pretrained(dtype="float64"):
    r = np.random.default_rng(0)
    x, y = r.standard_normal((40, 5)), r.integers(0, 4, size=40)
    model = nc.Sequential([nc.Dense(5, 8), nc.BatchNorm(8), nc.ReLU(), nc.Residual([nc.Dense(8, 8), nc.Tanh()]),
                           nc.Dropout(0.2), nc.Dense(8, 4)], dtype=dtype, seed=0)
    model.fit(x, y, optimizer=nc.Adam(lr=0.01), epochs=3, batch_size=8, seed=0, verbose=0)
    return model


def body_arrays(model, k=3):
    out = []
    for layer in model.parameter_layers()[:k]:
        out += [a.copy() for key, a in layer._views_dict.items() if not key.startswith("grad_")]
    return out


def test_reused_layers_carry_trained_weights_copied_not_shared():
    old = pretrained()
    old.layers[0].trainable = False
    before = body_arrays(old)
    new = nc.Sequential(old.layers[:4] + [nc.Dense(8, 2)], dtype="float64", seed=1)
    assert all(a is not b for a, b in zip(new.layers, old.layers))
    assert not new.layers[0].trainable and new.layers[3].layers[0].trainable
    after = body_arrays(new)
    assert len(after) == len(before) == 2 + 4 + 2
    for a, b in zip(after, before):
        assert np.array_equal(a, b)
    x = np.random.default_rng(1).standard_normal((6, 5))
    features_old = nc.Sequential(old.layers[:4], dtype="float64").predict(x)
    features_new = nc.Sequential(new.layers[:4], dtype="float64").predict(x)
    assert np.array_equal(features_new, features_old)
    # not shared: training or editing the new model leaves the old one alone, and the reverse
    old_params = [p.copy() for p in old.parameters()]
    new.fit(x, np.array([0, 1, 0, 1, 1, 0]), optimizer=nc.SGD(lr=0.5), epochs=2, batch_size=3, verbose=0)
    new.layers[3].layers[0].weight[...] = 0
    for p, q in zip(old.parameters(), old_params):
        assert np.array_equal(p, q)
    assert np.array_equal(new.layers[0].weight, old.layers[0].weight), "the frozen layer moved"
    old.layers[1].running_mean[...] = 42
    assert not np.any(new.layers[1].running_mean == 42)


def test_reused_layers_keep_their_weights_after_the_source_model_is_gone():
    def body():
        model = pretrained()
        return model.layers[:4], body_arrays(model)

    layers, arrays = body()
    gc.collect()
    new = nc.Sequential(layers + [nc.Dense(8, 2)], dtype="float64", seed=1)
    for i, (a, b) in enumerate(zip(body_arrays(new), arrays)):
        assert np.array_equal(a, b), f"array {i}: the trained weights were replaced by a fresh initialisation"


def test_load_weights_from_model_and_file(tmp_path, dtype):
    src = pretrained()
    path = tmp_path / "src.npz"
    src.save(path)
    x = np.random.default_rng(2).standard_normal((7, 5))
    for source in (src, path, str(path)):
        dst = nc.Sequential([nc.Dense(5, 8), nc.BatchNorm(8), nc.ReLU(), nc.Residual([nc.Dense(8, 8), nc.Tanh()]),
                             nc.Dropout(0.2), nc.Dense(8, 4)], dtype=dtype.name, seed=5)
        copied = dst.load_weights(source)
        assert copied == [0, 1, 2, 3]
        assert dst.dtype == dtype
        for a, b in zip(body_arrays(dst, 4), body_arrays(src, 4)):
            assert np.array_equal(a, b.astype(dtype))
        assert_close(dst.predict(x), src.predict(x), dtype, factor=10.0)
    # copies: the source stays independent
    dst.layers[0].weight[...] = 0
    assert not np.all(src.layers[0].weight == 0)


def test_load_weights_strict_and_partial(dtype):
    src = pretrained()
    head_changed = nc.Sequential([nc.Dense(5, 8), nc.BatchNorm(8), nc.ReLU(),
                                  nc.Residual([nc.Dense(8, 8), nc.Tanh()]), nc.Dense(8, 2)], dtype=dtype.name,
                                 seed=5)
    snap = snapshot(head_changed)
    with pytest.raises(ValueError, match="layer 3"):
        head_changed.load_weights(src)
    assert_unchanged(head_changed, snap)
    head_before = head_changed.layers[-1].weight.copy()
    copied = head_changed.load_weights(src, strict=False)
    assert copied == [0, 1, 2]
    for a, b in zip(body_arrays(head_changed, 3), body_arrays(src, 3)):
        assert np.array_equal(a, b.astype(dtype))
    assert np.array_equal(head_changed.layers[-1].weight, head_before)


def test_load_weights_strict_requires_the_same_layers():
    """strict=True means every layer is matched (torch's strict / Keras' layer-count check): a source
    with fewer or more parameter layers is an error, not a silent partial copy."""
    src = pretrained()
    bigger = nc.Sequential([nc.Dense(5, 8), nc.BatchNorm(8), nc.ReLU(), nc.Residual([nc.Dense(8, 8), nc.Tanh()]),
                            nc.Dense(8, 4), nc.Tanh(), nc.Dense(4, 4)], dtype="float64", seed=5)
    snap = snapshot(bigger)
    with pytest.raises(ValueError):
        bigger.load_weights(src)
    assert_unchanged(bigger, snap)
    smaller = nc.Sequential([nc.Dense(5, 8), nc.BatchNorm(8)], dtype="float64", seed=5)
    snap = snapshot(smaller)
    with pytest.raises(ValueError):
        smaller.load_weights(src)
    assert_unchanged(smaller, snap)
    assert smaller.load_weights(src, strict=False) == [0, 1]


# --------------------------------------------------------------------------------------------------
# save / load
# --------------------------------------------------------------------------------------------------
def full_net(dtype="float64", seed=0):
    return nc.Sequential([nc.Dense(6, 10), nc.BatchNorm(10, momentum=0.3, eps=1e-3), nc.ELU(alpha=0.5),
                          nc.Dropout(0.25), nc.Residual([nc.Dense(10, 10), nc.GELU(), nc.Dropout(0.1),
                                                         nc.Residual([nc.BatchNorm(10), nc.Dense(10, 10)])]),
                          nc.Dense(10, 3)], dtype=dtype, seed=seed)


def describe(layers):
    out = []
    for layer in layers:
        cfg = dict(layer.config())
        cfg.pop("layers", None)
        out.append((cfg, layer.trainable, describe(layer.layers) if isinstance(layer, nc.Residual) else None))
    return out


def train_data(n=48):
    r = np.random.default_rng(3)
    return r.standard_normal((n, 6)), r.integers(0, 3, size=n)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_round_trip(tmp_path, dtype):
    model = full_net(dtype)
    model.layers[0].trainable = False
    x, y = train_data()
    model.fit(x, y, optimizer=nc.Adam(lr=0.01), epochs=2, batch_size=8, seed=0, verbose=0)
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = nc.load(path)
    assert describe(loaded.layers) == describe(model.layers)
    for a, b in zip(body_arrays(loaded, 99), body_arrays(model, 99)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    bns = [la for la in loaded.parameter_layers() if isinstance(la, nc.BatchNorm)]
    assert len(bns) == 2 and not np.array_equal(bns[0].running_var, np.ones(10)), "running statistics not trained"
    assert np.array_equal(loaded.predict(x), model.predict(x))
    assert loaded.optimizer is None


def test_save_with_optimizer_resumes_like_uninterrupted_training(tmp_path):
    x, y = train_data()
    a = full_net()
    a.fit(x, y, optimizer=nc.Adam(lr=0.01, betas=(0.8, 0.9), weight_decay=0.01, clip_norm=2.0), epochs=2,
          batch_size=8, seed=1, verbose=0)
    b = nc.load(_saved(a, tmp_path))
    assert isinstance(b.optimizer, nc.Adam) and b.optimizer.steps == a.optimizer.steps == 12
    assert b.optimizer.betas == (0.8, 0.9) and b.optimizer.clip_norm == 2.0 and b.optimizer.weight_decay == 0.01
    for sa, sb in zip(a.optimizer.states, b.optimizer.states):
        assert np.array_equal(sa, sb)
    ha = a.fit(x, y, epochs=2, batch_size=8, seed=2, verbose=0)
    hb = b.fit(x, y, epochs=2, batch_size=8, seed=2, verbose=0)
    assert ha["loss"] == hb["loss"]
    for pa, pb in zip(body_arrays(a, 99), body_arrays(b, 99)):
        assert np.array_equal(pa, pb)


def test_resume_without_optimizer_state_differs(tmp_path):
    """The check above is not vacuous: a fresh Adam on the loaded weights gives another result."""
    x, y = train_data()
    a = full_net()
    a.fit(x, y, optimizer=nc.Adam(lr=0.01), epochs=2, batch_size=8, seed=1, verbose=0)
    path = tmp_path / "w.npz"
    a.save(path)
    b = nc.load(path)
    a.fit(x, y, epochs=1, batch_size=8, seed=2, verbose=0)
    b.fit(x, y, optimizer=nc.Adam(lr=0.01), epochs=1, batch_size=8, seed=2, verbose=0)
    assert not np.array_equal(a.parameters()[0], b.parameters()[0])


def _saved(model, tmp_path):
    path = tmp_path / "with_opt.npz"
    model.save(path, include_optimizer=True)
    return path
