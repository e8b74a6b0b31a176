"""docs/formulations.md is the project's mathematical reference: it covers every formulation in the code, every
citation of it points at a section that exists, and nothing in the repository points at a document outside it."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "formulations.md"
FORMULATIONS = ROOT / "nnmip" / "formulations"
_SECTION = re.compile(r"^## (\d+)\. ", re.M)
_CITE = re.compile(r"docs/formulations\.md ((?:§\d+(?:-§\d+)?(?:, | and )?)+)")


def sections() -> set[int]:
    return {int(n) for n in _SECTION.findall(DOC.read_text(encoding="utf-8"))}


def math_functions() -> list[tuple[str, str]]:
    """(module file, function) of every function in nnmip/formulations whose docstring has a Math section."""
    out = []
    for path in sorted(FORMULATIONS.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                doc = ast.get_docstring(node) or ""
                if re.search(r"^Math\n-+$", doc, re.M):
                    out.append((path.name, node.name))
    return out


def test_sections_are_numbered_in_order() -> None:
    numbers = [int(n) for n in _SECTION.findall(DOC.read_text(encoding="utf-8"))]
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) >= 15


def test_there_are_formulations_to_cover() -> None:
    assert len(math_functions()) >= 20


@pytest.mark.parametrize(("module", "name"), math_functions())
def test_every_formulation_is_in_the_reference(module: str, name: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    assert f"`{name}`" in text, f"docs/formulations.md does not mention {module}:{name} (add it to the index)"


def _tracked_text_files() -> list[Path]:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False).stdout.split()
    if not files:  # not a git checkout (an unpacked sdist): every file
        return [p for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts]
    return [ROOT / f for f in files if (ROOT / f).suffix in {".py", ".md", ".toml", ".nnmip", ".lark", ".yml", ""}]


def test_every_citation_points_at_an_existing_section() -> None:
    have = sections()
    bad = []
    for path in _tracked_text_files():
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for m in _CITE.finditer(text):
            for num in re.findall(r"§(\d+)", m.group(1)):
                if int(num) not in have:
                    bad.append(f"{path.relative_to(ROOT)}: §{num}")
    assert not bad, bad


def test_the_formulation_modules_cite_the_reference() -> None:
    for path in sorted(FORMULATIONS.glob("*.py")):
        if path.name == "__init__.py":
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        assert "docs/formulations.md" in doc, f"{path.name}: the module docstring should cite its section"


def test_nothing_points_outside_the_repository() -> None:
    bad = []
    pattern = re.compile(r"FORMULATIONS\.md|\.\./shared|/work/shared|ARCHITECTURE\.md|STYLE\.md")
    for path in _tracked_text_files():
        if not path.is_file() or path.resolve() == Path(__file__).resolve():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        bad += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in pattern.finditer(text)]
    assert not bad, bad
