"""Conv2D, the poolings, Flatten and image BatchNorm between neurocore (NHWC) and PyTorch (NCHW).

A Conv2D weight (kh, kw, in, out) is torch's Conv2d.weight (out, in, kh, kw) transposed; padding,
stride and kernel carry over (``padding="same"`` is PyTorch's, extra pixel at the end). ``to_torch`` keeps
images NCHW through these layers; ``from_torch`` accepts only what neurocore computes the same way
(no dilation, groups or ceil_mode; AvgPool2d counting the padding; AdaptiveAvgPool2d(1) only).
"""
from __future__ import annotations

from torch import nn

from .. import layers as nc_layers
from .torch_convert import _batchnorm, from_torch_converter, is_image, numpy, to_torch_converter


def _single(pair):
    return pair[0] if pair[0] == pair[1] else tuple(pair)


@to_torch_converter(nc_layers.Conv2D)
def _conv2d_to_torch(layer, ctx):
    permute = ctx.layout("torch")
    padding = "same" if layer.padding == "same" else tuple(layer.padding)
    m = nn.Conv2d(layer.in_channels, layer.out_channels, tuple(layer.kernel_size), stride=tuple(layer.stride),
                  padding=padding, bias=layer.use_bias, dtype=ctx.dtype)
    ctx.set(m.weight, ctx.array("weight").transpose(3, 2, 0, 1))
    if layer.use_bias:
        ctx.set(m.bias, "bias")
    return [*permute, m]


@to_torch_converter(nc_layers.MaxPool2D)
def _maxpool_to_torch(layer, ctx):
    return [*ctx.layout("torch"), nn.MaxPool2d(tuple(layer.kernel_size), tuple(layer.stride), tuple(layer.padding))]


@to_torch_converter(nc_layers.AvgPool2D)
def _avgpool_to_torch(layer, ctx):
    return [*ctx.layout("torch"), nn.AvgPool2d(tuple(layer.kernel_size), tuple(layer.stride), tuple(layer.padding),
                                               count_include_pad=True)]


@to_torch_converter(nc_layers.GlobalAvgPool2D)
def _global_avgpool_to_torch(layer, ctx):
    return [*ctx.layout("torch"), nn.AdaptiveAvgPool2d(1), nn.Flatten()]


@to_torch_converter(nc_layers.Flatten)
def _flatten_to_torch(layer, ctx):
    return [*ctx.layout("ours"), nn.Flatten()]   # our (h, w, c) order


@from_torch_converter(nn.Conv2d)
def _conv2d_from_torch(m, ctx):
    problems = []
    if _single(m.dilation) != 1:
        problems.append("dilation=1")
    if m.groups != 1:
        problems.append("groups=1")
    if m.padding_mode != "zeros":
        problems.append("padding_mode='zeros'")
    if problems:
        raise ValueError("Conv2d is supported with " + ", ".join(problems))
    ctx.image("Conv2d")
    padding = m.padding if isinstance(m.padding, str) else tuple(m.padding)
    layer = nc_layers.Conv2D(m.in_channels, m.out_channels, tuple(m.kernel_size), stride=tuple(m.stride),
                             padding=padding, bias=m.bias is not None)
    arrays = {"weight": numpy(m.weight).transpose(2, 3, 1, 0)}
    if m.bias is not None:
        arrays["bias"] = numpy(m.bias)
    return layer, arrays


def _pool_options(m, name: str) -> list:
    problems = []
    if getattr(m, "ceil_mode", False):
        problems.append("ceil_mode=False")
    if _single(_pair(getattr(m, "dilation", 1))) != 1:
        problems.append("dilation=1")
    if getattr(m, "return_indices", False):
        problems.append("return_indices=False")
    if problems:
        raise ValueError(f"{name} is supported with " + ", ".join(problems))
    stride = m.stride if m.stride else m.kernel_size   # torch: None or () means the kernel size
    return [_pair(m.kernel_size), _pair(stride), _pair(m.padding)]


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


@from_torch_converter(nn.MaxPool2d)
def _maxpool_from_torch(m, ctx):
    ctx.image("MaxPool2d")
    kernel, stride, padding = _pool_options(m, "MaxPool2d")
    return nc_layers.MaxPool2D(kernel, stride, padding), {}


@from_torch_converter(nn.AvgPool2d)
def _avgpool_from_torch(m, ctx):
    ctx.image("AvgPool2d")
    if not m.count_include_pad or m.divisor_override is not None:
        raise ValueError("AvgPool2d is supported with count_include_pad=True and divisor_override=None (neurocore "
                         "divides by the kernel area)")
    kernel, stride, padding = _pool_options(m, "AvgPool2d")
    return nc_layers.AvgPool2D(kernel, stride, padding), {}


@from_torch_converter(nn.AdaptiveAvgPool2d)
def _adaptive_avgpool_from_torch(m, ctx):
    ctx.image("AdaptiveAvgPool2d")
    if _pair(m.output_size) != (1, 1):
        raise ValueError(f"only AdaptiveAvgPool2d(1) (a global average) is supported, got output_size={m.output_size}")
    return nc_layers.GlobalAvgPool2D(), {}   # (N, C): torch's (N, C, 1, 1) once flattened


@from_torch_converter(nn.BatchNorm2d)
def _batchnorm2d_from_torch(m, ctx):
    ctx.image("BatchNorm2d")
    return _batchnorm(m)


@from_torch_converter(nn.Flatten)
def _flatten_from_torch(m, ctx):
    if m.start_dim != 1 or m.end_dim != -1:
        raise ValueError(f"only Flatten(start_dim=1, end_dim=-1) is supported, got {m.start_dim}, {m.end_dim}")
    if ctx.shape is not None and len(ctx.shape) == 1:   # already flat (after AdaptiveAvgPool2d(1)): a no-op
        return None, {}
    if is_image(ctx.shape) and ctx.layout == "torch":   # torch's (c, h, w) order: the next Linear takes it
        ctx.pending, ctx.pending_path = ctx.shape, ctx.path
    return nc_layers.Flatten(), {}

