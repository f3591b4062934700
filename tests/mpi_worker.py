"""One rank of the distributed-fit tests (tests/test_distributed.py runs it under ``mpiexec -n 2``).

    python mpi_worker.py SCENARIO OUT_DIR

Each rank writes OUT_DIR/rank<r>.npz (weights, histories) or, when fit raises, prints one JSON line
{"rank", "error", "message", "t"} (t: time.monotonic() when the error reached this script) and exits 1.
"""
import json
import os
import sys
import time

import numpy as np

import neurocore as nc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mpi_worker_cases import CASES, SHARD_ROWS, data, flat, model, optimizer

SCENARIO, OUT = sys.argv[1], sys.argv[2]
RANK, SIZE = nc.distributed.rank(), nc.distributed.world_size()


def save(results):
    np.savez(os.path.join(OUT, f"rank{RANK}.npz"), **results)


def equivalence():
    X, y = data()
    out = {}
    for i, (dtype, opt, bn) in enumerate(CASES):
        m = model(dtype, bn, seed=RANK + 1)   # different starting weights: rank 0's must win
        h = m.fit(X, y, optimizer=optimizer(opt), epochs=2, batch_size=8, seed=3, verbose=0, distributed="mpi",
                  validation_data=(X[:50], y[:50]))
        out[f"w{i}"] = flat(m)
        out[f"loss{i}"] = np.array(h["loss"])
        out[f"val{i}"] = np.array(h["val_loss"] + h["val_accuracy"] + h["accuracy"])
    try:   # refused on both ranks alike, before any step
        m.fit(X, y, augment=lambda batch: batch, distributed="mpi", verbose=0)
    except ValueError as exc:
        out["augment_refused"] = np.array("augment callable cannot run in a distributed fit" in str(exc))
    save(out)


def sharded():
    X, y = data()
    lo = sum(SHARD_ROWS[:RANK])
    mine = slice(lo, lo + SHARD_ROWS[RANK])
    out = {}
    for i, bn in enumerate((False, True)):
        m = model("float64", bn)
        h = m.fit(X[mine], y[mine], optimizer=optimizer("sgd"), epochs=2, batch_size=8, shuffle=False, verbose=0,
                  distributed="mpi", sharded=True)
        out[f"w{i}"] = flat(m)
        out[f"loss{i}"] = np.array(h["loss"] + h["accuracy"])
    save(out)


def fault(kind):
    X, y = data(n=4000)
    if kind == "bad_label" and RANK == 1:
        y = y.copy()
        y[1234] = 7   # outside [0, 4), in rank 1's shard only
    if kind == "nan" and RANK == 1:
        X = X.copy()
        X[1500:] = 3e38   # finite, but the products overflow on this rank only
    callbacks = []
    if kind == "callback":
        def fail_on_rank_1(epoch, metrics):
            if RANK == 1 and epoch == 0:
                raise RuntimeError("a callback failed on rank 1")
        callbacks.append(fail_on_rank_1)
    if kind == "interrupt":
        with open(os.path.join(OUT, f"pid{RANK}"), "w") as f:
            f.write(str(os.getpid()))
    if kind == "bcast" and RANK == 0:   # fails inside the start's broadcasts: only the abort can stop rank 1
        def broken(self, arr):
            raise RuntimeError("broadcast failed on rank 0")
        nc.distributed.Session.bcast_ = broken
    if kind == "mismatch" and RANK == 1:   # not sharded, yet this rank holds other data
        X, y = X[:-5], y[:-5]
    epochs = 10_000 if kind == "interrupt" else 3
    m = model("float32", batchnorm=True)
    m.fit(X, y, optimizer=optimizer("sgd"), epochs=epochs, batch_size=16, shuffle=False, verbose=0,
          distributed="mpi", sharded=kind in ("bad_label", "nan"), callbacks=callbacks)


try:
    if SCENARIO == "equivalence":
        equivalence()
    elif SCENARIO == "sharded":
        sharded()
    else:
        fault(SCENARIO)
except BaseException as exc:
    print(json.dumps({"rank": RANK, "error": type(exc).__name__, "message": str(exc), "t": time.monotonic()}),
          flush=True)
    raise
