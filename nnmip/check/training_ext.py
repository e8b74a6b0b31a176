"""Robust sets, pruning indicators and the weight regulariser of a training task (codes E0201-E0229).

The checker of :mod:`nnmip.check` hands every ``robust NAME in set(...)`` item and the ``prune``, ``alpha`` and
``lambda`` settings of a ``train`` statement to :func:`interpret`, which returns typed specs (stored on the
``TrainTask``) or records located diagnostics.

Syntax (see docs/pruning.md and docs/robust.md)::

    robust x in linf(0.1)            # also l1(r), l2(r), box(r_1, ..., r_n) or box([r_1, ..., r_n])
    prune = neurons(h1, cost=0.1)    # groups: weights(...), neurons(...), features(...), layers(...)
    prune = [features(budget=5), weights(h2, cost=0.01, M=1)]
    lambda = 0.1                     # lambda * sum_g (alpha ||W_g||^2 + (1 - alpha) z_g) over the groups
    alpha = 0.5
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import numpy.typing as npt

from nnmip.errors import NO_SPAN, Span
from nnmip.ir.network import Network
from nnmip.ir.ops import Dense, Input, Sign, Step
from nnmip.ir.train_spec import PruneConfig, PruneSpec, RobustSpec
from nnmip.syntax import ast

FloatArray = npt.NDArray[np.float64]

#: settings of a ``train`` statement interpreted here rather than by the core checker
KEYS = ("prune", "alpha", "lambda")
SET_KINDS = ("linf", "l1", "l2", "box")
PRUNE_KINDS = ("weights", "neurons", "features", "layers")


@dataclass
class Extension:
    """The robust set and pruning declarations of a training task."""

    robust: RobustSpec | None = None
    prune: tuple[PruneSpec, ...] = ()
    alpha: float = 0.0
    lam: float = 0.0


def prune_config(task: Any) -> PruneConfig | None:
    """The :class:`PruneConfig` of a checked ``TrainTask`` (``None`` when it declares no pruning)."""
    specs = tuple(getattr(task, "prune", ()) or ())
    if not specs:
        return None
    return PruneConfig(specs, float(getattr(task, "alpha", 0.0)), float(getattr(task, "lam", 0.0)))


# ------------------------------------------------------------------------------------------------------------
def interpret(ck: Any, s: ast.TrainStmt, net: Network | None, *, gradient: bool = False) -> Extension | None:
    """Interpret the robust sets and pruning settings of ``s``; ``None`` when a diagnostic was recorded.

    ``gradient``: the task is trained by a gradient strategy (``nnmip.check.sparse_spec``), whose groups need no
    cost or budget and whose neurons may be relu units.
    """
    n_before = len(ck.diags)
    ext = Extension()
    seen: dict[str, Span] = {}
    prune_val: ast.Setting | None = None
    alpha_set: ast.Setting | None = None
    lam_set: ast.Setting | None = None
    for it in s.items:
        if isinstance(it, ast.SetDecl):
            if it.keyword != "robust":
                continue
            if ext.robust is not None:
                ck.err("E0205", "a training task takes one robust set", it.span,
                       f"help: the first one is at line {ext.robust.span.line}")
                continue
            ext.robust = _robust(ck, it, net)
            continue
        if it.key not in KEYS:
            continue
        if it.key in seen:
            ck.err("E0106", f"setting '{it.key}' is given twice", it.span,
                   "help: give several pruning declarations as a list: prune = [neurons(h1, cost=0.1), ...]"
                   if it.key == "prune" else f"help: the first one is at line {seen[it.key].line}")
            continue
        seen[it.key] = it.span
        if it.key == "prune":
            prune_val = it
        elif it.key == "alpha":
            alpha_set = it
        else:
            lam_set = it
    if alpha_set is not None:
        a = ck.convert(alpha_set.value, "nonneg", "train", "alpha")
        if a is not None and a >= 1.0:
            ck.err("E0217", f"alpha must lie in [0, 1), got {a:g}", _span(alpha_set.value),
                   "help: alpha weighs the squared weights against the indicators: lambda * "
                   "(alpha ||W_g||^2 + (1 - alpha) z_g)")
        elif a is not None:
            ext.alpha = float(a)
    if lam_set is not None:
        lam = ck.convert(lam_set.value, "nonneg", "train", "lambda")
        if lam is not None:
            ext.lam = float(lam)
    if prune_val is not None:
        items = prune_val.value.items if isinstance(prune_val.value, ast.ListLit) else (prune_val.value,)
        specs = []
        for v in items:
            sp = _prune(ck, v, net, ext.lam, gradient)
            if sp is not None:
                specs.append(sp)
        ext.prune = tuple(specs)
    elif lam_set is not None or alpha_set is not None:
        which = lam_set if lam_set is not None else alpha_set
        assert which is not None
        ck.err("E0218", f"'{which.key}' needs a pruning declaration", which.span,
               "help: add prune = neurons(...), weights(...), features(...) or layers(...): lambda and alpha "
               "weigh the groups' indicators and squared weights")
    if alpha_set is not None and lam_set is None and prune_val is not None:
        ck.err("E0218", "'alpha' has no effect without 'lambda'", alpha_set.span,
               "help: set lambda > 0: the objective adds lambda * (alpha ||W_g||^2 + (1 - alpha) z_g)")
    return ext if len(ck.diags) == n_before else None


def _span(v: Any) -> Span:
    return getattr(v, "span", NO_SPAN)


def _robust(ck: Any, it: ast.SetDecl, net: Network | None) -> RobustSpec | None:
    call = it.set
    if call.func not in SET_KINDS:
        ck.err("E0202", f"unknown robustness set '{call.func}'", call.span,
               "help: choose linf(r), l1(r), l2(r) or box(r_1, ..., r_n)")
        return None
    if net is not None:
        if it.target not in net.graph:
            ck.err("E0201", f"robust set on unknown node '{it.target}'", it.span,
                   f"help: the input of network '{net.name}' is '{net.input}'")
            return None
        if not isinstance(net.op(it.target), Input):
            ck.err("E0201", f"robust set on '{it.target}', which is not an input of network '{net.name}'",
                   it.span, f"help: perturbations act on the data: write robust {net.input} in ...")
            return None
    nums: list[float] = []
    for a in call.args:
        if isinstance(a, ast.KwArg):
            ck.err("E0105", f"'{call.func}' takes no keyword arguments", a.span,
                   f"help: write {call.func}(r)" if call.func != "box" else "help: write box(r_1, ..., r_n)")
            return None
        vals = a.items if isinstance(a, ast.ListLit) and call.func == "box" else (a,)
        for v in vals:
            if not isinstance(v, ast.Num) or not math.isfinite(float(v.value)):
                ck.err("E0108", f"radii of '{call.func}' must be finite numbers", _span(v))
                return None
            if float(v.value) < 0:
                ck.err("E0203", f"radius of '{call.func}' must not be negative, got {v.value}", v.span,
                       "help: a radius is a distance, e.g. linf(0.1)")
                return None
            nums.append(float(v.value))
    if call.func == "box":
        d = net.dim(it.target) if net is not None else len(nums)
        if len(nums) != d:
            ck.err("E0204", f"box set on '{it.target}' has {len(nums)} radii but the input has {d} features",
                   call.span, f"help: give one radius per feature ({d}), or use linf(r) for equal radii")
            return None
        spec = RobustSpec(it.target, "box", 0.0, tuple(nums), it.span)
    else:
        if len(nums) != 1:
            ck.err("E0204", f"'{call.func}' takes one radius, got {len(nums)}", call.span,
                   f"help: write {call.func}(0.1)")
            return None
        spec = RobustSpec(it.target, call.func, nums[0], (), it.span)
    if net is not None:
        _robust_structure(ck, it, net)
    return spec


def _robust_structure(ck: Any, it: ast.SetDecl, net: Network) -> None:
    """Robust training protects the first binary layer: input -> dense -> step/sign."""
    users = [n for n in net.nodes if net.inputs_of(n) and net.inputs_of(n)[0] == it.target]
    dense = users[0] if users else None
    act = None
    if dense is not None and isinstance(net.op(dense), Dense):
        nxt = [n for n in net.nodes if net.inputs_of(n) and net.inputs_of(n)[0] == dense]
        act = nxt[0] if nxt else None
    if act is None or not isinstance(net.op(act), (Step, Sign)):
        ck.err("E0206", f"robust training needs a dense layer on '{it.target}' followed by step(...) or sign(...)",
               it.span, "help: the robust counterpart makes the first binary layer's activation constant over "
               "the set; with other layers use 'nnmip verify' on the trained network instead")


def _prune(ck: Any, v: ast.Value, net: Network | None, lam: float, gradient: bool = False) -> PruneSpec | None:
    if not isinstance(v, ast.Call) or v.func not in PRUNE_KINDS:
        what = f"'{v.func}'" if isinstance(v, ast.Call) else "this value"
        ck.err("E0210", f"unknown pruning group {what}", _span(v),
               "help: prune = weights(...), neurons(...), features(...) or layers(...)")
        return None
    names: list[tuple[str, Span]] = []
    kw: dict[str, Any] = {"cost": 0.0, "budget": None, "M": None}
    types = {"cost": "nonneg", "budget": "int", "M": "posnum"}
    for a in v.args:
        if isinstance(a, ast.KwArg):
            if a.key not in types:
                ck.err("E0105", f"'{v.func}' has no argument '{a.key}'", a.span,
                       f"help: '{v.func}' takes layer names and cost=..., budget=..., M=...")
                return None
            conv = ck.convert(a.value, types[a.key], v.func, a.key)
            if conv is None:
                return None
            if a.key == "budget" and conv < 0:
                ck.err("E0109", f"argument 'budget' of '{v.func}' must not be negative, got {conv}", a.span)
                return None
            kw[a.key] = conv
        elif isinstance(a, ast.Ref):
            names.append((a.name, a.span))
        else:
            ck.err("E0108", f"'{v.func}' takes layer names, got {_value_kind(a)}", _span(a),
                   f"help: for example {v.func}(h1, cost=0.1)")
            return None
    if kw["budget"] is None and kw["cost"] == 0.0 and lam == 0.0 and not gradient:
        ck.err("E0214", f"pruning '{v.func}' has neither a cost nor a budget", v.span,
               "help: add cost=0.1 (per kept group), budget=5 (kept groups at most), or set lambda")
        return None
    if net is None:
        return PruneSpec(v.func, tuple(n for n, _ in names), float(kw["cost"]), kw["budget"], kw["M"], v.span)
    layers = _prune_targets(ck, v, net, names)
    if layers is None:
        return None
    spec = PruneSpec(v.func, layers, float(kw["cost"]), kw["budget"], kw["M"], v.span)
    count = group_count(net, spec)
    if spec.budget is not None and spec.budget > count:
        ck.err("E0212", f"budget {spec.budget} is larger than the {count} groups of '{v.func}'", v.span,
               f"help: keep at most {count} groups, or drop the budget")
        return None
    _prunable(ck, net, spec, gradient)
    return spec


def _value_kind(a: Any) -> str:
    return type(a).__name__.lower()


def _prune_targets(ck: Any, v: ast.Call, net: Network, names: list[tuple[str, Span]]) -> tuple[str, ...] | None:
    trainable = [n for n in net.dense_nodes() if net.op(n).trainable]  # type: ignore[attr-defined]
    if v.func == "features":
        for n, sp in names:
            if n != net.input:
                ck.err("E0211", f"features(...) prunes inputs, but '{n}' is not the input of '{net.name}'", sp,
                       f"help: write features({net.input}, ...) or features(...)")
                return None
        return (net.input,)
    if not names:
        if v.func == "layers":
            ck.err("E0211", "layers(...) needs the names of the layers to prune", v.span,
                   "help: for example layers(h2, cost=1)")
            return None
        if v.func == "neurons":
            hidden = [n for n in trainable if net.dense_users(_act_of(net, n))] if trainable else []
            return tuple(hidden)
        return tuple(trainable)
    out = []
    for n, sp in names:
        if n not in net.graph:
            ck.err("E0211", f"unknown layer '{n}' in {v.func}(...)", sp,
                   f"help: dense layers of '{net.name}': {', '.join(net.dense_nodes())}")
            return None
        if not isinstance(net.op(n), Dense):
            ck.err("E0211", f"'{n}' is not a dense layer", sp,
                   f"help: name the dense layer that computes the units: {', '.join(net.dense_nodes())}")
            return None
        out.append(n)
    return tuple(out)


def _act_of(net: Network, dense: str) -> str:
    nxt = [n for n in net.nodes if net.inputs_of(n) and net.inputs_of(n)[0] == dense]
    return nxt[0] if nxt else dense


def group_count(net: Network, spec: PruneSpec) -> int:
    """How many groups (indicators) a declaration creates."""
    if spec.kind == "features":
        return net.n_inputs
    if spec.kind == "layers":
        return len(spec.layers)
    total = 0
    for n in spec.layers:
        op = net.op(n)
        assert isinstance(op, Dense)
        total += op.n_out if spec.kind == "neurons" else op.n_out * op.n_in
    return total


def _fixed_nonzero(dom: Any) -> bool:
    return dom is not None and dom.kind == "fixed" and bool(np.any(dom.value != 0))


def _excludes_zero(dom: Any) -> bool:
    return dom is not None and dom.kind != "fixed" and bool(np.any((dom.lo > 0) | (dom.hi < 0)))


def _prunable(ck: Any, net: Network, spec: PruneSpec, gradient: bool = False) -> None:
    """Every parameter of every group must be able to be zero, and a group may not cut the output off."""
    params: list[tuple[str, Any, str]] = []   # (layer, domain, what)
    if spec.kind == "features":
        for d in net.dense_users(net.input):
            params.append((d, net.op(d).weights, "weights"))  # type: ignore[attr-defined]
    for n in spec.layers if spec.kind != "features" else ():
        op = net.op(n)
        assert isinstance(op, Dense)
        params.append((n, op.weights, "weights"))
        if spec.kind in ("neurons", "layers"):
            params.append((n, op.bias, "bias"))
        if spec.kind == "neurons":
            users = net.dense_users(_act_of(net, n))
            if not users:
                ck.err("E0213", f"cannot prune neurons of '{n}': the output depends on every one of them",
                       spec.span, "help: prune hidden layers' neurons, or the output layer's weights with "
                       f"weights({n}, ...)")
                return
            if not isinstance(net.op(_act_of(net, n)), (Step, Sign)) and not gradient:
                ck.err("E0216", f"neurons of '{n}' are not followed by step(...) or sign(...)", spec.span,
                       "help: neuron pruning forces the pruned unit's binary activation off")
                return
            for u in users:
                params.append((u, net.op(u).weights, "outgoing weights"))  # type: ignore[attr-defined]
        if spec.kind == "layers" and _cuts_output(net, n):
            ck.err("E0213", f"cannot prune layer '{n}': the output depends on it entirely", spec.span,
                   "help: every path from the input to the output passes through it, so a pruned layer "
                   "leaves a constant network; prune its neurons(...) or weights(...) instead")
            return
    for layer, dom, what in params:
        if _fixed_nonzero(dom):
            ck.err("E0216", f"cannot prune {what} of '{layer}': they are fixed and not zero", spec.span,
                   "help: give the layer a domain such as weights=real[-1, 1], bias=real[-1, 1]")
            return
        if _excludes_zero(dom):
            ck.err("E0216", f"cannot prune {what} of '{layer}': their domain does not contain 0", spec.span,
                   "help: a pruned group has all its weights at 0; widen the domain to include 0")
            return


def _cuts_output(net: Network, node: str) -> bool:
    g = nx.DiGraph(net.graph)
    g.remove_node(node)
    return not nx.has_path(g, net.input, net.output) if net.output != node else True
