"""MkDocs hook: run the examples while the site builds; their pictures and printed output go into the site.

Generated data is never committed: each build runs every ``examples/<name>.py`` that takes ``--out`` with
``--out <temporary folder>``, adds the PNG to the site as ``img/<name>.png`` and replaces ``<!-- example-output: <name> -->`` in a page with what the
example printed, so the numbers on a page are those of its picture; ``<!-- cli-help: <command> -->`` becomes
the help text of ``neurocore <command>``. ``NEUROCORE_DOCS_QUICK=1`` passes
``--quick`` (CI: tiny settings, the build checks that everything runs; the pictures are then not the real
ones). Results are reused while a script is unchanged (``mkdocs serve`` rebuilds). A failing example fails
the build. Needs neurocore installed, with matplotlib and scikit-learn (``pip install ".[docs]"``).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
# Every example that draws a picture (takes --out): a new one is picked up without editing this file.
EXAMPLES = tuple(sorted(p.stem for p in (ROOT / "examples").glob("*.py") if '"--out"' in p.read_text()))
MARKER = re.compile(r"<!-- example-output: (\w+) -->")
CLI_MARKER = re.compile(r"<!-- cli-help:([\w ]*) -->")   # `neurocore <command> --help`, as the installed CLI prints it

_out_dir = Path(tempfile.mkdtemp(prefix="neurocore-docs-"))
_cache: dict[str, tuple[tuple, str]] = {}   # name -> ((script mtime, quick), printed output)


def _quick() -> bool:
    return os.environ.get("NEUROCORE_DOCS_QUICK", "") not in ("", "0")


def _run(name: str) -> str:
    script = ROOT / "examples" / f"{name}.py"
    key = (script.stat().st_mtime_ns, _quick())
    if name in _cache and _cache[name][0] == key:
        return _cache[name][1]
    cmd = [sys.executable, str(script), "--out", str(_out_dir / f"{name}.png")] + (["--quick"] if _quick() else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=_out_dir)
    if proc.returncode != 0:
        raise PluginError(f"examples/{name}.py failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    output = "\n".join(line for line in proc.stdout.splitlines() if not line.startswith("wrote "))
    _cache[name] = (key, output)
    return output


def on_files(files, config):
    for name in EXAMPLES:
        _run(name)
        files.append(File.generated(config, f"img/{name}.png", abs_src_path=str(_out_dir / f"{name}.png")))
    return files


def on_page_markdown(markdown, page, config, files):
    def output(match):
        name = match.group(1)
        if name not in EXAMPLES:
            raise PluginError(f"{page.file.src_uri}: no example named {name!r} (known: {', '.join(EXAMPLES)})")
        note = "  (run with --quick for this build: tiny settings, not the real numbers)" if _quick() else ""
        return f"```text\n$ python examples/{name}.py{note}\n{_run(name)}\n```"

    def cli_help(match):
        command = match.group(1).split()
        proc = subprocess.run([sys.executable, "-m", "neurocore", *command, "--help"], capture_output=True,
                              text=True, env={**os.environ, "COLUMNS": "100"})
        if proc.returncode != 0:
            raise PluginError(f"neurocore {' '.join(command)} --help failed:\n{proc.stderr}")
        return f"```text\n$ neurocore {' '.join([*command, '--help'])}\n{proc.stdout.rstrip()}\n```"

    return CLI_MARKER.sub(cli_help, MARKER.sub(output, markdown))


def on_shutdown():
    shutil.rmtree(_out_dir, ignore_errors=True)
