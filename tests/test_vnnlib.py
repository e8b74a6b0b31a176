"""VNN-LIB 1.0 reading: DNF, input boxes, output cases, errors with positions; answers in VNN-COMP words."""

from __future__ import annotations

import numpy as np
import pytest
from verify_nets import mlp_layers, mlp_onnx, ort_forward

from nnmip.drivers.verify import verify_vnnlib
from nnmip.io.onnx import import_onnx
from nnmip.io.vnnlib import VnnlibError, format_counterexample, parse_vnnlib

HEAD = "".join(f"(declare-const X_{i} Real)\n" for i in range(3)) + \
       "".join(f"(declare-const Y_{j} Real)\n" for j in range(2))


def _box(lo: list[float], hi: list[float]) -> str:
    pairs = enumerate(zip(lo, hi, strict=True))
    return "".join(f"(assert (>= X_{i} {a}))\n(assert (<= X_{i} {b}))\n" for i, (a, b) in pairs)


def test_box_and_output_cases() -> None:
    text = HEAD + "; a comment\n" + _box([0, 0.1, 0.2], [1, 0.9, 0.8]) + \
        "(assert (or (and (>= Y_0 Y_1)) (and (<= Y_1 -2.5) (>= (+ Y_0 (* 2 Y_1)) 3))))\n"
    vp = parse_vnnlib("p.vnnlib", text)
    assert (vp.n_inputs, vp.n_outputs) == (3, 2)
    assert len(vp.cases) == 1
    c = vp.cases[0]
    np.testing.assert_array_equal(c.lo, [0, 0.1, 0.2])
    np.testing.assert_array_equal(c.hi, [1, 0.9, 0.8])
    cases = c.prop.raw_cases
    assert len(cases) == 2
    # Y_0 >= Y_1  <=>  Y_1 - Y_0 <= 0
    np.testing.assert_array_equal(cases[0].G, [[-1.0, 1.0]])
    np.testing.assert_array_equal(cases[0].h, [0.0])
    # Y_1 <= -2.5 ; Y_0 + 2 Y_1 >= 3
    np.testing.assert_array_equal(cases[1].G, [[0.0, 1.0], [-1.0, -2.0]])
    np.testing.assert_array_equal(cases[1].h, [2.5, 3.0])
    y = np.array([[1.0, 0.0], [0.0, 1.0], [10.0, -3.0]])
    assert cases[0].hit(y).tolist() == [True, False, True]
    assert cases[1].hit(y).tolist() == [False, False, True]


def test_input_disjunction_gives_several_regions_and_linear_input_rows() -> None:
    text = HEAD + "(assert (or (and (>= X_0 0) (<= X_0 0.5)) (and (>= X_0 0.5) (<= X_0 1))))\n" + \
        "(assert (>= X_1 0))(assert (<= X_1 1))(assert (>= X_2 0))(assert (<= X_2 1))\n" + \
        "(assert (<= (- X_1 X_2) 0.25))\n(assert (> Y_0 (- 1)))\n"
    vp = parse_vnnlib("p.vnnlib", text)
    assert len(vp.cases) == 2
    assert [c.hi[0] for c in vp.cases] == [0.5, 1.0]
    hs = vp.cases[0].sets[1]
    np.testing.assert_array_equal(hs.A, [[0.0, 1.0, -1.0]])
    np.testing.assert_array_equal(hs.b, [0.25])
    case = vp.cases[0].prop.raw_cases[0]
    assert case.strict.tolist() == [True]                  # -1 - Y_0 < 0
    assert case.hit(np.array([[-1.0, 0.0]]))[0] == False   # noqa: E712 - numpy bool
    assert case.hit(np.array([[-0.5, 0.0]]))[0] == True    # noqa: E712


@pytest.mark.parametrize(("text", "code", "line"), [
    (HEAD + "(assert (<= X_0 1)", "E0710", 6),
    (HEAD + "(assert (<= X_9 1))", "E0710", 6),
    (HEAD + "(assert (<= (* X_0 X_1) 1))", "E0711", 6),
    (HEAD + "(assert (<= (+ X_0 Y_1) 1))", "E0712", 6),
    (HEAD + "(assert (<= X_0 1))(assert (>= X_0 0))", "E0712", 0),
    (HEAD + "(check-sat)", "E0711", 6),
])
def test_errors_are_located(text: str, code: str, line: int) -> None:
    with pytest.raises(VnnlibError) as e:
        parse_vnnlib("bad.vnnlib", text)
    d = e.value.diagnostics[0]
    assert d.code == code
    assert d.span.line == line
    assert d.span.file == "bad.vnnlib"


def test_sat_and_unsat_against_onnxruntime(tmp_path) -> None:
    layers = mlp_layers([3, 6, 2], 4)
    model = mlp_onnx(layers, "relu")
    net, _ = import_onnx(model)
    X = np.random.default_rng(0).random((20000, 3))
    Y = ort_forward(model, X)
    top = float(np.max(Y[:, 0] - Y[:, 1]))
    box = _box([0, 0, 0], [1, 1, 1])
    # unsafe: Y_0 - Y_1 >= top + 1 cannot happen (far above every sample; the MILP proves it)
    unsat = parse_vnnlib("u.vnnlib", HEAD + box + f"(assert (>= (- Y_0 Y_1) {top + 1.0}))\n")
    r = verify_vnnlib(net, unsat)
    assert r.vnn_answer == "unsat"
    assert r.bound <= 0
    # unsafe: Y_0 - Y_1 >= top - 0.05 happens (a sample reaches it)
    sat = parse_vnnlib("s.vnnlib", HEAD + box + f"(assert (>= (- Y_0 Y_1) {top - 0.05}))\n")
    r = verify_vnnlib(net, sat, samples=0)
    assert r.vnn_answer == "sat"
    y = ort_forward(model, r.counterexample)[0]
    assert y[0] - y[1] >= top - 0.05
    text = format_counterexample(r.counterexample, r.output)
    assert text.startswith("sat\n((X_0 ")
    assert text.rstrip().endswith(")")
    vals = dict(tok.strip().strip("()").split() for tok in text.split("\n")[1:] if tok.strip())
    assert float(vals["X_1"]) == r.counterexample[1]


def test_disjuncts_without_inputs_are_said() -> None:
    """A disjunct whose input constraints no input meets (a lower bound above the upper one, a false comparison
    of constants) is left out, and the answer says so: with none left the property holds whatever the network
    (was: a bare ``unsat`` over "0 input region(s)")."""
    box = _box([0, 0], [1, 1])
    text = HEAD + box + "(assert (or (and (>= X_2 0.7) (<= X_2 0.2) (>= Y_0 1))\n" + \
        "            (and (>= X_2 0) (<= X_2 1) (<= 3 2) (>= Y_0 1))\n" + \
        "            (and (>= X_2 0) (<= X_2 1) (>= Y_0 5))))\n"
    vp = parse_vnnlib("p.vnnlib", text)
    assert len(vp.cases) == 1
    assert vp.empty == ["X_2 >= 0.7 and X_2 <= 0.2 (line 10)",
                        "a comparison of constants that is false (line 11)"]
    layers = mlp_layers([3, 4, 2], 1)
    net, _ = import_onnx(mlp_onnx(layers, "relu"))
    r = verify_vnnlib(net, vp)
    assert r.notes[0] == ("2 of the property's 3 disjuncts have no input and were left out: X_2 >= "
                          "0.7 and X_2 <= 0.2 (line 10), and 1 more")
    # an output disjunction repeats the empty input region once per case: it is said once; -0.0 reads 0.0
    rep = parse_vnnlib("r.vnnlib", HEAD + box + "(assert (>= X_2 0))\n(assert (<= X_2 -1))\n"
                       "(assert (or (>= Y_0 1) (>= Y_1 1)))\n")
    assert rep.empty == ["X_2 >= 0.0 and X_2 <= -1.0 (lines 10, 11)"]
    none = parse_vnnlib("n.vnnlib", HEAD + box + "(assert (>= X_2 0.7))\n(assert (<= X_2 0.2))\n(assert (>= Y_0 1))\n")
    assert none.cases == []
    assert none.empty == ["X_2 >= 0.7 and X_2 <= 0.2 (lines 10, 11)"]
    r = verify_vnnlib(net, none)
    assert r.vnn_answer == "unsat"
    assert r.notes == ["no input satisfies the property's input constraints: X_2 >= 0.7 and X_2 <= "
                       "0.2 (lines 10, 11); no input can violate it, so it holds (unsat) whatever "
                       "the network"]
