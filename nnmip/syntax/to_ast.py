"""Lark tree -> :mod:`nnmip.syntax.ast`.  Builds nodes only and never validates (that is ``check``'s job)."""

from __future__ import annotations

import json
import re
from typing import Any

from lark import Token, Transformer, v_args

from nnmip.errors import NnmipSyntaxError, Span
from nnmip.syntax import ast

MAX_INT_DIGITS = 30        # larger integer literals are refused (E0004)
MAX_NUMBER_CHARS = 400     # so are longer real literals


@v_args(inline=True, meta=True)
class ToAst(Transformer[Token, ast.Program]):
    """One method per non-inlined grammar rule."""

    def __init__(self, file: str = "") -> None:
        super().__init__()
        self.file = file

    def _span(self, meta: Any) -> Span:
        return Span.of(meta, self.file)

    # values
    def number(self, meta: Any, tok: Token) -> ast.Num:
        text = str(tok)
        digits = len(text.lstrip("+-"))
        if (tok.type == "INT_NUMBER" and digits > MAX_INT_DIGITS) or digits > MAX_NUMBER_CHARS:
            raise NnmipSyntaxError.at("E0004", f"number with {digits} characters is too long", self._span(meta),
                                      [f"help: integers have at most {MAX_INT_DIGITS} digits; write large or "
                                       "precise values as reals (1e30)"])
        value: int | float = int(text) if tok.type == "INT_NUMBER" else float(text)
        return ast.Num(value, span=self._span(meta))

    def string(self, meta: Any, tok: Token) -> ast.Str:
        # JSON escapes (the formatter writes the same ones): \" \\ \/ \b \f \n \r \t \uXXXX
        text = str(tok)
        try:
            value = json.loads(text, strict=False)
        except json.JSONDecodeError as exc:
            pos = exc.pos - 1 if 0 < exc.pos < len(text) and text[exc.pos - 1:exc.pos + 1] == "\\u" else exc.pos
            col = int(tok.column or 0) + pos
            bad = text[pos:pos + 2]
            raise NnmipSyntaxError.at(
                "E0001", f"invalid escape '{bad}' in string", Span(int(tok.line or 0), col, int(tok.line or 0),
                                                                    col + len(bad), self.file),
                ["help: strings know the escapes \\\" \\\\ \\/ \\n \\t \\r \\b \\f and \\uXXXX; "
                 "write a backslash as \\\\ or use / in paths"]) from None
        if any("\ud800" <= ch <= "\udfff" for ch in value):
            pos = _lone_surrogate(text)
            col = int(tok.column or 0) + pos
            raise NnmipSyntaxError.at(
                "E0001", f"escape '{text[pos:pos + 6]}' in string is half of a UTF-16 surrogate pair",
                Span(int(tok.line or 0), col, int(tok.line or 0), col + 6, self.file),
                ["help: write the character itself, or a whole pair such as \\ud83d\\ude00"])
        return ast.Str(value, span=self._span(meta))

    def ref(self, meta: Any, tok: Token) -> ast.Ref:
        return ast.Ref(str(tok), span=self._span(meta))

    def domain(self, meta: Any, kind: Token, lo: ast.Num, hi: ast.Num) -> ast.Domain:
        return ast.Domain(str(kind), lo, hi, span=self._span(meta))

    def list(self, meta: Any, *items: ast.Value | None) -> ast.ListLit:
        return ast.ListLit(tuple(i for i in items if i is not None), span=self._span(meta))

    def kwarg(self, meta: Any, key: Token, value: ast.Value) -> ast.KwArg:
        return ast.KwArg(str(key), value, span=self._span(meta))

    def call(self, meta: Any, func: Token, *args: ast.Value | ast.KwArg | None) -> ast.Call:
        return ast.Call(str(func), tuple(a for a in args if a is not None), span=self._span(meta))

    # statements
    def data_stmt(self, meta: Any, name: Token, *calls: ast.Call) -> ast.DataStmt:
        return ast.DataStmt(str(name), tuple(calls), span=self._span(meta))

    def param(self, meta: Any, name: Token, dim: Token, domain: ast.Domain | ast.Call | None = None) -> ast.Param:
        if len(str(dim).lstrip("+-")) > MAX_INT_DIGITS:
            raise NnmipSyntaxError.at("E0004", f"input width with {len(str(dim))} digits is too long",
                                      self._span(meta), [f"help: integers have at most {MAX_INT_DIGITS} digits"])
        return ast.Param(str(name), int(dim), domain, span=self._span(meta))

    def node_def(self, meta: Any, name: Token, call: ast.Call) -> ast.NodeDef:
        return ast.NodeDef(str(name), call, span=self._span(meta))

    def network_stmt(self, meta: Any, name: Token, *rest: Any) -> ast.NetworkStmt:
        params = tuple(r for r in rest if isinstance(r, ast.Param))
        nodes = tuple(r for r in rest if isinstance(r, ast.NodeDef))
        return ast.NetworkStmt(str(name), params, nodes, span=self._span(meta))

    def setting(self, meta: Any, key: Token, value: ast.Value) -> ast.Setting:
        return ast.Setting(str(key), value, span=self._span(meta))

    def robust_set(self, meta: Any, target: Token, call: ast.Call) -> ast.SetDecl:
        return ast.SetDecl("robust", str(target), call, span=self._span(meta))

    def input_set(self, meta: Any, target: Token, call: ast.Call) -> ast.SetDecl:
        return ast.SetDecl("input", str(target), call, span=self._span(meta))

    def train_stmt(self, meta: Any, network: Token, data: Token, *items: Any) -> ast.TrainStmt:
        return ast.TrainStmt(str(network), str(data), tuple(items), span=self._span(meta))

    def verify_stmt(self, meta: Any, network: Token, *items: Any) -> ast.VerifyStmt:
        return ast.VerifyStmt(str(network), tuple(items), span=self._span(meta))

    def compress_stmt(self, meta: Any, network: Token, *items: Any) -> ast.CompressStmt:
        return ast.CompressStmt(str(network), tuple(items), span=self._span(meta))

    def solve_stmt(self, meta: Any, solver: ast.Call | ast.Ref) -> ast.SolveStmt:
        return ast.SolveStmt(solver, span=self._span(meta))

    def start(self, meta: Any, *items: ast.Stmt) -> ast.Program:
        return ast.Program(tuple(items), file=self.file)


def _lone_surrogate(text: str) -> int:
    r"""Offset in the quoted ``text`` of the first ``\uXXXX`` escape that is a surrogate without its partner."""
    escapes = [(m.start(), m.group(1)) for m in re.finditer(r"\\(u[0-9a-fA-F]{4}|.)", text)]
    i = 0
    while i < len(escapes):
        pos, esc = escapes[i]
        code = int(esc[1:], 16) if len(esc) == 5 else -1
        if 0xD800 <= code <= 0xDBFF and i + 1 < len(escapes) and escapes[i + 1][0] == pos + 6:
            nxt = escapes[i + 1][1]
            if len(nxt) == 5 and 0xDC00 <= int(nxt[1:], 16) <= 0xDFFF:
                i += 2
                continue
        if 0xD800 <= code <= 0xDFFF:
            return pos
        i += 1
    return 0
