"""What the MILP backends share: stdout capture, number clean-up, the checks before a solve."""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from nnmip.errors import BackendUnavailable, SolverError
from nnmip.model import MatrixModel


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; callers ask these flags instead of comparing solver names."""

    integer: bool = True          # integer and binary columns
    cones: bool = False           # second-order and rotated cones (continuous columns)
    integer_cones: bool = False   # cones together with integer columns
    warm_start: bool = False      # ``SolveOptions.warm_start`` (full or partial)
    callbacks: bool = False       # live ``SolveOptions.progress`` reports during a solve
    interrupts: bool = False      # a stop request (Ctrl-C) ends the solve and keeps the incumbent
    early_stop: bool = False      # honours ``SolveOptions.stop_objective``
    lp_duals: bool = False        # ``lp_session``: one LP re-solved for many objectives, with row duals
    lp_rows: bool = False         # the ``lp_session`` also takes and drops rows (``add_rows``/``drop_rows``)
    branch_priority: bool = False  # ``SolveOptions.branch_priority`` (per column branching priorities)
    user_cuts: bool = False       # ``SolveOptions.cut_separator`` is called at the nodes of the tree


class LpSession(Protocol):
    """One LP over a model's rows and column bounds (integrality ignored), re-solved for many objectives."""

    solves: int

    def maximize(self, c: dict[int, float]) -> tuple[str, npt.NDArray[np.float64] | None]:
        """Maximise ``sum_j c_j x_j``: ``("optimal", row duals)``, ``("infeasible", None)`` or
        ``("failed", None)``.  The duals need not be exact: callers turn any vector into a sound bound by weak
        duality.
        """
        ...


@contextlib.contextmanager
def captured(enabled: bool = True) -> Iterator[list[str]]:
    """Capture file descriptor 1 while enabled (CBC prints even at ``verbose = 0``, HiGHS prints a banner on
    construction); yields a list that holds the captured text afterwards.
    """
    out: list[str] = []
    try:
        sys.stdout.flush()
        saved = os.dup(1) if enabled else -1
    except (OSError, ValueError):
        saved = -1
    if saved < 0:
        yield out
        return
    with tempfile.TemporaryFile() as tmp:
        try:
            os.dup2(tmp.fileno(), 1)
            yield out
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode(errors="replace"))


def finite(v: Any) -> float | None:
    """``v`` as a float, or None for a missing or infinite value (solvers use 1e100 or inf for "none")."""
    return float(v) if v is not None and math.isfinite(v) and abs(v) < 1e100 else None


def gap(incumbent: float | None, bound: float | None) -> float | None:
    """Relative gap ``|incumbent - bound| / max(1e-10, |incumbent|)``."""
    if incumbent is None or bound is None:
        return None
    return abs(incumbent - bound) / max(1e-10, abs(incumbent))


def require_linear(name: str, model: MatrixModel) -> None:
    """Refuse a model with cone blocks before anything is built."""
    if model.cones:
        raise SolverError.at("E0505", f"solver '{name}' cannot handle cone constraints",
                             notes=["help: use --solver cvxpy or gurobi, or emit perspective-cuts"])


def import_solver(name: str, module: str) -> Any:
    """Import a solver's Python module, or raise ``BackendUnavailable`` (E0504) with a help line.

    A Ctrl-C during the import is held until it has ended and then handed to the SIGINT handler that was in place
    (:func:`_sigint_held`): raised inside the initialisation of a compiled module, the handler's exception was
    turned into an ``ImportError`` ("solver 'highs' is not installed") or lost, and the run then went on into
    a solve of up to its whole time limit.
    """
    loaded = sys.modules.get(module)
    if loaded is not None:
        return loaded
    try:
        with _sigint_held():
            return importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailable.at(
            "E0504", f"solver '{name}' is not installed: python module '{module}' not found",
            notes=[f"help: pip install {module}, or choose another solver"]) from exc


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Within the block SIGINT is only recorded (main thread); at its end the handler in place before it gets
    the signal, as if it came then.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda _signum, frame: got.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if got:
            if callable(previous):
                previous(signal.SIGINT, got[0])
            elif previous == signal.SIG_DFL:
                os.kill(os.getpid(), signal.SIGINT)
