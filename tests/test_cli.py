"""Tests of the command line: neurocore.cli.main and ``python -m neurocore``."""

import csv
import io
import json
import re
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from importlib import metadata

import numpy as np
import pytest

import neurocore as nc
from neurocore.cli import PREPROCESS_SUFFIX, main

LABELS = (10, 20, 30)  # class labels that are not 0..k-1, to check the mapping back


def run(argv):
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_predictions(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def score(pattern, text):
    match = re.search(pattern + r": (-?[0-9.]+|nan)", text)
    assert match, f"no {pattern!r} in output:\n{text}"
    return float(match.group(1))


def r2(y_true, y_pred):
    return 1.0 - np.sum((y_true - y_pred) ** 2) / np.sum((y_true - y_true.mean()) ** 2)


# --------------------------------------------------------------------------- data and models


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    """Three well separated Gaussian blobs in 4-D; one feature in the hundreds."""
    pytest.importorskip("pyarrow")  # the CSV reader (the csv extra)
    rng = np.random.default_rng(0)
    centers = np.array([[0, 0, 0, 0], [4, 0, 4, 0], [0, 4, 0, 4]], dtype=np.float64)
    k = rng.integers(0, 3, size=240)
    X = centers[k] + rng.normal(size=(240, 4))
    X[:, 3] = X[:, 3] * 100 + 500
    y = np.array(LABELS)[k]
    path = tmp_path_factory.mktemp("blobs") / "blobs.csv"
    write_csv(
        path,
        ["f1", "f2", "f3", "f4", "label"],
        [[*map(repr, row), str(label)] for row, label in zip(X.tolist(), y)],
    )
    return path, X, y


@pytest.fixture(scope="module")
def classifier(blobs):
    path, _, _ = blobs
    model = path.parent / "clf.npz"
    result = run(
        [
            "train",
            str(path),
            "--target",
            "label",
            "--hidden",
            "16",
            "--epochs",
            "20",
            "--out",
            str(model),
        ]
    )
    return model, result


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    """y = 3 x1 - 2 x2 / 1000 + 0.5 x3 + 100 + small noise; x2 in the thousands."""
    pytest.importorskip("pyarrow")
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 3))
    X[:, 1] = X[:, 1] * 1000 + 5000
    y = 3 * X[:, 0] - 2 * X[:, 1] / 1000 + 0.5 * X[:, 2] + 100 + rng.normal(0, 0.1, 300)
    path = tmp_path_factory.mktemp("linear") / "linear.csv"
    write_csv(path, ["x1", "x2", "x3", "y"], np.column_stack([X, y]).tolist())
    return path, X, y


@pytest.fixture(scope="module")
def regressor(linear):
    path, _, _ = linear
    model = path.parent / "reg.npz"
    result = run(
        [
            "train",
            str(path),
            "--target",
            "y",
            "--hidden",
            "16",
            "--epochs",
            "30",
            "--out",
            str(model),
        ]
    )
    return model, result


# --------------------------------------------------------------------------- train + predict


def test_train_classifier(classifier, blobs):
    model, (code, out, err) = classifier
    _, X, _ = blobs
    assert code == 0, err
    assert "task classify (3 classes)" in out
    assert score("validation accuracy", out) >= 0.9
    assert "train: loss" in out
    assert model.is_file()
    prep = json.loads((model.parent / (model.name + PREPROCESS_SUFFIX)).read_text())
    assert prep["task"] == "classify"
    assert prep["target"] == "label"
    assert prep["features"] == ["f1", "f2", "f3", "f4"]
    assert prep["labels"] == list(LABELS)
    assert len(prep["feature_mean"]) == len(prep["feature_std"]) == 4
    # Statistics of the raw feature (over the 80% train part, so close to the full data's).
    assert abs(prep["feature_mean"][3] - X[:, 3].mean()) < 0.2 * X[:, 3].std()
    assert abs(prep["feature_std"][3] / X[:, 3].std() - 1) < 0.1


def test_predict_classifier_to_file(classifier, blobs, tmp_path):
    model, _ = classifier
    data, _, y = blobs
    preds = tmp_path / "preds.csv"
    code, out, err = run(["predict", str(model), str(data), "--out", str(preds)])
    assert code == 0, err
    assert f"wrote 240 predictions of 'label' to {preds}" in out
    rows = read_predictions(preds)
    assert rows[0] == ["label"]
    assert len(rows) == 1 + 240
    predicted = np.array([int(row[0]) for row in rows[1:]])
    assert set(predicted) <= set(LABELS)
    assert np.mean(predicted == y) >= 0.9


def test_predict_to_stdout_matches_file(classifier, blobs, tmp_path):
    model, _ = classifier
    data, _, _ = blobs
    preds = tmp_path / "preds.csv"
    assert run(["predict", str(model), str(data), "--out", str(preds)])[0] == 0
    code, out, _ = run(["predict", str(model), str(data)])
    assert code == 0
    assert out == preds.read_text()


def test_predict_matches_columns_by_name(classifier, blobs, tmp_path):
    """Feature columns in another order, no target, an extra text column: same predictions."""
    model, _ = classifier
    data, X, _ = blobs
    shuffled = write_csv(
        tmp_path / "shuffled.csv",
        ["id", "f4", "f2", "f1", "f3"],
        [[f"row-{i}", r[3], r[1], r[0], r[2]] for i, r in enumerate(X.tolist())],
    )
    _, expected, _ = run(["predict", str(model), str(data)])
    code, out, err = run(["predict", str(model), str(shuffled)])
    assert code == 0, err
    assert out == expected


def test_train_regressor(regressor, linear):
    model, (code, out, err) = regressor
    _, _, y = linear
    assert code == 0, err
    assert "task regress (one output)" in out
    assert score("validation R\\^2", out) >= 0.9
    assert "train: MSE" in out
    prep = json.loads((model.parent / (model.name + PREPROCESS_SUFFIX)).read_text())
    assert prep["task"] == "regress"
    assert "labels" not in prep
    assert abs(prep["target_mean"] - y.mean()) < 0.2 * y.std()
    assert abs(prep["target_std"] / y.std() - 1) < 0.1


def test_predict_regressor(regressor, linear, tmp_path):
    model, _ = regressor
    data, _, y = linear
    preds = tmp_path / "preds.csv"
    code, _, err = run(["predict", str(model), str(data), "--out", str(preds)])
    assert code == 0, err
    rows = read_predictions(preds)
    assert rows[0] == ["y"]
    assert len(rows) == 1 + 300
    predicted = np.array([float(row[0]) for row in rows[1:]])
    assert r2(y, predicted) >= 0.9  # in the target's own units, not standardized ones


def test_task_detection_and_override(tmp_path):
    pytest.importorskip("pyarrow")
    rng = np.random.default_rng(2)
    x = rng.normal(size=60)
    many = write_csv(
        tmp_path / "many.csv", ["x", "t"], [[v, i % 25] for i, v in enumerate(x)]
    )  # integers, 25 distinct values
    code, out, err = run(
        [
            "train",
            str(many),
            "--target",
            "t",
            "--epochs",
            "1",
            "--hidden",
            "4",
            "--out",
            str(tmp_path / "m.npz"),
        ]
    )
    assert code == 0, err
    assert "task regress" in out
    code, out, err = run(
        [
            "train",
            str(many),
            "--target",
            "t",
            "--task",
            "classify",
            "--epochs",
            "1",
            "--hidden",
            "4",
            "--out",
            str(tmp_path / "m.npz"),
        ]
    )
    assert code == 0, err
    assert "task classify (25 classes)" in out


def test_train_options_and_npz_suffix(blobs, tmp_path):
    data, _, _ = blobs
    code, out, err = run(
        [
            "train",
            str(data),
            "--target",
            "label",
            "--hidden",
            "",
            "--activation",
            "tanh",
            "--epochs",
            "2",
            "--batch-size",
            "7",
            "--lr",
            "0.05",
            "--seed",
            "3",
            "--out",
            str(tmp_path / "m"),
            "--quiet",
        ]
    )
    assert code == 0, err
    assert out.startswith("validation accuracy: ")
    assert len(out.splitlines()) == 1
    assert (tmp_path / "m.npz").is_file()
    assert (tmp_path / ("m.npz" + PREPROCESS_SUFFIX)).is_file()
    model = nc.load(str(tmp_path / "m.npz"))
    assert model.layers[0].weight.shape == (4, 3)  # --hidden '' gives a linear model


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "leaky_relu"])
def test_every_activation_trains(activation, blobs, tmp_path):
    data, _, _ = blobs
    code, out, err = run(
        [
            "train",
            str(data),
            "--target",
            "label",
            "--hidden",
            "8",
            "--activation",
            activation,
            "--epochs",
            "10",
            "--out",
            str(tmp_path / "m.npz"),
            "--quiet",
        ]
    )
    assert code == 0, err
    assert score("validation accuracy", out) >= 0.8


# --------------------------------------------------------------------------- errors


def train_error(tmp_path, content, *extra, target="y"):
    pytest.importorskip("pyarrow")
    path = tmp_path / "data.csv"
    path.write_text(content)
    code, out, err = run(
        [
            "train",
            str(path),
            "--target",
            target,
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "m.npz"),
            *extra,
        ]
    )
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    return err


def test_error_missing_file(tmp_path):
    code, _, err = run(["train", str(tmp_path / "nope.csv"), "--target", "y"])
    assert code == 2
    assert "no such file" in err
    assert "nope.csv" in err


def test_error_data_is_a_folder(tmp_path):
    code, _, err = run(["train", str(tmp_path), "--target", "y"])
    assert code == 2
    assert "is a directory" in err


def test_error_missing_target_lists_columns(tmp_path):
    err = train_error(tmp_path, "a,b,c\n1,2,3\n4,5,6\n", target="z")
    assert "target column 'z' not found" in err
    assert "available columns: a, b, c" in err


def test_error_non_numeric_cell_names_row_and_column(tmp_path):
    err = train_error(tmp_path, "a,b,y\n1,2,0\n3,abc,1\n")
    assert "line 3 (data row 2)" in err
    assert "column 'b'" in err
    assert "non-numeric value 'abc'" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("\n\n", "is empty"),
        ("a,y\n", "no data rows"),
        ("a,y\n\n\n", "no data rows"),
        ("a,b,y\n1,2,0\n3,inf,1\n", "not finite"),
        ("a,b,y\n1,2,0\n3,4\n", "row 2 has 2 fields but the header has 3 columns"),
        ("a,a,y\n1,2,0\n3,4,1\n", "'a' appears more than once"),
        ("a,,y\n1,2,0\n3,4,1\n", "header column 2 has an empty name"),
        ("y\n1\n2\n", "no feature columns"),
        ("a,y\n1,0\n", "need at least 2"),
    ],
)
def test_error_bad_csv(tmp_path, content, message):
    assert message in train_error(tmp_path, content)


def test_error_not_utf8(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,y\n\xff\xfe,1\n")
    code, _, err = run(["train", str(path), "--target", "y"])
    assert code == 2
    assert "not UTF-8" in err


def test_error_single_class(tmp_path):
    err = train_error(tmp_path, "a,y\n1,3\n2,3\n3,3\n", "--task", "classify")
    assert "single value (3)" in err


def test_error_training_diverges(linear, tmp_path):
    data, _, _ = linear
    code, _, err = run(
        [
            "train",
            str(data),
            "--target",
            "y",
            "--lr",
            "1000",
            "--epochs",
            "5",
            "--out",
            str(tmp_path / "m.npz"),
            "--quiet",
        ]
    )
    assert code == 2
    assert "training diverged" in err
    assert "--lr 1000" in err
    assert not (tmp_path / "m.npz").exists()


def test_error_output_folder_missing(tmp_path):
    err = train_error(tmp_path, "a,y\n1,3\n2,4\n", "--out", str(tmp_path / "no" / "m.npz"))
    assert "does not exist" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "d.csv"], "--target"),
        (["train", "d.csv", "--target", "y", "--hidden", "12,x"], "--hidden"),
        (["train", "d.csv", "--target", "y", "--hidden", "0"], "--hidden"),
        (["train", "d.csv", "--target", "y", "--activation", "gelu"], "--activation"),
        (["train", "d.csv", "--target", "y", "--task", "cluster"], "--task"),
        (["train", "d.csv", "--target", "y", "--epochs", "0"], "--epochs"),
        (["train", "d.csv", "--target", "y", "--batch-size", "x"], "--batch-size"),
        (["train", "d.csv", "--target", "y", "--lr", "-1"], "--lr"),
        (["train", "d.csv", "--target", "y", "--seed", "-1"], "--seed"),
        (["demo", "--seed", "x"], "--seed"),
        (["predict", "m.npz"], "data"),
        (["fly"], "invalid choice"),
    ],
)
def test_error_bad_arguments(argv, message):
    code, _, err = run(argv)
    assert code == 2
    assert message in err
    assert "usage: neurocore" in err


def test_error_predict_missing_model(blobs, tmp_path):
    data, _, _ = blobs
    code, _, err = run(["predict", str(tmp_path / "none.npz"), str(data)])
    assert code == 2
    assert "no such model file" in err


def test_error_predict_missing_preprocessing(classifier, blobs, tmp_path):
    model, _ = classifier
    data, _, _ = blobs
    lonely = tmp_path / "lonely.npz"
    lonely.write_bytes(model.read_bytes())
    code, _, err = run(["predict", str(lonely), str(data)])
    assert code == 2
    assert f"preprocessing file {lonely}{PREPROCESS_SUFFIX} not found" in err


def test_error_predict_damaged_preprocessing(classifier, blobs, tmp_path):
    model, _ = classifier
    data, _, _ = blobs
    copy = tmp_path / "copy.npz"
    copy.write_bytes(model.read_bytes())
    sidecar = tmp_path / ("copy.npz" + PREPROCESS_SUFFIX)
    sidecar.write_text("{not json")
    code, _, err = run(["predict", str(copy), str(data)])
    assert code == 2
    assert "not valid JSON" in err
    sidecar.write_text('{"format": "something else"}')
    code, _, err = run(["predict", str(copy), str(data)])
    assert code == 2
    assert "not a neurocore preprocessing file" in err


def test_error_predict_damaged_model(classifier, blobs, tmp_path):
    model, _ = classifier
    data, _, _ = blobs
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not an npz archive")
    sidecar = model.parent / (model.name + PREPROCESS_SUFFIX)
    (tmp_path / ("broken.npz" + PREPROCESS_SUFFIX)).write_text(sidecar.read_text())
    code, _, err = run(["predict", str(broken), str(data)])
    assert code == 2
    assert "cannot load model" in err


def test_error_predict_missing_feature_column(classifier, tmp_path):
    model, _ = classifier
    data = write_csv(tmp_path / "partial.csv", ["f1", "f3", "label"], [[1, 2, 10]])
    code, _, err = run(["predict", str(model), str(data)])
    assert code == 2
    assert "has no column 'f2', 'f4'" in err
    assert "available columns: f1, f3, label" in err


def test_error_predict_non_numeric_feature(classifier, tmp_path):
    model, _ = classifier
    data = write_csv(tmp_path / "bad.csv", ["f1", "f2", "f3", "f4"], [[1, 2, 3, 4], [1, "?", 3, 4]])
    code, _, err = run(["predict", str(model), str(data)])
    assert code == 2
    assert "line 3 (data row 2), column 'f2'" in err


# --------------------------------------------------------------------------- info, demo, entry


def test_info():
    code, out, _ = run(["info"])
    assert code == 0
    info = nc.cpu_info()
    assert f"version:      {nc.__version__}" in out
    assert f"kernels:      {info['isa']} " in out
    assert f"threads:      {info['num_threads']}" in out
    assert f"OpenMP:       {'yes' if info['openmp'] else 'no'}" in out


def test_python_m_neurocore_info():
    proc = subprocess.run(
        [sys.executable, "-m", "neurocore", "info"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert nc.__version__ in proc.stdout
    assert nc.cpu_info()["isa"] in proc.stdout


def test_python_m_neurocore_error_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "neurocore",
            "train",
            str(tmp_path / "missing.csv"),
            "--target",
            "y",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "neurocore train: error: no such file" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_help_mentions_preprocessing_file():
    code, out, _ = run(["train", "--help"])
    assert code == 0
    assert PREPROCESS_SUFFIX in out
    code, out, _ = run(["--version"])
    assert code == 0
    assert out.strip() == f"neurocore {nc.__version__}"


def test_console_script_is_declared():
    scripts = metadata.entry_points(group="console_scripts")
    assert [ep.value for ep in scripts if ep.name == "neurocore"] == ["neurocore.cli:main"]


def test_demo_without_arguments_reaches_95_percent():
    code, out, err = run([])
    assert code == 0, err
    assert "64-128-64-10 ReLU MLP" in out
    assert score("test accuracy", out) >= 0.95
    assert score("wall time", out) > 0


def test_demo_quiet():
    code, out, _ = run(["demo", "--quiet", "--epochs", "1", "--seed", "1"])
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("test accuracy: ")
    assert lines[1].startswith("wall time: ")
