"""Run the tasks of a checked ``.nnmip`` program: load its data, train, measure, report."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnmip.check import CheckedProgram, SolverSpec, TrainTask, check
from nnmip.drivers.evaluate import robust_metrics
from nnmip.drivers.train import TrainResult, result_dict, train_network
from nnmip.errors import DataError, Diagnostic, NnmipSyntaxError
from nnmip.io.data import Dataset, Preprocess, load_dataset
from nnmip.ir.network import Network
from nnmip.passes.prune import prune_network
from nnmip.solution import Progress, SolveOptions, stops_on_ctrl_c
from nnmip.syntax import parse, parse_file


@dataclass
class TrainReport:
    """Everything ``nnmip solve`` prints and writes: the verified result, accuracies and the data rows used."""

    task: TrainTask
    dataset: Dataset
    result: TrainResult
    metrics: dict[str, float | None]
    warnings: list[Diagnostic] = field(default_factory=list)
    pruned: Network | None = None             # the smaller network after pruning (inputs: kept_features)
    kept_features: np.ndarray | None = None

    @property
    def network(self) -> Network | None:
        return self.result.network

    def to_dict(self) -> dict[str, Any]:
        d = result_dict(self.result)
        d["metrics"] = self.metrics
        d["task"] = {"network": self.task.network, "data": self.task.data, "loss": self.task.loss.kind,
                     "margin": self.task.loss.margin, "eps": self.result.training_model.eps
                     if self.result.training_model else self.task.eps, "l1": self.task.l1}
        ds = self.dataset
        d["data"] = {
            "source": ds.source,
            "rows": int(ds.X_raw.shape[0]),
            "features": int(ds.n_features),
            "classes": [c.item() if hasattr(c, "item") else c for c in ds.classes],
            "scaling": ds.scaler.to_dict(),
            "train": ds.train.tolist(),
            "train_all": ds.train_all.tolist(),
            "validation": ds.validation.tolist(),
            "test": ds.test.tolist(),
        }
        d["warnings"] = [w.to_dict() for w in self.warnings]
        if self.kept_features is not None:
            d["pruned_network"] = {"kept_features": self.kept_features.tolist(),
                                   "parameters": self.pruned.num_params() if self.pruned is not None else None}
        return d


def load_program(path: str | Path) -> CheckedProgram:
    """Parse and check a ``.nnmip`` file (relative paths inside it are relative to its folder)."""
    from nnmip.errors import check_path
    from nnmip.io.safe import note_input

    check_path("path", path)
    note_input(path)
    try:
        prog = parse_file(path)
    except NnmipSyntaxError:
        text = _without_bom(path)    # a UTF-8 byte-order mark before the text: the program after it
        if text is None:
            raise
        prog = parse(text, str(path))
    return check(prog, Path(path).resolve().parent)


def _without_bom(path: str | Path) -> str | None:
    """The text of a UTF-8 file that starts with a byte-order mark, without it (None for any other file)."""
    import codecs

    try:
        with open(path, "rb") as f:
            if f.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:
                return None
            return f.read().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def task_dataset(cp: CheckedProgram, task: TrainTask) -> Dataset:
    """The data set of a training task, loaded and split as the task declares."""
    decl = cp.data[task.data]
    pre: Preprocess = dataclasses.replace(decl.pre, subset=task.subset, span=task.span if task.subset else
                                          decl.pre.span)
    try:
        return load_dataset(decl.source, pre, cp.base_dir)
    except DataError as exc:
        raise exc.with_source(cp.program.source) from None


def accuracy(net: Any, ds: Dataset, rows: np.ndarray) -> float | None:
    """Accuracy of a network or an ensemble (anything with ``predict``) on the given rows."""
    if rows.size == 0:
        return None
    return float(np.mean(net.predict(ds.X(rows)) == ds.y[rows]))


def solve_options(spec: SolverSpec, *, time_limit: float | None = None, gap: float | None = None,
                  threads: int | None = None, verbose: bool | None = None,
                  progress: Any = None) -> SolveOptions:
    """Solve options from the file's ``solve with`` statement, overridden by the given values."""
    return SolveOptions(
        time_limit=time_limit if time_limit is not None else spec.time_limit,
        mip_gap=gap if gap is not None else spec.gap,
        threads=threads if threads is not None else spec.threads,
        verbose=spec.verbose if verbose is None else verbose,
        progress=progress,
        solver_options=dict(spec.options),
    )


def _check_task_call(cp: object, task: object, solver: object, options: object, emit: object,
                     relax: object) -> None:
    """Refuse arguments of :func:`run_train_task` that cannot be used (ParameterError naming them)."""
    from nnmip.errors import ParameterError, check_choice, check_instance
    from nnmip.formulations.pruning import EMIT_MODES

    check_instance("cp", cp, CheckedProgram, "a checked program (nnmip.load_program(path))")
    assert isinstance(cp, CheckedProgram)
    if task is None and not cp.tasks:
        raise ParameterError.of("cp", "has no train statement", "add `train <network> on <data> { ... }` to the "
                                "file", code="E0109")
    check_instance("task", task, TrainTask, "one of cp.tasks, or None", none=True)
    if solver is not None and not isinstance(solver, str):
        raise ParameterError.of("solver", f"must be a solver name or None, got {solver!r:.60}",
                                "use 'highs', 'cbc' or 'gurobi'")
    check_instance("options", options, SolveOptions, "SolveOptions or None", none=True)
    check_choice("emit", emit, EMIT_MODES, none=True, code="E0221")
    check_instance("relax", relax, bool, "True, False or None", none=True)


@stops_on_ctrl_c
def run_train_task(cp: CheckedProgram, task: TrainTask | None = None, *, solver: str | None = None,
                   options: SolveOptions | None = None,
                   progress: Any = None, emit: str | None = None, relax: bool | None = None,
                   executor: Any = None) -> TrainReport:
    """Train the network of ``task`` (default: the file's first task) and measure it on every split.

    ``emit``/``relax`` default to the task's own settings; without ``options`` the task's ``time_limit`` (else the
    ``solve`` statement's) applies, and a ``warm_start`` weights file starts the exact solve.  ``executor``
    (:mod:`nnmip.drivers.executor`) runs the members of an ensemble strategy.
    """
    _check_task_call(cp, task, solver, options, emit, relax)
    task = task or cp.tasks[0]
    emit = task.emit if emit is None else emit
    relax = task.relax if relax is None else relax
    ds = task_dataset(cp, task)
    net = cp.networks[task.network]
    net.check_features((ds.X_raw.shape[0], ds.n_features), f"data '{task.data}'", task.span,
                       [f"help: declare the input as ({net.input}: {ds.n_features})"], cp.program.source)
    opts = options or solve_options(cp.solver, time_limit=task.time_limit, progress=progress)
    from nnmip.check.sparse_spec import is_gradient

    sparse = None
    if is_gradient(task.strategy.kind):
        from nnmip.drivers.sparse.task import run_sparse_task

        if relax or emit != "milp":
            from nnmip.check.sparse_spec import no_training_model

            raise no_training_model(task, "relax" if relax else f"emit as {emit}", cp.program.source)

        res, sparse = run_sparse_task(task, net, ds, opts)
    elif relax and task.strategy.kind in ("one_vs_one", "one_vs_rest"):
        from nnmip.errors import NnmipError

        raise NnmipError.at("E0174", f"task 'train {task.network} on {task.data}' trains an ensemble (strategy "
                            f"{task.strategy.kind}): there is no one training model to relax", task.strategy.span,
                            ["help: each member has its own model; to see the relaxation of one, train it alone "
                             "(strategy exact on that member's classes)"], source=cp.program.source)
    elif task.strategy.kind != "exact" and not relax:
        from nnmip.drivers.strategies import run_strategy

        res = run_strategy(task, net, ds, solver or cp.solver.name, opts, emit=emit, executor=executor)
    else:
        X, y = ds.X(ds.train), ds.y[ds.train]
        t0 = time.perf_counter()
        from nnmip.check.training_ext import prune_config

        warm = None
        if task.warm_start is not None:
            from nnmip.io.weights import load_npz

            warm = _warm_params(load_npz(task.warm_start)[0], net, task)
        res = train_network(net, X, y, ds.n_classes, loss=task.loss.kind, margin=task.loss.margin, eps=task.eps,
                            l1=task.l1, solver=solver or cp.solver.name, options=opts, robust=task.robust,
                            prune=prune_config(task), emit=emit, relax=relax, warm_start=warm,
                            objectives=task.loss.then)
        res.seconds = max(res.seconds, 0.0)
        if relax and task.strategy.kind != "exact":
            res.notes.append(f"strategy {task.strategy.kind} is not run to relax: this is the relaxation of the "
                             "whole training model, a lower bound of the training objective whatever the strategy")
        _ = t0
    metrics: dict[str, float | None] = {"train": None, "train_all": None, "validation": None, "test": None}
    if res.predictor is not None:
        metrics = {
            "train": accuracy(res.predictor, ds, ds.train),
            "train_all": accuracy(res.predictor, ds, ds.train_all),
            "validation": accuracy(res.predictor, ds, ds.validation),
            "test": accuracy(res.predictor, ds, ds.test),
        }
    report = TrainReport(task, ds, res, metrics, list(cp.warnings))
    if sparse is not None:
        report.pruned, report.kept_features = sparse.pruned, sparse.kept_features
        return report
    if res.network is not None and (task.robust is not None or task.prune):
        finish_report(report)
    return report


def _warm_params(start: Network, net: Network, task: TrainTask) -> dict[str, Any]:
    """The weights of ``start`` for the dense layers of ``net`` (same names and shapes), else E0163."""
    from nnmip.errors import CheckError

    params = start.params()
    out: dict[str, Any] = {}
    for n in net.dense_nodes():
        op = net.op(n)
        W = params.get(n, (None, None))[0]
        if W is None or W.shape != (op.n_out, op.n_in):  # type: ignore[attr-defined]
            raise CheckError.at("E0163", f"the warm start of '{task.network}' has no weights of shape "
                                f"({op.n_out}, {op.n_in}) for layer '{n}'", task.span,  # type: ignore[attr-defined]
                                ["help: start from weights saved for this network (nnmip solve --save-weights)"])
        out[n] = params[n]
    return out


def finish_report(report: Any) -> None:
    """Add robust metrics and the smaller pruned network to a task report (checked by the forward pass)."""
    res, ds, task = report.result, report.dataset, report.task
    net = res.network
    if net is None:
        return
    if task.robust is not None:
        report.metrics.update(robust_metrics(net, ds, task.robust))
    tm = res.training_model
    if task.prune and tm is not None and tm.extension is not None and res.x is not None:
        removed = tm.extension.removed(res.x)
        small, kept = prune_network(net, removed)
        X_all = ds.X(np.arange(ds.X_raw.shape[0]))
        agree = bool(np.array_equal(small.predict(X_all[:, kept]), net.predict(X_all)))
        if not agree:  # cannot happen when removed groups have zero outgoing weights; never hide it
            res.notes.append("NOT VERIFIED: the pruned network's predictions differ from the full network's")
            res.verified = False
        report.pruned, report.kept_features = small, kept
        res.extension["pruned_agrees"] = agree
        res.extension["parameters_before"] = net.num_params()
        res.extension["parameters_after"] = small.num_params()
        res.extension["nonzero_after"] = int(sum(np.count_nonzero(W) + np.count_nonzero(b)
                                                 for W, b in small.params().values()))


__all__ = ["Progress", "TrainReport", "load_program", "run_train_task", "solve_options", "task_dataset"]
