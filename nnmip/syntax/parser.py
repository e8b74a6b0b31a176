"""Parse ``.nnmip`` text with one cached LALR parser; syntax errors become located ``NnmipSyntaxError``."""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path
from typing import Any

from lark import Lark, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.exceptions import VisitError

from nnmip.errors import Diagnostic, NnmipError, NnmipSyntaxError, ParameterError, Span, check_path
from nnmip.syntax import ast
from nnmip.syntax.to_ast import ToAst

# Friendly names for terminals in "expected ..." notes.
_TOKEN_NAMES = {
    "NAME": "a name", "INT_NUMBER": "an integer", "FLOAT_NUMBER": "a number", "STRING": "a string",
    "LPAR": "'('", "RPAR": "')'", "LBRACE": "'{'", "RBRACE": "'}'", "LSQB": "'['", "RSQB": "']'",
    "COMMA": "','", "EQUAL": "'='", "COLON": "':'", "_SEMI": "';'", "REAL_KW": "'real'", "INT_KW": "'int'",
    "DATA": "'data'", "NETWORK": "'network'", "TRAIN": "'train'", "VERIFY": "'verify'", "SOLVE": "'solve'",
    "WITH": "'with'", "ON": "'on'", "IN": "'in'", "ROBUST": "'robust'", "INPUT": "'input'", "$END": "end of file",
}


#: where the grammar sits inside an installed package (the wheel force-includes ``grammar/nnmip.lark`` there)
PACKAGE_GRAMMAR = ("grammar", "nnmip.lark")
#: where it sits in the source tree, relative to the repository root
SOURCE_GRAMMAR = ("grammar", "nnmip.lark")


def _package_root() -> Any:
    return resources.files("nnmip")


def grammar_file() -> Any:
    """The grammar file the parser reads: the installed package's copy (wheel), else the source tree's."""
    try:
        res = _package_root().joinpath(*PACKAGE_GRAMMAR)
        if res.is_file():
            return res
    except (FileNotFoundError, ModuleNotFoundError, NotADirectoryError):  # pragma: no cover - depends on the install
        pass
    return Path(__file__).resolve().parents[2].joinpath(*SOURCE_GRAMMAR)


def grammar_text() -> str:
    """The text of :func:`grammar_file`."""
    return str(grammar_file().read_text(encoding="utf-8"))


@functools.cache
def _parser() -> Lark:
    return Lark(grammar_text(), parser="lalr", strict=True, propagate_positions=True, maybe_placeholders=True)


def parse(text: str, file: str = "<input>") -> ast.Program:
    """Parse ``text`` into a :class:`~nnmip.syntax.ast.Program`; raise ``NnmipSyntaxError`` when it is not valid."""
    if not isinstance(text, str):
        raise ParameterError.of("text", f"must be the program text (a str), got {type(text).__name__}",
                                "read the file first, or call parse_file(path)", code="E0108")
    if not isinstance(file, str):
        raise ParameterError.of("file", f"must be a str naming the source, got {type(file).__name__}",
                                code="E0108")
    _check_size(text, file)
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text, file) from None
    try:
        program = ToAst(file).transform(tree)
    except VisitError as exc:  # ToAst refuses numbers that are too long
        orig = exc.orig_exc
        if isinstance(orig, NnmipError):
            raise orig.with_source(text) from None
        raise
    return ast.Program(program.items, file=file, source=text)


MAX_FILE_BYTES = 16 * 1024 * 1024   # larger .nnmip files are refused (E0005)
MAX_DEPTH = 100            # brackets nested deeper are refused (E0005)
MAX_NUMBERS = 100_000      # so are files with more number literals (E0005): large arrays belong in .npz files
_NUMBER = re.compile(r"(?<![A-Za-z_0-9.])[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _check_size(text: str, file: str) -> None:
    """Refuse, before parsing, nesting deeper than ``MAX_DEPTH`` and more than ``MAX_NUMBERS`` numbers."""
    depth, line, col, in_str, in_comment = 0, 1, 0, False, False
    prev = ""
    for ch in text:
        col += 1
        if ch == "\n":
            line, col, in_comment = line + 1, 0, False
        elif in_comment:
            pass
        elif in_str:
            if ch == '"' and prev != "\\":
                in_str = False
        elif ch == "#":
            in_comment = True
        elif ch == '"':
            in_str = True
        elif ch in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise NnmipSyntaxError.at("E0005", f"brackets nested more than {MAX_DEPTH} deep",
                                          Span(line, col, line, col + 1, file),
                                          [f"help: nnmip reads at most {MAX_DEPTH} nested brackets; flatten the "
                                           "value or load it from an .npz file with load(...)"], source=text)
        elif ch in ")]}":
            depth = max(depth - 1, 0)
        prev = "" if prev == "\\" and ch == "\\" else ch
    if len(text) > 2 * MAX_NUMBERS:
        count = sum(1 for _ in _NUMBER.finditer(text))
        if count > MAX_NUMBERS:
            raise NnmipSyntaxError.at("E0005", f"the file holds {count} numbers, more than {MAX_NUMBERS}",
                                      Span(file=file),
                                      ["help: put large arrays in an .npz file and read them with "
                                       "load(\"file.npz\", \"key\")"])


def parse_file(path: str | Path) -> ast.Program:
    """Parse a ``.nnmip`` file; errors carry the file name and the source text."""
    check_path("path", path)
    p = Path(path)
    try:
        if p.is_file() and p.stat().st_size > MAX_FILE_BYTES:
            raise NnmipSyntaxError.at("E0005", f"file '{p}' has {p.stat().st_size} bytes, more than "
                                      f"{MAX_FILE_BYTES}", Span(file=str(path)),
                                      ["help: a .nnmip file describes the task; large arrays belong in .npz files"])
        if p.is_dir():
            raise NnmipError.at("E0002", f"'{p}' is a folder, not a .nnmip file", Span(file=str(path)),
                                ["help: name the .nnmip file inside the folder"])
        text = p.read_text(encoding="utf-8-sig")     # a byte-order mark, as some editors write, is not text
    except FileNotFoundError:
        raise NnmipError.at("E0002", f"file '{p}' does not exist", Span(file=str(path)),
                            ["help: check the path"]) from None
    except UnicodeDecodeError as exc:
        raise NnmipError.at("E0003", f"file '{p}' is not UTF-8 text: {exc.reason}", Span(file=str(path)),
                            ["help: save the file as UTF-8"]) from None
    except OSError as exc:
        raise NnmipError.at("E0002", f"file '{p}' cannot be read: {exc.strerror}", Span(file=str(path)),
                            ["help: check the path and its permissions"]) from None
    return parse(text, str(path))


def _expected(names: set[str] | frozenset[str]) -> str:
    pretty = sorted({_TOKEN_NAMES.get(n, f"'{n.lower()}'") for n in names})
    if len(pretty) > 8:
        pretty = pretty[:8] + ["..."]
    return ", ".join(pretty)


def _syntax_error(exc: UnexpectedInput, text: str, file: str) -> NnmipSyntaxError:
    line, col = int(exc.line or 0), int(exc.column or 0)
    notes: list[str] = []
    if isinstance(exc, UnexpectedCharacters):
        pos = int(exc.pos_in_stream or 0)
        ch = text[pos] if pos < len(text) else ""
        msg = f"unexpected character {ch!r}"
        if ch == "'":
            notes.append("help: strings use double quotes, e.g. \"data.csv\"")
        elif ch == '"':
            notes.append("help: a string must end with '\"' on the same line")
        span = Span(line, col, line, col + 1, file)
    elif isinstance(exc, UnexpectedEOF):
        msg = "unexpected end of file"
        lines = text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
        span = Span(line, col, line, col + 1, file)
        if exc.expected:
            notes.append(f"help: expected {_expected(set(exc.expected))}")
    elif isinstance(exc, UnexpectedToken):
        tok = exc.token
        if tok.type == "$END":
            msg = "unexpected end of file"
            lines = text.splitlines() or [""]
            line, col = len(lines), len(lines[-1]) + 1
            span = Span(line, col, line, col + 1, file)
        else:
            kind = {"NAME": "name ", "INT_NUMBER": "number ", "FLOAT_NUMBER": "number ", "STRING": "string "}
            msg = f"unexpected {kind.get(tok.type, '')}{str(tok)!r}"
            span = Span(line, col, int(tok.end_line or line), int(tok.end_column or col + 1), file)
        if exc.expected:
            notes.append(f"help: expected {_expected(set(exc.expected))}")
    else:  # pragma: no cover
        msg = "syntax error"
        span = Span(line, col, line, col + 1, file)
    return NnmipSyntaxError(msg, diagnostics=[Diagnostic("E0001", msg, span, tuple(notes))], source=text)
