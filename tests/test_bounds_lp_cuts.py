"""Bound tightening with ideal cuts (``method="lp-cuts"``): sound, never looser than the plain LPs, tighter where
the ideal cuts bite, and the same answers from ``verify``."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from verify_nets import mlp_layers, mlp_onnx, relu_question

from nnmip.cli import main
from nnmip.drivers.verify import verify
from nnmip.errors import FormulationError
from nnmip.ir import spec as vs
from nnmip.ir.ops import Dense, ReLU
from nnmip.passes.bounds import tighten_bounds, unstable_mask
from nnmip.solution import SolveOptions


def _hidden(net) -> list[str]:  # type: ignore[no-untyped-def]
    return [n for n, op in net.items() if isinstance(op, Dense) and n != net.output]


@pytest.mark.parametrize("seed", range(4))
def test_lp_cut_bounds_are_sound_and_never_looser_than_the_lp_bounds(seed: int) -> None:
    """Sound everywhere; no unit the LPs prove stable is lost, and every unit still unstable has an interval
    inside the LPs' one.  (A unit stable under both may move either way: the symbolic relaxation's lower line
    is chosen from the bounds, so tighter bounds before it can loosen it, and those units get no LP.)"""
    net, _, _, _, region = relu_question(seed, sizes=(5, 12, 12, 12, 2), eps=0.3)
    lp = tighten_bounds(net, region, method="lp")
    cut = tighten_bounds(net, region, method="lp-cuts")
    assert cut.complete
    assert cut.lps >= lp.lps
    assert cut.unstable <= lp.unstable
    for n in _hidden(net):
        (lo, hi), (plo, phi) = cut.bounds[n], lp.bounds[n]
        unst = unstable_mask(ReLU(), lo, hi)
        assert not np.any(unst & ~unstable_mask(ReLU(), plo, phi)), n
        assert np.all(lo[unst] >= plo[unst] - 1e-6), n
        assert np.all(hi[unst] <= phi[unst] + 1e-6), n
    vals = net.forward(region.sample(net.n_inputs, 4000, np.random.default_rng(seed)), all_nodes=True)
    for n in net.nodes:
        assert np.all(vals[n] >= cut.bounds[n][0] - 1e-9), n
        assert np.all(vals[n] <= cut.bounds[n][1] + 1e-9), n


def test_the_cuts_tighten_bounds_beyond_the_lp() -> None:
    """On deeper networks at a wide radius the cuts of the first ReLU layer narrow the later layers' bounds."""
    gains = []
    for seed in range(4):
        net, _, _, _, region = relu_question(seed, sizes=(5, 12, 12, 12, 2), eps=0.3)
        lp = tighten_bounds(net, region, method="lp").bounds
        cut = tighten_bounds(net, region, method="lp-cuts").bounds
        later = _hidden(net)[1:]
        gains.append(max(float(np.max((lp[n][1] - lp[n][0]) - (cut[n][1] - cut[n][0]))) for n in later))
    assert min(gains) > 0.05      # measured 0.08-0.25 of the widest interval


def test_the_first_layer_has_no_cuts_to_take_and_keeps_its_lp_bounds() -> None:
    """Over an l1 ball the first layer's interval bounds are not exact, so it gets LPs; no ReLU comes before it,
    so there are no cuts and its bounds are the plain LPs' bit for bit."""
    net, x0, _, _, _ = relu_question(1, sizes=(5, 12, 12, 2), eps=0.3)
    region = vs.Region((vs.linf(x0, 0.3), vs.l1(x0, 0.5)), np.zeros(5), np.ones(5))
    lp = tighten_bounds(net, region, method="lp")
    cut = tighten_bounds(net, region, method="lp-cuts")
    first = _hidden(net)[0]
    assert lp.lps > 0
    np.testing.assert_array_equal(cut.bounds[first][0], lp.bounds[first][0])
    np.testing.assert_array_equal(cut.bounds[first][1], lp.bounds[first][1])


@pytest.mark.parametrize("relu", ["bigm", "ideal-cuts"])
def test_verify_with_lp_cut_bounds_gives_the_same_optimum(relu: str) -> None:
    net, x0, eps, coef, _ = relu_question(2, sizes=(5, 12, 12, 12, 2), eps=0.3)
    answers = {}
    for tighten in ("lp", "lp-cuts"):
        r = verify(net, [vs.linf(x0, eps)], vs.maximize(coef), domain=(0, 1), tighten=tighten,
                   method={"relu": relu}, options=SolveOptions(mip_gap=1e-9))
        assert r.counterexample is not None
        y = net.forward(np.asarray(r.counterexample)[None, :])[0]
        assert float(coef @ y) == pytest.approx(r.value, abs=1e-6)     # the reported input re-runs to the value
        answers[tighten] = r
    assert answers["lp-cuts"].value == pytest.approx(answers["lp"].value, abs=1e-6)
    assert answers["lp-cuts"].binaries <= answers["lp"].binaries


def test_a_spent_time_limit_leaves_the_pass_incomplete_but_sound() -> None:
    net, _, _, _, region = relu_question(3, sizes=(5, 12, 12, 12, 2), eps=0.3)
    rep = tighten_bounds(net, region, method="lp-cuts", time_limit=0.0)
    assert not rep.complete
    vals = net.forward(region.sample(net.n_inputs, 2000, np.random.default_rng(0)), all_nodes=True)
    for n in net.nodes:
        assert np.all(vals[n] >= rep.bounds[n][0] - 1e-9), n
        assert np.all(vals[n] <= rep.bounds[n][1] + 1e-9), n


@pytest.mark.parametrize("limit", [0.05, 0.13, 0.37, 0.61])   # the whole pass reads the clock 83 times
def test_the_cut_pass_stops_inside_at_its_time_limit(monkeypatch: pytest.MonkeyPatch, limit: float) -> None:
    """A clock that moves 10 ms per reading runs out inside the cut pass, between any two readings: the pass
    stops part way (never with a negative time left for a solve) and what it proved is sound."""
    from nnmip.passes import bounds as bounds_mod

    class Clock:
        now = 0.0

        @classmethod
        def perf_counter(cls) -> float:
            cls.now += 0.01
            return cls.now

    net, _, _, _, region = relu_question(3, sizes=(5, 12, 12, 12, 2), eps=0.3)
    full = tighten_bounds(net, region, method="lp-cuts")
    monkeypatch.setattr(bounds_mod, "time", Clock)
    rep = tighten_bounds(net, region, method="lp-cuts", time_limit=limit)
    assert not rep.complete
    assert 0 < rep.lps < full.lps
    vals = net.forward(region.sample(net.n_inputs, 2000, np.random.default_rng(1)), all_nodes=True)
    for n in net.nodes:
        assert np.all(vals[n] >= rep.bounds[n][0] - 1e-9), n
        assert np.all(vals[n] <= rep.bounds[n][1] + 1e-9), n


def test_an_extended_relu_keeps_its_formulation_in_the_bound_lps() -> None:
    """The extended formulation is already the ideal one: lp-cuts leaves it in place (no cuts to add), so its
    bounds are exactly the plain LPs' over the extended model."""
    net, _, _, _, region = relu_question(0, sizes=(5, 12, 12, 12, 2), eps=0.3)
    ext = {"relu": "extended"}
    lp = tighten_bounds(net, region, method="lp", method_map=ext).bounds
    cut = tighten_bounds(net, region, method="lp-cuts", method_map=ext).bounds
    for n in net.nodes:
        np.testing.assert_array_equal(cut[n][0], lp[n][0])
        np.testing.assert_array_equal(cut[n][1], lp[n][1])


def test_cli_and_language_take_lp_cuts(tmp_path: Path) -> None:
    p = tmp_path / "net.onnx"
    onnx.save(mlp_onnx(mlp_layers([4, 10, 10, 3], 3), "relu"), p)
    out = {}
    for tighten in ("lp", "lp-cuts"):
        js = tmp_path / f"{tighten}.json"
        rc = main(["verify", "--onnx", str(p), "--point", "0.3,0.6,0.2,0.8", "--linf", "0.3", "--domain", "0", "1",
                   "--maximize", "1,0,-1", "--tighten", tighten, "-q", "--json", str(js)])
        assert rc == 0
        out[tighten] = json.loads(js.read_text())
    assert out["lp-cuts"]["bound"] == pytest.approx(out["lp"]["bound"], abs=1e-6)
    assert out["lp-cuts"]["bounds"]["method"] == "lp-cuts"
    src = tmp_path / "q.nnmip"
    src.write_text(
        "network f(x: 2 real[-1, 1]) {\n"
        "    h = dense(x, 3, weights=[[1, -1], [0.5, 2], [-1, 1]], bias=[0, -0.5, 0.25])\n"
        "    r = relu(h)\n"
        "    g = dense(r, 3, weights=[[1, 1, -1], [-1, 0, 1], [0.5, -0.5, 1]], bias=[0, 0.1, -0.1])\n"
        "    s = relu(g)\n"
        "    y = dense(s, 2, weights=[[1, 1, 0], [-1, 0, 1]], bias=[0, 0])\n"
        "}\n"
        "verify f {\n"
        "    input x in linf(0.5, around=[0.2, 0.4])\n"
        "    property = maximize([1, -1])\n"
        "    tighten = lp_cuts\n"
        "}\n")
    js = tmp_path / "q.json"
    assert main(["verify", str(src), "-q", "--json", str(js)]) == 0
    rep = json.loads(js.read_text())
    res = rep["results"][0] if "results" in rep else rep
    assert res["bounds"]["method"] == "lp-cuts"


def test_unknown_tighten_names_the_new_choice() -> None:
    net, x0, eps, coef, _ = relu_question(0)
    with pytest.raises(FormulationError, match="unknown bound method") as e:
        verify(net, [vs.linf(x0, eps)], vs.maximize(coef), tighten="lp_cut")
    assert any("lp-cuts" in note for d in e.value.diagnostics for note in d.notes)


@pytest.mark.parametrize("seed", range(3))
def test_compression_with_lp_cut_bounds_removes_at_least_the_lp_units_and_agrees(seed: int) -> None:
    from nnmip.drivers.compress import compress, sampled_difference
    from nnmip.drivers.verify import network_from_layers

    layers = [(W, b - 0.3) for W, b in mlp_layers([4, 14, 14, 14, 3], 40 + seed)]
    net = network_from_layers(layers, "relu")
    lo, hi = np.zeros(4), np.full(4, 0.8)
    plain = compress(net, lo, hi, method="lp")
    cut = compress(net, lo, hi, method="lp-cuts")
    assert cut.units_after < plain.units_after       # measured 12 / 23 / 21 against 20 / 25 / 23
    assert sampled_difference(net, cut.network, lo, hi, 20000, seed) <= 1e-12


def test_the_language_and_cli_compress_with_lp_cuts(tmp_path: Path) -> None:
    src = tmp_path / "c.nnmip"
    out = tmp_path / "small.npz"
    src.write_text(
        "network f(x: 2 real[0, 1]) {\n"
        "    h = dense(x, 3, weights=[[1, -1], [0.5, 2], [-1, -1]], bias=[0, -0.5, -3])\n"
        "    r = relu(h)\n"
        "    y = dense(r, 2, weights=[[1, 1, 1], [-1, 0, 1]], bias=[0, 0])\n"
        "}\n"
        f"compress f {{ domain = real[0, 1]; method = lp_cuts; output = \"{out}\" }}\n")
    assert main(["compress", str(src)]) == 0
    assert out.exists()
    p = tmp_path / "net.onnx"
    onnx.save(mlp_onnx(mlp_layers([3, 8, 8, 2], 5), "relu"), p)
    js = tmp_path / "c.json"
    assert main(["compress", "--onnx", str(p), "--domain", "0", "0.2", "--method", "lp-cuts",
                 "-o", str(tmp_path / "small.onnx"), "--json", str(js)]) == 0
    assert json.loads(js.read_text())["method"] == "lp-cuts"


def test_a_highs_session_takes_rows_and_gives_them_back() -> None:
    """Rows added to a HiGHS LP session cut its optimum; dropped, the session answers as a fresh one."""
    from nnmip.backends.highs import HighsLpSession
    from nnmip.formulations.verification import build_fixed_model

    net, _, _, _, region = relu_question(1, sizes=(5, 12, 12, 2), eps=0.3)
    fm = build_fixed_model(net, region, tighten_bounds(net, region, method="lp").bounds)
    j = int(fm.pre_cols[_hidden(net)[-1]][0])
    fresh = HighsLpSession(fm.model)
    status, y0 = fresh.maximize({j: 1.0})
    assert status == "optimal"
    assert fresh.x is not None
    ses = HighsLpSession(fm.model)
    base = ses.num_rows
    ses.maximize({j: 1.0})
    cut = np.zeros((1, fm.model.num_cols))
    cut[0, j] = 1.0
    ses.add_rows(cut, np.array([-np.inf]), np.array([fresh.x[j] - 0.1]))      # a_j <= optimum - 0.1
    assert ses.num_rows == base + 1
    assert ses.maximize({j: 1.0})[0] == "optimal"
    assert ses.x is not None
    assert ses.x[j] == pytest.approx(fresh.x[j] - 0.1, abs=1e-7)
    ses.drop_rows(base)
    assert ses.num_rows == base
    status, y = ses.maximize({j: 1.0}, time_limit=10.0)
    assert status == "optimal"
    assert ses.x is not None
    assert ses.x[j] == pytest.approx(fresh.x[j], abs=1e-7)
    assert y is not None
    assert y.shape == y0.shape


@pytest.mark.parametrize("seed", range(3))
def test_the_cut_rounds_in_one_session_are_sound_and_match_rounds_from_scratch(monkeypatch: pytest.MonkeyPatch,
                                                                              seed: int) -> None:
    """HiGHS runs the rounds in one LP session (cuts added as rows, dropped after each bound); a backend whose
    sessions take no rows solves each round from scratch.  Both are sound and agree on the units left unstable
    to within one; the session leaves its rows as they were after every bound."""
    from nnmip.backends import highs

    net, _, _, _, region = relu_question(seed, sizes=(5, 12, 12, 12, 2), eps=0.3)
    drops: list[int] = []
    real_drop = highs.HighsLpSession.drop_rows

    def drop(self, first: int) -> None:  # type: ignore[no-untyped-def]
        real_drop(self, first)
        drops.append(self.num_rows - first)

    monkeypatch.setattr(highs.HighsLpSession, "drop_rows", drop)
    warm = tighten_bounds(net, region, method="lp-cuts")
    assert drops
    assert set(drops) == {0}
    monkeypatch.setattr(highs.HighsBackend, "capabilities",
                        dataclasses.replace(highs.HighsBackend.capabilities, lp_rows=False))
    before = len(drops)
    cold = tighten_bounds(net, region, method="lp-cuts")
    assert len(drops) == before                   # the rounds from scratch: no session rows
    assert abs(warm.unstable - cold.unstable) <= 1
    vals = net.forward(region.sample(net.n_inputs, 4000, np.random.default_rng(seed)), all_nodes=True)
    for rep in (warm, cold):
        for n in net.nodes:
            assert np.all(vals[n] >= rep.bounds[n][0] - 1e-9), n
            assert np.all(vals[n] <= rep.bounds[n][1] + 1e-9), n


def test_a_session_time_limit_counts_from_the_solve_not_from_the_session() -> None:
    """HiGHS compares its time limit with the run time of all of an object's solves: a limit given per solve must
    allow for the time spent before, or a long pass would see every later solve stop at once."""
    from nnmip.backends.highs import HighsLpSession
    from nnmip.formulations.verification import build_fixed_model

    net, _, _, _, region = relu_question(0, sizes=(8, 24, 24, 24, 2), eps=0.3)
    fm = build_fixed_model(net, region, tighten_bounds(net, region, method="lp").bounds)
    cols = [int(c) for n in _hidden(net) for c in fm.pre_cols[n]]
    ses = HighsLpSession(fm.model)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 0.3:           # 0.3 s of solves on this object
        for j in cols:
            ses.maximize({j: 1.0})
            ses.maximize({j: -1.0})
    assert ses.h.getRunTime() > 0.2
    for j in cols[:10]:
        assert ses.maximize({j: 1.0}, time_limit=0.1)[0] == "optimal"
