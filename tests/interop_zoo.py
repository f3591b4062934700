"""Models for the interoperability tests (ONNX, PyTorch, state dicts): a zoo with every layer kind, random
stacks for the property tests, random weights and inputs that reach every branch of every activation.

Bounds: the other runtime's output equals ``model.predict`` within ``RTOL`` (1e-5 float32, 1e-10 float64)
relative to the output's magnitude (``conftest.assert_close``: |a - b| <= rtol * (|b| + max|b|)).
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

import neurocore as nc
from conftest import assert_close, tol

RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}
BATCHES = (1, 257)


def assert_matches(actual, expected, dtype, what=""):
    dtype = np.dtype(dtype)
    assert_close(actual, expected, dtype, factor=RTOL[dtype] / tol(dtype), err_msg=what)


def relative_difference(actual, expected) -> float:
    """max |actual - expected| / max |expected|: the figure the report quotes."""
    expected = np.asarray(expected, np.float64)
    return float(np.max(np.abs(np.asarray(actual, np.float64) - expected)) / max(np.max(np.abs(expected)), 1e-300))


ZOO = {
    "mlp": lambda: [nc.Dense(7, 16), nc.ReLU(), nc.Dense(16, 3)],
    "no_bias": lambda: [nc.Dense(5, 9, bias=False), nc.Sigmoid(), nc.Dense(9, 1, bias=False)],
    "every_activation": lambda: [nc.Dense(6, 11), nc.Identity(), nc.Tanh(), nc.Dense(11, 11), nc.LeakyReLU(0.2),
                                 nc.Dense(11, 13), nc.ELU(1.3), nc.Dense(13, 8), nc.GELU(), nc.Dense(8, 4),
                                 nc.Softmax()],
    "leaky_default_alpha": lambda: [nc.Dense(3, 10), nc.LeakyReLU(), nc.Dense(10, 10), nc.LeakyReLU(0.0),
                                    nc.Dense(10, 2)],
    "batchnorm_dropout": lambda: [nc.Dense(10, 12), nc.BatchNorm(12, eps=1e-3), nc.ReLU(), nc.Dropout(0.5),
                                  nc.Dense(12, 3), nc.BatchNorm(3)],
    "residual_nested": lambda: [nc.Dense(4, 8), nc.Residual([nc.Dense(8, 8), nc.GELU(),
                                                             nc.Residual([nc.BatchNorm(8), nc.Dense(8, 8, bias=False),
                                                                          nc.ELU()])]),
                                nc.Dropout(0.1), nc.Dense(8, 2), nc.Softmax()],
    "residual_last": lambda: [nc.Dense(6, 6), nc.Residual([nc.Tanh(), nc.Dense(6, 6)])],
    "odd_wide": lambda: [nc.Dense(37, 129), nc.GELU(), nc.Dense(129, 17), nc.ELU(0.5), nc.Dense(17, 33)],
    "single_unit": lambda: [nc.Dense(1, 1)],
    "ends_in_dropout": lambda: [nc.Dense(3, 4), nc.Sigmoid(), nc.Dropout(0.3)],
    "lstm_last_step": lambda: [nc.LSTM(5, 8), nc.Dense(8, 3)],
    "stacked_sequences": lambda: [nc.GRU(4, 6, return_sequences=True),
                                  nc.RNN(6, 5, nonlinearity="relu", return_sequences=True), nc.Dense(5, 2), nc.Softmax()],
    "recurrent_no_bias": lambda: [nc.RNN(3, 4, bias=False, return_sequences=True), nc.LSTM(4, 3, bias=False),
                                  nc.GELU()],
    "gru_one_step": lambda: [nc.GRU(2, 3), nc.Tanh()],
    "sequence_batchnorm": lambda: [nc.LSTM(3, 4, return_sequences=True), nc.BatchNorm(4), nc.Dense(4, 2)],
    "lenet": lambda: [nc.Conv2D(1, 6, 5, padding=2), nc.ReLU(), nc.MaxPool2D(2), nc.Conv2D(6, 8, 3), nc.ReLU(),
                      nc.AvgPool2D(2), nc.Flatten(), nc.Dense(32, 10), nc.Softmax()],
    "conv_odd": lambda: [nc.Conv2D(3, 5, (3, 2), stride=(2, 1), padding=(1, 0), bias=False), nc.BatchNorm(5),
                         nc.GELU(), nc.MaxPool2D(3, stride=2, padding=1), nc.Conv2D(5, 4, 3, padding="same"),
                         nc.ELU(), nc.AvgPool2D(3, stride=2, padding=1), nc.GlobalAvgPool2D(), nc.Dense(4, 3)],
    "conv_residual": lambda: [nc.Conv2D(2, 4, 2, padding="same"),
                              nc.Residual([nc.Conv2D(4, 4, 3, padding="same"), nc.LeakyReLU(0.1), nc.Conv2D(4, 4, 1)]),
                              nc.Dropout(0.2), nc.Tanh(), nc.Softmax()],
}
# per-sample input shapes of the models whose first layer does not fix one
INPUT_SHAPES = {"lenet": (12, 12, 1), "conv_odd": (11, 9, 3), "conv_residual": (5, 6, 2),
                "lstm_last_step": (7, 5), "stacked_sequences": (6, 4), "recurrent_no_bias": (9, 3),
                "gru_one_step": (1, 2), "sequence_batchnorm": (5, 3)}


def randomize(model, seed: int = 0) -> None:
    """Weights N(0, 2/fan_in), biases N(0, 0.5), BatchNorm scale N(1, 0.3), shift N(0, 0.5), running mean
    N(0, 1) and variance U(0.25, 4): nothing sits at its initial value, every branch is reached."""
    rng = np.random.default_rng(seed)
    state = {}
    for name, value in model.state_dict().items():
        bn = name.rsplit(".", 1)[0] + ".running_var" in model.state_dict()
        key = name.rsplit(".", 1)[1]
        if key == "running_var":
            state[name] = rng.uniform(0.25, 4.0, value.shape)
        elif key == "weight" and bn:
            state[name] = 1 + 0.3 * rng.standard_normal(value.shape)
        elif key.startswith("weight"):   # fan-in: every axis but the last (Dense, Conv2D, recurrent)
            state[name] = rng.standard_normal(value.shape) * math.sqrt(2.0 / math.prod(value.shape[:-1]))
        else:
            state[name] = 0.5 * rng.standard_normal(value.shape)
    model.load_state_dict(state)


def zoo_model(name, dtype, seed: int = 0):
    model = nc.Sequential(ZOO[name](), dtype=np.dtype(dtype).name, seed=0, input_shape=INPUT_SHAPES.get(name))
    randomize(model, seed)
    return model


def inputs(model, batch: int, seed: int = 1):
    """N(0, 2^2) inputs, so that the negative branches of ELU/GELU/LeakyReLU are well used."""
    return 2.0 * np.random.default_rng(seed).standard_normal((batch, *model.input_shape)).astype(model.dtype)


@st.composite
def layer_stacks(draw, width=None, depth=0):
    """(layers, output width): a random list of layers of every kind that chains from ``width`` (None: a Dense
    comes first)."""
    layers = []
    if width is None:
        width = draw(st.integers(1, 24))
        layers.append(nc.Dense(draw(st.integers(1, 24)), width, bias=draw(st.booleans())))
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["dense", "dense", "relu", "sigmoid", "tanh", "identity", "leaky_relu", "elu",
                                     "gelu", "softmax", "batchnorm", "dropout"] + (["residual"] if depth < 2 else [])))
        if kind == "dense":
            out = draw(st.integers(1, 24))
            layers.append(nc.Dense(width, out, bias=draw(st.booleans())))
            width = out
        elif kind == "leaky_relu":
            layers.append(nc.LeakyReLU(draw(st.sampled_from([0.0, 0.01, 0.3]))))
        elif kind == "elu":
            layers.append(nc.ELU(draw(st.sampled_from([0.1, 1.0, 2.5]))))
        elif kind == "batchnorm":
            layers.append(nc.BatchNorm(width, eps=draw(st.sampled_from([1e-5, 1e-3]))))
        elif kind == "dropout":
            layers.append(nc.Dropout(draw(st.sampled_from([0.0, 0.5]))))
        elif kind == "residual":
            inner, inner_width = draw(layer_stacks(width=width, depth=depth + 1))
            layers.append(nc.Residual([*inner, nc.Dense(inner_width, width)]))   # back to the block's width
        else:
            layers.append({"relu": nc.ReLU, "sigmoid": nc.Sigmoid, "tanh": nc.Tanh, "identity": nc.Identity,
                           "gelu": nc.GELU, "softmax": nc.Softmax}[kind]())
    return layers, width


def layer_kinds(layers) -> set:
    kinds = set()
    for layer in layers:
        kinds.add(type(layer).__name__)
        kinds |= layer_kinds(getattr(layer, "layers", ()))
    return kinds
