"""Shared helpers for the neurocore benchmark scripts (not part of the package).

Each thread count is measured in its own child process.  The parent builds the
child's environment (thread-count variables, and for processes that time NumPy,
without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE), and the child pins itself to
that many cores with ``os.sched_setaffinity`` before importing anything that
starts a thread pool.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time

# Variables that make a current OpenBLAS pick a slower kernel on some CPUs.  They
# are removed only from the environment of benchmark processes that time NumPy.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def add_load_control_args(p, settle: float, retry_budget: float, settle_what: str) -> None:
    """The options both scripts share for timing on a machine that other programs may be using."""
    p.add_argument("--settle", type=float, default=settle,
                   help=f"pause (s) before each {settle_what} (default {settle:g}; 0.15 after the "
                        "NumPy/sklearn children, whose idle OpenBLAS threads spin ~0.1 s)")
    p.add_argument("--wait-quiet", type=float, default=60.0,
                   help="before each thread count, wait up to this many seconds for other "
                        "programs to use < 0.3 cores (0: don't wait; default 60)")
    p.add_argument("--retries", type=int, default=3,
                   help="re-time a call (up to N more times) when other programs used "
                        ">0.25 cores while it ran; keep the least disturbed (default 3)")
    p.add_argument("--retry-budget", type=float, default=retry_budget,
                   help=f"seconds per thread count that retries may start in (default {retry_budget:g})")


def parse_threads(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        part = part.strip()
        if part:
            n = int(part)
            if n < 1:
                raise SystemExit(f"--threads: thread counts must be >= 1, got {n}")
            out.append(n)
    if not out:
        raise SystemExit("--threads: give at least one thread count, e.g. 1,2")
    return out


def child_env(threads: int, *, unset_openblas_overrides: bool) -> dict:
    """Environment for a worker that runs with ``threads`` threads."""
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    if threads == 1:
        # XLA's CPU backend: keep its Eigen pool to one thread as well.
        flags = env.get("XLA_FLAGS", "")
        env["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false"
                            " intra_op_parallelism_threads=1").strip()
    if unset_openblas_overrides:
        for var in OPENBLAS_OVERRIDES:
            env.pop(var, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def pin_to_cores(n: int) -> list[int]:
    """Pin this process (and threads it starts later) to the first n allowed cores."""
    allowed = sorted(os.sched_getaffinity(0))
    if n > len(allowed):
        print(f"warning: asked for {n} threads but only {len(allowed)} cores are "
              f"allowed; pinning to {len(allowed)}", file=sys.stderr)
    cores = allowed[:n]
    os.sched_setaffinity(0, cores)
    return cores


def openblas_env_report() -> dict:
    """What the parent environment had for the OpenBLAS override variables."""
    return {var: os.environ.get(var) for var in OPENBLAS_OVERRIDES}


def blas_info() -> list[dict]:
    """threadpoolctl's view of the loaded BLAS/OpenMP libraries (NumPy must be imported)."""
    try:
        import threadpoolctl
    except ImportError:
        return [{"error": "threadpoolctl not installed"}]
    keep = ("user_api", "internal_api", "prefix", "version", "architecture",
            "threading_layer", "num_threads", "filepath")
    return [{k: d.get(k) for k in keep} for d in threadpoolctl.threadpool_info()]


def numpy_blas_kernel(info: list[dict]) -> str:
    for d in info:
        if d.get("user_api") == "blas":
            return f"{d.get('internal_api')} {d.get('version')} ({d.get('architecture')})"
    return "unknown"


def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores_allowed": len(os.sched_getaffinity(0)),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def run_worker(script: str, args: list[str], env: dict, timeout: float | None = None) -> dict:
    """Run ``python script args`` and parse the JSON it prints on its last stdout line."""
    cmd = [sys.executable, script] + args
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=None,
                          text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                           + proc.stdout[-2000:])
    for ln in lines[:-1]:
        print(ln)  # pass through anything the worker printed
    return json.loads(lines[-1])


def median(values):
    return statistics.median(values) if values else float("nan")


def spread(values) -> float:
    """Relative spread of the rounds: (max - min) / median, as a fraction."""
    if len(values) < 2:
        return 0.0
    m = statistics.median(values)
    return (max(values) - min(values)) / m if m else float("nan")


def time_call(fn, min_time: float) -> float:
    """Seconds per call of fn(), looping until at least ``min_time`` has passed."""
    reps = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time:
            return dt / reps
        # grow towards min_time, at least doubling
        reps = max(reps * 2, int(reps * min_time / max(dt, 1e-9) * 1.2))


def fmt(x, digits=1) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if x != x:
            return "-"
        if abs(x) >= 100:
            return f"{x:,.0f}"
        return f"{x:.{digits}f}"
    return str(x)


def markdown_table(header: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in header]] + [[fmt(c) if not isinstance(c, str) else c for c in r]
                                          for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    out = []
    for j, r in enumerate(cells):
        out.append("| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(r)) + " |")
        if j == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def write_json(path: str, data: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=False)
        fh.write("\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- child processes

class Child:
    """A long-lived benchmark child speaking one JSON object per line on stdin/stdout."""

    def __init__(self, name: str, cmd: list[str], env: dict):
        self.name = name
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.hello = self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} child exited (code {self.proc.wait()})")
        return json.loads(line)

    def ask(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write('{"op": "quit"}\n')
                self.proc.stdin.flush()
                self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()
            self.proc.wait()


def child_protocol():
    """In a child: return (reply, commands).  stdout is kept for the protocol only;
    whatever the libraries print goes to stderr."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    def reply(obj):
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    def commands():
        for line in sys.stdin:
            cmd = json.loads(line)
            if cmd.get("op") == "quit":
                return
            yield cmd

    return reply, commands()


# --------------------------------------------------------------------------- machine load

def _busy_seconds() -> float:
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            f = fh.read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


class CpuMonitor:
    """CPU used by other programs while we measure, in cores (averaged over the wall
    time): busy time of the whole machine from /proc/stat minus our own CPU time
    (this process, finished children, and the still-running children passed in)."""

    def __init__(self):
        import resource
        self._res = resource
        self.t0 = time.time()
        self.b0 = _busy_seconds()
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.c0 = r.ru_utime + r.ru_stime
        self.p0 = time.process_time()

    def other_cores(self, live_pids=()) -> float:
        wall = time.time() - self.t0
        busy = _busy_seconds() - self.b0
        r = self._res.getrusage(self._res.RUSAGE_CHILDREN)
        ours = (r.ru_utime + r.ru_stime - self.c0) + (time.process_time() - self.p0)
        ours += sum(proc_cpu_seconds(p) for p in live_pids)
        return max(0.0, (busy - ours) / wall) if wall > 0 else 0.0


def wait_for_quiet(max_wait: float, threshold: float = 0.3, sample: float = 1.0) -> dict:
    """Wait (up to max_wait s) until other programs use less than ``threshold`` cores,
    sampled over ``sample`` s.  Returns what was seen; never fails."""
    t0 = time.time()
    while True:
        b0 = _busy_seconds()
        time.sleep(sample)
        load = max(0.0, (_busy_seconds() - b0) / sample)
        waited = time.time() - t0
        if load < threshold or waited >= max_wait:
            if load >= threshold:
                print(f"note: machine still busy ({load:.2f} cores used by others) after "
                      f"waiting {waited:.0f} s; measuring anyway", file=sys.stderr)
            return {"waited_s": round(waited, 1), "other_cores_at_start": round(load, 2)}
        print(f"  waiting for a quiet machine ({load:.2f} cores busy)...", file=sys.stderr,
              flush=True)


def quiet_ask(child: Child, *, retries: int = 3, threshold: float = 0.25,
              settle: float = 0.0, **cmd):
    """child.ask(**cmd), timed against the machine's load: if other programs used more
    than ``threshold`` cores while it ran, ask again (up to ``retries`` more times) and
    keep the answer seen with the least foreign load.  /proc/stat counts in clock ticks
    (10 ms), so two ticks of slack are allowed on top of the threshold.  Returns
    (answer, other_cores, attempts)."""
    slack = 2.0 / os.sysconf("SC_CLK_TCK")
    best = None
    for attempt in range(1 + max(0, retries)):
        if settle > 0:
            time.sleep(settle)
        b0, c0, p0, t0 = (_busy_seconds(), proc_cpu_seconds(child.proc.pid),
                          time.process_time(), time.perf_counter())
        res = child.ask(**cmd)
        wall = time.perf_counter() - t0
        ours = (proc_cpu_seconds(child.proc.pid) - c0) + (time.process_time() - p0)
        other_s = max(0.0, _busy_seconds() - b0 - ours)
        other = other_s / wall if wall > 0 else 0.0
        if best is None or other < best[1]:
            best = (res, other)
        if other_s <= threshold * wall + slack:
            break
    return best[0], best[1], attempt + 1


# OpenBLAS worker threads keep spinning for ~0.1 s after a call (measured here: a whole
# core for ~100 ms); the next child to run would share its cores with them.
SPINNING_AFTER = {"numpy": 0.15, "sklearn": 0.15}


class Settler:
    """Pause before timing a child: ``default`` s, or longer right after a child
    whose idle threads keep spinning (NumPy's OpenBLAS)."""

    def __init__(self, default: float):
        self.default = default
        self.last = None

    def pause_for(self, name: str) -> float:
        if self.default <= 0:
            pause = 0.0
        elif self.last is not None and self.last != name:
            pause = max(self.default, SPINNING_AFTER.get(self.last, 0.0))
        else:
            pause = self.default
        self.last = name
        return pause
