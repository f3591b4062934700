"""Ctrl-C during fit: KeyboardInterrupt soon after the signal, the model left at a completed step."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import neurocore as nc

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4096, 256)).astype(np.float32)
    y = rng.integers(0, 10, 4096)
    model = nc.Sequential([nc.Dense(256, 512), nc.ReLU(), nc.Dense(512, 512), nc.ReLU(), nc.Dense(512, 10)], seed=0)
    before = [p.copy() for p in model.parameters()]
    print("ready", flush=True)
    try:
        model.fit(x, y, optimizer=nc.SGD(lr=0.01), epochs=100000, batch_size=64, verbose=0)
    except KeyboardInterrupt:
        stopped = time.perf_counter()
        params = model.parameters()
        assert all(np.isfinite(p).all() for p in params)
        changed = any(not np.array_equal(a, b) for a, b in zip(before, params))
        # The model is usable: predict and another (short) fit work.
        model.predict(x[:5])
        model.fit(x[:64], y[:64], epochs=1, batch_size=64, verbose=0)
        print(f"interrupted {stopped!r} changed={changed}", flush=True)
        sys.exit(0)
    sys.exit(3)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_stops_fit_quickly_and_leaves_a_usable_model():
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(1.0)  # well inside training
        sent = time.perf_counter()
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    line = out.strip().splitlines()[-1]
    assert line.startswith("interrupted"), out
    stopped = float(line.split()[1])
    # perf_counter is CLOCK_MONOTONIC on Linux: comparable across the two processes.
    assert stopped - sent < 0.5, f"fit took {stopped - sent:.3f} s to stop after SIGINT"
    assert "changed=True" in line


# The state after Ctrl-C must be the state after the last completed step: not a torn update, not rolled
# back to the start of the epoch, and with the optimizer's state (momentum buffer, step count) in step
# with the parameters. Observed by replaying the same run one batch at a time (fit(shuffle=False) visits
# the batches in order, so step k is batch k % steps_per_epoch) until the parameters match bitwise. An
# epoch here lasts longer than the time to the signal, so a rollback to the epoch start would match
# step 0 ("changed" fails), and a torn update would match no step at all.
STEP_CHILD = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    import neurocore as nc

    rng = np.random.default_rng(0)
    n, d, batch = 60000, 32, 16
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, 10, n)
    per_epoch = -(-n // batch)

    def make():
        return nc.Sequential([nc.Dense(d, 256), nc.Tanh(), nc.Dense(256, 256), nc.Tanh(), nc.Dense(256, 10)],
                             seed=0)

    def same(a, b):
        return all(np.array_equal(p, q) for p, q in zip(a, b))

    def one_step(model, opt, k):
        rows = slice((k % per_epoch) * batch, (k % per_epoch + 1) * batch)
        model.fit(x[rows], y[rows], optimizer=opt, epochs=1, batch_size=batch, shuffle=False, verbose=0)

    model, opt = make(), nc.SGD(lr=0.01, momentum=0.9)
    print("ready", flush=True)
    try:
        model.fit(x, y, optimizer=opt, epochs=1000, batch_size=batch, shuffle=False, verbose=0)
    except KeyboardInterrupt:
        stopped = time.perf_counter()
    else:
        sys.exit(3)
    params = [p.copy() for p in model.parameters()]
    state = {k: v.copy() for k, v in opt.state_arrays().items()}
    steps_counted = getattr(opt, "steps", None)

    replay, ropt = make(), nc.SGD(lr=0.01, momentum=0.9)
    match = 0 if same(params, replay.parameters()) else None
    k = 0
    while match is None and k < 4 * per_epoch:
        one_step(replay, ropt, k)
        k += 1
        if same(params, replay.parameters()):
            match = k
    result = {"stopped": stopped, "match": match, "per_epoch": per_epoch, "steps_counted": steps_counted,
              "finite": all(bool(np.isfinite(p).all()) for p in params)}
    if match is not None:
        rstate = ropt.state_arrays()
        buffers = [key for key in rstate if key != "steps"]  # the step count is checked on its own
        result["optimizer_state_equal"] = all(np.array_equal(state[key], rstate[key]) for key in buffers)
        # usable, and it continues exactly where it stopped: one more step on both
        one_step(model, opt, match)
        one_step(replay, ropt, match)
        result["continues_identically"] = same(model.parameters(), replay.parameters())
    print("result " + json.dumps(result), flush=True)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_leaves_the_model_at_its_last_completed_step():
    import json

    proc = subprocess.Popen([sys.executable, "-c", STEP_CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        sent = time.perf_counter()
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    line = [ln for ln in out.splitlines() if ln.startswith("result ")][-1]
    r = json.loads(line[len("result "):])
    assert r["stopped"] - sent < 0.5, f"fit took {r['stopped'] - sent:.3f} s to stop after SIGINT"
    assert r["finite"]
    assert r["match"] is not None, ("the parameters after Ctrl-C equal the state after no completed step "
                                    "(a torn update?)")
    assert r["match"] > 0, "Ctrl-C rolled the model back to its initial state"
    if r["steps_counted"] is not None:  # the optimizer counts the steps it applied
        assert r["steps_counted"] == r["match"], (f"the optimizer counted {r['steps_counted']} steps but the "
                                                   f"parameters are those after step {r['match']}")
    assert r["optimizer_state_equal"], "the momentum buffer is not the one of the last completed step"
    assert r["continues_identically"], "training after Ctrl-C does not continue from the last completed step"
