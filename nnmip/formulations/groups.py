"""Prunable groups of a network (docs/formulations.md §9): which parameters share one indicator.

A group ``g`` is one weight; a neuron (its incoming weights, its bias and its outgoing weights); an input feature
(its outgoing weights); or a whole layer.  :func:`build_groups` enumerates the groups of every declaration as flat
arrays with the link bounds ``[L, U]`` of every member (the weight's domain intersected with ``[-M_g, M_g]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from nnmip.errors import NO_SPAN, FormulationError
from nnmip.ir.network import Network
from nnmip.ir.ops import Dense, Op, Sign, Step
from nnmip.ir.train_spec import PruneSpec

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


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


def act_of(net: Network, node: str) -> str | None:
    """The node that takes ``node`` as its input (the activation after a dense layer), or ``None``."""
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
                act = act_of(net, layer)
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
                    act = act_of(net, layer)
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
                                  specs[0].span if specs else NO_SPAN,
                                  ["help: a pruned group has all its parameters at 0; widen the domain"])
    return Groups(refs, spec_arr, pkeys, gid, pidx, flat, lo, hi, unit_z)


def _set_units(unit_z: dict[str, IntArray], layer: str, gids: IntArray, op: Op) -> None:
    cur = unit_z.setdefault(layer, np.full(gids.size, -1, dtype=np.int64))
    if (cur >= 0).any():
        raise FormulationError.at("E0219", f"units of '{layer}' belong to two neuron or layer groups", op.span,
                                  ["help: declare each layer's neurons once"])
    cur[:] = gids
