"""``Sequential.to_onnx``: the model as an ONNX graph, built with the ``onnx`` package.

The graph has one input ``"input"`` (batch, ...) with a dynamic batch axis and one output ``"output"``;
parameters are initializers in the model's dtype, named as in :meth:`Sequential.state_dict`. Each layer
kind has one exporter (``@exporter(Kind)``) that appends its nodes and returns the name of its output.

float64: onnxruntime (1.32) has no float64 kernel for Erf or Elu, and ONNX stores the alpha of
LeakyRelu/Elu as a float32 attribute. A float64 model therefore builds GELU, ELU and LeakyReLU from
operators that have float64 kernels (Abs, Sign, Min, Max, Exp, Mul, Add, Sub) with float64 constants;
GELU's erf comes from a Chebyshev fit of exp(t^2) erfc(t) (absolute error below 1e-14). float32 models use
the standard operators (Erf, Elu, LeakyRelu), whose float32 attributes are then exact.
"""
from __future__ import annotations

import functools
import math
import os

import numpy as np

from .._validation import check_int
from ..layers import (
    ELU,
    GELU,
    BatchNorm,
    Dense,
    Dropout,
    Identity,
    LeakyReLU,
    ReLU,
    Residual,
    Sigmoid,
    Softmax,
    Tanh,
)
from . import entry_for, require

__all__ = ["to_onnx", "build_model", "exporter", "MIN_OPSET"]

MIN_OPSET = 13   # Softmax over one axis, not over everything flattened after it (opset 13 semantics)

_EXPORTERS: dict = {}


def exporter(kind):
    """Register ``fn(layer, graph, x) -> output name`` as the ONNX exporter of a layer class."""
    def register(fn):
        _EXPORTERS[kind] = fn
        return fn
    return register


def to_onnx(model, path, opset: int = 17) -> None:
    """Write ``model`` as an ONNX file (see :meth:`Sequential.to_onnx`). The file is written only once the
    whole graph is built and checked, through a temporary file and a rename."""
    if not isinstance(path, (str, os.PathLike)) or not isinstance(os.fspath(path), str):
        raise TypeError(f"to_onnx path must be a str or os.PathLike, got {type(path).__name__} {path!r}")
    path = os.fspath(path)
    opset = check_int(opset, "to_onnx opset")
    onnx = require("onnx", "onnx", "to_onnx")
    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise ValueError(f"to_onnx opset must be in [{MIN_OPSET}, {onnx.defs.onnx_opset_version()}] (this onnx "
                         f"package's newest), got {opset}")
    data = build_model(model, opset).SerializeToString()
    from ..io import atomic_write

    try:
        atomic_write(path, lambda f: f.write(data))
    except OSError as exc:
        raise OSError(exc.errno, f"to_onnx cannot write the ONNX file ({exc.strerror})", path) from None


def build_model(model, opset: int = 17):
    """The ``onnx.ModelProto`` of ``model``, checked with ``onnx.checker.check_model(full_check=True)``."""
    onnx = require("onnx", "onnx", "to_onnx")
    from .. import __version__

    helper = onnx.helper
    graph = _Graph(onnx, model.dtype, model.state_dict(), opset)
    out = graph.export_layers(model.layers, "input", "layers", tuple(model.input_shape))
    graph.rename_output(out, "output")
    graph.prune()
    elem = helper.np_dtype_to_tensor_dtype(model.dtype)
    proto = helper.make_model_gen_version(
        helper.make_graph(graph.nodes, "neurocore.Sequential",
                          [helper.make_tensor_value_info("input", elem, ["batch", *model.input_shape])],
                          [helper.make_tensor_value_info("output", elem, ["batch", *model.output_shape])],
                          initializer=graph.initializers),
        producer_name="neurocore", producer_version=__version__,
        opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(proto, full_check=True)
    return proto


class _Graph:
    """Nodes and initializers under construction. While a layer is exported, ``prefix`` is its state_dict
    name (``layers.3.layers.0``), which names its nodes and parameters, and ``shape`` the per-sample shape of
    its input (channels-last images, batch-first sequences: the layout at every layer boundary)."""

    def __init__(self, onnx, dtype, state, opset):
        self.onnx, self.dtype, self.state, self.opset = onnx, np.dtype(dtype), state, opset
        self.float64 = self.dtype == np.float64
        self.nodes, self.initializers = [], []
        self.prefix, self.shape = "", ()
        self._constants = {}

    def node(self, op: str, inputs, outputs: int = 1, **attrs):
        """Append a node; returns its output name (a list of names for ``outputs`` > 1)."""
        name = f"{self.prefix}/{op}_{len(self.nodes)}"
        names = [name] if outputs == 1 else [f"{name}:{k}" for k in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), names, name=name, **attrs))
        return names[0] if outputs == 1 else names

    def param(self, key: str, value=None) -> str:
        """An initializer named ``<prefix>.<key>``: the layer's state array, or ``value`` (derived from it)."""
        name = f"{self.prefix}.{key}"
        array = self.state[name] if value is None else value
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array, self.dtype), name))
        return name

    def scalar(self, value: float) -> str:
        """A 0-d constant of the model's dtype, shared by every node that uses the same value."""
        return self.constant(np.array(value, self.dtype))

    def constant(self, array) -> str:
        """An initializer holding ``array`` as it is (int64 axes, shapes, indices), shared by equal values."""
        array = np.array(array, order="C")   # (ascontiguousarray would make a 0-d array 1-d)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            name = f"const.{len(self._constants)}"
            self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
            self._constants[key] = name
        return self._constants[key]

    def transpose(self, x: str, perm) -> str:
        """Transpose x, or take back the input of the transpose that made x when ``perm`` undoes it (so that
        NHWC -> NCHW -> op -> NHWC -> NCHW -> op ... keeps one transpose per end)."""
        perm = list(perm)
        source = next((n for n in reversed(self.nodes) if n.output[0] == x), None)
        if source is not None and source.op_type == "Transpose":
            before = list(source.attribute[0].ints)
            if [before[p] for p in perm] == list(range(len(perm))):
                return source.input[0]
        return self.node("Transpose", [x], perm=perm)

    def export_layers(self, layers, x: str, prefix: str, shape: tuple) -> str:
        for i, layer in enumerate(layers):
            name = f"{prefix}.{i}"
            export = entry_for(_EXPORTERS, layer, name, "to_onnx", "ONNX exporter")
            outer = self.prefix, self.shape
            self.prefix, self.shape = name, shape
            x = export(layer, self, x)
            self.prefix, self.shape = outer
            shape = tuple(layer.output_shape(shape))
        return x

    def rename_output(self, x: str, name: str) -> None:
        producer = next((n for n in self.nodes if x in n.output), None)
        if producer is not None and not any(x in n.input for n in self.nodes):
            producer.output[list(producer.output).index(x)] = name
        else:
            self.prefix = "output"
            self.nodes.append(self.onnx.helper.make_node("Identity", [x], [name], name="output/Identity"))

    def prune(self) -> None:
        """Drop nodes whose outputs nothing reads (a transpose that ``transpose`` made redundant)."""
        while True:
            read = {"output"} | {i for n in self.nodes for i in n.input}
            kept = [n for n in self.nodes if any(o in read for o in n.output)]
            if len(kept) == len(self.nodes):
                return
            self.nodes = kept


# ------------------------------------------------------------------------------------------ exporters
@exporter(Dense)
def _dense(layer, g, x):
    y = g.node("MatMul", [x, g.param("weight")])
    return g.node("Add", [y, g.param("bias")]) if layer.use_bias else y


@exporter(Identity)
@exporter(Dropout)
def _identity(layer, g, x):
    return x


@exporter(ReLU)
def _relu(layer, g, x):
    return g.node("Relu", [x])


@exporter(Sigmoid)
def _sigmoid(layer, g, x):
    return g.node("Sigmoid", [x])


@exporter(Tanh)
def _tanh(layer, g, x):
    return g.node("Tanh", [x])


@exporter(Softmax)
def _softmax(layer, g, x):
    return g.node("Softmax", [x], axis=-1)


@exporter(LeakyReLU)
def _leaky_relu(layer, g, x):
    if not g.float64:
        return g.node("LeakyRelu", [x], alpha=layer.alpha)
    # max(x, 0) + alpha * min(x, 0): exactly x or alpha * x, with alpha in float64
    zero = g.scalar(0.0)
    return g.node("Add", [g.node("Max", [x, zero]), g.node("Mul", [g.node("Min", [x, zero]), g.scalar(layer.alpha)])])


@exporter(ELU)
def _elu(layer, g, x):
    if not g.float64:
        return g.node("Elu", [x], alpha=layer.alpha)
    # max(x, 0) + alpha * (exp(min(x, 0)) - 1)
    zero = g.scalar(0.0)
    expm1 = g.node("Sub", [g.node("Exp", [g.node("Min", [x, zero])]), g.scalar(1.0)])
    return g.node("Add", [g.node("Max", [x, zero]), g.node("Mul", [expm1, g.scalar(layer.alpha)])])


@exporter(GELU)
def _gelu(layer, g, x):
    # 0.5 x (1 + erf(x / sqrt 2)), the exact form, as the core computes it
    z = g.node("Mul", [x, g.scalar(0.70710678118654752)])
    erf = _erf_float64(g, z) if g.float64 else g.node("Erf", [z])
    return g.node("Mul", [g.node("Mul", [x, g.scalar(0.5)]), g.node("Add", [erf, g.scalar(1.0)])])


ERFC_FIT_END = 6.0   # erfc(6) = 2e-17: past it erf(t) is 1 to double precision


@functools.lru_cache(maxsize=1)
def erfc_scaled_chebyshev() -> np.ndarray:
    """Chebyshev coefficients of exp(t^2) erfc(t) on t in [0, ERFC_FIT_END] (mapped to [-1, 1]): a smooth,
    slowly varying function, fitted by least squares to math.erfc on a fine grid (which averages out the
    rounding of exp(t^2)); degree 36 reaches the rounding floor."""
    t = np.linspace(0.0, ERFC_FIT_END, 4001)
    values = [math.exp(v * v) * math.erfc(v) for v in t]
    return np.polynomial.chebyshev.chebfit(t * (2.0 / ERFC_FIT_END) - 1.0, values, 36)


def _erf_float64(g, z):
    """erf(z) = sign(z) (1 - exp(-t^2) s(t)), t = |z|, s the Chebyshev fit above, summed by Clenshaw's
    recurrence b_k = 2u b_{k+1} - b_{k+2} + c_k (stable, unlike the power form)."""
    coef = erfc_scaled_chebyshev()
    t = g.node("Abs", [z])
    u = g.node("Sub", [g.node("Mul", [g.node("Min", [t, g.scalar(ERFC_FIT_END)]), g.scalar(2.0 / ERFC_FIT_END)]),
                       g.scalar(1.0)])
    two_u = g.node("Add", [u, u])
    b2 = g.scalar(float(coef[-1]))                                                   # b_n = c_n
    b1 = g.node("Add", [g.node("Mul", [two_u, b2]), g.scalar(float(coef[-2]))])     # b_{n-1}
    for c in coef[-3:0:-1]:
        b1, b2 = g.node("Sub", [g.node("Add", [g.node("Mul", [two_u, b1]), g.scalar(float(c))]), b2]), b1
    scaled = g.node("Sub", [g.node("Add", [g.node("Mul", [u, b1]), g.scalar(float(coef[0]))]), b2])
    erfc = g.node("Mul", [g.node("Exp", [g.node("Neg", [g.node("Mul", [t, t])])]), scaled])
    return g.node("Mul", [g.node("Sign", [z]), g.node("Sub", [g.scalar(1.0), erfc])])


@exporter(BatchNorm)
def _batchnorm(layer, g, x):
    # inference form, in the core's order: weight * ((x - running_mean) * invstd) + bias, with
    # invstd = 1 / sqrt(running_var + eps) rounded from float64 as the core rounds it
    var = g.state[f"{g.prefix}.running_var"].astype(np.float64)
    invstd = (1.0 / np.sqrt(var + layer.eps)).astype(g.dtype)
    h = g.node("Mul", [g.node("Sub", [x, g.param("running_mean")]), g.param("invstd", invstd)])
    return g.node("Add", [g.node("Mul", [h, g.param("weight")]), g.param("bias")])


@exporter(Residual)
def _residual(layer, g, x):
    return g.node("Add", [x, g.export_layers(layer.layers, x, f"{g.prefix}.layers", g.shape)])


from . import onnx_conv, onnx_recurrent  # noqa: E402,F401  (register their layer kinds)
