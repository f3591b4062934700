"""What the command line learns from a training table, and how it turns any table into model inputs.

A feature column is numeric, boolean or categorical. Numeric and boolean columns become one input each
(missing cells -> the training median, plus a 0/1 "missing" input when the training file had missing cells),
standardized with the training mean and deviation; a categorical column becomes one 0/1 input per category
seen in training (plus one for "missing" when the training file had missing cells). The structure (kinds,
categories, which columns get a missing input) comes from the whole training file, the statistics (medians,
means, deviations) from its training part. Everything is plain JSON in the preprocessing file.
"""
from __future__ import annotations

import math

import numpy as np

from ._csvread import dictionary_indices, number_column, text_codes

NUMERIC, BOOLEAN, CATEGORICAL = "numeric", "boolean", "categorical"
TRUE_WORDS = frozenset({"true", "t", "yes", "y"})
FALSE_WORDS = frozenset({"false", "f", "no", "n"})
MAX_AUTO_CATEGORIES = 100  # an undeclared text column with more distinct values is refused (free text?)
MAX_STRAY_TEXTS = 3  # a numeric column with at most this many distinct non-numbers is refused (NA marks?)
MEDIAN_SAMPLE_ROWS = 100_000  # medians are exact up to this many training rows, else from an even sample


def parse_number(text):
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def bool_word(text):
    word = text.strip().lower()
    return 1.0 if word in TRUE_WORDS else 0.0 if word in FALSE_WORDS else None


class Preprocessor:
    """Column specs (JSON dicts) plus the per-input mean and deviation."""

    def __init__(self, columns, mean, std):
        self.columns = columns
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        self.input_names = [n for spec in columns for n in input_names(spec)]
        self.width = len(self.input_names)
        self._indices = [{c: i for i, c in enumerate(spec["categories"])} if spec["kind"] == CATEGORICAL
                         else None for spec in columns]
        # Where each column's inputs go: value columns (numeric, boolean) are standardized together.
        self._value_cols, self._value_inputs, self._medians = [], [], []
        self._indicator_cols, self._indicator_inputs, self._categorical = [], [], []
        k = 0
        for j, spec in enumerate(columns):
            if spec["kind"] == CATEGORICAL:
                n_cat = len(spec["categories"])
                self._categorical.append((j, k, n_cat, bool(spec["missing_category"])))
                k += n_cat + int(bool(spec["missing_category"]))
                continue
            self._value_cols.append(j)
            self._value_inputs.append(k)
            self._medians.append(float(spec["median"]))
            if spec["missing_indicator"]:
                self._indicator_cols.append(len(self._value_cols) - 1)
                self._indicator_inputs.append(k + 1)
            k += 1 + int(bool(spec["missing_indicator"]))
        self._medians = np.array(self._medians, dtype=np.float64)
        inputs = self._value_inputs  # a slice when contiguous (no indicators, categories after): cheaper
        contiguous = inputs == list(range(inputs[0], inputs[0] + len(inputs))) if inputs else False
        self._value_slice = slice(inputs[0], inputs[0] + len(inputs)) if contiguous else inputs
        self._value_mean = self.mean[self._value_inputs] if len(self.mean) == k else None
        self._value_std = self.std[self._value_inputs] if len(self.std) == k else None

    @property
    def names(self):
        return [spec["name"] for spec in self.columns]

    def read_types(self):
        """How each column is read at predict time: numbers, or text (booleans, categories)."""
        return {spec["name"]: "number" if spec["kind"] == NUMERIC else "text" for spec in self.columns}

    def canonical(self, batch, unseen):
        """(rows, columns) float64 of a record batch: values, or category positions; NaN where missing.

        Text that is neither a known category nor a boolean word gets -1 and is counted in ``unseen``.
        """
        out = np.empty((batch.num_rows, len(self.columns)), dtype=np.float64)
        for j, spec in enumerate(self.columns):
            array = batch.column(spec["name"])
            if spec["kind"] == NUMERIC:
                out[:, j] = number_column(array)
            elif spec["kind"] == BOOLEAN:
                words = array.dictionary.to_pylist()
                lookup = np.array([bool_word(w) if bool_word(w) is not None else -1 for w in words] + [np.nan])
                out[:, j] = lookup[dictionary_indices(array)]
            else:
                out[:, j] = text_codes(array, self._indices[j], grow=False)
            unknown = int(np.count_nonzero(out[:, j] == -1)) if spec["kind"] != NUMERIC else 0
            if unknown:
                unseen[spec["name"]] = unseen.get(spec["name"], 0) + unknown
                if spec["kind"] == BOOLEAN:  # an unknown word in a boolean column counts as missing
                    out[out[:, j] == -1, j] = np.nan
        return out

    def encode(self, canonical):
        """Model inputs (rows, width) float32 from canonical columns."""
        out = np.zeros((canonical.shape[0], self.width), dtype=np.float32)
        values = canonical[:, self._value_cols]
        gaps = np.isnan(values)
        if gaps.any():
            values = np.where(gaps, self._medians, values)
            out[:, self._indicator_inputs] = gaps[:, self._indicator_cols]
        out[:, self._value_slice] = (values - self._value_mean) / self._value_std
        for j, k, n_cat, missing_input in self._categorical:
            codes = canonical[:, j]
            known = np.flatnonzero(codes >= 0)
            out[known, k + codes[known].astype(np.int64)] = 1.0
            if missing_input:
                out[np.isnan(codes), k + n_cat] = 1.0
        return out


def input_names(spec):
    """Names of the model inputs one column spec produces."""
    name = spec["name"]
    if spec["kind"] == CATEGORICAL:
        names = [f"{name}={c}" for c in spec["categories"]]
        return names + ([f"{name}=(missing)"] if spec["missing_category"] else [])
    return [name] + ([f"{name} (missing)"] if spec["missing_indicator"] else [])


# --------------------------------------------------------------------------- learning from the training file


def decide_kinds(features, read_types, text_indices, raw_missing, raw_present_codes, declared, n_rows, fail,
                 where):
    """Column specs (without statistics) and, per column read as text, a lookup from code to canonical value.

    ``raw_present_codes[name]``: bool array over that column's codes, True where the code occurs.
    ``fail(message)`` raises the user error; ``where(column, text)`` names the file and line of a cell. Returns (specs, luts {position: ndarray}, ignored [(name, why)]).
    """
    specs, luts, ignored = [], {}, []
    for j, name in enumerate(features):
        has_missing = bool(raw_missing[j])
        if read_types[name] == "number":
            if raw_missing[j] == n_rows:
                ignored.append((name, "every cell is missing"))
                continue
            specs.append({"name": name, "kind": NUMERIC, "missing_indicator": has_missing, "_raw": j})
            continue
        words = list(text_indices[name])
        present = [w for w, seen in zip(words, raw_present_codes[name]) if seen]
        if not present:
            ignored.append((name, "every cell is missing"))
            continue
        if name not in declared:
            numbers = [parse_number(w) for w in words]
            if all(v is not None for v, seen in zip(numbers, raw_present_codes[name]) if seen):
                luts[j] = np.array([np.nan if v is None else v for v in numbers] + [np.nan])
                specs.append({"name": name, "kind": NUMERIC, "missing_indicator": has_missing, "_raw": j})
                continue
            strays = [w for w, v, seen in zip(words, numbers, raw_present_codes[name]) if seen and v is None]
            if len(strays) <= MAX_STRAY_TEXTS and len(strays) <= len(present) / 2:
                fail(f"{where(name, strays[0])}, column {name!r}: non-numeric value {strays[0]!r} in a column of "
                     f"numbers (other texts: {', '.join(repr(w) for w in strays[1:]) or 'none'}); if such texts "
                     f"mark missing cells pass --na-values {','.join(strays)}, else --categorical {name} or "
                     f"--ignore {name}")
            flags = [bool_word(w) for w in words]
            if all(f is not None for f, seen in zip(flags, raw_present_codes[name]) if seen):
                luts[j] = np.array([np.nan if f is None else f for f in flags] + [np.nan])
                specs.append({"name": name, "kind": BOOLEAN, "missing_indicator": has_missing, "_raw": j})
                continue
        n_distinct = len(present)
        if name in declared and n_distinct > n_rows / 2:
            fail(f"column {name!r} is declared categorical but holds {n_distinct} distinct values in {n_rows} "
                 f"rows (more than half): it looks like free text; leave it out with --ignore {name}")
        if name not in declared and (n_distinct > MAX_AUTO_CATEGORIES or n_distinct > n_rows / 2):
            example = present[0]
            fail(f"column {name!r} holds text ({example!r}, ...) with {n_distinct} distinct values in {n_rows} "
                 f"rows, too many to treat as categories automatically; pass --categorical {name} to one-hot "
                 f"encode it anyway (allowed up to rows/2 distinct values) or --ignore {name}")
        categories = sorted(present)
        rank = {w: i for i, w in enumerate(categories)}
        luts[j] = np.array([rank.get(w, np.nan) for w in words] + [np.nan], dtype=np.float64)
        specs.append({"name": name, "kind": CATEGORICAL, "categories": categories,
                      "missing_category": has_missing, "_raw": j})
    return specs, luts, ignored


def apply_luts(raw, luts, columns):
    """Canonical columns (the raw ``columns``, in that order) with text codes mapped through their lookups."""
    if not luts and list(columns) == list(range(raw.shape[1])):
        return raw  # all numeric, nothing left out: read as is
    out = raw[:, columns]
    for position, j in enumerate(columns):
        if j in luts:
            codes = out[:, position]
            missing = np.isnan(codes)
            lut = luts[j]
            out[:, position] = lut[np.where(missing, len(lut) - 1, codes).astype(np.int64)]
    return out


class RunningStats:
    """Count, mean and sum of squared deviations of each column's present values, merged chunk by chunk
    (Chan et al.), plus an evenly spaced sample for the median."""

    def __init__(self, n_cols, n_train):
        self.count = np.zeros(n_cols)
        self.mean = np.zeros(n_cols)
        self.m2 = np.zeros(n_cols)
        self.step = max(1, math.ceil(n_train / MEDIAN_SAMPLE_ROWS))
        self.seen = 0
        self.sample = []

    def add(self, values):
        present = ~np.isnan(values)
        if present.all():
            count = np.full(values.shape[1], float(len(values)))
            mean = values.mean(axis=0) if len(values) else np.zeros(values.shape[1])
            m2 = ((values - mean) ** 2).sum(axis=0)
        else:
            count = present.sum(axis=0).astype(np.float64)
            filled = np.where(present, values, 0.0)
            mean = filled.sum(axis=0) / np.maximum(count, 1)
            m2 = (np.where(present, values - mean, 0.0) ** 2).sum(axis=0)
        total = self.count + count
        delta = mean - self.mean
        safe = np.maximum(total, 1)
        self.mean = self.mean + delta * count / safe
        self.m2 = self.m2 + m2 + delta**2 * self.count * count / safe
        self.count = total
        first = (-self.seen) % self.step
        self.sample.append(values[first::self.step].copy())  # a copy: a strided view would keep the chunk
        self.seen += len(values)

    def medians(self):
        sample = np.concatenate(self.sample) if self.sample else np.empty((0, len(self.count)))
        out = np.zeros(len(self.count))
        gaps = np.isnan(sample)
        for j in range(len(out)):
            column = sample[:, j] if not gaps[:, j].any() else sample[~gaps[:, j], j]
            if len(column):
                out[j] = np.median(column)
        return out


def finish_specs(specs, stats, n_train):
    """Medians into the specs, and the mean and deviation of every model input (of the training part)."""
    value_cols = [i for i, spec in enumerate(specs) if spec["kind"] != CATEGORICAL]
    medians = stats.medians()
    mean, std = [], []
    for i, spec in enumerate(specs):
        if spec["kind"] == CATEGORICAL:
            width = len(spec["categories"]) + int(spec["missing_category"])
            mean += [0.0] * width
            std += [1.0] * width
            continue
        k = value_cols.index(i)
        median = float(medians[k])
        spec["median"] = median
        # Imputed cells sit at the median: merge them in as a group with zero spread.
        n1, m1, s1 = stats.count[k], stats.mean[k], stats.m2[k]
        n2 = n_train - n1
        total = max(n1 + n2, 1)
        value_mean = m1 + (median - m1) * n2 / total
        value_m2 = s1 + (median - m1) ** 2 * n1 * n2 / total
        deviation = math.sqrt(value_m2 / total)
        mean.append(float(value_mean))
        std.append(deviation if deviation > 0 else 1.0)
        if spec["missing_indicator"]:
            mean.append(0.0)
            std.append(1.0)
    for spec in specs:
        spec.pop("_raw", None)
    return mean, std
