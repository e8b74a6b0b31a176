"""Shared helpers for the test suite: repository paths and the MILP backends installed here."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest

from nnmip.backends import is_installed
from nnmip.errors import BackendUnavailable

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
BCW_CSV = EXAMPLES / "data" / "breast-cancer-wisconsin.csv"

#: the MILP backends every backend-parametrised test (training, the backend contract) runs on; a missing one is
#: skipped with the reason
MILP_BACKENDS = ("highs", "cbc", "gurobi", "scip")


@contextmanager
def licence_skip(solver: str) -> Iterator[None]:
    """Skip the running test when a size-limited solver licence refuses the model (error E0506)."""
    try:
        yield
    except BackendUnavailable as exc:
        if any(d.code == "E0506" for d in exc.diagnostics):
            pytest.skip(f"{solver}: {exc}")
        raise


@pytest.fixture(params=MILP_BACKENDS)
def milp_solver(request: pytest.FixtureRequest) -> str:
    """Each installed MILP backend in turn: the one shared backend fixture of the suite.

    A module or test may narrow it with ``@pytest.mark.solvers("highs", ..., reason="...")``; the others are
    skipped with that reason.
    """
    name = str(request.param)
    if not is_installed(name):
        pytest.skip(f"solver '{name}' is not installed")
    only = request.node.get_closest_marker("solvers")
    if only is not None and name not in only.args:
        pytest.skip(f"solver '{name}': {only.kwargs.get('reason', 'not run by this test')}")
    return name


@pytest.fixture
def benchmark_script(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """A loader of ``benchmarks/NAME.py`` as a module, for tests that run a benchmark's ``main`` in process.

    The scripts put ``benchmarks/`` first on ``sys.path`` (their helpers live there, and so does a
    ``distributed.py`` that would shadow Dask's package): ``sys.path`` and ``sys.modules`` are restored when the
    test ends.
    """
    monkeypatch.setattr(sys, "path", list(sys.path))

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
        assert spec is not None
        assert spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, f"bench_{name}", mod)
        spec.loader.exec_module(mod)
        return mod

    return load


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite the golden LP/MPS files under tests/golden (review the diff afterwards)")
