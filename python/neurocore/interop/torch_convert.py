"""PyTorch <-> neurocore: ``nc.from_torch(module)`` and ``Sequential.to_torch()``.

One function per layer kind and direction. ``@to_torch_converter(Kind)`` builds the torch module of a
neurocore layer from its arrays; ``@from_torch_converter(TorchClass)`` builds the neurocore layer of a torch
module and returns it with its arrays in neurocore's layout (a Dense weight is (in, out), the transpose of
torch's Linear.weight). Arrays are copied exactly, so a round trip keeps every weight bit for bit.
"""
from __future__ import annotations

import itertools
import numbers

import numpy as np
import torch
from torch import nn

from .. import layers as nc_layers
from ..model import Sequential

__all__ = ["Residual", "to_torch", "from_torch", "to_torch_converter", "from_torch_converter"]


class Residual(nn.Module):
    """``x + block(x)``: neurocore's :class:`~neurocore.Residual` as a torch module (``to_torch`` makes it,
    ``from_torch`` reads it)."""

    def __init__(self, *layers):
        super().__init__()
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.block(x)


_TO_TORCH: dict = {}
_FROM_TORCH: dict = {}
_TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def to_torch_converter(kind):
    """Register ``fn(layer, ctx) -> torch.nn.Module`` for a neurocore layer class."""
    def register(fn):
        _TO_TORCH[kind] = fn
        return fn
    return register


def from_torch_converter(*torch_classes):
    """Register ``fn(module, ctx) -> (neurocore layer, {array key: ndarray})`` for torch module classes."""
    def register(fn):
        for cls in torch_classes:
            _FROM_TORCH[cls] = fn
        return fn
    return register


# ------------------------------------------------------------------------------------------ to_torch
def to_torch(model) -> nn.Sequential:
    """A ``torch.nn.Sequential`` in eval mode computing what ``model.predict`` computes, in the model's dtype,
    with copies of its weights (see :meth:`Sequential.to_torch`)."""
    ctx = _ToTorch(model.state_dict(), _TORCH_DTYPES[model.dtype])
    return ctx.convert_layers(model.layers, "layers").eval()


class _ToTorch:
    def __init__(self, state, dtype):
        self.state, self.dtype, self.prefix = state, dtype, ""

    def convert_layers(self, layers, prefix: str) -> nn.Sequential:
        modules = []
        for i, layer in enumerate(layers):
            name = f"{prefix}.{i}"
            convert = _TO_TORCH.get(type(layer))
            if convert is None:
                raise ValueError(f"to_torch: layer {name} {layer!r} ({type(layer).__name__}) has no PyTorch "
                                 f"converter; convertible kinds: {', '.join(sorted(k.__name__ for k in _TO_TORCH))}")
            outer, self.prefix = self.prefix, name
            modules.append(convert(layer, self))
            self.prefix = outer
        return nn.Sequential(*modules)

    def set(self, tensor: torch.Tensor, key: str, array=None) -> None:
        """Overwrite a parameter or buffer with the layer's array ``key`` (or ``array``), exactly."""
        value = self.state[f"{self.prefix}.{key}"] if array is None else array
        with torch.no_grad():
            tensor.copy_(torch.from_numpy(np.ascontiguousarray(value)))


@to_torch_converter(nc_layers.Dense)
def _dense_to_torch(layer, ctx):
    m = nn.Linear(layer.in_features, layer.out_features, bias=layer.use_bias, dtype=ctx.dtype)
    ctx.set(m.weight, "weight", ctx.state[f"{ctx.prefix}.weight"].T)
    if layer.use_bias:
        ctx.set(m.bias, "bias")
    return m


@to_torch_converter(nc_layers.BatchNorm)
def _batchnorm_to_torch(layer, ctx):
    m = nn.BatchNorm1d(layer.features, eps=layer.eps, momentum=layer.momentum, dtype=ctx.dtype)
    for key in ("weight", "bias", "running_mean", "running_var"):
        ctx.set(getattr(m, key), key)
    return m


@to_torch_converter(nc_layers.Residual)
def _residual_to_torch(layer, ctx):
    return Residual(*ctx.convert_layers(layer.layers, f"{ctx.prefix}.layers"))


_SIMPLE = {nc_layers.Identity: nn.Identity, nc_layers.ReLU: nn.ReLU, nc_layers.Sigmoid: nn.Sigmoid,
           nc_layers.Tanh: nn.Tanh}


@to_torch_converter(nc_layers.Identity)
@to_torch_converter(nc_layers.ReLU)
@to_torch_converter(nc_layers.Sigmoid)
@to_torch_converter(nc_layers.Tanh)
def _simple_to_torch(layer, ctx):
    return _SIMPLE[type(layer)]()


@to_torch_converter(nc_layers.LeakyReLU)
def _leaky_relu_to_torch(layer, ctx):
    return nn.LeakyReLU(layer.alpha)


@to_torch_converter(nc_layers.ELU)
def _elu_to_torch(layer, ctx):
    return nn.ELU(layer.alpha)


@to_torch_converter(nc_layers.GELU)
def _gelu_to_torch(layer, ctx):
    return nn.GELU(approximate="none")


@to_torch_converter(nc_layers.Softmax)
def _softmax_to_torch(layer, ctx):
    return nn.Softmax(dim=-1)


@to_torch_converter(nc_layers.Dropout)
def _dropout_to_torch(layer, ctx):
    return nn.Dropout(layer.p)


# ------------------------------------------------------------------------------------------ from_torch
def from_torch(module, input_shape=None) -> Sequential:
    """See :func:`neurocore.from_torch`."""
    if not isinstance(module, nn.Sequential):
        raise TypeError(f"from_torch expects a torch.nn.Sequential, got {type(module).__name__}"
                        + (" (wrap it: torch.nn.Sequential(module))" if isinstance(module, nn.Module) else ""))
    if input_shape is not None:
        input_shape = _check_shape(input_shape)
    dtype = _module_dtype(module)
    ctx = _FromTorch()
    layers = ctx.convert_modules(module, "")
    if not layers:
        raise ValueError("from_torch: the torch.nn.Sequential is empty")
    try:
        model = Sequential(layers, dtype=dtype)
    except ValueError as exc:
        raise ValueError(f"from_torch: the converted layers do not form a neurocore model: {exc}") from None
    if input_shape is not None and input_shape != (model.in_features,):
        raise ValueError(f"from_torch: input_shape {input_shape} does not match the module, which takes "
                         f"({model.in_features},) per sample")
    for layer, arrays in ctx.arrays:
        for key, value in arrays.items():
            np.copyto(layer._views_dict[key], value)
    return model


class _FromTorch:
    def __init__(self):
        self.arrays = []   # (neurocore layer, {key: array}) to copy once the model exists
        self.path = ""

    def convert_modules(self, seq, prefix: str) -> list:
        out = []
        for name, child in seq.named_children():
            path = prefix + name
            if type(child) is nn.Sequential:
                out.extend(self.convert_modules(child, path + "."))
                continue
            convert = _FROM_TORCH.get(type(child))
            if convert is None:
                raise ValueError(f"from_torch: module {path} ({child!r}) is not supported; supported: "
                                 f"{', '.join(sorted(c.__name__ for c in _FROM_TORCH))} and nested Sequential")
            outer, self.path = self.path, path
            try:
                layer, arrays = convert(child, self)
            except (ValueError, TypeError) as exc:
                if str(exc).startswith("from_torch:"):
                    raise
                raise type(exc)(f"from_torch: module {path} ({child!r}): {exc}") from None
            self.path = outer
            self.arrays.append((layer, arrays))
            out.append(layer)
        return out


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def _module_dtype(module) -> str:
    dtypes = {t.dtype for t in itertools.chain(module.parameters(), module.buffers()) if t.is_floating_point()}
    if len(dtypes) > 1:
        raise ValueError(f"from_torch: the module mixes dtypes {sorted(str(d) for d in dtypes)}; convert it with "
                         ".float() or .double() first")
    dtype = dtypes.pop() if dtypes else torch.float32
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"from_torch: neurocore computes in float32 or float64, the module is {dtype}; convert it "
                         "with .float() or .double() first")
    return "float32" if dtype == torch.float32 else "float64"


def _check_shape(shape) -> tuple:
    if not isinstance(shape, (tuple, list)) or not all(
            isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in shape):
        raise TypeError(f"from_torch input_shape must be a tuple of ints (one sample, no batch axis), got {shape!r}")
    if not shape or any(d < 1 for d in shape):
        raise ValueError(f"from_torch input_shape must be non-empty with sizes >= 1, got {tuple(shape)}")
    return tuple(int(d) for d in shape)


@from_torch_converter(nn.Linear)
def _linear_from_torch(m, ctx):
    layer = nc_layers.Dense(m.in_features, m.out_features, bias=m.bias is not None)
    arrays = {"weight": _numpy(m.weight).T}
    if m.bias is not None:
        arrays["bias"] = _numpy(m.bias)
    return layer, arrays


@from_torch_converter(nn.BatchNorm1d)
def _batchnorm_from_torch(m, ctx):
    if not m.track_running_stats or m.running_mean is None:
        raise ValueError("BatchNorm1d(track_running_stats=False) normalises with batch statistics in eval mode; "
                         "neurocore's BatchNorm uses running statistics")
    if m.momentum is None:
        raise ValueError("BatchNorm1d(momentum=None) (a cumulative average) has no neurocore equivalent; "
                         "give a momentum in [0, 1]")
    layer = nc_layers.BatchNorm(m.num_features, momentum=m.momentum, eps=m.eps)
    ones = np.ones(m.num_features, _numpy(m.running_mean).dtype)
    arrays = {"weight": _numpy(m.weight) if m.affine else ones,
              "bias": _numpy(m.bias) if m.affine else ones * 0,
              "running_mean": _numpy(m.running_mean), "running_var": _numpy(m.running_var)}
    return layer, arrays


@from_torch_converter(Residual)
def _residual_from_torch(m, ctx):
    return nc_layers.Residual(ctx.convert_modules(m.block, ctx.path + ".block.")), {}


_SIMPLE_FROM = {nn.Identity: nc_layers.Identity, nn.ReLU: nc_layers.ReLU, nn.Sigmoid: nc_layers.Sigmoid,
                nn.Tanh: nc_layers.Tanh}


@from_torch_converter(*_SIMPLE_FROM)
def _simple_from_torch(m, ctx):
    return _SIMPLE_FROM[type(m)](), {}


@from_torch_converter(nn.LeakyReLU)
def _leaky_relu_from_torch(m, ctx):
    return nc_layers.LeakyReLU(m.negative_slope), {}


@from_torch_converter(nn.ELU)
def _elu_from_torch(m, ctx):
    return nc_layers.ELU(m.alpha), {}


@from_torch_converter(nn.GELU)
def _gelu_from_torch(m, ctx):
    if m.approximate != "none":
        raise ValueError(f"GELU(approximate={m.approximate!r}) is not supported: neurocore's GELU is the exact "
                         "erf form (approximate='none')")
    return nc_layers.GELU(), {}


@from_torch_converter(nn.Softmax)
def _softmax_from_torch(m, ctx):
    # neurocore's Softmax runs over the features, the last axis: dim=1 is the same axis for (batch, features)
    if m.dim not in (-1, 1):
        raise ValueError(f"Softmax(dim={m.dim}) is not supported: neurocore's Softmax runs over the last axis "
                         "(dim=-1)")
    return nc_layers.Softmax(), {}


@from_torch_converter(nn.Dropout)
def _dropout_from_torch(m, ctx):
    return nc_layers.Dropout(m.p), {}
