"""Inference of one model in neurocore, in onnxruntime (its own export, 1 and 2 threads) and in PyTorch eager
(its own to_torch), side by side: batch-1 latency and batch-256 time per call.

All contenders run in this one process, in interleaved rounds (each round times every contender once, in a
rotated order), so that a load change on a shared machine hits them alike; the table gives the median and the
best over rounds, and the ratios both ways (best-of is the steadier figure on a shared machine). Not a test.

    python benchmarks/bench_interop.py [--rounds 15] [--min-time 0.05] [--models mlp]

Needs onnx, onnxruntime and torch==2.13.0 (``pip install "neurocore[onnx,torch]"``).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile

import numpy as np
from _common import time_call

import neurocore as nc

MODELS = {
    # the MLP of benchmarks/run.py's latency table
    "mlp": ("784-128-10 MLP", None, lambda: [nc.Dense(784, 128), nc.ReLU(), nc.Dense(128, 10)]),
    # LeNet-5 on 28x28 grey images (padding 2 in the first convolution, max pooling)
    "lenet": ("LeNet-5 (28x28x1)", (28, 28, 1), lambda: [
        nc.Conv2D(1, 6, 5, padding=2), nc.ReLU(), nc.MaxPool2D(2), nc.Conv2D(6, 16, 5), nc.ReLU(), nc.MaxPool2D(2),
        nc.Flatten(), nc.Dense(400, 120), nc.ReLU(), nc.Dense(120, 84), nc.ReLU(), nc.Dense(84, 10)]),
}
BATCHES = (1, 256)


def contenders(model, batch, onnx_path):
    """name -> (set-up, call) pairs; set-up runs before each timed block (thread counts)."""
    import onnxruntime as ort
    import torch

    x = np.random.default_rng(0).standard_normal((batch, *model.input_shape)).astype(model.dtype)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if x.ndim == 4 else x)   # torch: NCHW
    module = model.to_torch()
    out = {}
    default_isa = nc._core.get_isa()
    isas = [default_isa] + [isa for isa in ("avx512",) if isa in nc.cpu_info()["isa_available"] and isa != default_isa]
    for isa in isas:   # the default kernel set at 1 and 2 threads; the opt-in AVX-512 set (if any) at 1
        for threads in (1, 2) if isa == default_isa else (1,):
            def nc_setup(n=threads, isa=isa):
                nc._core.set_isa(isa)
                nc.set_num_threads(n)
            suffix = "" if isa == default_isa else f" {isa}"
            out[f"neurocore {threads}t{suffix}"] = (nc_setup, lambda: model.predict(x))
    for threads in (1, 2):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        out[f"onnxruntime {threads}t"] = (lambda: None, lambda s=session: s.run(["output"], {"input": x}))
    for threads in (1, 2):
        def torch_setup(n=threads):
            torch.set_num_threads(n)

        def torch_call():
            with torch.no_grad():
                return module(xt)
        out[f"torch eager {threads}t"] = (torch_setup, torch_call)
    reference = model.predict(x)
    for name, (setup, call) in out.items():   # same answers first (float32 bounds of the tests)
        setup()
        got = call()
        got = got.numpy() if hasattr(got, "numpy") else np.asarray(got[0] if isinstance(got, list) else got)
        assert np.max(np.abs(got - reference)) <= 1e-5 * np.max(np.abs(reference)) * 2, name
    return out


def best_of_three(call, min_time):
    """Seconds per call: the best of three blocks of about min_time / 3 each."""
    return min(time_call(call, min_time / 3) for _ in range(3))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--min-time", type=float, default=0.05, help="seconds per timed block (default 0.05)")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    args = p.parse_args()
    import onnxruntime as ort
    import torch

    print(f"neurocore {nc.__version__} ({nc.cpu_info().get('isa')}), onnxruntime {ort.__version__}, "
          f"torch {torch.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} cores; {args.rounds} interleaved rounds; float32")
    old_threads, old_isa = nc.get_num_threads(), nc._core.get_isa()
    with tempfile.TemporaryDirectory() as folder:
        for key in args.models.split(","):
            title, input_shape, layers = MODELS[key]
            model = nc.Sequential(layers(), dtype="float32", seed=0, input_shape=input_shape)
            path = os.path.join(folder, f"{key}.onnx")
            model.to_onnx(path)
            for batch in BATCHES:
                entries = contenders(model, batch, path)
                names = list(entries)
                times = {name: [] for name in names}
                for r in range(args.rounds):
                    for name in names[r % len(names):] + names[:r % len(names)]:
                        setup, call = entries[name]
                        setup()
                        times[name].append(best_of_three(call, args.min_time))
                nc.set_num_threads(old_threads)
                nc._core.set_isa(old_isa)
                med = {name: statistics.median(t) for name, t in times.items()}
                best = {name: min(t) for name, t in times.items()}
                print(f"\n### {title}, batch {batch} (us per call, Python call included)\n")
                print("| contender | median us | best us | best / neurocore 1t best |")
                print("|---|---:|---:|---:|")
                for name in names:
                    print(f"| {name} | {med[name] * 1e6:.1f} | {best[name] * 1e6:.1f} | "
                          f"{best[name] / best['neurocore 1t']:.2f} |")
                for label, t in (("best-of", best), ("median", med)):
                    ours = min(t["neurocore 1t"], t["neurocore 2t"])
                    print(f"\n{label}: onnxruntime / neurocore {t['onnxruntime 1t'] / t['neurocore 1t']:.2f}x at 1 "
                          f"thread each, {min(t['onnxruntime 1t'], t['onnxruntime 2t']) / ours:.2f}x best thread "
                          f"count each"
                          + "".join(f", {t['onnxruntime 1t'] / t[k]:.2f}x at 1 thread against neurocore's "
                                    f"{k.split()[-1]} set" for k in names if k.startswith("neurocore 1t "))
                          + f"; torch eager / neurocore {min(t['torch eager 1t'], t['torch eager 2t']) / ours:.2f}x")

if __name__ == "__main__":
    main()
