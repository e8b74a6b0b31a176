"""Gurobi backend: ``addMVar`` for the columns, ``addMConstr`` for the rows (ranged rows split in two sides).

Cone blocks become quadratic constraints (``soc``: ``x[tail]'x[tail] <= x[h]^2``; ``rsoc``:
``x[tail]'x[tail] <= x[h0] * x[h1]``) with the heads made non-negative so Gurobi recognises them as convex
cones.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from nnmip.backends._common import Capabilities, finite, gap
from nnmip.errors import BackendUnavailable, SolverError
from nnmip.model import MatrixModel
from nnmip.solution import STOP, Progress, RawResult, SolveOptions, Status, solver_threads

log = logging.getLogger(__name__)

#: Gurobi status code -> our status (unknown codes, e.g. NUMERIC or SUBOPTIMAL, map to ``Status.ERROR``).
STATUS: dict[int, Status] = {
    2: Status.OPTIMAL, 3: Status.INFEASIBLE, 4: Status.INF_OR_UNBD, 5: Status.UNBOUNDED,
    7: Status.TIME_LIMIT,   # ITERATION_LIMIT
    8: Status.TIME_LIMIT,   # NODE_LIMIT
    9: Status.TIME_LIMIT,   # TIME_LIMIT
    10: Status.TIME_LIMIT,  # SOLUTION_LIMIT
    11: Status.INTERRUPTED,  # INTERRUPTED (Ctrl-C or Model.terminate)
    15: Status.TIME_LIMIT,  # USER_OBJ_LIMIT
    16: Status.TIME_LIMIT,  # WORK_LIMIT
    17: Status.TIME_LIMIT,  # MEM_LIMIT
}

DEFAULTS: dict[str, Any] = {"IntFeasTol": 1e-9, "FeasibilityTol": 1e-9}
_NO_LICENSE, _SIZE_LIMIT = 10009, 10010
_REPORT_EVERY = 0.5


def _licence_error(exc: Any) -> Exception:
    if getattr(exc, "errno", None) == _SIZE_LIMIT or "size-limited" in str(exc):
        msg = ("gurobi licence refuses this model "
               "(size-limited licence: at most 2000 variables and 2000 constraints)")
    else:
        msg = f"gurobi licence refuses this model: {exc}"
    return BackendUnavailable.at(
        "E0506", msg, notes=["help: use --solver highs or cbc, or install a full Gurobi licence"])




def _priorities(p: Any, n: int) -> np.ndarray:
    arr = np.asarray(p, dtype=np.int64)
    if arr.shape != (n,):
        raise ValueError(f"branch_priority has shape {arr.shape}, expected ({n},)")
    return arr


class GurobiBackend:
    """MILP, LP and (mixed-integer) second-order cone models through gurobipy's matrix API."""

    name = "gurobi"
    module = "gurobipy"
    capabilities = Capabilities(cones=True, integer_cones=True, warm_start=True, callbacks=True, interrupts=True,
                                early_stop=True, branch_priority=True, user_cuts=True)

    def solve(self, model: MatrixModel, opts: SolveOptions) -> RawResult:
        try:
            import gurobipy as gp
        except ImportError as exc:
            raise BackendUnavailable.at(
                "E0504", f"solver '{self.name}' is not installed: python module 'gurobipy' not found",
                notes=["help: pip install 'nnmip[gurobi]', or choose another solver"]) from exc
        start = time.perf_counter()
        if STOP.is_set():
            return RawResult(Status.INTERRUPTED, self.name, seconds=0.0, message="interrupted before the solve")
        try:
            with gp.Env(empty=True) as env:
                env.setParam("OutputFlag", 1 if opts.verbose else 0)
                env.start()
                with gp.Model(model.name, env=env) as m:
                    return self._solve(gp, m, model, opts, start)
        except gp.GurobiError as exc:
            if exc.errno in (_NO_LICENSE, _SIZE_LIMIT) or "licen" in str(exc).lower():
                raise _licence_error(exc) from exc
            raise SolverError.at("E0501", f"gurobi failed: {exc}") from exc

    def _solve(self, gp: Any, m: Any, model: MatrixModel, opts: SolveOptions, start: float) -> RawResult:
        GRB = gp.GRB
        params: dict[str, Any] = dict(DEFAULTS)
        if model.cones:
            params["BarQCPConvTol"] = 1e-9
        if opts.time_limit is not None:
            params["TimeLimit"] = float(opts.time_limit)
        if opts.mip_gap is not None:
            params["MIPGap"] = float(opts.mip_gap)
        threads = solver_threads(opts)
        if threads is not None:
            params["Threads"] = int(threads)
        if opts.stop_objective is not None:
            params["BestObjStop"] = float(opts.stop_objective)
        if opts.stop_bound is not None:
            params["BestBdStop"] = float(opts.stop_bound)
        if opts.cut_separator is not None:
            params["PreCrush"] = 1            # user cuts are stated on the original columns
        params.update(opts.solver_options)
        for key, value in params.items():
            m.setParam(key, value)

        lb, ub = model.col_lb.copy(), model.col_ub.copy()
        binary = model.vtype == "B"
        lb[binary], ub[binary] = np.maximum(lb[binary], 0.0), np.minimum(ub[binary], 1.0)
        for cone in model.cones:  # cone heads are non-negative by definition
            lb[cone.head.ravel()] = np.maximum(lb[cone.head.ravel()], 0.0)
        x = m.addMVar(model.num_cols, lb=np.maximum(lb, -GRB.INFINITY), ub=np.minimum(ub, GRB.INFINITY),
                      obj=model.c, vtype=model.vtype.astype("<U1"))
        m.ModelSense = GRB.MAXIMIZE if model.sense == "max" else GRB.MINIMIZE
        m.ObjCon = float(model.c0)
        A, lo, hi = model.A, model.row_lb, model.row_ub
        eq = lo == hi
        for rows, sense, rhs in ((eq, GRB.EQUAL, lo), (~eq & np.isfinite(lo), GRB.GREATER_EQUAL, lo),
                                 (~eq & np.isfinite(hi), GRB.LESS_EQUAL, hi)):
            if rows.any():
                m.addMConstr(sp.csr_array(A[rows]), x, sense, rhs[rows])
        if model.cones:
            self._add_cones(gp, m, x, model)
        if opts.warm_start is not None:
            ws = np.asarray(opts.warm_start, dtype=np.float64)
            if ws.shape != (model.num_cols,):
                raise ValueError(f"warm start has shape {ws.shape}, expected ({model.num_cols},)")
            x.Start = np.where(np.isnan(ws), GRB.UNDEFINED, ws)  # NaN marks unknown entries
        if opts.branch_priority is not None:
            x.BranchPriority = _priorities(opts.branch_priority, model.num_cols)
        callback = self._callback(gp, opts, start, model.sense, x)

        log.debug("gurobi: solving %d columns, %d rows, %d nonzeros", model.num_cols, model.num_rows,
                  A.nnz)
        with STOP.watch(m.terminate):   # Model.terminate may be called from a signal handler or another thread
            m.optimize(callback)
            if m.Status == GRB.INF_OR_UNBD and "DualReductions" not in opts.solver_options and not STOP.is_set():
                log.debug("gurobi: infeasible or unbounded, re-solving with DualReductions=0 to tell which")
                m.setParam("DualReductions", 0)
                m.reset()
                m.optimize(callback)
        status = STATUS.get(m.Status, Status.ERROR)
        if status is Status.INTERRUPTED and not STOP.is_set():
            # Ctrl-C reached Gurobi's own handler (Gurobi catches SIGINT while it optimizes and stops): the rest
            # of the run stops too, as after a stop request
            STOP.request()
        x_out, objective, bound = None, None, None
        if m.SolCount > 0 and status in (Status.OPTIMAL, Status.TIME_LIMIT, Status.INTERRUPTED, Status.ERROR):
            x_out = np.asarray(x.X, dtype=np.float64)
            objective = float(m.ObjVal)
        if m.IsMIP and status in (Status.OPTIMAL, Status.TIME_LIMIT, Status.INTERRUPTED):
            try:
                bound = finite(m.ObjBound)
            except (AttributeError, gp.GurobiError):
                bound = None
        elif status is Status.OPTIMAL:
            bound = objective
        nodes = int(m.NodeCount) if m.IsMIP else None
        seconds = time.perf_counter() - start
        names = {getattr(GRB.Status, k): k for k in dir(GRB.Status) if k.isupper()}
        message = f"gurobi status {names.get(m.Status, m.Status)}"
        if status is Status.ERROR:
            message = f"gurobi ended with status {names.get(m.Status, '?')} (code {m.Status})"
        if opts.progress is not None:
            opts.progress(Progress(seconds, objective, bound, gap(objective, bound), nodes))
        log.info("gurobi: %s, objective %s, bound %s, %.2fs", status, objective, bound, seconds)
        return RawResult(status, self.name, x_out, objective, bound, seconds, message, nodes)

    @staticmethod
    def _add_cones(gp: Any, m: Any, x: Any, model: MatrixModel) -> None:
        cols = x.tolist()
        for cone in model.cones:
            for head, tail in zip(cone.head.tolist(), cone.tail.tolist(), strict=True):
                q = gp.QuadExpr()
                tv = [cols[j] for j in tail]
                q.addTerms([1.0] * len(tv), tv, tv)
                q.addTerms(-1.0, cols[head[0]], cols[head[-1]])  # h0^2 (soc) or h0*h1 (rsoc)
                m.addQConstr(q <= 0.0)

    @staticmethod
    def _callback(gp: Any, opts: SolveOptions, start: float, sense: str, x: Any) -> Any:
        """Stop on a stop request; add the separator's cuts at each node whose LP is solved (MIPNODE); report on
        each new incumbent (MIPSOL) and at most every 0.5 s from the MIP loop.
        """
        cb, progress = gp.GRB.Callback, opts.progress
        separate = [opts.cut_separator]      # dropped after a failure: gurobipy ignores errors raised in callbacks
        last = [-math.inf]
        cols = x.tolist() if opts.cut_separator is not None else []

        def add_cuts(model: Any, sep: Any) -> None:
            A, rhs = sep(np.asarray(model.cbGetNodeRel(x), dtype=np.float64))
            A = sp.csr_array(A)
            for i in range(A.shape[0]):
                lo, hi = A.indptr[i], A.indptr[i + 1]
                expr = gp.LinExpr(A.data[lo:hi].tolist(), [cols[j] for j in A.indices[lo:hi]])
                model.cbCut(expr <= float(rhs[i]))

        def callback(model: Any, where: int) -> None:
            if STOP.is_set():
                model.terminate()
                return
            sep = separate[0]
            if sep is not None and where == cb.MIPNODE and model.cbGet(cb.MIPNODE_STATUS) == gp.GRB.OPTIMAL:
                try:
                    add_cuts(model, sep)
                except Exception:  # a failing separator must not pass silently, nor kill the solve
                    log.exception("gurobi: the cut separator failed; no more cuts are separated in this solve")
                    separate[0] = None
            if progress is None:
                return
            now = time.perf_counter() - start
            if where == cb.MIPSOL:
                new, best, bnd, nodes = (model.cbGet(k) for k in (cb.MIPSOL_OBJ, cb.MIPSOL_OBJBST,
                                                                   cb.MIPSOL_OBJBND, cb.MIPSOL_NODCNT))
                inc = max(new, best) if sense == "max" else min(new, best)
            elif where == cb.MIP and now - last[0] >= _REPORT_EVERY:
                inc, bnd, nodes = (model.cbGet(k) for k in (cb.MIP_OBJBST, cb.MIP_OBJBND, cb.MIP_NODCNT))
            else:
                return
            last[0] = now
            i, b = finite(inc), finite(bnd)
            try:
                progress(Progress(now, i, b, gap(i, b), int(nodes)))
            except Exception:  # a broken reporter must not kill the solve
                log.exception("gurobi: progress callback failed")

        return callback
