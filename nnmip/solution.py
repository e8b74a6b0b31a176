"""What a solver gives back, in one vocabulary for every backend.

Backends import only this module, :mod:`nnmip.model` and :mod:`nnmip.errors`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt


class Status(str, enum.Enum):
    """How a solve ended."""

    OPTIMAL = "optimal"
    TIME_LIMIT = "time_limit"          # stopped by a limit; ``x`` is the incumbent when there is one
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    INF_OR_UNBD = "infeasible_or_unbounded"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Progress:
    """One progress report during a solve (sent to ``SolveOptions.progress``)."""

    seconds: float
    incumbent: float | None
    bound: float | None
    gap: float | None = None
    nodes: int | None = None


@dataclass
class SolveOptions:
    """Options common to every backend; anything else goes through ``solver_options``."""

    time_limit: float | None = None
    mip_gap: float | None = None
    threads: int | None = None
    verbose: bool = False
    warm_start: npt.NDArray[np.float64] | None = None
    progress: Callable[[Progress], None] | None = None
    solver_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class RawResult:
    """A backend's answer: status, primal values (or ``None``), objective, best bound and timings."""

    status: Status
    solver: str
    x: npt.NDArray[np.float64] | None = None
    objective: float | None = None
    bound: float | None = None
    seconds: float = 0.0
    message: str = ""
    nodes: int | None = None

    @property
    def has_solution(self) -> bool:
        return self.x is not None

    @property
    def gap(self) -> float | None:
        """Relative gap ``|obj - bound| / max(1e-10, |obj|)`` (0 when both are equal)."""
        if self.objective is None or self.bound is None:
            return None
        if not (np.isfinite(self.objective) and np.isfinite(self.bound)):
            return None
        diff = abs(self.objective - self.bound)
        if diff <= 1e-9 * max(1.0, abs(self.objective)):
            return 0.0
        return diff / max(1e-10, abs(self.objective))
