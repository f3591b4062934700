"""Bad inputs to the new layers, optimizers, schedules, callbacks and fit options: a ValueError/TypeError
naming the rule and what was received, and the model left unchanged."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import neurocore as nc
from conftest import assert_unchanged, snapshot
from neurocore import schedules


def model_and_data(batchnorm=True):
    layers = [nc.Dense(4, 6), nc.BatchNorm(6), nc.ReLU(), nc.Dense(6, 3)] if batchnorm else \
        [nc.Dense(4, 6), nc.ReLU(), nc.Dense(6, 3)]
    model = nc.Sequential(layers, dtype="float64", seed=0)
    r = np.random.default_rng(0)
    return model, r.standard_normal((20, 4)), r.integers(0, 3, size=20)


def full_snapshot(model):
    stats = [a.copy() for layer in model.parameter_layers() if isinstance(layer, nc.BatchNorm)
             for a in (layer.running_mean, layer.running_var)]
    return snapshot(model), stats


def assert_model_unchanged(model, snap):
    assert_unchanged(model, snap[0])
    stats = [a for layer in model.parameter_layers() if isinstance(layer, nc.BatchNorm)
             for a in (layer.running_mean, layer.running_var)]
    for a, b in zip(stats, snap[1]):
        assert np.array_equal(a, b), "BatchNorm statistics changed"


# --------------------------------------------------------------------------------------------------
# Dropout
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [-0.1, -1e-12, 1.0, 1.5, 100.0])
def test_dropout_p_outside_unit_interval(p):
    with pytest.raises(ValueError, match=r"Dropout p must be in \[0, 1\), got " + re.escape(str(p))):
        nc.Dropout(p)


@pytest.mark.parametrize("p", [math.nan, math.inf, -math.inf])
def test_dropout_p_not_finite(p):
    with pytest.raises(ValueError, match="Dropout p"):
        nc.Dropout(p)


@pytest.mark.parametrize("p", ["0.5", None, True, [0.5], 1j])
def test_dropout_p_wrong_type(p):
    with pytest.raises(TypeError, match="Dropout p"):
        nc.Dropout(p)


def test_dropout_valid_edges():
    assert nc.Dropout(0.0).p == 0.0 and nc.Dropout(0.999).p == 0.999 and nc.Dropout(np.float32(0.5)).p == 0.5


# --------------------------------------------------------------------------------------------------
# BatchNorm
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,exc,pattern", [
    (dict(features=0), ValueError, "features must be >= 1, got 0"),
    (dict(features=-3), ValueError, "features must be >= 1"),
    (dict(features=2.0), TypeError, "features must be an integer"),
    (dict(features="4"), TypeError, "features must be an integer"),
    (dict(features=4, momentum=-0.1), ValueError, r"momentum must be in \[0, 1\], got -0.1"),
    (dict(features=4, momentum=1.5), ValueError, r"momentum must be in \[0, 1\]"),
    (dict(features=4, momentum=math.nan), ValueError, "momentum"),
    (dict(features=4, eps=0.0), ValueError, "eps must be > 0"),
    (dict(features=4, eps=-1e-5), ValueError, "eps must be > 0"),
    (dict(features=4, eps="1e-5"), TypeError, "eps"),
])
def test_batchnorm_bad_arguments(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        nc.BatchNorm(**kwargs)


@pytest.mark.parametrize("layers,pattern", [
    (lambda: [nc.Dense(3, 4), nc.BatchNorm(5)], r"BatchNorm\(5\) expects 5 features .* produces 4"),
    (lambda: [nc.Dense(3, 4), nc.ReLU(), nc.BatchNorm(3), nc.Dense(3, 2)], r"BatchNorm\(3\) expects 3 .* produces 4"),
    (lambda: [nc.Dense(3, 4), nc.BatchNorm(4), nc.Dense(5, 2)], r"expects 5 inputs .* produces 4"),
    (lambda: [nc.BatchNorm(3), nc.Dense(4, 2)], r"expects 4 inputs .* produces 3"),
])
def test_batchnorm_features_mismatch(layers, pattern):
    with pytest.raises(ValueError, match=pattern):
        nc.Sequential(layers())


def test_batchnorm_features_mismatch_inside_residual():
    with pytest.raises(ValueError, match=r"BatchNorm\(5\) expects 5 features .* produces 4"):
        nc.Residual([nc.Dense(4, 4), nc.BatchNorm(5)])


def test_batchnorm_input_width_mismatch_at_call(rng):
    model, x, y = model_and_data()
    snap = full_snapshot(model)
    with pytest.raises(ValueError, match=r"4 columns, got shape \(5, 6\)"):
        model.forward(rng.standard_normal((5, 6)), training=True)
    assert_model_unchanged(model, snap)


# --------------------------------------------------------------------------------------------------
# Residual
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layers,w_in,w_out", [
    (lambda: [nc.Dense(4, 5)], 4, 5),
    (lambda: [nc.Dense(4, 6), nc.ReLU(), nc.Dense(6, 6)], 4, 6),
    (lambda: [nc.Dense(4, 4), nc.Tanh(), nc.Dense(4, 3)], 4, 3),
    (lambda: [nc.BatchNorm(4), nc.Dense(4, 2)], 4, 2),
], ids=["dense_4_5", "dense_4_6_6", "dense_4_4_3", "batchnorm_4_dense_2"])
def test_residual_width_mismatch(layers, w_in, w_out):
    """The message names the rule (a residual block keeps its width) and both widths."""
    with pytest.raises(ValueError) as info:
        nc.Residual(layers())
    msg = str(info.value)
    assert "width" in msg, f"the message does not name the rule: {msg!r}"
    assert str(w_in) in msg and str(w_out) in msg, msg


def test_residual_width_mismatch_with_the_layer_before():
    with pytest.raises(ValueError, match=r"residual block of width 5 after a layer producing 4"):
        nc.Sequential([nc.Dense(3, 4), nc.Residual([nc.Dense(5, 5)])])
    with pytest.raises(ValueError, match="expects 5 inputs"):
        nc.Sequential([nc.Dense(3, 4), nc.Residual([nc.Tanh()]), nc.Dense(5, 2)])


@pytest.mark.parametrize("arg,exc,pattern", [
    ([], ValueError, "at least one layer"),
    (nc.Dense(3, 3), TypeError, "expects a list of layers, got Dense"),
    (["relu"], TypeError, "layer 0 must be a neurocore layer, got str"),
    (3, TypeError, "expects a list of layers"),
])
def test_residual_bad_layer_lists(arg, exc, pattern):
    with pytest.raises(exc, match=pattern):
        nc.Residual(arg)


def test_residual_layer_reused():
    inner = nc.Dense(3, 3)
    with pytest.raises(ValueError, match="same layer object appears twice"):
        nc.Sequential([nc.Dense(3, 3), nc.Residual([inner]), nc.Residual([inner])])


# --------------------------------------------------------------------------------------------------
# initialisers, GELU/ELU
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("init", ["kaiming", "He_Uniform", "xavier_uniform", "", "glorot"])
def test_unknown_initialiser_name(init):
    with pytest.raises(ValueError, match=rf"unknown initialiser '{init}'; expected one of he_uniform, he_normal, "
                                         r"glorot_uniform, glorot_normal, lecun_normal, zeros"):
        nc.Dense(3, 2, init=init)


@pytest.mark.parametrize("init,exc,pattern", [
    (np.zeros((2, 3)), ValueError, r"init array must have shape \(3, 2\), got \(2, 3\)"),
    (np.zeros(6), ValueError, r"must have shape \(3, 2\)"),
    (np.full((3, 2), np.nan), ValueError, "finite"),
    (np.array([["a", "b"]] * 3), TypeError, "real numbers"),
    (42, ValueError, "must have shape"),
])
def test_bad_initialiser_arrays(init, exc, pattern):
    with pytest.raises(exc, match=pattern):
        nc.Dense(3, 2, init=init)


@pytest.mark.parametrize("alpha,exc", [(0.0, ValueError), (-1.0, ValueError), (math.nan, ValueError),
                                       ("1", TypeError)])
def test_elu_alpha(alpha, exc):
    with pytest.raises(exc, match="ELU alpha"):
        nc.ELU(alpha=alpha)


# --------------------------------------------------------------------------------------------------
# Adam / AdamW
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [nc.Adam, nc.AdamW])
@pytest.mark.parametrize("betas", [(1.0, 0.999), (0.9, 1.0), (-0.1, 0.999), (0.9, -1e-9), (1.5, 2.0)])
def test_adam_betas_outside_unit_interval(cls, betas):
    with pytest.raises(ValueError, match=rf"{cls.__name__} betas must each be in \[0, 1\), got "
                                         + re.escape(str(betas))):
        cls(betas=betas)


@pytest.mark.parametrize("cls", [nc.Adam, nc.AdamW])
@pytest.mark.parametrize("betas,exc", [((0.9,), TypeError), (0.9, TypeError), ((0.9, 0.99, 0.5), TypeError),
                                       (("0.9", 0.99), TypeError), ((0.9, math.nan), ValueError),
                                       (None, TypeError)])
def test_adam_betas_wrong_form(cls, betas, exc):
    with pytest.raises(exc, match="betas"):
        cls(betas=betas)


@pytest.mark.parametrize("cls", [nc.Adam, nc.AdamW])
@pytest.mark.parametrize("kwargs,pattern", [
    (dict(lr=0.0), "lr must be > 0"), (dict(lr=-1e-3), "lr must be > 0"),
    (dict(eps=0.0), "eps must be > 0"), (dict(eps=-1e-8), "eps must be > 0"),
    (dict(weight_decay=-0.1), "weight_decay must be >= 0"),
    (dict(clip_norm=0.0), "clip_norm must be > 0"), (dict(clip_norm=-1.0), "clip_norm must be > 0"),
])
def test_adam_other_hyper_parameters(cls, kwargs, pattern):
    with pytest.raises(ValueError, match=f"{cls.__name__} {pattern}"):
        cls(**kwargs)


def test_sgd_clip_norm():
    with pytest.raises(ValueError, match="SGD clip_norm must be > 0"):
        nc.SGD(clip_norm=0)
    with pytest.raises(TypeError, match="clip_norm"):
        nc.SGD(clip_norm="1")


def test_optimizer_bound_to_another_model(rng):
    a, x, y = model_and_data()
    b, _, _ = model_and_data()
    opt = nc.Adam()
    a.forward(x, training=True)
    a.backward(np.ones((20, 3)))
    opt.step(a)
    b.forward(x, training=True)
    b.backward(np.ones((20, 3)))
    snap = full_snapshot(b)
    with pytest.raises(ValueError, match="another model"):
        opt.step(b)
    assert_model_unchanged(b, snap)


# --------------------------------------------------------------------------------------------------
# schedules, callbacks, augmentation
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make,exc,pattern", [
    (lambda: schedules.StepDecay(0), ValueError, "step_size must be >= 1"),
    (lambda: schedules.StepDecay(2, gamma=0.0), ValueError, "gamma must be > 0"),
    (lambda: schedules.StepDecay(2, interval="batch"), ValueError, "interval must be 'epoch' or 'step'"),
    (lambda: schedules.ExponentialDecay(-0.5), ValueError, "gamma must be > 0"),
    (lambda: schedules.CosineAnnealing(0), ValueError, "t_max must be >= 1"),
    (lambda: schedules.CosineAnnealing(5, eta_min=-1.0), ValueError, "eta_min must be >= 0"),
    (lambda: schedules.LinearWarmup(0), ValueError, "warmup must be >= 1"),
    (lambda: schedules.LinearWarmup(3, start_factor=1.5), ValueError, r"start_factor must be in \[0, 1\]"),
    (lambda: schedules.LinearWarmup(3, then=schedules.CosineAnnealing(5, interval="epoch")), ValueError,
     "same interval"),
    (lambda: schedules.ReduceLROnPlateau(factor=1.0), ValueError, r"factor must be in \(0, 1\)"),
    (lambda: schedules.ReduceLROnPlateau(factor=0.0), ValueError, r"factor must be in \(0, 1\)"),
    (lambda: schedules.ReduceLROnPlateau(patience=-1), ValueError, "patience must be >= 0"),
    (lambda: schedules.StepDecay(2.5), TypeError, "step_size must be an integer"),
])
def test_bad_schedules(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


@pytest.mark.parametrize("make,exc,pattern", [
    (lambda: nc.EarlyStopping(patience=-1), ValueError, "patience must be >= 0"),
    (lambda: nc.EarlyStopping(patience=1.5), TypeError, "patience must be an integer"),
    (lambda: nc.EarlyStopping(mode="sideways"), ValueError, "mode must be 'min', 'max' or 'auto'"),
    (lambda: nc.EarlyStopping(monitor=3), TypeError, "monitor must be a metric name"),
    (lambda: nc.EarlyStopping(min_delta=math.nan), ValueError, "min_delta must be finite"),
    (lambda: nc.GaussianNoise(-0.1), ValueError, "GaussianNoise std must be >= 0, got -0.1"),
    (lambda: nc.GaussianNoise("0.1"), TypeError, "GaussianNoise std"),
])
def test_bad_callbacks_and_noise(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


def test_trainable_must_be_bool():
    model, _, _ = model_and_data()
    for value in ("no", 0, None):
        with pytest.raises(TypeError, match="trainable must be True or False"):
            model.layers[0].trainable = value
    assert model.layers[0].trainable is True


# --------------------------------------------------------------------------------------------------
# fit options: the model is unchanged after each error
# --------------------------------------------------------------------------------------------------
def _bad_rows(xb):
    return xb[:-1]


def _bad_cols(xb):
    return xb[:, :3]


def _nan(xb):
    out = xb.copy()
    out[0, 0] = np.nan
    return out


def _not_array(xb):
    return "noise"


FIT_CASES = {
    "split_one": (dict(validation_split=1.0), ValueError, r"validation_split must be in \[0, 1\), got 1.0"),
    "split_negative": (dict(validation_split=-0.2), ValueError, r"validation_split must be in \[0, 1\)"),
    "split_bool": (dict(validation_split=True), ValueError, "validation_split"),
    "split_and_data": (dict(validation_split=0.2, validation_data="later"), ValueError,
                       "validation_data or validation_split, not both"),
    "schedule_type": (dict(schedule=lambda e: 0.1), TypeError, "schedule must be a neurocore.schedules.Schedule"),
    "callback_type": (dict(callbacks=[3]), TypeError, "callbacks must be callables"),
    "augment_type": (dict(augment=3), TypeError, "augment must be a callable or neurocore.GaussianNoise"),
    "augment_rows": (dict(augment=_bad_rows), ValueError, "augment must return 5 rows, got 4"),
    "augment_cols": (dict(augment=_bad_cols), ValueError, r"4 columns, got shape \(5, 3\)"),
    "augment_nan": (dict(augment=_nan), ValueError, "finite"),
    "augment_str": (dict(augment=_not_array), TypeError, "real numbers"),
    "track_type": (dict(track_gradients="yes"), TypeError, "track_gradients must be True or False"),
    "optimizer_type": (dict(optimizer="adam"), TypeError, "optimizer must be an SGD, Adam or AdamW instance"),
}


@pytest.mark.parametrize("case", list(FIT_CASES))
def test_bad_fit_options_leave_the_model_unchanged(case):
    kwargs, exc, pattern = FIT_CASES[case]
    model, x, y = model_and_data()
    if kwargs.get("validation_data") == "later":
        kwargs = dict(kwargs, validation_data=(x[:4], y[:4]))
    snap = full_snapshot(model)
    with pytest.raises(exc, match=pattern):
        model.fit(x, y, epochs=2, batch_size=5, verbose=0, **kwargs)
    assert_model_unchanged(model, snap)


def test_validation_split_leaving_no_training_rows():
    model, x, y = model_and_data(batchnorm=False)
    snap = full_snapshot(model)
    with pytest.raises(ValueError, match="validation_split=0.9 leaves no training or no validation sample of 2"):
        model.fit(x[:2], y[:2], validation_split=0.9, verbose=0)
    assert_model_unchanged(model, snap)


def test_batchnorm_validation_split_leaving_a_batch_of_one():
    """21 rows, 20% held out: 16 training rows in batches of 5 leave a last batch of 1."""
    model, x, y = model_and_data()
    x, y = np.vstack([x, x[:1]]), np.concatenate([y, y[:1]])
    snap = full_snapshot(model)
    with pytest.raises(ValueError, match="last batch of 1"):
        model.fit(x, y, validation_split=0.2, batch_size=5, verbose=0)
    assert_model_unchanged(model, snap)


def test_monitoring_a_metric_fit_does_not_report():
    model, x, y = model_and_data()
    with pytest.raises(ValueError, match="EarlyStopping monitors 'val_loss', which this fit does not report"):
        model.fit(x, y, epochs=3, batch_size=5, callbacks=[nc.EarlyStopping()], verbose=0)
    model, x, y = model_and_data()
    with pytest.raises(ValueError, match="ReduceLROnPlateau monitors 'val_accuracy'"):
        model.fit(x, y, epochs=3, batch_size=5, schedule=schedules.ReduceLROnPlateau(monitor="val_accuracy"),
                  verbose=0)


def test_forward_training_flag_type():
    model, x, _ = model_and_data()
    snap = full_snapshot(model)
    with pytest.raises(TypeError, match="training must be True or False, got .*'yes'"):
        model.forward(x, training="yes")
    assert_model_unchanged(model, snap)


def test_a_single_callback_instead_of_a_list():
    """callbacks=EarlyStopping(...) (not in a list) is a common slip: the error names the parameter."""
    model, x, y = model_and_data()
    snap = full_snapshot(model)
    with pytest.raises(TypeError, match="callbacks"):
        model.fit(x, y, epochs=2, batch_size=5, callbacks=nc.EarlyStopping(monitor="loss"), verbose=0)
    assert_model_unchanged(model, snap)
