"""Sigmoid and tanh units: forward pass and gradient, sound linear bounds (docs/formulations.md §20), verification by
bounds and search, and a clear refusal wherever a MILP or LP would be needed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import brentq

import nnmip
from nnmip import NetworkBuilder, fixed
from nnmip.drivers.verify import load_model, network_from_layers, verify_vnnlib
from nnmip.errors import NnmipError
from nnmip.formulations.training import check_trainable_chain
from nnmip.formulations.verification import build_fixed_model
from nnmip.io.onnx import export_onnx, import_onnx
from nnmip.io.vnnlib import parse_vnnlib
from nnmip.ir.network import from_description
from nnmip.ir.ops import Sigmoid, Tanh
from nnmip.ir.spec import Region, box
from nnmip.passes.bounds import bounds_with_rows, propagate_bounds, row_bounds, smooth_relaxation, tighten_bounds

DATA = Path(__file__).parent / "data" / "vnncomp"
OPS = [Sigmoid(), Tanh()]


def smooth_net(seed: int = 0, widths: tuple[int, ...] = (4, 8, 6, 3), scale: float = 1.0) -> nnmip.Network:
    """A chain dense -> sigmoid -> dense -> tanh -> ... -> dense with random fixed weights."""
    rng = np.random.default_rng(seed)
    nb = NetworkBuilder("smooth")
    x = nb.input("x", widths[0])
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        x = nb.dense(f"d{i}", x, b, weights=fixed(scale * rng.normal(size=(b, a))), bias=fixed(rng.normal(size=b)))
        if i < len(widths) - 2:
            x = (nb.sigmoid if i % 2 == 0 else nb.tanh)(f"a{i}", x)
    return nb.build()


# ------------------------------------------------------------------------------------------------------------
# ops
# ------------------------------------------------------------------------------------------------------------
def test_forward_values_and_extremes() -> None:
    x = np.array([[-1000.0, -30.0, -1.0, 0.0, 2.0, 40.0, 1000.0]])
    with np.errstate(all="raise"):          # no overflow, no division by zero, at any input
        s, t = Sigmoid().forward(x), Tanh().forward(x)
    np.testing.assert_allclose(s[0, 1:-1], 1.0 / (1.0 + np.exp(-x[0, 1:-1])), rtol=1e-15)
    assert s[0, 0] == 0.0
    assert s[0, -1] == 1.0
    assert s[0, 3] == 0.5
    np.testing.assert_array_equal(t, np.tanh(x))


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.kind)
def test_backward_is_the_derivative(op: Sigmoid | Tanh) -> None:
    x = np.linspace(-6, 6, 41)[None, :]
    gy = np.random.default_rng(1).normal(size=x.shape)
    h = 1e-6
    numeric = (op.forward(x + h) - op.forward(x - h)) / (2 * h)
    np.testing.assert_allclose(op.backward(x, gy), gy * numeric, rtol=1e-7, atol=1e-10)


def test_network_describe_npz_and_onnx_round_trips(tmp_path: Path) -> None:
    net = smooth_net()
    X = np.random.default_rng(2).normal(size=(16, 4))
    again = from_description(net.describe(), {n: (p[0], p[1]) for n, p in net.params().items()})
    np.testing.assert_array_equal(again.forward(X), net.forward(X))
    nnmip.save_npz(net, tmp_path / "s.npz")
    loaded, _ = nnmip.load_npz(tmp_path / "s.npz")
    assert [loaded.op(n).kind for n in loaded.nodes] == [net.op(n).kind for n in net.nodes]
    np.testing.assert_array_equal(loaded.forward(X), net.forward(X))
    export_onnx(net, tmp_path / "s.onnx")
    back, _ = import_onnx(tmp_path / "s.onnx")
    assert [back.op(n).kind for n in back.nodes] == ["input", "dense", "sigmoid", "dense", "tanh", "dense"]
    np.testing.assert_allclose(back.forward(X), net.forward(X), rtol=1e-13, atol=1e-13)
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(tmp_path / "s.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"input": X})[0], net.forward(X), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------------------------
# the linear bounds of one unit
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", OPS, ids=lambda o: o.kind)
def test_relaxation_lines_hold_for_the_forward_pass(op: Sigmoid | Tanh) -> None:
    rng = np.random.default_rng(3)
    n = 20_000
    L = rng.normal(0, 4, n) * rng.choice([1.0, 10.0, 100.0], n)
    U = L + np.abs(rng.normal(0, 4, n)) * rng.choice([0.0, 1e-12, 1e-9, 1e-3, 1.0, 3.0, 25.0], n)
    sl, tl, su, tu = smooth_relaxation(op, L, U)
    X = np.hstack([L[:, None] + rng.random((n, 50)) * (U - L)[:, None], L[:, None], U[:, None]])
    F = op.forward(X)
    assert np.all(sl[:, None] * X + tl[:, None] <= F)
    assert np.all(su[:, None] * X + tu[:, None] >= F)
    assert np.all(np.isfinite(np.stack([sl, tl, su, tu])))


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.kind)
def test_relaxation_lines_are_the_tangents_and_chords(op: Sigmoid | Tanh) -> None:
    f, df = op.forward, op.derivative
    # concave part: the chord below, the tangent at the midpoint above
    sl, tl, su, tu = (v[0] for v in smooth_relaxation(op, np.array([0.5]), np.array([2.5])))
    assert sl == pytest.approx((f(2.5) - f(0.5)) / 2.0, rel=1e-12)
    assert su == pytest.approx(df(1.5), rel=1e-12)
    assert su * 1.5 + tu == pytest.approx(f(1.5), abs=1e-14)
    # convex part: mirrored
    sl, tl, su, tu = (v[0] for v in smooth_relaxation(op, np.array([-2.5]), np.array([-0.5])))
    assert su == pytest.approx((f(-0.5) - f(-2.5)) / 2.0, rel=1e-12)
    assert sl == pytest.approx(df(-1.5), rel=1e-12)
    # mixed: the upper line is the tangent through (L, f(L)) (CROWN), which beats DeepPoly's here
    L, U = -3.0, 2.0
    d = brentq(lambda z: float(f(z) + df(z) * (L - z) - f(L)), 0.0, U, xtol=1e-14)
    assert d > 0.5 * (L + U)
    sl, tl, su, tu = (v[0] for v in smooth_relaxation(op, np.array([L]), np.array([U])))
    assert su == pytest.approx(float(df(d)), rel=1e-9)
    assert su * L + tu == pytest.approx(float(f(L)), abs=1e-9)
    # ... unless the tangent at the midpoint also passes above (L, f(L)): then that one, which encloses less
    L, U = -1.0, 5.0
    d = brentq(lambda z: float(f(z) + df(z) * (L - z) - f(L)), 0.0, U, xtol=1e-14)
    assert d < 2.0
    sl, tl, su, tu = (v[0] for v in smooth_relaxation(op, np.array([L]), np.array([U])))
    assert su == pytest.approx(float(df(2.0)), rel=1e-9)
    assert su * 2.0 + tu == pytest.approx(float(f(2.0)), abs=1e-12)
    assert su * L + tu > float(f(L))
    dp = min(float(df(L)), float(df(U)))
    mid = 0.5 * (L + U)
    assert su * mid + tu < float(f(U)) + dp * (mid - U)


def _crown_upper(op: Sigmoid | Tanh, L: float, U: float) -> tuple[float, float]:
    """CROWN's upper line for L < 0 < U (the tangent at the midpoint where that one passes above (L, f(L))),
    computed independently (root finding instead of bisection)."""
    f, df = (lambda z: float(op.forward(np.array([z]))[0])), (lambda z: float(op.derivative(np.array([z]))[0]))
    if f(U) + df(U) * (L - U) <= f(L):           # no tangent point in [0, U]: the chord
        s = (f(U) - f(L)) / (U - L)
        return s, f(L) - s * L
    d = max(brentq(lambda z: f(z) + df(z) * (L - z) - f(L), 0.0, U, xtol=1e-15), 0.5 * (L + U))
    return df(d), f(d) - df(d) * d


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.kind)
def test_mixed_case_keeps_the_line_of_smaller_area(op: Sigmoid | Tanh) -> None:
    """Where the input interval holds 0, each line is CROWN's or DeepPoly's, whichever is nearer f at the midpoint;
    both kinds occur."""
    rng = np.random.default_rng(4)
    L = -np.abs(rng.normal(0, 5, 300)) * rng.choice([1.0, 20.0], 300) - 0.01
    U = np.abs(rng.normal(0, 5, 300)) * rng.choice([1.0, 20.0], 300) + 0.01
    sl, tl, su, tu = smooth_relaxation(op, L, U)
    kinds = set()
    for i in range(L.size):
        m = 0.5 * (L[i] + U[i])
        k = min(float(op.derivative(L[i:i + 1])[0]), float(op.derivative(U[i:i + 1])[0]))
        cs, ct = _crown_upper(op, L[i], U[i])
        crown, deeppoly = cs * m + ct, float(op.forward(U[i:i + 1])[0]) + k * (m - U[i])
        assert su[i] * m + tu[i] == pytest.approx(min(crown, deeppoly), abs=1e-8)
        kinds.add("crown" if crown < deeppoly else "deeppoly")
        # the lower line mirrors the upper line of [-U, -L]
        cs, ct = _crown_upper(op, -U[i], -L[i])
        f0 = float(op.forward(np.zeros(1))[0])
        lower_crown = cs * m + 2 * f0 - ct
        lower_dp = float(op.forward(L[i:i + 1])[0]) + k * (m - L[i])
        assert sl[i] * m + tl[i] == pytest.approx(max(lower_crown, lower_dp), abs=1e-8)
    assert kinds == {"crown", "deeppoly"}


# ------------------------------------------------------------------------------------------------------------
# bounds of whole networks
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_network_bounds_contain_the_forward_pass_and_symbolic_beats_interval(seed: int) -> None:
    net = smooth_net(seed, widths=(5, 16, 16, 16, 4), scale=1.5)
    lo, hi = np.full(5, -0.3), np.full(5, 0.4)
    region = Region((box(lo, hi),))
    rng = np.random.default_rng(seed)
    S = np.vstack([rng.uniform(lo, hi, size=(2000, 5)), lo, hi])
    vals = net.forward(S, all_nodes=True)
    ibp = propagate_bounds(net, region)
    sym = tighten_bounds(net, region, method="symbolic").bounds
    for bm in (ibp, sym):
        for node, v in vals.items():
            assert np.all(v >= bm[node][0]), node
            assert np.all(v <= bm[node][1]), node
    out = net.output
    w_int = ibp[out][1] - ibp[out][0]
    w_sym = sym[out][1] - sym[out][0]
    assert np.all(w_sym <= w_int + 1e-12)
    assert w_sym.sum() < 0.95 * w_int.sum()


def test_bounds_with_rows_is_tightening_then_row_bounds_bit_for_bit() -> None:
    """The rows' back-substitution reuses the tightening pass's relaxations: the same numbers as computing apart."""
    net = smooth_net(3, widths=(5, 16, 16, 16, 4), scale=1.5)
    region = Region((box(np.full(5, -0.3), np.full(5, 0.4)),))
    C, d = np.random.default_rng(0).normal(size=(6, 4)), np.arange(6.0)
    rep, (lo, hi) = bounds_with_rows(net, region, C, d)
    alone = tighten_bounds(net, region, method="symbolic")
    for node, (b_lo, b_hi) in alone.bounds.items():
        np.testing.assert_array_equal(rep.bounds[node][0], b_lo)
        np.testing.assert_array_equal(rep.bounds[node][1], b_hi)
    a_lo, a_hi = row_bounds(net, region, alone.bounds, C, d)
    np.testing.assert_array_equal(lo, a_lo)
    np.testing.assert_array_equal(hi, a_hi)
    Y = net.forward(np.random.default_rng(1).uniform(-0.3, 0.4, size=(5000, 5))) @ C.T + d
    assert np.all(hi >= Y)
    assert np.all(lo <= Y)


# ------------------------------------------------------------------------------------------------------------
# verification
# ------------------------------------------------------------------------------------------------------------
def test_verify_certifies_what_holds_and_finds_what_does_not() -> None:
    net = smooth_net(5)
    x0 = np.array([0.2, -0.1, 0.4, 0.3])
    label = int(net.predict(x0[None, :])[0])
    small = nnmip.verify(net, nnmip.linf(x0, 0.01), nnmip.classified(label), time_limit=30)
    assert small.result == "certified"
    assert small.bound is not None
    assert small.bound < 0
    assert small.bounds["smooth_units"] == {"sigmoid": 8, "tanh": 6}
    assert any("no MILP models them exactly" in n for n in small.notes)
    # a large radius: some input is classified otherwise, and the search finds it
    X = np.random.default_rng(0).uniform(x0 - 3, x0 + 3, size=(20000, 4))
    assert (net.predict(X) != label).any()
    big = nnmip.verify(net, nnmip.linf(x0, 3.0), nnmip.classified(label), time_limit=30)
    assert big.result == "counterexample"
    assert big.counterexample is not None
    assert np.max(np.abs(big.counterexample - x0)) <= 3.0
    assert int(net.predict(big.counterexample[None, :])[0]) != label


def test_maximize_bound_is_above_every_sampled_value() -> None:
    net = smooth_net(6)
    x0 = np.zeros(4)
    c = np.array([1.0, -0.5, 0.25])
    r = nnmip.verify(net, nnmip.linf(x0, 0.5), nnmip.maximize(c), time_limit=30)
    assert r.result == "unknown"          # no MILP closes the gap
    assert r.bound is not None
    assert r.value is not None
    X = np.random.default_rng(1).uniform(-0.5, 0.5, size=(50000, 4))
    top = float((net.forward(X) @ c).max())
    assert r.counterexample is not None         # the input attaining the value, which the forward pass reproduces
    assert np.max(np.abs(r.counterexample)) <= 0.5
    assert r.value == float(net.forward(r.counterexample[None, :])[0] @ c)
    assert r.value >= top - 1e-3                # the gradient ascent does at least as well as 50,000 samples
    assert r.bound >= max(top, r.value)
    assert r.bound - r.value < 1.0


@pytest.mark.parametrize(("kw", "text"), [({"tighten": "lp"}, "tighten 'lp'"), ({"tighten": "milp"}, "tighten 'milp'"),
                                           ({"bab": "relu"}, "branch and bound on ReLU phases ('relu')")])
def test_what_needs_a_milp_is_refused_with_e0429(kw: dict[str, str], text: str) -> None:
    net = smooth_net()
    with pytest.raises(NnmipError) as e:
        nnmip.verify(net, nnmip.linf(np.zeros(4), 0.1), nnmip.classified(0), **kw)
    d = e.value.diagnostics[0]
    assert d.code == "E0429"
    assert text in d.message
    assert "sigmoid and tanh units" in d.message
    assert any(n.startswith("help:") for n in d.notes)


def _wide_net(seed: int) -> nnmip.Network:
    return smooth_net(seed, widths=(2, 20, 20, 2), scale=2.0)


@pytest.mark.parametrize("seed", [0, 1, 4, 5])
def test_input_split_certifies_what_the_bounds_alone_cannot(seed: int) -> None:
    """Two inputs, radius 95 % of the distance to the nearest misclassified point of a dense sample: the bounds over
    the whole ball do not decide, splitting the ball does; just past that distance a counterexample is found."""
    net = _wide_net(seed)
    x0 = np.zeros(2)
    label = int(net.predict(x0[None, :])[0])
    X = np.random.default_rng(1).uniform(-1, 1, size=(200_000, 2))
    dist = np.abs(X).max(axis=1)[net.predict(X) != label].min()
    eps = 0.95 * float(dist)
    whole = nnmip.verify(net, nnmip.linf(x0, eps), nnmip.classified(label), bab="off", time_limit=30)
    assert whole.result == "unknown"
    assert whole.bound is not None
    assert whole.bound > 0
    split = nnmip.verify(net, nnmip.linf(x0, eps), nnmip.classified(label), time_limit=30)
    assert split.result == "certified"
    assert split.bound is not None
    assert split.bound < 0
    assert split.bounds["split_boxes"] >= 2
    assert split.bounds["open_boxes"] == 0
    past = nnmip.verify(net, nnmip.linf(x0, 1.05 * float(dist)), nnmip.classified(label), time_limit=30)
    assert past.result == "counterexample"
    assert past.counterexample is not None
    assert int(net.predict(past.counterexample[None, :])[0]) != label


def test_input_split_stops_at_the_time_limit_with_a_bound() -> None:
    """A question the split settles in about 1,000 boxes (some 10 s here), given 1 s: unknown, timed out, on time."""
    net = smooth_net(0, widths=(3, 30, 30, 30, 3), scale=2.0)
    x0 = np.zeros(3)
    label = int(net.predict(x0[None, :])[0])
    t0 = time.perf_counter()
    r = nnmip.verify(net, nnmip.linf(x0, 0.99), nnmip.classified(label), time_limit=1.0)
    assert time.perf_counter() - t0 < 2.5
    assert r.result == "unknown"
    assert r.timed_out
    assert r.bounds["open_boxes"] > 0
    assert r.bound is not None
    assert np.isfinite(r.bound)
    assert r.bound > 0
    assert any("still open when the time ran out" in n for n in r.notes)


def test_an_optimum_the_bound_meets_is_certified() -> None:
    nb = NetworkBuilder("flat")
    x = nb.input("x", 1)
    nb.sigmoid("s", nb.dense("d", x, 1, weights=fixed([[0.0]]), bias=fixed([0.0])))
    r = nnmip.verify(nb.build(), nnmip.box([0.0], [1.0]), nnmip.maximize([1.0]))
    assert r.result == "certified"
    assert r.value == 0.5
    assert r.bound is not None
    assert 0.5 <= r.bound <= 0.5 + 1e-6


def test_no_solver_is_asked_for() -> None:
    """The l2 ball needs no conic solver, and a solver that is not installed is not needed."""
    net = smooth_net(5)
    x0 = np.array([0.2, -0.1, 0.4, 0.3])
    label = int(net.predict(x0[None, :])[0])
    r = nnmip.verify(net, nnmip.l2(x0, 0.01), nnmip.classified(label), solver="highs")
    assert r.result == "certified"
    assert r.total_units == 14
    with pytest.raises(NnmipError) as e:          # the same ball on a ReLU network asks for a cone solver
        nnmip.verify(network_from_layers([(np.eye(4), np.zeros(4)), (np.ones((2, 4)), np.zeros(2))]),
                     nnmip.l2(x0, 0.01), nnmip.classified(0), solver="highs")
    assert e.value.diagnostics[0].code == "E0415"


def test_milp_options_and_lp_bounds_are_refused() -> None:
    net = smooth_net()
    with pytest.raises(NnmipError) as e:
        nnmip.verify(net, nnmip.linf(np.zeros(4), 0.1), nnmip.classified(0), method={"relu": "ideal-cuts"})
    assert e.value.diagnostics[0].code == "E0429"
    assert "'relu': 'ideal-cuts'" in e.value.diagnostics[0].message
    # the defaults of cuts and branching (what the command line passes) are no choice
    r = nnmip.verify(net, nnmip.linf(np.zeros(4), 0.001), nnmip.classified(0),
                     method={"cuts": "root", "branching": "none"})
    assert r.result in ("certified", "counterexample")
    region = Region((box(np.zeros(4), np.ones(4)),))
    for method in ("lp", "lp-cuts", "milp"):
        with pytest.raises(NnmipError) as e:
            tighten_bounds(net, region, method=method)
        assert e.value.diagnostics[0].code == "E0429"
        assert "'a0' is a sigmoid" in e.value.diagnostics[0].message


def test_model_building_and_training_refuse_smooth_units() -> None:
    net = smooth_net()
    region = Region((box(np.zeros(4), np.ones(4)),))
    with pytest.raises(NnmipError) as e:
        build_fixed_model(net, region, propagate_bounds(net, region))
    assert e.value.diagnostics[0].code == "E0429"
    assert "'a0' is a sigmoid" in e.value.diagnostics[0].message
    with pytest.raises(NnmipError) as e:
        check_trainable_chain(net)
    assert e.value.diagnostics[0].code == "E0426"
    assert "sigmoid node ('a0')" in e.value.diagnostics[0].message


# ------------------------------------------------------------------------------------------------------------
# the VNN-COMP 2021 sigmoid network as shipped
# ------------------------------------------------------------------------------------------------------------
def test_eran_sigmoid_network_loads_and_answers_as_officially() -> None:
    net = load_model("onnx", DATA / "ffnnSIGMOID__Point_6x200.onnx")
    assert [net.op(n).kind for n in net.nodes].count("sigmoid") == 6
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(DATA / "ffnnSIGMOID__Point_6x200.onnx"), providers=["CPUExecutionProvider"])
    name, shape = sess.get_inputs()[0].name, net.source_shapes["input"]

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(sess.run(None, {name: x.reshape(shape).astype(np.float32)})[0], np.float64).ravel()

    X = np.random.default_rng(0).random((8, 784))
    np.testing.assert_allclose(net.forward(X), np.stack([run(x) for x in X]), atol=1e-4)
    unsat = verify_vnnlib(net, parse_vnnlib(DATA / "mnist_spec_idx_56_eps_0.01200.vnnlib"), time_limit=60)
    assert unsat.vnn_answer == "unsat"          # official answer: unsat
    assert unsat.bound is not None
    assert unsat.bound < -1.0
    vp = parse_vnnlib(DATA / "mnist_spec_idx_7259_eps_0.01200.vnnlib")
    sat = verify_vnnlib(net, vp, time_limit=60)
    assert sat.vnn_answer == "sat"              # official answer: sat
    assert sat.counterexample is not None
    x = sat.counterexample
    assert any(np.all(x >= c.lo) and np.all(x <= c.hi) and c.prop.violated(run(x)[None, :])[0] for c in vp.cases)


def test_cli_verify_reports_the_units_and_refuses_import(tmp_path: Path) -> None:
    net = smooth_net()
    export_onnx(net, tmp_path / "s.onnx")
    proc = subprocess.run([sys.executable, "-m", "nnmip", "verify", "--onnx", str(tmp_path / "s.onnx"), "--point",
                           "0.2,-0.1,0.4,0.3", "--linf", "0.01", "--label", "0", "--json", str(tmp_path / "r.json"),
                           "-q"], capture_output=True, text=True, timeout=120)
    label = int(net.predict(np.array([[0.2, -0.1, 0.4, 0.3]]))[0])
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["bounds"]["smooth_units"] == {"sigmoid": 8, "tanh": 6}
    assert "8 sigmoid units, 6 tanh units (symbolic bounds, no MILP)" in proc.stdout
    assert proc.returncode == (0 if r["result"] in ("certified", "counterexample") else 1)
    assert r["result"] == ("certified" if label == 0 else "counterexample")
    proc = subprocess.run([sys.executable, "-m", "nnmip", "import", str(tmp_path / "s.onnx"), "-o",
                           str(tmp_path / "s.nnmip")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "error[E0620]" in proc.stderr
    assert "nnmip verify --onnx" in proc.stderr
    assert not (tmp_path / "s.nnmip").exists()
