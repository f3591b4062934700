"""Ways in and out of neurocore: ONNX export, PyTorch conversion both ways, and plain-array state dicts.

Each direction is a registry with one small function per layer kind (``onnx_export.exporter``,
``torch_convert.to_torch_converter`` / ``from_torch_converter``): a new layer kind adds one entry per
direction. A layer kind without an entry is refused with an error naming it, never exported as something else.

``import neurocore`` never imports onnx or torch: the modules that need them are imported on first use, and a
missing package gives an ImportError with the pip command (see :func:`require`).
"""
from __future__ import annotations

import importlib

__all__ = ["from_torch", "require", "entry_for"]


def require(module: str, extra: str, feature: str):
    """``import module``, or an ImportError telling how to install the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{feature} needs the {module!r} package, which is not installed: "
                          f'pip install "neurocore[{extra}]"') from exc


def entry_for(registry: dict, layer, name: str, action: str, what: str):
    """``registry[type(layer)]``, or a ValueError naming the layer, its position and the kinds that have one.
    Exact types: a subclass may compute something else, so it is never taken for its base."""
    entry = registry.get(type(layer))
    if entry is None:
        raise ValueError(f"{action}: layer {name} {layer!r} ({type(layer).__name__}) has no {what}; kinds that have "
                         f"one: {', '.join(sorted(k.__name__ for k in registry))}")
    return entry


def from_torch(module, input_shape=None):
    """A :class:`~neurocore.Sequential` computing what the ``torch.nn.Sequential`` ``module`` computes in eval
    mode, with a copy of its weights and the model's dtype taken from the module (float32 or float64).

    Parameters
    ----------
    module : torch.nn.Sequential
        Of ``Linear``, ``Identity``, ``ReLU``, ``Sigmoid``, ``Tanh``, ``LeakyReLU``, ``ELU``,
        ``GELU(approximate="none")``, ``Softmax(dim=-1)``, ``BatchNorm1d``, ``Dropout``, nested
        ``Sequential`` (flattened) and ``neurocore.interop.torch_convert.Residual`` (``x + block(x)``).
    input_shape : tuple of int, optional
        The shape of one sample as the module takes it, without the batch axis; checked against the first
        layer when given.

    Raises
    ------
    TypeError if ``module`` is not a ``torch.nn.Sequential``; ValueError naming the module and its position
    when a module is not supported (or has options neurocore does not have); ImportError without torch.
    """
    require("torch", "torch", "from_torch")
    from .torch_convert import from_torch as convert

    return convert(module, input_shape)
