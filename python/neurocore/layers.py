"""Layers of a :class:`~neurocore.Sequential`: Dense, the activations, Dropout, BatchNorm, Residual, and the
recurrent RNN, LSTM and GRU.

A layer is a description until it joins a Sequential; from then on its arrays (``weight``, ``bias``,
``grad_weight``, ``grad_bias``) are zero-copy views of the model's flat C++ buffers.

Every layer maps a per-sample input shape to an output shape (:meth:`Layer.output_shape`, which raises a
ValueError naming the rule and both shapes), describes itself to the C++ core as ``(kind, ints, reals)``
(:meth:`Layer.spec`) and lists the tensors the core allocates for it (:meth:`Layer.tensor_shapes`).
"""
from __future__ import annotations

import math

import numpy as np

from ._validation import as_numeric_array, check_bool, check_float, check_int

__all__ = ["Layer", "Dense", "Identity", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "Softmax", "ELU", "GELU",
           "Dropout", "BatchNorm", "Residual", "Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "Flatten",
           "RNN", "LSTM", "GRU", "INITIALIZERS"]

MAX_FEATURES = 2**31 - 1  # a layer's width; larger products are refused by the core before allocating

INITIALIZERS = ("he_uniform", "he_normal", "glorot_uniform", "glorot_normal", "lecun_normal", "zeros")
"""Names accepted by ``Dense(init=...)``: He (fan-in, for ReLU-like layers), Glorot (fan-in + fan-out), LeCun
(fan-in), uniform or normal, and all zeros."""


class Layer:
    """Base class of every layer. A layer belongs to at most one model.

    A layer is a description until a :class:`~neurocore.Sequential` is built from it; from then on its arrays
    are views of that model's memory. Passing layers that already belong to a model to a new ``Sequential``
    copies them with their weights (the way to reuse trained layers).

    ``trainable`` (default True): set to False to freeze a layer (transfer learning): no gradient is
    computed for its parameters and the optimizer leaves them unchanged. A frozen BatchNorm still
    normalises with batch statistics and updates its running statistics in training, as in PyTorch.
    """

    _model = None
    _trainable = True

    @property
    def trainable(self) -> bool:
        """Whether training updates this layer (default True); assign False to freeze it, True to thaw it.

        Takes effect at once, also on a model in use. For a Residual block it applies to every layer inside.
        Raises TypeError unless the value is True or False.
        """
        return self._trainable

    @trainable.setter
    def trainable(self, value) -> None:
        self._trainable = check_bool(value, "trainable")
        model = self._model() if self._model is not None else None
        if model is not None:
            model._net.set_trainable(self._index, self._trainable)

    def spec(self) -> tuple:
        """The layer as the C++ network takes it: (kind, ints, reals) (used by Sequential)."""
        raise NotImplementedError

    def output_shape(self, shape: tuple) -> tuple:
        """The per-sample output shape for a per-sample input `shape`; ValueError when the layer cannot take
        it (the message continues "Sequential layer i ..."). Element-wise layers keep the shape."""
        return shape

    def fixed_input_shape(self):
        """The per-sample input shape this layer fixes by itself when it comes first (Dense: (in,)), or None."""
        return None

    def needs_input_shape(self) -> str:
        """Non-empty when this layer, coming first, leaves the input shape open (Conv2D fixes only C): what
        to pass, for the error message."""
        return ""

    def tensor_shapes(self) -> list:
        """[(name, shape, is_state)] of the tensors the core allocates for this layer, in its order."""
        return []

    def _clone(self) -> Layer:
        """An unbound copy with the same configuration (its arrays are copied by Sequential)."""
        layer = layer_from_config(self.config())
        layer._trainable = self._trainable
        return layer

    def _bind(self, model, index: int, views: dict | None = None) -> None:
        if self._model is not None and self._model() is not None and self._model() is not model:
            raise ValueError(f"{self!r} already belongs to another Sequential; create a new layer for each model")
        import weakref

        self._model = weakref.ref(model)   # ownership only: the views keep the memory alive
        self._index = index
        self._views_dict = views if views is not None else {}

    def config(self) -> dict:
        """The layer's constructor arguments as a JSON-ready dict with its ``"type"`` (what ``save`` stores;
        parameters are not included)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Dense(Layer):
    """Fully connected layer ``y = x @ weight + bias`` with ``weight`` of shape (in_features, out_features).

    Input (batch, in_features), output (batch, out_features); on sequences (batch, steps, in_features) it
    applies at every step, as ``torch.nn.Linear``. Followed by an activation, the two run as one fused kernel.

    Parameters
    ----------
    in_features, out_features : int
        Sizes, each >= 1.
    bias : bool, default True
        Learn an additive bias of shape (out_features,).
    init : str, ndarray or None, default None
        One of :data:`INITIALIZERS`, or an array of shape (in_features, out_features). ``None`` picks He
        (uniform) when the next layer is ReLU, LeakyReLU, ELU or GELU and Glorot (uniform) otherwise. Biases
        start at 0. The model's ``seed`` seeds the draw.

    Raises
    ------
    TypeError
        Sizes that are not integers, a non-bool ``bias``, an ``init`` that is neither a name nor numeric.
    ValueError
        Sizes < 1 (or >= 2**31), an unknown initialiser name, an ``init`` array of another shape or with
        NaN/Inf.

    Examples
    --------
    >>> import neurocore as nc
    >>> model = nc.Sequential([nc.Dense(64, 10)])
    >>> model.layers[0].weight.shape
    (64, 10)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init=None):
        self.in_features = check_int(in_features, "Dense in_features", minimum=1, maximum=MAX_FEATURES)
        self.out_features = check_int(out_features, "Dense out_features", minimum=1, maximum=MAX_FEATURES)
        self.use_bias = check_bool(bias, "Dense bias")
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

    def spec(self) -> tuple:
        return ("dense", (self.in_features, self.out_features, int(self.use_bias)), ())

    def output_shape(self, shape: tuple) -> tuple:
        if len(shape) not in (1, 2):
            raise ValueError(f"{self!r} takes (batch, features) or (batch, steps, features) inputs but the layer "
                             f"before it produces samples of shape {shape}; put a Flatten() before it")
        if shape[-1] != self.in_features:
            what = "inputs" if len(shape) == 1 else "features per step"
            raise ValueError(f"{self!r} expects {self.in_features} {what} but the layer before it produces {shape[-1]}")
        return (*shape[:-1], self.out_features)   # on sequences: at every step, as torch.nn.Linear

    def fixed_input_shape(self):
        return (self.in_features,)

    def tensor_shapes(self) -> list:
        out = [("weight", (self.in_features, self.out_features), False)]
        return out + ([("bias", (self.out_features,), False)] if self.use_bias else [])

    def fans(self) -> tuple:
        """(fan_in, fan_out) for the initialisers."""
        return self.in_features, self.out_features

    def _views(self):
        if self._model is None:
            raise RuntimeError(f"{self!r} is not part of a Sequential yet: its parameters exist once the model is built")
        return self._views_dict

    @property
    def weight(self) -> np.ndarray:
        """(in_features, out_features) writable view of the model's parameters.

        Assigning (``layer.weight = array``) copies an array of the same shape into the model (ValueError for
        another shape). Before the layer joins a Sequential there is no array: RuntimeError.
        """
        return self._views()["weight"]

    @weight.setter
    def weight(self, value) -> None:
        self._assign("weight", value)

    @property
    def bias(self):
        """(out_features,) writable view, or None for ``bias=False``; assignable like ``weight`` (ValueError
        for ``bias=False`` layers)."""
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

    def spec(self) -> tuple:
        return (self.kind, (), (float(self.alpha),))


class Identity(_Activation):
    """y = x (an output layer for regression). Activations keep the shape: (batch, features) in and out."""

    kind = "identity"


class Sigmoid(_Activation):
    """y = 1 / (1 + exp(-x)), element-wise: the lecture's logistic neuron (pair it with BCELoss).

    Its derivative y (1 - y) is at most 1/4. Shape-preserving, no parameters.
    """

    kind = "sigmoid"


class Tanh(_Activation):
    """y = tanh(x), element-wise. Shape-preserving, no parameters."""

    kind = "tanh"


class ReLU(_Activation):
    """y = max(x, 0), element-wise (derivative 0 at x = 0). Shape-preserving, no parameters."""

    kind = "relu"


class LeakyReLU(_Activation):
    """y = x for x > 0, alpha * x otherwise, element-wise.

    Parameters
    ----------
    alpha : float in [0, 1), default 0.01
        The slope for negative inputs. TypeError for a non-number, ValueError outside [0, 1) or non-finite.
    """

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
    """Row-wise softmax y_j = exp(x_j) / sum_k exp(x_k), max-subtracted (never overflows).

    For probabilities out of a classifier; to train, leave it out and use CrossEntropyLoss on the logits.
    """

    kind = "softmax"


class ELU(_Activation):
    """y = x for x > 0, alpha * (exp(x) - 1) otherwise, element-wise.

    Parameters
    ----------
    alpha : float > 0, default 1.0
        TypeError for a non-number, ValueError for alpha <= 0 or non-finite.
    """

    kind = "elu"

    def __init__(self, alpha: float = 1.0):
        alpha = check_float(alpha, "ELU alpha")
        if alpha <= 0:
            raise ValueError(f"ELU alpha must be > 0, got {alpha}")
        self.alpha = alpha

    def __repr__(self) -> str:
        return f"ELU(alpha={self.alpha:g})"

    def config(self) -> dict:
        return {"type": "ELU", "alpha": self.alpha}


class GELU(_Activation):
    """y = x * Phi(x), Phi the standard normal CDF, in the exact erf form (PyTorch's default), element-wise."""

    kind = "gelu"


class Dropout(Layer):
    """Inverted dropout: in training (``fit``, ``forward(x, training=True)``) each element is zeroed with
    probability p and the rest scaled by 1/(1-p); the identity in ``predict``/``evaluate``. Masks come
    from the model's seeded generator, so runs are reproducible.

    Parameters
    ----------
    p : float in [0, 1), default 0.5
        The probability of dropping an element. TypeError for a non-number, ValueError outside [0, 1).
    """

    def __init__(self, p: float = 0.5):
        p = check_float(p, "Dropout p")
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout p must be in [0, 1), got {p}")
        self.p = p

    def __repr__(self) -> str:
        return f"Dropout(p={self.p:g})"

    def config(self) -> dict:
        return {"type": "Dropout", "p": self.p}

    def spec(self) -> tuple:
        return ("dropout", (), (self.p,))


class BatchNorm(Layer):
    """Batch normalisation over the last axis: ``torch.nn.BatchNorm1d`` on (batch, features) inputs, and
    ``torch.nn.BatchNorm2d`` on (batch, H, W, C) images (per channel over batch, height and width).

    Training normalises with the batch mean and (biased) variance and updates ``running_mean`` /
    ``running_var`` (unbiased variance) with ``momentum``; inference uses the running statistics.
    ``weight`` (scale, starts at 1) and ``bias`` (shift, starts at 0) are learned.

    Parameters
    ----------
    features : int >= 1
        The width of its input (batch, features); the output has the same shape.
    momentum : float in [0, 1], default 0.1
        running = (1 - momentum) * running + momentum * batch statistic.
    eps : float > 0, default 1e-5
        Added to the variance before the square root.

    Raises
    ------
    TypeError, ValueError
        Arguments of the wrong type or outside the ranges above. Training needs at least 2 samples per batch:
        ``fit`` and ``forward(training=True)`` raise ValueError for a batch of 1.
    """

    def __init__(self, features: int, momentum: float = 0.1, eps: float = 1e-5):
        self.features = check_int(features, "BatchNorm features", minimum=1, maximum=MAX_FEATURES)
        momentum = check_float(momentum, "BatchNorm momentum")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm momentum must be in [0, 1], got {momentum}")
        eps = check_float(eps, "BatchNorm eps")
        if eps <= 0:
            raise ValueError(f"BatchNorm eps must be > 0, got {eps}")
        self.momentum, self.eps = momentum, eps

    def __repr__(self) -> str:
        return f"BatchNorm({self.features})"

    def config(self) -> dict:
        return {"type": "BatchNorm", "features": self.features, "momentum": self.momentum, "eps": self.eps}

    def spec(self) -> tuple:
        return ("batchnorm", (self.features,), (self.momentum, self.eps))

    def output_shape(self, shape: tuple) -> tuple:
        if shape[-1] != self.features:
            what = "features" if len(shape) == 1 else "channels (the last axis)"
            raise ValueError(f"{self!r} expects {self.features} {what} but the layer before it produces "
                             f"{shape[-1] if len(shape) == 1 else shape}")
        return shape

    def fixed_input_shape(self):
        return (self.features,)

    def tensor_shapes(self) -> list:
        c = (self.features,)
        return [("weight", c, False), ("bias", c, False), ("running_mean", c, True), ("running_var", c, True)]

    _views = Dense._views
    _assign = Dense._assign
    weight = Dense.weight
    bias = Dense.bias
    grad_weight = Dense.grad_weight
    grad_bias = Dense.grad_bias
    use_bias = True

    @property
    def running_mean(self) -> np.ndarray:
        """(features,) writable view of the running mean used in inference (starts at 0)."""
        return self._views()["running_mean"]

    @property
    def running_var(self) -> np.ndarray:
        """(features,) writable view of the running (unbiased) variance used in inference (starts at 1)."""
        return self._views()["running_var"]


class Residual(Layer):
    """A skip connection around a block: ``y = x + f(x)`` (the ResNet block) for layers that keep the
    width of their input.

    Parameters
    ----------
    layers : list of Layer
        The block f, e.g. ``[Dense(64, 64), ReLU(), Dense(64, 64)]``; blocks may nest. Input and output are
        (batch, width).

    Raises
    ------
    TypeError
        ``layers`` is not a list of neurocore layers.
    ValueError
        An empty list, sizes that do not chain, or a block whose output width differs from its input width.
    """

    def __init__(self, layers):
        layers = check_layer_list(layers, "Residual")
        shape_in = fixed_input_shape(layers)
        if shape_in is not None:
            shape_out = infer_shapes(layers, shape_in, "Residual")[-1]
            if shape_out != shape_in:
                what = (f"width: its input has {shape_in[0]} features but its output has {shape_out[0]}"
                        if len(shape_in) == len(shape_out) == 1 else
                        f"shape: its input is {shape_in} but its output is {shape_out}")
                raise ValueError(f"Residual block must keep its {what}")
        self.layers = layers
        self.width = shape_in[0] if shape_in is not None and len(shape_in) == 1 else None
        self._shape = shape_in

    def output_shape(self, shape: tuple) -> tuple:
        if self._shape is not None and tuple(shape) != self._shape:
            if len(self._shape) == 1 and len(shape) == 1:
                raise ValueError(f"is a residual block of width {self._shape[0]} after a layer producing {shape[0]}")
            raise ValueError(f"is a residual block over samples of shape {self._shape} after a layer producing {shape}")
        out = infer_shapes(self.layers, tuple(shape), "Residual")[-1]
        if out != tuple(shape):
            raise ValueError(f"is a residual block that must keep its input's shape {tuple(shape)}, but its "
                             f"layers produce {out}")
        return out

    def fixed_input_shape(self):
        return self._shape

    def __repr__(self) -> str:
        return "Residual([" + ", ".join(repr(layer) for layer in self.layers) + "])"

    def config(self) -> dict:
        return {"type": "Residual", "layers": [layer_config(layer) for layer in self.layers]}

    @Layer.trainable.setter
    def trainable(self, value) -> None:
        Layer.trainable.fset(self, value)
        for layer in self.layers:
            layer.trainable = value

    def _clone(self) -> Residual:
        block = Residual([layer._clone() for layer in self.layers])
        block._trainable = self._trainable
        return block


def _pair(value, name: str, minimum: int) -> tuple:
    """An int or a pair of ints, each >= minimum, as a pair."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        return tuple(check_int(v, name, minimum=minimum, maximum=MAX_FEATURES) for v in value)
    v = check_int(value, name, minimum=minimum, maximum=MAX_FEATURES)
    return (v, v)


def _window_output(layer, shape: tuple, kernel: tuple, stride: tuple, pads: tuple) -> tuple:
    """(oh, ow) of a window sliding over (H, W) images; ValueError naming the layer and the shapes."""
    if len(shape) != 3:
        raise ValueError(f"{layer!r} takes (batch, H, W, C) images but the layer before it produces samples of shape "
                         f"{shape}")
    hp, wp = shape[0] + pads[0] + pads[1], shape[1] + pads[2] + pads[3]
    if hp < kernel[0] or wp < kernel[1]:
        raise ValueError(f"{layer!r} needs images of at least {kernel[0] - pads[0] - pads[1]}x"
                         f"{kernel[1] - pads[2] - pads[3]} pixels, got samples of shape {shape}: the output would be "
                         f"empty")
    return (hp - kernel[0]) // stride[0] + 1, (wp - kernel[1]) // stride[1] + 1


class Conv2D(Layer):
    """2-D convolution over channels-last images: x (N, H, W, in_channels) -> (N, OH, OW, out_channels).

    ``y[n, p, q, o] = bias[o] + sum over (i, j, c) of x[n, p*sh + i - pt, q*sw + j - pl, c] * weight[i, j, c, o]``
    (cross-correlation, as in PyTorch), zero padding.

    ``weight`` is (kh, kw, in_channels, out_channels) and ``bias`` (out_channels,): zero-copy views.

    Parameters
    ----------
    in_channels, out_channels : int >= 1
    kernel_size : int or (int, int)
    stride : int or (int, int), default 1
    padding : int, (int, int), "valid" (0) or "same", default 0
        "same" needs stride 1; an even kernel pads one more pixel at the bottom/right, as PyTorch's
        ``padding="same"``.
    bias : bool, default True
    init : str, ndarray (kh, kw, in_channels, out_channels) or None, default None
        ``None`` picks He (uniform) when a ReLU-like activation follows, else Glorot, with
        fan_in = kh*kw*in_channels.

    Raises
    ------
    TypeError, ValueError
        Arguments of the wrong type or range (sizes < 1, an unknown padding, "same" with a stride, an init
        array of another shape or with NaN/Inf). In a Sequential: input channels that differ from
        in_channels, or an image smaller than the kernel (the message names the layer and the shapes).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, bias: bool = True,
                 init=None):
        self.in_channels = check_int(in_channels, "Conv2D in_channels", minimum=1, maximum=MAX_FEATURES)
        self.out_channels = check_int(out_channels, "Conv2D out_channels", minimum=1, maximum=MAX_FEATURES)
        self.kernel_size = _pair(kernel_size, "Conv2D kernel_size", 1)
        self.stride = _pair(stride, "Conv2D stride", 1)
        self.use_bias = check_bool(bias, "Conv2D bias")
        if isinstance(padding, str):
            if padding == "valid":
                padding = 0
            elif padding == "same":
                if self.stride != (1, 1):
                    raise ValueError(f"Conv2D padding='same' needs stride 1, got stride={stride!r}")
            else:
                raise ValueError(f"Conv2D padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
        self.padding = padding if padding == "same" else _pair(padding, "Conv2D padding", 0)
        if padding == "same":   # PyTorch: total k - 1, the extra pixel of an even kernel at the end
            (kh, kw) = self.kernel_size
            self._pads = ((kh - 1) // 2, kh - 1 - (kh - 1) // 2, (kw - 1) // 2, kw - 1 - (kw - 1) // 2)
        else:
            self._pads = (self.padding[0], self.padding[0], self.padding[1], self.padding[1])
        shape = self.weight_shape
        if init is None or isinstance(init, str):
            if isinstance(init, str) and init not in INITIALIZERS:
                raise ValueError(f"unknown initialiser {init!r}; expected one of {', '.join(INITIALIZERS)} or an array")
            self.init = init
        else:
            arr = as_numeric_array(init, "Conv2D init")
            if arr.shape != shape:
                raise ValueError(f"{self!r} init array must have shape {shape}, got {arr.shape}")
            if not np.isfinite(arr).all():
                raise ValueError(f"{self!r} init array must be finite")
            self.init = np.array(arr, dtype=np.float64)

    @property
    def weight_shape(self) -> tuple:
        """(kh, kw, in_channels, out_channels), the shape of ``weight``."""
        return (*self.kernel_size, self.in_channels, self.out_channels)

    def __repr__(self) -> str:
        k = self.kernel_size[0] if self.kernel_size[0] == self.kernel_size[1] else self.kernel_size
        extra = f", stride={self.stride[0] if self.stride[0] == self.stride[1] else self.stride}" if self.stride != (1, 1) else ""
        if self.padding == "same":
            extra += ", padding='same'"
        elif self.padding != (0, 0):
            extra += f", padding={self.padding[0] if self.padding[0] == self.padding[1] else self.padding}"
        if not self.use_bias:
            extra += ", bias=False"
        return f"Conv2D({self.in_channels}, {self.out_channels}, kernel_size={k}{extra})"

    def config(self) -> dict:
        return {"type": "Conv2D", "in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": self.padding if self.padding == "same" else list(self.padding), "bias": self.use_bias}

    def spec(self) -> tuple:
        return ("conv2d", (self.in_channels, self.out_channels, *self.kernel_size, *self.stride, *self._pads,
                           int(self.use_bias)), ())

    def output_shape(self, shape: tuple) -> tuple:
        if len(shape) == 3 and shape[2] != self.in_channels:
            raise ValueError(f"{self!r} expects {self.in_channels} input channels but the layer before it produces "
                             f"samples of shape {shape} ({shape[2]} channels)")
        oh, ow = _window_output(self, shape, self.kernel_size, self.stride, self._pads)
        return (oh, ow, self.out_channels)

    def needs_input_shape(self) -> str:
        return f"input_shape=(H, W, {self.in_channels}): {self!r} fixes the channels but not the image size"

    def tensor_shapes(self) -> list:
        out = [("weight", self.weight_shape, False)]
        return out + ([("bias", (self.out_channels,), False)] if self.use_bias else [])

    def fans(self) -> tuple:
        """(fan_in, fan_out) = (kh*kw*in_channels, kh*kw*out_channels) for the He/Glorot initialisers."""
        kh, kw = self.kernel_size
        return kh * kw * self.in_channels, kh * kw * self.out_channels

    _views = Dense._views
    _assign = Dense._assign
    weight = Dense.weight
    bias = Dense.bias
    grad_weight = Dense.grad_weight
    grad_bias = Dense.grad_bias


class _Pool2D(Layer):
    kind = ""

    def __init__(self, kernel_size, stride=None, padding=0):
        name = type(self).__name__
        self.kernel_size = _pair(kernel_size, f"{name} kernel_size", 1)
        self.stride = self.kernel_size if stride is None else _pair(stride, f"{name} stride", 1)
        self.padding = _pair(padding, f"{name} padding", 0)
        if self.padding[0] > self.kernel_size[0] // 2 or self.padding[1] > self.kernel_size[1] // 2:
            raise ValueError(f"{name} padding must be at most half the kernel size, got padding={padding!r} for "
                             f"kernel_size={kernel_size!r}")

    def __repr__(self) -> str:
        def one(p):
            return p[0] if p[0] == p[1] else p
        extra = f", stride={one(self.stride)}" if self.stride != self.kernel_size else ""
        extra += f", padding={one(self.padding)}" if self.padding != (0, 0) else ""
        return f"{type(self).__name__}({one(self.kernel_size)}{extra})"

    def config(self) -> dict:
        return {"type": type(self).__name__, "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding)}

    def _pads(self) -> tuple:
        return (self.padding[0], self.padding[0], self.padding[1], self.padding[1])

    def spec(self) -> tuple:
        return (self.kind, (*self.kernel_size, *self.stride, *self._pads()), ())

    def output_shape(self, shape: tuple) -> tuple:
        oh, ow = _window_output(self, shape, self.kernel_size, self.stride, self._pads())
        return (oh, ow, shape[2])

    def needs_input_shape(self) -> str:
        return f"input_shape=(H, W, C) when it starts with {self!r}"


class MaxPool2D(_Pool2D):
    """Max over each kernel_size window of (N, H, W, C) images, per channel; stride defaults to
    kernel_size; padding (at most half the kernel) pads with -inf."""

    kind = "maxpool2d"


class AvgPool2D(_Pool2D):
    """Average over each kernel_size window of (N, H, W, C) images, per channel; stride defaults to
    kernel_size; zero padding counts in the average (PyTorch's default, count_include_pad=True)."""

    kind = "avgpool2d"


class GlobalAvgPool2D(Layer):
    """(N, H, W, C) -> (N, C): the average of each channel over the image."""

    def config(self) -> dict:
        return {"type": "GlobalAvgPool2D"}

    def spec(self) -> tuple:
        return ("globalavgpool2d", (), ())

    def output_shape(self, shape: tuple) -> tuple:
        if len(shape) != 3:
            raise ValueError(f"{self!r} takes (batch, H, W, C) images but the layer before it produces samples of "
                             f"shape {shape}")
        return (shape[2],)

    def needs_input_shape(self) -> str:
        return f"input_shape=(H, W, C) when it starts with {self!r}"


class Flatten(Layer):
    """(N, H, W, C) -> (N, H*W*C) in row-major (h, w, c) order (any sample shape: one axis). No copy."""

    def config(self) -> dict:
        return {"type": "Flatten"}

    def spec(self) -> tuple:
        return ("flatten", (), ())

    def output_shape(self, shape: tuple) -> tuple:
        return (math.prod(shape),)


class _Recurrent(Layer):
    """Shared by RNN, LSTM and GRU: sequences (batch, steps, features) in, the last hidden state (batch,
    hidden) or every step's (batch, steps, hidden) out; equations, gate order and biases are PyTorch's
    (one layer, ``batch_first=True``, zero initial state). Parameters are writable views in our (in, out)
    layout: ``weight_ih`` (input_size, G*hidden) is torch's ``weight_ih_l0.T``, ``weight_hh`` (hidden, G*hidden)
    is ``weight_hh_l0.T``; ``bias_ih``, ``bias_hh`` (G*hidden,); each with its ``grad_`` twin."""

    kind = ""
    gates = 1

    def __init__(self, input_size: int, hidden_size: int, return_sequences: bool = False, bias: bool = True,
                 init=None):
        name = type(self).__name__
        self.input_size = check_int(input_size, f"{name} input_size", minimum=1, maximum=MAX_FEATURES)
        self.hidden_size = check_int(hidden_size, f"{name} hidden_size", minimum=1, maximum=MAX_FEATURES)
        self.return_sequences = check_bool(return_sequences, f"{name} return_sequences")
        self.use_bias = check_bool(bias, f"{name} bias")
        if init is not None and init not in INITIALIZERS:
            raise ValueError(f"unknown initialiser {init!r} for {name}; expected None (PyTorch's uniform "
                             f"+-1/sqrt(hidden_size)) or one of {', '.join(INITIALIZERS)}")
        self.init = init

    def _options(self) -> list:
        """The non-default options, as repr shows them."""
        return (["return_sequences=True"] if self.return_sequences else []) + ([] if self.use_bias else ["bias=False"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join([str(self.input_size), str(self.hidden_size), *self._options()])})"

    def config(self) -> dict:
        cfg = {"type": type(self).__name__, "input_size": self.input_size, "hidden_size": self.hidden_size,
               "return_sequences": self.return_sequences, "bias": self.use_bias}
        return cfg

    def spec(self) -> tuple:
        return (self.kind, (self.input_size, self.hidden_size, int(self.return_sequences), int(self.use_bias)), ())

    def output_shape(self, shape: tuple) -> tuple:
        name = type(self).__name__
        if len(shape) != 2:
            raise ValueError(f"{self!r} takes sequences (batch, steps, features) but the layer before it produces "
                             f"samples of shape {shape}; give Sequential input_shape=(steps, {self.input_size})")
        if shape[1] != self.input_size:
            raise ValueError(f"{self!r} expects {self.input_size} features per step but the layer before it "
                             f"produces {shape[1]} ({name} input_size must match)")
        return (shape[0], self.hidden_size) if self.return_sequences else (self.hidden_size,)

    def needs_input_shape(self) -> str:
        return f"input_shape=(steps, {self.input_size}) when it starts with {self!r}"

    def tensor_shapes(self) -> list:
        gh = self.gates * self.hidden_size
        out = [("weight_ih", (self.input_size, gh), False), ("weight_hh", (self.hidden_size, gh), False)]
        if self.use_bias:
            out += [("bias_ih", (gh,), False), ("bias_hh", (gh,), False)]
        return out

    def init_tensors(self, views: dict, rng) -> None:
        """PyTorch's default (every tensor uniform in +-1/sqrt(hidden_size)), or ``init`` for the two
        weights (fans (in, G*hidden)) with zero biases."""
        if self.init is None:
            bound = 1.0 / math.sqrt(self.hidden_size)
            for name, shape, _ in self.tensor_shapes():
                views[name][...] = rng.uniform(-bound, bound, shape)
            return
        for name, shape, _ in self.tensor_shapes():
            views[name][...] = initial_weights(self.init, shape, *shape, rng) if name.startswith("weight") else 0.0

    _views = Dense._views
    _assign = Dense._assign


def _tensor_property(name: str, doc: str, writable: bool):
    def get(self):
        return self._views().get(name)

    def put(self, value):
        if name not in self._views():
            raise ValueError(f"{self!r} was built with bias=False and has no {name} to assign")
        self._assign(name, value)

    return property(get, put if writable else None, doc=doc)


for _name, _doc in (("weight_ih", "(input_size, G*hidden) writable view: torch's weight_ih_l0.T"),
                    ("weight_hh", "(hidden, G*hidden) writable view: torch's weight_hh_l0.T"),
                    ("bias_ih", "(G*hidden,) writable view, or None for bias=False"),
                    ("bias_hh", "(G*hidden,) writable view, or None for bias=False")):
    setattr(_Recurrent, _name, _tensor_property(_name, _doc, True))
    setattr(_Recurrent, "grad_" + _name, _tensor_property("grad_" + _name, "read-only gradient view of " + _name,
                                                          False))


class RNN(_Recurrent):
    """Elman RNN: ``h_t = act(x_t W_ih + b_ih + h_{t-1} W_hh + b_hh)``, act ``"tanh"`` or ``"relu"``
    (``torch.nn.RNN``).

    Parameters
    ----------
    input_size, hidden_size : int >= 1
    nonlinearity : {"tanh", "relu"}
    return_sequences : bool. False: the output is the last hidden state (batch, hidden_size); True: every
        step's (batch, steps, hidden_size), which another recurrent layer can take.
    bias : bool. Learn ``bias_ih`` and ``bias_hh`` (hidden_size,).
    init : None (PyTorch's uniform +-1/sqrt(hidden_size) for every tensor) or one of :data:`INITIALIZERS` for
        the two weights, biases 0.
    """

    kind = "rnn"
    gates = 1

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh", return_sequences: bool = False,
                 bias: bool = True, init=None):
        super().__init__(input_size, hidden_size, return_sequences, bias, init)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity

    def _options(self) -> list:
        return ([] if self.nonlinearity == "tanh" else ["nonlinearity='relu'"]) + super()._options()

    def config(self) -> dict:
        return {**super().config(), "nonlinearity": self.nonlinearity}

    def spec(self) -> tuple:
        kind, ints, reals = super().spec()
        return (kind, (*ints, int(self.nonlinearity == "relu")), reals)


class LSTM(_Recurrent):
    """Long short-term memory (``torch.nn.LSTM``): gates i, f, g, o (G = 4) from
    ``x_t W_ih + b_ih + h_{t-1} W_hh + b_hh``; ``c_t = f c_{t-1} + i g``, ``h_t = o tanh(c_t)``.

    Parameters as :class:`RNN` (without ``nonlinearity``); the gate blocks of ``weight_ih`` etc. are the
    columns [0:H] (i), [H:2H] (f), [2H:3H] (g), [3H:4H] (o).
    """

    kind = "lstm"
    gates = 4


class GRU(_Recurrent):
    """Gated recurrent unit (``torch.nn.GRU``): gates r, z, n (G = 3);
    ``n = tanh(x_t W_in + b_in + r (h_{t-1} W_hn + b_hn))``, ``h_t = (1 - z) n + z h_{t-1}``.

    Parameters as :class:`RNN` (without ``nonlinearity``); gate blocks [0:H] (r), [H:2H] (z), [2H:3H] (n).
    """

    kind = "gru"
    gates = 3


def initial_weights(init: str, shape: tuple, fan_in: int, fan_out: int, rng) -> np.ndarray:
    """A weight of `shape` drawn by the initialiser named `init` (one of :data:`INITIALIZERS`)."""
    if init == "zeros":
        return np.zeros(shape)
    if init == "he_uniform":
        return rng.uniform(-1, 1, shape) * math.sqrt(6.0 / fan_in)
    if init == "he_normal":
        return rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)
    if init == "glorot_uniform":
        return rng.uniform(-1, 1, shape) * math.sqrt(6.0 / (fan_in + fan_out))
    if init == "glorot_normal":
        return rng.standard_normal(shape) * math.sqrt(2.0 / (fan_in + fan_out))
    return rng.standard_normal(shape) * math.sqrt(1.0 / fan_in)   # lecun_normal


def infer_shapes(layers, shape: tuple, owner: str) -> list:
    """The per-sample output shape after each layer, starting from `shape`; a ValueError names the owner,
    the layer's position, the rule and both shapes."""
    shapes = []
    shape = tuple(shape)
    for i, layer in enumerate(layers):
        try:
            shape = tuple(int(d) for d in layer.output_shape(shape))
        except ValueError as exc:
            raise ValueError(f"{owner} layer {i} {exc}" if str(exc).startswith("is ") else
                             f"{owner} layer {i}: {exc}") from None
        shapes.append(shape)
    return shapes


def fixed_input_shape(layers):
    """The per-sample input shape a list of layers fixes by itself (the first layer that fixes one; layers
    before it keep their input's shape), or None; with the reason when a layer leaves it open."""
    for layer in layers:
        shape = layer.fixed_input_shape()
        if shape is not None:
            return tuple(shape)
        if layer.needs_input_shape():
            return None
    return None


def missing_input_shape(layers) -> str:
    """Why a list of layers does not fix its input shape (for the error message)."""
    for layer in layers:
        if layer.needs_input_shape():
            return layer.needs_input_shape()
        if isinstance(layer, Residual):
            reason = missing_input_shape(layer.layers)
            if reason:
                return reason
    return "input_shape=(...) (the shape of one sample) when no layer fixes it, as a Dense does"


def check_layer_list(layers, owner: str) -> list:
    """A non-empty list of neurocore layers, or TypeError/ValueError naming the owner."""
    if isinstance(layers, Layer) or not hasattr(layers, "__iter__"):
        raise TypeError(f"{owner} expects a list of layers, got {type(layers).__name__}")
    layers = list(layers)
    if not layers:
        raise ValueError(f"{owner} needs at least one layer")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"{owner} layer {i} must be a neurocore layer, got {type(layer).__name__} {layer!r}")
    return layers


def flatten(layers) -> list:
    """Layers in the C++ network's order: a Residual becomes (begin marker, its layers, end marker).
    Returns (layer or None, spec) pairs; the end marker has no layer."""
    out = []
    for layer in layers:
        if isinstance(layer, Residual):
            out.append((layer, ("residual_begin", (), ())))
            out.extend(flatten(layer.layers))
            out.append((None, ("residual_end", (), ())))
        else:
            out.append((layer, layer.spec()))
    return out


def layer_config(layer: Layer) -> dict:
    cfg = layer.config()
    if not layer.trainable:
        cfg["trainable"] = False
    return cfg


_BY_NAME = {cls.__name__: cls for cls in (Dense, Identity, Sigmoid, Tanh, ReLU, LeakyReLU, Softmax, ELU, GELU,
                                          Dropout, BatchNorm, Residual, Conv2D, MaxPool2D, AvgPool2D,
                                          GlobalAvgPool2D, Flatten, RNN, LSTM, GRU)}


def layer_from_config(cfg: dict) -> Layer:
    """Rebuild a layer from :meth:`Layer.config` output (used by load)."""
    if not isinstance(cfg, dict):
        raise ValueError(f"a layer config must be a dict, got {cfg!r}")
    cfg = dict(cfg)
    trainable = cfg.pop("trainable", True)
    cls = _BY_NAME.get(cfg.pop("type", None))
    if cls is None:
        raise ValueError(f"unknown layer type in config: {cfg!r}")
    if cls is Dense:
        layer = Dense(cfg["in_features"], cfg["out_features"], bias=cfg.get("bias", True))
    elif cls is Residual:
        layer = Residual([layer_from_config(c) for c in cfg["layers"]])
    elif cls is Conv2D:
        layer = Conv2D(cfg["in_channels"], cfg["out_channels"], cfg["kernel_size"], stride=cfg.get("stride", 1),
                       padding=cfg.get("padding", 0), bias=cfg.get("bias", True))
    else:
        layer = cls(**cfg)
    layer._trainable = bool(trainable)
    if isinstance(layer, Residual):
        for inner in layer.layers:
            inner._trainable = inner._trainable and layer._trainable
    return layer
