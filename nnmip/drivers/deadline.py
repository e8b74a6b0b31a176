"""One wall-clock budget for a whole run: bounds, tightening, every MILP and every split draw from it.

A :class:`Deadline` is created once (from ``--time-limit`` or ``verify(time_limit=...)``) and handed down; each
step asks it how much time is left and passes that (or a share of it) to its solver, so the run as a whole ends
within the budget plus the time one step needs to notice (a solver honours its own limit to within a second
or so; numpy passes are checked between batches).

A stop request (Ctrl-C, :data:`nnmip.solution.STOP`) ends every deadline at once: the loops that ask
:meth:`Deadline.left` or :meth:`Deadline.expired` stop as if the time had run out, keeping what they found.

Training counts the same way with a :class:`Budget` (seconds from its start, plus a limit per solve): a
strategy's loop, one training solve with its lexicographic stages, and gradient training each have one, and
inside :func:`run_deadline` (``nnmip solve``) none ends later than the run's :class:`Deadline`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace

from nnmip.solution import STOP, SolveOptions


class Deadline:
    """A point in time (``time.monotonic``) by which the run must end; ``None`` seconds means no limit."""

    #: the smallest time limit handed to a solver (a limit of 0 means "no limit" to some of them)
    MIN_SOLVE = 0.01

    def __init__(self, seconds: float | None = None, *, end: float | None = None) -> None:
        self.start = time.monotonic()
        if end is not None:
            self.end: float | None = end
        else:
            self.end = None if seconds is None else self.start + max(float(seconds), 0.0)

    @classmethod
    def of(cls, time_limit: float | None, deadline: Deadline | None = None) -> Deadline:
        """``deadline`` itself, tightened to ``time_limit`` from now when both are given."""
        if deadline is None:
            return cls(time_limit)
        if time_limit is None:
            return deadline
        own = time.monotonic() + max(float(time_limit), 0.0)
        return deadline if deadline.end is not None and deadline.end <= own else cls(end=own)

    @property
    def limited(self) -> bool:
        return self.end is not None

    def left(self) -> float | None:
        """Seconds left (never negative), ``None`` without a limit; 0 after a stop request."""
        if STOP.is_set():
            return 0.0
        return None if self.end is None else max(self.end - time.monotonic(), 0.0)

    def expired(self) -> bool:
        return STOP.is_set() or (self.end is not None and time.monotonic() >= self.end)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def share(self, fraction: float) -> Deadline:
        """A deadline ending after ``fraction`` of the time now left (the whole budget when unlimited)."""
        left = self.left()
        return Deadline(None if left is None else fraction * left)

    def solve_limit(self, own: float | None = None) -> float | None:
        """The time limit for one solve: what is left, capped by ``own`` (at least :attr:`MIN_SOLVE`)."""
        left = self.left()
        if left is None:
            return own
        t = left if own is None else min(own, left)
        return max(t, self.MIN_SOLVE)

    def __repr__(self) -> str:
        left = self.left()
        return "Deadline(unlimited)" if left is None else f"Deadline({left:.2f}s left)"


#: the end of the whole run (:class:`nnmip.drivers.deadline.Deadline`) while one is set by :func:`run_deadline`
_RUN_DEADLINE: ContextVar[Deadline | None] = ContextVar("nnmip_run_deadline", default=None)


@contextmanager
def run_deadline(deadline: Deadline | None) -> Iterator[None]:
    """Inside this block no strategy budget ends later than ``deadline``: the end of the whole run.

    ``nnmip solve`` starts its clock before it reads the file and the data and sets it here, so loading the data
    and building models count against ``--time-limit`` as much as the solves do.  An end point can only make a
    budget shorter, so budgets nested inside the run (an ensemble's members, the split start of a local search)
    stay correct.
    """
    token = _RUN_DEADLINE.set(deadline)
    try:
        yield
    finally:
        _RUN_DEADLINE.reset(token)


@dataclass
class Budget:
    """A wall-clock budget of ``total`` seconds from ``start`` (None: unlimited) for a whole fit, a strategy or
    one training solve with its stages, plus a time limit of ``per_solve`` seconds for each solve.
    """

    total: float | None = None
    per_solve: float | None = None
    start: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def remaining(self) -> float | None:
        """Seconds left of the whole budget (None: unlimited); 0 after a stop request (Ctrl-C)."""
        if STOP.is_set():
            return 0.0
        return None if self.total is None else self.total - self.elapsed()

    def exhausted(self) -> bool:
        rem = self.remaining()
        return rem is not None and rem <= 0.05

    @classmethod
    def of(cls, opts: SolveOptions, time_budget: float | None, step_time: float | None) -> Budget:
        """The budget of a strategy run, from now.

        The whole run gets the smallest of ``time_budget``, ``opts.time_limit`` and what is left of the run's
        deadline (:func:`run_deadline`), whichever are given: every one of them is a limit on the whole fit, so
        none may lift another.  Each solve is capped at the smaller of ``step_time`` and
        ``opts.solve_time_limit`` (and by what is left, see :meth:`options`).
        """
        run = _RUN_DEADLINE.get()
        run_left = run.left() if run is not None else None
        totals = [float(t) for t in (time_budget, opts.time_limit, run_left) if t is not None]
        caps = [float(t) for t in (step_time, opts.solve_time_limit) if t is not None]
        return cls(min(totals) if totals else None, min(caps) if caps else None)

    def limit(self, share: float = 1.0, floor: float = 0.1) -> float | None:
        """Seconds for the next solve: ``share`` of what is left, at most ``per_solve``, at least ``floor``."""
        rem = self.remaining()
        limits = [t for t in (None if rem is None else rem * share, self.per_solve) if t is not None]
        return max(floor, min(limits)) if limits else None

    def options(self, opts: SolveOptions) -> SolveOptions:
        """``opts`` for the next solve of a strategy: the time limit is the smaller of the per-solve limit and
        what is left; no warm start and no per-solve limit of its own (the strategy gives each solve its own).
        """
        return replace(opts, time_limit=self.limit(), warm_start=None, solve_time_limit=None)
