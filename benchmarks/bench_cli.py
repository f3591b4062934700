#!/usr/bin/env python
"""`neurocore train --epochs 1` on a big numeric CSV next to the time pandas needs just to read it.

    python benchmarks/bench_cli.py [--rows 200000] [--cols 50] [--rounds 3] [--old-cli FILE]

Writes a CSV of ROWS x COLS normal values (6 significant digits, like the issue's 92 MB file) plus a 0/1
target column "y" into a temporary folder, then, round by round (the order alternates every round):
  * pandas: ``pandas.read_csv(file)`` in this process (warm page cache, import not counted);
  * the CLI: ``python -m neurocore train FILE --target y --epochs 1`` as a child process, wall time
    including interpreter start-up, imports, reading, preprocessing, one epoch, evaluation and saving;
    its "read ..." line gives the reading throughput (MB/s).
Reports the medians and the ratio CLI / pandas. ``--old-cli FILE`` also times a cli.py of an earlier
version (for example ``git show ce3bf71:python/neurocore/cli.py > old_cli.py``) once, for comparison.
Needs pandas and pyarrow. Timings on a shared machine are noisy: compare ratios from one run.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def write_csv(path, rows, cols, seed=0):
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, cols))
    y = (X @ rng.normal(size=cols) > 0).astype(np.int64)
    table = pa.table({**{f"x{i}": np.round(X[:, i], 5) for i in range(cols)}, "y": y})
    pcsv.write_csv(table, path, write_options=pcsv.WriteOptions(quoting_style="none"))


def time_pandas(path):
    import pandas as pd

    start = time.perf_counter()
    frame = pd.read_csv(path)
    seconds = time.perf_counter() - start
    assert frame.shape[0] > 0
    return seconds


def time_cli(command, path, out, env=None):
    start = time.perf_counter()
    proc = subprocess.run([*command, "train", path, "--target", "y", "--epochs", "1", "--out", out],
                          capture_output=True, text=True, check=False, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"neurocore train failed:\n{proc.stderr}")
    match = re.search(r"read .*: ([0-9.]+) MB in ([0-9.]+) s \(([0-9.]+) MB/s\)", proc.stdout)
    accuracy = re.search(r"validation accuracy: ([0-9.]+)", proc.stdout)
    return seconds, (float(match.group(2)), float(match.group(3))) if match else (None, None), \
        float(accuracy.group(1)) if accuracy else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--cols", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--old-cli", help="a cli.py of an earlier version, timed once")
    parser.add_argument("--omp-passive", action="store_true",
                        help="also time the CLI with OMP_WAIT_POLICY=PASSIVE (on a machine shared with other "
                        "busy programs, spinning OpenMP threads wait for descheduled ones)")
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="neurocore-bench-cli-")
    try:
        run(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(args, folder):
    path = os.path.join(folder, "data.csv")
    write_csv(path, args.rows, args.cols)
    megabytes = os.path.getsize(path) / 1e6
    print(f"file: {args.rows} rows x {args.cols} features + target, {megabytes:.1f} MB ({path})")
    command = [sys.executable, "-m", "neurocore"]
    out = os.path.join(folder, "model.npz")
    time_pandas(path)  # warm the page cache and pandas' imports
    passive_env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    contenders = ["pandas", "cli"] + (["cli-passive"] if args.omp_passive else [])
    seconds = {who: [] for who in contenders}
    read_s, read_mbps = [], []
    accuracy = None
    for r in range(args.rounds):
        for who in (contenders if r % 2 == 0 else contenders[::-1]):
            if who == "pandas":
                seconds[who].append(time_pandas(path))
                continue
            wall, (reading, mbps), accuracy = time_cli(command, path, out,
                                                       passive_env if who == "cli-passive" else None)
            seconds[who].append(wall)
            if who == "cli":
                read_s.append(reading)
                read_mbps.append(mbps)
        line = ", ".join(f"{who} {seconds[who][-1]:.2f} s" for who in contenders)
        print(f"round {r + 1}: {line} (CLI reading {read_s[-1]:.2f} s, {read_mbps[-1]:.0f} MB/s); "
              f"ratio {seconds['cli'][-1] / seconds['pandas'][-1]:.2f}")
    p = statistics.median(seconds["pandas"])
    print(f"\nmedians of {args.rounds} rounds: pandas.read_csv {p:.2f} s ({megabytes / p:.0f} MB/s)")
    for who in contenders[1:]:
        c = statistics.median(seconds[who])
        name = "neurocore train --epochs 1" + (" (OMP_WAIT_POLICY=PASSIVE)" if who == "cli-passive" else "")
        print(f"{name}: {c:.2f} s, ratio {c / p:.2f} (target <= 3)")
    print(f"CLI reading: median {statistics.median(read_s):.2f} s, {statistics.median(read_mbps):.0f} MB/s; "
          f"validation accuracy {accuracy}")
    if args.old_cli:
        old = [sys.executable, "-c", "import runpy, sys; sys.exit(runpy.run_path(sys.argv[1])['main']"
               "(sys.argv[2:]))", args.old_cli]
        seconds, _, _ = time_cli(old, path, out)
        print(f"earlier cli.py ({args.old_cli}): {seconds:.2f} s, ratio {seconds / p:.1f}")


if __name__ == "__main__":
    main()
