"""Local search by block coordinate descent over layers (Kurtz & Bah; docs/formulations.md §12).

Each step fixes the weights of every layer outside one block (``Network.with_params``) and trains the block by
the training MILP, warm-started from the current weights.  With the output layer fixed, the products of hidden
activations and output weights are constants times binaries, so the model has no McCormick products (IP1);
with the hidden layers fixed, the activations are data and only the output weights are variables (IP2).
The default blocks are exactly these two ("pair"); ``blocks="layer"`` cycles through the trainable layers one
at a time, which generalises the scheme to any depth.

A step is accepted only when the forward-pass loss of the whole network does not increase, so the training
loss never increases across steps (asserted).  The search stops after a round of all blocks without
improvement, at zero loss, after ``rounds`` rounds, or when the time budget is spent.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from nnmip.drivers.strategies.common import (
    Budget,
    FloatArray,
    IntArray,
    Objective,
    Params,
    accuracy,
    check_strategy_call,
    final_result,
    full_params,
    record,
    trainable_layers,
    weighted_layers,
)
from nnmip.drivers.train import TrainResult, train_network
from nnmip.errors import check_choice, check_int
from nnmip.ir.network import Network
from nnmip.ir.ops import Dense
from nnmip.solution import SolveOptions, stops_on_ctrl_c

log = logging.getLogger(__name__)

BLOCKS = ("pair", "layer")
INITS = ("random", "split")


def make_blocks(net: Network, kind: str = "pair") -> list[list[str]]:
    """Blocks of trainable layers: ``pair`` = [hidden layers], [output layer]; ``layer`` = one per layer."""
    layers = trainable_layers(net)
    if kind not in BLOCKS:
        raise ValueError(f"blocks must be one of {BLOCKS}, got {kind!r}")
    if kind == "layer" or len(layers) <= 1:
        return [[n] for n in layers]
    return [layers[:-1], layers[-1:]]


def _threshold(pre: FloatArray) -> FloatArray:
    """Per column: the middle of the widest gap between sorted values in the central 20-80% of the data (the
    median when the data have no gap there), so no point sits close to the threshold.
    """
    out = np.empty(pre.shape[1])
    for j in range(pre.shape[1]):
        v = np.sort(pre[:, j])
        lo, hi = int(0.2 * v.size), max(int(0.8 * v.size), int(0.2 * v.size) + 1)
        seg = v[lo:min(hi + 1, v.size)]
        if seg.size < 2 or seg[-1] == seg[0]:
            out[j] = float(np.median(v))
            continue
        k = int(np.argmax(np.diff(seg)))
        out[j] = 0.5 * (seg[k] + seg[k + 1])
    return out


def random_params(net: Network, X: FloatArray, seed: int = 0) -> Params:
    """Random weights inside each trainable domain; each bias puts its unit's threshold in the widest gap of
    the unit's central pre-activations over the data (clipped to the bias domain), so no unit starts constant
    and few points start within the activation margin.
    """
    rng = np.random.default_rng(seed)
    out: Params = {}
    vals = np.asarray(X, dtype=np.float64)
    for n, op in net.items():
        if not net.inputs_of(n):
            continue
        if not isinstance(op, Dense):
            vals = op.forward(vals)
            continue
        assert op.weights is not None
        w = op.weights
        if not w.trainable:
            W = np.array(w.value)
        elif w.kind == "int":
            W = rng.integers(np.ceil(w.lo).astype(np.int64), np.floor(w.hi).astype(np.int64) + 1).astype(float)
        else:
            W = rng.uniform(w.lo, w.hi)
        pre = vals @ W.T
        b: FloatArray | None = None
        if op.bias is not None:
            if not op.bias.trainable:
                b = np.array(op.bias.value)
            else:
                b = np.clip(-_threshold(pre), op.bias.lo, op.bias.hi)
                if op.bias.kind == "int":
                    b = np.clip(np.round(b), np.ceil(op.bias.lo), np.floor(op.bias.hi))
        out[n] = (W, b)
        vals = pre + (0.0 if b is None else b)
    return out


@stops_on_ctrl_c
def train_local_search(net: Network, X: FloatArray, y: IntArray, n_classes: int, *, loss: str = "hamming",
                       margin: float = 1.0, eps: float | None = None, l1: float = 0.0, solver: str = "highs",
                       options: SolveOptions | None = None, X_val: FloatArray | None = None,
                       y_val: IntArray | None = None, init: str | Network | Params = "random",
                       rounds: int = 10, blocks: str = "pair", time_budget: float | None = None,
                       step_time: float | None = None, seed: int = 0, init_splits: int = 5, robust: Any = None,
                       prune: Any = None, emit: str = "milp", objectives: tuple[str, ...] = (),
                margin_cap: float = 1.0) -> TrainResult:
    """Train ``net`` by local search over blocks of layers.

    Parameters
    ----------
    net, X, y, n_classes, loss, margin, eps, l1, solver, options
        As for :func:`nnmip.drivers.train.train_network`: ``options.time_limit`` bounds the whole search (as
        ``time_budget`` does) and ``options.solve_time_limit`` caps each solve (as ``step_time`` does).
    X_val, y_val
        Validation data, reported in the history (the search itself minimises the training loss).
    init
        ``"random"`` (seeded weights inside the domains), ``"split"`` (the data-splitting strategy with
        ``init_splits`` splits), a fixed-weight :class:`Network` or a dict of ``(W, b)`` per dense layer.
    rounds
        At most this many rounds over all blocks.
    blocks
        ``"pair"`` (IP1: hidden layers with the output layer fixed; IP2: output layer with the hidden layers
        fixed) or ``"layer"`` (one block per trainable layer).
    time_budget, step_time
        Seconds for the whole search and for each solve.  When ``time_budget`` and ``options.time_limit`` are both
        given the smaller bounds the search (neither lifts the other); each solve gets at most ``step_time`` (and
        ``options.solve_time_limit``) and never more than what is left.
    seed
        Seeds the random start.
    robust, prune, emit, objectives, margin_cap
        As for :func:`nnmip.drivers.train.train_network`, in every solve.

    Returns
    -------
    TrainResult
        The final network (the lowest training loss met) with its forward-pass loss; ``history`` has the start
        and one record per step.
    """
    X, y = check_strategy_call(net, X, y, n_classes, X_val=X_val, y_val=y_val, time_budget=time_budget,
                               step_time=step_time, seed=seed, loss=loss, margin=margin, eps=eps, l1=l1,
                               solver=solver, options=options, emit=emit, margin_cap=margin_cap)
    opts = options or SolveOptions()
    check_int("rounds", rounds, low=1, high=10**6)
    check_int("init_splits", init_splits, low=0, high=10**6)
    check_choice("blocks", blocks, BLOCKS)
    if not isinstance(init, (Network, dict)):
        check_choice("init", init, INITS)
    obj = Objective(loss, margin, l1, n_classes)
    trainable = weighted_layers(net)   # the penalty's scope
    block_list = make_blocks(net, blocks)
    budget = Budget.of(opts, time_budget, step_time)
    history: list[dict[str, Any]] = []
    notes: list[str] = []
    source: TrainResult | None = None
    if isinstance(init, Network):
        current = full_params(init)
    elif isinstance(init, dict):
        current = {k: (np.asarray(W, np.float64), None if b is None else np.asarray(b, np.float64))
                   for k, (W, b) in init.items()}
    elif init == "split":
        from nnmip.drivers.strategies.split import train_split

        rem = budget.remaining()
        start = train_split(net, X, y, n_classes, loss=loss, margin=margin, eps=eps, l1=l1, solver=solver,
                            options=opts, X_val=X_val, y_val=y_val, max_splits=init_splits, seed=seed,
                            step_time=step_time, time_budget=None if rem is None else rem / 2, robust=robust,
                            prune=prune, emit=emit, objectives=objectives, margin_cap=margin_cap)
        source = start
        current = full_params(start.network) if start.network is not None else random_params(net, X, seed)
        notes.append(f"local search started from data splitting with {init_splits} splits")
    elif init == "random" and robust is not None:   # a random network is not robust: start from the constant one
        from nnmip.drivers.train import constant_params

        current = constant_params(net, X, y, n_classes, 1e-3 if eps is None else eps)
        notes.append("robust local search started from the constant classifier (robust for every set)")
    elif init == "random":
        current = random_params(net, X, seed)
    else:
        raise ValueError(f"init must be one of {INITS}, a Network or a parameter dict, got {init!r}")
    cur_net = net.with_params(current)
    cur_loss = obj.value(cur_net, X, y, trainable)
    record(history, strategy="local_search", step=f"start ({init if isinstance(init, str) else 'given'})",
           res=source, loss=cur_loss, best_loss=cur_loss, validation=accuracy(cur_net, X_val, y_val),
           clusters=None, budget=budget, accepted=True)
    last: TrainResult | None = source
    done = False
    first = net.dense_nodes()[0]   # the robust layer: with it fixed, its activations stay constant on every set
    for r in range(rounds):
        improved = False
        for bi, block in enumerate(block_list):
            if budget.exhausted() or _zero(obj, cur_loss):
                done = True
                break
            fixed = {n: current[n] for n in net.dense_nodes() if n not in block}
            sub = net.with_params(fixed) if fixed else net
            res = train_network(sub, X, y, n_classes, loss=loss, margin=margin, eps=eps, l1=l1, solver=solver,
                                options=budget.options(opts),
                                warm_start={n: current[n] for n in block},
                                robust=robust if first in block else None, prune=prune, emit=emit,
                                objectives=objectives, margin_cap=margin_cap)
            last = res
            accepted = False
            cand_loss = np.inf
            if res.network is not None and res.verified:
                cand_loss = obj.value(res.network, X, y, trainable)
                if cand_loss <= cur_loss:
                    improved |= cand_loss < cur_loss - 1e-9 * (1.0 + abs(cur_loss))
                    prev = cur_loss
                    current, cur_net, cur_loss, source = full_params(res.network), res.network, cand_loss, res
                    accepted = True
                    assert cur_loss <= prev
            step = ("IP1" if bi == 0 else "IP2") if blocks == "pair" and len(block_list) == 2 else "+".join(block)
            record(history, strategy="local_search", step=f"round {r + 1} {step}", res=res, loss=cand_loss,
                   best_loss=cur_loss, validation=accuracy(cur_net, X_val, y_val), clusters=None,
                   budget=budget, accepted=accepted, block=list(block))
        if done or not improved:
            break
    losses = [h["best_loss"] for h in history if h["best_loss"] is not None]
    assert all(b <= a for a, b in zip(losses, losses[1:], strict=False)), "local search increased the training loss"
    notes.append(f"local search: {len(history) - 1} steps over blocks {block_list}")
    if not np.isfinite(cur_loss):
        return final_result("local_search", solver, None, np.inf, obj, X, y, trainable, history, budget, last,
                            notes=notes + ["no network met the hard margin constraints"])
    zero = _zero(obj, cur_loss)   # zero loss of a loss that is never negative: optimal
    return final_result("local_search", solver, cur_net, cur_loss, obj, X, y, trainable, history, budget, last,
                        source=source, notes=notes, proven=zero, bound=0.0 if zero else None)


def _zero(obj: Objective, loss: float) -> bool:
    return obj.loss in ("hamming", "zero_one", "hinge") and obj.l1 == 0.0 and loss == 0.0
