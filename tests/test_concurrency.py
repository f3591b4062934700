"""Threads: models trained at once from several Python threads equal the models trained alone; one model
used from two threads at once is either safe or refused with a clear RuntimeError (never torn state, never
a crash); results are bitwise identical for 1, 2 and 3 threads.

No timing assertions: the machine has 2 cores and may be busy. Where two threads race on one model, the
assertions hold for every interleaving: each result a thread sees must equal the model's state after some
completed training step (found by replaying the steps one at a time, ``reliability.replay_steps``).
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reliability import (
    DTYPES,
    ISAS,
    build,
    describe,
    in_width,
    kernel_set,
    out_width,
    property_settings,
    replay_steps,
    stacks,
    state_index,
    thread_count,
)

import neurocore as nc
import reference as ref

BUSY = "another thread"   # what the refusal must say
REPORT = {}


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    if os.environ.get("NEUROCORE_REPORT_COUNTS"):
        print("\n" + "; ".join(f"{k}: {v}" for k, v in REPORT.items()))


def _task(seed, dtype):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1200, 48)).astype(dtype)
    y = rng.integers(0, 7, 1200)
    return x, y


def _model(seed, dtype):
    return nc.Sequential([nc.Dense(48, 96 + 8 * seed), nc.ReLU(), nc.Dense(96 + 8 * seed, 64), nc.Tanh(),
                          nc.Dense(64, 7)], dtype=dtype, seed=seed)


def _train(seed, dtype, start=None):
    x, y = _task(seed, dtype)
    model = _model(seed, dtype)
    if start is not None:
        start.wait()
    hist = model.fit(x, y, optimizer=nc.SGD(lr=0.05, momentum=0.9, nesterov=seed % 2 == 1), epochs=3,
                     batch_size=32 + seed, seed=seed, verbose=0)
    out = model.predict(x[:50])
    ev = model.evaluate(x, y)
    return [p.copy() for p in model.parameters()], hist["loss"], out, ev


def _assert_same_run(a, b, what):
    for i, (p, q) in enumerate(zip(a[0], b[0])):
        assert np.array_equal(p, q), f"{what}: parameter {i} differs"
    assert a[1] == b[1], f"{what}: loss history differs"
    assert np.array_equal(a[2], b[2]), f"{what}: predictions differ"
    assert a[3] == b[3], f"{what}: evaluate differs"


def test_different_models_in_parallel_threads_equal_alone(restore_threads):
    jobs = [(0, "float32"), (1, "float64"), (2, "float32"), (3, "float64")]
    for n_threads in (1, 2):
        nc.set_num_threads(n_threads)
        alone = [_train(seed, dtype) for seed, dtype in jobs]
        start = threading.Barrier(len(jobs))
        with ThreadPoolExecutor(len(jobs)) as pool:
            together = list(pool.map(lambda job, start=start: _train(*job, start=start), jobs))
        for job, a, b in zip(jobs, alone, together):
            _assert_same_run(a, b, f"model {job} with {n_threads} OpenMP threads per call")


# --------------------------------------------------------------------------- one model, two threads
class Race:
    """``trainer()`` runs in one thread (a sequence of steps; it calls ``race.pause()`` between them, which
    lets the other thread make one call for sure); ``other()`` is called in a loop from a second thread
    until the trainer is done. Refusals must be RuntimeErrors naming the other thread."""

    def __init__(self, trainer, other):
        self.trainer, self.other = trainer, other
        self.done = threading.Event()
        self.turn = threading.Semaphore(0)
        self.served = threading.Semaphore(0)
        self.results, self.unexpected, self.refusals = [], [], 0
        self.trainer_error = None
        self.trainer_retries = 0

    def pause(self):
        """Between two of the trainer's calls: wait until the other thread has made one call."""
        self.turn.release()
        self.served.acquire(timeout=10)

    def _call_other(self):
        try:
            self.results.append(self.other())
        except RuntimeError as exc:
            if BUSY not in str(exc):
                self.unexpected.append(f"unclear refusal: {exc}")
            self.refusals += 1
        except BaseException as exc:
            self.unexpected.append(f"other: {type(exc).__name__}: {exc}")

    def _train(self):
        try:
            self.trainer(self)
        except RuntimeError as exc:
            self.trainer_error = exc
            if BUSY not in str(exc):
                self.unexpected.append(f"unclear refusal of the trainer: {exc}")
        except BaseException as exc:
            self.unexpected.append(f"trainer: {type(exc).__name__}: {exc}")
        finally:
            self.done.set()
            self.turn.release()

    def _poke(self):
        while not self.done.is_set():
            if self.turn.acquire(blocking=False):
                if not self.done.is_set():
                    self._call_other()
                    self.served.release()
                continue
            self._call_other()
            time.sleep(0.0002)  # a breath without the model: the trainer gets its turns too

    def run(self):
        threads = [threading.Thread(target=self._train), threading.Thread(target=self._poke)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not self.unexpected, self.unexpected
        return self


def _setup(dtype="float32", seed=5, rows=512, hidden=96):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 40)).astype(dtype)
    y = rng.integers(0, 6, rows)
    make = lambda: nc.Sequential([nc.Dense(40, hidden), nc.Tanh(), nc.Dense(hidden, 6)], dtype=dtype,
                                 seed=seed)
    return x, y, make


def test_reading_a_model_while_another_thread_trains_it_sees_only_completed_steps(restore_threads):
    """predict/forward from a second thread during training (epoch after epoch, shuffle=False): every read
    is refused (RuntimeError naming the other thread) or returns the output of the model after some
    completed step, in training order; the trainer ends exactly at a completed step (all of them, unless
    it was itself refused)."""
    nc.set_num_threads(2)
    x, y, make = _setup(rows=1024, hidden=512)
    probe = x[:7]
    epochs, batch = 6, 64
    model = make()
    opt = nc.SGD(lr=0.05, momentum=0.9)
    counter = [0]

    def read():
        counter[0] += 1
        return model.predict(probe) if counter[0] % 2 else model.forward(probe)

    def trainer(race):
        for _ in range(epochs):
            for _attempt in range(100):
                before = [p.copy() for p in model.parameters()]
                try:
                    model.fit(x, y, optimizer=opt, epochs=1, batch_size=batch, shuffle=False, verbose=0)
                    break
                except RuntimeError:
                    # refused before its first step (nothing changed): a retry continues the same run;
                    # refused later: the run stops there (still at a completed step)
                    if not all(np.array_equal(a, b) for a, b in zip(before, model.parameters())):
                        raise
                    race.trainer_retries += 1
            else:
                raise AssertionError("the trainer was refused 100 times in a row")
            race.pause()

    race = Race(trainer, read).run()
    steps = epochs * -(-len(x) // batch)
    states, outputs = replay_steps(make(), x, y, "cross_entropy", nc.SGD(lr=0.05, momentum=0.9), batch, steps,
                                   probe)
    k_final = state_index(model.parameters(), states)
    assert k_final is not None, "the trained parameters match no completed step (torn update)"
    if race.trainer_error is None:
        assert k_final == steps, f"training finished at step {k_final} of {steps}"
    last = 0
    for i, out in enumerate(race.results):
        k = next((k for k in range(last, len(outputs)) if np.array_equal(out, outputs[k])), None)
        assert k is not None, f"read {i} saw a state that is no completed step (or went back in time)"
        last = k
    assert race.results, "no read went through, not even between epochs"
    REPORT["reads during training (ok, refused, trainer retries, trainer refused)"] = (
        len(race.results), race.refusals, race.trainer_retries, race.trainer_error is not None)


def test_saving_while_another_thread_trains_writes_a_completed_step(restore_threads, tmp_path):
    """model.save from a second thread during fit: refused (RuntimeError naming the other thread) or a file
    holding the parameters after some completed step -- never a mix of two steps."""
    nc.set_num_threads(2)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1024, 40)).astype(np.float32)
    y = rng.integers(0, 6, 1024)

    def make():
        return nc.Sequential([nc.Dense(40, 256), nc.Tanh(), nc.Dense(256, 256), nc.Tanh(), nc.Dense(256, 256),
                              nc.Tanh(), nc.Dense(256, 6)], seed=3)

    model, epochs, batch = make(), 3, 32
    opt = nc.SGD(lr=0.05, momentum=0.9)
    paths = []

    def save():
        path = tmp_path / f"during_{len(paths)}.npz"
        model.save(path)
        paths.append(path)

    def trainer(race):
        for _ in range(epochs):
            model.fit(x, y, optimizer=opt, epochs=1, batch_size=batch, shuffle=False, verbose=0)
            race.pause()

    race = Race(trainer, save).run()
    assert race.trainer_error is None or BUSY in str(race.trainer_error)
    steps = epochs * -(-len(x) // batch)
    states, _ = replay_steps(make(), x, y, "cross_entropy", nc.SGD(lr=0.05, momentum=0.9), batch, steps)
    torn = [p.name for p in paths if state_index(nc.load(p).parameters(), states) is None]
    assert not torn, (f"{len(torn)} of {len(paths)} files saved during training hold a mix of training steps "
                      f"(neither refused nor a consistent snapshot): {torn[:5]}")
    REPORT["saves during training (written, refused)"] = (len(paths), race.refusals)


def test_two_threads_training_one_model_never_corrupt_it(restore_threads):
    """fit, forward+backward, SGD steps and zero_grad on the same model from two threads: each call completes
    or is refused with a clear RuntimeError; afterwards the model is finite and works."""
    nc.set_num_threads(2)
    x, y, make = _setup(rows=1024, hidden=512)
    model = make()
    gout = np.ones((32, 6), np.float32)
    opt2 = nc.SGD(lr=0.01)

    def other():
        out = model.forward(x[:32])
        model.backward(gout * 0.01)
        opt2.step(model)
        model.zero_grad()
        return out

    def trainer(race):
        for _ in range(6):
            model.fit(x, y, optimizer=nc.SGD(lr=0.05), epochs=1, batch_size=32, verbose=0)
            race.pause()

    first = Race(trainer, other).run()
    second = Race(trainer, lambda: model.fit(x[:64], y[:64], optimizer=nc.SGD(lr=0.01), epochs=1,
                                            verbose=0)).run()
    assert all(np.isfinite(p).all() for p in model.parameters())
    out = model.predict(x)
    assert out.shape == (len(x), 6) and np.isfinite(out).all()
    model.fit(x, y, epochs=1, verbose=0)
    REPORT["steps from a second thread (ok, refused)"] = (len(first.results) + len(second.results),
                                                         first.refusals + second.refusals)


def test_changing_the_thread_count_during_training_changes_nothing(restore_threads):
    x, y, make = _setup("float64", seed=8, rows=1024, hidden=128)
    nc.set_num_threads(2)
    alone = make()
    alone.fit(x, y, optimizer=nc.SGD(lr=0.05), epochs=4, batch_size=16, seed=1, verbose=0)
    model = make()
    counts = iter([1, 2, 3] * 1_000_000)

    def trainer(race):
        race.pause()  # the other thread is running before training starts
        model.fit(x, y, optimizer=nc.SGD(lr=0.05), epochs=4, batch_size=16, seed=1, verbose=0)

    race = Race(trainer, lambda: nc.set_num_threads(next(counts))).run()
    assert race.trainer_error is None
    for i, (a, b) in enumerate(zip(model.parameters(), alone.parameters())):
        assert np.array_equal(a, b), f"parameter {i} differs when the thread count changes during fit"
    REPORT["thread-count changes during one fit"] = len(race.results)


def test_switching_the_kernel_set_during_training_never_corrupts(restore_threads):
    """set_isa (a test hook, process-wide) from another thread mid-training: every step must still be
    computed correctly by one kernel set or the other, so the result stays within rounding of training
    alone (a step computed with a workspace sized for the other kernel set would be garbage)."""
    if len(ISAS) < 2:
        pytest.skip("one kernel set on this CPU")
    x, y, make = _setup("float64", seed=9, rows=1024, hidden=512)
    nc.set_num_threads(1)
    with kernel_set(ISAS[0]):
        alone = make()
        alone.fit(x, y, optimizer=nc.SGD(lr=0.05), epochs=4, batch_size=128, seed=2, verbose=0)
        model = make()
        isas = iter(ISAS * 1_000_000)

        def trainer(race):
            race.pause()  # the other thread is running before training starts
            model.fit(x, y, optimizer=nc.SGD(lr=0.05), epochs=4, batch_size=128, seed=2, verbose=0)

        race = Race(trainer, lambda: nc._core.set_isa(next(isas))).run()
    assert race.trainer_error is None
    for i, (a, b) in enumerate(zip(model.parameters(), alone.parameters())):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9,
                                   err_msg=f"parameter {i}: training went wrong while the kernel set changed "
                                           f"({len(race.results)} switches)")
    REPORT["kernel-set switches during one fit"] = len(race.results)


# --------------------------------------------------------------------------- 1, 2, 3 threads: bitwise
@property_settings(25)
@given(desc=stacks(), dtype=st.sampled_from(DTYPES), isa=st.sampled_from(ISAS), batch=st.integers(1, 257),
       seed=st.integers(0, 2**32 - 1))
def test_results_bitwise_identical_for_1_2_3_threads(desc, dtype, isa, batch, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, in_width(desc))).astype(dtype)
    gout = rng.standard_normal((batch, out_width(desc))).astype(dtype)
    labels = rng.integers(0, out_width(desc), batch)
    runs = []
    with kernel_set(isa):
        for n in (1, 2, 3):
            with thread_count(n):
                model = build(desc, dtype, seed)
                out = model.forward(x)
                gx = model.backward(gout)
                result = [out, gx] + [g.copy() for g in model.gradients()]
                result.append(model.predict(x, batch_size=max(1, batch // 3)))
                hist = model.fit(x, labels, optimizer=nc.SGD(lr=0.01, momentum=0.5), epochs=2,
                                 batch_size=max(1, batch // 2), seed=seed % 1000, verbose=0)
                result += [p.copy() for p in model.parameters()] + [np.array(hist["loss"])]
                runs.append(result)
    for n, run in zip((2, 3), runs[1:]):
        for i, (a, b) in enumerate(zip(runs[0], run)):
            assert np.array_equal(a, b, equal_nan=True), \
                f"result {i} differs between 1 and {n} threads: {describe(desc)} {dtype.name} {isa} batch={batch}"
    # and the shared result is right (not the same wrong answer three times)
    expected, _ = ref.seq_forward(ref.layer_specs(build(desc, dtype, seed)), x)
    assert np.allclose(runs[0][0], expected, rtol=1e-3, atol=1e-3 * (np.abs(expected).max() + 1))
