"""neurocore: fast CPU training and inference of dense and convolutional neural networks.

A C++ core (packed SIMD GEMM, fused activations, losses and optimizer steps, OpenMP) behind a small
Sequential API. Weights are (in_features, out_features): y = x @ W + b.
"""
from . import _load_core  # noqa: F401  (first: it loads the compiled core, neurocore._core)

# isort: split
from . import _core, callbacks, distributed, schedules  # noqa: F401
from ._runtime import _select_isa_from_env, cpu_info, get_num_threads, set_num_threads
from .augment import GaussianNoise
from .callbacks import EarlyStopping
from .interop import from_torch
from .io import load
from .layers import (
    ELU,
    GELU,
    GRU,
    LSTM,
    RNN,
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Identity,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Residual,
    Sigmoid,
    Softmax,
    Tanh,
)
from .losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from .model import Sequential
from .optim import SGD, Adam, AdamW

__version__ = "0.1.0"

__all__ = [
    "Sequential", "Dense", "Identity", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "Softmax", "ELU", "GELU",
    "Dropout", "BatchNorm", "Residual", "Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "Flatten",
    "RNN", "LSTM", "GRU",
    "MSELoss", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "SGD", "Adam", "AdamW",
    "GaussianNoise", "EarlyStopping", "schedules", "callbacks", "distributed",
    "load", "from_torch", "cpu_info", "set_num_threads", "get_num_threads", "__version__",
]

_select_isa_from_env()
del _select_isa_from_env
