"""LP and MPS writers: golden text, read-back by HiGHS and CBC, exact numbers, names, gzip and errors.

Golden files live in ``tests/golden/`` (``tiny_milp.lp`` ...) and are compared as exact text.  To rewrite them
after an intended change run ``NNMIP_UPDATE_GOLDEN=1 python -m pytest tests/test_writers.py`` (a
``--update-golden`` option is honoured too when a conftest registers it) and review the diff.

The in-memory optimum comes from passing the MatrixModel to HiGHS directly (``passModel``), independent of
the backends; every written file is read back with ``highspy`` and with python-mip's CBC and solved, and
the optima must agree.
"""

from __future__ import annotations

import gzip
import io
import math
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from nnmip.errors import NnmipError
from nnmip.io.lp import write_lp
from nnmip.io.mps import write_mps
from nnmip.io.writers import ExportError, write_model
from nnmip.model import Block, Cone, MatrixModel, ModelBuilder

highspy = pytest.importorskip("highspy")
mip = pytest.importorskip("mip")

GOLDEN = Path(__file__).resolve().parent / "golden"
IO_DIR = Path(__file__).resolve().parents[1] / "nnmip" / "io"
WRITERS = {"lp": write_lp, "mps": write_mps}
INF = np.inf


# ------------------------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------------------------
def tiny_milp() -> MatrixModel:
    """Minimisation: ranged, equality, >= and <= rows; free, upper-only, integer, binary and fixed columns.

    min x + 2y - z + 3u + k  s.t.  1 <= x + y <= 3,  y - z = 1,  k + u + x >= 0.5,  0.1x + f <= 4,
    x in [-1, 5], y free, z <= 2, u binary, k integer >= -3, f = 0.5.
    z = y - 1 turns the objective into x + y + 1 + 3u + k; x + y = 1 at best, k = -3 (x = 5, u = 0): -1.
    """
    b = ModelBuilder(name="tiny_milp")
    x = b.add_cols("in", "x", 1, lb=-1.0, ub=5.0)
    y = b.add_cols("in", "y", 1, lb=-INF, ub=INF)
    z = b.add_cols("fc", "t", 1, lb=-INF, ub=2.0)
    u = b.add_cols("fc", "u", 1, vtype="B")
    k = b.add_cols("fc", "k", 1, lb=-3.0, ub=INF, vtype="I")
    f = b.add_cols("fc", "y", 1, lb=0.5, ub=0.5)
    cols = np.concatenate([x, y, z, u, k, f])
    X, Y, Z, U, K, F = range(6)
    assert list(cols) == [X, Y, Z, U, K, F]
    b.add_rows_coo("fc", "range", [0, 0], [X, Y], [1.0, 1.0], 1.0, 3.0, 1)
    b.add_rows_coo("fc", "eq", [0, 0], [Y, Z], [1.0, -1.0], 1.0, 1.0, 1)
    b.add_rows_coo("fc", "cover", [0, 0, 0], [K, U, X], [1.0, 1.0, 1.0], 0.5, INF, 1)
    b.add_rows_coo("fc", "cap", [0, 0], [X, F], [0.1, 1.0], -INF, 4.0, 1)
    b.add_objective_cols(np.array([X, Y, Z, U, K]), np.array([1.0, 2.0, -1.0, 3.0, 1.0]))
    return b.build("min")


def tiny_max() -> MatrixModel:
    """Maximisation with a constant: fixed binary, integer without upper bound, a free row and an empty row.

    max a + 2b + 0.5c + 1.5d - e + 2.5  s.t.  a + c + d <= 6.5,  (a - c free),  -1 <= (empty) <= 1,
    c - e = 2.5,  -1 <= a - d <= 0.3,  a in {0..4}, b = 1 (binary), c >= 0, d integer >= 0, e in [-2, 3].
    c = e + 2.5 gives 0.5c - e = 1.25 - 0.5e, best at e = -2 (c = 0.5); then a + d <= 6 with a - d in {-1, 0}
    gives a = d = 3: 3 + 2 + 0.25 + 4.5 + 2 + 2.5 = 14.25.
    """
    b = ModelBuilder(name="tiny_max")
    b.add_cols("net", "a", 1, lb=0.0, ub=4.0, vtype="I")
    b.add_cols("net", "b", 1, lb=1.0, ub=1.0, vtype="B")
    b.add_cols("net", "c", 1, lb=0.0, ub=INF)
    b.add_cols("net", "d", 1, lb=0.0, ub=INF, vtype="I")
    b.add_cols("net", "e", 1, lb=-2.0, ub=3.0)
    A, B, C, D, E = range(5)
    b.add_rows_coo("net", "cap", [0, 0, 0], [A, C, D], [1.0, 1.0, 1.0], -INF, 6.5, 1)
    b.add_rows_coo("net", "free", [0, 0], [A, C], [1.0, -1.0], -INF, INF, 1)
    b.add_rows_coo("net", "empty", [], [], [], -1.0, 1.0, 1)
    b.add_rows_coo("net", "link", [0, 0], [C, E], [1.0, -1.0], 2.5, 2.5, 1)
    b.add_rows_coo("net", "gap", [0, 0], [A, D], [1.0, -1.0], -1.0, 0.3, 1)
    b.add_objective_cols(np.array([A, B, C, D, E]), np.array([1.0, 2.0, 0.5, 1.5, -1.0]))
    b.c0 = 2.5
    b.notes.append("hand-made test model")
    return b.build("max")


def no_rows() -> MatrixModel:
    """No rows: min -x + 2y - 0.25k with x <= 3, y >= -1, k integer in [-2, 7]: -3 - 2 - 1.75 = -6.75."""
    b = ModelBuilder(name="no_rows")
    b.add_cols("n", "x", 1, lb=0.0, ub=3.0)
    b.add_cols("n", "y", 1, lb=-1.0, ub=INF)
    b.add_cols("n", "k", 1, lb=-2.0, ub=7.0, vtype="I")
    b.add_objective_cols(np.arange(3), np.array([-1.0, 2.0, -0.25]))
    return b.build("min")


CASES = {"tiny_milp": (tiny_milp, -1.0), "tiny_max": (tiny_max, 14.25), "no_rows": (no_rows, -6.75)}


def random_milp(seed: int) -> MatrixModel:
    """A small MILP, feasible (built around a point ``x0``) and bounded (costs on boxed columns only)."""
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 8)), int(rng.integers(0, 7))
    b = ModelBuilder(name=f"random_{seed}")
    x0 = np.zeros(n)
    cost = np.zeros(n)
    for j in range(n):
        vt = str(rng.choice(["C", "I", "B"], p=[0.5, 0.3, 0.2]))
        kind = str(rng.choice(["box", "free", "lower", "upper", "fixed"], p=[0.5, 0.1, 0.15, 0.1, 0.15]))
        step = 1.0 if vt != "C" else 0.25
        lo = float(rng.integers(-8, 5)) * step
        hi = lo + float(rng.integers(0, 9)) * step
        if vt == "B":
            lo, hi = (0.0, 1.0) if kind != "fixed" else (float(rng.integers(0, 2)),) * 2
            kind = "box"
        elif kind == "fixed":
            hi = lo
        elif kind == "free":
            lo, hi = -INF, INF
        elif kind == "lower":
            hi = INF
        elif kind == "upper":
            lo = -INF
        a = lo if np.isfinite(lo) else (hi - 3 * step if np.isfinite(hi) else -2 * step)
        c = hi if np.isfinite(hi) else a + 6 * step
        x0[j] = a + step * float(rng.integers(0, int(round((c - a) / step)) + 1))
        if np.isfinite(lo) and np.isfinite(hi):
            cost[j] = float(rng.integers(-8, 9)) * 0.25
        b.add_cols(f"v{j}", "x", 1, lb=lo, ub=hi, vtype=vt)
    awkward = np.array([0.1, 1.0 / 3.0, 1e-07, -0.7, 2.5e-3])
    dense = rng.integers(-8, 9, size=(m, n)) * 0.25
    dense[rng.random((m, n)) < 0.4] = 0.0
    pick = rng.random((m, n)) < 0.15
    dense[pick] = rng.choice(awkward, size=int(pick.sum()))
    ax = dense @ x0
    lb, ub = np.full(m, -INF), np.full(m, INF)
    for i in range(m):
        kind = str(rng.choice(["E", "G", "L", "R", "F"], p=[0.2, 0.25, 0.25, 0.2, 0.1]))
        slack = float(rng.integers(0, 6)) * 0.5
        if kind == "E":
            lb[i] = ub[i] = ax[i]
        elif kind == "G":
            lb[i] = ax[i] - slack
        elif kind == "L":
            ub[i] = ax[i] + slack
        elif kind == "R":
            lb[i], ub[i] = ax[i] - slack, ax[i] + float(rng.integers(1, 6)) * 0.3
    coo = sp.coo_array(dense)
    if m:
        b.add_rows_coo("rnd", "r", coo.row, coo.col, coo.data, lb, ub, m)
    b.add_objective_cols(np.arange(n), cost)
    b.c0 = float(rng.choice([0.0, 0.0, 1.75, -3.0, 0.1]))
    return b.build(str(rng.choice(["min", "max"])))


# ------------------------------------------------------------------------------------------------------------
# Solving
# ------------------------------------------------------------------------------------------------------------
def _quiet_highs() -> object:
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", 0.0)
    return h


def _highs_result(h: object) -> tuple[str, float | None]:
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kOptimal:
        return "optimal", float(h.getInfo().objective_function_value)
    return str(status), None


def solve_in_memory(model: MatrixModel) -> tuple[str, float | None]:
    """Solve ``model`` by passing its arrays to HiGHS (no file involved)."""
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = model.num_cols, model.num_rows
    lp.col_cost_, lp.offset_ = model.c, model.c0
    lp.col_lower_, lp.col_upper_ = model.col_lb, model.col_ub
    lp.row_lower_, lp.row_upper_ = model.row_lb, model.row_ub
    lp.sense_ = highspy.ObjSense.kMaximize if model.sense == "max" else highspy.ObjSense.kMinimize
    csc = sp.csc_array(model.A)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = model.num_cols, model.num_rows
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = csc.indptr, csc.indices, csc.data
    if model.is_mip:
        lp.integrality_ = [highspy.HighsVarType.kContinuous if t == "C" else highspy.HighsVarType.kInteger
                           for t in model.vtype]
    h = _quiet_highs()
    assert h.passModel(lp) == highspy.HighsStatus.kOk
    h.run()
    return _highs_result(h)


def read_highs(path: Path) -> object:
    h = _quiet_highs()
    assert h.readModel(str(path)) != highspy.HighsStatus.kError, f"HiGHS cannot read {path}"
    return h


def solve_highs(path: Path) -> tuple[str, float | None]:
    h = read_highs(path)
    h.run()
    return _highs_result(h)


def solve_cbc(path: Path) -> tuple[str, float | None]:
    m = mip.Model(solver_name=mip.CBC)
    m.verbose = 0
    m.max_mip_gap = m.max_mip_gap_abs = 0.0
    m.read(str(path))
    status = m.optimize()
    if status == mip.OptimizationStatus.OPTIMAL:
        return "optimal", float(m.objective_value)
    return str(status), None


def assert_same(expected: tuple[str, float | None], got: tuple[str, float | None], what: str) -> None:
    assert got[0] == expected[0] == "optimal", f"{what}: {got} vs in-memory {expected}"
    assert got[1] is not None
    assert expected[1] is not None
    assert math.isclose(got[1], expected[1], rel_tol=1e-7, abs_tol=1e-7), f"{what}: {got} vs {expected}"


def text_of(model: MatrixModel, fmt: str) -> str:
    buf = io.StringIO()
    WRITERS[fmt](model, buf)
    return buf.getvalue()


def expected_row_names(model: MatrixModel, fmt: str) -> list[str]:
    names = []
    for name, lb, ub in zip(model.row_names(), model.row_lb, model.row_ub, strict=True):
        if lb == -INF and ub == INF:
            continue
        ranged = fmt == "lp" and np.isfinite(lb) and np.isfinite(ub) and lb != ub
        names.extend([name + "_lo", name + "_hi"] if ranged else [name])
    return names


# ------------------------------------------------------------------------------------------------------------
# Golden text
# ------------------------------------------------------------------------------------------------------------
def _update_golden(request: pytest.FixtureRequest) -> bool:
    return os.environ.get("NNMIP_UPDATE_GOLDEN") == "1" or bool(
        request.config.getoption("--update-golden", default=False))


@pytest.mark.parametrize("fmt", ["lp", "mps"])
@pytest.mark.parametrize("case", ["tiny_milp", "tiny_max"])
def test_golden_text(case: str, fmt: str, request: pytest.FixtureRequest) -> None:
    text = text_of(CASES[case][0](), fmt)
    golden = GOLDEN / f"{case}.{fmt}"
    if _update_golden(request):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text, encoding="ascii", newline="\n")
    assert golden.exists(), f"missing {golden}: run with NNMIP_UPDATE_GOLDEN=1 and review the new file"
    assert text == golden.read_text(encoding="ascii"), f"{golden} differs (NNMIP_UPDATE_GOLDEN=1 rewrites it)"


@pytest.mark.parametrize("fmt", ["lp", "mps"])
def test_output_is_deterministic(fmt: str) -> None:
    assert text_of(tiny_max(), fmt) == text_of(tiny_max(), fmt)
    assert text_of(random_milp(3), fmt) == text_of(random_milp(3), fmt)


# ------------------------------------------------------------------------------------------------------------
# Read back and solve
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["lp", "mps"])
@pytest.mark.parametrize("case", list(CASES))
def test_read_back_optimum(case: str, fmt: str, tmp_path: Path) -> None:
    build, hand = CASES[case]
    model = build()
    expected = solve_in_memory(model)
    assert expected == ("optimal", pytest.approx(hand)), "in-memory optimum disagrees with the hand value"
    path = write_model(model, tmp_path / f"{case}.{fmt}")
    assert_same(expected, solve_highs(path), f"HiGHS {path.name}")
    assert_same(expected, solve_cbc(path), f"CBC {path.name}")


@pytest.mark.parametrize("fmt", ["lp", "mps"])
@pytest.mark.parametrize("case", list(CASES))
def test_names_and_numbers_round_trip(case: str, fmt: str, tmp_path: Path) -> None:
    model = CASES[case][0]()
    path = write_model(model, tmp_path / f"{case}.{fmt}")
    h = read_highs(path)
    lp = h.getLp()
    const = ["obj_constant"] if model.c0 != 0.0 else []
    cols = [h.getColName(j)[1] for j in range(lp.num_col_)]
    rows = [h.getRowName(i)[1] for i in range(lp.num_row_)]
    assert cols == model.col_names() + const
    assert rows == expected_row_names(model, fmt)
    n = model.num_cols
    np.testing.assert_array_equal(np.asarray(lp.col_cost_)[:n], model.c)
    np.testing.assert_array_equal(np.asarray(lp.col_lower_)[:n], model.col_lb)
    np.testing.assert_array_equal(np.asarray(lp.col_upper_)[:n], model.col_ub)
    if const:
        assert (lp.col_cost_[n], lp.col_lower_[n], lp.col_upper_[n]) == (model.c0, 1.0, 1.0)
    want_int = [t != "C" for t in model.vtype]
    got_int = [t == highspy.HighsVarType.kInteger for t in (lp.integrality_ or [])][:n] or [False] * n
    assert got_int == want_int
    assert lp.sense_ == (highspy.ObjSense.kMaximize if model.sense == "max" else highspy.ObjSense.kMinimize)
    text = path.read_text(encoding="ascii")
    for name in model.col_names():
        assert name in text


def test_mps_rows_and_matrix_are_exact(tmp_path: Path) -> None:
    """Awkward doubles survive ``repr`` exactly, ranged rows stay one row with exact bounds."""
    rng = np.random.default_rng(7)
    n, m = 6, 5
    dense = rng.normal(size=(m, n)) * 10.0 ** rng.integers(-6, 6, size=(m, n))
    lb = rng.normal(size=m) - 5.0
    ub = lb + np.abs(rng.normal(size=m)) * 3.0
    ub[1] = lb[1]
    model = MatrixModel(sense="min", c=rng.normal(size=n), c0=0.0, A=sp.csr_array(dense), row_lb=lb,
                        row_ub=ub, col_lb=np.full(n, -1.0 / 3.0), col_ub=np.full(n, 0.7),
                        vtype=np.full(n, "C"), name="exact")
    for fmt in ("mps", "lp"):
        h = read_highs(write_model(model, tmp_path / f"exact.{fmt}"))
        lp = h.getLp()
        got = sp.csc_array((lp.a_matrix_.value_, lp.a_matrix_.index_, lp.a_matrix_.start_),
                           shape=(lp.num_row_, lp.num_col_))
        want = sp.vstack([model.A[[i, i]] if fmt == "lp" and lb[i] != ub[i] else model.A[[i]]
                          for i in range(m)])
        assert (got != sp.csc_array(want)).nnz == 0, fmt
        np.testing.assert_array_equal(np.asarray(lp.col_cost_), model.c)
        np.testing.assert_array_equal(np.asarray(lp.col_lower_), model.col_lb)
        if fmt == "mps":
            assert lp.num_row_ == m
            np.testing.assert_array_equal(np.asarray(lp.row_lower_), lb)
            np.testing.assert_array_equal(np.asarray(lp.row_upper_), ub)


@pytest.mark.parametrize("seed", range(20))
def test_random_milps(seed: int, tmp_path: Path) -> None:
    model = random_milp(seed)
    expected = solve_in_memory(model)
    for fmt in ("lp", "mps"):
        path = write_model(model, tmp_path / f"random.{fmt}")
        assert_same(expected, solve_highs(path), f"seed {seed} HiGHS {fmt}")
        assert_same(expected, solve_cbc(path), f"seed {seed} CBC {fmt}")


# ------------------------------------------------------------------------------------------------------------
# Format details
# ------------------------------------------------------------------------------------------------------------
def test_lp_splits_ranged_rows_and_skips_free_rows() -> None:
    text = text_of(tiny_max(), "lp")
    assert " net__gap_0_lo: + 1.0 net__a_0 - 1.0 net__d_0 >= -1.0\n" in text
    assert " net__gap_0_hi: + 1.0 net__a_0 - 1.0 net__d_0 <= 0.3\n" in text
    assert "net__free" not in text
    assert " net__empty_0_lo: + 0.0 net__a_0 >= -1.0\n" in text
    assert " obj_constant = 1.0\n" in text
    assert text.splitlines()[2].startswith("Maximize")


def test_mps_uses_ranges_objsense_and_explicit_integer_bounds() -> None:
    text = text_of(tiny_max(), "mps")
    assert "OBJSENSE\n    MAX\n" in text
    assert " L  net__gap_0\n" in text           # -1.0 + 1.3 != 0.3 but 0.3 - 1.3 == -1.0: see below
    assert "    RHS  net__gap_0  0.3\n" in text
    assert "RANGES\n    RNG  net__empty_0  2.0\n    RNG  net__gap_0  1.3\n" in text
    assert " PL BND  net__d_0\n" in text          # integer without upper bound is not read as binary
    assert " FX BND  net__b_0  1.0\n" in text     # a fixed binary keeps its bound
    assert "net__free" not in text
    assert "OBJSENSE" not in text_of(tiny_milp(), "mps")


def test_mps_range_chooses_exact_side(tmp_path: Path) -> None:
    # readers rebuild ub = lb + R for G rows and lb = ub - R for L rows; pick the side that is exact
    b = ModelBuilder(name="rng")
    b.add_cols("n", "x", 1, lb=-INF, ub=INF)
    b.add_rows_coo("n", "g", [0], [0], [1.0], 0.5, 2.0, 1)     # 0.5 + 1.5 == 2.0
    b.add_rows_coo("n", "l", [0], [0], [1.0], -1.0, 0.1, 1)    # -1.0 + 1.1 != 0.1, 0.1 - 1.1 == -1.0
    b.add_rows_coo("n", "x", [0], [0], [1.0], -0.1, 0.2, 1)    # neither: G, ub comes back 1 ulp off
    model = b.build()
    text = text_of(model, "mps")
    assert " G  n__g_0\n L  n__l_0\n G  n__x_0\n" in text
    assert "    RHS  n__g_0  0.5\n    RHS  n__l_0  0.1\n    RHS  n__x_0  -0.1\n" in text
    assert "    RNG  n__g_0  1.5\n    RNG  n__l_0  1.1\n    RNG  n__x_0  0.30000000000000004\n" in text
    lp = read_highs(write_model(model, tmp_path / "rng.mps")).getLp()
    assert list(lp.row_lower_) == [0.5, -1.0, -0.1]
    assert list(lp.row_upper_) == [2.0, 0.1, -0.1 + (0.2 - -0.1)]


def test_integers_and_negative_zero_written_exactly() -> None:
    A = sp.csr_array((np.array([1e-07, -0.0, 1e16, 3.0]), np.array([0, 1, 0, 1]), np.array([0, 2, 4])),
                     shape=(2, 2))
    model = MatrixModel(sense="min", c=np.array([-0.0, 2.0]), c0=0.0, A=A,
                        row_lb=np.array([-0.0, 1e-07]), row_ub=np.array([INF, INF]),
                        col_lb=np.zeros(2), col_ub=np.array([1.0, 2.0]), vtype=np.array(["C", "I"]))
    lp = text_of(model, "lp")
    assert " obj: - 0.0 c0 + 2.0 c1\n" in lp
    assert " r0: + 1e-07 c0 - 0.0 c1 >= -0.0\n" in lp
    assert " r1: + 1e+16 c0 + 3.0 c1 >= 1e-07\n" in lp
    assert " 0.0 <= c1 <= 2.0\n" in lp
    mps = text_of(model, "mps")
    assert "    c0  r1  1e+16\n" in mps
    assert "    c1  obj  2.0\n" in mps


def test_gzip_by_extension(tmp_path: Path) -> None:
    model = tiny_max()
    expected = solve_in_memory(model)
    for fmt in ("lp", "mps"):
        plain = write_model(model, tmp_path / f"m.{fmt}")
        packed = write_model(model, tmp_path / f"m.{fmt}.gz")
        data = packed.read_bytes()
        assert data[:2] == b"\x1f\x8b"
        assert gzip.decompress(data) == plain.read_bytes()
        assert write_model(model, tmp_path / f"again.{fmt}.gz").read_bytes() == data  # no name, mtime 0
        assert_same(expected, solve_highs(packed), f"HiGHS {packed.name}")
        assert_same(expected, solve_cbc(packed), f"CBC {packed.name}")
    upper = write_model(model, tmp_path / "m.LP")
    assert upper.read_text(encoding="ascii") == (tmp_path / "m.lp").read_text(encoding="ascii")


@pytest.mark.parametrize("fmt", ["lp", "mps"])
def test_streams(fmt: str, tmp_path: Path) -> None:
    model = tiny_milp()
    binary = io.BytesIO()
    WRITERS[fmt](model, binary)
    path = write_model(model, tmp_path / f"m.{fmt}")
    assert binary.getvalue() == path.read_bytes()
    assert text_of(model, fmt).encode("ascii") == path.read_bytes()
    assert not binary.closed


# ------------------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------------------
def _code(exc: pytest.ExceptionInfo[ExportError]) -> str:
    assert isinstance(exc.value, NnmipError)
    assert isinstance(exc.value, ValueError)
    return exc.value.diagnostics[0].code


@pytest.mark.parametrize("name", ["model.txt", "model", "model.gz", "model.lp.bz2"])
def test_unknown_extension(name: str, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="unknown model file extension") as exc:
        write_model(tiny_milp(), tmp_path / name)
    assert _code(exc) == "E0601"
    assert "help: use .lp, .mps, .lp.gz or .mps.gz" in exc.value.diagnostics[0].notes
    assert not (tmp_path / name).exists()


def test_refuses_nnmip_target(tmp_path: Path) -> None:
    src = tmp_path / "net.nnmip"
    src.write_text("network keep_me\n")
    with pytest.raises(ExportError) as exc:
        write_model(tiny_milp(), src)
    assert _code(exc) == "E0603"
    assert src.read_text() == "network keep_me\n"


@pytest.mark.parametrize("fmt", ["lp", "mps"])
def test_cones_are_refused(fmt: str, tmp_path: Path) -> None:
    model = tiny_milp().replace(cones=(Cone("rsoc", np.array([[0, 1]]), np.array([[2]])),))
    target = tmp_path / f"cone.{fmt}"
    with pytest.raises(ExportError, match=f"{fmt.upper()} export does not support cone constraints") as exc:
        write_model(model, target)
    assert _code(exc) == "E0602"
    assert any("perspective-cuts" in note for note in exc.value.diagnostics[0].notes)
    assert not target.exists()
    with pytest.raises(ExportError):
        WRITERS[fmt](model, io.StringIO())


def test_duplicate_names_are_refused() -> None:
    model = tiny_milp()
    dup = (Block("in", "x", 0, (1,)), Block("in", "x", 1, (1,)))
    with pytest.raises(ExportError, match="column name 'in__x_0' is used more than once") as exc:
        write_lp(model.replace(col_blocks=dup), io.StringIO())
    assert _code(exc) == "E0604"


def test_unwritable_values_are_refused() -> None:
    with pytest.raises(ExportError, match="objective constant") as exc:
        write_mps(tiny_milp().replace(c0=math.inf), io.StringIO())
    assert _code(exc) == "E0605"


def test_name_clashes_get_suffixes() -> None:
    """A ranged row 'r__a' next to a row already called 'r__a_lo' gets 'r__a_lo_' and 'r__a_hi'."""
    b = ModelBuilder(name="clash")
    b.add_cols("n", "x", 1, lb=-INF, ub=INF)
    b.add_rows_coo("r", "a", [0], [0], [1.0], 0.0, 1.0, ())
    b.add_rows_coo("r", "a_lo", [0], [0], [1.0], -1.0, INF, ())
    model = b.build()
    assert model.row_names() == ["r__a", "r__a_lo"]
    text = text_of(model, "lp")
    assert (" r__a_lo_: + 1.0 n__x_0 >= 0.0\n r__a_hi: + 1.0 n__x_0 <= 1.0\n"
            " r__a_lo: + 1.0 n__x_0 >= -1.0\n") in text
