"""Saving and loading models: one ``.npz`` file (NumPy's format, read with ``allow_pickle=False``).

The file holds the parameters in the model's dtype (bit-exact round trip), a JSON header with the format
version, dtype and architecture, and optionally the optimizer's configuration and state.
"""
from __future__ import annotations

import errno
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
    path = os.fspath(path)
    arrays = _arrays(model, include_optimizer)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def atomic_write(path: str, write) -> None:
    """Call ``write(f)`` on a temporary file in the folder of ``path``, then rename it to ``path``: an existing
    file is replaced only by a complete new one, and a failure leaves nothing behind. Anything at ``path``
    that is not a regular file (a folder, a device such as /dev/null, a pipe) is refused, never replaced."""
    import stat
    import tempfile  # imported on use: keeps `import neurocore` fast

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):   # a rename would replace a folder, device or pipe
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise OSError(errno.EISDIR if stat.S_ISDIR(mode) else errno.EEXIST, f"{kind}; not replaced", path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".neurocore-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
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
    """Copies of parameters() and the buffers, from one snapshot (see :func:`snapshot_copies`)."""
    params, buffers = model.parameters(), _buffers(model)
    copies = snapshot_copies(model, params + buffers)
    return copies[:len(params)], copies[len(params):]


def snapshot_copies(model, views) -> list:
    """Copies of ``views`` (contiguous views of the model's parameter or state buffer) taken at one instant
    under the model's lock (RuntimeError if another thread is training it), so they never mix two steps."""
    flat_params, flat_state = model._net.snapshot()
    bases = [(model._params, flat_params), (model._net.state_array(), flat_state)]
    out = []
    for view in views:
        address = view.__array_interface__["data"][0]
        for base, copy in bases:
            start = base.__array_interface__["data"][0]
            if base.size and start <= address < start + base.nbytes:
                offset = (address - start) // view.itemsize
                out.append(copy[offset:offset + view.size].reshape(view.shape))
                break
        else:
            raise RuntimeError("internal error: an array is not a view of the model's buffers")
    return out
