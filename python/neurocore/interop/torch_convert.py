"""PyTorch <-> neurocore: ``nc.from_torch(module)`` and ``Sequential.to_torch()``.

One function per layer kind and direction. ``@to_torch_converter(Kind)`` builds the torch modules of a
neurocore layer from its arrays; ``@from_torch_converter(TorchClass)`` builds the neurocore layer of a torch
module and returns it with its arrays in neurocore's layout (a Dense weight is (in, out), the transpose of
torch's Linear.weight). Arrays are copied exactly, so a round trip keeps every weight bit for bit.

Layouts: neurocore's images are channels-last (N, H, W, C), PyTorch's channels-first (N, C, H, W). Both
directions track which one the torch tensor has at each point: ``to_torch`` makes a model that takes and
returns NCHW images and inserts a :class:`Permute` where a layer needs channels-last (Dense over the channels,
Flatten in neurocore's (h, w, c) order); ``from_torch`` reads NCHW modules and folds torch's (c, h, w)
flatten order into the next Linear's (or BatchNorm1d's) rows.
"""
from __future__ import annotations

import itertools
import numbers

import numpy as np
import torch
from torch import nn

from .. import layers as nc_layers
from ..model import Sequential
from . import entry_for

__all__ = ["Residual", "Permute", "to_torch", "from_torch", "to_torch_converter", "from_torch_converter"]


class Residual(nn.Module):
    """``x + block(x)``: neurocore's :class:`~neurocore.Residual` as a torch module (``to_torch`` makes it,
    ``from_torch`` reads it)."""

    def __init__(self, *layers):
        super().__init__()
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.block(x)


class Permute(nn.Module):
    """``x.permute(dims)``: moves image channels between PyTorch's place (axis 1) and neurocore's (last)."""

    def __init__(self, *dims):
        super().__init__()
        self.dims = tuple(dims)

    def forward(self, x):
        return x.permute(*self.dims)

    def extra_repr(self) -> str:
        return ", ".join(map(str, self.dims))


TO_CHANNELS_LAST, TO_CHANNELS_FIRST = (0, 2, 3, 1), (0, 3, 1, 2)
_TO_TORCH: dict = {}
_FROM_TORCH: dict = {}
_TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def to_torch_converter(kind):
    """Register ``fn(layer, ctx) -> torch module or list of modules`` for a neurocore layer class."""
    def register(fn):
        _TO_TORCH[kind] = fn
        return fn
    return register


def from_torch_converter(*torch_classes):
    """Register ``fn(module, ctx) -> (neurocore layer or None, {array key: ndarray})`` for torch classes."""
    def register(fn):
        for cls in torch_classes:
            _FROM_TORCH[cls] = fn
        return fn
    return register


def is_image(shape) -> bool:
    return shape is not None and len(shape) == 3


# ------------------------------------------------------------------------------------------ to_torch
def to_torch(model) -> nn.Sequential:
    """A ``torch.nn.Sequential`` in eval mode computing what ``model.predict`` computes, in the model's dtype,
    with copies of its weights (see :meth:`Sequential.to_torch`)."""
    ctx = _ToTorch(model.state_dict(), _TORCH_DTYPES[model.dtype], tuple(model.input_shape))
    modules = ctx.convert_layers(model.layers, "layers")
    if is_image(model.output_shape):
        modules += ctx.layout("torch")   # images leave as they came in: NCHW
    return nn.Sequential(*modules).eval()


class _ToTorch:
    """``layout`` is "torch" while the torch tensor is an NCHW image, "ours" while it is laid out as ours."""

    def __init__(self, state, dtype, input_shape):
        self.state, self.dtype, self.prefix = state, dtype, ""
        self.shape = input_shape
        self.layout_now = "torch" if is_image(input_shape) else "ours"

    def convert_layers(self, layers, prefix: str) -> list:
        modules = []
        for i, layer in enumerate(layers):
            name = f"{prefix}.{i}"
            convert = entry_for(_TO_TORCH, layer, name, "to_torch", "PyTorch converter")
            outer, self.prefix = self.prefix, name
            made = convert(layer, self)
            modules.extend(made if isinstance(made, list) else [made])
            self.prefix = outer
            self.shape = tuple(layer.output_shape(self.shape))
            if not is_image(self.shape):
                self.layout_now = "ours"
        return modules

    def layout(self, want: str) -> list:
        """The Permute that brings an image to layout ``want`` ([] when it is there, or not an image)."""
        if not is_image(self.shape) or self.layout_now == want:
            return []
        self.layout_now = want
        return [Permute(*(TO_CHANNELS_LAST if want == "ours" else TO_CHANNELS_FIRST))]

    def array(self, key: str) -> np.ndarray:
        return self.state[f"{self.prefix}.{key}"]

    def set(self, tensor: torch.Tensor, value) -> None:
        """Overwrite a parameter or buffer with ``value`` (an array key of this layer, or an array), exactly."""
        value = self.array(value) if isinstance(value, str) else value
        with torch.no_grad():
            tensor.copy_(torch.from_numpy(np.ascontiguousarray(value)))


@to_torch_converter(nc_layers.Dense)
def _dense_to_torch(layer, ctx):
    permute = ctx.layout("ours")   # over the channels of an image
    m = nn.Linear(layer.in_features, layer.out_features, bias=layer.use_bias, dtype=ctx.dtype)
    ctx.set(m.weight, ctx.array("weight").T)
    if layer.use_bias:
        ctx.set(m.bias, "bias")
    return [*permute, m]


@to_torch_converter(nc_layers.BatchNorm)
def _batchnorm_to_torch(layer, ctx):
    if is_image(ctx.shape):
        permute, m = ctx.layout("torch"), nn.BatchNorm2d(layer.features, eps=layer.eps, momentum=layer.momentum,
                                                         dtype=ctx.dtype)
    else:
        permute, m = [], nn.BatchNorm1d(layer.features, eps=layer.eps, momentum=layer.momentum, dtype=ctx.dtype)
    for key in ("weight", "bias", "running_mean", "running_var"):
        ctx.set(getattr(m, key), key)
    if len(ctx.shape) == 2:   # (N, T, F): BatchNorm1d wants the features on axis 1
        return [Permute(0, 2, 1), m, Permute(0, 2, 1)]
    return [*permute, m]


@to_torch_converter(nc_layers.Residual)
def _residual_to_torch(layer, ctx):
    entry = ctx.layout_now
    inner = ctx.convert_layers(layer.layers, f"{ctx.prefix}.layers")
    return Residual(*inner, *ctx.layout(entry))


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
def _softmax_to_torch(layer, ctx):   # over our last axis: the channels of an NCHW image are axis 1
    return nn.Softmax(dim=1 if is_image(ctx.shape) and ctx.layout_now == "torch" else -1)


@to_torch_converter(nc_layers.Dropout)
def _dropout_to_torch(layer, ctx):
    return nn.Dropout(layer.p)


# ------------------------------------------------------------------------------------------ from_torch
def from_torch(module, input_shape=None) -> Sequential:
    """See :func:`neurocore.from_torch`."""
    if not isinstance(module, nn.Sequential):
        raise TypeError(f"from_torch expects a torch.nn.Sequential, got {type(module).__name__}"
                        + (" (wrap it: torch.nn.Sequential(module))" if isinstance(module, nn.Module) else ""))
    ours = None
    if input_shape is not None:
        input_shape = _check_shape(input_shape)
        ours = (*input_shape[1:], input_shape[0]) if len(input_shape) == 3 else input_shape   # (C, H, W) -> (H, W, C)
    if not list(module.children()):
        raise ValueError("from_torch: the torch.nn.Sequential is empty")
    dtype = _module_dtype(module)
    ctx = _FromTorch(ours)
    layers = ctx.convert_modules(module, "")
    if not layers:
        raise ValueError("from_torch: the torch.nn.Sequential has no module neurocore computes with")
    if ctx.shape is not None and len(ctx.shape) == 2 and ctx.layout == "torch":
        raise ValueError("from_torch: the module ends with a sequence's features on axis 1 (N, F, T); neurocore's "
                         "sequences are (N, T, F): end with Permute(0, 2, 1)")
    if ctx.pending is not None:
        raise ValueError(f"from_torch: module {ctx.pending_path} flattens an NCHW image in PyTorch's (c, h, w) "
                         "order and no Linear follows to take it; neurocore flattens in (h, w, c) order")
    try:
        model = Sequential(layers, dtype=dtype, input_shape=ours)
    except ValueError as exc:
        raise ValueError(f"from_torch: the converted layers do not form a neurocore model: {exc}") from None
    for layer, arrays in ctx.arrays:
        for key, value in arrays.items():
            np.copyto(layer._views_dict[key], value)
    return model


class _FromTorch:
    """``shape``: our per-sample shape at this point (None until known); ``layout``: "torch" while the torch
    tensor has its channels/features on axis 1 (an NCHW image, or a sequence after Permute(0, 2, 1)); ``pending``: the (H, W, C) of an image torch flattened in (c, h, w) order."""

    def __init__(self, input_shape):
        self.arrays = []   # (neurocore layer, {key: array}) to copy once the model exists
        self.path = ""
        self.shape = input_shape
        self.layout = "torch" if is_image(input_shape) else "ours"
        self.pending, self.pending_path = None, ""

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
                if layer is not None:
                    self._advance(layer)
            except (ValueError, TypeError) as exc:
                if str(exc).startswith("from_torch:"):
                    raise
                raise type(exc)(f"from_torch: module {path} ({child!r}): {exc}") from None
            self.path = outer
            if layer is not None:
                self.arrays.append((layer, arrays))
                out.append(layer)
        return out

    def _advance(self, layer) -> None:
        if self.shape is None:
            self.shape = layer.fixed_input_shape()   # ValueError when it needs input_shape (Conv2D)
        if self.shape is not None:
            self.shape = tuple(layer.output_shape(self.shape))
            if len(self.shape) == 1:
                self.layout = "ours"

    def image(self, what: str) -> tuple:
        """The current (H, W, C), checking that torch holds it as NCHW (what PyTorch's image modules take)."""
        if self.shape is None:
            raise ValueError(f"{what} needs the image size: pass input_shape=(C, H, W)")
        if not is_image(self.shape) or self.layout != "torch":
            raise ValueError(f"{what} takes (N, C, H, W) images, but here the tensor is "
                             f"{'channels-last' if is_image(self.shape) else f'of sample shape {self.shape}'}")
        return self.shape


def numpy(tensor: torch.Tensor) -> np.ndarray:
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
        raise TypeError(f"from_torch input_shape must be a tuple of ints (one sample as PyTorch takes it, no batch "
                        f"axis: (features,), (steps, features) or (C, H, W)), got {shape!r}")
    if not 1 <= len(shape) <= 3 or any(d < 1 for d in shape):
        raise ValueError(f"from_torch input_shape must have 1 to 3 sizes, each >= 1, got {tuple(shape)}")
    return tuple(int(d) for d in shape)


def _unflatten_rows(array: np.ndarray, image: tuple) -> np.ndarray:
    """Rows of ``array`` (first axis) from torch's (c, h, w) flatten order to ours (h, w, c)."""
    h, w, c = image
    return array.reshape(c, h, w, *array.shape[1:]).transpose(1, 2, 0, *range(3, array.ndim + 2)).reshape(array.shape)


@from_torch_converter(nn.Linear)
def _linear_from_torch(m, ctx):
    if ctx.shape is not None and len(ctx.shape) > 1 and ctx.layout == "torch":
        raise ValueError("Linear here acts on the last axis of a tensor whose channels/features are on axis 1 "
                         "(an (N, C, H, W) image or (N, F, T) sequence), which neurocore has no layer for")
    layer = nc_layers.Dense(m.in_features, m.out_features, bias=m.bias is not None)
    weight = numpy(m.weight).T
    if ctx.pending is not None:
        weight, ctx.pending = _unflatten_rows(weight, ctx.pending), None
    arrays = {"weight": weight}
    if m.bias is not None:
        arrays["bias"] = numpy(m.bias)
    return layer, arrays


@from_torch_converter(nn.BatchNorm1d)
def _batchnorm_from_torch(m, ctx):
    if ctx.shape is not None and len(ctx.shape) == 2 and ctx.layout != "torch":
        raise ValueError("BatchNorm1d on an (N, T, F) sequence normalises axis 1, the steps; neurocore's BatchNorm "
                         "normalises the features (Permute(0, 2, 1) around BatchNorm1d does that in torch)")
    layer, arrays = _batchnorm(m)
    if ctx.pending is not None:   # per-feature vectors in torch's flatten order
        arrays = {k: _unflatten_rows(v, ctx.pending) for k, v in arrays.items()}
    return layer, arrays


def _batchnorm(m):
    if not m.track_running_stats or m.running_mean is None:
        raise ValueError(f"{type(m).__name__}(track_running_stats=False) normalises with batch statistics in eval "
                         "mode; neurocore's BatchNorm uses running statistics")
    if m.momentum is None:
        raise ValueError(f"{type(m).__name__}(momentum=None) (a cumulative average) has no neurocore equivalent; "
                         "give a momentum in [0, 1]")
    layer = nc_layers.BatchNorm(m.num_features, momentum=m.momentum, eps=m.eps)
    ones = np.ones(m.num_features, numpy(m.running_mean).dtype)
    arrays = {"weight": numpy(m.weight) if m.affine else ones,
              "bias": numpy(m.bias) if m.affine else ones * 0,
              "running_mean": numpy(m.running_mean), "running_var": numpy(m.running_var)}
    return layer, arrays


@from_torch_converter(Residual)
def _residual_from_torch(m, ctx):
    entry = ctx.shape, ctx.layout
    inner = ctx.convert_modules(m.block, ctx.path + ".block.")
    if ctx.layout != entry[1] or (entry[0] is not None and ctx.shape != entry[0]):
        raise ValueError(f"the block must keep its input's shape and layout, got {entry} -> {(ctx.shape, ctx.layout)}")
    return nc_layers.Residual(inner), {}


@from_torch_converter(Permute)
def _permute_from_torch(m, ctx):
    if ctx.shape is not None and len(ctx.shape) == 2 and m.dims == (0, 2, 1):   # sequences: swap steps, features
        ctx.layout = "ours" if ctx.layout == "torch" else "torch"
        return None, {}
    if not is_image(ctx.shape) or m.dims not in (TO_CHANNELS_LAST, TO_CHANNELS_FIRST):
        raise ValueError(f"only {TO_CHANNELS_LAST} and {TO_CHANNELS_FIRST} on images and (0, 2, 1) on sequences "
                         "are supported")
    want = "ours" if m.dims == TO_CHANNELS_LAST else "torch"
    if ctx.layout == want:
        raise ValueError(f"the image is already {'channels-last' if want == 'ours' else 'NCHW'} here")
    ctx.layout = want
    return None, {}


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
    # neurocore's Softmax runs over our last axis: the features, a sequence's features, an image's channels
    rank = None if ctx.shape is None else len(ctx.shape) + 1
    if rank in (3, 4) and ctx.layout == "torch":   # channels/features on axis 1
        ok = m.dim in (1, 1 - rank)
    else:
        ok = m.dim == -1 or (rank is not None and m.dim == rank - 1) or (rank is None and m.dim == 1)
    if not ok:
        raise ValueError(f"Softmax(dim={m.dim}) is not supported here: neurocore's Softmax runs over the features "
                         "(dim=-1; dim=1 for the channels of an NCHW image)")
    return nc_layers.Softmax(), {}


@from_torch_converter(nn.Dropout)
def _dropout_from_torch(m, ctx):
    return nc_layers.Dropout(m.p), {}


from . import torch_conv, torch_recurrent  # noqa: E402,F401  (register their layer kinds)
