"""Convolutional networks: neurocore against PyTorch eager (torch==2.13.0), side by side in one run.

* LeNet-5 style, 28x28x1, batch 64 (conv 5x5 6, ReLU, maxpool 2, conv 5x5 16, ReLU, maxpool 2, flatten,
  Dense 120, 84, 10), SGD with momentum: training samples/s.
* A small CIFAR-style net, 32x32x3, batch 128 ([conv 3x3 32, ReLU] x2, maxpool, [conv 3x3 64, ReLU] x2,
  maxpool, flatten, Dense 256, 10; padding 1): training samples/s, and its convolutions' FLOP rate as a
  share of the FMA peak measured here (the best rate of neurocore's GEMM on a cache-resident product).
* LeNet batch-1 inference latency: neurocore, PyTorch eager (no_grad) and a plain NumPy forward pass.

Each thread count runs in its own process pinned to that many cores; within it the frameworks alternate
round by round (median and best ratios reported), because the machine's speed drifts between runs.

    python benchmarks/bench_conv.py                # 1 and 2 threads, 7 rounds
    python benchmarks/bench_conv.py --rounds 3 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CHILD_FLAG = "--child"


def lenet_layers(nc):
    return [nc.Conv2D(1, 6, 5), nc.ReLU(), nc.MaxPool2D(2), nc.Conv2D(6, 16, 5), nc.ReLU(), nc.MaxPool2D(2),
            nc.Flatten(), nc.Dense(256, 120), nc.ReLU(), nc.Dense(120, 84), nc.ReLU(), nc.Dense(84, 10)]


def cifar_layers(nc):
    return [nc.Conv2D(3, 32, 3, padding=1), nc.ReLU(), nc.Conv2D(32, 32, 3, padding=1), nc.ReLU(), nc.MaxPool2D(2),
            nc.Conv2D(32, 64, 3, padding=1), nc.ReLU(), nc.Conv2D(64, 64, 3, padding=1), nc.ReLU(), nc.MaxPool2D(2),
            nc.Flatten(), nc.Dense(8 * 8 * 64, 256), nc.ReLU(), nc.Dense(256, 10)]


def torch_model(torch, layers):
    """The same network in PyTorch (NCHW, its native layout), weights copied from the neurocore model."""
    nn = torch.nn
    mods = []
    for layer in layers:
        name = type(layer).__name__
        if name == "Conv2D":
            m = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                          padding=layer.padding)
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(layer.weight.transpose(3, 2, 0, 1).copy()))
                m.bias.copy_(torch.from_numpy(layer.bias.copy()))
        elif name == "Dense":
            m = nn.Linear(layer.in_features, layer.out_features)
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(layer.weight.T.copy()))
                m.bias.copy_(torch.from_numpy(layer.bias.copy()))
        elif name == "ReLU":
            m = nn.ReLU()
        elif name == "MaxPool2D":
            m = nn.MaxPool2d(layer.kernel_size)
        else:   # Flatten: the Dense after it expects (h, w, c) order, so permute NCHW -> NHWC first
            m = nn.Sequential(Permute(torch), nn.Flatten())
        mods.append(m)
    return nn.Sequential(*mods)


def Permute(torch):
    class _P(torch.nn.Module):
        def forward(self, x):
            return x.permute(0, 2, 3, 1)
    return _P()


def conv_flops_per_sample(layers, shape):
    """Training FLOPs of the convolutions for one sample: forward, dW and (except the first layer) dX."""
    total = 0.0
    for i, layer in enumerate(layers):
        out = layer.output_shape(shape)
        if type(layer).__name__ == "Conv2D":
            kh, kw = layer.kernel_size
            one = 2.0 * out[0] * out[1] * layer.out_channels * kh * kw * layer.in_channels
            total += one * (2 if i == 0 else 3)
        shape = out
    return total


def numpy_lenet_forward(np, model):
    """A plain NumPy forward pass of the LeNet model (im2col by sliding windows, then matmul)."""
    from numpy.lib.stride_tricks import sliding_window_view
    params = [(layer, layer.weight.copy(), layer.bias.copy()) if hasattr(layer, "weight") else (layer, None, None)
              for layer in model.layers]

    def forward(x):
        for layer, w, b in params:
            name = type(layer).__name__
            if name == "Conv2D":
                kh, kw = layer.kernel_size
                win = sliding_window_view(x, (kh, kw), axis=(1, 2))          # (n, oh, ow, c, kh, kw)
                x = np.einsum("npqcij,ijco->npqo", win, w, optimize=True) + b
            elif name == "MaxPool2D":
                n, h, wd, c = x.shape
                x = x.reshape(n, h // 2, 2, wd // 2, 2, c).max(axis=(2, 4))
            elif name == "ReLU":
                x = np.maximum(x, 0)
            elif name == "Flatten":
                x = x.reshape(x.shape[0], -1)
            else:
                x = x @ w + b
        return x
    return forward


def child(threads: int, rounds: int) -> dict:
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:threads]))
    import numpy as np
    import torch

    import neurocore as nc

    nc.set_num_threads(threads)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    out = {"threads": threads, "torch": torch.__version__, "isa": nc.cpu_info().get("isa")}

    # the FMA peak as our GEMM reaches it on a cache-resident product (best of many)
    a = rng.standard_normal((384, 256)).astype(np.float32)
    b = rng.standard_normal((256, 384)).astype(np.float32)
    best = 0.0
    for _ in range(40):
        t0 = time.perf_counter()
        for _ in range(10):
            nc._core.gemm(a, b)
        best = max(best, 10 * 2 * 384 * 256 * 384 / (time.perf_counter() - t0))
    out["gemm_peak_gflops"] = best / 1e9

    def train_pair(name, layers_fn, shape, batch, steps):
        layers = layers_fn(nc)
        model = nc.Sequential(layers, input_shape=shape, seed=0)
        tmodel = torch_model(torch, layers)
        n = batch * steps
        x = rng.standard_normal((n, *shape)).astype(np.float32)
        y = rng.integers(0, 10, n)
        xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
        yt = torch.from_numpy(y)
        opt_nc = nc.SGD(lr=0.01, momentum=0.9)
        opt_t = torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9)
        loss_fn = torch.nn.CrossEntropyLoss()

        def run_nc():
            t0 = time.perf_counter()
            model.fit(x, y, optimizer=opt_nc, epochs=1, batch_size=batch, shuffle=False, verbose=0)
            return n / (time.perf_counter() - t0)

        def run_torch():
            t0 = time.perf_counter()
            for s in range(steps):
                opt_t.zero_grad()
                loss = loss_fn(tmodel(xt[s * batch:(s + 1) * batch]), yt[s * batch:(s + 1) * batch])
                loss.backward()
                opt_t.step()
            return n / (time.perf_counter() - t0)

        run_nc(), run_torch()   # warm-up
        ours, theirs = [], []
        for _ in range(rounds):
            ours.append(run_nc())
            theirs.append(run_torch())
        ratios = [a / b for a, b in zip(ours, theirs)]
        flops = conv_flops_per_sample(layers, shape)
        out[name] = {"neurocore": max(ours), "torch": max(theirs), "ratio_median": statistics.median(ratios),
                     "ratio_best": max(ratios), "conv_gflops": flops * max(ours) / 1e9,
                     "conv_gflops_torch": flops * max(theirs) / 1e9}

    train_pair("lenet", lenet_layers, (28, 28, 1), 64, 16)
    train_pair("cifar", cifar_layers, (32, 32, 3), 128, 3)

    model = nc.Sequential(lenet_layers(nc), input_shape=(28, 28, 1), seed=0)
    tmodel = torch_model(torch, model.layers).eval()
    np_forward = numpy_lenet_forward(np, model)
    x1 = rng.standard_normal((1, 28, 28, 1)).astype(np.float32)
    xt1 = torch.from_numpy(x1.transpose(0, 3, 1, 2).copy())
    assert np.allclose(np_forward(x1), model.predict(x1), atol=1e-4)
    with torch.no_grad():
        assert np.allclose(tmodel(xt1).numpy(), model.predict(x1), atol=1e-4)

    def latency(f, reps=200):
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(reps):
                f()
            best = min(best, (time.perf_counter() - t0) / reps)
        return best * 1e6

    with torch.no_grad():
        out["latency_us"] = {"neurocore": latency(lambda: model.predict(x1)),
                             "torch": latency(lambda: tmodel(xt1)), "numpy": latency(lambda: np_forward(x1))}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument(CHILD_FLAG, type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.rounds)))
        return
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    print("machine shared with other jobs: ratios come from interleaved rounds, absolute numbers drift")
    for t in [int(s) for s in args.threads.split(",")]:
        env.update({v: str(t) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
        res = subprocess.run([sys.executable, __file__, CHILD_FLAG, str(t), "--rounds", str(args.rounds)], env=env,
                             capture_output=True, text=True, check=True)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        peak = r["gemm_peak_gflops"]
        print(f"\n{t} thread(s), neurocore kernels {r['isa']}, torch {r['torch']}; measured FMA peak (GEMM best) "
              f"{peak:.0f} GFLOP/s")
        for name, label in (("lenet", "LeNet-5 28x28x1 batch 64"), ("cifar", "CIFAR-style 32x32x3 batch 128")):
            d = r[name]
            print(f"  {label:<30} neurocore {d['neurocore']:8,.0f}  torch {d['torch']:8,.0f} samples/s   ratio median "
                  f"{d['ratio_median']:.2f}x best {d['ratio_best']:.2f}x   conv FLOP rate {d['conv_gflops']:.1f} "
                  f"GFLOP/s = {100 * d['conv_gflops'] / peak:.0f}% of peak (torch {100 * d['conv_gflops_torch'] / peak:.0f}%)")
        lat = r["latency_us"]
        print(f"  LeNet batch-1 latency: neurocore {lat['neurocore']:.1f} us, torch {lat['torch']:.1f} us, "
              f"NumPy {lat['numpy']:.1f} us")


if __name__ == "__main__":
    main()
