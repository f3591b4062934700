"""Small bundled data sets and a train/test split helper (NumPy only).

The only data set shipped with the package is the UCI optical handwritten digits
(8x8 images), copied from scikit-learn; see ``data/README.md`` for provenance.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np

__all__ = ["load_digits", "train_test_split"]

_DATA_DIR = Path(__file__).resolve().parent / "data"
_DIGITS_FILE = _DATA_DIR / "digits.csv.gz"
_DIGITS_SHAPE = (1797, 65)  # 64 pixel columns + label column


def load_digits():
    """Load the 8x8 handwritten digits (1,797 images, 10 classes).

    Returns
    -------
    X : ndarray of float32, shape (1797, 64)
        Pixel intensities, row-major 8x8 images, scaled from 0..16 to [0, 1].
    y : ndarray of int64, shape (1797,)
        Digit labels in 0..9.

    Examples
    --------
    >>> X, y = load_digits()
    >>> X.shape, y.shape
    ((1797, 64), (1797,))
    """
    with gzip.open(_DIGITS_FILE, "rt", encoding="ascii") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float64)
    if table.shape != _DIGITS_SHAPE:
        raise RuntimeError(
            f"{_DIGITS_FILE} must hold a {_DIGITS_SHAPE} table, got shape {table.shape}; "
            "the package data is damaged, reinstall neurocore"
        )
    X = (table[:, :-1] / 16.0).astype(np.float32)
    y = table[:, -1].astype(np.int64)
    return X, y


def _n_test_rows(test_size, n):
    """Number of test rows for ``test_size`` (fraction rounded up, or a count)."""
    if isinstance(test_size, (bool, np.bool_)):
        raise TypeError(f"test_size must be a float in (0, 1) or an int, got {test_size!r}")
    if isinstance(test_size, (int, np.integer)):
        n_test = int(test_size)
    elif isinstance(test_size, (float, np.floating)):
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"test_size as a fraction must be in (0, 1), got {test_size!r}")
        n_test = math.ceil(float(test_size) * n)
    else:
        raise TypeError(f"test_size must be a float in (0, 1) or an int, got {test_size!r}")
    if not 1 <= n_test <= n - 1:
        raise ValueError(
            f"test_size={test_size!r} gives {n_test} test rows out of {n}; "
            "both the train and the test part need at least one row"
        )
    return n_test


def _stratified_counts(counts, n_test):
    """Split ``n_test`` over classes in proportion to ``counts`` (largest remainder)."""
    n = counts.sum()
    exact = counts * (n_test / n)
    quota = np.floor(exact).astype(np.int64)
    remainder = n_test - int(quota.sum())
    # Hand the leftover rows to the classes with the largest fractional parts;
    # a stable sort makes ties go to the class that comes first.
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[:remainder]] += 1
    return quota


def train_test_split(X, y, test_size=0.2, seed=0, stratify=True):
    """Shuffle and split ``X`` and ``y`` into a train part and a test part.

    Parameters
    ----------
    X : array_like, shape (n, ...)
        Samples, one per row.
    y : array_like, shape (n, ...)
        Targets, one per row of ``X``.
    test_size : float in (0, 1) or int, default 0.2
        Fraction of the rows (rounded up) or number of rows that go to the test part.
    seed : int, default 0
        Seed of the NumPy generator that shuffles the rows.
    stratify : bool, default True
        Keep each distinct value of ``y`` in the same proportion in both parts
        (for class labels; pass False for regression targets).

    Returns
    -------
    X_train, X_test, y_train, y_test : ndarray
        Row subsets of ``X`` and ``y`` (copies), in shuffled order.

    Examples
    --------
    >>> X, y = load_digits()
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2)
    >>> len(X_train), len(X_test)
    (1437, 360)
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim == 0 or y.ndim == 0:
        raise ValueError(
            f"X and y must have one row per sample, got shapes {X.shape} and {y.shape}"
        )
    n = X.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"X and y must have the same number of rows, got {n} and {y.shape[0]}")
    if n < 2:
        raise ValueError(f"need at least 2 rows to split, got {n}")
    n_test = _n_test_rows(test_size, n)
    rng = np.random.default_rng(seed)

    if stratify:
        if y.ndim != 1:
            raise ValueError(
                f"stratify=True needs 1-D class labels y, got shape {y.shape}; "
                "pass stratify=False for multi-output targets"
            )
        classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
        quota = _stratified_counts(counts, n_test)
        test_parts, train_parts = [], []
        for c in range(len(classes)):
            members = rng.permutation(np.flatnonzero(inverse == c))
            test_parts.append(members[: quota[c]])
            train_parts.append(members[quota[c] :])
        test_idx = rng.permutation(np.concatenate(test_parts))
        train_idx = rng.permutation(np.concatenate(train_parts))
    else:
        perm = rng.permutation(n)
        test_idx, train_idx = perm[:n_test], perm[n_test:]

    return X[train_idx], X[test_idx], y[train_idx], y[test_idx]
