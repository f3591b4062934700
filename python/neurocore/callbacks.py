"""Epoch callbacks for fit: any callable ``f(epoch, metrics)``; returning False stops training.

Objects may also define ``on_train_begin(model)`` and ``on_train_end(model)``.
"""
from __future__ import annotations

import math

import numpy as np

from ._validation import check_bool, check_float, check_int

__all__ = ["EarlyStopping"]


def call_hook(callback, name: str, model) -> None:
    hook = getattr(callback, name, None)
    if callable(hook):
        hook(model)


class EarlyStopping:
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs.

    Parameters
    ----------
    monitor : a key of the epoch metrics, e.g. 'val_loss' (default), 'loss', 'val_accuracy'
    patience : epochs without improvement before stopping
    min_delta : the smallest change that counts as an improvement
    mode : 'min' or 'max' ('auto': 'max' for accuracies, else 'min')
    restore_best_weights : at the end of fit, put back the parameters (and BatchNorm statistics) of the
        best epoch

    Attributes
    ----------
    best_epoch, stopped_epoch : int or None
        The epoch (from 0) with the best value, and the one at which training stopped.

    Raises
    ------
    TypeError, ValueError
        Arguments of the wrong type or range; ``fit`` raises ValueError before training when it does not
        report ``monitor`` (e.g. 'val_loss' without validation data).
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0, mode: str = "auto",
                 restore_best_weights: bool = False):
        if not isinstance(monitor, str):
            raise TypeError(f"EarlyStopping monitor must be a metric name, got {monitor!r}")
        self.monitor = monitor
        self.patience = check_int(patience, "EarlyStopping patience", minimum=0)
        self.min_delta = abs(check_float(min_delta, "EarlyStopping min_delta"))
        if mode == "auto":
            mode = "max" if "accuracy" in monitor else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping mode must be 'min', 'max' or 'auto', got {mode!r}")
        self.mode = mode
        self.restore_best_weights = check_bool(restore_best_weights, "EarlyStopping restore_best_weights")
        self.best_epoch = None
        self.stopped_epoch = None

    def on_train_begin(self, model) -> None:
        """Called by fit before the first epoch: resets the state, so one instance can serve several fits."""
        self._model = model
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch, self.stopped_epoch, self._wait, self._snapshot = None, None, 0, None

    def __call__(self, epoch: int, metrics: dict):
        """Called by fit after each epoch with its metrics; returns False to stop training."""
        if self.monitor not in metrics:
            raise ValueError(f"EarlyStopping monitors {self.monitor!r}, which this fit does not report "
                             f"(it reports {sorted(metrics)}); pass validation data or monitor='loss'")
        value = metrics[self.monitor]
        better = value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
        if better:
            self.best, self.best_epoch, self._wait = value, epoch, 0
            if self.restore_best_weights:
                self._snapshot = _snapshot(self._model)
            return True
        self._wait += 1
        if self._wait >= self.patience:   # Keras' rule: patience 0 and 1 both stop at the first miss
            self.stopped_epoch = epoch
            return False
        return True

    def on_train_end(self, model) -> None:
        """Called by fit at the end (also after an interruption): restores the best weights if asked."""
        if self.restore_best_weights and self._snapshot is not None:
            for dst, src in zip(_arrays(model), self._snapshot):
                np.copyto(dst, src)


def _arrays(model) -> list:
    """Parameters and BatchNorm running statistics: everything that defines the model's function."""
    from .io import _buffers

    return list(model.parameters()) + _buffers(model)


def _snapshot(model) -> list:
    return [a.copy() for a in _arrays(model)]
