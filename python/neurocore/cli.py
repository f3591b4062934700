"""Command-line interface: ``neurocore [demo | train | predict | info]``.

``neurocore`` (or ``python -m neurocore``) with no arguments runs the digits demo.
User errors (a missing file, an unknown column, a non-numeric cell, ...) print one
message on stderr and exit with status 2; :func:`main` returns the exit status.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

import neurocore as nc
from neurocore.datasets import load_digits, train_test_split

__all__ = ["main"]

PREPROCESS_SUFFIX = ".preprocess.json"
"""Appended to the model file name to name the preprocessing file beside it."""

_PREPROCESS_FORMAT = "neurocore-cli-preprocess"
_PREPROCESS_VERSION = 1
_MAX_AUTO_CLASSES = 20  # an integer target with at most this many values is a class label
_VALIDATION_FRACTION = 0.2
_ACTIVATIONS = ("relu", "tanh", "sigmoid", "leaky_relu")


class CLIError(Exception):
    """A problem with the user's input: reported as one line on stderr, exit status 2."""


# --------------------------------------------------------------------------- argument types


def _int_at_least(minimum, what):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_seed = _int_at_least(0, "an integer >= 0")


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _hidden_sizes(text):
    """Parse ``"128,64"`` into ``[128, 64]``; an empty string means no hidden layer."""
    sizes = []
    for part in text.split(","):
        part = part.strip()
        if not part and text.strip() == "":
            continue
        try:
            sizes.append(_positive_int(part))
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated positive layer widths such as 128,64, got {text!r}"
            ) from None
    return sizes


# --------------------------------------------------------------------------- CSV input


def _open_text(path):
    """Open ``path`` for CSV reading, turning OS errors into :class:`CLIError`."""
    try:
        return open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise CLIError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise CLIError(f"{path} is a directory, expected a CSV file") from None
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_csv(path, columns=None):
    """Read a numeric CSV file with a header row.

    Parameters
    ----------
    path : str or Path
        CSV file: a header row of column names, then one row per sample.
        Blank lines are skipped.
    columns : list of str, optional
        Columns to parse as numbers, in this order; the others may hold anything.
        Default: every column.

    Returns
    -------
    header : list of str
        All column names, in file order.
    table : ndarray of float64, shape (n_rows, len(columns))
        The parsed values.

    Raises
    ------
    CLIError
        If the file cannot be read, is empty, lacks a requested column, has a row
        of the wrong length, or has a cell that is not a finite number.
    """
    path = Path(path)
    with _open_text(path) as f:
        reader = csv.reader(f)
        try:
            header = next((row for row in reader if row), None)
            if header is None:
                raise CLIError(f"{path} is empty: expected a header row, then data rows")
            header = [name.strip() for name in header]
            _check_header(path, header)
            wanted = header if columns is None else list(columns)
            missing = [name for name in wanted if name not in header]
            if missing:
                raise CLIError(
                    f"{path} has no column {_names(missing)}; "
                    f"available columns: {', '.join(header)}"
                )
            indices = [header.index(name) for name in wanted]
            rows = []
            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    raise CLIError(
                        f"{path}, line {reader.line_num}: row {len(rows) + 1} has "
                        f"{len(row)} fields but the header has {len(header)} columns"
                    )
                rows.append(
                    [_parse_cell(path, reader, len(rows) + 1, header[j], row[j]) for j in indices]
                )
        except UnicodeDecodeError:
            raise CLIError(f"{path} is not UTF-8 text; expected a CSV file") from None
        except csv.Error as exc:
            raise CLIError(f"{path}, line {reader.line_num}: malformed CSV ({exc})") from None
    if not rows:
        raise CLIError(f"{path} has a header row but no data rows")
    table = np.array(rows, dtype=np.float64).reshape(len(rows), len(indices))
    return header, table


def _check_header(path, header):
    for position, name in enumerate(header, start=1):
        if not name:
            raise CLIError(f"{path}: header column {position} has an empty name")
    seen = set()
    for name in header:
        if name in seen:
            raise CLIError(f"{path}: column name {name!r} appears more than once in the header")
        seen.add(name)


def _parse_cell(path, reader, row_number, column, cell):
    text = cell.strip()
    where = f"{path}, line {reader.line_num} (data row {row_number}), column {column!r}"
    try:
        value = float(text)
    except ValueError:
        if not text:
            raise CLIError(f"{where}: empty cell; every cell must hold a number") from None
        raise CLIError(
            f"{where}: non-numeric value {cell!r}; every cell must hold a number"
        ) from None
    if not math.isfinite(value):
        raise CLIError(f"{where}: value {cell!r} is not finite")
    return value


def _names(names):
    return ", ".join(repr(name) for name in names)


# --------------------------------------------------------------------------- helpers


def _standardize_stats(X):
    """Per-column mean and standard deviation (1 for constant columns)."""
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    std[~(std > 0)] = 1.0
    return mean, std


def _is_integer_valued(values):
    return bool(np.all(values == np.round(values)))


def _detect_task(target):
    distinct = np.unique(target)
    if _is_integer_valued(distinct) and len(distinct) <= _MAX_AUTO_CLASSES:
        return "classify"
    return "regress"


def _r2_score(y_true, y_pred):
    """Coefficient of determination; NaN when ``y_true`` is constant."""
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    if ss_tot == 0.0:
        return float("nan")
    return 1.0 - float(np.sum((y_true - y_pred) ** 2)) / ss_tot


def _format_number(value):
    value = float(value)
    if value.is_integer():
        return str(int(value))
    return f"{value:.9g}"


def _make_activation(name):
    return {"relu": nc.ReLU, "tanh": nc.Tanh, "sigmoid": nc.Sigmoid, "leaky_relu": nc.LeakyReLU}[
        name
    ]()


def _build_mlp(n_in, hidden, n_out, activation, seed):
    layers = []
    width = n_in
    for size in hidden:
        layers += [nc.Dense(width, size), _make_activation(activation)]
        width = size
    layers.append(nc.Dense(width, n_out))
    return nc.Sequential(layers, dtype="float32", seed=seed)


def _model_output_path(out):
    """Where ``train`` saves the model: ``out`` with an ``.npz`` suffix, in an existing folder."""
    path = Path(out)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    if not path.parent.is_dir():
        raise CLIError(f"cannot save the model to {path}: folder {path.parent} does not exist")
    return path


def preprocess_path(model_path):
    """Path of the preprocessing JSON file that travels with ``model_path``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + PREPROCESS_SUFFIX)


def _say(quiet, *args):
    if not quiet:
        print(*args, flush=True)


# --------------------------------------------------------------------------- commands


def _cmd_demo(args):
    start = time.perf_counter()
    X, y = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, seed=args.seed)
    model = nc.Sequential(
        [nc.Dense(64, 128), nc.ReLU(), nc.Dense(128, 64), nc.ReLU(), nc.Dense(64, 10)],
        dtype="float32",
        seed=args.seed,
    )
    _say(
        args.quiet,
        f"neurocore {nc.__version__} demo: handwritten digits (8x8), "
        f"{len(y_train)} training and {len(y_test)} test images",
    )
    _say(
        args.quiet,
        f"model: 64-128-64-10 ReLU MLP, {model.n_parameters} parameters; "
        f"SGD lr 0.05 momentum 0.9, batch 32, {args.epochs} epochs",
    )
    fit_start = time.perf_counter()
    model.fit(
        X_train,
        y_train,
        loss="cross_entropy",
        optimizer=nc.SGD(lr=0.05, momentum=0.9),
        epochs=args.epochs,
        batch_size=32,
        shuffle=True,
        seed=args.seed,
        verbose=0 if args.quiet else 1,
    )
    fit_time = time.perf_counter() - fit_start
    accuracy = model.evaluate(X_test, y_test, loss="cross_entropy")["accuracy"]
    wall = time.perf_counter() - start
    print(f"test accuracy: {accuracy:.4f} ({len(y_test)} images)")
    print(f"wall time: {wall:.2f} s (training {fit_time:.2f} s)")
    return 0


def _cmd_train(args):
    out_path = _model_output_path(args.out)
    header, table = read_csv(args.data)
    if args.target not in header:
        raise CLIError(
            f"target column {args.target!r} not found in {args.data}; "
            f"available columns: {', '.join(header)}"
        )
    features = [name for name in header if name != args.target]
    if not features:
        raise CLIError(f"{args.data} has no feature columns besides the target {args.target!r}")
    X = table[:, [header.index(name) for name in features]]
    target = table[:, header.index(args.target)]
    n_rows = len(target)
    if n_rows < 2:
        raise CLIError(
            f"{args.data} has {n_rows} data row; need at least 2 "
            "(one to train on, one to validate on)"
        )

    task = args.task or _detect_task(target)
    prep = {
        "format": _PREPROCESS_FORMAT,
        "format_version": _PREPROCESS_VERSION,
        "neurocore_version": nc.__version__,
        "task": task,
        "target": args.target,
        "features": features,
    }
    if task == "classify":
        labels, y = np.unique(target, return_inverse=True)
        y = y.astype(np.int64)
        if len(labels) < 2:
            raise CLIError(
                f"target column {args.target!r} holds a single value "
                f"({_format_number(labels[0])}); classification needs at least 2 classes"
            )
        prep["labels"] = [float(v) for v in labels]
        n_out, loss = len(labels), "cross_entropy"
    else:
        y = target
        n_out, loss = 1, "mse"

    X_train, X_val, y_train, y_val = train_test_split(
        X, y, test_size=_VALIDATION_FRACTION, seed=args.seed, stratify=task == "classify"
    )
    mean, std = _standardize_stats(X_train)
    prep["feature_mean"] = [float(v) for v in mean]
    prep["feature_std"] = [float(v) for v in std]
    X_train = ((X_train - mean) / std).astype(np.float32)
    X_val = ((X_val - mean) / std).astype(np.float32)
    if task == "regress":
        # Train on a standardized target so one learning rate suits any scale of units.
        y_mean = float(y_train.mean())
        y_std = float(y_train.std()) or 1.0
        prep["target_mean"], prep["target_std"] = y_mean, y_std
        fit_train = ((y_train - y_mean) / y_std).astype(np.float32).reshape(-1, 1)
        fit_val = ((y_val - y_mean) / y_std).astype(np.float32).reshape(-1, 1)
    else:
        fit_train, fit_val = y_train, y_val

    model = _build_mlp(len(features), args.hidden, n_out, args.activation, args.seed)
    detail = f"{n_out} classes" if task == "classify" else "one output"
    _say(
        args.quiet,
        f"data: {n_rows} rows, {len(features)} features, target {args.target!r} "
        f"-> task {task} ({detail})",
    )
    _say(
        args.quiet,
        f"split: {len(y_train)} train rows, {len(y_val)} validation rows (seed {args.seed})",
    )
    widths = "-".join(str(w) for w in [len(features), *args.hidden, n_out])
    _say(
        args.quiet,
        f"model: {widths} {args.activation} MLP, {model.n_parameters} parameters; "
        f"SGD lr {args.lr:g} momentum 0.9, batch {args.batch_size}, "
        f"{args.epochs} epochs",
    )
    try:
        model.fit(
            X_train,
            fit_train,
            loss=loss,
            optimizer=nc.SGD(lr=args.lr, momentum=0.9),
            epochs=args.epochs,
            batch_size=args.batch_size,
            shuffle=True,
            seed=args.seed,
            validation_data=(X_val, fit_val),
            verbose=0 if args.quiet else 1,
        )
    except FloatingPointError:  # fit stops when a batch loss becomes NaN or infinite
        raise CLIError(
            f"training diverged (the loss became NaN or infinite) with --lr {args.lr:g}; "
            "try a smaller learning rate"
        ) from None

    if task == "classify":
        train_metrics = model.evaluate(X_train, y_train, loss=loss)
        val_metrics = model.evaluate(X_val, y_val, loss=loss)
        _say(
            args.quiet,
            f"train: loss {train_metrics['loss']:.4f}, accuracy {train_metrics['accuracy']:.4f}",
        )
        result = (
            f"validation accuracy: {val_metrics['accuracy']:.4f} "
            f"(loss {val_metrics['loss']:.4f}, {len(y_val)} rows)"
        )
    else:
        y_std, y_mean = prep["target_std"], prep["target_mean"]
        pred_train = model.predict(X_train)[:, 0].astype(np.float64) * y_std + y_mean
        pred_val = model.predict(X_val)[:, 0].astype(np.float64) * y_std + y_mean
        train_mse = float(np.mean((pred_train - y_train) ** 2))
        val_mse = float(np.mean((pred_val - y_val) ** 2))
        _say(args.quiet, f"train: MSE {train_mse:.6g}, R^2 {_r2_score(y_train, pred_train):.4f}")
        result = (
            f"validation R^2: {_r2_score(y_val, pred_val):.4f} "
            f"(MSE {val_mse:.6g}, {len(y_val)} rows)"
        )

    model.save(str(out_path))
    prep_path = preprocess_path(out_path)
    try:
        prep_path.write_text(json.dumps(prep, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise CLIError(f"cannot write {prep_path}: {exc.strerror or exc}") from None
    _say(args.quiet, f"saved model to {out_path} and preprocessing to {prep_path}")
    print(result)
    return 0


def _load_preprocess(path):
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        prep = json.loads(text)
    except ValueError as exc:
        raise CLIError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(prep, dict) or prep.get("format") != _PREPROCESS_FORMAT:
        raise CLIError(f"{path} is not a neurocore preprocessing file")
    if prep.get("format_version") != _PREPROCESS_VERSION:
        raise CLIError(
            f"{path} has format version {prep.get('format_version')!r}; this neurocore "
            f"reads version {_PREPROCESS_VERSION}"
        )
    required = ["task", "target", "features", "feature_mean", "feature_std"]
    required += ["labels"] if prep.get("task") == "classify" else ["target_mean", "target_std"]
    missing = [key for key in required if key not in prep]
    if missing or prep["task"] not in ("classify", "regress"):
        raise CLIError(f"{path} is damaged: missing or invalid {', '.join(missing) or 'task'}")
    return prep


def _cmd_predict(args):
    model_path = Path(args.model)
    prep_path = preprocess_path(model_path)
    if not model_path.is_file():
        raise CLIError(f"no such model file: {model_path}")
    if not prep_path.is_file():
        raise CLIError(
            f"preprocessing file {prep_path} not found; 'neurocore train' writes it next to "
            "the model, keep the two files together"
        )
    prep = _load_preprocess(prep_path)
    try:
        model = nc.load(str(model_path))
    except Exception as exc:  # any failure to read the archive is the file's fault
        raise CLIError(f"cannot load model {model_path}: {exc}") from None
    n_in = model.layers[0].weight.shape[0]
    if n_in != len(prep["features"]):
        raise CLIError(
            f"{model_path} takes {n_in} inputs but {prep_path} lists "
            f"{len(prep['features'])} features; the two files do not belong together"
        )

    _, X = read_csv(args.data, columns=prep["features"])
    mean = np.asarray(prep["feature_mean"], dtype=np.float64)
    std = np.asarray(prep["feature_std"], dtype=np.float64)
    output = model.predict(((X - mean) / std).astype(model.dtype))
    if prep["task"] == "classify":
        labels = np.asarray(prep["labels"], dtype=np.float64)
        predictions = labels[np.argmax(output, axis=1)]
    else:
        predictions = output[:, 0].astype(np.float64) * prep["target_std"] + prep["target_mean"]

    rows = [[prep["target"]]] + [[_format_number(v)] for v in predictions]
    if args.out is None:
        csv.writer(sys.stdout, lineterminator="\n").writerows(rows)
        return 0
    try:
        with open(args.out, "w", newline="", encoding="utf-8") as f:
            csv.writer(f, lineterminator="\n").writerows(rows)
    except OSError as exc:
        raise CLIError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(f"wrote {len(predictions)} predictions of {prep['target']!r} to {args.out}")
    return 0


def _cmd_info(args):
    info = nc.cpu_info()
    rows = [
        ("version", nc.__version__),
        ("kernels", f"{info['isa']} (available: {', '.join(info['isa_available'])})"),
        ("CPU features", " ".join(info["features"]) or "none detected"),
        ("threads", str(info["num_threads"])),
        ("OpenMP", "yes" if info["openmp"] else "no"),
        ("compiler", info["compiler"]),
        ("numpy", np.__version__),
        ("python", f"{platform.python_version()} ({platform.machine()})"),
    ]
    width = max(len(name) for name, _ in rows) + 1
    print("neurocore")
    for name, value in rows:
        print(f"  {name + ':':<{width}} {value}")
    return 0


# --------------------------------------------------------------------------- parser


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="neurocore",
        description="Train and run dense neural networks on the CPU. "
        "Without a command, runs the digits demo.",
    )
    parser.add_argument("--version", action="version", version=f"neurocore {nc.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="train an MLP on the bundled digits and report test accuracy (default)",
        description="Train a 64-128-64-10 ReLU MLP on the bundled 8x8 digits (80%% of them) "
        "and print the accuracy on the other 20%% and the wall time.",
    )
    demo.add_argument("--epochs", type=_positive_int, default=20, help="default: %(default)s")
    demo.add_argument("--seed", type=_seed, default=0, help="default: %(default)s")
    demo.add_argument("--quiet", action="store_true", help="print only the results")
    demo.set_defaults(handler=_cmd_demo)

    train = commands.add_parser(
        "train",
        help="train an MLP on a numeric CSV file",
        description="Train an MLP on a CSV file with a header row and numeric cells. Features "
        "are standardized; 20%% of the rows are held out for a validation score "
        "(accuracy or R^2). Saves the model to OUT (an .npz file) and the "
        f"preprocessing (feature names, means and deviations, class labels) to "
        f"OUT{PREPROCESS_SUFFIX}; 'neurocore predict' needs both files.",
    )
    train.add_argument("data", help="CSV file with a header row")
    train.add_argument(
        "--target",
        required=True,
        metavar="COLUMN",
        help="name of the column to predict; every other column is a feature",
    )
    train.add_argument(
        "--task",
        choices=("classify", "regress"),
        help="default: classify when the target is integer-valued with at "
        f"most {_MAX_AUTO_CLASSES} distinct values, else regress",
    )
    train.add_argument(
        "--hidden",
        type=_hidden_sizes,
        default=[128, 64],
        metavar="W1,W2,...",
        help="hidden layer widths (default: 128,64; '' for none)",
    )
    train.add_argument(
        "--activation", choices=_ACTIVATIONS, default="relu", help="default: %(default)s"
    )
    train.add_argument("--epochs", type=_positive_int, default=30, help="default: %(default)s")
    train.add_argument("--batch-size", type=_positive_int, default=32, help="default: %(default)s")
    train.add_argument(
        "--lr",
        type=_positive_float,
        default=0.01,
        help="SGD learning rate, momentum 0.9 (default: %(default)s)",
    )
    train.add_argument(
        "--seed",
        type=_seed,
        default=0,
        help="seeds the initialization, the split and the shuffling (default: %(default)s)",
    )
    train.add_argument(
        "--out",
        default="model.npz",
        help="model file (default: %(default)s; '.npz' is appended if missing)",
    )
    train.add_argument("--quiet", action="store_true", help="print only the validation score")
    train.set_defaults(handler=_cmd_train)

    predict = commands.add_parser(
        "predict",
        help="predict with a model saved by 'neurocore train'",
        description="Predict the target for every row of a CSV file with a model saved by "
        f"'neurocore train'. Reads MODEL and MODEL{PREPROCESS_SUFFIX}; the CSV "
        "needs the feature columns the model was trained on (any order; other "
        "columns are ignored). Writes one column named after the target: class "
        "labels as in the training file, or regression values.",
    )
    predict.add_argument("model", help="model file written by 'neurocore train'")
    predict.add_argument("data", help="CSV file with a header row")
    predict.add_argument("--out", help="CSV file for the predictions (default: stdout)")
    predict.set_defaults(handler=_cmd_predict)

    info = commands.add_parser(
        "info",
        help="show the version, kernel set, CPU features and threads",
        description="Show the neurocore version, the SIMD kernel set in use, the CPU "
        "features detected, the thread count and whether OpenMP is enabled.",
    )
    info.set_defaults(handler=_cmd_info)
    return parser


def main(argv=None):
    """Run the ``neurocore`` command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.
        An empty list runs the demo.

    Returns
    -------
    int
        Exit status: 0 on success, 2 for a usage or input error (message on stderr).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        argv = ["demo"]
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already reported
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else 2
    if args.command is None:  # only global options were given
        args = parser.parse_args(["demo"])
    try:
        return args.handler(args)
    except CLIError as exc:
        print(f"neurocore {args.command}: error: {exc}", file=sys.stderr)
        return 2
