"""Pruning indicators (docs/formulations.md §9) and the training-model extension for robust sets and pruning.

A group ``g`` (one weight; a neuron = its incoming weights, its bias and its outgoing weights; an input feature =
its outgoing weights; a whole layer) gets a binary ``z_g`` with ``L z_g <= w <= U z_g`` for every parameter ``w``
of the group, where ``[L, U]`` is the weight's domain intersected with ``[-M_g, M_g]``.  The objective adds
``cost_g z_g`` (``cost`` of the declaration plus ``lambda (1 - alpha)``) and, when ``lambda alpha > 0``, the
squared group norm ``lambda alpha ||W_g||^2`` emitted by :mod:`nnmip.formulations.perspective`.  A budget adds
``sum_{g in declaration} z_g <= K``.

:class:`TrainingExtension` is what :func:`nnmip.formulations.training.build_training_model` calls for the
robust first layer and for prunable step units; :class:`ExtensionInfo` is the read-back side kept on the
``TrainingModel`` (clean pruned weights to exact zeros, the forward-pass penalty, robust checks, the solve
with a cut loop).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import numpy.typing as npt

from nnmip.errors import FormulationError
from nnmip.ir.network import Network
from nnmip.ir.ops import Dense, Input, Op, ParamDomain, Sign, Step
from nnmip.model import Affine

if TYPE_CHECKING:
    from nnmip.check.training_ext import PruneConfig, PruneSpec, RobustSpec
    from nnmip.formulations.perspective import Regulariser
    from nnmip.model import MatrixModel
    from nnmip.solution import RawResult, SolveOptions

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

EMIT_MODES = ("milp", "perspective-conic", "perspective-cuts")


@dataclass(frozen=True)
class GroupRef:
    """One prunable group: ``kind`` (weight, neuron, feature, layer), the layer (or input) and its index."""

    kind: str
    layer: str
    index: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        return self.layer + ("[" + ",".join(map(str, self.index)) + "]" if self.index else "")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "layer": self.layer, "index": list(self.index), "name": self.name}


@dataclass
class Groups:
    """Groups and their members, as flat arrays (one entry per (parameter, group) membership)."""

    refs: list[GroupRef]
    spec_of: IntArray                   # (G,) declaration index of each group
    pkeys: list[tuple[str, str]]        # parameter tensors: (layer, "W" | "b")
    gid: IntArray                       # (k,) group of each membership
    pidx: IntArray                      # (k,) tensor of each membership (index into pkeys)
    flat: IntArray                      # (k,) flat index inside the tensor
    lo: FloatArray                      # (k,) lower link bound L (<= 0)
    hi: FloatArray                      # (k,) upper link bound U (>= 0)
    unit_z: dict[str, IntArray] = field(default_factory=dict)   # dense layer -> (n_out,) group or -1

    @property
    def count(self) -> int:
        return len(self.refs)

    @property
    def M(self) -> FloatArray:  # noqa: N802 - the paper's name
        """Group bound ``M_g = max |w|`` allowed by the links."""
        out = np.zeros(self.count)
        np.maximum.at(out, self.gid, np.maximum(-self.lo, self.hi))
        return out

    def values(self, params: dict[str, tuple[FloatArray, FloatArray | None]]) -> FloatArray:
        """The (k,) member values for given parameters."""
        out = np.zeros(self.gid.size)
        for p, (layer, role) in enumerate(self.pkeys):
            sel = self.pidx == p
            W, b = params[layer]
            arr = W if role == "W" else b
            assert arr is not None
            out[sel] = np.asarray(arr, dtype=np.float64).ravel()[self.flat[sel]]
        return out

    def sq_norms(self, params: dict[str, tuple[FloatArray, FloatArray | None]]) -> FloatArray:
        v = self.values(params)
        return np.bincount(self.gid, v * v, minlength=self.count)

    def kept(self, params: dict[str, tuple[FloatArray, FloatArray | None]]) -> npt.NDArray[np.bool_]:
        """A group is kept when any of its parameters is not exactly zero."""
        v = self.values(params)
        return np.bincount(self.gid, (v != 0).astype(float), minlength=self.count) > 0


def _act_of(net: Network, node: str) -> str | None:
    nxt = [n for n in net.nodes if net.inputs_of(n) and net.inputs_of(n)[0] == node]
    return nxt[0] if nxt else None


def build_groups(net: Network, specs: tuple[PruneSpec, ...]) -> Groups:
    """Enumerate the groups of every declaration (vectorised per layer)."""
    refs: list[GroupRef] = []
    spec_of: list[int] = []
    pkeys: list[tuple[str, str]] = []
    parts: list[tuple[IntArray, int, IntArray, FloatArray | None]] = []   # (gid, pidx, flat, M per member)
    unit_z: dict[str, IntArray] = {}

    def pkey(layer: str, role: str) -> int:
        if (layer, role) not in pkeys:
            pkeys.append((layer, role))
        return pkeys.index((layer, role))

    def dense(layer: str) -> Dense:
        op = net.op(layer)
        if not isinstance(op, Dense):
            raise FormulationError.at("E0211", f"'{layer}' is not a dense layer", op.span)
        return op

    def add(gids: IntArray, layer: str, role: str, flat: IntArray) -> None:
        op = dense(layer)
        dom = op.weights if role == "W" else op.bias
        if dom is None:
            return
        if dom.kind == "fixed":
            if np.any(dom.value.ravel()[flat] != 0):
                raise FormulationError.at("E0216", f"cannot prune fixed, non-zero parameters of '{layer}'",
                                          op.span, ["help: give the layer a trainable domain"])
            return
        parts.append((gids, pkey(layer, role), flat, None))

    for si, spec in enumerate(specs):
        g0 = len(refs)
        if spec.kind == "weights":
            for layer in spec.layers:
                op = dense(layer)
                n = op.n_out * op.n_in
                refs.extend(GroupRef("weight", layer, tuple(int(i) for i in np.unravel_index(k, (op.n_out, op.n_in))))
                            for k in range(n))
                add(np.arange(len(refs) - n, len(refs)), layer, "W", np.arange(n))
        elif spec.kind == "neurons":
            for layer in spec.layers:
                op = dense(layer)
                d = op.n_out
                base = len(refs)
                refs.extend(GroupRef("neuron", layer, (i,)) for i in range(d))
                gids = np.arange(base, base + d)
                add(np.repeat(gids, op.n_in), layer, "W", np.arange(d * op.n_in))
                add(gids, layer, "b", np.arange(d))
                act = _act_of(net, layer)
                users = net.dense_users(act) if act is not None else []
                if not users or not isinstance(net.op(act), (Step, Sign)):  # type: ignore[arg-type]
                    raise FormulationError.at("E0213", f"cannot prune neurons of '{layer}': the output depends "
                                              "on every one of them or they are not step/sign units", op.span)
                for u in users:
                    uop = dense(u)
                    # outgoing weights W_u[:, l]: flat index r * d + l
                    r, l = np.meshgrid(np.arange(uop.n_out), np.arange(d), indexing="ij")
                    add(gids[l.ravel()], u, "W", (r * d + l).ravel())
                _set_units(unit_z, layer, gids, op)
        elif spec.kind == "features":
            d = net.n_inputs
            base = len(refs)
            refs.extend(GroupRef("feature", net.input, (j,)) for j in range(d))
            gids = np.arange(base, base + d)
            for u in net.dense_users(net.input):
                uop = dense(u)
                r, j = np.meshgrid(np.arange(uop.n_out), np.arange(d), indexing="ij")
                add(gids[j.ravel()], u, "W", (r * d + j).ravel())
        elif spec.kind == "layers":
            for layer in spec.layers:
                op = dense(layer)
                g = len(refs)
                refs.append(GroupRef("layer", layer))
                add(np.full(op.n_out * op.n_in, g), layer, "W", np.arange(op.n_out * op.n_in))
                add(np.full(op.n_out, g), layer, "b", np.arange(op.n_out))
                if layer != net.output:
                    act = _act_of(net, layer)
                    if act is not None and isinstance(net.op(act), (Step, Sign)):
                        _set_units(unit_z, layer, np.full(op.n_out, g), op)
        else:
            raise FormulationError.at("E0210", f"unknown pruning group '{spec.kind}'", spec.span)
        spec_of.extend([si] * (len(refs) - g0))
    if parts:
        gid = np.concatenate([p[0] for p in parts]).astype(np.int64)
        pidx = np.concatenate([np.full(p[0].size, p[1]) for p in parts]).astype(np.int64)
        flat = np.concatenate([p[2] for p in parts]).astype(np.int64)
    else:
        gid = pidx = flat = np.zeros(0, dtype=np.int64)
    lo = np.zeros(gid.size)
    hi = np.zeros(gid.size)
    for p, (layer, role) in enumerate(pkeys):
        op = dense(layer)
        dom = op.weights if role == "W" else op.bias
        assert dom is not None
        sel = pidx == p
        lo[sel] = dom.lo.ravel()[flat[sel]]
        hi[sel] = dom.hi.ravel()[flat[sel]]
    spec_arr = np.asarray(spec_of, dtype=np.int64)
    for si, spec in enumerate(specs):
        if spec.M is not None:
            sel = spec_arr[gid] == si
            lo[sel] = np.maximum(lo[sel], -spec.M)
            hi[sel] = np.minimum(hi[sel], spec.M)
    if (lo > 0).any() or (hi < 0).any():
        raise FormulationError.at("E0216", "a prunable parameter's domain does not contain 0",
                                  specs[0].span if specs else _nospan(),
                                  ["help: a pruned group has all its parameters at 0; widen the domain"])
    return Groups(refs, spec_arr, pkeys, gid, pidx, flat, lo, hi, unit_z)


def _nospan() -> Any:
    from nnmip.errors import NO_SPAN

    return NO_SPAN


def _set_units(unit_z: dict[str, IntArray], layer: str, gids: IntArray, op: Op) -> None:
    cur = unit_z.setdefault(layer, np.full(gids.size, -1, dtype=np.int64))
    if (cur >= 0).any():
        raise FormulationError.at("E0219", f"units of '{layer}' belong to two neuron or layer groups", op.span,
                                  ["help: declare each layer's neurons once"])
    cur[:] = gids


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
        self.groups: Groups | None = None
        self.z: IntArray | None = None
        self.robust_layer: str | None = None
        if robust is not None:
            self.robust_layer = _robust_layer(self.net, robust)
        if prune is not None and prune.specs:
            self.groups = build_groups(self.net, prune.specs)
            self.z = f.b.add_cols("prune", "z", self.groups.count, 0.0, 1.0, "B")

    def activation(self, node: str, op: Op, v: Any) -> Any:
        """The robust or prunable step / sign, or ``None`` for the default formulation."""
        from nnmip.formulations.robust import step_rows
        from nnmip.formulations.training import FORMULATIONS, Bin, Const, Lin

        if not isinstance(op, (Step, Sign)) or isinstance(v, Const):
            if self.robust_layer is not None and self.net.inputs_of(node)[0] == self.robust_layer \
                    and isinstance(v, Const):
                raise FormulationError.at("E0220", f"robust set on '{self.robust.target}' needs trainable "  # type: ignore
                                          f"weights in '{self.robust_layer}'", op.span,
                                          ["help: give the first layer a domain such as weights=real[-1, 1]"])
            return None
        layer = self.net.inputs_of(node)[0]
        z_units = None
        if self.groups is not None and layer in self.groups.unit_z:
            assert self.z is not None
            gz = self.groups.unit_z[layer]
            z_units = np.where(gz >= 0, self.z[np.maximum(gz, 0)], -1)
        robust_here = self.robust is not None and layer == self.robust_layer
        if not robust_here and z_units is None:
            return None
        if isinstance(v, Bin):
            v = Lin(v.affine(), *v.bounds(), v.space)
        if robust_here:
            fn = FORMULATIONS[(op.kind, "robust")]
            return fn(node, op, v, self.f, self.robust, layer, self.cones, z_units)  # type: ignore[call-arg]
        return step_rows(node, op, v, self.f, None, z_units)

    def finish(self) -> ExtensionInfo:
        """Links, budgets and objective terms of the groups; returns the read-back information."""
        f = self.f
        info = ExtensionInfo(self.robust, self.robust_layer, self.groups, self.z, self.emit)
        if self.robust is not None:
            f.b.notes.append(f"robust training: first binary layer after '{self.robust_layer}' constant over "
                             f"{self.robust.describe()}")
        if self.groups is None or self.prune is None:
            return info
        from nnmip.formulations.perspective import emit_regulariser

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
    act = _act_of(net, users[0])
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

    def unstable(self, net: Network, X: FloatArray) -> int:
        """Training points whose first binary layer is not constant over the robust set (forward pass)."""
        if self.robust is None or self.robust_layer is None:
            return 0
        from nnmip.drivers.evaluate import first_layer_stable

        return int(np.count_nonzero(~first_layer_stable(net, X, self.robust).all(axis=1)))

    def check(self, net: Network, X: FloatArray, x: FloatArray,
              params: dict[str, tuple[FloatArray, FloatArray | None]], objective: float | None
              ) -> tuple[float, int, float | None]:
        """(forward penalty, robust mismatches, the exact objective of the solver's point) for ``check_solution``."""
        pen = self.penalty(params)
        bad = self.unstable(net, X)
        if objective is not None and self.reg is not None:
            objective = objective + self.reg.approximation_gap(x)
        return pen, bad, objective

    def solve(self, backend: Any, model: MatrixModel, opts: SolveOptions) -> RawResult:
        """Solve, with the cut loop when the regulariser is linearised by tangents."""
        if self.reg is not None and self.reg.cuts:
            from nnmip.formulations.perspective import solve_with_cuts

            raw, _, rounds = solve_with_cuts(model, backend, opts, self.reg)
            log.info("cut loop: %d rounds", rounds)
            return raw
        return backend.solve(model, opts)

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


# ------------------------------------------------------------------------------------------------------------
# The smaller network
# ------------------------------------------------------------------------------------------------------------
def prune_network(net: Network, removed: list[GroupRef] | tuple[GroupRef, ...]) -> tuple[Network, IntArray]:
    """Remove pruned neurons and input features from a fixed-weight network.

    Returns the smaller network and the indices of the kept input features (``X[:, kept]`` is its input).
    Removed weights stay as zeros; a removed neuron's or feature's outgoing weights must be zero (else the
    predictions would change: ``ValueError``).  Whole layers cannot be removed from a chain.
    """
    params = {n: (np.array(W), np.array(b)) for n, (W, b) in net.params().items()}
    drop_units: dict[str, set[int]] = {}
    drop_feat: set[int] = set()
    for r in removed:
        if r.kind == "neuron":
            drop_units.setdefault(r.layer, set()).add(r.index[0])
        elif r.kind == "feature":
            drop_feat.add(r.index[0])
        elif r.kind == "layer":
            raise ValueError(f"layer '{r.layer}' cannot be removed: every path to the output passes through it")
    kept_feat = np.array([j for j in range(net.n_inputs) if j not in drop_feat], dtype=np.int64)
    new_cols: dict[str, IntArray] = {}     # dense layer -> kept input columns
    for layer, units in drop_units.items():
        keep = np.array([i for i in range(params[layer][0].shape[0]) if i not in units], dtype=np.int64)
        W, b = params[layer]
        params[layer] = (W[keep], b[keep])
        act = _act_of(net, layer)
        for u in net.dense_users(act) if act is not None else []:
            Wu = params[u][0]
            gone = np.array(sorted(units))
            if np.any(Wu[:, gone] != 0):
                raise ValueError(f"neurons {sorted(units)} of '{layer}' still feed '{u}' with non-zero weights")
            new_cols[u] = keep
    if drop_feat:
        for u in net.dense_users(net.input):
            Wu = params[u][0]
            gone = np.array(sorted(drop_feat))
            if np.any(Wu[:, gone] != 0):
                raise ValueError(f"features {sorted(drop_feat)} still feed '{u}' with non-zero weights")
            new_cols[u] = new_cols.get(u, kept_feat)
    for u, cols in new_cols.items():
        W, b = params[u]
        params[u] = (W[:, cols], b)
    g = nx.DiGraph()
    for n, op in net.items():
        if isinstance(op, Input):
            new: Op = Input(dim=int(kept_feat.size), lo=None if op.lo is None else op.lo[kept_feat],
                            hi=None if op.hi is None else op.hi[kept_feat], span=op.span)
        elif isinstance(op, Dense):
            W, b = params[n]
            new = Dense(n_in=W.shape[1], n_out=W.shape[0], weights=ParamDomain.fixed(W, op.span),
                        bias=None if op.bias is None else ParamDomain.fixed(b, op.span), span=op.span)
        else:
            new = op
        g.add_node(n, op=new, inputs=tuple(net.inputs_of(n)))
        for src in net.inputs_of(n):
            g.add_edge(src, n)
    return Network(g, net.name), kept_feat


def sub_scaler(scaler: Any, kept: IntArray) -> Any:
    """The scaler of the kept features only (``None`` stays ``None``)."""
    if scaler is None:
        return None
    from nnmip.io.data import Scaler

    return Scaler(scaler.kind, scaler.offset[kept].copy(), scaler.scale[kept].copy())


def finish_report(report: Any) -> None:
    """Add robust metrics and the smaller pruned network to a task report (checked by the forward pass)."""
    res, ds, task = report.result, report.dataset, report.task
    net = res.network
    if net is None:
        return
    if task.robust is not None:
        from nnmip.drivers.evaluate import robust_metrics

        report.metrics.update(robust_metrics(net, ds, task.robust))
    tm = res.training_model
    if task.prune and tm is not None and tm.extension is not None and res.x is not None:
        removed = tm.extension.removed(res.x)
        small, kept = prune_network(net, removed)
        X_all = ds.X(np.arange(ds.X_raw.shape[0]))
        agree = bool(np.array_equal(small.predict(X_all[:, kept]), net.predict(X_all)))
        if not agree:  # cannot happen when removed groups have zero outgoing weights; never hide it
            res.notes.append("NOT VERIFIED: the pruned network's predictions differ from the full network's")
            res.verified = False
        report.pruned, report.kept_features = small, kept
        res.extension["pruned_agrees"] = agree
        res.extension["parameters_before"] = net.num_params()
        res.extension["parameters_after"] = small.num_params()
        res.extension["nonzero_after"] = int(sum(np.count_nonzero(W) + np.count_nonzero(b)
                                                 for W, b in small.params().values()))
