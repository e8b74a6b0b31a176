"""Interval and LP/MILP bounds: sound (sampled forward values inside), ordered, and tighter where promised."""

from __future__ import annotations

import numpy as np
import pytest
from verify_nets import mlp_layers

from nnmip.drivers.verify import network_from_layers
from nnmip.errors import FormulationError
from nnmip.ir import spec as vs
from nnmip.model import ModelBuilder
from nnmip.passes.bounds import SAFETY, dual_bound, propagate_bounds, tighten_bounds, widen


def _samples(region: vs.Region, n: int, k: int, seed: int) -> np.ndarray:
    return region.sample(n, k, np.random.default_rng(seed))


@pytest.mark.parametrize("act", ["relu", "step", "sign"])
@pytest.mark.parametrize("seed", range(3))
def test_bounds_contain_forward_values_and_are_ordered(act: str, seed: int) -> None:
    net = network_from_layers(mlp_layers([5, 12, 12, 3], seed), act)
    x0 = np.random.default_rng(seed).random(5)
    region = vs.Region((vs.linf(x0, 0.25), vs.l1(x0, 0.6)), np.zeros(5), np.ones(5))
    ibp = propagate_bounds(net, region)
    sym = tighten_bounds(net, region, method="symbolic")
    lp = tighten_bounds(net, region, method="lp")
    milp = tighten_bounds(net, region, method="milp", bounds=lp.bounds)
    vals = net.forward(_samples(region, 5, 4000, seed), all_nodes=True)
    for n in net.nodes:
        v = vals[n]
        for bm in (ibp, sym.bounds, lp.bounds, milp.bounds):
            assert np.all(v >= bm[n][0] - 1e-9), n
            assert np.all(v <= bm[n][1] + 1e-9), n
        # tightening never loosens (beyond the safety margin)
        lo_w, hi_w = widen(*ibp[n])
        assert np.all(lp.bounds[n][0] >= lo_w - 1e-12)
        assert np.all(lp.bounds[n][1] <= hi_w + 1e-12)
        assert np.all(milp.bounds[n][0] >= lp.bounds[n][0] - 1e-12)
        assert np.all(milp.bounds[n][1] <= lp.bounds[n][1] + 1e-12)
    assert milp.unstable <= lp.unstable <= sym.unstable <= lp.unstable_interval
    assert lp.binaries_saved == lp.unstable_interval - lp.unstable >= 0


def test_lp_tightening_helps_on_deeper_layers() -> None:
    net = network_from_layers(mlp_layers([4, 16, 16, 16, 2], 3))
    region = vs.Region((vs.linf(np.full(4, 0.5), 0.2),))
    rep = tighten_bounds(net, region, method="lp")
    assert rep.lps > 0
    assert rep.unstable < rep.unstable_interval
    d = rep.to_dict()
    assert d["stable_units"] + d["unstable_units"] == d["units"] == 48


def test_interval_bounds_by_hand() -> None:
    # a = [1, -2] . x + 0.5 on x in [0, 1]^2 -> [-1.5, 1.5]; relu -> [0, 1.5]
    net = network_from_layers([(np.array([[1.0, -2.0]]), np.array([0.5])), (np.array([[3.0]]), np.array([0.0]))])
    # every affine bound is widened outward by SAFETY (1 + |b|), then by the rounding slack 4 N u P (N additions
    # on the way from the input, P the layer evaluated on magnitudes), so that rounding in the forward pass
    # cannot leave the interval
    bm = propagate_bounds(net, (np.zeros(2), np.ones(2)))
    u = 2.0 ** -53
    p0, n0 = 1.0 + 2.0 + 0.5, 3          # |W| [1, 1] + |b|; fan-in 2 plus the bias
    s0 = 4 * n0 * u * p0
    d = SAFETY * 2.5
    assert bm["fc0"][0][0] == (-1.5 - d) - s0
    assert bm["fc0"][1][0] == (1.5 + d) + s0
    assert bm["relu0"][0][0] == 0.0
    hi0 = (1.5 + d) + s0
    assert bm["relu0"][1][0] == hi0
    p1, n1 = 3.0 * p0, n0 + 2
    assert bm["fc1"][1][0] == 3.0 * hi0 + SAFETY * (1 + 3.0 * hi0) + 4 * n1 * u * p1


def test_lp_bound_by_hand_with_l1_ball() -> None:
    # a2 = relu(x0) + relu(x1) - 0.1 over the l1 ball |x|_1 <= 1: interval says 1.9, the LP 1.4 (the
    # relaxation of each relu on [-1, 1] is y <= (x + 1) / 2 and x0 + x1 <= 1), the truth is 0.9
    W1, W2 = np.eye(2), np.ones((1, 2))
    net = network_from_layers([(W1, np.zeros(2)), (W2, np.array([-0.1])), (np.ones((1, 1)), np.zeros(1))])
    region = vs.Region((vs.l1(np.zeros(2), 1.0),))
    ibp = propagate_bounds(net, region)
    assert ibp["fc1"][1][0] == pytest.approx(1.9)
    sym = tighten_bounds(net, region, method="symbolic")      # chord (x + 1) / 2, then the l1 dual norm
    assert sym.bounds["fc1"][1][0] == pytest.approx(1.4, abs=1e-6)
    sym_box = tighten_bounds(net, vs.Region((vs.box(-np.ones(2), np.ones(2)),)), method="symbolic")
    assert sym_box.bounds["fc1"][1][0] == pytest.approx(1.9, abs=1e-6)
    lp = tighten_bounds(net, region, method="lp")
    assert lp.bounds["fc1"][1][0] == pytest.approx(1.4, abs=1e-6)
    assert lp.bounds["fc1"][1][0] >= 1.4                     # widened, never below the LP optimum
    milp = tighten_bounds(net, region, method="milp")   # decides stability only: the unit is unstable
    assert 0.9 <= milp.bounds["fc1"][1][0] <= 1.4 + 1e-6
    # with bias -1.2 the LP still says 0.3 > 0 but the MILP proves the unit dead (max -0.2)
    net = network_from_layers([(W1, np.zeros(2)), (W2, np.array([-1.2])), (np.ones((1, 1)), np.zeros(1))])
    lp = tighten_bounds(net, region, method="lp")
    milp = tighten_bounds(net, region, method="milp")
    assert lp.bounds["fc1"][1][0] == pytest.approx(0.3, abs=1e-6)
    assert lp.unstable == 3
    assert milp.bounds["fc1"][1][0] == pytest.approx(-0.2, abs=1e-6)
    assert milp.unstable == 2


def test_dual_bound_holds_for_any_multipliers() -> None:
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    x = b.add_cols("n", "x", 4, lb=-1.0, ub=2.0)
    from nnmip.model import Affine

    A = rng.normal(size=(3, 4))
    b.add_rows("n", "r", Affine.from_cols(x.reshape(1, 4)).matmul_t(A).reshape((3,)), -1.0, 1.0)
    m = b.build("max")
    c = rng.normal(size=4)
    from scipy.optimize import linprog

    opt = -linprog(-c, A_ub=np.vstack([A, -A]), b_ub=np.r_[np.ones(3), np.ones(3)], bounds=[(-1, 2)] * 4,
                   method="highs").fun
    for _ in range(50):
        y = rng.normal(size=3)
        assert dual_bound(m, c, y) >= opt - 1e-9
    assert dual_bound(m, c, np.zeros(3)) == pytest.approx(float(np.sum(np.where(c > 0, 2 * c, -c))))


def test_widen_and_unknown_method() -> None:
    lo, hi = widen(np.array([-1.0, 0.0]), np.array([1.0, 0.0]))
    assert lo[0] == -1.0 - 2 * SAFETY
    assert hi[1] == SAFETY
    net = network_from_layers([(np.eye(2), np.zeros(2))])
    with pytest.raises(FormulationError) as e:
        tighten_bounds(net, vs.Region((vs.box(np.zeros(2), np.ones(2)),)), method="magic")
    assert e.value.diagnostics[0].code == "E0423"


def test_infinite_input_gives_infinite_not_nan_bounds() -> None:
    net = network_from_layers([(np.array([[0.0, 1.0]]), np.zeros(1))])
    bm = propagate_bounds(net, (np.array([-np.inf, 0.0]), np.array([np.inf, 1.0])))
    assert not np.isnan(bm["fc0"][0]).any()


@pytest.mark.parametrize("solver", ["cbc", "cvxpy"])
def test_lp_and_milp_tightening_run_in_the_chosen_solver(solver: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``solver="cbc"`` solves the bound LPs and MILPs with CBC (its LP session); a solver without LP sessions
    (cvxpy) lends HiGHS's for the LPs.  The bounds stay sound either way."""
    from nnmip.backends import get_backend, is_installed
    from nnmip.backends.cbc import CbcBackend, CbcLpSession
    from nnmip.backends.highs import HighsBackend, HighsLpSession

    if not is_installed(solver):
        pytest.skip(f"{solver} is not installed")
    used: list[str] = []
    for cls, tag in ((CbcLpSession, "cbc-lp"), (HighsLpSession, "highs-lp")):
        orig = cls.maximize
        monkeypatch.setattr(cls, "maximize", lambda self, c, orig=orig, tag=tag: (used.append(tag), orig(self, c))[1])
    for cls, tag in ((CbcBackend, "cbc-milp"), (HighsBackend, "highs-milp")):
        orig_solve = cls.solve
        monkeypatch.setattr(cls, "solve", lambda self, m, o, orig=orig_solve, tag=tag:
                            (used.append(tag), orig(self, m, o))[1])
    net = network_from_layers(mlp_layers([4, 6, 6, 2], 1))
    x0 = np.full(4, 0.5)
    region = vs.Region((vs.linf(x0, 0.3),))
    lp = tighten_bounds(net, region, method="lp", solver=solver)
    ref = tighten_bounds(net, region, method="lp", solver="highs")
    lp_tags = {t for t in used if t.endswith("-lp")}
    assert lp_tags == ({"cbc-lp", "highs-lp"} if solver == "cbc" else {"highs-lp"})
    assert lp.lps > 0
    vals = net.forward(_samples(region, 4, 3000, 1), all_nodes=True)
    for n in net.nodes:
        assert np.all(vals[n] >= lp.bounds[n][0] - 1e-9), n
        assert np.all(vals[n] <= lp.bounds[n][1] + 1e-9), n
        # the same LPs: the same bounds up to the solvers' tolerances (a warm-started HiGHS may be looser)
        assert np.all(lp.bounds[n][1] <= ref.bounds[n][1] + 1e-5), n
    if solver == "cbc":
        used.clear()
        milp = tighten_bounds(net, region, method="milp", solver="cbc", bounds=lp.bounds)
        assert milp.milps > 0
        assert "cbc-milp" in used
        assert "highs-milp" not in used
        assert get_backend("cbc").capabilities.lp_duals
