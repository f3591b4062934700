"""Loads the compiled core (neurocore._core) with OpenMP's spin-wait shortened.

OpenMP's idle threads spin before they sleep, and libgomp reads for how long once, when _core loads it.
Its default (300k spins: ~5 ms of a core after every parallel region, measured here) takes that core from
NumPy's OpenBLAS threads whenever a user alternates NumPy and neurocore; 10k spins (~0.2 ms) still bridge
the gaps between the kernels of a training step. Applied only when the user has not chosen
(GOMP_SPINCOUNT, OMP_WAIT_POLICY), and only for this import: the environment is left as it was. A libgomp
that another module loaded earlier keeps its own setting. Must run before anything imports _core.
"""
import os


def _libgomp_loaded() -> bool:
    try:
        with open("/proc/self/maps") as f:
            return "libgomp" in f.read()
    except OSError:   # not Linux: unknown
        return False


user_chose = "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ
# True when this import set the spin-wait of the libgomp that _core uses (tests check it)
spin_wait_shortened = not user_chose and not _libgomp_loaded()
if user_chose:
    from . import _core
else:
    os.environ["GOMP_SPINCOUNT"] = "10000"
    try:
        from . import _core  # noqa: F401
    finally:
        del os.environ["GOMP_SPINCOUNT"]
spin_wait_shortened = spin_wait_shortened and _libgomp_loaded()
