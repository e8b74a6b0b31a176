"""HiGHS backend: the whole model goes to ``Highs.passModel`` as numpy arrays (CSC matrix, integrality array)."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from nnmip.backends._common import Capabilities, captured, finite, gap, import_solver, require_linear
from nnmip.errors import SolverError
from nnmip.model import MatrixModel
from nnmip.solution import STOP, Progress, RawResult, SolveOptions, Status, solver_threads

log = logging.getLogger(__name__)

#: HiGHS ``HighsModelStatus`` member name -> our status (unknown names map to ``Status.ERROR``).
STATUS: dict[str, Status] = {
    "kOptimal": Status.OPTIMAL,
    "kModelEmpty": Status.OPTIMAL,
    "kInfeasible": Status.INFEASIBLE,
    "kUnbounded": Status.UNBOUNDED,
    "kUnboundedOrInfeasible": Status.INF_OR_UNBD,
    "kTimeLimit": Status.TIME_LIMIT,
    "kIterationLimit": Status.TIME_LIMIT,
    "kSolutionLimit": Status.TIME_LIMIT,
    "kObjectiveBound": Status.TIME_LIMIT,
    "kObjectiveTarget": Status.TIME_LIMIT,
    "kInterrupt": Status.INTERRUPTED,
    "kHighsInterrupt": Status.TIME_LIMIT,
    "kMemoryLimit": Status.TIME_LIMIT,
}

#: ``SolveOptions.focus == "bound"`` (a near-optimal warm start): with a good incumbent from the first node, the
#: primal heuristics (sub-MIPs, feasibility jump), the cut rounds at every node and strong branching until a
#: pseudo-cost is reliable cost more than they prune.  Measured on the 20-64-64-2 verification questions of
#: ``benchmarks/verify_peers.py`` (docs/benchmarks.md).  A HiGHS version without one of these names keeps its
#: default; ``solver_options`` of the same name win.
BOUND_FOCUS: dict[str, Any] = {
    "mip_heuristic_effort": 0.0, "mip_heuristic_run_rins": False, "mip_heuristic_run_rens": False,
    "mip_heuristic_run_root_reduced_cost": False, "mip_heuristic_run_feasibility_jump": False,
    "mip_allow_cut_separation_at_nodes": False, "mip_pscost_minreliable": 1}
#: Defaults applied before ``solver_options`` (which may override any of them).
DEFAULTS: dict[str, Any] = {
    "mip_feasibility_tolerance": 1e-9,
    "primal_feasibility_tolerance": 1e-9,
}

_REPORT_EVERY = 0.5  # seconds between periodic progress reports
STOP_GRACE = 0.75    # seconds HiGHS gets to stop after a stop request before its thread is left behind




def _option(h: Any, name: str) -> Any:
    """An option's value (``getOptionValue`` returns ``(status, value)`` in recent highspy, the value in older ones)."""
    got = h.getOptionValue(name)
    return got[1] if isinstance(got, tuple) else got


class HighsBackend:
    """MILP/LP through highspy (no cones)."""

    name = "highs"
    module = "highspy"
    capabilities = Capabilities(warm_start=True, callbacks=True, interrupts=True, early_stop=True, lp_duals=True,
                                lp_rows=True)

    def lp_session(self, model: MatrixModel, time_limit: float | None = None) -> HighsLpSession:
        """One LP (integrality and cones dropped) kept in HiGHS and re-solved for many objectives."""
        return HighsLpSession(model, time_limit)

    def solve(self, model: MatrixModel, opts: SolveOptions) -> RawResult:
        require_linear(self.name, model)
        highspy = import_solver(self.name, "highspy")
        start = time.perf_counter()
        if STOP.is_set():
            return RawResult(Status.INTERRUPTED, self.name, seconds=0.0, message="interrupted before the solve")
        with captured(not opts.verbose):
            h = highspy.Highs()
        self._set_options(h, opts)
        self._pass_model(h, highspy, model)
        if opts.warm_start is not None:
            ws = np.asarray(opts.warm_start, dtype=np.float64)
            if ws.shape != (model.num_cols,):
                raise ValueError(f"warm start has shape {ws.shape}, expected ({model.num_cols},)")
            known = np.flatnonzero(~np.isnan(ws))
            if known.size == ws.size:
                sol = highspy.HighsSolution()
                sol.col_value = ws.tolist()
                sol.value_valid = True
                h.setSolution(sol)
            elif known.size:  # NaN marks unknown entries: a partial start that HiGHS completes
                h.setSolution(int(known.size), known.astype(np.int32), ws[known])
        if opts.progress is not None:
            self._subscribe(h, opts, start)
        log.debug("highs: solving %d columns, %d rows, %d nonzeros", model.num_cols, model.num_rows,
                  model.A.nnz)
        run_status, kept = self._run(h, model.num_cols)
        if kept is not None:   # HiGHS did not stop within the grace period: its last incumbent, reported by it
            seconds = time.perf_counter() - start
            return RawResult(Status.INTERRUPTED, self.name, kept["x"], kept["objective"], kept["bound"], seconds,
                             "interrupted (the solver was still finishing a step; its last incumbent is kept)")
        ms = h.getModelStatus()
        status = STATUS.get(ms.name, Status.ERROR)
        if STOP.is_set() and status is not Status.OPTIMAL:
            status = Status.INTERRUPTED
        info = h.getInfo()
        has_x = info.primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible
        if ms.name == "kModelEmpty":
            x, objective = np.zeros(0), float(model.c0)
        elif has_x and status in (Status.OPTIMAL, Status.TIME_LIMIT, Status.INTERRUPTED, Status.ERROR):
            x = np.asarray(h.getSolution().col_value, dtype=np.float64)
            objective = float(info.objective_function_value)
        else:
            x, objective = None, None
        if not model.is_mip:
            bound = objective if status is Status.OPTIMAL else None
            nodes = None
        else:
            bound = finite(info.mip_dual_bound) if status in (Status.OPTIMAL, Status.TIME_LIMIT,
                                                              Status.INTERRUPTED) else None
            nodes = int(info.mip_node_count) if info.mip_node_count >= 0 else None
        seconds = time.perf_counter() - start
        message = h.modelStatusToString(ms)
        if status is Status.ERROR:
            message = f"highs ended with model status '{message}' (run status {run_status.name})"
        if opts.progress is not None:
            opts.progress(Progress(seconds, objective, bound, gap(objective, bound), nodes))
        log.info("highs: %s, objective %s, bound %s, %.2fs", status, objective, bound, seconds)
        return RawResult(status, self.name, x, objective, bound, seconds, message, nodes)

    # -- helpers ---------------------------------------------------------------------------------------
    @staticmethod
    def _run(h: Any, num_cols: int) -> tuple[Any, dict[str, Any] | None]:
        """Solve in HiGHS's own solver thread while this thread waits, so that Ctrl-C is handled at once.

        A stop request (:data:`nnmip.solution.STOP`) calls ``cancelSolve``; HiGHS's user-interrupt callbacks
        (simplex, interior point, MIP) then end the solve at their next check and keep the incumbent.  Some steps
        (sub-MIP heuristics, long LP solves inside the MIP) check rarely; when the solve has not ended
        ``STOP_GRACE`` seconds after the request, the solver thread is left to finish on its own (recorded in
        ``STOP.abandoned``) and the last incumbent HiGHS reported through its improving-solution callback is
        returned as the second value.  A ``KeyboardInterrupt`` here (no stop handler installed) cancels the solve,
        waits for it and is re-raised.
        """
        kept: dict[str, Any] = {"x": None, "objective": None, "bound": None}

        def improving(e: Any) -> None:
            d = e.data_out
            x = np.array(d.mip_solution, dtype=np.float64)
            if x.shape == (num_cols,):
                kept.update(x=x, objective=float(d.objective_function_value), bound=finite(d.mip_dual_bound))

        h.cbMipImprovingSolution.subscribe(improving)
        h.HandleUserInterrupt = True
        asked = None
        # watched before the start: a Ctrl-C from here on is a stop request, never an exception between the start
        # and the watch that would leave the solve running
        with STOP.watch(h.cancelSolve):
            try:
                thread = h.startSolve()
                while True:
                    done, run_status = h.wait(0.05)
                    if done:
                        return run_status, None
                    if STOP.is_set():
                        if asked is None:
                            asked = time.perf_counter()
                        # again at every turn: HiGHS forgets a cancel that comes before its run has begun, and
                        # under load its solver thread may begin well after startSolve returns
                        h.cancelSolve()
                        if time.perf_counter() - asked > STOP_GRACE:
                            STOP.abandoned.append(thread)
                            return None, kept
            except KeyboardInterrupt:
                h.cancelSolve()
                while not h.wait(0.05)[0]:
                    pass
                raise

    def _set_options(self, h: Any, opts: SolveOptions) -> None:
        options: dict[str, Any] = {"output_flag": bool(opts.verbose), **DEFAULTS}
        if opts.time_limit is not None:
            options["time_limit"] = float(opts.time_limit)
        if opts.mip_gap is not None:
            options["mip_rel_gap"] = float(opts.mip_gap)
        threads = solver_threads(opts)
        if threads is not None:
            options["threads"] = int(threads)
        if opts.stop_objective is not None:
            options["objective_target"] = float(opts.stop_objective)
        options.update(opts.solver_options)
        if "threads" in options:
            # HiGHS keeps one global thread scheduler; a different thread count needs a fresh one
            type(h).resetThreadScheduler(False)
        for key, value in options.items():
            if h.setOptionValue(key, value).name != "kOk":
                raise SolverError.at("E0501", f"solver 'highs' rejected option {key}={value!r}",
                                     notes=["help: see https://ergo-code.github.io/HiGHS/stable/options/"])
        if opts.focus == "bound":
            for key, value in BOUND_FOCUS.items():
                if key not in options and h.setOptionValue(key, value).name != "kOk":
                    log.debug("highs: this version has no option %s; left at its default", key)

    @staticmethod
    def _pass_model(h: Any, highspy: Any, model: MatrixModel) -> None:
        """Hand the model over through the array overload of ``Highs.passModel`` (numpy in, no element loops).

        The matrix goes column-wise (CSC with sorted row indices, 32-bit indices as HiGHS wants); the vectors are
        passed as they are, since ``kHighsInf`` is IEEE infinity.  Binaries are integers on ``[0, 1]``.
        """
        A = model.A.tocsc()
        if not A.has_sorted_indices:
            A.sort_indices()
        start = A.indptr.astype(np.int32, copy=False)
        index = A.indices.astype(np.int32, copy=False)
        lb, ub = model.col_lb, model.col_ub
        binary = model.vtype == "B"
        if binary.any() and ((lb[binary] < 0.0).any() or (ub[binary] > 1.0).any()):
            lb, ub = lb.copy(), ub.copy()
            lb[binary], ub[binary] = np.maximum(lb[binary], 0.0), np.minimum(ub[binary], 1.0)
        # the overload reads ``num_col`` integrality entries even for an LP: all continuous then
        integrality = (model.vtype != "C").astype(np.int32) * int(highspy.HighsVarType.kInteger)
        sense = highspy.ObjSense.kMaximize if model.sense == "max" else highspy.ObjSense.kMinimize
        quiet = not model.is_mip and _option(h, "output_flag") is True
        if quiet:  # HiGHS warns that an all-continuous integrality array names no integer column
            h.setOptionValue("output_flag", False)
        status = h.passModel(model.num_cols, model.num_rows, int(A.nnz), int(highspy.MatrixFormat.kColwise),
                             int(sense), float(model.c0), model.c, lb, ub, model.row_lb, model.row_ub,
                             start, index, A.data, integrality)
        if quiet:
            h.setOptionValue("output_flag", True)
        if status.name == "kError":
            raise SolverError.at("E0501", "highs rejected the model in passModel")

    @staticmethod
    def _subscribe(h: Any, opts: SolveOptions, start: float) -> None:
        """Report on each improving solution and at most every 0.5 s from the MIP interrupt callback."""
        progress = opts.progress
        assert progress is not None
        last = [-math.inf]

        def report(event: Any, force: bool) -> None:
            now = time.perf_counter() - start
            if not force and now - last[0] < _REPORT_EVERY:
                return
            last[0] = now
            d = event.data_out
            try:
                progress(Progress(now, finite(d.mip_primal_bound), finite(d.mip_dual_bound),
                                  finite(d.mip_gap), int(d.mip_node_count)))
            except Exception:  # a broken reporter must not kill the solve
                log.exception("highs: progress callback failed")

        h.cbMipImprovingSolution.subscribe(lambda e: report(e, True))
        h.cbMipInterrupt.subscribe(lambda e: report(e, False))


class HighsLpSession:
    """The LP in one ``Highs`` object: each solve changes only the cost vector (and the rows added or dropped
    since the last one), so the basis is kept.  After an optimal solve :attr:`x` holds the primal point.
    """

    def __init__(self, model: MatrixModel, time_limit: float | None = None) -> None:
        highspy = import_solver("highs", "highspy")
        self.model = model.relaxed().replace(c=np.zeros(model.num_cols), c0=0.0, sense="max", cones=())
        with captured():   # the HiGHS start-up banner would otherwise go to standard output
            self.h = highspy.Highs()
        self.h.setOptionValue("output_flag", False)
        # every solve differs from the last only in its cost vector: keep the basis, skip presolve
        self.h.setOptionValue("presolve", "off")
        if time_limit is not None:
            self.h.setOptionValue("time_limit", max(float(time_limit), 1e-3))
        HighsBackend._pass_model(self.h, highspy, self.model)
        self._cost_cols: list[int] = []
        self.solves = 0
        self.x: np.ndarray | None = None

    @property
    def num_rows(self) -> int:
        return int(self.h.getNumRow())

    def add_rows(self, A: Any, lb: np.ndarray, ub: np.ndarray) -> None:
        """Append the rows ``lb <= A x <= ub`` (``A`` a scipy.sparse matrix over the session's columns)."""
        import scipy.sparse as sp

        A = sp.csr_array(A)
        if A.shape[0] == 0:
            return
        self.h.addRows(int(A.shape[0]), np.asarray(lb, np.float64), np.asarray(ub, np.float64), int(A.nnz),
                       A.indptr[:-1].astype(np.int32), A.indices.astype(np.int32), A.data.astype(np.float64))

    def drop_rows(self, first: int) -> None:
        """Delete the rows from index ``first`` on (those added since the session had ``first`` rows)."""
        n = self.num_rows
        if n > first:
            self.h.deleteRows(n - first, np.arange(first, n, dtype=np.int32))

    def maximize(self, c: dict[int, float], time_limit: float | None = None) -> tuple[str, np.ndarray | None]:
        """Maximise ``sum_j c_j x_j`` (within ``time_limit`` seconds when given); the row duals when HiGHS
        proves the LP optimal.
        """
        h = self.h
        self.x = None
        if time_limit is not None:
            # HiGHS compares its limit with the run time of all the object's solves, not of this one
            h.setOptionValue("time_limit", h.getRunTime() + max(float(time_limit), 1e-3))
        for j in self._cost_cols:
            h.changeColCost(int(j), 0.0)
        for j, v in c.items():
            h.changeColCost(int(j), float(v))
        self._cost_cols = list(c)
        h.run()
        self.solves += 1
        ms = h.getModelStatus().name
        if ms == "kInfeasible":
            return "infeasible", None
        sol = h.getSolution()
        if ms != "kOptimal" or not sol.dual_valid:
            return "failed", None
        self.x = np.asarray(sol.col_value, dtype=np.float64)
        return "optimal", np.asarray(sol.row_dual, dtype=np.float64)
