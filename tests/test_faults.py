"""A failed save never destroys the previous file at that path: a file-size limit (RLIMIT_FSIZE), a full
file system (a small tmpfs mounted in a private user+mount namespace, when the system allows one), an
unwritable directory, and a process killed in the middle of saving. Afterwards the old file is byte for
byte intact and loads to the old model, and no temporary file is left behind (except after SIGKILL, which
leaves no chance to clean up)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pytest

import neurocore as nc

POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits, signals and mounts")

# Shared by the child processes: two distinguishable models, a comparison, and a warm-up save so that
# modules NumPy imports lazily while saving are loaded before the child loses its rights.
CHILD_COMMON = textwrap.dedent(
    """
    import errno, json, os, resource, signal, sys, tempfile
    import numpy as np
    import neurocore as nc

    def small(dtype="float32"):
        return nc.Sequential([nc.Dense(5, 4), nc.Tanh(), nc.Dense(4, 3)], dtype=dtype, seed=1)

    def big(dtype="float32"):
        return nc.Sequential([nc.Dense(300, 500), nc.ReLU(), nc.Dense(500, 10)], dtype=dtype, seed=2)

    def same_model(a, b):
        return all(np.array_equal(p, q) for p, q in zip(a.parameters(), b.parameters())) and \\
            len(a.parameters()) == len(b.parameters())

    with tempfile.TemporaryDirectory() as warm:
        small().save(os.path.join(warm, "w.npz"))
        nc.load(os.path.join(warm, "w.npz"))
    """
)


def _small(dtype="float32"):
    return nc.Sequential([nc.Dense(5, 4), nc.Tanh(), nc.Dense(4, 3)], dtype=dtype, seed=1)


def _assert_intact(path, before, dtype="float32"):
    assert path.read_bytes() == before, "the previous file was modified by the failed save"
    loaded = nc.load(path)
    expected = _small(dtype)
    assert len(loaded.parameters()) == len(expected.parameters())
    for a, b in zip(loaded.parameters(), expected.parameters()):
        assert np.array_equal(a, b)
    leftovers = sorted(set(os.listdir(path.parent)) - {path.name})
    assert not leftovers, f"the failed save left files behind: {leftovers}"


def _run_child(code, *args, timeout=120):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", CHILD_COMMON + code, *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout, check=False)


def _verdict(proc):
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("verdict ")]
    assert proc.returncode == 0 and lines, f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("verdict "):])


# --------------------------------------------------------------------------- RLIMIT_FSIZE
FSIZE_CHILD = textwrap.dedent(
    """
    path, dtype = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # else the kernel kills us: we want the EFBIG error
    model = big(dtype)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        model.save(path)
    except OSError as exc:
        print("verdict " + json.dumps({"refused": True, "errno": exc.errno, "message": str(exc)}), flush=True)
    else:
        print("verdict " + json.dumps({"refused": False}), flush=True)
    """
)


@POSIX
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_beyond_the_file_size_limit_keeps_the_previous_file(tmp_path, dtype):
    path = tmp_path / "model.npz"
    _small(dtype).save(path)
    before = path.read_bytes()
    assert len(before) < 64 * 1024
    verdict = _verdict(_run_child(FSIZE_CHILD, path, dtype))
    assert verdict["refused"], "a 600 KB save went through a 64 KB file-size limit"
    assert verdict["errno"] == errno.EFBIG, verdict
    _assert_intact(path, before, dtype)


# --------------------------------------------------------------------------- a full file system
FULL_CHILD = textwrap.dedent(
    """
    folder = sys.argv[1]
    path = os.path.join(folder, "model.npz")
    old = small()
    old.save(path)
    with open(path, "rb") as f:
        before = f.read()
    results = []
    # 1) the disk is completely full; 2) a little room is left (the new file starts, then fails)
    for room in (0, 48 * 1024):
        filler = os.path.join(folder, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            while True:
                os.write(fd, b"x" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        if room:
            with open(filler, "r+b") as f:
                f.truncate(max(0, os.path.getsize(filler) - room))
        try:
            big().save(path)
            outcome = {"refused": False}
        except OSError as exc:
            outcome = {"refused": True, "errno": exc.errno}
        with open(path, "rb") as f:
            outcome["intact"] = f.read() == before
        outcome["loads"] = same_model(nc.load(path), old)
        outcome["files"] = sorted(os.listdir(folder))
        os.unlink(filler)
        results.append(outcome)
    print("verdict " + json.dumps(results), flush=True)
    """
)


def _private_tmpfs_available(folder):
    try:
        proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                               'mount -t tmpfs -o size=256k tmpfs "$1"', "sh", str(folder)],
                              capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


@POSIX
def test_save_to_a_full_file_system_keeps_the_previous_file(tmp_path):
    folder = tmp_path / "small_fs"
    folder.mkdir()
    if not _private_tmpfs_available(folder):
        pytest.skip("cannot mount a private tmpfs here (no unprivileged user namespaces); RLIMIT_FSIZE covers it")
    code = CHILD_COMMON + FULL_CHILD
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                           'mount -t tmpfs -o size=512k tmpfs "$1" && exec "$2" -c "$3" "$1"', "sh", str(folder),
                           sys.executable, code],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"),
                          check=False)
    results = _verdict(proc)
    for room, r in zip(("no room", "48 KB of room"), results):
        assert r["refused"], f"{room}: a 600 KB save succeeded on a full 512 KB file system"
        assert r["errno"] == errno.ENOSPC, (room, r)
        assert r["intact"], f"{room}: the previous file was modified by the failed save"
        assert r["loads"], f"{room}: the previous file no longer loads to the previous model"
        assert r["files"] == ["filler", "model.npz"], f"{room}: files left behind: {r['files']}"


# --------------------------------------------------------------------------- an unwritable directory
NOBODY_CHILD = textwrap.dedent(
    """
    path = sys.argv[1]
    model = big()
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)   # nobody: the folder (r-x for others) is no longer writable
    try:
        model.save(path)
    except OSError as exc:
        print("verdict " + json.dumps({"refused": True, "errno": exc.errno}), flush=True)
    else:
        print("verdict " + json.dumps({"refused": False}), flush=True)
    """
)


@POSIX
def test_save_into_an_unwritable_directory_keeps_the_previous_file():
    folder = tempfile.mkdtemp(prefix="neurocore-ro-")  # under /tmp: reachable by every user
    path = os.path.join(folder, "model.npz")
    try:
        _small().save(path)
        with open(path, "rb") as f:
            before = f.read()
        os.chmod(folder, 0o555)
        if os.geteuid() == 0:  # root ignores permissions: save from a child that became "nobody"
            verdict = _verdict(_run_child(NOBODY_CHILD, path))
            assert verdict["refused"], "saved into a read-only folder"
            assert verdict["errno"] in (errno.EACCES, errno.EPERM), verdict
        else:
            with pytest.raises(PermissionError):
                nc.Sequential([nc.Dense(30, 50)], seed=2).save(path)
        os.chmod(folder, 0o755)
        from pathlib import Path

        _assert_intact(Path(path), before)
    finally:
        os.chmod(folder, 0o755)
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- killed while saving
KILL_CHILD = textwrap.dedent(
    """
    path = sys.argv[1]
    models = [nc.Sequential([nc.Dense(700, 700), nc.Tanh(), nc.Dense(700, 5)], seed=s) for s in (11, 12)]
    models[0].save(path)
    print("ready", flush=True)
    i = 1
    while True:
        models[i % 2].save(path)
        i += 1
    """
)


@POSIX
def test_a_process_killed_while_saving_leaves_a_complete_file(tmp_path):
    """SIGKILL at random moments of a save loop alternating two models: the file at the path is always one
    complete model (the old or the new one), never a truncated mix."""
    path = tmp_path / "model.npz"
    expected = [nc.Sequential([nc.Dense(700, 700), nc.Tanh(), nc.Dense(700, 5)], seed=s) for s in (11, 12)]
    rng = np.random.default_rng(0)
    seen = set()
    for attempt in range(5):
        proc = subprocess.Popen([sys.executable, "-c", CHILD_COMMON + KILL_CHILD, str(path)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
        try:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
            time.sleep(float(rng.uniform(0.02, 0.4)))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=60)
        loaded = nc.load(path)
        match = [k for k, m in enumerate(expected)
                 if all(np.array_equal(a, b) for a, b in zip(loaded.parameters(), m.parameters()))]
        assert match, f"attempt {attempt}: the file holds neither model"
        seen.add(match[0])
        for name in os.listdir(tmp_path):  # a killed save may leave its temporary file, nothing else
            assert name == path.name or (name.startswith(".neurocore-") and name.endswith(".tmp")), name
