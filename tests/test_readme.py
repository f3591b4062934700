"""The README's Python tour runs as written (epochs shortened), so the documented API cannot drift."""
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2
    code = "\n".join(blocks)
    code = re.sub(r"epochs=\d+", "epochs=2", code).replace("verbose=1", "verbose=0")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["hist"]["loss"] and (tmp_path / "digits.npz").exists()
