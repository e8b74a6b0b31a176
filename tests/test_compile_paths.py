"""``nnmip compile`` checks every numbered model file before it builds any model (bound tightening can take long)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_cases import run
from conftest import EXAMPLES

from nnmip.drivers import compile as compile_mod
from nnmip.drivers.task import load_program

PROGRAM = EXAMPLES / "verify_bcw.nnmip"


def test_a_numbered_path_that_is_a_folder_is_refused_before_any_model_is_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "v.q1.lp").mkdir()

    def built(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was built before the output paths were checked")

    monkeypatch.setattr(compile_mod, "program_questions", built)
    code, _, err = run(["compile", str(PROGRAM), "-o", "v.lp"], capsys)
    assert code == 2
    assert "E0610" in err
    assert "v.q1.lp" in err


def test_the_planned_files_are_the_files_written() -> None:
    cp = load_program(PROGRAM)
    planned = compile_mod.slot_paths("v.lp", compile_mod.question_slots(cp))
    assert planned == compile_mod.question_paths("v.lp", compile_mod.program_questions(cp))
    assert len(planned) == 3
