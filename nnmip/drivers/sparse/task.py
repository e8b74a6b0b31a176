"""Run a checked ``train`` task whose strategy is ``obproxsg``, ``prox_sg``, ``rda`` or ``spr``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from nnmip.drivers.sparse.train import SparseConfig, SparseResult, train_sparse
from nnmip.drivers.train import TrainResult
from nnmip.solution import SolveOptions, Status

if TYPE_CHECKING:
    from nnmip.check import TrainTask
    from nnmip.io.data import Dataset
    from nnmip.ir.network import Network

#: strategy option -> SparseConfig field
_FIELDS = {"lambda": "lam", "lr": "lr", "epochs": "epochs", "batch": "batch", "seed": "seed", "schedule": "schedule",
           "step_every": "step_every", "decay": "decay", "finetune": "finetune", "n_p": "n_p", "n_o": "n_o",
           "penalty": "penalty", "gamma": "gamma", "tau": "tau"}


def config_of(task: TrainTask) -> SparseConfig:
    """The :class:`SparseConfig` of a checked task (``spr``: ``alpha`` and, by default, ``lambda`` of the task)."""
    kw: dict[str, Any] = {"method": task.strategy.kind, "loss": task.loss.kind}
    opts = dict(task.strategy.options)
    for k, v in opts.items():
        kw[_FIELDS[k]] = v
    if task.strategy.kind == "spr":
        kw["alpha"] = float(task.alpha)
        if "lambda" not in opts and task.lam:
            kw["lam"] = float(task.lam)
    return SparseConfig(**kw)


def run_sparse_task(task: TrainTask, net: Network, ds: Dataset, options: SolveOptions | None = None
                    ) -> tuple[TrainResult, SparseResult]:
    """Train on the train rows (validation rows reported per epoch); prune; check the pruned network against the
    full one on every row of the data set by the forward pass.

    The epochs stop at the smallest of ``options.time_limit`` and what is left of the run's deadline
    (:func:`nnmip.drivers.deadline.run_deadline`), or at Ctrl-C; the point reached is the result.
    """
    from nnmip.drivers.deadline import Budget

    cfg = config_of(task)
    X, y = ds.X(ds.train), ds.y[ds.train]
    X_val = ds.X(ds.validation) if ds.validation.size else None
    y_val = ds.y[ds.validation] if ds.validation.size else None
    limit = Budget.of(options or SolveOptions(), None, None).total
    res = train_sparse(net, X, y, ds.n_classes, cfg, specs=tuple(task.prune), X_val=X_val, y_val=y_val,
                       time_limit=None if limit is None else max(limit, 0.0))
    X_all = ds.X(np.arange(ds.X_raw.shape[0]))
    agree = bool(np.array_equal(res.pruned.predict(X_all[:, res.kept_features]), res.network.predict(X_all)))
    planned = cfg.epochs + cfg.finetune
    notes = [f"{cfg.method}: {len(res.history)} epochs of stochastic gradient; objective (mean {cfg.loss} + "
             f"penalty) {res.objective:.6g} by the forward pass (a local solution, not proven optimal)"]
    if res.stopped is not None:
        why = "by Ctrl-C" if res.stopped == "interrupted" else "by the time limit"
        notes.append(f"stopped {why} after {res.epochs_done} of {planned} epochs"
                     + (" (no fine-tuning)" if cfg.finetune and res.epochs_done < cfg.epochs else "")
                     + ": the result is the point reached")
    verified = True
    if not agree:   # cannot happen: every removed term is an exact zero; never hide it
        notes.append("NOT VERIFIED: the pruned network's predictions differ from the full network's")
        verified = False
    sp = dict(res.sparsity)
    ext: dict[str, Any] = {"sparse": sp, "strategy": cfg.method, "pruned_agrees": agree,
                           "epochs_planned": planned, "epochs_done": res.epochs_done, "stopped": res.stopped,
                           "removed_groups": [r.to_dict() for r in res.removed], "removed_count": len(res.removed),
                           "parameters_before": sp["parameters_before"], "parameters_after": sp["parameters_after"],
                           "nonzero_after": sp["nonzero_after"]}
    status = Status.INTERRUPTED if res.stopped == "interrupted" else Status.TIME_LIMIT
    tr = TrainResult(status, "numpy", res.network, verified, res.objective, res.data_loss, res.penalty,
                     None, None, None, res.seconds, 0.0, {}, message=f"{cfg.method} finished", notes=notes,
                     history=res.history, extension=ext)
    return tr, res
