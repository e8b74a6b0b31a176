"""Training strategies beyond one exact MILP: data splitting and local search (docs/formulations.md §11-§12).

They orchestrate solves of the training MILP and hold no maths of their own.  In a ``.nnmip`` file::

    train net on data {
        strategy = split(max_splits=20, batch=64, time_budget=60)
    }

and from Python :func:`train_split` and :func:`train_local_search`.  Every result is a
:class:`~nnmip.drivers.train.TrainResult` whose loss is the forward-pass loss of the returned network and whose
``history`` lists one record per solve (loss, validation accuracy, clusters, binaries, time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nnmip.drivers.strategies.ensemble import train_ensemble
from nnmip.drivers.strategies.local_search import make_blocks, random_params, train_local_search
from nnmip.drivers.strategies.split import train_split
from nnmip.drivers.train import TrainResult
from nnmip.solution import SolveOptions

if TYPE_CHECKING:
    from nnmip.check import TrainTask
    from nnmip.io.data import Dataset
    from nnmip.ir.network import Network

#: strategy name -> function; ``exact`` is :func:`nnmip.drivers.train.train_network` itself
STRATEGIES = {"split": train_split, "local_search": train_local_search}


def run_strategy(task: TrainTask, net: Network, ds: Dataset, solver: str, opts: SolveOptions,
                 emit: str = "milp", executor: Any = None) -> TrainResult:
    """Run the strategy of a checked training task on its data set (train rows; validation rows select);
    ``executor`` runs the members of an ensemble (default: the task's ``workers`` local processes).
    """
    from nnmip.check.training_ext import prune_config

    kind = task.strategy.kind
    X, y = ds.X(ds.train), ds.y[ds.train]
    X_val = ds.X(ds.validation) if ds.validation.size else None
    y_val = ds.y[ds.validation] if ds.validation.size else None
    kwargs: dict[str, Any] = dict(task.strategy.options)
    common: dict[str, Any] = dict(loss=task.loss.kind, margin=task.loss.margin, eps=task.eps, l1=task.l1,
                                  solver=solver, options=opts, objectives=tuple(task.loss.then))
    if kind in ("one_vs_one", "one_vs_rest"):
        member = kwargs.pop("member", "exact")
        member_options = dict(kwargs.pop("member_options", ()))
        return train_ensemble(net, X, y, ds.n_classes, kind=kind, member=member, member_options=member_options,
                              X_val=X_val, y_val=y_val, executor=executor, **common, **kwargs)
    if kind not in STRATEGIES:
        raise ValueError(f"unknown strategy '{kind}'")
    return STRATEGIES[kind](net, X, y, ds.n_classes, X_val=X_val, y_val=y_val,  # type: ignore[operator]
                            robust=task.robust, prune=prune_config(task), emit=emit, **common, **kwargs)


__all__ = ["STRATEGIES", "make_blocks", "random_params", "run_strategy", "train_ensemble", "train_local_search",
           "train_split"]
