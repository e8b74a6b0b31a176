"""``--json -``: standard output holds one JSON document and nothing else, for results and for errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_cases import SMALL, SMALL_DATA
from conftest import EXAMPLES

from nnmip.cli import main


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    Path("d.csv").write_text(SMALL_DATA)
    Path("small.nnmip").write_text(SMALL)
    Path("bad.nnmip").write_text(SMALL + "}\n")
    return tmp_path


def json_out(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object], str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, json.loads(out), err       # the whole of standard output is one JSON document


def test_compile_stats_go_to_standard_error(project: Path, capsys) -> None:
    code, doc, err = json_out(["compile", str(EXAMPLES / "verify_bcw.nnmip"), "-o", "v.lp", "--stats", "--json", "-"],
                              capsys)
    assert code == 0
    assert len(doc["files"]) == 3      # type: ignore[arg-type]
    assert "v.q0.lp: variables" in err


def test_compress_summary_goes_to_standard_error(project: Path, capsys) -> None:
    code, doc, err = json_out(["compress", "--onnx", str(EXAMPLES / "data" / "verify_bcw.onnx"), "--domain", "1",
                               "10", "-o", "c.onnx", "--samples", "100", "--json", "-"], capsys)
    assert code == 0
    assert "units_before" in doc
    assert "units " in err


def test_solve_relax_line_goes_to_standard_error(project: Path, capsys) -> None:
    code, doc, err = json_out(["solve", "small.nnmip", "--relax", "--json", "-"], capsys)
    assert code == 0
    assert doc["status"] == "optimal"
    assert "relaxation (optimal)" in err


@pytest.mark.parametrize("argv", [
    ["solve", "small.nnmip", "--json", "-", "--time-limit", "nan"],
    ["solve", "bad.nnmip", "--json", "-"],
    ["check", "bad.nnmip", "--json", "-"],
    ["compile", "bad.nnmip", "-o", "m.lp", "--json", "-"],
    ["verify", "--onnx", "nope.onnx", "--point", "1,2", "--linf", "0.1", "--json", "-"],
    ["verify", "bad.nnmip", "--json", "-"],
    ["predict", "nope.npz", "d.csv", "--json", "-"],
    ["compress", "--npz", "nope.npz", "-o", "c.npz", "--json", "-"],
    ["solve", "small.nnmip", "--json", "-", "--bogus"],
    ["solve", "small.nnmip", "--json", "-", "--save-weights", "d.csv"],
])
def test_an_error_is_a_json_document_on_standard_output(project: Path, capsys, argv: list[str]) -> None:
    code, doc, err = json_out(argv, capsys)
    assert code == 2
    assert doc["status"] == "error"
    errors = doc["errors"]
    assert isinstance(errors, list)
    assert errors
    assert all({"code", "message", "file", "line", "column", "notes"} <= set(e) for e in errors)
    assert f"error[{errors[0]['code']}]" in err
