"""``Sequential.state_dict`` / ``load_state_dict``: the model's arrays under stable names, as NumPy arrays.

A name is the attribute path of the array from the model: ``layers.0.weight`` is
``model.layers[0].weight``, ``layers.3.layers.1.bias`` is ``model.layers[3].layers[1].bias``. The names
depend only on the architecture, so a dict saved from one model loads into any model built the same way.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .._validation import as_numeric_array

__all__ = ["named_arrays", "state_dict", "load_state_dict"]


def named_arrays(layers, prefix: str = "layers"):
    """(name, layer, key, live view) for every array of every layer (inside Residual blocks too), in
    network order; the keys are the layer's own (``weight``, ``bias``, ``running_mean``, ...)."""
    for i, layer in enumerate(layers):
        name = f"{prefix}.{i}"
        inner = getattr(layer, "layers", None)
        if inner is not None:
            yield from named_arrays(inner, f"{name}.layers")
            continue
        for key, view in getattr(layer, "_views_dict", {}).items():
            if not key.startswith("grad_"):
                yield f"{name}.{key}", layer, key, view


def state_dict(model) -> dict:
    """Copies of the parameters and buffers, taken at one instant (never mixing two training steps)."""
    from ..io import snapshot_copies

    named = list(named_arrays(model.layers))
    copies = snapshot_copies(model, [view for _, _, _, view in named])
    return {name: copy for (name, _, _, _), copy in zip(named, copies)}


def load_state_dict(model, state) -> None:
    """Copy ``state`` (names as :func:`state_dict` gives them) into the model, cast to its dtype.

    Every name must be present and no other; each value must have the shape of its array and be finite
    (running variances also >= 0). All is checked before anything is copied: on error the model is unchanged.
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"load_state_dict expects a mapping of name -> array (a dict), got {type(state).__name__}")
    named = list(named_arrays(model.layers))
    expected = [name for name, _, _, _ in named]
    keys = list(state.keys())
    bad_keys = [k for k in keys if not isinstance(k, str)]
    if bad_keys:
        raise TypeError(f"load_state_dict: names must be strings, got {bad_keys[0]!r}")
    missing = [name for name in expected if name not in state]
    known = set(expected)
    unexpected = [k for k in keys if k not in known]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected {_listing(unexpected)}")
        raise ValueError(f"load_state_dict: the names must be exactly this model's ({_listing(expected)}); "
                         + "; ".join(parts))
    values = []
    for name, layer, key, view in named:
        arr = as_numeric_array(state[name], f"load_state_dict[{name!r}]")
        if arr.shape != view.shape:
            raise ValueError(f"load_state_dict[{name!r}] must have shape {view.shape} for {layer!r}, got {arr.shape}")
        with np.errstate(over="ignore", invalid="ignore"):
            arr = arr.astype(view.dtype)
        if not np.isfinite(arr).all():
            raise ValueError(f"load_state_dict[{name!r}] must be finite in {view.dtype} (no NaN/inf, within range)")
        if key == "running_var" and (arr < 0).any():
            raise ValueError(f"load_state_dict[{name!r}] is a variance and must be >= 0, got {arr.min()}")
        values.append(arr)
    for (_, _, _, view), arr in zip(named, values):
        np.copyto(view, arr)


def _listing(names, limit: int = 6) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")
