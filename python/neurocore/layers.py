"""Layers of a :class:`~neurocore.Sequential`: Dense and the activations.

A layer is a description until it joins a Sequential; from then on its arrays (``weight``, ``bias``,
``grad_weight``, ``grad_bias``) are zero-copy views of the model's flat C++ buffers.
"""
from __future__ import annotations

import numpy as np

from ._validation import as_numeric_array, check_float, check_int

__all__ = ["Layer", "Dense", "Identity", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "Softmax", "INITIALIZERS"]

INITIALIZERS = ("he_uniform", "he_normal", "glorot_uniform", "glorot_normal", "lecun_normal", "zeros")


class Layer:
    """Base class; layers are bound to at most one model."""

    _model = None

    def _bind(self, model, index: int, views: dict | None = None) -> None:
        if self._model is not None and self._model() is not None and self._model() is not model:
            raise ValueError(f"{self!r} already belongs to another Sequential; create a new layer for each model")
        import weakref

        self._model = weakref.ref(model)   # ownership only: the views keep the memory alive
        self._index = index
        self._views_dict = views if views is not None else {}

    def config(self) -> dict:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Dense(Layer):
    """Fully connected layer ``y = x @ weight + bias`` with ``weight`` of shape (in_features, out_features).

    Parameters
    ----------
    in_features, out_features : int
        Sizes, each >= 1.
    bias : bool, default True
        Learn an additive bias of shape (out_features,).
    init : str, ndarray or None
        One of :data:`INITIALIZERS`, or an array of shape (in_features, out_features). ``None`` picks He
        (uniform) when the next layer is ReLU/LeakyReLU and Glorot (uniform) otherwise. Biases start at 0.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init=None):
        self.in_features = check_int(in_features, "Dense in_features", minimum=1)
        self.out_features = check_int(out_features, "Dense out_features", minimum=1)
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"Dense bias must be True or False, got {bias!r}")
        self.use_bias = bool(bias)
        if init is None or isinstance(init, str):
            if isinstance(init, str) and init not in INITIALIZERS:
                raise ValueError(f"unknown initialiser {init!r}; expected one of {', '.join(INITIALIZERS)} or an array")
            self.init = init
        else:
            arr = as_numeric_array(init, "Dense init")
            if arr.shape != (self.in_features, self.out_features):
                raise ValueError(f"{self!r} init array must have shape {(self.in_features, self.out_features)}, got {arr.shape}")
            if not np.isfinite(arr).all():
                raise ValueError(f"{self!r} init array must be finite")
            self.init = np.array(arr, dtype=np.float64)

    def __repr__(self) -> str:
        extra = "" if self.use_bias else ", bias=False"
        return f"Dense({self.in_features}, {self.out_features}{extra})"

    def config(self) -> dict:
        return {"type": "Dense", "in_features": self.in_features, "out_features": self.out_features, "bias": self.use_bias}

    def _views(self):
        if self._model is None:
            raise RuntimeError(f"{self!r} is not part of a Sequential yet: its parameters exist once the model is built")
        return self._views_dict

    @property
    def weight(self) -> np.ndarray:
        """(in_features, out_features) writable view of the model's parameters."""
        return self._views()["weight"]

    @weight.setter
    def weight(self, value) -> None:
        self._assign("weight", value)

    @property
    def bias(self):
        """(out_features,) writable view, or None for ``bias=False``."""
        return self._views().get("bias")

    @bias.setter
    def bias(self, value) -> None:
        if not self.use_bias:
            raise ValueError(f"{self!r} was built with bias=False and has no bias to assign")
        self._assign("bias", value)

    @property
    def grad_weight(self) -> np.ndarray:
        """(in_features, out_features) read-only view of d loss / d weight from the last backward."""
        return self._views()["grad_weight"]

    @property
    def grad_bias(self):
        """(out_features,) read-only view of d loss / d bias, or None."""
        return self._views().get("grad_bias")

    def _assign(self, name: str, value) -> None:
        target = self._views()[name]
        arr = as_numeric_array(value, f"{self!r} {name}")
        if arr.shape != target.shape:
            raise ValueError(f"{self!r} {name} must have shape {target.shape}, got {arr.shape}")
        np.copyto(target, arr, casting="unsafe")


class _Activation(Layer):
    kind = "identity"
    alpha = 0.0

    def config(self) -> dict:
        return {"type": type(self).__name__}


class Identity(_Activation):
    """y = x."""

    kind = "identity"


class Sigmoid(_Activation):
    """y = 1 / (1 + exp(-x)), the lecture's logistic neuron."""

    kind = "sigmoid"


class Tanh(_Activation):
    """y = tanh(x)."""

    kind = "tanh"


class ReLU(_Activation):
    """y = max(x, 0)."""

    kind = "relu"


class LeakyReLU(_Activation):
    """y = x for x > 0, alpha * x otherwise (0 <= alpha < 1)."""

    kind = "leaky_relu"

    def __init__(self, alpha: float = 0.01):
        alpha = check_float(alpha, "LeakyReLU alpha")
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"LeakyReLU alpha must be in [0, 1), got {alpha}")
        self.alpha = alpha

    def __repr__(self) -> str:
        return f"LeakyReLU(alpha={self.alpha:g})"

    def config(self) -> dict:
        return {"type": "LeakyReLU", "alpha": self.alpha}


class Softmax(_Activation):
    """Row-wise softmax, max-subtracted (never overflows)."""

    kind = "softmax"


_BY_NAME = {cls.__name__: cls for cls in (Dense, Identity, Sigmoid, Tanh, ReLU, LeakyReLU, Softmax)}


def layer_from_config(cfg: dict) -> Layer:
    """Rebuild a layer from :meth:`Layer.config` output (used by load)."""
    cfg = dict(cfg)
    cls = _BY_NAME.get(cfg.pop("type", None))
    if cls is None:
        raise ValueError(f"unknown layer type in config: {cfg!r}")
    if cls is Dense:
        return Dense(cfg["in_features"], cfg["out_features"], bias=cfg.get("bias", True))
    return cls(**cfg)
