"""The ``strategy`` setting of a ``train`` statement (codes E0153-E0155).

Syntax (see docs/training.md)::

    strategy = exact
    strategy = split(max_splits=20, batch=64, time_budget=60, step_time=5, seed=0, select=validation)
    strategy = local_search(rounds=10, init=random, blocks=pair, time_budget=60, step_time=5, seed=0)
    strategy = one_vs_one(member=split(max_splits=5), workers=2, time_budget=60)
    strategy = one_vs_rest(member=exact)

Each option is checked here with a located diagnostic; the options reach
:func:`nnmip.drivers.strategies.run_strategy` as keyword arguments of the same names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nnmip.solution import MAX_PARALLEL
from nnmip.syntax import ast

if TYPE_CHECKING:
    from nnmip.check import StrategySpec, _Checker

#: strategy -> [(option, type for ``_Checker.convert``)]; every option is optional
OPTIONS: dict[str, list[tuple[str, str]]] = {
    "exact": [],
    "split": [("max_splits", "int"), ("batch", "any"), ("time_budget", "posnum"), ("step_time", "posnum"),
              ("seed", "int"), ("select", "name")],
    "local_search": [("rounds", "posint"), ("init", "name"), ("init_splits", "int"), ("blocks", "name"),
                     ("time_budget", "posnum"), ("step_time", "posnum"), ("seed", "int")],
    "one_vs_one": [("member", "any"), ("workers", "posint"), ("time_budget", "posnum")],
    "one_vs_rest": [("member", "any"), ("workers", "posint"), ("time_budget", "posnum")],
}

#: strategies that train one network per pair of classes / per class (nnmip.drivers.strategies.ensemble)
ENSEMBLES = ("one_vs_one", "one_vs_rest")

#: (strategy, option) -> allowed names
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("split", "select"): ("validation", "loss"),
    ("local_search", "init"): ("random", "split"),
    ("local_search", "blocks"): ("pair", "layer"),
}


def check_strategy(ck: _Checker, v: ast.Value) -> StrategySpec | None:
    """Validate ``strategy = ...``; record diagnostics on ``ck`` and return None on error."""
    from nnmip.check.specs import StrategySpec, _describe, _span

    if isinstance(v, ast.Ref):
        name, call = v.name, None
    elif isinstance(v, ast.Call):
        name, call = v.func, v
    else:
        ck.err("E0108", f"strategy must be exact, local_search(...) or split(...), got {_describe(v)}", _span(v))
        return None
    from nnmip.check import sparse_spec

    if name not in OPTIONS and not sparse_spec.is_gradient(name):
        ck.err("E0153", f"unknown training strategy '{name}'", _span(v),
               f"help: choose one of {', '.join([*OPTIONS, *sparse_spec.OPTIONS])}")
        return None
    if call is None:
        return StrategySpec(name, (), _span(v))
    if sparse_spec.is_gradient(name):
        opts = sparse_spec.check_options(ck, name, call)
        return None if opts is None else StrategySpec(name, tuple(opts), call.span)
    b = ck.bind(call, [(k, t, None) for k, t in OPTIONS[name]])
    if b is None:
        return None
    spans = b.pop("__spans__")
    ok = True
    out: list[tuple[str, Any]] = []
    for key, _ in OPTIONS[name]:
        val = b.get(key)
        if val is None:
            continue
        where = f"argument '{key}' of '{name}'"
        if (name, key) in CHOICES and val not in CHOICES[name, key]:
            ck.err("E0154", f"{where} must be one of {', '.join(CHOICES[name, key])}, got '{val}'", spans[key])
            ok = False
            continue
        if key == "workers" and val > MAX_PARALLEL:
            ck.err("E0109", f"{where} must be at most {MAX_PARALLEL}, got {val}", spans[key],
                   "help: one process per core is plenty; workers=2 on a 2-core machine")
            ok = False
            continue
        if key in ("max_splits", "init_splits") and val < 0:
            ck.err("E0109", f"{where} must not be negative, got {val}", spans[key])
            ok = False
            continue
        if key == "member":
            inner = check_strategy(ck, val)
            if inner is None:
                ok = False
                continue
            if inner.kind in ENSEMBLES:
                ck.err("E0154", f"{where} must be exact, split(...) or local_search(...), got '{inner.kind}'",
                       spans[key], "help: an ensemble's members are single networks")
                ok = False
                continue
            out += [("member", inner.kind), ("member_options", inner.options)]
            continue
        if key == "batch":
            if isinstance(val, ast.Ref) and val.name == "full":
                val = None
            elif isinstance(val, ast.Num) and float(val.value) == int(val.value) and int(val.value) > 0:
                val = int(val.value)
            else:
                ck.err("E0108", f"{where} must be a positive integer or full, got {_describe(val)}", spans[key],
                       "help: for example batch=64 (Kurtz & Bah) or batch=full")
                ok = False
                continue
            if val is None:
                continue
        out.append((key, val))
    return StrategySpec(name, tuple(out), call.span) if ok else None


def check_combination(ck: _Checker, spec: StrategySpec, robust: Any, prune: Any) -> bool:
    """Robust and pruning tasks train single networks (exact, split, local_search), not ensembles (E0155): the
    certified accuracy and the pruned network are defined for one network.  The gradient strategies use the
    pruning groups and are checked by :func:`nnmip.check.sparse_spec.check_task`.
    """
    from nnmip.check import sparse_spec

    if spec.kind not in ENSEMBLES or (robust is None and not prune) or sparse_spec.is_gradient(spec.kind):
        return True
    what = "robust training" if robust is not None else "pruning"
    ck.err("E0155", f"strategy '{spec.kind}' cannot be combined with {what}", spec.span,
           "help: use strategy = exact, split(...) or local_search(...) for this task, or drop the robust/prune "
           "settings")
    return False
