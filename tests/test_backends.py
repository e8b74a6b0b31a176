"""Standard problems for the MILP backends (HiGHS, CBC via python-mip, Gurobi, SCIP via PySCIPOpt), with
hand-computed optima.

Every test runs on each *installed* backend; a missing module is skipped with a reason, and a Gurobi
size-limited licence that refuses a model skips that test.  Status and objective are compared (rtol 1e-6),
never ``x``: optima may be non-unique.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable

import numpy as np
import pytest
from conftest import MILP_BACKENDS

from nnmip.backends import get_backend, is_installed, solver_names
from nnmip.errors import BackendUnavailable, SolverError
from nnmip.model import Affine, Cone, MatrixModel, ModelBuilder
from nnmip.solution import Progress, RawResult, SolveOptions, Status

INSTALLED = [n for n in MILP_BACKENDS if is_installed(n)]


def run(name: str, model: MatrixModel, **kw: object) -> RawResult:
    """Solve with ``mip_gap=0`` unless given; skip when a size-limited licence refuses the model."""
    kw.setdefault("mip_gap", 0.0)
    try:
        return get_backend(name).solve(model, SolveOptions(**kw))  # type: ignore[arg-type]
    except BackendUnavailable as exc:
        if exc.diagnostics and exc.diagnostics[0].code == "E0506":
            pytest.skip(f"{name}: {exc}")
        raise


def row(b: ModelBuilder, cols: list[int], coefs: list[float], lb: float = -np.inf,
        ub: float = np.inf) -> None:
    """One row ``lb <= sum(coefs * x[cols]) <= ub``."""
    expr = Affine.from_cols(np.array(cols), np.array(coefs, dtype=np.float64)).sum(axis=0)
    b.add_rows("r", f"r{b.num_rows}", expr.reshape((1,)), lb, ub)


# -- standard problems: builder -> (model, status, objective) ------------------------------------------------
def lp_ranged() -> MatrixModel:
    # min -(3x + 2y + z):  1 <= x + y <= 4,  -2 <= x - y <= 1.5,  y + z == 2,  0 <= x <= 3, y, z >= 0
    # z = 2 - y, so maximise 3x + y + 2: x + y = 4 and x - y = 1.5 give x = 2.75, y = 1.25, z = 0.75 -> -11.5
    b = ModelBuilder()
    x, y, z = b.add_cols("n", "x", 3, lb=0.0, ub=np.array([3.0, np.inf, np.inf]))
    b.add_objective_cols(np.array([x, y, z]), np.array([-3.0, -2.0, -1.0]))
    row(b, [x, y], [1, 1], 1.0, 4.0)
    row(b, [x, y], [1, -1], -2.0, 1.5)
    row(b, [y, z], [1, 1], 2.0, 2.0)
    return b.build("min")


def knapsack() -> MatrixModel:
    # max 10a + 13b + 7c + 8d,  5a + 6b + 4c + 3d <= 10, binary: best {b, d} = 21 (weight 9)
    b = ModelBuilder()
    x = b.add_cols("n", "u", 4, vtype="B")
    b.add_objective_cols(x, np.array([10.0, 13.0, 7.0, 8.0]))
    row(b, list(x), [5, 6, 4, 3], ub=10.0)
    return b.build("max")


def integer_program() -> MatrixModel:
    # min -(5x + 4y): 6x + 4y <= 24, x + 2y <= 6, 0 <= x, y <= 10 integer.  LP optimum (3, 1.5) = 21;
    # integer points: (4, 0) = 20, (3, 1) = 19, (2, 2) = 18; 5x + 4y = 21 has no feasible integer point -> -20
    b = ModelBuilder()
    x, y = b.add_cols("n", "x", 2, lb=0.0, ub=10.0, vtype="I")
    b.add_objective_cols(np.array([x, y]), np.array([-5.0, -4.0]))
    row(b, [x, y], [6, 4], ub=24.0)
    row(b, [x, y], [1, 2], ub=6.0)
    return b.build("min")


def max_with_offset() -> MatrixModel:
    # max 2x + 3y + 7: x + y <= 4, x + 3y <= 6, x >= 0, y binary.  y = 1: x = 3 -> 9; y = 0: x = 4 -> 8
    # -> 9 + 7 = 16
    b = ModelBuilder()
    x = b.add_cols("n", "x", 1)[0]
    y = b.add_cols("n", "u", 1, vtype="B")[0]
    b.add_objective_cols(np.array([x, y]), np.array([2.0, 3.0]))
    b.add_objective(Affine.constant(np.array([7.0])))
    row(b, [x, y], [1, 1], ub=4.0)
    row(b, [x, y], [1, 3], ub=6.0)
    return b.build("max")


def infeasible_milp() -> MatrixModel:
    # 2x + 2y == 1 with x, y integer in [0, 5]: the LP relaxation is feasible, no integer point is
    b = ModelBuilder()
    x, y = b.add_cols("n", "x", 2, lb=0.0, ub=5.0, vtype="I")
    b.add_objective_cols(np.array([x, y]), 1.0)
    row(b, [x, y], [2, 2], 1.0, 1.0)
    return b.build("min")


def unbounded_lp() -> MatrixModel:
    # min -x - y: x - y <= 1, x, y >= 0 -> unbounded along (1, 1)
    b = ModelBuilder()
    x, y = b.add_cols("n", "x", 2)
    b.add_objective_cols(np.array([x, y]), -1.0)
    row(b, [x, y], [1, -1], ub=1.0)
    return b.build("min")


def free_columns() -> MatrixModel:
    # min t: t - x >= -3, t + x >= 3, x <= -2 (a row), x and t free -> t >= 3 - x >= 5, so 5 at x = -2
    b = ModelBuilder()
    x, t = b.add_cols("n", "x", 2, lb=-np.inf, ub=np.inf)
    b.add_objective_cols(np.array([t]), 1.0)
    row(b, [t, x], [1, -1], lb=-3.0)
    row(b, [t, x], [1, 1], lb=3.0)
    row(b, [x], [1], ub=-2.0)
    return b.build("min")


def mixed_equality_milp() -> MatrixModel:
    # min 3a + 2b + 4c + w: a + b + c == 2 (binaries), w >= 1.5 - 2a - 0.5b (w >= 0, continuous), w <= 1
    # {a, b}: 5 + 0 = 5;  {a, c}: 7;  {b, c}: 6 + 1 = 7 -> 5
    b = ModelBuilder()
    u = b.add_cols("n", "u", 3, vtype="B")
    w = b.add_cols("n", "t", 1, lb=0.0, ub=1.0)[0]
    b.add_objective_cols(np.append(u, w), np.array([3.0, 2.0, 4.0, 1.0]))
    row(b, list(u), [1, 1, 1], 2.0, 2.0)
    row(b, [w, u[0], u[1]], [1, 2, 0.5], lb=1.5)
    return b.build("min")


STANDARD: dict[str, tuple[Callable[[], MatrixModel], Status, float | None]] = {
    "lp_ranged": (lp_ranged, Status.OPTIMAL, -11.5),
    "knapsack": (knapsack, Status.OPTIMAL, 21.0),
    "integer": (integer_program, Status.OPTIMAL, -20.0),
    "max_offset": (max_with_offset, Status.OPTIMAL, 16.0),
    "infeasible_milp": (infeasible_milp, Status.INFEASIBLE, None),
    "free_columns": (free_columns, Status.OPTIMAL, 5.0),
    "mixed_equality": (mixed_equality_milp, Status.OPTIMAL, 5.0),
}


@pytest.mark.parametrize("case", list(STANDARD))
def test_standard_problem(milp_solver: str, case: str) -> None:
    build, status, objective = STANDARD[case]
    model = build()
    res = run(milp_solver, model)
    assert res.solver == milp_solver
    assert res.status is status, res.message
    if objective is None:
        assert res.x is None
        assert res.objective is None
        return
    assert res.objective == pytest.approx(objective, rel=1e-6, abs=1e-9)
    assert res.x is not None
    assert res.x.shape == (model.num_cols,)
    assert res.x.dtype == np.float64
    assert model.max_violation(res.x) <= 1e-6
    assert model.objective_value(res.x) == pytest.approx(objective, rel=1e-6, abs=1e-9)
    assert res.bound == pytest.approx(objective, rel=1e-6, abs=1e-9)
    assert res.seconds >= 0.0


def unbounded_milp() -> MatrixModel:
    # the same with x, y integer: x = y = k is feasible for every k
    b = ModelBuilder()
    x, y = b.add_cols("n", "x", 2, vtype="I")
    b.add_objective_cols(np.array([x, y]), -1.0)
    row(b, [x, y], [1, -1], ub=1.0)
    return b.build("min")


# The verdict each solver gives on an unbounded problem.  On the LP all of them can tell (Gurobi answers
# INF_OR_UNBD after presolve; the backend then re-solves with DualReductions=0 to decide).  On the MILP,
# HiGHS's presolve stops at "primal infeasible or unbounded" and cannot tell; CBC, Gurobi and SCIP can.
# INF_OR_UNBD is accepted only where it is listed here.
UNBOUNDED_VERDICT = {
    "lp": {"highs": Status.UNBOUNDED, "cbc": Status.UNBOUNDED, "gurobi": Status.UNBOUNDED, "scip": Status.UNBOUNDED},
    "milp": {"highs": Status.INF_OR_UNBD, "cbc": Status.UNBOUNDED, "gurobi": Status.UNBOUNDED,
             "scip": Status.UNBOUNDED},
}


@pytest.mark.parametrize("kind", ["lp", "milp"])
def test_unbounded(milp_solver: str, kind: str) -> None:
    res = run(milp_solver, unbounded_lp() if kind == "lp" else unbounded_milp())
    assert res.status in (Status.UNBOUNDED, Status.INF_OR_UNBD)
    assert res.status is UNBOUNDED_VERDICT[kind][milp_solver], res.message
    assert res.objective is None or not math.isfinite(res.objective)


def test_pure_lp_bound_equals_objective(milp_solver: str) -> None:
    model = lp_ranged()
    assert not model.is_mip
    res = run(milp_solver, model, mip_gap=None)
    assert res.status is Status.OPTIMAL
    assert res.bound == res.objective


def random_mdk(seed: int, n: int, m: int) -> MatrixModel:
    """A seeded multi-dimensional knapsack: max p @ x, W @ x <= W.sum(1) / 2, x binary."""
    rng = np.random.default_rng(seed)
    W = rng.integers(1, 100, size=(m, n)).astype(np.float64)
    p = (W.sum(axis=0) / m + rng.integers(-10, 10, size=n)).round()
    b = ModelBuilder()
    x = b.add_cols("k", "u", n, vtype="B")
    b.add_objective_cols(x, p)
    rows = Affine.from_cols(x).reshape((1, n)).matmul_t(W).reshape((m,))
    b.add_rows("k", "cap", rows, ub=W.sum(axis=1) / 2)
    return b.build("max")


def test_time_limit_stops_early(milp_solver: str) -> None:
    model = random_mdk(seed=7, n=60, m=15)
    res = run(milp_solver, model, time_limit=0.5)
    assert res.status in (Status.TIME_LIMIT, Status.OPTIMAL), res.message
    assert res.seconds < 30.0
    if res.x is not None:
        assert model.max_violation(res.x) <= 1e-6
        assert np.abs(res.x - np.round(res.x)).max() <= 1e-6
        assert res.objective == pytest.approx(model.objective_value(res.x), rel=1e-6)
    else:
        assert res.status is Status.TIME_LIMIT
        assert res.objective is None


def test_stop_request_interrupts(milp_solver: str) -> None:
    """A stop request from another thread (what Ctrl-C sends) ends the solve early and keeps the incumbent."""
    import threading

    from nnmip.solution import STOP

    if not get_backend(milp_solver).capabilities.interrupts:
        pytest.skip(f"{milp_solver} cannot be stopped from outside")
    model = random_mdk(seed=11, n=120, m=30)
    timer = threading.Timer(0.5, STOP.request)
    timer.start()
    try:
        res = run(milp_solver, model, time_limit=60.0)
    finally:
        timer.cancel()
        stopped = STOP.is_set()
        STOP.clear()
    assert stopped
    assert res.status in (Status.INTERRUPTED, Status.OPTIMAL), res.message
    assert res.seconds < 30.0
    if res.x is not None:
        assert model.max_violation(res.x) <= 1e-6
        assert res.objective == pytest.approx(model.objective_value(res.x), rel=1e-6)
    # a request made before the solve: nothing is solved
    STOP.request()
    try:
        early = run(milp_solver, knapsack())
    finally:
        STOP.clear()
    assert early.status is Status.INTERRUPTED
    assert early.x is None


@pytest.mark.parametrize("start", ["optimal", "zeros", "partial"])
def test_warm_start_accepted(milp_solver: str, start: str) -> None:
    model = random_mdk(seed=3, n=20, m=4)
    cold = run(milp_solver, model)
    assert cold.status is Status.OPTIMAL
    assert cold.x is not None
    ws = cold.x.copy() if start == "optimal" else np.zeros(model.num_cols)
    if start == "partial":  # NaN marks entries the solver should fill in
        ws[model.num_cols // 2:] = np.nan
    warm = run(milp_solver, model, warm_start=ws)
    assert warm.status is Status.OPTIMAL
    assert warm.objective == pytest.approx(cold.objective, rel=1e-6)


def test_progress_called(milp_solver: str) -> None:
    reports: list[Progress] = []
    model = random_mdk(seed=5, n=30, m=5)
    res = run(milp_solver, model, progress=reports.append)
    assert res.status is Status.OPTIMAL
    assert reports, "progress was never called"
    assert all(isinstance(p, Progress) and p.seconds >= 0.0 for p in reports)
    final = [p.incumbent for p in reports if p.incumbent is not None]
    assert final
    assert final[-1] == pytest.approx(res.objective, rel=1e-6)


def test_verbose_and_native_options(milp_solver: str) -> None:
    native = {"highs": {"presolve": "off"}, "cbc": {"cuts": 0}, "gurobi": {"Presolve": 0},
              "scip": {"presolving/maxrounds": 0}}[milp_solver]
    res = run(milp_solver, knapsack(), threads=1, solver_options=native)
    assert res.status is Status.OPTIMAL
    assert res.objective == pytest.approx(21.0)


@pytest.mark.parametrize("option", [{"no_such_option_xyz": 1}, {"threads": -3}])
def test_bad_native_option_raises(milp_solver: str, option: dict[str, object]) -> None:
    if milp_solver == "cbc" and "threads" in option:
        option = {"maxNodes": -5}  # python-mip's own ``threads`` takes any int
    with pytest.raises(SolverError):
        run(milp_solver, knapsack(), solver_options=option)


def random_milp(seed: int) -> MatrixModel:
    """20 binaries, 10 rows with mixed-sign coefficients (x = 0 is feasible), a ranged and an equality row."""
    rng = np.random.default_rng(seed)
    W = rng.integers(-5, 11, size=(10, 20)).astype(np.float64)
    lb = np.full(10, -np.inf)
    ub = rng.integers(5, 30, size=10).astype(np.float64)
    lb[0] = -20.0
    W[1] = 0.0
    W[1, :4] = [1.0, 1.0, -1.0, -1.0]
    lb[1] = ub[1] = 0.0
    b = ModelBuilder()
    x = b.add_cols("g", "u", 20, vtype="B")
    b.add_objective_cols(x, rng.integers(1, 20, size=20).astype(np.float64))
    b.add_rows("g", "rows", Affine.from_cols(x).reshape((1, 20)).matmul_t(W).reshape((10,)), lb, ub)
    return b.build("max")


@pytest.mark.skipif(len(INSTALLED) < 2, reason="cross-solver agreement needs two installed MILP backends")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cross_solver_agreement(seed: int) -> None:
    model = random_milp(seed)
    results: dict[str, RawResult] = {}
    for name in INSTALLED:
        try:
            results[name] = get_backend(name).solve(model, SolveOptions(mip_gap=0.0))
        except BackendUnavailable:
            continue
    objs = {n: r.objective for n, r in results.items()}
    assert all(r.status is Status.OPTIMAL for r in results.values()), objs
    first = next(iter(objs.values()))
    assert all(o == pytest.approx(first, rel=1e-6) for o in objs.values()), objs


# -- cones --------------------------------------------------------------------------------------------------
def soc_model() -> MatrixModel:
    # min t: ||(x1, x2)|| <= t, x1 + x2 = 2 -> x1 = x2 = 1, t = sqrt(2)
    b = ModelBuilder()
    t = b.add_cols("c", "t", 1, lb=-np.inf)[0]
    x1, x2 = b.add_cols("c", "x", 2, lb=-np.inf)
    b.add_objective_cols(np.array([t]), 1.0)
    row(b, [x1, x2], [1, 1], 2.0, 2.0)
    b.cones.append(Cone("soc", np.array([[t]]), np.array([[x1, x2]])))
    return b.build("min")


def rsoc_model() -> MatrixModel:
    # min u + 3: x^2 <= u * v with x = 2 and v = 1 fixed by bounds -> u = 4, objective 7
    b = ModelBuilder()
    u, v = b.add_cols("c", "h", 2, lb=0.0, ub=np.array([np.inf, 1.0]))
    x = b.add_cols("c", "x", 1, lb=2.0, ub=2.0)[0]
    b.add_objective_cols(np.array([u]), 1.0)
    b.c0 = 3.0
    row(b, [v], [1], lb=1.0)
    b.cones.append(Cone("rsoc", np.array([[u, v]]), np.array([[x]])))
    return b.build("min")


@pytest.mark.parametrize("name", ["highs", "cbc", "scip"])
def test_cones_refused(name: str) -> None:
    if not is_installed(name):
        pytest.skip(f"solver '{name}' is not installed")
    assert get_backend(name).capabilities.cones is False
    with pytest.raises(SolverError) as info:
        get_backend(name).solve(soc_model(), SolveOptions())
    assert info.value.diagnostics[0].code == "E0505"
    assert "cannot handle cone constraints" in str(info.value)


@pytest.mark.parametrize(("build", "objective"), [(soc_model, math.sqrt(2.0)), (rsoc_model, 7.0)])
def test_gurobi_cones(build: Callable[[], MatrixModel], objective: float) -> None:
    if not is_installed("gurobi"):
        pytest.skip("solver 'gurobi' is not installed")
    res = run("gurobi", build())
    assert res.status is Status.OPTIMAL, res.message
    assert res.objective == pytest.approx(objective, rel=1e-6)


# -- availability, licences, layering ------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "module"), [("highs", "highspy"), ("cbc", "mip"), ("gurobi", "gurobipy"),
                                                  ("scip", "pyscipopt")])
def test_missing_module_is_backend_unavailable(name: str, module: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    if not is_installed(name):
        pytest.skip(f"solver '{name}' is not installed")
    backend = get_backend(name)
    assert (backend.name, backend.module, backend.capabilities.integer) == (name, module, True)
    monkeypatch.setitem(sys.modules, module, None)  # makes ``import module`` raise ImportError
    with pytest.raises(BackendUnavailable) as info:
        backend.solve(knapsack(), SolveOptions())
    assert info.value.diagnostics[0].code == "E0504"


def test_gurobi_size_limit_is_backend_unavailable() -> None:
    if not is_installed("gurobi"):
        pytest.skip("solver 'gurobi' is not installed")
    b = ModelBuilder()
    x = b.add_cols("big", "u", 2500, vtype="B")
    b.add_objective_cols(x, 1.0)
    b.add_rows("big", "cap", Affine.from_cols(x).sum(axis=0).reshape((1,)), ub=10.0)
    error: BackendUnavailable | None = None
    try:
        res = get_backend("gurobi").solve(b.build("max"), SolveOptions())
    except BackendUnavailable as exc:
        error = exc
    if error is None:  # a full licence solves it
        assert res.objective == pytest.approx(10.0)
        return
    assert error.diagnostics[0].code == "E0506"
    assert "size-limited licence" in str(error)
    assert any(n.startswith("help:") for n in error.diagnostics[0].notes)


def test_capabilities_are_flags_not_names() -> None:
    """Every backend declares what it can do; early stopping is translated to each solver's own option."""
    from nnmip.backends import Capabilities

    for name in solver_names():
        if not is_installed(name):
            continue
        caps = get_backend(name).capabilities
        assert isinstance(caps, Capabilities)
        assert caps.integer
        assert caps.integer_cones <= caps.cones
    assert get_backend("highs").capabilities.early_stop
    assert get_backend("highs").capabilities.lp_duals
    # the solver-neutral option reaches HiGHS under its own name
    import highspy

    from nnmip.backends.highs import HighsBackend

    def target(opts: SolveOptions) -> float:
        h = highspy.Highs()
        HighsBackend()._set_options(h, opts)
        value = h.getOptionValue("objective_target")
        return float(value[-1] if isinstance(value, tuple) else value)   # (status, value) in some versions

    assert target(SolveOptions(stop_objective=0.5)) == 0.5
    assert target(SolveOptions(stop_objective=0.5, solver_options={"objective_target": 2.0})) == 2.0  # options win


@pytest.mark.skipif(not is_installed("cbc"), reason="python-mip is not installed")
@pytest.mark.parametrize(("code", "falls_back"), [(-6, True), (-11, True), (-9, False), (1, False)])
def test_a_crash_of_cbcs_program_falls_back_to_the_in_process_solve(monkeypatch: pytest.MonkeyPatch, code: int,
                                                                     falls_back: bool) -> None:
    # CBC's program aborting (SIGABRT, SIGSEGV) without a solution file: the same MILP is solved in process; a
    # kill (SIGKILL: nnmip's own safety net) or an ordinary failure stays an error
    from nnmip.backends import cbc

    if cbc._program() is None:
        pytest.skip("CBC's program is not available here")
    calls = []

    def crashed(*args: object, **kw: object) -> tuple[str, int, bool, bool]:
        calls.append(1)
        return "", code, False, False

    monkeypatch.setattr(cbc, "_run_program", crashed)
    if falls_back:
        res = run("cbc", integer_program(), time_limit=30.0)
        assert calls == [1]
        assert res.status is Status.OPTIMAL
        assert res.objective == pytest.approx(-20.0)      # the hand-computed optimum of integer_program
    else:
        with pytest.raises(SolverError):
            run("cbc", integer_program(), time_limit=30.0)
