"""CBC backend: a MILP by CBC's own program on an MPS file, LPs in process through python-mip (``add_var`` per
column and one tight loop adding the CSR rows).

A MILP is solved by CBC's own program (the ``cbc`` executable that ships with python-mip's CBC build,
``cbcbox``) on the model written by :func:`nnmip.io.mps.write_mps` (every number as ``repr(float)``): CBC honours
an interrupt there (it stops its search and writes its incumbent), which the library interface cannot do.  A stop
request (:data:`nnmip.solution.STOP`) sends that program SIGINT; the incumbent it writes (with 17 significant
digits) comes back with ``Status.INTERRUPTED``.  LPs, MILPs with python-mip model attributes among the solver
options (``cuts``, ``emphasis`` ...), and every MILP when ``NNMIP_CBC_PROGRAM=0`` is in the environment (or when
the program is missing) are solved in process by python-mip.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from nnmip.backends._common import Capabilities, captured, finite, gap, import_solver, require_linear
from nnmip.errors import SolverError
from nnmip.model import MatrixModel
from nnmip.solution import STOP, Progress, RawResult, SolveOptions, Status, solver_threads

log = logging.getLogger(__name__)

#: python-mip ``OptimizationStatus`` member name -> our status (unknown names map to ``Status.ERROR``).
STATUS: dict[str, Status] = {
    "OPTIMAL": Status.OPTIMAL,
    "INFEASIBLE": Status.INFEASIBLE,
    "INT_INFEASIBLE": Status.INFEASIBLE,
    "UNBOUNDED": Status.UNBOUNDED,
    "INF_OR_UNBD": Status.INF_OR_UNBD,
    "FEASIBLE": Status.TIME_LIMIT,           # stopped by a limit with an incumbent
    "NO_SOLUTION_FOUND": Status.TIME_LIMIT,  # stopped by a limit without one
    "TRUNCATED": Status.TIME_LIMIT,
}

_TOL = 1e-9  # integrality and primal feasibility tolerance unless solver_options overrides
_REFUSALS = ("Unrecognized parameter", "Illegal parameter", "Illegal keyword", "valid range is")




def _check_native(mip: Any, params: dict[str, str]) -> None:
    """CBC skips the solve on an unknown parameter and ignores a bad value: try them on a 1-column model."""
    probe = mip.Model(solver_name=mip.CBC)
    probe.verbose = 0
    probe.add_var(ub=1.0, obj=1.0, var_type=mip.INTEGER)
    for key, value in params.items():
        mip.cbc.cbc_set_parameter(probe.solver, key, value)
    with captured() as out:
        probe.optimize()
    bad = [ln for ln in "".join(out).splitlines() if any(w in ln for w in _REFUSALS)]
    if bad:
        raise SolverError.at("E0501", f"solver 'cbc' rejected an option: {bad[0].strip()}",
                             notes=["help: CBC option names are those of the cbc command line"])


class CbcBackend:
    """MILP/LP through python-mip with the bundled CBC (no cones, no live progress)."""

    name = "cbc"
    module = "mip"
    capabilities = Capabilities(warm_start=True, lp_duals=True, interrupts=True)

    def lp_session(self, model: MatrixModel, time_limit: float | None = None) -> CbcLpSession:
        """One LP (integrality dropped; cones refused) built once in python-mip and re-solved per objective."""
        return CbcLpSession(model, time_limit)

    def solve(self, model: MatrixModel, opts: SolveOptions) -> RawResult:
        require_linear(self.name, model)
        mip = import_solver(self.name, "mip")
        start = time.perf_counter()
        if STOP.is_set():
            return RawResult(Status.INTERRUPTED, self.name, seconds=0.0, message="interrupted before the solve")
        if opts.progress is not None:
            opts.progress(Progress(0.0, None, None))
        empty = np.diff(model.A.indptr) == 0
        if ((model.row_lb[empty] > 0.0) | (model.row_ub[empty] < 0.0)).any():
            i = int(np.flatnonzero(empty & ((model.row_lb > 0.0) | (model.row_ub < 0.0)))[0])
            return RawResult(Status.INFEASIBLE, self.name, seconds=time.perf_counter() - start,
                             message=f"row {model.row_name(i)} has no terms and its bounds exclude 0")
        if model.num_cols == 0:  # CBC refuses a model without columns
            return RawResult(Status.OPTIMAL, self.name, np.zeros(0), float(model.c0), float(model.c0),
                             time.perf_counter() - start, "empty model")

        native = {k: str(v) for k, v in opts.solver_options.items() if not hasattr(mip.Model, k)}
        program = _program() if model.is_mip and len(native) == len(opts.solver_options) else None
        if program is not None:
            if native:
                _check_native(mip, native)
            try:
                return _solve_program(program, model, opts, native, start)
            except _ProgramCrashed as exc:
                # the program died of a signal nobody sent (it aborts now and then when its time limit strikes):
                # solve in process instead, with what is left of the time limit
                log.warning("cbc: %s; solving in process instead", exc)
                if opts.time_limit is not None:
                    left = float(opts.time_limit) - (time.perf_counter() - start)
                    opts = dataclasses.replace(opts, time_limit=max(left, 0.01))

        m = mip.Model(name=model.name, sense=mip.MAXIMIZE if model.sense == "max" else mip.MINIMIZE,
                      solver_name=mip.CBC)
        m.verbose = 1 if opts.verbose else 0
        x = self._build(mip, m, model)
        m.integer_tol = _TOL
        m.infeas_tol = _TOL
        if opts.mip_gap is not None:
            m.max_mip_gap = float(opts.mip_gap)
        threads = solver_threads(opts)
        if threads is not None:
            m.threads = int(threads)
        if native:  # CBC command-line parameter names (the rest are python-mip attributes: cuts, emphasis...)
            _check_native(mip, native)
        for key, value in opts.solver_options.items():
            if key in native:
                mip.cbc.cbc_set_parameter(m.solver, key, native[key])
            else:
                setattr(m, key, value)
        if opts.warm_start is not None:
            ws = np.asarray(opts.warm_start, dtype=np.float64)
            if ws.shape != (model.num_cols,):
                raise ValueError(f"warm start has shape {ws.shape}, expected ({model.num_cols},)")
            # NaN marks unknown entries: CBC gets a partial start over the known integer columns
            m.start = [(x[j], float(ws[j])) for j in np.flatnonzero((model.vtype != "C") & ~np.isnan(ws))]

        log.debug("cbc: solving %d columns, %d rows, %d nonzeros", model.num_cols, model.num_rows,
                  model.A.nnz)
        limit = float(opts.time_limit) if opts.time_limit is not None else math.inf
        with captured(not opts.verbose) as out:
            result = self._optimize(m, limit)
        log.debug("cbc output:\n%s", "".join(out))
        if result is None:
            seconds = time.perf_counter() - start
            return RawResult(Status.INTERRUPTED, self.name, None, None, None, seconds,
                             "interrupted: CBC in process (an LP, or python-mip model attributes among the solver "
                             "options) cannot be stopped from outside, so its incumbent is not available")
        status = STATUS.get(result.name, Status.ERROR)
        c0 = float(model.c0)
        x_out: np.ndarray | None = None
        objective = bound = None
        if status in (Status.OPTIMAL, Status.TIME_LIMIT) and m.num_solutions > 0:
            x_out = np.array([v.x for v in x], dtype=np.float64)
            objective = float(m.objective_value) + c0
        if status is Status.OPTIMAL and not model.is_mip:
            bound = objective
        elif status in (Status.OPTIMAL, Status.TIME_LIMIT):
            b = finite(m.objective_bound)
            bound = None if b is None else b + c0
        seconds = time.perf_counter() - start
        message = f"cbc status {result.name.lower()}"
        if opts.progress is not None:
            opts.progress(Progress(seconds, objective, bound, gap(objective, bound)))
        log.info("cbc: %s, objective %s, bound %s, %.2fs", status, objective, bound, seconds)
        return RawResult(status, self.name, x_out, objective, bound, seconds, message, None)

    @staticmethod
    def _optimize(m: Any, limit: float) -> Any:
        """``m.optimize`` in a worker thread while this thread waits for it or for a stop request.

        The library offers no way to stop CBC from outside, so on a stop request the worker is left to finish (it
        is a daemon thread, recorded in ``STOP.abandoned``) and None is returned at once: the command line then
        writes its outputs and ends the process.
        """
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["result"] = m.optimize(max_seconds=limit)
            except BaseException as exc:  # re-raised in the calling thread
                box["error"] = exc

        worker = threading.Thread(target=work, name="nnmip-cbc", daemon=True)
        worker.start()
        with STOP.watch(lambda: None):
            while worker.is_alive():
                if STOP.wait(0.05):
                    STOP.abandoned.append(worker)
                    return None
                worker.join(0.0)
        if "error" in box:
            raise box["error"]
        return box["result"]

    @staticmethod
    def _build(mip: Any, m: Any, model: MatrixModel) -> list[Any]:
        """Columns one ``add_var`` each; rows from CSR (equality once, ranged rows as two constraints)."""
        kind = {"C": mip.CONTINUOUS, "B": mip.BINARY, "I": mip.INTEGER}
        binary = model.vtype == "B"
        lb = np.where(binary, np.maximum(model.col_lb, 0.0), model.col_lb).tolist()
        ub = np.where(binary, np.minimum(model.col_ub, 1.0), model.col_ub).tolist()
        c = model.c.tolist()
        types = [kind[t] for t in model.vtype.tolist()]
        x = [m.add_var(lb=lb[j], ub=ub[j], obj=c[j], var_type=t) for j, t in enumerate(types)]
        A = model.A
        indptr, indices, data = A.indptr.tolist(), A.indices.tolist(), A.data.tolist()
        LinExpr = mip.LinExpr
        for i, (lo, hi) in enumerate(zip(model.row_lb.tolist(), model.row_ub.tolist(), strict=True)):
            p, q = indptr[i], indptr[i + 1]
            if p == q or (lo == -math.inf and hi == math.inf):
                continue
            expr = LinExpr([x[j] for j in indices[p:q]], data[p:q])
            if lo == hi:
                m.add_constr(expr == lo)
                continue
            if lo > -math.inf:
                m.add_constr(expr >= lo)
            if hi < math.inf:
                m.add_constr(expr <= hi)
        return x


class CbcLpSession:
    """The LP in one python-mip model; each solve sets a new objective and re-optimises the relaxation."""

    def __init__(self, model: MatrixModel, time_limit: float | None = None) -> None:
        require_linear("cbc", model)
        self.mip = import_solver("cbc", "mip")
        self.model = model.relaxed().replace(c=np.zeros(model.num_cols), c0=0.0, sense="max")
        self.m = self.mip.Model(sense=self.mip.MAXIMIZE, solver_name=self.mip.CBC)
        self.m.verbose = 0
        self.x = CbcBackend._build(self.mip, self.m, self.model)
        # which constraints carry each model row (a ranged row becomes two): their duals add up to the row's
        A = self.model.A
        nonempty = np.diff(A.indptr) > 0
        free = np.isneginf(self.model.row_lb) & np.isposinf(self.model.row_ub)
        counts = np.where(nonempty & ~free, np.where(self.model.row_lb == self.model.row_ub, 1,
                                                     np.isfinite(self.model.row_lb).astype(int)
                                                     + np.isfinite(self.model.row_ub).astype(int)), 0)
        self.row_of = np.repeat(np.arange(self.model.num_rows), counts)
        self.limit = math.inf if time_limit is None else max(float(time_limit), 1e-3)
        self.solves = 0

    def maximize(self, c: dict[int, float]) -> tuple[str, np.ndarray | None]:
        """Maximise ``sum_j c_j x_j``; the row duals (CLP's ``pi``) when the LP is solved to optimality."""
        mip = self.mip
        self.m.objective = mip.maximize(mip.xsum(float(v) * self.x[j] for j, v in c.items()))
        with captured():
            status = self.m.optimize(relax=True, max_seconds=self.limit)
        self.solves += 1
        if status.name in ("INFEASIBLE", "INT_INFEASIBLE"):
            return "infeasible", None
        if status.name != "OPTIMAL":
            return "failed", None
        pi = np.array([0.0 if k.pi is None else float(k.pi) for k in self.m.constrs], dtype=np.float64)
        if pi.size != self.row_of.size:
            return "failed", None
        return "optimal", np.bincount(self.row_of, pi, minlength=self.model.num_rows)


#: the first line of CBC's solution file -> our status ("Stopped ..." is a limit or an interrupt)
_HEADS: tuple[tuple[str, Status], ...] = (
    ("Optimal", Status.OPTIMAL),
    ("Integer infeasible", Status.INFEASIBLE),
    ("Infeasible", Status.INFEASIBLE),
    ("Unbounded", Status.UNBOUNDED),
    ("Stopped", Status.TIME_LIMIT),
)
#: seconds CBC gets to stop after SIGINT before it is killed (it stops at its next check, after the running
#: heuristic pass or node; only if it has to be killed is its incumbent lost)
STOP_GRACE = 30.0
#: seconds beyond its time limit (plus 10 us per non-zero) after which CBC is signalled as if stopped
LIMIT_MARGIN = 60.0
#: seconds after which CBC is killed at once when its log shows no solution better than the complete start it was
#: given: that start is then its incumbent, and is returned (a feasibility pump pass can take many seconds)
START_GRACE = 1.0
_START = re.compile(r"MIPStart provided solution with cost\s+(\S+)")
_FOUND = (re.compile(r"Integer solution of\s+(\S+)"), re.compile(r"\bbest\s+(\S+)\s+in\b"),
          re.compile(r"BestSol:\s*(\S+)"))


def _improved_on_start(lines: list[str]) -> bool | None:
    """Whether CBC's log shows a solution better than the MIP start (None: the start was not taken).

    Solutions show as ``Integer solution of V``, ``best V in``, ``BestSol: V`` or a value in the BestSol column of
    the feasibility pump's table (a row of seven fields); anything unreadable counts as better (CBC is waited for).
    """
    cost = None
    for line in lines:
        if cost is None:
            m = _START.search(line)
            if m is not None:
                try:
                    cost = float(m.group(1))
                except ValueError:
                    return True
            continue
        values = [m.group(1) for r in _FOUND for m in r.finditer(line)]
        fields = line.split()
        if len(fields) == 7 and fields[0].isdigit() and fields[1].isdigit():   # a feasibility pump row
            values.append(fields[5])
        for v in values:
            try:
                if float(v) < cost - 1e-9 * (1.0 + abs(cost)):
                    return True
            except ValueError:
                if not v.isalpha():   # a word in the BestSol column (no solution yet) is fine
                    return True
    return None if cost is None else False


def _program() -> str | None:
    """CBC's executable from the build python-mip loads (``cbcbox``), or None when there is none or
    ``NNMIP_CBC_PROGRAM`` is ``0``, ``no`` or ``false``.
    """
    if os.environ.get("NNMIP_CBC_PROGRAM", "").strip().lower() in ("0", "no", "false"):
        return None
    try:
        import cbcbox  # type: ignore[import-not-found, import-untyped, unused-ignore]

        path = str(cbcbox.cbc_bin_path())
    except Exception:   # an older python-mip with its own library, or a broken install: solve in process
        return None
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


class _ProgramCrashed(RuntimeError):
    """CBC's program died of a signal it was not sent (a crash), leaving no solution file."""


def _solve_program(program: str, model: MatrixModel, opts: SolveOptions, native: dict[str, str],
                   start: float) -> RawResult:
    """Solve the MILP with CBC's program on the model written as MPS (see the module docstring)."""
    from nnmip.io.mps import write_mps

    sign = -1.0 if model.sense == "max" else 1.0      # CBC's program minimises: a maximum is the minimum of -c
    # nnmip's own MPS writer: every number as repr(float), so CBC solves exactly our model (python-mip's writer
    # keeps about ten significant digits, and a solution of the rounded model can miss the forward pass); the
    # plain names c0, c1, ... keep the file small and are what the start file names
    binary = model.vtype == "B"         # as python-mip takes them: a binary column's bounds within [0, 1]
    plain = model.replace(c=sign * model.c, c0=0.0, sense="min", col_blocks=(), row_blocks=(), notes=(),
                          name="nnmip", col_lb=np.where(binary, np.maximum(model.col_lb, 0.0), model.col_lb),
                          col_ub=np.where(binary, np.minimum(model.col_ub, 1.0), model.col_ub))
    with tempfile.TemporaryDirectory(prefix="nnmip-cbc-") as tmp:
        folder = Path(tmp)
        try:
            buf = io.StringIO()
            write_mps(plain, buf)
            # CBC's program reads fixed-format MPS unless the NAME line ends in FREE
            text = buf.getvalue().replace("\nNAME nnmip\n", "\nNAME nnmip FREE\n", 1)
            (folder / "model.mps").write_text(text, encoding="ascii")
        except OSError as exc:
            raise SolverError.at("E0501", f"solver 'cbc' could not write the model for its program: {exc}",
                                 notes=["help: check the space in the temporary folder (TMPDIR)"]) from None
        args = [program, str(folder / "model.mps"), "-integerTolerance", repr(_TOL), "-primalTolerance", repr(_TOL)]
        if opts.time_limit is not None:
            args += ["-seconds", repr(max(float(opts.time_limit), 0.01))]
        if opts.mip_gap is not None:
            args += ["-ratioGap", repr(float(opts.mip_gap))]
        threads = solver_threads(opts)
        if threads is not None:
            args += ["-threads", str(int(threads))]
        for key, value in native.items():
            args += [f"-{key}", value]
        if opts.warm_start is not None:
            ws = np.asarray(opts.warm_start, dtype=np.float64)
            if ws.shape != (model.num_cols,):
                raise ValueError(f"warm start has shape {ws.shape}, expected ({model.num_cols},)")
            known = np.flatnonzero((model.vtype != "C") & ~np.isnan(ws))
            if known.size:
                lines = [f"{i} c{j} {float(ws[j])!r}" for i, j in enumerate(known.tolist())]
                (folder / "start.txt").write_text("Feasible solution - objective 0\n" + "\n".join(lines) + "\n")
                args += ["-mipStart", str(folder / "start.txt")]
        solution = folder / "solution.txt"
        args += ["-precisionOutput", "%.17g", "-printingOptions", "all", "-solve", "-solution", str(solution)]
        log.debug("cbc: %s", " ".join(args))
        if STOP.is_set():   # the request came while the model was built: do not start CBC
            return RawResult(Status.INTERRUPTED, "cbc", seconds=time.perf_counter() - start,
                             message="interrupted before the solve")
        start_x = None
        if opts.warm_start is not None and not np.isnan(opts.warm_start).any():
            start_x = np.asarray(opts.warm_start, dtype=np.float64)
        out, code, stopped, gave_up = _run_program(args, opts, model, start_x is not None)
        text = solution.read_text(encoding="utf-8", errors="replace") if solution.is_file() else ""
    seconds = time.perf_counter() - start
    head = text.splitlines()[0] if text else ""
    status = next((st for word, st in _HEADS if head.startswith(word)), Status.ERROR)
    if stopped:
        status = Status.INTERRUPTED
    x_out: np.ndarray | None = None
    objective = bound = None
    if gave_up and start_x is not None:
        # CBC was inside a heuristic pass and had found nothing better than the start: that is its incumbent
        objective = float(model.c @ start_x) + float(model.c0)
        log.info("cbc: interrupted in a heuristic pass; its incumbent is the start it was given (%s)", objective)
        return RawResult(Status.INTERRUPTED, "cbc", start_x.copy(), objective, None, seconds,
                         "interrupted: CBC's incumbent was the start solution it was given")
    found = re.search(r"objective value\s+(\S+)", head)
    value = float(found.group(1)) if found else math.inf
    if status in (Status.OPTIMAL, Status.TIME_LIMIT, Status.INTERRUPTED) and abs(value) < 1e40:
        x_out = _read_columns(text, model.num_cols)
        if x_out is not None:
            objective = float(model.c @ x_out) + float(model.c0)
    lower = re.search(r"^Lower bound:\s+(\S+)", out, re.MULTILINE)
    if lower is not None and finite(float(lower.group(1))) is not None:
        bound = sign * float(lower.group(1)) + float(model.c0)
    elif status is Status.OPTIMAL:
        bound = objective
    if status is Status.OPTIMAL and x_out is None:
        status = Status.ERROR
    if not text and code < 0 and not stopped and -code != signal.SIGKILL:
        raise _ProgramCrashed(f"CBC's program ended by signal {-code} without a solution file")
    message = f"cbc: {head.split(' - ')[0].strip().lower() or f'no solution file (exit code {code})'}"
    if stopped:
        message = "interrupted: CBC stopped on request" + ("" if x_out is not None else " before it found a solution")
    if status is Status.ERROR:
        tail = "\n".join(out.strip().splitlines()[-5:])
        raise SolverError.at("E0501", f"solver 'cbc' failed ({message})",
                             notes=[f"note: the end of CBC's log:\n{tail}" if tail else "note: CBC printed nothing",
                                    "help: run again with --verbose to see the whole log"])
    if opts.progress is not None:
        opts.progress(Progress(seconds, objective, bound, gap(objective, bound)))
    log.info("cbc: %s, objective %s, bound %s, %.2fs", status, objective, bound, seconds)
    return RawResult(status, "cbc", x_out, objective, bound, seconds, message, None)


def _run_program(args: list[str], opts: SolveOptions, model: MatrixModel, has_start: bool
                 ) -> tuple[str, int, bool, bool]:
    """Run CBC's program; a stop request sends it SIGINT.  The log, the exit code, whether it was stopped, and
    whether it was killed :data:`START_GRACE` s after the request with nothing better than its complete start
    (``has_start``) in its log.
    """
    lines: list[str] = []
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace")
    gave_up = False
    stopped = threading.Event()     # on request (Ctrl-C)
    signalled = threading.Event()   # on request, or by the safety net below

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if opts.verbose:
                sys.stdout.write(line)   # where the in-process solvers print their logs

    def interrupt() -> None:
        signalled.set()
        with contextlib.suppress(OSError):
            proc.send_signal(signal.SIGINT)

    def stop() -> None:
        stopped.set()
        interrupt()

    reader = threading.Thread(target=read, name="nnmip-cbc-log", daemon=True)
    reader.start()
    # a safety net beyond CBC's own limit: the limit plus a minute for reading and writing the files
    cap = None if opts.time_limit is None else (time.monotonic() + float(opts.time_limit) + LIMIT_MARGIN
                                                + model.A.nnz * 1e-5)
    try:
        with STOP.watch(stop):
            # until it ends, or until it is signalled: then it gets STOP_GRACE seconds (below), and is killed if
            # it has not ended (CBC has been seen to hang on a futex from its start, ignoring SIGINT)
            while proc.poll() is None and not signalled.is_set():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(0.1)
                if cap is not None and time.monotonic() > cap:
                    log.warning("cbc: still running well after its time limit; stopping it")
                    interrupt()
                    cap = None
        if signalled.is_set():
            asked = time.monotonic()
            while proc.poll() is None and time.monotonic() - asked < STOP_GRACE:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(0.1)
                if (has_start and stopped.is_set() and proc.poll() is None
                        and time.monotonic() - asked > START_GRACE and _improved_on_start(list(lines)) is False):
                    gave_up = True
                    proc.kill()
            if proc.poll() is None:
                proc.kill()
    finally:
        if proc.poll() is None:     # a second Ctrl-C or an error here: never leave CBC running
            proc.kill()
            proc.wait()
        reader.join(5.0)
    return "".join(lines), int(proc.returncode), stopped.is_set(), gave_up


def _read_columns(text: str, n: int) -> np.ndarray | None:
    """The column values of CBC's solution file (``index name value reduced-cost`` lines after the first)."""
    x = np.zeros(n, dtype=np.float64)
    seen = 0
    for line in text.splitlines()[1:]:
        parts = line.removeprefix("**").split()   # "**" marks a value CBC finds infeasible; it is still the value
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        j = int(parts[0])
        if 0 <= j < n:
            try:
                x[j] = float(parts[2])
            except ValueError:
                return None
            seen += 1
    return x if seen or n == 0 else None
