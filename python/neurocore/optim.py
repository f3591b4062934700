"""Optimizers: fused single-pass C++ updates over the model's flat parameter buffer.

Each follows the update rule of its ``torch.optim`` namesake, so results compare step for step. All take
``clip_norm``: when set, gradients are scaled so their global L2 norm is at most clip_norm before the step
(``torch.nn.utils.clip_grad_norm_``'s rule), and ``decay_bias``: False exempts every bias vector from
weight decay (scikit-learn's and Keras's convention; PyTorch needs a parameter group for it). Frozen layers
(``trainable=False``) are skipped.
"""
from __future__ import annotations

import numbers
import weakref

import numpy as np

from ._validation import check_bool, check_float

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]


class Optimizer:
    """Base class: hyper-parameters, the flat state buffers (allocated once per model) and a step count.

    An optimizer serves one model: its state is allocated when ``fit`` or :meth:`step` first sees the model,
    and using it on a second live model raises ValueError. Bad hyper-parameters raise TypeError (wrong type)
    or ValueError (out of range) when it is created.
    """

    kind = ""
    n_states = 0

    @property
    def steps(self) -> int:
        """Optimizer steps taken on the current model."""
        return int(self._step_counter[0])

    @steps.setter
    def steps(self, value: int) -> None:
        self._step_counter[0] = value

    def __init__(self, lr: float, weight_decay: float, clip_norm, decay_bias: bool = True):
        lr = check_float(lr, f"{type(self).__name__} lr")
        if lr <= 0:
            raise ValueError(f"{type(self).__name__} lr must be > 0, got {lr}")
        weight_decay = check_float(weight_decay, f"{type(self).__name__} weight_decay")
        if weight_decay < 0:
            raise ValueError(f"{type(self).__name__} weight_decay must be >= 0, got {weight_decay}")
        if clip_norm is not None:
            clip_norm = check_float(clip_norm, f"{type(self).__name__} clip_norm")
            if clip_norm <= 0:
                raise ValueError(f"{type(self).__name__} clip_norm must be > 0, got {clip_norm}")
        self.lr, self.weight_decay, self.clip_norm = lr, weight_decay, clip_norm
        self.decay_bias = check_bool(decay_bias, f"{type(self).__name__} decay_bias")
        self._step_counter = np.zeros(1, dtype=np.int64)   # updated in place by the C++ steps
        self.states = []
        self._decay = None   # per-parameter factor on weight_decay (1 weights, 0 biases) when decay_bias=False
        self._model = None

    def _needs_states(self) -> int:
        return self.n_states

    def _bind(self, model) -> None:
        """Attach to model (once); the state buffers are allocated here, never per step. A new model
        (including one created after the previous model was freed) starts from fresh state."""
        current = self._model() if self._model is not None else None
        if current is model:
            return
        if current is not None:
            raise ValueError("this optimizer already holds the state of another model; create one optimizer per model")
        self._model = weakref.ref(model)
        size = model._net.n_params  # the flat buffer's length (tensors padded to 64-byte boundaries)
        self.states = [np.zeros(size, dtype=model.dtype) for _ in range(self._needs_states())]
        self._decay = None if self.decay_bias else _decay_factors(model)
        self.steps = 0

    def __getstate__(self) -> dict:
        """A pickled optimizer keeps its settings and state arrays but not its binding (a weak reference):
        the copy binds to the next model it steps, with fresh state."""
        state = dict(self.__dict__)
        state["_model"] = None
        return state

    def _hyper(self) -> dict:
        raise NotImplementedError

    def _state(self) -> dict:
        """What the C++ loop takes: the rule, its hyper-parameters, state arrays and step count."""
        d = {"kind": self.kind, "lr": self.lr, "weight_decay": self.weight_decay,
             "clip_norm": self.clip_norm or 0.0, "step": self._step_counter}
        d.update(self._hyper())
        for i, arr in enumerate(self.states):
            d[f"state{i + 1}"] = arr
        if self._decay is not None:
            d["decay"] = self._decay
        return d

    def step(self, model) -> float:
        """Update ``model``'s trainable parameters from the gradients of its last ``backward``.

        Returns the global gradient norm before clipping.
        """
        from .model import Sequential

        if not isinstance(model, Sequential):
            raise TypeError(f"{type(self).__name__}.step expects a Sequential, got {type(model).__name__}")
        self._bind(model)
        return model._net.optimizer_step(self._state(), self.lr)

    def config(self) -> dict:
        """The hyper-parameters as a JSON-ready dict with the ``"type"`` (what ``save`` stores)."""
        return {"type": type(self).__name__, "lr": self.lr, "weight_decay": self.weight_decay,
                "clip_norm": self.clip_norm, "decay_bias": self.decay_bias, **self._public_hyper()}

    def _public_hyper(self) -> dict:
        return {}

    def state_arrays(self) -> dict:
        """The state as arrays: ``state1``/``state2`` (flat, the model's dtype; momentum or Adam's moments)
        and ``steps``. What ``save(include_optimizer=True)`` stores."""
        out = {f"state{i + 1}": a for i, a in enumerate(self.states)}
        out["steps"] = np.array([self.steps], dtype=np.int64)
        return out

    def load_state_arrays(self, arrays: dict, model) -> None:
        """Bind to ``model`` and copy in a state from :meth:`state_arrays` (ValueError for a missing or
        mis-shaped array)."""
        self._bind(model)
        for i, a in enumerate(self.states):
            v = arrays.get(f"state{i + 1}")
            if v is None or v.shape != a.shape:
                raise ValueError(f"optimizer state {i + 1} is missing or has the wrong shape")
            np.copyto(a, v)
        if "steps" in arrays:
            self.steps = int(arrays["steps"][0])

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "type")
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    r"""Mini-batch stochastic gradient descent, exactly ``torch.optim.SGD`` with dampening 0.

    For every parameter :math:`\theta` with gradient :math:`g` (one fused C++ pass over all of them)::

        g = g + weight_decay * theta            # the gradient of (weight_decay / 2) * ||theta||^2
        v = momentum * v + g                    # v starts at 0, so the first step has v = g
        g = g + momentum * v  if nesterov else v
        theta = theta - lr * g

    Parameters
    ----------
    lr : float > 0, default 0.01
    momentum : float in [0, 1), default 0
    nesterov : bool, default False; needs momentum > 0
    weight_decay : float >= 0, default 0
        The lecture's lambda in J + lambda/2 ||theta||^2; applies to biases too unless decay_bias=False.
    clip_norm : float > 0 or None, default None
    decay_bias : bool, default True
        False: weight_decay applies to weights only, not to bias vectors.
    """

    kind = "sgd"

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0,
                 clip_norm=None, decay_bias: bool = True):
        super().__init__(lr, weight_decay, clip_norm, decay_bias)
        momentum = check_float(momentum, "SGD momentum")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"SGD momentum must be in [0, 1), got {momentum}")
        nesterov = check_bool(nesterov, "SGD nesterov")
        if nesterov and momentum == 0.0:
            raise ValueError("SGD nesterov=True needs momentum > 0")
        self.momentum, self.nesterov = momentum, bool(nesterov)

    def _needs_states(self) -> int:
        return 1 if self.momentum > 0 else 0

    def _hyper(self) -> dict:
        return {"momentum": self.momentum, "nesterov": self.nesterov}

    _public_hyper = _hyper

    @property
    def velocity(self):
        """The momentum buffer (flat, the model's dtype), or None."""
        return self.states[0] if self.states else None


class Adam(Optimizer):
    r"""Adam, exactly ``torch.optim.Adam`` (L2 penalty added to the gradient)::

        g = g + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g;   s = beta2 * s + (1 - beta2) * g^2
        theta = theta - lr / (1 - beta1^t) * m / (sqrt(s) / sqrt(1 - beta2^t) + eps)

    Parameters
    ----------
    lr : float > 0, default 1e-3
    betas : (beta1, beta2), each in [0, 1), default (0.9, 0.999)
    eps : float > 0, default 1e-8
    weight_decay : float >= 0, default 0
    clip_norm : float > 0 or None, default None
    decay_bias : bool, default True
        False: no weight decay on bias vectors.
    """

    kind = "adam"
    n_states = 2

    def __init__(self, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 clip_norm=None, decay_bias: bool = True):
        super().__init__(lr, weight_decay, clip_norm, decay_bias)
        name = type(self).__name__
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{name} betas must be a pair (beta1, beta2), got {betas!r}")
        b1, b2 = (check_float(b, f"{name} betas") for b in betas)
        for b in (b1, b2):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"{name} betas must each be in [0, 1), got {tuple(betas)}")
        eps = check_float(eps, f"{name} eps")
        if eps <= 0:
            raise ValueError(f"{name} eps must be > 0, got {eps}")
        self.betas, self.eps = (b1, b2), eps

    def _hyper(self) -> dict:
        return {"beta1": self.betas[0], "beta2": self.betas[1], "eps": self.eps}

    def _public_hyper(self) -> dict:
        return {"betas": list(self.betas), "eps": self.eps}


class AdamW(Adam):
    r"""AdamW, exactly ``torch.optim.AdamW``: decoupled weight decay ``theta *= 1 - lr * weight_decay``
    before the Adam step (which then uses the plain gradient). Default weight_decay 0.01, as in PyTorch."""

    kind = "adamw"

    def __init__(self, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01,
                 clip_norm=None, decay_bias: bool = True):
        super().__init__(lr, betas, eps, weight_decay, clip_norm, decay_bias)


def _decay_factors(model) -> np.ndarray:
    """(n_params,) of the model's dtype: 1 where weight decay applies, 0 on every bias vector (and padding)."""
    base = model._params.__array_interface__["data"][0]
    factors = np.zeros(model._net.n_params, dtype=model.dtype)
    for views in model._layer_views:
        for key, view in views.items():
            if key in ("weight", "bias"):
                start = (view.__array_interface__["data"][0] - base) // view.itemsize
                factors[start:start + view.size] = key == "weight"
    return factors


_BY_NAME = {cls.__name__: cls for cls in (SGD, Adam, AdamW)}


def optimizer_from_config(cfg: dict) -> Optimizer:
    if not isinstance(cfg, dict):
        raise ValueError(f"bad optimizer config {cfg!r}")
    cfg = dict(cfg)
    cls = _BY_NAME.get(cfg.pop("type", None))
    if cls is None:
        raise ValueError(f"unknown optimizer type in config: {cfg!r}")
    if "betas" in cfg:
        cfg["betas"] = tuple(cfg["betas"])
    if not all(v is None or isinstance(v, (numbers.Real, bool, tuple)) for v in cfg.values()):
        raise ValueError(f"bad optimizer config {cfg!r}")
    return cls(**cfg)
