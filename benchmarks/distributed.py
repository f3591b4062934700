#!/usr/bin/env python
"""Data-parallel training on this machine: 1 process x 2 threads against 2 MPI ranks x 1 thread.

    python benchmarks/distributed.py [--nets s64,mnist128,...] [--rounds 3] [--json out.json]

Both train the nets of benchmarks/run.py (float32, SGD momentum 0.9, cross-entropy, synthetic data) on the
same global batch (run.py's batch: one process takes it whole, each rank half of it), so both compute the
same weights. Rounds alternate which configuration goes first; each child reports its best epoch. The MPI
child also times MPI_Allreduce of a buffer of the net's parameter count (the gradient sum of one step)
and of the 12-double status, and reports them as a share of a step. Needs mpi4py + mpiexec
(pip install "neurocore[mpi]").
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
import run as R  # noqa: E402

DEFAULT_NETS = ["s64", "mnist128", "mnist512", "deep256", "wide4096"]


def child(args) -> None:
    import numpy as np

    import neurocore as nc

    nc.set_num_threads(args.threads)
    name, sizes, batch, samples, quick = R.NETS[args.net]
    n = quick if args.quick else samples
    X, y = R.make_data(sizes, n)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nc.Dense(a, b), nc.ReLU()]
    model = nc.Sequential(layers[:-1], seed=0)
    distributed = "mpi" if args.mode == "mpi" else None
    ranks = nc.distributed.world_size() if distributed else 1
    per_rank = batch // ranks
    opt = nc.SGD(lr=0.01, momentum=0.9, weight_decay=1e-4)
    fit = dict(optimizer=opt, batch_size=per_rank, verbose=0, seed=0, distributed=distributed)
    model.fit(X[: 4 * batch], y[: 4 * batch], epochs=1, **fit)   # warm-up: pools, workspaces, pages
    best = float("inf")
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        model.fit(X, y, epochs=1, **fit)
        best = min(best, time.perf_counter() - t0)
    out = {"samples_per_s": n / best, "epoch_s": best, "steps": -(-n // batch), "batch": batch,
           "n_params": int(model.n_parameters)}
    if distributed:
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
        times = {}
        for what, buf in (("grad", np.ones(model._net.n_params, np.float32)), ("status", np.zeros(12))):
            reps = []
            for _ in range(20):
                comm.Barrier()
                t0 = time.perf_counter()
                comm.Allreduce(MPI.IN_PLACE, buf)
                reps.append(time.perf_counter() - t0)
            times[what] = comm.allreduce(statistics.median(reps), op=MPI.MAX)
        out.update(allreduce_grad_s=times["grad"], allreduce_status_s=times["status"])
        if comm.Get_rank() != 0:
            return
    print(json.dumps(out), flush=True)


# Interconnects of the cost model: (name, alpha = per-message latency s, beta = s per byte on the wire).
LINKS = [("10 Gbit/s Ethernet (TCP)", 25e-6, 8 / 10e9), ("100 Gbit/s (RDMA)", 3e-6, 8 / 100e9)]


def ring_allreduce_s(nodes: int, nbytes: float, alpha: float, beta: float, gamma: float) -> float:
    """Ring allreduce (reduce-scatter + allgather): 2(P-1) messages of N/P bytes, (P-1)/P N bytes summed."""
    p = nodes
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * nbytes * beta + (p - 1) / p * nbytes * gamma


def cost_model(net: str, gflops: float, gamma: float, node_batch: int) -> list[list]:
    """Per step of `net` with node_batch rows per node (weak scaling): compute, allreduce, efficiency without
    and with the gradient allreduce overlapped with backward (bucketed: it can hide behind the 2/3 of the
    step that backward takes, less the last bucket, taken as the first layer's gradient)."""
    sizes = R.NETS[net][1]
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    nbytes = 4.0 * n_params
    compute = 3 * R.forward_flops(sizes) * node_batch / (gflops * 1e9)
    last_bucket = 4.0 * (sizes[0] * sizes[1] + sizes[1]) / nbytes
    rows = []
    for name, alpha, beta in LINKS:
        for nodes in (8, 64):
            comm = ring_allreduce_s(nodes, nbytes, alpha, beta, gamma)
            hidden = min(comm * (1 - last_bucket), 2 / 3 * compute)
            rows.append([name, nodes, f"{1e3 * compute:.1f}", f"{1e3 * comm:.1f}",
                         f"{compute / (compute + comm):.0%}", f"{compute / (compute + comm - hidden):.0%}",
                         f"{nodes * compute / (compute + comm):.1f}"])
    return rows


def launch(mode: str, net: str, args) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    threads = 2 if mode == "single" else 1
    env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", mode, "--net", net, "--threads", str(threads),
           "--epochs", str(args.epochs)] + (["--quick"] if args.quick else [])
    if mode == "mpi":
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        cmd = [mpiexec if os.path.exists(mpiexec) else "mpiexec", "-n", "2"] + cmd
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} {net} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nets", default=",".join(DEFAULT_NETS))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per child (best kept)")
    p.add_argument("--quick", action="store_true", help="run.py's quick sample counts")
    p.add_argument("--json", default=None)
    p.add_argument("--model-from", default=None, help="print the cost model from a saved --json file")
    p.add_argument("--gflops", type=float, default=None, help="the model's FLOP rate per node instead of the run's")
    p.add_argument("--child", choices=["single", "mpi"], help=argparse.SUPPRESS)
    p.add_argument("--net", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        args.mode = args.child
        child(args)
        return
    if args.model_from:
        with open(args.model_from) as f:
            print_model(json.load(f), args.gflops)
        return
    nets = args.nets.split(",")
    results = {net: {"single": [], "mpi": []} for net in nets}
    for r in range(args.rounds):
        for net in nets:
            order = ["single", "mpi"] if r % 2 == 0 else ["mpi", "single"]
            for mode in order:
                results[net][mode].append(launch(mode, net, args))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    header = ["net", "params", "global batch", "1p x 2t samples/s", "2r x 1t samples/s", "2r / 1p",
              "step (2r) ms", "grad allreduce ms", "share of step", "status allreduce us", "GFLOP/s (1p)"]
    rows = []
    for net in nets:
        one, two = results[net]["single"], results[net]["mpi"]
        s1 = statistics.median(x["samples_per_s"] for x in one)
        s2 = statistics.median(x["samples_per_s"] for x in two)
        batch = one[0]["batch"]
        step_ms = 1e3 * batch / s2
        ar_ms = 1e3 * statistics.median(x["allreduce_grad_s"] for x in two)
        st_us = 1e6 * statistics.median(x["allreduce_status_s"] for x in two)
        gflops = 3 * R.forward_flops(R.NETS[net][1]) * s1 / 1e9
        rows.append([R.NETS[net][0], f"{one[0]['n_params']:,}", batch, f"{s1:,.0f}", f"{s2:,.0f}", f"{s2 / s1:.2f}",
                     f"{step_ms:.2f}", f"{ar_ms:.3f}", f"{ar_ms / step_ms:.1%}", f"{st_us:.1f}", f"{gflops:.1f}"])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if "wide4096" in results:
        print_model(results)


def local_sum_s_per_byte(nbytes: int) -> float:
    """gamma: seconds per byte to add one float32 buffer into another of nbytes (best of 5)."""
    import numpy as np

    a = np.ones(nbytes // 4, np.float32)
    b = np.ones_like(a)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        np.add(a, b, out=a)
        best = min(best, time.perf_counter() - t0)
    return best / nbytes


def print_model(results: dict, gflops: float | None = None) -> None:
    """The alpha-beta ring-allreduce model of the wide net over many nodes: a node computes at the
    1p x 2t FLOP rate of this run (its best round: load only slows), or at `gflops`; gamma is this
    machine's rate of summing a gradient-sized buffer."""
    wide = results["wide4096"]
    batch = wide["single"][0]["batch"]
    if gflops is None:
        gflops = 3 * R.forward_flops(R.NETS["wide4096"][1]) * max(x["samples_per_s"] for x in wide["single"]) / 1e9
    nbytes = 4 * wide["mpi"][0]["n_params"]
    gamma = local_sum_s_per_byte(nbytes)
    print(f"\nwide net, {batch} rows per node and step, {gflops:.1f} GFLOP/s per node, {nbytes / 1e6:.1f} MB of "
          f"gradients, local sum {1e-9 / gamma:.2f} GB/s:")
    header = ["link", "nodes", "compute ms", "ring allreduce ms", "efficiency", "with overlap", "speed-up"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in cost_model("wide4096", gflops, gamma, batch):
        print("| " + " | ".join(str(c) for c in row) + " |")


if __name__ == "__main__":
    main()
