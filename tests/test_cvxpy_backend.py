"""The cvxpy backend: array mapping only (rows, bounds, integrality, soc / rsoc cones), hand-computed optima."""

from __future__ import annotations

import numpy as np
import pytest

from nnmip.backends import get_backend, is_installed
from nnmip.errors import BackendUnavailable
from nnmip.model import Affine, Cone, ModelBuilder
from nnmip.solution import SolveOptions, Status

pytestmark = pytest.mark.skipif(not is_installed("cvxpy"), reason="cvxpy is not installed")


def mi_solver() -> str:
    import cvxpy as cp

    for s in ("GUROBI", "HIGHS", "SCIP", "SCIPY", "GLPK_MI", "CBC"):
        if s in cp.installed_solvers():
            return s
    pytest.skip("cvxpy has no mixed-integer solver installed")


def row(b: ModelBuilder, cols: list[int], coefs: list[float], lb: float = -np.inf, ub: float = np.inf) -> None:
    expr = Affine.from_cols(np.array(cols), np.array(coefs, dtype=np.float64)).sum(axis=0)
    b.add_rows("r", f"r{b.num_rows}", expr.reshape((1,)), lb, ub)


def test_lp_with_ranged_rows_matches_hand_optimum() -> None:
    # min -(3x + 2y + z): 1 <= x + y <= 4, -2 <= x - y <= 1.5, y + z == 2, 0 <= x <= 3, y, z >= 0 -> -11.5
    b = ModelBuilder()
    x, y, z = b.add_cols("n", "x", 3, lb=0.0, ub=np.array([3.0, np.inf, np.inf]))
    row(b, [x, y], [1, 1], 1, 4)
    row(b, [x, y], [1, -1], -2, 1.5)
    row(b, [y, z], [1, 1], 2, 2)
    b.add_objective_cols(np.array([x, y, z]), np.array([-3.0, -2.0, -1.0]))
    raw = get_backend("cvxpy").solve(b.build("min"), SolveOptions())
    assert raw.status is Status.OPTIMAL
    assert raw.objective == pytest.approx(-11.5, rel=1e-6)
    assert raw.x is not None
    assert raw.x[0] == pytest.approx(2.75, abs=1e-5)


def test_soc_cone() -> None:
    # min t s.t. ||(u, v)|| <= t, u = 3, v = 4 -> 5
    b = ModelBuilder()
    t = b.add_cols("n", "t", 1, lb=0.0)
    uv = b.add_cols("n", "w", 2, lb=np.array([3.0, 4.0]), ub=np.array([3.0, 4.0]))
    b.cones.append(Cone("soc", t.reshape(1, 1), uv.reshape(1, 2)))
    b.add_objective_cols(t, 1.0)
    raw = get_backend("cvxpy").solve(b.build("min"), SolveOptions())
    assert raw.status is Status.OPTIMAL
    assert raw.objective == pytest.approx(5.0, rel=1e-6)


def test_rsoc_cones_vectorised() -> None:
    # two cones: w^2 <= s z with (w, z) = (1, 0.5) -> s = 2 and (w1, w2, z) = (1, 1, 0.25) -> s = 8; min s1 + s2
    b = ModelBuilder()
    s = b.add_cols("n", "s", 2, lb=0.0)
    z = b.add_cols("n", "z", 2, lb=np.array([0.5, 0.25]), ub=np.array([0.5, 0.25]))
    w = b.add_cols("n", "w", 4, lb=np.array([1.0, 0.0, 1.0, 1.0]), ub=np.array([1.0, 0.0, 1.0, 1.0]))
    b.cones.append(Cone("rsoc", np.stack([s, z], axis=1), w.reshape(2, 2)))
    b.add_objective_cols(s, 1.0)
    raw = get_backend("cvxpy").solve(b.build("min"), SolveOptions())
    assert raw.status is Status.OPTIMAL
    assert raw.objective == pytest.approx(10.0, rel=1e-6)
    assert raw.x is not None
    assert raw.x[:2] == pytest.approx([2.0, 8.0], rel=1e-5)


def test_milp_agrees_with_highs() -> None:
    solver = mi_solver()
    # max 5a + 4b + 3c s.t. 2a + 3b + c <= 5, 4a + b + 2c <= 11, 3a + 4b + 2c <= 8, integer in [0, 10] -> 13
    b = ModelBuilder()
    cols = b.add_cols("n", "x", 3, lb=0.0, ub=10.0, vtype="I")
    for coefs, ub in (([2, 3, 1], 5), ([4, 1, 2], 11), ([3, 4, 2], 8)):
        row(b, list(cols), coefs, ub=ub)
    b.add_objective_cols(cols, np.array([5.0, 4.0, 3.0]))
    model = b.build("max")
    raw = get_backend("cvxpy").solve(model, SolveOptions(solver_options={"solver": solver}))
    ref = get_backend("highs").solve(model, SolveOptions(mip_gap=0.0))
    assert raw.status is Status.OPTIMAL
    assert ref.status is Status.OPTIMAL
    assert raw.objective == pytest.approx(ref.objective, rel=1e-6) == 13.0
    assert raw.x is not None
    assert np.allclose(raw.x, np.round(raw.x), atol=1e-6)


def test_infeasible_status() -> None:
    b = ModelBuilder()
    x = b.add_cols("n", "x", 1, lb=0.0, ub=1.0)
    row(b, [int(x[0])], [1.0], lb=2.0)
    b.add_objective_cols(x, 1.0)
    raw = get_backend("cvxpy").solve(b.build("min"), SolveOptions())
    assert raw.status in (Status.INFEASIBLE, Status.INF_OR_UNBD)
    assert raw.x is None


def test_mixed_integer_conic_without_a_solver_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import nnmip.backends.cvxpy as mod

    monkeypatch.setattr(mod, "_installed", lambda: ["CLARABEL", "SCS"])
    b = ModelBuilder()
    t = b.add_cols("n", "t", 1, lb=0.0)
    w = b.add_cols("n", "w", 1, lb=-1.0, ub=1.0, vtype="I")
    b.cones.append(Cone("soc", t.reshape(1, 1), w.reshape(1, 1)))
    with pytest.raises(BackendUnavailable, match="mixed-integer conic"):
        get_backend("cvxpy").solve(b.build("min"), SolveOptions())
    assert get_backend("cvxpy").supports_mi_cones is False  # type: ignore[attr-defined]
    caps = get_backend("cvxpy").capabilities
    assert caps.cones
    assert not caps.integer_cones


def test_a_time_limit_reported_as_inaccurate_infeasibility_is_no_proof() -> None:
    """cvxpy reports a Gurobi solve stopped by its time limit before any incumbent as 'infeasible_inaccurate':
    that is the time limit, never infeasibility (verify would otherwise report a bound of -inf)."""
    import cvxpy as cp

    if "GUROBI" not in cp.installed_solvers():
        pytest.skip("cvxpy without Gurobi (the solver that reports a time limit this way)")
    from verify_nets import relu_question

    from nnmip.drivers.verify import UNKNOWN, verify
    from nnmip.ir import spec as vs

    net, x0, eps, coef, _ = relu_question(0, sizes=(8, 24, 24, 2), eps=0.3)
    exact = verify(net, [vs.linf(x0, eps)], vs.maximize(coef), domain=(0, 1))
    r = verify(net, [vs.linf(x0, eps)], vs.maximize(coef), domain=(0, 1), solver="cvxpy", samples=0,
               options=SolveOptions(time_limit=0.01))
    assert r.result == UNKNOWN
    assert r.bound is not None
    assert r.bound >= exact.value - 1e-6          # a bound of the optimum, not -inf
    assert not any("no input of the set reaches it" in n for n in r.notes)
