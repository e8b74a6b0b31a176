"""Pruning indicators (docs/formulations.md §9) and the training-model extension for robust sets and pruning.

A group ``g`` (one weight; a neuron = its incoming weights, its bias and its outgoing weights; an input feature =
its outgoing weights; a whole layer) gets a binary ``z_g`` with ``L z_g <= w <= U z_g`` for every parameter ``w``
of the group, where ``[L, U]`` is the weight's domain intersected with ``[-M_g, M_g]``.  The objective adds
``cost_g z_g`` (``cost`` of the declaration plus ``lambda (1 - alpha)``) and, when ``lambda alpha > 0``, the
squared group norm ``lambda alpha ||W_g||^2`` emitted by :mod:`nnmip.formulations.perspective`.  A budget adds
``sum_{g in declaration} z_g <= K``.

:class:`TrainingExtension` is what :func:`nnmip.formulations.training.build_training_model` calls for the
robust first layer and for prunable step units; :class:`ExtensionInfo` is the read-back side kept on the
``TrainingModel`` (clean pruned weights to exact zeros, the forward-pass penalty, the summary).  The solve with a
cut loop and the forward-pass robust checks belong to the drivers (:mod:`nnmip.drivers.train`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from nnmip.errors import FormulationError
from nnmip.formulations.common import Bin, Const, Lin, register, step_units
from nnmip.formulations.groups import GroupRef, Groups, act_of, build_groups
from nnmip.formulations.perspective import Regulariser, emit_regulariser
from nnmip.ir.network import Network
from nnmip.ir.ops import Dense, Input, Op, Sign, Step
from nnmip.ir.train_spec import PruneConfig, RobustSpec
from nnmip.model import Affine

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

EMIT_MODES = ("milp", "perspective-conic", "perspective-cuts")
__all__ = ["EMIT_MODES", "ExtensionInfo", "GroupRef", "Groups", "TrainingExtension", "build_groups",
           "step_prunable"]


# ------------------------------------------------------------------------------------------------------------
# The training-model extension
# ------------------------------------------------------------------------------------------------------------
class TrainingExtension:
    """Hooks for :func:`build_training_model`: robust first layer, prunable units, links, objective terms."""

    def __init__(self, f: Any, robust: RobustSpec | None, prune: PruneConfig | None, emit: str = "milp",
                 cones: bool = False, tangents: int = 5) -> None:
        if emit not in EMIT_MODES:
            raise FormulationError.at("E0221", f"unknown emission mode '{emit}'",
                                      notes=[f"help: choose one of {', '.join(EMIT_MODES)}"])
        self.f = f
        self.net: Network = f.net
        self.robust = robust
        self.prune = prune
        self.emit = emit
        self.cones = cones
        self.tangents = tangents
        f.ext = self
        self.groups: Groups | None = None
        self.z: IntArray | None = None
        self.robust_layer: str | None = None
        if robust is not None:
            self.robust_layer = _robust_layer(self.net, robust)
        if prune is not None and prune.specs:
            self.groups = build_groups(self.net, prune.specs)
            self.z = f.b.add_cols("prune", "z", self.groups.count, 0.0, 1.0, "B")

    def method(self, node: str, op: Op, v: Any) -> str | None:
        """The registered method for a step / sign node (``robust``, ``prunable``), or ``None`` for the default."""
        if not isinstance(op, (Step, Sign)) or isinstance(v, Const):
            if self.robust_layer is not None and self.net.inputs_of(node)[0] == self.robust_layer \
                    and isinstance(v, Const):
                raise FormulationError.at("E0220", f"robust set on '{self.robust.target}' needs trainable "  # type: ignore
                                          f"weights in '{self.robust_layer}'", op.span,
                                          ["help: give the first layer a domain such as weights=real[-1, 1]"])
            return None
        layer = self.net.inputs_of(node)[0]
        if self.robust is not None and layer == self.robust_layer:
            return "robust"
        if self.unit_indicators(layer) is not None:
            return "prunable"
        return None

    def unit_indicators(self, layer: str) -> IntArray | None:
        """The indicator column of every unit of ``layer`` (-1 for a unit no group prunes), or ``None``."""
        if self.groups is None or layer not in self.groups.unit_z:
            return None
        assert self.z is not None
        gz = self.groups.unit_z[layer]
        return np.where(gz >= 0, self.z[np.maximum(gz, 0)], -1)

    def finish(self) -> ExtensionInfo:
        """Links, budgets and objective terms of the groups; returns the read-back information."""
        f = self.f
        info = ExtensionInfo(self.robust, self.robust_layer, self.groups, self.z, self.emit)
        if self.robust is not None:
            f.b.notes.append(f"robust training: first binary layer after '{self.robust_layer}' constant over "
                             f"{self.robust.describe()}")
        if self.groups is None or self.prune is None:
            return info
        g, z = self.groups, self.z
        assert z is not None
        wcols = self._member_cols(g)
        zc = z[g.gid]
        W = Affine.from_cols(wcols)
        f.b.add_rows("prune", "link_lo", W - Affine.from_cols(zc, g.lo), lb=0.0)
        f.b.add_rows("prune", "link_hi", W - Affine.from_cols(zc, g.hi), ub=0.0)
        specs = self.prune.specs
        lam, alpha = self.prune.lam, self.prune.alpha
        cost = np.array([specs[s].cost for s in g.spec_of]) + lam * (1.0 - alpha)
        f.b.add_objective_cols(z, cost)
        for si, spec in enumerate(specs):
            if spec.budget is not None:
                sel = z[g.spec_of == si]
                f.b.add_rows("prune", f"budget{si}", Affine.from_cols(sel).sum(axis=0).reshape((1,)),
                             ub=float(spec.budget))
        info.cost = cost
        weight = lam * alpha
        if weight > 0:
            info.reg = emit_regulariser(f.b, g, z, wcols, weight, self.emit, self.tangents)
        elif self.emit != "milp":
            f.b.notes.append(f"emission '{self.emit}' has no quadratic term to reformulate (lambda * alpha = 0)")
        f.b.notes.append(f"pruning: {g.count} groups, {g.gid.size} links, emission {self.emit}")
        return info

    def _member_cols(self, g: Groups) -> IntArray:
        cols = np.zeros(g.gid.size, dtype=np.int64)
        for p, (layer, role) in enumerate(g.pkeys):
            pc = self.f.params[layer]
            src = pc.W_cols if role == "W" else pc.b_cols
            if src is None:
                raise FormulationError.at("E0216", f"cannot prune fixed parameters of '{layer}'",
                                          self.net.op(layer).span)
            sel = g.pidx == p
            cols[sel] = src.ravel()[g.flat[sel]]
        return cols


def _robust_layer(net: Network, robust: RobustSpec) -> str:
    if robust.target not in net.graph or not isinstance(net.op(robust.target), Input):
        raise FormulationError.at("E0201", f"robust set on '{robust.target}', which is not an input of "
                                  f"network '{net.name}'", robust.span)
    users = [n for n in net.nodes if net.inputs_of(n) and net.inputs_of(n)[0] == robust.target]
    if not users or not isinstance(net.op(users[0]), Dense):
        raise FormulationError.at("E0206", f"robust training needs a dense layer on '{robust.target}' "
                                  "followed by step(...) or sign(...)", robust.span)
    act = act_of(net, users[0])
    if act is None or not isinstance(net.op(act), (Step, Sign)):
        raise FormulationError.at("E0206", f"robust training needs step(...) or sign(...) after '{users[0]}'",
                                  robust.span)
    return users[0]


@dataclass
class ExtensionInfo:
    """Read-back side of the extension, kept on ``TrainingModel.extension``."""

    robust: RobustSpec | None
    robust_layer: str | None
    groups: Groups | None
    z: IntArray | None
    emit: str = "milp"
    cost: FloatArray | None = None
    reg: Regulariser | None = None

    # -- read back ------------------------------------------------------------------------------------------
    def removed_mask(self, x: FloatArray) -> npt.NDArray[np.bool_]:
        if self.groups is None or self.z is None:
            return np.zeros(0, dtype=bool)
        return np.round(x[self.z]) == 0

    def removed(self, x: FloatArray) -> list[GroupRef]:
        if self.groups is None:
            return []
        return [r for r, m in zip(self.groups.refs, self.removed_mask(x), strict=True) if m]

    def clean_weights(self, params: dict[str, tuple[FloatArray, FloatArray | None]], x: FloatArray
                      ) -> dict[str, tuple[FloatArray, FloatArray | None]]:
        """Parameters of removed groups set to exact zeros (the solver leaves them within its tolerance)."""
        g = self.groups
        if g is None:
            return params
        dead = self.removed_mask(x)[g.gid]
        if not dead.any():
            return params
        out = {k: (np.array(W, dtype=np.float64), None if b is None else np.array(b, dtype=np.float64))
               for k, (W, b) in params.items()}
        for p, (layer, role) in enumerate(g.pkeys):
            sel = dead & (g.pidx == p)
            if not sel.any():
                continue
            arr = out[layer][0] if role == "W" else out[layer][1]
            assert arr is not None
            arr.reshape(-1)[g.flat[sel]] = 0.0
        return out

    def penalty(self, params: dict[str, tuple[FloatArray, FloatArray | None]]) -> float:
        """Forward-pass value of the pruning terms: costs of kept groups plus ``lambda alpha ||W_g||^2``."""
        g = self.groups
        if g is None or self.cost is None:
            return 0.0
        pen = float(self.cost[g.kept(params)].sum())
        if self.reg is not None:
            pen += self.reg.weight * float(g.sq_norms(params).sum())
        return pen

    def summary(self, x: FloatArray | None) -> dict[str, Any]:
        d: dict[str, Any] = {"emit": self.emit}
        if self.robust is not None:
            d["robust"] = self.robust.to_dict()
        if self.groups is not None:
            d["groups"] = self.groups.count
            if x is not None:
                rem = self.removed(x)
                d["removed_groups"] = [r.to_dict() for r in rem]
                d["removed_count"] = len(rem)
        return d


@register("training", ("step", "sign"), "prunable")
def step_prunable(ctx: Any, node: str, op: Step | Sign, v: Any) -> Bin:
    r"""Step / sign units of which some can be pruned: :func:`~nnmip.formulations.common.step_units` with each
    unit's indicator ``z``.

    Math
    ----
    Off-row ``a - (U + eps) u + eps z <= 0`` and ``u - z <= 0`` for a prunable unit (a pruned unit is off and
    its pre-activation is 0); the plain margin rows for the others.

    Source: Step/Sign on Lin.  Target: Bin.
    """
    if isinstance(v, Bin):
        v = Lin(v.affine(), *v.bounds(), v.space)
    return step_units(ctx, node, op, v, None, ctx.ext.unit_indicators(ctx.net.inputs_of(node)[0]))
