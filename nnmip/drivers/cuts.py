"""The cut loop of the tangent emissions of the pruning regulariser (``milp`` and ``perspective-cuts``).

Solve, add the most violated tangent of every group member at the solver's point
(:func:`nnmip.formulations.perspective.separate`), solve again, until the gap between the best point found and the
best bound proven is within the solver's gap tolerance.  Every round's model is an outer approximation of the
exact one (tangents under-estimate the squares), so every round's bound stays valid, and every round's point,
with each ``s`` raised to its exact square, is a feasible point of the exact model: the loop keeps the best of
both.  The loop shares one time limit: every solve gets what is left of ``opts.time_limit``, and the result
reports the wall time of the whole loop.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from nnmip.formulations.perspective import Regulariser, append_rows, separate
from nnmip.model import MatrixModel
from nnmip.solution import RawResult, SolveOptions, Status

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float64]

#: the smallest time a solve of the loop is given (a solver needs a positive limit)
MIN_SOLVE_SECONDS = 0.01
#: the loop's relative gap on a MILP when ``opts.mip_gap`` is not set: the default relative gap of HiGHS, CBC and
#: Gurobi, so the loop closes where the solver itself would call a round optimal
DEFAULT_MIP_GAP = 1e-4
#: the loop's absolute gap on a MILP (HiGHS's default ``mip_abs_gap``): with ``mip_gap = 0`` the solver also calls a
#: round optimal at this absolute gap
ABS_MIP_GAP = 1e-6
#: the loop's relative gap on an LP (a relaxation): the solver's optimality tolerances, not a MIP gap
LP_GAP = 1e-7
#: a raised point must satisfy the rows of the model that hold ``s`` to this tolerance, times ``1 + |rhs|``
FEAS_TOL = 1e-6


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


def exact_point(reg: Regulariser, x: FloatArray) -> FloatArray:
    """``x`` with every ``s`` raised (or lowered) to the exact term it stands for: ``w^2 / z`` (perspective, 0 at
    ``z = 0``) or ``w^2`` (milp).  Every tangent, fixed or added, under-estimates that value, so the point satisfies
    every cut of every round, and the model's objective at it is the exact objective of the point.
    """
    out = np.array(x, dtype=np.float64, copy=True)
    w = out[reg.w]
    if reg.perspective:
        z = out[reg.zm]
        out[reg.s] = np.where(z > 1e-9, w * w / np.maximum(z, 1e-12), 0.0)
    else:
        out[reg.s] = w * w
    return out


@dataclasses.dataclass
class _Best:
    """What the loop keeps across its rounds (values in the model's sense, ``sign`` = +1 for min, -1 for max)."""

    sign: float
    x: FloatArray | None = None        # the best point feasible for the exact model (``s`` at its exact value)
    value: float | None = None         # the exact objective there
    raw: RawResult | None = None       # the round that found it
    round: int = 0
    bound: float | None = None         # the best bound proven by any round
    bound_round: int = 0
    lp: RawResult | None = None        # on an LP: the optimal round with the best value (its value is its bound)

    def better(self, a: float, b: float | None) -> bool:
        return b is None or self.sign * a < self.sign * b

    def gap(self) -> float | None:
        if self.value is None or self.bound is None:
            return None
        return max(self.sign * (self.value - self.bound), 0.0)


def solve_with_cuts(model: MatrixModel, backend: Any, opts: SolveOptions, reg: Regulariser,
                    max_rounds: int = 200, tol: float | None = None) -> tuple[RawResult, MatrixModel, int]:
    """Solve, add the most violated tangent of every member, repeat until the gap closes.

    Every round's model is an outer approximation of the exact model (the tangents under-estimate the squares),
    so every bound a round proves is a valid bound of the exact model: the loop keeps the best of them.  Every
    round's point with each ``s`` at its exact value (:func:`exact_point`) is a feasible point of the exact model
    (checked on the other rows that hold ``s``); the loop keeps the one with the best exact objective, and warm
    starts the next MILP round from it.

    The loop stops when the gap between that best exact value and the best bound is at most
    ``max(tol |value|, abs)`` (``tol``: ``opts.mip_gap``, else the solvers' default 1e-4, with the absolute 1e-6 of
    HiGHS; on an LP 1e-7 relative), when the round's point needs no cut, after ``max_rounds`` solves, or when
    ``opts.time_limit`` (for the whole loop) is spent; in the last two cases with the gap still open the status is
    ``time_limit``, and a round that ends without a solution (time limit, Ctrl-C) ends the loop with the best
    point kept.  Status ``optimal`` only when the gap closed.

    On a MILP the result is the best exact point (``x`` with ``s`` at its exact value, ``objective`` the exact
    value there) and the best bound.  On an LP (a relaxation, whose value is a bound) it is the optimal round
    with the best value, which is also the best bound.  The result's ``seconds`` is the loop's wall time.
    Returns the result, the model with every cut, and the number of solves.
    """
    t0 = time.perf_counter()
    limit = opts.time_limit
    mip = model.is_mip
    sign = -1.0 if model.sense == "max" else 1.0
    rel = tol if tol is not None else (opts.mip_gap if opts.mip_gap is not None else DEFAULT_MIP_GAP) if mip \
        else LP_GAP
    absolute = ABS_MIP_GAP if mip else 1e-9
    best = _Best(sign)
    # rows of the given model that hold an s besides the tangents (e.g. a lexicographic stage's row on the
    # loss): a raised point must still satisfy them to count as a feasible point of the exact model
    held = np.unique(model.A.tocsc()[:, reg.s].tocoo().row) if reg.s.size else np.zeros(0, np.int64)
    side = model.A.tocsr()[held] if held.size else None

    def left() -> float | None:
        return None if limit is None else limit - (time.perf_counter() - t0)

    def run(m: MatrixModel) -> RawResult:
        rest = left()
        o = opts if rest is None else dataclasses.replace(opts, time_limit=max(rest, MIN_SOLVE_SECONDS))
        if mip and best.x is not None:   # the best exact point is feasible for every later round
            o = dataclasses.replace(o, warm_start=best.x)
        return backend.solve(m, o)  # type: ignore[no-any-return]

    def feasible(xe: FloatArray) -> bool:
        if side is None:
            return True
        ax = side @ xe
        lb, ub = model.row_lb[held], model.row_ub[held]
        slack = FEAS_TOL * (1.0 + np.where(np.isfinite(ub), np.abs(ub), np.where(np.isfinite(lb), np.abs(lb), 0.0)))
        return bool(np.all(ax >= lb - slack) and np.all(ax <= ub + slack))

    def keep(raw: RawResult, rnd: int) -> None:
        if raw.bound is not None and np.isfinite(raw.bound) and (best.bound is None
                                                                 or sign * raw.bound > sign * best.bound):
            best.bound, best.bound_round = float(raw.bound), rnd
        if raw.x is None:
            return
        if not mip and raw.status is Status.OPTIMAL and raw.objective is not None \
                and (best.lp is None or best.lp.objective is None or sign * raw.objective > sign * best.lp.objective):
            best.lp = raw
        xe = exact_point(reg, raw.x)
        if not feasible(xe):
            return
        v = model.objective_value(xe)
        if best.better(v, best.value):
            best.x, best.value, best.raw, best.round = xe, v, raw, rnd

    def closed() -> bool:
        g = best.gap()
        return g is not None and g <= max(rel * abs(best.value), absolute)  # type: ignore[arg-type]

    def done(raw: RawResult, m: MatrixModel, rounds: int, ok: bool, note: str = ""
             ) -> tuple[RawResult, MatrixModel, int]:
        seconds = time.perf_counter() - t0
        ok = ok or closed()
        if not ok and not note and raw.status is Status.TIME_LIMIT:
            note = f"cut loop stopped by the time limit after {rounds} solves, gap open"
        notes = [note] if note else []
        if ok:
            status = Status.OPTIMAL
        elif raw.status in (Status.OPTIMAL, Status.TIME_LIMIT):  # stopped between rounds or by the solve's limit
            status = Status.TIME_LIMIT
        elif raw.status is Status.INTERRUPTED:
            status = Status.INTERRUPTED
        else:   # a later round failed (error, or infeasible by numerical trouble) after earlier points
            status = Status.ERROR
            notes.append(f"solve {rounds} of the cut loop ended {raw.status}")
        kept = best.raw if mip else best.lp
        if kept is None:   # no usable point: the last round as it ended (infeasible, error, no solution in time)
            status = Status.OPTIMAL if ok else (Status.TIME_LIMIT if note and raw.x is not None else raw.status)
            out = dataclasses.replace(raw, bound=best.bound if best.bound is not None else raw.bound)
        elif mip:
            assert best.value is not None
            bound = best.bound
            if bound is not None and sign * bound > sign * best.value:
                bound = best.value     # numerical noise: no bound is better than a feasible value
            if best.round != rounds:
                notes.append(f"kept the point of solve {best.round} of {rounds} (exact objective {best.value:.9g})")
            if bound is not None and best.bound_round != rounds:
                notes.append(f"best bound {bound:.9g} from solve {best.bound_round}")
            out = dataclasses.replace(kept, x=best.x, objective=best.value, bound=bound)
        else:   # an LP: its value is a bound, the best of them
            bound = best.bound if best.bound is not None else kept.objective
            out = dataclasses.replace(kept, objective=bound, bound=bound)
        out = dataclasses.replace(out, status=status, seconds=seconds,
                                  message="; ".join([raw.message] + notes).strip("; "))
        log.info("cut loop: %s after %d solves, objective %s, bound %s", out.status, rounds, out.objective,
                 out.bound)
        return out, m, rounds

    m = model
    raw = run(m)
    keep(raw, 1)
    for rnd in range(1, max_rounds + 1):
        if raw.x is None or raw.objective is None or raw.status is not Status.OPTIMAL:
            return done(raw, m, rnd, False)
        if closed():
            log.info("cut loop closed after %d solves (gap %.3g)", rnd, best.gap())
            return done(raw, m, rnd, True)
        m2, added = add_cuts(m, reg, raw.x, rnd, 0.0, raw.objective)
        if not added:
            log.info("cut loop closed after %d solves", rnd)
            return done(raw, m, rnd, True)
        rest = left()
        if rest is not None and rest <= 0:
            log.warning("cut loop stopped by the time limit after %d solves without closing the gap", rnd)
            return done(raw, m, rnd, False, f"cut loop stopped by the time limit after {rnd} solves, gap open")
        m = m2
        raw = run(m)
        keep(raw, rnd + 1)
    log.warning("cut loop stopped after %d solves without closing the gap", max_rounds)
    return done(raw, m, max_rounds + 1, False, f"cut loop stopped after {max_rounds} solves, gap open")
