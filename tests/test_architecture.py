"""Layering rules read from the source with ``ast`` (the layers of docs/architecture.md).

* backends and the LP/MPS writers import only ``model``, ``solution`` and ``errors`` (never ``nnmip.ir`` or
  ``nnmip.formulations``);
* earlier stages never import later ones: ``errors`` nothing, ``model`` only ``errors``, ``syntax`` only
  ``errors``, ``ir`` only ``errors``;
* the library logs and never prints: ``print(`` only in the ``nnmip.cli`` package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import ROOT

PKG = ROOT / "nnmip"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, root: Path = ROOT) -> list[tuple[str, int]]:
    """Every module ``path`` imports (also inside functions), with relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((mod, node.lineno))
            out.extend((f"{mod}.{a.name}", node.lineno) for a in node.names)   # from nnmip import ir
    return out


def nnmip_imports(path: Path) -> list[tuple[str, int]]:
    return [(m, line) for m, line in imports(path) if m == "nnmip" or m.startswith("nnmip.")]


def within(mod: str, allowed: tuple[str, ...]) -> bool:
    return any(mod == a or mod.startswith(a + ".") for a in allowed)


def files(*patterns: str) -> list[Path]:
    out = sorted({p for pat in patterns for p in PKG.glob(pat)})
    assert out, patterns
    return out


SOLVER_SIDE = files("backends/*.py", "io/lp.py", "io/mps.py", "io/writers.py", "io/safe.py")
SOLVER_SIDE_MAY_USE = ("nnmip.model", "nnmip.solution", "nnmip.errors", "nnmip.backends", "nnmip.io.lp",
                       "nnmip.io.mps", "nnmip.io.writers", "nnmip.io.safe")


@pytest.mark.parametrize("path", SOLVER_SIDE, ids=[str(p.relative_to(PKG)) for p in SOLVER_SIDE])
def test_backends_and_writers_do_not_know_networks(path: Path) -> None:
    for mod, line in nnmip_imports(path):
        assert not within(mod, ("nnmip.ir", "nnmip.formulations")), f"{path.name}:{line} imports {mod}"
        assert mod == "nnmip" or within(mod, SOLVER_SIDE_MAY_USE), f"{path.name}:{line} imports {mod}"


@pytest.mark.parametrize(("pattern", "allowed"), [
    ("errors.py", ()),
    ("model.py", ("nnmip.errors",)),
    ("solution.py", ("nnmip.errors",)),
    ("syntax/*.py", ("nnmip.errors", "nnmip.syntax")),
    ("ir/*.py", ("nnmip.errors", "nnmip.ir")),
])
def test_early_stages_do_not_import_later_ones(pattern: str, allowed: tuple[str, ...]) -> None:
    for path in files(pattern):
        for mod, line in nnmip_imports(path):
            assert within(mod, allowed), f"{path.relative_to(PKG)}:{line} imports {mod}"


def test_import_reader_sees_every_form(tmp_path: Path) -> None:
    """The checks above cannot pass by not seeing an import."""
    pkg = tmp_path / "nnmip" / "backends"
    pkg.mkdir(parents=True)
    src = pkg / "fake.py"
    src.write_text("import nnmip.ir.ops\nfrom ..formulations import training\n"
                   "def f():\n    from nnmip import ir\n    from . import highs\n")
    found = {m for m, _ in imports(src, tmp_path)}
    assert {"nnmip.ir.ops", "nnmip.formulations", "nnmip.formulations.training", "nnmip.ir",
            "nnmip.backends.highs"} <= found


def prints(path: Path) -> list[int]:
    """Lines calling ``print`` outside ``cmd_*`` command functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    commands = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name.startswith("cmd_")]
    inside = {id(c) for f in commands for c in ast.walk(f)}
    return sorted(n.lineno for n in ast.walk(tree)
                  if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"
                  and id(n) not in inside)


def test_no_print_in_the_library() -> None:
    offenders = []
    for path in sorted(PKG.rglob("*.py")):
        if "cli" in path.relative_to(PKG).parts[:1]:
            continue
        offenders += [f"{path.relative_to(ROOT)}:{line}" for line in prints(path)]
    assert not offenders, "print( outside the command-line modules (use logging): " + ", ".join(offenders)


def test_print_finder_finds_prints(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("def f():\n    print(1)\n\ndef cmd_x(a):\n    print(2)\n\nprint(3)\n")
    assert prints(src) == [2, 7]
