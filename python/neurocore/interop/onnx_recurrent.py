"""ONNX exporters of RNN, LSTM and GRU (batch-first sequences (N, T, F) in, as neurocore takes them).

float32: ONNX's own RNN/LSTM/GRU operators. Their gate orders differ from PyTorch's (ours): LSTM is i, o, f, c
(ours i, f, g, o), GRU is z, r, h (ours r, z, n), so the gate blocks are reordered; weights are
(directions, gates*hidden, in), the transpose of ours; the two biases are concatenated; GRU takes
linear_before_reset=1 (PyTorch's reset gate applies to h W_hn + b_hn). They run time-major, between transposes.

float64: onnxruntime (1.32) has no float64 kernel for these operators, so the recurrence is unrolled over the
model's fixed number of steps from MatMul, Add, Sigmoid, Tanh (Relu) and Mul, the same equations in float64.
"""
from __future__ import annotations

import numpy as np

from ..layers import GRU, LSTM, RNN
from .onnx_export import exporter

_ONNX_ORDER = {"rnn": [0], "lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}   # our gate blocks, in ONNX's order


@exporter(RNN)
@exporter(LSTM)
@exporter(GRU)
def _recurrent(layer, g, x):
    return _unrolled(layer, g, x) if g.float64 else _onnx_operator(layer, g, x)


def _onnx_operator(layer, g, x):
    hidden, kind = layer.hidden_size, layer.kind
    order = _ONNX_ORDER[kind]

    def reorder(array):   # (..., G*H) gate blocks, ours -> ONNX's order
        return np.concatenate([array[..., k * hidden:(k + 1) * hidden] for k in order], axis=-1)

    w = g.param("W", reorder(g.state[f"{g.prefix}.weight_ih"]).T[None])
    r = g.param("R", reorder(g.state[f"{g.prefix}.weight_hh"]).T[None])
    inputs = [g.transpose(x, [1, 0, 2]), w, r]
    if layer.use_bias:
        inputs.append(g.param("B", np.concatenate([reorder(g.state[f"{g.prefix}.bias_ih"]),
                                                   reorder(g.state[f"{g.prefix}.bias_hh"])])[None]))
    attrs = {"hidden_size": hidden}
    if kind == "rnn":
        attrs["activations"] = ["Relu" if layer.nonlinearity == "relu" else "Tanh"]
    if kind == "gru":
        attrs["linear_before_reset"] = 1
    op = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[kind]
    y, y_last = g.node(op, inputs, outputs=2, **attrs)   # (T, 1, N, H), (1, N, H)
    if layer.return_sequences:
        return g.transpose(g.node("Squeeze", [y, g.constant(np.array([1], np.int64))]), [1, 0, 2])
    return g.node("Squeeze", [y_last, g.constant(np.array([0], np.int64))])


def _unrolled(layer, g, x):
    steps, hidden, kind = g.shape[0], layer.hidden_size, layer.kind
    gates = layer.gates
    projected = g.node("MatMul", [x, g.param("weight_ih")])              # all steps at once: (N, T, G*H)
    if layer.use_bias:
        projected = g.node("Add", [projected, g.param("bias_ih")])
    w_hh = g.param("weight_hh")
    b_hh = g.param("bias_hh") if layer.use_bias else None

    def block(a, k):   # gate k of (..., G*H): columns [k H, (k + 1) H) of the last axis
        bounds = [g.constant(np.array([v], np.int64)) for v in (k * hidden, (k + 1) * hidden, -1)]
        return g.node("Slice", [a, *bounds])

    h = c = None
    outputs = []
    for t in range(steps):
        xt = g.node("Gather", [projected, g.constant(np.array(t, np.int64))], axis=1)    # (N, G*H)
        if h is None:   # zero initial state: h W_hh = 0
            ht = b_hh
        else:
            ht = g.node("MatMul", [h, w_hh])
            if b_hh is not None:
                ht = g.node("Add", [ht, b_hh])
        if kind == "gru":
            xs = [block(xt, k) for k in range(gates)]
            hs = [block(ht, k) for k in range(gates)] if ht is not None else [None] * gates
            add = lambda a, b: a if b is None else g.node("Add", [a, b])   # noqa: E731
            r = g.node("Sigmoid", [add(xs[0], hs[0])])
            z = g.node("Sigmoid", [add(xs[1], hs[1])])
            n = g.node("Tanh", [add(xs[2], None if hs[2] is None else g.node("Mul", [r, hs[2]]))])
            # h' = (1 - z) n + z h
            new = g.node("Mul", [g.node("Sub", [g.scalar(1.0), z]), n])
            h = new if h is None else g.node("Add", [new, g.node("Mul", [z, h])])
        else:
            a = xt if ht is None else g.node("Add", [xt, ht])
            if kind == "rnn":
                h = g.node("Relu" if layer.nonlinearity == "relu" else "Tanh", [a])
            else:   # LSTM: i, f, g, o; c' = f c + i g, h' = o tanh(c')
                i, f, cand, o = (block(a, k) for k in range(4))
                ig = g.node("Mul", [g.node("Sigmoid", [i]), g.node("Tanh", [cand])])
                c = ig if c is None else g.node("Add", [g.node("Mul", [g.node("Sigmoid", [f]), c]), ig])
                h = g.node("Mul", [g.node("Sigmoid", [o]), g.node("Tanh", [c])])
        if layer.return_sequences:
            outputs.append(g.node("Unsqueeze", [h, g.constant(np.array([1], np.int64))]))
    if not layer.return_sequences:
        return h
    return outputs[0] if len(outputs) == 1 else g.node("Concat", outputs, axis=1)
