"""Data-parallel training over MPI: ``model.fit(..., distributed="mpi")`` under ``mpiexec -n P``.

Each step, every rank trains on its share of one global batch; the C++ loop sums the gradients (and
BatchNorm's statistics) over the ranks with MPI_Allreduce, called directly through the MPI library that
mpi4py loaded: no Python, no GIL in a step. ``rank()``, ``world_size()`` and ``is_main()`` work without
mpi4py (from the launcher's environment) and never start MPI themselves.
"""
from __future__ import annotations

import os
import sys
import threading

import numpy as np

from . import _core

__all__ = ["rank", "world_size", "is_main", "RankStoppedError"]

_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK")
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_STOP_TIMEOUT_S = 3.0   # a stopping rank waits this long for its peers at a sync point, then aborts them all
_F = _core.status_fields


def _world():
    """COMM_WORLD when mpi4py has started MPI in this process, else None."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
        return mpi.COMM_WORLD
    return None


def _env_int(names, default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value is not None and value.strip().isdigit():
            return int(value)
    return default


def rank() -> int:
    """This process's rank in MPI_COMM_WORLD (0 when not launched by mpiexec)."""
    world = _world()
    return world.Get_rank() if world is not None else _env_int(_RANK_VARS, 0)


def world_size() -> int:
    """The number of processes mpiexec started (1 when not launched by mpiexec)."""
    world = _world()
    return world.Get_size() if world is not None else _env_int(_SIZE_VARS, 1)


def is_main() -> bool:
    """True on rank 0: the rank that prints and saves."""
    return rank() == 0


class RankStoppedError(RuntimeError):
    """Raised on every rank of a distributed fit when another rank stopped (an exception, Ctrl-C)."""


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError("fit(distributed='mpi') needs mpi4py and an MPI library: "
                          "pip install 'neurocore[mpi]'  (mpi4py + the mpich wheel, with mpiexec)") from exc
    return MPI


def _allreduce_address(MPI) -> int:
    """The address of MPI_Allreduce in the library mpi4py loaded (its extension module links it)."""
    import ctypes

    lib = ctypes.CDLL(MPI.__file__)
    return ctypes.cast(lib.MPI_Allreduce, ctypes.c_void_p).value


class Session:
    """One distributed fit: installs the collective in the C++ network and runs the sync points.

    Every sync point between steps (the start, each epoch's end) and the stop of a failing rank have the
    shape of a step's first collectives, so a rank that stops anywhere meets its peers where they wait.
    Errors every rank learns at once (a bad label, a NaN loss, a stopped peer) are raised on every rank;
    any other exception stops its peers through a sync point, or aborts the job after a few seconds.
    """

    def __init__(self, net):
        MPI = _import_mpi()
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.net = net
        self.coordinated = False   # the exception in flight was raised on every rank together
        handle_bytes = MPI._sizeof(MPI.Comm)
        mask = (1 << (8 * handle_bytes)) - 1
        net.set_collective((_allreduce_address(MPI), handle_bytes, MPI._handleof(self.comm) & mask,
                            MPI._handleof(MPI.SUM) & mask, MPI._handleof(MPI.FLOAT) & mask,
                            MPI._handleof(MPI.DOUBLE) & mask, int(MPI.IN_PLACE) & ((1 << 64) - 1),
                            self.rank, self.size))

    def close(self) -> None:
        self.net.set_collective(None)

    # ---------------------------------------------------------------------------------------------
    def sync(self, payload=()) -> np.ndarray:
        """Sum payload (up to 3 floats) over the ranks; raises RankStoppedError if a rank stopped."""
        status = np.zeros(_core.status_size)
        status[_F["payload"]:_F["payload"] + len(payload)] = payload
        self.net.sync_point(status)
        self.check_stops(int(status[_F["stops"]]), int(status[_F["stop_rank"]]), int(status[_F["stop_kind"]]))
        return status[_F["payload"]:_F["payload"] + 3]

    def check_stops(self, stops: int, stop_rank: int, stop_kind: int) -> None:
        if stops > 0:
            self.coordinated = True
            what = "was interrupted (KeyboardInterrupt)" if stop_kind == 2 else "raised an exception (see its output)"
            who = f"rank {stop_rank}" if stops == 1 else f"{stops} ranks"
            raise RankStoppedError(f"distributed fit stopped on rank {self.rank}: {who} {what}")

    def bcast_(self, arr: np.ndarray) -> None:
        """Overwrite arr with rank 0's values."""
        if arr.size:
            self.comm.Bcast(arr, root=0)

    def bcast_value(self, value):
        return self.comm.bcast(value, root=0)

    def min_int(self, value: int) -> int:
        return int(self.comm.allreduce(int(value), op=self.MPI.MIN))

    def check_agree(self, values: dict, hint: str) -> None:
        """ValueError on every rank unless every rank passed the same values (a step count that differed
        would leave a rank waiting in a collective)."""
        mine = np.array(list(values.values()), dtype=np.int64)
        low, high = np.empty_like(mine), np.empty_like(mine)
        self.comm.Allreduce(mine, low, op=self.MPI.MIN)
        self.comm.Allreduce(mine, high, op=self.MPI.MAX)
        differ = [f"{name} from {lo} to {hi}" for name, lo, hi in zip(values, low, high) if lo != hi]
        if differ:
            self.coordinated = True
            raise ValueError(f"every rank of a distributed fit must pass the same arguments, got {', '.join(differ)} "
                             f"across the ranks" + (f"; {hint}" if hint else ""))

    def fail(self, exc: BaseException) -> None:
        """A rank-local exception: tell the peers through a sync point; if they do not come, abort all."""
        if self.coordinated:
            return
        status = np.zeros(_core.status_size)
        status[_F["stops"]] = 1
        status[_F["stop_rank"]] = self.rank
        status[_F["stop_kind"]] = 2 if isinstance(exc, KeyboardInterrupt) else 1
        worker = threading.Thread(target=self.net.sync_point, args=(status,), daemon=True)
        worker.start()
        worker.join(_STOP_TIMEOUT_S)
        if worker.is_alive():
            print(f"neurocore: rank {self.rank} stopped ({type(exc).__name__}: {exc}) where its peers could not "
                  f"be told; aborting every rank", file=sys.stderr, flush=True)
            self.comm.Abort(1)
            os._exit(1)   # MPI_Abort may return before the launcher ends this process
