"""Maximum-likelihood losses, computed with their gradient in one fused C++ pass.

Reductions follow PyTorch's defaults: :class:`MSELoss`, :class:`BCELoss` and :class:`BCEWithLogitsLoss`
average over every element of the output; :class:`CrossEntropyLoss` averages over the batch.
"""
from __future__ import annotations

import numpy as np

from . import _core
from ._validation import as_matrix, as_numeric_array

__all__ = ["Loss", "MSELoss", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "get_loss"]


class Loss:
    """Base class: ``value, grad = loss(output, target)`` with ``grad = d value / d output`` (shaped like
    output). Pass an instance (or its name) to ``fit``/``evaluate``, or call it in a hand-written loop."""

    kind = ""
    name = ""
    classification = False

    def __call__(self, output, target):
        """The loss value and its gradient, computed together in one C++ pass.

        Parameters
        ----------
        output : array (batch, outputs)
            The network's output; float32 and float64 are kept, other dtypes computed in float64.
        target : array
            What :meth:`prepare_target` accepts for this loss.

        Returns
        -------
        (float, ndarray)
            The reduced loss and d loss / d output, shaped like output.

        Raises
        ------
        TypeError, ValueError
            Output not 2-D or non-numeric; targets of the wrong shape, non-finite or out of range; for
            BCELoss, outputs outside [0, 1].
        """
        out = np.asarray(output)
        dtype = out.dtype if out.dtype in (np.float32, np.float64) else np.float64
        out = as_matrix(out, dtype, "output", owner=type(self).__name__)
        t = self.prepare_target(target, out.shape[0], out.shape[1], dtype)
        self._check_output(out)
        value, grad = _core.loss(self.kind, out, t)
        return float(value), grad

    def _check_output(self, out: np.ndarray) -> None:
        pass

    def prepare_target(self, target, n_rows: int, n_outputs: int, dtype) -> np.ndarray:
        """Validate targets for n_rows outputs of width n_outputs; returns what the C++ core takes.

        Targets are shaped like the output, (n_rows, n_outputs), or (n_rows,) for one output; finite. Raises
        ValueError otherwise (TypeError for non-numeric targets).
        """
        t = as_numeric_array(target, "target")
        if t.ndim == 1 and n_outputs == 1:
            t = t.reshape(-1, 1)
        if t.shape != (n_rows, n_outputs):
            raise ValueError(f"{type(self).__name__} expects targets shaped like the output {(n_rows, n_outputs)}, got {t.shape}")
        t = np.ascontiguousarray(t, dtype=dtype)
        if not np.isfinite(t).all():
            raise ValueError(f"{type(self).__name__} targets must be finite (found NaN or Inf)")
        return t

    def accuracy(self, output: np.ndarray, target: np.ndarray):
        """The share of correct predictions for a classification loss, None for a regression loss."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MSELoss(Loss):
    """Mean squared error (Gaussian likelihood): mean over all elements of (output - target)^2.

    Output and targets (batch, outputs), or targets (batch,) for one output. Name: ``"mse"``.
    """

    kind = "mse"
    name = "mse"


class BCELoss(Loss):
    """Binary cross-entropy on probabilities (a network ending in Sigmoid); log clamped at -100 like PyTorch.

    -mean(t log p + (1 - t) log(1 - p)) over all elements: the negative log-likelihood of the Bernoulli
    model. Outputs must lie in [0, 1] and targets in [0, 1] (ValueError otherwise), shaped like the output or
    (batch,) for one output. Accuracy counts output >= 0.5 against target >= 0.5. Name: ``"bce"``.
    """

    kind = "bce"
    name = "bce"
    classification = True

    def _check_output(self, out):
        if out.size and (np.nanmin(out) < 0 or np.nanmax(out) > 1):
            raise ValueError("BCELoss expects probabilities in [0, 1]; use BCEWithLogitsLoss for raw scores")

    def prepare_target(self, target, n_rows, n_outputs, dtype):
        t = super().prepare_target(target, n_rows, n_outputs, dtype)
        if t.size and (t.min() < 0 or t.max() > 1):
            raise ValueError(f"{type(self).__name__} targets must lie in [0, 1], got range [{t.min()}, {t.max()}]")
        return t

    def accuracy(self, output, target):
        return float(np.mean((output >= 0.5) == (target >= 0.5)))


class BCEWithLogitsLoss(BCELoss):
    """Binary cross-entropy on logits (sigmoid fused in, stable for any finite logit).

    Like :class:`BCELoss` on ``sigmoid(output)``, without its range check on outputs; accuracy counts
    logit >= 0 against target >= 0.5. Name: ``"bce_with_logits"``.
    """

    kind = "bce_with_logits"
    name = "bce_with_logits"

    def _check_output(self, out):
        pass

    def accuracy(self, output, target):
        return float(np.mean((output >= 0) == (target >= 0.5)))


class CrossEntropyLoss(Loss):
    """Softmax + categorical negative log-likelihood on logits; integer class labels of shape (batch,).

    The mean over the batch of -log softmax(output)[label], computed stably from the logits (the network
    ends in a Dense layer, no Softmax). Labels must be integers in [0, outputs) (ValueError otherwise;
    TypeError for booleans); accuracy is argmax(output) == label. Name: ``"cross_entropy"``.
    """

    kind = "cross_entropy"
    name = "cross_entropy"
    classification = True

    def prepare_target(self, target, n_rows, n_outputs, dtype):
        t = as_numeric_array(target, "labels")
        if t.shape != (n_rows,):
            raise ValueError(f"CrossEntropyLoss expects integer class labels of shape ({n_rows},), got {t.shape}")
        if t.dtype.kind == "f":
            if not np.isfinite(t).all() or not np.array_equal(t, np.round(t)):
                raise ValueError("CrossEntropyLoss labels must be integers (class indices), got non-integer values")
        elif t.dtype.kind == "b":
            raise TypeError("CrossEntropyLoss labels must be integer class indices, got booleans")
        if t.size and (t.min() < 0 or t.max() >= n_outputs):
            raise ValueError(f"CrossEntropyLoss labels must lie in [0, {n_outputs}) for {n_outputs} outputs, "
                             f"got range [{t.min()}, {t.max()}]")
        return np.ascontiguousarray(t, dtype=np.int64)

    def accuracy(self, output, target):
        return float(np.mean(np.argmax(output, axis=1) == target))


_LOSSES = {cls.name: cls for cls in (MSELoss, BCELoss, BCEWithLogitsLoss, CrossEntropyLoss)}


def get_loss(loss) -> Loss:
    """A Loss instance from an instance or a name: 'cross_entropy', 'mse', 'bce', 'bce_with_logits'.

    Raises ValueError for an unknown name and TypeError for anything that is neither a Loss nor a string.
    """
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        if loss not in _LOSSES:
            raise ValueError(f"unknown loss {loss!r}; expected one of {', '.join(_LOSSES)} or a Loss instance")
        return _LOSSES[loss]()
    raise TypeError(f"loss must be a Loss instance or a name, got {type(loss).__name__}")
