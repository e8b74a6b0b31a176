"""Ensembles of binary networks for many classes: one_vs_one (BeMi) and one_vs_rest.

One copy of a network with one output unit is trained per pair of classes (one_vs_one: label 1 for the larger
class index, on the points of the two classes only) or per class (one_vs_rest: label 1 for the class, on every
point), each by any strategy (``exact``, ``split``, ``local_search``) and optionally with lexicographic
objectives.  Members are independent MILPs: they are the tasks of an executor (:mod:`nnmip.drivers.executor`:
serial, local processes or a Dask cluster) and come out the same wherever they run.  The vote and its tie rule are
those of :class:`nnmip.ir.ensemble.Ensemble`.

Time: ``time_limit`` (or ``time_budget``) bounds the whole ensemble, from the call on (and never past the end of
a run, see :meth:`nnmip.drivers.deadline.Budget.of`).  Each member gets ``time_limit * workers /
members`` seconds (its fair share of the processes), never more than what is left of the whole budget when it
starts; a member that finishes early leaves its time unused.  Once less than :data:`MIN_MEMBER_SECONDS` of the
budget is left, no member starts: the members not started yet are not trained (below), so the ensemble ends
within about the budget (plus the end of the members running then).

Stopping part-way (Ctrl-C, :data:`nnmip.solution.STOP`, or the time budget spent): the ensemble ends with the
members it has.  A member that was running keeps what its fit found (its incumbent, checked by the forward pass,
status ``interrupted`` or ``time_limit``).  A member that was never started, or that ended without a verified
network, is a **stand-in**: the constant classifier of its two-class problem
(:func:`nnmip.drivers.train.constant_params`: zero weights, the member's more frequent label), so that the vote
stays the documented vote of a full :class:`~nnmip.ir.ensemble.Ensemble` (the same in numpy, in the saved npz
and in the ONNX graph).  For ``one_vs_one`` a stand-in gives its vote, on every point, to the more frequent class
of its pair (the smaller index on a tie).  For ``one_vs_rest`` it predicts "rest" when that is its more frequent
label (the usual case), with the lowest score its output bias allows, so that its class wins a point only where
every trained member scores lower still.  Every stand-in is listed in the notes, in ``extension["stand_ins"]``
and in its ``history`` record (``"stand_in": true``, with ``"not_run"``: ``"interrupted"`` or ``"time_limit"``
for a member never started, null for one that ran); its loss is its forward-pass loss, and the accuracies reported
are those of the returned ensemble's vote.  The status is ``interrupted`` after a stop request that cut members
short or left them unstarted, ``time_limit`` when members were cut short or not run for time, ``optimal`` only
when every member was trained and solved to optimality.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from nnmip.drivers.deadline import Budget
from nnmip.drivers.strategies.common import FloatArray, IntArray, Objective, weighted_layers
from nnmip.drivers.train import TrainResult, train_network
from nnmip.ir.ensemble import KINDS, Ensemble, member_tasks
from nnmip.ir.network import Network
from nnmip.solution import STOP, SolveOptions, Status, stops_on_ctrl_c

log = logging.getLogger(__name__)

#: member strategies
MEMBER_STRATEGIES = ("exact", "split", "local_search")
#: a member starts only while at least this much of the ensemble's time budget is left (seconds): less would not
#: pay for building its model, and its solves get at least 0.1 s (:meth:`nnmip.drivers.deadline.Budget.limit`)
MIN_MEMBER_SECONDS = 0.1


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


def _not_run(job: dict[str, Any], why: str) -> dict[str, Any]:
    """The record of a member that was not started (``why``: ``interrupted`` or ``time_limit``)."""
    return {"index": job["index"], "network": None, "status": why, "verified": False, "loss": None,
            "seconds": 0.0, "time_limit": 0.0, "points": int(job["y"].size), "stages": [], "notes": [],
            "not_run": why}


def _train_member_now(job: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    share, deadline = job["share"], job["deadline"]
    if STOP.is_set():    # a stop request: no member starts after it
        return _not_run(job, str(Status.INTERRUPTED))
    limit: float | None = None
    if share is not None:
        left = deadline - time.time()
        if left < MIN_MEMBER_SECONDS:   # the ensemble's budget is spent: no member starts after it
            return _not_run(job, str(Status.TIME_LIMIT))
        limit = min(share, left)
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
            "notes": [n for n in res.notes if n.startswith(("the solver returned", "NOT VERIFIED", "stage"))],
            "not_run": None}


def stand_in(kind: str, net: Network, X: FloatArray, y: IntArray, eps: float | None) -> Network:
    """The network of a member that was not trained (see the module docstring): the constant classifier of its
    two-class problem ``(X, y)`` (:func:`~nnmip.drivers.train.constant_params`); for ``one_vs_rest``, when it
    predicts "rest", its output bias is the lowest the domain allows (its score is the lowest it can be).
    """
    from nnmip.drivers.train import constant_params
    from nnmip.formulations.training import DEFAULT_EPS
    from nnmip.ir.ops import Dense

    params = constant_params(net, X, y, 2, DEFAULT_EPS if eps is None else float(eps))
    dense = net.dense_nodes()
    if kind == "one_vs_rest" and dense:
        last = dense[-1]
        op = net.op(last)
        W, b = params[last]
        assert isinstance(op, Dense)
        if op.bias is not None and op.bias.trainable and b is not None and op.n_out == 1 and b[0] < 0:
            lo = float(np.min(op.bias.lo))
            if op.bias.kind == "int":
                lo = float(np.ceil(lo))
            if np.isfinite(lo) and lo < b[0]:
                params[last] = (W, np.array([lo]))
    return net.with_params(params)


def member_data(kind: str, pair: tuple[int, int], X: FloatArray, y: IntArray) -> tuple[FloatArray, IntArray]:
    """The two-class problem of one member: its rows and 0/1 labels (1 = the member's positive class)."""
    neg, pos = pair
    if kind == "one_vs_one":
        rows = np.flatnonzero((y == neg) | (y == pos))
        return X[rows], (y[rows] == pos).astype(np.int64)
    return X, (y == pos).astype(np.int64)


@stops_on_ctrl_c
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
        ``ensemble`` holds the :class:`Ensemble`, always complete: a member without a verified network (not
        started after a stop request or once the budget was spent, or ended without one) is a stand-in, the
        constant classifier of its two classes (module docstring), listed in the notes, in
        ``extension["stand_ins"]`` and in its ``history`` record (``stand_in``, ``not_run``); ``verified`` is
        true when every member's network was verified by the forward pass, stand-ins apart (a stand-in is a
        fixed network whose loss is its forward-pass loss), and no member that ran to its end failed to give
        one; ``loss`` is the sum of the members' forward-pass losses, stand-ins included; ``status`` is
        ``interrupted`` after a stop request (:data:`nnmip.solution.STOP`, Ctrl-C) that cut members short or
        left them unstarted, ``optimal`` only when every member was trained and its status is, else
        ``time_limit``; ``extension["train_accuracy"]`` is the accuracy of the returned vote on ``(X, y)``;
        ``history`` has one record per member.
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
    total = Budget.of(opts, time_budget, None).total    # time_budget, else options.time_limit (and a run's end)
    t0 = time.perf_counter()
    deadline = time.time() + (total if total is not None else 0.0)    # the whole call, the executor's start included
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    pairs = member_tasks(kind, n_classes)
    # no member can start (a stop request, or the budget spent already): no worker processes either
    spent = STOP.is_set() or (total is not None and total < MIN_MEMBER_SECONDS)
    own = executor is None
    ex = member_executor(1 if spent else workers, len(pairs)) if own else executor
    workers = ex.workers
    share = None if total is None else 0.95 * total * min(workers, len(pairs)) / len(pairs)
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
    from nnmip.drivers.executor import INTERRUPTED_CODE, unwrap

    try:
        outcomes = ex.map(_train_member, jobs)
    finally:
        if own:
            ex.close()
    # a member the executor did not start because of a stop request (E0807) is not trained; any other error of a
    # member (its worker lost twice, an exception) is raised, as before
    unwrap([o for o in outcomes if o.error is None or o.error.code != INTERRUPTED_CODE])
    out = [o.value if o.error is None else _not_run(jobs[o.index], str(Status.INTERRUPTED)) for o in outcomes]
    return _result(kind, net, X, y, n_classes, pairs, jobs, out, member=member, loss=loss, margin=margin, l1=l1,
                   eps=eps, solver=solver, objectives=objectives, workers=workers,
                   seconds=time.perf_counter() - t0)


def _result(kind: str, net: Network, X: FloatArray, y: IntArray, n_classes: int, pairs: list[tuple[int, int]],
            jobs: list[dict[str, Any]], out: list[dict[str, Any]], *, member: str, loss: str, margin: float,
            l1: float, eps: float | None, solver: str, objectives: Sequence[str], workers: int,
            seconds: float) -> TrainResult:
    """The ensemble of the members' records ``out`` (one per member, in order), stand-ins for the members without
    a verified network (see the module docstring), with its status, notes and forward-pass numbers.
    """
    nets: list[Network] = []
    history: list[dict[str, Any]] = []
    losses: list[float] = []
    stand_ins: list[int] = []
    failed: list[int] = []          # ran to its end, yet no verified network: not a stop, not the time limit
    cut = (str(Status.INTERRUPTED), str(Status.TIME_LIMIT))
    objective = Objective(loss, margin, l1, 2)
    weighted = weighted_layers(net)
    for o, job in zip(out, jobs, strict=True):
        rec = {k: v for k, v in o.items() if k != "network"} | {"pair": list(pairs[o["index"]])}
        m = o["network"]
        if m is None:
            stand_ins.append(o["index"])
            if o.get("not_run") is None and o["status"] not in cut:
                failed.append(o["index"])
            m = stand_in(kind, net, job["X"], job["y"], eps)
            dl, pen, viol = objective.terms(m, job["X"], job["y"], weighted)
            rec.update(stand_in=True, loss=None if viol else float(dl + pen), verified=not viol)
            if viol:
                failed.append(o["index"])
        else:
            rec["stand_in"] = False
        nets.append(m)
        losses.append(float("inf") if rec["loss"] is None else float(rec["loss"]))
        history.append(rec)
    statuses = [o["status"] for o in out]
    trained = len(pairs) - len(stand_ins)
    notes = [f"{kind} ensemble of {len(pairs)} {member} members, {workers} processes, {seconds:.1f}s"]
    if objectives:
        notes.append("members' objectives: " + " > ".join((loss, *objectives)) + " (lexicographic)")
    if str(Status.INTERRUPTED) in statuses or (STOP.is_set() and stand_ins):
        status = Status.INTERRUPTED
    elif all(s == str(Status.OPTIMAL) for s in statuses) and not stand_ins:
        status = Status.OPTIMAL
    else:
        status = Status.TIME_LIMIT
    if stand_ins:
        not_run = {why: [o["index"] for o in out if o.get("not_run") == why] for why in cut}
        why = ("interrupted" if status is Status.INTERRUPTED else
               "time limit" if any(out[i]["status"] == str(Status.TIME_LIMIT) for i in stand_ins) else "incomplete")
        parts = [f"{len(v)} not started ({k.replace('_', ' ')}): {v}" for k, v in not_run.items() if v]
        ended = [i for i in stand_ins if out[i].get("not_run") is None]
        if ended:
            parts.append(f"{len(ended)} ended without a verified network: {ended}")
        vote = ("votes on every point for the more frequent class of its pair" if kind == "one_vs_one" else
                "predicts 'rest' with the lowest score its output bias allows")
        notes.append(f"{why}: {trained} of {len(pairs)} members trained; " + "; ".join(parts)
                     + f"; each of these is the constant classifier of its two classes (it {vote}); the accuracies "
                     "are those of this ensemble's vote, stand-ins included")
    cut_short = [o["index"] for o in out if o["network"] is not None and o["status"] == str(Status.INTERRUPTED)]
    if cut_short:
        notes.append(f"members {cut_short} were stopped while training and keep the best network they had found, "
                     "checked by the forward pass")
    if failed:
        notes.append(f"NOT VERIFIED: members {sorted(set(failed))} ended without a verified network")
    ens = Ensemble(kind, n_classes, nets, pairs, name=f"{net.name}_{kind}")
    finite = all(np.isfinite(v) for v in losses)
    res = TrainResult(status, solver, None, not failed, float(sum(losses)) if finite else None, None, None, None,
                      None, None, seconds, 0.0, {"members": len(pairs)},
                      message=f"{kind} ensemble" + (f" ({trained} of {len(pairs)} members trained)"
                                                    if stand_ins else ""),
                      notes=notes, history=history)
    res.ensemble = ens
    res.extension = {"ensemble": kind, "members": len(pairs), "member_strategy": member,
                     "trained_members": trained, "stand_ins": stand_ins,
                     "train_accuracy": float(np.mean(ens.predict(X) == y))}
    return res
