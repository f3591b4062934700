"""SGD (torch semantics, dampening 0) vs the reference over several steps, every option combination."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import neurocore as nc
import reference as ref
from conftest import assert_close

COMBOS = [
    (m, nest, wd)
    for m, nest, wd in itertools.product([0.0, 0.9], [False, True], [0.0, 0.01])
    if not (nest and m == 0.0)
]


def combo_id(c):
    return f"m{c[0]}-{'nesterov' if c[1] else 'plain'}-wd{c[2]}"


@pytest.mark.parametrize("combo", COMBOS, ids=[combo_id(c) for c in COMBOS])
def test_sgd_steps_match_reference(dtype, threads, combo, rng):
    momentum, nesterov, wd = combo
    model = nc.Sequential([nc.Dense(7, 17), nc.Tanh(), nc.Dense(17, 3, bias=False), nc.ReLU(), nc.Dense(3, 2)],
                          dtype=dtype.name, seed=1)
    opt = nc.SGD(lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=wd)
    params_ref = [p.astype(np.float64) for p in model.parameters()]
    ref_opt = ref.SGD(0.1, momentum, nesterov, wd)
    for step in range(5):
        x = rng.standard_normal((9, 7)).astype(dtype)
        model.forward(x)
        model.backward(rng.standard_normal((9, 2)).astype(dtype))
        grads = [g.astype(np.float64) for g in model.gradients()]
        opt.step(model)
        ref_opt.step(params_ref, grads)
        for i, (p, e) in enumerate(zip(model.parameters(), params_ref)):
            assert_close(p, e, dtype, factor=2.0, err_msg=f"step {step} parameter {i}")
        if dtype == np.float32:
            # keep the reference on the library's trajectory (float32 rounding of p); float64 runs free
            params_ref = [p.astype(np.float64) for p in model.parameters()]


def test_first_momentum_step_equals_plain_sgd(dtype, rng):
    """buf starts at 0, so the first momentum step is buf = g (not (1 - momentum) g or 0)."""
    def run(momentum, nesterov):
        model = nc.Sequential([nc.Dense(4, 3)], dtype=dtype.name, seed=2)
        x = np.linspace(-1, 1, 20).reshape(5, 4).astype(dtype)
        model.forward(x)
        model.backward(np.ones((5, 3), dtype=dtype))
        nc.SGD(lr=0.3, momentum=momentum, nesterov=nesterov).step(model)
        return [p.copy() for p in model.parameters()], [g.copy() for g in model.gradients()]

    plain, grads = run(0.0, False)
    mom, _ = run(0.9, False)
    nest, _ = run(0.9, True)
    for a, b in zip(plain, mom):
        assert np.array_equal(a, b)
    # nesterov first step: g + m * buf = 1.9 g
    start = nc.Sequential([nc.Dense(4, 3)], dtype=dtype.name, seed=2).parameters()
    for p0, pn, g in zip(start, nest, grads):
        assert_close(pn, p0.astype(np.float64) - 0.3 * 1.9 * g.astype(np.float64), dtype)


def test_momentum_state_persists_across_steps(dtype):
    """With a constant gradient g, momentum 0.9 moves p by lr*g*(1, 1.9, 2.71)."""
    model = nc.Sequential([nc.Dense(2, 1, bias=False)], dtype=dtype.name, seed=0)
    model.layers[0].weight[...] = 0
    x = np.array([[1.0, 2.0]], dtype=dtype)
    opt = nc.SGD(lr=0.1, momentum=0.9)
    w_hist = []
    for _ in range(3):
        model.forward(x)
        model.backward(np.ones((1, 1), dtype=dtype))  # grad_weight = x.T: constant
        opt.step(model)
        w_hist.append(model.layers[0].weight[:, 0].astype(np.float64).copy())
    g = np.array([1.0, 2.0])
    expected = [-0.1 * g * 1.0, -0.1 * g * (1.0 + 1.9), -0.1 * g * (1.0 + 1.9 + 2.71)]
    for got, exp in zip(w_hist, expected):
        assert_close(got, exp, dtype, factor=2.0)


def test_weight_decay_applies_to_all_parameters(dtype):
    model = nc.Sequential([nc.Dense(3, 2)], dtype=dtype.name, seed=0)
    model.layers[0].weight[...] = 1.0
    model.layers[0].bias[...] = 2.0
    model.zero_grad()
    nc.SGD(lr=0.5, weight_decay=0.1).step(model)
    np.testing.assert_allclose(model.layers[0].weight, 1.0 - 0.5 * 0.1 * 1.0, rtol=1e-6)
    np.testing.assert_allclose(model.layers[0].bias, 2.0 - 0.5 * 0.1 * 2.0, rtol=1e-6)


def test_optimizer_repr():
    text = repr(nc.SGD(lr=0.2, momentum=0.5, nesterov=True, weight_decay=1e-4))
    assert "SGD" in text and "0.2" in text and "0.5" in text


def test_optimizer_is_not_shared_between_models(dtype):
    """One SGD keeps one model's momentum. Reusing it for another model must either raise or start from zero
    momentum -- never hand over the first model's buffer, whether or not that model still exists."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(dtype)
    y = rng.integers(0, 3, size=32)

    def make():
        return nc.Sequential([nc.Dense(4, 8), nc.Tanh(), nc.Dense(8, 3)], dtype=dtype.name, seed=0)

    def train(model, opt):
        model.fit(x, y, loss="cross_entropy", optimizer=opt, epochs=1, batch_size=8, shuffle=False, verbose=0)
        return [p.copy() for p in model.parameters()]

    fresh = train(make(), nc.SGD(lr=0.1, momentum=0.9))

    opt = nc.SGD(lr=0.1, momentum=0.9)
    first = make()
    train(first, opt)
    with pytest.raises(ValueError, match="optimizer"):
        train(make(), opt)  # the first model is alive: its state must not be taken over

    opt = nc.SGD(lr=0.1, momentum=0.9)
    train(make(), opt)  # this model is garbage as soon as train returns
    try:
        reused = train(make(), opt)
    except ValueError as exc:
        assert "optimizer" in str(exc)
    else:
        for a, b in zip(reused, fresh):
            assert np.array_equal(a, b), "the new model started with the old model's momentum"
