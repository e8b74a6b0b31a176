"""Robust counterparts of the first binary layer's margin rows (docs/formulations.md §8).

While training, the data are constants and the weights are variables.  A point ``x_i`` may move inside
``U(x_i)``; the first binary layer's activation must then be the same for every point of the set, which holds
exactly when its margin rows hold with the worst shift ``max_{d in U(0)} W_l . d = r ||W_l||_*`` (the dual norm
of the set's norm).  Deeper layers see the same binary input for every point of the set and need nothing more.

The dual norm of a variable weight row is modelled by auxiliary columns:

==========  =====================================  =========================================================
set         dual norm                              columns and rows (node ``{layer}_robust``)
==========  =====================================  =========================================================
linf(r)     ``r sum_j |W_lj|``                     ``xi_lj >= +/- W_lj``; shift ``r sum_j xi_lj``
box(r_j)    ``sum_j r_j |W_lj|``                   ``xi_lj >= +/- W_lj``; shift ``sum_j r_j xi_lj``
l1(r)       ``r max_j |W_lj|``                     ``t_l >= +/- W_lj`` for every j; shift ``r t_l``
l2(r)       ``r ||W_l||_2``                        cone ``||W_l||_2 <= t_l`` (kind "soc"); shift ``r t_l``
l2(r), MILP ``r ||W_l||_1 >= r ||W_l||_2``         as linf (sound, conservative; stated in the model notes)
==========  =====================================  =========================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from nnmip.errors import FormulationError
from nnmip.formulations.common import Bin, Lin, ParamCols, register, step_units
from nnmip.ir.ops import Dense, Sign, Step
from nnmip.ir.train_spec import RobustSpec
from nnmip.model import Affine, Cone

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass
class Shift:
    """The worst shift of each unit's pre-activation over the set: an affine block (d,) and its upper bound."""

    expr: Affine          # shape (d,), non-negative at every feasible point
    hi: FloatArray        # (d,) proven upper bound of the shift
    conservative: bool = False


def dual_norm_shift(layer: str, op: Dense, pc: ParamCols, robust: RobustSpec, f: Any, cones: bool) -> Shift:
    r"""Columns and rows that bound ``max_{d in U(0)} W_l . d`` from above, exactly where the backend allows.

    Math
    ----
    linf / box / l2 on a MILP-only backend: ``xi_lj - W_lj >= 0``, ``xi_lj + W_lj >= 0`` and the shift
    ``sum_j rho_j xi_lj`` with ``rho_j = r`` (``r_j`` for a box).  l1: ``t_l - W_lj >= 0``,
    ``t_l + W_lj >= 0`` and the shift ``r t_l``.  l2 with cones: ``||W_l||_2 <= t_l`` (one "soc" cone per unit)
    and the shift ``r t_l``.  Upper bounds come from the weight domain: ``|W_lj| <= max(|lo_lj|, |hi_lj|)``.
    Fixed weights give a constant shift.

    Source: Dense on data (first layer) + a robust set.  Target: Shift (d,).
    """
    d_out, d_in = op.n_out, op.n_in
    assert op.weights is not None
    wmax = np.maximum(np.abs(op.weights.lo), np.abs(op.weights.hi))
    node = f"{layer}_robust"
    if pc.W_cols is None:
        return Shift(Affine.constant(robust.dual_norm(pc.W_fixed)), robust.dual_norm(pc.W_fixed))
    W = Affine.from_cols(pc.W_cols)
    if robust.kind == "l1":
        t = f.b.add_cols(node, "t", d_out, 0.0, wmax.max(axis=1), "C")
        tt = Affine.from_cols(np.broadcast_to(t[:, None], (d_out, d_in)).copy())
        f.b.add_rows(node, "dual_pos", tt - W, lb=0.0)
        f.b.add_rows(node, "dual_neg", tt + W, lb=0.0)
        return Shift(Affine.from_cols(t, robust.radius), robust.radius * wmax.max(axis=1))
    if robust.kind == "l2" and cones:
        hi = np.sqrt((wmax * wmax).sum(axis=1))
        t = f.b.add_cols(node, "t", d_out, 0.0, hi, "C")
        f.b.cones.append(Cone("soc", t[:, None].astype(np.int64), pc.W_cols.astype(np.int64)))
        return Shift(Affine.from_cols(t, robust.radius), robust.radius * hi)
    rho = np.asarray(robust.radii, dtype=np.float64) if robust.kind == "box" else np.full(d_in, robust.radius)
    xi = f.b.add_cols(node, "xi", (d_out, d_in), 0.0, wmax, "C")
    X = Affine.from_cols(xi)
    f.b.add_rows(node, "dual_pos", X - W, lb=0.0)
    f.b.add_rows(node, "dual_neg", X + W, lb=0.0)
    conservative = robust.kind == "l2"
    if conservative:
        f.b.notes.append(f"{layer}: the l2 set uses the sound conservative bound ||W_l||_2 <= ||W_l||_1 "
                         "(this backend takes no cones); the trained network is robust to a larger set")
    return Shift(X.scale(np.broadcast_to(rho, (d_out, d_in))).sum(axis=1), wmax @ rho, conservative)


@register("training", ("step", "sign"), "robust")
def step_robust(ctx: Any, node: str, op: Step | Sign, v: Any) -> Bin:
    r"""Robust step / sign of the first binary layer: :func:`~nnmip.formulations.common.step_units` with the
    dual-norm shift of the dense layer before it (``ctx.ext.robust``; units may also be prunable).

    Math
    ----
    See :func:`dual_norm_shift` (the shift columns) and :func:`~nnmip.formulations.common.step_units` (the rows).
    The big-M bounds are widened by the largest shift, ``L - S`` and ``U + S``.

    Source: Step/Sign on Lin (data rows) + RobustSpec.  Target: Bin.
    """
    ext = ctx.ext
    robust: RobustSpec = ext.robust
    layer = ctx.net.inputs_of(node)[0]
    if isinstance(v, Bin):
        v = Lin(v.affine(), *v.bounds(), v.space)
    dense = ctx.net.op(layer)
    assert isinstance(dense, Dense)
    if v.space != "point":
        raise FormulationError.at("E0220", f"robust set on '{robust.target}' needs '{layer}' to act on data rows",
                                  op.span)
    shift = dual_norm_shift(layer, dense, ctx.params[layer], robust, ctx, ext.cones)
    ctx.b.notes.append(f"{node}: activation constant over {robust.describe()} around every training point")
    return step_units(ctx, node, op, v, shift, ext.unit_indicators(layer))
