"""The cut loop of the tangent emissions of the pruning regulariser (``milp`` and ``perspective-cuts``).

Solve, add the most violated tangent of every group member at the solver's point
(:func:`nnmip.formulations.perspective.separate`), solve again, until the model's value of the quadratic term meets
its exact value.  The loop shares one time limit: every solve gets what is left of ``opts.time_limit``, and the
result reports the wall time of the whole loop.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np

from nnmip.formulations.perspective import Regulariser, append_rows, separate
from nnmip.model import MatrixModel
from nnmip.solution import RawResult, SolveOptions, Status

log = logging.getLogger(__name__)

#: the smallest time a solve of the loop is given (a solver needs a positive limit)
MIN_SOLVE_SECONDS = 0.01


def add_cuts(model: MatrixModel, reg: Regulariser, x: np.ndarray, rnd: int, tol: float = 1e-8,
             objective: float = 0.0) -> tuple[MatrixModel, bool]:
    """``model`` with the most violated tangent of every member at ``x``, and whether anything was added (nothing
    is added when the gap between the model's and the exact value is below ``tol (1 + |objective|)``).
    """
    sel, v, gap = separate(reg, x)
    if sel.size == 0 or gap <= tol * (1.0 + abs(objective)):
        return model, False
    k = sel.size
    r = np.arange(k)
    if reg.perspective:
        m = append_rows(model, np.r_[r, r, r], np.r_[reg.s[sel], reg.w[sel], reg.zm[sel]],
                        np.r_[np.ones(k), -2.0 * v, v * v], np.zeros(k), np.full(k, np.inf), "prune", f"cut{rnd}")
    else:
        m = append_rows(model, np.r_[r, r], np.r_[reg.s[sel], reg.w[sel]], np.r_[np.ones(k), -2.0 * v],
                        -(v * v), np.full(k, np.inf), "prune", f"cut{rnd}")
    return m, True


def solve_with_cuts(model: MatrixModel, backend: Any, opts: SolveOptions, reg: Regulariser,
                    max_rounds: int = 200, tol: float = 1e-8) -> tuple[RawResult, MatrixModel, int]:
    """Solve, add the most violated tangent of every member, repeat until the gap closes.

    The gap is ``exact - modelled`` value of the quadratic term at the solver's point; the loop stops when it is
    below ``tol (1 + |objective|)``, when nothing is violated, after ``max_rounds`` solves, or when
    ``opts.time_limit`` (for the whole loop) is spent; in the last two cases with the gap still open the status is
    ``time_limit`` (the point is feasible, its objective is the model's, and the bound stays a valid bound since
    tangents only under-estimate the squares).  Returns the last result with the loop's wall time as its
    ``seconds``, the model with every cut, and the number of solves.
    """
    t0 = time.perf_counter()
    limit = opts.time_limit

    def left() -> float | None:
        return None if limit is None else limit - (time.perf_counter() - t0)

    def run(m: MatrixModel) -> RawResult:
        rest = left()
        o = opts if rest is None else dataclasses.replace(opts, time_limit=max(rest, MIN_SOLVE_SECONDS))
        return backend.solve(m, o)  # type: ignore[no-any-return]

    def done(raw: RawResult, m: MatrixModel, rounds: int, note: str = "") -> tuple[RawResult, MatrixModel, int]:
        raw = dataclasses.replace(raw, seconds=time.perf_counter() - t0)
        if note:
            raw = dataclasses.replace(raw, status=Status.TIME_LIMIT if raw.x is not None else raw.status,
                                      message=f"{raw.message}; {note}".lstrip("; "))
        return raw, m, rounds

    m = model
    raw = run(m)
    for rnd in range(1, max_rounds + 1):
        if raw.x is None or raw.objective is None or raw.status is not Status.OPTIMAL:
            return done(raw, m, rnd)
        m2, added = add_cuts(m, reg, raw.x, rnd, tol, raw.objective)
        if not added:
            log.info("cut loop closed after %d solves", rnd)
            return done(raw, m, rnd)
        rest = left()
        if rest is not None and rest <= 0:
            log.warning("cut loop stopped by the time limit after %d solves without closing the gap", rnd)
            return done(raw, m, rnd, f"cut loop stopped by the time limit after {rnd} solves, gap open")
        m = m2
        raw = run(m)
    log.warning("cut loop stopped after %d solves without closing the gap", max_rounds)
    return done(raw, m, max_rounds + 1, f"cut loop stopped after {max_rounds} solves, gap open")
