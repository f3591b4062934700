"""Loads the compiled core (neurocore._core) with OpenMP's spin-wait shortened.

OpenMP's idle threads spin before they sleep, and libgomp reads for how long once, when _core loads it.
Its default (300k spins: ~5 ms of a core after every parallel region, measured here) takes that core from
NumPy's OpenBLAS threads whenever a user alternates NumPy and neurocore; 10k spins (~0.2 ms) still bridge
the gaps between the kernels of a training step. Applied only when the user has not chosen
(GOMP_SPINCOUNT, OMP_WAIT_POLICY), and only for this import: the environment is left as it was. A libgomp
that another module loaded earlier keeps its own setting.
"""
import os

if "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
    from . import _core  # noqa: F401
else:
    os.environ["GOMP_SPINCOUNT"] = "10000"
    try:
        from . import _core  # noqa: F401
    finally:
        del os.environ["GOMP_SPINCOUNT"]
