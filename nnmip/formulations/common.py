"""What the formulations share: the one registry and its signature, the values of nodes while formulating a training
model, and the pieces more than one formulation emits: the step/sign margin rows (docs/formulations.md §4 and §13)
and the McCormick products (§3).

Registry
--------
``FORMULATIONS[(problem, subject, method)]`` is the function that writes ``subject`` into a model of ``problem``:

=================  ==============================  =========================================================
problem            subject                         methods
=================  ==============================  =========================================================
``training``       op kind (dense, step, sign)     constant, mccormick, fixed (dense); margin, robust,
                                                   prunable (step / sign)
``training``       ``loss``                        hamming, zero_one, hinge, min_weight, max_margin
``training``       ``regulariser``                 milp, perspective-cuts, perspective-conic
``verification``   op kind (dense, relu, step,     fixed (dense), bigm (relu, step, sign), margin (step,
                   sign, identity)                 sign), identity
``verification``   ``set``                         box, linf, l1, l2, halfspaces
=================  ==============================  =========================================================

Every entry has the signature ``fn(ctx, node, item, inp) -> out``: ``ctx`` is the problem's formulation context
(it holds the :class:`~nnmip.model.ModelBuilder` as ``ctx.b`` and whatever the problem knows: data, proven
bounds, robust and pruning declarations), ``node`` the name the rows and columns are filed under, ``item`` what
is formulated (an IR op, an input set, a loss name, the pruning groups) and ``inp`` the value it acts on.  Each
module registers its own entries when it is imported; :func:`formulation` looks one up.

The modules import one another in one direction only: ``common`` <- ``groups`` <- ``perspective`` <- ``pruning``,
``common`` <- ``robust``; ``training`` imports all of them, ``verification`` only ``common``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from nnmip.errors import FormulationError, Span
from nnmip.ir.ops import Sign, Step
from nnmip.model import Affine, ModelBuilder

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: ``fn(ctx, node, item, inp) -> out`` (see the module docs)
Formulation = Callable[[Any, str, Any, Any], Any]

#: (problem, subject, method) -> formulation
FORMULATIONS: dict[tuple[str, str, str], Formulation] = {}


def register(problem: str, subjects: str | tuple[str, ...], method: str) -> Callable[[Formulation], Formulation]:
    """Decorator: file ``fn`` under ``(problem, subject, method)`` for every subject given."""
    names = (subjects,) if isinstance(subjects, str) else subjects

    def add(fn: Formulation) -> Formulation:
        for s in names:
            FORMULATIONS[(problem, s, method)] = fn
        return fn

    return add


def methods(problem: str, subject: str) -> list[str]:
    """The methods registered for ``subject`` in ``problem``."""
    return [m for (p, s, m) in FORMULATIONS if p == problem and s == subject]


def formulation(problem: str, subject: str, method: str, span: Span | None = None, code: str = "E0422"
                ) -> Formulation:
    """The registered formulation, or a FormulationError (``code``, E0422 by default) naming the known methods."""
    fn = FORMULATIONS.get((problem, subject, method))
    if fn is None:
        known = ", ".join(methods(problem, subject)) or "none"
        raise FormulationError.at(code, f"no {problem} formulation '{method}' for {subject}", span,
                                  [f"help: choose one of {known}"])
    return fn


# ------------------------------------------------------------------------------------------------------------
# values of nodes in a training model
# ------------------------------------------------------------------------------------------------------------
@dataclass
class Const:
    """Known numbers (data, or fixed layers applied to data), shape (R, d)."""

    values: FloatArray
    space: str = "point"


@dataclass
class Bin:
    """Binary columns ``u`` (R, d) with output ``lo + (hi - lo) u`` (step: 0/1, sign: -1/+1)."""

    cols: IntArray
    levels: tuple[float, float]
    space: str

    def affine(self) -> Affine:
        lo, hi = self.levels
        return Affine.from_cols(self.cols, scale=hi - lo, offset=lo)

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        return np.full(self.cols.shape, self.levels[0]), np.full(self.cols.shape, self.levels[1])


@dataclass
class Lin:
    """An affine block (R, d) with proven bounds ``[lo, hi]``."""

    expr: Affine
    lo: FloatArray
    hi: FloatArray
    space: str


Value = Const | Bin | Lin


def as_lin(v: Value) -> Lin:
    """Any value as an affine block with bounds."""
    if isinstance(v, Lin):
        return v
    if isinstance(v, Bin):
        lo, hi = v.bounds()
        return Lin(v.affine(), lo, hi, v.space)
    return Lin(Affine.constant(v.values), v.values, v.values, v.space)


@dataclass
class ParamCols:
    """Where a trainable layer's parameters live: column indices, or fixed values."""

    W_cols: IntArray | None
    W_fixed: FloatArray | None
    b_cols: IntArray | None
    b_fixed: FloatArray | None
    W_int: bool = False
    b_int: bool = False


# ------------------------------------------------------------------------------------------------------------
# shared rows
# ------------------------------------------------------------------------------------------------------------
def step_rows(b: ModelBuilder, node: str, u: Affine, on: Affine, off: Affine, L: Any, U: Any, eps_on: Any,
              eps_off: Any, off_extra: Affine | None = None, off_ub: Any = None) -> tuple[IntArray, IntArray]:
    r"""The two big-M rows that tie a step / sign unit's binary ``u`` to its pre-activation ``a``.

    Math
    ----
    With ``[L, U]`` bounds of ``a`` (widened by any shift the caller folded into ``on`` and ``off``):

        on-row   ``a + (L - eps_on) u >= L``        (u = 1 forces ``a >= eps_on``; u = 0 leaves ``a >= L``)
        off-row  ``a - (U + eps_off) u <= -eps_off``  (u = 0 forces ``a <= -eps_off``; u = 1 leaves ``a <= U``)

    Training uses ``eps_on = eps_off = eps`` (Kurtz & Bah's margin), the sound verification encoding
    ``eps_on = eps_off = 0`` and the strict one ``eps_on > 0 = eps_off``.  ``off_extra`` is added to the off-row
    body and ``off_ub`` replaces its right-hand side (pruning: ``+ eps z`` and ``<= 0``).

    Returns the row indices (on, off).
    """
    on_rows = b.add_rows(node, "on", on - u.scale(eps_on - L), lb=L)
    body = off - u.scale(U + eps_off)
    if off_extra is not None:
        body = body + off_extra
    off_rows = b.add_rows(node, "off", body, ub=0.0 - eps_off if off_ub is None else off_ub)
    return on_rows, off_rows


def mccormick(b: ModelBuilder, node: str, w: IntArray, u: IntArray, Lw: FloatArray, Uw: FloatArray) -> IntArray:
    r"""Product columns ``s = w u`` of continuous ``w in [Lw, Uw]`` and binary ``u`` (all arrays of one shape).

    Math
    ----
    ``L u <= s <= U u`` and ``w - U (1 - u) <= s <= w - L (1 - u)``: four rows per product, exact for binary
    ``u`` (``u = 0`` gives ``s = 0``, ``u = 1`` gives ``s = w``).  ``s`` is bounded by ``[min(L, 0), max(U, 0)]``.

    Returns the columns ``s`` (shape of ``w``).
    """
    s = b.add_cols(node, "s", w.shape, np.minimum(Lw, 0.0), np.maximum(Uw, 0.0), "C")
    L = np.broadcast_to(Lw, s.shape)
    U = np.broadcast_to(Uw, s.shape)
    k = s.size
    r = np.arange(k)
    one = np.ones(k)
    # rows 1-2: L u <= s <= U u  (one two-sided row would mix directions; keep them apart)
    b.add_rows_coo(node, "mc_lo", np.r_[r, r], np.r_[s.ravel(), u.ravel()], np.r_[one, -L.ravel()],
                   0.0, np.inf, s.shape)
    b.add_rows_coo(node, "mc_hi", np.r_[r, r], np.r_[s.ravel(), u.ravel()], np.r_[one, -U.ravel()],
                   -np.inf, 0.0, s.shape)
    # rows 3-4: W - U (1 - u) <= s <= W - L (1 - u)
    b.add_rows_coo(node, "mc_wlo", np.r_[r, r, r], np.r_[s.ravel(), w.ravel(), u.ravel()],
                   np.r_[one, -one, -U.ravel()], -U.ravel(), np.inf, s.shape)
    b.add_rows_coo(node, "mc_whi", np.r_[r, r, r], np.r_[s.ravel(), w.ravel(), u.ravel()],
                   np.r_[one, -one, -L.ravel()], -np.inf, -L.ravel(), s.shape)
    return s


def broadcast_rows(expr: Affine, R: int) -> Affine:
    """A (d,) block repeated as an (R, d) block."""
    d = expr.shape[0]
    return expr.take(np.tile(np.arange(d), R)).reshape((R, d))


def step_units(f: Any, node: str, op: Step | Sign, v: Lin, shift: Any = None, z_units: IntArray | None = None
               ) -> Bin:
    r"""Step / sign units of a training model with a margin ``eps`` on both sides (Kurtz & Bah), optionally robust
    over an input set (``shift``, see :mod:`nnmip.formulations.robust`) and optionally prunable per unit
    (``z_units``, the unit's indicator column or -1).

    Math
    ----
    With ``[L, U]`` the bounds of ``a``, ``s_l`` the worst shift of unit ``l`` over the set (0 without a set,
    bounded by ``S_l``) and ``z_l`` the unit's prune indicator (1 without pruning), the rows of
    :func:`step_rows` with ``eps_on = eps_off = eps`` on ``a - s`` (on) and ``a + s`` (off) and bounds
    ``L - S``, ``U + S``: on-row ``a - s - (eps - L + S) u >= L - S`` (u = 1: on for the whole set);
    off-row ``a + s - (U + S + eps) u + eps z <= 0`` (u = 0 and z = 1 force ``a + s <= -eps``; a pruned unit has
    ``a = s = 0``); ``u - z <= 0`` (a pruned unit is off).  ``u`` is fixed to 0 where ``U < eps``, and to 1
    where ``L > -eps`` for units that cannot be pruned.

    Source: Step/Sign on Lin.  Target: Bin; one binary and two rows per (row, unit), one more row per pruned
    unit and row.  Raises FormulationError when a bound is infinite.
    """
    eps = f.eps
    R, d = v.expr.shape
    if not (np.isfinite(v.lo).all() and np.isfinite(v.hi).all()):
        raise FormulationError.at("E0404", f"pre-activation of '{node}' has an infinite bound: no big-M exists",
                                  op.span, ["help: give the input a bounded set or run propagate_bounds"])
    to_cluster = v.space == "point" and f.clustered
    space = "cluster" if to_cluster else v.space
    R_u = f.n_clusters if to_cluster else R
    row_of = f.groups if to_cluster else np.arange(R)
    S = np.zeros(d) if shift is None else np.asarray(shift.hi, dtype=np.float64)
    can_prune = np.zeros(d, dtype=bool) if z_units is None else z_units >= 0
    lo_fix = np.zeros((R_u, d))
    hi_fix = np.ones((R_u, d))
    np.maximum.at(lo_fix, row_of, ((v.lo > -eps) & ~can_prune[None, :]).astype(float))
    np.minimum.at(hi_fix, row_of, (v.hi >= eps).astype(float))
    if (lo_fix > hi_fix).any():
        f.b.notes.append(f"{node}: a cluster holds points forced to opposite activations (infeasible)")
        hi_fix = np.maximum(hi_fix, lo_fix)
    u = f.b.add_cols(node, "u", (R_u, d), lo_fix, hi_fix, "B")
    u_rows = u[row_of]
    u_aff = Affine.from_cols(u_rows)
    on_expr, off_expr = v.expr, v.expr
    L, U = v.lo - S[None, :], v.hi + S[None, :]
    if shift is not None:
        sh = broadcast_rows(shift.expr, R)
        on_expr, off_expr = v.expr - sh, v.expr + sh
    if z_units is not None and can_prune.any():
        zc = np.where(can_prune, z_units, 0)
        z_aff = Affine.from_cols(np.broadcast_to(zc[None, :], (R, d)).copy(),
                                 scale=np.broadcast_to(np.where(can_prune, eps, 0.0)[None, :], (R, d)))
        on, off = step_rows(f.b, node, u_aff, on_expr, off_expr, L, U, eps, eps, off_extra=z_aff,
                            off_ub=np.where(can_prune, 0.0, -eps)[None, :])
        cols = np.flatnonzero(can_prune)
        uz = Affine.from_cols(u[:, cols]) - Affine.from_cols(np.broadcast_to(z_units[cols][None, :],
                                                                              (R_u, cols.size)).copy())
        f.b.add_rows(node, "prune_off", uz, ub=0.0)
        keep_margin = np.broadcast_to(~can_prune[None, :], (R, d))
        f.b.add_margin(off[keep_margin], u_rows[keep_margin], 0)
    else:
        on, off = step_rows(f.b, node, u_aff, on_expr, off_expr, L, U, eps, eps)
        f.b.add_margin(off, u_rows, 0)
    f.b.add_margin(on, u_rows, 1)
    point_rows = row_of if v.space == "point" else (f.groups if v.space == "cluster" else np.arange(f.X.shape[0]))
    f.patterns[node] = (u, point_rows)
    return Bin(u, op.binary, space)
