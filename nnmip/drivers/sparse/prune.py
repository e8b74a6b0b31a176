"""Remove the units of a fixed-weight network that sparse training switched off, keeping its predictions.

A hidden unit ``j`` of a dense layer followed by ``relu`` (or ``identity``) and then only by dense layers is

* *dead* when its incoming weights are all zero and its activation of the bias is zero (``relu(b_j) = 0``; for
  identity ``b_j = 0``): it outputs exactly 0 on every input, so its outgoing weights multiply an exact 0;
* *unused* when every outgoing weight is zero.

Either way every removed term of the next layers' sums is an exact zero.  Input features whose outgoing weights
are all zero are removed when ``features=True``.  Removal repeats until nothing changes (removing a unit can leave
the units feeding it unused).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from nnmip.formulations.groups import GroupRef
from nnmip.ir.network import Network
from nnmip.ir.ops import Identity, ReLU
from nnmip.passes.prune import prune_network

IntArray = npt.NDArray[np.int64]


def removable_units(net: Network) -> list[GroupRef]:
    """The dead or unused hidden units of ``net`` (at least one unit of every layer is kept)."""
    refs: list[GroupRef] = []
    params = net.params()
    for n in net.dense_nodes():
        cons = net.consumers(n)
        if len(cons) != 1 or not isinstance(net.op(cons[0]), (ReLU, Identity)):
            continue
        act = cons[0]
        users = net.dense_users(act)
        if not users or any(net.inputs_of(u)[0] != act for u in users):
            continue
        W, b = params[n]
        off = (np.maximum(b, 0.0) == 0) if isinstance(net.op(act), ReLU) else (b == 0)
        dead = np.all(W == 0, axis=1) & off
        unused = np.all(np.concatenate([params[u][0] for u in users], axis=0) == 0, axis=0)
        gone = np.flatnonzero(dead | unused)
        if gone.size == W.shape[0]:
            gone = gone[1:]   # keep one unit: a layer of width 0 is not a network (it computes a constant)
        refs += [GroupRef("neuron", n, (int(j),)) for j in gone]
    return refs


def remove_dead(net: Network, *, features: bool = False) -> tuple[Network, IntArray, list[GroupRef]]:
    """The smaller network, the kept input features (``X[:, kept]`` is its input) and the removed groups (named
    by their index in the original network).
    """
    kept = np.arange(net.n_inputs, dtype=np.int64)
    index = {n: np.arange(net.op(n).n_out) for n in net.dense_nodes()}  # type: ignore[attr-defined]
    removed: list[GroupRef] = []
    cur = net
    while True:
        units = removable_units(cur)
        feats: list[GroupRef] = []
        if features:
            users = cur.dense_users(cur.input)
            if users and all(cur.inputs_of(u)[0] == cur.input for u in users):
                cols = np.concatenate([cur.params()[u][0] for u in users], axis=0)
                zero = np.flatnonzero(np.all(cols == 0, axis=0))
                if zero.size == cols.shape[1]:
                    zero = zero[1:]
                feats = [GroupRef("feature", cur.input, (int(i),)) for i in zero]
        if not units and not feats:
            return cur, kept, removed
        params = {n: (np.array(W), np.array(b)) for n, (W, b) in cur.params().items()}
        for r in units:   # a dead unit outputs an exact 0: its outgoing weights can be zeroed first
            for u in cur.dense_users(cur.consumers(r.layer)[0]):
                params[u][0][:, r.index[0]] = 0.0
        for r in units:
            removed.append(GroupRef("neuron", r.layer, (int(index[r.layer][r.index[0]]),)))
        for r in feats:
            removed.append(GroupRef("feature", r.layer, (int(kept[r.index[0]]),)))
        cleared = cur.with_params({n: (W, b if cur.op(n).bias is not None else None)  # type: ignore[attr-defined]
                                   for n, (W, b) in params.items()})
        cur, k = prune_network(cleared, units + feats)
        kept = kept[k]
        for layer in {r.layer for r in units}:
            gone = {r.index[0] for r in units if r.layer == layer}
            index[layer] = np.array([v for i, v in enumerate(index[layer]) if i not in gone])
