"""cvxpy backend: one vector variable, ``A @ x`` row bounds, column bounds, integrality and cone blocks.

Mapping (no mathematics of its own):

* columns: ``x = Variable(n)``; integer and binary columns are tied to an integer variable ``x[I] == xi``;
  finite column bounds become ``x[J] >= lb``, ``x[J] <= ub``;
* rows: equality rows ``A_E x == b``, then the finite lower and upper sides of the others;
* cone "soc" (head ``h``, tail ``T``): ``cp.SOC(x[h], x[T], axis=1)``;
* cone "rsoc" (heads ``h0, h1``, tail ``T``): ``||T||^2 <= h0 h1`` with ``h0, h1 >= 0`` is written as
  ``cp.SOC(h0 + h1, [2 T, h0 - h1], axis=1)`` (the standard identity), not with ``quad_over_lin``.

Solvers: continuous models go to Clarabel (else SCS, ECOS); mixed-integer models to a mixed-integer solver that
cvxpy has installed (conic: Gurobi, MOSEK, SCIP, Xpress, CPLEX; linear also HiGHS, SCIPY, GLPK_MI, CBC).  Choose one
with ``solver_options={"solver": "SCS"}``; other ``solver_options`` pass through to ``Problem.solve``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from nnmip.backends._common import Capabilities
from nnmip.errors import BackendUnavailable, SolverError
from nnmip.model import MatrixModel
from nnmip.solution import Progress, RawResult, SolveOptions, Status, solver_threads

log = logging.getLogger(__name__)

#: cvxpy status string -> our status (unknown strings map to ``Status.ERROR``)
STATUS: dict[str, Status] = {
    "optimal": Status.OPTIMAL,
    "optimal_inaccurate": Status.OPTIMAL,
    "infeasible": Status.INFEASIBLE,
    "infeasible_inaccurate": Status.ERROR,       # no proof (see solve: a time limit without an incumbent)
    "unbounded": Status.UNBOUNDED,
    "unbounded_inaccurate": Status.UNBOUNDED,
    "infeasible_or_unbounded": Status.INF_OR_UNBD,
    "user_limit": Status.TIME_LIMIT,
    "solver_error": Status.ERROR,
}

CONTINUOUS = ("CLARABEL", "SCS", "ECOS")
MI_CONIC = ("GUROBI", "MOSEK", "SCIP", "XPRESS", "CPLEX")
MI_LINEAR = MI_CONIC + ("HIGHS", "SCIPY", "GLPK_MI", "CBC")
#: the name of the time-limit option per solver
TIME_LIMIT = {"CLARABEL": "time_limit", "SCS": "time_limit_secs", "GUROBI": "TimeLimit", "HIGHS": "time_limit",
              "SCIP": "scip_params", "MOSEK": "mosek_params"}


def _installed() -> list[str]:
    import cvxpy as cp

    return [str(s) for s in cp.installed_solvers()]


class CvxpyBackend:
    """LP, SOCP and (with a mixed-integer solver installed) MILP / MISOCP through cvxpy."""

    name = "cvxpy"
    module = "cvxpy"
    @property
    def capabilities(self) -> Capabilities:
        """Cones always (Clarabel); cones with integer columns only when a mixed-integer conic solver is installed."""
        return Capabilities(cones=True, integer_cones=self.supports_mi_cones)

    @property
    def supports_mi_cones(self) -> bool:
        """Whether a mixed-integer conic solver is installed for cvxpy."""
        try:
            return any(s in _installed() for s in MI_CONIC)
        except ImportError:
            return False

    def pick_solver(self, model: MatrixModel) -> str:
        installed = _installed()
        if not model.is_mip:
            wanted: tuple[str, ...] = CONTINUOUS
        elif model.cones:
            wanted = MI_CONIC
        else:
            wanted = MI_LINEAR
        for s in wanted:
            if s in installed:
                return s
        kind = "mixed-integer conic" if model.is_mip and model.cones else \
            "mixed-integer" if model.is_mip else "conic"
        raise BackendUnavailable.at(
            "E0507", f"cvxpy has no {kind} solver installed (it has {', '.join(installed) or 'none'})",
            notes=["help: relax integrality (--relax), use --solver gurobi, or install one of "
                   + ", ".join(wanted)])

    def solve(self, model: MatrixModel, opts: SolveOptions) -> RawResult:
        try:
            import cvxpy as cp
        except ImportError as exc:
            raise BackendUnavailable.at(
                "E0504", f"solver '{self.name}' is not installed: python module 'cvxpy' not found",
                notes=["help: pip install cvxpy clarabel, or choose another solver"]) from exc
        start = time.perf_counter()
        extra = dict(opts.solver_options)
        solver = str(extra.pop("solver", "")).upper() or self.pick_solver(model)
        x, cons = self._build(cp, model)
        obj = model.c @ x + float(model.c0)
        prob = cp.Problem(cp.Minimize(obj) if model.sense == "min" else cp.Maximize(obj), cons)
        kwargs: dict[str, Any] = {"solver": solver, "verbose": bool(opts.verbose)}
        if opts.time_limit is not None and solver in ("CLARABEL", "SCS", "GUROBI", "HIGHS"):
            kwargs[TIME_LIMIT[solver]] = float(opts.time_limit)
        if opts.mip_gap is not None and model.is_mip and solver == "GUROBI":
            kwargs["MIPGap"] = float(opts.mip_gap)
        threads = solver_threads(opts)
        if threads is not None and solver == "GUROBI":
            kwargs["Threads"] = int(threads)
        if solver == "GUROBI":
            kwargs.setdefault("IntFeasTol", 1e-9)
            kwargs.setdefault("FeasibilityTol", 1e-9)
        kwargs.update(extra)
        log.debug("cvxpy/%s: %d columns, %d rows, %d cone blocks", solver, model.num_cols, model.num_rows,
                  len(model.cones))
        try:
            prob.solve(**kwargs)
        except cp.error.SolverError as exc:
            raise SolverError.at("E0501", f"cvxpy/{solver} failed: {exc}") from exc
        status = STATUS.get(str(prob.status), Status.ERROR)
        if str(prob.status) == "infeasible_inaccurate" and opts.time_limit is not None and \
                time.perf_counter() - start >= 0.9 * float(opts.time_limit):
            # cvxpy reports a solve stopped by its time limit before any incumbent (Gurobi) this way: it proves
            # nothing, so it is the time limit, never infeasibility
            status = Status.TIME_LIMIT
        x_out = None
        objective = None
        if status is Status.OPTIMAL and x.value is not None:
            x_out = np.asarray(x.value, dtype=np.float64).reshape(-1)
            objective = float(prob.value)
        elif status is Status.TIME_LIMIT and x.value is not None:
            x_out = np.asarray(x.value, dtype=np.float64).reshape(-1)
            objective = float(model.c @ x_out + model.c0)
        bound = objective if status is Status.OPTIMAL else None
        seconds = time.perf_counter() - start
        message = f"cvxpy/{solver} status {prob.status}"
        if opts.progress is not None:
            opts.progress(Progress(seconds, objective, bound, 0.0 if bound is not None else None))
        log.info("cvxpy/%s: %s, objective %s, %.2fs", solver, status, objective, seconds)
        return RawResult(status, f"{self.name}/{solver.lower()}", x_out, objective, bound, seconds, message)

    @staticmethod
    def _build(cp: Any, model: MatrixModel) -> tuple[Any, list[Any]]:
        n = model.num_cols
        x = cp.Variable(n)
        cons: list[Any] = []
        lb, ub = model.col_lb.copy(), model.col_ub.copy()
        binary = model.vtype == "B"
        lb[binary], ub[binary] = np.maximum(lb[binary], 0.0), np.minimum(ub[binary], 1.0)
        for cone in model.cones:
            if cone.kind == "rsoc":
                heads = cone.head.ravel()
                lb[heads] = np.maximum(lb[heads], 0.0)
        fixed = np.flatnonzero(lb == ub)
        if fixed.size:
            cons.append(x[fixed] == lb[fixed])
        lo = np.flatnonzero(np.isfinite(lb) & (lb != ub))
        hi = np.flatnonzero(np.isfinite(ub) & (lb != ub))
        if lo.size:
            cons.append(x[lo] >= lb[lo])
        if hi.size:
            cons.append(x[hi] <= ub[hi])
        ints = np.flatnonzero(model.vtype != "C")
        if ints.size:
            xi = cp.Variable(ints.size, integer=True)
            cons.append(x[ints] == xi)
        A = sp.csr_array(model.A)
        eq = model.row_lb == model.row_ub
        for rows, kind, rhs in ((eq, "eq", model.row_lb), (~eq & np.isfinite(model.row_lb), "ge", model.row_lb),
                                (~eq & np.isfinite(model.row_ub), "le", model.row_ub)):
            idx = np.flatnonzero(rows)
            if not idx.size:
                continue
            expr = sp.csr_array(A[idx]) @ x
            cons.append(expr == rhs[idx] if kind == "eq" else expr >= rhs[idx] if kind == "ge" else
                        expr <= rhs[idx])
        for cone in model.cones:
            k, t = cone.tail.shape
            sel = sp.csr_array((np.ones(k * t), (np.arange(k * t), cone.tail.ravel())), shape=(k * t, n))
            T = cp.reshape(sel @ x, (k, t), order="C")
            if cone.kind == "soc":
                cons.append(cp.SOC(x[cone.head[:, 0]], T, axis=1))
            else:
                h0, h1 = x[cone.head[:, 0]], x[cone.head[:, 1]]
                rest = cp.reshape(h0 - h1, (k, 1), order="C")
                cons.append(cp.SOC(h0 + h1, cp.hstack([2 * T, rest]), axis=1))
        return x, cons
