"""docs/training.md stays true: its .nnmip blocks parse and check, its Python blocks run in order."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nnmip.check import check
from nnmip.syntax import format_program, parse

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "training.md"
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)


def blocks(lang: str) -> list[tuple[int, str]]:
    text = DOC.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(2)) for m in _FENCE.finditer(text) if m.group(1) == lang]


@pytest.mark.parametrize("src", [pytest.param(s, id=f"line {n}") for n, s in blocks("nnmip")])
def test_training_doc_programs_check(src: str) -> None:
    prog = parse(src, "example.nnmip")
    assert parse(format_program(prog)) == prog
    cp = check(prog, ROOT / "examples")
    assert cp.tasks[0].strategy.kind in ("split", "local_search", "one_vs_one", "one_vs_rest")


@pytest.mark.slow  # about 40 s
def test_training_doc_python_runs() -> None:
    namespace: dict[str, object] = {"__name__": "docs_training"}
    found = blocks("python")
    assert len(found) >= 2
    for line, src in found:
        exec(compile(src, f"docs/training.md:{line}", "exec"), namespace)  # noqa: S102 - the doc's own examples


def test_split_example_file_matches_the_doc() -> None:
    example = parse((ROOT / "examples" / "bcw_split.nnmip").read_text(encoding="utf-8"), "bcw_split.nnmip")
    cp = check(example, ROOT / "examples")
    opts = dict(cp.tasks[0].strategy.options)
    assert cp.tasks[0].strategy.kind == "split"
    assert opts["max_splits"] == 20
    assert cp.tasks[0].eps == 0.05
