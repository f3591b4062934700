"""Every example runs from any directory with tiny settings (--quick), so none can rot.

Each plotting example is copied into a temporary folder and run from another one without --out: the PNG must
appear next to the copied script (paths relative to the script, not the working directory); --out is checked
on one of them (they share the same argparse line). The examples import the installed neurocore, like a
user's script.
"""
import pathlib
import shutil
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

SCRIPTS = {p.stem: p.read_text() for p in EXAMPLES.glob("*.py")}
# Every example that draws (takes --out) runs here; new ones are picked up without editing this file.
PLOTTING = sorted(name for name, source in SCRIPTS.items() if '"--out"' in source)
# A line the output must contain, for the examples whose output is known here.
EXPECTED = {
    "perceptron": "relative difference",
    "activations": "sigmoid derivative from backward",
    "autoencoder": "logistic regression on autoencoder codes",
    "transfer": "from scratch on the same 50 images: mean",
    "overfitting": "early stopping",
    "vanishing_gradients": "first-layer / last-layer gradient norm",
    "convolution": "distinct non-zero values 9",
    "cnn_digits": "test accuracy",
    "sequence_forecast": "linear AR",
}


def run(script, cwd, *args):
    proc = subprocess.run([sys.executable, str(script), "--quick", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def assert_png(path):
    assert path.is_file(), f"{path} was not written"
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000, f"{path} is not a plot ({len(data)} bytes)"


@pytest.mark.parametrize("name", PLOTTING)
def test_example_writes_its_png_from_any_directory(name, tmp_path):
    pytest.importorskip("matplotlib")
    if "sklearn" in SCRIPTS[name]:
        pytest.importorskip("sklearn")
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    script = pathlib.Path(shutil.copy(EXAMPLES / f"{name}.py", home))

    out = run(script, elsewhere)            # default output: next to the script
    assert EXPECTED.get(name, "") in out
    assert_png(home / f"{name}.png")
    assert not list(elsewhere.iterdir()), "the example wrote into the working directory"


def test_out_names_the_picture(tmp_path):
    pytest.importorskip("matplotlib")
    target = tmp_path / "out" / "picture.png"
    target.parent.mkdir()
    run(EXAMPLES / "vanishing_gradients.py", tmp_path, "--out", str(target))
    assert_png(target)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out", "picture.png"]


def test_quickstart_runs_from_any_directory(tmp_path):
    out = run(EXAMPLES / "quickstart.py", tmp_path)
    accuracy = float(out.rsplit("test accuracy:", 1)[1].split()[0])
    assert 0.5 < accuracy <= 1.0   # 2 epochs already learn the digits well past chance (0.1)
    assert not list(tmp_path.iterdir())


def test_every_drawing_example_has_a_quick_mode_and_is_run_here():
    assert set(EXPECTED) <= set(PLOTTING)
    missing = [name for name in [*PLOTTING, "quickstart"] if '"--quick"' not in SCRIPTS[name]]
    assert not missing, f"examples without --quick (the tests run them with it): {missing}"
