"""Groups of a ``prune = neurons(...) | features(...) | weights(...) | layers(...)`` declaration over the flat
parameter vector of :mod:`nnmip.drivers.sparse.layout`, for the group penalties of gradient training.

A group is the smallest set of parameters whose zeroing removes its unit from the function:

* ``neurons(h)``: row ``j`` of ``W_h`` and ``b_h[j]`` (the unit's incoming weights and bias).  With a relu (or
  identity) activation the unit then outputs exactly 0, so its outgoing weights can be dropped without changing
  any prediction.  (The MILP's indicator also bounds the outgoing weights; here they follow from the unit.)
* ``features(x)``: column ``i`` of every dense layer fed by the input.
* ``weights(h)``: every weight alone (the l1 penalty on those weights).
* ``layers(h)``: all weights and biases of the layer.

Each declaration gives one partition (a ``gid`` array, ``-1`` outside its groups); fixed parameters are in no
group.  Groups of one declaration are disjoint; different declarations may overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nnmip.drivers.sparse.layout import Layout
from nnmip.formulations.groups import GroupRef
from nnmip.ir.network import Network
from nnmip.ir.ops import Dense
from nnmip.ir.train_spec import PruneSpec

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass
class Partition:
    """The groups of one declaration over the flat parameter vector."""

    spec: PruneSpec
    gid: IntArray            # (n,) group of every coordinate or -1
    refs: list[GroupRef]
    M: FloatArray            # (G,) group bound: the declaration's M, else the largest |bound| of the members


def partitions(net: Network, layout: Layout, specs: tuple[PruneSpec, ...]) -> list[Partition]:
    """One :class:`Partition` per declaration (see the module docstring for the members of each group)."""
    out: list[Partition] = []
    for spec in specs:
        gid = np.full(layout.size, -1, dtype=np.int64)
        refs: list[GroupRef] = []

        def put(layer: str, role: str, ids: npt.ArrayLike, gid: IntArray = gid) -> None:
            if layout.has(layer, role):
                sl = layout.slice(layer, role)
                gid[sl] = np.asarray(ids, dtype=np.int64).ravel()

        if spec.kind == "features":
            d = net.n_inputs
            refs = [GroupRef("feature", net.input, (i,)) for i in range(d)]
            for u in net.dense_users(net.input):
                op = net.op(u)
                assert isinstance(op, Dense)
                put(u, "W", np.tile(np.arange(d), op.n_out))
        else:
            for layer in spec.layers:
                op = net.op(layer)
                assert isinstance(op, Dense)
                base = len(refs)
                if spec.kind == "neurons":
                    refs += [GroupRef("neuron", layer, (j,)) for j in range(op.n_out)]
                    put(layer, "W", np.repeat(np.arange(base, base + op.n_out), op.n_in))
                    put(layer, "b", np.arange(base, base + op.n_out))
                elif spec.kind == "weights":
                    k = op.n_out * op.n_in
                    refs += [GroupRef("weight", layer, (int(r), int(c))) for r, c in
                             zip(*np.unravel_index(np.arange(k), (op.n_out, op.n_in)), strict=False)]
                    put(layer, "W", np.arange(base, base + k))
                else:  # layers
                    refs.append(GroupRef("layer", layer, ()))
                    put(layer, "W", np.full(op.n_out * op.n_in, base))
                    put(layer, "b", np.full(op.n_out, base))
        gid[~layout.trainable] = -1
        G = len(refs)
        bound = np.maximum(np.abs(layout.lo), np.abs(layout.hi))
        M = np.zeros(G)
        sel = gid >= 0
        np.maximum.at(M, gid[sel], bound[sel])
        if spec.M is not None:
            M[:] = float(spec.M)
        M[~np.isfinite(M) | (M <= 0)] = 1.0
        out.append(Partition(spec, gid, refs, M))
    return out


def zero_groups(part: Partition, x: FloatArray) -> IntArray:
    """Indices of the groups of ``part`` whose parameters are all exactly zero."""
    sel = part.gid >= 0
    nz = np.bincount(part.gid[sel], (x[sel] != 0).astype(np.float64), minlength=len(part.refs))
    present = np.bincount(part.gid[sel], minlength=len(part.refs)) > 0
    return np.flatnonzero((nz == 0) & present)
