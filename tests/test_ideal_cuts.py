"""Ideal ReLU cuts (docs/formulations.md §18): valid wherever the forward pass goes, and they tighten the LP."""

from __future__ import annotations

import numpy as np
import pytest
from verify_nets import mlp_layers

from nnmip.backends import get_backend
from nnmip.drivers.relu_cuts import strengthen_root
from nnmip.drivers.verify import network_from_layers, verify
from nnmip.formulations.ideal import add_cuts
from nnmip.formulations.verification import FixedModel, build_fixed_model
from nnmip.ir import spec as vs
from nnmip.ir.network import Network
from nnmip.ir.ops import ReLU
from nnmip.model import MatrixModel
from nnmip.passes.bounds import tighten_bounds
from nnmip.solution import SolveOptions, Status

IDEAL = {"relu": "ideal-cuts"}


def _setup(seed: int, sizes: list[int], eps: float) -> tuple[Network, vs.Region, FixedModel]:
    net = network_from_layers(mlp_layers(sizes, seed), "relu")
    x0 = np.random.default_rng(seed).random(sizes[0])
    region = vs.Region((vs.linf(x0, eps),), np.zeros(sizes[0]), np.ones(sizes[0]))
    rep = tighten_bounds(net, region, method="symbolic")
    return net, region, build_fixed_model(net, region, rep.bounds, method=IDEAL)


def _with_objective(fm: FixedModel, j: int = 0) -> MatrixModel:
    c = np.zeros(fm.model.num_cols)
    coef = fm.out.padded(fm.model.num_cols).toarray()[j]
    c[: coef.size] = coef
    return fm.model.replace(c=c, c0=float(fm.out.const[j]), sense="max")


def _columns(net: Network, fm: FixedModel, bounds: dict[str, tuple[np.ndarray, np.ndarray]], X: np.ndarray
             ) -> np.ndarray:
    """Model columns (samples x columns) at the forward pass of ``X``: inputs, pre-activations, ReLU outputs, phases."""
    vals = net.forward(X, all_nodes=True)
    m = fm.model
    cols = np.full((X.shape[0], m.num_cols), np.nan)
    for blk in m.col_blocks:
        if blk.role == "x" or blk.role == "a" and blk.node in fm.pre_cols:
            cols[:, blk.slice] = vals[blk.node]
        elif blk.role in ("y", "d"):
            src = net.inputs_of(blk.node)[0]
            assert isinstance(net.op(blk.node), ReLU)
            lo, hi = bounds[src]
            unst = np.flatnonzero((lo < 0) & (hi > 0))
            pre = vals[src][:, unst]
            cols[:, blk.slice] = np.maximum(pre, 0.0) if blk.role == "y" else (pre > 0).astype(float)
    return cols


@pytest.mark.parametrize("seed", range(4))
def test_cuts_never_cut_off_a_forward_pass_point(seed: int) -> None:
    sizes = [4, 10, 10, 3]
    net, region, fm = _setup(seed, sizes, 0.3)
    bounds = tighten_bounds(net, region, method="symbolic").bounds
    assert fm.cut_units, "the network should have unstable units"
    model = _with_objective(fm)
    backend = get_backend("highs")
    rng = np.random.default_rng(seed)
    # cuts separated at LP optima of several objectives, and at random points of the relaxation's box
    points = []
    for j in range(sizes[-1]):
        raw = backend.solve(_with_objective(fm, j).relaxed(), SolveOptions())
        assert raw.status is Status.OPTIMAL
        points.append(raw.x)
    lb, ub = model.col_lb, np.minimum(model.col_ub, 10.0)
    points += [lb + (ub - lb) * rng.random(model.num_cols) for _ in range(20)]
    cut_model, total = model, 0
    for k, x in enumerate(points):
        cut_model, added = add_cuts(cut_model, fm.cut_units, x, k)
        total += added
    assert total > 0
    cut_rows = slice(model.num_rows, cut_model.num_rows)
    A = cut_model.A[cut_rows]
    rhs = cut_model.row_ub[cut_rows]
    X = region.sample(sizes[0], 4000, rng)
    corners = np.clip(region.sets[0].center + 0.3 * rng.choice([-1.0, 1.0], size=(500, sizes[0])), 0, 1)
    cols = _columns(net, fm, bounds, np.vstack([X, corners]))
    used = np.unique(A.indices)
    assert not np.isnan(cols[:, used]).any()
    cols = np.nan_to_num(cols)
    lhs = cols @ A.T.toarray()
    assert np.all(lhs <= rhs + 1e-9), float((lhs - rhs).max())


@pytest.mark.parametrize("seed", range(3))
def test_cuts_tighten_the_lp_bound_and_keep_the_milp_optimum(seed: int) -> None:
    net, region, fm = _setup(seed, [5, 16, 16, 2], 0.25)
    model = _with_objective(fm)
    strong, rr = strengthen_root(model, fm.cut_units, rounds=5)
    assert rr.cuts > 0
    backend = get_backend("highs")
    lp0 = backend.solve(model.relaxed(), SolveOptions())
    lp1 = backend.solve(strong.relaxed(), SolveOptions())
    assert lp1.objective is not None
    assert lp0.objective is not None
    assert lp1.objective < lp0.objective - 1e-6      # the cuts move the LP bound
    opts = SolveOptions(mip_gap=1e-9)
    m0 = backend.solve(model, opts)
    m1 = backend.solve(strong, opts)
    assert m0.objective is not None
    assert m1.objective is not None
    assert m1.objective == pytest.approx(m0.objective, abs=1e-6)   # and never the MILP optimum
    assert m1.objective <= lp1.objective + 1e-6
    # the optimum is attained by the forward pass
    x = m1.x[fm.x_cols]
    assert net.forward(x[None, :])[0, 0] == pytest.approx(m1.objective, abs=1e-5)


def test_verify_with_ideal_cuts_gives_the_same_answer() -> None:
    net = network_from_layers(mlp_layers([6, 12, 12, 3], 7), "relu")
    x0 = np.random.default_rng(7).random(6)
    coef = np.array([1.0, -1.0, 0.0])
    a = verify(net, [vs.linf(x0, 0.2)], vs.maximize(coef), domain=(0, 1), samples=0, tighten="symbolic")
    b = verify(net, [vs.linf(x0, 0.2)], vs.maximize(coef), domain=(0, 1), samples=0, tighten="symbolic",
               method=IDEAL)
    assert a.value == pytest.approx(b.value, abs=1e-6)
    assert any("ideal ReLU cuts" in n for n in b.notes)
