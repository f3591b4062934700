"""Input checks shared by the public API: each raises TypeError/ValueError naming the rule and what it got."""
from __future__ import annotations

import numbers

import numpy as np

_FLOAT_DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}


def resolve_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if dt.name not in _FLOAT_DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dt.name!r}")
    return dt


MAX_INDEX = 2**62  # every count passed to the C++ core must fit its signed 64-bit sizes


def check_int(value, name: str, minimum: int | None = None, maximum: int = MAX_INDEX) -> int:
    """An integer (not a bool), optionally >= minimum, and <= maximum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_bool(value, name: str) -> bool:
    """True or False (NumPy booleans too); anything else is a TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def check_float(value, name: str) -> float:
    """A real, finite number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def as_numeric_array(x, name: str) -> np.ndarray:
    """x as an ndarray of real numbers (bool/int/float); TypeError for str, object, complex."""
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be array-like of real numbers: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers (bool/int/float), got dtype {arr.dtype}")
    return arr


def as_matrix(x, dtype: np.dtype, name: str, cols: int | None = None, owner="", *,
              allow_empty: bool = False, finite: bool = False) -> np.ndarray:
    """x as a C-contiguous (rows, cols) array of dtype, copied/cast only when needed."""
    if (type(x) is np.ndarray and x.dtype == dtype and x.ndim == 2 and x.flags.c_contiguous
            and (cols is None or x.shape[1] == cols) and (x.shape[0] > 0 or allow_empty) and not finite):
        return x  # the common case, kept cheap: batch-1 inference is a few microseconds in all
    arr = as_numeric_array(x, name)
    owner = owner() if callable(owner) else owner   # built only for error messages
    who = f"{owner} expects {name}" if owner else name
    if arr.ndim != 2:
        hint = " (use x.reshape(1, -1) for a single sample)" if arr.ndim == 1 else ""
        raise ValueError(f"{who} to be 2-D (batch, features), got shape {arr.shape}{hint}")
    if cols is not None and arr.shape[1] != cols:
        raise ValueError(f"{who} with {cols} columns, got shape {arr.shape}")
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{who} to hold at least one row, got shape {arr.shape}")
    out = np.ascontiguousarray(arr, dtype=dtype)
    if finite and not np.isfinite(out).all():
        bad = np.argwhere(~np.isfinite(out))[0]
        raise ValueError(f"{name} must be finite; found {out[tuple(bad)]} at row {bad[0]}, column {bad[1]}")
    return out


def check_shape(value, name: str) -> tuple:
    """A per-sample shape: a non-empty tuple/list of integers >= 1."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not value:
        raise TypeError(f"{name} must be a non-empty tuple of integers, e.g. (28, 28, 1), got {value!r}")
    return tuple(check_int(d, f"{name} entries", minimum=1, maximum=2**31 - 1) for d in value)


def as_batch(x, dtype: np.dtype, name: str, shape: tuple, owner="", *, allow_empty: bool = False,
             finite: bool = False) -> np.ndarray:
    """x as a C-contiguous (batch, *shape) array of dtype, copied/cast only when needed. One-axis samples go
    through :func:`as_matrix` (its messages speak of columns)."""
    if len(shape) == 1:
        return as_matrix(x, dtype, name, cols=shape[0], owner=owner, allow_empty=allow_empty, finite=finite)
    if (type(x) is np.ndarray and x.dtype == dtype and x.shape[1:] == shape and x.flags.c_contiguous
            and (x.shape[0] > 0 or allow_empty) and not finite):
        return x
    arr = as_numeric_array(x, name)
    owner = owner() if callable(owner) else owner
    who = f"{owner} expects {name}" if owner else name
    want = "(batch, " + ", ".join(str(d) for d in shape) + ")"
    if arr.shape[1:] != tuple(shape) or arr.ndim != len(shape) + 1:
        hint = ""
        if arr.shape == tuple(shape):
            hint = " (use x[None] for a single sample)"
        elif arr.ndim == len(shape) + 1 and arr.shape[-1] != shape[-1] and arr.shape[1] == shape[-1]:
            hint = " (images are channels-last: (N, H, W, C); use x.transpose(0, 2, 3, 1) for (N, C, H, W))"
        raise ValueError(f"{who} of shape {want}, got shape {arr.shape}{hint}")
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{who} to hold at least one sample, got shape {arr.shape}")
    out = np.ascontiguousarray(arr, dtype=dtype)
    if finite and not np.isfinite(out).all():
        bad = np.argwhere(~np.isfinite(out))[0]
        raise ValueError(f"{name} must be finite; found {out[tuple(bad)]} at index {tuple(int(i) for i in bad)}")
    return out
