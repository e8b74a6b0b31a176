"""Sparse gradient training of continuous-weight networks: mini-batch epochs of Prox-SG, RDA, OBProx-SG (+),
their group variants, or SPR; then pruning of the zeroed units and optional fine-tuning with the zeros kept.

The objective is ``F(x) = f(x) + psi(x)`` with ``f`` the mean loss over the training rows (``cross_entropy`` or
``squared``, :func:`nnmip.ir.losses.smooth_loss`) and ``psi`` the penalty:

* ``penalty = l1``: ``lambda * sum |w|`` over the weights of the trained layers (biases are not penalised);
* ``penalty = group``: ``lambda * sum_g ||w_g||_2`` over the groups of the task's ``prune`` declarations;
* strategy ``spr``: ``lambda * sum_g SPR(w_g)`` with the declarations' groups and ``M`` and the task's ``alpha``.

Every number reported (objective, density, accuracies) comes from the numpy forward pass of the fixed network
(:meth:`nnmip.ir.network.Network.forward`), never from the optimiser's running averages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from nnmip.drivers.deadline import Deadline
from nnmip.drivers.sparse.groups import Partition, partitions, zero_groups
from nnmip.drivers.sparse.layout import Layout, initial_point, layout_of, loss_and_grad, with_point
from nnmip.drivers.sparse.prune import remove_dead
from nnmip.formulations.groups import GroupRef
from nnmip.ir.losses import smooth_loss
from nnmip.ir.network import Network
from nnmip.ir.train_spec import PruneSpec
from nnmip.optim import RDA, SGD, GroupPenalty, L1Penalty, OBProxSG, Penalty, ProxSG, SPRPenalty
from nnmip.solution import STOP, stops_on_ctrl_c

log = logging.getLogger("nnmip.sparse")
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

METHODS = ("obproxsg", "prox_sg", "rda", "spr", "sgd")


@dataclass(frozen=True)
class SparseConfig:
    """The options of ``strategy = obproxsg(...)`` / ``prox_sg(...)`` / ``rda(...)`` / ``spr(...)``."""

    method: str = "obproxsg"
    lam: float = 1e-3                 # lambda (strategy option ``lambda``)
    lr: float = 0.1
    epochs: int = 30
    batch: int | None = 32            # None: full batch
    seed: int = 0
    schedule: str = "constant"        # constant | step
    step_every: int = 10              # step schedule: lr * decay ** (epoch // step_every)
    decay: float = 0.1
    n_p: int = 5                      # OBProx-SG: Prox-SG epochs per cycle
    n_o: int | None = 5               # OBProx-SG: orthant epochs per cycle (None: OBProx-SG+)
    gamma: float = 1.0                # RDA: beta_t = gamma sqrt(t)
    penalty: str = "l1"               # l1 | group (spr: always its groups)
    finetune: int = 0                 # epochs of plain SGD afterwards, zeros kept
    tau: float = 0.0                  # spr: groups whose indicator z_g <= tau are zeroed before fine-tuning
    alpha: float = 0.5                # spr
    loss: str = "cross_entropy"

    def lr_at(self, epoch: int) -> float:
        if self.schedule == "step":
            return self.lr * self.decay ** (epoch // max(1, self.step_every))
        return self.lr


@dataclass
class SparseResult:
    """A trained network, its pruned form and what the training measured."""

    network: Network                  # the trained network (zeros in place)
    pruned: Network                   # the dead units (and features) removed
    kept_features: IntArray
    removed: list[GroupRef]
    objective: float                  # F = f + psi on the training rows, by the forward pass
    data_loss: float
    penalty: float
    history: list[dict[str, Any]] = field(default_factory=list)
    sparsity: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    x: FloatArray | None = None
    #: why the epochs ended early: ``"time_limit"``, ``"interrupted"`` (Ctrl-C), or None when all of them ran
    stopped: str | None = None

    @property
    def epochs_done(self) -> int:
        """The epochs run to their end (fine-tuning included), one record each in ``history``; a stopped epoch's
        finished batches are kept in ``x``.
        """
        return len(self.history)


def make_penalty(cfg: SparseConfig, layout: Layout, parts: list[Partition]) -> Penalty:
    """The penalty ``psi`` of a configuration (see the module docstring)."""
    if cfg.method == "sgd" or cfg.lam == 0:
        return Penalty()
    if cfg.method == "spr":
        return SPRPenalty(cfg.lam, cfg.alpha, [p.gid for p in parts], [p.M for p in parts])
    if cfg.penalty == "group":
        return GroupPenalty(cfg.lam, [p.gid for p in parts])
    return L1Penalty(cfg.lam, layout.trainable & layout.is_weight)


def make_method(cfg: SparseConfig, penalty: Penalty, layout: Layout, x0: FloatArray) -> SGD:
    """The optimiser of a configuration, with the weight domains as its box."""
    lo, hi = layout.lo, layout.hi
    if cfg.method == "obproxsg":
        return OBProxSG(penalty, lo, hi, n_p=cfg.n_p, n_o=cfg.n_o)
    if cfg.method in ("prox_sg", "spr"):
        return ProxSG(penalty, lo, hi)
    if cfg.method == "rda":
        return RDA(penalty, lo, hi, gamma=cfg.gamma, x0=x0)
    return SGD(penalty, lo, hi)


def sparsity(layout: Layout, x: FloatArray, parts: list[Partition]) -> dict[str, Any]:
    """Zero weights among the trained weights, and zero groups per declaration."""
    w = layout.trainable & layout.is_weight
    out: dict[str, Any] = {"weights": int(w.sum()), "zero_weights": int(np.count_nonzero(x[w] == 0))}
    out["zero_fraction"] = out["zero_weights"] / max(1, out["weights"])
    out["density"] = 1.0 - out["zero_fraction"]
    out["groups"] = [{"kind": p.spec.kind, "groups": len(p.refs), "zero": int(zero_groups(p, x).size)}
                     for p in parts]
    return out


@stops_on_ctrl_c
def train_sparse(net: Network, X: FloatArray, y: IntArray, n_classes: int, cfg: SparseConfig, *,
                 specs: tuple[PruneSpec, ...] = (), X_val: FloatArray | None = None,
                 y_val: IntArray | None = None, x0: FloatArray | None = None,
                 on_epoch: Callable[[dict[str, Any]], None] | None = None,
                 time_limit: float | None = None) -> SparseResult:
    """Train ``net`` (its trainable dense parameters) on rows ``X`` with labels ``y`` (0..n_classes-1).

    ``time_limit`` (seconds) bounds the whole call.  The limit and Ctrl-C (:data:`nnmip.solution.STOP`) are
    checked after every mini-batch: the training then stops where it is, runs no fine-tuning, and the point
    reached is the result, pruned and measured like a finished one (``stopped`` says why).
    """
    if cfg.method not in METHODS:
        raise ValueError(f"unknown method '{cfg.method}'")
    from nnmip.errors import check_number

    check_number("time_limit", time_limit, low=0.0, none=True)
    t0 = time.perf_counter()
    deadline = Deadline(time_limit)
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    layout = layout_of(net)
    parts = partitions(net, layout, specs)
    if (cfg.method == "spr" or cfg.penalty == "group") and not parts and cfg.method != "sgd":
        raise ValueError("the group penalties need pruning groups (prune = neurons(...) or features(...))")
    rng = np.random.default_rng(cfg.seed)
    x = np.clip(np.array(x0, dtype=np.float64), layout.lo, layout.hi) if x0 is not None else \
        initial_point(net, layout, rng)
    penalty = make_penalty(cfg, layout, parts)
    history: list[dict[str, Any]] = []
    stopped: str | None = None

    def halt() -> bool:
        nonlocal stopped
        if stopped is None and deadline.expired():
            stopped = "interrupted" if STOP.is_set() else "time_limit"
        return stopped is not None

    def run(opt: SGD, epochs: int, phase: str, first: int) -> FloatArray:
        nonlocal x
        N = y.size
        B = N if cfg.batch is None else min(cfg.batch, N)
        for e in range(epochs):
            epoch = first + e
            if halt():
                return x
            opt.start_epoch(e)
            lr = cfg.lr_at(e)
            perm = rng.permutation(N)
            for s in range(0, N, B):
                rows = perm[s:s + B]
                _, g = loss_and_grad(net, layout, x, X[rows], y[rows], n_classes, cfg.loss)
                x = opt.step(x, g, lr)
                if halt():
                    return x
            rec = evaluate(net, layout, x, X, y, n_classes, cfg.loss, penalty, parts, X_val, y_val)
            stage = "finetune" if phase == "finetune" else opt.stage()
            rec.update({"epoch": epoch, "phase": phase, "stage": stage, "lr": lr,
                        "seconds": round(time.perf_counter() - t0, 4)})
            history.append(rec)
            val = "-" if rec["validation_accuracy"] is None else f"{rec['validation_accuracy']:.4f}"
            log.info("epoch %3d %-8s loss %.6g  objective %.6g  density %.4f  validation accuracy %s",
                     epoch, stage, rec["loss"], rec["objective"], rec["density"], val)
            if on_epoch is not None:
                on_epoch(rec)
        return x

    x_start = x.copy()
    with STOP.watch(lambda: None):    # the first Ctrl-C asks the epochs to stop (see halt), as it does a solve
        run(make_method(cfg, penalty, layout, x_start), cfg.epochs, cfg.method, 0)
        if cfg.method == "spr" and cfg.tau > 0 and isinstance(penalty, SPRPenalty):
            # the pruning rule: a group whose indicator z_g is at most tau is removed
            for p, z in zip(parts, penalty.indicators(x), strict=True):
                off = np.flatnonzero(z <= cfg.tau)
                x[np.isin(p.gid, off)] = 0.0
        if cfg.finetune > 0 and stopped is None:
            frozen = layout.trainable & layout.is_weight & (x == 0)
            for p in parts:
                frozen |= np.isin(p.gid, zero_groups(p, x))
            run(SGD(Penalty(), layout.lo, layout.hi, frozen=frozen), cfg.finetune, "finetune", cfg.epochs)
    trained = with_point(net, layout, x)
    out = trained.forward(X)
    dl = smooth_loss(cfg.loss, out, y, n_classes)[0]
    pen = penalty.value(x)
    drop_features = any(p.spec.kind == "features" for p in parts)
    pruned, kept, removed = remove_dead(trained, features=drop_features)
    sp = sparsity(layout, x, parts)
    sp["neurons_removed"] = sum(1 for r in removed if r.kind == "neuron")
    sp["features_removed"] = sum(1 for r in removed if r.kind == "feature")
    sp["parameters_before"] = trained.num_params()
    sp["parameters_after"] = pruned.num_params()
    sp["nonzero_after"] = int(sum(np.count_nonzero(W) + np.count_nonzero(b) for W, b in pruned.params().values()))
    return SparseResult(trained, pruned, kept, removed, dl + pen, dl, pen, history, sp,
                        time.perf_counter() - t0, x, stopped)


def evaluate(net: Network, layout: Layout, x: FloatArray, X: FloatArray, y: IntArray, n_classes: int, loss: str,
             penalty: Penalty, parts: list[Partition], X_val: FloatArray | None,
             y_val: IntArray | None) -> dict[str, Any]:
    """One epoch's record, by the forward pass of the fixed network."""
    fixed = with_point(net, layout, x)
    out = fixed.forward(X)
    dl = smooth_loss(loss, out, y, n_classes)[0]
    pen = penalty.value(x)
    sp = sparsity(layout, x, parts)
    from nnmip.ir.network import predict_from_output

    acc = float(np.mean(predict_from_output(out) == y))
    val = None
    if X_val is not None and y_val is not None and y_val.size:
        val = float(np.mean(fixed.predict(X_val) == y_val))
    return {"loss": dl, "penalty": pen, "objective": dl + pen, "density": sp["density"],
            "zero_weights": sp["zero_weights"], "zero_groups": [g["zero"] for g in sp["groups"]],
            "train_accuracy": acc, "validation_accuracy": val}
