"""Command-line interface: ``neurocore [demo | train | predict | info]``.

``neurocore`` (or ``python -m neurocore``) with no arguments runs the digits demo.
User errors (a missing file, an unknown column, a stray text in a numeric column, ...) print
one message on stderr and exit with status 2; :func:`main` returns the exit status.
Reading CSV files (train, predict) needs pyarrow, the ``csv`` extra: _csvread reads, _tabular
learns and applies the preprocessing, _trainset builds the training matrices.
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
from neurocore._csvread import DEFAULT_BLOCK_SIZE, CSVSource, InputError
from neurocore._tabular import NUMERIC, Preprocessor
from neurocore._trainset import build as build_training_table
from neurocore._trainset import needs_memmap
from neurocore.datasets import load_digits, train_test_split

__all__ = ["main"]

PREPROCESS_SUFFIX = ".preprocess.json"
"""Appended to the model file name to name the preprocessing file beside it."""

_PREPROCESS_FORMAT = "neurocore-cli-preprocess"
_PREPROCESS_VERSION = 2
PROGRESS_MIN_BYTES = 1 << 20  # smaller files are read in a blink: no progress bar
_PREDICT_ROWS = 8192  # rows per forward pass in predict: fewer thread fork/joins than predict's default 1024
_MAX_AUTO_CLASSES = 20  # an integer target with at most this many values is a class label
_VALIDATION_FRACTION = 0.2
_ACTIVATIONS = ("relu", "tanh", "sigmoid", "leaky_relu")


CLIError = InputError
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


# --------------------------------------------------------------------------- helpers


def _is_integer_valued(values):
    return bool(np.all(values == np.round(values)))


def _detect_task(target):
    distinct = np.unique(target)
    if _is_integer_valued(distinct) and len(distinct) <= _MAX_AUTO_CLASSES:
        return "classify"
    return "regress"


def _r2_from_mse(y_true, mse):
    """Coefficient of determination from a mean squared error; NaN when ``y_true`` is constant."""
    variance = float(np.var(y_true))
    if variance == 0.0:
        return float("nan")
    return 1.0 - mse / variance


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


def _column_list(text):
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def _check_names(option, names, header):
    unknown = [name for name in names if name not in header]
    if unknown:
        raise CLIError(f"{option} names no column {_names(unknown)}; available columns: {', '.join(header)}")


def _names(names):
    return ", ".join(repr(name) for name in names)


class _ReadProgress:
    """A byte-count progress bar while reading (stderr), and the reading throughput."""

    def __init__(self, source, quiet):
        self.source, self.bar = source, None
        self.start = self.end = time.perf_counter()
        if not quiet and source.size >= PROGRESS_MIN_BYTES:
            from tqdm import tqdm

            self.bar = tqdm(total=source.size, desc=f"reading {Path(source.path).name}", unit="B",
                            unit_scale=True, leave=False, dynamic_ncols=True)

    def __call__(self, position):
        self.end = time.perf_counter()
        if self.bar is not None:
            self.bar.update(max(0, min(position, self.source.size) - self.bar.n))

    def close(self):
        if self.bar is not None:
            self.bar.close()
        seconds = self.end - self.start
        megabytes = self.source.size / 1e6
        return f"{megabytes:.1f} MB in {seconds:.2f} s ({megabytes / max(seconds, 1e-9):.0f} MB/s)"


def _split_rule(seed):
    def split(y, classify):
        idx = np.arange(len(y))
        _, val_idx, _, _ = train_test_split(idx, y, test_size=_VALIDATION_FRACTION, seed=seed, stratify=classify)
        is_val = np.zeros(len(y), dtype=bool)
        is_val[val_idx] = True
        return is_val

    return split


def _column_summary(prep, ignored):
    kinds = {}
    for spec in prep.columns:
        kinds[spec["kind"]] = kinds.get(spec["kind"], 0) + 1
    parts = [f"{count} {kind}" for kind, count in kinds.items()]
    with_missing = [s["name"] for s in prep.columns if s.get("missing_indicator") or s.get("missing_category")]
    text = f"columns: {', '.join(parts)} -> {prep.width} inputs"
    if with_missing:
        text += f"; missing cells in {_names(with_missing)} (median + indicator, or a 'missing' category)"
    if ignored:
        text += "; left out: " + ", ".join(f"{name!r} ({why})" for name, why in ignored)
    return text


def _cmd_train(args):
    out_path = _model_output_path(args.out)
    source = CSVSource(args.data, _column_list(args.na_values), args.block_size)
    header = source.header
    if args.target not in header:
        raise CLIError(
            f"target column {args.target!r} not found in {args.data}; "
            f"available columns: {', '.join(header)}"
        )
    declared, left_out = _column_list(args.categorical), _column_list(args.ignore)
    _check_names("--categorical", declared, header)
    _check_names("--ignore", left_out, header)
    if args.target in left_out:
        raise CLIError(f"--ignore names the target column {args.target!r}")
    features = [name for name in header if name != args.target and name not in left_out]
    if not features:
        raise CLIError(f"{args.data} has no feature columns besides the target {args.target!r}")
    types = source.infer([*features, args.target])
    types.update({name: "text" for name in declared})
    use_memmap = args.memmap or needs_memmap(source.size)
    progress = _ReadProgress(source, args.quiet)
    try:
        table = build_training_table(
            source, features, args.target, types, set(declared), args.task, _detect_task,
            _split_rule(args.seed), memmap_dir=str(out_path.parent) if use_memmap else None,
            progress=progress, say=lambda *a: _say(args.quiet, *a))
    finally:
        reading = progress.close()
    prep_obj = table.prep
    task = table.task
    n_out = len(table.labels) if task == "classify" else 1
    loss = "cross_entropy" if task == "classify" else "mse"
    prep = {
        "format": _PREPROCESS_FORMAT,
        "format_version": _PREPROCESS_VERSION,
        "neurocore_version": nc.__version__,
        "task": task,
        "target": args.target,
        "features": prep_obj.names,
        "columns": prep_obj.columns,
        "inputs": prep_obj.input_names,
        "feature_mean": [float(v) for v in prep_obj.mean],
        "feature_std": [float(v) for v in prep_obj.std],
        "na_values": _column_list(args.na_values),
        "left_out": [{"column": name, "reason": why} for name, why in table.ignored]
        + [{"column": name, "reason": "--ignore"} for name in left_out],
    }
    X_train, X_val, y_train, y_val = table.X_train, table.X_val, table.y_train, table.y_val
    if task == "classify":
        prep["labels"] = table.labels
        fit_train, fit_val = y_train, y_val
    else:
        # Train on a standardized target so one learning rate suits any scale of units.
        y_mean = float(y_train.mean())
        y_std = float(y_train.std()) or 1.0
        prep["target_mean"], prep["target_std"] = y_mean, y_std
        fit_train = ((y_train - y_mean) / y_std).astype(np.float32).reshape(-1, 1)
        fit_val = ((y_val - y_mean) / y_std).astype(np.float32).reshape(-1, 1)

    model = _build_mlp(prep_obj.width, args.hidden, n_out, args.activation, args.seed)
    detail = f"{n_out} classes" if task == "classify" else "one output"
    _say(args.quiet, f"read {args.data}: {reading}{' into memory-mapped files' if use_memmap else ''}")
    _say(
        args.quiet,
        f"data: {table.n_rows} rows, {len(prep_obj.columns)} feature columns, target {args.target!r} "
        f"-> task {task} ({detail})",
    )
    _say(args.quiet, _column_summary(prep_obj, table.ignored))
    _say(
        args.quiet,
        f"split: {len(y_train)} train rows, {len(y_val)} validation rows (seed {args.seed})",
    )
    widths = "-".join(str(w) for w in [prep_obj.width, *args.hidden, n_out])
    _say(
        args.quiet,
        f"model: {widths} {args.activation} MLP, {model.n_parameters} parameters; "
        f"SGD lr {args.lr:g} momentum 0.9, batch {args.batch_size}, "
        f"{args.epochs} epochs",
    )
    try:
        history = model.fit(
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

    # fit evaluated the validation rows after the last epoch; the training figures are the last epoch's
    # running means (no second pass over a training matrix that may be larger than memory).
    if task == "classify":
        _say(
            args.quiet,
            f"train: loss {history['loss'][-1]:.4f}, accuracy {history['accuracy'][-1]:.4f} "
            "(last epoch, running mean)",
        )
        result = (
            f"validation accuracy: {history['val_accuracy'][-1]:.4f} "
            f"(loss {history['val_loss'][-1]:.4f}, {len(y_val)} rows)"
        )
    else:
        scale = prep["target_std"] ** 2  # MSE on the standardized target -> in the target's units
        train_mse, val_mse = history["loss"][-1] * scale, history["val_loss"][-1] * scale
        _say(
            args.quiet,
            f"train: MSE {train_mse:.6g}, R^2 {_r2_from_mse(y_train, train_mse):.4f} (last epoch, running mean)",
        )
        result = (
            f"validation R^2: {_r2_from_mse(y_val, val_mse):.4f} "
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
    version = prep.get("format_version")
    if version not in (1, _PREPROCESS_VERSION):
        raise CLIError(
            f"{path} has format version {version!r}; this neurocore "
            f"reads versions 1 and {_PREPROCESS_VERSION}"
        )
    required = ["task", "target", "features", "feature_mean", "feature_std"]
    required += ["columns"] if version == _PREPROCESS_VERSION else []
    required += ["labels"] if prep.get("task") == "classify" else ["target_mean", "target_std"]
    missing = [key for key in required if key not in prep]
    if missing or prep["task"] not in ("classify", "regress"):
        raise CLIError(f"{path} is damaged: missing or invalid {', '.join(missing) or 'task'}")
    if version == 1:  # all-numeric features without missing cells: the mean stands in for the median
        prep["columns"] = [
            {"name": name, "kind": NUMERIC, "median": mean, "missing_indicator": False}
            for name, mean in zip(prep["features"], prep["feature_mean"])
        ]
    try:
        prep["preprocessor"] = Preprocessor(prep["columns"], prep["feature_mean"], prep["feature_std"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CLIError(f"{path} is damaged: {exc!r} in its column descriptions") from None
    if prep["preprocessor"].width != len(prep["feature_mean"]):
        raise CLIError(f"{path} is damaged: its columns make {prep['preprocessor'].width} inputs but it has "
                       f"{len(prep['feature_mean'])} means")
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
    pre = prep["preprocessor"]
    try:
        model = nc.load(str(model_path))
    except Exception as exc:  # any failure to read the archive is the file's fault
        raise CLIError(f"cannot load model {model_path}: {exc}") from None
    n_in = model.layers[0].weight.shape[0]
    if n_in != pre.width:
        raise CLIError(
            f"{model_path} takes {n_in} inputs but {prep_path} describes "
            f"{pre.width}; the two files do not belong together"
        )

    source = CSVSource(args.data, prep.get("na_values", []), args.block_size)
    missing = [name for name in pre.names if name not in source.header]
    if missing:
        raise CLIError(
            f"{args.data} has no column {_names(missing)}; "
            f"available columns: {', '.join(source.header)}"
        )
    if prep["task"] == "classify":
        labels = prep["labels"]
        label_text = np.array([lab if isinstance(lab, str) else _format_number(lab) for lab in labels], dtype=object)
    out = sys.stdout if args.out is None else _open_output(args.out)
    unseen, count = {}, 0

    def write(inputs):
        output = model.predict(np.concatenate(inputs).astype(model.dtype, copy=False), batch_size=_PREDICT_ROWS)
        if prep["task"] == "classify":
            predictions = label_text[np.argmax(output, axis=1)]
        else:
            values = output[:, 0].astype(np.float64) * prep["target_std"] + prep["target_mean"]
            predictions = [_format_number(v) for v in values]
        writer.writerows([p] for p in predictions)
        return len(predictions)

    try:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([prep["target"]])
        pending, rows = [], 0  # record batches are small: predict in fewer, larger calls
        for batch in source.batches(pre.read_types()):
            pending.append(pre.encode(pre.canonical(batch, unseen)))
            rows += batch.num_rows
            if rows >= _PREDICT_ROWS:
                count += write(pending)
                pending, rows = [], 0
        if pending:
            count += write(pending)
    finally:
        if out is not sys.stdout:
            out.close()
    if count == 0:
        raise CLIError(f"{args.data} has a header row but no data rows")
    if unseen:
        detail = ", ".join(f"{name}: {n}" for name, n in unseen.items())
        print(f"neurocore predict: warning: {sum(unseen.values())} cells held values not seen in training "
              f"({detail}); encoded as all zeros (categories) or as missing (booleans)", file=sys.stderr)
    if args.out is not None:
        print(f"wrote {count} predictions of {prep['target']!r} to {args.out}")
    return 0


def _open_output(path):
    try:
        return open(path, "w", newline="", encoding="utf-8")
    except OSError as exc:
        raise CLIError(f"cannot write {path}: {exc.strerror or exc}") from None


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

_TRAIN_DESCRIPTION = f"""\
Train an MLP on a CSV file with a header row. Each feature column is numeric, boolean (yes/no,
true/false) or categorical (text, or --categorical), one-hot encoded over the categories seen in
training. Missing cells (empty, NA, NaN, ... and --na-values) become the training median plus a 0/1
"missing" input (numeric, boolean) or their own category (categorical); rows whose target is missing
are dropped. Inputs are standardized; 20% of the rows are held out for a validation score (accuracy or
R^2). Saves the model to OUT (an .npz file) and everything learned (column kinds, categories, medians,
means and deviations, class names) to OUT{PREPROCESS_SUFFIX}; 'neurocore predict' needs both files.
Reading needs pyarrow: pip install "neurocore[csv]"."""

_TRAIN_EXAMPLE = """\
example (examples/messy_csv.py writes this file; the tests train on it):
  $ python examples/messy_csv.py churn.csv 5000
  $ head -3 churn.csv
  customer_id,age,city,plan,tenure_months,monthly_charges,support_calls,payment,region,paperless,notes,survey_version,churn
  C100000,70,Lyon,basic,65,108.52,4,,1,yes,,3,yes
  C100001,57,Nantes,premium,52,89.06,2,"bank transfer",3,no,,3,no
  $ neurocore train churn.csv --target churn --ignore customer_id --categorical region \\
        --na-values '?' --epochs 20 --out churn.npz
  ...
  columns: 5 numeric, 4 categorical, 1 boolean -> 29 inputs; missing cells in 'age', 'city', ...
  validation accuracy: 0.8050 (loss 0.4204, 1000 rows)
  $ neurocore predict churn.npz churn.csv --out predictions.csv   # one column: yes / no"""


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
        help="train an MLP on a CSV file",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_TRAIN_DESCRIPTION,
        epilog=_TRAIN_EXAMPLE,
    )
    train.add_argument("data", help="CSV file with a header row")
    train.add_argument(
        "--target",
        required=True,
        metavar="COLUMN",
        help="name of the column to predict (numbers or text); every other column is a feature",
    )
    train.add_argument(
        "--categorical",
        metavar="COL,...",
        help="one-hot encode these columns even if they hold numbers (at most rows/2 distinct values)",
    )
    train.add_argument("--ignore", metavar="COL,...", help="leave these columns out")
    train.add_argument(
        "--na-values",
        metavar="TEXT,...",
        help="more cell texts that mean 'missing' (always: empty, NA, N/A, NaN, null, ...)",
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
    train.add_argument(
        "--memmap",
        action="store_true",
        help="build the training matrix in memory-mapped files beside OUT (automatic when the file is "
        "larger than 1/8 of the available memory)",
    )
    train.add_argument(
        "--block-size",
        type=_positive_int,
        default=DEFAULT_BLOCK_SIZE,
        metavar="BYTES",
        help="bytes of CSV parsed per record batch (default: %(default)s)",
    )
    train.add_argument("--quiet", action="store_true", help="print only the validation score")
    train.set_defaults(handler=_cmd_train)

    predict = commands.add_parser(
        "predict",
        help="predict with a model saved by 'neurocore train'",
        description="Predict the target for every row of a CSV file with a model saved by "
        f"'neurocore train'. Reads MODEL and MODEL{PREPROCESS_SUFFIX} and prepares the "
        "columns exactly as in training (same categories, medians, scales and missing-value "
        "texts); the CSV needs the feature columns the model was trained on (any order; other "
        "columns are ignored; missing ones are named). Writes one column named after the target: "
        "class labels as in the training file (text or numbers), or regression values.",
    )
    predict.add_argument("model", help="model file written by 'neurocore train'")
    predict.add_argument("data", help="CSV file with a header row")
    predict.add_argument("--out", help="CSV file for the predictions (default: stdout)")
    predict.add_argument(
        "--block-size",
        type=_positive_int,
        default=DEFAULT_BLOCK_SIZE,
        metavar="BYTES",
        help="bytes of CSV parsed per record batch (default: %(default)s)",
    )
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
