#!/usr/bin/env python
"""Two threads on a machine we share: neurocore next to NumPy's pool, next to a busy core, and against
the GEMM floor. Each figure is a ratio measured side by side in one run; with two builds (A = before,
B = after) every child alternates A, B, B, A, ... so a drift of the machine hits both alike.

    python benchmarks/shared_cores.py numpy [BUILD ...]   # predict interleaved with NumPy, 2 threads
    python benchmarks/shared_cores.py busy  [BUILD ...]   # 784-512-256-10 training, busy loop on core 1
    python benchmarks/shared_cores.py floor [BUILD ...]   # run.py's nets against their GEMMs in NumPy
    python benchmarks/shared_cores.py spin  [BUILD ...]   # CPU idle thread pools burn after a call

A BUILD is a folder holding a ``neurocore`` package (``pip install --target DIR``, or
``benchmarks/ab.py --snapshot DIR``); none means the neurocore this interpreter imports. Run it with an
interpreter that has no editable neurocore install when you pass builds (ab.py explains why).

numpy: one process, 2 threads on cores 0-1. Dense 256x1024->1024 + ReLU: ``model.predict(x)`` against
``np.maximum(x @ W + b, 0)``. Each round runs three blocks of 20 calls: neurocore, NumPy right after
it ("interleaved"), NumPy again ("alone": its pool warm, ours idle for a whole block); the best block
of each kind over the rounds (default 7) gives us/NumPy and NumPy interleaved/alone.
busy: ``taskset -c 1`` busy loop for the whole run; one process per build, on cores 0-1, trains epochs
alternately at 1 and 2 threads: the ratio of adjacent epochs, whose median over all rounds is reported
(adjacent epochs see the same background load; the single thread may run on either core, as a user's
would).
floor: per net of run.py, samples/s of fit against the same products (forward X.W, dW = X^T.dY, and
dX = dY.W^T for every layer but the first) through NumPy's BLAS, preallocated outputs, nothing else,
in a separate process at the same thread count: floor/ours in time, above 1 means faster than the floor.
spin: CPU time the process burns while its main thread sleeps 200 ms right after one 2-thread call (neurocore's predict, then NumPy's @): what its idle pool's spin-wait takes from everything else.
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed for these children (they slow NumPy down).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from run import NETS  # noqa: E402

NUMPY_CHILD = r"""
import json, os, sys, time
os.sched_setaffinity(0, {0, 1})
import numpy as np
import neurocore as nc
rounds, block = json.loads(sys.argv[1])
nc.set_num_threads(2)
rng = np.random.default_rng(0)
x = rng.standard_normal((256, 1024), dtype=np.float32)
model = nc.Sequential([nc.Dense(1024, 1024), nc.ReLU()], seed=0)
W, b = (np.ascontiguousarray(p) for p in model.parameters())
def ours():
    return model.predict(x)
def theirs():
    y = x @ W
    y += b
    return np.maximum(y, 0, out=y)
assert np.allclose(ours(), theirs(), rtol=1e-4, atol=1e-4)
def timed(fn):
    t = time.perf_counter()
    for _ in range(block):
        fn()
    return (time.perf_counter() - t) / block
best = {"ours": 1e9, "numpy_interleaved": 1e9, "numpy_alone": 1e9}
for _ in range(rounds):
    for key, fn in (("ours", ours), ("numpy_interleaved", theirs), ("numpy_alone", theirs)):
        best[key] = min(best[key], timed(fn))
best["file"] = nc.__file__
print(json.dumps(best))
"""

TRAIN_CHILD = r"""
import json, os, sys, time
spec = json.loads(sys.argv[1])
os.sched_setaffinity(0, set(spec["cores"]))
import numpy as np
import neurocore as nc
nc.set_num_threads(len(spec["cores"]))
rng = np.random.default_rng(0)
out = {"file": nc.__file__}
for name, sizes, batch, n in spec["nets"]:
    x = rng.standard_normal((n, sizes[0]), dtype=np.float32)
    y = rng.integers(0, min(10, sizes[-1]), n)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nc.Dense(a, b))
        if i < len(sizes) - 2:
            layers.append(nc.ReLU())
    model = nc.Sequential(layers, seed=0)
    opt = nc.SGD(lr=0.01, momentum=0.9, weight_decay=1e-4)
    best = 1e9
    for e in range(spec["epochs"] + 1):
        t = time.perf_counter()
        model.fit(x, y, loss="cross_entropy", optimizer=opt, epochs=1, batch_size=batch, verbose=0)
        if e:
            best = min(best, time.perf_counter() - t)
    out[name] = n / best
print(json.dumps(out))
"""

BUSY_CHILD = r"""
import json, os, sys, time
spec = json.loads(sys.argv[1])
os.sched_setaffinity(0, {0, 1})
import numpy as np
import neurocore as nc
name, sizes, batch, n = spec["net"]
rng = np.random.default_rng(0)
x = rng.standard_normal((n, sizes[0]), dtype=np.float32)
y = rng.integers(0, 10, n)
layers = []
for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
    layers.append(nc.Dense(a, b))
    if i < len(sizes) - 2:
        layers.append(nc.ReLU())
model = nc.Sequential(layers, seed=0)
opt = nc.SGD(lr=0.01, momentum=0.9, weight_decay=1e-4)
def epoch(threads):
    nc.set_num_threads(threads)
    t = time.perf_counter()
    model.fit(x, y, loss="cross_entropy", optimizer=opt, epochs=1, batch_size=batch, verbose=0)
    return n / (time.perf_counter() - t)
epoch(2), epoch(1)   # warm-up
out = {"file": nc.__file__, "one": [], "two": []}
for r in range(spec["rounds"]):
    for t in ((1, 2) if r % 2 == 0 else (2, 1)):
        out["one" if t == 1 else "two"].append(epoch(t))
print(json.dumps(out))
"""

SPIN_CHILD = r"""
import json, os, resource, sys, time
os.sched_setaffinity(0, {0, 1})
import numpy as np
import neurocore as nc
nc.set_num_threads(2)
x = np.random.default_rng(0).standard_normal((256, 1024), dtype=np.float32)
model = nc.Sequential([nc.Dense(1024, 1024), nc.ReLU()], seed=0)
W = np.ascontiguousarray(model.parameters()[0])
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
out = {"file": nc.__file__}
for key, fn in (("ours", lambda: model.predict(x)), ("numpy", lambda: x @ W)):
    for _ in range(3):
        fn()
    burned = []
    for _ in range(5):
        fn()
        c = cpu()   # the call has returned: from here on only idle threads use CPU
        time.sleep(0.2)
        burned.append(cpu() - c)
    out[key] = burned
print(json.dumps(out))
"""

FLOOR_CHILD = r"""
import json, os, sys, time
spec = json.loads(sys.argv[1])
os.sched_setaffinity(0, set(spec["cores"]))
import numpy as np
rng = np.random.default_rng(0)
out = {}
for name, sizes, batch, n in spec["nets"]:
    ws = [rng.standard_normal((a, b), dtype=np.float32) * 0.05 for a, b in zip(sizes[:-1], sizes[1:])]
    xs = [rng.standard_normal((batch, a), dtype=np.float32) for a in sizes]
    dys = [np.empty((batch, b), np.float32) for b in sizes[1:]]
    dxs = [np.empty((batch, a), np.float32) for a in sizes[:-1]]
    dws = [np.empty_like(w) for w in ws]
    def step():
        for i, w in enumerate(ws):   # forward
            np.matmul(xs[i], w, out=xs[i + 1])
        for i in reversed(range(len(ws))):   # backward
            np.matmul(xs[i].T, dys[i], out=dws[i])
            if i:
                np.matmul(dys[i], ws[i].T, out=dxs[i])
    steps = n // batch
    best = 1e9
    for e in range(spec["epochs"] + 1):
        t = time.perf_counter()
        for _ in range(steps):
            step()
        if e:
            best = min(best, time.perf_counter() - t)
    out[name] = steps * batch / best
print(json.dumps(out))
"""


def child_env(threads: int, build: str | None) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        env.pop(var, None)
    if build:
        env["PYTHONPATH"] = build
    if ISA:
        env["NEUROCORE_ISA"] = ISA
    return env


ISA = ""   # --isa: force one kernel set in every build


def run(code: str, arg, threads: int, build: str | None) -> dict:
    out = subprocess.run([sys.executable, "-c", code, json.dumps(arg)], env=child_env(threads, build),
                         capture_output=True, text=True, cwd="/")
    if out.returncode:
        raise SystemExit(f"child failed:\n{out.stderr}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if build and not os.path.realpath(result["file"]).startswith(os.path.realpath(build)):
        raise SystemExit(f"the child imported {result['file']}, not {build}: use an interpreter without an "
                         "editable neurocore install")
    return result


def order(builds, r):
    """A, B in even rounds, B, A in odd ones."""
    return builds if r % 2 == 0 else builds[::-1]


def mode_numpy(args, builds):
    per = {b: [] for b in builds}
    for r in range(args.procs):
        for b in order(builds, r):
            res = run(NUMPY_CHILD, [args.rounds, 20], 2, b)
            per[b].append(res)
            print(f"  {label(b)}: ours {res['ours'] * 1e3:.2f} ms, NumPy interleaved "
                  f"{res['numpy_interleaved'] * 1e3:.2f} ms, alone {res['numpy_alone'] * 1e3:.2f} ms  ->  "
                  f"us/NumPy {res['numpy_interleaved'] / res['ours']:.3f}, NumPy interleaved/alone "
                  f"{res['numpy_alone'] / res['numpy_interleaved']:.3f}", flush=True)
    print("\nDense 256x1024->1024 + ReLU predict, 2 threads, blocks of 20 calls, best of "
          f"{args.rounds} rounds per process, median over {args.procs} processes (speed ratios)")
    for b in builds:
        ours = statistics.median(x["numpy_interleaved"] / x["ours"] for x in per[b])
        np_ratio = statistics.median(x["numpy_alone"] / x["numpy_interleaved"] for x in per[b])
        print(f"{label(b)}: neurocore/NumPy {ours:.3f}; NumPy interleaved/alone {np_ratio:.3f}")


def mode_busy(args, builds):
    net = [NETS["mnist512"][0], NETS["mnist512"][1], 128, args.samples]
    spin = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        per = {b: [] for b in builds}
        for r in range(args.procs):
            for b in order(builds, r):
                res = run(BUSY_CHILD, {"net": net, "rounds": args.rounds}, 2, b)
                pairs = [two / one for one, two in zip(res["one"], res["two"])]
                per[b] += pairs
                print(f"  {label(b)}: 1 thread best {max(res['one']):,.0f}, 2 threads best {max(res['two']):,.0f} "
                      f"samples/s; 2/1 per round " + " ".join(f"{x:.2f}" for x in pairs), flush=True)
    finally:
        spin.kill()
    print(f"\n{net[0]} batch 128, busy loop on core 1; epochs of {args.samples} samples at 1 and 2 threads "
          f"alternating in one process ({args.rounds} rounds), {args.procs} processes per build")
    for b in builds:
        print(f"{label(b)}: 2 threads / 1 thread, adjacent epochs: median {statistics.median(per[b]):.3f} "
              f"(min {min(per[b]):.3f}, max {max(per[b]):.3f}, {len(per[b])} pairs)")


def mode_spin(args, builds):
    for r in range(args.procs):
        for b in order(builds, r):
            res = run(SPIN_CHILD, {}, 2, b)
            print(f"{label(b)}: CPU ms burned in 200 ms of sleep after a 2-thread call: neurocore "
                  + " ".join(f"{v * 1e3:.1f}" for v in res["ours"]) + "; NumPy "
                  + " ".join(f"{v * 1e3:.1f}" for v in res["numpy"]), flush=True)


def mode_floor(args, builds):
    keys = args.nets.split(",")
    nets = [[NETS[k][0], NETS[k][1], NETS[k][2], NETS[k][4] if args.quick else NETS[k][3]] for k in keys]
    for threads in args.threads:
        cores = list(range(threads))
        per = {b: [] for b in builds}
        floor = []
        for r in range(args.procs):
            for b in order(builds, r):
                per[b].append(run(TRAIN_CHILD, {"cores": cores, "nets": nets, "epochs": args.epochs}, threads, b))
            floor.append(run(FLOOR_CHILD, {"cores": cores, "nets": nets, "epochs": args.epochs}, threads, None))
            print(f"  round {r + 1} done", flush=True)
        print(f"\n{threads} thread(s): samples/s (median of {args.procs} processes, best of {args.epochs} "
              "epochs each) and ours / GEMM floor")
        print("| net | GEMM floor | " + " | ".join(label(b) for b in builds) + " |")
        print("|---|---|" + "---|" * len(builds))
        for name, *_ in nets:
            fl = statistics.median(f[name] for f in floor)
            cells = []
            for b in builds:
                ours = statistics.median(x[name] for x in per[b])
                cells.append(f"{ours:,.0f} ({ours / fl:.3f})")
            print(f"| {name} | {fl:,.0f} | " + " | ".join(cells) + " |")


def label(build):
    return build or "this build"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["numpy", "busy", "floor", "spin"])
    p.add_argument("builds", nargs="*", help="folders holding a neurocore package (A, then B)")
    p.add_argument("--procs", type=int, default=4, help="child processes per build (and thread count)")
    p.add_argument("--rounds", type=int, default=7, help="numpy: rounds of blocks; busy: epoch pairs per process")
    p.add_argument("--epochs", type=int, default=3, help="busy/floor: timed epochs per process (best counts)")
    p.add_argument("--samples", type=int, default=3840, help="busy: samples per epoch")
    p.add_argument("--nets", default=",".join(NETS), help="floor: comma list of run.py's net keys")
    p.add_argument("--threads", default="1,2", help="floor: thread counts")
    p.add_argument("--quick", action="store_true", help="floor: run.py's quick sample counts")
    p.add_argument("--isa", default="", help="force a kernel set (NEUROCORE_ISA) in every build")
    args = p.parse_args()
    global ISA
    ISA = args.isa
    args.threads = [int(t) for t in args.threads.split(",")]
    builds = args.builds or [None]
    {"numpy": mode_numpy, "busy": mode_busy, "floor": mode_floor, "spin": mode_spin}[args.mode](args, builds)


if __name__ == "__main__":
    main()
