"""The squared group-norm term and its perspective reformulation (docs/formulations.md §10).

The pruning objective ``lambda sum_g (alpha ||W_g||^2 + (1 - alpha) z_g)`` with ``|w| <= M_g z_g`` has a
quadratic part that three emission modes write differently:

``milp``
    plain tangents of ``w^2`` per group member: ``s_w >= 2 v w - v^2`` for tangent points ``v`` in
    ``[-M, M]`` (a linear outer approximation, refined by a cut loop); the z's are big-M indicators only.
``perspective-conic``
    ``alpha s_g`` with the rotated cone ``||W_g||^2 <= s_g z_g`` (model cones of kind "rsoc"): exact for binary
    z, and the perspective relaxation for ``z in [0, 1]``; needs a conic backend (cvxpy, Gurobi).
``perspective-cuts``
    the linear perspective cuts of Frangioni & Gentile per member: ``s_w >= 2 v w - v^2 z_g``; a fixed set of
    tangents, then a cut loop that adds, for every member, the most violated cut (the tangent at
    ``v = w / z``) until the gap between the model's value and the exact value at its point closes.  The
    model stays linear, so CBC and HiGHS solve it and the LP/MPS writers write it.

Projecting z out of the conic relaxation gives the Structured Perspective Regulariser (:mod:`nnmip.formulations.spr`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from nnmip.formulations.common import formulation, register
from nnmip.formulations.groups import GroupRef, Groups
from nnmip.model import Affine, Block, Cone, MatrixModel, ModelBuilder

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass
class Regulariser:
    """Where the quadratic term lives in the model: what the cut loop and the read-back need."""

    weight: float            # lambda * alpha
    emit: str
    w: IntArray              # (k,) column of each member
    zm: IntArray             # (k,) indicator column of each member's group
    gid: IntArray            # (k,) group of each member
    s: IntArray              # (k,) s_w per member (tangent modes) or (G,) s_g (conic)
    M: FloatArray            # (k,) largest |w| the links allow
    loop: bool = True        # run the cut loop (tangent modes)

    @property
    def cuts(self) -> bool:
        return self.emit != "perspective-conic"

    @property
    def perspective(self) -> bool:
        return self.emit != "milp"

    def modelled(self, x: FloatArray) -> float:
        """The model's value of the quadratic term at ``x``."""
        return self.weight * float(x[self.s].sum())

    def exact(self, x: FloatArray) -> float:
        """The term's exact value at ``x``: ``weight sum_g ||W_g||^2 / z_g`` (perspective) or ``... ||W_g||^2``."""
        w = x[self.w]
        if not self.perspective:
            return self.weight * float((w * w).sum())
        z = x[self.zm]
        return self.weight * float(np.where(z > 1e-9, w * w / np.maximum(z, 1e-12), 0.0).sum())

    def approximation_gap(self, x: FloatArray) -> float:
        """``exact - modelled`` at the point, with binary z taken as rounded (0 for the conic mode at z = 1)."""
        w = x[self.w]
        z = np.round(x[self.zm])
        true = self.weight * float(np.where(z > 0, w * w, 0.0).sum())
        return true - self.modelled(x)


def tangent_rows(b: ModelBuilder, reg: Regulariser, idx: IntArray, v: FloatArray, role: str) -> IntArray:
    r"""Tangent cuts ``s_w >= 2 v w - v^2 z`` (perspective) or ``s_w >= 2 v w - v^2`` (milp) for members ``idx``.

    Math
    ----
    ``s_m - 2 v w_m + v^2 z_m >= 0`` or ``s_m - 2 v w_m >= -v^2``, one row per (member, tangent point).
    """
    k = idx.size
    r = np.arange(k)
    if reg.perspective:
        return b.add_rows_coo("prune", role, np.r_[r, r, r], np.r_[reg.s[idx], reg.w[idx], reg.zm[idx]],
                              np.r_[np.ones(k), -2.0 * v, v * v], 0.0, np.inf, k)
    return b.add_rows_coo("prune", role, np.r_[r, r], np.r_[reg.s[idx], reg.w[idx]], np.r_[np.ones(k), -2.0 * v],
                          -(v * v), np.inf, k)


@dataclass
class RegulariserInput:
    """What the regulariser formulations act on: the groups' indicators, their members' columns, the weight
    ``lambda * alpha`` and the number of fixed tangent points.
    """

    z: IntArray
    wcols: IntArray
    weight: float
    tangents: int = 5


@dataclass
class BuilderContext:
    """The smallest formulation context: a model builder."""

    b: ModelBuilder


def emit_regulariser(b: ModelBuilder, g: Groups, z: IntArray, wcols: IntArray, weight: float, emit: str,
                     tangents: int = 5) -> Regulariser:
    """Emit ``weight * sum_g ||W_g||^2`` in the mode ``emit`` (the registered ``("training", "regulariser", emit)``
    formulation) for groups whose links ``L z_g <= w <= U z_g`` are already in place.
    """
    fn = formulation("training", "regulariser", emit, code="E0221")
    return fn(BuilderContext(b), "prune", g, RegulariserInput(z, wcols, weight, tangents))  # type: ignore[no-any-return]


@register("training", "regulariser", "perspective-conic")
def regulariser_conic(ctx: Any, node: str, g: Groups, inp: RegulariserInput) -> Regulariser:
    r"""The squared group norms as rotated cones: the perspective reformulation.

    Math
    ----
    ``s_g >= 0`` and ``||W_g||_2^2 <= s_g z_g`` (one "rsoc" cone per group, blocks by group size); objective
    ``+ weight sum_g s_g``.  Exact for binary ``z``; the perspective relaxation for ``z in [0, 1]``.

    Source: Groups + links.  Target: Regulariser; one column and one cone per group.
    """
    b, z, wcols, weight = ctx.b, inp.z, inp.wcols, inp.weight
    M = np.maximum(-g.lo, g.hi)
    zm = z[g.gid]
    ub = np.bincount(g.gid, M * M, minlength=g.count)
    s = b.add_cols(node, "s", g.count, 0.0, ub, "C")
    order = np.argsort(g.gid, kind="stable")
    sizes = np.bincount(g.gid, minlength=g.count)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    for size in np.unique(sizes[sizes > 0]):
        gs = np.flatnonzero(sizes == size)
        tail = wcols[order[starts[gs][:, None] + np.arange(size)[None, :]]]
        head = np.stack([s[gs], z[gs]], axis=1)
        b.cones.append(Cone("rsoc", head.astype(np.int64), tail.astype(np.int64)))
    b.add_objective_cols(s, weight)
    b.notes.append(f"perspective: {g.count} rotated cones ||W_g||^2 <= s_g z_g")
    return Regulariser(weight, "perspective-conic", wcols, zm, g.gid, s, M)


@register("training", "regulariser", "milp")
def regulariser_tangents(ctx: Any, node: str, g: Groups, inp: RegulariserInput) -> Regulariser:
    r"""The squared norms by plain tangents of ``w^2`` per member (a linear outer approximation).

    Math
    ----
    ``s_m >= 0`` per member and ``s_m - 2 v w_m >= -v^2`` (:func:`tangent_rows`) at ``v = t M_m`` for ``t`` in
    ``tangents`` equally spaced points of ``[-1, 1]``; objective ``+ weight sum_m s_m``.  The z's are big-M
    indicators only.  A cut loop (:mod:`nnmip.drivers.cuts`) adds the most violated tangent at the solver's point.

    Source: Groups + links.  Target: Regulariser; one column per member and ``tangents - 1`` rows per member.
    """
    return _tangents(ctx.b, node, g, inp, "milp")


@register("training", "regulariser", "perspective-cuts")
def regulariser_perspective_cuts(ctx: Any, node: str, g: Groups, inp: RegulariserInput) -> Regulariser:
    r"""The squared norms by the linear perspective cuts of Frangioni & Gentile per member.

    Math
    ----
    ``s_m >= 0`` per member and ``s_m - 2 v w_m + v^2 z_m >= 0`` (:func:`tangent_rows`) at ``v = t M_m`` for ``t``
    in ``tangents`` equally spaced points of ``[-1, 1]``; objective ``+ weight sum_m s_m``.  The model stays
    linear; a cut loop (:mod:`nnmip.drivers.cuts`) adds the tangent at ``v = w / z`` where it is violated.

    Source: Groups + links.  Target: Regulariser; one column per member and ``tangents - 1`` rows per member.
    """
    return _tangents(ctx.b, node, g, inp, "perspective-cuts")


def _tangents(b: ModelBuilder, node: str, g: Groups, inp: RegulariserInput, emit: str) -> Regulariser:
    M = np.maximum(-g.lo, g.hi)
    zm = inp.z[g.gid]
    s = b.add_cols(node, "s", g.gid.size, 0.0, M * M, "C")
    reg = Regulariser(inp.weight, emit, inp.wcols, zm, g.gid, s, M)
    pts = np.linspace(-1.0, 1.0, max(int(inp.tangents), 1)) if inp.tangents > 1 else np.zeros(1)
    members = np.arange(g.gid.size)
    for i, t in enumerate(pts):
        if t == 0.0:
            continue  # s >= 0 is a bound
        tangent_rows(b, reg, members, t * M, f"tangent{i}")
    b.add_objective_cols(s, inp.weight)
    kind = "perspective cuts s >= 2 v w - v^2 z" if reg.perspective else "tangents s >= 2 v w - v^2"
    b.notes.append(f"quadratic term: {kind}, {len(pts)} fixed points per weight, then a cut loop")
    return reg


def append_rows(model: MatrixModel, rows: IntArray, cols: IntArray, vals: FloatArray, lb: FloatArray,
                ub: FloatArray, node: str, role: str) -> MatrixModel:
    """``model`` with a block of rows added (local row indices ``rows`` in ``0..len(lb)-1``)."""
    m = lb.size
    extra = sp.csr_array((vals, (rows, cols)), shape=(m, model.num_cols))
    A = sp.csr_array(sp.vstack([model.A, extra], format="csr"))
    blocks = model.row_blocks + (Block(node, role, model.num_rows, (m,)),)
    return model.replace(A=A, row_lb=np.r_[model.row_lb, lb], row_ub=np.r_[model.row_ub, ub], row_blocks=blocks)


def separate(reg: Regulariser, x: FloatArray, tol: float = 1e-9) -> tuple[IntArray, FloatArray, float]:
    """Members whose tangent at the point is violated, the tangent points ``v`` and the total gap.

    The most violated cut for a member is the tangent at ``v = w / z`` (perspective) or ``v = w`` (milp); its
    violation is ``w^2 / z - s`` (or ``w^2 - s``).
    """
    w, s = x[reg.w], x[reg.s]
    if reg.perspective:
        z = x[reg.zm]
        on = z > 1e-9
        v = np.where(on, w / np.maximum(z, 1e-12), 0.0)
        target = np.where(on, w * v, 0.0)
    else:
        v = w
        target = w * w
    v = np.clip(v, -reg.M, reg.M)
    viol = target - s
    sel = np.flatnonzero(viol > tol * (1.0 + np.abs(target)))
    return sel, v[sel], reg.weight * float(np.maximum(viol, 0.0).sum())


def group_model(values: FloatArray, gid: IntArray, M: FloatArray, alpha: float, lam: float,
                emit: str = "perspective-conic", tangents: int = 5) -> tuple[MatrixModel, Regulariser]:
    """The regulariser alone for fixed weights: ``min lambda sum_g (alpha s_g + (1 - alpha) z_g)`` over
    ``z in [0, 1]`` with ``|w| <= M_g z_g`` (the relaxation whose value is ``lambda sum_g SPR(W_g)``).

    ``values`` (k,) are the weights, ``gid`` (k,) their groups, ``M`` (G,) the group bounds.
    """
    values = np.asarray(values, dtype=np.float64)
    gid = np.asarray(gid, dtype=np.int64)
    M = np.asarray(M, dtype=np.float64)
    G = M.size
    b = ModelBuilder(name="spr")
    w = b.add_cols("w", "x", values.size, values, values, "C")
    z = b.add_cols("prune", "z", G, 0.0, 1.0, "C")
    g = Groups([GroupRef("weight", "w", (i,)) for i in range(G)], np.zeros(G, dtype=np.int64), [("w", "W")], gid,
               np.zeros(gid.size, dtype=np.int64), np.arange(gid.size), -M[gid], M[gid])
    W = Affine.from_cols(w)
    b.add_rows("prune", "link_lo", W - Affine.from_cols(z[gid], -M[gid]), lb=0.0)
    b.add_rows("prune", "link_hi", W - Affine.from_cols(z[gid], M[gid]), ub=0.0)
    b.add_objective_cols(z, lam * (1.0 - alpha))
    reg = emit_regulariser(b, g, z, w, lam * alpha, emit, tangents)
    return b.build("min"), reg
