"""One wall-clock budget for a whole run: bounds, tightening, every MILP and every split draw from it.

A :class:`Deadline` is created once (from ``--time-limit`` or ``verify(time_limit=...)``) and handed down; each
step asks it how much time is left and passes that (or a share of it) to its solver, so the run as a whole ends
within the budget plus the time one step needs to notice (a solver honours its own limit to within a second
or so; numpy passes are checked between batches).

A stop request (Ctrl-C, :data:`nnmip.solution.STOP`) ends every deadline at once: the loops that ask
:meth:`Deadline.left` or :meth:`Deadline.expired` stop as if the time had run out, keeping what they found.
"""

from __future__ import annotations

import time

from nnmip.solution import STOP


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
