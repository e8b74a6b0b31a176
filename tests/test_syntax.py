"""The language: grammar coverage, located syntax errors, and the round trip ``parse(format(p)) == p``."""

from __future__ import annotations

import keyword
from pathlib import Path

import pytest
from conftest import EXAMPLES, ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnmip.errors import NnmipSyntaxError, Span
from nnmip.syntax import ast
from nnmip.syntax import parser as parser_mod
from nnmip.syntax.format import format_program
from nnmip.syntax.parser import _parser, grammar_text, parse, parse_file
from nnmip.syntax.to_ast import ToAst

EXAMPLE_FILES = sorted(EXAMPLES.glob("**/*.nnmip"))


# -- grammar coverage -----------------------------------------------------------------------------------------
def _handled_rules() -> set[str]:
    """Rules whose trees reach ToAst: neither inlined (``_rule``) nor pass-through (``?rule``)."""
    return {r.origin.name for r in _parser().rules
            if not str(r.origin.name).startswith("_") and not r.options.expand1}


def test_every_rule_has_a_handler() -> None:
    rules = _handled_rules()
    assert {"start", "data_stmt", "network_stmt", "train_stmt", "verify_stmt", "solve_stmt", "call"} <= rules
    missing = sorted(r for r in rules if not callable(ToAst.__dict__.get(r)))
    assert not missing, f"grammar rules without a ToAst method: {missing}"


def test_every_handler_has_a_rule() -> None:
    handlers = {n for n, v in ToAst.__dict__.items() if callable(v) and not n.startswith("_")}
    assert handlers == _handled_rules()


def shipped_grammar_mismatch() -> str:
    """Why the parser's grammar is not the shipped ``grammar/nnmip.lark`` (empty when it is)."""
    import tomllib

    shipped = ROOT / "grammar" / "nnmip.lark"
    if grammar_text() != shipped.read_text(encoding="utf-8"):
        return f"the parser reads {parser_mod.grammar_file()}, which differs from {shipped}"
    if _parser().source_grammar != shipped.read_text(encoding="utf-8"):
        return "the cached parser was built from another text"
    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    target = wheel.get("force-include", {}).get("/".join(parser_mod.SOURCE_GRAMMAR))
    if target != "nnmip/" + "/".join(parser_mod.PACKAGE_GRAMMAR):
        return f"the wheel puts the grammar at {target}, not where the installed parser looks"
    return ""


def test_grammar_is_the_shipped_file() -> None:
    """The parser reads the shipped grammar, in the source tree and (by the wheel's force-include) when installed."""
    assert shipped_grammar_mismatch() == ""


def test_grammar_check_fails_on_a_stale_package_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed copy that differs from the source tree's grammar (a stale wheel) is caught."""
    pkg = tmp_path / "nnmip"
    (pkg / "grammar").mkdir(parents=True)
    (pkg / "grammar" / "nnmip.lark").write_text("start: NAME\n%import common.CNAME -> NAME\n", encoding="utf-8")
    monkeypatch.setattr(parser_mod, "_package_root", lambda: pkg)
    assert parser_mod.grammar_file() == pkg / "grammar" / "nnmip.lark"
    assert "differs from" in shipped_grammar_mismatch()


def test_grammar_check_fails_when_the_wheel_ships_it_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parser_mod, "PACKAGE_GRAMMAR", ("data", "nnmip.lark"))
    assert "the wheel puts the grammar at nnmip/grammar/nnmip.lark" in shipped_grammar_mismatch()


# -- round trips -------------------------------------------------------------------------------------------------
def assert_round_trip(p: ast.Program) -> None:
    text = format_program(p)
    q = parse(text)
    assert q == p, text
    assert format_program(q) == text   # the canonical form is a fixed point


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.stem for p in EXAMPLE_FILES])
def test_examples_round_trip(path: Path) -> None:
    p = parse_file(path)
    assert p.items
    assert_round_trip(p)


FULL = r'''
# every construct once
data d = csv("data/x.csv", delimiter=";", header=true, label=-1, scale=minmax)
         split(train=0.5, validation=.25, test=2.5e-1, seed=0) scale(standard);
data s = sklearn("iris")
network net(x: 4 real[0, 1], z: 2) {
    h = dense(x, 3, weights=real[-1.5, 1e0], bias=int[-2, +2]); a = step(h)
    o = dense(a, 2, weights=[[1, 0, -1], [0.5, -0.25, 3e-3],], bias=none)
    y = identity(o)
}
train net on d {
    loss = hinge(margin=0.5); l1 = 0.001
    subset = random(30, seed=1)
    strategy = split(max_splits=3, kmeans=true)
    robust x in linf(0.1)
}
verify net { input x in box(lo=[0, 0, 0, 0], hi=[1, 1, 1, 1]); property = classified(1, "label \"q\"\n") }
solve with highs(time_limit=10, gap=0, verbose=false,)
'''


def test_full_program_round_trips() -> None:
    p = parse(FULL)
    assert [type(s).__name__ for s in p.items] == ["DataStmt", "DataStmt", "NetworkStmt", "TrainStmt",
                                                   "VerifyStmt", "SolveStmt"]
    assert_round_trip(p)


def test_full_program_values() -> None:
    p = parse(FULL)
    d, _, net, train, verify, solve = p.items
    assert isinstance(d, ast.DataStmt)
    assert [c.func for c in d.calls] == ["csv", "split", "scale"]
    split = d.calls[1].keywords
    assert split["validation"].value == ast.Num(0.25)
    assert isinstance(split["validation"].value.value, float)
    assert split["test"].value == ast.Num(0.25)
    assert isinstance(split["seed"].value.value, int)
    assert isinstance(net, ast.NetworkStmt)
    assert net.params == (ast.Param("x", 4, ast.Domain("real", ast.Num(0), ast.Num(1))), ast.Param("z", 2))
    h = net.nodes[0].call
    assert h.keywords["bias"].value == ast.Domain("int", ast.Num(-2), ast.Num(2))
    o = net.nodes[2].call
    assert o.keywords["weights"].value == ast.ListLit((
        ast.ListLit((ast.Num(1), ast.Num(0), ast.Num(-1))),
        ast.ListLit((ast.Num(0.5), ast.Num(-0.25), ast.Num(0.003)))))
    assert o.keywords["bias"].value == ast.Ref("none")
    assert isinstance(train, ast.TrainStmt)
    assert train.items[-1] == ast.SetDecl("robust", "x", ast.Call("linf", (ast.Num(0.1),)))
    assert isinstance(verify, ast.VerifyStmt)
    assert verify.items[1].value.args[1] == ast.Str('label "q"\n')
    assert isinstance(solve, ast.SolveStmt)
    assert solve.solver.func == "highs"


def test_solve_with_a_bare_name() -> None:
    p = parse("solve with cbc")
    assert p.items == (ast.SolveStmt(ast.Ref("cbc")),)
    assert_round_trip(p)


def test_empty_program_and_comments_only() -> None:
    assert parse("").items == ()
    assert parse("# nothing\n;;\n").items == ()


def test_equality_ignores_layout_but_spans_are_kept() -> None:
    a = parse('network n(x: 2) { h = dense(x, 1); y = step(h) }', file="a.nnmip")
    b = parse('\n\nnetwork n(\n  x: 2\n) {\n  h = dense(x, 1)\n\n  y = step(h)\n}\n', file="b.nnmip")
    assert a == b
    node = b.items[0].nodes[1]
    assert node.span == Span(8, 3, 8, 14, "b.nnmip")
    assert node.call.args[0].span.line == 8
    assert node.call.args[0].span.column == 12
    assert a.items[0].nodes[0].span.column == 19


def test_non_ascii_strings_round_trip() -> None:
    p = parse('data d = csv("café/\U0001F600 \\u00e9\\t.csv")')
    assert p.items[0].calls[0].args[0] == ast.Str("café/\U0001F600 é\t.csv")
    assert_round_trip(p)


# -- syntax errors ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "line", "col", "message"), [
    ("network n(x: 2) {\n  h = dense(x, 1) $\n}", 2, 19, "unexpected character '$'"),
    ("data d = csv('x.csv')", 1, 14, "unexpected character \"'\""),
    ("network n(x: 2) {\n  h = dense(x, 1)\n", 2, 18, "unexpected end of file"),
    ("network n(x: 2) {\n  h = dense(x, 1)", 2, 18, "unexpected end of file"),
    ("train n on d { loss = }", 1, 23, "unexpected '}'"),
    ("network n(x 2) { }", 1, 13, "unexpected number '2'"),
    ("network 3(x: 2) { }", 1, 9, "unexpected number '3'"),
    ('data d = csv("a\\qb")', 1, 16, "invalid escape '\\q' in string"),
    ('data d = csv("a\\ud800b")', 1, 16, "escape '\\ud800' in string is half of a UTF-16 surrogate pair"),
    ('data d = csv("\\ud83d\\ude00\\udc00")', 1, 27,
     "escape '\\udc00' in string is half of a UTF-16 surrogate pair"),
])
def test_syntax_error_location(text: str, line: int, col: int, message: str) -> None:
    with pytest.raises(NnmipSyntaxError) as info:
        parse(text, file="t.nnmip")
    (d,) = info.value.diagnostics
    assert (d.code, d.span.file, d.span.line, d.span.column) == ("E0001", "t.nnmip", line, col)
    assert d.message == message
    rendered = info.value.render()
    assert rendered.startswith(f"t.nnmip:{line}:{col}: error[E0001]: {message}")
    assert "^" in rendered


def test_a_whole_surrogate_pair_is_one_character() -> None:
    prog = parse('data d = csv("\\ud83d\\ude00.csv")')
    assert prog.items[0].calls[0].args[0] == ast.Str("\U0001f600.csv")  # type: ignore[attr-defined]


def test_syntax_error_lists_what_was_expected() -> None:
    with pytest.raises(NnmipSyntaxError) as info:
        parse("network n(x: 2) { h = dense(x, 1) y }")
    notes = info.value.diagnostics[0].notes
    assert any(n.startswith("help: expected") and "'='" in n for n in notes)


def test_syntax_error_is_a_syntax_error() -> None:
    with pytest.raises(SyntaxError):
        parse("data = ")


# -- property: random programs round-trip -----------------------------------------------------------------------
_KEYWORDS = {"data", "network", "train", "on", "verify", "solve", "with", "robust", "input", "in", "real", "int"}
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True).filter(
    lambda s: s not in _KEYWORDS and not keyword.iskeyword(s))
numbers = st.one_of(st.integers(-10**12, 10**12),
                    st.floats(allow_nan=False, allow_infinity=False, width=64)).map(ast.Num)
strings = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8).map(ast.Str)
domains = st.builds(lambda k, a, b: ast.Domain(k, ast.Num(a), ast.Num(b)), st.sampled_from(["real", "int"]),
                    st.integers(-5, 5), st.floats(-5, 5))


def _values(children: st.SearchStrategy[ast.Value]) -> st.SearchStrategy[ast.Value]:
    args = st.lists(st.one_of(children, st.builds(ast.KwArg, names, children)), max_size=3).map(tuple)
    return st.one_of(st.builds(ast.ListLit, st.lists(children, max_size=3).map(tuple)),
                     st.builds(ast.Call, names, args))


values = st.recursive(st.one_of(numbers, strings, names.map(ast.Ref), domains), _values, max_leaves=8)
calls = st.builds(ast.Call, names, st.lists(st.one_of(values, st.builds(ast.KwArg, names, values)),
                                            max_size=3).map(tuple))
statements = st.one_of(
    st.builds(ast.DataStmt, names, st.lists(calls, min_size=1, max_size=3).map(tuple)),
    st.builds(ast.NetworkStmt, names,
              st.lists(st.builds(ast.Param, names, st.integers(0, 99), st.one_of(st.none(), domains)),
                       max_size=2).map(tuple),
              st.lists(st.builds(ast.NodeDef, names, calls), max_size=3).map(tuple)),
    st.builds(ast.TrainStmt, names, names, st.lists(st.one_of(
        st.builds(ast.Setting, names, values),
        st.builds(lambda t, c: ast.SetDecl("robust", t, c), names, calls)), max_size=3).map(tuple)),
    st.builds(ast.VerifyStmt, names, st.lists(st.one_of(
        st.builds(ast.Setting, names, values),
        st.builds(lambda t, c: ast.SetDecl("input", t, c), names, calls)), max_size=3).map(tuple)),
    st.builds(ast.SolveStmt, st.one_of(calls, names.map(ast.Ref))),
)


@pytest.mark.slow  # about 23 s
@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(statements, max_size=4).map(lambda items: ast.Program(tuple(items))))
def test_random_programs_round_trip(p: ast.Program) -> None:
    assert_round_trip(p)


def test_parse_file_reads_a_byte_order_mark(tmp_path: Path) -> None:
    """Some editors start UTF-8 files with a byte-order mark: it is not text, and locations are unchanged."""
    src = (EXAMPLES / "bcw.nnmip").read_text(encoding="utf-8")
    f = tmp_path / "bom.nnmip"
    f.write_bytes(b"\xef\xbb\xbf" + src.encode("utf-8"))
    assert parser_mod.parse_file(f) == parser_mod.parse(src, str(f))
    bad = tmp_path / "bad.nnmip"
    text = b"network n(x: 2) {\n    h = dense(x, 1\n}\n"
    bad.write_bytes(text)
    with pytest.raises(NnmipSyntaxError) as plain:
        parser_mod.parse_file(bad)
    bad.write_bytes(b"\xef\xbb\xbf" + text)
    with pytest.raises(NnmipSyntaxError) as marked:
        parser_mod.parse_file(bad)
    assert marked.value.diagnostics[0].span == plain.value.diagnostics[0].span      # same line and column
