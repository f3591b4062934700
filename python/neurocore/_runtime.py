"""Process-wide runtime settings: the kernel set and the thread count."""
from __future__ import annotations

import os

from . import _core
from ._validation import check_int

__all__ = ["cpu_info", "get_num_threads", "set_num_threads"]


def _select_isa_from_env() -> None:
    forced = os.environ.get("NEUROCORE_ISA", "").strip().lower()
    if forced and forced != "auto":
        try:
            _core.set_isa(forced)
        except ValueError as exc:
            raise ImportError(f"NEUROCORE_ISA={forced!r}: {exc}") from None


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in every kernel (default: ``OMP_NUM_THREADS`` or the number of cores).

    Results are bitwise identical for every thread count.
    """
    _core.set_num_threads(check_int(n, "n", minimum=1, maximum=1024))


def get_num_threads() -> int:
    """The number of threads the kernels use."""
    return _core.get_num_threads()


def cpu_info() -> dict:
    """The kernel set in use, those this CPU supports, the CPU features seen, threads and build facts."""
    from . import __version__

    mr, nr = _core.tile_shape("float32")
    return {
        "isa": _core.get_isa(),
        "isa_available": list(_core.isa_available()),
        "features": list(_core.cpu_features()),
        "num_threads": _core.get_num_threads(),
        "openmp": bool(_core.has_openmp()),
        "compiler": _core.compiler,
        "micro_kernel_float32": f"{mr}x{nr}",
        "version": __version__,
    }
