"""Run a batch of independent tasks serially, in local processes or on a Dask cluster, with ordered results.

Every batch path of nnmip (the points of ``nnmip verify --points``, the members of an ensemble, the seeds of a
benchmark, the instances of a VNN-COMP family) hands its work to an :class:`Executor`::

    with make_executor(jobs=4) as ex:                      # or scheduler="tcp://host:8786" / "local"
        outcomes = ex.map(task_fn, items, shared=net)      # one Outcome per item, in the order of ``items``
    values = unwrap(outcomes)                              # the values, or an ExecutorError for the first failure

``task_fn`` is a module-level function (workers import it by name) called as ``task_fn(item)`` or, with
``shared``, ``task_fn(shared, item)``; ``items`` and ``shared`` are small picklable descriptions (a network,
a point, a question, options).  ``shared`` travels once per worker, not once per task.

What every executor guarantees
------------------------------
* **Order**: ``map`` returns one :class:`Outcome` per item, at the item's position, whatever the completion order.
* **No silent gap**: each outcome holds either the task's value or a :class:`TaskError` with a code.  A worker
  that dies while running a task (killed, out of memory, a crash in native code) costs that task one attempt;
  the task is run once more and, if its worker dies again, reported as ``E0804``.  An exception inside the task
  is ``E0805`` (not retried: it would fail the same way again).  An :class:`~nnmip.errors.NnmipError` raised by
  a task (bad input, a missing solver) is raised again by ``map`` in the calling process, exactly as a serial
  loop would raise it.
* **Time limits** belong to the task description and are enforced on the worker: the clock starts when the task
  starts there, not when it was queued.
* **Progress**: ``progress(state, outcome)`` after every finished task, with the counts done / running / failed.
* **Ctrl-C** (a stop request, :data:`nnmip.solution.STOP`; serial and local processes): no new task starts; the
  running tasks are asked to stop (local workers get SIGINT, which stops their solves as it does in this process)
  and return what they found; every task that never started gets ``E0807``.
* **One thread per task**: tasks run with their BLAS/OpenMP pools (through ``threadpoolctl``) and their solvers
  (``SolveOptions.threads`` when a task does not set it) limited to ``threads`` (default 1), serial runs
  included: one task per core is the parallelism, and a solver's or BLAS's own threads would only spin on the
  cores other tasks use.  ``threads=None`` leaves the libraries' defaults.
* **Chunks**: the process and Dask executors send short tasks in chunks (several items in one message), sized
  from the tasks' measured times so that a chunk lasts about :data:`CHUNK_SECONDS` on its worker and shrinking
  towards the end of the batch; the first chunk of each worker holds one item.  Results and progress remain per
  item, in order; each item starts its own clock (time limits are per item).

Processes use :class:`concurrent.futures.ProcessPoolExecutor` (``forkserver`` start where available; ``fork`` on
request).  The pool starts its workers when the executor is made, so that they start while the caller prepares
its batch, and it serves every ``map`` until :meth:`Executor.close`.  A dead worker breaks the whole pool, and
the pool cannot say whose worker died: every task that was running is charged an attempt and run again *alone*,
so the second crash of a task is its own and an innocent neighbour of a crashing task is never reported lost.
Dask uses ``distributed.Client``; the scheduler re-runs a task whose worker died and reports ``KilledWorker``
after ``distributed.scheduler.allowed-failures`` deaths (set to 1 for the clusters nnmip starts, so a task is
retried once; see docs/distributed.md for clusters started by hand).  A chunk whose worker died twice is split,
and its items are run again one by one (each retried once more): a task that kills every worker it runs on can
thus cost four worker deaths, but its neighbours in the chunk keep their answers.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import pickle
import tempfile
import time
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from nnmip.errors import NnmipError
from nnmip.solution import MAX_PARALLEL, STOP, default_solver_threads, stop_on_sigint

log = logging.getLogger(__name__)

DASK_HELP = "help: install the extra: pip install 'nnmip[dask]' (or run without --scheduler: --jobs N uses local " \
            "processes)"
#: attempts a task gets when its worker dies under it (the first run and one retry)
ATTEMPTS = 2
#: the code of a task that never started because of a stop request (Ctrl-C)
INTERRUPTED_CODE = "E0807"
#: a chunk of tasks should last about this long on its worker (seconds): long enough that the executor's own
#: cost per message (pickling, a round trip, the scheduler's bookkeeping: about a millisecond) is a few percent
CHUNK_SECONDS = 0.1
#: the most items in one chunk
MAX_CHUNK = 256
#: modules the forkserver imports once, so that the worker processes it forks start with them loaded
PRELOAD = ("nnmip.drivers.executor", "nnmip.drivers.verify")
#: environment variables of the thread pools of BLAS and OpenMP libraries loaded after a worker's limit is set
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class ExecutorError(NnmipError, RuntimeError):
    """A batch cannot be run (no Dask, an unreachable scheduler, a bad job count) or a task has no answer."""

    code = "E0800"


@dataclass(frozen=True)
class TaskError:
    """Why a task has no value: a code (``E0804`` worker lost twice, ``E0805`` exception in the task) and a
    message.
    """

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass
class Outcome:
    """The end of one task: its value or its error, the attempts it took, and its time on the worker."""

    index: int
    value: Any = None
    error: TaskError | None = None
    attempts: int = 1
    seconds: float = 0.0        # wall-clock time of the last attempt, on the worker
    cpu_seconds: float = 0.0    # CPU time of the worker process during the last attempt
    worker: str = ""            # host:pid of the worker that ran the last attempt

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class BatchState:
    """Counts for a progress display: ``done`` tasks with a value, ``failed`` with an error, ``running`` now."""

    total: int
    done: int = 0
    failed: int = 0
    running: int = 0
    started: float = field(default_factory=time.perf_counter)
    chunks: int = 0      # messages (chunks of tasks) sent to workers so far

    @property
    def finished(self) -> int:
        return self.done + self.failed


Progress = Callable[[BatchState, Outcome], None]


# ------------------------------------------------------------------------------------------------------------
# what runs on a worker
# ------------------------------------------------------------------------------------------------------------
_SHARED: dict[str, Any] = {}     # the ``shared`` payload of the current batch, unpickled once per worker process
_LIMITED: list[int | None] = [None]   # the thread limit set in this worker process
_WORKER: list[bool] = [False]          # whether this process is a worker that took SIGINT as a stop request


def _set_shared(token: str, source: bytes | str) -> Any:
    """The batch's ``shared`` object from its pickle bytes, or from the file holding them (unpickled once per
    process and batch).

    The payload travels as pickle bytes (protocol 4: numpy arrays come back as fresh aligned copies) rather than
    through Dask's own serialisation, which may hand numpy arrays over as views of a network buffer: numpy then
    takes other code paths and a forward pass can differ from the serial one in the last bits.
    """
    if token not in _SHARED:
        _SHARED.clear()
        if isinstance(source, str):
            with open(source, "rb") as f:
                source = f.read()
        _SHARED[token] = pickle.loads(source)
    return _SHARED[token]


def _worker_name() -> str:
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


@contextlib.contextmanager
def task_threads(threads: int | None) -> Iterator[None]:
    """Within the block, BLAS/OpenMP thread pools (``threadpoolctl``) and solvers (for solves that do not set
    ``SolveOptions.threads``) use ``threads`` threads; ``None`` changes nothing.  Restored on exit.
    """
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    before = default_solver_threads()
    with threadpool_limits(limits=int(threads)):
        default_solver_threads(threads, set_=True)
        try:
            yield
        finally:
            default_solver_threads(before, set_=True)


def _limit_threads(threads: int | None) -> None:
    """In a worker process: thread pools and solvers to ``threads`` for the rest of its life (set once: a limit
    costs milliseconds, a task may take less).  Libraries loaded later read the environment variables.
    """
    if threads is None or _LIMITED[0] == threads:
        return
    from threadpoolctl import threadpool_limits

    for var in THREAD_ENV:
        os.environ[var] = str(threads)
    threadpool_limits(limits=int(threads))
    default_solver_threads(threads, set_=True)
    _LIMITED[0] = threads


def _as_worker() -> None:
    """In a worker process (once): SIGINT is a stop request, which stops the running solve (it returns its
    incumbent) and the rest of its chunk, instead of a ``KeyboardInterrupt``.
    """
    if not _WORKER[0]:
        stop_on_sigint()
        _WORKER[0] = True


def _ready() -> int:
    """A first task for a new worker process: it is up (with the preloaded modules) once this returns."""
    _as_worker()
    return os.getpid()


def _call(fn: Callable[..., Any], item: Any, shared: Any = None, with_shared: bool = False) -> tuple[Any, ...]:
    """Run one task and describe how it ended: ``("ok", value, ...)``, ``("nnmip", error, ...)`` or
    ``("error", message, ...)``, each followed by (wall seconds, CPU seconds, worker).  Never raises, so that an
    exception of the task is not taken for a lost worker.
    """
    t0, c0 = time.perf_counter(), time.process_time()

    def tail() -> tuple[float, float, str]:
        return time.perf_counter() - t0, time.process_time() - c0, _worker_name()
    try:
        value = fn(shared, item) if with_shared else fn(item)
    except NnmipError as exc:
        return ("nnmip", exc, *tail())
    except Exception as exc:   # noqa: BLE001  (reported as the task's error, with its type)
        log.debug("task failed", exc_info=True)   # the traceback with --log-level DEBUG, as for internal errors
        return ("error", f"{type(exc).__name__}: {exc}", *tail())
    return ("ok", value, *tail())


#: on a Dask worker: the batches stopped by their caller (:func:`_stop_worker`); a chunk of one of them that starts
#: later runs nothing
_STOPPED: set[str] = set()


def _run_chunk(fn: Callable[..., Any], items: list[Any], token: str | None, source: bytes | str | None,
               threads: int | None, batch: str | None = None) -> list[tuple[Any, ...]]:
    """On a worker: the items of one chunk in order, one :func:`_call` each; stops after an input error (the
    driver raises it, as a serial loop would).
    """
    _limit_threads(threads)
    _as_worker()
    if batch is not None and batch in _STOPPED:   # queued on the worker before its batch was stopped
        return [("interrupted", None, 0.0, 0.0, _worker_name())] * len(items)
    STOP.clear()    # a chunk is sent only while the batch is not stopped (a worker serves many batches)
    shared = _set_shared(token, source) if token is not None and source is not None else None
    out: list[tuple[Any, ...]] = []
    for item in items:
        if STOP.is_set():   # SIGINT from the caller: the rest of the chunk is not run
            out.append(("interrupted", None, 0.0, 0.0, _worker_name()))
            continue
        raw = _call(fn, item, shared, with_shared=token is not None)
        out.append(raw)
        if raw[0] == "nnmip":
            break
    return out


class _Chunker:
    """Hands out the items of a batch in chunks: one item for each worker's first chunk, then enough items for
    about ``target`` seconds (from the mean time of the items done so far), never more than a half of the
    remaining items per worker (so that the end of the batch is shared out finely).
    """

    def __init__(self, n: int, workers: int, target: float = CHUNK_SECONDS) -> None:
        self.n, self.workers, self.target = n, max(1, workers), target
        self.next = 0
        self.timed = 0
        self.seconds = 0.0

    @property
    def left(self) -> int:
        return self.n - self.next

    def record(self, seconds: float) -> None:
        self.timed += 1
        self.seconds += max(0.0, seconds)

    def rest(self) -> list[int]:
        """Every item not handed out yet (none are left afterwards)."""
        idx = list(range(self.next, self.n))
        self.next = self.n
        return idx

    def take(self) -> list[int]:
        size = 1
        if self.timed:
            per = self.seconds / self.timed
            size = math.ceil(self.target / per) if per > 0 else MAX_CHUNK
        size = max(1, min(size, math.ceil(self.left / (2 * self.workers)), MAX_CHUNK))
        idx = list(range(self.next, self.next + size))
        self.next += size
        return idx


def _nothing() -> None:
    """The cancel hook of a batch: its tasks look at the stop request themselves."""


def _not_started(out: Outcome) -> None:
    out.error = TaskError(INTERRUPTED_CODE, f"task {out.index} was not run: interrupted (Ctrl-C)")


def _signal_workers(pool: ProcessPoolExecutor | None) -> None:
    """SIGINT to the pool's worker processes: each stops its running solve and the rest of its chunk."""
    import signal

    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            if proc.pid is not None:
                os.kill(proc.pid, signal.SIGINT)


def _record(out: Outcome, raw: tuple[Any, ...]) -> None:
    kind, payload, out.seconds, out.cpu_seconds, out.worker = raw
    if kind == "nnmip":
        raise payload
    if kind == "interrupted":
        _not_started(out)
    elif kind == "error":
        out.error = TaskError("E0805", f"task {out.index} failed: {payload}")
    else:
        out.value = payload


def _lost(out: Outcome, detail: str) -> None:
    out.error = TaskError("E0804", f"task {out.index} lost its worker {ATTEMPTS} times ({detail}); no answer")


# ------------------------------------------------------------------------------------------------------------
# executors
# ------------------------------------------------------------------------------------------------------------
class Executor:
    """Runs ``fn`` over ``items``; see the module docstring for the guarantees.  ``threads`` is the thread limit
    of every task (default 1; ``None``: the libraries' own defaults).
    """

    name = "executor"
    threads: int | None = 1

    @property
    def workers(self) -> int:
        return 1

    def map(self, fn: Callable[..., Any], items: Iterable[Any], *, shared: Any = None, has_shared: bool = False,
            progress: Progress | None = None) -> list[Outcome]:
        """One :class:`Outcome` per item, in order.  ``fn(item)``, or ``fn(shared, item)`` when ``shared`` is
        given (or ``has_shared`` is true: a ``shared`` that is ``None``).
        """
        raise NotImplementedError

    def values(self, fn: Callable[..., Any], items: Iterable[Any], *, shared: Any = None,
               has_shared: bool = False) -> list[Any]:
        """The values of :meth:`map`; an :class:`ExecutorError` for the first task without one."""
        return unwrap(self.map(fn, items, shared=shared, has_shared=has_shared))

    def describe(self) -> str:
        return self.name

    def close(self) -> None:
        """Release the workers (idempotent)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def unwrap(outcomes: Sequence[Outcome]) -> list[Any]:
    """The values of ``outcomes``; an :class:`ExecutorError` naming the first task that has none."""
    for o in outcomes:
        if o.error is not None:
            raise ExecutorError.at(o.error.code, o.error.message,
                                   notes=["help: run the batch again; a task that always loses its worker may need "
                                          "more memory, or has crashed the solver (try --jobs 1 to see)"])
    return [o.value for o in outcomes]


def _check_jobs(jobs: int) -> int:
    if int(jobs) != jobs or not 1 <= jobs <= MAX_PARALLEL:
        raise ExecutorError.at("E0803", f"--jobs must be a whole number from 1 to {MAX_PARALLEL}, not {jobs}",
                               notes=["help: --jobs 1 runs serially; the default is the number of cores"])
    return int(jobs)


def _check_threads(threads: int | None) -> int | None:
    if threads is not None and (int(threads) != threads or not 1 <= threads <= MAX_PARALLEL):
        raise ExecutorError.at("E0803", f"the threads of a task must be a whole number from 1 to {MAX_PARALLEL}, "
                               f"not {threads}",
                               notes=["help: --threads N gives each task N solver threads (default 1)"])
    return None if threads is None else int(threads)


class SerialExecutor(Executor):
    """Every task in this process, one after another (the reference the others must match)."""

    name = "serial"

    def __init__(self, threads: int | None = 1) -> None:
        self.threads = _check_threads(threads)

    def map(self, fn: Callable[..., Any], items: Iterable[Any], *, shared: Any = None, has_shared: bool = False,
            progress: Progress | None = None) -> list[Outcome]:
        items = list(items)
        with_shared = has_shared or shared is not None
        state = BatchState(len(items))
        outs = []
        # a batch under way: Ctrl-C is a stop request that keeps what is done, and no task starts after it
        with task_threads(self.threads), STOP.watch(_nothing):
            for i, item in enumerate(items):
                out = Outcome(i)
                if STOP.is_set():
                    out.attempts = 0
                    _not_started(out)
                    outs.append(out)
                    continue
                state.running = 1
                state.chunks += 1
                _record(out, _call(fn, item, shared, with_shared=with_shared))
                state.running = 0
                state.done += out.ok
                state.failed += not out.ok
                outs.append(out)
                if progress:
                    progress(state, out)
        return outs


def _context(method: str | None = None) -> Any:
    methods = multiprocessing.get_all_start_methods()
    if method is not None and method in methods:
        return multiprocessing.get_context(method)
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


class ProcessExecutor(Executor):
    """``jobs`` worker processes on this machine (``concurrent.futures.ProcessPoolExecutor``), started at once
    and kept for every :meth:`map` until :meth:`close`.

    ``method`` is the start method (default ``forkserver`` where available, else ``spawn``; ``fork`` starts
    workers that inherit this process as it is, and needs no ``if __name__ == "__main__"`` guard in scripts);
    ``preload`` names modules the forkserver imports before it forks the workers.
    """

    name = "processes"

    def __init__(self, jobs: int, *, threads: int | None = 1, method: str | None = None,
                 preload: Sequence[str] = (), start: bool = True) -> None:
        self.jobs = _check_jobs(jobs)
        self.threads = _check_threads(threads)
        self.method = method
        self.preload = tuple(dict.fromkeys((*PRELOAD, *preload)))
        self._pool: ProcessPoolExecutor | None = None
        if start:
            self.start()

    @property
    def workers(self) -> int:
        return self.jobs

    def describe(self) -> str:
        return f"{self.jobs} local processes"

    def start(self) -> None:
        """Start the worker processes now (idempotent): they import while the caller goes on."""
        if self._pool is not None:
            return
        ctx = _context(self.method)
        if ctx.get_start_method() == "fork":
            from nnmip.backends import prepare_fork

            prepare_fork()
        elif ctx.get_start_method() == "forkserver":
            ctx.set_forkserver_preload(list(self.preload))
        self._pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=ctx)
        # a pool starts a process per submitted task while none is idle: one small task per worker starts them all
        for _ in range(self.jobs):
            self._pool.submit(_ready)

    def _restart(self) -> ProcessPoolExecutor:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self.start()
        assert self._pool is not None
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def map(self, fn: Callable[..., Any], items: Iterable[Any], *, shared: Any = None, has_shared: bool = False,
            progress: Progress | None = None) -> list[Outcome]:
        items = list(items)
        n = len(items)
        outs = [Outcome(i, attempts=0) for i in range(n)]
        state = BatchState(n)
        if n == 0:
            return outs
        with_shared = has_shared or shared is not None
        token = uuid.uuid4().hex if with_shared else None
        path = None
        if with_shared:
            # the payload travels once per worker: each reads it from this file on its first chunk of the batch
            fd, path = tempfile.mkstemp(prefix="nnmip-batch-", suffix=".pkl")
            with os.fdopen(fd, "wb") as fh:
                fh.write(pickle.dumps(shared, protocol=4))
        self.start()
        assert self._pool is not None
        pool = self._pool
        chunks = _Chunker(n, self.jobs)
        alone: deque[int] = deque()    # suspects of a pool crash, each re-run on its own
        charged = [0] * n              # crashes each task was running in
        inflight: dict[Future[Any], list[int]] = {}

        def submit(idx: list[int]) -> None:
            for i in idx:
                outs[i].attempts += 1
            inflight[pool.submit(_run_chunk, fn, [items[i] for i in idx], token, path, self.threads)] = idx
            state.chunks += 1
        signalled = False
        under_way = contextlib.ExitStack()
        under_way.enter_context(STOP.watch(_nothing))   # Ctrl-C now is a stop request that keeps what is done
        try:
            while chunks.left or alone or inflight:
                if STOP.is_set():
                    for i in alone:
                        _not_started(outs[i])
                        self._finish(state, outs[i], progress)
                    for i in chunks.rest():
                        _not_started(outs[i])
                        self._finish(state, outs[i], progress)
                    alone.clear()
                    if not signalled:   # the running tasks stop their solves and return what they have
                        signalled = True
                        _signal_workers(pool)
                    if not inflight:
                        break
                if alone:
                    if not inflight:
                        submit([alone.popleft()])
                else:
                    while chunks.left and len(inflight) < self.jobs:
                        submit(chunks.take())
                state.running = min(self.jobs, sum(len(v) for v in inflight.values()))
                done, _ = wait(list(inflight), timeout=0.2, return_when=FIRST_COMPLETED)
                crashed: list[int] = []
                for f in done:
                    idx = inflight.pop(f)
                    try:
                        raws = f.result()
                    except BrokenProcessPool:
                        crashed.extend(idx)
                        continue
                    self._take(outs, idx, raws, chunks, state, progress, inflight)
                if not crashed:
                    continue
                # the pool is broken: every other running chunk fails too; collect them and start a new pool
                for f, idx in list(inflight.items()):
                    try:
                        raws = f.result()
                    except BrokenProcessPool:
                        crashed.extend(idx)
                        continue
                    self._take(outs, idx, raws, chunks, state, progress, {})
                inflight.clear()
                pool = self._restart()
                # every task the crash took is charged; the survivors run again one at a time, so that a task
                # that crashes its worker twice (the second time alone) is the one reported
                log.warning("a worker process ended abruptly under tasks %s; running them again one at a time",
                            sorted(crashed))
                for i in sorted(crashed):
                    charged[i] += 1
                    if charged[i] >= ATTEMPTS:
                        _lost(outs[i], "its worker process ended abruptly")
                        self._finish(state, outs[i], progress)
                    else:
                        alone.append(i)
        except BaseException:
            for g in inflight:
                g.cancel()
            raise
        finally:
            under_way.close()
            if path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(path)
        return outs

    def _take(self, outs: list[Outcome], idx: list[int], raws: list[tuple[Any, ...]], chunks: _Chunker,
              state: BatchState, progress: Progress | None, inflight: dict[Future[Any], list[int]]) -> None:
        """Record the results of one chunk (an input error of a task is raised, as in a serial loop)."""
        for i, raw in zip(idx, raws, strict=False):
            _record(outs[i], raw)
            chunks.record(outs[i].seconds)
            state.running = min(self.jobs, sum(len(v) for v in inflight.values()))
            self._finish(state, outs[i], progress)

    @staticmethod
    def _finish(state: BatchState, out: Outcome, progress: Progress | None) -> None:
        state.done += out.ok
        state.failed += not out.ok
        if progress:
            progress(state, out)


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ExecutorError.at("E0801", "--scheduler needs Dask distributed, which is not installed",
                               notes=[DASK_HELP]) from None
    return distributed


class DaskExecutor(Executor):
    """Tasks on a Dask distributed cluster: ``scheduler`` is an address (``tcp://host:8786``) or ``"local"``
    (a :class:`distributed.LocalCluster` of ``workers`` single-threaded processes, started here).
    """

    name = "dask"

    def __init__(self, scheduler: str, workers: int | None = None, timeout: float = 10.0, *,
                 threads: int | None = 1) -> None:
        distributed = _distributed()
        import dask

        self.threads = _check_threads(threads)
        self._cluster: Any = None
        # the cluster's chatter follows the library's log level (nnmip --log-level), not distributed's INFO default
        logging.getLogger("distributed").setLevel(max(logging.getLogger().getEffectiveLevel(), logging.INFO))
        # a task whose worker dies is re-run once (allowed-failures: 1); a 1-thread worker holds only the task it
        # runs (saturation 1.0), so a dying worker takes no queued task down with it
        cfg = {"distributed.scheduler.allowed-failures": ATTEMPTS - 1,
               "distributed.scheduler.worker-saturation": 1.0}
        try:
            with dask.config.set(cfg):
                if scheduler == "local":
                    n = workers or available_cores()
                    if n < 1:
                        raise ExecutorError.at("E0803", f"a local cluster needs at least 1 worker, not {n}")
                    with warnings.catch_warnings():
                        # the scheduler's HTTP endpoints move to a free port when another cluster holds 8787
                        warnings.filterwarnings("ignore", message=r"(?s)Port \d+ is already in use")
                        self._cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                                 dashboard_address=None)
                    self.client = distributed.Client(self._cluster)
                else:
                    self.client = distributed.Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            self.close()
            raise ExecutorError.at("E0802", f"cannot reach the Dask scheduler at '{scheduler}': {exc}",
                                   notes=["help: start one with 'dask scheduler' and workers with 'dask worker "
                                          "tcp://HOST:8786', or use --scheduler local"]) from None
        self.scheduler = scheduler

    @property
    def address(self) -> str:
        return str(self.client.scheduler.address)

    @property
    def workers(self) -> int:
        info = self.client.scheduler_info()
        return max(1, sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values()))

    def describe(self) -> str:
        return f"Dask at {self.address} ({self.workers} worker threads)"

    def map(self, fn: Callable[..., Any], items: Iterable[Any], *, shared: Any = None, has_shared: bool = False,
            progress: Progress | None = None) -> list[Outcome]:
        distributed = _distributed()
        items = list(items)
        n = len(items)
        outs = [Outcome(i) for i in range(n)]
        state = BatchState(n)
        if n == 0:
            return outs
        with_shared = has_shared or shared is not None
        batch = uuid.uuid4().hex[:12]
        token: str | None = None
        source: Any = None
        if with_shared:
            token = batch
            source = self.client.scatter(pickle.dumps(shared, protocol=4), broadcast=True, hash=False)
        slots = self.workers
        chunks = _Chunker(n, slots)
        where: dict[Any, list[int]] = {}
        futures: list[Any] = []
        alone: set[Any] = set()          # keys of chunks of one item split off a chunk whose worker died twice
        queue = distributed.as_completed(with_results=True, raise_errors=False)
        serial = iter(range(1 << 62))
        closed = [False] * n

        def fin(out: Outcome) -> None:
            closed[out.index] = True
            self._finish(state, out, progress, slots, n)

        def submit(idx: list[int], single: bool = False) -> None:
            fut = self.client.submit(_run_chunk, fn, [items[i] for i in idx], token, source, self.threads, batch,
                                     key=f"nnmip-{batch}-{next(serial)}", pure=False, retries=1)
            where[fut.key] = idx
            futures.append(fut)
            state.chunks += 1
            if single:
                alone.add(fut.key)
            queue.add(fut)

        def top_up() -> None:
            # up to two chunks per worker thread: the next one waits on the scheduler, not on a worker
            while chunks.left and queue.count() < 2 * slots:
                submit(chunks.take())

        stop_asked = 0.0

        def take(fut: Any, res: Any) -> None:
            idx = where[fut.key]
            if isinstance(res, BaseException) or fut.status == "error":
                exc = res if isinstance(res, BaseException) else fut.exception()
                if type(exc).__name__ == "KilledWorker" and len(idx) > 1 and not stop_asked:
                    log.warning("the workers of tasks %s died twice; running them again one at a time", idx)
                    for i in idx:
                        submit([i], single=True)
                    return
                for i in idx:
                    if type(exc).__name__ == "KilledWorker":
                        outs[i].attempts = ATTEMPTS
                        _lost(outs[i], "its Dask worker died")
                    else:
                        outs[i].error = TaskError("E0805", f"task {i} failed: {type(exc).__name__}: {exc}")
                    fin(outs[i])
            else:
                for i, raw in zip(idx, res, strict=False):
                    _record(outs[i], raw)
                    chunks.record(outs[i].seconds)
                    fin(outs[i])

        with STOP.watch(_nothing):   # Ctrl-C now is a stop request that keeps what is done
            try:
                top_up()
                while not queue.is_empty():
                    if STOP.is_set() and not stop_asked:
                        # no new chunk; the workers stop their running solves and send back what they have
                        stop_asked = time.monotonic()
                        for i in chunks.rest():
                            _not_started(outs[i])
                            fin(outs[i])
                        with contextlib.suppress(Exception):
                            self.client.run(_stop_worker, batch)
                    if stop_asked and time.monotonic() - stop_asked > DASK_STOP_GRACE:
                        break
                    if not queue.has_ready():
                        time.sleep(0.05)
                        continue
                    for fut, res in queue.next_batch(block=False):
                        take(fut, res)
                    if not stop_asked:
                        top_up()
                if stop_asked:   # the chunks that did not come back in time
                    for out in outs:
                        if not closed[out.index]:
                            _not_started(out)
                            fin(out)
                for key, lost in self._lost_counts([f.key for f in futures]).items():
                    for i in where[key]:
                        if outs[i].ok:
                            outs[i].attempts = (ATTEMPTS if key in alone else 0) + 1 + lost
            finally:
                self.client.cancel([f for f in futures if not f.done()])
                for f in futures:
                    f.release()
        return outs

    @staticmethod
    def _finish(state: BatchState, out: Outcome, progress: Progress | None, slots: int, n: int) -> None:
        state.done += out.ok
        state.failed += not out.ok
        state.running = min(slots, n - state.finished)
        if progress:
            progress(state, out)

    def _lost_counts(self, keys: list[Any]) -> dict[Any, int]:
        """How many times the worker of each task died under it (the scheduler's count; empty if it will not
        say).
        """
        try:
            return dict(self.client.run_on_scheduler(_suspicious, keys))
        except Exception:   # noqa: BLE001  (the count is for the report only)
            return {}

    def close(self) -> None:
        client, cluster = getattr(self, "client", None), self._cluster
        self._cluster = None
        if client is not None:
            client.close()
            del self.client
        if cluster is not None:
            cluster.close()


#: seconds the Dask workers get, after a stop request, to stop their running solves and send back what they have
DASK_STOP_GRACE = 10.0


def _stop_worker(batch: str) -> None:
    """On a Dask worker process (``Client.run``): the stop request, as Ctrl-C gives a local worker; the chunks of
    ``batch`` that start later run nothing.
    """
    _STOPPED.add(batch)
    STOP.request()


def _suspicious(keys: list[Any], dask_scheduler: Any = None) -> dict[Any, int]:
    """On the scheduler: the tasks of ``keys`` whose worker died under them, with the count."""
    out = {}
    for k in keys:
        ts = dask_scheduler.tasks.get(k)
        if ts is not None and ts.suspicious:
            out[k] = int(ts.suspicious)
    return out


# ------------------------------------------------------------------------------------------------------------
# choosing one
# ------------------------------------------------------------------------------------------------------------
def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # pragma: no cover  (macOS, Windows)
        return os.cpu_count() or 1


def make_executor(jobs: int | None = None, scheduler: str | None = None, *, threads: int | None = 1,
                  method: str | None = None) -> Executor:
    """``scheduler`` (an address or ``"local"``, needs ``nnmip[dask]``): a :class:`DaskExecutor`, with ``jobs``
    workers for ``"local"``; otherwise ``jobs`` local processes (default: the cores available, started now),
    serial for 1.  ``threads`` limits the threads of each task (see the module docstring); ``method`` is the start
    method of local processes.
    """
    if jobs is not None:
        _check_jobs(jobs)
    if scheduler:
        return DaskExecutor(scheduler, workers=jobs, threads=threads)
    n = available_cores() if jobs is None else jobs
    return SerialExecutor(threads) if n == 1 else ProcessExecutor(n, threads=threads, method=method)


def parallel_map(fn: Callable[..., Any], items: Iterable[Any], *, jobs: int | None = None,
                 scheduler: str | None = None, executor: Executor | None = None, shared: Any = None,
                 has_shared: bool = False, threads: int | None = 1) -> list[Any]:
    """``[fn(item) for item in items]`` (or ``fn(shared, item)``) on an executor: the one given, else
    :func:`make_executor` of ``jobs`` / ``scheduler`` / ``threads`` (closed afterwards).  An
    :class:`ExecutorError` when a task has no value; an :class:`~nnmip.errors.NnmipError` of a task is raised as is.
    """
    if executor is not None:
        return executor.values(fn, items, shared=shared, has_shared=has_shared)
    with make_executor(jobs, scheduler, threads=threads) as ex:
        return ex.values(fn, items, shared=shared, has_shared=has_shared)
