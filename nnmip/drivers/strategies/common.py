"""What the training strategies share: forward-pass evaluation, time budgets, iteration records, results.

The strategies orchestrate solves of the training MILP (:func:`nnmip.drivers.train.train_network`); every loss they
compare or report comes from the numpy forward pass of a fixed-weight network, never from a solver objective.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from nnmip.drivers.deadline import Budget
from nnmip.drivers.train import TrainResult
from nnmip.ir.losses import data_loss, objective_terms
from nnmip.ir.network import Network
from nnmip.ir.ops import Dense, Sign, Step
from nnmip.solution import Status

log = logging.getLogger("nnmip.drivers.strategies")
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Params = dict[str, tuple[FloatArray, FloatArray | None]]


def check_strategy_call(net: Network, X: object, y: object, n_classes: object, *, X_val: object = None,
                        y_val: object = None, time_budget: object = None, step_time: object = None,
                        seed: object = 0, **shared: Any) -> tuple[FloatArray, IntArray]:
    """Refuse the arguments every training strategy shares before any work (ParameterError naming the argument,
    DataError for the data); ``shared`` are the arguments of :func:`nnmip.drivers.train.check_train_call`.
    """
    from nnmip.drivers.train import check_train_call, validate_data
    from nnmip.errors import ParameterError, check_int, check_number

    X_a, y_a = check_train_call(net, X, y, n_classes, **shared)
    check_number("time_budget", time_budget, low=0.0, none=True)
    check_number("step_time", step_time, low=0.0, none=True)
    check_int("seed", seed, low=0, high=2**32 - 1)
    if (X_val is None) != (y_val is None):
        raise ParameterError.of("X_val" if X_val is None else "y_val", "must be given together with "
                                f"{'y_val' if X_val is None else 'X_val'}", "pass both or neither")
    if X_val is not None and np.size(X_val):   # type: ignore[arg-type]
        validate_data(net, X_val, y_val, int(n_classes))  # type: ignore[arg-type, call-overload]
    return X_a, y_a


@dataclass(frozen=True)
class Objective:
    """The training objective of a task, evaluated by the forward pass."""

    loss: str = "hamming"
    margin: float = 1.0
    l1: float = 0.0
    n_classes: int = 2

    def levels(self, net: Network) -> tuple[float, float]:
        op = net.op(net.output)
        return op.binary if isinstance(op, (Step, Sign)) else (0.0, 1.0)

    def terms(self, net: Network, X: FloatArray, y: IntArray, weighted: set[str]) -> tuple[float, float, int]:
        """``(data loss, penalty, hard-margin violations)`` of the fixed network ``net``; ``weighted`` names the
        dense layers whose weights the original task trains (the penalty's scope, see :func:`weighted_layers`).
        """
        return objective_terms(net, net.forward(X), y, self.loss, self.margin, self.n_classes, self.l1, weighted)

    def value(self, net: Network, X: FloatArray, y: IntArray, weighted: set[str]) -> float:
        """Data loss plus penalty of the fixed network ``net``; ``inf`` when a hard margin is broken."""
        dl, pen, viol = self.terms(net, X, y, weighted)
        return float("inf") if viol else dl + pen

    def per_point(self, net: Network, X: FloatArray, y: IntArray) -> FloatArray:
        """The data loss of each point alone (the same function, one row at a time)."""
        out = net.forward(X)
        lv = self.levels(net)
        return np.array([data_loss(self.loss, out[i:i + 1], y[i:i + 1], self.n_classes, self.margin, lv)
                         for i in range(y.size)])


def weighted_layers(net: Network) -> set[str]:
    """Dense layers whose weights are trained: the scope of the l1 / min_weight penalty, as in the MILP."""
    return {n for n in net.dense_nodes() if net.op(n).weights.trainable}  # type: ignore[attr-defined]


def trainable_layers(net: Network) -> list[str]:
    """Dense layers with at least one trainable parameter, in topological order."""
    return [n for n in net.dense_nodes() if net.op(n).trainable]  # type: ignore[attr-defined]


def accuracy(net: Network, X: FloatArray | None, y: IntArray | None) -> float | None:
    """Accuracy of ``net`` on ``(X, y)``, or None without data."""
    if X is None or y is None or y.size == 0:
        return None
    return float(np.mean(net.predict(X) == y))


def record(history: list[dict[str, Any]], *, strategy: str, step: str, res: TrainResult | None, loss: float,
           best_loss: float, validation: float | None, clusters: int | None, budget: Budget,
           accepted: bool, **extra: Any) -> dict[str, Any]:
    """Append one iteration's record and log it as a progress line."""
    rec: dict[str, Any] = {
        "iteration": len(history),
        "step": step,
        "status": str(res.status) if res is not None else None,
        "verified": bool(res.verified) if res is not None else None,
        "loss": _num(loss),
        "best_loss": _num(best_loss),
        "validation_accuracy": validation,
        "clusters": clusters,
        "binaries": int(res.model_stats.get("binaries", 0)) if res is not None else None,
        "solve_seconds": round(res.seconds, 4) if res is not None else None,
        "seconds": round(budget.elapsed(), 4),
        "accepted": accepted,
        **extra,
    }
    history.append(rec)
    val = "-" if validation is None else f"{validation:.4f}"
    log.info("%s %d (%s): loss %s, best %s, validation accuracy %s, clusters %s, binaries %s, %.1fs%s",
             strategy, rec["iteration"], step, _fmt(loss), _fmt(best_loss), val,
             "-" if clusters is None else clusters, rec["binaries"], rec["seconds"],
             "" if accepted else " (kept the previous network)")
    return rec


def _num(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def _fmt(v: float) -> str:
    return f"{v:.6g}" if np.isfinite(v) else "inf"


def full_params(net: Network) -> Params:
    """The fixed weights and biases of every dense layer of ``net``."""
    out: Params = {}
    for n in net.dense_nodes():
        op = net.op(n)
        assert isinstance(op, Dense)
        out[n] = (np.array(op.W, dtype=np.float64), None if op.bias is None else np.array(op.b, np.float64))
    return out


def final_result(strategy: str, solver: str, network: Network | None, loss: float, objective: Objective,
                 X: FloatArray, y: IntArray, trainable: set[str], history: list[dict[str, Any]],
                 budget: Budget, last: TrainResult | None, *, source: TrainResult | None = None,
                 proven: bool = False, bound: float | None = None,
                 notes: list[str] | None = None) -> TrainResult:
    """The strategy's answer as a :class:`TrainResult` whose loss is re-checked by the forward pass.

    ``source`` is the solve that produced ``network`` (its objective and model size are reported beside the
    forward-pass loss); ``last`` is the last solve (its status when there is no network).

    ``status`` is ``optimal`` only when the strategy proved the loss optimal (the data-splitting loop ending
    on the exact model solved to optimality); otherwise it is ``time_limit``: a verified network that is not
    proven optimal.
    """
    src = source if source is not None else last
    stats = dict(src.model_stats) if src is not None else {}
    notes = list(notes or [])
    if network is None:
        status = last.status if last is not None else Status.TIME_LIMIT
        return TrainResult(status, solver, None, False, None, None, None, None, None, None, budget.elapsed(),
                           0.0, stats, message=f"{strategy}: no verified network", notes=notes,
                           history=history)
    dl, pen, viol = objective.terms(network, X, y, trainable)
    check = float("inf") if viol else dl + pen
    assert check == loss or (np.isinf(check) and np.isinf(loss)), (check, loss)
    status = Status.OPTIMAL if proven else Status.TIME_LIMIT
    gap = None
    if bound is not None and np.isfinite(loss):
        gap = 0.0 if abs(loss - bound) <= 1e-9 * max(1.0, abs(loss)) else abs(loss - bound) / max(1e-10, abs(loss))
    notes.append(f"{strategy}: {len(history)} iterations, loss {_fmt(loss)} by the forward pass"
                 + ("" if proven else " (heuristic: not proven optimal)"))
    return TrainResult(status, solver, network, bool(np.isfinite(loss)), _num(loss),
                       _num(loss - pen) if np.isfinite(loss) else None, pen,
                       src.objective if src is not None else None, bound, gap,
                       budget.elapsed(), 0.0, stats, message=f"{strategy} finished", notes=notes,
                       raw=src.raw if src is not None else None, history=history,
                       training_model=src.training_model if src is not None else None,
                       x=src.x if src is not None else None,
                       extension=dict(src.extension) if src is not None else {})
