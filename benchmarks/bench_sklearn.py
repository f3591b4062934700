"""neurocore.sklearn.MLPClassifier against sklearn.neural_network.MLPClassifier, as a user calls both.

50,000 x 100 training rows from make_classification (4 classes), float64 in, each library's defaults
(neurocore float32, scikit-learn float64), solver adam, batch 200, max_iter=20 with tol=0 and
n_iter_no_change=max_iter so both run every epoch; predict_proba on 10,000 held-out rows. Architectures:
scikit-learn's default hidden (100,) and (256, 128). Plain ``Sequential.fit`` on the same network and
schedule is timed too, to show what the estimator adds.

Each thread count runs in its own child process pinned to that many cores, with the thread variables set
and OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed (they slow NumPy). Inside a child the libraries alternate
round by round; the table gives the median per library and the ratio of medians.

    python benchmarks/bench_sklearn.py --threads 1,2          # ~5 min on a quiet 2-core machine
    python benchmarks/bench_sklearn.py --quick                # 3 epochs, one round
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C

ARCHS = {"(100,)": (100,), "(256, 128)": (256, 128)}
N_TRAIN, N_TEST, N_FEATURES, N_CLASSES = 50_000, 10_000, 100, 4


def worker(args) -> dict:
    C.pin_to_cores(args.threads)
    import warnings

    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as SkMLP

    import neurocore as nc
    from neurocore.sklearn import MLPClassifier as NcMLP

    warnings.simplefilter("ignore", ConvergenceWarning)
    nc.set_num_threads(args.threads)
    X, y = make_classification(n_samples=N_TRAIN + N_TEST, n_features=N_FEATURES, n_informative=20,
                               n_redundant=10, n_classes=N_CLASSES, random_state=0)
    Xtr, ytr, Xte, yte = X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:]
    out = {"threads": args.threads, "blas": C.numpy_blas_kernel(C.blas_info()), "archs": {}}
    for name in args.archs:
        hidden = ARCHS[name]
        params = dict(hidden_layer_sizes=hidden, solver="adam", batch_size=200, max_iter=args.epochs, tol=0.0,
                      n_iter_no_change=args.epochs, random_state=0)
        times = {"sklearn fit": [], "neurocore fit": [], "Sequential.fit": [],
                 "sklearn predict_proba": [], "neurocore predict_proba": []}
        acc = {}
        for r in range(args.rounds):
            fitted = {}
            libs = ["sklearn", "neurocore", "Sequential.fit"]
            for lib in libs[r % 3:] + libs[:r % 3]:   # each round starts with the next one
                time.sleep(args.settle)
                if lib == "Sequential.fit":   # the same network and schedule without the estimator
                    model = nc.Sequential([layer for h_in, h_out in zip((N_FEATURES, *hidden), hidden)
                                           for layer in (nc.Dense(h_in, h_out), nc.ReLU())]
                                          + [nc.Dense(hidden[-1], N_CLASSES)], seed=0)
                    t0 = time.perf_counter()
                    model.fit(Xtr, ytr, loss="cross_entropy", optimizer=nc.Adam(lr=1e-3, weight_decay=1e-4 / 200),
                              epochs=args.epochs, batch_size=200, seed=0, verbose=0)
                    times[lib].append(time.perf_counter() - t0)
                    continue
                est = (SkMLP if lib == "sklearn" else NcMLP)(**params)
                t0 = time.perf_counter()
                est.fit(Xtr, ytr)
                times[f"{lib} fit"].append(time.perf_counter() - t0)
                print(f"  {args.threads} thread(s) {name} round {r + 1}: {lib} fit {times[f'{lib} fit'][-1]:.2f} s",
                      file=sys.stderr, flush=True)
                fitted[lib] = est
                acc[lib] = float(np.mean(est.predict(Xte) == yte))
            for lib in ("sklearn", "neurocore") if r % 2 == 0 else ("neurocore", "sklearn"):
                time.sleep(args.settle)
                times[f"{lib} predict_proba"].append(C.time_call(lambda: fitted[lib].predict_proba(Xte), 0.5))
        out["archs"][name] = {"times": times, "accuracy": acc}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", default="1,2", help="thread counts, each in its own process (default 1,2)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per thread count (default 3)")
    p.add_argument("--archs", default=",".join(ARCHS), help="hidden layer sets: (100,) and/or (256, 128)")
    p.add_argument("--settle", type=float, default=0.15, help="pause (s) before each timed call")
    p.add_argument("--quick", action="store_true", help="3 epochs, one round")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick:
        args.epochs, args.rounds = 3, 1
    args.archs = [a for a in ARCHS if a in args.archs]   # substring match: "(100,)" and/or "(256, 128)"
    if args.worker:
        args.threads = int(args.threads)
        print(json.dumps(worker(args)))
        return

    print(f"# neurocore.sklearn vs scikit-learn MLPClassifier: {N_TRAIN:,} x {N_FEATURES} train, {N_CLASSES} "
          f"classes, adam, batch 200, {args.epochs} epochs; predict_proba on {N_TEST:,} rows")
    print(f"machine: {C.machine_info()}")
    header = ["hidden", "threads", "sklearn fit s", "neurocore fit s", "fit ratio", "Sequential.fit / ours",
              "sklearn proba ms", "neurocore proba ms", "proba ratio", "test acc sklearn / ours", "acc diff",
              "fit spread"]
    rows, blas = [], "-"
    for threads in C.parse_threads(args.threads):
        env = C.child_env(threads, unset_openblas_overrides=True)
        cmd = ["--worker", "--threads", str(threads), "--epochs", str(args.epochs), "--rounds", str(args.rounds),
               "--archs", ";".join(args.archs), "--settle", str(args.settle)]
        res = C.run_worker(os.path.abspath(__file__), cmd, env)
        blas = res["blas"]
        new_rows = [_row(name, res["threads"], r) for name, r in res["archs"].items()]
        print(C.markdown_table(header, new_rows), flush=True)   # as each thread count finishes
        rows += new_rows
    print()
    print(C.markdown_table(header, rows))
    print(f"\nBLAS: {blas}; medians of {args.rounds} alternating round(s)")


def _row(name: str, threads: int, r: dict) -> list:
    t = {k: C.median(v) for k, v in r["times"].items()}
    acc = r["accuracy"]
    return [name, threads, t["sklearn fit"], t["neurocore fit"], f"{t['sklearn fit'] / t['neurocore fit']:.2f}x",
            f"{t['Sequential.fit'] / t['neurocore fit']:.2f}", t["sklearn predict_proba"] * 1e3,
            t["neurocore predict_proba"] * 1e3,
            f"{t['sklearn predict_proba'] / t['neurocore predict_proba']:.2f}x",
            f"{acc['sklearn']:.4f} / {acc['neurocore']:.4f}", f"{acc['neurocore'] - acc['sklearn']:+.4f}",
            f"{max(C.spread(r['times']['sklearn fit']), C.spread(r['times']['neurocore fit'])):.0%}"]


if __name__ == "__main__":
    main()
