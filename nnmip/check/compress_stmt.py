"""The ``compress`` statement: which network, over which domain, how stability is proven, where the result goes.

``nnmip compress FILE`` runs it (the command line's options override its settings); in Python the same is
:func:`nnmip.drivers.compress.compress` followed by :func:`nnmip.io.onnx.export_onnx` / ``save_npz``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nnmip.errors import NO_SPAN, Span
from nnmip.syntax import ast

METHODS = ("interval", "symbolic", "lp", "lp_cuts", "milp")   # lp_cuts: the API's "lp-cuts"


@dataclass(frozen=True)
class CompressSpec:
    """A checked ``compress`` statement."""

    network: str
    domain: tuple[float, float] | None = None
    method: str = "milp"
    outputs: tuple[str, ...] = ()
    prove: bool = False
    samples: int = 10_000
    time_limit: float | None = None
    span: Span = field(default=NO_SPAN, compare=False)


def check_compress(ck: Any, s: ast.CompressStmt, networks: dict[str, Any], defined: dict[str, Any]
                   ) -> CompressSpec | None:
    """Check one ``compress`` statement with the checker ``ck``."""
    n0 = len(ck.diags)
    if s.network not in networks and s.network not in defined:
        ck.err("E0102", f"unknown network '{s.network}'", s.span, "help: define the network above")
    vals: dict[str, Any] = {}
    seen: set[str] = set()
    for it in s.items:
        if it.key in seen:
            ck.err("E0106", f"setting '{it.key}' is given twice", it.span)
            continue
        seen.add(it.key)
        v = it.value
        if it.key == "domain":
            if isinstance(v, ast.Domain) and v.kind == "real" and float(v.lo.value) <= float(v.hi.value):
                vals["domain"] = (float(v.lo.value), float(v.hi.value))
            else:
                ck.err("E0108", "domain must be real[lo, hi] with lo <= hi", getattr(v, "span", s.span))
        elif it.key == "method":
            if isinstance(v, ast.Ref) and v.name in METHODS:
                vals["method"] = v.name.replace("_", "-")
            else:
                ck.err("E0108", f"method must be one of {', '.join(METHODS)}", getattr(v, "span", s.span))
        elif it.key == "output":
            items = v.items if isinstance(v, ast.ListLit) else (v,)
            outs = [i.value for i in items if isinstance(i, ast.Str)]
            if len(outs) != len(items) or not outs:
                ck.err("E0108", 'output must be a file name or a list of them: "small.onnx", "small.npz"',
                       getattr(v, "span", s.span))
            elif any(not str(o).lower().endswith((".onnx", ".npz")) for o in outs):
                ck.err("E0601", "unknown output format: compress writes .onnx or .npz", getattr(v, "span", s.span),
                       "help: use .onnx or .npz")
            else:
                vals["outputs"] = tuple(str(o) for o in outs)
        elif it.key in ("prove", "samples", "time_limit"):
            typ = {"prove": "bool", "samples": "posint", "time_limit": "posnum"}[it.key]
            x = ck.convert(v, typ, "compress", it.key)
            if x is not None:
                vals[it.key] = x
        else:
            ck.err("E0105", f"unknown compress setting '{it.key}'", it.span,
                   "help: settings are domain, method, output, prove, samples, time_limit")
    if len(ck.diags) > n0 or s.network not in networks:
        return None
    return CompressSpec(s.network, span=s.span, **vals)
