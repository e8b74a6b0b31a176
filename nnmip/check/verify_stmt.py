"""Checks of ``verify`` statements: AST -> :class:`VerifySpec` (plain values and spans, nothing loaded yet).

::

    verify NAME {
        model = onnx("net.onnx")          # or npz("w.npz"); without it NAME is a network of the file
        domain = real[0, 1]               # optional input domain (default: the network's declared domain)
        input x in linf(0.05, around=[0.2, 0.4])       # around=[...], point("x.npy"), row("d.csv", 3), row(data, 3)
        input x in l1(0.5, around=point("x.npy"))      # several sets are intersected
        input x in box(lo=0.1, hi=[0.5, 0.9])
        property = classified(3)          # classified() = the class predicted at the first center
        tighten = lp                      # interval | symbolic | lp | lp_cuts | milp | auto (default)
        time_limit = 30
    }

Properties: ``classified(c)``, ``maximize([c_0, ..., c_m], below=t)``, ``minimize([...], above=t)``
(``below``/``above`` optional: without them the answer is the proven optimum), ``output_box(lo=..., hi=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnmip.errors import NO_SPAN, Span
from nnmip.syntax import ast

TIGHTEN = ("interval", "symbolic", "lp", "lp_cuts", "milp", "auto")   # lp_cuts: the API's "lp-cuts" (no '-' in names)
SETS = ("box", "linf", "l1", "l2", "halfspaces")
PROPS = ("classified", "maximize", "minimize", "output_box", "unsafe")
_REQ = object()


@dataclass(frozen=True)
class PointRef:
    """Where a vector comes from: ``values`` (a literal), ``file`` (point("x.npy")), ``row`` of a csv file or
    ``data`` row of a declared data set.
    """

    kind: str
    values: tuple[float, ...] = ()
    path: str = ""
    index: int = 0
    label: int | None = -1
    delimiter: str = ","
    data: str = ""
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class SetSpec:
    """A checked input-set declaration of a ``verify`` statement."""

    kind: str
    radius: float = 0.0
    center: PointRef | None = None
    lo: PointRef | None = None
    hi: PointRef | None = None
    A: Any = field(default=None, compare=False)          # halfspaces: A x <= b
    b: Any = field(default=None, compare=False)
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class PropSpec:
    """A checked property declaration of a ``verify`` statement."""

    kind: str
    label: int | None = None
    coef: PointRef | None = None
    threshold: float | None = None
    lo: PointRef | None = None
    hi: PointRef | None = None
    cases: tuple[tuple[Any, Any, Any], ...] = field(default=(), compare=False)   # unsafe: (G, h, strict) each
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class VerifySpec:
    """A checked ``verify`` statement."""

    name: str
    model: tuple[str, str] | None
    input_name: str | None
    sets: tuple[SetSpec, ...]
    prop: PropSpec
    domain: tuple[float, float] | None = None
    tighten: str = "auto"
    time_limit: float | None = None
    span: Span = field(default=NO_SPAN, compare=False)


def check_verify(ck: Any, s: ast.VerifyStmt, networks: dict[str, Any], data: dict[str, Any],
                 defined: dict[str, Any]) -> VerifySpec | None:
    """Check one ``verify`` statement with the checker ``ck`` (its ``err``/``bind``/``convert`` helpers)."""
    n0 = len(ck.diags)
    model: tuple[str, str] | None = None
    prop: PropSpec | None = None
    domain = None
    tighten = "auto"
    time_limit = None
    seen: set[str] = set()
    sets: list[SetSpec] = []
    input_names: set[str] = set()
    for it in s.items:
        if isinstance(it, ast.SetDecl):
            input_names.add(it.target)
            st = _set(ck, it.set, data)
            if st is not None:
                sets.append(st)
            continue
        if it.key in seen:
            ck.err("E0106", f"setting '{it.key}' is given twice", it.span)
            continue
        seen.add(it.key)
        v = it.value
        if it.key == "model":
            if isinstance(v, ast.Call) and v.func in ("onnx", "npz"):
                b = ck.bind(v, [("path", "str", _REQ)])
                if b is not None and ck.check_file(b["path"], b["__spans__"]["path"]):
                    model = (v.func, b["path"])
            else:
                ck.err("E0108", "model must be onnx(\"file.onnx\") or npz(\"weights.npz\")", _span(v))
        elif it.key == "property":
            prop = _prop(ck, v, data)
        elif it.key == "domain":
            if isinstance(v, ast.Domain) and v.kind == "real":
                lo, hi = float(v.lo.value), float(v.hi.value)
                if lo > hi:
                    ck.err("E0130", f"input domain real[{lo:g}, {hi:g}] is empty", v.span,
                           "help: write the lower bound first")
                else:
                    domain = (lo, hi)
            else:
                ck.err("E0108", "domain must be real[lo, hi]", _span(v))
        elif it.key == "tighten":
            if isinstance(v, ast.Ref) and v.name in TIGHTEN:
                tighten = v.name.replace("_", "-")
            else:
                ck.err("E0108", f"tighten must be one of {', '.join(TIGHTEN)}", _span(v))
        elif it.key == "time_limit":
            time_limit = ck.convert(v, "posnum", "verify", "time_limit")
        else:
            ck.err("E0105", f"unknown verify setting '{it.key}'", it.span,
                   "help: settings are model, property, domain, tighten, time_limit")
    net = networks.get(s.network)
    if model is not None and s.network in defined:
        ck.err("E0103", f"'{s.network}' is already defined; a verify statement with model = ... names a new model",
               s.span, "help: pick another name after 'verify'")
    elif model is None and net is None:
        if s.network not in defined:
            ck.err("E0102", f"unknown network '{s.network}'", s.span,
                   "help: define the network above, or add model = onnx(\"file.onnx\") to the statement")
        elif s.network in data:
            ck.err("E0108", f"'{s.network}' is a data set, not a network", s.span)
        return None
    input_name = None
    if net is not None:
        input_name = net.input
        for name in sorted(input_names - {net.input}):
            ck.err("E0102", f"network '{s.network}' has no input '{name}'", s.span,
                   f"help: its input is '{net.input}'")
    elif len(input_names) > 1:
        ck.err("E0102", f"the sets name several inputs ({', '.join(sorted(input_names))}); the model has one",
               s.span)
    if not sets and len(ck.diags) == n0:
        ck.err("E0104", f"verify '{s.network}' has no input set", s.span,
               "help: add for example: input x in linf(0.05, around=[...])")
    if prop is None and len(ck.diags) == n0:
        ck.err("E0104", f"verify '{s.network}' has no property", s.span,
               "help: add for example: property = classified(0)")
    if len(ck.diags) > n0 or prop is None:
        return None
    if prop.kind == "classified" and prop.label is None and not any(x.center is not None for x in sets):
        ck.err("E0104", "classified() without a class needs a set with a center", prop.span,
               "help: give the class: classified(3)")
        return None
    return VerifySpec(s.network, model, input_name, tuple(sets), prop, domain, tighten, time_limit, s.span)


def _span(v: Any) -> Span:
    return getattr(v, "span", NO_SPAN)


def _point(ck: Any, v: Any, data: dict[str, Any], what: str) -> PointRef | None:
    """A vector: a number, a list of numbers, point("file"), row("file.csv", i, ...) or row(data, i)."""
    if isinstance(v, ast.Num):
        return PointRef("values", (float(v.value),), span=v.span)
    if isinstance(v, ast.ListLit):
        vals = []
        for x in v.items:
            if not isinstance(x, ast.Num):
                ck.err("E0108", f"{what} must be a list of numbers", _span(x))
                return None
            vals.append(float(x.value))
        return PointRef("values", tuple(vals), span=v.span)
    if isinstance(v, ast.Call) and v.func == "point":
        b = ck.bind(v, [("path", "str", _REQ)])
        if b is None or not ck.check_file(b["path"], b["__spans__"]["path"]):
            return None
        return PointRef("file", path=b["path"], span=v.span)
    if isinstance(v, ast.Call) and v.func == "row":
        first = v.positional[0] if v.positional else None
        if isinstance(first, ast.Ref):
            b = ck.bind(v, [("data", "name", _REQ), ("index", "int", _REQ)])
            if b is None:
                return None
            if b["data"] not in data:
                ck.err("E0102", f"unknown data '{b['data']}'", b["__spans__"]["data"])
                return None
            if b["index"] < 0:
                ck.err("E0109", "row index must not be negative", b["__spans__"]["index"])
                return None
            return PointRef("data", data=b["data"], index=b["index"], span=v.span)
        b = ck.bind(v, [("path", "str", _REQ), ("index", "int", _REQ), ("label", "any", None),
                        ("delimiter", "str", ",")])
        if b is None or not ck.check_file(b["path"], b["__spans__"]["path"]):
            return None
        lab = b["label"]
        if lab is None:
            label: int | None = -1
        elif isinstance(lab, ast.Ref) and lab.name == "none":
            label = None
        elif isinstance(lab, ast.Num) and float(lab.value) == int(lab.value):
            label = int(lab.value)
        else:
            ck.err("E0108", "label must be a column index or none", _span(lab))
            return None
        if b["index"] < 0:
            ck.err("E0109", "row index must not be negative", b["__spans__"]["index"])
            return None
        return PointRef("row", path=b["path"], index=b["index"], label=label, delimiter=b["delimiter"],
                        span=v.span)
    ck.err("E0108", f"{what} must be a number, a list, point(\"file\") or row(...)", _span(v))
    return None


def _set(ck: Any, c: ast.Call, data: dict[str, Any]) -> SetSpec | None:
    if c.func not in SETS:
        ck.err("E0101", f"unknown input set '{c.func}'", c.span, f"help: choose one of {', '.join(SETS)}")
        return None
    if c.func == "box":
        b = ck.bind(c, [("lo", "any", None), ("hi", "any", None)])
        if b is None:
            return None
        if b["lo"] is None and b["hi"] is None:
            ck.err("E0104", "box needs lo or hi", c.span, "help: box(lo=0, hi=[1, 2, 3])")
            return None
        lo = _point(ck, b["lo"], data, "lo") if b["lo"] is not None else None
        hi = _point(ck, b["hi"], data, "hi") if b["hi"] is not None else None
        if (b["lo"] is not None and lo is None) or (b["hi"] is not None and hi is None):
            return None
        return SetSpec("box", lo=lo, hi=hi, span=c.span)
    if c.func == "halfspaces":
        b = ck.bind(c, [("A", "any", _REQ), ("b", "any", _REQ)])
        if b is None:
            return None
        A, rhs = _array(ck, b["A"], 2, "A"), _array(ck, b["b"], 1, "b")
        if A is None or rhs is None:
            return None
        if A.shape[0] != rhs.size:
            ck.err("E0121", f"halfspaces: A has {A.shape[0]} rows but b has {rhs.size} entries", c.span,
                   "help: one bound per row: A x <= b")
            return None
        return SetSpec("halfspaces", A=A, b=rhs, span=c.span)
    b = ck.bind(c, [("radius", "nonneg", _REQ), ("around", "any", _REQ)])
    if b is None:
        return None
    center = _point(ck, b["around"], data, "around")
    if center is None:
        return None
    return SetSpec(c.func, radius=float(b["radius"]), center=center, span=c.span)


def _prop(ck: Any, v: Any, data: dict[str, Any]) -> PropSpec | None:
    if not isinstance(v, ast.Call) or v.func not in PROPS:
        ck.err("E0150", "property must be classified(c), maximize([...]), minimize([...]), output_box(...) or "
               "unsafe(case(...), ...)", _span(v))
        return None
    if v.func == "unsafe":
        return _unsafe(ck, v)
    if v.func == "classified":
        b = ck.bind(v, [("label", "int", None)])
        if b is None:
            return None
        if b["label"] is not None and b["label"] < 0:
            ck.err("E0109", "a class must not be negative", b["__spans__"]["label"])
            return None
        return PropSpec("classified", label=b["label"], span=v.span)
    if v.func in ("maximize", "minimize"):
        key = "below" if v.func == "maximize" else "above"
        b = ck.bind(v, [("coef", "any", _REQ), (key, "num", None)])
        if b is None:
            return None
        coef = _point(ck, b["coef"], data, "the objective")
        if coef is None:
            return None
        return PropSpec(v.func, coef=coef, threshold=b[key], span=v.span)
    b = ck.bind(v, [("lo", "any", None), ("hi", "any", None)])
    if b is None:
        return None
    lo = _point(ck, b["lo"], data, "lo") if b["lo"] is not None else None
    hi = _point(ck, b["hi"], data, "hi") if b["hi"] is not None else None
    if lo is None and hi is None:
        ck.err("E0104", "output_box needs lo or hi", v.span)
        return None
    return PropSpec("output_box", lo=lo, hi=hi, span=v.span)


def _array(ck: Any, v: Any, ndim: int, what: str) -> Any:
    """A matrix (``ndim`` 2) or vector (1) of finite numbers: a list literal or ``load("file.npz", "key")``."""
    arr = None
    if isinstance(v, ast.ListLit):
        def plain(x: Any) -> Any:
            if isinstance(x, ast.ListLit):
                return [plain(i) for i in x.items]
            if isinstance(x, ast.Num):
                return x.value
            raise ValueError
        try:
            arr = np.array(plain(v), dtype=np.float64)
        except ValueError:
            arr = None
    elif isinstance(v, ast.Num) and ndim == 1:
        arr = np.array([v.value], dtype=np.float64)
    elif isinstance(v, ast.Call) and v.func == "load":
        b = ck.bind(v, [("path", "str", _REQ), ("key", "str", _REQ)])
        if b is None or not ck.check_file(b["path"], b["__spans__"]["path"]):
            return None
        try:
            with np.load(ck.resolve(b["path"])) as z:
                if b["key"] not in z.files:
                    ck.err("E0161", f"'{b['path']}' has no array '{b['key']}'", b["__spans__"]["key"],
                           f"help: it holds {', '.join(z.files) or 'nothing'}")
                    return None
                arr = np.asarray(z[b["key"]], dtype=np.float64)
        except (OSError, ValueError) as exc:
            ck.err("E0162", f"'{b['path']}' is not a readable .npz file: {exc}", b["__spans__"]["path"])
            return None
    if arr is not None and ndim == 1 and arr.ndim == 2 and 1 in arr.shape:
        arr = arr.ravel()
    if arr is None or arr.ndim != ndim or not np.isfinite(arr).all() or arr.size == 0:
        shape = "a matrix (a list of rows)" if ndim == 2 else "a vector"
        ck.err("E0108", f"{what} must be {shape} of finite numbers, or load(\"file.npz\", \"key\")", _span(v))
        return None
    return arr


def _unsafe(ck: Any, v: ast.Call) -> PropSpec | None:
    """``unsafe(case(G=..., h=..., strict=false), ...)``: the property fails where any case holds, a case holding
    when every row ``G_r . y + h_r <= 0`` (``< 0`` when strict) -- VNN-LIB's ``(or (and ...) ...)``.
    """
    if v.keywords or not v.positional:
        ck.err("E0108", "unsafe takes one or more case(G=..., h=...) arguments", v.span,
               "help: unsafe(case(G=[[1, -1]], h=[0])) fails where y0 - y1 <= 0")
        return None
    cases = []
    for c in v.positional:
        if not isinstance(c, ast.Call) or c.func != "case":
            ck.err("E0108", f"an argument of unsafe must be case(G=..., h=...), got {type(c).__name__.lower()}",
                   _span(c))
            return None
        b = ck.bind(c, [("G", "any", _REQ), ("h", "any", None), ("strict", "bool", False)])
        if b is None:
            return None
        G = _array(ck, b["G"], 2, "G")
        if G is None:
            return None
        h = np.zeros(G.shape[0]) if b["h"] is None else _array(ck, b["h"], 1, "h")
        if h is None:
            return None
        if h.size != G.shape[0]:
            ck.err("E0121", f"case: G has {G.shape[0]} rows but h has {h.size} entries", c.span)
            return None
        cases.append((G, h, np.full(G.shape[0], bool(b["strict"]))))
    return PropSpec("unsafe", cases=tuple(cases), span=v.span)
