"""Adam/AdamW, gradient clipping, frozen layers and learning-rate schedules vs the float64 reference
(torch.optim semantics); step by step through model.backward + opt.step and through fit(shuffle=False).
When torch is importable, Adam/AdamW/BatchNorm are also compared with torch itself."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import neurocore as nc
import reference as ref
from conftest import assert_close
from neurocore import schedules

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (it is in the benchmark venv only)")


def net(dtype, seed=1):
    return nc.Sequential([nc.Dense(5, 8), nc.Tanh(), nc.Dense(8, 6, bias=False), nc.BatchNorm(6), nc.GELU(),
                          nc.Residual([nc.Dense(6, 6), nc.Sigmoid()]), nc.Dense(6, 3)],
                         dtype=np.dtype(dtype).name, seed=seed)


def randomize_biases(model, rng):
    for layer in model.parameter_layers():
        if layer.bias is not None:
            layer.bias[...] = 0.3 * rng.standard_normal(layer.bias.shape)


# --------------------------------------------------------------------------------------------------
# Adam / AdamW
# --------------------------------------------------------------------------------------------------
ADAM_CASES = {
    "adam": ("adam", dict(lr=0.01)),
    "adam_wd": ("adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    "adamw": ("adamw", dict(lr=0.01, weight_decay=0.0)),
    "adamw_wd": ("adamw", dict(lr=0.02, betas=(0.5, 0.9), eps=1e-7, weight_decay=0.3)),
    "adam_beta0": ("adam", dict(lr=0.005, betas=(0.0, 0.5))),
}


@pytest.mark.parametrize("case", list(ADAM_CASES))
def test_adam_steps_match_reference(dtype, threads, case, rng):
    kind, kw = ADAM_CASES[case]
    model = net(dtype)
    randomize_biases(model, rng)
    opt = {"adam": nc.Adam, "adamw": nc.AdamW}[kind](**kw)
    ref_opt = {"adam": ref.Adam, "adamw": ref.AdamW}[kind](**kw)
    params_ref = [p.astype(np.float64) for p in model.parameters()]
    for step in range(6):
        x = rng.standard_normal((9, 5)).astype(dtype)
        model.forward(x, training=True)
        model.backward(rng.standard_normal((9, 3)).astype(dtype))
        grads = [g.astype(np.float64) for g in model.gradients()]
        norm = opt.step(model)
        ref_opt.step(params_ref, grads)
        assert norm == pytest.approx(ref.global_norm(grads), rel=1e-6 if dtype == np.float32 else 1e-12)
        for i, (p, e) in enumerate(zip(model.parameters(), params_ref)):
            assert_close(p, e, dtype, factor=4.0, err_msg=f"{case} step {step} parameter {i}")
        if dtype == np.float32:
            params_ref = [p.astype(np.float64) for p in model.parameters()]
    assert opt.steps == 6


def test_adamw_without_decay_equals_adam_and_decay_differs(dtype, rng):
    def run(opt):
        model = net(dtype)
        r = np.random.default_rng(0)
        for _ in range(4):
            model.forward(r.standard_normal((8, 5)), training=True)
            model.backward(r.standard_normal((8, 3)))
            opt.step(model)
        return [p.copy() for p in model.parameters()]

    a = run(nc.Adam(lr=0.01))
    b = run(nc.AdamW(lr=0.01, weight_decay=0.0))
    for pa, pb in zip(a, b):
        assert np.array_equal(pa, pb)
    c = run(nc.Adam(lr=0.01, weight_decay=0.1))
    d = run(nc.AdamW(lr=0.01, weight_decay=0.1))
    assert not np.allclose(c[0], d[0], rtol=0, atol=1e-6), "coupled and decoupled decay gave the same result"


@pytest.mark.parametrize("kind", ["sgd", "sgd_nesterov", "adam", "adamw"])
def test_decay_bias_false_decays_weights_only(dtype, threads, kind, rng):
    """decay_bias=False: every weight (Dense weights, BatchNorm scales) follows the rule with weight_decay,
    every bias vector follows it with weight_decay = 0 -- the reference run as two parameter groups."""
    kw = {"sgd": dict(lr=0.1, momentum=0.9, weight_decay=0.2), "sgd_nesterov": dict(lr=0.1, momentum=0.5,
          nesterov=True, weight_decay=0.3), "adam": dict(lr=0.01, weight_decay=0.5),
          "adamw": dict(lr=0.02, weight_decay=0.4)}[kind]
    cls, ref_cls = {"sgd": (nc.SGD, ref.SGD), "sgd_nesterov": (nc.SGD, ref.SGD), "adam": (nc.Adam, ref.Adam),
                    "adamw": (nc.AdamW, ref.AdamW)}[kind]
    model = net(dtype)
    randomize_biases(model, rng)
    opt = cls(**kw, decay_bias=False)
    names = [name for layer in model.parameter_layers() for name in ("weight", "bias")
             if getattr(layer, name, None) is not None]
    assert len(names) == len(model.parameters())
    groups = {True: [i for i, n in enumerate(names) if n == "weight"], False: [i for i, n in enumerate(names) if n == "bias"]}
    ref_opts = {True: ref_cls(**kw), False: ref_cls(**{**kw, "weight_decay": 0.0})}
    params_ref = [p.astype(np.float64) for p in model.parameters()]
    for step in range(4):
        model.forward(rng.standard_normal((9, 5)).astype(dtype), training=True)
        model.backward(rng.standard_normal((9, 3)).astype(dtype))
        grads = [g.astype(np.float64) for g in model.gradients()]
        opt.step(model)
        for decayed, idx in groups.items():
            ref_opts[decayed].step([params_ref[i] for i in idx], [grads[i] for i in idx])
        for i, (p, e) in enumerate(zip(model.parameters(), params_ref)):
            assert_close(p, e, dtype, factor=4.0, err_msg=f"{kind} step {step} {names[i]} {i}")
        if dtype == np.float32:
            params_ref = [p.astype(np.float64) for p in model.parameters()]
    assert nc.optim.optimizer_from_config(opt.config()).decay_bias is False


def test_adam_defaults_are_torchs():
    a = nc.Adam()
    assert (a.lr, tuple(a.betas), a.eps, a.weight_decay, a.clip_norm) == (1e-3, (0.9, 0.999), 1e-8, 0.0, None)
    w = nc.AdamW()
    assert (w.lr, tuple(w.betas), w.eps, w.weight_decay) == (1e-3, (0.9, 0.999), 1e-8, 0.01)


def regression_data(n, dtype, seed=0):
    r = np.random.default_rng(seed)
    return r.standard_normal((n, 5)).astype(dtype), r.standard_normal((n, 3)).astype(dtype)


@pytest.mark.parametrize("case", ["adam", "adam_wd", "adamw_wd"])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_fit_with_adam_matches_reference_loop(dtype, case, loss):
    kind, kw = ADAM_CASES[case]
    model = net(dtype)
    randomize_biases(model, np.random.default_rng(4))
    specs = ref.layer_specs(model)
    x, y = regression_data(23, dtype)
    if loss == "cross_entropy":
        y = np.random.default_rng(1).integers(0, 3, size=23)
    opt = {"adam": nc.Adam, "adamw": nc.AdamW}[kind](**kw)
    hist = model.fit(x, y, loss=loss, optimizer=opt, epochs=4, batch_size=5, shuffle=False, verbose=0)
    ref_opt = {"adam": ref.Adam, "adamw": ref.AdamW}[kind](**kw)
    trained, ref_hist = ref.train(specs, x, y, loss, ref_opt, epochs=4, batch_size=5)
    factor = 2e3 if dtype == np.float32 else 1e3   # 20 steps of accumulated rounding
    np.testing.assert_allclose(hist["loss"], ref_hist["loss"], rtol=ref_tol(dtype, factor))
    for i, (p, e) in enumerate(zip(model.parameters(), ref.seq_params(trained))):
        assert_close(p, e, dtype, factor=factor, err_msg=f"parameter {i}")
    stats = [b for layer in model.parameter_layers() if isinstance(layer, nc.BatchNorm)
             for b in (layer.running_mean, layer.running_var)]
    for got, exp in zip(stats, ref.seq_buffers(trained)):
        assert_close(got, exp, dtype, factor=factor, err_msg="running statistics")
    assert opt.steps == 20


def ref_tol(dtype, factor):
    return (1e-5 if dtype == np.float32 else 1e-12) * factor


# --------------------------------------------------------------------------------------------------
# gradient clipping
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [0.25, 0.999, 3.0], ids=["clipped", "barely", "not_clipped"])
def test_clip_norm_sgd_step_matches_reference(dtype, ratio, rng):
    model = net(dtype)
    x = rng.standard_normal((10, 5)).astype(dtype)
    model.forward(x, training=True)
    model.backward(rng.standard_normal((10, 3)).astype(dtype))
    grads = [g.astype(np.float64) for g in model.gradients()]
    norm = ref.global_norm(grads)
    clip = ratio * norm
    params_ref = [p.astype(np.float64) for p in model.parameters()]
    clipped, ref_norm = ref.clip_grads(grads, clip)
    ref.SGD(lr=0.5, momentum=0.9, weight_decay=0.01).step(params_ref, clipped)
    returned = nc.SGD(lr=0.5, momentum=0.9, weight_decay=0.01, clip_norm=clip).step(model)
    assert returned == pytest.approx(ref_norm, rel=1e-6 if dtype == np.float32 else 1e-12), "norm before clipping"
    for i, (p, e) in enumerate(zip(model.parameters(), params_ref)):
        assert_close(p, e, dtype, factor=4.0, err_msg=f"parameter {i}")


def test_clip_norm_limits_the_update_norm(dtype, rng):
    """Plain SGD with clip_norm=c moves the parameters by at most lr * c."""
    model = net(dtype)
    model.forward(rng.standard_normal((10, 5)).astype(dtype) * 5, training=True)
    model.backward(rng.standard_normal((10, 3)).astype(dtype) * 100)
    before = [p.astype(np.float64) for p in model.parameters()]
    norm = nc.SGD(lr=0.1, clip_norm=0.5).step(model)
    assert norm > 5.0
    moved = np.sqrt(sum(np.sum((p.astype(np.float64) - b) ** 2) for p, b in zip(model.parameters(), before)))
    assert moved == pytest.approx(0.1 * 0.5, rel=1e-4)


def test_clip_norm_adam_steps_match_reference(dtype, rng):
    """Clipping rescales each step differently, which Adam's moments remember."""
    model = net(dtype)
    opt = nc.Adam(lr=0.01, clip_norm=0.3)
    ref_opt = ref.Adam(lr=0.01)
    params_ref = [p.astype(np.float64) for p in model.parameters()]
    for step in range(5):
        model.forward(rng.standard_normal((7, 5)).astype(dtype) * (1 + step), training=True)
        model.backward(rng.standard_normal((7, 3)).astype(dtype))
        grads = [g.astype(np.float64) for g in model.gradients()]
        clipped, ref_norm = ref.clip_grads(grads, 0.3)
        assert opt.step(model) == pytest.approx(ref_norm, rel=1e-6 if dtype == np.float32 else 1e-12)
        ref_opt.step(params_ref, clipped)
        for i, (p, e) in enumerate(zip(model.parameters(), params_ref)):
            assert_close(p, e, dtype, factor=8.0, err_msg=f"step {step} parameter {i}")
        if dtype == np.float32:
            params_ref = [p.astype(np.float64) for p in model.parameters()]


def test_fit_with_clip_norm_matches_reference_loop(dtype):
    model = net(dtype)
    specs = ref.layer_specs(model)
    x, y = regression_data(20, dtype)
    y = y * 10  # large errors: most steps are clipped
    model.fit(x, y, loss="mse", optimizer=nc.SGD(lr=0.05, momentum=0.9, clip_norm=1.0), epochs=3, batch_size=6,
              shuffle=False, verbose=0)
    trained, hist = ref.train(specs, x, y, "mse", ref.SGD(0.05, momentum=0.9), epochs=3, batch_size=6,
                              clip_norm=1.0)
    assert sum(n > 1.0 for n in hist["step_norm"]) >= 6, "the reference run barely clips"
    for i, (p, e) in enumerate(zip(model.parameters(), ref.seq_params(trained))):
        assert_close(p, e, dtype, factor=1e3, err_msg=f"parameter {i}")


# --------------------------------------------------------------------------------------------------
# frozen layers
# --------------------------------------------------------------------------------------------------
def frozen_net(dtype, seed=3):
    return nc.Sequential([nc.Dense(4, 6), nc.Tanh(), nc.Dense(6, 5), nc.BatchNorm(5), nc.Dense(5, 3)],
                         dtype=np.dtype(dtype).name, seed=seed)


def trainable_mask(model):
    return [layer.trainable for layer in model.parameter_layers() for _ in range(2 if layer.bias is not None else 1)]


@pytest.mark.parametrize("freeze", [[2], [3], [2, 3], [0], [4]])
def test_frozen_layers_get_no_gradient_and_others_are_exact(dtype, freeze, rng):
    model = frozen_net(dtype)
    x0 = rng.standard_normal((8, 4)).astype(dtype)
    model.forward(x0, training=True)
    model.backward(rng.standard_normal((8, 3)).astype(dtype))
    old_grads = [g.copy() for g in model.gradients()]
    for i in freeze:
        model.layers[i].trainable = False
    mask = trainable_mask(model)
    specs = ref.layer_specs(model)
    x = rng.standard_normal((8, 4)).astype(dtype)
    out = model.forward(x, training=True)
    expected, cache = ref.seq_forward(specs, x, training=True)
    assert_close(out, expected, dtype, factor=20.0)
    dy = rng.standard_normal((8, 3)).astype(dtype)
    dx = model.backward(dy)
    exp_dx, exp_grads = ref.seq_backward(specs, cache, dy)
    assert_close(dx, exp_dx, dtype, factor=50.0, err_msg="dx through frozen layers")
    scale = max(np.abs(e).max() for e in exp_grads)
    for i, (g, old, e, trainable) in enumerate(zip(model.gradients(), old_grads, exp_grads, mask)):
        if trainable:
            assert_close(g, e, dtype, scale=scale, factor=50.0, err_msg=f"trainable grad {i}")
        else:
            assert np.array_equal(g, old), f"frozen grad {i} was touched"


@pytest.mark.parametrize("opt_kind", ["sgd", "adam", "adamw"])
def test_optimizers_leave_frozen_layers_unchanged(dtype, opt_kind, rng):
    model = frozen_net(dtype)
    model.layers[2].trainable = False
    model.layers[3].trainable = False
    mask = trainable_mask(model)
    frozen_before = [p.copy() for p, k in zip(model.parameters(), mask) if not k]
    nc_opt, ref_opt = {
        "sgd": (nc.SGD(lr=0.1, momentum=0.9, weight_decay=0.2, clip_norm=0.5), ref.SGD(0.1, 0.9, False, 0.2)),
        "adam": (nc.Adam(lr=0.01, weight_decay=0.2, clip_norm=0.5), ref.Adam(lr=0.01, weight_decay=0.2)),
        "adamw": (nc.AdamW(lr=0.01, weight_decay=0.5, clip_norm=0.5), ref.AdamW(lr=0.01, weight_decay=0.5)),
    }[opt_kind]
    params_ref = [p.astype(np.float64) for p, k in zip(model.parameters(), mask) if k]
    for step in range(3):
        model.forward(rng.standard_normal((8, 4)).astype(dtype), training=True)
        model.backward(rng.standard_normal((8, 3)).astype(dtype))
        grads = [g.astype(np.float64) for g, k in zip(model.gradients(), mask) if k]
        clipped, norm = ref.clip_grads(grads, 0.5)  # the norm counts trainable gradients only
        assert nc_opt.step(model) == pytest.approx(norm, rel=1e-6 if dtype == np.float32 else 1e-12)
        ref_opt.step(params_ref, clipped)
        trainable_now = [p for p, k in zip(model.parameters(), mask) if k]
        for i, (p, e) in enumerate(zip(trainable_now, params_ref)):
            assert_close(p, e, dtype, factor=8.0, err_msg=f"step {step} trainable parameter {i}")
        if dtype == np.float32:
            params_ref = [p.astype(np.float64) for p in trainable_now]
    for p, b in zip([p for p, k in zip(model.parameters(), mask) if not k], frozen_before):
        assert np.array_equal(p, b), "a frozen parameter moved"


def test_fit_with_frozen_layers_matches_reference_loop(dtype):
    model = nc.Sequential([nc.Dense(5, 7), nc.Tanh(), nc.Dense(7, 6), nc.ReLU(),
                           nc.Residual([nc.Dense(6, 6), nc.Tanh()]), nc.Dense(6, 3)], dtype=dtype.name, seed=2)
    model.layers[2].trainable = False
    model.layers[4].trainable = False  # a Residual freezes the layers inside it
    assert not model.layers[4].layers[0].trainable
    mask = trainable_mask(model)
    assert mask == [True, True, False, False, False, False, True, True]
    frozen_before = [p.copy() for p, k in zip(model.parameters(), mask) if not k]
    specs = ref.layer_specs(model)
    x, y = regression_data(18, dtype)
    hist = model.fit(x, y, loss="mse", optimizer=nc.AdamW(lr=0.01, weight_decay=0.3), epochs=3, batch_size=4,
                     shuffle=False, verbose=0)
    trained, ref_hist = ref.train(specs, x, y, "mse", ref.AdamW(lr=0.01, weight_decay=0.3), epochs=3,
                                  batch_size=4, trainable=mask)
    np.testing.assert_allclose(hist["loss"], ref_hist["loss"], rtol=ref_tol(dtype, 100))
    for i, (p, e) in enumerate(zip(model.parameters(), ref.seq_params(trained))):
        assert_close(p, e, dtype, factor=1e3, err_msg=f"parameter {i}")
    for p, b in zip([p for p, k in zip(model.parameters(), mask) if not k], frozen_before):
        assert np.array_equal(p, b), "a frozen parameter moved during fit"


def test_freeze_before_construction_and_unfreeze(dtype, rng):
    first = nc.Dense(4, 6)
    first.trainable = False
    model = nc.Sequential([first, nc.Tanh(), nc.Dense(6, 5), nc.BatchNorm(5), nc.Dense(5, 3)], dtype=dtype.name,
                          seed=3)
    assert not model.layers[0].trainable
    w0 = model.layers[0].weight.copy()
    x = rng.standard_normal((8, 4)).astype(dtype)
    opt = nc.SGD(lr=0.1)
    model.forward(x, training=True)
    model.backward(np.ones((8, 3), dtype=dtype))
    assert np.array_equal(model.layers[0].grad_weight, np.zeros((4, 6))), "a frozen layer got a gradient"
    opt.step(model)
    assert np.array_equal(model.layers[0].weight, w0)
    model.layers[0].trainable = True
    model.forward(x, training=True)
    model.backward(np.ones((8, 3), dtype=dtype))
    assert np.any(model.layers[0].grad_weight != 0)
    opt.step(model)
    assert not np.array_equal(model.layers[0].weight, w0), "an unfrozen layer was not updated"


# --------------------------------------------------------------------------------------------------
# learning-rate schedules
# --------------------------------------------------------------------------------------------------
BASE = 0.1
SCHEDULES = {
    "step": (lambda interval: schedules.StepDecay(3, gamma=0.5, interval=interval),
             lambda t: ref.step_decay_lr(BASE, t, 3, 0.5)),
    "exponential": (lambda interval: schedules.ExponentialDecay(0.8, interval=interval),
                    lambda t: ref.exponential_lr(BASE, t, 0.8)),
    "cosine": (lambda interval: schedules.CosineAnnealing(7, eta_min=0.01, interval=interval),
               lambda t: ref.cosine_lr(BASE, t, 7, 0.01)),
    "warmup": (lambda interval: schedules.LinearWarmup(4, start_factor=0.25, interval=interval),
               lambda t: ref.warmup_lr(BASE, t, 4, 0.25)),
    "warmup_cosine": (lambda interval: schedules.LinearWarmup(
        3, then=schedules.CosineAnnealing(10, interval=interval), interval=interval),
        lambda t: ref.warmup_lr(BASE, t, 3, 0.0, then=lambda b, s: ref.cosine_lr(b, s, 10))),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_closed_forms(name):
    make, closed = SCHEDULES[name]
    sched = make("epoch")
    got = [sched.lr(BASE, t) for t in range(40)]
    np.testing.assert_allclose(got, [closed(t) for t in range(40)], rtol=1e-14, atol=0)
    assert len(set(np.round(got, 12))) > 3, "the schedule does not change the rate"


@pytest.mark.parametrize("interval", ["epoch", "step"])
@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_history_lr_in_fit(name, interval):
    make, closed = SCHEDULES[name]
    model = nc.Sequential([nc.Dense(5, 4), nc.Tanh(), nc.Dense(4, 3)], seed=0)
    x, y = regression_data(22, np.float32)
    n_steps, epochs = 4, 9  # 22 rows in batches of 6
    hist = model.fit(x, y, loss="mse", optimizer=nc.SGD(lr=BASE), epochs=epochs, batch_size=6,
                     schedule=make(interval), verbose=0)
    if interval == "epoch":
        expected = [closed(e) for e in range(epochs)]
    else:  # the last step's rate of each epoch
        expected = [closed(e * n_steps + n_steps - 1) for e in range(epochs)]
    np.testing.assert_allclose(hist["lr"], expected, rtol=1e-12)


def test_history_lr_without_schedule():
    model = nc.Sequential([nc.Dense(5, 3)], seed=0)
    x, y = regression_data(10, np.float32)
    hist = model.fit(x, y, loss="mse", optimizer=nc.SGD(lr=0.07), epochs=3, verbose=0)
    assert hist["lr"] == [0.07] * 3


@pytest.mark.parametrize("interval", ["epoch", "step"])
def test_schedule_rates_are_the_ones_used(dtype, interval):
    """fit(shuffle=False) with a schedule equals the reference loop run with the closed-form rates."""
    make, closed = SCHEDULES["step"] if interval == "step" else SCHEDULES["cosine"]
    model = net(dtype)
    specs = ref.layer_specs(model)
    x, y = regression_data(17, dtype)
    model.fit(x, y, loss="mse", optimizer=nc.SGD(lr=BASE, momentum=0.5), epochs=4, batch_size=5, shuffle=False,
              schedule=make(interval), verbose=0)

    def lr_for_step(epoch, step, n_steps):
        return closed(epoch * n_steps + step) if interval == "step" else closed(epoch)

    trained, _ = ref.train(specs, x, y, "mse", ref.SGD(BASE, momentum=0.5), epochs=4, batch_size=5,
                           lr_for_step=lr_for_step)
    for i, (p, e) in enumerate(zip(model.parameters(), ref.seq_params(trained))):
        assert_close(p, e, dtype, factor=1e3, err_msg=f"parameter {i}")
    # and the run differs from one without the schedule
    plain, _ = ref.train(specs, x, y, "mse", ref.SGD(BASE, momentum=0.5), epochs=4, batch_size=5)
    assert not np.allclose(model.parameters()[0], ref.seq_params(plain)[0], rtol=1e-3, atol=1e-4)


def test_schedule_with_adam_fit(dtype):
    model = net(dtype)
    specs = ref.layer_specs(model)
    x, y = regression_data(15, dtype)
    sched = schedules.ExponentialDecay(0.5, interval="step")
    model.fit(x, y, loss="mse", optimizer=nc.Adam(lr=0.05), epochs=3, batch_size=4, shuffle=False, schedule=sched,
              verbose=0)
    trained, _ = ref.train(specs, x, y, "mse", ref.Adam(lr=0.05), epochs=3, batch_size=4,
                           lr_for_step=lambda e, s, n: ref.exponential_lr(0.05, e * n + s, 0.5))
    for i, (p, e) in enumerate(zip(model.parameters(), ref.seq_params(trained))):
        assert_close(p, e, dtype, factor=1e3, err_msg=f"parameter {i}")


PLATEAU_SEQ = [1.0, 0.9, 0.88, 0.87, 0.86, 0.8, 0.79, 0.78, 0.77, 0.76, 0.75, 0.7, 0.7, 0.7, 0.7, 0.7, 0.69,
               0.5, 0.6, 0.6]


@pytest.mark.parametrize("patience,min_delta,factor,min_lr", [(2, 0.05, 0.5, 0.02), (0, 0.0, 0.1, 0.0),
                                                                (1, 0.015, 0.3, 0.0)])
def test_reduce_on_plateau_synthetic(patience, min_delta, factor, min_lr):
    sched = schedules.ReduceLROnPlateau(monitor="val_loss", factor=factor, patience=patience, min_delta=min_delta,
                                        min_lr=min_lr)
    oracle = ref.ReduceLROnPlateau(BASE, factor, patience, min_delta, min_lr)
    got, expected = [sched.lr(BASE, 0)], [BASE]
    for epoch, value in enumerate(PLATEAU_SEQ):
        sched.on_epoch_end(epoch, {"val_loss": value, "loss": 123.0})
        got.append(sched.lr(BASE, epoch + 1))
        expected.append(oracle.step(value))
    np.testing.assert_allclose(got, expected, rtol=1e-14)
    assert min(expected) < BASE


def test_reduce_on_plateau_known_sequence():
    """patience=2, min_delta=0.05 (absolute), factor 0.5, floor 0.02, as torch (threshold_mode='abs')."""
    sched = schedules.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, min_delta=0.05, min_lr=0.02)
    lrs = []
    for epoch, value in enumerate(PLATEAU_SEQ[:16]):
        sched.on_epoch_end(epoch, {"loss": value})
        lrs.append(sched.lr(BASE, epoch + 1))
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.025, 0.025,
                                 0.025, 0.02, 0.02])


def test_reduce_on_plateau_in_fit():
    model = nc.Sequential([nc.Dense(5, 4), nc.Tanh(), nc.Dense(4, 3)], dtype="float64", seed=0)
    x, y = regression_data(30, np.float64)
    sched = schedules.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=0.03)
    hist = model.fit(x, y, loss="mse", optimizer=nc.SGD(lr=0.1), epochs=12, batch_size=10, shuffle=False,
                     schedule=sched, verbose=0)
    oracle = ref.ReduceLROnPlateau(0.1, 0.5, 1, 0.03)
    expected = [0.1] + [oracle.step(v) for v in hist["loss"][:-1]]
    np.testing.assert_allclose(hist["lr"], expected, rtol=1e-14)
    assert 0 < hist["lr"][-1] < 0.1 and hist["lr"][3] == 0.1, "the check is vacuous"


# --------------------------------------------------------------------------------------------------
# against torch itself (benchmark venv only)
# --------------------------------------------------------------------------------------------------
def torch_twin(model):
    """A torch.nn.Sequential with the model's parameters (Linear stores W transposed)."""
    import torch

    mods = []
    for layer in model.layers:
        if isinstance(layer, nc.Dense):
            lin = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None,
                                  dtype=torch.float64)
            with torch.no_grad():
                lin.weight.copy_(torch.tensor(layer.weight.T.astype(np.float64)))
                if layer.bias is not None:
                    lin.bias.copy_(torch.tensor(layer.bias.astype(np.float64)))
            mods.append(lin)
        elif isinstance(layer, nc.BatchNorm):
            bn = torch.nn.BatchNorm1d(layer.features, momentum=layer.momentum, eps=layer.eps, dtype=torch.float64)
            with torch.no_grad():
                bn.weight.copy_(torch.tensor(layer.weight.astype(np.float64)))
                bn.bias.copy_(torch.tensor(layer.bias.astype(np.float64)))
            mods.append(bn)
        elif isinstance(layer, nc.GELU):
            mods.append(torch.nn.GELU())
        elif isinstance(layer, nc.Tanh):
            mods.append(torch.nn.Tanh())
        else:
            raise TypeError(layer)
    return torch.nn.Sequential(*mods)


def torch_params(tmodel):
    """In neurocore's parameters() order and layout."""
    out = []
    for m in tmodel:
        if hasattr(m, "weight") and m.weight is not None:
            w = m.weight.detach().numpy()
            out.append(w.T if w.ndim == 2 else w)
            if m.bias is not None:
                out.append(m.bias.detach().numpy())
    return out


@needs_torch
@pytest.mark.parametrize("kind", ["adam", "adamw"])
def test_adam_and_batchnorm_step_for_step_against_torch(kind):
    import torch

    # no bias in front of BatchNorm: its gradient is rounding noise, which Adam would amplify
    model = nc.Sequential([nc.Dense(5, 7, bias=False), nc.BatchNorm(7, momentum=0.2), nc.GELU(),
                           nc.Dense(7, 4, bias=False), nc.BatchNorm(4), nc.Tanh(), nc.Dense(4, 3)],
                          dtype="float64", seed=0)
    tmodel = torch_twin(model)
    tmodel.train()
    kw = dict(lr=0.01, betas=(0.85, 0.99), eps=1e-7, weight_decay=0.1)
    opt = (nc.Adam if kind == "adam" else nc.AdamW)(**kw)
    topt = (torch.optim.Adam if kind == "adam" else torch.optim.AdamW)(tmodel.parameters(), **kw)
    rng = np.random.default_rng(0)
    for step in range(8):
        x = rng.standard_normal((11, 5)) * 2 + 1
        y = rng.integers(0, 3, size=11)
        value, gout = nc.CrossEntropyLoss()(model.forward(x, training=True), y)
        model.backward(gout)
        opt.step(model)
        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(tmodel(torch.tensor(x)), torch.tensor(y))
        tloss.backward()
        topt.step()
        assert value == pytest.approx(tloss.item(), rel=1e-12)
        for i, (p, e) in enumerate(zip(model.parameters(), torch_params(tmodel))):
            assert_close(p, e, np.float64, factor=100.0, err_msg=f"step {step} parameter {i}")
        bns = [m for m in tmodel if isinstance(m, torch.nn.BatchNorm1d)]
        for layer, tbn in zip([la for la in model.layers if isinstance(la, nc.BatchNorm)], bns):
            assert_close(layer.running_mean, tbn.running_mean.numpy(), np.float64, factor=100.0)
            assert_close(layer.running_var, tbn.running_var.numpy(), np.float64, factor=100.0)
    tmodel.eval()
    x = rng.standard_normal((6, 5))
    assert_close(model.predict(x), tmodel(torch.tensor(x)).detach().numpy(), np.float64, factor=100.0)
