"""Error files: every ``tests/errors/*.nnmip`` names the diagnostics it must produce.

Each file starts with one or more ``# expect: E0xxx at LINE:COL`` lines (a file with several problems lists
them all: the checker must report every one at once, and nothing else) and optionally ``# command: solve`` for
problems that only show when the data are loaded or the model is built.  A problem inside a data file is expected
at that file's own row and column: ``# expect: E0303 at data/nan.csv:3:2`` (with a note naming the statement that
reads the file).  The command must exit with code 2, print ``file:line:col: error[CODE]`` for each expected
diagnostic, for the ``.nnmip`` file the source line with a caret under the column, and never a Python
traceback.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import BCW_CSV, ROOT

from nnmip.backends import is_installed
from nnmip.cli import main

ERRORS = ROOT / "tests" / "errors"
FILES = sorted(ERRORS.glob("*.nnmip"))
_EXPECT = re.compile(r"^# expect: (E\d{4}) at (?:(\S+):)?(\d+):(\d+)\s*$")
_COMMAND = re.compile(r"^# command: (\w+)\s*$")
_HEAD = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): error\[(?P<code>E\d{4})\]: (?P<msg>.+)$")


@dataclass
class Expectation:
    command: str
    diagnostics: list[tuple[str, int, int]]           # in the .nnmip file
    elsewhere: list[tuple[str, str, int, int]]        # (code, file, line, column) in the files it names


def expectation(path: Path) -> Expectation:
    diags: list[tuple[str, int, int]] = []
    elsewhere: list[tuple[str, str, int, int]] = []
    command = "check"
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if m := _EXPECT.match(line):
            if m.group(2):
                elsewhere.append((m.group(1), m.group(2), int(m.group(3)), int(m.group(4))))
            else:
                diags.append((m.group(1), int(m.group(3)), int(m.group(4))))
        elif m := _COMMAND.match(line):
            command = m.group(1)
    return Expectation(command, diags, elsewhere)


def reported(stderr: str, name: str, elsewhere: list[tuple[str, str, int, int]] | None = None
             ) -> list[tuple[str, int, int]]:
    """The diagnostics located in ``name``; those in other files must be exactly ``elsewhere``."""
    out = []
    other = []
    for line in stderr.splitlines():
        m = _HEAD.match(line)
        if m:
            if m.group("file") == name:
                out.append((m.group("code"), int(m.group("line")), int(m.group("col"))))
            else:
                other.append((m.group("code"), m.group("file"), int(m.group("line")), int(m.group("col"))))
    assert sorted(other) == sorted(elsewhere or []), stderr
    if other:   # a diagnostic in a data file names the statement that reads it
        assert f"note: the file is read for {name}:" in stderr, stderr
    return out


def assert_rendered(stderr: str, source: str, expected: list[tuple[str, int, int]], name: str) -> None:
    """Every diagnostic is followed by its numbered source line and a caret starting under its column."""
    lines = stderr.splitlines()
    src = source.splitlines()
    for code, line, col in expected:
        head = next(i for i, t in enumerate(lines) if t.startswith(f"{name}:{line}:{col}: error[{code}]"))
        msg = lines[head].split("]: ", 1)[1]
        assert msg, msg
        assert msg[0] == msg[0].lower(), msg
        assert not msg.endswith("."), msg
        gutter = f"{line:>4} | "
        assert lines[head + 1] == gutter + src[line - 1]
        caret = lines[head + 2]
        assert set(caret.strip()) == {"^"}, caret
        assert caret.index("^") == len(gutter) + col - 1, (caret, col)


def test_every_error_file_names_its_expectation() -> None:
    assert len(FILES) >= 30
    for f in FILES:
        exp = expectation(f)
        assert exp.diagnostics or exp.elsewhere, f"{f.name} has no '# expect:' line"
        assert exp.command in ("check", "solve"), f.name


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_error_file(path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    exp = expectation(path)
    monkeypatch.chdir(ERRORS)
    argv = [exp.command, path.name] + (["--solver", "highs", "-q"] if exp.command == "solve" else [])
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    got = reported(err, path.name, exp.elsewhere)
    assert sorted(got) == sorted(exp.diagnostics), err
    assert_rendered(err, path.read_text(encoding="utf-8"), exp.diagnostics, path.name)


@pytest.mark.parametrize("name", ["syntax_eof.nnmip", "several_errors.nnmip", "nan_data.nnmip"])
def test_error_file_in_a_real_process(name: str) -> None:
    """The installed command: exit 2, the located diagnostics on stderr, no traceback anywhere."""
    path = ERRORS / name
    exp = expectation(path)
    argv = [sys.executable, "-m", "nnmip.cli", exp.command, name] + (["-q"] if exp.command == "solve" else [])
    proc = subprocess.run(argv, cwd=ERRORS, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert sorted(reported(proc.stderr, name, exp.elsewhere)) == sorted(exp.diagnostics), proc.stderr
    assert_rendered(proc.stderr, path.read_text(encoding="utf-8"), exp.diagnostics, name)


def test_errors_json_lists_every_diagnostic(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.chdir(ERRORS)
    out = tmp_path / "errors.json"
    assert main(["check", "several_errors.nnmip", "--json", str(out)]) == 2
    capsys.readouterr()
    data = json.loads(out.read_text())
    assert data["status"] == "error"
    got = sorted((e["code"], e["line"], e["column"]) for e in data["errors"])
    assert got == sorted(expectation(ERRORS / "several_errors.nnmip").diagnostics)


def test_missing_model_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["check", str(tmp_path / "nope.nnmip")]) == 2
    err = capsys.readouterr().err
    assert "error[E0002]" in err
    assert "nope.nnmip" in err
    assert "Traceback" not in err


def test_unknown_solver_on_the_command_line(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ERRORS)
    assert main(["solve", "width_mismatch.nnmip", "--solver", "cplex", "-q"]) == 3
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "error[E0503]: unknown solver 'cplex'"   # no made-up file location
    assert "error[E0503]" in err
    assert "unknown solver 'cplex'" in err


@pytest.mark.skipif(not is_installed("gurobi"), reason="gurobipy is not installed")
def test_gurobi_size_limited_licence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A model above the size-limited licence (2000 variables / rows) ends with exit 3 and E0506."""
    shutil.copy(BCW_CSV, tmp_path / "bcw.csv")
    (tmp_path / "big.nnmip").write_text(
        'data bcw = csv("bcw.csv", delimiter=";", label=-1)\n'
        "network n(x: 9) {\n    h = dense(x, 8, weights=real[-1, 1])\n    a = step(h)\n"
        "    o = dense(a, 2, weights=int[-1, 1])\n    y = step(o)\n}\n"
        "train n on bcw { loss = hamming; subset = random(300, seed=0) }\n"
        "solve with gurobi(time_limit=5)\n", encoding="utf-8")
    code = main(["solve", str(tmp_path / "big.nnmip"), "-q"])
    err = capsys.readouterr().err
    if code in (0, 1):
        pytest.skip("this Gurobi licence is not size-limited")
    assert code == 3, err
    assert "error[E0506]" in err
    assert "help:" in err
    assert "Traceback" not in err
