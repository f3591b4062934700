"""A/B: training throughput of two builds of neurocore, side by side in one run.

These machines drift by up to 1.5x between runs, so a change to the kernels is judged by the ratio of
two builds timed in alternating processes, never by two absolute times.  Each build is a folder that
holds a ``neurocore`` package (``pip install --target DIR``, or ``--snapshot DIR`` below, which copies
the build this interpreter imports).

    python benchmarks/ab.py --snapshot /tmp/ab/new
    python benchmarks/ab.py /tmp/ab/old /tmp/ab/new --net 64-32-10 --batch 32 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, os, sys, time
import numpy as np
import neurocore as nc
widths, batch, threads, epochs, isa, n = json.loads(sys.argv[1])
if threads:
    os.sched_setaffinity(0, set(range(threads)))
    nc.set_num_threads(threads)
if isa:
    nc._core.set_isa(isa)
rng = np.random.default_rng(0)
x = rng.standard_normal((n, widths[0])).astype(np.float32)
y = rng.integers(0, widths[-1], n)
layers = []
for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
    layers.append(nc.Dense(a, b))
    if i < len(widths) - 2:
        layers.append(nc.ReLU())
model = nc.Sequential(layers, seed=0)
opt = nc.SGD(lr=0.01, momentum=0.9, weight_decay=1e-4)
times = []
for _ in range(epochs + 1):
    t = time.perf_counter()
    model.fit(x, y, loss="cross_entropy", optimizer=opt, epochs=1, batch_size=batch, verbose=0)
    times.append(time.perf_counter() - t)
print(json.dumps({"samples_per_s": n / min(times[1:]), "isa": nc.cpu_info()["isa"], "file": nc.__file__}))
"""


def snapshot(dest: Path) -> None:
    """Copy the neurocore this interpreter imports (package and compiled module) to dest/neurocore."""
    import neurocore
    src = Path(neurocore.__file__).parent
    target = dest / "neurocore"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
    core = Path(neurocore._core.__file__)
    if core.parent != src:   # an editable install keeps the compiled module elsewhere
        shutil.copy2(core, target / core.name)
    print(f"copied {src} (+ {core.name}) to {target}")


def run_child(build: str, args: argparse.Namespace) -> dict:
    env = dict(os.environ, PYTHONPATH=build)
    spec = json.dumps([[int(w) for w in args.net.split("-")], args.batch, args.threads, args.epochs, args.isa,
                       args.samples])
    out = subprocess.run([sys.executable, "-c", CHILD, spec], env=env, capture_output=True, text=True,
                         check=True, cwd="/")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not Path(result["file"]).resolve().is_relative_to(Path(build).resolve()):
        # an editable install's import hook wins over PYTHONPATH: run this with a non-editable environment
        raise SystemExit(f"the child imported {result['file']}, not the build in {build}; run ab.py with "
                         "an interpreter that has no editable neurocore install")
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("builds", nargs="*", help="two folders, each holding a neurocore package: A then B")
    p.add_argument("--snapshot", type=Path, help="copy the importable neurocore build to this folder and exit")
    p.add_argument("--net", default="64-32-10")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="cores to pin to and threads to use (0: leave as is)")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per process (the best counts)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--samples", type=int, default=20480, help="rows of synthetic data (one epoch)")
    p.add_argument("--isa", default="", help="force a kernel set in both builds")
    args = p.parse_args()
    if args.snapshot:
        snapshot(args.snapshot)
        return
    if len(args.builds) != 2:
        p.error("give two build folders (A and B), or --snapshot DIR")
    ratios = []
    for r in range(args.rounds):
        a, b = (run_child(d, args) for d in (args.builds if r % 2 == 0 else args.builds[::-1]))
        if r % 2:
            a, b = b, a
        ratios.append(b["samples_per_s"] / a["samples_per_s"])
        print(f"round {r + 1}: A {a['samples_per_s']:,.0f}  B {b['samples_per_s']:,.0f} samples/s "
              f"({a['isa']}/{b['isa']})  B/A {ratios[-1]:.3f}", flush=True)
    print(f"{args.net} batch {args.batch}, {args.threads} thread(s): B/A median {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f}, {len(ratios)} rounds)")


if __name__ == "__main__":
    main()
