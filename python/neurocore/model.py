"""Sequential: a stack of layers over one C++ network (flat parameters, fused kernels, the fit loop)."""
from __future__ import annotations

import math
import warnings

import numpy as np

from . import _core
from ._validation import as_batch, as_numeric_array, check_bool, check_float, check_int, check_shape, resolve_dtype
from .layers import (
    ELU,
    GELU,
    BatchNorm,
    Layer,
    LeakyReLU,
    ReLU,
    _Recurrent,
    check_layer_list,
    fixed_input_shape,
    flatten,
    infer_shapes,
    initial_weights,
    layer_config,
    missing_input_shape,
)
from .losses import get_loss
from .optim import SGD

__all__ = ["Sequential"]

_STEP_BUDGET_S = 0.1   # Python regains control this often during fit (Ctrl-C, progress bar)
# Inputs of these dtypes are read in place (a np.memmap too): the C++ core gathers and casts each batch.
_IN_PLACE_DTYPES = frozenset(np.dtype(t) for t in (np.uint8, np.int16, np.float16, np.float32, np.float64))
_FINITE_CHECK_ELEMS = 1 << 22   # rows are checked for NaN/Inf in blocks of about this many values


class Sequential:
    """A feed-forward network: ``y = layers[-1](... layers[0](x))``.

    Parameters
    ----------
    layers : list of Layer
        Each layer's input shape is the one the layer before it produces (shapes must chain). Layers that
        already belong to another model are copied with their weights (transfer learning): weights are never
        shared between models.
    dtype : {"float32", "float64"}, default "float32"
        Precision of parameters and arithmetic. Inputs of other dtypes are cast once per call.
    seed : int >= 0 or None, default None
        Seeds the weight initialisation (None: fresh randomness).
    input_shape : tuple of int, optional
        The shape of one sample, e.g. ``(H, W, C)`` for channels-last images. Required when the first
        layer does not fix it by itself (a Dense fixes ``(in_features,)``; a Conv2D fixes only C).

    Attributes
    ----------
    layers : list of Layer
        The layers, bound to this model: their arrays are views of its flat C++ buffers.
    dtype : numpy.dtype
    optimizer : Optimizer or None
        The optimizer of the last ``fit`` (``fit`` reuses it when none is given).

    Raises
    ------
    TypeError
        ``layers`` is not a list of layers, or a bad ``dtype``/``seed``/``input_shape`` type.
    ValueError
        No layer, shapes that do not chain (the message names the layer and both shapes), no input shape
        when the first layer does not fix one, the same layer object twice, dtype other than float32/float64,
        a negative seed.

    Examples
    --------
    >>> import neurocore as nc
    >>> model = nc.Sequential([nc.Dense(64, 32), nc.ReLU(), nc.Dense(32, 10)], seed=0)
    >>> model.in_features, model.out_features, model.n_parameters
    (64, 10, 2410)
    """

    def __init__(self, layers, dtype="float32", seed=None, input_shape=None):
        layers = check_layer_list(layers, "Sequential")
        if seed is not None:
            seed = check_int(seed, "seed", minimum=0)
        if input_shape is not None:
            input_shape = check_shape(input_shape, "input_shape")
        self.dtype = resolve_dtype(dtype)
        # Layers that already belong to a live model are copied with their arrays (transfer learning):
        # weights are copied, never shared between models.
        sources = {}
        fresh = []
        for layer in layers:
            if layer._model is not None:   # bound before (its arrays live on in its views)
                clone = layer._clone()
                for src, dst in _clone_pairs(layer, clone):
                    sources[id(dst)] = src
                fresh.append(clone)
            else:
                fresh.append(layer)
        layers = fresh
        flat = flatten(layers)
        if len({id(layer) for layer, _ in flat if layer is not None}) != sum(layer is not None for layer, _ in flat):
            raise ValueError("the same layer object appears twice; create a new layer for each position")
        if input_shape is None:
            input_shape = fixed_input_shape(layers)
            if input_shape is None:
                raise ValueError(f"Sequential needs {missing_input_shape(layers)}")
        self._shapes = infer_shapes(layers, input_shape, "Sequential")
        self.layers = layers
        self.seed = seed
        self.optimizer = None
        self._net = (_core.Network_float32 if self.dtype == np.float32 else _core.Network_float64)(
            list(input_shape), [spec for _, spec in flat])
        self._net.set_seed(seed if seed is not None else int(np.random.SeedSequence().entropy % (1 << 63)))
        self._params = self._net.params_array()
        grads = self._net.grads_array()
        grads.flags.writeable = False
        state = self._net.state_array()
        self._layer_views = []   # per flattened position
        self._flat_layers = [layer for layer, _ in flat]
        for i, ((layer, _), (tensors, _)) in enumerate(zip(flat, self._net.layer_tensors())):
            views = {}
            for name, offset, shape, is_state in tensors:
                size = math.prod(shape)
                if is_state:
                    views[name] = state[offset:offset + size].reshape(shape)
                else:
                    views[name] = self._params[offset:offset + size].reshape(shape)
                    views["grad_" + name] = grads[offset:offset + size].reshape(shape)
            if layer is not None and [(n, tuple(s), st) for n, _, s, st in tensors] != layer.tensor_shapes():
                raise RuntimeError(f"internal error: the core's tensors for {layer!r} differ from its tensor_shapes()")
            self._layer_views.append(views)
            if layer is not None:
                layer._bind(self, i, views)
                if not layer.trainable:
                    self._net.set_trainable(i, False)
        self._initialise(np.random.default_rng(seed))
        for layer in self._flat_layers:
            src = sources.get(id(layer))
            if src is not None:
                _copy_arrays(src, layer)

    # ----------------------------------------------------------------------------------------------
    def _initialise(self, rng: np.random.Generator) -> None:
        flat = self._flat_layers
        for i, layer in enumerate(flat):
            if isinstance(layer, BatchNorm):
                self._layer_views[i]["weight"][...] = 1
                self._layer_views[i]["bias"][...] = 0
                continue
            if layer is not None and hasattr(layer, "init_tensors"):   # a layer that initialises itself
                layer.init_tensors(self._layer_views[i], rng)
                continue
            if not hasattr(layer, "fans"):   # layers with an initialised weight: Dense, Conv2D
                continue
            nxt = flat[i + 1] if i + 1 < len(flat) else None
            init = layer.init
            if init is None:
                init = "he_uniform" if isinstance(nxt, (ReLU, LeakyReLU, ELU, GELU)) else "glorot_uniform"
            shape = self._layer_views[i]["weight"].shape
            w = init if isinstance(init, np.ndarray) else initial_weights(init, shape, *layer.fans(), rng)
            self._layer_views[i]["weight"][...] = w
            if layer.use_bias:
                self._layer_views[i]["bias"][...] = 0

    @property
    def in_features(self) -> int:
        """Values per input sample (the product of ``input_shape``)."""
        return self._net.in_features

    @property
    def out_features(self) -> int:
        """Values per output sample (the product of ``output_shape``)."""
        return self._net.out_features

    @property
    def input_shape(self) -> tuple:
        """The shape of one input sample, e.g. ``(784,)`` or ``(28, 28, 1)``."""
        return self._net.input_shape

    @property
    def output_shape(self) -> tuple:
        """The shape of one output sample."""
        return self._net.output_shape

    def _param_names(self, views) -> list:
        return [k for k in views if not k.startswith("grad_") and "grad_" + k in views]

    @property
    def n_parameters(self) -> int:
        """Number of trainable scalars (weights and biases)."""
        return sum(views[k].size for views in self._layer_views for k in self._param_names(views))

    def parameters(self) -> list:
        """The live parameter arrays, in order: each layer's tensors (Dense/Conv2D/BatchNorm: weight then
        bias). Writable views."""
        return [views[k] for views in self._layer_views for k in self._param_names(views)]

    def gradients(self) -> list:
        """The gradient arrays matching :meth:`parameters` (read-only views, filled by backward)."""
        return [views["grad_" + k] for views in self._layer_views for k in self._param_names(views)]

    def zero_grad(self) -> None:
        """Set every gradient to 0 (backward overwrites them anyway; kept for PyTorch-style loops)."""
        self._net.zero_grad()

    # ----------------------------------------------------------------------------------------------
    def _has(self, cls) -> bool:
        return any(isinstance(layer, cls) for layer in self._flat_layers)

    def _owner(self) -> str:
        """The layer named in input errors: the first weighted layer (Dense, Conv2D, RNN/LSTM/GRU), else the first."""
        return repr(next((layer for layer in self._flat_layers if _weighted(layer)), self._flat_layers[0]))

    def _input(self, x, name="x", allow_empty=False, finite=False) -> np.ndarray:
        return as_batch(x, self.dtype, name, self.input_shape, owner=self._owner, allow_empty=allow_empty,
                        finite=finite)

    def _flat_target(self, y):
        """Targets shaped like a multi-axis output, (n, *output_shape), as the (n, out_features) the losses take."""
        if len(self.output_shape) > 1 and isinstance(y, np.ndarray) and y.shape[1:] == self.output_shape:
            return y.reshape(y.shape[0], -1)
        return y

    def _source(self, x, name="x", allow_empty=False, finite=False) -> np.ndarray:
        """x as the C++ core reads it: in place when it is a C-contiguous (batch, *input_shape) array of
        uint8/int16/float16/float32/float64 (a np.memmap too: never copied whole), else cast once."""
        if (isinstance(x, np.ndarray) and x.dtype in _IN_PLACE_DTYPES and x.shape[1:] == self.input_shape
                and x.flags.c_contiguous and x.flags.aligned and (x.shape[0] > 0 or allow_empty)):
            if finite and x.dtype.kind == "f":
                _check_finite(x, name, self.dtype)
            return x
        return self._input(x, name, allow_empty=allow_empty, finite=finite)

    def _scaling(self, scale) -> tuple:
        """(scale, mean, std) for the C++ core from ``scale=``: None, a number (x * scale), or a pair
        (mean, std) of numbers or arrays broadcastable to input_shape ((x - mean) / std: per feature, or per
        channel of an image)."""
        if scale is None:
            return 1.0, None, None
        if isinstance(scale, (tuple, list)):
            if len(scale) != 2:
                raise ValueError(f"scale must be a number or a pair (mean, std), got a sequence of {len(scale)}")
            shape = self.input_shape
            pair = []
            for value, what in zip(scale, ("mean", "std")):
                arr = as_numeric_array(value, f"scale {what}")
                try:
                    arr = np.broadcast_to(arr, shape)
                except ValueError:
                    raise ValueError(f"scale {what} must be a number or broadcast to the input shape {shape}, got "
                                     f"shape {arr.shape}") from None
                arr = np.ascontiguousarray(arr, dtype=self.dtype).ravel()
                if not np.isfinite(arr).all():
                    raise ValueError(f"scale {what} must be finite")
                pair.append(arr)
            if not (pair[1] > 0).all():
                raise ValueError(f"scale std must be > 0 for every feature, got minimum {pair[1].min()}")
            return 1.0, pair[0], pair[1]
        value = check_float(scale, "scale")
        if value == 0:
            raise ValueError("scale must be non-zero")
        return value, None, None

    def forward(self, x, training: bool = False) -> np.ndarray:
        """Run the network on a batch; keeps the activations that :meth:`backward` needs.

        Parameters
        ----------
        x : array (batch, *input_shape)
            Any real dtype and memory layout (cast/copied once).
        training : bool, default False
            Dropout drops and BatchNorm uses (and updates) batch statistics, as in ``fit``.

        Returns
        -------
        ndarray
            (batch, *output_shape), of the model's dtype.

        Raises
        ------
        TypeError
            Non-numeric x or a non-bool ``training``.
        ValueError
            x not shaped (batch, *input_shape) or with no rows; a batch of 1 in training mode with BatchNorm.
        """
        training = check_bool(training, "training")
        x = self._input(x)
        if training and x.shape[0] == 1 and self._has(BatchNorm):
            raise ValueError("BatchNorm needs more than one sample per batch in training mode, got a batch of 1")
        return self._net.forward(x, bool(training))

    def backward(self, grad_output) -> np.ndarray:
        """Back-propagate d loss / d output of the last :meth:`forward`.

        Fills (overwrites) ``grad_weight``/``grad_bias`` of every trainable layer and returns d loss / d x,
        shaped like x.

        Parameters
        ----------
        grad_output : array (batch, *output_shape)
            d loss / d output for the samples of the last forward (a loss's second return value).

        Returns
        -------
        ndarray
            d loss / d x, (batch, *input_shape), of the model's dtype.

        Raises
        ------
        ValueError
            No forward before it (``predict``, ``evaluate`` and ``fit`` keep no activations), or
            grad_output of another shape than the last forward's output.
        """
        rows = self._net.forward_rows
        if rows == 0:
            raise ValueError("backward() needs a forward() first (predict/evaluate/fit do not keep activations)")
        g = as_batch(grad_output, self.dtype, "grad_output", self.output_shape, owner="backward")
        if g.shape[0] != rows:
            raise ValueError(f"backward expects grad_output of shape {(rows, *self.output_shape)} to match the last "
                             f"forward, got {g.shape}")
        return self._net.backward(g)

    def predict(self, x, batch_size: int = 1024, scale=None) -> np.ndarray:
        """The network's output for x in inference mode (dropout off, BatchNorm on running statistics).

        ``model(x)`` is the same call.

        Parameters
        ----------
        x : array (n, *input_shape)
            Any real dtype and memory layout; n may be 0. A C-contiguous uint8/int16/float16/float32/float64
            array (a ``np.memmap`` too) is read in place, one chunk at a time, never copied whole.
        batch_size : int >= 1, default 1024
            Samples per chunk (memory only: the result does not depend on it).
        scale : None, number or (mean, std), default None
            Standardises x on the way, as in :meth:`fit`.

        Returns
        -------
        ndarray
            (n, *output_shape), of the model's dtype.

        Raises
        ------
        TypeError, ValueError
            Non-numeric x, x not shaped (n, *input_shape), a bad ``batch_size``.
        """
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        if scale is None:
            return self._net.predict(self._source(x, allow_empty=True), batch_size)
        return self._net.predict(self._source(x, allow_empty=True), batch_size, *self._scaling(scale))

    __call__ = predict

    def evaluate(self, x, y, loss="cross_entropy", batch_size: int = 1024, scale=None) -> dict:
        """The loss (and accuracy) of the model on (x, y), in inference mode.

        Parameters
        ----------
        x : array (n, *input_shape)
        y : array
            Targets for ``loss``: integer labels (n,) for cross-entropy, else shaped like the output ((n,) is
            accepted for one output).
        loss : Loss or name, default "cross_entropy"
            'cross_entropy', 'mse', 'bce' or 'bce_with_logits'.
        batch_size : int >= 1, default 1024
        scale : None, number or (mean, std), default None
            Standardises x on the way, as in :meth:`fit` (x is read in place as by :meth:`predict`).

        Returns
        -------
        dict
            ``{"loss": float}``, plus ``"accuracy"`` for classification losses (argmax for cross-entropy,
            output >= 0.5, or logit >= 0, for the binary losses).

        Raises
        ------
        TypeError, ValueError
            Bad x as in :meth:`predict`; targets of the wrong shape, non-finite, or outside the loss's range
            (labels outside [0, out_features), BCE targets outside [0, 1]); an unknown loss name.
        """
        loss = get_loss(loss)
        x = self._source(x)
        target = loss.prepare_target(self._flat_target(y), x.shape[0], self.out_features, self.dtype)
        out = self.predict(x, batch_size, scale=scale).reshape(x.shape[0], -1)
        value, _ = loss(out, target)
        metrics = {"loss": value}
        acc = loss.accuracy(out, target)
        if acc is not None:
            metrics["accuracy"] = acc
        return metrics

    # ----------------------------------------------------------------------------------------------
    def fit(self, x, y, loss="cross_entropy", optimizer=None, epochs: int = 1, batch_size: int = 32,
            shuffle: bool = True, seed=None, validation_data=None, validation_split: float = 0.0,
            schedule=None, callbacks=(), augment=None, track_gradients: bool = False, verbose: int = 1,
            on_nonfinite: str = "raise", scale=None, distributed=None, sharded: bool = False) -> dict:
        """Train with mini-batches; the epoch loop runs in C++ with the GIL released.

        Parameters
        ----------
        x : array (n_samples, *input_shape)
            Training inputs, finite. A C-contiguous uint8/int16/float16/float32/float64 array (a ``np.memmap``
            too) is read in place: each batch's samples are gathered and cast in C++, so a data set larger
            than memory trains without being copied.
        y : array
            Targets for ``loss``: integer labels (n_samples,) for cross-entropy, else shaped like the output
            ((n_samples,) is accepted for one output).
        loss : Loss or name, default "cross_entropy"
            A Loss instance or 'cross_entropy', 'mse', 'bce', 'bce_with_logits'.
        optimizer : SGD, Adam, AdamW or None, default None
            None reuses the model's last optimizer, else ``SGD(lr=0.01)``.
        epochs : int >= 0, default 1
        batch_size : int >= 1, default 32
        shuffle : bool, default True
            False visits the batches in order (the last one possibly smaller).
        seed : int >= 0 or None, default None
            Seeds shuffling, dropout masks, input noise and the validation split: the same seed, data, starting
            weights and thread count give bitwise identical weights.
        validation_data : (x_val, y_val) or None, default None
            Evaluated after every epoch (``val_loss``, ``val_accuracy``).
        validation_split : float in [0, 1), default 0
            Instead of validation_data: the share of (x, y) held out (shuffled; stratified by class for
            classification losses).
        schedule : Schedule or None, default None
            A learning-rate schedule (``neurocore.schedules``), applied per epoch or per step; its time starts
            at 0 with each call to fit.
        callbacks : list of callables, default ()
            ``f(epoch, metrics)`` after each epoch; one returning False stops training. EarlyStopping
            (``neurocore.callbacks``) is one.
        augment : GaussianNoise, callable or None, default None
            ``neurocore.GaussianNoise(std)`` (added in C++, no Python per batch), or a callable
            ``f(x_batch) -> x_batch`` applied to each mini-batch's inputs (one Python call per batch).
        track_gradients : bool, default False
            Record ``history["grad_norm"]``: per epoch, the mean over steps of each Dense and Conv2D layer's
            weight-gradient norm, and of each RNN/LSTM/GRU's ||(dW_ih, dW_hh)|| (computed in C++); NaN for
            frozen layers.
        verbose : int, default 1
            0 silent, 1 a progress bar per epoch.
        on_nonfinite : {"raise", "warn"}, default "raise"
            'raise' (FloatingPointError) or 'warn' (RuntimeWarning and stop) when a batch loss becomes NaN/Inf;
            the parameters keep the values of the last finite step.
        scale : None, number or (mean, std), default None
            A number multiplies the inputs (1/255 for uint8 images); a pair (mean, std) of numbers or arrays
            broadcast to input_shape (per feature, or per channel of an image) makes them (x - mean) / std.
            Applied per batch in C++, to the validation data too.
        distributed : {None, "mpi"}, default None
            "mpi": data-parallel training under ``mpiexec -n P`` (needs ``pip install "neurocore[mpi]"``).
            Every rank passes the same data; a step trains on a global batch of ``batch_size x P`` samples,
            rank r on its r-th share, with the gradients (and BatchNorm's statistics) summed over the ranks:
            the weights equal one process's with ``batch_size x P`` and are identical on every rank. Rank 0's
            parameters, optimizer state and seed start every rank; only rank 0 shows the progress bar.
        sharded : bool, default False
            With distributed="mpi": each rank passes its own part of the data; an epoch has as many steps as
            the smallest part has batches.

        Returns
        -------
        dict
            Per-epoch lists: ``loss`` (the mean of the epoch's batch losses), ``accuracy`` (for
            classification), ``lr``, and ``val_loss``/``val_accuracy`` with validation data. Ctrl-C stops
            within ~0.1 s, leaving the model at its last completed step, and raises KeyboardInterrupt.
            Distributed: the history is the same on every rank (validation metrics summed over the ranks).

        Raises
        ------
        TypeError
            An argument of the wrong type (optimizer, schedule, callbacks, augment, ...).
        ValueError
            Bad data (shapes, NaN/Inf in X, targets out of range), x and y of different lengths, both
            validation_data and validation_split, a callback or schedule monitoring a metric this fit does not
            report, BatchNorm with a batch of 1. Raised before any training: the model is unchanged.
        FloatingPointError
            The loss became NaN/Inf (with ``on_nonfinite="raise"``); the model keeps the last finite step.
            Distributed, bad labels and a non-finite loss raise the same error on every rank.
        neurocore.distributed.RankStoppedError
            Distributed: another rank stopped (an exception, Ctrl-C); every rank stops.
        ImportError
            distributed="mpi" without mpi4py.
        """
        sharded = check_bool(sharded, "sharded")
        args = (x, y, loss, optimizer, epochs, batch_size, shuffle, seed, validation_data, validation_split,
                schedule, callbacks, augment, track_gradients, verbose, on_nonfinite, scale)
        if distributed is None:
            if sharded:
                raise ValueError("sharded=True needs distributed='mpi'")
            return self._fit(*args, session=None, sharded=False)
        if distributed != "mpi":
            raise ValueError(f"distributed must be None or 'mpi', got {distributed!r}")
        from .distributed import Session

        session = Session(self._net)
        try:
            return self._fit(*args, session=session, sharded=sharded)
        except BaseException as exc:
            session.fail(exc)
            raise
        finally:
            session.close()

    def _fit(self, x, y, loss, optimizer, epochs, batch_size, shuffle, seed, validation_data, validation_split,
             schedule, callbacks, augment, track_gradients, verbose, on_nonfinite, scale, session, sharded):
        from .augment import GaussianNoise
        from .callbacks import call_hook
        from .optim import Optimizer
        from .schedules import Schedule

        loss = get_loss(loss)
        if optimizer is None:
            optimizer = self.optimizer if self.optimizer is not None else SGD(lr=0.01)
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be an SGD, Adam or AdamW instance, got {type(optimizer).__name__}")
        epochs = check_int(epochs, "epochs", minimum=0)
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        shuffle = check_bool(shuffle, "shuffle")
        if seed is not None:
            seed = check_int(seed, "seed", minimum=0)
        verbose = check_int(verbose, "verbose", minimum=0)
        if on_nonfinite not in ("raise", "warn"):
            raise ValueError(f"on_nonfinite must be 'raise' or 'warn', got {on_nonfinite!r}")
        if schedule is not None and not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a neurocore.schedules.Schedule, got {type(schedule).__name__}")
        if callbacks is None:
            callbacks = []
        if callable(callbacks) or not hasattr(callbacks, "__iter__"):
            raise TypeError(f"callbacks must be a list of callables f(epoch, metrics), got {type(callbacks).__name__}")
        callbacks = list(callbacks)
        for cb in callbacks:
            if not callable(cb):
                raise TypeError(f"callbacks must be callables f(epoch, metrics), got {cb!r}")
        noise = 0.0
        if isinstance(augment, GaussianNoise):
            noise, augment = augment.std, None
        elif augment is not None and not callable(augment):
            raise TypeError(f"augment must be a callable or neurocore.GaussianNoise, got {type(augment).__name__}")
        if augment is not None and session is not None:
            raise ValueError("a Python augment callable cannot run in a distributed fit (one Python call per batch "
                             "and rank); use neurocore.GaussianNoise, or augment the data beforehand")
        track_gradients = check_bool(track_gradients, "track_gradients")
        split = float(validation_split) if not isinstance(validation_split, bool) else -1.0
        if not 0.0 <= split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
        if split and validation_data is not None:
            raise ValueError("give validation_data or validation_split, not both")
        scaling = self._scaling(scale)

        x = self._source(x, "X", finite=True)
        n = x.shape[0]
        y_arr = np.asarray(y) if not isinstance(y, np.ndarray) else y
        if y_arr.ndim == 0 or len(y_arr) != n:
            raise ValueError(f"X and y must have the same number of samples, got {n} and "
                             f"{'a scalar' if y_arr.ndim == 0 else len(y_arr)}")
        target = loss.prepare_target(self._flat_target(y_arr), n, self.out_features, self.dtype)
        val = None
        rows = np.arange(n, dtype=np.int64)   # the rows of x that train
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("validation_data must be a tuple (x_val, y_val)")
            xv = self._source(validation_data[0], "x_val", finite=True)
            yv = loss.prepare_target(self._flat_target(validation_data[1]), xv.shape[0], self.out_features, self.dtype)
            val = (xv, yv)
        elif split:
            rows, val = _split(x, target, split, loss, seed)
            n = len(rows)
        world = session.size if session is not None else 1
        step_batch = batch_size * (1 if sharded else world)   # rows of one step over all ranks
        if self._has(BatchNorm) and not (sharded and world > 1) and (min(step_batch, n) == 1 or n % step_batch == 1):
            raise ValueError(f"BatchNorm needs more than one sample per batch in training mode: {n} samples in "
                             f"batches of {step_batch} leave a last batch of 1; change batch_size")
        reported = {"loss", "lr"} | ({"accuracy"} if loss.classification else set())
        if val is not None:
            reported |= {"val_loss"} | ({"val_accuracy"} if loss.classification else set())
        for watcher in [*callbacks, schedule]:
            monitor = getattr(watcher, "monitor", None)
            if isinstance(monitor, str) and monitor not in reported:
                raise ValueError(f"{type(watcher).__name__} monitors {monitor!r}, which this fit does not report "
                                 f"(it reports {sorted(reported)}); pass validation data or monitor another metric")
        optimizer._bind(self)
        self.optimizer = optimizer
        n_steps = -(-n // step_batch)
        if session is not None:   # every rank got here: rank 0's parameters, state and seed for all
            session.sync()
            session.check_agree({"batch_size": batch_size, "epochs": epochs} | ({} if sharded else {"samples": n}),
                                "pass sharded=True when each rank holds its own part of the data" if not sharded else "")
            seed = session.bcast_value(int(np.random.SeedSequence().entropy % (1 << 63)) if seed is None else seed)
            for arr in (self._params, self._net.state_array(), *optimizer.states, optimizer._step_counter):
                session.bcast_(arr)
            if sharded:
                n_steps = session.min_int(n_steps)
            if session.rank != 0:
                verbose = 0
        if seed is not None:
            self._net.set_seed(seed)

        history = {"loss": []}
        if loss.classification:
            history["accuracy"] = []
        history["lr"] = []
        if val is not None:
            history["val_loss"] = []
            if loss.classification:
                history["val_accuracy"] = []
        if track_gradients:
            history["grad_norm"] = []
        rng = np.random.default_rng(seed)
        run = _EpochRun(self, x, target, loss, optimizer, batch_size, n_steps, verbose, on_nonfinite, noise,
                        augment, track_gradients, scale, scaling, session, sharded)
        for cb in callbacks:
            call_hook(cb, "on_train_begin", self)
        try:
            for epoch in range(epochs):
                order = rows[rng.permutation(n)] if shuffle else rows
                lrs = _epoch_lrs(schedule, optimizer.lr, epoch, n_steps)
                metrics = run.epoch(order, epoch, epochs, lrs, val)
                if metrics is None:  # stopped on a non-finite loss with on_nonfinite='warn'
                    break
                for key, value in metrics.items():
                    history[key].append(value)
                if schedule is not None:
                    schedule.on_epoch_end(epoch, metrics)
                stop = False
                for cb in callbacks:
                    if cb(epoch, dict(metrics)) is False:
                        stop = True
                if session is not None:   # the ranks stop together (their callbacks saw the same history)
                    stop = session.sync((float(stop),))[0] > 0
                if stop:
                    break
        finally:
            for cb in callbacks:
                call_hook(cb, "on_train_end", self)
        return history

    # ----------------------------------------------------------------------------------------------
    def get_config(self) -> dict:
        """The architecture as a JSON-ready dict: ``{"dtype": ..., "layers": [layer.config(), ...]}``, plus
        ``"input_shape"`` when the layers do not fix it."""
        config = {"dtype": self.dtype.name, "layers": [layer_config(layer) for layer in self.layers]}
        if fixed_input_shape(self.layers) != self.input_shape:
            config["input_shape"] = list(self.input_shape)
        return config

    def save(self, path, include_optimizer: bool = False) -> None:
        """Write architecture, dtype, weights and BatchNorm statistics (and optimizer state) to one ``.npz``
        file; see :func:`neurocore.load`.

        The file is written to a temporary name and renamed, so an existing file is only ever replaced by a
        complete one. ``include_optimizer=True`` also stores the optimizer's configuration and state
        (ValueError when the model has not been trained with ``fit`` yet). OSError when the file cannot be
        written.
        """
        from .io import save

        save(self, path, include_optimizer=include_optimizer)

    def __reduce__(self):
        """pickle and copy.deepcopy go through the ``.npz`` format in memory (architecture, weights, BatchNorm
        statistics, and the optimizer's configuration and state when the model has one): no C++ object and no
        Python code is pickled, and the copy trains on exactly as the original would."""
        from .io import from_bytes, to_bytes

        return from_bytes, (to_bytes(self, include_optimizer=self.optimizer is not None),)

    def load_weights(self, source, strict: bool = True) -> list:
        """Copy weights layer by layer from a saved file or another model (transfer learning).

        Layers are matched in order among those with parameters (Dense, Conv2D, BatchNorm); each pair must have the
        same shapes. With ``strict=False`` copying stops at the first mismatch instead of raising. Returns
        the indices (in ``parameter_layers()`` order) of the layers copied. The model's dtype is kept.

        Parameters
        ----------
        source : str, path or Sequential
            A file written by :meth:`save`, or a model.
        strict : bool, default True

        Raises
        ------
        ValueError
            With ``strict=True``: a different number of parameter layers, or a pair of another kind or shape
            (nothing is copied then). A file that is not a neurocore model.
        OSError
            The file cannot be read.
        """
        from .io import load

        strict = check_bool(strict, "strict")
        other = source if isinstance(source, Sequential) else load(source)
        mine, theirs = self.parameter_layers(), other.parameter_layers()
        if strict and len(mine) != len(theirs):
            raise ValueError(f"load_weights(strict=True) needs the same layers: this model has {len(mine)} layers "
                             f"with parameters, the source has {len(theirs)}")
        plan = []
        for i, (a, b) in enumerate(zip(mine, theirs)):
            va, vb = a._views(), b._views()
            keys = sorted({k for k in (*va, *vb) if not k.startswith("grad_")})
            if type(a) is not type(b) or not all(k in va and k in vb and va[k].shape == vb[k].shape for k in keys):
                if strict:
                    raise ValueError(f"layer {i}: {a!r} cannot take the weights of {b!r}")
                break
            plan.append((i, a, b))
        for _, a, b in plan:
            _copy_arrays(b, a)
        return [i for i, _, _ in plan]

    def state_dict(self) -> dict:
        """Copies of every parameter and buffer as NumPy arrays in the model's dtype, under stable names: the
        attribute path from the model (``"layers.0.weight"`` is ``model.layers[0].weight``, ``"layers.3.layers.1.bias"``
        a layer inside a Residual block, ``"layers.2.running_var"`` a BatchNorm statistic). Dense weights are
        (in_features, out_features). Taken at one instant: never mixes two training steps."""
        from .interop.state import state_dict

        return state_dict(self)

    def load_state_dict(self, state) -> None:
        """Copy a :meth:`state_dict` (the same names, any real dtype, cast to the model's) into the model.
        Every name of this model must be present and no other, with the same shapes and finite values; all is
        checked before anything is copied, so on error (ValueError/TypeError) the model is unchanged."""
        from .interop.state import load_state_dict

        load_state_dict(self, state)

    def to_onnx(self, path, opset: int = 17) -> None:
        """Write the model as an ONNX file: one input ``"input"`` (batch, in_features) with a dynamic batch axis,
        one output ``"output"``, the parameters as initializers in the model's dtype. Needs the onnx extra
        (``pip install "neurocore[onnx]"``). Every layer kind is exported (float64 activations from operators
        with float64 kernels in onnxruntime: see ``neurocore.interop.onnx_export``); Dropout is dropped and
        BatchNorm takes its inference form. Nothing is written unless the whole graph is built and passes
        ``onnx.checker.check_model(full_check=True)``; ``opset`` in [13, the onnx package's newest]."""
        from .interop.onnx_export import to_onnx

        to_onnx(self, path, opset)

    def to_torch(self):
        """A ``torch.nn.Sequential`` (eval mode, the model's dtype, copies of the weights) computing what
        :meth:`predict` computes; Residual blocks become ``neurocore.interop.torch_convert.Residual``. Needs
        torch (``pip install "neurocore[torch]"``); :func:`neurocore.from_torch` is the reverse."""
        from .interop import require

        require("torch", "torch", "to_torch")
        from .interop.torch_convert import to_torch

        return to_torch(self)

    def parameter_layers(self) -> list:
        """The layers that hold parameters (Dense, Conv2D, BatchNorm), in network order (inside Residual blocks
        too)."""
        return [layer for layer in self._flat_layers if layer is not None and layer.tensor_shapes()]

    def __repr__(self) -> str:
        lines = [f"Sequential(dtype={self.dtype.name}, input {self.input_shape}, {self.n_parameters:,} parameters)",
                 f"  {'layer':<36} {'output shape':<18} {'parameters':>12}"]

        def walk(layers, shape, indent):
            shapes = infer_shapes(layers, shape, "Sequential")
            for i, (layer, out) in enumerate(zip(layers, shapes)):
                frozen = "" if layer.trainable else "  (frozen)"
                out_text = "(batch, " + ", ".join(str(d) for d in out) + ")"
                if hasattr(layer, "layers"):
                    name = f"({i}) Residual: x + f(x), f ="
                    lines.append(f"{indent}{name:<{36 - len(indent) + 2}} {out_text}{frozen}")
                    walk(layer.layers, shape, indent + "    ")
                else:
                    count = sum(math.prod(s) for _, s, is_state in layer.tensor_shapes() if not is_state)
                    name = f"({i}) {layer!r}"
                    lines.append(f"{indent}{name:<{36 - len(indent) + 2}} {out_text:<18} {count:>12,}{frozen}")
                shape = out

        walk(self.layers, self.input_shape, "  ")
        return "\n".join(lines)


def _weighted(layer) -> bool:
    """A layer whose weight-gradient norm track_gradients reports: Dense, Conv2D, RNN, LSTM, GRU."""
    return hasattr(layer, "fans") or isinstance(layer, _Recurrent)


def _clone_pairs(src: Layer, clone: Layer):
    """(source, clone) for a layer and, for a Residual block, every layer inside it."""
    yield src, clone
    for a, b in zip(getattr(src, "layers", ()), getattr(clone, "layers", ())):
        yield from _clone_pairs(a, b)


def _copy_arrays(src: Layer, dst: Layer) -> None:
    """Copy a layer's parameters (and BatchNorm statistics) into another layer of the same shape."""
    for key, value in getattr(src, "_views_dict", {}).items():
        if not key.startswith("grad_"):
            np.copyto(dst._views_dict[key], value, casting="unsafe")


def _split(x, target, share, loss, seed):
    """Hold out `share` of (x, target), shuffled; stratified by class for classification losses.

    Returns the training rows of x (indices: the training part is never copied) and the validation
    (x, target) pair."""
    from .datasets import train_test_split

    n = x.shape[0]
    if loss.kind == "cross_entropy":
        strata = target
    elif loss.classification and target.shape[1] == 1:
        strata = (target[:, 0] >= 0.5).astype(np.int64)
    else:
        strata = None
    n_val = math.ceil(share * n)
    if n_val < 1 or n - n_val < 1:
        raise ValueError(f"validation_split={share} leaves no training or no validation sample of {n}")
    stratify = strata is not None and np.min(np.bincount(strata)) >= 2
    idx = np.arange(n)
    tr, va, _, _ = train_test_split(idx, strata if strata is not None else np.zeros(n, np.int64),
                                    test_size=share, seed=0 if seed is None else seed, stratify=stratify)
    return (np.ascontiguousarray(tr, dtype=np.int64),
            (np.ascontiguousarray(x[va]), np.ascontiguousarray(target[va])))


def _check_finite(x: np.ndarray, name: str, dtype: np.dtype) -> None:
    """ValueError naming the first value that is NaN/Inf once cast to dtype, read in blocks of rows (a
    memmap is never materialised whole)."""
    x = x.reshape(x.shape[0], -1)   # a view: x is C-contiguous
    block = max(1, _FINITE_CHECK_ELEMS // max(1, x.shape[1]))
    for start in range(0, x.shape[0], block):
        part = x[start:start + block]
        if part.dtype.itemsize > dtype.itemsize:
            with np.errstate(over="ignore"):   # what overflows is reported below
                part = part.astype(dtype)
        if not np.isfinite(part).all():
            r, c = np.argwhere(~np.isfinite(part))[0]
            raise ValueError(f"{name} must be finite; found {part[r, c]} at row {start + r}, column {c}")


def _epoch_lrs(schedule, base_lr, epoch, n_steps):
    """The learning rate of each step of this epoch."""
    if schedule is None:
        return np.full(n_steps, base_lr)
    if schedule.interval == "epoch":
        return np.full(n_steps, schedule.lr(base_lr, epoch))
    return np.array([schedule.lr(base_lr, epoch * n_steps + s) for s in range(n_steps)], dtype=np.float64)


class _EpochRun:
    """Drives one epoch through the C++ loop in slices of ~0.1 s (Ctrl-C, progress bar)."""

    def __init__(self, model, x, target, loss, optimizer, batch_size, n_steps, verbose, on_nonfinite, noise,
                 augment, track_gradients, scale, scaling, session, sharded):
        self.model, self.x, self.target, self.loss, self.opt = model, x, target, loss, optimizer
        self.batch_size, self.n_steps, self.verbose, self.on_nonfinite = batch_size, n_steps, verbose, on_nonfinite
        self.noise, self.augment = noise, augment
        self.scale, self.scaling = scale, scaling
        self.session, self.sharded = session, sharded
        # Distributed: a step's rows are split over the ranks, or (sharded) each rank steps through its own.
        self.split = session.size if session is not None and not sharded else 1
        self.steps_per_epoch = n_steps if sharded else 0
        self.grad_norms = np.zeros(model._net.n_tracked) if track_gradients else None
        self.more = np.zeros(5, dtype=np.int64)   # rows, bad_label_rank, stops, stop_rank, stop_kind

    def _steps(self, x, target, order, batch_size, first, count, loss_sum, lrs, steps_per_epoch=None):
        net = self.model._net
        return net.train_steps(x, target, order, batch_size, first, count, _STEP_BUDGET_S, loss_sum, self.loss.kind,
                               self.opt._state(), lrs, self.noise, self.grad_norms, *self.scaling, self.split,
                               self.steps_per_epoch if steps_per_epoch is None else steps_per_epoch, self.more)

    def _fault(self, bad_row, bad_rank, nonfinite, bad, step, lrs, epoch):
        """The error of a step that stopped: raised by every rank alike in a distributed fit."""
        model = self.model
        if bad_row >= 0:
            where = f"row {bad_row}"
            if self.session is not None and bad_rank != self.session.rank:
                where = (f"row {bad_row} of rank {bad_rank}'s data" if bad_rank >= 0
                         else "rows of several ranks' data")
            raise ValueError(f"label at {where} is outside [0, {model.out_features})")
        msg = (f"the loss became {bad} at epoch {epoch + 1}, step {step + 1} (of {self.n_steps}); "
               f"training stopped with the parameters of the last finite step. Try a lower learning "
               f"rate (lr={float(lrs[min(step, len(lrs) - 1)]):g}) or check the data scale.")
        if self.on_nonfinite == "raise":
            raise FloatingPointError(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=5)

    def epoch(self, order, epoch, epochs, lrs, val):
        from .progress import EpochProgress

        model, session = self.model, self.session
        # the bar counts the rows of every rank (sharded: at most n_steps full batches of each)
        n_shown = self.n_steps * self.batch_size * session.size if self.sharded else len(order)
        if self.grad_norms is not None:
            self.grad_norms[:] = 0
        step, loss_sum, correct, seen = 0, 0.0, 0, 0
        with EpochProgress(n_shown, epoch, epochs, enabled=self.verbose > 0) as bar:
            while step < self.n_steps:
                if self.augment is None:
                    result = self._steps(self.x, self.target, order, self.batch_size, step, self.n_steps - step,
                                         loss_sum, lrs)
                else:  # a Python augmentation: one C++ step per batch, on the augmented batch
                    idx = order[step * self.batch_size:(step + 1) * self.batch_size]
                    xb = model._input(self.augment(self.x[idx]), "augment(x_batch)", finite=True)
                    if xb.shape[0] != len(idx):
                        raise ValueError(f"augment must return {len(idx)} rows, got {xb.shape[0]}")
                    result = self._steps(xb, self.target[idx], np.arange(len(idx), dtype=np.int64), len(idx), 0, 1,
                                         loss_sum, lrs[step:step + 1], steps_per_epoch=0)
                done, loss_sum, nonfinite, bad, bad_row, got = result
                rows, bad_rank, stops, stop_rank, stop_kind = self.more.tolist()
                step += done
                correct += got
                seen += rows
                bar.advance(min(seen, n_shown), loss_sum / max(step, 1))
                if session is not None:
                    session.check_stops(stops, stop_rank, stop_kind)
                    session.coordinated = bad_row >= 0 or nonfinite   # every rank raises this one
                if bad_row >= 0 or nonfinite:
                    self._fault(bad_row, bad_rank, nonfinite, bad, step, lrs, epoch)
                    return None
            metrics = {"loss": loss_sum / self.n_steps}
            if self.loss.classification:  # over the epoch's training batches, as each was seen
                per_sample = 1 if self.loss.kind == "cross_entropy" else model.out_features
                metrics["accuracy"] = correct / (seen * per_sample)
            metrics["lr"] = float(lrs[-1])
            if val is not None:
                vm = self._validate(*val)
                metrics["val_loss"] = vm["loss"]
                if "accuracy" in vm:
                    metrics["val_accuracy"] = vm["accuracy"]
            if self.grad_norms is not None:  # NaN for frozen layers: no gradient is computed for them
                tracked = [layer for layer in model._flat_layers if _weighted(layer)]
                metrics["grad_norm"] = [g / self.n_steps if layer.trainable else float("nan")
                                        for g, layer in zip(self.grad_norms.tolist(), tracked)]
            bar.finish({k: v for k, v in metrics.items() if k != "grad_norm"})
        return metrics

    def _validate(self, xv, yv) -> dict:
        """Validation metrics; in a distributed fit each rank evaluates its share (sharded: its own data)
        and the sums over ranks give every rank the same values."""
        model, session = self.model, self.session
        if session is None:
            return model.evaluate(xv, yv, self.loss, scale=self.scale)
        m = xv.shape[0]
        lo, hi = (0, m) if self.sharded else (session.rank * m // session.size, (session.rank + 1) * m // session.size)
        sums = (0.0, 0.0, 0.0)
        if hi > lo:
            vm = model.evaluate(xv[lo:hi], yv[lo:hi], self.loss, scale=self.scale)
            sums = (vm["loss"] * (hi - lo), vm.get("accuracy", 0.0) * (hi - lo), float(hi - lo))
        total = session.sync(sums)
        out = {"loss": float(total[0] / total[2])}
        if self.loss.classification:
            out["accuracy"] = float(total[1] / total[2])
        return out
