"""CSV input for the command line: pyarrow's streaming reader, one typed record batch at a time.

Every column is read either as a number (float64, missing cells -> NaN) or as text (dictionary-encoded,
missing cells -> null), so a file of any size is parsed in C++ without a Python object per cell.
pyarrow is the ``csv`` extra: it is imported here, on first use, never by ``import neurocore``.
"""
from __future__ import annotations

import csv
import os
import re

import numpy as np

EXTRA_HINT = 'pip install "neurocore[csv]"'
DEFAULT_BLOCK_SIZE = 1 << 20  # bytes of CSV per record batch: larger blocks let pyarrow read far ahead (memory)


class InputError(Exception):
    """A problem with the user's input: the command line reports it as one line, exit status 2."""


def require_pyarrow():
    """(pyarrow, pyarrow.csv), or an InputError that names the extra to install."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pcsv
    except ImportError:
        raise InputError(f"reading CSV files needs pyarrow, which is not installed: {EXTRA_HINT}") from None
    return pa, pcsv


def _open_text(path):
    try:
        return open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, expected a CSV file") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_header(path):
    """(column names, number of CSV records up to and including the header); checks names are usable."""
    with _open_text(path) as f:
        reader = csv.reader(f)
        try:
            header = next((row for row in reader if row), None)
        except UnicodeDecodeError:
            raise InputError(f"{path} is not UTF-8 text; expected a CSV file") from None
        except csv.Error as exc:
            raise InputError(f"{path}, line {reader.line_num}: malformed CSV header ({exc})") from None
        records = reader.line_num
    if header is None:
        raise InputError(f"{path} is empty: expected a header row, then data rows")
    header = [name.strip() for name in header]
    for position, name in enumerate(header, start=1):
        if not name:
            raise InputError(f"{path}: header column {position} has an empty name")
    seen = set()
    for name in header:
        if name in seen:
            raise InputError(f"{path}: column name {name!r} appears more than once in the header")
        seen.add(name)
    return header, records


class CSVSource:
    """One CSV file: its header, and typed record batches of the columns asked for."""

    def __init__(self, path, na_values=(), block_size=DEFAULT_BLOCK_SIZE):
        self.path = str(path)
        self.header, self._header_records = read_header(path)
        self.pa, self.pcsv = require_pyarrow()
        self.size = os.path.getsize(path)
        self.null_values = list(self.pcsv.ConvertOptions().null_values) + [v for v in na_values if v]
        self.block_size = block_size

    def text_type(self):
        return self.pa.dictionary(self.pa.int32(), self.pa.string())

    def _options(self, columns, types, block_size):
        pa, pcsv = self.pa, self.pcsv
        read = pcsv.ReadOptions(skip_rows=self._header_records, column_names=self.header,
                                block_size=block_size, use_threads=True)
        bad_rows = []

        def on_bad_row(row):
            bad_rows.append(row)
            return "error"

        parse = pcsv.ParseOptions(invalid_row_handler=on_bad_row)
        convert = pcsv.ConvertOptions(include_columns=list(columns), null_values=self.null_values,
                                      strings_can_be_null=True, quoted_strings_can_be_null=True,
                                      column_types=None if types is None else {
                                          name: (pa.float64() if kind == "number" else self.text_type())
                                          for name, kind in types.items()})
        return read, parse, convert, bad_rows

    def infer(self, columns):
        """pyarrow's guess from the first block: 'number' for integer/float columns, else 'text'."""
        pa = self.pa
        read, parse, convert, bad_rows = self._options(columns, None, min(self.block_size, 1 << 20))
        try:
            with self.pcsv.open_csv(self.path, read_options=read, parse_options=parse,
                                    convert_options=convert) as reader:
                schema = reader.schema
        except (pa.ArrowInvalid, OSError) as exc:
            raise self._translate(exc, bad_rows, columns) from None
        types = {}
        for field in schema:
            numeric = pa.types.is_integer(field.type) or pa.types.is_floating(field.type) \
                or pa.types.is_decimal(field.type)
            types[field.name] = "number" if numeric else "text"
        return types

    def batches(self, types, progress=None):
        """Yield record batches of the columns in ``types`` ({name: 'number' | 'text'}), in file order.

        A number column holding text raises :class:`NotANumber` (the caller may re-read it as text).
        ``progress(bytes_read)`` is called after each batch.
        """
        pa = self.pa
        columns = [name for name in self.header if name in types]
        read, parse, convert, bad_rows = self._options(columns, types, self.block_size)
        source = pa.OSFile(self.path)
        try:
            try:
                reader = self.pcsv.open_csv(source, read_options=read, parse_options=parse,
                                            convert_options=convert)
                for batch in reader:
                    if progress is not None:
                        progress(source.tell())
                    yield batch
            except (pa.ArrowInvalid, OSError) as exc:
                raise self._translate(exc, bad_rows, columns) from None
        finally:
            source.close()

    def _translate(self, exc, bad_rows, columns):
        text = str(exc)
        if bad_rows:
            row = bad_rows[0]
            return InputError(f"{self.path}, {self._locate_ragged(row.actual_columns)} has {row.actual_columns} "
                              f"fields but the header has {row.expected_columns} columns: {row.text[:80]!r}")
        if "invalid UTF8" in text:
            return InputError(f"{self.path} is not UTF-8 text; expected a CSV file")
        match = re.search(r"In CSV column #(\d+): .*conversion error to double: invalid value '(.*)'$", text, re.S)
        if match:
            return NotANumber(self, columns[int(match.group(1))], match.group(2))
        if isinstance(exc, OSError):
            return InputError(f"cannot read {self.path}: {exc}")
        return InputError(f"{self.path}: malformed CSV ({text.splitlines()[0] if text else exc})")

    def _locate_ragged(self, n_fields):
        """'line L: row R' of the first data row with ``n_fields`` fields (error messages only)."""
        for line, row_number, row in self._data_rows():
            if len(row) == n_fields:
                return f"line {line}: row {row_number}"
        return "a row"

    def _data_rows(self):
        with _open_text(self.path) as f:
            reader = csv.reader(f)
            row_number = 0
            try:
                for row in reader:
                    if reader.line_num <= self._header_records or not row:
                        continue
                    row_number += 1
                    yield reader.line_num, row_number, row
            except (csv.Error, UnicodeDecodeError):
                return

    def locate(self, column, value):
        """'line L (data row R)' of the first cell of ``column`` equal to ``value`` (error messages only)."""
        index = self.header.index(column)
        for line, row_number, row in self._data_rows():
            if index < len(row) and row[index] == value:
                return f"line {line} (data row {row_number})"
        return "a data row"


class NotANumber(InputError):
    """A cell of a column read as numbers holds text (training re-reads such a column as text)."""

    def __init__(self, source, column, value):
        super().__init__(column, value)
        self.source, self.column, self.value = source, column, value

    def __str__(self):  # built only when reported: locating the cell re-reads the file
        return (f"{self.source.path}, {self.source.locate(self.column, self.value)}, column {self.column!r}: "
                f"non-numeric value {self.value!r} in a numeric column")


def _valid(array):
    """Bool mask of the non-null entries of a pyarrow array (from its validity bitmap, no copy of values)."""
    n = len(array)
    if array.null_count == 0:
        return np.ones(n, dtype=bool)
    bitmap = np.frombuffer(array.buffers()[0], dtype=np.uint8)
    bits = np.unpackbits(bitmap, bitorder="little")
    return bits[array.offset:array.offset + n].astype(bool)


def _values(array, dtype):
    """The value buffer of a primitive pyarrow array as a NumPy view (entries under nulls are arbitrary)."""
    return np.frombuffer(array.buffers()[1], dtype=dtype)[array.offset:array.offset + len(array)]


def number_column(array, out=None):
    """float64 values of a float64 pyarrow array, NaN where missing (into ``out`` when given)."""
    if out is None:
        out = np.empty(len(array), dtype=np.float64)
    out[:] = _values(array, np.float64)
    if array.null_count:
        out[~_valid(array)] = np.nan
    return out


def text_codes(array, index, grow=True):
    """float64 codes of a dictionary-encoded text array: NaN where missing, ``index[text]`` otherwise.

    ``grow``: new texts join ``index`` ({text: code}); else they get code -1 (unseen).
    """
    words = array.dictionary.to_pylist()
    codes_of = (lambda w: index.setdefault(w, len(index))) if grow else (lambda w: index.get(w, -1))
    lookup = np.array([codes_of(w) for w in words] + [np.nan], dtype=np.float64)
    return lookup[dictionary_indices(array)]


def dictionary_indices(array):
    """int64 positions into the dictionary of a dictionary array; -1 (the last entry) where missing."""
    indices = array.indices
    positions = _values(indices, np.int32).astype(np.int64)
    if indices.null_count:
        positions[~_valid(indices)] = -1
    return positions
