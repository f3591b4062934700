"""NeuralNetClassifier and NeuralNetRegressor: the scikit-learn estimator protocol around any Sequential.

``module(n_features, n_outputs)`` builds the network once the data's shape is known (``n_outputs`` is the
number of classes, labels of a multilabel target, or regression outputs); training is ``Sequential.fit``.
"""
from __future__ import annotations

import copy

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from .. import layers as L
from ..io import from_bytes, to_bytes
from ..losses import Loss, get_loss
from ..model import Sequential
from ..optim import SGD, Adam, AdamW, Optimizer, optimizer_from_config
from . import _common as C

_OPTIMIZERS = {"adam": Adam, "adamw": AdamW, "sgd": SGD}


def _default_module(n_features: int, n_outputs: int) -> Sequential:
    """scikit-learn's MLP default shape: one hidden layer of 100 ReLU units."""
    return Sequential([L.Dense(n_features, 100), L.ReLU(), L.Dense(100, n_outputs)], seed=0)


class _BaseNeuralNet(BaseEstimator):
    def __init__(self, module=None, *, loss=None, optimizer="adam", lr=None, epochs=10, batch_size=32, shuffle=True,
                 validation_split=0.0, schedule=None, callbacks=(), random_state=None, warm_start=False, verbose=0):
        self.module = module
        self.loss = loss
        self.optimizer = optimizer
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.validation_split = validation_split
        self.schedule = schedule
        self.callbacks = callbacks
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.non_deterministic = self.random_state is None
        return tags

    # -- building ------------------------------------------------------------------------------------
    def _build(self, n_features: int, n_outputs: int) -> Sequential:
        module = _default_module if self.module is None else self.module
        if isinstance(module, Sequential):
            model = from_bytes(to_bytes(module))   # a copy: the parameter itself is never trained
        elif callable(module):
            model = module(n_features, n_outputs)
            if not isinstance(model, Sequential):
                raise TypeError(f"module(n_features, n_outputs) must return a neurocore.Sequential, got "
                                f"{type(model).__name__}")
        else:
            raise TypeError(f"module must be a neurocore.Sequential or a callable (n_features, n_outputs) -> "
                            f"Sequential, got {type(module).__name__}")
        if model.in_features != n_features:
            raise ValueError(f"the module's network takes {model.in_features} features, X has {n_features}")
        return model

    def _make_optimizer(self) -> Optimizer:
        opt = self.optimizer
        if isinstance(opt, str):
            if opt not in _OPTIMIZERS:
                raise ValueError(f"optimizer must be one of {sorted(_OPTIMIZERS)} or a neurocore optimizer, got "
                                 f"{opt!r}")
            opt = _OPTIMIZERS[opt]() if self.lr is None else _OPTIMIZERS[opt](lr=self.lr)
        elif isinstance(opt, Optimizer):   # a template: each fit trains a fresh copy of it
            config = opt.config()
            if self.lr is not None:
                config["lr"] = self.lr
            opt = optimizer_from_config(config)
        else:
            raise TypeError(f"optimizer must be 'adam', 'adamw', 'sgd' or a neurocore optimizer, got "
                            f"{type(opt).__name__}")
        return opt

    def _seed(self):
        return C.seed_from(self.random_state)

    # -- fitting -------------------------------------------------------------------------------------
    def fit(self, X, y):
        """Build the network (unless warm_start and already fitted) and train it for ``epochs`` epochs."""
        return self._fit(X, y, incremental=False)

    def _fit(self, X, y, incremental: bool):
        first_pass = "model_" not in self.__dict__ or (not self.warm_start and not incremental)
        X, targets, n_outputs = self._validate_input(X, y, incremental, reset=first_pass)
        if first_pass:
            self.model_ = self._build(X.shape[1], n_outputs)
            self._loss = self._choose_loss(self.model_, n_outputs)
            self.history_ = {}
            self.n_outputs_ = n_outputs
        elif n_outputs != self.n_outputs_:
            raise ValueError(f"y has {n_outputs} outputs/classes, the fitted network was built for "
                             f"{self.n_outputs_}; fit a new model (warm_start=False)")
        # a fresh optimizer per fit (as scikit-learn's MLP); partial_fit continues the network's own
        optimizer = self._make_optimizer() if not incremental or self.model_.optimizer is None else None
        target = self._loss.prepare_target(targets, X.shape[0], self.model_.out_features, self.model_.dtype)
        history = self.model_.fit(
            C.as_dtype(X, self.model_.dtype), target, loss=self._loss, optimizer=optimizer,
            epochs=1 if incremental else self.epochs, batch_size=self.batch_size, shuffle=self.shuffle, seed=self._seed(),
            validation_split=0.0 if incremental else self.validation_split,
            schedule=copy.deepcopy(self.schedule), callbacks=copy.deepcopy(list(self.callbacks or ())),
            verbose=self.verbose)
        for key, values in history.items():
            self.history_.setdefault(key, []).extend(values)
        self.loss_curve_ = list(self.history_.get("loss", []))
        self.n_iter_ = len(history.get("loss", []))
        return self

    def partial_fit(self, X, y):
        """One epoch over (X, y), keeping the network and the optimizer's state."""
        return self._fit(X, y, incremental=True)

    def _scores(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = C.validate_X(self, X, reset=False)
        return self.model_.predict(C.as_dtype(X, self.model_.dtype))


class NeuralNetClassifier(ClassifierMixin, _BaseNeuralNet):
    """A scikit-learn classifier around a neurocore network.

    Parameters
    ----------
    module : callable ``(n_features, n_classes) -> Sequential`` building a new network on each call (seed it
        for reproducible fits), a Sequential (copied at each fit), or None
        (one hidden layer of 100 ReLU units). The network outputs one score (logit) per class, or one per label
        for multilabel targets; a binary target may also use a single output.
    loss : None (softmax cross-entropy for one label per sample, sigmoid cross-entropy for one output or
        multilabel targets), or 'cross_entropy', 'bce_with_logits', 'bce' (a network ending in Sigmoid), or a Loss.
    optimizer : 'adam', 'adamw', 'sgd', or a neurocore optimizer used as a template (never bound itself).
    lr : float or None (the optimizer's own). epochs, batch_size, shuffle, validation_split, schedule, callbacks,
        verbose : as in :meth:`Sequential.fit` (schedule and callbacks are copied at each fit).
    random_state : None, int or RandomState: seeds shuffling and the validation split (the module seeds the
        initial weights). warm_start : keep the network between calls to fit.

    Attributes
    ----------
    model_ : the trained Sequential. classes_, n_features_in_, feature_names_in_, n_outputs_ (network width),
    history_ (Sequential.fit's history, accumulated over calls), loss_curve_, n_iter_ (epochs of the last call).
    """

    def _validate_input(self, X, y, incremental, reset):
        X, y = C.validate_Xy(self, X, y, reset=reset, numeric_y=False)
        refit = not hasattr(self, "classes_") or (not self.warm_start and not incremental)
        Y = C.encode_labels(self, y, refit=refit, warm_start=self.warm_start)
        self._multiclass = self._label_binarizer.y_type_ in ("multiclass", "binary")
        n_outputs = len(self.classes_) if self._multiclass else Y.shape[1]
        if self._multiclass:   # class indices; a binary Y holds the index of the positive class already
            return X, (np.argmax(Y, axis=1) if Y.shape[1] > 1 else Y[:, 0]), n_outputs
        return X, Y, n_outputs

    def _choose_loss(self, model, n_outputs) -> Loss:
        """Softmax cross-entropy over one output per class, or sigmoid cross-entropy over one output (binary)
        or one per label (multilabel)."""
        out = model.out_features
        one_hot = self._multiclass and out == n_outputs and n_outputs > 1
        loss = get_loss(self.loss if self.loss is not None else "cross_entropy" if one_hot else "bce_with_logits")
        if not loss.classification:
            raise ValueError(f"NeuralNetClassifier needs a classification loss, got {loss!r}")
        if loss.kind == "cross_entropy":
            want = f"{n_outputs} (one per class)" if out != n_outputs or not self._multiclass else None
        elif self._multiclass:
            want = "1 (a binary target)" if out != 1 or n_outputs > 2 else None
        else:
            want = f"{n_outputs} (one per label)" if out != n_outputs else None
        if want is not None:
            raise ValueError(f"the module's network has {out} outputs; {type(loss).__name__} on this target needs "
                             f"{want}")
        return loss

    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y); ``classes`` is required on the first call."""
        if C.first_partial_fit_classes(self, y, classes):
            self.__dict__.pop("model_", None)
        return self._fit(X, y, incremental=True)

    def predict_proba(self, X):
        """(n_samples, n_classes) probabilities (two columns for a binary target)."""
        scores = self._scores(X)
        kind = self._loss.kind
        proba = C.probabilities(scores, {"cross_entropy": "softmax", "bce_with_logits": "logistic"}.get(kind, ""))
        if kind == "bce":
            proba = np.clip(proba, 0.0, 1.0)
        if self._multiclass and proba.shape[1] == 1:
            proba = C.binary_columns(proba)
        return proba

    def predict_log_proba(self, X):
        """log of :meth:`predict_proba`, (n_samples, n_classes); -inf where a probability is 0."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """Class labels (argmax of the class probabilities; p > 0.5 per label for multilabel targets)."""
        proba = self.predict_proba(X)
        if self._multiclass:
            return self.classes_[np.argmax(proba, axis=1) if len(self.classes_) > 1 else np.zeros(len(proba), int)]
        return C.decode(self._label_binarizer, proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class NeuralNetRegressor(RegressorMixin, _BaseNeuralNet):
    """A scikit-learn regressor around a neurocore network: ``module(n_features, n_outputs) -> Sequential``
    (or a Sequential, or None for one hidden layer of 100 ReLU units); loss 'mse' unless given. The other
    parameters and the attributes are :class:`NeuralNetClassifier`'s."""

    def _validate_input(self, X, y, incremental, reset):
        X, y = C.validate_Xy(self, X, y, reset=reset, numeric_y=True)
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        self._single_output = y.ndim == 1
        return X, Y, Y.shape[1]

    def _choose_loss(self, model, n_outputs) -> Loss:
        loss = get_loss("mse" if self.loss is None else self.loss)
        if model.out_features != n_outputs:
            raise ValueError(f"the module's network has {model.out_features} outputs, y has {n_outputs}")
        return loss

    def predict(self, X):
        """Predictions (n_samples,) for a 1-D y at fit, else (n_samples, n_outputs); float64."""
        out = self._scores(X).astype(np.float64)
        return out.ravel() if self._single_output else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
