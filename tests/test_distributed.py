"""Data-parallel fit over MPI: 2 ranks under mpiexec against one process (tests/mpi_worker.py is a rank).

P ranks with batch_size=b must give the weights of one process with batch_size=b*P (float64 to 1e-10,
float32 to 1e-5 relative), bitwise identical on every rank; a fault on one rank stops both, non-zero,
within 10 s. The launches skip when mpi4py or mpiexec is absent (the sanitizer run has neither).
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import neurocore as nc

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "mpi_worker.py")
sys.path.insert(0, HERE)
import mpi_worker_cases as cases  # noqa: E402


def _mpiexec():
    pytest.importorskip("mpi4py", reason="pip install 'neurocore[mpi]' for the distributed tests")
    local = os.path.join(os.path.dirname(sys.executable), "mpiexec")   # the mpich wheel's, in the venv
    found = local if os.path.exists(local) else shutil.which("mpiexec")
    if found is None:
        pytest.skip("no mpiexec (pip install mpich)")
    return found


def _launch(scenario, out_dir, **popen):
    env = dict(os.environ, OMP_NUM_THREADS="1", NEUROCORE_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen([_mpiexec(), "-n", "2", sys.executable, WORKER, scenario, str(out_dir)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, **popen)


def _run(scenario, out_dir, timeout=120):
    proc = _launch(scenario, out_dir)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def _errors(output):
    """The JSON lines the ranks print when fit raised, by rank."""
    found, decoder, at = {}, json.JSONDecoder(), output.find('{"rank"')
    while at >= 0:   # the two ranks' lines may share a line of mpiexec's output
        record, end = decoder.raw_decode(output, at)
        found[record["rank"]] = record
        at = output.find('{"rank"', end)
    return found


def _ranks(out_dir):
    return [dict(np.load(os.path.join(out_dir, f"rank{r}.npz"))) for r in range(2)]


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _assert_same_on_both_ranks(ranks):
    for key in ranks[0]:
        assert ranks[0][key].tobytes() == ranks[1][key].tobytes(), f"{key} differs between the ranks"


def test_two_ranks_equal_one_process_with_the_global_batch(tmp_path):
    code, out = _run("equivalence", tmp_path)
    assert code == 0, out
    ranks = _ranks(tmp_path)
    _assert_same_on_both_ranks(ranks)
    assert ranks[0]["augment_refused"]
    X, y = cases.data()
    for i, (dtype, opt, bn) in enumerate(cases.CASES):
        ref = cases.model(dtype, bn)
        h = ref.fit(X, y, optimizer=cases.optimizer(opt), epochs=2, batch_size=16, seed=3, verbose=0,
                    validation_data=(X[:50], y[:50]))
        tol = 1e-10 if dtype == "float64" else 1e-5
        err = _rel(ranks[0][f"w{i}"], cases.flat(ref))
        assert err < tol, f"{dtype} {opt} batchnorm={bn}: relative weight error {err:.2e}"
        np.testing.assert_allclose(ranks[0][f"loss{i}"], h["loss"], rtol=tol)
        np.testing.assert_allclose(ranks[0][f"val{i}"], h["val_loss"] + h["val_accuracy"] + h["accuracy"],
                                   rtol=tol)


def test_sharded_ranks_average_their_own_batches(tmp_path):
    code, out = _run("sharded", tmp_path)
    assert code == 0, out
    ranks = _ranks(tmp_path)
    _assert_same_on_both_ranks(ranks)
    X, y = cases.data()
    b = 8
    a_rows, b_rows = cases.SHARD_ROWS
    shard_a, shard_b = np.arange(a_rows), a_rows + np.arange(b_rows)
    steps = -(-a_rows // b)   # the smaller shard decides
    # One process sees step s's rows of both shards as one batch of up to 2b rows.
    order = np.concatenate([np.concatenate([shard_a[s * b:(s + 1) * b], shard_b[s * b:(s + 1) * b]])
                            for s in range(steps)])
    assert len(order) == a_rows + steps * b
    for i, bn in enumerate((False, True)):
        ref = cases.model("float64", bn)
        h = ref.fit(X[order], y[order], optimizer=cases.optimizer("sgd"), epochs=2, batch_size=2 * b,
                    shuffle=False, verbose=0)
        assert _rel(ranks[0][f"w{i}"], cases.flat(ref)) < 1e-10
        np.testing.assert_allclose(ranks[0][f"loss{i}"], h["loss"] + h["accuracy"], rtol=1e-10)


@pytest.mark.parametrize("scenario, rank0_error, rank1_error", [
    ("bad_label", "RankStoppedError", "ValueError"),        # rank 1's shard holds a label out of range
    ("nan", "FloatingPointError", "FloatingPointError"),    # rank 1's data overflows: the global loss is NaN
    ("callback", "RankStoppedError", "RuntimeError"),       # a callback raises on rank 1 at an epoch's end
    ("mismatch", "ValueError", "ValueError"),               # not sharded, but rank 1 passes other data
])
def test_an_error_on_one_rank_stops_both(tmp_path, scenario, rank0_error, rank1_error):
    start = time.monotonic()
    code, out = _run(scenario, tmp_path, timeout=60)
    end = time.monotonic()
    assert code != 0, out
    errors = _errors(out)
    assert sorted(errors) == [0, 1], out
    assert errors[0]["error"] == rank0_error and errors[1]["error"] == rank1_error, out
    fault = min(e["t"] for e in errors.values())
    assert end - fault < 10, f"stopped {end - fault:.1f} s after the fault"
    assert end - start < 60
    if scenario == "bad_label":
        assert "labels must lie in [0, 4)" in errors[1]["message"]
        assert "rank 1 raised an exception" in errors[0]["message"]
    if scenario in ("nan", "mismatch"):
        assert errors[0]["message"] == errors[1]["message"]
    if scenario == "mismatch":
        assert "samples from 3995 to 4000" in errors[0]["message"]


def test_ctrl_c_on_one_rank_stops_both(tmp_path):
    proc = _launch("interrupt", tmp_path)
    pid_file = tmp_path / "pid1"
    deadline = time.monotonic() + 60
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)   # into the training loop
    sent = time.monotonic()
    os.kill(int(pid_file.read_text()), signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode != 0, out
    assert time.monotonic() - sent < 10
    errors = _errors(out)
    assert errors[1]["error"] == "KeyboardInterrupt", out
    assert errors[0]["error"] == "RankStoppedError" and "rank 1 was interrupted" in errors[0]["message"], out


def test_a_rank_that_cannot_reach_a_sync_point_aborts_the_job(tmp_path):
    # Rank 0 fails between the start's broadcasts: rank 1 waits in a broadcast no sync point can meet.
    start = time.monotonic()
    code, out = _run("bcast", tmp_path, timeout=60)
    assert code != 0, out
    assert "aborting every rank" in out
    assert time.monotonic() - start < 30


def test_rank_and_world_size_come_from_the_launcher_without_starting_mpi(monkeypatch):
    for var in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK"):
        monkeypatch.delenv(var, raising=False)
    if "mpi4py.MPI" in sys.modules:
        pytest.skip("MPI already started in this process")
    assert (nc.distributed.rank(), nc.distributed.world_size(), nc.distributed.is_main()) == (0, 1, True)
    monkeypatch.setenv("PMI_RANK", "3")
    monkeypatch.setenv("PMI_SIZE", "4")
    assert (nc.distributed.rank(), nc.distributed.world_size(), nc.distributed.is_main()) == (3, 4, False)
    assert "mpi4py.MPI" not in sys.modules


def test_distributed_arguments_are_checked():
    model = cases.model("float32", False)
    X, y = cases.data()
    with pytest.raises(ValueError, match="distributed must be None or 'mpi', got 'tcp'"):
        model.fit(X, y, distributed="tcp", verbose=0)
    with pytest.raises(ValueError, match="sharded=True needs distributed='mpi'"):
        model.fit(X, y, sharded=True, verbose=0)
    with pytest.raises(TypeError, match="sharded must be True or False"):
        model.fit(X, y, sharded="yes", distributed="mpi", verbose=0)


def test_missing_mpi4py_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    model = cases.model("float32", False)
    X, y = cases.data()
    before = cases.flat(model).copy()
    with pytest.raises(ImportError, match=r"pip install 'neurocore\[mpi\]'"):
        model.fit(X, y, distributed="mpi", verbose=0)
    assert cases.flat(model).tobytes() == before.tobytes()


def test_the_distributed_example_prints_the_same_accuracy_on_both_ranks():
    example = os.path.join(os.path.dirname(HERE), "examples", "distributed_digits.py")
    proc = subprocess.run([_mpiexec(), "-n", "2", sys.executable, example], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr
    # the ranks' lines may share a line of mpiexec's output
    found = sorted(re.findall(r"rank (\d+) of 2: test accuracy ([0-9.]+), final training loss ([0-9.]+)", proc.stdout))
    assert [rank for rank, _, _ in found] == ["0", "1"], proc.stdout
    assert found[0][1:] == found[1][1:]
    assert float(found[0][1]) > 0.9
