"""ONNX exporters of Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D and Flatten (channels-last images).

ONNX's Conv, MaxPool, AveragePool (count_include_pad=1) and GlobalAveragePool take NCHW:
the image is transposed to NCHW before them and back to NHWC after, and back-to-back transposes cancel, so a
chain of convolutions and poolings pays one transpose at each end. Conv weights are (out, in, kh, kw), the
transpose of ours (kh, kw, in, out); ONNX pads are (top, left, bottom, right).

float64: onnxruntime (1.32) has a float64 MaxPool but no float64 Conv, AveragePool or GlobalAveragePool, so
those are built channels-last from Pad, Slice and Concat (the kh*kw shifted views of the image, our patch
order (i, j, c)) with MatMul for the convolution and Sum for average pooling; GlobalAvgPool2D is ReduceMean
over (H, W). MaxPool is the ONNX operator in both dtypes.

Flatten is ONNX's Flatten(axis=1) of the NHWC tensor: row-major (h, w, c), neurocore's order.
"""
from __future__ import annotations

import numpy as np

from ..layers import AvgPool2D, Conv2D, Flatten, GlobalAvgPool2D, MaxPool2D
from .onnx_export import exporter

_TO_NCHW, _TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


def _onnx_pads(pads) -> list:
    top, bottom, left, right = pads
    return [top, left, bottom, right]


def _windows(g, x, kernel, stride, pads, fill: float) -> list:
    """The kh*kw shifted, strided views of the padded NHWC image x, each (N, OH, OW, C), in (i, j) order."""
    (h, w, _), (kh, kw), (sh, sw) = g.shape, kernel, stride
    top, bottom, left, right = pads
    if any(pads):
        spec = np.array([0, top, left, 0, 0, bottom, right, 0], np.int64)
        x = g.node("Pad", [x, g.constant(spec), g.scalar(fill)])
    oh, ow = (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1
    axes, steps = g.constant(np.array([1, 2], np.int64)), g.constant(np.array([sh, sw], np.int64))
    views = []
    for i in range(kh):
        for j in range(kw):
            starts = g.constant(np.array([i, j], np.int64))
            ends = g.constant(np.array([i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1], np.int64))
            views.append(g.node("Slice", [x, starts, ends, axes, steps]))
    return views


@exporter(Conv2D)
def _conv2d(layer, g, x):
    weight = g.state[f"{g.prefix}.weight"]
    if g.float64:   # patches (N, OH, OW, kh*kw*C) @ weight (kh*kw*C, out)
        views = _windows(g, x, layer.kernel_size, layer.stride, layer._pads, 0.0)
        patches = views[0] if len(views) == 1 else g.node("Concat", views, axis=-1)
        y = g.node("MatMul", [patches, g.param("weight", weight.reshape(-1, weight.shape[-1]))])
        return g.node("Add", [y, g.param("bias")]) if layer.use_bias else y
    inputs = [g.transpose(x, _TO_NCHW), g.param("weight", weight.transpose(3, 2, 0, 1))]
    if layer.use_bias:
        inputs.append(g.param("bias"))
    y = g.node("Conv", inputs, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
               pads=_onnx_pads(layer._pads))
    return g.transpose(y, _TO_NHWC)


@exporter(MaxPool2D)
def _maxpool2d(layer, g, x):
    y = g.node("MaxPool", [g.transpose(x, _TO_NCHW)], kernel_shape=list(layer.kernel_size),
               strides=list(layer.stride), pads=_onnx_pads(layer._pads()))
    return g.transpose(y, _TO_NHWC)


@exporter(AvgPool2D)
def _avgpool2d(layer, g, x):
    kh, kw = layer.kernel_size
    if g.float64:   # zero padding counted: the sum over the window times 1 / (kh kw), as the core computes it
        views = _windows(g, x, layer.kernel_size, layer.stride, layer._pads(), 0.0)
        total = views[0] if len(views) == 1 else g.node("Sum", views)
        return g.node("Mul", [total, g.scalar(1.0 / (kh * kw))])
    y = g.node("AveragePool", [g.transpose(x, _TO_NCHW)], kernel_shape=[kh, kw], strides=list(layer.stride),
               pads=_onnx_pads(layer._pads()), count_include_pad=1)
    return g.transpose(y, _TO_NHWC)


@exporter(GlobalAvgPool2D)
def _global_avgpool2d(layer, g, x):
    if g.float64:
        if g.opset >= 18:   # axes became an input in opset 18
            return g.node("ReduceMean", [x, g.constant(np.array([1, 2], np.int64))], keepdims=0)
        return g.node("ReduceMean", [x], axes=[1, 2], keepdims=0)
    return g.node("Flatten", [g.node("GlobalAveragePool", [g.transpose(x, _TO_NCHW)])], axis=1)


@exporter(Flatten)
def _flatten(layer, g, x):
    return g.node("Flatten", [x], axis=1)
