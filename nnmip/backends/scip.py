"""SCIP backend through PySCIPOpt: the columns as one ``addMatrixVar``, the CSR rows as linear constraints.

PySCIPOpt ships SCIP in its wheels (``pip install 'nnmip[scip]'``).  Ranged rows stay one linear constraint
``lhs <= a.x <= rhs``; the objective offset is added to the reported objective and bound.  SCIP solves without
the GIL; a stop request (:data:`nnmip.solution.STOP`) calls ``interruptSolve`` and the incumbent is kept
(``Status.INTERRUPTED``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from nnmip.backends._common import Capabilities, captured, finite, gap, import_solver, require_linear
from nnmip.errors import SolverError
from nnmip.model import MatrixModel
from nnmip.solution import STOP, Progress, RawResult, SolveOptions, Status, solver_threads

log = logging.getLogger(__name__)

#: ``Model.getStatus()`` -> our status (unknown strings map to ``Status.ERROR``).
STATUS: dict[str, Status] = {
    "optimal": Status.OPTIMAL,
    "infeasible": Status.INFEASIBLE,
    "unbounded": Status.UNBOUNDED,
    "inforunbd": Status.INF_OR_UNBD,
    "timelimit": Status.TIME_LIMIT,
    "userinterrupt": Status.INTERRUPTED,
    "nodelimit": Status.TIME_LIMIT,
    "totalnodelimit": Status.TIME_LIMIT,
    "stallnodelimit": Status.TIME_LIMIT,
    "gaplimit": Status.OPTIMAL,           # the requested relative gap is reached
    "sollimit": Status.TIME_LIMIT,
    "bestsollimit": Status.TIME_LIMIT,
    "restartlimit": Status.TIME_LIMIT,
    "memlimit": Status.TIME_LIMIT,
    "primallimit": Status.TIME_LIMIT,
    "duallimit": Status.TIME_LIMIT,
    "terminate": Status.TIME_LIMIT,
}

#: Defaults applied before ``solver_options`` (which may override any of them).
DEFAULTS: dict[str, Any] = {
    "numerics/feastol": 1e-9,
}

_INF = 1e20               # SCIP's infinity
_REPORT_EVERY = 0.5       # seconds between periodic progress reports


class ScipBackend:
    """MILP/LP through PySCIPOpt (no cones)."""

    name = "scip"
    module = "pyscipopt"
    capabilities = Capabilities(warm_start=True, callbacks=True, interrupts=True, branch_priority=True,
                                user_cuts=True)

    def solve(self, model: MatrixModel, opts: SolveOptions) -> RawResult:
        require_linear(self.name, model)
        scip = import_solver(self.name, "pyscipopt")
        start = time.perf_counter()
        if STOP.is_set():
            return RawResult(Status.INTERRUPTED, self.name, seconds=0.0, message="interrupted before the solve")
        empty = np.diff(model.A.indptr) == 0
        bad = empty & ((model.row_lb > 0.0) | (model.row_ub < 0.0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            return RawResult(Status.INFEASIBLE, self.name, seconds=time.perf_counter() - start,
                             message=f"row {model.row_name(i)} has no terms and its bounds exclude 0")
        m = scip.Model(model.name or "nnmip")
        m.hideOutput(not opts.verbose)
        self._set_options(m, opts)
        x = self._build(scip, m, model, empty)
        if opts.warm_start is not None:
            self._warm_start(m, model, x, opts.warm_start)
        if opts.branch_priority is not None:
            prio = np.asarray(opts.branch_priority, dtype=np.int64)
            if prio.shape != (model.num_cols,):
                raise ValueError(f"branch_priority has shape {prio.shape}, expected ({model.num_cols},)")
            for j in np.flatnonzero(prio).tolist():
                m.chgVarBranchPriority(x[j], int(prio[j]))
        if opts.progress is not None:
            self._subscribe(scip, m, opts, start, float(model.c0))
        if opts.cut_separator is not None:
            m.includeSepa(_separator_plugin(scip, x, opts.cut_separator), "nnmip_cuts",
                          "cuts of SolveOptions.cut_separator", priority=1000, freq=1, maxbounddist=1.0,
                          usessubscip=False, delay=False)
        log.debug("scip: solving %d columns, %d rows, %d nonzeros", model.num_cols, model.num_rows,
                  model.A.nnz)
        try:
            with captured(not opts.verbose), STOP.watch(m.interruptSolve):
                # without the GIL, so that a stop request from another thread (or Ctrl-C) reaches interruptSolve
                m.optimizeNogil()
        except Exception as exc:   # e.g. "SCIP: error in LP solver!" on a badly scaled model: no answer, no proof
            log.warning("scip: the solve failed: %s", exc)
            with contextlib.suppress(Exception):
                m.freeProb()
            return RawResult(Status.ERROR, self.name, seconds=time.perf_counter() - start,
                             message=f"scip failed: {exc}")
        name = str(m.getStatus())
        status = STATUS.get(name, Status.ERROR)
        if name == "userinterrupt" and not STOP.is_set():
            # Ctrl-C reached SCIP's own handler (SCIP catches SIGINT while it solves, and stops at once): the
            # rest of the run stops too, as after a stop request
            STOP.request()
        if STOP.is_set() and status is not Status.OPTIMAL:
            status = Status.INTERRUPTED
        c0 = float(model.c0)
        x_out: np.ndarray | None = None
        objective = bound = None
        if status in (Status.OPTIMAL, Status.TIME_LIMIT, Status.INTERRUPTED, Status.ERROR) and m.getNSols() > 0:
            sol = m.getBestSol()
            x_out = np.array([sol[v] for v in x], dtype=np.float64) if x else np.zeros(0)
            objective = float(m.getSolObjVal(sol)) + c0
        if status is Status.OPTIMAL and not model.is_mip:
            bound = objective
        elif status in (Status.OPTIMAL, Status.TIME_LIMIT, Status.INTERRUPTED):
            b = finite(m.getDualbound())
            bound = None if b is None else b + c0
        nodes = int(m.getNNodes()) if model.is_mip else None
        seconds = time.perf_counter() - start
        message = f"scip status {name}"
        if opts.progress is not None:
            opts.progress(Progress(seconds, objective, bound, gap(objective, bound), nodes))
        log.info("scip: %s, objective %s, bound %s, %.2fs", status, objective, bound, seconds)
        m.freeProb()
        return RawResult(status, self.name, x_out, objective, bound, seconds, message, nodes)

    # -- helpers ---------------------------------------------------------------------------------------
    @staticmethod
    def _set_options(m: Any, opts: SolveOptions) -> None:
        options: dict[str, Any] = dict(DEFAULTS)
        if opts.time_limit is not None:
            options["limits/time"] = max(float(opts.time_limit), 0.0)
        if opts.mip_gap is not None:
            options["limits/gap"] = float(opts.mip_gap)
        threads = solver_threads(opts)
        if threads is not None:
            options["lp/threads"] = int(threads)
        options.update(opts.solver_options)
        for key, value in options.items():
            try:
                m.setParam(key, value)
            except Exception as exc:  # unknown name (KeyError/LookupError) or a value out of range
                raise SolverError.at("E0501", f"solver 'scip' rejected option {key}={value!r}: {exc}",
                                     notes=["help: SCIP parameter names look like 'limits/time'; see "
                                            "https://www.scipopt.org/doc/html/PARAMETERS.php"]) from None

    @staticmethod
    def _build(scip: Any, m: Any, model: MatrixModel, empty: np.ndarray) -> list[Any]:
        """Columns in one ``addMatrixVar`` call; one linear constraint per non-empty row (ranged rows once)."""
        n = model.num_cols
        if model.sense == "max":
            m.setMaximize()
        if n == 0:
            return []
        binary = model.vtype == "B"
        lb = np.where(binary, np.maximum(model.col_lb, 0.0), model.col_lb)
        ub = np.where(binary, np.minimum(model.col_ub, 1.0), model.col_ub)
        lb, ub = np.clip(lb, -_INF, _INF), np.clip(ub, -_INF, _INF)
        vtype = np.asarray(model.vtype, dtype="<U1")
        mv = m.addMatrixVar((n,), name="x", vtype=vtype, lb=lb, ub=ub, obj=model.c.astype(np.float64))
        x = list(mv.tolist())
        Term = import_solver("scip", "pyscipopt.scip").Term
        terms = [Term(v) for v in x]
        Expr, ExprCons = scip.Expr, scip.ExprCons
        A = model.A
        indptr, indices, data = A.indptr.tolist(), A.indices.tolist(), A.data.tolist()
        conss = []
        for i, (lo, hi) in enumerate(zip(model.row_lb.tolist(), model.row_ub.tolist(), strict=True)):
            p, q = indptr[i], indptr[i + 1]
            if empty[i] or (lo == -math.inf and hi == math.inf):
                continue
            expr = Expr({terms[j]: a for j, a in zip(indices[p:q], data[p:q], strict=True)})
            conss.append(ExprCons(expr, lhs=None if lo == -math.inf else lo, rhs=None if hi == math.inf else hi))
        if conss:
            m.addConss(conss)
        return x

    @staticmethod
    def _warm_start(m: Any, model: MatrixModel, x: list[Any], warm_start: Any) -> None:
        """A full start is offered as a solution; NaN entries make it partial (SCIP completes it)."""
        ws = np.asarray(warm_start, dtype=np.float64)
        if ws.shape != (model.num_cols,):
            raise ValueError(f"warm start has shape {ws.shape}, expected ({model.num_cols},)")
        known = np.flatnonzero(~np.isnan(ws))
        if not known.size:
            return
        sol = m.createSol() if known.size == ws.size else m.createPartialSol()
        values = ws.tolist()
        for j in known.tolist():
            m.setSolVal(sol, x[j], values[j])
        m.addSol(sol)

    @staticmethod
    def _subscribe(scip: Any, m: Any, opts: SolveOptions, start: float, c0: float) -> None:
        """Report on each improving solution and at most every 0.5 s when a node is solved."""
        progress = opts.progress
        assert progress is not None
        best, node = scip.SCIP_EVENTTYPE.BESTSOLFOUND, scip.SCIP_EVENTTYPE.NODESOLVED

        class Reporter(scip.Eventhdlr):  # type: ignore[misc, name-defined]
            last = -math.inf

            def eventinit(self) -> None:
                self.model.catchEvent(best, self)
                self.model.catchEvent(node, self)

            def eventexit(self) -> None:
                self.model.dropEvent(best, self)
                self.model.dropEvent(node, self)

            def eventexec(self, event: Any) -> dict[str, Any]:
                now = time.perf_counter() - start
                if event.getType() != best and now - self.last < _REPORT_EVERY:
                    return {}
                self.last = now
                try:
                    inc = finite(self.model.getPrimalbound())
                    bnd = finite(self.model.getDualbound())
                    inc = None if inc is None else inc + c0
                    bnd = None if bnd is None else bnd + c0
                    progress(Progress(now, inc, bnd, gap(inc, bnd), int(self.model.getNNodes())))
                except Exception:  # a broken reporter must not kill the solve
                    log.exception("scip: progress callback failed")
                return {}

        m.includeEventhdlr(Reporter(), "nnmip_progress", "progress reports")



def _separator_plugin(scip: Any, x: list[Any], separator: Any) -> Any:
    """A SCIP separator that offers the cuts of ``separator`` at the LP point of each node.  The cut rows are
    stated on SCIP's transformed variables: a term on a variable that presolve fixed moves into the right-hand
    side, and a cut with a term on an aggregated variable is skipped.  A separator that raises is logged and
    not called again (SCIP would otherwise stop the solve).
    """
    class Separator(scip.Sepa):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            self.failed = False

        def sepaexeclp(self) -> dict[str, Any]:
            m = self.model
            if self.failed:
                return {"result": scip.SCIP_RESULT.DIDNOTRUN}
            try:
                A, rhs = separator(np.array([m.getSolVal(None, v) for v in x], dtype=np.float64))
                A = sp.csr_array(A)
                added = 0
                for i in range(A.shape[0]):
                    added += self._add(m, A, i, float(rhs[i]))
            except Exception:
                log.exception("scip: the cut separator failed; no more cuts are separated in this solve")
                self.failed = True
                return {"result": scip.SCIP_RESULT.DIDNOTRUN}
            return {"result": scip.SCIP_RESULT.SEPARATED if added else scip.SCIP_RESULT.DIDNOTFIND}

        def _add(self, m: Any, A: sp.csr_array, i: int, rhs: float) -> int:
            terms = []
            for j, a in zip(A.indices[A.indptr[i]:A.indptr[i + 1]].tolist(),
                            A.data[A.indptr[i]:A.indptr[i + 1]].tolist(), strict=True):
                tv = m.getTransformedVar(x[j])
                status = tv.getStatus()
                if status == "FIXED":
                    rhs -= a * tv.getLbGlobal()
                elif status in ("LOOSE", "COLUMN"):
                    terms.append((tv, a))
                else:
                    return 0
            row = m.createEmptyRowSepa(self, "nnmip_cut", lhs=None, rhs=rhs, local=False, removable=True)
            m.cacheRowExtensions(row)
            for tv, a in terms:
                m.addVarToRow(row, tv, a)
            m.flushRowExtensions(row)
            m.addCut(row, forcecut=True)     # applied as offered (SCIP would otherwise pick among its own)
            m.releaseRow(row)
            return 1

    return Separator()
