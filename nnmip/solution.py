"""What a solver gives back, in one vocabulary for every backend.

Backends import only this module, :mod:`nnmip.model` and :mod:`nnmip.errors`.
"""

from __future__ import annotations

import contextlib
import enum
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import numpy as np
import numpy.typing as npt


class Status(str, enum.Enum):
    """How a solve ended."""

    OPTIMAL = "optimal"
    TIME_LIMIT = "time_limit"          # stopped by a limit; ``x`` is the incumbent when there is one
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    INF_OR_UNBD = "infeasible_or_unbounded"
    INTERRUPTED = "interrupted"        # stopped on request (Ctrl-C); ``x`` is the incumbent when there is one
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


#: solver threads a backend uses when ``SolveOptions.threads`` is ``None`` (``None``: the solver's own default);
#: see :func:`default_solver_threads`
_DEFAULT_THREADS: list[int | None] = [None]


def default_solver_threads(threads: int | None = None, *, set_: bool = False) -> int | None:
    """The solver threads of this process for solves that do not ask for a number; with ``set_``, set them first.

    The executors of :mod:`nnmip.drivers.executor` set 1 while batch tasks run (one task per core: a solver's
    own threads would only spin on cores that other tasks use).
    """
    if set_:
        _DEFAULT_THREADS[0] = None if threads is None else int(threads)
    return _DEFAULT_THREADS[0]


def solver_threads(opts: SolveOptions) -> int | None:
    """The threads a backend should give its solver for ``opts``: ``opts.threads``, else the process default."""
    return opts.threads if opts.threads is not None else _DEFAULT_THREADS[0]


@dataclass
class SolveOptions:
    """Options common to every backend; anything else goes through ``solver_options``.

    A backend stops each solve after ``time_limit`` seconds.  The training drivers read ``time_limit`` as the
    budget of the whole fit (every solve gets what remains) and ``solve_time_limit`` as a cap on each solve.
    """

    time_limit: float | None = None
    mip_gap: float | None = None
    threads: int | None = None
    verbose: bool = False
    warm_start: npt.NDArray[np.float64] | None = None
    progress: Callable[[Progress], None] | None = None
    #: stop at the first solution whose objective is at least this (``max``) or at most this (``min``); honoured
    #: by backends whose ``capabilities.early_stop`` is true, a hint for the others
    stop_objective: float | None = None
    #: stop once the best bound proves the optimum is no better than this (where the solver can)
    stop_bound: float | None = None
    solver_options: dict[str, Any] = field(default_factory=dict)
    #: ``"bound"``: the warm start is expected to be (near) optimal, so the solver should spend its effort on the
    #: bound rather than on finding solutions (HiGHS: no primal heuristics, no cut rounds below the root, little
    #: strong branching; ``solver_options`` of the same names win); backends without such settings ignore it
    focus: str | None = None
    #: ``x -> (A, rhs)``: cuts ``A z <= rhs`` (a scipy.sparse matrix over the model's columns) violated at the LP
    #: point ``x`` of a node, valid at every node; called by backends whose ``capabilities.user_cuts`` is true
    #: (Gurobi, SCIP), not by the others
    cut_separator: Callable[[npt.NDArray[np.float64]], tuple[Any, npt.NDArray[np.float64]]] | None = None
    solve_time_limit: float | None = None
    #: per column branching priority (higher is branched on first, 0 for no preference); honoured by backends
    #: whose ``capabilities.branch_priority`` is true (Gurobi, SCIP), ignored by the others (HiGHS and CBC
    #: through python-mip offer none)
    branch_priority: npt.NDArray[np.int64] | None = None

    def __post_init__(self) -> None:
        """Refuse values no backend can use (a ParameterError naming the field)."""
        from nnmip.errors import ParameterError, check_number

        for name in ("time_limit", "solve_time_limit", "mip_gap"):
            check_number(name, getattr(self, name), low=0.0, none=True)
        if self.threads is not None:
            check_number("threads", self.threads, low=1.0, integer=True)
            if self.threads > 1024:
                raise ParameterError.of("threads", f"must be at most 1024, got {self.threads!r}")
        for name in ("stop_objective", "stop_bound"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating))
                                  or math.isnan(float(v))):
                raise ParameterError.of(name, f"must be a number (not NaN) or None, got {v!r:.60}")
        if not isinstance(self.verbose, (bool, np.bool_)):
            raise ParameterError.of("verbose", f"must be True or False, got {self.verbose!r:.60}", code="E0108")
        if self.focus is not None and self.focus != "bound":
            raise ParameterError.of("focus", f"must be None or 'bound', got {self.focus!r:.60}",
                                    "focus='bound' when the warm start is expected to be optimal")
        if not isinstance(self.solver_options, dict):
            raise ParameterError.of("solver_options", f"must be a dict of solver option names to values, got "
                                    f"{self.solver_options!r:.60}", code="E0108")
        if self.progress is not None and not callable(self.progress):
            raise ParameterError.of("progress", f"must be a function or None, got {self.progress!r:.60}",
                                    code="E0108")
        if self.warm_start is not None:
            try:
                ws = np.asarray(self.warm_start, dtype=np.float64)
            except (TypeError, ValueError):
                ws = np.zeros(0)
            if ws.ndim != 1 or ws.size == 0:
                raise ParameterError.of("warm_start", f"must be a flat array of numbers (one per column), got "
                                        f"{self.warm_start!r:.60}", code="E0108")


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


class StopRequest:
    """A process-wide request to stop the running solves (Ctrl-C), shared by the command line and the backends.

    ``request()`` may be called from a signal handler: it sets a flag and calls the cancel hooks of the solves that
    are running (each backend registers one with :meth:`watch` while its solver runs, e.g. HiGHS's
    ``cancelSolve``).  A backend that starts after the request returns at once with ``Status.INTERRUPTED``.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._hooks: list[Callable[[], None]] = []
        #: solver threads that could not be stopped and were left to finish (the process should end soon)
        self.abandoned: list[threading.Thread] = []
        #: solves started since the last :meth:`clear` (a Ctrl-C before the first one has nothing to keep)
        self.started = 0

    def begin(self) -> None:
        """Record that work has started whose result is worth keeping (bound tightening, branch and bound): from
        now on a Ctrl-C of the command is a stop request that work ends on, as it is for a solve.
        """
        with self._lock:
            self.started += 1

    def request(self) -> None:
        self._event.set()
        with self._lock:
            hooks = list(self._hooks)
        for hook in hooks:
            with contextlib.suppress(Exception):
                hook()

    def is_set(self) -> bool:
        return self._event.is_set()

    def clear(self) -> None:
        """Forget the request (before the next run in the same process)."""
        self._event.clear()
        self.started = 0

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)

    @property
    def watched(self) -> bool:
        """Whether a solve has a cancel hook registered right now."""
        with self._lock:
            return bool(self._hooks)

    @contextlib.contextmanager
    def watch(self, cancel: Callable[[], None]) -> Iterator[None]:
        """Call ``cancel`` on a request while the block runs (at once if the request came before)."""
        with self._lock:
            self._hooks.append(cancel)
            self.started += 1
        try:
            if self._event.is_set():
                cancel()
            yield
        finally:
            with self._lock:
                self._hooks.remove(cancel)


#: the most worker processes, Dask workers or threads a run may ask for (every --jobs, --workers and --threads of
#: the command line, and an ensemble's workers=, has this limit): more is a typo, and starting that many processes
#: would stall the machine
MAX_PARALLEL = 1024


#: The stop request of this process (set by ``nnmip``'s Ctrl-C handler; library users may call ``request()``).
STOP = StopRequest()


_P = ParamSpec("_P")
_R = TypeVar("_R")


@contextlib.contextmanager
def ctrl_c_stops(announce: Callable[[str], None] | None = None, *, library: bool = True) -> Iterator[None]:
    """Within the block, Ctrl-C is a stop request (main thread only).

    Before any solve or search has started (:attr:`StopRequest.started`), Ctrl-C raises ``KeyboardInterrupt`` at
    once: there is nothing to keep.  Once one has, the first Ctrl-C asks it to stop (:data:`STOP`): the running
    solve ends with its incumbent, later solves return at once, and the call returns what it found, marked
    interrupted.  A second Ctrl-C raises ``KeyboardInterrupt``.  ``announce`` receives a line for the user at
    the first one.  A request left from an earlier call is forgotten when the block starts.

    With ``library`` (the Python API) the block changes nothing unless SIGINT has Python's default handler, so
    an application's own handler, the command's, or an enclosing block's stays in charge.
    """
    import signal

    if threading.current_thread() is not threading.main_thread() or (
            library and signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    STOP.clear()
    count = [0]

    def handler(signum: int, frame: object) -> None:
        count[0] += 1
        if count[0] > 1 or STOP.started == 0:
            raise KeyboardInterrupt
        if announce is not None:
            announce("\ninterrupted: stopping the solver; the best solution found so far is kept (Ctrl-C again "
                     "to quit at once)")
        STOP.request()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def stops_on_ctrl_c(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """A Python API function during which Ctrl-C ends the work with what it found (:func:`ctrl_c_stops`)."""
    import functools
    import logging

    log = logging.getLogger(fn.__module__)

    @functools.wraps(fn)
    def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with ctrl_c_stops(lambda line: log.warning(line.strip())):
            return fn(*args, **kwargs)

    return call


def stop_on_sigint() -> None:
    """Make SIGINT a stop request in this process (the start of a worker process: a Ctrl-C, or the SIGINT its
    parent forwards, stops its solves, which return their incumbents, instead of raising ``KeyboardInterrupt``).
    """
    import signal

    if threading.current_thread() is threading.main_thread():   # elsewhere (a Dask worker's thread) it cannot
        signal.signal(signal.SIGINT, lambda _signum, _frame: STOP.request())
