"""Optimisation questions start the MILP from a gradient-ascent input: ``pgd_ascent``, ``start_vector``, the
HiGHS settings that go with a start, and answers equal to those of the MILP without it."""

from __future__ import annotations

from typing import Any

import highspy
import numpy as np
import pytest
from verify_nets import max_case as _case
from verify_nets import mlp_layers
from verify_nets import relu_question as _question

from nnmip.backends import get_backend, is_installed
from nnmip.backends import highs as highs_backend
from nnmip.backends.highs import HighsBackend
from nnmip.drivers import bab as bb
from nnmip.drivers.relu_cuts import strengthen_root
from nnmip.drivers.verify import network_from_layers, verify
from nnmip.formulations.verification import build_fixed_model, start_vector, with_case
from nnmip.ir import spec as vs
from nnmip.passes.bounds import tighten_bounds
from nnmip.solution import SolveOptions


@pytest.mark.parametrize("relu", ["bigm", "ideal-cuts", "extended"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_start_vector_satisfies_every_row_and_scores_the_forward_pass(seed: int, relu: str) -> None:
    net, _, _, coef, region = _question(seed)
    fm = build_fixed_model(net, region, tighten_bounds(net, region, method="lp").bounds, method={"relu": relu})
    m = with_case(fm, _case(coef))
    assert m.num_binaries > 0
    if relu == "ideal-cuts":   # the rows the MILP gets: the big-M rows and the root rounds of ideal cuts
        rows = m.num_rows
        m, rr = strengthen_root(m, fm.cut_units, rounds=5)
        assert rr.cuts > 0
        assert m.num_rows == rows + rr.cuts
    lo, hi = region.box(net.n_inputs)
    for x in np.random.default_rng(seed).uniform(lo, hi, size=(20, lo.size)):
        ws = start_vector(fm, net, x, m.num_cols)
        assert not np.isnan(ws).any()                    # a ReLU chain: every column is known
        ax = m.A @ ws
        assert np.all(ax >= m.row_lb - 1e-9)
        assert np.all(ax <= m.row_ub + 1e-9)
        assert np.all(ws >= m.col_lb - 1e-9)
        assert np.all(ws <= m.col_ub + 1e-9)
        b = m.vtype == "B"
        assert set(np.unique(ws[b])) <= {0.0, 1.0}
        assert m.c @ ws + m.c0 == pytest.approx(float(coef @ net.forward(x[None, :])[0]), abs=1e-9)


def test_start_vector_leaves_unknown_columns_nan_for_step_units() -> None:
    net = network_from_layers(mlp_layers([4, 8, 2], 3), "step")
    x0 = np.full(4, 0.5)
    region = vs.Region((vs.linf(x0, 0.3),), None, None)
    fm = build_fixed_model(net, region, tighten_bounds(net, region, method="interval").bounds)
    ws = start_vector(fm, net, x0)
    assert np.array_equal(ws[fm.x_cols], x0)
    assert np.isnan(ws[fm.model.vtype == "B"]).all()     # no ReLU phases: the step binaries stay unknown


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_pgd_ascent_finds_a_forward_pass_value_no_better_than_the_optimum(seed: int) -> None:
    net, x0, eps, coef, region = _question(seed)
    chain = bb.relu_chain(net)
    assert chain is not None
    lo, hi = region.box(net.n_inputs)
    rows = bb.Rows.of([_case(coef)])
    found = bb.pgd_ascent(chain, lo, hi, rows, 0, restarts=32, steps=30, seed=seed)
    assert found is not None
    x, value = found
    assert np.all(x >= lo)
    assert np.all(x <= hi)
    assert value == pytest.approx(float(coef @ net.forward(x[None, :])[0]), abs=1e-12)
    assert value >= float(coef @ net.forward(0.5 * (lo + hi)[None, :])[0])   # the centre is one of the starts
    fm = build_fixed_model(net, region, tighten_bounds(net, region, method="lp").bounds)
    raw = get_backend("highs").solve(with_case(fm, _case(coef)), SolveOptions(mip_gap=1e-9))
    assert value <= raw.bound + 1e-7


def test_pgd_ascent_returns_none_when_the_time_is_up() -> None:
    class Over:
        def expired(self) -> bool:
            return True

    net, _, _, coef, region = _question(0)
    lo, hi = region.box(net.n_inputs)
    assert bb.pgd_ascent(bb.relu_chain(net), lo, hi, bb.Rows.of([_case(coef)]), 0, deadline=Over()) is None


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[SolveOptions]:
    seen: list[SolveOptions] = []
    real = HighsBackend.solve

    def solve(self: HighsBackend, model: Any, opts: SolveOptions) -> Any:
        seen.append(opts)
        return real(self, model, opts)

    monkeypatch.setattr(HighsBackend, "solve", solve)
    return seen


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_the_optimum_with_a_start_equals_the_milp_without_one(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    net, x0, eps, coef, region = _question(seed, sizes=(8, 24, 24, 3), eps=0.25)
    seen = _spy(monkeypatch)
    r = verify(net, [vs.linf(x0, eps)], vs.maximize(coef), domain=(0, 1), options=SolveOptions(threads=1))
    assert r.result == "certified"
    assert not r.timed_out
    milp_opts = [o for o in seen if o.mip_gap == 1e-6]
    assert milp_opts
    assert milp_opts[-1].warm_start is not None
    assert milp_opts[-1].focus == "bound"
    # the same question without a start, with HiGHS's own settings, on the model built here
    fm = build_fixed_model(net, region, tighten_bounds(net, region, method="lp").bounds)
    raw = get_backend("highs").solve(with_case(fm, _case(coef)), SolveOptions(mip_gap=1e-9, threads=1))
    assert raw.objective is not None
    assert r.value == pytest.approx(raw.objective, abs=1e-6)
    assert r.bound == pytest.approx(raw.objective, abs=1e-6)
    # the value is the forward pass of the returned input
    assert r.value == pytest.approx(float(coef @ net.forward(r.counterexample[None, :])[0]), abs=1e-12)


def test_a_network_with_step_units_gets_no_start(monkeypatch: pytest.MonkeyPatch) -> None:
    net = network_from_layers(mlp_layers([4, 8, 2], 5), "step")
    seen = _spy(monkeypatch)
    verify(net, [vs.linf(np.full(4, 0.5), 0.3)], vs.maximize([1.0, -1.0]))
    assert seen
    assert all(o.warm_start is None and o.focus is None for o in seen)


def test_bound_focus_settings_yield_to_solver_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(highs_backend.BOUND_FOCUS, "no_such_highs_option", 1)   # an older HiGHS: skipped
    h = highspy.Highs()
    HighsBackend()._set_options(h, SolveOptions(focus="bound", solver_options={"mip_heuristic_effort": 0.5}))
    assert h.getOptionValue("mip_heuristic_effort")[1] == 0.5
    assert h.getOptionValue("mip_allow_cut_separation_at_nodes")[1] is False
    h2 = highspy.Highs()
    HighsBackend()._set_options(h2, SolveOptions())
    assert h2.getOptionValue("mip_allow_cut_separation_at_nodes")[1] is True    # no focus: HiGHS's defaults


def test_the_bound_focus_names_real_highs_options() -> None:
    h = highspy.Highs()
    for key, value in highs_backend.BOUND_FOCUS.items():
        assert h.setOptionValue(key, value).name == "kOk", key


def test_focus_takes_bound_or_none_only() -> None:
    from nnmip.errors import ParameterError

    with pytest.raises(ParameterError):
        SolveOptions(focus="speed")


# ------------------------------------------------------------------------------------------------------------
# ideal cuts in the solver's tree (Gurobi's user-cut callback)
def test_cut_rows_never_cut_off_a_point_the_network_reaches() -> None:
    from nnmip.formulations.ideal import cut_rows

    for seed in range(3):
        net, _, _, coef, region = _question(seed, sizes=(6, 16, 16, 3), eps=0.3)
        fm = build_fixed_model(net, region, tighten_bounds(net, region, method="lp").bounds,
                               method={"relu": "ideal-cuts"})
        m = fm.model
        rng = np.random.default_rng(seed)
        lo, hi = region.box(net.n_inputs)
        reached = [start_vector(fm, net, x) for x in rng.uniform(lo, hi, size=(30, lo.size))]
        offered = 0
        for _ in range(20):   # LP-like points: random columns inside the bounds, binaries fractional
            z = rng.uniform(np.maximum(m.col_lb, -5), np.minimum(m.col_ub, 5))
            A, rhs, blocks = cut_rows(fm.cut_units, z, m.col_lb, m.col_ub, m.num_cols)
            assert A.shape == (rhs.size, m.num_cols)
            assert sum(n for _, n in blocks) == rhs.size
            offered += rhs.size
            if rhs.size:
                assert np.all(A @ z > rhs)                     # each cut is violated where it was separated
            for w in reached:
                assert np.all(A @ w <= rhs + 1e-9)
        assert offered > 0


gurobi = pytest.mark.skipif(not is_installed("gurobi"), reason="gurobipy is not installed (optional extra)")
#: the backends that take cuts in their tree, each skipped when not installed
CUT_SOLVERS = [pytest.param("gurobi", marks=gurobi),
               pytest.param("scip", marks=pytest.mark.skipif(not is_installed("scip"),
                                                             reason="pyscipopt is not installed (optional extra)"))]
#: no presolve, solver cuts or heuristics, so that the separator's cut is what closes the toy problem
BARE = {"gurobi": {"Presolve": 0, "Cuts": 0, "Heuristics": 0},
        "scip": {"presolving/maxrounds": 0}}


def _toy() -> Any:
    """max c . z over six binaries with sum z <= 2.5 (c = 1.0, 1.1, ..., 1.5): the LP optimum has sum z = 2.5 and
    violates the cut sum z <= 2, which every integer point satisfies; with it the root LP is integral."""
    from nnmip.model import ModelBuilder

    b = ModelBuilder("cut")
    cols = b.add_cols("v", "z", 6, vtype="B")
    b.add_rows_coo("v", "sum", np.zeros(6, dtype=np.int64), cols, np.ones(6), -np.inf, 2.5, 1)
    return b.build("max").replace(c=np.linspace(1.0, 1.5, 6))


@pytest.mark.parametrize("solver", CUT_SOLVERS)
def test_the_solver_calls_the_separator_and_keeps_its_cuts(solver: str) -> None:
    import scipy.sparse as sp

    seen: list[np.ndarray] = []

    def sep(x: np.ndarray) -> tuple[sp.csr_array, np.ndarray]:
        seen.append(x.copy())
        if x.sum() > 2 + 1e-6:
            return sp.csr_array(np.ones((1, 6))), np.array([2.0])
        return sp.csr_array((0, 6)), np.zeros(0)

    raw = get_backend(solver).solve(_toy(), SolveOptions(threads=1, cut_separator=sep, solver_options=BARE[solver]))
    assert raw.objective == pytest.approx(2.9)
    assert seen
    assert seen[0].sum() == pytest.approx(2.5)                   # the first relaxation violates the cut ...
    assert all(z.sum() <= 2 + 1e-6 for z in seen[1:])            # ... and every later one keeps it
    assert raw.nodes == 1                                        # the cut closes the root: no branching


@pytest.mark.parametrize("solver", CUT_SOLVERS)
def test_a_failing_separator_is_logged_and_dropped(solver: str, caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    def broken(x: np.ndarray) -> Any:
        calls.append(1)
        raise RuntimeError("separator bug")

    with caplog.at_level("ERROR", logger=f"nnmip.backends.{solver}"):
        raw = get_backend(solver).solve(_toy(), SolveOptions(threads=1, cut_separator=broken,
                                                             solver_options=BARE[solver]))
    assert raw.objective == pytest.approx(2.9)
    assert len(calls) == 1                                       # not called again after it failed
    assert "cut separator failed" in caplog.text


@pytest.mark.parametrize("solver", CUT_SOLVERS)
@pytest.mark.parametrize("seed", [0, 2])
def test_ideal_cuts_in_the_solvers_tree_give_the_highs_optimum(seed: int, solver: str) -> None:
    net, x0, _, coef, _ = _question(seed, sizes=(8, 24, 24, 3))
    q = ([vs.linf(x0, 0.3)], vs.maximize(coef))
    rt = verify(net, *q, domain=(0, 1), solver=solver, method={"relu": "ideal-cuts", "cuts": "tree"},
                options=SolveOptions(threads=1))
    root = verify(net, *q, domain=(0, 1), solver=solver, method={"relu": "ideal-cuts"},
                  options=SolveOptions(threads=1))
    rh = verify(net, *q, domain=(0, 1), solver="highs", options=SolveOptions(threads=1))
    assert not any("solver's tree" in n for n in root.notes)     # the default: root rounds only
    assert root.value == pytest.approx(rh.value, abs=1e-6)
    assert rt.result == rh.result == "certified"
    assert rt.value == pytest.approx(rh.value, abs=1e-6)
    assert any(n.startswith("ideal ReLU cuts in the solver's tree") for n in rt.notes)


def test_an_unknown_cuts_choice_is_refused_before_any_work() -> None:
    from nnmip.errors import NnmipError

    net, x0, eps, coef, _ = _question(0)
    with pytest.raises(NnmipError) as exc:
        verify(net, [vs.linf(x0, eps)], vs.maximize(coef), method={"relu": "ideal-cuts", "cuts": "everywhere"})
    assert exc.value.diagnostics[0].code == "E0427"


def test_samples_give_a_start_without_the_bound_focus_on_l1_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    # the ascent runs on box and linf sets only: on an l1 ball the start comes from sampling, and the solver keeps
    # its own search settings
    net, x0, _, coef, _ = _question(1)
    seen = _spy(monkeypatch)
    r = verify(net, [vs.l1(x0, 0.8)], vs.maximize(coef), domain=(0, 1), options=SolveOptions(threads=1))
    assert r.result == "certified"
    milp = [o for o in seen if o.mip_gap == 1e-6]
    assert milp[-1].warm_start is not None
    assert milp[-1].focus is None


def test_a_solver_input_outside_a_halfspace_set_is_pulled_inside(monkeypatch: pytest.MonkeyPatch) -> None:
    # a solver input a rounding error outside the set: the value reported is the forward pass of a point inside
    net, x0, eps, coef, _ = _question(2)
    opt = verify(net, [vs.linf(x0, eps)], vs.maximize(coef), domain=(0, 1)).counterexample
    lo, hi = np.maximum(x0 - eps, 0), np.minimum(x0 + eps, 1)
    i = int(np.argmax(np.minimum(opt - lo, hi - opt)))             # a coordinate inside the box at the optimum
    A = np.eye(1, x0.size, i)                                      # x_i <= opt_i: tight at the same optimum
    b = opt[i:i + 1].copy()
    real = HighsBackend.solve

    def nudged(self: HighsBackend, model: Any, opts: SolveOptions) -> Any:
        raw = real(self, model, opts)
        if raw.x is not None and opts.mip_gap == 1e-6:
            raw.x = raw.x.copy()
            raw.x[i] = b[0] + 1e-12                                # inside the box, just outside the halfspace
        return raw

    monkeypatch.setattr(HighsBackend, "solve", nudged)
    sets = [vs.linf(x0, eps), vs.halfspaces(A, b)]
    r = verify(net, sets, vs.maximize(coef), domain=(0, 1), options=SolveOptions(threads=1))
    region = vs.Region(tuple(sets), np.zeros(x0.size), np.ones(x0.size))
    assert r.counterexample is not None
    assert region.contains(r.counterexample[None, :], tol=0.0)[0]
    assert r.value == pytest.approx(float(coef @ net.forward(r.counterexample[None, :])[0]), abs=1e-12)
    assert r.value <= r.bound + 1e-9


def test_cuts_tree_where_it_cannot_apply_says_so() -> None:
    net, x0, eps, coef, _ = _question(0)
    r = verify(net, [vs.linf(x0, eps)], vs.maximize(coef), domain=(0, 1), method={"relu": "ideal-cuts", "cuts": "tree"})
    assert any(n.startswith("cuts 'tree': solver 'highs' takes no cuts in its tree") for n in r.notes)
    r = verify(net, [vs.linf(x0, eps)], vs.maximize(coef), domain=(0, 1), method={"cuts": "tree"})
    assert any(n.startswith("cuts 'tree': there are no ideal cuts") for n in r.notes)


def test_contains_point_is_exact_membership_of_one_input() -> None:
    region = vs.Region((vs.halfspaces(np.array([[1.0, 1.0]]), np.array([1.0])),), np.zeros(2), np.ones(2))
    assert region.contains_point(np.array([0.5, 0.5]))                 # on the halfspace's boundary
    assert not region.contains_point(np.array([0.5, 0.5 + 1e-12]))     # no tolerance, unlike contains()
    assert region.contains(np.array([[0.5, 0.5 + 1e-12]]))[0]
    assert not region.contains_point(np.array([-1e-12, 0.0]))          # outside the domain box
