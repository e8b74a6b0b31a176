"""VNN-LIB 1.0 properties: ``(declare-const X_i Real)``, ``(declare-const Y_j Real)`` and ``(assert ...)``.

The assertions describe the *unsafe* set: a counterexample is an input ``X`` in the input constraints whose
network output ``Y`` satisfies the output constraints.  Supported formulas: ``and``, ``or`` and the linear
comparisons ``<=``, ``>=``, ``<``, ``>``, ``=`` of terms built from numbers, variables, ``+``, ``-`` (also
unary) and ``*`` by a constant.  A comparison may speak of inputs or of outputs, not both.

:func:`parse_vnnlib` returns the assertion in disjunctive normal form, grouped by input region: a list of
:class:`VnnCase`, each an input box (plus any linear input constraints) and the output cases (a
:class:`nnmip.ir.spec.Property` of kind ``unsafe``) that are unsafe on it.

Errors: :class:`VnnlibError` ``E0710`` (not VNN-LIB syntax), ``E0711`` (a construct outside this subset),
``E0712`` (a constraint that mixes inputs and outputs, or an unbounded input).
"""

from __future__ import annotations

import gzip
import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from nnmip.errors import NnmipError, Span
from nnmip.ir.spec import Case, InputSet, Property, box, halfspaces, unsafe

FloatArray = npt.NDArray[np.float64]

MAX_CLAUSES = 100_000
_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_VAR = re.compile(r"^([XY])_(\d+)$")


class VnnlibError(NnmipError, ValueError):
    """A VNN-LIB file cannot be read."""

    code = "E0710"


@dataclass
class _Tok:
    text: str
    line: int
    col: int


@dataclass(frozen=True)
class _Lin:
    """``sum coef[v] * v + const`` over variables ``("X", i)`` / ``("Y", j)``."""

    coef: tuple[tuple[tuple[str, int], float], ...]
    const: float

    @staticmethod
    def of(coef: dict[tuple[str, int], float], const: float) -> _Lin:
        return _Lin(tuple(sorted((k, v) for k, v in coef.items() if v != 0.0)), float(const))

    def scaled(self, f: float) -> _Lin:
        return _Lin.of({k: v * f for k, v in self.coef}, self.const * f)

    def plus(self, o: _Lin) -> _Lin:
        d = dict(self.coef)
        for k, v in o.coef:
            d[k] = d.get(k, 0.0) + v
        return _Lin.of(d, self.const + o.const)


@dataclass(frozen=True)
class _Atom:
    """``lin <= 0`` (``< 0`` when strict)."""

    lin: _Lin
    strict: bool
    span: Span


@dataclass
class VnnCase:
    """One input region of the property and the output cases unsafe on it."""

    lo: FloatArray
    hi: FloatArray
    sets: tuple[InputSet, ...]
    prop: Property


@dataclass
class VnnProperty:
    """A parsed VNN-LIB property: its input and output sizes and its cases (the disjuncts of the unsafe region)."""

    n_inputs: int
    n_outputs: int
    cases: list[VnnCase] = field(default_factory=list)
    file: str = ""
    #: the disjuncts left out because no input satisfies their input constraints, each said in words (an input
    #: whose lower bound is above its upper one, or a constant comparison that is false), with its line
    empty: list[str] = field(default_factory=list)


def _tokens(text: str) -> list[_Tok]:
    out = []
    for ln, line in enumerate(text.splitlines(), 1):
        line = line.split(";", 1)[0]
        for m in _TOKEN.finditer(line):
            out.append(_Tok(m.group(0), ln, m.start() + 1))
    return out


_HELP = {"E0710": "help: a VNN-LIB file holds (declare-const X_i Real), (declare-const Y_j Real) and (assert ...) "
                   "forms",
         "E0711": "help: nnmip reads linear properties: comparisons of sums of X_i, Y_j and constants, joined by "
                  "and/or"}


def _err(code: str, msg: str, tok: _Tok | None, file: str, *notes: str, line: int = 0) -> VnnlibError:
    """A located error: at ``tok``, else at ``line`` (column 1), else at the file."""
    if tok:
        span = Span(tok.line, tok.col, tok.line, tok.col + len(tok.text), file)
    else:
        span = Span(line, 1, line, 1, file) if line > 0 else Span(file=file)
    if not any(n.startswith("help:") for n in notes):
        notes = (*notes, _HELP.get(code, "help: see docs/errors.md"))
    e = VnnlibError.at(code, msg, span, notes)
    assert isinstance(e, VnnlibError)
    return e


MAX_DEPTH = 200                       # deeper formulas are refused (E0711)
MAX_TEXT_BYTES = 256 * 1024 * 1024    # so are larger (decompressed) files


def _read(file: str) -> str:
    """The text of a ``.vnnlib`` file, gzip-compressed or not; UTF-8 (a byte-order mark is skipped), or Latin-1 when
    it is not (comments only).
    """
    import codecs
    import io
    import zlib

    from nnmip.io.safe import note_input

    note_input(file)
    p = Path(file)
    try:
        if p.is_dir():
            raise _err("E0710", f"'{file}' is a folder, not a VNN-LIB file", None, file)
        if p.stat().st_size > MAX_TEXT_BYTES:
            raise _err("E0711", f"'{file}' is larger than {MAX_TEXT_BYTES} bytes", None, file)
        raw = p.read_bytes()
    except OSError as exc:
        raise _err("E0710", f"cannot read '{file}': {exc.strerror or exc}", None, file,
                   "help: check the path of the property file") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as gz:
                raw = gz.read(MAX_TEXT_BYTES + 1)
        except (OSError, EOFError, zlib.error) as exc:
            raise _err("E0710", f"'{file}' is not a readable gzip file: {exc}", None, file) from None
        if len(raw) > MAX_TEXT_BYTES:
            raise _err("E0711", f"'{file}' decompresses to more than {MAX_TEXT_BYTES} bytes", None, file)
    for bom, enc in ((b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16")):
        if raw.startswith(bom):
            raise _err("E0710", f"'{file}' is {enc} text", None, file, "help: save the property as UTF-8 or ASCII",
                       line=1)
    if raw.startswith(codecs.BOM_UTF8):   # the byte-order mark some editors put before UTF-8 text
        raw = raw[len(codecs.BOM_UTF8):]
    if b"\x00" in raw:
        line = raw.count(b"\n", 0, raw.index(b"\x00")) + 1
        raise _err("E0710", f"'{file}' holds a NUL byte on line {line}: it is not a text file", None, file,
                   "help: give the VNN-LIB text file (or its .vnnlib.gz)", line=line)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")   # non-UTF-8 bytes in comments are harmless; elsewhere they are bad tokens


def _sexprs(toks: list[_Tok], file: str) -> list[object]:
    stack: list[list[object]] = [[]]
    opens: list[_Tok] = []
    for t in toks:
        if t.text == "(":
            stack.append([t])
            opens.append(t)
            if len(stack) > MAX_DEPTH:
                raise _err("E0711", f"formulas nested more than {MAX_DEPTH} deep", t, file,
                           "help: write the property in disjunctive normal form (or (and ...) ...)")
        elif t.text == ")":
            if len(stack) == 1:
                raise _err("E0710", "unbalanced ')'", t, file)
            lst = stack.pop()
            opens.pop()
            stack[-1].append(lst)
        else:
            stack[-1].append(t)
    if len(stack) != 1:
        raise _err("E0710", "unclosed '('", opens[-1], file, "help: every '(' needs a ')'")
    return stack[0]


def parse_vnnlib(source: str | os.PathLike[str], text: str | None = None) -> VnnProperty:
    """Read a VNN-LIB file (``.vnnlib`` or gzip-compressed ``.vnnlib.gz``; or ``text`` with ``source`` as its
    name) into input regions and unsafe output cases.
    """
    from nnmip.errors import ParameterError, check_path

    check_path("source", source)
    if text is not None and not isinstance(text, str):
        raise ParameterError.of("text", f"must be the VNN-LIB text (a str) or None, got {type(text).__name__}",
                                code="E0108")
    file = os.fspath(source)
    if text is None:
        text = _read(file)
    toks = _tokens(text)
    exprs = _sexprs(toks, file)
    declared: dict[tuple[str, int], _Tok] = {}
    asserts: list[tuple[object, _Tok]] = []
    for e in exprs:
        if not isinstance(e, list) or len(e) < 2 or not isinstance(e[1], _Tok):
            tok = e if isinstance(e, _Tok) else (e[0] if isinstance(e, list) and e else None)
            raise _err("E0710", "expected (declare-const ...) or (assert ...)", tok, file)  # type: ignore[arg-type]
        head = e[1].text
        if head == "declare-const":
            if len(e) != 4 or not isinstance(e[2], _Tok) or not isinstance(e[3], _Tok):
                raise _err("E0710", "expected (declare-const NAME Real)", e[1], file)
            m = _VAR.match(e[2].text)
            if not m:
                raise _err("E0711", f"variable '{e[2].text}' is not named X_i or Y_j", e[2], file)
            if e[3].text != "Real":
                raise _err("E0711", f"variable '{e[2].text}' has sort '{e[3].text}', expected Real", e[3], file)
            declared[(m.group(1), int(m.group(2)))] = e[2]
        elif head == "assert":
            if len(e) != 3:
                raise _err("E0710", "assert takes one formula", e[1], file)
            asserts.append((e[2], e[1]))
        else:
            raise _err("E0711", f"unsupported command '{head}'", e[1], file,
                       "help: VNN-LIB 1.0 uses declare-const and assert")
    n_in = 1 + max((i for (k, i) in declared if k == "X"), default=-1)
    n_out = 1 + max((i for (k, i) in declared if k == "Y"), default=-1)
    if n_in == 0 or n_out == 0:
        raise _err("E0710", "the property declares no input (X_i) or no output (Y_j)", None, file,
                   "help: declare them with (declare-const X_0 Real) and (declare-const Y_0 Real)",
                   line=toks[-1].line if toks else 1)

    def lin(e: object) -> _Lin:
        if isinstance(e, _Tok):
            m = _VAR.match(e.text)
            if m:
                key = (m.group(1), int(m.group(2)))
                if key not in declared:
                    raise _err("E0710", f"'{e.text}' is not declared", e, file)
                return _Lin.of({key: 1.0}, 0.0)
            try:
                value = float(e.text)
            except ValueError:
                raise _err("E0710", f"'{e.text}' is neither a number nor a declared variable", e, file) from None
            if not np.isfinite(value):
                raise _err("E0711", f"'{e.text[:40]}' is not a finite number", e, file,
                           "help: bounds and coefficients must be finite")
            return _Lin.of({}, value)
        assert isinstance(e, list)
        if len(e) < 2 or not isinstance(e[1], _Tok):
            raise _err("E0710", "expected a term", e[0] if e else None, file)  # type: ignore[arg-type]
        op, args = e[1].text, e[2:]
        if op == "+":
            out = _Lin.of({}, 0.0)
            for a in args:
                out = out.plus(lin(a))
            return out
        if op == "-":
            if len(args) == 1:
                return lin(args[0]).scaled(-1.0)
            out = lin(args[0])
            for a in args[1:]:
                out = out.plus(lin(a).scaled(-1.0))
            return out
        if op == "*":
            terms = [lin(a) for a in args]
            consts = [t for t in terms if not t.coef]
            if len(terms) - len(consts) > 1:
                raise _err("E0711", "a product of variables is not linear", e[1], file)
            f = float(np.prod([t.const for t in consts]))
            rest = [t for t in terms if t.coef]
            return rest[0].scaled(f) if rest else _Lin.of({}, f)
        raise _err("E0711", f"unsupported term '{op}'", e[1], file, "help: terms use +, - and * by a constant")

    def dnf(e: object) -> list[list[_Atom]]:
        if not isinstance(e, list) or len(e) < 2 or not isinstance(e[1], _Tok):
            raise _err("E0710", "expected a formula", e if isinstance(e, _Tok) else None, file)
        op, args, tok = e[1].text, e[2:], e[1]
        span = Span(tok.line, tok.col, tok.line, tok.col + len(tok.text), file)
        if op == "and":
            out: list[list[_Atom]] = [[]]
            for a in args:
                sub = dnf(a)
                out = [x + y for x, y in itertools.product(out, sub)]
                if len(out) > MAX_CLAUSES:
                    raise _err("E0711", f"the property expands to more than {MAX_CLAUSES} cases", tok, file)
            return out
        if op == "or":
            res: list[list[_Atom]] = []
            for a in args:
                res.extend(dnf(a))
            return res
        if op in ("<=", ">=", "<", ">", "="):
            if len(args) != 2:
                raise _err("E0711", f"'{op}' with {len(args)} operands; use two", tok, file)
            left, right = lin(args[0]), lin(args[1])
            diff = left.plus(right.scaled(-1.0))          # left - right
            strict = op in ("<", ">")
            if op in ("<=", "<"):
                return [[_Atom(diff, strict, span)]]
            if op in (">=", ">"):
                return [[_Atom(diff.scaled(-1.0), strict, span)]]
            return [[_Atom(diff, False, span), _Atom(diff.scaled(-1.0), False, span)]]
        raise _err("E0711", f"unsupported formula '{op}'", tok, file, "help: formulas use and, or and comparisons")

    clauses: list[list[_Atom]] = [[]]
    for f, tok in asserts:
        clauses = [x + y for x, y in itertools.product(clauses, dnf(f))]
        if len(clauses) > MAX_CLAUSES:
            raise _err("E0711", f"the property expands to more than {MAX_CLAUSES} cases", tok, file)

    groups: dict[tuple[object, ...], tuple[FloatArray, FloatArray, list[tuple[FloatArray, float]], list[Case]]] = {}
    dropped: list[str] = []
    for cl in clauses:
        lo, hi = np.full(n_in, -np.inf), np.full(n_in, np.inf)
        hs: list[tuple[FloatArray, float]] = []
        G: list[FloatArray] = []
        h: list[float] = []
        strict: list[bool] = []
        empty = ""
        for at in cl:
            kinds = {k for (k, _), _ in at.lin.coef}
            tok_span = at.span
            if kinds == {"X", "Y"}:
                raise VnnlibError.at("E0712", "a constraint mixes inputs and outputs", tok_span,
                                     ["help: nnmip reads input constraints and output constraints separately"])
            if not kinds:
                if at.lin.const > 0 or (at.strict and at.lin.const >= 0):
                    # a false constant comparison makes the clause empty
                    empty = f"a comparison of constants that is false (line {at.span.line})"
                continue
            if kinds == {"X"}:
                if len(at.lin.coef) == 1:
                    (_, i), c = at.lin.coef[0]
                    bound = -at.lin.const / c
                    if c > 0:
                        hi[i] = min(hi[i], bound)
                    else:
                        lo[i] = max(lo[i], bound)
                else:
                    row = np.zeros(n_in)
                    for (_, i), c in at.lin.coef:
                        row[i] = c
                    hs.append((row, -at.lin.const))
            else:
                row = np.zeros(n_out)
                for (_, j), c in at.lin.coef:
                    row[j] = c
                G.append(row)
                h.append(at.lin.const)
                strict.append(at.strict)
        if not empty and (lo > hi).any():
            j = int(np.argmax(lo > hi))
            lines = sorted({at.span.line for at in cl if {(k, i) for (k, i), _ in at.lin.coef} == {("X", j)}})
            a, b = float(lo[j]) + 0.0, float(hi[j]) + 0.0       # + 0.0: no -0.0 in the text
            empty = (f"X_{j} >= {a!r} and X_{j} <= {b!r} (line{'s' if len(lines) > 1 else ''} "
                     f"{', '.join(map(str, lines))})")
        if empty:
            if empty not in dropped:      # an output disjunction repeats the same input constraints per case
                dropped.append(empty)
            continue
        key = (lo.tobytes(), hi.tobytes(), tuple((r.tobytes(), b) for r, b in hs))
        if key not in groups:
            groups[key] = (lo, hi, hs, [])
        if not G:
            # no output condition: every input of the region is unsafe
            G, h, strict = [np.zeros(n_out)], [0.0], [False]
        groups[key][3].append(Case(np.array(G), np.array(h), np.array(strict), f"case {len(groups[key][3])}"))

    out = VnnProperty(n_in, n_out, file=file, empty=dropped)
    for lo, hi, hs, cases in groups.values():
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            j = int(np.argmax(~(np.isfinite(lo) & np.isfinite(hi))))
            raise VnnlibError.at("E0712", f"input X_{j} has no finite lower and upper bound", Span(file=file),
                                 ["help: VNN-LIB properties bound every input, e.g. (assert (<= X_0 1.0))"])
        sets: list[InputSet] = [box(lo, hi)]
        if hs:
            sets.append(halfspaces(np.array([r for r, _ in hs]), np.array([b for _, b in hs])))
        out.cases.append(VnnCase(lo, hi, tuple(sets), unsafe(cases)))
    return out


def format_counterexample(x: FloatArray, y: FloatArray) -> str:
    """The VNN-COMP result text for a counterexample: ``sat`` and the ``(X_i value)``/``(Y_j value)`` pairs."""
    pairs = [f"(X_{i} {float(v)!r})" for i, v in enumerate(np.ravel(x))]
    pairs += [f"(Y_{j} {float(v)!r})" for j, v in enumerate(np.ravel(y))]
    return "sat\n(" + "\n ".join(pairs) + ")\n"
