"""Solver backends: array translation from :class:`~nnmip.model.MatrixModel` to a solver and back.

Each backend module defines one class with ``name``, ``module`` (checked with ``importlib.util.find_spec``),
``capabilities`` (a :class:`Capabilities`: integer, cones, warm start, callbacks, interrupts, early stop) and
``solve(model, opts) -> RawResult``.  Everything solver-specific stays here: callers ask the capability flags
instead of comparing solver names, and solver option names are translated only inside the backends.  The solver
is imported inside ``solve``; a missing or unlicensed solver raises :class:`~nnmip.errors.BackendUnavailable`.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Protocol

from nnmip.backends._common import Capabilities, LpSession
from nnmip.errors import BackendUnavailable
from nnmip.model import MatrixModel
from nnmip.solution import RawResult, SolveOptions


class Backend(Protocol):
    """What every solver backend offers: ``solve(model, options) -> RawResult`` and its capabilities."""

    name: str
    module: str

    @property
    def capabilities(self) -> Capabilities: ...

    def solve(self, model: MatrixModel, opts: SolveOptions) -> RawResult: ...

    # backends with ``capabilities.lp_duals`` also offer
    # ``lp_session(model: MatrixModel, time_limit: float | None) -> LpSession``


# name -> (module path, class name); aliases map to a canonical name
_REGISTRY: dict[str, tuple[str, str]] = {
    "highs": ("nnmip.backends.highs", "HighsBackend"),
    "cbc": ("nnmip.backends.cbc", "CbcBackend"),
    "gurobi": ("nnmip.backends.gurobi", "GurobiBackend"),
    "cvxpy": ("nnmip.backends.cvxpy", "CvxpyBackend"),
    "scip": ("nnmip.backends.scip", "ScipBackend"),
}
ALIASES = {"mip": "cbc", "python-mip": "cbc", "grb": "gurobi", "clarabel": "cvxpy"}
SOLVER_MODULES = {"highs": "highspy", "cbc": "mip", "gurobi": "gurobipy", "cvxpy": "cvxpy", "scip": "pyscipopt"}
#: solvers that are optional extras of the package: ``pip install 'nnmip[<extra>]'``
EXTRAS = {"gurobi": "gurobi", "scip": "scip"}


def solver_names() -> list[str]:
    """Names of every registered backend, installed or not."""
    return list(_REGISTRY)


def canonical(name: str) -> str:
    """The registered name of a solver, from any accepted spelling or alias."""
    if not isinstance(name, str):
        raise BackendUnavailable.at("E0503", f"the solver must be named by a string, got {name!r:.60}",
                                    notes=[f"help: choose one of {', '.join(_REGISTRY)}"])
    key = name.strip().lower()
    return ALIASES.get(key, key)


def is_installed(name: str) -> bool:
    """Whether the solver's Python module can be imported (a licence is only checked at solve time)."""
    name = canonical(name)
    mod = SOLVER_MODULES.get(name)
    if mod is None:
        return False
    if sys.modules.get(mod) is not None or mod in _FOUND:   # a search of the path costs 0.1-0.3 ms
        return True
    try:
        found = importlib.util.find_spec(mod) is not None
    except (ImportError, ValueError):
        return False
    if found:
        _FOUND.add(mod)
    return found


#: solver modules found on the path once (a module that was found is not searched for again)
_FOUND: set[str] = set()


def available_backends() -> list[str]:
    """Names of the backends whose solver package is installed."""
    return [n for n in _REGISTRY if is_installed(n)]


def get_backend(name: str) -> Backend:
    """Backend instance by name; unknown names and missing modules raise ``BackendUnavailable``."""
    if not isinstance(name, str):
        raise BackendUnavailable.at("E0503", f"the solver must be named by a string, got {name!r}",
                                    notes=[f"help: choose one of {', '.join(_REGISTRY)}"])
    key = canonical(name)
    if key not in _REGISTRY:
        raise BackendUnavailable.at(
            "E0503", f"unknown solver '{name}'", notes=[f"help: choose one of {', '.join(_REGISTRY)}"])
    if not is_installed(key):
        extra = f" (pip install 'nnmip[{EXTRAS[key]}]')" if key in EXTRAS else ""
        raise BackendUnavailable.at(
            "E0504", f"solver '{key}' is not installed: python module '{SOLVER_MODULES[key]}' not found",
            notes=[f"help: install it{extra} or choose another solver: {', '.join(available_backends())}"])
    mod_name, cls_name = _REGISTRY[key]
    cls = getattr(importlib.import_module(mod_name), cls_name)
    return cls()  # type: ignore[no-any-return]


def solve(model: MatrixModel, solver: str = "highs", opts: SolveOptions | None = None) -> RawResult:
    """Solve ``model`` with the named backend."""
    return get_backend(solver).solve(model, opts or SolveOptions())


def prepare_fork() -> None:
    """Make this process safe to fork: stop HiGHS's global worker threads (a forked child would wait on them
    forever); HiGHS starts them again at its next solve.
    """
    import sys

    highspy = sys.modules.get("highspy")
    if highspy is not None and hasattr(highspy.Highs, "resetGlobalScheduler"):
        highspy.Highs.resetGlobalScheduler(True)


__all__ = ["ALIASES", "SOLVER_MODULES", "Backend", "Capabilities", "LpSession", "available_backends", "canonical",
           "get_backend", "is_installed", "prepare_fork", "solve", "solver_names"]
