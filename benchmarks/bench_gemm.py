#!/usr/bin/env python
"""GEMM throughput: neurocore._core.gemm next to NumPy's ``@`` at the same thread count.

    python benchmarks/bench_gemm.py [--threads 1,2] [--dtype float32,float64] [--quick]

Every thread count runs in its own child process, pinned to that many cores, with
OMP_NUM_THREADS / OPENBLAS_NUM_THREADS set to it and OPENBLAS_CORETYPE /
OPENBLAS_L2_SIZE removed (for that process only) so that NumPy's OpenBLAS picks its
own kernel; the kernel that ran is recorded.  In the child the two libraries are
interleaved round by round (the order alternates every round) and the median of the
rounds is reported.  Results: a markdown table on stdout and
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


# --------------------------------------------------------------------------- worker

def worker(args) -> dict:
    threads = args.worker
    cores = C.pin_to_cores(threads)
    import numpy as np

    info = C.blas_info()
    try:
        import threadpoolctl
        threadpoolctl.threadpool_limits(threads)
    except ImportError:
        pass

    ours = None
    nc_info = None
    nc_error = None
    try:
        import neurocore as nc
        ours = nc._core.gemm
        try:
            nc.set_num_threads(threads)
        except Exception as exc:  # pragma: no cover - depends on the core
            nc_error = f"set_num_threads failed: {exc!r}"
        try:
            nc_info = nc.cpu_info()
        except Exception as exc:  # pragma: no cover
            nc_info = {"error": repr(exc)}
    except Exception as exc:
        nc_error = f"neurocore not usable: {exc!r}"

    rounds = args.rounds or (3 if args.quick else 7)
    min_time = 0.03 if args.quick else 0.1
    rng = np.random.default_rng(0)
    results = []
    for dtype_name in args.dtype:
        dt = np.dtype(dtype_name)
        for (group, label, op, M, K, N) in build_cases(args.quick):
            a = rng.standard_normal((K, M) if op == "TN" else (M, K)).astype(dt)
            b = rng.standard_normal((N, K) if op == "NT" else (K, N)).astype(dt)
            if op == "NN":
                f_np = lambda: a @ b  # noqa: E731
                f_nc = (lambda: ours(a, b)) if ours else None  # noqa: E731
            elif op == "TN":
                f_np = lambda: a.T @ b  # noqa: E731
                f_nc = (lambda: ours(a, b, trans_a=True)) if ours else None  # noqa: E731
            else:
                f_np = lambda: a @ b.T  # noqa: E731
                f_nc = (lambda: ours(a, b, trans_b=True)) if ours else None  # noqa: E731
            flops = 2.0 * M * N * K
            libs = {"numpy": f_np}
            if f_nc is not None:
                libs["neurocore"] = f_nc
            # correctness check + warm-up + pick a repeat count per library
            err = None
            ref = f_np()
            if f_nc is not None:
                try:
                    got = f_nc()
                    scale = float(np.max(np.abs(ref))) or 1.0
                    err = float(np.max(np.abs(got.astype(np.float64) - ref))) / scale
                except Exception as exc:
                    libs.pop("neurocore")
                    err = f"error: {exc!r}"
            reps = {}
            for name, fn in libs.items():
                t0 = time.perf_counter()
                fn()
                t1 = time.perf_counter() - t0
                reps[name] = max(1, math.ceil(min_time / max(t1, 1e-7)))
            times = {name: [] for name in libs}
            order = list(libs)
            for r in range(rounds):
                for name in (order if r % 2 == 0 else order[::-1]):
                    fn = libs[name]
                    n = reps[name]
                    t0 = time.perf_counter()
                    for _ in range(n):
                        fn()
                    times[name].append((time.perf_counter() - t0) / n)
            row = {"group": group, "case": label, "op": op, "M": M, "K": K, "N": N,
                   "dtype": dtype_name, "threads": threads, "max_rel_err": err}
            for name in ("neurocore", "numpy"):
                ts = times.get(name)
                if ts:
                    gf = [flops / t / 1e9 for t in ts]
                    row[name] = {"gflops": C.median(gf), "spread": C.spread(gf),
                                 "us": C.median(ts) * 1e6, "rounds_gflops": gf}
                else:
                    row[name] = None
            if row["neurocore"] and row["numpy"]:
                row["ratio"] = row["neurocore"]["gflops"] / row["numpy"]["gflops"]
            else:
                row["ratio"] = None
            results.append(row)
            print(f"  [{threads}t {dtype_name}] {label:>22} {op}  "
                  f"nc={_g(row['neurocore'])}  np={_g(row['numpy'])}  "
                  f"ratio={C.fmt(row['ratio'], 2)}", file=sys.stderr, flush=True)
    return {"threads": threads, "cores": cores, "rounds": rounds, "min_time_s": min_time,
            "blas": info, "numpy_kernel": C.numpy_blas_kernel(info),
            "numpy_version": np.__version__, "neurocore_cpu_info": nc_info,
            "neurocore_error": nc_error, "results": results,
            "env": {k: os.environ.get(k) for k in C.THREAD_VARS + C.OPENBLAS_OVERRIDES}}


def _g(d):
    return "-" if not d else f"{d['gflops']:.1f}"


# --------------------------------------------------------------------------- parent

def print_tables(runs):
    for run in runs:
        print(f"\n### GEMM, {run['threads']} thread(s) (cores {run['cores']}), "
              f"median of {run['rounds']} rounds")
        print(f"NumPy BLAS: {run['numpy_kernel']}; neurocore ISA: "
              f"{(run['neurocore_cpu_info'] or {}).get('isa', '-')}")
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
    p.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.dtype = [d.strip() for d in args.dtype.split(",") if d.strip()]
    for d in args.dtype:
        if d not in ("float32", "float64"):
            raise SystemExit(f"--dtype: expected float32 and/or float64, got {d!r}")

    if args.worker:
        import json
        print(json.dumps(worker(args)))
        return

    t_start = time.time()
    runs = []
    for t in C.parse_threads(args.threads):
        print(f"--- {t} thread(s) ---", file=sys.stderr, flush=True)
        wargs = ["--worker", str(t), "--dtype", ",".join(args.dtype)]
        if args.quick:
            wargs.append("--quick")
        if args.rounds:
            wargs += ["--rounds", str(args.rounds)]
        env = C.child_env(t, unset_openblas_overrides=True)
        runs.append(C.run_worker(os.path.abspath(__file__), wargs, env))
    print_tables(runs)
    data = {"benchmark": "gemm", "machine": C.machine_info(),
            "parent_openblas_env": C.openblas_env_report(),
            "openblas_env_in_workers": "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset",
            "quick": args.quick, "wall_s": time.time() - t_start, "runs": runs}
    C.write_json(args.out, data)
    print(f"\nwrote {args.out} ({time.time() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
