"""The documentation's runnable pages execute as written (epochs shortened), like the README's tour, so the
site cannot drift from the API. Each page's Python blocks run in order in one namespace."""
import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
# Pages whose Python blocks form a complete program (the concept pages show fragments of their examples,
# which tests/test_examples.py runs whole).
RUNNABLE = ["index.md", "getting-started.md", "concepts/training.md"]


@pytest.mark.parametrize("page", RUNNABLE)
def test_page_code_runs(page, tmp_path, monkeypatch):
    text = (DOCS / page).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    blocks = [b for b in blocks if "--8<--" not in b]   # included example files run in test_examples
    assert blocks, f"{page} has no Python code"
    code = "\n".join(blocks)
    code = re.sub(r"epochs=\d+", "epochs=2", code).replace("verbose=1", "verbose=0")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, str(DOCS / page), "exec"), namespace)
    assert "model" in namespace
