"""Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D and Flatten against the float64 NumPy reference
(reference_conv.py): forward, dL/dx, dW and db for kernel sizes 1..7, strides 1..3, every padding form,
non-square images and kernels, 1..64 channels, N = 1 and odd batches; both dtypes and every kernel set.
Then whole CNNs: float64 finite differences, BatchNorm as BatchNorm2d, residual blocks over images,
bitwise identical training for 1, 2 and 3 threads, every fit option, save/load.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference_conv as rc

import neurocore as nc
from conftest import assert_close

# (N, H, W, C_in, C_out, kernel_size, stride, padding)
CONV_CASES = [
    (1, 5, 5, 1, 1, 1, 1, 0),
    (3, 7, 9, 2, 3, (2, 3), 1, "same"),
    (2, 8, 6, 3, 5, 3, 2, 1),
    (5, 11, 10, 4, 7, 4, 3, (1, 2)),
    (1, 12, 12, 1, 6, 5, 1, "valid"),
    (3, 9, 13, 5, 4, 7, 1, 3),
    (2, 10, 7, 8, 16, (3, 1), (1, 2), (1, 0)),
    (1, 6, 6, 64, 3, 3, 1, "same"),
    (3, 5, 5, 3, 64, 2, 1, "same"),
    (2, 16, 16, 16, 33, 3, 3, 2),
    (7, 4, 4, 2, 2, 4, 1, 0),
    (1, 9, 9, 13, 9, 6, 2, 0),
    (2, 7, 7, 3, 4, 1, 2, 0),
    (33, 6, 5, 3, 2, 3, 1, 1),
]


def pads_of(layer):
    return layer._pads


def pair(v):
    return tuple(v) if isinstance(v, tuple) else (v, v)


def conv_case_id(case):
    n, h, w, cin, cout, k, s, p = case
    return f"n{n}-{h}x{w}x{cin}-to{cout}-k{k}-s{s}-p{p}".replace(" ", "")


@pytest.mark.parametrize("case", CONV_CASES, ids=[conv_case_id(c) for c in CONV_CASES])
def test_conv2d_forward_backward_vs_reference(case, isa, dtype, rng):
    n, h, w, cin, cout, k, s, p = case
    layer = nc.Conv2D(cin, cout, k, stride=s, padding=p)
    model = nc.Sequential([layer], dtype=dtype.name, input_shape=(h, w, cin), seed=0)
    layer.weight = rng.standard_normal(layer.weight.shape)
    layer.bias = rng.standard_normal(cout)
    x = rng.standard_normal((n, h, w, cin)).astype(dtype)
    wt, b = layer.weight.astype(np.float64), layer.bias.astype(np.float64)
    stride, pads = pair(s), pads_of(layer)
    expected = rc.conv2d_forward(x, wt, b, stride, pads)
    assert model.output_shape == expected.shape[1:]
    y = model.forward(x, training=True)
    # rounding scale of each output: sum |x| |w| over its window (the reference with absolute values)
    scale = rc.conv2d_forward(np.abs(x), np.abs(wt), np.abs(b), stride, pads)
    assert_close(y, expected, dtype, scale=scale, factor=4)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = model.backward(dy)
    rdx, rdw, rdb = rc.conv2d_backward(x, wt, dy, stride, pads)
    sdx, sdw, _ = rc.conv2d_backward(np.abs(x), np.abs(wt), np.abs(dy), stride, pads)
    assert_close(dx, rdx, dtype, scale=sdx, factor=4)
    assert_close(layer.grad_weight, rdw, dtype, scale=sdw, factor=4)
    assert_close(layer.grad_bias, rdb, dtype, scale=np.abs(dy).sum(axis=(0, 1, 2)), factor=4)


# (N, H, W, C, kernel_size, stride, padding)
POOL_CASES = [
    (1, 4, 4, 1, 2, None, 0),
    (3, 7, 9, 5, 3, 2, 1),
    (2, 8, 5, 17, (2, 3), (1, 2), (1, 1)),
    (5, 6, 6, 3, 3, 1, 0),
    (1, 9, 7, 64, 4, 3, 2),
    (7, 5, 5, 2, 1, 1, 0),
    (2, 10, 10, 9, (3, 2), None, (1, 0)),
]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_CASES, ids=[str(i) for i in range(len(POOL_CASES))])
def test_pool_forward_backward_vs_reference(kind, case, isa, dtype, rng):
    n, h, w, c, k, s, p = case
    layer = (nc.MaxPool2D if kind == "max" else nc.AvgPool2D)(k, stride=s, padding=p)
    model = nc.Sequential([layer], dtype=dtype.name, input_shape=(h, w, c))
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    kernel, stride = pair(k), pair(s if s is not None else k)
    pads = (pair(p)[0], pair(p)[0], pair(p)[1], pair(p)[1])
    y = model.forward(x, training=True)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = model.backward(dy)
    if kind == "max":
        assert np.array_equal(y, rc.maxpool_forward(x, kernel, stride, pads).astype(dtype))
        assert_close(dx, rc.maxpool_backward(x, dy, kernel, stride, pads), dtype, factor=4)
    else:
        assert_close(y, rc.avgpool_forward(x, kernel, stride, pads), dtype, factor=4)
        assert_close(dx, rc.avgpool_backward(x, dy, kernel, stride, pads), dtype, factor=4)


def test_global_avg_pool_and_flatten(isa, dtype, rng):
    x = rng.standard_normal((3, 5, 4, 7)).astype(dtype)
    gap = nc.Sequential([nc.GlobalAvgPool2D()], dtype=dtype.name, input_shape=(5, 4, 7))
    assert gap.output_shape == (7,)
    assert_close(gap.forward(x, training=True), x.astype(np.float64).mean(axis=(1, 2)), dtype, factor=4)
    dy = rng.standard_normal((3, 7)).astype(dtype)
    assert_close(gap.backward(dy), np.broadcast_to(dy[:, None, None, :] / 20.0, x.shape), dtype, factor=4)
    flat = nc.Sequential([nc.Flatten()], dtype=dtype.name, input_shape=(5, 4, 7))
    assert flat.output_shape == (140,)
    assert np.array_equal(flat.forward(x, training=True), x.reshape(3, -1))
    assert np.array_equal(flat.backward(x.reshape(3, -1)), x)


def test_maxpool_routes_ties_to_the_first_cell(dtype):
    x = np.zeros((1, 2, 2, 1), dtype)
    model = nc.Sequential([nc.MaxPool2D(2)], dtype=dtype.name, input_shape=(2, 2, 1))
    model.forward(x, training=True)
    assert model.backward(np.ones((1, 1, 1, 1))).ravel().tolist() == [1, 0, 0, 0]


# --------------------------------------------------------------------------------------------------
# Whole networks
# --------------------------------------------------------------------------------------------------
def small_cnn(dtype="float64", act=nc.Tanh, seed=0):
    return nc.Sequential([
        nc.Conv2D(2, 4, 3, padding="same"), act(), nc.BatchNorm(4), nc.MaxPool2D(2),
        nc.Residual([nc.Conv2D(4, 4, (3, 2), padding="same"), nc.GELU()]),   # GELU fused: kept pre-activation
        nc.Conv2D(4, 5, 2, stride=(1, 2)), nc.AvgPool2D(2, stride=1, padding=1), nc.GELU(),
        nc.Flatten(), nc.Dense(45, 6), act(), nc.Dense(6, 3),
    ], dtype=dtype, input_shape=(6, 8, 2), seed=seed)


def test_small_cnn_gradients_by_finite_differences(rng):
    model = small_cnn()
    assert model.output_shape == (3,)
    x = rng.standard_normal((4, 6, 8, 2))
    r = rng.standard_normal((4, 3))

    def loss():
        return float(np.sum(model.forward(x, training=True) * r))

    loss()
    dx = model.backward(r)
    grads = [g.copy() for g in model.gradients()]
    eps = 1e-6
    worst = 0.0
    for p, g in zip(model.parameters(), grads):
        flat, gflat = p.reshape(-1), g.reshape(-1)
        for i in rng.choice(flat.size, size=min(flat.size, 6), replace=False):
            old = flat[i]
            flat[i] = old + eps
            up = loss()
            flat[i] = old - eps
            down = loss()
            flat[i] = old
            numeric = (up - down) / (2 * eps)
            worst = max(worst, abs(numeric - gflat[i]) / (abs(numeric) + 1e-3))
    xf = x.reshape(-1)
    for i in rng.choice(xf.size, size=12, replace=False):
        old = xf[i]
        xf[i] = old + eps
        up = loss()
        xf[i] = old - eps
        down = loss()
        xf[i] = old
        worst = max(worst, abs((up - down) / (2 * eps) - dx.reshape(-1)[i]) / (abs((up - down) / (2 * eps)) + 1e-3))
    assert worst < 1e-5, worst


def test_batchnorm_after_conv_is_batchnorm2d(dtype, rng):
    conv = nc.Conv2D(3, 4, 3)
    bn = nc.BatchNorm(4)
    model = nc.Sequential([conv, bn], dtype=dtype.name, input_shape=(5, 6, 3), seed=1)
    bn.weight = rng.uniform(0.5, 2, 4)
    bn.bias = rng.standard_normal(4)
    x = rng.standard_normal((3, 5, 6, 3)).astype(dtype)
    y = model.forward(x, training=True)
    z = rc.conv2d_forward(x, conv.weight, conv.bias, (1, 1), (0, 0, 0, 0))
    mean, var = z.mean(axis=(0, 1, 2)), z.var(axis=(0, 1, 2))
    expected = (z - mean) / np.sqrt(var + 1e-5) * bn.weight.astype(np.float64) + bn.bias
    assert_close(y, expected, dtype, factor=50)
    count = z.size // 4
    assert_close(bn.running_var, 0.9 + 0.1 * var * count / (count - 1), dtype, factor=10)
    assert_close(bn.running_mean, 0.1 * mean, dtype, factor=10)


def lenet(dtype="float32", seed=0):
    return nc.Sequential([
        nc.Conv2D(1, 6, 5), nc.ReLU(), nc.MaxPool2D(2), nc.Conv2D(6, 16, 5, padding=1), nc.ReLU(),
        nc.MaxPool2D(2), nc.Flatten(), nc.Dense(144, 32), nc.ReLU(), nc.Dropout(0.2), nc.Dense(32, 10),
    ], dtype=dtype, input_shape=(20, 20, 1), seed=seed)


def digits_like(n=120, seed=0, dtype=np.float32):
    r = np.random.default_rng(seed)
    return r.standard_normal((n, 20, 20, 1)).astype(dtype), r.integers(0, 10, n)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_is_bitwise_identical_for_1_2_3_threads(dtype, restore_threads):
    x, y = digits_like(dtype=np.dtype(dtype))
    results = []
    for t in (1, 2, 3):
        nc.set_num_threads(t)
        model = lenet(dtype)
        model.fit(x, y, optimizer=nc.SGD(lr=0.05, momentum=0.9), epochs=2, batch_size=32, seed=3, verbose=0)
        results.append([p.copy() for p in model.parameters()] + [model.predict(x)])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)


def test_chunked_conv_is_bitwise_identical_for_1_2_3_threads(restore_threads):
    """Batches that span many im2col chunks: threads take whole chunks, dW sums them in chunk order."""
    r = np.random.default_rng(4)
    x, y = r.standard_normal((50, 24, 24, 3)).astype(np.float32), r.integers(0, 4, 50)
    results = []
    for t in (1, 2, 3):
        nc.set_num_threads(t)
        model = nc.Sequential([nc.Conv2D(3, 16, 3, padding=1), nc.ReLU(), nc.Conv2D(16, 16, 3, padding=1), nc.GELU(),
                               nc.GlobalAvgPool2D(), nc.Dense(16, 4)], input_shape=(24, 24, 3), seed=1)
        model.fit(x, y, optimizer=nc.SGD(lr=0.1, momentum=0.9), epochs=2, batch_size=25, seed=2, verbose=0)
        out = model.forward(x, training=True)
        dx = model.backward(np.ones_like(out))
        results.append([p.copy() for p in model.parameters()] + [g.copy() for g in model.gradients()] + [out, dx])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)


def test_fit_learns_and_every_option_works(tmp_path):
    x, y = digits_like(200)
    x[np.arange(200), y, y, 0] += 4.0   # a learnable signal: a bright pixel on the diagonal at the label
    seen = []

    def augment(batch):
        seen.append(batch.shape)
        return batch[:, :, ::-1, :] if len(seen) % 2 else batch

    model = lenet()
    model.layers[0].trainable = False
    frozen = model.layers[0].weight.copy()
    stop = nc.EarlyStopping(monitor="val_loss", patience=5)
    hist = model.fit(x[:160], y[:160], optimizer=nc.Adam(lr=3e-3, clip_norm=5.0), epochs=8, batch_size=16, seed=1,
                     validation_data=(x[160:], y[160:]), schedule=nc.schedules.StepDecay(step_size=3, gamma=0.5),
                     callbacks=[stop], track_gradients=True, verbose=0)
    assert hist["loss"][-1] < hist["loss"][0]
    assert len(hist["grad_norm"][0]) == 4 and math.isnan(hist["grad_norm"][0][0])
    assert np.array_equal(model.layers[0].weight, frozen)
    model.layers[0].trainable = True
    model.fit(x, y, epochs=1, batch_size=50, augment=augment, verbose=0)
    assert seen and all(s[1:] == (20, 20, 1) for s in seen)
    model.fit(x, y, epochs=1, batch_size=50, augment=nc.GaussianNoise(0.1), validation_split=0.2, verbose=0)
    path = tmp_path / "cnn.npz"
    model.save(path, include_optimizer=True)
    loaded = nc.load(path)
    assert loaded.input_shape == (20, 20, 1) and repr(loaded) == repr(model)
    assert np.array_equal(loaded.predict(x), model.predict(x))
    fresh = lenet(seed=9)
    assert fresh.load_weights(model) == [0, 1, 2, 3]
    assert np.array_equal(fresh.predict(x), model.predict(x))
    assert model.evaluate(x, y)["accuracy"] >= 0.3


def test_gemm_epilogue_activations_on_conv(isa, dtype, rng):
    """ReLU fused into the GEMM, GELU and softmax (over channels) after it: all equal the reference."""
    x = rng.standard_normal((2, 6, 5, 3)).astype(dtype)
    for act, f in ((nc.ReLU, lambda z: np.maximum(z, 0)),
                   (nc.Softmax, lambda z: np.exp(z - z.max(-1, keepdims=True)) / np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True))):
        conv = nc.Conv2D(3, 4, 3, padding=1)
        model = nc.Sequential([conv, act()], dtype=dtype.name, input_shape=(6, 5, 3), seed=2)
        z = rc.conv2d_forward(x, conv.weight, conv.bias, (1, 1), conv._pads)
        assert_close(model.predict(x), f(z), dtype, factor=20)


def test_model_shapes_and_print():
    model = nc.Sequential([nc.Conv2D(1, 6, 5), nc.ReLU(), nc.MaxPool2D(2), nc.Flatten(), nc.Dense(6 * 12 * 12, 10)],
                          input_shape=(28, 28, 1))
    assert model.input_shape == (28, 28, 1) and model.output_shape == (10,)
    text = repr(model)
    assert "(batch, 24, 24, 6)" in text and "(batch, 12, 12, 6)" in text and "(batch, 864)" in text
    assert "156" in text and "8,650" in text
    dense = nc.Sequential([nc.Dense(4, 3)])
    assert dense.input_shape == (4,) and dense.output_shape == (3,)
    conv_out = nc.Sequential([nc.Conv2D(2, 3, 1)], input_shape=(4, 4, 2))
    assert conv_out.predict(np.ones((5, 4, 4, 2))).shape == (5, 4, 4, 3)
    hist = conv_out.fit(np.ones((4, 4, 4, 2)), np.zeros((4, 4, 4, 3)), loss="mse", epochs=2, verbose=0)
    assert hist["loss"][1] < hist["loss"][0]


def test_conv_weights_are_views_and_he_init(dtype):
    conv = nc.Conv2D(3, 8, (3, 5))
    model = nc.Sequential([conv, nc.ReLU()], dtype=dtype.name, input_shape=(9, 9, 3), seed=0)
    assert conv.weight.shape == (3, 5, 3, 8) and conv.bias.shape == (8,)
    assert conv.grad_weight.shape == (3, 5, 3, 8)
    bound = math.sqrt(6.0 / 45)
    assert np.abs(conv.weight).max() <= bound and np.abs(conv.weight).max() > 0.8 * bound
    conv.weight[...] = 0
    assert not model.predict(np.ones((1, 9, 9, 3))).any()


def test_cnn_digits_example_runs_quick(tmp_path):
    """examples/cnn_digits.py --quick runs from another directory and reports a test accuracy."""
    import os
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "cnn_digits.py")
    if not os.path.exists(script):
        pytest.skip("examples/ not shipped with this checkout")
    out = subprocess.run([sys.executable, script, "--quick"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    accuracy = float(out.stdout.split("test accuracy ")[1].split()[0])
    assert accuracy > 0.5
