"""Saving and loading models: one ``.npz`` file (NumPy's format, read with ``allow_pickle=False``).

The file holds the parameters in the model's dtype (bit-exact round trip), a JSON header with the format
version, dtype and architecture, and optionally the optimizer's configuration and state.
"""
from __future__ import annotations

import json
import os

import numpy as np

__all__ = ["save", "load", "to_bytes", "from_bytes"]

_FORMAT = "neurocore-model"
_VERSION = 1
_HEADER = "__neurocore__"


def save(model, path, include_optimizer: bool = False) -> None:
    """Write ``model`` to ``path`` atomically: a temporary file in the same folder, then a rename, so an
    existing file at ``path`` is replaced only by a complete new one."""
    import tempfile  # imported on use: keeps `import neurocore` fast

    path = os.fspath(path)
    arrays = _arrays(model, include_optimizer)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".neurocore-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def to_bytes(model, include_optimizer: bool = False) -> bytes:
    """The bytes :func:`save` would write (the same ``.npz`` format), built in memory."""
    import io as _io

    buffer = _io.BytesIO()
    np.savez(buffer, **_arrays(model, include_optimizer))
    return buffer.getvalue()


def from_bytes(raw: bytes):
    """The model held in bytes made by :func:`to_bytes` (or read from a saved file)."""
    return _from_bytes(bytes(raw), "model bytes")


def _arrays(model, include_optimizer) -> dict:
    """The named arrays of the file: parameters, buffers, optional optimizer state and the JSON header."""
    from ._validation import check_bool

    include_optimizer = check_bool(include_optimizer, "include_optimizer")
    header = {"format": _FORMAT, "version": _VERSION, **model.get_config(), "optimizer": None}
    params, buffers = _consistent_copies(model)
    arrays = {f"param_{i}": p for i, p in enumerate(params)}
    arrays.update({f"buffer_{i}": b for i, b in enumerate(buffers)})
    if include_optimizer:
        opt = model.optimizer
        if opt is None:
            raise ValueError("include_optimizer=True but the model has no optimizer yet (train it with fit first)")
        header["optimizer"] = opt.config()
        arrays.update({f"optim_{k}": v for k, v in opt.state_arrays().items()})
    arrays[_HEADER] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    return arrays


def load(path):
    """Read a model written by :meth:`Sequential.save`. Raises FileNotFoundError/OSError when the file
    cannot be read and ValueError when it is not a complete neurocore model file."""
    path = os.fspath(path)
    with open(path, "rb") as f:  # OSError (FileNotFoundError, IsADirectoryError, ...) names the path
        raw = f.read()
    return _from_bytes(raw, path)


def _from_bytes(raw: bytes, path: str):
    """The model in a file's bytes; `path` names the source in error messages."""
    import io as _io
    import zipfile

    from .layers import layer_from_config
    from .model import Sequential
    from .optim import optimizer_from_config

    try:
        with np.load(_io.BytesIO(raw), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        header = json.loads(bytes(arrays.pop(_HEADER)).decode("utf-8"))
        if not isinstance(header, dict) or header.get("format") != _FORMAT:
            raise ValueError("missing neurocore header")
        if header.get("version") != _VERSION:
            raise ValueError(f"format version {header.get('version')} is not supported (this is {_VERSION})")
        layers = [layer_from_config(c) for c in header["layers"]]
        dtype = np.dtype(header["dtype"])
        # Check the stored arrays against the architecture before building it, so a corrupt header
        # cannot make load allocate a huge model.
        params, buffers = _expected_shapes(layers)
        for prefix, expected in (("param", params), ("buffer", buffers)):
            for i, shape in enumerate(expected):
                a = arrays[f"{prefix}_{i}"]
                if a.shape != shape or a.dtype != dtype:
                    raise ValueError(f"{prefix} {i} is {a.dtype}{a.shape}, expected {dtype}{shape}")
            if f"{prefix}_{len(expected)}" in arrays:
                raise ValueError(f"more {prefix}s than the architecture has")
        input_shape = header.get("input_shape")
        model = Sequential(layers, dtype=dtype.name, input_shape=tuple(input_shape) if input_shape else None)
        params = model.parameters()
        opt = optimizer_from_config(header["optimizer"]) if header.get("optimizer") else None
    except (ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, UnicodeDecodeError, OSError) as exc:
        raise ValueError(f"{path}: not a valid neurocore model file ({type(exc).__name__}: {exc})") from None
    for i, p in enumerate(params):
        np.copyto(p, arrays[f"param_{i}"])
    for i, b in enumerate(_buffers(model)):
        np.copyto(b, arrays[f"buffer_{i}"])
    if opt is not None:
        state = {k[len("optim_"):]: v for k, v in arrays.items() if k.startswith("optim_")}
        try:
            opt.load_state_arrays(state, model)
        except ValueError as exc:
            raise ValueError(f"{path}: optimizer state does not match the model ({exc})") from None
        model.optimizer = opt
    return model


def _buffers(model) -> list:
    """Non-parameter arrays that define the model's function: BatchNorm running statistics."""
    out = []
    for layer in model.parameter_layers():
        views = layer._views()
        out.extend(views[name] for name, _, is_state in layer.tensor_shapes() if is_state)
    return out


def _expected_shapes(layers):
    """Parameter and buffer shapes of an architecture, computed without building it."""
    from .layers import flatten

    params, buffers = [], []
    for layer, _ in flatten(layers):
        if layer is not None:
            for _, shape, is_state in layer.tensor_shapes():
                (buffers if is_state else params).append(tuple(shape))
    return params, buffers


def _consistent_copies(model):
    """Copies of parameters() and the buffers taken at one instant under the model's lock (RuntimeError if
    another thread is training it), so a file never mixes two training steps."""
    flat_params, flat_state = model._net.snapshot()

    def relocate(views, base, copy):
        start = base.__array_interface__["data"][0]
        out = []
        for v in views:
            offset = (v.__array_interface__["data"][0] - start) // v.itemsize
            out.append(copy[offset:offset + v.size].reshape(v.shape))
        return out

    return (relocate(model.parameters(), model._params, flat_params),
            relocate(_buffers(model), model._net.state_array(), flat_state))
