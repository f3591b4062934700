"""Dropout, BatchNorm, Residual, GELU, ELU and the Dense initialisers vs the float64 reference.

Dropout masks come from the library's seeded generator, so they are recovered from the model: a Dense
with an identity weight in front of the Dropout makes ``out = x * mask``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import neurocore as nc
import reference as ref
from conftest import assert_close, assert_unchanged, snapshot


def eye_dense(d):
    """Dense(d, d) computing y = x exactly (identity weight, no bias)."""
    return nc.Dense(d, d, bias=False, init=np.eye(d))


def nonzero_input(rng, shape, dtype):
    """Entries with |x| in [0.5, 1.5]: out / x recovers a dropout mask exactly."""
    return (rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 1.5, size=shape)).astype(dtype)


def dropout_probe(d, p, dtype, seed=0):
    return nc.Sequential([eye_dense(d), nc.Dropout(p)], dtype=np.dtype(dtype).name, seed=seed)


def mask_of(out, x):
    return out.astype(np.float64) / x.astype(np.float64)


def randomize(model, rng, scale=0.5):
    """Non-trivial biases, BatchNorm scale/shift and running statistics, so that every term shows."""
    for layer in model.parameter_layers():
        if isinstance(layer, nc.BatchNorm):
            layer.weight[...] = rng.uniform(0.5, 1.5, layer.features)
            layer.bias[...] = scale * rng.standard_normal(layer.features)
            layer.running_mean[...] = scale * rng.standard_normal(layer.features)
            layer.running_var[...] = rng.uniform(0.5, 2.0, layer.features)
        elif layer.bias is not None:
            layer.bias[...] = scale * rng.standard_normal(layer.bias.shape)


def in_width(model):
    return model.in_features


# --------------------------------------------------------------------------------------------------
# Dropout
# --------------------------------------------------------------------------------------------------
def test_dropout_inference_is_identity(dtype, rng):
    x = nonzero_input(rng, (37, 19), dtype)
    probe = dropout_probe(19, 0.6, dtype)
    assert np.array_equal(probe.predict(x), x)
    assert np.array_equal(probe.forward(x), x)
    assert np.array_equal(probe.forward(x, training=False), x)
    assert np.array_equal(probe.backward(np.ones_like(x)), np.ones_like(x)), "inference backward applied a mask"

    # in a network: predict/evaluate equal the network without dropout
    model = nc.Sequential([nc.Dense(6, 9), nc.ReLU(), nc.Dropout(0.7), nc.Dense(9, 4), nc.Dropout(0.3)],
                          dtype=dtype.name, seed=1)
    randomize(model, rng)
    xs = rng.standard_normal((23, 6)).astype(dtype)
    expected, _ = ref.seq_forward(ref.layer_specs(model), xs)  # inference: masks are not used
    assert_close(model.predict(xs), expected, dtype, factor=4.0)
    assert_close(model.forward(xs), expected, dtype, factor=4.0)
    y = rng.integers(0, 4, size=23)
    expected_loss, _ = ref.cross_entropy(expected, y)
    assert model.evaluate(xs, y)["loss"] == pytest.approx(expected_loss, rel=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_training_mask_values_and_rate(isa, dtype, p, rng):
    shape = (256, 256)
    x = nonzero_input(rng, shape, dtype)
    out = dropout_probe(256, p, dtype).forward(x, training=True)
    assert out.dtype == dtype and out.shape == shape
    mask = mask_of(out, x)
    dropped = out == 0
    keep = 1.0 / (1.0 - p)
    rel = 1e-6 if dtype == np.float32 else 1e-14
    assert np.all(np.abs(mask[~dropped] - keep) <= rel * keep), "kept entries are not scaled by 1/(1-p)"
    n = dropped.size
    rate = dropped.mean()
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(rate - p) < 5 * sigma, f"drop rate {rate} for p={p}"
    # no structure: per-row and per-column rates near p, neighbours uncorrelated, rows differ
    row_rates, col_rates = dropped.mean(axis=1), dropped.mean(axis=0)
    sigma_line = math.sqrt(p * (1 - p) / shape[1])
    assert np.all(np.abs(row_rates - p) < 6 * sigma_line)
    assert np.all(np.abs(col_rates - p) < 6 * sigma_line)
    d = dropped.astype(np.float64)
    assert abs(np.corrcoef(d[:, :-1].ravel(), d[:, 1:].ravel())[0, 1]) < 0.03
    assert abs(np.corrcoef(d[:-1].ravel(), d[1:].ravel())[0, 1]) < 0.03
    assert len({row.tobytes() for row in dropped}) == shape[0]
    # inverted dropout keeps the expectation: mean(out / x) ~ 1
    assert abs(mask.mean() - 1.0) < 6 * keep * sigma


def test_dropout_backward_uses_the_forward_mask(isa, dtype, rng):
    p = 0.4
    x = nonzero_input(rng, (33, 21), dtype)
    model = dropout_probe(21, p, dtype, seed=5)
    out1 = model.forward(x, training=True)
    out2 = model.forward(x, training=True)  # a new mask for every training forward
    mask1, mask2 = mask_of(out1, x), mask_of(out2, x)
    assert not np.array_equal(out1 == 0, out2 == 0), "two training forwards drew the same mask"
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx = model.backward(dy)  # the gradient of the last forward: mask2
    assert_close(dx, dy * mask2, dtype, factor=2.0)
    assert np.array_equal(dx == 0, out2 == 0)
    # a mask of zeros and 1/(1-p) means dx = dy * mask element for element
    assert not np.allclose(dx, dy * mask1)
    # the weight gradient sees the masked gradient too: dW = x^T (dy * mask)
    assert_close(model.layers[0].grad_weight, x.astype(np.float64).T @ (dy * mask2), dtype, factor=4.0)


def test_dropout_inside_network_backward_consistent_with_mask(dtype, rng):
    """[Dense, Tanh, Dropout, Dense with identity weight]: the output reveals tanh(xW+b) * mask, the
    reference rebuilds forward and backward from that mask."""
    p = 0.5
    model = nc.Sequential([nc.Dense(5, 8), nc.Tanh(), nc.Dropout(p), eye_dense(8)], dtype=dtype.name, seed=2)
    randomize(model, rng)
    specs = ref.layer_specs(model)
    x = rng.standard_normal((12, 5)).astype(dtype)
    h = np.tanh(x.astype(np.float64) @ specs[0][1] + specs[0][2])
    out = model.forward(x, training=True)
    mask = np.where(out == 0, 0.0, 1.0 / (1 - p))
    expected, cache = ref.seq_forward(specs, x, training=True, masks=[mask])
    assert_close(out, expected, dtype, scale=np.abs(h).max() / (1 - p), factor=4.0)
    dy = rng.standard_normal(out.shape).astype(dtype)
    dx = model.backward(dy)
    exp_dx, exp_grads = ref.seq_backward(specs, cache, dy)
    assert_close(dx, exp_dx, dtype, factor=8.0)
    for i, (g, e) in enumerate(zip(model.gradients(), exp_grads)):
        assert_close(g, e, dtype, factor=8.0, err_msg=f"grad {i}")


def test_dropout_p0_is_identity_in_training(dtype, rng):
    x = nonzero_input(rng, (40, 30), dtype)
    model = dropout_probe(30, 0.0, dtype)
    assert np.array_equal(model.forward(x, training=True), x)
    assert np.array_equal(model.backward(x), x)
    a = nc.Sequential([nc.Dense(6, 7), nc.Tanh(), nc.Dropout(0.0), nc.Dense(7, 3)], dtype=dtype.name, seed=4)
    b = nc.Sequential([nc.Dense(6, 7), nc.Tanh(), nc.Dense(7, 3)], dtype=dtype.name, seed=4)
    b.load_weights(a)
    xs = rng.standard_normal((9, 6)).astype(dtype)
    assert np.array_equal(a.forward(xs, training=True), b.forward(xs, training=True))
    g = rng.standard_normal((9, 3)).astype(dtype)
    assert np.array_equal(a.backward(g), b.backward(g))


def test_dropout_reproducible_with_model_seed(dtype, rng):
    x = nonzero_input(rng, (64, 48), dtype)
    a, b, c = (dropout_probe(48, 0.5, dtype, seed=s) for s in (11, 11, 12))
    outs_a = [a.forward(x, training=True) for _ in range(3)]
    outs_b = [b.forward(x, training=True) for _ in range(3)]
    for oa, ob in zip(outs_a, outs_b):
        assert np.array_equal(oa, ob)
    assert not np.array_equal(outs_a[0], c.forward(x, training=True)), "the seed does not change the mask"


def dropout_net(dtype, seed):
    return nc.Sequential([nc.Dense(8, 32), nc.ReLU(), nc.Dropout(0.5), nc.Dense(32, 16), nc.Tanh(),
                          nc.Dropout(0.2), nc.Dense(16, 3)], dtype=np.dtype(dtype).name, seed=seed)


def classification_data(n=96, d=8, k=3, seed=0, dtype=np.float64):
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, d)).astype(dtype)
    y = r.integers(0, k, size=n)
    return x, y


def test_dropout_fit_reproducible_with_fit_seed(dtype):
    x, y = classification_data(dtype=dtype)

    def run(model_seed, fit_seed, init_from=None):
        m = dropout_net(dtype, model_seed)
        if init_from is not None:
            m.load_weights(init_from)
        h = m.fit(x, y, optimizer=nc.SGD(lr=0.1), epochs=3, batch_size=16, seed=fit_seed, verbose=0)
        return m, h

    a, ha = run(0, 7)
    b, hb = run(0, 7)
    assert ha["loss"] == hb["loss"]
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert np.array_equal(pa, pb)
    # the fit seed decides the masks: another Sequential seed with the same starting weights agrees
    c, hc = run(99, 7, init_from=dropout_net(dtype, 0))
    assert hc["loss"] == ha["loss"]
    for pa, pc in zip(a.parameters(), c.parameters()):
        assert np.array_equal(pa, pc)
    d, hd = run(0, 8)
    assert hd["loss"] != ha["loss"]


def test_dropout_bitwise_independent_of_thread_count(dtype, restore_threads):
    x = nonzero_input(np.random.default_rng(3), (256, 256), dtype)
    xs, ys = classification_data(n=200, dtype=dtype)
    results = []
    for n in (1, 2):
        nc.set_num_threads(n)
        out = dropout_probe(256, 0.3, dtype, seed=9).forward(x, training=True)
        m = dropout_net(dtype, 0)
        m.fit(xs, ys, optimizer=nc.SGD(lr=0.05), epochs=2, batch_size=50, seed=1, verbose=0)
        results.append([out] + [p.copy() for p in m.parameters()])
    for i, (a, b) in enumerate(zip(*results)):
        assert np.array_equal(a, b), f"array {i} differs between 1 and 2 threads"


# --------------------------------------------------------------------------------------------------
# BatchNorm
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("momentum,eps", [(0.1, 1e-5), (0.3, 1e-2)])
def test_batchnorm_alone_train_and_eval_vs_reference(isa, dtype, momentum, eps, rng):
    f = 7
    model = nc.Sequential([eye_dense(f), nc.BatchNorm(f, momentum=momentum, eps=eps)], dtype=dtype.name, seed=0)
    bn = model.layers[1]
    bn.weight[...] = rng.uniform(0.5, 2.0, f)
    bn.bias[...] = rng.standard_normal(f)
    gamma, beta = bn.weight.astype(np.float64), bn.bias.astype(np.float64)
    rm, rv = np.zeros(f), np.ones(f)
    for step, batch in enumerate([16, 5, 2, 33]):
        x = (3.0 * rng.standard_normal((batch, f)) + rng.standard_normal(f) * 4).astype(dtype)
        out = model.forward(x, training=True)
        exp, xhat, invstd, rm, rv = ref.batchnorm_forward(x, gamma, beta, rm, rv, momentum, eps, training=True)
        assert_close(out, exp, dtype, factor=20.0, err_msg=f"train forward step {step}")
        assert_close(bn.running_mean, rm, dtype, factor=20.0, err_msg=f"running_mean step {step}")
        assert_close(bn.running_var, rv, dtype, factor=20.0, err_msg=f"running_var step {step}")
        dy = rng.standard_normal(x.shape).astype(dtype)
        dx = model.backward(dy)
        exp_dx, dgamma, dbeta = ref.batchnorm_backward(dy, xhat, invstd, gamma, training=True)
        assert_close(dx, exp_dx, dtype, scale=np.abs(gamma * invstd).max() * np.abs(dy).max(), factor=20.0,
                     err_msg=f"train dx step {step}")
        assert_close(bn.grad_weight, dgamma, dtype, factor=20.0, err_msg="dgamma")
        assert_close(bn.grad_bias, dbeta, dtype, factor=20.0, err_msg="dbeta")
        if dtype == np.float32:  # keep the reference on the library's float32 trajectory
            rm, rv = bn.running_mean.astype(np.float64), bn.running_var.astype(np.float64)
    # inference: the running statistics, which must not move
    x = (2.0 * rng.standard_normal((11, f)) + 1).astype(dtype)
    rm_before, rv_before = bn.running_mean.copy(), bn.running_var.copy()
    for out in (model.forward(x), model.predict(x), model.forward(x, training=False)):
        exp, xhat, invstd, _, _ = ref.batchnorm_forward(x, gamma, beta, rm, rv, momentum, eps, training=False)
        assert_close(out, exp, dtype, factor=8.0, err_msg="eval forward")
    assert np.array_equal(bn.running_mean, rm_before) and np.array_equal(bn.running_var, rv_before)
    model.forward(x)
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx = model.backward(dy)
    exp_dx, dgamma, dbeta = ref.batchnorm_backward(dy, xhat, invstd, gamma, training=False)
    assert_close(dx, exp_dx, dtype, factor=8.0, err_msg="eval dx")
    assert_close(bn.grad_weight, dgamma, dtype, factor=8.0, err_msg="eval dgamma")
    assert_close(bn.grad_bias, dbeta, dtype, factor=8.0, err_msg="eval dbeta")


def test_batchnorm_running_variance_is_unbiased(dtype):
    """One step with momentum 1 copies the batch statistics: mean and the n-1 variance."""
    x = np.array([[1.0, -2.0], [3.0, 0.0], [8.0, 4.0]], dtype=dtype)
    model = nc.Sequential([eye_dense(2), nc.BatchNorm(2, momentum=1.0)], dtype=dtype.name)
    model.forward(x, training=True)
    bn = model.layers[1]
    assert_close(bn.running_mean, x.astype(np.float64).mean(axis=0), dtype)
    assert_close(bn.running_var, x.astype(np.float64).var(axis=0, ddof=1), dtype)
    # and the normalisation itself used the biased variance
    out = model.forward(x, training=True)
    xf = x.astype(np.float64)
    assert_close(out, (xf - xf.mean(0)) / np.sqrt(xf.var(0) + 1e-5), dtype, factor=4.0)


BN_NETS = {
    "dense_bn_relu": lambda: [nc.Dense(5, 6), nc.BatchNorm(6), nc.ReLU(), nc.Dense(6, 3)],
    "bn_first": lambda: [nc.Dense(4, 4, bias=False), nc.BatchNorm(4, momentum=0.5), nc.Tanh(), nc.Dense(4, 4),
                         nc.BatchNorm(4, eps=1e-3), nc.Dense(4, 2)],
    "bn_after_activation": lambda: [nc.Dense(5, 7), nc.Sigmoid(), nc.BatchNorm(7), nc.Dense(7, 2)],
}


@pytest.mark.parametrize("net", list(BN_NETS))
def test_batchnorm_in_network_vs_reference(dtype, net, rng):
    model = nc.Sequential(BN_NETS[net](), dtype=dtype.name, seed=3)
    randomize(model, rng)
    specs = ref.layer_specs(model)
    for step, (batch, training) in enumerate([(10, True), (3, True), (8, False), (17, True), (1, False)]):
        x = (rng.standard_normal((batch, in_width(model))) * 2 + 0.5).astype(dtype)
        out = model.forward(x, training=training)
        expected, cache = ref.seq_forward(specs, x, training=training)
        assert_close(out, expected, dtype, factor=40.0, err_msg=f"forward step {step}")
        stats = [b for layer in model.parameter_layers() if isinstance(layer, nc.BatchNorm)
                 for b in (layer.running_mean, layer.running_var)]
        for got, exp in zip(stats, ref.seq_buffers(specs)):
            assert_close(got, exp, dtype, factor=40.0, err_msg=f"running statistics step {step}")
        dy = rng.standard_normal(out.shape).astype(dtype)
        dx = model.backward(dy)
        exp_dx, exp_grads = ref.seq_backward(specs, cache, dy)
        assert_close(dx, exp_dx, dtype, factor=200.0, err_msg=f"dx step {step}")
        grads = model.gradients()
        assert len(grads) == len(exp_grads)
        # a bias before BatchNorm has a zero gradient (the mean is removed): errors are relative to
        # the largest gradient
        scale = max(np.abs(e).max() for e in exp_grads)
        for i, (g, e) in enumerate(zip(grads, exp_grads)):
            assert_close(g, e, dtype, scale=scale, factor=200.0, err_msg=f"grad {i} step {step}")
        if dtype == np.float32:
            specs = ref.layer_specs(model)


def test_batchnorm_views(dtype, rng):
    model = nc.Sequential([nc.Dense(3, 5), nc.BatchNorm(5), nc.Dense(5, 2)], dtype=dtype.name, seed=0)
    bn = model.layers[1]
    for name in ("weight", "bias", "running_mean", "running_var", "grad_weight", "grad_bias"):
        arr = getattr(bn, name)
        assert arr.shape == (5,) and arr.dtype == dtype, name
    assert np.array_equal(bn.weight, np.ones(5)) and np.array_equal(bn.bias, np.zeros(5))
    assert np.array_equal(bn.running_mean, np.zeros(5)) and np.array_equal(bn.running_var, np.ones(5))
    assert model.n_parameters == 3 * 5 + 5 + 2 * 5 + 5 * 2 + 2
    params = model.parameters()
    assert len(params) == 6
    assert np.shares_memory(params[2], bn.weight) and np.shares_memory(params[3], bn.bias)
    grads = model.gradients()
    assert np.shares_memory(grads[2], bn.grad_weight) and np.shares_memory(grads[3], bn.grad_bias)
    with pytest.raises(ValueError):
        bn.grad_weight[0] = 1.0
    # the views are live: writing the scale and shift changes the output
    x = rng.standard_normal((6, 3)).astype(dtype)
    before = model.forward(x)
    bn.weight[...] = 2.0
    bn.bias[...] = 0.5
    specs = ref.layer_specs(model)
    assert specs[1][1][0] == 2.0 and specs[1][2][0] == 0.5
    after = model.forward(x)
    assert not np.allclose(before, after)
    assert_close(after, ref.seq_forward(specs, x)[0], dtype, factor=8.0)
    bn.weight = np.arange(5)  # assignment through the property copies into the buffer
    assert np.array_equal(params[2], np.arange(5))
    # the running statistics are live too
    bn.running_mean[...] = 1.0
    bn.running_var[...] = 4.0
    assert_close(model.forward(x), ref.seq_forward(ref.layer_specs(model), x)[0], dtype, factor=8.0)


def test_batchnorm_batch_of_one_in_training_is_rejected(dtype, rng):
    model = nc.Sequential([nc.Dense(3, 4), nc.BatchNorm(4), nc.Dense(4, 2)], dtype=dtype.name, seed=0)
    model.forward(rng.standard_normal((5, 3)), training=True)
    bn = model.layers[1]
    snap = snapshot(model)
    stats = bn.running_mean.copy(), bn.running_var.copy()
    x1 = rng.standard_normal((1, 3)).astype(dtype)
    with pytest.raises(ValueError, match="more than one"):
        model.forward(x1, training=True)
    assert_unchanged(model, snap)
    assert np.array_equal(bn.running_mean, stats[0]) and np.array_equal(bn.running_var, stats[1])
    # inference with one sample is fine
    assert model.predict(x1).shape == (1, 2)
    assert model.forward(x1).shape == (1, 2)


@pytest.mark.parametrize("n,batch_size", [(9, 4), (1, 8), (6, 1)])
def test_batchnorm_fit_with_batches_of_one_is_rejected(dtype, n, batch_size, rng):
    """fit's batches must all hold >= 2 rows with BatchNorm (torch raises for a batch of one)."""
    model = nc.Sequential([nc.Dense(3, 4), nc.BatchNorm(4), nc.Dense(4, 2)], dtype=dtype.name, seed=0)
    bn = model.layers[1]
    snap = snapshot(model)
    x = rng.standard_normal((n, 3)).astype(dtype)
    y = rng.integers(0, 2, size=n)
    with pytest.raises(ValueError, match="batch"):
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    assert_unchanged(model, snap)
    assert np.array_equal(bn.running_mean, np.zeros(4)) and np.array_equal(bn.running_var, np.ones(4))


# --------------------------------------------------------------------------------------------------
# Residual
# --------------------------------------------------------------------------------------------------
RES_NETS = {
    "simple": lambda: [nc.Dense(5, 6), nc.Residual([nc.Dense(6, 6), nc.Tanh(), nc.Dense(6, 6)]), nc.ReLU(),
                       nc.Dense(6, 3)],
    "nested": lambda: [nc.Dense(4, 6), nc.Residual([nc.Dense(6, 8), nc.GELU(), nc.Dense(8, 6),
                                                    nc.Residual([nc.Dense(6, 6), nc.Sigmoid()])]),
                       nc.Dense(6, 2)],
    "bn_dropout0": lambda: [nc.Dense(5, 6), nc.Residual([nc.Dense(6, 6), nc.BatchNorm(6), nc.ReLU(),
                                                         nc.Dropout(0.0), nc.Dense(6, 6)]), nc.Dense(6, 2)],
    "first_layer": lambda: [nc.Residual([nc.Dense(4, 4), nc.Tanh()]), nc.Dense(4, 2)],
    "activation_only": lambda: [nc.Dense(3, 4), nc.Residual([nc.Tanh()]), nc.Dense(4, 2)],
    "consecutive": lambda: [nc.Dense(3, 5), nc.Residual([nc.Dense(5, 5), nc.Sigmoid()]),
                            nc.Residual([nc.LeakyReLU(0.2), nc.Dense(5, 5, bias=False)]), nc.Dense(5, 2)],
    "last_layer": lambda: [nc.Dense(3, 4), nc.Tanh(), nc.Residual([nc.Dense(4, 4)])],
    "deep_nesting": lambda: [nc.Dense(3, 4), nc.Residual([nc.Residual([nc.Residual([nc.Dense(4, 4), nc.Tanh()])]),
                                                          nc.Dense(4, 4)]), nc.Dense(4, 1)],
}


@pytest.mark.parametrize("net", list(RES_NETS))
def test_residual_forward_backward_vs_reference(isa, dtype, net, rng):
    model = nc.Sequential(RES_NETS[net](), dtype=dtype.name, seed=1)
    randomize(model, rng)
    specs = ref.layer_specs(model)
    for batch, training in [(7, False), (4, True), (13, True), (2, False)]:
        x = rng.standard_normal((batch, in_width(model))).astype(dtype)
        out = model.forward(x, training=training)
        expected, cache = ref.seq_forward(specs, x, training=training)
        assert_close(out, expected, dtype, factor=20.0, err_msg=f"forward {net} training={training}")
        dy = rng.standard_normal(out.shape).astype(dtype)
        dx = model.backward(dy)
        exp_dx, exp_grads = ref.seq_backward(specs, cache, dy)
        assert_close(dx, exp_dx, dtype, factor=50.0, err_msg=f"dx {net} training={training}")
        grads = model.gradients()
        assert len(grads) == len(exp_grads)
        scale = max(np.abs(e).max() for e in exp_grads)
        for i, (g, e) in enumerate(zip(grads, exp_grads)):
            assert_close(g, e, dtype, scale=scale, factor=50.0, err_msg=f"grad {i} {net} training={training}")
        if dtype == np.float32:
            specs = ref.layer_specs(model)


def test_residual_adds_its_input(dtype, rng):
    """y = x + f(x): a block whose Dense has zero weights and bias b gives x + b."""
    b = rng.standard_normal(4)
    model = nc.Sequential([eye_dense(4), nc.Residual([nc.Dense(4, 4, init="zeros")])], dtype=dtype.name)
    model.layers[1].layers[0].bias[...] = b
    x = rng.standard_normal((6, 4)).astype(dtype)
    assert_close(model.forward(x), x.astype(np.float64) + b, dtype)
    dy = rng.standard_normal((6, 4)).astype(dtype)
    assert_close(model.backward(dy), dy, dtype)  # the skip path passes dy, the zero weights add nothing
    assert model.parameter_layers() == [model.layers[0], model.layers[1].layers[0]]


# --------------------------------------------------------------------------------------------------
# GELU and ELU
# --------------------------------------------------------------------------------------------------
ACT_INPUTS = np.concatenate([np.linspace(-9, 9, 181), [0.0, 1e-8, -1e-8, 1e-3, -1e-3, 0.05, -0.05, 0.29, -0.29,
                                                       0.31, -0.31, -20.0, -50.0, 30.0]])


def act_layer(name, alpha):
    return nc.GELU() if name == "gelu" else nc.ELU(alpha=alpha)


@pytest.mark.parametrize("name,alpha", [("gelu", 0.0), ("elu", 1.0), ("elu", 0.3)])
def test_kernel_hooks_gelu_elu_vs_reference(isa, dtype, name, alpha, rng):
    x = np.concatenate([ACT_INPUTS, rng.standard_normal(41) * 0.2]).reshape(4, -1).astype(dtype)
    y = nc._core.activation_forward(name, x, alpha=alpha)
    assert y.dtype == dtype
    # errors relative to |f(x)| + |x| (GELU's 1 + erf(x / sqrt 2) cancels for x << 0, as in torch)
    assert_close(y, ref.act_forward(name, x, alpha), dtype, scale=np.abs(x), factor=4.0, err_msg=f"{name} y")
    dy = rng.standard_normal(x.shape).astype(dtype)
    # backward takes the forward output, except GELU which takes its input
    dx = nc._core.activation_backward(name, x if name == "gelu" else y, dy, alpha=alpha)
    grad = ref.gelu_grad(x) if name == "gelu" else ref.elu_grad(x, alpha)
    assert_close(dx, grad * dy, dtype, scale=np.abs(dy), factor=4.0, err_msg=f"{name} dx")


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "lone"])
@pytest.mark.parametrize("name,alpha", [("gelu", 0.0), ("elu", 1.0), ("elu", 0.3)])
def test_gelu_elu_layers_elementwise(isa, dtype, name, alpha, fused):
    """Exact values: with an identity Dense, the network computes act(x) or act(x) after the product."""
    x = np.tile(ACT_INPUTS, (3, 1)).astype(dtype)
    d = x.shape[1]
    layers = [eye_dense(d), act_layer(name, alpha)] if fused else [act_layer(name, alpha), eye_dense(d)]
    model = nc.Sequential(layers, dtype=dtype.name)
    out = model.forward(x)
    assert_close(out, ref.act_forward(name, x, alpha), dtype, scale=np.abs(x), factor=4.0, err_msg="forward")
    dy = np.ones_like(x)
    dx = model.backward(dy)
    grad = ref.gelu_grad(x) if name == "gelu" else ref.elu_grad(x, alpha)
    assert_close(dx, grad, dtype, scale=dy, factor=4.0, err_msg="backward")


GE_NETS = {
    "gelu_fused": lambda: [nc.Dense(4, 9), nc.GELU(), nc.Dense(9, 3)],
    "elu_fused": lambda: [nc.Dense(4, 9), nc.ELU(alpha=0.3), nc.Dense(9, 3), nc.ELU()],
    "gelu_lone": lambda: [nc.GELU(), nc.Dense(4, 6), nc.Sigmoid(), nc.GELU(), nc.Dense(6, 3)],
    "elu_lone": lambda: [nc.Dense(4, 6), nc.Tanh(), nc.ELU(alpha=0.7), nc.Dense(6, 3), nc.BatchNorm(3),
                         nc.GELU()],
}


@pytest.mark.parametrize("net", list(GE_NETS))
def test_gelu_elu_in_networks_vs_reference(isa, dtype, net, rng):
    model = nc.Sequential(GE_NETS[net](), dtype=dtype.name, seed=2)
    randomize(model, rng)
    specs = ref.layer_specs(model)
    for batch in (1, 6, 37):
        x = (rng.standard_normal((batch, 4)) * 1.5).astype(dtype)
        out = model.forward(x)
        expected, cache = ref.seq_forward(specs, x)
        assert_close(out, expected, dtype, factor=8.0, err_msg=f"forward {net}")
        dy = rng.standard_normal(out.shape).astype(dtype)
        dx = model.backward(dy)
        exp_dx, exp_grads = ref.seq_backward(specs, cache, dy)
        assert_close(dx, exp_dx, dtype, factor=16.0, err_msg=f"dx {net}")
        for i, (g, e) in enumerate(zip(model.gradients(), exp_grads)):
            assert_close(g, e, dtype, factor=16.0, err_msg=f"grad {i} {net}")


# --------------------------------------------------------------------------------------------------
# initialisers
# --------------------------------------------------------------------------------------------------
FAN_IN, FAN_OUT = 300, 100
UNIFORM_LIMITS = {"he_uniform": math.sqrt(6 / FAN_IN), "glorot_uniform": math.sqrt(6 / (FAN_IN + FAN_OUT))}
NORMAL_STDS = {"he_normal": math.sqrt(2 / FAN_IN), "glorot_normal": math.sqrt(2 / (FAN_IN + FAN_OUT)),
               "lecun_normal": math.sqrt(1 / FAN_IN)}


def init_weights(init, dtype="float64", seed=0, next_layer=None):
    layers = [nc.Dense(FAN_IN, FAN_OUT, init=init)] + ([next_layer] if next_layer is not None else [])
    model = nc.Sequential(layers, dtype=dtype, seed=seed)
    return model.layers[0].weight.astype(np.float64), model.layers[0].bias


def assert_uniform(w, limit):
    assert np.max(np.abs(w)) <= limit * (1 + 1e-6), f"|w| beyond the limit {limit}"
    assert np.max(w) > 0.995 * limit and np.min(w) < -0.995 * limit
    assert np.std(w) == pytest.approx(limit / math.sqrt(3), rel=0.03)
    assert abs(np.mean(w)) < 0.03 * limit
    # flat histogram: each tenth of [-limit, limit] holds ~10% of the weights
    counts, _ = np.histogram(w, bins=10, range=(-limit, limit))
    assert np.all(np.abs(counts / w.size - 0.1) < 0.01)


@pytest.mark.parametrize("name", list(UNIFORM_LIMITS))
def test_uniform_initialisers(dtype, name):
    w, b = init_weights(name, dtype.name)
    assert_uniform(w, UNIFORM_LIMITS[name])
    assert np.array_equal(b, np.zeros(FAN_OUT))


@pytest.mark.parametrize("name", list(NORMAL_STDS))
def test_normal_initialisers(dtype, name):
    w, b = init_weights(name, dtype.name)
    std = NORMAL_STDS[name]
    assert np.std(w) == pytest.approx(std, rel=0.03)
    assert abs(np.mean(w)) < 0.03 * std
    # a normal, not a uniform: ~4.55% beyond 2 std, ~0.27% beyond 3 std (not truncated)
    assert np.mean(np.abs(w) > 2 * std) == pytest.approx(0.0455, abs=0.006)
    assert np.mean(np.abs(w) > 3 * std) == pytest.approx(0.0027, abs=0.0012)
    assert np.array_equal(b, np.zeros(FAN_OUT))


@pytest.mark.parametrize("name", list(UNIFORM_LIMITS) + list(NORMAL_STDS))
def test_initialisers_seeded(name):
    a, _ = init_weights(name, seed=3)
    b, _ = init_weights(name, seed=3)
    c, _ = init_weights(name, seed=4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_zeros_initialiser(dtype):
    w, b = init_weights("zeros", dtype.name)
    assert np.array_equal(w, np.zeros((FAN_IN, FAN_OUT))) and np.array_equal(b, np.zeros(FAN_OUT))


def test_explicit_array_is_used_exactly_and_copied(dtype, rng):
    w = rng.standard_normal((5, 3))
    layer = nc.Dense(5, 3, init=w)
    layer2 = nc.Dense(3, 2, init=[row[:2] for row in w.tolist()[:3]])  # nested lists work too
    w_before = w.copy()
    w[...] = 0  # the layer keeps what it was given
    model = nc.Sequential([layer, nc.ReLU(), layer2], dtype=dtype.name, seed=0)
    assert np.array_equal(model.layers[0].weight, w_before.astype(dtype))
    assert np.array_equal(model.layers[2].weight, w_before[:3, :2].astype(dtype))
    if dtype == np.float64:
        assert model.layers[0].weight.tobytes() == w_before.tobytes()
    assert np.array_equal(model.layers[0].bias, np.zeros(3))


@pytest.mark.parametrize("act,expected", [(nc.ReLU, "he_uniform"), (lambda: nc.LeakyReLU(0.1), "he_uniform"),
                                          (nc.Tanh, "glorot_uniform"), (nc.Sigmoid, "glorot_uniform"),
                                          (None, "glorot_uniform")])
def test_default_initialiser_he_before_relu_else_glorot(act, expected):
    w, _ = init_weights(None, next_layer=act() if act is not None else None)
    assert_uniform(w, UNIFORM_LIMITS[expected])
