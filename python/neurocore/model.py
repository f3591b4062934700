"""Sequential: a stack of layers over one C++ network (flat parameters, fused kernels, the fit loop)."""
from __future__ import annotations

import math
import warnings

import numpy as np

from . import _core
from ._validation import as_matrix, check_int, resolve_dtype
from .layers import Dense, Layer, LeakyReLU, ReLU
from .losses import get_loss
from .optim import SGD

__all__ = ["Sequential"]

_STEP_BUDGET_S = 0.1   # Python regains control this often during fit (Ctrl-C, progress bar)


class Sequential:
    """A feed-forward network: ``y = layers[-1](... layers[0](x))``.

    Parameters
    ----------
    layers : list of Layer
        The first is a :class:`Dense` (it fixes the input width); consecutive Dense sizes must chain.
    dtype : {"float32", "float64"}
        Precision of parameters and arithmetic. Inputs of other dtypes are cast once per call.
    seed : int or None
        Seeds the weight initialisation.
    """

    def __init__(self, layers, dtype="float32", seed=None):
        if isinstance(layers, Layer) or not hasattr(layers, "__iter__"):
            raise TypeError(f"Sequential expects a list of layers, got {type(layers).__name__}")
        layers = list(layers)
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layer {i} must be a neurocore layer, got {type(layer).__name__} {layer!r}")
        if len({id(layer) for layer in layers}) != len(layers):
            raise ValueError("the same layer object appears twice; create a new layer for each position")
        if not any(isinstance(layer, Dense) for layer in layers):
            raise ValueError("Sequential needs at least one Dense layer (it fixes the input width)")
        width = None
        for i, layer in enumerate(layers):
            if isinstance(layer, Dense):
                if width is not None and layer.in_features != width:
                    raise ValueError(f"layer {i} {layer!r} expects {layer.in_features} inputs but the layer before "
                                     f"it produces {width}")
                width = layer.out_features
            if layer._model is not None and layer._model() is not None:
                raise ValueError(f"layer {i} {layer!r} already belongs to another Sequential; create new layers")
        if seed is not None:
            seed = check_int(seed, "seed", minimum=0)
        self.dtype = resolve_dtype(dtype)
        self.layers = layers
        self.seed = seed
        self.optimizer = None
        specs = [("dense", l.in_features, l.out_features, l.use_bias) if isinstance(l, Dense) else (l.kind, float(l.alpha))
                 for l in layers]
        self._net = (_core.Network_float32 if self.dtype == np.float32 else _core.Network_float64)(specs)
        self._params = self._net.params_array()
        grads = self._net.grads_array()
        grads.flags.writeable = False
        self._layer_views = []
        for i, (layer, (w, b, n_in, n_out)) in enumerate(zip(layers, self._net.param_slots())):
            views = {}
            if w >= 0:
                views["weight"] = self._params[w:w + n_in * n_out].reshape(n_in, n_out)
                views["grad_weight"] = grads[w:w + n_in * n_out].reshape(n_in, n_out)
            if b >= 0:
                views["bias"] = self._params[b:b + n_out]
                views["grad_bias"] = grads[b:b + n_out]
            self._layer_views.append(views)
            layer._bind(self, i, views)
        self._initialise(np.random.default_rng(seed))

    # ----------------------------------------------------------------------------------------------
    def _initialise(self, rng: np.random.Generator) -> None:
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Dense):
                continue
            nxt = self.layers[i + 1] if i + 1 < len(self.layers) else None
            init = layer.init
            if init is None:
                init = "he_uniform" if isinstance(nxt, (ReLU, LeakyReLU)) else "glorot_uniform"
            fan_in, fan_out = layer.in_features, layer.out_features
            shape = (fan_in, fan_out)
            if isinstance(init, np.ndarray):
                w = init
            elif init == "zeros":
                w = np.zeros(shape)
            elif init == "he_uniform":
                w = rng.uniform(-1, 1, shape) * math.sqrt(6.0 / fan_in)
            elif init == "he_normal":
                w = rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)
            elif init == "glorot_uniform":
                w = rng.uniform(-1, 1, shape) * math.sqrt(6.0 / (fan_in + fan_out))
            elif init == "glorot_normal":
                w = rng.standard_normal(shape) * math.sqrt(2.0 / (fan_in + fan_out))
            else:  # lecun_normal
                w = rng.standard_normal(shape) * math.sqrt(1.0 / fan_in)
            self._layer_views[i]["weight"][...] = w
            if layer.use_bias:
                self._layer_views[i]["bias"][...] = 0

    @property
    def in_features(self) -> int:
        return self._net.in_features

    @property
    def out_features(self) -> int:
        return self._net.out_features

    @property
    def n_parameters(self) -> int:
        """Number of trainable scalars (weights and biases)."""
        return sum(v.size for views in self._layer_views for k, v in views.items() if k in ("weight", "bias"))

    def parameters(self) -> list:
        """The live parameter arrays, in order: weight then bias of each Dense layer. Writable views."""
        return [v[k] for v in self._layer_views for k in ("weight", "bias") if k in v]

    def gradients(self) -> list:
        """The gradient arrays matching :meth:`parameters` (read-only views, filled by backward)."""
        return [v[k] for v in self._layer_views for k in ("grad_weight", "grad_bias") if k in v]

    def zero_grad(self) -> None:
        """Set every gradient to 0 (backward overwrites them anyway; kept for PyTorch-style loops)."""
        self._net.zero_grad()

    # ----------------------------------------------------------------------------------------------
    def _first_dense(self) -> Dense:
        return next(layer for layer in self.layers if isinstance(layer, Dense))

    def _input(self, x, name="x", allow_empty=False, finite=False) -> np.ndarray:
        return as_matrix(x, self.dtype, name, cols=self.in_features, owner=repr(self._first_dense()),
                         allow_empty=allow_empty, finite=finite)

    def forward(self, x, training: bool = False) -> np.ndarray:
        """Run the network on a batch; keeps the activations that :meth:`backward` needs.

        Parameters
        ----------
        x : array (batch, in_features)
            Any real dtype and memory layout (cast/copied once).
        training : bool
            Reserved for layers that behave differently in training (none yet).

        Returns
        -------
        ndarray (batch, out_features) of the model's dtype.
        """
        return self._net.forward(self._input(x))

    def backward(self, grad_output) -> np.ndarray:
        """Back-propagate d loss / d output of the last :meth:`forward`.

        Fills (overwrites) every ``grad_weight``/``grad_bias`` and returns d loss / d x, shaped like x.
        """
        rows = self._net.forward_rows
        if rows == 0:
            raise ValueError("backward() needs a forward() first (predict/evaluate/fit do not keep activations)")
        g = as_matrix(grad_output, self.dtype, "grad_output", cols=self.out_features, owner="backward")
        if g.shape[0] != rows:
            raise ValueError(f"backward expects grad_output of shape {(rows, self.out_features)} to match the last "
                             f"forward, got {g.shape}")
        return self._net.backward(g)

    def predict(self, x, batch_size: int = 1024) -> np.ndarray:
        """The network's output for x (batch, in_features), computed in chunks of batch_size rows."""
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        return self._net.predict(self._input(x, allow_empty=True), batch_size)

    __call__ = predict

    def evaluate(self, x, y, loss="cross_entropy", batch_size: int = 1024) -> dict:
        """``{"loss": ..., "accuracy": ...}`` on (x, y); accuracy only for classification losses."""
        loss = get_loss(loss)
        x = self._input(x)
        target = loss.prepare_target(y, x.shape[0], self.out_features, self.dtype)
        out = self.predict(x, batch_size)
        value, _ = loss(out, target)
        metrics = {"loss": value}
        acc = loss.accuracy(out, target)
        if acc is not None:
            metrics["accuracy"] = acc
        return metrics

    # ----------------------------------------------------------------------------------------------
    def fit(self, x, y, loss="cross_entropy", optimizer=None, epochs: int = 1, batch_size: int = 32,
            shuffle: bool = True, seed=None, validation_data=None, verbose: int = 1,
            on_nonfinite: str = "raise") -> dict:
        """Train with mini-batch SGD; the whole epoch loop runs in C++ with the GIL released.

        Parameters
        ----------
        x : array (n_samples, in_features); y : targets for ``loss`` (labels (n,) for cross-entropy,
            else shaped like the output).
        loss : Loss or name ('cross_entropy', 'mse', 'bce', 'bce_with_logits').
        optimizer : SGD, optional. Defaults to the model's last optimizer, else ``SGD(lr=0.01)``.
        epochs : int >= 0; batch_size : int >= 1
        shuffle : bool. False visits the batches in order (the last one possibly smaller).
        seed : int or None. Seeds the shuffling: same seed, data and thread count give identical weights.
        validation_data : (x_val, y_val), optional. Adds ``val_loss`` (and ``val_accuracy``) per epoch.
        verbose : 0 silent, 1 a progress bar per epoch.
        on_nonfinite : 'raise' (FloatingPointError) or 'warn' (RuntimeWarning and stop) when a batch loss
            becomes NaN/Inf; the parameters keep the values of the last finite step.

        Returns
        -------
        dict of per-epoch lists: ``loss`` (the mean of the epoch's batch losses), and ``val_loss``,
        ``val_accuracy`` when validation data is given. Ctrl-C stops within ~0.1 s, leaving the model at
        its last completed step, and raises KeyboardInterrupt.
        """
        loss = get_loss(loss)
        if optimizer is None:
            optimizer = self.optimizer if self.optimizer is not None else SGD(lr=0.01)
        if not isinstance(optimizer, SGD):
            raise TypeError(f"optimizer must be an SGD instance, got {type(optimizer).__name__}")
        epochs = check_int(epochs, "epochs", minimum=0)
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
        if seed is not None:
            seed = check_int(seed, "seed", minimum=0)
        verbose = check_int(verbose, "verbose", minimum=0)
        if on_nonfinite not in ("raise", "warn"):
            raise ValueError(f"on_nonfinite must be 'raise' or 'warn', got {on_nonfinite!r}")
        x = self._input(x, "X", finite=True)
        n = x.shape[0]
        y_arr = np.asarray(y) if not isinstance(y, np.ndarray) else y
        if y_arr.ndim == 0 or len(y_arr) != n:
            raise ValueError(f"X and y must have the same number of samples, got {n} and "
                             f"{'a scalar' if y_arr.ndim == 0 else len(y_arr)}")
        target = loss.prepare_target(y_arr, n, self.out_features, self.dtype)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("validation_data must be a tuple (x_val, y_val)")
            xv = self._input(validation_data[0], "x_val", finite=True)
            yv = loss.prepare_target(validation_data[1], xv.shape[0], self.out_features, self.dtype)
            val = (xv, yv)
        optimizer._bind(self)
        self.optimizer = optimizer

        history = {"loss": []}
        if loss.classification:
            history["accuracy"] = []
        if val is not None:
            history["val_loss"] = []
            if loss.classification:
                history["val_accuracy"] = []
        rng = np.random.default_rng(seed)
        n_steps = -(-n // batch_size)
        for epoch in range(epochs):
            order = rng.permutation(n) if shuffle else np.arange(n, dtype=np.int64)
            mean_loss = self._run_epoch(x, target, order, loss, optimizer, batch_size, n_steps, epoch, epochs,
                                        verbose, on_nonfinite, val, history)
            if mean_loss is None:  # stopped on a non-finite loss with on_nonfinite='warn'
                break
        return history

    def _run_epoch(self, x, target, order, loss, optimizer, batch_size, n_steps, epoch, epochs, verbose,
                   on_nonfinite, val, history):
        from .progress import EpochProgress

        n = x.shape[0]
        step, loss_sum, correct = 0, 0.0, 0
        with EpochProgress(n, epoch, epochs, enabled=verbose > 0) as bar:
            while step < n_steps:
                done, loss_sum, nonfinite, bad, bad_row, batch_correct = self._net.train_steps(
                    x, target, order, batch_size, step, n_steps - step, _STEP_BUDGET_S, loss_sum, loss.kind,
                    *optimizer._kernel_args(), optimizer.velocity)
                step += done
                correct += batch_correct
                bar.advance(min(step * batch_size, n), loss_sum / max(step, 1))
                if bad_row >= 0:
                    raise ValueError(f"label at row {bad_row} is outside [0, {self.out_features})")
                if nonfinite:
                    msg = (f"the loss became {bad} at epoch {epoch + 1}, step {step + 1} (of {n_steps}); training "
                           f"stopped with the parameters of the last finite step. Try a lower learning rate "
                           f"(lr={optimizer.lr:g}) or check the data scale.")
                    if on_nonfinite == "raise":
                        raise FloatingPointError(msg)
                    warnings.warn(msg, RuntimeWarning, stacklevel=4)
                    return None
            mean_loss = loss_sum / n_steps
            history["loss"].append(mean_loss)
            metrics = {"loss": mean_loss}
            if "accuracy" in history:  # over the epoch's training batches, as each was seen
                history["accuracy"].append(correct / (n * (1 if loss.kind == "cross_entropy" else self.out_features)))
                metrics["accuracy"] = history["accuracy"][-1]
            if val is not None:
                vm = self.evaluate(val[0], val[1], loss)
                history["val_loss"].append(vm["loss"])
                metrics["val_loss"] = vm["loss"]
                if "val_accuracy" in history:
                    history["val_accuracy"].append(vm["accuracy"])
                    metrics["val_accuracy"] = vm["accuracy"]
            bar.finish(metrics)
        return mean_loss

    # ----------------------------------------------------------------------------------------------
    def get_config(self) -> dict:
        return {"dtype": self.dtype.name, "layers": [layer.config() for layer in self.layers]}

    def save(self, path, include_optimizer: bool = False) -> None:
        """Write architecture, dtype and weights (and optimizer state) to one ``.npz`` file; see :func:`load`."""
        from .io import save

        save(self, path, include_optimizer=include_optimizer)

    def __repr__(self) -> str:
        lines = [f"Sequential(dtype={self.dtype.name}, {self.n_parameters:,} parameters)"]
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Dense):
                shapes = f"weight {layer.in_features}x{layer.out_features}" + (f", bias {layer.out_features}" if layer.use_bias else "")
                count = layer.in_features * layer.out_features + (layer.out_features if layer.use_bias else 0)
                lines.append(f"  ({i}) {layer!r:<28} {shapes:<28} {count:>12,}")
            else:
                lines.append(f"  ({i}) {layer!r}")
        return "\n".join(lines)
