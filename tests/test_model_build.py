"""``ModelBuilder.build`` assembles the same canonical matrix as scipy's COO path, and HiGHS receives it exactly."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from nnmip.model import ModelBuilder


def _reference(blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]], n: int) -> sp.csr_array:
    rows, cols, vals, off = [], [], [], 0
    for r, j, v, size in blocks:
        rows.append(r + off)
        cols.append(j)
        vals.append(v)
        off += size
    A = sp.csr_array(sp.coo_array((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                                  shape=(off, n)))
    A.sum_duplicates()
    A.eliminate_zeros()
    return A


@pytest.mark.parametrize("seed", range(6))
def test_build_matches_scipy_coo_path(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    b = ModelBuilder()
    b.add_cols("x", "v", n, lb=-1.0, ub=1.0)
    blocks = []
    for k in range(int(rng.integers(1, 6))):
        size = int(rng.integers(1, 30))
        nnz = int(rng.integers(0, 3 * size))
        r = rng.integers(0, size, nnz)
        j = rng.integers(0, n, nnz)
        v = rng.choice([0.0, 1.0, -2.5, 0.125, 3.0], nnz)
        if k % 2 == 0:   # some blocks come sorted without duplicates (the fast path), some not
            order = np.lexsort((j, r))
            r, j, v = r[order], j[order], v[order]
            first = np.ones(r.size, dtype=bool)
            first[1:] = (r[1:] != r[:-1]) | (j[1:] != j[:-1])
            r, j, v = r[first], j[first], v[first]
        blocks.append((r, j, v, size))
        b.add_rows_coo(f"c{k}", "rows", r, j, v, -1.0, 1.0, size)
    A = b.build().A
    ref = _reference(blocks, n)
    assert A.shape == ref.shape
    assert A.has_canonical_format
    np.testing.assert_array_equal(A.indptr, ref.indptr)
    np.testing.assert_array_equal(A.indices, ref.indices)
    np.testing.assert_array_equal(A.data, ref.data)
    assert A.indices.dtype == np.int32
    assert A.indptr.dtype == np.int32
    assert not (A.data == 0.0).any()


def test_build_rejects_out_of_range_triplets() -> None:
    b = ModelBuilder()
    b.add_cols("x", "v", 3)
    with pytest.raises(ValueError, match="out of range"):
        b.add_rows_coo("c", "rows", np.array([0, 2]), np.array([0, 1]), np.array([1.0, 1.0]), 0.0, 1.0, 2)
    with pytest.raises(ValueError, match="out of range"):
        b.add_rows_coo("c", "rows", np.array([0]), np.array([3]), np.array([1.0]), 0.0, 1.0, 1)


def test_objective_sums_repeated_columns() -> None:
    b = ModelBuilder()
    x = b.add_cols("x", "v", 4)
    b.add_objective_cols(np.array([0, 2, 0, 3]), np.array([1.5, -1.0, 2.0, 0.5]))
    b.add_objective_cols(x[1:2], 4.0)
    np.testing.assert_array_equal(b.build().c, [3.5, 4.0, -1.0, 0.5])


def test_highs_receives_the_exact_model() -> None:
    highspy = pytest.importorskip("highspy")
    from nnmip.backends.highs import HighsBackend

    rng = np.random.default_rng(3)
    b = ModelBuilder()
    b.add_cols("x", "v", 5, lb=-2.0, ub=np.inf)
    b.add_cols("z", "on", 3, vtype="B")
    b.add_cols("k", "n", 2, lb=-3.0, ub=3.0, vtype="I")
    r, j = rng.integers(0, 6, 30), rng.integers(0, 10, 30)
    b.add_rows_coo("c", "rows", r, j, rng.normal(size=30), -np.inf, np.arange(6.0), 6)
    b.add_objective_cols(np.arange(10), rng.normal(size=10))
    model = b.build("max")
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    HighsBackend._pass_model(h, highspy, model)
    lp = h.getLp()
    A = model.A.tocsc()
    A.sort_indices()
    np.testing.assert_array_equal(lp.a_matrix_.start_, A.indptr)
    np.testing.assert_array_equal(lp.a_matrix_.index_, A.indices)
    np.testing.assert_array_equal(lp.a_matrix_.value_, A.data)
    np.testing.assert_array_equal(lp.col_cost_, model.c)
    np.testing.assert_array_equal(lp.col_lower_, model.col_lb)
    np.testing.assert_array_equal(lp.col_upper_, model.col_ub)
    np.testing.assert_array_equal(lp.row_upper_, model.row_ub)
    assert lp.sense_ == highspy.ObjSense.kMaximize
    kinds = [int(t) for t in lp.integrality_]
    assert kinds == [0] * 5 + [int(highspy.HighsVarType.kInteger)] * 5


@pytest.mark.parametrize("verbose", [False, True])
def test_highs_hand_over_keeps_the_output_flag(verbose: bool) -> None:
    highspy = pytest.importorskip("highspy")
    from nnmip.backends.highs import HighsBackend, _option

    b = ModelBuilder()
    b.add_cols("x", "v", 2, lb=0.0, ub=1.0)
    b.add_rows_coo("c", "rows", np.array([0, 0]), np.array([0, 1]), np.array([1.0, 1.0]), -np.inf, 1.0, 1)
    h = highspy.Highs()
    h.setOptionValue("output_flag", verbose)
    HighsBackend._pass_model(h, highspy, b.build())
    assert _option(h, "output_flag") is verbose
