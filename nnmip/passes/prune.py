"""Prune a trained network: drop the neurons and input features whose groups the solver removed.

The result is a smaller fixed-weight network that computes the same function (checked by the forward pass where
it is used, :mod:`nnmip.drivers.task`).
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
import numpy.typing as npt

from nnmip.formulations.groups import GroupRef, act_of
from nnmip.io.data import Scaler
from nnmip.ir.network import Network
from nnmip.ir.ops import Dense, Input, Op, ParamDomain

IntArray = npt.NDArray[np.int64]


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
        act = act_of(net, layer)
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
    return Scaler(scaler.kind, scaler.offset[kept].copy(), scaler.scale[kept].copy())
