"""The command line on real-world CSVs: text labels, categories, booleans, missing values, Windows line
endings and a BOM (examples/messy_csv.py), the preprocessing file, predict's column matching, bad inputs,
the memory-mapped path, and the pyarrow extra."""

import csv
import importlib.util
import io
import json
import os
import pathlib
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reliability import property_settings, under_sanitizer

import neurocore.cli as cli
from neurocore.cli import PREPROCESS_SUFFIX, main

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("messy_csv", ROOT / "examples" / "messy_csv.py")
messy_csv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(messy_csv)

TRAIN_ARGS = ["--target", "churn", "--ignore", "customer_id", "--categorical", "region", "--na-values", "?",
              "--hidden", "32", "--epochs", "8", "--quiet"]


@pytest.fixture(scope="module")
def reader():
    return pytest.importorskip("pyarrow")


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def read_rows(path):
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.reader(f))


def write_rows(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


def predictions(model, data, tmp_path, name="preds.csv"):
    out = tmp_path / name
    code, stdout, err = run(["predict", str(model), str(data), "--out", str(out)])
    assert code == 0, err
    rows = read_rows(out)
    return rows[0], [row[0] for row in rows[1:]], err


@pytest.fixture(scope="module")
def messy(reader, tmp_path_factory):
    folder = tmp_path_factory.mktemp("messy")
    data = folder / "churn.csv"
    labels = messy_csv.write_messy_csv(data, n_rows=3000, seed=0)
    model = folder / "churn.npz"
    result = run(["train", str(data), *TRAIN_ARGS, "--out", str(model)])
    return data, labels, model, result


def accuracy_of(result):
    return float(result[1].split("validation accuracy: ")[1].split()[0])


def test_messy_csv_trains(messy):
    data, _, model, (code, out, err) = messy
    assert code == 0, err
    assert data.read_bytes().startswith(b"\xef\xbb\xbf") and b"\r\n" in data.read_bytes()
    assert accuracy_of((code, out, err)) >= 0.72  # noisy labels: the generating model itself scores ~0.83


def test_messy_csv_preprocessing_file(messy):
    data, _, model, _ = messy
    prep = json.loads((model.parent / (model.name + PREPROCESS_SUFFIX)).read_text())
    assert prep["format_version"] == 2
    assert prep["task"] == "classify" and prep["target"] == "churn"
    assert prep["labels"] == ["no", "yes"]
    assert prep["na_values"] == ["?"]
    columns = {c["name"]: c for c in prep["columns"]}
    assert list(columns) == prep["features"] == ["age", "city", "plan", "tenure_months", "monthly_charges",
                                                  "support_calls", "payment", "region", "paperless",
                                                  "survey_version"]
    for name in ["age", "tenure_months", "monthly_charges", "support_calls"]:
        assert columns[name]["kind"] == "numeric" and columns[name]["missing_indicator"] is True
    for name, values in [("city", messy_csv.CITIES), ("plan", messy_csv.PLANS), ("payment", messy_csv.PAYMENTS)]:
        assert columns[name] == {"name": name, "kind": "categorical", "categories": sorted(values),
                                 "missing_category": True}
    assert columns["region"] == {"name": "region", "kind": "categorical", "categories": ["1", "2", "3", "4"],
                                 "missing_category": False}
    assert columns["paperless"]["kind"] == "boolean" and columns["paperless"]["missing_indicator"] is False
    assert columns["survey_version"] == {"name": "survey_version", "kind": "numeric", "missing_indicator": False,
                                         "median": 3.0}
    assert {"column": "notes", "reason": "every cell is missing"} in prep["left_out"]
    assert {"column": "customer_id", "reason": "--ignore"} in prep["left_out"]
    # The median of the training part is close to the median of the whole column.
    rows = read_rows(data)
    ages = [float(r[1]) for r in rows[1:] if r[1] not in ("", "NA", "?")]
    assert abs(columns["age"]["median"] - np.median(ages)) <= 2
    inputs = prep["inputs"]
    assert len(inputs) == len(prep["feature_mean"]) == len(prep["feature_std"]) == 4 * 2 + 6 + 4 + 5 + 4 + 1 + 1
    assert "city=Paris" in inputs and "city=(missing)" in inputs and "age (missing)" in inputs
    mean = dict(zip(inputs, prep["feature_mean"]))
    std = dict(zip(inputs, prep["feature_std"]))
    assert mean["city=Paris"] == 0 and std["city=Paris"] == 1  # one-hot inputs are not rescaled
    assert std["survey_version"] == 1 and mean["survey_version"] == 3  # a constant column
    assert 40 < mean["age"] < 60 and 10 < std["age"] < 25


def test_messy_predict_round_trip_gives_label_strings(messy, tmp_path):
    data, labels, model, (_, out, _) = messy
    header, predicted, err = predictions(model, data, tmp_path)
    assert header == ["churn"] and err == ""
    assert set(predicted) == {"yes", "no"}
    assert len(predicted) == len(labels)
    assert np.mean(np.array(predicted) == labels) >= 0.75
    fresh = tmp_path / "fresh.csv"
    fresh_labels = messy_csv.write_messy_csv(fresh, n_rows=1000, seed=1)
    _, predicted, _ = predictions(model, fresh, tmp_path, "fresh_preds.csv")
    assert np.mean(np.array(predicted) == fresh_labels) >= 0.72


def test_predict_accepts_reordered_and_extra_columns(messy, tmp_path):
    data, _, model, _ = messy
    rows = read_rows(data)
    header = rows[0]
    order = [header.index(n) for n in reversed(header) if n != "churn"]
    shuffled = write_rows(tmp_path / "shuffled.csv",
                          [["comment"] + [header[i] for i in order]]
                          + [[f"free text {k}"] + [r[i] for i in order] for k, r in enumerate(rows[1:])])
    _, expected, _ = predictions(model, data, tmp_path, "a.csv")
    _, got, _ = predictions(model, shuffled, tmp_path, "b.csv")
    assert got == expected


def test_predict_names_missing_columns(messy, tmp_path):
    data, _, model, _ = messy
    rows = read_rows(data)
    keep = [i for i, n in enumerate(rows[0]) if n not in ("city", "paperless")]
    partial = write_rows(tmp_path / "partial.csv", [[r[i] for i in keep] for r in rows[:5]])
    code, out, err = run(["predict", str(model), str(partial)])
    assert code == 2 and out == ""
    assert "has no column 'city', 'paperless'" in err
    assert len(err.splitlines()) == 1


def test_predict_counts_unseen_categories(messy, tmp_path):
    data, _, model, _ = messy
    rows = read_rows(data)
    city = rows[0].index("city")
    for r in rows[1:4]:
        r[city] = "Bordeaux"
    rows[4][city] = "Toulouse"
    changed = write_rows(tmp_path / "unseen.csv", rows)
    _, predicted, err = predictions(model, changed, tmp_path)
    assert len(predicted) == len(rows) - 1
    assert err.count("warning") == 1
    assert "4 cells held values not seen in training (city: 4)" in err


def test_memmap_path_with_small_batches_trains_the_same_model(messy, tmp_path):
    """Record batches of 4 KiB into memory-mapped files: the same matrices, so the same model and score."""
    data, _, _, (_, expected, _) = messy
    model = tmp_path / "mm.npz"
    code, out, err = run(["train", str(data), *TRAIN_ARGS, "--memmap", "--block-size", "4096",
                          "--out", str(model)])
    assert code == 0, err
    assert out == expected
    assert sorted(os.listdir(tmp_path)) == ["mm.npz", "mm.npz" + PREPROCESS_SUFFIX]  # temporary files gone
    first = json.loads((messy[2].parent / (messy[2].name + PREPROCESS_SUFFIX)).read_text())
    second = json.loads((tmp_path / ("mm.npz" + PREPROCESS_SUFFIX)).read_text())
    assert second == first


def test_memmap_path_says_so_and_shows_reading_progress(messy, tmp_path, monkeypatch):
    data, _, _, _ = messy
    monkeypatch.setattr(cli, "PROGRESS_MIN_BYTES", 0)
    args = [a for a in TRAIN_ARGS if a != "--quiet"]
    code, out, err = run(["train", str(data), *args, "--epochs", "1", "--memmap", "--block-size", "8192",
                          "--out", str(tmp_path / "m.npz")])
    assert code == 0, err
    assert "into memory-mapped files" in out
    assert "MB/s" in out
    assert "reading churn.csv" in err and "100%" in err


def test_fit_trains_from_a_float32_memmap_without_copying(tmp_path):
    """The memory-mapped path relies on fit not copying a float32 memmap: RssAnon grows far less than the data."""
    if under_sanitizer() or not os.path.exists("/proc/self/status"):
        pytest.skip("needs /proc/self/status and a build without the sanitizer's allocator")
    script = tmp_path / "rss.py"
    script.write_text(
        "import sys, threading, time, numpy as np, neurocore as nc\n"
        "def anon():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('RssAnon:'): return int(line.split()[1]) * 1024\n"
        "rows, cols = 200_000, 64\n"
        "w = np.memmap(sys.argv[1], dtype=np.float32, mode='w+', shape=(rows, cols))\n"
        "for s in range(0, rows, 20_000): w[s:s + 20_000] = np.random.default_rng(s).normal(size=(20_000, cols))\n"
        "w.flush(); del w\n"
        "X = np.memmap(sys.argv[1], dtype=np.float32, mode='r', shape=(rows, cols))\n"
        "y = (np.arange(rows) % 2).astype(np.int64)\n"
        "model = nc.Sequential([nc.Dense(cols, 8), nc.ReLU(), nc.Dense(8, 2)], seed=0)\n"
        "model.fit(X[:64], y[:64], epochs=1, verbose=0)\n"
        "base, peak, done = anon(), [0], [False]\n"
        "def watch():\n"
        "    while not done[0]:\n"
        "        peak[0] = max(peak[0], anon()); time.sleep(0.001)\n"
        "t = threading.Thread(target=watch); t.start()\n"
        "model.fit(X, y, epochs=1, batch_size=512, verbose=0, validation_data=(X[:40_000], y[:40_000]))\n"
        "done[0] = True; t.join()\n"
        "print((peak[0] - base) / X.nbytes)\n")
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "x.f32")], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    growth = float(proc.stdout)
    assert growth < 0.5, f"RssAnon grew by {growth:.0%} of the data during fit: a copy?"


# --------------------------------------------------------------------------- column kinds and options


def train_csv(tmp_path, text, *extra, target="y"):
    path = tmp_path / "data.csv"
    path.write_text(text)
    model = tmp_path / "m.npz"
    code, out, err = run(["train", str(path), "--target", target, "--hidden", "4", "--epochs", "1",
                          "--out", str(model), *extra])
    prep = json.loads((tmp_path / ("m.npz" + PREPROCESS_SUFFIX)).read_text()) if code == 0 else None
    return code, out, err, prep


def test_rows_with_missing_target_are_dropped_and_counted(reader, tmp_path):
    rows = "\n".join(f"{i % 7},{'' if i % 10 == 0 else i * 0.5}" for i in range(60))
    code, out, err, prep = train_csv(tmp_path, "x,y\n" + rows + "\n")
    assert code == 0, err
    assert "dropped 6 of 60 rows whose target 'y' is missing" in out
    assert "data: 54 rows" in out
    assert prep["task"] == "regress"


def test_predict_warns_only_about_text_it_has_not_seen(reader, tmp_path):
    """-1 is a number like any other (unseen categories are coded -1 inside): no warning for it."""
    rows = "\n".join(f"{(i % 5) - 2},{'ab'[i % 2]},{i % 2}" for i in range(40))
    code, _, err, _ = train_csv(tmp_path, "x,c,y\n" + rows + "\n")
    assert code == 0, err
    data = write_rows(tmp_path / "new.csv", [["x", "c"], ["-1", "a"], ["-1", "z"], ["-1", ""]])
    _, predicted, err = predictions(tmp_path / "m.npz", data, tmp_path)
    assert len(predicted) == 3
    assert "1 cells held values not seen in training (c: 1)" in err


def test_a_column_numeric_at_first_and_text_later_is_read_again_as_text(reader, tmp_path):
    rows = [f"{i % 3},{i % 2}" for i in range(400)] + [f"{'abcde'[i % 5]},{i % 2}" for i in range(400)]
    code, out, err, prep = train_csv(tmp_path, "code,y\n" + "\n".join(rows) + "\n", "--block-size", "1024")
    assert code == 0, err
    assert "column 'code' holds text ('a') further down: reading it again as text" in out
    assert prep["columns"] == [{"name": "code", "kind": "categorical",
                                "categories": ["0", "1", "2", "a", "b", "c", "d", "e"],
                                "missing_category": False}]


def test_booleans_and_categorical_integers(reader, tmp_path):
    rows = [f"{'TRUE' if i % 3 else 'false'},{i % 4},{i % 2}" for i in range(40)]
    code, _, err, prep = train_csv(tmp_path, "flag,level,y\n" + "\n".join(rows) + "\n", "--categorical", "level")
    assert code == 0, err
    assert [c["kind"] for c in prep["columns"]] == ["boolean", "categorical"]
    assert prep["inputs"] == ["flag", "level=0", "level=1", "level=2", "level=3"]


def test_old_preprocessing_files_still_predict(reader, tmp_path):
    """Format 1 (all-numeric, written before this change) is read: the same predictions."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(80, 2))
    text = "a,b,y\n" + "\n".join(f"{a},{b},{int(a > b)}" for a, b in X) + "\n"
    code, _, err, prep = train_csv(tmp_path, text)
    assert code == 0, err
    _, expected, _ = predictions(tmp_path / "m.npz", tmp_path / "data.csv", tmp_path, "a.csv")
    old = {k: prep[k] for k in ("format", "task", "target", "features", "feature_mean", "feature_std", "labels")}
    old["format_version"] = 1
    (tmp_path / ("m.npz" + PREPROCESS_SUFFIX)).write_text(json.dumps(old))
    _, got, _ = predictions(tmp_path / "m.npz", tmp_path / "data.csv", tmp_path, "b.csv")
    assert got == expected


# --------------------------------------------------------------------------- bad inputs: one clear line each


@pytest.mark.parametrize(
    ("text", "extra", "message"),
    [
        ("a,y\n", (), "has a header row but no data rows"),
        ("a,b\n1,2\n3,4\n", (), "target column 'y' not found in"),
        ("a,y\n1,\n2,NA\n3,\n", (), "target column 'y' has no values: every one of its 3 cells is missing"),
        ("a,y\n1,yes\n2,yes\n", (), "target column 'y' holds a single value ('yes')"),
        ("a,y\n1,5\n2,5\n", ("--task", "classify"), "holds a single value (5)"),
        ("a,y\n1,yes\n2,no\n", ("--task", "regress"), "holds text ('yes'); --task regress needs numbers"),
        ("note,y\n" + "".join(f"comment number {i},{i % 2}\n" for i in range(10)), ("--categorical", "note"),
         "column 'note' is declared categorical but holds 10 distinct values in 10 rows (more than half)"),
        ("note,a,y\n" + "".join(f"word{i},{i},{i % 2}\n" for i in range(300)), (),
         "column 'note' holds text ('word0', ...) with 300 distinct values in 300 rows"),
        ("a,b,y\n" + "".join(f"{i},{'?' if i == 3 else i},{i % 2}\n" for i in range(9)), (),
         "line 5 (data row 4), column 'b': non-numeric value '?' in a column of numbers"),
        ("a,y\n1,0\n2,1\n", ("--categorical", "zz"), "--categorical names no column 'zz'"),
        ("a,y\n1,0\n2,1\n", ("--ignore", "y"), "--ignore names the target column 'y'"),
        ("a,b,y\n,,1\n,,0\n", (), "no usable feature columns: 'a': every cell is missing"),
    ],
)
def test_bad_input_gives_one_clear_line(reader, tmp_path, text, extra, message):
    code, out, err, _ = train_csv(tmp_path, text, *extra)
    assert code == 2 and out == ""
    assert err.startswith("neurocore train: error: ")
    assert len(err.splitlines()) == 1, err
    assert message in err


CELLS = st.sampled_from(["", "NA", "?", "nan", "inf", "-1", "0", "1", "2.5", "1e308", "1e999", "yes", "No",
                          "TRUE", "abc", "a,b", 'say "hi"', "line\nbreak", " 3 ", "\u00e9t\u00e9", "-0", "0x1"])


@property_settings(25)
@given(header=st.lists(st.sampled_from(["a", "b", "c", "y", "a"]), min_size=1, max_size=4),
       rows=st.lists(st.lists(CELLS, min_size=0, max_size=5), max_size=12),
       extra=st.sampled_from([(), ("--categorical", "a"), ("--na-values", "?"), ("--task", "regress"),
                              ("--ignore", "b")]))
def test_any_small_csv_trains_or_gives_one_error_line(reader, tmp_path_factory, header, rows, extra):
    """Random cells, ragged rows, odd texts: exit 0, or exit 2 with one line; never a traceback."""
    folder = tmp_path_factory.mktemp("garbage")
    with open(folder / "d.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    code, out, err, _ = train_csv(folder, (folder / "d.csv").read_text(encoding="utf-8"), *extra)
    assert code in (0, 2), err
    if code == 2:
        assert out == "" or out.startswith(("dropped", "column")), out
        assert err.startswith("neurocore train: error: ") and err.count("\n") == 1, err
    else:
        assert "validation" in out
        _, predicted, _ = predictions(folder / "m.npz", folder / "data.csv", folder)
        assert len(predicted) == sum(1 for row in read_rows(folder / "data.csv")[1:] if row)


# --------------------------------------------------------------------------- the csv extra


def test_without_pyarrow_the_error_names_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "d.csv"
    path.write_text("a,y\n1,0\n2,1\n")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.csv", None)
    code, out, err = run(["train", str(path), "--target", "y", "--out", str(tmp_path / "m.npz")])
    assert code == 2 and out == ""
    assert err == 'neurocore train: error: reading CSV files needs pyarrow, which is not installed: ' \
                  'pip install "neurocore[csv]"\n'


def test_import_neurocore_does_not_import_the_reader():
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, neurocore, neurocore.cli; "
         "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyarrow', 'pandas')))"],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
