"""Fixed-weight networks as MILPs (docs/formulations.md §6, §13 and §17): the input is the decision variable.

The weights are constants, so every dense layer is linear in its input and the only non-linear pieces are the
activations.  Bounds are not computed here: :mod:`nnmip.passes.bounds` proves them and hands them in; every
big-M below comes from those bounds, and an infinite one is a :class:`~nnmip.errors.FormulationError`.

Registry
--------
The functions below are filed in :data:`nnmip.formulations.common.FORMULATIONS` under
``("verification", op kind, method)`` and ``("verification", "set", set kind)``, with the one signature
``fn(ctx, node, item, inp: Val)`` where ``ctx`` is a :class:`FixedContext` (the builder ``ctx.b``, the proven
``ctx.bounds`` of every node, the input columns ``ctx.x_cols``).  Override an entry or pass
``method={"relu": "bigm"}`` to :func:`build_fixed_model` to choose a formulation.

Role names: ``x`` input, ``a`` pre-activation, ``d``/``u`` binary (ReLU phase / step activation), ``y``
post-activation, ``t`` auxiliary (l1 radius split, case score), ``r`` l2 offset.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from nnmip.errors import FormulationError
from nnmip.formulations.common import formulation, register, step_rows
from nnmip.formulations.ideal import ReluCutUnits
from nnmip.ir.network import Network
from nnmip.ir.ops import Dense, Identity, Input, MaxPool, Op, ReLU, Sign, Step, Sum
from nnmip.ir.spec import Case, InputSet, Region
from nnmip.model import Affine, Block, Cone, MatrixModel, ModelBuilder

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Bounds = tuple[FloatArray, FloatArray]

_BOUND_HELP = "help: give the input a bounded set (or a domain) so that propagate_bounds can bound every unit"


@dataclass
class Val:
    """The value of a node while formulating: an affine expression (d,) over model columns and its bounds."""

    expr: Affine
    lo: FloatArray
    hi: FloatArray

    @property
    def size(self) -> int:
        return self.expr.size


@dataclass
class FixedContext:
    """The formulation context of a fixed-weight network: the builder, the proven bounds, the input columns."""

    b: ModelBuilder
    bounds: dict[str, tuple[FloatArray, FloatArray]]
    x_cols: IntArray | None = None
    #: per dense layer: its ``a`` columns and (formed on demand) the expression ``W x + b`` they equal (for the
    #: ideal cuts, §18)
    pre_expr: list[tuple[IntArray, Callable[[], Affine]]] = field(default_factory=list)
    #: unstable ReLU units recorded by the ``ideal-cuts`` relu formulation
    cut_units: list[ReluCutUnits] = field(default_factory=list)
    #: per ReLU node (big-M or extended): its unstable units and their ``y`` and ``d`` columns, and the extended
    #: formulation's input copies (for :func:`start_vector`)
    phases: list[PhaseCols] = field(default_factory=list)
    #: where a formulation asked for could not be used and another was: one line each, for the user
    fallbacks: list[str] = field(default_factory=list)


@dataclass
class PhaseCols:
    """The unstable units ``idx`` of ReLU node ``node`` and the columns of their outputs ``y`` and phases ``d``."""

    node: str
    idx: IntArray
    y: IntArray
    d: IntArray
    #: the extended formulation's input copies: their columns, the unit (position in ``idx``) and the column
    #: each copies (``x1 = x`` where ``d = 1``, else 0); empty for big-M
    copy_cols: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    copy_unit: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    copy_src: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass
class UnitCounts:
    """Per activation node: units stable active / stable inactive / unstable (the last ones need a binary)."""

    active: int = 0
    inactive: int = 0
    unstable: int = 0

    @property
    def total(self) -> int:
        return self.active + self.inactive + self.unstable


@dataclass
class FixedModel:
    """A formulated fixed-weight network: the model plus where its input, output and units live."""

    model: MatrixModel
    x_cols: IntArray
    out: Affine
    out_lo: FloatArray
    out_hi: FloatArray
    units: dict[str, UnitCounts] = field(default_factory=dict)
    pre_cols: dict[str, IntArray] = field(default_factory=dict)   # dense node -> its ``a`` columns
    cut_units: list[ReluCutUnits] = field(default_factory=list)   # see nnmip.formulations.ideal
    phases: list[PhaseCols] = field(default_factory=list)          # see start_vector
    fallbacks: list[str] = field(default_factory=list)             # formulations replaced, for the user

    @property
    def stable_units(self) -> int:
        return sum(u.active + u.inactive for u in self.units.values())

    @property
    def unstable_units(self) -> int:
        return sum(u.unstable for u in self.units.values())

    @property
    def total_units(self) -> int:
        return sum(u.total for u in self.units.values())


# ------------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------------
def _plain_cols(v: Val) -> IntArray | None:
    """The columns of ``v`` when it is exactly ``x[cols]`` (one coefficient 1 per row, no constant)."""
    c = sp.csr_array(v.expr.coef)
    c.eliminate_zeros()
    if c.nnz != v.size or np.any(np.diff(c.indptr) != 1) or np.any(c.data != 1.0) or np.any(v.expr.const != 0):
        return None
    return np.asarray(c.indices, dtype=np.int64)


def _as_cols(node: str, v: Val, b: ModelBuilder, idx: IntArray) -> IntArray:
    """Columns holding entries ``idx`` of ``v``: its own columns, or new ``a`` columns tied by equality rows."""
    cols = _plain_cols(v)
    if cols is not None:
        return cols[idx]
    sub = v.expr.take(idx)
    a = b.add_cols(node, "a", idx.size, lb=v.lo[idx], ub=v.hi[idx])
    b.add_rows(node, "a_def", Affine.from_cols(a) - sub, 0.0, 0.0)
    return a


def _rows_from(parts: list[tuple[IntArray, Affine]], size: int) -> Affine:
    """Assemble an expression of ``size`` entries from ``(entries, expr)`` pieces (missing entries are 0)."""
    n = max((p.coef.shape[1] for _, p in parts), default=0)
    const = np.zeros(size)
    if all(_single_terms(p.coef) for _, p in parts):
        # every row one non-zero term or none: the rows are placed as they are, no sparse products (the entries
        # are those of the general form below; with one per row there is no order to keep)
        rows = np.concatenate([idx[np.diff(p.coef.indptr) > 0] for idx, p in parts] + [np.zeros(0, np.int64)])
        order = np.argsort(rows, kind="stable")
        cols = np.concatenate([p.coef.indices for _, p in parts] + [np.zeros(0, np.int32)])[order]
        vals = np.concatenate([p.coef.data for _, p in parts] + [np.zeros(0)])[order]
        indptr = np.zeros(size + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=size), out=indptr[1:])
        for idx, p in parts:
            if idx.size:
                const[idx] += p.const
        return Affine(sp.csr_array((vals, cols, indptr), shape=(size, n)), const, (size,))
    coef = sp.csr_array((size, n))
    for idx, p in parts:
        if idx.size == 0:
            continue
        sel = sp.csr_array((np.ones(idx.size), (idx, np.arange(idx.size))), shape=(size, idx.size))
        coef = coef + sel @ p.padded(n)
        const[idx] += p.const
    return Affine(sp.csr_array(coef), const, (size,))


def _single_terms(coef: sp.csr_array) -> bool:
    """Every row of ``coef`` holds at most one entry, and no entry is an explicit zero."""
    return bool(np.all(np.diff(coef.indptr) <= 1) and np.all(coef.data != 0.0))


def _check_finite(node: str, lo: FloatArray, hi: FloatArray, op: Op) -> None:
    bad = ~(np.isfinite(lo) & np.isfinite(hi))
    if bad.any():
        i = int(np.argmax(bad))
        raise FormulationError.at("E0420", f"unit {i} of '{node}' has an infinite bound [{lo[i]:g}, {hi[i]:g}]; "
                                  "a big-M needs a finite one", op.span, [_BOUND_HELP])


# ------------------------------------------------------------------------------------------------------------
# layers
# ------------------------------------------------------------------------------------------------------------
@register("verification", "dense", "fixed")
def dense_fixed(ctx: FixedContext, node: str, op: Dense, inp: Val) -> Val:
    r"""Dense layer with constant weights: ``a = W x + b`` as columns.

    Math
    ----
    ``a_l - sum_j W_lj x_j = b_l`` for every unit ``l``; ``L_l <= a_l <= U_l`` with the proven bounds
    ``out`` (they are implied by the rows and only help the solver).

    Source / Target: Dense(fixed) -> ``n_out`` continuous columns ``a``, ``n_out`` equality rows.

    Raises
    ------
    FormulationError
        E0421 when the layer's weights are not fixed.
    """
    b, out = ctx.b, ctx.bounds[node]
    if op.trainable:
        raise FormulationError.at("E0421", f"layer '{node}' has weights that are not fixed", op.span,
                                  ["help: verification needs fixed weights: load(...) them, import an ONNX "
                                   "model, or train the network first"])
    lo, hi = out
    a = b.add_cols(node, "a", op.n_out, lb=lo, ub=hi)
    if not _dense_rows(b, node, op, inp, a):
        W = sp.csr_array(op.matrix)     # dense weights or the sparse matrix of a lowered convolution
        Wx = Affine(sp.csr_array(W @ inp.expr.coef), np.asarray(W @ inp.expr.const, np.float64), (op.n_out,))
        b.add_rows(node, "a_def", Affine.from_cols(a) - Wx, op.b, op.b)
    ctx.pre_expr.append((a, lambda: _pre_activation(op, inp)))
    return Val(Affine.from_cols(a), np.asarray(lo, np.float64), np.asarray(hi, np.float64))


def _pre_activation(op: Dense, inp: Val) -> Affine:
    """``W x + b`` over the columns of ``inp`` (formed when the ideal cuts ask for it)."""
    W = sp.csr_array(op.matrix)
    Wx = Affine(sp.csr_array(W @ inp.expr.coef), np.asarray(W @ inp.expr.const, np.float64), (op.n_out,))
    return Wx + np.asarray(op.b, np.float64)


def _dense_rows(b: ModelBuilder, node: str, op: Dense, inp: Val, a: IntArray) -> bool:
    """The rows ``a - W x = b`` of :func:`dense_fixed` straight from a dense ``W`` when every entry of ``inp`` is
    ``s_j x_{c_j}`` (distinct columns ``c_j``) or 0, with no constant: the coefficients ``-W_lj s_j`` row by row in
    increasing column order, then ``a_l`` (a new column, so the last).  The same triplets, value for value, as
    the sparse products of the general form, without forming them; False (nothing added) in any other case.
    """
    coef = inp.expr.coef
    if op.sparse is not None or inp.expr.const.any() or coef.shape[0] != op.n_in:
        return False
    per_row = np.diff(coef.indptr)
    if per_row.size and per_row.max() > 1:
        return False
    W = op.W
    if not np.isfinite(W).all():
        return False
    has = np.flatnonzero(per_row)                # inputs that are a column (the others are 0)
    c, s = coef.indices[coef.indptr[has]], coef.data[coef.indptr[has]]
    order = np.argsort(c, kind="stable")
    c, s, has = c[order], s[order], has[order]
    if c.size > 1 and not np.all(c[1:] > c[:-1]):
        return False
    n_out, k = op.n_out, has.size
    full = np.empty((n_out, k + 1))
    sub = W[:, has] if k < W.shape[1] or not np.array_equal(has, np.arange(k)) else W
    if np.all(s == 1.0):
        np.negative(sub, out=full[:, :k])
    else:
        np.multiply(sub, -s, out=full[:, :k])    # -(W_lj s_j): the product, then the sign, both exact
    full[:, k] = 1.0
    keep = full != 0.0
    cols = np.empty((n_out, k + 1), dtype=np.int64)
    cols[:, :k] = c
    cols[:, k] = a
    rows = np.repeat(np.arange(n_out, dtype=np.int64), np.count_nonzero(keep, axis=1))
    zero = np.zeros(n_out)
    bias = np.asarray(op.b, dtype=np.float64)
    b.add_rows_coo(node, "a_def", rows, cols[keep], full[keep], bias - zero, bias - zero, (n_out,))
    return True


@register("verification", "relu", "bigm")
def relu_bigm(ctx: FixedContext, node: str, op: ReLU, inp: Val) -> Val:
    r"""Big-M ReLU ``y = max(0, a)`` with binaries only for unstable units.

    Math
    ----
    With ``[L, U]`` the proven bounds of ``a``: a stable active unit (``L >= 0``) gives ``y = a`` and a stable
    inactive one (``U <= 0``) gives ``y = 0``, with no column and no row.  An unstable unit (``L < 0 < U``):
    ``0 <= y <= U``, ``d`` binary and

        ``y - a >= 0``,   ``y - a - L d <= -L``   (``y <= a - L (1 - d)``),   ``y - U d <= 0``.

    Source / Target: ReLU -> per unstable unit one continuous ``y``, one binary ``d`` and three rows.

    Raises
    ------
    FormulationError
        E0420 when an unstable unit has an infinite bound.
    """
    b, out = ctx.b, ctx.bounds[node]
    L, U = inp.lo, inp.hi
    active = L >= 0
    inactive = ~active & (U <= 0)
    unstable = ~active & ~inactive
    idx = np.flatnonzero(unstable)
    parts: list[tuple[IntArray, Affine]] = [(np.flatnonzero(active), inp.expr.take(np.flatnonzero(active)))]
    if idx.size:
        Lu, Uu = L[idx], U[idx]
        _check_finite(node, Lu, Uu, op)
        a = _as_cols(node, inp, b, idx)
        y = b.add_cols(node, "y", idx.size, lb=0.0, ub=Uu)
        d = b.add_cols(node, "d", idx.size, vtype="B")
        # the rows as triplets, each row's columns in increasing order (a < y < d: y and d are new columns)
        k, one = idx.size, np.ones(idx.size)
        r2, r3 = np.repeat(np.arange(k), 2), np.repeat(np.arange(k), 3)
        b.add_rows_coo(node, "y_ge_a", r2, np.stack([a, y], 1).ravel(), np.stack([-one, one], 1).ravel(),
                       0.0, np.inf, k)
        b.add_rows_coo(node, "y_le_a", r3, np.stack([a, y, d], 1).ravel(), np.stack([-one, one, -Lu], 1).ravel(),
                       -np.inf, -Lu, k)
        b.add_rows_coo(node, "y_le_ud", r2, np.stack([y, d], 1).ravel(), np.stack([one, -Uu], 1).ravel(),
                       -np.inf, 0.0, k)
        parts.append((idx, Affine.from_cols(y)))
        ctx.phases.append(PhaseCols(node, idx, y, d))
    b.notes.append(f"{node}: relu big-M, {int(active.sum())} active, {int(inactive.sum())} inactive, "
                   f"{idx.size} unstable")
    return Val(_rows_from(parts, inp.size), np.maximum(out[0], 0.0), np.maximum(out[1], 0.0))


@register("verification", "relu", "ideal-cuts")
def relu_ideal_cuts(ctx: FixedContext, node: str, op: ReLU, inp: Val) -> Val:
    r"""Big-M ReLU (as ``relu_bigm``) that records its unstable units for the ideal cuts of §18.

    Math
    ----
    The rows are those of ``relu_bigm``.  For the unstable units, whose pre-activation is a dense layer's
    ``a = w . x + b`` with proven column bounds ``L <= x <= U``, the expression ``(w, b)`` over the columns of the
    layer before is kept; ``nnmip.formulations.ideal.separate`` derives from it the inequalities

        ``y <= sum_{i in I} w_i (x_i - Lb_i (1 - d)) + (b + sum_{i not in I} w_i Ub_i) d``  for ``I`` in ``[n]``

    with ``Lb_i = L_i, Ub_i = U_i`` for ``w_i >= 0`` and ``Lb_i = U_i, Ub_i = L_i`` otherwise.

    Source / Target: ReLU -> the rows of ``relu_bigm``; cuts come later (``nnmip.drivers.relu_cuts``).
    """
    val = relu_bigm(ctx, node, op, inp)
    unstable = np.flatnonzero((inp.lo < 0) & (inp.hi > 0))
    expr = _dense_before(ctx, inp) if unstable.size else None
    if expr is not None:
        sub = expr.take(unstable)
        ctx.cut_units.append(ReluCutUnits(node, ctx.b.block_cols(node, "y"), ctx.b.block_cols(node, "d"),
                                          sp.csr_array(sub.coef), sub.const.copy()))
    return val


def _dense_before(ctx: FixedContext, inp: Val) -> Affine | None:
    """``W x + b`` over the columns of the layer before, when ``inp`` is exactly a dense layer's ``a`` columns."""
    cols = _plain_cols(inp)
    if cols is None:
        return None
    for a_cols, expr in ctx.pre_expr:
        if a_cols.shape == cols.shape and np.array_equal(a_cols, cols):
            return expr()
    return None


#: the extended formulation copies each unstable unit's inputs; above this many copies in one node it falls back
#: to big-M for that node (its rows grow as four per copy)
EXTENDED_MAX_COPIES = 20_000


@register("verification", "relu", "extended")
def relu_extended(ctx: FixedContext, node: str, op: ReLU, inp: Val) -> Val:
    r"""The extended (disjunctive) formulation of each unstable ReLU unit: ideal, at the price of a copy of its
    inputs (docs/formulations.md §19).

    Math
    ----
    For an unstable unit ``y = max(0, a)``, ``a = w . x + b``, with proven column bounds ``L <= x <= U`` of the
    layer before, ``y`` is ``0`` on ``P0 = {x in [L, U] : w . x + b <= 0}`` and ``w . x + b`` on
    ``P1 = {x in [L, U] : w . x + b >= 0}``.  Balas's hull of the two pieces, with ``d`` the weight of ``P1``
    and ``x1`` the part of ``x`` in it, is

        ``y - w . x1 - b d = 0``                                      (``y`` is linear on ``P1``, 0 on ``P0``)
        ``y - a >= 0``                                                (``w . (x - x1) + b (1 - d) <= 0``)
        ``y - a - L_a d <= -L_a``,  ``y - U_a d <= 0``                 (``a`` in ``[L_a, U_a]`` on each piece)
        ``x1_j - U_j d <= 0``,  ``x1_j - L_j d >= 0``                 (``x1 / d`` in the box)
        ``x_j - x1_j + U_j d <= U_j``,  ``x_j - x1_j + L_j d >= L_j``   (``(x - x1) / (1 - d)`` in the box)

    for every input ``j`` with ``w_j != 0``, ``0 <= y <= U_a`` and ``d`` binary, with ``[L_a, U_a]`` the proven
    bounds of ``a``.  (The second row is ``P0``'s ``w . x0 + b (1 - d) <= 0`` rewritten with ``x0 = x - x1``,
    the first row and ``a = w . x + b``; ``P1``'s ``w . x1 + b d >= 0`` is ``y >= 0``; the third pair, the big-M
    rows, are ``P0``'s ``w . x0 + b (1 - d) >= L_a (1 - d)`` and ``P1``'s ``w . x1 + b d <= U_a d``.)  Its LP
    relaxation is the convex hull of the unit over the box with ``a`` in its proven bounds (Balas's disjunctive
    hull; Anderson, Huchette, Ma, Tjandraatmadja and Vielma, Math. Programming 183, 2020, §2.1), so it is at
    least as tight as the big-M rows with every cut of §18, which describe the hull over the box alone
    intersected with the big-M rows.  Stable units are as in ``relu_bigm``.  A unit whose
    pre-activation is not a dense layer over columns (after a sum or a max-pool), or a node whose copies would
    exceed :data:`EXTENDED_MAX_COPIES`, keeps the big-M rows, and a note says so.

    Source / Target: ReLU -> the columns and rows of ``relu_bigm``, and per unstable unit one column per input
    with ``w_j != 0``, one row, and four rows per input.

    Raises
    ------
    FormulationError
        E0420 when an unstable unit or one of its inputs has an infinite bound.
    """
    val = relu_bigm(ctx, node, op, inp)      # stable units, y, d and the big-M rows (also the fallback)
    unstable = np.flatnonzero((inp.lo < 0) & (inp.hi > 0))
    if unstable.size == 0:
        return val
    expr = _dense_before(ctx, inp)
    if expr is None:
        ctx.fallbacks.append(f"{node}: relu extended needs a dense layer over columns before it; big-M kept")
        return val
    W = sp.csr_array(expr.coef)[unstable]
    W.eliminate_zeros()
    if W.nnz > EXTENDED_MAX_COPIES:
        ctx.fallbacks.append(f"{node}: relu extended would copy {W.nnz} inputs (more than "
                             f"{EXTENDED_MAX_COPIES}); big-M kept")
        return val
    b = ctx.b
    src = W.indices.astype(np.int64)
    lb, ub = b.col_bounds(src)
    bad = ~(np.isfinite(lb) & np.isfinite(ub))
    if bad.any():
        raise FormulationError.at("E0420", f"an input of '{node}' (column {int(src[np.argmax(bad)])}) has an "
                                  "infinite bound; the extended formulation needs a finite one", op.span,
                                  [_BOUND_HELP])
    ph = ctx.phases[-1]                       # the unstable units relu_bigm has just formulated
    y, d = ph.y, ph.d
    k, m = unstable.size, W.nnz
    unit = np.repeat(np.arange(k), np.diff(W.indptr))
    x1 = b.add_cols(node, "x1", m, lb=np.minimum(lb, 0.0), ub=np.maximum(ub, 0.0))
    bias = np.asarray(expr.const, np.float64)[unstable]
    one_m, rm = np.ones(m), np.arange(m)

    def rows(role: str, c: list[IntArray], v: list[FloatArray], lo: float | FloatArray,
             hi: float | FloatArray) -> None:
        """One row per copy from per-term columns and values, zero coefficients left out."""
        cc, vv = np.stack(c, 1).ravel(), np.stack(v, 1).ravel()
        keep = vv != 0.0
        b.add_rows_coo(node, role, np.repeat(rm, len(c))[keep], cc[keep], vv[keep], lo, hi, m)

    # y - w . x1 - b d = 0
    hull_v = np.concatenate([np.ones(k), -W.data, -bias])
    keep = hull_v != 0.0
    b.add_rows_coo(node, "hull_y", np.concatenate([np.arange(k), unit, np.arange(k)])[keep],
                   np.concatenate([y, x1, d])[keep], hull_v[keep], 0.0, 0.0, k)
    du = d[unit]
    rows("x1_le_ud", [x1, du], [one_m, -ub], -np.inf, 0.0)
    rows("x1_ge_ld", [x1, du], [one_m, -lb], 0.0, np.inf)
    rows("x0_le_u", [src, x1, du], [one_m, -one_m, ub], -np.inf, ub)
    rows("x0_ge_l", [src, x1, du], [one_m, -one_m, lb], lb, np.inf)
    ctx.phases[-1] = dataclasses.replace(ph, copy_cols=x1, copy_unit=unit, copy_src=src)
    b.notes.append(f"{node}: relu extended, {m} input copies of its {k} unstable units")
    return val


@register("verification", ("step", "sign"), "bigm")
def step_fixed(ctx: FixedContext, node: str, op: Step | Sign, inp: Val) -> Val:
    r"""Step (``y = u``) or sign (``y = 2u - 1``) with fixed weights: the sound verification encoding.

    Math
    ----
    With ``[L, U]`` the proven bounds of ``a``: ``L > 0`` fixes ``u = 1``, ``U <= 0`` fixes ``u = 0`` (no
    column).  Otherwise ``u`` binary with

        ``u = 1  =>  a >= 0``:   ``a + L u >= L``
        ``u = 0  =>  a <= 0``:   ``a - U u <= 0``

    At ``a = 0`` both values of ``u`` stay feasible (the forward pass gives ``u = 0``), which over-approximates
    the network and so keeps every bound sound; a counterexample is re-checked by the forward pass.
    The output is ``y = lo + (hi - lo) u`` with ``(lo, hi) = (0, 1)`` for step and ``(-1, 1)`` for sign.

    Source / Target: Step/Sign -> per unstable unit one binary ``u`` and two rows.

    Raises
    ------
    FormulationError
        E0420 when an unstable unit has an infinite bound.
    """
    b, out = ctx.b, ctx.bounds[node]
    return _step(node, op, inp, out, b, 0.0)


def _step(node: str, op: Step | Sign, inp: Val, out: Bounds, b: ModelBuilder, eps: float, eps_off: float = 0.0
          ) -> Val:
    lo_v, hi_v = op.binary
    L, U = inp.lo, inp.hi
    on = L > 0
    off = U <= 0
    unstable = ~on & ~off
    idx = np.flatnonzero(unstable)
    const = np.where(on, hi_v, lo_v).astype(np.float64)
    const[idx] = 0.0
    parts: list[tuple[IntArray, Affine]] = []
    if idx.size:
        Lu, Uu = L[idx], U[idx]
        _check_finite(node, Lu, Uu, op)
        a = _as_cols(node, inp, b, idx)
        u = b.add_cols(node, "u", idx.size, vtype="B")
        A = Affine.from_cols(a)
        step_rows(b, node, Affine.from_cols(u), A, A, Lu, Uu, eps, eps_off)
        parts.append((idx, Affine.from_cols(u, scale=hi_v - lo_v, offset=lo_v)))
    expr = _rows_from(parts, inp.size) + const
    b.notes.append(f"{node}: {op.kind}, {int(on.sum())} on, {int(off.sum())} off, {idx.size} unstable")
    return Val(expr, np.asarray(out[0], np.float64), np.asarray(out[1], np.float64))


#: margin of :func:`step_strict`: far above solver tolerances, far below the scale of pre-activations
STRICT_EPS = 1e-6


@register("verification", ("step", "sign"), "margin")
def step_strict(ctx: FixedContext, node: str, op: Step | Sign, inp: Val) -> Val:
    r"""Step/sign with a margin on both sides: an under-approximation whose solutions the forward pass
    reproduces (used to turn a solution at ``a = 0`` into a genuine counterexample).

    Math
    ----
    As :func:`step_fixed`, but ``u = 1 => a >= eps`` and ``u = 0 => a <= -eps``: ``a + (L - eps) u >= L`` and
    ``a - (U + eps) u <= -eps`` with ``eps = STRICT_EPS``; units with ``0 < L`` stay fixed on, units with
    ``U <= 0`` fixed off.  The off side needs its margin too: a solution at ``a = 0`` with ``u = 0`` is feasible,
    and the forward pass may round that ``a`` to ``+1e-17`` and switch the unit on.

    Source / Target: Step/Sign -> per unstable unit one binary ``u`` and two rows.

    Raises
    ------
    FormulationError
        E0420 when an unstable unit has an infinite bound.
    """
    b, out = ctx.b, ctx.bounds[node]
    return _step(node, op, inp, out, b, STRICT_EPS, STRICT_EPS)


@register("verification", "identity", "identity")
def identity_pass(ctx: FixedContext, node: str, op: Identity, inp: Val) -> Val:
    r"""Identity ``y = a``.

    Math
    ----
    No column and no row: the output is the input expression.

    Source / Target: Identity -> nothing.
    """
    return Val(inp.expr, inp.lo, inp.hi)


@register("verification", "add", "sum")
def sum_pass(ctx: FixedContext, node: str, op: Sum, inps: list[Val]) -> Val:
    r"""Sum of computed vectors ``y = x_1 + x_2 + ...`` (a residual connection).

    Math
    ----
    No column and no row: the output is the sum of the input expressions; its bounds are the proven ``out``.

    Source / Target: Sum -> nothing.
    """
    out = ctx.bounds[node]
    expr = inps[0].expr
    for v in inps[1:]:
        expr = expr + v.expr
    return Val(expr, np.asarray(out[0], np.float64), np.asarray(out[1], np.float64))


@register("verification", "maxpool", "bigm")
def maxpool_bigm(ctx: FixedContext, node: str, op: MaxPool, inp: Val) -> Val:
    r"""Max over groups ``y_j = max_{i in G_j} x_i`` (max pooling) with binaries only where bounds leave the
    maximum open.

    Math
    ----
    With ``[L_i, U_i]`` the proven bounds of the inputs, ``i*`` a member with the largest lower bound and
    ``m_j = L_{i*}``, a member with ``U_i <= m_j`` is never above ``x_{i*}`` and is dropped; let
    ``C_j = {i*} + {i : U_i > m_j}`` be the candidates.  When ``i*`` is the only one, ``y_j = x_{i*}`` (no column,
    no row).  Otherwise, with ``U^*_j = max_{i in C_j} U_i``, a column
    ``y_j`` in ``[m_j, U^*_j]``, a binary ``z_ji`` per candidate and

        ``y_j >= x_i``   and   ``y_j <= x_i + (U^*_j - L_i) (1 - z_ji)``   for ``i in C_j``,   ``sum_i z_ji = 1``.

    The lower rows make ``y_j`` at least every candidate (and so at least every member); the selected ``z``
    makes it at most the selected candidate, so ``y_j = max_i x_i`` exactly, with big-Ms from proven bounds.

    Source / Target: MaxPool -> per open group one continuous ``y``, ``|C_j|`` binaries and ``2 |C_j| + 1`` rows.

    Raises
    ------
    FormulationError
        E0420 when a candidate of an open group has an infinite bound.
    """
    b, out = ctx.b, ctx.bounds[node]
    L, U = inp.lo, inp.hi
    parts: list[tuple[IntArray, Affine]] = []
    fixed_rows: list[int] = []
    fixed_src: list[int] = []
    open_groups: list[tuple[int, IntArray]] = []
    for j, g in enumerate(op.groups):
        best = int(g[np.argmax(L[g])])
        m = float(L[best])
        cand = np.union1d(g[U[g] > m], [best]).astype(np.int64)
        if cand.size == 1:
            fixed_rows.append(j)
            fixed_src.append(int(cand[0]))
        else:
            open_groups.append((j, cand))
    if fixed_rows:
        parts.append((np.asarray(fixed_rows, np.int64), inp.expr.take(np.asarray(fixed_src, np.int64))))
    if open_groups:
        rows_j = np.asarray([j for j, _ in open_groups], np.int64)
        cands = [c for _, c in open_groups]
        members = np.concatenate(cands)
        owner = np.repeat(np.arange(len(cands)), [c.size for c in cands])
        _check_finite(node, L[members], U[members], op)
        y_lo = np.array([float(np.max(L[c])) for c in cands])
        y_hi = np.array([float(np.max(U[c])) for c in cands])
        y = b.add_cols(node, "y", len(cands), lb=y_lo, ub=y_hi)
        z = b.add_cols(node, "z", members.size, vtype="B")
        xs = inp.expr.take(members)
        Y = Affine.from_cols(y[owner])
        b.add_rows(node, "y_ge_x", Y - xs, 0.0, np.inf)
        M = y_hi[owner] - L[members]
        # y - x_i + M z_i <= M
        b.add_rows(node, "y_le_x", Y - xs + Affine.from_cols(z, scale=M), -np.inf, M)
        sel = sp.csr_array((np.ones(members.size), (owner, z)), shape=(len(cands), b.num_cols))
        b.add_rows(node, "one_max", Affine(sel, np.zeros(len(cands)), (len(cands),)), 1.0, 1.0)
        parts.append((rows_j, Affine.from_cols(y)))
    b.notes.append(f"{node}: max pool, {len(fixed_rows)} groups settled by bounds, {len(open_groups)} open")
    return Val(_rows_from(parts, op.index.shape[0]), np.asarray(out[0], np.float64),
               np.asarray(out[1], np.float64))


DEFAULT_METHOD: dict[str, str] = {"dense": "fixed", "relu": "bigm", "step": "bigm", "sign": "bigm",
                                  "identity": "identity", "add": "sum", "maxpool": "bigm"}


# ------------------------------------------------------------------------------------------------------------
# input sets
# ------------------------------------------------------------------------------------------------------------
@register("verification", "set", "box")
@register("verification", "set", "linf")
def set_box(ctx: FixedContext, node: str, s: InputSet, inp: Val) -> None:
    r"""Box or l-infinity ball: nothing beyond the column bounds.

    Math
    ----
    ``max(lo, c - r, domain_lo) <= x <= min(hi, c + r, domain_hi)`` is already the bound of ``x``.

    Source / Target: box/linf -> nothing.
    """


@register("verification", "set", "l1")
def set_l1(ctx: FixedContext, node: str, s: InputSet, inp: Val) -> None:
    r"""l1 ball ``|x - c|_1 <= r`` as linear rows.

    Math
    ----
    ``t_j >= |x_j - c_j|`` by ``x_j - t_j <= c_j`` and ``x_j + t_j >= c_j``; then ``sum_j t_j <= r``;
    ``0 <= t_j <= max(|lo_j - c_j|, |hi_j - c_j|, r)``.

    Source / Target: l1 -> ``n`` columns ``t``, ``2n + 1`` rows.
    """
    b, x, lo, hi = ctx.b, ctx.x_cols, inp.lo, inp.hi
    assert x is not None
    assert s.center is not None
    c = np.asarray(s.center, dtype=np.float64)
    n = x.size
    t_hi = np.minimum(np.maximum(np.abs(lo - c), np.abs(hi - c)), s.radius)
    t = b.add_cols(node, "t", n, lb=0.0, ub=t_hi)
    X, T = Affine.from_cols(x), Affine.from_cols(t)
    b.add_rows(node, "l1_pos", X - T, -np.inf, c)
    b.add_rows(node, "l1_neg", X + T, c, np.inf)
    b.add_rows(node, "l1_sum", T.reshape((1, n)).sum(axis=1), -np.inf, s.radius)


@register("verification", "set", "l2")
def set_l2_soc(ctx: FixedContext, node: str, s: InputSet, inp: Val) -> None:
    r"""l2 ball ``|x - c|_2 <= r`` as a second-order cone (MISOCP: Gurobi, or cvxpy with a conic MIP solver).

    Math
    ----
    ``r_j = x_j - c_j`` (equality rows), a head column ``t = r`` (fixed) and the cone ``||r||_2 <= t``.

    Source / Target: l2 -> ``n + 1`` columns, ``n`` rows, one ``soc`` cone.
    """
    b, x, lo, hi = ctx.b, ctx.x_cols, inp.lo, inp.hi
    assert x is not None
    assert s.center is not None
    c = np.asarray(s.center, dtype=np.float64)
    n = x.size
    r = b.add_cols(node, "r", n, lb=lo - c, ub=hi - c)
    head = b.add_cols(node, "t", 1, lb=s.radius, ub=s.radius)
    b.add_rows(node, "l2_def", Affine.from_cols(r) - Affine.from_cols(x), -c, -c)
    b.cones.append(Cone("soc", head.reshape(1, 1), r.reshape(1, n)))
    b.notes.append(f"{node}: l2 ball of radius {s.radius:g} as a second-order cone")


@register("verification", "set", "halfspaces")
def set_halfspaces(ctx: FixedContext, node: str, s: InputSet, inp: Val) -> None:
    r"""Linear input constraints ``A x <= b``.

    Math
    ----
    One row ``sum_j A_ij x_j <= b_i`` per halfspace.

    Source / Target: halfspaces -> ``m`` rows.
    """
    b, x = ctx.b, ctx.x_cols
    assert x is not None
    assert s.A is not None
    assert s.b is not None
    expr = Affine.from_cols(x.reshape(1, -1)).matmul_t(s.A).reshape((s.A.shape[0],))
    b.add_rows(node, "halfspace", expr, -np.inf, s.b)


# ------------------------------------------------------------------------------------------------------------
# whole networks
# ------------------------------------------------------------------------------------------------------------
def build_fixed_model(net: Network, region: Region, bounds: dict[str, Bounds], *, upto: str | None = None,
                      method: dict[str, str] | None = None, name: str | None = None) -> FixedModel:
    """Formulate ``net`` (up to and including node ``upto``) over ``region`` with the proven ``bounds``.

    ``bounds`` maps every node to the interval of its output (see :func:`nnmip.passes.bounds.propagate_bounds`);
    the objective is left empty (see :func:`with_case`).

    Raises
    ------
    FormulationError
        E0420 (infinite big-M), E0421 (weights not fixed), E0422 (no formulation for an op), E0429 (a sigmoid or
        tanh, which no MILP models exactly).
    """
    for n, op in net.items():
        if op.smooth:
            raise FormulationError.at("E0429", f"node '{n}' is a {op.kind}, which no MILP or LP models exactly",
                                      op.span, ["help: a network with sigmoid or tanh units is verified by symbolic "
                                                "bounds and counterexample search: nnmip.verify (or nnmip verify) "
                                                "does that"])
        if n == upto:
            break
    methods = {**DEFAULT_METHOD, **(method or {})}
    b = ModelBuilder(name or f"verify_{net.name}")
    ctx = FixedContext(b, bounds)
    vals: dict[str, Val] = {}
    units: dict[str, UnitCounts] = {}
    pre: dict[str, IntArray] = {}
    x_cols: IntArray | None = None
    for n, op in net.items():
        if isinstance(op, Input):
            lo, hi = bounds[n]
            x_cols = b.add_cols(n, "x", op.dim, lb=lo, ub=hi)
            ctx.x_cols = x_cols
            vals[n] = Val(Affine.from_cols(x_cols), np.asarray(lo, np.float64), np.asarray(hi, np.float64))
            for k, s in enumerate(region.sets):
                formulation("verification", "set", s.kind, s.span)(ctx, f"{n}_set{k}", s, vals[n])
        else:
            srcs = net.inputs_of(n)
            inp = vals[srcs[0]]
            fn = formulation("verification", op.kind, methods.get(op.kind, ""), op.span)
            if isinstance(op, (ReLU, Step, Sign)):
                units[n] = _count(op, inp.lo, inp.hi)
            vals[n] = fn(ctx, n, op, inp if op.arity == 1 else [vals[s_] for s_ in srcs])
            if isinstance(op, Dense):
                cols = _plain_cols(vals[n])
                if cols is not None:
                    pre[n] = cols
        if n == upto:
            break
    assert x_cols is not None
    last = upto if upto is not None else net.output
    out = vals[last]
    model = b.build("max")
    return FixedModel(model, x_cols, out.expr, out.lo, out.hi, units, pre, ctx.cut_units, ctx.phases,
                      ctx.fallbacks)


def start_vector(fm: FixedModel, net: Network, x: npt.ArrayLike, num_cols: int | None = None) -> FloatArray:
    """A solver start for the model of ``fm`` at the input ``x``, from the network's forward pass: the input
    columns, the pre-activation columns of the dense layers, and the output and phase (``d = 1`` where the
    pre-activation is positive) of every unstable big-M ReLU unit.  The other columns are NaN, which the
    backends pass as unknown (a partial start the solver completes).  ``num_cols`` pads it for a model with
    more columns than ``fm.model`` (the score column of :func:`with_case`).

    The values satisfy the rows up to rounding when ``x`` lies in the region; the solver checks them anyway.
    """
    n = fm.model.num_cols if num_cols is None else num_cols
    ws = np.full(n, np.nan)
    x = np.asarray(x, dtype=np.float64).ravel()
    vals = net.forward(x[None, :], all_nodes=True)
    ws[fm.x_cols] = x
    for node, cols in fm.pre_cols.items():
        if cols.size == net.dim(node):
            ws[cols] = vals[node][0]
    for ph in fm.phases:
        h = vals[ph.node][0, ph.idx]
        ws[ph.y] = h
        d = (h > 0).astype(np.float64)
        ws[ph.d] = d
        ws[ph.copy_cols] = np.where(d[ph.copy_unit] > 0, ws[ph.copy_src], 0.0)
    return ws


def _count(op: Op, L: FloatArray, U: FloatArray) -> UnitCounts:
    if isinstance(op, ReLU):
        act = L >= 0
        inact = ~act & (U <= 0)
    else:
        act = L > 0
        inact = U <= 0
    return UnitCounts(int(act.sum()), int(inact.sum()), int((~act & ~inact).sum()))


def score_bounds(case: Case, out_lo: FloatArray, out_hi: FloatArray) -> Bounds:
    """Interval of ``min_r -(G_r . y + h_r)`` over the output box (each row by interval arithmetic)."""
    Gn = -case.G
    lo_r = np.maximum(Gn, 0) @ out_lo + np.minimum(Gn, 0) @ out_hi - case.h
    hi_r = np.maximum(Gn, 0) @ out_hi + np.minimum(Gn, 0) @ out_lo - case.h
    return np.atleast_1d(lo_r.min()), np.atleast_1d(hi_r.min())


#: the roles of the binary columns of a verification model (ReLU phase, step activation, max-pool choice)
BINARY_ROLES = ("d", "u", "z")


def layer_priorities(model: MatrixModel) -> npt.NDArray[np.int64]:
    """Branching priorities that favour the earliest layers' unstable units: the binaries of the k-th binary
    block (of ``B``, in the order the network's nodes were formulated) get priority ``B - k``, every other
    column 0.  Fixing a first-layer phase tightens every later pre-activation, so branching there first tends
    to shrink the tree (Gurobi's ``BranchPriority``, SCIP's ``chgVarBranchPriority``: higher goes first).
    """
    prio = np.zeros(model.num_cols, dtype=np.int64)
    blocks = [b for b in model.col_blocks if b.role in BINARY_ROLES and b.size > 0]
    for k, blk in enumerate(blocks):
        sl = blk.slice
        prio[sl] = np.where(model.vtype[sl] == "B", len(blocks) - k, 0)
    return prio


def with_case(fm: FixedModel, case: Case) -> MatrixModel:
    r"""The model maximising the score ``s = min_r -(G_r . y + h_r)`` of one failure case.

    Math
    ----
    One row: the objective is ``-(G y + h)`` itself.  Several rows: a column ``t`` with
    ``t + G_r . y <= -h_r`` for every row ``r`` and objective ``max t``; ``L_t <= t <= U_t`` from interval bounds
    of the score over the output box (the lower bound never cuts: ``t = L_t`` is always feasible).

    Source / Target: Case -> objective (and for ``k > 1`` rows, one column ``t`` and ``k`` rows).
    """
    m = fm.model
    n = m.num_cols
    out_coef = fm.out.padded(n)
    G = np.asarray(case.G, dtype=np.float64)
    GA = sp.csr_array(sp.csr_array(G) @ out_coef)
    Gc = G @ fm.out.const + case.h
    if G.shape[0] == 1:
        c = -np.asarray(GA.toarray()).ravel()
        return m.replace(c=c, c0=float(-Gc[0]), sense="max")
    lo_t, hi_t = score_bounds(case, fm.out_lo, fm.out_hi)
    k = G.shape[0]
    A = sp.csr_array(sp.vstack([sp.hstack([m.A, sp.csr_array((m.num_rows, 1))]),
                                sp.hstack([GA, sp.csr_array(np.ones((k, 1)))])], format="csr"))
    c = np.zeros(n + 1)
    c[n] = 1.0
    return m.replace(
        A=A, c=c, c0=0.0, sense="max",
        row_lb=np.concatenate([m.row_lb, np.full(k, -np.inf)]),
        row_ub=np.concatenate([m.row_ub, -Gc]),
        col_lb=np.concatenate([m.col_lb, lo_t]), col_ub=np.concatenate([m.col_ub, hi_t]),
        vtype=np.concatenate([m.vtype, np.array(["C"])]),
        col_blocks=m.col_blocks + (Block("case", "t", n, ()),),
        row_blocks=m.row_blocks + (Block("case", "score", m.num_rows, (k,)),),
    )
