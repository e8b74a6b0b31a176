"""CBC backend through python-mip: ``add_var`` per column and one tight loop adding the CSR rows."""

from __future__ import annotations

import logging
import math
import threading
import time
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
    capabilities = Capabilities(warm_start=True, lp_duals=True)

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
        native = {k: str(v) for k, v in opts.solver_options.items() if not hasattr(m, k)}
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
                             "interrupted: CBC cannot be stopped from outside while it runs, so its incumbent is not "
                             "available (HiGHS, Gurobi and SCIP keep theirs)")
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

        python-mip offers no way to stop CBC from outside, so on a stop request the worker is left to finish (it
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
