"""The user docs stay true: examples parse, check and run; every error code and subcommand is documented.

* every ```nnmip block of the core docs parses, formats back to the same program, and checks when the files it
  names exist (relative to ``examples/``, where the data live);
* docs/language.md holds ``grammar/nnmip.lark`` verbatim;
* every error or warning code used in ``nnmip/`` has an entry in docs/errors.md, and every entry is still used;
* every subcommand of ``nnmip`` and each of its options appear in docs/cli.md, as do the fields of the JSON
  written by ``nnmip solve --json``;
* the ```python blocks of docs/python.md run, in order, in one namespace.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import pytest

from nnmip.check import check
from nnmip.cli import build_parser, main
from nnmip.syntax import format_program, parse

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"
CORE_DOCS = ("language.md", "errors.md", "cli.md", "python.md")
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)
_CODE = re.compile(r"""["']([EW]\d{4})["']""")


def blocks(doc: str, lang: str) -> list[tuple[int, str]]:
    """(line number, text) of every fenced block of language ``lang`` in ``docs/<doc>``."""
    text = (DOCS / doc).read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(2)) for m in _FENCE.finditer(text) if m.group(1) == lang]


NNMIP_BLOCKS = [pytest.param(src, id=f"{doc}:{line}") for doc in CORE_DOCS for line, src in blocks(doc, "nnmip")]


def test_there_are_examples() -> None:
    assert len(blocks("language.md", "nnmip")) >= 5
    assert len(blocks("python.md", "python")) >= 5


@pytest.mark.parametrize("src", NNMIP_BLOCKS)
def test_nnmip_example_parses_and_checks(src: str) -> None:
    prog = parse(src, "example.nnmip")
    assert parse(format_program(prog)) == prog
    paths = re.findall(r'(?:csv|npz|load)\(\s*"([^"]+)"', src)
    if all((EXAMPLES / p).is_file() for p in paths):
        checked = check(prog, EXAMPLES)
        assert checked.networks or checked.tasks


def test_language_doc_holds_the_grammar() -> None:
    grammar = (ROOT / "grammar" / "nnmip.lark").read_text(encoding="utf-8")
    copies = [src for _, src in blocks("language.md", "lark")]
    assert copies == [grammar if grammar.endswith("\n") else grammar + "\n"]


def _source_codes() -> set[str]:
    codes: set[str] = set()
    for path in (ROOT / "nnmip").rglob("*.py"):
        codes.update(_CODE.findall(path.read_text(encoding="utf-8")))
    return codes


def _documented_codes() -> set[str]:
    text = (DOCS / "errors.md").read_text(encoding="utf-8")
    return set(re.findall(r"^### ([EW]\d{4})\b", text, re.M))


def test_every_code_is_documented() -> None:
    missing = sorted(_source_codes() - _documented_codes())
    assert not missing, f"add these codes to docs/errors.md: {missing}"


def test_no_documented_code_is_stale() -> None:
    stale = sorted(_documented_codes() - _source_codes())
    assert not stale, f"docs/errors.md documents codes nnmip no longer uses: {stale}"


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_subcommand_and_option_is_documented() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    subs = _subcommands()
    assert {"check", "compile", "solve"} <= set(subs)
    for name, parser in subs.items():
        assert re.search(rf"^## `nnmip {name}\b", text, re.M), f"docs/cli.md has no section for 'nnmip {name}'"
        for action in parser._actions:
            for opt in action.option_strings:
                if opt not in ("-h", "--help"):
                    assert f"`{opt}" in text, f"docs/cli.md does not document {name} {opt}"
    for opt in ("--version", "--log-level"):
        assert f"`{opt}" in text
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 130 |"):
        assert code in text


def _keys(d: dict[str, object], prefix: str = "") -> set[str]:
    out = set()
    for k, v in d.items():
        out.add(k)
        if isinstance(v, dict) and k in ("model", "metrics", "task", "data"):
            out |= _keys(v)  # type: ignore[arg-type]
    return out


def test_solve_json_fields_are_documented(tmp_path: Path) -> None:
    src = tmp_path / "tiny.nnmip"
    src.write_text(f'''
data d = csv("{EXAMPLES / 'data' / 'breast-cancer-wisconsin.csv'}", delimiter=";", label=-1)
         split(train=0.5, validation=0.25, test=0.25, seed=0)
network n(x: 9) {{ h = dense(x, 1, weights=real[-1, 1], bias=real[-9, 9]); a = step(h)
                   o = dense(a, 2, weights=real[-1, 1], bias=real[-1, 1]); y = step(o) }}
train n on d {{ subset = first(6) }}
solve with highs(time_limit=20)
''', encoding="utf-8")
    out = tmp_path / "r.json"
    assert main(["solve", str(src), "-q", "--json", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["verified"] is True
    assert len(result["data"]["train"]) == 6
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    undocumented = sorted(k for k in _keys(result) if f"`{k}`" not in text)
    assert not undocumented, f"docs/cli.md does not describe the JSON fields {undocumented}"


def test_python_doc_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "examples").symlink_to(EXAMPLES, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_python"}
    for line, src in blocks("python.md", "python"):
        code = compile(src, f"docs/python.md:{line}", "exec")
        exec(code, namespace)  # noqa: S102 - the doc's own examples
    assert os.path.exists("knapsack.lp")


def test_verification_doc_python_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The Python block of docs/verification.md runs from a folder holding ``examples/`` and prints what its
    comments say."""
    (tmp_path / "examples").symlink_to(EXAMPLES, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    (line, src), = blocks("verification.md", "python")
    exec(compile(src, f"docs/verification.md:{line}", "exec"), {"__name__": "docs_verification"})  # noqa: S102
    shown = [ln.split("#", 1)[1].strip() for ln in src.splitlines() if ln.startswith("print(") and "#" in ln]
    assert capsys.readouterr().out.splitlines() == shown


def _self_contained_verify_blocks() -> list[object]:
    out = []
    for line, src in blocks("language.md", "nnmip"):
        if re.search(r"^verify ", src, re.M) and not re.search(r'(?:csv|npz|load|onnx|row)\(', src):
            out.append(pytest.param(src, id=f"language.md:{line}"))
    return out


@pytest.mark.parametrize("src", _self_contained_verify_blocks())
def test_language_doc_verify_examples_get_an_answer(src: str, tmp_path: Path) -> None:
    """Every verify example of docs/language.md that needs no data file gets a definite answer (exit 0)."""
    f = tmp_path / "example.nnmip"
    f.write_text(src, encoding="utf-8")
    out = tmp_path / "out.json"
    assert main(["verify", str(f), "-q", "--json", str(out)]) == 0
    results = json.loads(out.read_text(encoding="utf-8"))["results"]
    assert results
    assert all(r["result"] in ("certified", "counterexample") for r in results), results
    assert not any(r["timed_out"] for r in results)
