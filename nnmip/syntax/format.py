"""AST -> canonical ``.nnmip`` text (``parse(format_program(p)) == p``)."""

from __future__ import annotations

import json

from nnmip.syntax import ast


def format_value(v: ast.Value | ast.KwArg) -> str:
    """Canonical text of a value or keyword argument."""
    if isinstance(v, ast.KwArg):
        return f"{v.key}={format_value(v.value)}"
    if isinstance(v, ast.Num):
        return _num(v.value)
    if isinstance(v, ast.Str):
        return json.dumps(v.value, ensure_ascii=False)
    if isinstance(v, ast.Ref):
        return v.name
    if isinstance(v, ast.Domain):
        return f"{v.kind}[{_num(v.lo.value)}, {_num(v.hi.value)}]"
    if isinstance(v, ast.ListLit):
        return "[" + ", ".join(format_value(i) for i in v.items) + "]"
    if isinstance(v, ast.Call):
        return f"{v.func}(" + ", ".join(format_value(a) for a in v.args) + ")"
    raise TypeError(f"not a value: {v!r}")


def _num(x: int | float) -> str:
    if isinstance(x, int):
        return str(x)
    text = repr(float(x))
    if "e" not in text and "." not in text and "n" not in text:
        text += ".0"
    return text


def format_stmt(s: ast.Stmt) -> str:
    """Canonical text of one statement."""
    if isinstance(s, ast.DataStmt):
        pad = " " * (len(f"data {s.name} = "))
        return f"data {s.name} = " + ("\n" + pad).join(format_value(c) for c in s.calls)
    if isinstance(s, ast.NetworkStmt):
        params = ", ".join(
            f"{p.name}: {p.dim}" + (f" {format_value(p.domain)}" if p.domain else "") for p in s.params)
        body = "".join(f"    {n.name} = {format_value(n.call)}\n" for n in s.nodes)
        return f"network {s.name}({params}) {{\n{body}}}"
    if isinstance(s, ast.TrainStmt):
        return f"train {s.network} on {s.data} {{\n{_items(s.items)}}}"
    if isinstance(s, ast.VerifyStmt):
        return f"verify {s.network} {{\n{_items(s.items)}}}"
    if isinstance(s, ast.CompressStmt):
        return f"compress {s.network} {{\n{_items(s.items)}}}"
    if isinstance(s, ast.SolveStmt):
        return f"solve with {format_value(s.solver)}"
    raise TypeError(f"not a statement: {s!r}")


def _items(items: tuple[ast.Setting | ast.SetDecl, ...]) -> str:
    out = []
    for it in items:
        if isinstance(it, ast.Setting):
            out.append(f"    {it.key} = {format_value(it.value)}\n")
        else:
            out.append(f"    {it.keyword} {it.target} in {format_value(it.set)}\n")
    return "".join(out)


def format_program(p: ast.Program) -> str:
    """Canonical text of a program (parsing it gives an equal AST)."""
    if not isinstance(p, ast.Program):
        from nnmip.errors import ParameterError

        raise ParameterError.of("p", f"must be a parsed program (nnmip.parse(text)), got {type(p).__name__}",
                                "call nnmip.parse(text) first", code="E0108")
    return "\n\n".join(format_stmt(s) for s in p.items) + "\n"
