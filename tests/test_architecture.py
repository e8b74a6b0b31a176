"""The layout as rules (the layers of docs/architecture.md).

* The layers and what each may import are import-linter contracts in ``pyproject.toml`` (``[tool.importlinter]``,
  run by ``lint-imports`` in CI); here they are checked to hold, and to break when a backend imports a formulation.
* No import cycle between files; the top level holds at most six modules.
* Nothing outside ``nnmip.backends`` compares with a solver's name (backends declare capability flags).
* The library logs and never prints: ``print(`` only in the ``nnmip.cli`` package.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest
from conftest import ROOT

PKG = ROOT / "nnmip"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` (import-linter) with the contracts of ``root/pyproject.toml`` on the package under ``root``."""
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def copy_of_the_package(tmp_path: Path) -> Path:
    shutil.copytree(PKG, tmp_path / "nnmip", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_import_contracts_hold() -> None:
    pytest.importorskip("importlinter")
    res = lint_imports(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


@pytest.mark.parametrize(("module", "line", "broken"), [
    ("backends/highs.py", "from nnmip.formulations import training", "nnmip.backends.highs -> nnmip.formulations"),
    ("formulations/robust.py", "def f():\n    from nnmip.backends import get_backend",
     "nnmip.formulations.robust -> nnmip.backends"),
    ("formulations/common.py", "import nnmip.check", "nnmip.formulations.common -> nnmip.check"),
    ("io/lp.py", "from nnmip.ir.network import Network", "nnmip.io.lp -> nnmip.ir.network"),
    ("drivers/evaluate.py", "from nnmip.cli import common", "nnmip.drivers.evaluate -> nnmip.cli.common"),
])
def test_a_forbidden_import_breaks_the_contract(tmp_path: Path, module: str, line: str, broken: str) -> None:
    """The contracts are not vacuous: one added import (also one inside a function) breaks them."""
    pytest.importorskip("importlinter")
    root = copy_of_the_package(tmp_path)
    assert lint_imports(root).returncode == 0
    target = root / "nnmip" / module
    target.write_text(target.read_text(encoding="utf-8") + "\n" + line + "\n", encoding="utf-8")
    res = lint_imports(root)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "BROKEN" in res.stdout
    assert broken in res.stdout


def import_graph(package: str = "nnmip") -> nx.DiGraph:
    """Module -> module imports of the package (inside functions too; not those under ``TYPE_CHECKING``)."""
    grimp = pytest.importorskip("grimp")
    g = grimp.build_graph(package, exclude_type_checking_imports=True, cache_dir=None)
    out = nx.DiGraph()
    for m in g.modules:
        out.add_node(m)
        out.add_edges_from((m, t) for t in g.find_modules_directly_imported_by(m))
    return out


def test_no_import_cycle_between_files() -> None:
    g = import_graph()
    assert g.number_of_nodes() > 50
    cycles = list(nx.simple_cycles(g))
    assert not cycles, cycles


def test_cycle_finder_finds_a_cycle() -> None:
    g = nx.DiGraph([("nnmip.a", "nnmip.b"), ("nnmip.b", "nnmip.a")])
    assert list(nx.simple_cycles(g))


def test_top_level_holds_the_shared_vocabulary_only() -> None:
    # (``__main__.py``, ``python -m nnmip``, is the command's entry point, not vocabulary)
    modules = sorted(p.name for p in PKG.glob("*.py") if p.name != "__main__.py")
    assert len(modules) <= 6, modules
    assert {"__init__.py", "errors.py", "model.py", "solution.py"} <= set(modules)


SOLVER_NAMES = {"highs", "cbc", "gurobi", "cvxpy", "scip", "HIGHS", "CBC", "GUROBI"}


def solver_name_tests(path: Path) -> list[int]:
    """Lines comparing something with a solver's name (``==``, ``!=``, ``in``): capability flags do that job."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Compare):
            parts = [n.left, *n.comparators]
            consts = [p for p in parts if isinstance(p, ast.Constant)]
            consts += [e for p in parts if isinstance(p, ast.Tuple | ast.List | ast.Set) for e in p.elts
                       if isinstance(e, ast.Constant)]
            if any(c.value in SOLVER_NAMES for c in consts):
                out.append(n.lineno)
    return out


def test_no_solver_names_compared_outside_the_backends() -> None:
    offenders = [f"{p.relative_to(ROOT)}:{line}" for p in sorted(PKG.rglob("*.py"))
                 if p.relative_to(PKG).parts[0] != "backends" for line in solver_name_tests(p)]
    assert not offenders, offenders


def test_solver_name_finder_finds_comparisons(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("if s == 'highs':\n    pass\nok = b.name in ('gurobi', 'x')\nfine = s == 'lp'\n")
    assert solver_name_tests(src) == [1, 3]


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
