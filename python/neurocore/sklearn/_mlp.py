"""MLPClassifier and MLPRegressor: scikit-learn's estimators of the same names, trained by neurocore's core.

Same parameters, defaults, stopping rules and fitted attributes as ``sklearn.neural_network``; the same random
stream for the initial weights, the early-stopping split and the batch order, so with ``dtype="float64"`` a fit
follows scikit-learn's closely. How scikit-learn's objective maps onto the core's torch-style steps:

* Losses. The core's mean-reduced losses give the gradient of scikit-learn's loss divided by ``c``: 1 for
  softmax + log-loss, ``n_outputs`` for the logistic outputs (scikit-learn sums the binary log-loss over
  outputs), ``n_outputs / 2`` for squared error (it back-propagates ``output - y``). Scaling SGD's learning rate
  by ``c``, and Adam's epsilon and the L2 term by ``1 / c``, makes every step scikit-learn's step.
* ``alpha``: scikit-learn adds ``alpha / 2 * ||W||^2 / n_batch`` to each batch's loss (weights only), i.e.
  weight decay ``alpha / n_batch`` without decay on intercepts: ``decay_bias=False`` and a last, smaller batch
  run with its own decay.
* SGD: scikit-learn's velocity holds ``-lr * v`` of torch's ``v``; when the rate changes between epochs
  ('invscaling', 'adaptive') the core's buffer is rescaled by ``old / new`` so the steps stay the same.

Known differences: Adam's epsilon is added to ``sqrt(v_hat)`` (torch) instead of to ``sqrt(v)`` (scikit-learn),
an eps-sized difference; the alpha term of ``loss_curve_`` sums ``||W||^2`` before each batch exactly when an
epoch has at most 8 full batches, else it interpolates linearly between 8 evenly spaced measurements; float32
by default.
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .. import layers as L
from ..model import Sequential
from ..optim import SGD, Adam
from . import _common as C

_ACTIVATIONS = {"identity": None, "logistic": L.Sigmoid, "tanh": L.Tanh, "relu": L.ReLU}
_STEP_BUDGET_S = 0.1   # the core returns this often, so Ctrl-C is seen within ~0.1 s
_PENALTY_CHUNKS = 8    # ||W||^2 measurements per epoch for the alpha term of loss_curve_


class _BaseMLP(BaseEstimator):
    """The shared fit loop; subclasses say how targets are encoded and scored."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dtype="float32"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype

    # -- fitted attributes read from the live network ---------------------------------------------------
    @property
    def coefs_(self) -> list:
        """Weight matrices (n_in, n_out) of each layer: live views of the network's parameters."""
        if "_model" not in self.__dict__:
            raise AttributeError("coefs_ exists after fit")
        return [layer.weight for layer in self._model.parameter_layers()]

    @property
    def intercepts_(self) -> list:
        """Bias vectors (n_out,) of each layer: live views of the network's parameters."""
        if "_model" not in self.__dict__:
            raise AttributeError("intercepts_ exists after fit")
        return [layer.bias for layer in self._model.parameter_layers()]

    @property
    def _optimizer(self):
        """The network's optimizer (pickled with the network through its npz bytes)."""
        return self._model.optimizer

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # -- parameters ------------------------------------------------------------------------------------
    def _check_params(self) -> list:
        """Validates every parameter (at fit, as scikit-learn does) and returns the hidden layer sizes."""
        def choice(name, options):
            value = getattr(self, name)
            if not isinstance(value, str) or value not in options:
                raise ValueError(f"The '{name}' parameter of {type(self).__name__} must be one of "
                                 f"{sorted(options)}, got {value!r}")

        def real(name, low, high=np.inf, low_open=False, high_open=False):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or np.isnan(value):
                raise TypeError(f"The '{name}' parameter of {type(self).__name__} must be a real number, "
                                f"got {value!r}")
            if value < low or (low_open and value == low) or value > high or (high_open and value == high):
                interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
                raise ValueError(f"The '{name}' parameter of {type(self).__name__} must be in {interval}, "
                                 f"got {value!r}")

        def integer(name, low):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise ValueError(f"The '{name}' parameter of {type(self).__name__} must be an int >= {low}, "
                                 f"got {value!r}")

        def flag(name):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"The '{name}' parameter of {type(self).__name__} must be True or False, "
                                f"got {getattr(self, name)!r}")

        sizes = self.hidden_layer_sizes
        sizes = [sizes] if not hasattr(sizes, "__iter__") else list(sizes)
        if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {self.hidden_layer_sizes}.")
        choice("activation", _ACTIVATIONS)
        if self.solver == "lbfgs":
            raise ValueError("solver='lbfgs' is not implemented by neurocore: use solver='adam' (the default) "
                             "or 'sgd'")
        choice("solver", {"sgd", "adam"})
        real("alpha", 0)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            integer("batch_size", 1)
        choice("learning_rate", {"constant", "invscaling", "adaptive"})
        real("learning_rate_init", 0, low_open=True)
        real("power_t", 0)
        integer("max_iter", 1)
        flag("shuffle")
        real("tol", 0)
        flag("warm_start")
        real("momentum", 0, 1, high_open=True)
        flag("nesterovs_momentum")
        flag("early_stopping")
        real("validation_fraction", 0, 1, high_open=True)
        real("beta_1", 0, 1, high_open=True)
        real("beta_2", 0, 1, high_open=True)
        real("epsilon", 0, low_open=True)
        if not (self.n_iter_no_change == np.inf and not isinstance(self.n_iter_no_change, bool)):
            integer("n_iter_no_change", 1)
        integer("max_fun", 1)
        check_random_state(self.random_state)
        C.check_dtype(self.dtype)
        return [int(s) for s in sizes]

    # -- fit -------------------------------------------------------------------------------------------
    def fit(self, X, y):
        """Fit the model to X (n_samples, n_features) and y; returns self."""
        return self._fit(X, y, incremental=False)

    def _fit(self, X, y, incremental: bool):
        hidden = self._check_params()
        first_pass = "_model" not in self.__dict__ or (not self.warm_start and not incremental)
        X, Y = self._validate_input(X, y, incremental, reset=first_pass)
        rs = check_random_state(self.random_state)
        if first_pass:
            self._initialize(Y, [X.shape[1], *hidden, Y.shape[1]], rs)
        elif Y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {Y.shape[1]} outputs, the fitted network has {self.n_outputs_}; "
                             f"fit a new model (warm_start=False)")
        elif hidden != [layer.out_features for layer in self._model.parameter_layers()[:-1]]:
            raise ValueError(f"hidden_layer_sizes={self.hidden_layer_sizes} differs from the fitted network's "
                             f"{[layer.out_features for layer in self._model.parameter_layers()[:-1]]}; "
                             f"fit a new model (warm_start=False)")
        self._fit_stochastic(X, Y, rs, incremental)
        if not all(np.isfinite(p).all() for p in self._model.parameters()):
            raise ValueError("Solver produced non-finite parameter weights. The input data may contain large "
                             "values and need to be preprocessed.")
        return self

    def _initialize(self, Y, units, rs) -> None:
        """A new network with scikit-learn's initialisation, drawn from the same random stream:
        W and b ~ U(-r, r), r = sqrt(k / (fan_in + fan_out)), k = 2 for logistic hidden units, else 6."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = Y.shape[1]
        self.n_layers_ = len(units)
        self.out_activation_ = self._out_activation()
        act = _ACTIVATIONS[self.activation]
        layers = []
        for i, (fan_in, fan_out) in enumerate(zip(units[:-1], units[1:])):
            layers.append(L.Dense(fan_in, fan_out))
            if act is not None and i < len(units) - 2:
                layers.append(act())
        model = Sequential(layers, dtype=C.check_dtype(self.dtype).name, seed=0)
        factor = 2.0 if self.activation == "logistic" else 6.0
        for layer in model.parameter_layers():
            bound = np.sqrt(factor / (layer.in_features + layer.out_features))
            layer.weight[...] = rs.uniform(-bound, bound, layer.weight.shape)
            layer.bias[...] = rs.uniform(-bound, bound, layer.bias.shape)
        self._model = model
        self.loss_curve_ = []
        self._no_improvement_count = 0
        self._best_params = [p.copy() for p in model.parameters()]
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _loss_scales(self):
        """(core loss kind, c = sklearn gradient / core gradient, v = sklearn loss value / core loss value)."""
        k = self.n_outputs_
        if self.out_activation_ == "softmax":
            return "cross_entropy", 1.0, 1.0
        if self.out_activation_ == "logistic":
            return "bce_with_logits", float(k), float(k)
        return "mse", k / 2.0, 0.5

    def _core_targets(self, Y):
        """Targets as the core's loss takes them: class indices for softmax, else float rows."""
        if self.out_activation_ == "softmax":
            return np.ascontiguousarray(np.argmax(Y, axis=1), dtype=np.int64)
        return np.ascontiguousarray(Y, dtype=self._model.dtype)

    def _new_optimizer(self, c: float):
        if self.solver == "adam":
            return Adam(lr=self.learning_rate_init, betas=(self.beta_1, self.beta_2), eps=self.epsilon / c,
                        decay_bias=False)
        self._lr = float(self.learning_rate_init)   # scikit-learn's current SGD learning rate
        return SGD(lr=self._lr * c, momentum=self.momentum, nesterov=self.nesterovs_momentum and self.momentum > 0,
                   decay_bias=False)

    def _set_sgd_lr(self, lr: float, c: float) -> None:
        """Moves SGD to a new rate; rescales the momentum buffer so the next steps are scikit-learn's."""
        velocity = self._optimizer.velocity
        if lr != self._lr and velocity is not None:
            velocity *= self._lr / lr
        self._lr = lr
        self._optimizer.lr = lr * c

    def _fit_stochastic(self, X, Y, rs, incremental: bool) -> None:
        kind, c, v = self._loss_scales()
        model = self._model
        if not incremental or model.optimizer is None:
            opt = self._new_optimizer(c)
            opt._bind(model)
            model.optimizer = opt
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        if self.early_stopping:
            stratify = Y if is_classifier(self) and self.n_outputs_ == 1 else None
            X_train, X_val, Y_train, Y_val = train_test_split(X, Y, random_state=rs,
                                                              test_size=self.validation_fraction, stratify=stratify)
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of "
                                 "your dataset.")
            y_val = self._decode_targets(Y_val)
        else:
            X_train, Y_train, X_val, y_val = X, Y, None, None
        x = C.as_dtype(X_train, model.dtype)
        target = self._core_targets(Y_train)
        n = x.shape[0]
        if self.batch_size == "auto":
            batch = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
                              stacklevel=3)
            batch = int(np.clip(self.batch_size, 1, n))
        full, rest = divmod(n, batch)
        # With alpha, the full batches run in up to _PENALTY_CHUNKS calls, ||W||^2 measured between them
        n_chunks = min(full, _PENALTY_CHUNKS) if self.alpha else min(full, 1)
        bounds = [full * i // n_chunks for i in range(n_chunks + 1)] if n_chunks else [0]
        chunks = [(a, b - a) for a, b in zip(bounds[:-1], bounds[1:])]
        decay_full = self.alpha / (batch * c)
        order = np.arange(n, dtype=np.int64)
        try:
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                if self.shuffle:   # sklearn.utils.shuffle(order, random_state=rs), without its ~0.5 ms of checks
                    perm = np.arange(n)
                    rs.shuffle(perm)
                    order = order[perm]
                data_loss, penalty, sq = 0.0, 0.0, self._weight_sq()
                for first, count in chunks:   # the full batches, each with weight decay alpha / batch
                    data_loss += batch * self._steps(x, target, order, batch, first, count, kind, decay_full)
                    if self.alpha:   # sum over the chunk's steps of ||W||^2 before each, linear in between
                        sq_end = self._weight_sq()
                        penalty += count * sq + (sq_end - sq) * (count - 1) / 2
                        sq = sq_end
                if rest:   # the last, smaller batch: alpha / rest
                    penalty += sq
                    data_loss += rest * self._steps(x, target, order, batch, full, 1, kind, self.alpha / (rest * c))
                self.n_iter_ += 1
                self.loss_ = float(v * data_loss / n + 0.5 * self.alpha * penalty / n)
                self.t_ += n
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
                self._update_no_improvement_count(X_val, y_val)
                if self.solver == "sgd" and self.learning_rate == "invscaling":
                    self._set_sgd_lr(self.learning_rate_init / (self.t_ + 1) ** self.power_t, c)
                if self._no_improvement_count > self.n_iter_no_change:
                    what = "Validation score" if self.early_stopping else "Training loss"
                    msg = (f"{what} did not improve more than tol={self.tol:f} for {self.n_iter_no_change} "
                           f"consecutive epochs.")
                    if self.solver == "sgd" and self.learning_rate == "adaptive" and self._lr > 1e-6:
                        self._set_sgd_lr(self._lr / 5.0, c)
                        self._no_improvement_count = 0
                        if self.verbose:
                            print(f"{msg} Setting learning rate to {self._lr:f}")
                    else:
                        if self.verbose:
                            print(f"{msg} Stopping.")
                        break
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                                  f"optimization hasn't converged yet.", ConvergenceWarning, stacklevel=3)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=3)
        if self.early_stopping:
            for p, best in zip(model.parameters(), self._best_params):
                np.copyto(p, best)

    def _steps(self, x, target, order, batch, first, count, kind, weight_decay) -> float:
        """Runs steps [first, first + count) of the epoch in the core; returns the sum of their batch losses."""
        if count == 0:
            return 0.0
        opt, net = self._optimizer, self._model._net
        opt.weight_decay = weight_decay
        state = opt._state()
        done, loss_sum = 0, 0.0
        while done < count:
            steps, loss_sum, nonfinite, _, bad_row, _ = net.train_steps(
                x, target, order, batch, first + done, count - done, _STEP_BUDGET_S, loss_sum, kind, state, None,
                0.0, None)
            done += steps
            if nonfinite:
                raise ValueError("Solver produced non-finite parameter weights. The input data may contain large "
                                 "values and need to be preprocessed.")
            if bad_row >= 0:   # cannot happen with encoded labels; kept as a guard
                raise ValueError(f"target at row {bad_row} is outside the network's outputs")
        return loss_sum

    def _weight_sq(self) -> float:
        """||W||^2 over the weight matrices, in float64 (the alpha term of the loss)."""
        if not self.alpha:
            return 0.0
        return float(sum(np.dot(w.ravel().astype(np.float64), w.ravel().astype(np.float64)) for w in self.coefs_))

    def _update_no_improvement_count(self, X_val, y_val) -> None:
        if self.early_stopping:
            score = self._score(X_val, y_val)
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params = [p.copy() for p in self._model.parameters()]
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    # -- inference -------------------------------------------------------------------------------------
    def _forward(self, X, check_input: bool = True) -> np.ndarray:
        """Output activations (n, n_outputs) in float64."""
        if check_input:
            X = C.validate_X(self, X, reset=False)
        return C.probabilities(self._model.predict(C.as_dtype(C.dense(X), self._model.dtype)), self.out_activation_)


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: ``sklearn.neural_network.MLPClassifier``'s parameters, defaults and
    fitted attributes, trained by neurocore's C++ core.

    Parameters are scikit-learn's (see its documentation) plus ``dtype`` ('float32' or 'float64': the
    precision of the network). ``solver='lbfgs'`` is not implemented (ValueError pointing to 'adam').

    Attributes
    ----------
    classes_, loss_, best_loss_, loss_curve_, validation_scores_, best_validation_score_, t_, coefs_,
    intercepts_, n_features_in_, feature_names_in_, n_iter_, n_layers_, n_outputs_, out_activation_:
    as in scikit-learn. ``coefs_`` / ``intercepts_`` are live views of the network, in ``dtype``.
    """

    def _out_activation(self) -> str:
        return C.out_activation(self._label_binarizer)

    def _validate_input(self, X, y, incremental, reset):
        X, y = C.validate_Xy(self, X, y, reset=reset, numeric_y=False)
        refit = not hasattr(self, "classes_") or (not self.warm_start and not incremental)
        return X, C.encode_labels(self, y, refit=refit, warm_start=self.warm_start)

    def _decode_targets(self, Y):
        return self._label_binarizer.inverse_transform(Y.ravel() if Y.shape[1] == 1 else Y)

    def _score(self, X, y):
        return accuracy_score(y, self._predict(X, check_input=False))

    def _predict(self, X, check_input=True):
        return C.decode(self._label_binarizer, self._forward(X, check_input))

    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y), keeping the optimizer's state. ``classes`` is required on the first call."""
        first = C.first_partial_fit_classes(self, y, classes)
        if first:
            self.__dict__.pop("_model", None)
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Class labels for X (n_samples, n_features)."""
        check_is_fitted(self)
        return self._predict(X)

    def predict_proba(self, X):
        """Probability of each class, (n_samples, n_classes) (two columns for a binary target)."""
        check_is_fitted(self)
        return C.binary_columns(self._forward(X))

    def predict_log_proba(self, X):
        """Log of predict_proba."""
        return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: ``sklearn.neural_network.MLPRegressor``'s parameters, defaults and
    fitted attributes (squared error, identity output, one or several outputs), trained by neurocore's core.

    ``loss`` accepts 'squared_error' only (scikit-learn's 'poisson' is not implemented); ``dtype`` is
    neurocore's own. See :class:`MLPClassifier` for the attributes.
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, loss="squared_error", solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dtype="float32"):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver, alpha=alpha,
            batch_size=batch_size, learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun, dtype=dtype)
        self.loss = loss

    def _check_params(self):
        if self.loss != "squared_error":
            raise ValueError(f"MLPRegressor supports loss='squared_error' only, got loss={self.loss!r}")
        return super()._check_params()

    def _out_activation(self) -> str:
        return "identity"

    def _validate_input(self, X, y, incremental, reset):
        X, y = C.validate_Xy(self, X, y, reset=reset, numeric_y=True)
        return X, (y.reshape(-1, 1) if y.ndim == 1 else y).astype(np.float64, copy=False)

    def _decode_targets(self, Y):
        return Y.ravel() if Y.shape[1] == 1 else Y

    def _score(self, X, y):
        pred = self._predict(X, check_input=False)
        return np.nan if not np.isfinite(pred).all() else r2_score(y, pred)

    def _predict(self, X, check_input=True):
        out = self._forward(X, check_input)
        return out.ravel() if out.shape[1] == 1 else out

    def partial_fit(self, X, y):
        """One epoch over (X, y), keeping the optimizer's state."""
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Predictions (n_samples,) or (n_samples, n_outputs), float64."""
        check_is_fitted(self)
        return self._predict(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
