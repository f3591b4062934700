"""Data augmentation for fit: built-in transforms run inside the C++ training loop."""
from __future__ import annotations

from ._validation import check_float

__all__ = ["GaussianNoise"]


class GaussianNoise:
    """Adds N(0, std^2) noise to every input of every training batch (``fit(..., augment=GaussianNoise(0.1))``).

    Drawn in C++ from the model's seeded generator: no Python call per batch, reproducible with ``fit(seed=)``.
    Only training batches get noise; validation, ``predict`` and ``evaluate`` see the data as it is.

    Parameters
    ----------
    std : float >= 0
        The standard deviation (TypeError for a non-number, ValueError for negative or non-finite values).
    """

    def __init__(self, std: float):
        std = check_float(std, "GaussianNoise std")
        if std < 0:
            raise ValueError(f"GaussianNoise std must be >= 0, got {std}")
        self.std = std

    def __repr__(self) -> str:
        return f"GaussianNoise(std={self.std:g})"
