#!/usr/bin/env python
"""GEMM throughput: neurocore._core.gemm next to NumPy's ``@`` at the same thread count.

    python benchmarks/bench_gemm.py [--threads 1,2] [--dtype float32,float64] [--quick]

For every thread count, each library runs in its own long-lived child process pinned
to that many cores (the two children share the cores and never run at the same time;
OpenMP and OpenBLAS thread pools in one process would spin against each other), with
OMP_NUM_THREADS / OPENBLAS_NUM_THREADS set to it.  The NumPy child alone also has
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed so that OpenBLAS picks its own kernel;
the kernel that ran is recorded.  The parent interleaves the two libraries round by
round (the order alternates every round) and reports the median of the rounds and
the ratio ours/NumPy.  Results: a markdown table on stdout and
benchmarks/results_gemm.json.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _common as C  # noqa: E402

SQUARE = [64, 128, 256, 512, 1024, 2048]
SQUARE_QUICK = [128, 512, 1024]
# (batch, in_features, out_features) of Dense layers in typical MLPs
MLP = [(32, 784, 128), (64, 256, 256), (128, 784, 512), (128, 512, 256),
       (256, 1024, 1024), (256, 1024, 4096), (256, 4096, 1024), (256, 4096, 4096)]
MLP_QUICK = [(32, 784, 128), (128, 784, 512), (256, 1024, 4096)]


def build_cases(quick: bool):
    """List of (group, label, op, M, K, N).  op: NN (a@b), TN (a.T@b), NT (a@b.T)."""
    cases = []
    for s in (SQUARE_QUICK if quick else SQUARE):
        for op in ("NN", "TN", "NT"):
            cases.append(("square", f"{s}^3", op, s, s, s))
    for (b, i, o) in (MLP_QUICK if quick else MLP):
        tag = f"{b}x{i}x{o}"
        # forward  Y = X @ W            : M=b, K=i, N=o
        cases.append(("mlp", f"{tag} fwd", "NN", b, i, o))
        # backward dX = dY @ W^T         : M=b, K=o, N=i, W stored (i, o) = (N, K)
        cases.append(("mlp", f"{tag} dX", "NT", b, o, i))
        # backward dW = X^T @ dY         : M=i, K=b, N=o, X stored (b, i) = (K, M)
        cases.append(("mlp", f"{tag} dW", "TN", i, b, o))
    return cases


# --------------------------------------------------------------------------- child

def serve(lib: str, threads: int) -> None:
    """One library (neurocore or numpy) at one thread count, driven by the parent."""
    reply, commands = C.child_protocol()
    cores = C.pin_to_cores(threads)
    import numpy as np
    try:
        import threadpoolctl
    except ImportError:
        threadpoolctl = None
    hello = {"lib": lib, "cores": cores, "pid": os.getpid(), "numpy_version": np.__version__}
    if lib == "numpy":
        np.ones((64, 64), np.float32) @ np.ones((64, 64), np.float32)
        hello["blas"] = C.blas_info()
        hello["numpy_kernel"] = C.numpy_blas_kernel(hello["blas"])
        if threadpoolctl:
            threadpoolctl.threadpool_limits(threads, user_api="blas")
    else:
        try:
            import neurocore as nc
            nc.set_num_threads(threads)
            hello["cpu_info"] = nc.cpu_info()
            hello["version"] = nc.__version__
            hello["module_file"] = nc.__file__
            gemm = nc._core.gemm
        except Exception as exc:
            hello["error"] = f"neurocore not usable: {type(exc).__name__}: {exc}"
    reply(hello)
    if hello.get("error"):
        return

    fn = None
    for cmd in commands:
        try:
            if cmd["op"] == "case":
                M, K, N, op = cmd["M"], cmd["K"], cmd["N"], cmd["op_kind"]
                dt = np.dtype(cmd["dtype"])
                rng = np.random.default_rng(cmd["seed"])  # same data in both children
                a = rng.standard_normal((K, M) if op == "TN" else (M, K)).astype(dt)
                b = rng.standard_normal((N, K) if op == "NT" else (K, N)).astype(dt)
                if lib == "numpy":
                    fn = {"NN": lambda: a @ b, "TN": lambda: a.T @ b,
                          "NT": lambda: a @ b.T}[op]
                else:
                    kw = {"NN": {}, "TN": {"trans_a": True}, "NT": {"trans_b": True}}[op]
                    fn = lambda: gemm(a, b, **kw)  # noqa: E731
                out = {"ok": True}
                got = fn()
                if lib == "neurocore":
                    # accuracy against a float64 NumPy product on one thread (so that no
                    # OpenBLAS worker threads run in this process)
                    a64, b64 = a.astype(np.float64), b.astype(np.float64)
                    ctx = (threadpoolctl.threadpool_limits(1) if threadpoolctl
                           else _nullcontext())
                    with ctx:
                        ref = {"NN": lambda: a64 @ b64, "TN": lambda: a64.T @ b64,
                               "NT": lambda: a64 @ b64.T}[op]()
                    scale = float(np.max(np.abs(ref))) or 1.0
                    out["max_rel_err"] = float(np.max(np.abs(got - ref))) / scale
                t0 = time.perf_counter()
                fn()
                t1 = time.perf_counter() - t0
                out["reps"] = max(1, math.ceil(cmd["min_time"] / max(t1, 1e-7)))
                reply(out)
            elif cmd["op"] == "time":
                n = cmd["reps"]
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                reply({"t": (time.perf_counter() - t0) / n})
            else:
                reply({"error": f"unknown op {cmd['op']}"})
        except Exception as exc:
            reply({"error": f"{type(exc).__name__}: {exc}"})


def _g(d):
    return "-" if not d else f"{d['gflops']:.1f}"


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def run_threads(args, threads) -> dict:
    rounds = args.rounds or (3 if args.quick else 5)
    min_time = 0.03 if args.quick else 0.1
    quiet = C.wait_for_quiet(args.wait_quiet) if args.wait_quiet > 0 else None
    mon = C.CpuMonitor()
    kids, notes = {}, {}
    for lib in ("neurocore", "numpy"):
        env = C.child_env(threads, unset_openblas_overrides=(lib == "numpy"))
        ch = C.Child(lib, [sys.executable, os.path.abspath(__file__), "--serve", lib,
                           "--worker", str(threads)], env)
        if ch.hello.get("error"):
            notes[lib] = ch.hello["error"]
            ch.close()
        else:
            kids[lib] = ch
    results = []
    seed = 0
    retried = 0
    settler = C.Settler(args.settle)
    budget_end = time.time() + args.retry_budget
    for dtype_name in args.dtype:
        for (group, label, op, M, K, N) in build_cases(args.quick):
            seed += 1
            reps, err = {}, None
            for lib, ch in kids.items():
                res = ch.ask(op="case", M=M, K=K, N=N, op_kind=op, dtype=dtype_name,
                             seed=seed, min_time=min_time)
                if res.get("ok"):
                    reps[lib] = res["reps"]
                    err = res.get("max_rel_err", err)
                else:
                    err = res.get("error")
            times = {lib: [] for lib in reps}
            loads = {lib: [] for lib in reps}
            order = list(reps)
            for r in range(rounds):
                for lib in (order if r % 2 == 0 else order[::-1]):
                    res, other, tries = C.quiet_ask(kids[lib],
                                                    retries=(args.retries if time.time()
                                                             < budget_end else 0),
                                                    settle=settler.pause_for(lib),
                                                    op="time", reps=reps[lib])
                    retried += tries - 1
                    if "t" in res:
                        times[lib].append(res["t"])
                        loads[lib].append(other)
            flops = 2.0 * M * N * K
            row = {"group": group, "case": label, "op": op, "M": M, "K": K, "N": N,
                   "dtype": dtype_name, "threads": threads, "max_rel_err": err}
            for name in ("neurocore", "numpy"):
                ts = times.get(name)
                if ts:
                    gf = [flops / t / 1e9 for t in ts]
                    row[name] = {"gflops": C.median(gf), "spread": C.spread(gf),
                                 "us": C.median(ts) * 1e6, "rounds_gflops": gf,
                                 "rounds_other_cores": loads[name]}
                else:
                    row[name] = None
            row["ratio"] = (row["neurocore"]["gflops"] / row["numpy"]["gflops"]
                            if row["neurocore"] and row["numpy"] else None)
            results.append(row)
            print(f"  [{threads}t {dtype_name}] {label:>22} {op}  "
                  f"nc={_g(row['neurocore'])}  np={_g(row['numpy'])}  "
                  f"ratio={C.fmt(row['ratio'], 2)}", file=sys.stderr, flush=True)
    other = mon.other_cores([ch.proc.pid for ch in kids.values()])
    meta = {lib: ch.hello for lib, ch in kids.items()}
    for ch in kids.values():
        ch.close()
    npm = meta.get("numpy", {})
    return {"threads": threads, "cores": next(iter(meta.values()), {}).get("cores"),
            "rounds": rounds, "min_time_s": min_time, "settle_s": args.settle,
            "blas": npm.get("blas"), "numpy_kernel": npm.get("numpy_kernel", "-"),
            "numpy_version": npm.get("numpy_version"),
            "neurocore_cpu_info": meta.get("neurocore", {}).get("cpu_info"),
            "neurocore_module": meta.get("neurocore", {}).get("module_file"),
            "neurocore_error": notes.get("neurocore"), "quiet_wait": quiet,
            "background_cpu_cores": other, "retried_measurements": retried,
            "results": results}


# --------------------------------------------------------------------------- parent

def print_tables(runs):
    for run in runs:
        print(f"\n### GEMM, {run['threads']} thread(s) (cores {run['cores']}), "
              f"median of {run['rounds']} rounds")
        print(f"\nNumPy BLAS: {run['numpy_kernel']}; neurocore ISA: "
              f"{(run['neurocore_cpu_info'] or {}).get('isa', '-')}; background load from "
              f"other programs: {run['background_cpu_cores']:.2f} cores; measurements "
              f"retried because of it: {run.get('retried_measurements', 0)}")
        if run["background_cpu_cores"] > 0.3:
            print(f"\n**WARNING: other programs used {run['background_cpu_cores']:.2f} cores "
                  "during this run; the numbers below are not reliable.**")
        if run["neurocore_error"]:
            print(f"note: {run['neurocore_error']}")
        print()
        header = ["dtype", "case", "op", "M", "K", "N", "neurocore GFLOP/s",
                  "numpy GFLOP/s", "ours/numpy", "spread nc/np %", "max rel err"]
        rows = []
        for r in run["results"]:
            nc, npy = r["neurocore"], r["numpy"]
            sp = "-"
            if nc and npy:
                sp = f"{100 * nc['spread']:.0f}/{100 * npy['spread']:.0f}"
            elif npy:
                sp = f"-/{100 * npy['spread']:.0f}"
            err = r["max_rel_err"]
            err = f"{err:.1e}" if isinstance(err, float) else (err or "-")
            rows.append([r["dtype"], r["case"], r["op"], str(r["M"]), str(r["K"]), str(r["N"]),
                         nc["gflops"] if nc else None, npy["gflops"] if npy else None,
                         C.fmt(r["ratio"], 2) if r["ratio"] else "-", sp, err])
        print(C.markdown_table(header, rows))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--threads", default="1,2", help="comma list of thread counts (default 1,2)")
    p.add_argument("--dtype", default="float32",
                   help="comma list: float32 and/or float64 (default float32)")
    p.add_argument("--quick", action="store_true", help="fewer sizes and rounds")
    p.add_argument("--rounds", type=int, default=0, help="override the number of rounds")
    p.add_argument("--out", default=os.path.join(HERE, "results_gemm.json"))
    C.add_load_control_args(p, settle=0.02, retry_budget=60.0, settle_what="timed batch")
    p.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--serve", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.dtype = [d.strip() for d in args.dtype.split(",") if d.strip()]
    for d in args.dtype:
        if d not in ("float32", "float64"):
            raise SystemExit(f"--dtype: expected float32 and/or float64, got {d!r}")

    if args.serve:
        serve(args.serve, args.worker)
        return

    t_start = time.time()
    runs = []
    for t in C.parse_threads(args.threads):
        print(f"--- {t} thread(s) ---", file=sys.stderr, flush=True)
        runs.append(run_threads(args, t))
    print_tables(runs)
    data = {"benchmark": "gemm", "machine": C.machine_info(),
            "parent_openblas_env": C.openblas_env_report(),
            "openblas_env_note": "OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset only in the numpy "
                                 "child; the neurocore child keeps the environment",
            "quick": args.quick, "wall_s": time.time() - t_start, "runs": runs}
    C.write_json(args.out, data)
    print(f"\nwrote {args.out} ({time.time() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
