"""Recurrent layers against PyTorch: training samples/s and one-step streaming latency.

Training: an LSTM/GRU/RNN(32 -> 128) over T = 50 steps, batch 64, then Dense(128, 10), cross-entropy,
Adam; neurocore's ``fit`` against the same model in ``torch.nn`` (the usual zero_grad / forward / backward /
step loop). Streaming: one LSTM step for one sample (the latency a live sensor model pays per reading):
neurocore's predict on a (1, 1, 32) sequence against ``torch.nn.LSTM`` given the carried state, no_grad.

Each thread count runs in its own child process pinned to that many cores; inside it, the frameworks
alternate round by round and the table reports medians and the ratio of medians. Not a test.

    python benchmarks/bench_rnn.py                 # threads 1,2; ~2 min
    python benchmarks/bench_rnn.py --quick         # fewer rounds
    python benchmarks/bench_rnn.py --isa avx512    # neurocore on another kernel set (NEUROCORE_ISA)
    python benchmarks/bench_rnn.py --breakdown     # where an LSTM batch's CPU time goes (in-process, 1 thread)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common

STEPS, FEATURES, HIDDEN, CLASSES, BATCH = 50, 32, 128, 10, 64
KINDS = ("lstm", "gru", "rnn")


def _data(n, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, STEPS, FEATURES)).astype(np.float32)
    y = rng.integers(0, CLASSES, n).astype(np.int64)
    return x, y


class NeurocoreRun:
    def __init__(self, kind, x, y):
        import neurocore as nc

        cls = {"lstm": nc.LSTM, "gru": nc.GRU, "rnn": nc.RNN}[kind]
        self.model = nc.Sequential([cls(FEATURES, HIDDEN), nc.Dense(HIDDEN, CLASSES)], input_shape=(STEPS, FEATURES),
                                   seed=0)
        self.opt = nc.Adam(lr=1e-3)
        self.x, self.y = x, y

    def epoch(self):
        self.model.fit(self.x, self.y, loss="cross_entropy", optimizer=self.opt, epochs=1, batch_size=BATCH,
                       shuffle=False, verbose=0)


class TorchRun:
    def __init__(self, kind, x, y):
        import torch

        torch.manual_seed(0)
        cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[kind]
        self.rnn = cls(FEATURES, HIDDEN, batch_first=True)
        self.head = torch.nn.Linear(HIDDEN, CLASSES)
        self.opt = torch.optim.Adam(list(self.rnn.parameters()) + list(self.head.parameters()), lr=1e-3)
        self.loss = torch.nn.CrossEntropyLoss()
        self.batches = [(torch.from_numpy(x[i:i + BATCH]), torch.from_numpy(y[i:i + BATCH]))
                        for i in range(0, len(x), BATCH)]

    def epoch(self):
        for xb, yb in self.batches:
            self.opt.zero_grad()
            out, _ = self.rnn(xb)
            self.loss(self.head(out[:, -1]), yb).backward()
            self.opt.step()


def stream_neurocore():
    import numpy as np

    import neurocore as nc

    model = nc.Sequential([nc.LSTM(FEATURES, HIDDEN)], input_shape=(1, FEATURES), seed=0)
    x = np.random.default_rng(1).standard_normal((1, 1, FEATURES)).astype(np.float32)
    return lambda: model.predict(x)


def stream_torch():
    import torch

    lstm = torch.nn.LSTM(FEATURES, HIDDEN, batch_first=True)
    x = torch.randn(1, 1, FEATURES)
    state = (torch.zeros(1, 1, HIDDEN), torch.zeros(1, 1, HIDDEN))

    def step():
        with torch.no_grad():
            return lstm(x, state)
    return step


def breakdown():
    """CPU ms of one LSTM training batch at 1 thread: forward and backward against the GEMMs they contain
    (timed alone through nc._core.gemm, same shapes); the rest is the gate kernels and bookkeeping."""
    import numpy as np

    import neurocore as nc

    nc.set_num_threads(1)
    rng = np.random.default_rng(0)

    def cpu_ms(fn, reps):
        fn()
        t0 = time.process_time()
        for _ in range(reps):
            fn()
        return (time.process_time() - t0) / reps * 1e3

    def gemm_ms(m, n, k, trans_b=False, trans_a=False, reps=50):
        a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
        b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
        return cpu_ms(lambda: nc._core.gemm(a, b, trans_a, trans_b), reps)

    g, nt = 4 * HIDDEN, BATCH * STEPS
    model = nc.Sequential([nc.LSTM(FEATURES, HIDDEN), nc.Dense(HIDDEN, CLASSES)], input_shape=(STEPS, FEATURES))
    x = rng.standard_normal((BATCH, STEPS, FEATURES)).astype(np.float32)
    dy = np.ones((BATCH, CLASSES), np.float32)
    fwd = cpu_ms(lambda: model.forward(x, training=True), 10)
    bwd = cpu_ms(lambda: model.backward(dy), 10)
    steps = (STEPS - 1) * gemm_ms(BATCH, g, HIDDEN)
    proj = gemm_ms(nt, g, FEATURES, reps=5)
    dsteps = (STEPS - 1) * gemm_ms(BATCH, HIDDEN, g)
    dw = gemm_ms(HIDDEN, g, nt, trans_a=True, reps=5) + gemm_ms(FEATURES, g, nt, trans_a=True, reps=5)
    dx = gemm_ms(nt, FEATURES, g, trans_b=True, reps=5)
    print(f"kernel set {nc.cpu_info()['isa']}, CPU ms per batch: forward {fwd:.2f} = h W_hh per step {steps:.2f} + "
          f"input projection {proj:.2f} + gates and rest {fwd - steps - proj:.2f}; backward {bwd:.2f} = dh per step "
          f"{dsteps:.2f} + dW_hh, dW_ih {dw:.2f} + dx {dx:.2f} + gates and rest {bwd - dsteps - dw - dx:.2f}")


def child(args):
    _common.pin_to_cores(args.child)
    import torch

    import neurocore as nc

    nc.set_num_threads(args.child)
    torch.set_num_threads(args.child)
    x, y = _data(args.samples)
    out = {"threads": args.child, "isa": nc.cpu_info()["isa"], "train": {}, "train_cpu": {}, "stream": {}}
    for kind in args.kinds:
        runs = {"neurocore": NeurocoreRun(kind, x, y), "torch": TorchRun(kind, x, y)}
        for r in runs.values():
            r.epoch()   # warm-up: allocation, thread pools
        times = {name: [] for name in runs}
        cpu = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, r in runs.items():
                t0, c0 = time.perf_counter(), time.process_time()
                r.epoch()
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
        out["train"][kind] = {name: len(x) / _common.median(ts) for name, ts in times.items()}
        # With one thread, CPU seconds are the work itself, whatever share of a core the process got.
        out["train_cpu"][kind] = {name: len(x) / _common.median(ts) for name, ts in cpu.items()}
    calls = {"neurocore": stream_neurocore(), "torch": stream_torch()}
    lat = {name: [] for name in calls}
    for _ in range(args.rounds):
        for name, f in calls.items():
            lat[name].append(_common.time_call(f, 0.1) * 1e6)
    out["stream"] = {name: _common.median(v) for name, v in lat.items()}
    print(json.dumps(out))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--samples", type=int, default=640, help="training samples per round (10 batches of 64)")
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--quick", action="store_true", help="2 rounds of 320 samples")
    p.add_argument("--isa", default=None, help="neurocore's kernel set (NEUROCORE_ISA); default: its own choice")
    p.add_argument("--breakdown", action="store_true", help="where one LSTM batch's CPU time goes (1 thread)")
    p.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    args.kinds = [k for k in args.kinds.split(",") if k]
    if args.quick:
        args.rounds, args.samples = 2, 320
    if args.child:
        return child(args)
    if args.breakdown:
        return breakdown()
    print(f"machine: {_common.machine_info()['cpu']}; shared with other users, timings are noisy")
    print(f"training: {STEPS} steps x {FEATURES} features -> {HIDDEN} hidden, batch {BATCH}, Dense({HIDDEN}, "
          f"{CLASSES}), cross-entropy, Adam; samples/s, median of {args.rounds} alternating rounds of "
          f"{args.samples} samples; streaming: one LSTM({FEATURES} -> {HIDDEN}) step, batch 1, us per call")
    env_isa = {"NEUROCORE_ISA": args.isa} if args.isa else {}
    for n in _common.parse_threads(args.threads):   # each thread count's tables as soon as they are measured
        res = _common.run_worker(__file__, ["--child", str(n), "--rounds", str(args.rounds), "--samples",
                                            str(args.samples), "--kinds", ",".join(args.kinds)],
                                 {**_common.child_env(n, unset_openblas_overrides=False), **env_isa})
        print(f"\n### {n} thread(s), neurocore kernel set {res['isa']}\n")
        rows = [[kind.upper(), r["neurocore"], r["torch"], f"{r['neurocore'] / r['torch']:.2f}x"]
                for kind, r in res["train"].items()]
        print(_common.markdown_table(["training", "neurocore", "torch", "neurocore / torch"], rows))
        if n == 1:   # with one thread, CPU seconds are the work, whatever share of a core the process got
            rows = [[kind.upper(), c["neurocore"], c["torch"], f"{c['neurocore'] / c['torch']:.2f}x"]
                    for kind, c in res["train_cpu"].items()]
            print("\n" + _common.markdown_table(["training per CPU-second", "neurocore", "torch",
                                                  "neurocore / torch"], rows))
        s = res["stream"]
        print("\n" + _common.markdown_table(["streaming (us)", "neurocore", "torch", "speed-up"],
                                              [["LSTM step", s["neurocore"], s["torch"], f"{s['torch'] / s['neurocore']:.2f}x"]]))
        sys.stdout.flush()

if __name__ == "__main__":
    main()
