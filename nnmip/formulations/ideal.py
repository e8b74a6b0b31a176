"""Cutting planes of the ideal single-neuron ReLU formulation (docs/formulations.md §18).

Anderson, Huchette, Ma, Tjandraatmadja and Vielma, "Strong mixed-integer programming formulations for trained
neural networks", Math. Programming 183 (2020): the convex hull of one ReLU unit over a box of its inputs is
described by the big-M rows plus exponentially many inequalities, one per subset of the inputs, and the most
violated one is found in linear time.  Here they are separated from LP solutions and added in rounds at the root
(:func:`nnmip.drivers.relu_cuts.strengthen_root`), before the MILP is solved.

The relu formulation ``"ideal-cuts"`` (``method={"relu": "ideal-cuts"}``,
:func:`nnmip.formulations.verification.relu_ideal_cuts`) is the big-M formulation that also records, per
unstable unit, the affine expression of its pre-activation in the columns of the layer before, so that cuts can be
separated later.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from nnmip.model import Block, MatrixModel

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: relative safety margin added to the right-hand side of every cut (as for proven bounds)
SAFETY = 1e-7
#: a cut is added when the LP point violates it by more than this (relative to its scale)
MIN_VIOLATION = 1e-6


@dataclass(frozen=True)
class ReluCutUnits:
    """The unstable units of one ReLU node: ``y = max(0, coef @ x + const)`` with phase binaries ``d``."""

    node: str
    y: IntArray
    d: IntArray
    coef: sp.csr_array
    const: FloatArray


def separate(units: ReluCutUnits, x: FloatArray, col_lb: FloatArray, col_ub: FloatArray
             ) -> tuple[IntArray, IntArray, FloatArray, FloatArray, IntArray]:
    r"""The most violated ideal inequality of every unit of ``units`` at the point ``x``, where violated.

    Math
    ----
    For a unit ``y = max(0, w . x + b)`` with ``L <= x <= U`` and phase ``d``, the inequality of subset ``I``
    (§18) reads ``y <= sum_{i in I} w_i (x_i - Lb_i (1 - d)) + sum_{i not in I} w_i Ub_i d + b d``.  At a point
    ``(x*, y*, d*)`` its right-hand side is smallest for ``I = {i : w_i (x*_i - Lb_i (1 - d*)) < w_i Ub_i d*}``
    (each term is chosen independently), so that subset gives the most violated inequality: one pass over the
    weights.  As a row:

        ``y - sum_{i in I} w_i x_i - (b + sum_{i in I} w_i Lb_i + sum_{i not in I} w_i Ub_i) d``
        ``<= -sum_{i in I} w_i Lb_i``

    and the right-hand side is widened by ``1e-7 (1 + sum_i |w_i| max(|L_i|, |U_i|) + |b|)``.  Every inequality
    holds for each ``d`` in {0, 1}: with ``d = 1``, ``y = w . x + b`` and ``w_i Ub_i >= w_i x_i``; with ``d = 0``,
    ``y = 0`` and ``w_i (x_i - Lb_i) >= 0``.  Units with an infinite input bound get no cut.

    Returns COO triplets ``(rows, cols, vals)`` of the cut rows (rows numbered from 0), their right-hand sides
    and the unit of each cut.
    """
    C = units.coef
    k = C.shape[0]
    n_in = C.shape[1]
    counts = np.diff(C.indptr)
    r = np.repeat(np.arange(k), counts)
    j = C.indices.astype(np.int64)
    w = C.data
    lo, hi = col_lb[:n_in][j], col_ub[:n_in][j]
    pos = w >= 0
    Lb = np.where(pos, lo, hi)
    Ub = np.where(pos, hi, lo)
    ok = np.ones(k, dtype=bool)
    bad = ~(np.isfinite(Lb) & np.isfinite(Ub))
    if bad.any():
        ok[r[bad]] = False
        Lb, Ub = np.where(bad, 0.0, Lb), np.where(bad, 0.0, Ub)
    z = np.clip(x[units.d], 0.0, 1.0)
    zr = z[r]
    inside = w * (x[j] - Lb * (1.0 - zr))
    outside = w * Ub * zr
    in_I = inside < outside
    rhs_val = np.bincount(r, weights=np.where(in_I, inside, outside), minlength=k) + units.const * z
    scale = 1.0 + np.bincount(r, weights=np.abs(w) * np.maximum(np.abs(Lb), np.abs(Ub)), minlength=k) \
        + np.abs(units.const)
    viol = x[units.y] - rhs_val
    cut = ok & (viol > MIN_VIOLATION * scale)
    if not cut.any():
        e = np.zeros(0, dtype=np.int64)
        return e, e, np.zeros(0), np.zeros(0), e
    units_cut = np.flatnonzero(cut)
    new_row = np.full(k, -1, dtype=np.int64)
    new_row[units_cut] = np.arange(units_cut.size)
    sel = cut[r] & in_I
    wL_in = np.bincount(r[sel], weights=(w * Lb)[sel], minlength=k)
    wU_out = np.bincount(r[cut[r] & ~in_I], weights=(w * Ub)[cut[r] & ~in_I], minlength=k)
    d_coef = -(units.const + wL_in + wU_out)
    rhs = -wL_in + SAFETY * scale
    rows = np.concatenate([new_row[units_cut], new_row[r[sel]], new_row[units_cut]])
    cols = np.concatenate([units.y[units_cut], j[sel], units.d[units_cut]])
    vals = np.concatenate([np.ones(units_cut.size), -w[sel], d_coef[units_cut]])
    return rows, cols, vals, rhs[units_cut], units_cut


def cut_rows(units: list[ReluCutUnits], x: FloatArray, col_lb: FloatArray, col_ub: FloatArray, num_cols: int
             ) -> tuple[sp.csr_array, FloatArray, list[tuple[str, int]]]:
    """The violated ideal cuts of every unit at ``x`` as rows ``A z <= rhs`` over ``num_cols`` columns, with the
    node and count of each unit block's cuts (in row order).  Valid wherever the columns keep the bounds
    ``col_lb``, ``col_ub`` (the proven bounds of the model: every node of a branch-and-bound tree).
    """
    rows_p, cols_p, vals_p, rhs_p, blocks = [], [], [], [], []
    start = 0
    for u in units:
        r, c, v, rhs, _ = separate(u, x, col_lb, col_ub)
        if rhs.size == 0:
            continue
        rows_p.append(r + start)
        cols_p.append(c)
        vals_p.append(v)
        rhs_p.append(rhs)
        blocks.append((u.node, int(rhs.size)))
        start += int(rhs.size)
    if start == 0:
        return sp.csr_array((0, num_cols)), np.zeros(0), []
    A = sp.csr_array((np.concatenate(vals_p), (np.concatenate(rows_p), np.concatenate(cols_p))),
                     shape=(start, num_cols))
    A.sum_duplicates()
    return A, np.concatenate(rhs_p), blocks


def add_cuts(model: MatrixModel, units: list[ReluCutUnits], x: FloatArray, round_no: int = 0
             ) -> tuple[MatrixModel, int]:
    """``model`` with the violated ideal cuts of every unit at ``x`` appended as ``<=`` rows (and their count)."""
    extra, rhs_all, blocks = cut_rows(units, x, model.col_lb, model.col_ub, model.num_cols)
    total = int(rhs_all.size)
    if total == 0:
        return model, 0
    new_blocks, start = [], model.num_rows
    for node, size in blocks:
        new_blocks.append(Block(node, f"ideal{round_no}", start, (size,)))
        start += size
    return model.replace(A=sp.csr_array(sp.vstack([model.A, extra], format="csr")),
                         row_lb=np.concatenate([model.row_lb, np.full(total, -np.inf)]),
                         row_ub=np.concatenate([model.row_ub, rhs_all]),
                         row_blocks=model.row_blocks + tuple(new_blocks)), total
