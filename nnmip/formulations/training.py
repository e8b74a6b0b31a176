"""The training MILP (docs/formulations.md §2-§5, §7 and §11): weights are decision variables, data are constants.

Each node's value while formulating is one of

* ``Const``: known numbers (data, or fixed layers applied to data), shape (R, d);
* ``Bin``: binary columns ``u`` (R, d) with output ``lo + (hi - lo) u`` (step: 0/1, sign: -1/+1);
* ``Lin``: an :class:`~nnmip.model.Affine` block (R, d) with proven bounds ``[L, U]``.

Rows are indexed either by data points (``space == "point"``, R = N) or by clusters of the data-splitting
strategy (``space == "cluster"``, R = P): the first binary layer on data maps point rows to the cluster of each
point, after which everything is per cluster.  With one cluster per point this is the exact model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from nnmip.errors import FormulationError

# robust and pruning register their step / sign formulations on import; perspective its regularisers
from nnmip.formulations import perspective as _perspective  # noqa: F401
from nnmip.formulations import robust as _robust  # noqa: F401
from nnmip.formulations.common import (
    Bin,
    Const,
    Lin,
    ParamCols,
    Value,
    as_lin,
    formulation,
    mccormick,
    register,
    step_units,
)
from nnmip.formulations.pruning import TrainingExtension
from nnmip.ir.losses import targets
from nnmip.ir.network import Network
from nnmip.ir.ops import Dense, Identity, Input, Op, Sign, Step
from nnmip.model import Affine, MatrixModel, ModelBuilder

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: default activation margin: far above the tightest integrality tolerance times any big-M we emit
#: (1e-9 * M with M < 1e4) plus the feasibility tolerance (1e-9), and far below the scale of scaled data
DEFAULT_EPS = 1e-3


@dataclass
class TrainingModel:
    """The MatrixModel plus what is needed to read a solution back and check it."""

    model: MatrixModel
    params: dict[str, ParamCols]
    patterns: dict[str, tuple[IntArray, IntArray]]   # binary node -> (u cols (R, d), row of each point (N,))
    loss: str
    margin: float
    eps: float
    l1: float
    n_classes: int
    groups: IntArray
    error_cols: IntArray | None = None                 # zero_one: e per point
    notes: list[str] = field(default_factory=list)
    extension: Any = None                              # robust / pruning read-back (pruning.ExtensionInfo)
    #: secondary objective -> (columns, coefficients) of its minimisation form (lexicographic stages)
    stages: dict[str, tuple[IntArray, FloatArray]] = field(default_factory=dict)

    def weights(self, x: FloatArray) -> dict[str, tuple[FloatArray, FloatArray | None]]:
        """Read trained parameters from a solution vector (integer parameters are rounded)."""
        out: dict[str, tuple[FloatArray, FloatArray | None]] = {}
        for node, p in self.params.items():
            W = p.W_fixed if p.W_cols is None else x[p.W_cols]
            if p.W_cols is not None and p.W_int:
                W = np.round(W)
            b: FloatArray | None
            if p.b_cols is not None:
                b = x[p.b_cols]
                if p.b_int:
                    b = np.round(b)
            else:
                b = p.b_fixed
            out[node] = (np.asarray(W, dtype=np.float64) + 0.0, None if b is None else np.asarray(b) + 0.0)
        if self.extension is not None:  # pruned groups read back as exact zeros
            out = self.extension.clean_weights(out, x)
        return out


class TrainingContext:
    """The formulation context of a training model: the network, the data, the builder, and what the
    formulations record for the read-back (parameter columns, activation patterns, the error columns).
    """

    def __init__(self, net: Network, X: FloatArray, y: IntArray, n_classes: int, margin: float, groups: IntArray,
                 n_clusters: int, eps: float) -> None:
        self.net = net
        self.X = X
        self.y = y
        self.n_classes = n_classes
        self.margin = margin
        self.groups = groups
        self.n_clusters = n_clusters
        self.eps = eps
        self.b = ModelBuilder(name=net.name)
        self.params: dict[str, ParamCols] = {}
        self.patterns: dict[str, tuple[IntArray, IntArray]] = {}
        self.clustered = n_clusters < X.shape[0]
        self.error_cols: IntArray | None = None
        self.margin_col: int | None = None      # the activation-margin column of the max_margin stage
        self.margin_cap: float = 1.0
        self.ext: TrainingExtension | None = None

    def rows_of(self, space: str) -> int:
        return self.X.shape[0] if space == "point" else self.n_clusters

    # parameters -------------------------------------------------------------------------------------------------
    def param_cols(self, node: str, op: Dense) -> ParamCols:
        assert op.weights is not None
        W_cols = W_fixed = b_cols = b_fixed = None
        w_int = b_int = False
        if op.weights.trainable:
            w_int = op.weights.kind == "int"
            W_cols = self.b.add_cols(node, "W", (op.n_out, op.n_in), op.weights.lo, op.weights.hi,
                                     "I" if w_int else "C")
        else:
            W_fixed = op.weights.value
        if op.bias is not None:
            if op.bias.trainable:
                b_int = op.bias.kind == "int"
                b_cols = self.b.add_cols(node, "b", op.n_out, op.bias.lo, op.bias.hi, "I" if b_int else "C")
            else:
                b_fixed = op.bias.value
        pc = ParamCols(W_cols, W_fixed, b_cols, b_fixed, w_int, b_int)
        self.params[node] = pc
        return pc

    def bias_affine(self, pc: ParamCols, R: int, n_out: int) -> Affine | FloatArray:
        if pc.b_cols is not None:
            return Affine.from_cols(np.broadcast_to(pc.b_cols, (R, n_out)).copy())
        return np.zeros((R, n_out)) if pc.b_fixed is None else np.broadcast_to(pc.b_fixed, (R, n_out)).copy()

    # dispatch ----------------------------------------------------------------------------------------------------
    def method(self, node: str, op: Op, v: Value) -> str:
        """The registered method that formulates ``op`` on ``v``."""
        if isinstance(op, Dense):
            if not op.trainable:
                return "fixed"
            if isinstance(v, Const):
                return "constant"
            if isinstance(v, Bin):
                return "mccormick"
            raise FormulationError.at(
                "E0141", f"layer '{node}' multiplies trainable weights by a continuous variable (bilinear)",
                op.span, ["help: put step(...) or sign(...) before it, or give it fixed weights"])
        hooked = self.ext.method(node, op, v) if self.ext is not None else None
        if hooked is not None:
            return hooked
        if isinstance(v, Const):
            return "constant"
        if isinstance(op, Identity):
            return "identity"
        if isinstance(op, (Step, Sign)):
            return "margin"
        raise FormulationError.at(
            "E0140", f"{op.kind} '{node}' follows trainable weights: training through it is not a MILP here",
            op.span, ["help: use step(...) or sign(...) for training, or fixed weights"])

    def margin_shift(self, node: str, d: int) -> Any:
        """The extra activation margin ``gamma`` of the max_margin stage as a shift of every unit of a binary
        layer on the data (a dense layer on the input), else None.
        """
        if self.margin_col is None or not on_data(self.net, node):
            return None
        from nnmip.formulations.robust import Shift

        return Shift(Affine.from_cols(np.full(d, self.margin_col, dtype=np.int64)), np.full(d, self.margin_cap))

    def node(self, node: str, op: Op, v: Value) -> Value:
        """Formulate one node with the registered formulation."""
        fn = formulation("training", op.kind, self.method(node, op, v), op.span)
        return fn(self, node, op, v)  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------------------------------
# Formulations (docs/formulations.md §3 and §4)
# ------------------------------------------------------------------------------------------------------------
def on_data(net: Network, node: str) -> bool:
    """Whether activation ``node`` follows a dense layer on the network's input (the first binary layer)."""
    pre = net.inputs_of(node)
    if not pre or not isinstance(net.op(pre[0]), Dense):
        return False
    src = net.inputs_of(pre[0])
    return bool(src) and isinstance(net.op(src[0]), Input)


@register("training", "dense", "fixed")
def dense_fixed(f: TrainingContext, node: str, op: Dense, v: Value) -> Value:
    r"""Dense layer with fixed weights and bias.

    Math
    ----
    On constants: ``x W^T + b`` (numbers).  On a variable block: ``a = v W^T + b`` with interval bounds; no rows.

    Source: Dense (fixed) on any value.  Target: Const or Lin.
    """
    f.param_cols(node, op)
    W, bias = op.W, op.b
    if isinstance(v, Const):
        return Const(v.values @ W.T + bias, v.space)
    lin = as_lin(v)
    lo, hi = op.interval(lin.lo, lin.hi)
    return Lin(lin.expr.matmul_t(W) + bias, lo, hi, lin.space)


@register("training", ("relu", "step", "sign", "identity"), "constant")
def activation_constant(f: TrainingContext, node: str, op: Op, v: Const) -> Const:
    r"""An activation of constants: the forward pass.

    Math
    ----
    ``y = act(x)`` computed in numpy; no column, no row.
    """
    return Const(op.forward(v.values), v.space)


@register("training", "identity", "identity")
def identity(f: TrainingContext, node: str, op: Identity, v: Value) -> Value:
    r"""Identity ``y = a``.

    Math
    ----
    No column and no row: the output is the input value.
    """
    return v


@register("training", "dense", "constant")
def dense_on_constant(f: TrainingContext, node: str, op: Dense, v: Const) -> Lin:
    r"""Dense layer with trainable weights on constant input (data).

    Math
    ----
    ``a_il = sum_j x_ij W_lj + b_l``: an affine expression in (W, b), no new rows.  Bounds per point by
    interval arithmetic over the weight domain: ``L_il = sum_j min(x_ij Wlo_lj, x_ij Whi_lj) + blo_l``.

    Source: Dense on Const.  Target: Lin (R, n_out).
    """
    pc = f.param_cols(node, op)
    R = v.values.shape[0]
    n_out, n_in = op.n_out, op.n_in
    X = v.values
    if pc.W_cols is not None:
        i, l, j = np.meshgrid(np.arange(R), np.arange(n_out), np.arange(n_in), indexing="ij")
        vals = X[i, j]
        keep = vals != 0.0
        expr = Affine.from_triplets((i * n_out + l)[keep], pc.W_cols[l, j][keep], vals[keep],
                                    np.zeros(R * n_out), (R, n_out))
    else:
        expr = Affine.constant(X @ pc.W_fixed.T)  # type: ignore[union-attr]
    expr = expr + f.bias_affine(pc, R, n_out)
    lo, hi = op.interval(X, X)
    return Lin(expr, lo, hi, v.space)


@register("training", "dense", "mccormick")
def dense_on_binary(f: TrainingContext, node: str, op: Dense, v: Bin) -> Lin:
    r"""Dense layer with trainable weights on binary activations: exact McCormick products.

    Math
    ----
    For ``W_lj in [L, U]`` and ``u_rj in {0, 1}``, a product column ``s_rlj = W_lj u_rj`` with
    ``s - L u >= 0``, ``s - U u <= 0``, ``s - W - U u >= -U``, ``s - W - L u <= -L`` (exact for binary u).
    Then ``a_rl = (hi - lo) sum_j s_rlj + lo sum_j W_lj + b_l`` for activations ``lo + (hi - lo) u``
    (step: ``sum_j s + b``; sign: ``2 sum_j s - sum_j W + b``).

    Source: Dense (trainable W) on Bin.  Target: Lin (R, n_out); R*n_out*n_in columns ``s`` and 4 rows each.
    """
    pc = f.param_cols(node, op)
    if pc.W_cols is None:  # only the bias is trainable: the weights are fixed
        lin = Lin(v.affine(), *v.bounds(), v.space)
        lo, hi = op.interval(lin.lo, lin.hi)
        expr = lin.expr.matmul_t(pc.W_fixed) + f.bias_affine(pc, lin.expr.shape[0], op.n_out)  # type: ignore
        return Lin(expr, lo, hi, v.space)
    assert op.weights is not None
    R, n_in = v.cols.shape
    n_out = op.n_out
    shape = (R, n_out, n_in)
    s = mccormick(f.b, node, np.broadcast_to(pc.W_cols[None], shape), np.broadcast_to(v.cols[:, None, :], shape),
                  op.weights.lo[None], op.weights.hi[None])
    lo_v, hi_v = v.levels
    # a_rl = (hi - lo) sum_j s_rlj + lo sum_j W_lj + b_l
    rows = np.repeat(np.arange(R * n_out), n_in)
    cols = s.ravel()
    vals = np.full(cols.size, hi_v - lo_v)
    if lo_v != 0.0:
        rows = np.r_[rows, rows]
        cols = np.r_[cols, np.broadcast_to(pc.W_cols[None], (R, n_out, n_in)).ravel()]
        vals = np.r_[vals, np.full(R * n_out * n_in, lo_v)]
    expr = Affine.from_triplets(rows, cols, vals, np.zeros(R * n_out), (R, n_out))
    expr = expr + f.bias_affine(pc, R, n_out)
    lo, hi = op.interval(*v.bounds())
    return Lin(expr, lo, hi, v.space)


@register("training", ("step", "sign"), "margin")
def step_margin(f: TrainingContext, node: str, op: Step | Sign, v: Value) -> Bin:
    r"""Step / sign with a margin ``eps`` on both sides (Kurtz & Bah).

    Math
    ----
    ``a - (eps - L) u >= L`` and ``a - (U + eps) u <= -eps`` (:func:`~nnmip.formulations.common.step_units`):
    ``u = 1`` forces ``a >= eps``, ``u = 0`` forces ``a <= -eps``.

    With the ``max_margin`` stage of a lexicographic task, units of the first binary layer get the margin column
    ``gamma`` as a shift: ``a - gamma >= eps`` when on, ``a + gamma <= -eps`` when off.

    Source: Step/Sign on Lin or Bin.  Target: Bin; one binary and two rows per (row, unit).
    """
    lin = as_lin(v)
    return step_units(f, node, op, lin, shift=f.margin_shift(node, lin.expr.shape[1]))


# ------------------------------------------------------------------------------------------------------------
# Losses (docs/formulations.md §7)
# ------------------------------------------------------------------------------------------------------------
def _per_point(f: TrainingContext, v: Value) -> IntArray:
    return f.groups if v.space == "cluster" else np.arange(f.X.shape[0])


@register("training", "loss", "hamming")
def loss_hamming(f: TrainingContext, node: str, loss: str, out: Value) -> None:
    r"""Hamming loss on step/sign outputs.

    Math
    ----
    ``sum_i sum_c |T_ic - u_ic| = sum_ic T_ic + (1 - 2 T_ic) u_{r(i) c}`` with 0/1 targets ``T`` (one-hot, or
    the label for a single output) and ``r(i)`` the row (cluster) of point ``i``.  No rows.
    """
    y, n_classes = f.y, f.n_classes
    if not isinstance(out, Bin):
        raise FormulationError.at("E0151", "loss hamming needs a step or sign output", f.net.op(f.net.output).span)
    T = _targets(f, y, out.cols.shape[1], n_classes)
    u = out.cols[_per_point(f, out)]
    f.b.add_objective_cols(u, 1.0 - 2.0 * T)
    f.b.c0 += float(T.sum())


def _targets(f: TrainingContext, y: IntArray, n_out: int, n_classes: int) -> FloatArray:
    try:
        return targets(y, n_out, n_classes)
    except ValueError:
        raise FormulationError.at(
            "E0152", f"the output '{f.net.output}' has {n_out} units but the data have {n_classes} classes",
            f.net.op(f.net.output).span,
            [f"help: give the last layer {n_classes} units (one per class)"
             + (" or 1 unit for two classes" if n_classes == 2 else "")]) from None


def _margin_pairs(f: TrainingContext, out: Value, y: IntArray, n_classes: int) -> tuple[Affine, FloatArray, IntArray]:
    """Affine ``a_{i,y_i} - a_{i,c}`` for every point and wrong class (or ``(2y-1) a`` for one output), its
    lower bound, and the point of each pair.
    """
    lin = as_lin(out)
    R, n_out = lin.expr.shape
    _targets(f, y, n_out, n_classes)
    rows = _per_point(f, lin)
    flat = lin.expr.reshape((R * n_out,))
    lo, hi = lin.lo.ravel(), lin.hi.ravel()
    N = y.size
    if n_out == 1:
        sgn = 2.0 * y - 1.0
        expr = flat.take(rows).scale(sgn)
        lower = np.where(sgn > 0, lo[rows], -hi[rows])
        return expr, lower, np.arange(N)
    pts = np.repeat(np.arange(N), n_out)
    cls = np.tile(np.arange(n_out), N)
    keep = cls != y[pts]
    pts, cls = pts[keep], cls[keep]
    own = rows[pts] * n_out + y[pts]
    other = rows[pts] * n_out + cls
    expr = flat.take(own) - flat.take(other)
    lower = lo[own] - hi[other]
    return expr, lower, pts


@register("training", "loss", "zero_one")
def loss_zero_one(f: TrainingContext, node: str, loss: str, out: Value) -> None:
    r"""0-1 loss with margin ``g`` on output scores.

    Math
    ----
    ``e_i`` binary per point; for every wrong class ``c``: ``a_{i,y_i} - a_{i,c} + M_ic e_i >= g`` with
    ``M_ic = g - lower(a_{i,y_i} - a_{i,c})`` (rows whose bound already exceeds ``g`` are dropped);
    minimise ``sum_i e_i``.
    """
    y, n_classes, margin = f.y, f.n_classes, f.margin
    expr, lower, pts = _margin_pairs(f, out, y, n_classes)
    e = f.b.add_cols("loss", "e", y.size, 0.0, 1.0, "B")
    M = margin - lower
    keep = M > 0
    if not np.isfinite(M[keep]).all():
        raise FormulationError.at("E0404", "output scores have infinite bounds: no big-M exists",
                                  f.net.op(f.net.output).span)
    sel = np.flatnonzero(keep)
    body = expr.take(sel) + Affine.from_cols(e[pts[sel]]).scale(M[sel])
    rows = f.b.add_rows("loss", "margin", body, lb=margin)
    f.b.add_margin(rows, e[pts[sel]], 0)
    f.b.add_objective_cols(e, 1.0)
    f.error_cols = e


@register("training", "loss", "hinge")
def loss_hinge(f: TrainingContext, node: str, loss: str, out: Value) -> None:
    r"""Multi-class hinge loss (Crammer-Singer) with margin ``g``.

    Math
    ----
    ``xi_i >= 0``; ``xi_i + a_{i,y_i} - a_{i,c} >= g`` for every wrong class ``c``; minimise ``sum_i xi_i``.
    """
    y, n_classes, margin = f.y, f.n_classes, f.margin
    expr, lower, pts = _margin_pairs(f, out, y, n_classes)
    xi = f.b.add_cols("loss", "xi", y.size, 0.0, np.inf, "C")
    f.b.add_rows("loss", "hinge", expr + Affine.from_cols(xi[pts]), lb=margin)
    f.b.add_objective_cols(xi, 1.0)


@register("training", "loss", "min_weight")
def loss_min_weight(f: TrainingContext, node: str, loss: str, out: Value) -> None:
    r"""Every point classified with margin ``g`` (hard rows); the objective is the weight norm (added by
    :func:`l1_penalty` with weight 1).

    Math
    ----
    ``a_{i,y_i} - a_{i,c} >= g`` for every point and wrong class.
    """
    y, n_classes, margin = f.y, f.n_classes, f.margin
    expr, lower, pts = _margin_pairs(f, out, y, n_classes)
    rows = f.b.add_rows("loss", "margin", expr, lb=margin)
    f.b.add_margin(rows, None)


@register("training", "loss", "max_margin")
def loss_max_margin(f: TrainingContext, node: str, loss: str, out: Value) -> None:
    r"""Every point classified correctly; maximise the smallest output margin ``gamma``.

    Math
    ----
    ``a_{i,y_i} - a_{i,c} - gamma >= 0`` for every point and wrong class, ``gamma >= eps``;
    minimise ``-gamma`` (the reported loss is minus the smallest margin).
    """
    y, n_classes = f.y, f.n_classes
    expr, lower, pts = _margin_pairs(f, out, y, n_classes)
    lin = out if isinstance(out, Lin) else None
    gmax = float(np.max(lin.hi) - np.min(lin.lo)) if lin is not None else 2.0
    gamma = f.b.add_cols("loss", "gamma", 1, f.eps, max(gmax, f.eps), "C")
    rows = f.b.add_rows("loss", "margin", expr - Affine.from_cols(np.broadcast_to(gamma, pts.shape).copy()), lb=0.0)
    f.b.add_margin(rows, None)
    f.b.add_objective_cols(gamma, -1.0)


def l1_penalty(f: TrainingContext, weight: float) -> IntArray:
    r"""``weight * sum |W|`` over trainable weights.

    Math
    ----
    ``xi >= W``, ``xi >= -W`` per trainable weight (``xi_lj`` column, role ``xi``); objective
    ``+ weight * sum xi``.  Returns the ``xi`` columns (the weight norm of the min_weight stage).
    """
    out: list[IntArray] = []
    for node, pc in f.params.items():
        if pc.W_cols is None:
            continue
        xi = f.b.add_cols(node, "xi", pc.W_cols.shape, 0.0, np.inf, "C")
        w = Affine.from_cols(pc.W_cols)
        xa = Affine.from_cols(xi)
        f.b.add_rows(node, "abs_pos", xa - w, lb=0.0)
        f.b.add_rows(node, "abs_neg", xa + w, lb=0.0)
        if weight:
            f.b.add_objective_cols(xi, weight)
        out.append(np.asarray(xi, dtype=np.int64).ravel())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


#: secondary objectives of a lexicographic task (after the loss), see :func:`build_training_model`
STAGES = ("max_margin", "min_weight")


TRAINABLE_KINDS = ("input", "dense", "step", "sign", "relu", "identity")


def check_trainable_chain(net: Network) -> None:
    """Training formulations read chains of dense layers and activations; raise E0426 for anything else
    (residual sums, max pooling, a node with two inputs or two consumers).
    """
    for n, op in net.items():
        if op.smooth:
            raise FormulationError.at("E0426", f"network '{net.name}' has a {op.kind} node ('{n}'), which no MILP "
                                      "models exactly", op.span,
                                      ["help: training, pruning and compression take networks of dense layers with "
                                       "step, sign, relu or identity activations; a network with sigmoid or tanh "
                                       "units can be verified (nnmip verify)"])
        if op.kind not in TRAINABLE_KINDS or len(net.inputs_of(n)) > 1 or net.graph.out_degree(n) > 1:
            what = (f"'{n}' is a {op.kind} node" if op.kind not in TRAINABLE_KINDS else
                    f"'{n}' has {len(net.inputs_of(n))} inputs and feeds {net.graph.out_degree(n)} nodes")
            raise FormulationError.at("E0426", f"network '{net.name}' is not a chain of dense layers and "
                                      f"activations: {what}", op.span,
                                      ["help: training, pruning and compression read chains of dense layers "
                                       "and activations; verify such a network instead"])


def build_training_model(net: Network, X: FloatArray, y: IntArray, n_classes: int, loss: str = "hamming",
                         margin: float = 1.0, eps: float | None = None, l1: float = 0.0,
                         groups: IntArray | None = None, robust: Any = None, prune: Any = None,
                         emit: str = "milp", cones: bool = False, stages: tuple[str, ...] = (),
                         margin_cap: float = 1.0) -> TrainingModel:
    """Formulate the training MILP of ``net`` on scaled data ``X`` (N, d) and labels ``y`` (N,).

    ``groups`` (N,) assigns points to clusters that share hidden activations (data splitting); ``None`` means
    one cluster per point (the exact model).  ``robust`` (a ``RobustSpec``) makes the first binary layer robust
    over a set around each point (``cones``: the backend takes "soc" cones); ``prune`` (a ``PruneConfig``) adds
    pruning indicators, with the quadratic term emitted as ``emit`` (see nnmip.formulations.pruning).

    ``stages`` lists secondary objectives of a lexicographic task (solved after the loss by
    :func:`nnmip.drivers.train.train_network`); the model gets their columns, with no weight in the objective.

    Math
    ----
    ``max_margin``: one column ``0 <= gamma <= margin_cap`` widens the margin of every step/sign unit of the first
    binary layer (the dense layer on the data): on-row ``a - gamma >= eps`` when on, off-row ``a + gamma <= -eps``
    when off, through the shift of :func:`step_units`; its stage minimises ``-gamma`` (a max-margin
    hyperplane per unit, in the l-infinity box of the weights; BeMi's robustness objective).  ``min_weight``:
    ``xi >= |W|`` per trainable weight (the l1 rows); its stage minimises ``sum xi`` (for int[-1, 1] weights,
    the number of non-zero weights).
    """
    check_trainable_chain(net)
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    N = X.shape[0]
    net.check_features(X.shape)
    if groups is None:
        groups = np.arange(N)
        n_clusters = N
    else:
        groups = np.asarray(groups, dtype=np.int64)
        _, groups = np.unique(groups, return_inverse=True)
        n_clusters = int(groups.max()) + 1 if N else 0
    eps = DEFAULT_EPS if eps is None else float(eps)
    f = TrainingContext(net, X, y, n_classes, margin, groups, n_clusters, eps)
    bad = [s for s in stages if s not in STAGES]
    if bad:
        raise ValueError(f"unknown lexicographic stage {bad[0]!r}: choose from {STAGES}")
    stage_cols: dict[str, tuple[IntArray, FloatArray]] = {}
    if "max_margin" in stages:
        f.margin_cap = float(margin_cap)
        f.margin_col = int(f.b.add_cols("stage", "gamma", 1, 0.0, f.margin_cap, "C")[0])
        stage_cols["max_margin"] = (np.array([f.margin_col]), np.array([-1.0]))
    ext = None
    if robust is not None or (prune is not None and prune.specs):
        ext = TrainingExtension(f, robust, prune, emit, cones)
    vals: dict[str, Value] = {}
    for node, op in net.items():
        if isinstance(op, Input):
            vals[node] = Const(X, "point")
            continue
        vals[node] = f.node(node, op, vals[net.inputs_of(node)[0]])
    out = vals[net.output]
    if isinstance(out, Const):
        raise FormulationError.at("E0142", f"network '{net.name}' has no trainable weights", net.op(net.output).span)
    formulation("training", "loss", loss, net.op(net.output).span)(f, "loss", loss, out)
    penalty = l1 + (1.0 if loss == "min_weight" else 0.0)
    if penalty > 0 or "min_weight" in stages:
        xi_cols = l1_penalty(f, penalty)
        if "min_weight" in stages:
            stage_cols["min_weight"] = (xi_cols, np.ones(xi_cols.size))
    info = ext.finish() if ext is not None else None
    f.b.notes.append(f"activation margin eps = {eps:g}")
    model = f.b.build("min")
    return TrainingModel(model, f.params, f.patterns, loss, margin, eps, l1, n_classes, groups,
                         f.error_cols, list(model.notes), extension=info, stages=stage_cols)


__all__ = ["DEFAULT_EPS", "STAGES", "TrainingContext", "TrainingModel", "build_training_model", "on_data"]
