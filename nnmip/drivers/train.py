"""Train a network by MILP, then check the result with the numpy forward pass (docs/formulations.md §5).

The loss reported is always the forward-pass loss of the returned weights.  A solver solution whose activation
pattern the forward pass does not reproduce is repaired when possible (fix the rounded pattern, maximise the
smallest margin by LP); otherwise the result says ``verified = False``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from nnmip.backends import get_backend
from nnmip.drivers.cuts import solve_with_cuts
from nnmip.drivers.deadline import Budget
from nnmip.drivers.evaluate import first_layer_stable
from nnmip.errors import DataError
from nnmip.formulations.pruning import ExtensionInfo
from nnmip.formulations.training import TrainingModel, build_training_model
from nnmip.ir.losses import objective_terms
from nnmip.ir.network import Network
from nnmip.ir.ops import Sign, Step
from nnmip.model import MatrixModel
from nnmip.solution import RawResult, SolveOptions, Status, stops_on_ctrl_c

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass
class Check:
    """The forward-pass check of one solution."""

    verified: bool
    loss: float                   # forward-pass training objective (data loss + penalties)
    data_loss: float
    penalty: float
    mismatches: int               # binary activations the forward pass does not reproduce
    violations: int               # hard margin constraints broken (min_weight / max_margin)
    network: Network
    reason: str = ""


@dataclass
class TrainResult:
    """A trained network with its forward-pass loss and the solver's status, objective, bound and gap.

    ``loss`` is always the forward-pass loss of ``network``; ``verified`` says whether the forward pass
    reproduces every activation the solver chose.
    """

    status: Status
    solver: str
    network: Network | None
    verified: bool
    loss: float | None
    data_loss: float | None
    penalty: float | None
    objective: float | None
    bound: float | None
    gap: float | None
    seconds: float
    build_seconds: float
    model_stats: dict[str, int]
    repaired: bool = False
    mismatches: int = 0
    message: str = ""
    notes: list[str] = field(default_factory=list)
    raw: RawResult | None = None
    training_model: TrainingModel | None = None
    x: FloatArray | None = None
    history: list[dict[str, Any]] = field(default_factory=list)   # one record per strategy iteration
    extension: dict[str, Any] = field(default_factory=dict)       # robust set, pruned groups, emission
    ensemble: Any = None                                          # nnmip.ir.ensemble.Ensemble of an ensemble fit

    @property
    def has_network(self) -> bool:
        return self.network is not None or self.ensemble is not None

    @property
    def predictor(self) -> Any:
        """What predicts: the ensemble of an ensemble fit, else the network (None without a result)."""
        return self.ensemble if self.ensemble is not None else self.network


def _real_array(name: str, value: object, hint: str) -> npt.NDArray[Any]:
    """``value`` as a regular numpy array of real numbers (int, float or bool), else a ``ParameterError``."""
    from nnmip.errors import ParameterError

    try:
        a = np.asarray(value)
        if a.dtype.kind == "O":
            a = a.astype(np.float64)
    except (TypeError, ValueError):
        raise ParameterError.of(name, "must be an array of real numbers with a regular shape", hint,
                                code="E0108") from None
    if a.dtype.kind not in "biuf":
        raise ParameterError.of(name, f"must be an array of real numbers, got dtype {a.dtype}", hint, code="E0108")
    return a


def _check_train_arguments(net: object, options: object, N: int, groups: object, warm_start: object,
                           objectives: object) -> None:
    """Refuse Python arguments of ``train_network`` that do not fit the network or the data (ParameterError)."""
    from nnmip.errors import ParameterError
    from nnmip.formulations.training import STAGES

    if options is not None and not isinstance(options, SolveOptions):
        raise ParameterError.of("options", f"must be a SolveOptions or None, got {type(options).__name__}",
                                "nnmip.backends.SolveOptions(time_limit=...)", code="E0108")
    if groups is not None:
        g = _real_array("groups", groups, "one cluster index per training row")
        if g.shape != (N,):
            raise ParameterError.of("groups", f"has shape {g.shape}, expected ({N},)", "one cluster index per "
                                    "training row", code="E0122")
        if g.size and (not np.all(g == np.round(g)) or g.min() < 0):
            raise ParameterError.of("groups", "must hold whole numbers 0, 1, ...", "one cluster index per row")
    if isinstance(objectives, str) or not isinstance(objectives, (tuple, list)):
        raise ParameterError.of("objectives", f"must be a list of names, got {objectives!r}",
                                f"choose from {', '.join(STAGES)}", code="E0156")
    for o in objectives:
        if o not in STAGES or list(objectives).count(o) > 1:
            raise ParameterError.of("objectives", f"holds {o!r}, not a secondary objective here (or given twice)",
                                    f"choose from {', '.join(STAGES)}, each at most once", code="E0156")
    if warm_start is None:
        return
    assert isinstance(net, Network)
    if not isinstance(warm_start, dict):
        raise ParameterError.of("warm_start", f"must map layer names to (W, b), got {type(warm_start).__name__}",
                                code="E0163")
    dense = set(net.dense_nodes())
    missing = [n for n in net.dense_nodes() if net.op(n).trainable and n not in warm_start]  # type: ignore[attr-defined]
    if missing:
        raise ParameterError.of("warm_start", f"has no weights for layer {missing[0]!r}",
                                "give (W, b) for every trainable dense layer", code="E0163")
    for node, wb in warm_start.items():
        if node not in dense:
            raise ParameterError.of("warm_start", f"names {node!r}, not a dense layer of '{net.name}'",
                                    f"dense layers: {', '.join(sorted(dense))}", code="E0163")
        op = net.op(node)
        if not isinstance(wb, (tuple, list)) or len(wb) != 2:
            raise ParameterError.of("warm_start", f"entry {node!r} must be a pair (W, b)", code="E0163")
        n_out, n_in = op.n_out, op.n_in  # type: ignore[attr-defined]
        shapes = [("W", wb[0], (n_out, n_in))] + ([("b", wb[1], (n_out,))] if wb[1] is not None else [])
        for what, v, shape in shapes:
            a = _real_array("warm_start", v, "weights of this network's layers")
            if a.shape != shape:
                raise ParameterError.of("warm_start", f"{what} of {node!r} has shape {a.shape}, expected {shape}",
                                        "start from weights of this network", code="E0163")
            if not np.all(np.isfinite(a)):
                raise ParameterError.of("warm_start", f"{what} of {node!r} holds NaN or infinity",
                                        "start from finite weights", code="E0163")


def check_train_call(net: object, X: object, y: object, n_classes: object, *, loss: object, margin: object,
                     eps: object, l1: object, solver: object, options: object, emit: object = "milp",
                     relax: object = False, stage_tolerance: object = 1e-6, margin_cap: object = 1.0
                     ) -> tuple[FloatArray, IntArray]:
    """Refuse the arguments shared by every training entry point (ParameterError naming the argument, or a
    DataError for the data); return ``X`` and ``y`` as arrays.
    """
    from nnmip.check import LOSSES
    from nnmip.errors import ParameterError, check_choice, check_instance, check_number
    from nnmip.formulations.pruning import EMIT_MODES

    check_choice("loss", loss, LOSSES)
    if not isinstance(solver, str):
        raise ParameterError.of("solver", f"must be a solver name, got {solver!r:.60}",
                                "use 'highs', 'cbc' or 'gurobi'")
    check_number("n_classes", n_classes, low=2, integer=True)
    from nnmip.model import MAX_MAGNITUDE

    for name, v, none in (("margin", margin, False), ("eps", eps, True), ("l1", l1, False),
                          ("margin_cap", margin_cap, False), ("stage_tolerance", stage_tolerance, False)):
        check_number(name, v, strict=name in ("margin", "margin_cap", "eps"), none=none)
        if v is not None and abs(float(v)) > MAX_MAGNITUDE:  # type: ignore[arg-type]
            raise ParameterError.of(name, f"is {v!r}, beyond the largest magnitude a solver handles "
                                    f"({MAX_MAGNITUDE:g})", "scale the data instead of the parameter", code="E0133")
    if n_classes > 10**6:  # type: ignore[operator]
        raise ParameterError.of("n_classes", f"must be at most 1000000, got {n_classes!r}")
    check_choice("emit", emit, EMIT_MODES, code="E0221")
    check_instance("relax", relax, (bool, np.bool_), "True or False")
    check_instance("options", options, SolveOptions, "SolveOptions or None", none=True)
    if not isinstance(net, Network):
        raise ParameterError.of("net", f"must be a Network, got {type(net).__name__}",
                                "build one with NetworkBuilder or load it from a .nnmip or .onnx file", code="E0108")
    Xa, ya = validate_data(net, X, y, n_classes)  # type: ignore[arg-type]
    from nnmip.errors import check_memory

    # the training MILP has about 4 nonzeros per (row, parameter) pair; building it peaks near 200-370 bytes per
    # pair (measured on one- and two-layer binarized networks), so 128 bytes per pair is a lower estimate
    check_memory(TRAIN_BYTES_PER_ROW_PARAM * Xa.shape[0] * max(net.num_params(), 1),
                 f"the training model of {Xa.shape[0]} rows and {net.num_params()} parameters")
    return Xa, ya


#: the estimated memory of the training MILP per (data row, network parameter) pair, in bytes (a lower estimate)
TRAIN_BYTES_PER_ROW_PARAM = 128.0


def validate_data(net: Network, X: npt.ArrayLike, y: npt.ArrayLike, n_classes: int
                  ) -> tuple[FloatArray, IntArray]:
    """Arrays of the right shape, finite features and labels in ``0..n_classes-1`` (else ``DataError``; an ``X``
    or ``y`` that is not an array of real numbers is a ``ParameterError``).
    """
    Xa = _real_array("X", X, "pass X as a float array of shape (N, d)").astype(np.float64)
    ya = _real_array("y", y, "pass y as an int array of class indices, shape (N,)")
    net.check_features(Xa.shape, notes=[f"help: pass X of shape (N, {net.n_inputs})"])
    if ya.shape != (Xa.shape[0],):
        raise DataError.at("E0122", f"labels have shape {ya.shape}, expected ({Xa.shape[0]},)",
                           notes=["help: pass y with one class index per row of X"])
    if not np.isfinite(Xa).all():
        i, j = np.argwhere(~np.isfinite(Xa))[0]
        raise DataError.at("E0303", f"feature {j} of row {i} is {Xa[i, j]}",
                           notes=["help: drop or impute missing values first"])
    if ya.dtype.kind not in "iub" and not (ya.dtype.kind == "f" and np.all(ya == np.round(ya))):
        raise DataError.at("E0305", "labels must be class indices 0..n_classes-1",
                           notes=["help: encode the classes as 0, 1, ..., n_classes - 1"])
    ya = ya.astype(np.int64)
    if ya.size and (ya.min() < 0 or ya.max() >= n_classes):
        raise DataError.at("E0305", f"labels must lie in 0..{n_classes - 1}, got {ya.min()}..{ya.max()}",
                           notes=["help: encode the classes as 0, 1, ..., n_classes - 1"])
    if Xa.shape[0] == 0:
        raise DataError.at("E0305", "no training rows", notes=["help: pass at least one row"])
    return Xa, ya


def solve_training_model(tm: TrainingModel, backend: Any, model: MatrixModel, opts: SolveOptions) -> RawResult:
    """Solve ``model`` (the training model or its relaxation), with the cut loop when pruning's regulariser is
    written by tangents (:mod:`nnmip.drivers.cuts`).
    """
    reg = tm.extension.reg if tm.extension is not None else None
    if reg is not None and reg.cuts:
        raw, _, rounds = solve_with_cuts(model, backend, opts, reg)
        log.info("cut loop: %d rounds", rounds)
        return raw
    return backend.solve(model, opts)  # type: ignore[no-any-return]


def _extension_check(ext: ExtensionInfo, net: Network, X: FloatArray, x: FloatArray,
                     params: dict[str, tuple[FloatArray, FloatArray | None]], objective: float | None
                     ) -> tuple[float, int, float | None]:
    """(forward penalty of pruning, training points whose first binary layer is not constant over the robust set,
    the exact objective of the solver's point) for :func:`check_solution`.
    """
    pen = ext.penalty(params)
    bad = 0
    if ext.robust is not None and ext.robust_layer is not None:
        bad = int(np.count_nonzero(~first_layer_stable(net, X, ext.robust).all(axis=1)))
    if objective is not None and ext.reg is not None:
        objective = objective + ext.reg.approximation_gap(x)
    return pen, bad, objective


def check_solution(tm: TrainingModel, net: Network, X: FloatArray, y: IntArray, x: FloatArray,
                   objective: float | None) -> Check:
    """Re-run the trained network on the training data and compare with the solver's solution."""
    params = tm.weights(x)
    trained = net.with_params(params)
    vals = trained.forward(X, all_nodes=True)
    mismatches = 0
    for node, (u_cols, rows) in tm.patterns.items():
        op = net.op(node)
        pre = vals[net.inputs_of(node)[0]]
        fwd = (pre > 0).astype(np.int64)
        sol = np.round(x[u_cols]).astype(np.int64)[rows]
        mismatches += int(np.count_nonzero(fwd != sol))
        assert isinstance(op, (Step, Sign))
    weighted = [n for n, p in tm.params.items() if p.W_cols is not None]
    dl, pen, viol = objective_terms(trained, vals[net.output], y, tm.loss, tm.margin, tm.n_classes, tm.l1, weighted)
    if tm.extension is not None:  # pruning penalty, robust-set checks, exact objective of the solver's point
        pen_x, bad, objective = _extension_check(tm.extension, trained, X, x, params, objective)
        pen, mismatches = pen + pen_x, mismatches + bad
    loss = dl + pen
    reason = ""
    ok = mismatches == 0 and viol == 0
    if mismatches:
        reason = f"{mismatches} activations differ between the solver and the forward pass"
    elif viol:
        reason = f"{viol} points break the required margin"
    if ok and objective is not None and np.isfinite(objective):
        tol = 1e-6 * (1.0 + abs(objective))
        if loss > objective + tol:
            ok = False
            reason = f"forward-pass loss {loss:.9g} exceeds the solver objective {objective:.9g}"
    return Check(ok, loss, dl, pen, mismatches, viol, trained, reason)


def repair_model(model: MatrixModel, x: FloatArray, objective: float | None) -> MatrixModel:
    """Fix every binary to its rounded value and maximise the smallest activation margin ``t``.

    Math: a margin row ``r`` that is active (its binary equals ``when``) gets ``-t`` on its ``>=`` side or
    ``+t`` on its ``<=`` side; ``0 <= t <= 1``; the training objective may not exceed the solver's value.
    """
    n = model.num_cols
    col_lb, col_ub = model.col_lb.copy(), model.col_ub.copy()
    binv = model.vtype == "B"
    xr = np.round(x)
    col_lb[binv] = xr[binv]
    col_ub[binv] = xr[binv]
    rows_list, coef_list = [], []
    for mg in model.margins:
        active = np.ones(mg.rows.size, dtype=bool)
        has = mg.cols >= 0
        active[has] = xr[mg.cols[has]] == mg.when[has]
        r = mg.rows[active]
        ge = np.isfinite(model.row_lb[r])
        rows_list.append(r)
        coef_list.append(np.where(ge, -1.0, 1.0))
    rows = np.concatenate(rows_list) if rows_list else np.zeros(0, np.int64)
    coefs = np.concatenate(coef_list) if coef_list else np.zeros(0)
    t_col = sp.csr_array((coefs, (rows, np.zeros(rows.size, np.int64))), shape=(model.num_rows, 1))
    A = sp.hstack([model.A, t_col], format="csr")
    row_lb, row_ub = model.row_lb, model.row_ub
    if objective is not None and np.isfinite(objective):
        obj_row = sp.csr_array(np.r_[model.c, 0.0][None, :])
        A = sp.vstack([A, obj_row], format="csr")
        tol = 1e-7 * (1.0 + abs(objective))
        row_lb = np.r_[row_lb, -np.inf]
        row_ub = np.r_[row_ub, objective - model.c0 + tol]
    c = np.zeros(n + 1)
    c[n] = 1.0
    from nnmip.model import Block

    return MatrixModel(
        sense="max", c=c, c0=0.0, A=sp.csr_array(A), row_lb=row_lb, row_ub=row_ub,
        col_lb=np.r_[col_lb, 0.0], col_ub=np.r_[col_ub, 1.0], vtype=np.r_[model.vtype, ["C"]],
        col_blocks=model.col_blocks + (Block("repair", "t", n, ()),),
        row_blocks=model.row_blocks, name=model.name + "_repair")


def constant_params(net: Network, X: FloatArray, y: IntArray, n_classes: int, eps: float
                    ) -> dict[str, tuple[FloatArray, FloatArray | None]]:
    """The constant classifier: zero weights (clipped into each domain), every hidden unit off, the output
    predicting the most frequent training class; biases at least ``2 eps`` away from zero where the domain
    allows, so every activation keeps its margin.  Fixed parameters keep their values.
    """
    from nnmip.ir.ops import Dense

    major = int(np.bincount(y, minlength=n_classes).argmax()) if y.size else 0
    out: dict[str, tuple[FloatArray, FloatArray | None]] = {}
    dense = net.dense_nodes()
    last = dense[-1] if dense else None
    for n in dense:
        op = net.op(n)
        assert isinstance(op, Dense)
        assert op.weights is not None
        w = op.weights
        if w.trainable:
            W = np.clip(np.zeros(w.lo.shape), w.lo, w.hi)
            if w.kind == "int":
                W = np.clip(np.round(W), np.ceil(w.lo), np.floor(w.hi))
        else:
            W = np.array(w.value, dtype=np.float64)
        b: FloatArray | None = None
        if op.bias is not None:
            bd = op.bias
            if not bd.trainable:
                b = np.array(bd.value, dtype=np.float64)
            else:
                want = -np.ones(op.n_out)
                if n == last:
                    if op.n_out == 1:
                        want[:] = 1.0 if major == 1 else -1.0
                    elif major < op.n_out:
                        want[major] = 1.0
                mag = max(1.0, 2.0 * eps)
                b = np.clip(want * mag, bd.lo, bd.hi)
                if bd.kind == "int":
                    b = np.clip(np.round(b), np.ceil(bd.lo), np.floor(bd.hi))
        out[n] = (np.asarray(W, dtype=np.float64), b)
    return out


def complete_start(tm: TrainingModel, net: Network, X: FloatArray, y: IntArray, backend: Any,
                   params: dict[str, tuple[FloatArray, FloatArray | None]],
                   time_limit: float | None) -> tuple[FloatArray | None, Check | None]:
    """A full feasible point of the training model for the given weights, and its forward-pass check.

    Math: every parameter column is fixed to the given value and every activation binary to the pattern of the
    forward pass; what is left (loss, penalty, robust-shift and product columns) is found by one solve of the
    same model.  Returns ``(None, None)`` when that point is infeasible (e.g. a unit inside the margin).
    """
    x = _with_warm_start(SolveOptions(), tm, net, X, params).warm_start
    assert x is not None
    known = ~np.isnan(x)
    m = tm.model
    lb, ub = m.col_lb.copy(), m.col_ub.copy()
    if (x[known] < lb[known] - 1e-9).any() or (x[known] > ub[known] + 1e-9).any():
        return None, None
    lb[known] = ub[known] = x[known]
    fixed = m.replace(col_lb=lb, col_ub=ub, name=m.name + "_start")
    opts = SolveOptions(time_limit=None if time_limit is None else max(time_limit, 1.0))
    raw = solve_training_model(tm, backend, fixed, opts)
    if raw.x is None:
        return None, None
    chk = check_solution(tm, net, X, y, raw.x, m.objective_value(raw.x))
    return (raw.x, chk) if chk.verified else (None, None)


def activation_margin(net: Network, X: FloatArray, eps: float) -> float:
    """The smallest ``|pre-activation| - eps`` over the units of the first binary layer (step/sign after a dense
    layer on the input) and every point, by the forward pass: the margin of the ``max_margin`` stage.
    """
    from nnmip.formulations.training import on_data

    vals = net.forward(X, all_nodes=True)
    gaps = [np.abs(vals[net.inputs_of(n)[0]]).min() for n, op in net.items()
            if isinstance(op, (Step, Sign)) and on_data(net, n)]
    return float(min(gaps)) - eps if gaps else float("inf")


def weight_norm(net: Network, trainable: list[str]) -> float:
    """``sum |W|`` over the given dense layers (for int[-1, 1] weights: the number of non-zero weights)."""
    return float(sum(np.abs(np.asarray(net.op(n).W)).sum() for n in trainable))  # type: ignore[attr-defined]


@stops_on_ctrl_c
def train_network(net: Network, X: FloatArray, y: IntArray, n_classes: int, *, loss: str = "hamming",
                  margin: float = 1.0, eps: float | None = None, l1: float = 0.0, solver: str = "highs",
                  options: SolveOptions | None = None, groups: IntArray | None = None,
                  warm_start: dict[str, tuple[FloatArray, FloatArray | None]] | None = None,
                  robust: Any = None, prune: Any = None, emit: str = "milp", relax: bool = False,
                  objectives: tuple[str, ...] | list[str] = (), stage_tolerance: float = 1e-6,
                  margin_cap: float = 1.0) -> TrainResult:
    """Build the training MILP, solve it, read back the weights and check them by the forward pass.

    ``robust``, ``prune`` and ``emit``: see :func:`build_training_model`.  ``relax`` solves the continuous
    relaxation instead and reports its value as a bound, without a network.

    ``options.time_limit`` bounds the whole call (the start, every stage and the repair get what remains);
    ``options.solve_time_limit`` caps each solve.  The MILP is warm-started with the given ``warm_start`` weights
    or the constant classifier (:func:`constant_params`) and their forward-pass activations (the solver
    completes the rest); when the solver returns no solution in time, that start, completed to a feasible
    point of the model by :func:`complete_start` and checked like any other, is the result, so a fit never
    ends without a network when a start exists.  A solution the forward pass rejects is repaired or reported
    as not verified, never replaced.

    ``objectives`` lists secondary objectives solved lexicographically after the loss (``max_margin``, then
    ``min_weight``, in the given order): no backend here has a native multi-objective mode, so each stage is a
    new solve of the same model with one more row keeping every earlier objective at the value reached (plus
    ``stage_tolerance * (1 + |value|)``), warm-started from the previous stage.  Each stage's network is checked by
    the forward pass and kept only when verified; ``history`` has one record per stage.

    Math
    ----
    Stage ``k`` minimises ``c_k . x`` subject to the model and ``c_j . x + c0_j <= v_j + tol_j`` for every
    ``j < k``, where ``v_j`` is the value of stage ``j`` at its accepted point.
    """
    from nnmip.errors import ParameterError

    X, y = check_train_call(net, X, y, n_classes, loss=loss, margin=margin, eps=eps, l1=l1, solver=solver,
                            options=options, emit=emit, relax=relax, stage_tolerance=stage_tolerance,
                            margin_cap=margin_cap)
    _check_train_arguments(net, options, X.shape[0], groups, warm_start, objectives)
    opts = options or SolveOptions()
    stages = tuple(objectives)
    if stages and (relax or robust is not None and "max_margin" in stages):
        raise ParameterError.of("objectives", "needs a MILP without relax, and max_margin does not combine with "
                                "a robust set", "lexicographic stages need a MILP without relax; the robust layer has "
                                "its own margin", code="E0156")
    budget = Budget(opts.time_limit, opts.solve_time_limit)
    backend = get_backend(solver)
    t0 = time.perf_counter()
    caps = backend.capabilities
    tm = build_training_model(net, X, y, n_classes, loss, margin, eps, l1, groups, robust=robust, prune=prune,
                              emit=emit, cones=caps.integer_cones or (relax and caps.cones),
                              stages=stages, margin_cap=margin_cap)
    build_s = time.perf_counter() - t0
    stats = tm.model.stats()
    log.info("training model: %s", stats)
    tries: list[tuple[str, dict[str, tuple[FloatArray, FloatArray | None]]]] = []
    if not relax:
        tries = ([("the given start", warm_start)] if warm_start is not None else []) + \
            [("the constant classifier", constant_params(net, X, y, n_classes, tm.eps))]
        opts = _with_warm_start(opts, tm, net, X, tries[0][1])   # weights and activations; the solver completes

    solve_opts = replace(opts, time_limit=budget.limit(1.0 / (1 + len(stages))))
    solve_model = tm.model.relaxed() if relax else tm.model
    raw = solve_training_model(tm, backend, solve_model, solve_opts)
    res = TrainResult(raw.status, backend.name, None, False, None, None, None, raw.objective, raw.bound, raw.gap,
                      raw.seconds, build_s, stats, message=raw.message, notes=list(tm.notes), raw=raw,
                      training_model=tm)
    if tm.extension is not None:
        res.extension = tm.extension.summary(None)
    if relax:
        res.notes.append("continuous relaxation: its value bounds the training objective from below; no network")
        res.x = raw.x
        return res
    chk: Check | None = None
    x = raw.x
    if raw.x is not None:
        chk = check_solution(tm, net, X, y, raw.x, raw.objective)
        if not chk.verified:
            log.warning("solution not verified (%s); trying the margin repair", chk.reason)
            rep_opts = SolveOptions(time_limit=budget.limit(), threads=opts.threads, verbose=False,
                                    solver_options=dict(opts.solver_options))
            rep = backend.solve(repair_model(tm.model, raw.x, raw.objective), rep_opts)
            res.notes.append(f"forward-pass check failed before repair: {chk.reason}")
            if rep.x is not None:
                x2 = rep.x[:-1]
                chk2 = check_solution(tm, net, X, y, x2, raw.objective)
                res.notes.append(f"repair LP: status {rep.status}, smallest extra margin t = {rep.x[-1]:.3g}")
                if chk2.verified:
                    chk, x = chk2, x2
                    res.repaired = True
            else:
                res.notes.append(f"repair LP ended {rep.status} without a solution")
    if chk is None:   # no solution from the solver: the start, completed to a feasible point and checked
        for what, params in tries:
            start_x, start_chk = complete_start(tm, net, X, y, backend, params, budget.limit())
            if start_x is not None and start_chk is not None:
                res.notes.append(f"the solver returned no network ({raw.status}); the result is the warm start "
                                 f"({what}), a feasible point checked by the forward pass")
                chk, x = start_chk, start_x
                res.objective = tm.model.objective_value(start_x)
                res.gap = None if raw.bound is None else RawResult(raw.status, "", None, res.objective,
                                                                   raw.bound).gap
                res.extension["from_start"] = what
                break
    if chk is None:
        return res
    if chk.verified and stages:
        x, chk = _lexicographic(tm, net, X, y, backend, opts, budget, stages, x, chk, stage_tolerance, res)
    res.network = chk.network
    res.verified = chk.verified
    res.loss, res.data_loss, res.penalty = chk.loss, chk.data_loss, chk.penalty
    res.mismatches = chk.mismatches
    res.x = x
    if tm.extension is not None:
        res.extension.update(tm.extension.summary(x))
    if not chk.verified:
        res.notes.append(f"NOT VERIFIED: {chk.reason}")
    return res


def _lexicographic(tm: TrainingModel, net: Network, X: FloatArray, y: IntArray, backend: Any, opts: SolveOptions,
                   budget: Budget, stages: tuple[str, ...], x: Any, chk: Check, tol: float,
                   res: TrainResult) -> tuple[FloatArray, Check]:
    """Solve the secondary objectives one after the other (see :func:`train_network`)."""
    model = tm.model
    trainable = [n for n, p in tm.params.items() if p.W_cols is not None]
    v0 = model.objective_value(x)
    res.history.append({"stage": tm.loss, "status": str(res.status), "solver_value": v0,
                        "forward_value": chk.loss, "accepted": True})
    prev_c, prev_c0, prev_v = model.c, model.c0, v0
    for k, name in enumerate(stages):
        cols, coefs = tm.stages[name]
        c = np.zeros(model.num_cols)
        c[cols] = coefs
        slack = tol * (1.0 + abs(prev_v))
        model = model.replace(
            c=c, c0=0.0, A=sp.csr_array(sp.vstack([model.A, sp.csr_array(prev_c[None, :])], format="csr")),
            row_lb=np.r_[model.row_lb, -np.inf], row_ub=np.r_[model.row_ub, prev_v - prev_c0 + slack],
            name=f"{tm.model.name}_{name}")
        sopts = replace(opts, time_limit=budget.limit(1.0 / (len(stages) - k)), warm_start=np.asarray(x))
        raw = solve_training_model(tm, backend, model, sopts)
        rec: dict[str, Any] = {"stage": name, "status": str(raw.status), "solver_value": raw.objective,
                               "bound": raw.bound, "seconds": round(raw.seconds, 4), "accepted": False}
        if raw.x is not None:
            c2 = check_solution(tm, net, X, y, raw.x, tm.model.objective_value(raw.x))
            if c2.verified:
                fv = (activation_margin(c2.network, X, tm.eps) if name == "max_margin"
                      else weight_norm(c2.network, trainable))
                rec["forward_value"] = fv
                cur = model.objective_value(np.asarray(x))
                if model.objective_value(raw.x) <= cur + 1e-9 * (1 + abs(cur)):
                    x, chk = raw.x, c2
                    rec["accepted"] = True
            else:
                rec["reason"] = c2.reason
        if not rec["accepted"]:
            res.notes.append(f"stage {name}: kept the previous stage's network ({raw.status})")
        res.history.append(rec)
        prev_c, prev_c0, prev_v = c, 0.0, model.objective_value(np.asarray(x))
    res.notes.append("lexicographic objectives: " + " > ".join((tm.loss,) + stages) + " (a sequence of solves)")
    return np.asarray(x), chk


def _with_warm_start(opts: SolveOptions, tm: TrainingModel, net: Network, X: FloatArray,
                     params: dict[str, tuple[FloatArray, FloatArray | None]]) -> SolveOptions:
    """A full start vector from given weights (the backend completes or repairs it as it can)."""
    x = np.full(tm.model.num_cols, np.nan)
    for node, pc in tm.params.items():
        if node not in params:
            continue
        W, b = params[node]
        if pc.W_cols is not None:
            x[pc.W_cols] = W
        if pc.b_cols is not None and b is not None:
            x[pc.b_cols] = b
    trained = net.with_params({k: v for k, v in params.items()})
    vals = trained.forward(X, all_nodes=True)
    for node, (u_cols, rows) in tm.patterns.items():
        fwd = (vals[net.inputs_of(node)[0]] > 0).astype(float)
        x[u_cols[rows]] = fwd
    from dataclasses import replace

    return replace(opts, warm_start=x)


def result_dict(res: TrainResult) -> dict[str, Any]:
    """A JSON-able summary of a training result."""
    return {
        "status": str(res.status),
        "solver": res.solver,
        "objective": res.objective,
        "bound": res.bound,
        "gap": res.gap,
        "seconds": round(res.seconds, 4),
        "build_seconds": round(res.build_seconds, 4),
        "verified": res.verified,
        "repaired": res.repaired,
        "loss": res.loss,
        "data_loss": res.data_loss,
        "penalty": res.penalty,
        "model": res.model_stats,
        "notes": res.notes,
        "history": res.history,
        "extension": res.extension,
    }
