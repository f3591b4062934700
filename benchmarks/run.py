#!/usr/bin/env python
"""Training throughput and inference latency: neurocore next to PyTorch, JAX, NumPy.

    python benchmarks/run.py [--threads 1,2] [--quick] [--nets s64,mnist128,...]
                             [--frameworks neurocore,torch,jax,numpy] [--rounds N]

Per thread count, one child process pinned to that many cores measures (frameworks
interleaved round by round, the starting framework rotating every round):
  * training samples/s for each net (float32, SGD momentum 0.9, weight decay 1e-4,
    cross-entropy, synthetic data), with GFLOP/s and % of the GEMM peak measured in
    the same process (best of neurocore / NumPy on a 1024^3 float32 GEMM);
  * batch-1 predict latency and batch-1024 predict throughput;
and one child per framework measures the peak RSS of a training epoch.  The
`import neurocore` time is measured once.  Markdown tables go to stdout, everything
to benchmarks/results.json.  Missing frameworks are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _common as C  # noqa: E402

# key: (display name, layer sizes, batch, samples, quick samples)
NETS = {
    "s64": ("64-32-10", [64, 32, 10], 32, 20480, 4096),
    "mnist128": ("784-128-10", [784, 128, 10], 64, 20480, 4096),
    "mnist512": ("784-512-256-10", [784, 512, 256, 10], 128, 20480, 4096),
    "deep256": ("256-(256x8)-10", [256] + [256] * 8 + [10], 64, 20480, 4096),
    "wide4096": ("1024-4096-4096-1024", [1024, 4096, 4096, 1024], 256, 2048, 512),
}
N_CLASSES = 10
LATENCY_NETS = ["s64", "mnist128"]
BATCHED_NET, BATCHED_SIZE = "mnist512", 1024
RSS_NET, RSS_SAMPLES = "mnist512", 20480


def forward_flops(sizes) -> float:
    """Multiply-adds x 2 per sample for the Dense layers (bias/activations ignored)."""
    return float(sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:])))


def make_data(sizes, n, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0]), dtype=np.float32)
    y = rng.integers(0, min(N_CLASSES, sizes[-1]), size=n).astype(np.int64)
    return X, y


# --------------------------------------------------------------------------- worker

def measure_gemm_peak(threads, rounds, quick):
    """Best median GFLOP/s of a float32 1024^3 GEMM, neurocore and NumPy interleaved."""
    import numpy as np
    n = 1024
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    fns = {"numpy": lambda: a @ b}
    try:
        import neurocore as nc
        fns["neurocore"] = lambda: nc._core.gemm(a, b)
        fns["neurocore"]()
    except Exception:
        fns.pop("neurocore", None)
    for f in fns.values():
        f()
    gf = {k: [] for k in fns}
    order = list(fns)
    min_time = 0.05 if quick else 0.15
    for r in range(max(3, rounds)):
        for k in (order if r % 2 == 0 else order[::-1]):
            t = C.time_call(fns[k], min_time)
            gf[k].append(2.0 * n ** 3 / t / 1e9)
    med = {k: C.median(v) for k, v in gf.items()}
    best = max(med, key=med.get)
    return {"gflops": med[best], "source": best, "per_library": med, "size": n}


def bench_training(args, threads, frameworks, peak):
    import numpy as np
    import frameworks as FW

    rows = []
    for key in args.nets:
        name, sizes, batch, n_full, n_quick = NETS[key]
        n = n_quick if args.quick else n_full
        X, y = make_data(sizes, n)
        steps = n // batch
        fl_train = 3.0 * forward_flops(sizes)
        trainers, notes = {}, {}
        for fw in frameworks:
            try:
                FW.set_threads(fw, threads)
                tr = FW.TRAINERS[fw](sizes, X, y, batch)
                tr.epoch()  # warm-up (JAX compiles here)
                trainers[fw] = tr
            except Exception as exc:
                notes[fw] = f"{type(exc).__name__}: {exc}"
                print(f"  [{threads}t] {name}: {fw} failed: {notes[fw]}", file=sys.stderr)
        times = {fw: [] for fw in trainers}
        losses = {fw: [] for fw in trainers}
        order = list(trainers)
        for r in range(args.rounds):
            k = r % max(1, len(order))
            for fw in order[k:] + order[:k]:
                t0 = time.perf_counter()
                loss = trainers[fw].epoch()
                times[fw].append(time.perf_counter() - t0)
                losses[fw].append(loss)
        for fw in frameworks:
            row = {"net": name, "key": key, "sizes": sizes, "batch": batch, "samples": n,
                   "framework": fw, "threads": threads}
            if fw in times:
                ts = times[fw]
                sps = [n / t for t in ts]
                med = C.median(sps)
                gflops = med * fl_train / 1e9
                row.update({
                    "samples_per_s": med, "us_per_step": C.median(ts) / steps * 1e6,
                    "gflops": gflops, "pct_gemm_peak": 100.0 * gflops / peak["gflops"],
                    "spread": C.spread(sps), "rounds_samples_per_s": sps,
                    "epoch_loss_last": losses[fw][-1],
                    "loss_finite": bool(np.all(np.isfinite(losses[fw]))),
                })
            else:
                row["skipped"] = notes.get(fw, "not run")
            rows.append(row)
        nc_row = next((r for r in rows if r["net"] == name and r["framework"] == "neurocore"
                       and "samples_per_s" in r), None)
        for r in rows:
            if r["net"] == name and "samples_per_s" in r:
                r["nc_over_this"] = (nc_row["samples_per_s"] / r["samples_per_s"]
                                     if nc_row else None)
                print(f"  [{threads}t] {name:>20} {r['framework']:>9}: "
                      f"{r['samples_per_s']:>10.0f} samples/s  {r['gflops']:6.1f} GFLOP/s "
                      f"loss {r['epoch_loss_last']:.3f}", file=sys.stderr, flush=True)
        del trainers
    return rows


def bench_predict(args, threads, keys, batch, include_sklearn):
    import numpy as np
    import frameworks as FW

    rows = []
    notes = {}
    for key in keys:
        name, sizes, _, _, _ = NETS[key]
        Xf, yf = make_data(sizes, 1024, seed=3)
        preds, errs = FW.make_predictors(sizes, Xf, yf, include_sklearn=include_sklearn)
        notes.update(errs)
        x = np.ascontiguousarray(make_data(sizes, batch, seed=4)[0])
        for fn in preds.values():  # warm-up (JAX compiles for this shape)
            fn(x)
        min_time = 0.02 if args.quick else 0.06
        ts = {k: [] for k in preds}
        order = list(preds)
        for r in range(args.rounds + 2):
            k = r % len(order)
            for p in order[k:] + order[:k]:
                ts[p].append(C.time_call(lambda p=p: preds[p](x), min_time))
        fl = forward_flops(sizes) * batch
        for p in order:
            t = C.median(ts[p])
            rows.append({"net": name, "key": key, "batch": batch, "framework": p,
                         "threads": threads, "us": t * 1e6, "samples_per_s": batch / t,
                         "gflops": fl / t / 1e9, "spread": C.spread(ts[p])})
    return rows, notes


def worker(args) -> dict:
    threads = args.worker
    cores = C.pin_to_cores(threads)
    import numpy as np
    import frameworks as FW

    frameworks, skipped = [], {}
    for fw in args.frameworks:
        why = FW.available(fw)
        if why is None:
            frameworks.append(fw)
        else:
            skipped[fw] = why
    for fw in frameworks:
        FW.set_threads(fw, threads)
    info = C.blas_info()
    nc_info = None
    if "neurocore" in frameworks:
        import neurocore as nc
        try:
            nc_info = nc.cpu_info()
        except Exception as exc:
            nc_info = {"error": repr(exc)}
    versions = {"numpy": np.__version__}
    for mod in ("torch", "jax", "sklearn", "neurocore"):
        if FW.available(mod) is None:
            versions[mod] = __import__(mod).__version__

    t0 = time.time()
    peak = measure_gemm_peak(threads, args.rounds, args.quick)
    print(f"  [{threads}t] GEMM peak {peak['gflops']:.1f} GFLOP/s ({peak['source']})",
          file=sys.stderr, flush=True)
    training = bench_training(args, threads, frameworks, peak)
    latency, lnotes = bench_predict(args, threads, LATENCY_NETS, 1, include_sklearn=True)
    batched, bnotes = bench_predict(args, threads, [BATCHED_NET], BATCHED_SIZE,
                                    include_sklearn=True)
    return {"threads": threads, "cores": cores, "rounds": args.rounds, "gemm_peak": peak,
            "blas": info, "numpy_kernel": C.numpy_blas_kernel(info),
            "neurocore_cpu_info": nc_info, "versions": versions, "skipped": skipped,
            "predict_notes": {**lnotes, **bnotes}, "training": training,
            "latency_batch1": latency, "predict_batched": batched,
            "worker_wall_s": time.time() - t0,
            "env": {k: os.environ.get(k) for k in C.THREAD_VARS + C.OPENBLAS_OVERRIDES
                    + ("XLA_FLAGS",)}}


# --------------------------------------------------------------------------- RSS child

def rss_child(args) -> dict:
    """Train RSS_NET for one epoch with one framework; report RSS before and peak."""
    import resource
    threads = args.worker
    C.pin_to_cores(threads)
    fw = args.rss
    import numpy as np  # noqa: F401
    import frameworks as FW
    FW.set_threads(fw, threads)
    _, sizes, batch, _, _ = NETS[RSS_NET]
    n = RSS_SAMPLES // 4 if args.quick else RSS_SAMPLES
    X, y = make_data(sizes, n)
    if fw != "numpy":
        __import__({"neurocore": "neurocore", "torch": "torch", "jax": "jax"}[fw])
    before = _vmrss_kb()
    tr = FW.TRAINERS[fw](sizes, X, y, batch)
    tr.epoch()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"framework": fw, "threads": threads, "samples": n,
            "rss_before_train_mb": before / 1024, "peak_rss_mb": peak_kb / 1024,
            "train_increment_mb": (peak_kb - before) / 1024}


def _vmrss_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# --------------------------------------------------------------------------- import time

def import_times(repeats: int) -> list[dict]:
    """Wall time of `import X` in a fresh interpreter (median of repeats), plus
    neurocore's cumulative time from -X importtime."""
    import frameworks as FW
    out = []
    env = C.child_env(1, unset_openblas_overrides=False)
    code = ("import time; t=time.perf_counter(); import {m}; "
            "print(time.perf_counter()-t)")
    for mod, fwname in (("numpy", "numpy"), ("neurocore", "neurocore"), ("torch", "torch"),
                        ("jax", "jax")):
        if FW.available(fwname) is not None:
            out.append({"module": mod, "skipped": FW.available(fwname)})
            continue
        walls = []
        for _ in range(repeats):
            p = subprocess.run([sys.executable, "-c", code.format(m=mod)], env=env,
                               capture_output=True, text=True)
            if p.returncode == 0:
                walls.append(float(p.stdout.strip().splitlines()[-1]))
        row = {"module": mod, "wall_ms": C.median(walls) * 1e3,
               "rounds_ms": [w * 1e3 for w in walls]}
        if mod == "neurocore":
            p = subprocess.run([sys.executable, "-X", "importtime", "-c", "import neurocore"],
                               env=env, capture_output=True, text=True)
            for line in p.stderr.splitlines():
                parts = [s.strip() for s in line.split("|")]
                if len(parts) == 3 and parts[2] == "neurocore":
                    row["importtime_cumulative_ms"] = int(parts[1]) / 1e3
                if len(parts) == 3 and parts[2] == "numpy":
                    row["importtime_numpy_ms"] = int(parts[1]) / 1e3
        out.append(row)
    return out


# --------------------------------------------------------------------------- tables

def print_tables(data):
    for run in data["runs"]:
        t = run["threads"]
        peak = run["gemm_peak"]
        print(f"\n## {t} thread(s) (cores {run['cores']}), median of {run['rounds']} rounds")
        print(f"NumPy BLAS: {run['numpy_kernel']}; neurocore ISA: "
              f"{(run['neurocore_cpu_info'] or {}).get('isa', '-')}; GEMM peak "
              f"(1024^3 float32, best of neurocore/NumPy): {peak['gflops']:.1f} GFLOP/s "
              f"[{', '.join(f'{k} {v:.1f}' for k, v in peak['per_library'].items())}]")
        for fw, why in run["skipped"].items():
            print(f"note: {fw} skipped ({why})")
        print("\n### Training throughput (one shuffled epoch per round)\n")
        header = ["net", "batch", "samples", "framework", "samples/s", "us/step", "GFLOP/s",
                  "% GEMM peak", "neurocore/this", "spread %", "loss"]
        rows = []
        for r in run["training"]:
            if "samples_per_s" not in r:
                rows.append([r["net"], str(r["batch"]), str(r["samples"]), r["framework"],
                             "-", "-", "-", "-", "-", "-", "skipped"])
                continue
            ratio = r.get("nc_over_this")
            rows.append([r["net"], str(r["batch"]), str(r["samples"]), r["framework"],
                         r["samples_per_s"], r["us_per_step"], r["gflops"],
                         r["pct_gemm_peak"], C.fmt(ratio, 2) if ratio else "-",
                         f"{100 * r['spread']:.0f}", f"{r['epoch_loss_last']:.3f}"])
        print(C.markdown_table(header, rows))

        print("\n### Batch-1 predict latency (us per call, Python call included)\n")
        nets = sorted({r["net"] for r in run["latency_batch1"]}, key=lambda s: len(s))
        fws = list(dict.fromkeys(r["framework"] for r in run["latency_batch1"]))
        rows = []
        for fw in fws:
            row = [fw]
            for net in nets:
                m = [r for r in run["latency_batch1"] if r["net"] == net and r["framework"] == fw]
                row.append(m[0]["us"] if m else "-")
            rows.append(row)
        print(C.markdown_table(["framework"] + [f"{n} us" for n in nets], rows))

        b = run["predict_batched"]
        if b:
            print(f"\n### Batched predict ({b[0]['net']}, batch {b[0]['batch']})\n")
            rows = [[r["framework"], r["us"], r["samples_per_s"], r["gflops"]] for r in b]
            print(C.markdown_table(["framework", "us/batch", "samples/s", "GFLOP/s"], rows))
        for fw, why in run.get("predict_notes", {}).items():
            print(f"note: {fw} skipped in predict ({why})")

        rss = [r for r in data.get("rss", []) if r.get("threads") == t]
        if rss:
            print(f"\n### Peak RSS, training {NETS[RSS_NET][0]} one epoch "
                  f"({rss[0].get('samples', '-')} samples, own process each)\n")
            rows = []
            for r in rss:
                if "peak_rss_mb" in r:
                    rows.append([r["framework"], r["rss_before_train_mb"], r["peak_rss_mb"],
                                 r["train_increment_mb"]])
                else:
                    rows.append([r["framework"], "-", "-", r.get("error", "failed")[:60]])
            print(C.markdown_table(["framework", "RSS after import+data MB", "peak RSS MB",
                                    "peak - before MB"], rows))

    if data.get("import_times"):
        print("\n## Import time (fresh interpreter, wall ms, median)\n")
        rows = []
        for r in data["import_times"]:
            if "skipped" in r:
                rows.append([r["module"], "-", "skipped"])
            else:
                extra = ""
                if "importtime_cumulative_ms" in r:
                    extra = (f"-X importtime: neurocore {r['importtime_cumulative_ms']:.0f} ms "
                             f"cumulative, of which numpy "
                             f"{r.get('importtime_numpy_ms', float('nan')):.0f} ms")
                rows.append([r["module"], r["wall_ms"], extra])
        print(C.markdown_table(["module", "import ms", "notes"], rows))


# --------------------------------------------------------------------------- main

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--threads", default="1,2", help="comma list of thread counts (default 1,2)")
    p.add_argument("--quick", action="store_true", help="fewer samples and rounds")
    p.add_argument("--nets", default=",".join(NETS),
                   help="comma list of: " + ", ".join(f"{k} ({v[0]})" for k, v in NETS.items()))
    p.add_argument("--frameworks", default="neurocore,torch,jax,numpy")
    p.add_argument("--rounds", type=int, default=0, help="rounds per measurement "
                   "(default 5, 2 with --quick)")
    p.add_argument("--no-rss", action="store_true", help="skip the peak-RSS children")
    p.add_argument("--no-import", action="store_true", help="skip the import-time children")
    p.add_argument("--out", default=os.path.join(HERE, "results.json"))
    p.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--rss", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.rounds = args.rounds or (2 if args.quick else 5)
    by_name = {v[0]: k for k, v in NETS.items()}
    nets = []
    for n in args.nets.split(","):
        n = n.strip()
        if not n:
            continue
        k = n if n in NETS else by_name.get(n)
        if k is None:
            raise SystemExit(f"--nets: unknown net {n!r}; choose from {', '.join(NETS)}")
        nets.append(k)
    args.nets = nets
    args.frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    for f in args.frameworks:
        if f not in ("neurocore", "torch", "jax", "numpy"):
            raise SystemExit(f"--frameworks: unknown {f!r}; choose neurocore,torch,jax,numpy")

    if args.rss:
        print(json.dumps(rss_child(args)))
        return
    if args.worker:
        print(json.dumps(worker(args)))
        return

    t_start = time.time()
    me = os.path.abspath(__file__)
    common = ["--nets", ",".join(args.nets), "--frameworks", ",".join(args.frameworks),
              "--rounds", str(args.rounds)] + (["--quick"] if args.quick else [])
    data = {"benchmark": "training", "machine": C.machine_info(),
            "parent_openblas_env": C.openblas_env_report(),
            "openblas_env_note": "OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset only in processes "
                                 "that time NumPy (the per-thread workers and the numpy RSS "
                                 "child); unchanged for every other child",
            "quick": args.quick, "settings": {"lr": 0.01, "momentum": 0.9,
                                              "weight_decay": 1e-4, "dtype": "float32",
                                              "classes": N_CLASSES},
            "runs": [], "rss": [], "import_times": []}
    for t in C.parse_threads(args.threads):
        print(f"--- {t} thread(s) ---", file=sys.stderr, flush=True)
        env = C.child_env(t, unset_openblas_overrides=True)
        env.setdefault("JAX_PLATFORMS", "cpu")
        data["runs"].append(C.run_worker(me, ["--worker", str(t)] + common, env))
        if not args.no_rss:
            import frameworks as FW
            for fw in args.frameworks:
                if FW.available(fw) is not None:
                    continue
                env = C.child_env(t, unset_openblas_overrides=(fw == "numpy"))
                env.setdefault("JAX_PLATFORMS", "cpu")
                try:
                    r = C.run_worker(me, ["--worker", str(t), "--rss", fw] + common, env)
                except Exception as exc:
                    r = {"framework": fw, "threads": t, "error": str(exc)[-300:]}
                data["rss"].append(r)
                print(f"  [{t}t] RSS {fw}: {r.get('peak_rss_mb', float('nan')):.0f} MB",
                      file=sys.stderr, flush=True)
    if not args.no_import:
        data["import_times"] = import_times(3 if args.quick else 7)
    data["wall_s"] = time.time() - t_start
    print_tables(data)
    C.write_json(args.out, data)
    print(f"\nwrote {args.out} ({data['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
