"""Root cut rounds: solve the LP relaxation, add the violated ideal ReLU cuts, repeat (docs/formulations.md §18).

The separation itself is :func:`nnmip.formulations.ideal.separate`; this module only runs the LPs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from nnmip.formulations.ideal import ReluCutUnits, add_cuts
from nnmip.model import MatrixModel

log = logging.getLogger(__name__)


@dataclass
class CutRound:
    """One round at the root: the LP bound before its cuts, and how many cuts it added."""

    lp_bound: float | None
    cuts: int


@dataclass
class RootReport:
    """The rounds at the root and the time they took."""

    rounds: list[CutRound] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def cuts(self) -> int:
        return sum(r.cuts for r in self.rounds)

    def to_dict(self) -> dict[str, Any]:
        return {"rounds": len(self.rounds), "cuts": self.cuts, "seconds": round(self.seconds, 4),
                "lp_bounds": [r.lp_bound for r in self.rounds]}


def strengthen_root(model: MatrixModel, units: list[ReluCutUnits], *, rounds: int = 5, solver: str = "highs",
                    time_limit: float | None = None) -> tuple[MatrixModel, RootReport]:
    """Rounds at the root: solve the LP relaxation, add the violated ideal cuts, repeat; the strengthened MILP.

    Stops after ``rounds`` rounds, when no cut is violated, or when ``time_limit`` seconds are spent.  The LP
    optima are reported for information only: they are never used as bounds.
    """
    from nnmip.backends import get_backend
    from nnmip.solution import SolveOptions, Status

    rep = RootReport()
    t0 = time.perf_counter()
    if not units:
        return model, rep
    backend = get_backend(solver)
    for k in range(rounds):
        left = None if time_limit is None else time_limit - (time.perf_counter() - t0)
        if left is not None and left <= 0:
            break
        raw = backend.solve(model.relaxed(), SolveOptions(time_limit=left))
        if raw.status is not Status.OPTIMAL or raw.x is None:
            break
        model, added = add_cuts(model, units, raw.x, k)
        rep.rounds.append(CutRound(raw.objective, added))
        if added == 0:
            break
    rep.seconds = time.perf_counter() - t0
    log.info("ideal cuts: %d rounds, %d cuts, %.2fs", len(rep.rounds), rep.cuts, rep.seconds)
    return model, rep
