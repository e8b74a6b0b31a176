"""The rows ``a - W x = b`` of a dense layer built straight from the dense weights (``_dense_rows``) give the same
model, entry for entry, as the general form through sparse products: on an MLP whose layers see plain columns, a
mix of ``a`` and ``y`` columns with zero rows (inactive units), scaled columns (a Mul between layers) and for every
ReLU formulation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from verify_nets import dag_network

import nnmip.formulations.verification as ver
from nnmip.formulations.verification import FixedModel, build_fixed_model, with_case
from nnmip.ir.network import Network
from nnmip.ir.ops import Dense, Input, ParamDomain, ReLU
from nnmip.ir.spec import Case, Region, linf
from nnmip.passes.bounds import tighten_bounds


def mlp(sizes: list[int], seed: int) -> Network:
    rng = np.random.default_rng(seed)
    g: list[tuple[str, object, tuple[str, ...]]] = [("x", Input(dim=sizes[0]), ())]
    prev = "x"
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        W = rng.normal(size=(b, a)) * np.sqrt(2.0 / a)
        W[rng.random(W.shape) < 0.1] = 0.0
        g.append((f"fc{k}", Dense(n_in=a, n_out=b, weights=ParamDomain.fixed(W),
                                  bias=ParamDomain.fixed(rng.normal(size=b) * 0.3)), (prev,)))
        prev = f"fc{k}"
        if k < len(sizes) - 2:
            g.append((f"relu{k}", ReLU(), (prev,)))
            prev = f"relu{k}"
    return dag_network(g, "mlp")


def build(net: Network, eps: float, relu: str, fast: bool, monkeypatch: pytest.MonkeyPatch) -> FixedModel:
    x0 = np.random.default_rng(1).random(net.n_inputs)
    region = Region((linf(x0, eps),), np.zeros(net.n_inputs), np.ones(net.n_inputs))
    rep = tighten_bounds(net, region, method="symbolic")
    with monkeypatch.context() as m:
        if not fast:
            m.setattr(ver, "_dense_rows", lambda *a: False)
        return build_fixed_model(net, region, rep.bounds, method={"relu": relu})


@pytest.mark.parametrize("relu", ["bigm", "ideal-cuts"])
@pytest.mark.parametrize("eps", [0.01, 0.2])
def test_dense_rows_build_the_same_model(relu: str, eps: float, monkeypatch: pytest.MonkeyPatch) -> None:
    net = mlp([30, 20, 20, 20, 4], seed=3)
    fast, general = build(net, eps, relu, True, monkeypatch), build(net, eps, relu, False, monkeypatch)
    units = sum(u.inactive for u in general.units.values()), sum(u.unstable for u in general.units.values())
    assert units[0] > 0
    assert units[1] > 0
    A, B = fast.model.A, general.model.A
    assert A.shape == B.shape
    assert A.nnz == B.nnz > 0
    for part in ("indptr", "indices", "data"):
        assert np.array_equal(getattr(A, part), getattr(B, part)), part
    for f in ("row_lb", "row_ub", "col_lb", "col_ub", "c", "vtype"):
        assert np.array_equal(getattr(fast.model, f), getattr(general.model, f)), f
    assert [(b.node, b.role, b.start) for b in fast.model.row_blocks] == \
        [(b.node, b.role, b.start) for b in general.model.row_blocks]
    assert (fast.out.coef != general.out.coef).nnz == 0
    assert np.array_equal(fast.out.const, general.out.const)
    assert len(fast.cut_units) == len(general.cut_units)
    assert (len(general.cut_units) >= 1) == (relu == "ideal-cuts")
    for u, v in zip(fast.cut_units, general.cut_units, strict=True):
        assert (sp.csr_array(u.coef) != sp.csr_array(v.coef)).nnz == 0
        assert np.array_equal(u.const, v.const)
    case = Case(np.array([[1.0, -1.0, 0.0, 0.0]]), np.zeros(1), np.array([False]))
    m1, m2 = with_case(fast, case), with_case(general, case)
    assert np.array_equal(m1.c, m2.c)
    assert (m1.A != m2.A).nnz == 0


def test_scaled_columns_take_the_dense_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """A layer whose input is ``s_j x_j`` (not plain columns) gets ``-W_lj s_j``, as the sparse product gives."""
    net = mlp([12, 8, 3], seed=5)
    x0 = np.full(12, 0.5)
    region = Region((linf(x0, 0.3),), np.zeros(12), np.ones(12))
    bounds = tighten_bounds(net, region, method="symbolic").bounds
    s = np.linspace(-2.0, 3.0, 12)
    s[4] = 0.0
    inp = ver.Val(ver.Affine.from_cols(np.arange(12, dtype=np.int64)[::-1].copy(), scale=s), np.zeros(12),
                  np.ones(12))
    op = net.op("fc0")
    got = []
    for fast in (True, False):
        ctx = ver.FixedContext(ver.ModelBuilder(), bounds)
        ctx.b.add_cols("x", "x", 12, lb=0.0, ub=1.0)
        with monkeypatch.context() as m:
            if not fast:
                m.setattr(ver, "_dense_rows", lambda *a: False)
            ver.dense_fixed(ctx, "fc0", op, inp)
        got.append(ctx.b.build().A)
    assert (got[0] != got[1]).nnz == 0
    assert got[0].nnz == got[1].nnz
    assert np.array_equal(got[0].data, got[1].data)
    assert np.array_equal(got[0].indices, got[1].indices)
    expect = -op.W[:, ::-1] * s[::-1]
    dense = got[0].toarray()
    assert np.array_equal(dense[:, :12], expect + 0.0)
    assert np.all(dense[np.arange(8), 12 + np.arange(8)] == 1.0)
