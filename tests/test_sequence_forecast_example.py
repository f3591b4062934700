"""examples/sequence_forecast.py runs from any directory (--quick: a short training) and reports both parts;
the full run's numbers (LSTM against the linear AR baseline, GRU accuracy) are in benchmarks/RESULTS.md."""
import importlib.util
import pathlib
import re
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "examples" / "sequence_forecast.py"


def test_sequence_forecast_quick(tmp_path):
    out = tmp_path / "plots" / "forecast.png"
    out.parent.mkdir()
    run = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lstm, ar = map(float, re.search(r"LSTM ([\d.]+)\s+linear AR ([\d.]+)", run.stdout).groups())
    accuracy = float(re.search(r"test accuracy ([\d.]+)", run.stdout).group(1))
    assert 0 < lstm < 1.0 and 0 < ar < 1.0   # the windows' variance is ~0.5: both learned something
    assert accuracy > 0.5
    assert out.exists() == (importlib.util.find_spec("matplotlib") is not None)
