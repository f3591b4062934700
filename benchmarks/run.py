#!/usr/bin/env python
"""Training throughput and inference latency: neurocore next to PyTorch, JAX, NumPy.

    python benchmarks/run.py [--threads 1,2] [--quick] [--nets s64,mnist128,...]
                             [--frameworks neurocore,torch,jax,numpy] [--rounds N]

For every thread count, each framework runs in its own long-lived child process,
pinned to that many cores (all children of one thread count share the same cores and
never run at the same time).  The parent drives them round by round, rotating which
framework goes first, so slow drifts of a noisy machine hit every framework alike,
while thread pools of different runtimes (OpenMP, OpenBLAS, XLA) never share a
process.  Measured:
  * training samples/s per net (float32, SGD momentum 0.9, weight decay 1e-4,
    cross-entropy, synthetic data), GFLOP/s, and % of the "GEMM peak" = best median
    GFLOP/s of neurocore / NumPy on a 1024^3 float32 GEMM measured in the same run;
  * batch-1 predict latency and batch-1024 predict throughput (+ sklearn);
  * peak RSS of one training epoch, a fresh child per framework;
  * `import neurocore` time (fresh interpreters).
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed only from the NumPy and sklearn
children.  Markdown tables go to stdout, everything to benchmarks/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
    "wide4096": ("1024-4096-4096-1024", [1024, 4096, 4096, 1024], 256, 1024, 512),
}
N_CLASSES = 10
TRAIN_FRAMEWORKS = ("neurocore", "torch", "jax", "numpy")
PREDICT_FRAMEWORKS = ("neurocore", "torch", "jax", "numpy", "sklearn")
LATENCY_NETS = ["s64", "mnist128"]
BATCHED_NET, BATCHED_SIZE = "mnist512", 1024
RSS_NET, RSS_SAMPLES = "mnist512", 20480
PEAK_N = 1024


def forward_flops(sizes) -> float:
    """2 x multiply-adds per sample of the Dense layers (bias/activation ignored)."""
    return float(sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:])))


def make_data(sizes, n, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0]), dtype=np.float32)
    y = rng.integers(0, min(N_CLASSES, sizes[-1]), size=n).astype(np.int64)
    return X, y


# =========================================================================== child side

def serve(fw: str, threads: int, quick: bool) -> None:
    """Long-lived child: read one JSON command per stdin line, answer one JSON line."""
    reply, commands = C.child_protocol()
    cores = C.pin_to_cores(threads)
    import frameworks as FW
    why = FW.available(fw)
    hello = {"framework": fw, "cores": cores, "pid": os.getpid(), "error": why}
    if why is None:
        import numpy as np
        FW.set_threads(fw, threads)
        hello["version"] = __import__(fw).__version__
        hello["module_file"] = __import__(fw).__file__
        hello["numpy_version"] = np.__version__
        if fw in ("numpy", "sklearn"):
            np.ones((64, 64), np.float32) @ np.ones((64, 64), np.float32)
            hello["blas"] = C.blas_info()
            hello["numpy_kernel"] = C.numpy_blas_kernel(hello["blas"])
        if fw == "neurocore":
            import neurocore as nc
            try:
                hello["cpu_info"] = nc.cpu_info()
            except Exception as exc:
                hello["cpu_info"] = {"error": repr(exc)}
    reply(hello)
    if why is not None:
        return

    trainer = None
    steps = epochs = 0
    preds, x_pred = {}, None
    peak_fn = None
    for cmd in commands:
        op = cmd["op"]
        try:
            if op == "setup_train":
                trainer = None
                _, sizes, batch, n_full, n_quick = NETS[cmd["net"]]
                n = n_quick if quick else n_full
                X, y = make_data(sizes, n)
                steps = n // batch
                trainer = FW.TRAINERS[fw](sizes, X, y, batch)
                t0 = time.perf_counter()
                trainer.epoch()  # warm-up; JAX compiles here
                epochs = 1
                reply({"ok": True, "warmup_s": time.perf_counter() - t0, "samples": n,
                       "steps": steps})
            elif op == "epoch":
                t0 = time.perf_counter()
                loss = trainer.epoch()
                dt = time.perf_counter() - t0
                epochs += 1
                reply({"t": dt, "loss": loss, "epochs": epochs})
            elif op == "setup_predict":
                trainer = None
                _, sizes, _, _, _ = NETS[cmd["net"]]
                Xf, yf = make_data(sizes, 1024, seed=3)
                preds = FW.make_predictors(fw, sizes, Xf, yf)
                x_pred = np.ascontiguousarray(make_data(sizes, cmd["batch"], seed=4)[0])
                for f in preds.values():
                    f(x_pred)  # warm-up; JAX compiles for this shape
                reply({"ok": True, "names": list(preds)})
            elif op == "predict":
                f = preds[cmd["name"]]
                reply({"t": C.time_call(lambda: f(x_pred), cmd["min_time"])})
            elif op == "peak":
                if peak_fn is None:
                    rng = np.random.default_rng(1)
                    a = rng.standard_normal((PEAK_N, PEAK_N), dtype=np.float32)
                    b = rng.standard_normal((PEAK_N, PEAK_N), dtype=np.float32)
                    if fw == "neurocore":
                        import neurocore as nc
                        peak_fn = lambda: nc._core.gemm(a, b)  # noqa: E731
                    else:
                        peak_fn = lambda: a @ b  # noqa: E731
                    peak_fn()
                t = C.time_call(peak_fn, cmd["min_time"])
                reply({"gflops": 2.0 * PEAK_N ** 3 / t / 1e9})
            else:
                reply({"error": f"unknown op {op}"})
        except Exception as exc:
            reply({"error": f"{type(exc).__name__}: {exc}"})


def rss_child(fw: str, threads: int, quick: bool) -> dict:
    """Fresh process: train RSS_NET for one epoch; RSS before training and peak."""
    C.pin_to_cores(threads)
    import frameworks as FW
    import numpy as np  # noqa: F401
    if fw != "numpy":
        __import__(fw)
    FW.set_threads(fw, threads)
    _, sizes, batch, _, _ = NETS[RSS_NET]
    n = RSS_SAMPLES // 4 if quick else RSS_SAMPLES
    X, y = make_data(sizes, n)
    before = _vmrss_kb()
    tr = FW.TRAINERS[fw](sizes, X, y, batch)
    tr.epoch()
    # VmHWM is this process's own high-water mark; ru_maxrss can also hold the
    # parent's RSS at fork time (Linux keeps it across execve), so both are recorded.
    peak_kb = _status_kb("VmHWM")
    return {"framework": fw, "threads": threads, "samples": n,
            "data_mb": X.nbytes / 2 ** 20,
            "rss_before_train_mb": before / 1024, "peak_rss_mb": peak_kb / 1024,
            "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "train_increment_mb": (peak_kb - before) / 1024}


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _vmrss_kb() -> int:
    return _status_kb("VmRSS")


# =========================================================================== parent side

def start_child(fw, threads, quick):
    env = C.child_env(threads, unset_openblas_overrides=fw in ("numpy", "sklearn"))
    env.setdefault("JAX_PLATFORMS", "cpu")
    cmd = [sys.executable, os.path.abspath(__file__), "--serve", fw, "--worker",
           str(threads)] + (["--quick"] if quick else [])
    ch = C.Child(fw, cmd, env)
    ch.env = {k: env.get(k) for k in C.THREAD_VARS + C.OPENBLAS_OVERRIDES + ("XLA_FLAGS",)}
    return ch


def run_thread_count(args, threads) -> dict:
    wanted = list(dict.fromkeys(args.frameworks + ["sklearn"]))
    children, skipped = {}, {}
    quiet = C.wait_for_quiet(args.wait_quiet) if args.wait_quiet > 0 else None
    mon = C.CpuMonitor()
    for fw in wanted:
        try:
            ch = start_child(fw, threads, args.quick)
        except Exception as exc:
            skipped[fw] = str(exc)
            continue
        if ch.hello.get("error"):
            skipped[fw] = ch.hello["error"]
            ch.close()
            continue
        children[fw] = ch
    for fw, why in skipped.items():
        print(f"  [{threads}t] {fw} skipped: {why}", file=sys.stderr, flush=True)

    retried = [0]
    settler = C.Settler(args.settle)

    budget_end = time.time() + args.retry_budget

    def timed(ch, **cmd):
        retries = args.retries if time.time() < budget_end else 0
        res, other, tries = C.quiet_ask(ch, retries=retries,
                                        settle=settler.pause_for(ch.name), **cmd)
        retried[0] += tries - 1
        res["other_cores"] = other
        return res

    def rotate(seq, r):
        k = r % max(1, len(seq))
        return seq[k:] + seq[:k]

    # ---- GEMM peak (neurocore and NumPy, interleaved); sampled before and after the
    # training runs, the best value seen counts (noise only ever lowers it)
    peak_src = [fw for fw in ("neurocore", "numpy") if fw in children]
    peak_vals = {fw: [] for fw in peak_src}

    def sample_peak(rounds):
        for r in range(rounds):
            for fw in rotate(peak_src, r):
                res = timed(children[fw], op="peak", min_time=0.05 if args.quick else 0.15)
                if "gflops" in res:
                    peak_vals[fw].append(res["gflops"])

    sample_peak(3)

    # ---- training
    training = []
    train_fws = [fw for fw in args.frameworks if fw in children]
    for key in args.nets:
        name, sizes, batch, _, _ = NETS[key]
        ready, notes, info = [], {}, {}
        for fw in train_fws:
            res = children[fw].ask(op="setup_train", net=key)
            if res.get("ok"):
                ready.append(fw)
                info[fw] = res
            else:
                notes[fw] = res.get("error", "failed")
                print(f"  [{threads}t] {name}: {fw} failed: {notes[fw]}", file=sys.stderr)
        times = {fw: [] for fw in ready}
        losses = {fw: [] for fw in ready}
        epochs_seen = {}
        loads = {fw: [] for fw in ready}
        net_start = time.time()
        for r in range(args.rounds):
            if r >= min(3, args.rounds) and time.time() - net_start > args.net_budget:
                print(f"  [{threads}t] {name}: stopping after {r} rounds (--net-budget "
                      f"{args.net_budget:.0f} s)", file=sys.stderr, flush=True)
                break
            for fw in rotate(ready, r):
                res = timed(children[fw], op="epoch")
                if "t" in res:
                    times[fw].append(res["t"])
                    loads[fw].append(res["other_cores"])
                    losses[fw].append(res["loss"])
                    epochs_seen[fw] = res["epochs"]
                else:
                    notes[fw] = res.get("error")
        fl_train = 3.0 * forward_flops(sizes)
        rows = []
        for fw in train_fws:
            row = {"net": name, "key": key, "sizes": sizes, "batch": batch,
                   "framework": fw, "threads": threads}
            if times.get(fw):
                n, steps = info[fw]["samples"], info[fw]["steps"]
                sps = [n / t for t in times[fw]]
                med = C.median(sps)
                gflops = med * fl_train / 1e9
                row.update({
                    "samples": n, "samples_per_s": med, "rounds": len(sps),
                    "us_per_step": C.median(times[fw]) / steps * 1e6,
                    "gflops": gflops,
                    "spread": C.spread(sps), "rounds_samples_per_s": sps,
                    "warmup_s": info[fw]["warmup_s"],
                    "epoch_loss_last": losses[fw][-1], "epochs_trained": epochs_seen.get(fw),
                    "rounds_other_cores": loads[fw], "other_cores": C.median(loads[fw]),
                    "loss_finite": all(x == x and abs(x) != float("inf")
                                       for x in losses[fw])})
            else:
                row["skipped"] = notes.get(fw, "not run")
            rows.append(row)
        ncr = next((r for r in rows if r["framework"] == "neurocore" and "samples_per_s" in r),
                   None)
        for r in rows:
            if "samples_per_s" in r:
                r["nc_over_this"] = ncr["samples_per_s"] / r["samples_per_s"] if ncr else None
                print(f"  [{threads}t] {name:>20} {r['framework']:>9}: "
                      f"{r['samples_per_s']:>10.0f} samples/s {r['gflops']:7.1f} GFLOP/s "
                      f"loss {r['epoch_loss_last']:.3f}", file=sys.stderr, flush=True)
        training += rows

    # ---- predict: batch-1 latency and batched throughput
    def bench_predict(keys, batch):
        out = []
        pred_fws = [fw for fw in PREDICT_FRAMEWORKS if fw in children]
        for key in keys:
            name, sizes, _, _, _ = NETS[key]
            entries = []  # (fw, predictor name)
            for fw in pred_fws:
                res = children[fw].ask(op="setup_predict", net=key, batch=batch)
                if res.get("ok"):
                    entries += [(fw, nm) for nm in res["names"]]
                else:
                    print(f"  [{threads}t] predict {name}: {fw} failed: {res.get('error')}",
                          file=sys.stderr)
            ts = {e: [] for e in entries}
            min_time = 0.02 if args.quick else 0.08
            for r in range(args.rounds + 2):
                for e in rotate(entries, r):
                    res = timed(children[e[0]], op="predict", name=e[1], min_time=min_time)
                    if "t" in res:
                        ts[e].append(res["t"])
            fl = forward_flops(sizes) * batch
            for e in entries:
                if not ts[e]:
                    continue
                t = C.median(ts[e])
                out.append({"net": name, "key": key, "batch": batch, "framework": e[1],
                            "threads": threads, "us": t * 1e6, "samples_per_s": batch / t,
                            "gflops": fl / t / 1e9, "spread": C.spread(ts[e]),
                            "rounds_us": [x * 1e6 for x in ts[e]]})
        return out

    sample_peak(3)
    peak_best = {fw: max(v) for fw, v in peak_vals.items() if v}
    best = max(peak_best, key=peak_best.get) if peak_best else None
    peak = {"gflops": peak_best.get(best, float("nan")), "source": best,
            "per_library_best": peak_best,
            "per_library_median": {fw: C.median(v) for fw, v in peak_vals.items() if v},
            "size": PEAK_N, "rounds": peak_vals}
    print(f"  [{threads}t] GEMM peak {peak['gflops']:.1f} GFLOP/s ({best}; {peak_best})",
          file=sys.stderr, flush=True)
    for r in training:
        if "gflops" in r:
            r["pct_gemm_peak"] = 100.0 * r["gflops"] / peak["gflops"]

    latency = bench_predict(LATENCY_NETS, 1)
    batched = bench_predict([BATCHED_NET], BATCHED_SIZE)
    background = mon.other_cores([ch.proc.pid for ch in children.values()])

    meta = {fw: {k: v for k, v in ch.hello.items() if k != "error"}
            for fw, ch in children.items()}
    for ch in children.values():
        ch.close()

    npk = (meta.get("numpy") or meta.get("sklearn") or {})
    return {"threads": threads, "cores": (next(iter(meta.values()), {}) or {}).get("cores"),
            "rounds": args.rounds, "settle_s": args.settle, "gemm_peak": peak,
            "numpy_kernel": npk.get("numpy_kernel", "-"), "blas": npk.get("blas"),
            "neurocore_cpu_info": (meta.get("neurocore") or {}).get("cpu_info"),
            "children": meta, "skipped": skipped, "training": training,
            "latency_batch1": latency, "predict_batched": batched,
            "background_cpu_cores": background, "quiet_wait": quiet,
            "retried_measurements": retried[0],
            "env": {fw: ch.env for fw, ch in children.items()}}


def import_times(repeats: int, frameworks) -> list[dict]:
    """Wall time of `import X` in a fresh interpreter (median of repeats); for
    neurocore also the cumulative times from -X importtime.  Environment unchanged
    apart from the thread variables."""
    import frameworks as FW
    out = []
    env = C.child_env(1, unset_openblas_overrides=False)
    env.setdefault("JAX_PLATFORMS", "cpu")
    code = "import time; t=time.perf_counter(); import {m}; print(time.perf_counter()-t)"
    for mod in ["numpy", "neurocore"] + [m for m in ("torch", "jax") if m in frameworks]:
        if not FW.findable(mod):
            out.append({"module": mod, "skipped": "not installed"})
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
            cum = {}
            for _ in range(3):
                p = subprocess.run([sys.executable, "-X", "importtime", "-c",
                                    "import neurocore"], env=env, capture_output=True,
                                   text=True)
                for line in p.stderr.splitlines():
                    parts = [s.strip() for s in line.split("|")]
                    if len(parts) == 3 and parts[2] in ("neurocore", "numpy",
                                                         "neurocore._core"):
                        cum.setdefault(parts[2], []).append(int(parts[1]) / 1e3)
            row["importtime_cumulative_ms"] = {k: C.median(v) for k, v in cum.items()}
        out.append(row)
    return out


# --------------------------------------------------------------------------- tables

def print_tables(data):
    for run in data["runs"]:
        t = run["threads"]
        peak = run["gemm_peak"]
        print(f"\n## {t} thread(s) (cores {run['cores']}), median of up to {run['rounds']} "
              "rounds")
        print(f"\nNumPy BLAS: {run['numpy_kernel']}; neurocore ISA: "
              f"{(run['neurocore_cpu_info'] or {}).get('isa', '-')}; GEMM peak "
              f"(1024^3 float32, best seen from neurocore/NumPy): {peak['gflops']:.1f} "
              f"GFLOP/s [best " + ", ".join(f"{k} {v:.1f}" for k, v in
                                            peak["per_library_best"].items()) + "; median "
              + ", ".join(f"{k} {v:.1f}" for k, v in peak["per_library_median"].items())
              + "]; "
              f"background load from other programs: {run['background_cpu_cores']:.2f} cores; "
              f"measurements retried because of it: {run.get('retried_measurements', 0)}")
        if run["background_cpu_cores"] > 0.3:
            print(f"\n**WARNING: other programs used {run['background_cpu_cores']:.2f} cores "
                  f"during this run; on a {C.machine_info()['cores_allowed']}-core machine "
                  "the numbers below (2 threads above all) are not reliable.**")
        for fw, why in run["skipped"].items():
            print(f"note: {fw} skipped ({why})")
        print("\n### Training throughput (one shuffled epoch per round)\n")
        header = ["net", "batch", "samples", "framework", "samples/s", "us/step", "GFLOP/s",
                  "% GEMM peak", "neurocore/this", "rounds", "spread %", "bg cores", "loss"]
        rows = []
        for r in run["training"]:
            if "samples_per_s" not in r:
                rows.append([r["net"], str(r["batch"]), "-", r["framework"], "-", "-", "-",
                             "-", "-", "-", "-", "-", "skipped: " + str(r.get("skipped"))[:40]])
                continue
            ratio = r.get("nc_over_this")
            rows.append([r["net"], str(r["batch"]), str(r["samples"]), r["framework"],
                         r["samples_per_s"], r["us_per_step"], r["gflops"],
                         r["pct_gemm_peak"], C.fmt(ratio, 2) if ratio else "-",
                         str(r["rounds"]), f"{100 * r['spread']:.0f}", f"{r['other_cores']:.2f}",
                         f"{r['epoch_loss_last']:.3f}"])
        print(C.markdown_table(header, rows))

        lat = run["latency_batch1"]
        if lat:
            print("\n### Batch-1 predict latency (us per call, Python call included)\n")
            nets = list(dict.fromkeys(r["net"] for r in lat))
            fws = list(dict.fromkeys(r["framework"] for r in lat))
            rows = []
            for fw in fws:
                row = [fw]
                for net in nets:
                    m = [r for r in lat if r["net"] == net and r["framework"] == fw]
                    row.append(m[0]["us"] if m else "-")
                rows.append(row)
            print(C.markdown_table(["framework"] + [f"{n} us" for n in nets], rows))

        b = run["predict_batched"]
        if b:
            print(f"\n### Batched predict ({b[0]['net']}, batch {b[0]['batch']})\n")
            rows = [[r["framework"], r["us"], r["samples_per_s"], r["gflops"]] for r in b]
            print(C.markdown_table(["framework", "us/batch", "samples/s", "GFLOP/s"], rows))

        rss = [r for r in data.get("rss", []) if r.get("threads") == t]
        if rss:
            ok = [r for r in rss if "peak_rss_mb" in r]
            print(f"\n### Peak RSS, training {NETS[RSS_NET][0]} for one epoch "
                  f"({ok[0]['samples'] if ok else '-'} samples, "
                  f"{ok[0]['data_mb'] if ok else 0:.0f} MB of X; a fresh process each)\n")
            rows = []
            for r in rss:
                if "peak_rss_mb" in r:
                    rows.append([r["framework"], r["rss_before_train_mb"], r["peak_rss_mb"],
                                 r["train_increment_mb"]])
                else:
                    rows.append([r["framework"], "-", "-", "failed: "
                                 + str(r.get("error"))[-60:]])
            print(C.markdown_table(["framework", "RSS after import+data MB", "peak RSS MB",
                                    "peak - before MB"], rows))

    if data.get("import_times"):
        print("\n## Import time (fresh interpreter, wall ms, median)\n")
        rows = []
        for r in data["import_times"]:
            if "skipped" in r:
                rows.append([r["module"], "-", "skipped: " + r["skipped"][:50]])
                continue
            extra = ""
            cum = r.get("importtime_cumulative_ms")
            if cum:
                extra = "-X importtime cumulative: " + ", ".join(
                    f"{k} {v:.0f} ms" for k, v in cum.items())
            rows.append([r["module"], r["wall_ms"], extra])
        print(C.markdown_table(["module", "import ms", "notes"], rows))


# --------------------------------------------------------------------------- main

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--threads", default="1,2", help="comma list of thread counts (default 1,2)")
    p.add_argument("--quick", action="store_true", help="fewer samples and rounds")
    p.add_argument("--nets", default=",".join(NETS),
                   help="comma list of: " + ", ".join(f"{k} ({v[0]})" for k, v in NETS.items()))
    p.add_argument("--frameworks", default=",".join(TRAIN_FRAMEWORKS))
    p.add_argument("--rounds", type=int, default=0,
                   help="rounds per measurement (default 5, 3 with --quick)")
    p.add_argument("--net-budget", type=float, default=40.0,
                   help="after 3 rounds, start no new training round once a net has taken "
                        "this many seconds (default 40)")
    C.add_load_control_args(p, settle=0.05, retry_budget=90.0, settle_what="timed call")
    p.add_argument("--no-rss", action="store_true", help="skip the peak-RSS children")
    p.add_argument("--no-import", action="store_true", help="skip the import-time children")
    p.add_argument("--out", default=os.path.join(HERE, "results.json"))
    p.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--serve", default="", help=argparse.SUPPRESS)
    p.add_argument("--rss", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 5)

    if args.serve:
        serve(args.serve, args.worker, args.quick)
        return
    if args.rss:
        print(json.dumps(rss_child(args.rss, args.worker, args.quick)))
        return

    by_name = {v[0]: k for k, v in NETS.items()}
    nets = []
    for n in args.nets.split(","):
        n = n.strip()
        if n:
            k = n if n in NETS else by_name.get(n)
            if k is None:
                raise SystemExit(f"--nets: unknown net {n!r}; choose from {', '.join(NETS)}")
            nets.append(k)
    args.nets = nets
    args.frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    for f in args.frameworks:
        if f not in TRAIN_FRAMEWORKS:
            raise SystemExit(f"--frameworks: unknown {f!r}; choose from "
                             + ",".join(TRAIN_FRAMEWORKS))

    t_start = time.time()
    data = {"benchmark": "training", "machine": C.machine_info(),
            "python": sys.executable,
            "parent_openblas_env": C.openblas_env_report(),
            "openblas_env_note": "OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset only in the numpy "
                                 "and sklearn children; unchanged for every other child",
            "quick": args.quick,
            "settings": {"lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4,
                         "dtype": "float32", "classes": N_CLASSES,
                         "nets": {k: NETS[k] for k in args.nets}},
            "runs": [], "rss": [], "import_times": []}
    import frameworks as FW
    for t in C.parse_threads(args.threads):
        print(f"--- {t} thread(s) ---", file=sys.stderr, flush=True)
        data["runs"].append(run_thread_count(args, t))
        if args.no_rss:
            continue
        for fw in args.frameworks:
            if not FW.findable(fw):
                continue
            env = C.child_env(t, unset_openblas_overrides=(fw == "numpy"))
            env.setdefault("JAX_PLATFORMS", "cpu")
            try:
                r = C.run_worker(os.path.abspath(__file__),
                                 ["--rss", fw, "--worker", str(t)]
                                 + (["--quick"] if args.quick else []), env)
            except Exception as exc:
                r = {"framework": fw, "threads": t, "error": str(exc)[-300:]}
            data["rss"].append(r)
            print(f"  [{t}t] peak RSS {fw}: {r.get('peak_rss_mb', float('nan')):.0f} MB",
                  file=sys.stderr, flush=True)
    if not args.no_import:
        data["import_times"] = import_times(3 if args.quick else 7, args.frameworks)
    data["wall_s"] = time.time() - t_start
    print_tables(data)
    C.write_json(args.out, data)
    print(f"\nwrote {args.out} ({data['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
