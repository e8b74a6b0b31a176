"""Semantic checks: what a checked program holds, lowering to the IR, warnings, and misuse diagnostics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES

from nnmip.check import check
from nnmip.errors import CheckError
from nnmip.ir import Dense, NetworkBuilder, ReLU, Sign, Step, integer, real
from nnmip.syntax import parse, parse_file


def checked(text: str, base: Path | None = None):  # noqa: ANN201 - a CheckedProgram
    return check(parse(text, file="t.nnmip"), base or Path("."))


def codes(text: str, base: Path | None = None) -> list[tuple[str, int, int]]:
    with pytest.raises(CheckError) as info:
        checked(text, base)
    return [(d.code, d.span.line, d.span.column) for d in info.value.diagnostics]


def test_bcw_example_checks() -> None:
    cp = check(parse_file(EXAMPLES / "bcw.nnmip"))
    assert sorted(cp.networks) == ["bdnn"]
    assert sorted(cp.data) == ["bcw"]
    decl = cp.data["bcw"]
    assert (decl.source.kind, decl.source.delimiter, decl.source.label) == ("csv", ";", -1)
    assert (decl.pre.scale, decl.pre.train, decl.pre.validation, decl.pre.test) == ("minmax", 0.5, 0.25, 0.25)
    (task,) = cp.tasks
    assert (task.network, task.data, task.loss.kind, task.subset) == ("bdnn", "bcw", "hamming", ("random", 100, 1))
    assert (cp.solver.name, cp.solver.time_limit, cp.solver.gap) == ("highs", 120.0, 0.0)
    net = cp.networks["bdnn"]
    assert net.nodes == ["x", "h1", "a1", "h2", "y"]
    assert (net.n_inputs, net.n_outputs) == (9, 2)
    h2 = net.op("h2")
    assert isinstance(h2, Dense)
    assert h2.weights is not None
    assert h2.weights.kind == "int"
    assert h2.weights.lo.shape == (2, 4)
    assert float(h2.weights.lo.min()) == -1.0
    assert h2.span.line == 11
    assert h2.span.column == 5


def test_text_lowers_to_the_builder_network() -> None:
    cp = checked("""
        network n(x: 3) {
            h = dense(x, 2, weights=real[-1, 1], bias=int[-2, 2])
            a = sign(h)
            o = dense(a, 1, weights=[[1, -1]], bias=[0.5])
            y = step(o)
        }""")
    nb = NetworkBuilder("n")
    x = nb.input("x", 3)
    h = nb.dense("h", x, 2, weights=real(-1, 1), bias=integer(-2, 2))
    a = nb.sign("a", h)
    from nnmip.ir import fixed
    nb.step("y", nb.dense("o", a, 1, weights=fixed([[1, -1]]), bias=fixed([0.5])))
    assert cp.networks["n"].describe() == nb.build().describe()
    o = cp.networks["n"].op("o")
    assert isinstance(o, Dense)
    assert np.array_equal(o.W, [[1.0, -1.0]])
    assert np.array_equal(o.b, [0.5])
    assert isinstance(cp.networks["n"].op("a"), Sign)


def test_defaults_and_no_bias() -> None:
    cp = checked("network n(x: 2) { h = dense(x, 3); g = dense(h, 1, bias=none, weights=int[-3, 3]) }")
    h, g = cp.networks["n"].op("h"), cp.networks["n"].op("g")
    assert isinstance(h, Dense)
    assert h.weights is not None
    assert h.bias is not None
    assert (h.weights.kind, float(h.weights.lo.min()), float(h.weights.hi.max())) == ("real", -1.0, 1.0)
    assert (h.bias.kind, h.bias.lo.shape) == ("real", (3,))
    assert isinstance(g, Dense)
    assert g.bias is None
    assert g.weights is not None
    assert g.weights.kind == "int"


def test_int_domain_is_rounded_inward() -> None:
    cp = checked("network n(x: 1) { h = dense(x, 1, weights=int[-1.5, 2.7]) }")
    w = cp.networks["n"].op("h").weights  # type: ignore[attr-defined]
    assert (float(w.lo[0, 0]), float(w.hi[0, 0])) == (-1.0, 2.0)


def test_train_settings(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("0,0,0\n1,1,1\n")
    cp = checked("""
        data d = csv("d.csv") split(train=0.6, test=0.4, seed=3)
        network n(x: 2) { h = dense(x, 2, weights=real[-1, 1]); y = identity(h) }
        train n on d { loss = zero_one(margin=0.5); eps = 0.01; l1 = 0.1; subset = first(7) }
        solve with cbc(time_limit=5, threads=1, maxSavedSolutions=3)
    """, tmp_path)
    (t,) = cp.tasks
    assert (t.loss.kind, t.loss.margin, t.eps, t.l1, t.subset) == ("zero_one", 0.5, 0.01, 0.1, ("first", 7, 0))
    assert (cp.solver.name, cp.solver.time_limit, cp.solver.threads) == ("cbc", 5.0, 1)
    assert cp.solver.options == (("maxSavedSolutions", 3),)
    assert cp.data["d"].pre.seed == 3


def test_warnings_are_kept_not_raised() -> None:
    # 0/1 step inputs, weights in {-1, 0, 1} and an integer bias: the trap warning W0190 on 'o'
    cp = checked("""
        network n(x: 2) {
            h = dense(x, 2, weights=real[-1, 1]); a = step(h)
            o = dense(a, 2, weights=int[-1, 1], bias=int[-1, 1]); y = step(o)
        }
        data d = sklearn("iris")
        train n on d { loss = hamming }""")
    assert [(w.code, w.span.line) for w in cp.warnings] == [("W0190", 4)]
    assert all(w.severity == "warning" for w in cp.warnings)


def test_only_zero_integer_weights_warn() -> None:
    cp = checked("network n(x: 2) { h = dense(x, 1, weights=int[-0.5, 0.5]) }")
    assert [w.code for w in cp.warnings] == ["W0131"]


def test_relu_after_fixed_layers_is_accepted() -> None:
    cp = checked("""
        data d = sklearn("iris")
        network n(x: 4) {
            f = dense(x, 3, weights=[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]], bias=none)
            r = relu(f)
            h = dense(r, 3, weights=real[-1, 1])
            y = step(h)
        }
        train n on d { loss = hamming }""")
    assert isinstance(cp.networks["n"].op("r"), ReLU)
    assert isinstance(cp.networks["n"].op("y"), Step)


@pytest.mark.parametrize(("text", "expected"), [
    # the checker collects everything, in source order
    ("network n(x: 2) {\n h = dense(x, 0)\n g = dense(x, 1, bias=real[3, 1])\n}",
     [("E0109", 2, 15), ("E0130", 3, 23)]),
    ("network n(x: 0) { h = dense(x, 1) }", [("E0120", 1, 11)]),
    ("network n() { }", [("E0111", 1, 1)]),
    ("network n(x: 2) {\n h = dense(x, 1)\n g = dense(x, 1)\n}", [("E0112", 2, 2)]),
    ("network n(x: 2) { h = dense(x, 1, 2, 3, 4) }", [("E0104", 1, 41)]),
    ("network n(x: 2) { h = dense(x) }", [("E0104", 1, 23)]),
    ("network n(x: 2) { h = dense(x, width=1, width=2) }", [("E0106", 1, 41)]),
    ("network n(x: 2) { h = dense(width=1, x) }", [("E0107", 1, 38), ("E0104", 1, 23)]),
    ("network n(x: 2) { h = dense(x, 1.5) }", [("E0108", 1, 32)]),
    ("network n(x: 2) { h = dense(x, 1, weights=\"w\") }", [("E0108", 1, 43)]),
    ("network n(x: 2) { h = dense(X, 1) }", [("E0102", 1, 29)]),
    ("solve with highs\nsolve with cbc", [("E0103", 2, 1)]),
    ("solve with highs(10)", [("E0107", 1, 18)]),
    ("", [("E0180", 1, 1)]),
])
def test_diagnostics(text: str, expected: list[tuple[str, int, int]]) -> None:
    assert codes(text) == expected


def test_did_you_mean() -> None:
    with pytest.raises(CheckError) as info:
        checked("network n(x: 2) { Hidden = dense(x, 1); y = step(hidden) }")
    (d,) = info.value.diagnostics
    assert d.code == "E0102"
    assert "help: did you mean 'Hidden'?" in d.notes


def test_no_trainable_weights(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("0,0,0\n1,1,1\n")
    text = ('data d = csv("d.csv")\nnetwork n(x: 2) { h = dense(x, 1, weights=[[1, 1]], bias=[0]); y = step(h) }\n'
            "train n on d { loss = hamming }")
    assert codes(text, tmp_path) == [("E0142", 3, 1)]


def test_checker_builds_networks_through_the_builder_errors() -> None:
    """The builder raises located CheckErrors on its own (the Python API gets the same codes)."""
    nb = NetworkBuilder()
    nb.input("x", 2)
    with pytest.raises(CheckError) as info:
        nb.dense("h", "nope", 1)
    assert info.value.diagnostics[0].code == "E0102"
    nb.dense("h", "x", 1)
    with pytest.raises(CheckError):
        nb.step("h", "x")
    assert isinstance(nb.build().op("h"), Dense)


def test_builder_rejects_a_second_input() -> None:
    nb = NetworkBuilder("two")
    nb.input("x", 2)
    z = nb.input("z", 3)
    nb.step("y", nb.dense("h", z, 1))
    with pytest.raises(CheckError) as info:
        nb.build()
    assert [d.code for d in info.value.diagnostics] == ["E0113"]
