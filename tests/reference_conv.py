"""Float64 NumPy reference for the image layers (the oracle of tests/test_conv.py).

Written for clarity, never for speed: a convolution is a sum over the kernel's cells (i, j) of one
strided slice of the padded input times that cell's (C_in, C_out) weight matrix; pooling stacks every
window cell along a new axis. Images are channels-last (N, H, W, C); weights (kh, kw, C_in, C_out).
``pads`` is (top, bottom, left, right).
"""

from __future__ import annotations

import numpy as np


def out_size(size, k, stride, pad_a, pad_b):
    return (size + pad_a + pad_b - k) // stride + 1


def same_pads(kh, kw):
    """PyTorch's padding='same' for stride 1: total k - 1, the odd pixel at the end."""
    return ((kh - 1) // 2, kh - 1 - (kh - 1) // 2, (kw - 1) // 2, kw - 1 - (kw - 1) // 2)


def _pad(x, pads, value=0.0):
    top, bottom, left, right = pads
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def _cell(xp, i, j, stride, oh, ow):
    """The (N, oh, ow, C) slice that kernel cell (i, j) sees."""
    sh, sw = stride
    return xp[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :]


def conv2d_forward(x, w, b, stride, pads):
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    kh, kw, _, cout = w.shape
    xp = _pad(x, pads)
    oh = out_size(x.shape[1], kh, stride[0], pads[0], pads[1])
    ow = out_size(x.shape[2], kw, stride[1], pads[2], pads[3])
    y = np.zeros((x.shape[0], oh, ow, cout))
    for i in range(kh):
        for j in range(kw):
            y += np.einsum("npqc,co->npqo", _cell(xp, i, j, stride, oh, ow), w[i, j])
    return y if b is None else y + np.asarray(b, np.float64)


def conv2d_backward(x, w, dy, stride, pads):
    """(dx, dw, db) for dy = dL/dy."""
    x, w, dy = (np.asarray(a, np.float64) for a in (x, w, dy))
    kh, kw = w.shape[:2]
    oh, ow = dy.shape[1:3]
    top, bottom, left, right = pads
    xp = _pad(x, pads)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    sh, sw = stride
    for i in range(kh):
        for j in range(kw):
            dw[i, j] = np.einsum("npqc,npqo->co", _cell(xp, i, j, stride, oh, ow), dy)
            dxp[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :] += np.einsum("npqo,co->npqc", dy, w[i, j])
    dx = dxp[:, top:top + x.shape[1], left:left + x.shape[2], :]
    return dx, dw, dy.sum(axis=(0, 1, 2))


def _windows(x, kernel, stride, pads, value):
    """(N, oh, ow, C, kh*kw): every window's cells in (i, j) order."""
    kh, kw = kernel
    xp = _pad(np.asarray(x, np.float64), pads, value)
    oh = out_size(x.shape[1], kh, stride[0], pads[0], pads[1])
    ow = out_size(x.shape[2], kw, stride[1], pads[2], pads[3])
    return np.stack([_cell(xp, i, j, stride, oh, ow) for i in range(kh) for j in range(kw)], axis=-1)


def maxpool_forward(x, kernel, stride, pads):
    return _windows(x, kernel, stride, pads, -np.inf).max(axis=-1)


def maxpool_backward(x, dy, kernel, stride, pads):
    """dx: each window's gradient goes to its first maximal cell."""
    win = _windows(x, kernel, stride, pads, -np.inf)
    cell = win.argmax(axis=-1)
    n, oh, ow, c = dy.shape
    top, _, left, _ = pads
    dx = np.zeros(x.shape)
    nn, pp, qq, cc = np.meshgrid(range(n), range(oh), range(ow), range(c), indexing="ij")
    rows = pp * stride[0] + cell // kernel[1] - top
    cols = qq * stride[1] + cell % kernel[1] - left
    np.add.at(dx, (nn, rows, cols, cc), np.asarray(dy, np.float64))
    return dx


def avgpool_forward(x, kernel, stride, pads):
    return _windows(x, kernel, stride, pads, 0.0).mean(axis=-1)


def avgpool_backward(x, dy, kernel, stride, pads):
    kh, kw = kernel
    sh, sw = stride
    top, bottom, left, right = pads
    oh, ow = dy.shape[1:3]
    dxp = np.zeros((x.shape[0], x.shape[1] + top + bottom, x.shape[2] + left + right, x.shape[3]))
    for i in range(kh):
        for j in range(kw):
            dxp[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :] += np.asarray(dy, np.float64) / (kh * kw)
    return dxp[:, top:top + x.shape[1], left:left + x.shape[2], :]
