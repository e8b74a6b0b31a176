"""The built wheel works on its own: install it into a fresh virtual environment and, from outside the source
tree, parse and check the BCW example with the installed package (its grammar is found inside the wheel)."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.slow

PROBE = r"""
import json, sys
from importlib import resources
import nnmip
from nnmip.syntax import parse_file
from nnmip.syntax.parser import grammar_text
grammar = resources.files("nnmip").joinpath("grammar").joinpath("nnmip.lark")
program = parse_file(sys.argv[1])
print(json.dumps({
    "module": nnmip.__file__,
    "version": nnmip.__version__,
    "grammar_in_package": grammar.is_file(),
    "grammar_matches": grammar.is_file() and grammar.read_text(encoding="utf-8") == grammar_text(),
    "statements": [type(s).__name__ for s in program.items],
    "networks": [s.name for s in program.items if type(s).__name__ == "NetworkStmt"],
}))
"""


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_wheel_installs_and_parses_outside_the_source_tree(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)], cwd=tmp_path)
    (wheel,) = wheels.glob("nnmip-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    assert "nnmip/grammar/nnmip.lark" in names
    assert "nnmip/__init__.py" in names
    assert "nnmip/syntax/parser.py" in names
    assert not any(n.startswith("tests/") for n in names)

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], cwd=tmp_path)
    py = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    # the dependencies come from the running interpreter's site-packages (appended after the venv's own,
    # so the wheel's nnmip comes first and an editable checkout on that path is never imported)
    purelib = Path(run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       cwd=tmp_path).stdout.strip())
    deps = [p for p in {*site.getsitepackages(), sysconfig.get_paths()["purelib"],
                        sysconfig.get_paths()["platlib"]} if Path(p).is_dir()]
    (purelib / "_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    # --ignore-installed: the running environment (seen through the .pth file) may hold nnmip already
    run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "-q", str(wheel)],
        cwd=tmp_path)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    probe = json.loads(run([str(py), "-c", PROBE, str(EXAMPLES / "bcw.nnmip")], cwd=outside).stdout)
    assert Path(probe["module"]).resolve().is_relative_to(venv.resolve()), probe["module"]
    assert not Path(probe["module"]).resolve().is_relative_to(ROOT.resolve())
    assert probe["grammar_in_package"]
    assert probe["grammar_matches"]
    assert probe["statements"] == ["DataStmt", "NetworkStmt", "TrainStmt", "SolveStmt"]
    assert probe["networks"] == ["bdnn"]

    script = venv / ("Scripts" if os.name == "nt" else "bin") / "nnmip"
    out = run([str(script), "check", str(EXAMPLES / "bcw.nnmip")], cwd=outside).stdout
    assert "ok (1 network(s), 1 training task(s)" in out
