"""Optimizers: fused single-pass updates over the model's flat parameter buffer."""
from __future__ import annotations

import numbers
import weakref

import numpy as np

from ._validation import check_float

__all__ = ["SGD"]


class SGD:
    r"""Mini-batch stochastic gradient descent, exactly ``torch.optim.SGD`` with dampening 0.

    For every parameter :math:`\theta` with gradient :math:`g` (one fused C++ pass over all of them)::

        g = g + weight_decay * theta            # the gradient of (weight_decay / 2) * ||theta||^2
        v = momentum * v + g                    # v starts at 0, so the first step has v = g
        g = g + momentum * v  if nesterov else v
        theta = theta - lr * g

    Parameters
    ----------
    lr : float > 0
    momentum : float in [0, 1)
    nesterov : bool, needs momentum > 0
    weight_decay : float >= 0
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0):
        lr = check_float(lr, "SGD lr")
        if lr <= 0:
            raise ValueError(f"SGD lr must be > 0, got {lr}")
        momentum = check_float(momentum, "SGD momentum")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"SGD momentum must be in [0, 1), got {momentum}")
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"SGD nesterov must be True or False, got {nesterov!r}")
        if nesterov and momentum == 0.0:
            raise ValueError("SGD nesterov=True needs momentum > 0")
        weight_decay = check_float(weight_decay, "SGD weight_decay")
        if weight_decay < 0:
            raise ValueError(f"SGD weight_decay must be >= 0, got {weight_decay}")
        self.lr, self.momentum, self.nesterov, self.weight_decay = lr, momentum, bool(nesterov), weight_decay
        self._model = None
        self.velocity = None     # (n_params,) momentum buffer in the model's dtype, allocated on first use

    def __repr__(self) -> str:
        return (f"SGD(lr={self.lr:g}, momentum={self.momentum:g}, nesterov={self.nesterov}, "
                f"weight_decay={self.weight_decay:g})")

    def config(self) -> dict:
        return {"type": "SGD", "lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}

    def _bind(self, model) -> None:
        """Attach to model (once); the state buffer is allocated here, never per step."""
        current = self._model() if self._model is not None else None
        if current is model:
            return
        if current is not None:
            raise ValueError("this optimizer already holds the state of another model; create one optimizer per model")
        # A new model (including one after the previous model was freed) starts from zero momentum.
        self._model = weakref.ref(model)
        self.velocity = None
        size = model._net.n_params  # the flat buffer's length (tensors padded to 64-byte boundaries)
        if self.momentum > 0:
            self.velocity = np.zeros(size, dtype=model.dtype)

    def _kernel_args(self):
        return self.lr, self.momentum, self.weight_decay, self.nesterov

    def step(self, model) -> None:
        """Update ``model``'s parameters from the gradients of its last ``backward``."""
        from .model import Sequential

        if not isinstance(model, Sequential):
            raise TypeError(f"SGD.step expects a Sequential, got {type(model).__name__}")
        self._bind(model)
        model._net.sgd_step(self.velocity, *self._kernel_args())

    def state_arrays(self) -> dict:
        return {} if self.velocity is None else {"velocity": self.velocity}

    def load_state_arrays(self, arrays: dict, model) -> None:
        self._bind(model)
        if "velocity" in arrays and self.velocity is not None:
            v = arrays["velocity"]
            if v.shape != self.velocity.shape:
                raise ValueError(f"optimizer state has shape {v.shape}, expected {self.velocity.shape}")
            np.copyto(self.velocity, v)


def optimizer_from_config(cfg: dict):
    cfg = dict(cfg)
    kind = cfg.pop("type", None)
    if kind != "SGD":
        raise ValueError(f"unknown optimizer type {kind!r}")
    if not all(isinstance(v, (numbers.Real, bool)) for v in cfg.values()):
        raise ValueError(f"bad optimizer config {cfg!r}")
    return SGD(**cfg)
