"""From a training CSV to float32 train/validation matrices, in three passes that each hold one chunk.

1. read: record batches -> raw float64 rows (values, or text codes), rows with a missing target dropped;
2. learn: column kinds and categories (whole file), medians/means/deviations (training part);
3. encode: raw rows -> model inputs, written into the train and validation matrices.
The raw rows and both matrices live in memory, or, for files larger than memory, in memory-mapped files
beside the model (deleted afterwards); ``fit`` trains from a float32 memmap without copying it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._csvread import InputError, NotANumber, number_column, text_codes
from ._tabular import CATEGORICAL, Preprocessor, RunningStats, apply_luts, decide_kinds, finish_specs, parse_number

CHUNK_ROWS = 1 << 14  # rows per chunk of a memory-mapped table in passes 2 and 3


class _RowStore:
    """Rows appended block by block, in memory or in a file that becomes a read-only memmap."""

    def __init__(self, n_cols, path=None):
        self.n_cols, self.path, self.rows = n_cols, path, 0
        self.parts = []
        self.file = _create(path, lambda: open(path, "wb")) if path is not None else None

    def append(self, block):
        if self.file is not None:
            self.file.write(np.ascontiguousarray(block, dtype=np.float64).tobytes())
        else:
            self.parts.append(block)
        self.rows += len(block)

    def finish(self):
        """The rows as a list of consecutive chunks (the blocks in memory; slices of a read-only memmap)."""
        if self.file is None:
            return self.parts
        self.file.close()
        if self.rows == 0:
            return []
        rows = np.memmap(self.path, dtype=np.float64, mode="r", shape=(self.rows, self.n_cols))
        return [rows[start:start + CHUNK_ROWS] for start in range(0, self.rows, CHUNK_ROWS)]


@dataclass
class TrainingTable:
    """What :func:`build` returns."""

    X_train: np.ndarray  # (n_train, width) float32, in memory or a memmap
    X_val: np.ndarray
    y_train: np.ndarray  # class indices (int64) or values (float64)
    y_val: np.ndarray
    task: str  # 'classify' or 'regress'
    labels: list | None  # class names: strings for a text target, floats for a numeric one
    prep: Preprocessor
    ignored: list  # (column, why) left out by the data itself
    n_read: int  # data rows in the file
    n_rows: int  # rows with a target


def available_memory():
    """Bytes of memory available (Linux /proc/meminfo), or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def needs_memmap(file_size):
    """Whether to build the matrices in memory-mapped files: the raw rows take up to ~4x the CSV's size."""
    available = available_memory()
    return available is not None and 4 * file_size > available / 2


def _read(source, features, target, types, store, progress):
    """Pass 1. Returns (target values or codes, target text index or None, text indices, missing counts,
    codes present per text column, rows read)."""
    text_indices = {name: {} for name in features if types[name] == "text"}
    present = {name: set() for name in text_indices}
    target_index = {} if types[target] == "text" else None
    missing = np.zeros(len(features), dtype=np.int64)
    targets, n_read = [], 0
    for batch in source.batches({**types}, progress):
        column = batch.column(target)
        y = text_codes(column, target_index) if target_index is not None else number_column(column)
        block = np.empty((batch.num_rows, len(features)), dtype=np.float64)
        for j, name in enumerate(features):
            array = batch.column(name)
            if types[name] == "number":
                number_column(array, out=block[:, j])
            else:
                block[:, j] = text_codes(array, text_indices[name])
        keep = ~np.isnan(y)
        if not keep.all():
            block, y = block[keep], y[keep]
        bad = ~np.isfinite(block)
        if bad.any():
            gaps = np.isnan(block)
            if (bad & ~gaps).any():
                r, j = np.argwhere(bad & ~gaps)[0]
                row = n_read + int(np.flatnonzero(keep)[r]) + 1
                raise InputError(f"{source.path}, data row {row}, column {features[j]!r}: value "
                                 f"{block[r, j]} is not finite")
            missing += gaps.sum(axis=0)
        for j, name in enumerate(features):
            if name in present:
                codes = block[:, j]
                present[name].update(np.unique(codes[~np.isnan(codes)]).astype(np.int64).tolist())
        store.append(block)
        targets.append(y)
        n_read += batch.num_rows
    target_values = np.concatenate(targets) if targets else np.empty(0)
    flags = {name: np.isin(np.arange(len(text_indices[name])), sorted(present[name])) for name in text_indices}
    return target_values, target_index, text_indices, missing, flags, n_read


def build(source, features, target, types, declared, task, classify_rule, split, *, memmap_dir=None,
          progress=None, say=print):
    """Read, learn and encode a training file.

    ``types``: {column: 'number' | 'text'} (pyarrow's guess; a number column found to hold text is re-read
    as text). ``task``: 'classify', 'regress' or None (``classify_rule(values)`` decides for numbers).
    ``split(y, classify) -> is_val`` (bool per kept row). Returns a TrainingTable.
    """
    types = dict(types)
    temp = []
    while True:
        path = None if memmap_dir is None else os.path.join(memmap_dir, f".neurocore-{os.getpid()}.rows.tmp")
        store = _RowStore(len(features), path)
        temp.append(path)
        try:
            target_raw, target_index, text_indices, missing, present, n_read = _read(
                source, features, target, types, store, progress)
            break
        except NotANumber as exc:  # pyarrow's guess came from the first block: read that column as text
            if store.file is not None:
                store.file.close()
            types[exc.column] = "text"
            say(f"column {exc.column!r} holds text ({exc.value!r}) further down: reading it again as text")
    try:
        raw = store.finish()
        return _learn_and_encode(source, features, target, types, declared, task, classify_rule, split,
                                 raw, target_raw, target_index, text_indices, missing, present, n_read,
                                 memmap_dir, say)
    finally:
        for p in temp:
            if p is not None and os.path.exists(p):
                os.unlink(p)


def _target_classes(name, values, target_index, task, classify_rule):
    """(task, y, labels): labels are strings for a text target, floats for a numeric one."""
    if target_index is not None:
        words = list(target_index)
        numbers = [parse_number(w) for w in words]
        if all(v is not None for v in numbers):  # read as text (empty first block) but holds numbers
            values = np.array(numbers)[values.astype(np.int64)]
        else:
            if task == "regress":
                example = next(w for w, v in zip(words, numbers) if v is None)
                raise InputError(f"target column {name!r} holds text ({example!r}); --task regress needs "
                                 "numbers")
            present = np.unique(values.astype(np.int64))
            labels = sorted(words[i] for i in present)
            rank = np.full(len(words), -1, dtype=np.int64)
            for i in present:
                rank[i] = labels.index(words[i])
            if len(labels) < 2:
                raise InputError(f"target column {name!r} holds a single value ({labels[0]!r}); "
                                 "classification needs at least 2 classes")
            return "classify", rank[values.astype(np.int64)], labels
    task = task or classify_rule(values)
    if task == "regress":
        return task, values, None
    labels, y = np.unique(values, return_inverse=True)
    if len(labels) < 2:
        raise InputError(f"target column {name!r} holds a single value ({_number_text(labels[0])}); "
                         "classification needs at least 2 classes")
    return task, y.astype(np.int64), [float(v) for v in labels]


def _number_text(value):
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:.9g}"


def _fail(message):
    raise InputError(message)


def _learn_and_encode(source, features, target, types, declared, task, classify_rule, split, raw, target_raw,
                      target_index, text_indices, missing, present, n_read, memmap_dir, say):
    if n_read == 0:
        raise InputError(f"{source.path} has a header row but no data rows")
    n = sum(len(chunk) for chunk in raw)
    if n == 0:
        raise InputError(f"target column {target!r} has no values: every one of its {n_read} cells is missing")
    if n < n_read:
        say(f"dropped {n_read - n} of {n_read} rows whose target {target!r} is missing")
    if n < 2:
        raise InputError(f"{source.path} has {n} data row with a target; need at least 2 "
                         "(one to train on, one to validate on)")
    task, y, labels = _target_classes(target, target_raw, target_index, task, classify_rule)
    is_val = split(y, task == "classify")
    n_train = int(n - is_val.sum())

    specs, luts, ignored = decide_kinds(features, types, text_indices, missing, present, declared, n, _fail,
                                         lambda name, text: f"{source.path}, {source.locate(name, text)}")
    if not specs:
        raise InputError(f"{source.path} has no usable feature columns: "
                         + "; ".join(f"{name!r}: {why}" for name, why in ignored))
    raw_cols = [spec["_raw"] for spec in specs]
    value_cols = [i for i, spec in enumerate(specs) if spec["kind"] != CATEGORICAL]
    stats = RunningStats(len(value_cols), n_train)
    for start, chunk in _with_offsets(raw):
        canon = apply_luts(chunk, luts, raw_cols)
        val = is_val[start:start + len(chunk)]
        stats.add((canon if not val.any() else canon[~val])[:, value_cols])
    mean, std = finish_specs(specs, stats, n_train)
    prep = Preprocessor(specs, mean, std)

    X_train = _matrix(memmap_dir, "train", n_train, prep.width)
    X_val = _matrix(memmap_dir, "val", n - n_train, prep.width)
    t = v = 0
    for start, chunk in _with_offsets(raw):
        encoded = prep.encode(apply_luts(chunk, luts, raw_cols))
        val = is_val[start:start + len(chunk)]
        n_val = int(val.sum())
        X_train[t:t + len(chunk) - n_val] = encoded[~val] if n_val else encoded
        X_val[v:v + n_val] = encoded[val]
        t += len(chunk) - n_val
        v += n_val
    table = TrainingTable(X_train, X_val, y[~is_val], y[is_val], task, labels, prep, ignored, n_read, n)
    return table


def _create(path, make):
    try:
        return make()
    except OSError as exc:
        raise InputError(f"cannot create the temporary file {path} for the memory-mapped matrices: "
                         f"{exc.strerror or exc}") from None


def _with_offsets(chunks):
    start = 0
    for chunk in chunks:
        yield start, chunk
        start += len(chunk)


def _matrix(memmap_dir, part, rows, cols):
    if memmap_dir is None or rows == 0:
        return np.empty((rows, cols), dtype=np.float32)
    path = Path(memmap_dir) / f".neurocore-{os.getpid()}.{part}.tmp"
    matrix = _create(path, lambda: np.memmap(path, dtype=np.float32, mode="w+", shape=(rows, cols)))
    try:
        os.unlink(path)  # the mapping keeps the data; the disk space returns when the matrix is freed
    except OSError:  # a system that cannot delete an open file: the file stays, named after this process
        pass
    return matrix
