"""Ensembles of binary networks for many classes: one_vs_one (BeMi) and one_vs_rest.

One copy of a network with one output unit is trained per pair of classes (one_vs_one: label 1 for the larger
class index, on the points of the two classes only) or per class (one_vs_rest: label 1 for the class, on every
point), each by any strategy (``exact``, ``split``, ``local_search``) and optionally with lexicographic
objectives.  Members are independent MILPs: they are the tasks of an executor (:mod:`nnmip.drivers.executor`:
serial, local processes or a Dask cluster) and come out the same wherever they run.  The vote and its tie rule are
those of :class:`nnmip.ir.ensemble.Ensemble`.

Time: ``time_limit`` bounds the whole ensemble.  Each member gets ``time_limit * workers / members`` seconds
(its fair share of the processes), never more than what is left of the whole budget when it starts; a member
that finishes early leaves its time unused.  Every member ends with a verified network (at worst the constant
classifier, see :func:`nnmip.drivers.train.train_network`), so the ensemble always has a full vote.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from nnmip.drivers.strategies.common import FloatArray, IntArray
from nnmip.drivers.train import TrainResult, train_network
from nnmip.ir.ensemble import KINDS, Ensemble, member_tasks
from nnmip.ir.network import Network
from nnmip.solution import SolveOptions, Status

log = logging.getLogger(__name__)

#: member strategies
MEMBER_STRATEGIES = ("exact", "split", "local_search")


def member_executor(workers: int, members: int) -> Any:
    """The executor of an ensemble that was given none: serial for one worker (or one member), else
    ``min(workers, members)`` forked local processes.

    Forked, not forkserver: a forkserver child re-runs the calling script, so a plain script without a
    ``__main__`` guard (``cross_val_score`` in a notebook cell or a one-file script) would fail; solver thread
    pools of this process are stopped before the fork (a child would wait on them forever).
    """
    from nnmip.drivers.executor import ProcessExecutor, SerialExecutor

    if workers <= 1 or members <= 1:
        return SerialExecutor()
    return ProcessExecutor(min(workers, members), method="fork")


def _train_member(job: dict[str, Any]) -> dict[str, Any]:
    """Train one member (a task of the ensemble's executor); returns its network and a small summary.

    Native thread pools run with one thread here, whatever the executor: a forked child must not use the OpenMP
    pool of its parent (the 2-means splits of scikit-learn would wait on threads that do not exist in the child).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _train_member_now(job)


def _train_member_now(job: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    share, deadline = job["share"], job["deadline"]
    limit: float | None = None
    if share is not None:
        limit = max(0.5, min(share, deadline - time.time()))
    opts: SolveOptions = replace(job["options"], time_limit=limit, progress=None)
    kw = dict(job["kwargs"])
    strategy = job["strategy"]
    if strategy == "exact":
        res = train_network(job["net"], job["X"], job["y"], 2, options=opts, **kw)
    else:
        from nnmip.drivers.strategies.local_search import train_local_search
        from nnmip.drivers.strategies.split import train_split

        kw.update(job["strategy_options"])
        kw.setdefault("time_budget", None)
        fit = train_split if strategy == "split" else train_local_search
        res = fit(job["net"], job["X"], job["y"], 2, options=opts, X_val=job["X_val"], y_val=job["y_val"], **kw)
    return {"index": job["index"], "network": res.network if res.verified else None, "status": str(res.status),
            "verified": bool(res.verified), "loss": res.loss, "seconds": time.perf_counter() - t0,
            "time_limit": limit, "points": int(job["y"].size), "stages": [h for h in res.history if "stage" in h],
            "notes": [n for n in res.notes if n.startswith(("the solver returned", "NOT VERIFIED", "stage"))]}


def member_data(kind: str, pair: tuple[int, int], X: FloatArray, y: IntArray) -> tuple[FloatArray, IntArray]:
    """The two-class problem of one member: its rows and 0/1 labels (1 = the member's positive class)."""
    neg, pos = pair
    if kind == "one_vs_one":
        rows = np.flatnonzero((y == neg) | (y == pos))
        return X[rows], (y[rows] == pos).astype(np.int64)
    return X, (y == pos).astype(np.int64)


def train_ensemble(net: Network, X: FloatArray, y: IntArray, n_classes: int, *, kind: str = "one_vs_one",
                   member: str = "exact", member_options: dict[str, Any] | None = None, loss: str = "hamming",
                   margin: float = 1.0, eps: float | None = None, l1: float = 0.0, solver: str = "highs",
                   options: SolveOptions | None = None, X_val: FloatArray | None = None,
                   y_val: IntArray | None = None, objectives: Sequence[str] = (), time_budget: float | None = None,
                   workers: int = 2, margin_cap: float = 1.0, executor: Any = None) -> TrainResult:
    """Train a ``kind`` ensemble of copies of ``net`` (one output unit) on ``n_classes`` classes.

    Parameters
    ----------
    net
        The member network: one output unit (``out > 0`` is the member's positive class).
    member, member_options
        The strategy of every member (``exact``, ``split`` or ``local_search``) and its keyword options.
    loss, margin, eps, l1, solver, objectives, margin_cap
        As for :func:`nnmip.drivers.train.train_network`, for every member.
    options
        Solver options; ``options.time_limit`` (or ``time_budget``) bounds the whole ensemble,
        ``options.solve_time_limit`` caps each solve.
    X_val, y_val
        Validation data, restricted to each member's classes (the split strategy selects by it).
    workers
        Processes training members at once, when no ``executor`` is given.
    executor
        Where the members train (:mod:`nnmip.drivers.executor`: serial, local processes or a Dask cluster; the
        caller closes it); default: :func:`member_executor` of ``workers``.  Each member's time share assumes
        the executor's workers.

    Returns
    -------
    TrainResult
        ``ensemble`` holds the :class:`Ensemble`; ``verified`` is true when every member's network was
        verified by the forward pass; ``loss`` is the sum of the members' forward-pass losses; ``status`` is
        ``optimal`` only when every member's status is; ``history`` has one record per member.
    """
    if kind not in KINDS:
        raise ValueError(f"ensemble kind must be one of {KINDS}, got {kind!r}")
    if member not in MEMBER_STRATEGIES:
        raise ValueError(f"member strategy must be one of {MEMBER_STRATEGIES}, got {member!r}")
    if net.n_outputs != 1:
        raise ValueError(f"ensemble members need one output unit; network '{net.name}' has {net.n_outputs}")
    if workers < 1:
        raise ValueError(f"workers must be positive, got {workers}")
    opts = options or SolveOptions()
    total = time_budget if time_budget is not None else opts.time_limit
    t0 = time.perf_counter()
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    pairs = member_tasks(kind, n_classes)
    own = executor is None
    ex = member_executor(workers, len(pairs)) if own else executor
    workers = ex.workers
    share = None if total is None else max(0.5, 0.95 * total * min(workers, len(pairs)) / len(pairs))
    deadline = time.time() + (total if total is not None else 0.0)
    kwargs = dict(loss=loss, margin=margin, eps=eps, l1=l1, solver=solver, objectives=tuple(objectives),
                  margin_cap=margin_cap)
    jobs = []
    for i, pair in enumerate(pairs):
        Xm, ym = member_data(kind, pair, X, y)
        Xv = yv = None
        if X_val is not None and y_val is not None and np.size(y_val):
            Xv, yv = member_data(kind, pair, np.asarray(X_val, np.float64), np.asarray(y_val, np.int64))
        jobs.append({"index": i, "net": net, "X": Xm, "y": ym, "X_val": Xv, "y_val": yv, "strategy": member,
                     "strategy_options": dict(member_options or {}), "kwargs": kwargs,
                     "options": replace(opts, progress=None, warm_start=None), "share": share,
                     "deadline": deadline})
    log.info("%s ensemble: %d members (%s) on %s, %s per member", kind, len(pairs), member, ex.describe(),
             "no time limit" if share is None else f"{share:.3g}s")
    from nnmip.drivers.executor import unwrap

    try:
        out = unwrap(ex.map(_train_member, jobs))
    finally:
        if own:
            ex.close()
    nets = [o["network"] for o in out]
    history = [{k: v for k, v in o.items() if k != "network"} | {"pair": list(pairs[o["index"]])} for o in out]
    seconds = time.perf_counter() - t0
    notes = [f"{kind} ensemble of {len(pairs)} {member} members, {workers} processes, {seconds:.1f}s"]
    if objectives:
        notes.append("members' objectives: " + " > ".join((loss, *objectives)) + " (lexicographic)")
    missing = [i for i, n in enumerate(nets) if n is None]
    if missing:
        notes.append(f"NOT VERIFIED: members {missing} ended without a verified network")
        return TrainResult(Status.TIME_LIMIT, solver, None, False, None, None, None, None, None, None, seconds,
                           0.0, {}, message="ensemble incomplete", notes=notes, history=history)
    ens = Ensemble(kind, n_classes, [n for n in nets if n is not None], pairs, name=f"{net.name}_{kind}")
    all_opt = all(o["status"] == str(Status.OPTIMAL) for o in out)
    loss_sum = float(sum(o["loss"] for o in out))
    res = TrainResult(Status.OPTIMAL if all_opt else Status.TIME_LIMIT, solver, None, True, loss_sum, None, None,
                      None, None, None, seconds, 0.0, {"members": len(pairs)}, message=f"{kind} ensemble",
                      notes=notes, history=history)
    res.ensemble = ens
    res.extension = {"ensemble": kind, "members": len(pairs), "member_strategy": member,
                     "train_accuracy": float(np.mean(ens.predict(X) == y))}
    return res
