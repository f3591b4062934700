"""Sequential forward/backward vs the float64 reference; layer views, zero-copy, input layouts."""

from __future__ import annotations

import numpy as np
import pytest

import neurocore as nc
import reference as ref
from conftest import assert_close

STACKS = {
    "dense_relu_dense": lambda: [nc.Dense(5, 7), nc.ReLU(), nc.Dense(7, 3)],
    "sig_tanh_softmax": lambda: [nc.Dense(6, 9), nc.Sigmoid(), nc.Dense(9, 8), nc.Tanh(), nc.Dense(8, 4),
                                 nc.Softmax()],
    "leaky": lambda: [nc.Dense(4, 10), nc.LeakyReLU(alpha=0.1), nc.Dense(10, 3), nc.LeakyReLU(alpha=0.3)],
    "no_bias": lambda: [nc.Dense(5, 6, bias=False), nc.Tanh(), nc.Dense(6, 2, bias=False)],
    "mixed_bias": lambda: [nc.Dense(5, 6, bias=False), nc.Sigmoid(), nc.Dense(6, 2)],
    "activation_first": lambda: [nc.ReLU(), nc.Dense(5, 4), nc.Identity(), nc.Dense(4, 3)],
    "wide": lambda: [nc.Dense(33, 70), nc.ReLU(), nc.Dense(70, 17), nc.Tanh(), nc.Dense(17, 9)],
    "single_dense": lambda: [nc.Dense(3, 2)],
    "softmax_inside": lambda: [nc.Dense(5, 6), nc.Softmax(), nc.Dense(6, 3)],
    "stacked_activations": lambda: [nc.Dense(5, 6), nc.ReLU(), nc.Tanh(), nc.Dense(6, 2), nc.Sigmoid()],
}
BATCHES = [1, 5, 73, 2, 300, 3]  # growing and shrinking: the model's buffers must follow


def in_features(model):
    return next(layer.in_features for layer in model.layers if isinstance(layer, nc.Dense))


def make(name, dtype, seed=0):
    return nc.Sequential(STACKS[name](), dtype=np.dtype(dtype).name, seed=seed)


def randomize_biases(model, rng):
    """Default biases may be zero: give them values so that bias bugs are visible."""
    for layer in model.layers:
        if isinstance(layer, nc.Dense) and layer.bias is not None:
            layer.bias[...] = rng.standard_normal(layer.bias.shape)


@pytest.mark.parametrize("stack", list(STACKS))
def test_forward_backward_vs_reference(isa, threads, dtype, stack, rng):
    model = make(stack, dtype)
    randomize_biases(model, rng)
    specs = ref.layer_specs(model)
    d_in = in_features(model)
    for batch in BATCHES:
        x = rng.standard_normal((batch, d_in)).astype(dtype)
        out = model.forward(x)
        expected, cache = ref.seq_forward(specs, x)
        assert out.dtype == dtype
        assert_close(out, expected, dtype, factor=4.0, err_msg=f"forward {stack} batch={batch}")
        gout = rng.standard_normal(out.shape).astype(dtype)
        gx = model.backward(gout)
        exp_gx, exp_grads = ref.seq_backward(specs, cache, gout)
        assert gx.dtype == dtype
        assert_close(gx, exp_gx, dtype, factor=4.0, err_msg=f"dx {stack} batch={batch}")
        grads = model.gradients()
        assert len(grads) == len(exp_grads)
        for i, (g, e) in enumerate(zip(grads, exp_grads)):
            assert_close(g, e, dtype, factor=4.0, err_msg=f"grad {i} {stack} batch={batch}")


def test_layer_gradient_views_match_gradients(dtype, rng):
    model = make("mixed_bias", dtype)
    x = rng.standard_normal((8, 5)).astype(dtype)
    model.backward(rng.standard_normal(model.forward(x).shape).astype(dtype))
    g = model.gradients()
    dense = [layer for layer in model.layers if isinstance(layer, nc.Dense)]
    assert dense[0].grad_bias is None and dense[0].bias is None
    assert np.array_equal(dense[0].grad_weight, g[0])
    assert np.array_equal(dense[1].grad_weight, g[1])
    assert np.array_equal(dense[1].grad_bias, g[2])
    assert dense[1].grad_weight.shape == (6, 2) and dense[1].grad_bias.shape == (2,)


def test_backward_overwrites_gradients(dtype, rng):
    model = make("dense_relu_dense", dtype)
    x = rng.standard_normal((9, 5)).astype(dtype)
    gout = rng.standard_normal((9, 3)).astype(dtype)
    model.forward(x)
    model.backward(gout)
    first = [g.copy() for g in model.gradients()]
    assert any(np.any(g != 0) for g in first)
    model.forward(x)
    model.backward(gout)
    for a, b in zip(model.gradients(), first):
        assert np.array_equal(a, b), "backward accumulated instead of overwriting"
    model.zero_grad()
    for g in model.gradients():
        assert np.all(g == 0)


def test_gradient_views_are_read_only_and_live(dtype, rng):
    model = make("dense_relu_dense", dtype)
    layer = model.layers[0]
    gw = layer.grad_weight
    gb = layer.grad_bias
    for g in (gw, gb, *model.gradients()):
        assert not g.flags.writeable
        with pytest.raises(ValueError):
            g[...] = 1
    x = rng.standard_normal((4, 5)).astype(dtype)
    model.backward(rng.standard_normal(model.forward(x).shape).astype(dtype))
    # views fetched before backward see the new gradients
    assert np.array_equal(gw, model.layers[0].grad_weight)
    assert np.any(gw != 0)
    assert np.array_equal(gb, model.gradients()[1])


def test_weights_are_zero_copy_views(dtype, rng):
    model = make("dense_relu_dense", dtype)
    x = rng.standard_normal((4, 5)).astype(dtype)
    before = model.forward(x)
    w = model.layers[0].weight
    assert w.flags.writeable and w.shape == (5, 7) and w.dtype == dtype
    w[...] = 0
    model.layers[0].bias[...] = 0
    after = model.forward(x)
    # hidden layer is all zeros -> output equals the last bias
    b2 = model.layers[2].bias
    assert np.array_equal(after, np.broadcast_to(b2, after.shape))
    assert not np.array_equal(before, after)
    # writing through the view is seen by a fresh fetch and by parameters()
    assert np.all(model.layers[0].weight == 0)
    assert np.all(model.parameters()[0] == 0)


def test_parameters_are_live(dtype, rng):
    model = make("sig_tanh_softmax", dtype)
    params = model.parameters()
    assert [p.shape for p in params] == [(6, 9), (9,), (9, 8), (8,), (8, 4), (4,)]
    assert model.n_parameters == sum(p.size for p in params)
    new = rng.standard_normal((9, 8)).astype(dtype)
    params[2][...] = new
    assert np.array_equal(model.layers[2].weight, new)
    x = rng.standard_normal((3, 6)).astype(dtype)
    expected, _ = ref.seq_forward(ref.layer_specs(model), x)
    assert_close(model.forward(x), expected, dtype, factor=4.0)
    # an optimizer step is visible through arrays fetched before it
    model.backward(rng.standard_normal((3, 4)).astype(dtype))
    snapshot = [p.copy() for p in params]
    nc.SGD(lr=0.5).step(model)
    grads = model.gradients()
    for p, s, g in zip(params, snapshot, grads):
        assert_close(p, s.astype(np.float64) - 0.5 * g.astype(np.float64), dtype)
    assert any(not np.array_equal(p, s) for p, s in zip(params, snapshot))


def test_weight_assignment_copies_into_buffer(dtype, rng):
    model = make("dense_relu_dense", dtype)
    params = model.parameters()
    new = rng.standard_normal((5, 7))
    model.layers[0].weight = new
    assert np.array_equal(params[0], new.astype(dtype)), "assignment did not write into the live buffer"
    assert model.layers[0].weight.dtype == dtype
    newb = rng.standard_normal(3)
    model.layers[2].bias = newb
    assert np.array_equal(params[3], newb.astype(dtype))


def test_model_metadata(dtype):
    model = make("no_bias", dtype)
    assert model.dtype == dtype
    assert isinstance(model.dtype, np.dtype)
    assert len(model.parameters()) == 2
    assert model.n_parameters == 5 * 6 + 6 * 2
    assert model.layers[0].in_features == 5 and model.layers[0].out_features == 6
    assert model.layers[0].bias is None
    for text in (repr(model), repr(model.layers[0])):
        assert "Dense" in text
    assert "6" in repr(model.layers[0])


def test_default_dtype_is_float32():
    model = nc.Sequential([nc.Dense(3, 2)], seed=0)
    assert model.dtype == np.float32
    assert model.layers[0].weight.dtype == np.float32
    m2 = nc.Sequential([nc.Dense(3, 2)], dtype=np.float64, seed=0)
    assert m2.dtype == np.float64


@pytest.mark.parametrize("init", [None, "he_uniform", "glorot_uniform"])
def test_init_seeded_and_bounded(dtype, init):
    def build(seed):
        return nc.Sequential([nc.Dense(50, 40, init=init), nc.ReLU(), nc.Dense(40, 30, init=init)],
                             dtype=dtype.name, seed=seed)

    a, b, c = build(0), build(0), build(1)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert np.array_equal(pa, pb)
    assert not np.array_equal(a.layers[0].weight, c.layers[0].weight)
    for layer, fan_in, fan_out in ((a.layers[0], 50, 40), (a.layers[2], 40, 30)):
        w = layer.weight
        assert np.all(np.isfinite(w)) and np.std(w) > 0
        if init == "he_uniform":
            limit = np.sqrt(6.0 / fan_in)
        elif init == "glorot_uniform":
            limit = np.sqrt(6.0 / (fan_in + fan_out))
        else:
            limit = np.sqrt(6.0 / fan_in)  # either default is within the He bound
        assert np.max(np.abs(w)) <= limit * (1 + 1e-6)
        if init is not None:
            # a uniform(-limit, limit) sample of 1200-2000 values spans most of the interval
            assert np.max(np.abs(w)) > 0.9 * limit
            assert np.std(w) == pytest.approx(limit / np.sqrt(3.0), rel=0.1)


def test_init_from_array(dtype, rng):
    w = rng.standard_normal((4, 3))
    model = nc.Sequential([nc.Dense(4, 3, init=w)], dtype=dtype.name, seed=0)
    assert np.array_equal(model.layers[0].weight, w.astype(dtype))


def test_float64_input_into_float32_model(rng):
    model = make("wide", np.float32)
    x64 = rng.standard_normal((37, 33))
    out64 = model.forward(x64)
    assert out64.dtype == np.float32
    g64 = model.backward(rng.standard_normal((37, 9)).astype(np.float32))
    grads64 = [g.copy() for g in model.gradients()]
    gout = rng.standard_normal((37, 9))
    out32 = model.forward(x64.astype(np.float32))
    assert np.array_equal(out64, out32)
    g_a = model.backward(gout)
    grads_a = [g.copy() for g in model.gradients()]
    model.forward(x64.astype(np.float32))
    g_b = model.backward(gout.astype(np.float32))
    assert np.array_equal(g_a, g_b)
    for a, b in zip(grads_a, model.gradients()):
        assert np.array_equal(a, b)
    assert g64.dtype == np.float32 and all(g.dtype == np.float32 for g in grads64)


def test_integer_input_is_accepted(dtype):
    model = make("dense_relu_dense", dtype)
    xi = np.arange(15).reshape(3, 5)
    assert np.array_equal(model.forward(xi), model.forward(xi.astype(dtype)))


@pytest.mark.parametrize("layout", ["fortran", "col_slice", "row_stride", "transposed"])
def test_input_layouts_give_same_result(dtype, layout, rng):
    model = make("wide", dtype)
    base = rng.standard_normal((80, 66)).astype(dtype)
    if layout == "fortran":
        x = np.asfortranarray(base[:40, :33])
    elif layout == "col_slice":
        x = base[:40, ::2]
    elif layout == "row_stride":
        x = base[::2, :33]
    else:
        x = np.ascontiguousarray(base[:33, :40]).T
    assert x.shape == (40, 33) and not x.flags.c_contiguous
    xc = np.ascontiguousarray(x)
    gbase = rng.standard_normal((40, 18)).astype(dtype)
    gout_nc = gbase[:, ::2]
    out_nc = model.forward(x)
    gx_nc = model.backward(gout_nc)
    grads_nc = [g.copy() for g in model.gradients()]
    out_c = model.forward(xc)
    gx_c = model.backward(np.ascontiguousarray(gout_nc))
    assert np.array_equal(out_nc, out_c)
    assert np.array_equal(gx_nc, gx_c)
    for a, b in zip(grads_nc, model.gradients()):
        assert np.array_equal(a, b)
    assert np.array_equal(x, xc), "forward modified its input"


def test_forward_returns_new_arrays(dtype, rng):
    model = make("dense_relu_dense", dtype)
    x = rng.standard_normal((4, 5)).astype(dtype)
    a = model.forward(x)
    keep = a.copy()
    b = model.forward(2 * x)
    assert not np.shares_memory(a, b)
    assert np.array_equal(a, keep)
    a[...] = 123  # owned by the caller: must not disturb the model
    gx = model.backward(np.ones_like(b))
    exp, cache = ref.seq_forward(ref.layer_specs(model), 2 * x)
    exp_gx, _ = ref.seq_backward(ref.layer_specs(model), cache, np.ones_like(b))
    assert_close(gx, exp_gx, dtype, factor=4.0)


def test_predict_and_evaluate(dtype, rng):
    model = make("wide", dtype)
    x = rng.standard_normal((50, 33)).astype(dtype)
    y = rng.integers(0, 9, size=50)
    full = model.forward(x)
    pred = model.predict(x, batch_size=7)
    assert pred.shape == (50, 9) and pred.dtype == dtype
    assert_close(pred, full.astype(np.float64), dtype, factor=4.0)
    expected_out, _ = ref.seq_forward(ref.layer_specs(model), x)
    value, _ = ref.cross_entropy(expected_out, y)
    res = model.evaluate(x, y, loss="cross_entropy", batch_size=1024)
    assert res["loss"] == pytest.approx(value, rel=1e-5 if dtype == np.float32 else 1e-10)
    acc = np.mean(np.argmax(expected_out, axis=1) == y)
    assert res["accuracy"] == pytest.approx(acc, abs=1e-12)
    res2 = model.evaluate(x, y, loss=nc.CrossEntropyLoss())
    assert res2["loss"] == pytest.approx(res["loss"], rel=1e-6)


def test_layers_wider_than_gemm_blocks(rng):
    """A layer wider than NC (2040/4080) and a batch taller than MC: every GEMM block loop runs."""
    for dtype in (np.float32, np.float64):
        model = nc.Sequential([nc.Dense(300, 4100), nc.ReLU(), nc.Dense(4100, 3)], dtype=np.dtype(dtype).name,
                              seed=0)
        randomize_biases(model, rng)
        specs = ref.layer_specs(model)
        x = rng.standard_normal((150, 300)).astype(dtype)
        out = model.forward(x)
        expected, cache = ref.seq_forward(specs, x)
        assert_close(out, expected, dtype, factor=4.0, err_msg="forward")
        gout = rng.standard_normal(out.shape).astype(dtype)
        gx = model.backward(gout)
        exp_gx, exp_grads = ref.seq_backward(specs, cache, gout)
        assert_close(gx, exp_gx, dtype, factor=4.0, err_msg="dx")
        for i, (g, e) in enumerate(zip(model.gradients(), exp_grads)):
            assert_close(g, e, dtype, factor=4.0, err_msg=f"grad {i}")


def test_predict_and_evaluate_never_corrupt_backward(dtype, rng):
    """forward(x); predict(other); backward(g): either the gradients of forward(x) or an error asking for a
    new forward (neurocore's choice: predict/evaluate drop the activations) -- never silently wrong."""
    model = make("wide", dtype)
    x = rng.standard_normal((20, 33)).astype(dtype)
    other = rng.standard_normal((50, 33)).astype(dtype)
    gout = rng.standard_normal((20, 9)).astype(dtype)
    model.forward(x)
    expected_gx = model.backward(gout)
    expected = [g.copy() for g in model.gradients()]
    model.forward(x)
    model.predict(other, batch_size=16)
    model.evaluate(other, rng.integers(0, 9, size=50), loss="cross_entropy", batch_size=16)
    try:
        gx = model.backward(gout)
    except (RuntimeError, ValueError) as exc:
        assert "forward" in str(exc)
        gx = None
    if gx is not None:
        assert np.array_equal(gx, expected_gx)
        for a, b in zip(model.gradients(), expected):
            assert np.array_equal(a, b)
    # a fresh forward restores backward
    model.forward(x)
    assert np.array_equal(model.backward(gout), expected_gx)


def test_evaluate_does_not_depend_on_batch_size(dtype, rng):
    model = make("wide", dtype)
    x = rng.standard_normal((50, 33)).astype(dtype)
    y = rng.integers(0, 9, size=50)
    whole = model.evaluate(x, y, loss="cross_entropy", batch_size=1024)
    for bs in (1, 7, 49):
        part = model.evaluate(x, y, loss="cross_entropy", batch_size=bs)
        assert part["loss"] == pytest.approx(whole["loss"], rel=1e-5 if dtype == np.float32 else 1e-12), bs
        assert part["accuracy"] == pytest.approx(whole["accuracy"], abs=1e-12), bs
    t = rng.standard_normal((50, 9)).astype(dtype)
    whole = model.evaluate(x, t, loss="mse")
    assert "accuracy" not in whole
    for bs in (1, 7, 49):
        part = model.evaluate(x, t, loss="mse", batch_size=bs)
        assert part["loss"] == pytest.approx(whole["loss"], rel=1e-5 if dtype == np.float32 else 1e-12), bs


@pytest.mark.parametrize("loss,last,threshold", [("bce", nc.Sigmoid, 0.5), ("bce_with_logits", None, 0.0)])
def test_evaluate_binary_accuracy(dtype, rng, loss, last, threshold):
    layers = [nc.Dense(6, 5), nc.Tanh(), nc.Dense(5, 3)] + ([last()] if last else [])
    model = nc.Sequential(layers, dtype=dtype.name, seed=0)
    x = rng.standard_normal((40, 6)).astype(dtype)
    t = rng.integers(0, 2, size=(40, 3)).astype(dtype)
    out, _ = ref.seq_forward(ref.layer_specs(model), x)
    res = model.evaluate(x, t, loss=loss)
    assert res["loss"] == pytest.approx(ref.LOSSES[loss](out, t)[0], rel=1e-5 if dtype == np.float32 else 1e-12)
    assert res["accuracy"] == pytest.approx(np.mean((out > threshold) == (t > 0.5)), abs=1e-12)
