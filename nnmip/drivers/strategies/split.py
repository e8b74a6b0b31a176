"""Iterative data splitting (Kurtz & Bah; docs/formulations.md §11).

Points of one cluster share every binary activation of the training MILP (first-layer rows stay per point), so
a model over ``P`` clusters has ``P`` times the binaries of one point instead of ``N`` times.  The loop starts
with one cluster and repeatedly splits the cluster with the largest forward-pass loss by 2-means, re-solving
warm-started from the best network so far.  Splitting only removes constraints, so every earlier network stays
feasible for every later partition.  When every cluster holds copies of a single point the model is the exact
one (identical points get identical activations in the exact model anyway).
"""

from __future__ import annotations

import logging
import sys
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from nnmip.drivers.strategies.common import (
    Budget,
    FloatArray,
    IntArray,
    Objective,
    accuracy,
    check_strategy_call,
    final_result,
    full_params,
    record,
    weighted_layers,
)
from nnmip.drivers.train import TrainResult, train_network
from nnmip.errors import ParameterError, check_choice, check_int
from nnmip.ir.network import Network
from nnmip.solution import STOP, SolveOptions, Status, stops_on_ctrl_c

log = logging.getLogger(__name__)

SELECT = ("validation", "loss")

#: what the first split may take for its import of scikit-learn and its first 2-means (0.7-0.8 s measured on an
#: idle 2-core machine, 1.4-1.9 s on a busy one); with less time left a run stops before it rather than end past
#: its time limit
KMEANS_IMPORT_SECONDS = 1.5


def splittable(X: FloatArray, groups: IntArray, n_clusters: int) -> npt.NDArray[np.bool_]:
    """Per cluster: whether it holds at least two distinct points."""
    d = X.shape[1]
    lo = np.full((n_clusters, d), np.inf)
    hi = np.full((n_clusters, d), -np.inf)
    np.minimum.at(lo, groups, X)
    np.maximum.at(hi, groups, X)
    return (hi - lo).max(axis=1) > 0 if d else np.zeros(n_clusters, dtype=bool)


def first_split_seconds() -> float:
    """What the next split's import of scikit-learn may take: nothing once ``sklearn.cluster`` is loaded, a fifth
    of :data:`KMEANS_IMPORT_SECONDS` when scikit-learn itself is (0.13-0.14 s measured, e.g. under the
    scikit-learn estimator), all of it otherwise.
    """
    if "sklearn.cluster" in sys.modules:
        return 0.0
    return KMEANS_IMPORT_SECONDS / 5 if "sklearn" in sys.modules else KMEANS_IMPORT_SECONDS


def split_cluster(X: FloatArray, members: IntArray, seed: int) -> IntArray:
    """The members that go to the new cluster: 2-means on their features (seeded); ``members`` holds at least two
    points.  Any whole number seeds it: KMeans takes seeds ``0 .. 2**32 - 1``, so the seed is taken modulo ``2**32``
    (the same seed for every seed in that range).
    """
    # imported here, not with the module: scikit-learn takes a second or more to import, which a run that never
    # splits (local search, a budget spent by the first solve) should not pay; a split pays it inside its budget,
    # and train_split starts none with less than first_split_seconds() left
    from sklearn.cluster import KMeans

    if np.size(members) < 2:
        raise ParameterError.of("members", f"must hold at least two points to split, got {np.size(members)}",
                                "split only clusters that hold two or more distinct points (see splittable)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # duplicates inside a cluster are expected
        labels = KMeans(n_clusters=2, n_init=4, random_state=int(seed) % 2**32).fit_predict(X[members])
    if labels.min() == labels.max():      # only possible with (near-)identical points: halve the cluster
        labels = (np.arange(members.size) >= members.size // 2).astype(np.int64)
    return members[labels == 1]


@stops_on_ctrl_c
def train_split(net: Network, X: FloatArray, y: IntArray, n_classes: int, *, loss: str = "hamming",
                margin: float = 1.0, eps: float | None = None, l1: float = 0.0, solver: str = "highs",
                options: SolveOptions | None = None, X_val: FloatArray | None = None,
                y_val: IntArray | None = None, max_splits: int = 20, batch: int | str | None = None,
                time_budget: float | None = None, step_time: float | None = None, seed: int = 0,
                select: str | None = None, groups: IntArray | None = None, robust: Any = None,
                prune: Any = None, emit: str = "milp", objectives: tuple[str, ...] = (),
                margin_cap: float = 1.0) -> TrainResult:
    """Train ``net`` by iterative data splitting.

    Parameters
    ----------
    net, X, y, n_classes, loss, margin, eps, l1, solver, options
        As for :func:`nnmip.drivers.train.train_network`: ``options.time_limit`` bounds the whole loop (as
        ``time_budget`` does) and ``options.solve_time_limit`` caps each solve (as ``step_time`` does).
    X_val, y_val
        Validation data: the best network is the one with the highest validation accuracy (ties: lower
        training loss).  Without them, or with ``select="loss"``, the lowest training loss wins.
    max_splits
        Number of 2-means splits (the loop solves ``max_splits + 1`` models at most).
    batch
        ``None`` or ``"full"``: every MIP sees all training points.  An integer ``k``: each MIP sees a fresh
        random sample of ``k`` points (Kurtz & Bah used 64), clustered as the whole set is.
    time_budget, step_time
        Seconds for the whole loop and for each solve.  When ``time_budget`` and ``options.time_limit`` are both
        given the smaller bounds the loop (neither lifts the other); each solve gets at most ``step_time`` (and
        ``options.solve_time_limit``) and never more than what is left.
    seed
        Seeds the batches and the 2-means splits.
    groups
        An initial partition (default: one cluster).
    robust, prune, emit, objectives, margin_cap
        As for :func:`nnmip.drivers.train.train_network`, in every solve.  With a robust set, the first layer's
        margin rows stay per point while a cluster shares one activation pattern: the pattern holds over the
        union of its points' sets.  Pruned groups read back as exact zeros, so the warm start of the next solve
        (the best network so far) keeps them pruned unless the solver finds better.

    Returns
    -------
    TrainResult
        The best network with its forward-pass loss; ``history`` holds one record per solve.  The status is
        ``optimal`` only when the loop reached the exact model, solved it to optimality, and returned a
        network with that optimal loss, or when the returned network has zero loss (a loss that is never
        negative).
    """
    X, y = check_strategy_call(net, X, y, n_classes, X_val=X_val, y_val=y_val, time_budget=time_budget,
                               step_time=step_time, seed=seed, loss=loss, margin=margin, eps=eps, l1=l1,
                               solver=solver, options=options, emit=emit, margin_cap=margin_cap)
    opts = options or SolveOptions()
    N = y.size
    if select is None:
        select = "validation" if y_val is not None and np.size(y_val) else "loss"
    check_choice("select", select, SELECT)
    if isinstance(batch, str) and batch == "full" or (not isinstance(batch, bool) and batch == 0):
        batch = None
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1):
        raise ParameterError.of("batch", f"must be a positive whole number or 'full', got {batch!r:.60}",
                                "batch is the number of rows per solve")
    check_int("max_splits", max_splits, low=0, high=10**6)
    full_batch = batch is None or batch >= N
    obj = Objective(loss, margin, l1, n_classes)
    trainable = weighted_layers(net)   # the penalty's scope
    budget = Budget.of(opts, time_budget, step_time)
    rng = np.random.default_rng(seed)
    grp = np.zeros(N, dtype=np.int64) if groups is None else np.unique(groups, return_inverse=True)[1]
    history: list[dict[str, Any]] = []
    best: tuple[Network, float, float | None, TrainResult] | None = None   # network, loss, val acc, solve
    last: TrainResult | None = None
    proven, bound = False, None
    splits = 0
    stop = ""
    while True:
        n_clusters = int(grp.max()) + 1
        can_split = splittable(X, grp, n_clusters)
        exact = not can_split.any()
        rows = np.arange(N) if full_batch else np.sort(rng.choice(N, size=int(batch), replace=False))  # type: ignore[arg-type]
        start = full_params(best[0]) if best is not None else None
        res = train_network(net, X[rows], y[rows], n_classes, loss=loss, margin=margin, eps=eps, l1=l1,
                            solver=solver, options=budget.options(opts), groups=grp[rows], warm_start=start,
                            robust=robust, prune=prune, emit=emit, objectives=objectives, margin_cap=margin_cap)
        last = res
        ref = best[0] if best is not None else None
        accepted = False
        cand_loss = np.inf
        if res.network is not None and res.verified:
            cand = res.network
            cand_loss = obj.value(cand, X, y, trainable)
            va = accuracy(cand, X_val, y_val)
            ref = cand
            if best is None or _better(select, cand_loss, va, best[1], best[2]):
                best = (cand, cand_loss, va, res)
                accepted = True
            if exact and full_batch and res.status is Status.OPTIMAL and res.bound is not None:
                bound = float(res.bound)
        if best is not None and bound is not None:
            proven = best[1] <= bound + 1e-6 * (1.0 + abs(bound))
        record(history, strategy="split", step=f"split {splits}" if splits else "one cluster", res=res,
               loss=cand_loss, best_loss=best[1] if best is not None else np.inf,
               validation=accuracy(res.network, X_val, y_val) if res.network is not None else None,
               clusters=int(np.unique(grp[rows]).size), budget=budget, accepted=accepted,
               best_validation_accuracy=best[2] if best is not None else None, batch=int(rows.size))
        if exact:   # no cluster holds two distinct points: nothing is left to split
            stop = ("every cluster holds a single point: the last model was the exact one" if full_batch else
                    f"every cluster holds a single point: no cluster left to split (the last model was the exact "
                    f"one on a batch of {rows.size} points)")
            break
        if splits >= max_splits:
            stop = f"max_splits={max_splits} splits done"
            break
        if budget.exhausted():
            stop = _spent()
            break
        if best is not None and _zero(obj, best[0], X, y, trainable):
            stop = "zero training loss (optimal: the loss is never negative)"
            proven, bound = True, 0.0
            break
        if ref is not None and _zero(obj, ref, X, y, trainable):
            stop = "zero training loss"
            break
        # split the splittable cluster with the largest forward-pass loss (ties: the largest cluster)
        size = np.bincount(grp, minlength=n_clusters).astype(float)
        if ref is not None:
            closs = np.bincount(grp, weights=obj.per_point(ref, X, y), minlength=n_clusters)
        else:
            closs = np.zeros(n_clusters)
        key = np.where(can_split, closs * (N + 1) + size, -np.inf)
        c = int(np.argmax(key))       # a splittable cluster: some exist, else the loop stopped above
        assert can_split[c]
        left, need = budget.remaining(), first_split_seconds()
        if left is not None and left < need:
            stop = (f"the time left ({left:.2f} s) is less than the first split's import of scikit-learn (about "
                    f"{need:g} s), which could not be stopped at the time limit")
            break
        members = np.flatnonzero(grp == c)
        moved = split_cluster(X, members, seed + splits)   # split_cluster takes the seed modulo 2**32
        if budget.exhausted():   # the 2-means (the first one imports scikit-learn) spent the rest: no new solve
            stop = _spent()
            break
        grp[moved] = n_clusters
        splits += 1
        log.debug("split: cluster %d (%d points, loss %g) -> %d + %d", c, members.size, closs[c],
                  members.size - moved.size, moved.size)
    log.info("split: stopped: %s", stop)
    notes = [f"data splitting: {splits} splits, {int(grp.max()) + 1} clusters, "
             f"{'full batches' if full_batch else f'random batches of {batch} points'}, best by {select}",
             f"data splitting stopped: {stop}"]
    if history:
        history[-1]["stop"] = stop
    if best is None:
        return final_result("split", solver, None, np.inf, obj, X, y, trainable, history, budget, last,
                            notes=notes)
    return final_result("split", solver, best[0], best[1], obj, X, y, trainable, history, budget, last,
                        source=best[3], proven=proven, bound=bound, notes=notes)


def _spent() -> str:
    """Why the budget ended: a stop request (Ctrl-C) or the time."""
    return "a stop request (Ctrl-C)" if STOP.is_set() else "the time budget is spent"


def _better(select: str, loss: float, val: float | None, best_loss: float, best_val: float | None) -> bool:
    if select == "validation" and val is not None and best_val is not None and val != best_val:
        return val > best_val
    return loss < best_loss


def _zero(obj: Objective, net: Network, X: FloatArray, y: IntArray, trainable: set[str]) -> bool:
    """Training loss zero for a loss whose minimum is zero (no further split can lower it)."""
    if obj.loss not in ("hamming", "zero_one", "hinge"):
        return False
    return obj.value(net, X, y, trainable) == 0.0
