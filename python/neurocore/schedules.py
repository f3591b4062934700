"""Learning-rate schedules for ``fit(..., schedule=...)``.

A schedule maps the optimizer's base learning rate and a time t to the learning rate used; t counts epochs
(``interval="epoch"``) or optimizer steps across epochs (``interval="step"``). Per-step rates are computed
once per epoch and handed to the C++ loop, so no Python runs per batch.
"""
from __future__ import annotations

import math

from ._validation import check_float, check_int

__all__ = ["Schedule", "StepDecay", "ExponentialDecay", "CosineAnnealing", "LinearWarmup", "ReduceLROnPlateau"]


def _interval(value) -> str:
    if value not in ("epoch", "step"):
        raise ValueError(f"interval must be 'epoch' or 'step', got {value!r}")
    return value


class Schedule:
    """Base class: ``lr(base_lr, t)`` gives the learning rate at time t. ``interval`` is ``"epoch"`` or
    ``"step"`` (ValueError for anything else); fit accepts any subclass instance (TypeError otherwise)."""

    interval = "epoch"

    def lr(self, base_lr: float, t: int) -> float:
        """The learning rate at time t (epochs or steps since fit started) for the optimizer's base lr."""
        raise NotImplementedError

    def on_epoch_end(self, epoch: int, metrics: dict) -> None:
        """Called after each epoch with its metrics (used by ReduceLROnPlateau)."""


class StepDecay(Schedule):
    """lr = base * gamma ** (t // step_size)   (torch.optim.lr_scheduler.StepLR).

    step_size : int >= 1; gamma : float > 0, default 0.1; interval : "epoch" (default) or "step".
    """

    def __init__(self, step_size: int, gamma: float = 0.1, interval: str = "epoch"):
        self.step_size = check_int(step_size, "StepDecay step_size", minimum=1)
        self.gamma = check_float(gamma, "StepDecay gamma")
        if self.gamma <= 0:
            raise ValueError(f"StepDecay gamma must be > 0, got {gamma}")
        self.interval = _interval(interval)

    def lr(self, base_lr, t):
        return base_lr * self.gamma ** (t // self.step_size)


class ExponentialDecay(Schedule):
    """lr = base * gamma ** t   (torch.optim.lr_scheduler.ExponentialLR).

    gamma : float > 0; interval : "epoch" (default) or "step".
    """

    def __init__(self, gamma: float, interval: str = "epoch"):
        self.gamma = check_float(gamma, "ExponentialDecay gamma")
        if self.gamma <= 0:
            raise ValueError(f"ExponentialDecay gamma must be > 0, got {gamma}")
        self.interval = _interval(interval)

    def lr(self, base_lr, t):
        return base_lr * self.gamma ** t


class CosineAnnealing(Schedule):
    """lr = eta_min + (base - eta_min) * (1 + cos(pi * min(t, t_max) / t_max)) / 2
    (torch.optim.lr_scheduler.CosineAnnealingLR, held at eta_min after t_max).

    t_max : int >= 1; eta_min : float >= 0, default 0; interval : "epoch" (default) or "step".
    """

    def __init__(self, t_max: int, eta_min: float = 0.0, interval: str = "epoch"):
        self.t_max = check_int(t_max, "CosineAnnealing t_max", minimum=1)
        self.eta_min = check_float(eta_min, "CosineAnnealing eta_min")
        if self.eta_min < 0:
            raise ValueError(f"CosineAnnealing eta_min must be >= 0, got {eta_min}")
        self.interval = _interval(interval)

    def lr(self, base_lr, t):
        t = min(t, self.t_max)
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.t_max)) / 2


class LinearWarmup(Schedule):
    """lr rises linearly from start_factor * base to base over `warmup` units of time, then follows `then`
    (another schedule of the same interval, its time starting at 0 after the warm-up) or stays at base.

    warmup : int >= 1; start_factor : float in [0, 1], default 0; then : Schedule or None;
    interval : "step" (default) or "epoch". ValueError when ``then`` has another interval.
    """

    def __init__(self, warmup: int, start_factor: float = 0.0, then: Schedule | None = None, interval: str = "step"):
        self.warmup = check_int(warmup, "LinearWarmup warmup", minimum=1)
        self.start_factor = check_float(start_factor, "LinearWarmup start_factor")
        if not 0.0 <= self.start_factor <= 1.0:
            raise ValueError(f"LinearWarmup start_factor must be in [0, 1], got {start_factor}")
        self.interval = _interval(interval)
        if then is not None and (not isinstance(then, Schedule) or then.interval != self.interval):
            raise ValueError("LinearWarmup's `then` must be a schedule with the same interval")
        self.then = then

    def lr(self, base_lr, t):
        if t < self.warmup:
            return base_lr * (self.start_factor + (1 - self.start_factor) * t / self.warmup)
        return self.then.lr(base_lr, t - self.warmup) if self.then is not None else base_lr

    def on_epoch_end(self, epoch, metrics):
        if self.then is not None:
            self.then.on_epoch_end(epoch, metrics)


class ReduceLROnPlateau(Schedule):
    """Multiply the learning rate by `factor` when `monitor` has not improved by more than `min_delta` for
    `patience` epochs (torch.optim.lr_scheduler.ReduceLROnPlateau, mode='min'); never below min_lr.

    monitor : a metric of fit, default "val_loss" (fit raises ValueError if it does not report it);
    factor : float in (0, 1), default 0.1; patience : int >= 0, default 10; min_delta : default 1e-4;
    min_lr : default 0. Per epoch only.
    """

    interval = "epoch"

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, min_delta: float = 1e-4,
                 min_lr: float = 0.0):
        self.monitor = monitor
        self.factor = check_float(factor, "ReduceLROnPlateau factor")
        if not 0.0 < self.factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau factor must be in (0, 1), got {factor}")
        self.patience = check_int(patience, "ReduceLROnPlateau patience", minimum=0)
        self.min_delta = check_float(min_delta, "ReduceLROnPlateau min_delta")
        self.min_lr = check_float(min_lr, "ReduceLROnPlateau min_lr")
        self.scale, self.best, self.bad_epochs = 1.0, math.inf, 0

    def lr(self, base_lr, t):
        return max(base_lr * self.scale, self.min_lr)

    def on_epoch_end(self, epoch, metrics):
        if self.monitor not in metrics:
            raise ValueError(f"ReduceLROnPlateau monitors {self.monitor!r}, which this fit does not report "
                             f"(it reports {sorted(metrics)})")
        value = metrics[self.monitor]
        if value < self.best - self.min_delta:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.patience:
                self.scale *= self.factor
                self.bad_epochs = 0
