"""Gradient-training strategies of a ``train`` statement: ``obproxsg``, ``prox_sg``, ``rda`` and ``spr``
(codes E0170-E0172; see docs/sparse.md).

Syntax::

    strategy = obproxsg(lambda=0.003, lr=0.1, epochs=60, batch=32, seed=0, n_p=20, n_o=inf, finetune=20)
    strategy = prox_sg(lambda=0.003, penalty=group)           # groups from prune = neurons(...) / features(...)
    strategy = rda(lambda=0.003, gamma=5)
    strategy = spr(lr=0.1, epochs=60, tau=0.01, finetune=20)  # lambda, alpha, M from the pruning settings

These strategies train relu / identity networks with real weight domains by mini-batch stochastic gradient
(``nnmip.drivers.sparse``); the MILP strategies' restrictions to binary activations do not apply to them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nnmip.errors import NnmipError
from nnmip.ir.ops import Dense, Identity, Input, ReLU
from nnmip.syntax import ast

if TYPE_CHECKING:
    from nnmip.check import StrategySpec, TrainTask, _Checker
    from nnmip.ir.network import Network

_COMMON = [("lambda", "nonneg"), ("lr", "posnum"), ("epochs", "posint"), ("batch", "any"), ("seed", "int"),
           ("schedule", "name"), ("step_every", "posint"), ("decay", "posnum"), ("finetune", "int")]

#: strategy -> [(option, type for ``_Checker.convert``)]
OPTIONS: dict[str, list[tuple[str, str]]] = {
    "obproxsg": _COMMON + [("n_p", "int"), ("n_o", "any"), ("penalty", "name")],
    "prox_sg": _COMMON + [("penalty", "name")],
    "rda": _COMMON + [("gamma", "posnum"), ("penalty", "name")],
    "spr": _COMMON + [("tau", "nonneg")],
}

CHOICES: dict[str, tuple[str, ...]] = {"schedule": ("constant", "step"), "penalty": ("l1", "group")}

#: losses of gradient training (the first is the default)
LOSSES = ("cross_entropy", "squared_error")


def is_gradient(name: str) -> bool:
    """Whether ``name`` is a gradient-training strategy (obproxsg, prox_sg, rda, spr)."""
    return name in OPTIONS


def strategy_named(s: ast.TrainStmt) -> str | None:
    """The strategy name a ``train`` statement asks for (before checking), or None."""
    for it in s.items:
        if isinstance(it, ast.Setting) and it.key == "strategy":
            v = it.value
            return v.name if isinstance(v, ast.Ref) else v.func if isinstance(v, ast.Call) else None
    return None


def check_options(ck: _Checker, name: str, call: ast.Call) -> list[tuple[str, Any]] | None:
    """Validate the options of a gradient strategy call; ``None`` after recording a diagnostic."""
    b = ck.bind(call, [(k, t, None) for k, t in OPTIONS[name]])
    if b is None:
        return None
    spans = b.pop("__spans__")
    out: list[tuple[str, Any]] = []
    ok = True
    for key, _ in OPTIONS[name]:
        val = b.get(key)
        if val is None:
            continue
        where = f"argument '{key}' of '{name}'"
        if key in CHOICES and val not in CHOICES[key]:
            ck.err("E0154", f"{where} must be one of {', '.join(CHOICES[key])}, got '{val}'", spans[key])
            ok = False
            continue
        if key in ("finetune", "n_p") and val < 0:
            ck.err("E0109", f"{where} must not be negative, got {val}", spans[key])
            ok = False
            continue
        if key == "batch":
            if isinstance(val, ast.Ref) and val.name == "full":
                out.append(("batch", None))
                continue
            if isinstance(val, ast.Num) and float(val.value) == int(val.value) and int(val.value) > 0:
                out.append(("batch", int(val.value)))
                continue
            ck.err("E0108", f"{where} must be a positive integer or full, got {_describe(val)}", spans[key],
                   "help: for example batch=32 or batch=full")
            ok = False
            continue
        if key == "n_o":
            if isinstance(val, ast.Ref) and val.name == "inf":
                out.append(("n_o", None))
                continue
            if isinstance(val, ast.Num) and float(val.value) == int(val.value) and int(val.value) > 0:
                out.append(("n_o", int(val.value)))
                continue
            ck.err("E0108", f"{where} must be a positive integer or inf, got {_describe(val)}", spans[key],
                   "help: n_o=inf gives OBProx-SG+ (Prox-SG epochs, then orthant epochs only)")
            ok = False
            continue
        out.append((key, val))
    return out if ok else None


def _describe(v: Any) -> str:
    from nnmip.check.specs import _describe as d

    return d(v)


def loss_fits(ck: _Checker, task: TrainTask) -> bool:
    """The smooth losses belong to the gradient strategies (the MILP has no cross entropy)."""
    if task.loss.kind not in LOSSES:
        return True
    ck.err("E0172", f"loss {task.loss.kind} is trained by the gradient strategies only", task.loss.span or task.span,
           "help: add strategy = obproxsg(...), prox_sg(...), rda(...) or spr(...) (relu networks), or use a MILP "
           "loss: hamming, zero_one, hinge, min_weight, max_margin")
    return False


def check_task(ck: _Checker, net: Network, task: TrainTask, loss_given: bool) -> TrainTask:
    """What gradient training can express; returns the task with its default loss (cross_entropy)."""
    from dataclasses import replace

    spec: StrategySpec = task.strategy
    opts = dict(spec.options)
    if not loss_given:
        task = replace(task, loss=replace(task.loss, kind="cross_entropy"))
    elif task.loss.kind not in LOSSES:
        ck.err("E0172", f"strategy '{spec.kind}' trains by gradient and needs a smooth loss, got "
               f"'{task.loss.kind}'", task.loss.span or spec.span,
               f"help: use loss = {' or '.join(LOSSES)} (the default is cross_entropy)")
    for n, op in net.items():
        if isinstance(op, (Input, ReLU, Identity)):
            continue
        if isinstance(op, Dense):
            for what, dom in (("weights", op.weights), ("bias", op.bias)):
                if dom is not None and dom.kind == "int":
                    ck.err("E0170", f"strategy '{spec.kind}' cannot train the integer {what} of '{n}'", op.span,
                           "help: give real domains (weights=real[-5, 5]), or use a MILP strategy for "
                           "integer weights")
            continue
        ck.err("E0170", f"strategy '{spec.kind}' trains by gradient, but '{n}' is {op.kind}, whose gradient "
               "is zero almost everywhere", op.span,
               "help: use relu(...) and identity(...) activations, or strategy = exact for step/sign networks")
    if not net.trainable:
        ck.err("E0142", f"network '{net.name}' has no trainable weights", task.span,
               "help: give a layer a domain such as weights=real[-5, 5]")
    if task.robust is not None:
        ck.err("E0155", f"strategy '{spec.kind}' cannot be combined with robust training", spec.span,
               "help: train with the gradient strategy, then check robustness with 'nnmip verify'")
    wants_groups = spec.kind == "spr" or opts.get("penalty") == "group"
    if wants_groups and not task.prune:
        ck.err("E0171", f"strategy '{spec.kind}'" + (" with penalty=group" if spec.kind != "spr" else "")
               + " needs pruning groups", spec.span,
               "help: add prune = neurons(h1) (or features(x), layers(...), weights(...)) to the task")
    return task


def no_training_model(task: TrainTask, why: str, source: str | None = None) -> NnmipError:
    """E0173: a gradient-trained task has no training MILP to write, relax or emit."""
    return NnmipError.at("E0173", f"task 'train {task.network} on {task.data}' is trained by stochastic gradient "
                         f"(strategy {task.strategy.kind}): there is no training model to {why}",
                         task.strategy.span, ["help: 'nnmip solve' trains it; to see a MILP, compile or verify the "
                                              "trained network (verify statements, nnmip verify --npz/--onnx)"],
                         source=source)
