"""The extended (disjunctive) ReLU formulation (docs/formulations.md §19): valid at every point the network reaches,
an LP bound at least as tight as big-M's and as the big-M rows with ideal cuts to convergence, the same MILP
optimum, and the big-M fallbacks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from verify_nets import dag_network, max_case, random_dense, relu_question

from nnmip.backends import get_backend
from nnmip.drivers.relu_cuts import strengthen_root
from nnmip.drivers.verify import network_from_layers, verify
from nnmip.errors import FormulationError
from nnmip.formulations import verification as fv
from nnmip.formulations.verification import build_fixed_model, start_vector, with_case
from nnmip.ir import spec as vs
from nnmip.ir.ops import Input, ReLU, Sum
from nnmip.passes.bounds import propagate_bounds, tighten_bounds
from nnmip.solution import SolveOptions, Status


def _question(seed: int, sizes: tuple[int, ...] = (6, 16, 16, 3), eps: float = 0.2) -> tuple[Any, ...]:
    net, x0, _, coef, region = relu_question(seed, sizes, eps)
    return net, x0, coef, region, max_case(coef)


def _solve(model: Any) -> float:
    r = get_backend("highs").solve(model, SolveOptions(time_limit=60))
    assert r.status is Status.OPTIMAL
    return float(r.objective)


@pytest.mark.parametrize("seed", range(4))
def test_every_point_the_network_reaches_is_feasible(seed: int) -> None:
    """The forward pass at any input of the region, with its copies, satisfies every row and bound, and the
    objective is the network's score there."""
    net, _, coef, region, case = _question(seed)
    fm = build_fixed_model(net, region, tighten_bounds(net, region, method="symbolic").bounds,
                           method={"relu": "extended"})
    m = with_case(fm, case)
    copies = sum(ph.copy_cols.size for ph in fm.phases)
    assert copies > 0
    assert m.num_binaries == fm.unstable_units
    lo, hi = region.box(net.n_inputs)
    rng = np.random.default_rng(seed)
    for x in np.vstack([rng.uniform(lo, hi, size=(30, lo.size)), lo[None, :], hi[None, :]]):
        ws = start_vector(fm, net, x, m.num_cols)
        assert not np.isnan(ws).any()
        ax = m.A @ ws
        tol = 1e-9 * (1 + np.abs(m.row_lb[np.isfinite(m.row_lb)]).max())
        assert np.all(ax >= m.row_lb - tol)
        assert np.all(ax <= m.row_ub + tol)
        assert np.all(ws >= m.col_lb - 1e-12)
        assert np.all(ws <= m.col_ub + 1e-12)
        assert m.c @ ws + m.c0 == pytest.approx(float(coef @ net.forward(x[None, :])[0]), abs=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_the_lp_bound_is_the_hull_and_the_milp_optimum_is_big_ms(seed: int) -> None:
    """LP bound: extended <= ideal cuts to convergence (+ their safety margin) <= big-M, and extended strictly
    below big-M; MILP optimum: the same for both."""
    net, _, _, region, case = _question(seed)
    bm = tighten_bounds(net, region, method="symbolic").bounds
    big = with_case(build_fixed_model(net, region, bm), case)
    ext = with_case(build_fixed_model(net, region, bm, method={"relu": "extended"}), case)
    fc = build_fixed_model(net, region, bm, method={"relu": "ideal-cuts"})
    cut, rep = strengthen_root(with_case(fc, case), fc.cut_units, rounds=200)
    assert rep.rounds[-1].cuts == 0                       # separation converged: no violated cut is left
    lp_big, lp_ext, lp_cut = _solve(big.relaxed()), _solve(ext.relaxed()), _solve(cut.relaxed())
    assert lp_ext <= lp_cut + 1e-6
    assert lp_cut <= lp_big + 1e-9
    assert lp_ext < lp_big - 1e-4
    assert lp_ext == pytest.approx(lp_cut, abs=1e-5)      # both describe the hull of every unit
    assert _solve(ext) == pytest.approx(_solve(big), abs=1e-6)


def test_verify_with_the_extended_formulation_agrees_with_big_m() -> None:
    net, x0, coef, _, _ = _question(5, sizes=(5, 12, 12, 2), eps=0.25)
    runs = {relu: verify(net, [vs.linf(x0, 0.25)], vs.maximize(coef), domain=(0, 1), samples=0, bab="off",
                         tighten="symbolic", method={"relu": relu}) for relu in ("bigm", "extended")}
    a, b = runs["bigm"], runs["extended"]
    assert a.result == b.result
    assert b.value == pytest.approx(a.value, abs=1e-6)
    assert b.bound == pytest.approx(a.bound, abs=1e-6)
    assert b.counterexample is not None
    x = np.asarray(b.counterexample, dtype=np.float64)
    assert float(coef @ net.forward(x[None, :])[0]) == pytest.approx(b.value, abs=1e-9)   # the forward pass


def test_a_node_with_too_many_copies_keeps_big_m(monkeypatch: pytest.MonkeyPatch) -> None:
    net, _, _, region, case = _question(1)
    bm = tighten_bounds(net, region, method="symbolic").bounds
    monkeypatch.setattr(fv, "EXTENDED_MAX_COPIES", 10)
    fm = build_fixed_model(net, region, bm, method={"relu": "extended"})
    assert sum(ph.copy_cols.size for ph in fm.phases) == 0
    assert len(fm.fallbacks) == 2                         # both ReLU nodes, each with its count of copies
    assert all("big-M kept" in n and "more than 10" in n for n in fm.fallbacks)
    big = build_fixed_model(net, region, bm)
    assert fm.model.num_rows == big.model.num_rows
    assert fm.model.num_cols == big.model.num_cols


def test_an_infinite_input_bound_is_refused_with_its_code() -> None:
    net, _, _, region, _ = _question(2)
    bm = dict(tighten_bounds(net, region, method="symbolic").bounds)
    first = net.inputs_of([n for n, op in net.items() if op.kind == "relu"][0])[0]
    lo, hi = bm[first]
    lo, hi = lo.copy(), hi.copy()
    lo[0], hi[0] = 0.0, np.inf       # a stable unit without an upper bound: an input of the next layer's units
    bm[first] = (lo, hi)
    with pytest.raises(FormulationError) as exc:
        build_fixed_model(net, region, bm, method={"relu": "extended"})
    assert exc.value.diagnostics[0].code == "E0420"
    assert "the extended formulation needs a finite one" in str(exc.value)


def test_verify_reports_the_fallback_to_big_m(monkeypatch: pytest.MonkeyPatch) -> None:
    net, x0, coef, _, _ = _question(4, sizes=(4, 8, 8, 2), eps=0.2)
    monkeypatch.setattr(fv, "EXTENDED_MAX_COPIES", 3)
    r = verify(net, [vs.linf(x0, 0.2)], vs.maximize(coef), domain=(0, 1), samples=0, bab="off",
               tighten="interval", method={"relu": "extended"})
    assert any("relu extended would copy" in n and "big-M kept" in n for n in r.notes)
    big = verify(net, [vs.linf(x0, 0.2)], vs.maximize(coef), domain=(0, 1), samples=0, bab="off",
                 tighten="interval")
    assert r.value == pytest.approx(big.value, abs=1e-6)


def test_a_relu_after_a_residual_sum_keeps_big_m_and_every_point_stays_feasible() -> None:
    rng = np.random.default_rng(3)
    nodes = [("x", Input(dim=4), ()), ("h1", random_dense(rng, 4, 6), ("x",)), ("r1", ReLU(), ("h1",)),
             ("h2", random_dense(rng, 6, 6), ("r1",)), ("s", Sum(), ("r1", "h2")), ("r2", ReLU(), ("s",)),
             ("o", random_dense(rng, 6, 2), ("r2",))]
    net = dag_network(nodes)
    region = vs.Region((vs.linf(np.full(4, 0.5), 0.4),), np.zeros(4), np.ones(4))
    bm = tighten_bounds(net, region, method="symbolic").bounds
    fm = build_fixed_model(net, region, bm, method={"relu": "extended"})
    assert fm.units["r1"].unstable > 0
    assert fm.units["r2"].unstable > 0
    assert [ph.node for ph in fm.phases if ph.copy_cols.size] == ["r1"]
    assert fm.fallbacks == ["r2: relu extended needs a dense layer over columns before it; big-M kept"]
    m = with_case(fm, max_case(np.array([1.0, -1.0])))
    ext_rows = np.concatenate([np.arange(b.start, b.start + b.size) for b in m.row_blocks if b.node == "r1"])
    assert ext_rows.size == 4 * 4 + 4 * 16                # 4 rows per unstable unit, 4 per input copy
    for x in np.random.default_rng(0).uniform(0.1, 0.9, size=(20, 4)):
        ws = start_vector(fm, net, x, m.num_cols)       # the columns after the sum are unknown (NaN): a partial start
        ax = (m.A @ np.nan_to_num(ws, nan=0.0))[ext_rows]
        assert not np.isnan(ws[m.A[ext_rows].indices]).any()   # every column of the extended rows is known
        assert np.all(ax >= m.row_lb[ext_rows] - 1e-9)
        assert np.all(ax <= m.row_ub[ext_rows] + 1e-9)


def test_the_formulation_benchmark_compares_them_on_the_same_questions(tmp_path: Path,
                                                                      benchmark_script: Callable[[str], Any]) -> None:
    """``benchmarks/relu_cuts.py --formulations bigm,extended`` on two small networks: the same optima."""
    mod = benchmark_script("relu_cuts")
    out = tmp_path / "f.json"
    assert mod.main(["--instances", "2", "--sizes", "5", "8", "8", "2", "--eps", "0.3", "--time-limit", "30",
                     "--formulations", "bigm,extended", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 2
    for r in rows:
        assert r["extended"]["value"] == pytest.approx(r["bigm"]["value"], abs=1e-6)
        assert not r["extended"]["timed_out"]


def test_one_unit_by_hand_the_lp_is_the_hull_and_big_m_is_not() -> None:
    """``y = max(0, x1 + x2 - 1)`` on ``[0, 1]^2``, objective ``y - 0.9 x1``.  The hull of the graph is spanned by
    the box's corners (values 0, -0.9, 0 and 1 - 0.9 at (0,0), (1,0), (0,1), (1,1); ``a = 0`` meets the box only at
    two of them), so its LP maximum is 0.1.  Big-M's LP reaches 0.5 at ``x = (0, 1)``, ``d = 1/2``:
    ``y <= a + 1 - d = 1/2`` and ``y <= d = 1/2``."""
    net = network_from_layers([(np.array([[1.0, 1.0]]), np.array([-1.0])), (np.array([[1.0]]), np.array([0.0]))],
                              "relu")
    region = vs.Region((vs.box(np.zeros(2), np.ones(2)),))
    bm = propagate_bounds(net, region)
    lp = {}
    for relu in ("bigm", "extended"):
        fm = build_fixed_model(net, region, bm, method={"relu": relu})
        c = np.zeros(fm.model.num_cols)
        c[fm.out.coef.indices] = fm.out.coef.data                 # the network's output
        c[fm.x_cols] -= np.array([0.9, 0.0])
        lp[relu] = _solve(fm.model.replace(c=c, c0=0.0, sense="max").relaxed())
    assert lp["extended"] == pytest.approx(0.1, abs=1e-9)
    assert lp["bigm"] == pytest.approx(0.5, abs=1e-6)               # the bounds' safety margin moves it by 1e-7
