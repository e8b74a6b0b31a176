"""The build benchmark's python-mip baseline and nnmip's training MILP are the same model.

On a tiny instance both are built, their sizes compared, and both solved with CBC.  The instance holds the
same feature row twice with opposite labels, so the hamming loss of that pair is 2 whatever the network
outputs (``|1 - u0| + |u1| + |u0| + |1 - u1| = 2``); the other points can be fitted, so the optimum is
exactly 2.  (With the benchmark's 9-16-16-2 network CBC finds 2 quickly but cannot close the gap in
seconds, so the optimum is compared on a 9-1-2-2 network; the sizes are compared on 9-16-16-2.)  The LP
relaxations, a sharper test of sameness, must agree too.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from nnmip.backends import get_backend, is_installed
from nnmip.drivers.train import train_network
from nnmip.solution import SolveOptions, Status

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "build_training.py"

pytestmark = pytest.mark.skipif(not is_installed("cbc"), reason="python-mip (CBC) is not installed")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_training", BENCH)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["build_training"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tiny(bench: ModuleType) -> tuple[np.ndarray, np.ndarray, int]:
    X, y, n_classes, _ = bench.load_points(20, seed=3)
    pick = [int(np.flatnonzero(y == 0)[0]), int(np.flatnonzero(y == 1)[0]),
            int(np.flatnonzero(y == 0)[1]), int(np.flatnonzero(y == 1)[1])]
    Xt = np.vstack([X[pick], X[pick[0]]])
    yt = np.r_[y[pick], 1 - y[pick[0]]]
    return Xt, yt.astype(np.int64), n_classes


def test_same_size_on_bcw(bench: ModuleType) -> None:
    X, y, n_classes, _ = bench.load_points(12)
    spec = bench.Spec()
    st = bench.build_nnmip(X, y, n_classes, spec).model.stats()
    mb = bench.build_mip(X, y, n_classes, spec)
    assert (st["variables"], st["rows"], st["nonzeros"]) == (mb.model.num_cols, mb.model.num_rows,
                                                            mb.model.num_nz)
    assert st["binaries"] == mb.binaries == 12 * (16 + 16 + 2)
    assert st["integers"] == mb.model.num_int - mb.binaries == 9 * 16 + 16 * 16 + 16 * 2
    # hand count: s columns 12*(16*16 + 2*16), 4 rows each; 2 margin rows per binary
    n_s = 12 * (16 * 16 + 2 * 16)
    assert st["rows"] == 4 * n_s + 2 * st["binaries"]
    assert st["variables"] == n_s + st["binaries"] + st["integers"] + 16 + 16 + 2


def test_same_optimum_with_cbc(bench: ModuleType, tiny: tuple[np.ndarray, np.ndarray, int]) -> None:
    import mip

    X, y, n_classes = tiny
    spec = bench.Spec(widths=(1, 2, 2))  # 9-1-2-2: CBC proves the optimum in about a second
    tm = bench.build_nnmip(X, y, n_classes, spec)
    mb = bench.build_mip(X, y, n_classes, spec)
    assert (tm.model.num_cols, tm.model.num_rows, tm.model.A.nnz) == (mb.model.num_cols, mb.model.num_rows,
                                                                     mb.model.num_nz)
    # the MILP optimum: exactly 2 (the contradictory pair), for both models
    m = mb.model
    m.max_mip_gap = 0.0
    m.max_mip_gap_abs = 0.0
    assert m.optimize(max_seconds=15) == mip.OptimizationStatus.OPTIMAL
    assert m.objective_value == pytest.approx(2.0, abs=1e-6)
    res = train_network(bench.network(spec), X, y, n_classes, loss="hamming", eps=spec.eps, solver="cbc",
                        options=SolveOptions(time_limit=15, mip_gap=0.0))
    assert res.status is Status.OPTIMAL
    assert res.verified
    assert res.objective == pytest.approx(2.0, abs=1e-6)
    assert res.loss == pytest.approx(2.0)          # the forward pass of the returned weights
    # LP relaxations of two equal models have equal optima (relax in place: python-mip's copy() drops the
    # objective constant)
    lp = get_backend("cbc").solve(tm.model.relaxed(), SolveOptions())
    m.relax()
    assert m.optimize() == mip.OptimizationStatus.OPTIMAL
    assert lp.status is Status.OPTIMAL
    assert lp.objective == pytest.approx(m.objective_value, abs=1e-6)


def test_fixed_weights_give_the_forward_pass_loss(bench: ModuleType) -> None:
    """Fix every weight and bias of the 9-16-16-2 benchmark network to the same random values in both models:
    the margin rows then leave exactly the forward pass's activation pattern, so both optima must equal the
    numpy forward-pass hamming loss of that network (an independent oracle)."""
    import mip

    from nnmip.ir.losses import data_loss

    X, y, n_classes, _ = bench.load_points(8, seed=5)
    spec = bench.Spec()
    net = bench.network(spec)
    rng = np.random.default_rng(7)
    params = {}
    d_in = X.shape[1]
    for k, width in enumerate(spec.widths, start=1):
        params[f"h{k}"] = (rng.integers(-1, 2, (width, d_in)).astype(float), rng.uniform(-2.0, 2.0, width))
        d_in = width
    fixed = net.with_params(params)
    vals = fixed.forward(X, all_nodes=True)
    assert min(np.abs(vals[f"h{k}"]).min() for k in (1, 2, 3)) > 10 * spec.eps  # no unit near its threshold
    expected = data_loss("hamming", vals["a3"], y, n_classes)
    assert 0 < expected < 2 * y.size                                            # a telling value

    tm = bench.build_nnmip(X, y, n_classes, spec)
    lb, ub = tm.model.col_lb.copy(), tm.model.col_ub.copy()
    mb = bench.build_mip(X, y, n_classes, spec)
    for k in range(len(spec.widths)):
        W, b = params[f"h{k + 1}"]
        pc = tm.params[f"h{k + 1}"]
        lb[pc.W_cols], ub[pc.W_cols] = W, W
        lb[pc.b_cols], ub[pc.b_cols] = b, b
        for l in range(W.shape[0]):
            mb.b[k][l].lb = mb.b[k][l].ub = float(b[l])
            for j in range(W.shape[1]):
                mb.W[k][l][j].lb = mb.W[k][l][j].ub = float(W[l, j])
    ours = get_backend("cbc").solve(tm.model.replace(col_lb=lb, col_ub=ub), SolveOptions(mip_gap=0.0))
    assert ours.status is Status.OPTIMAL
    assert ours.objective == pytest.approx(expected, abs=1e-6)
    assert mb.model.optimize(max_seconds=15) == mip.OptimizationStatus.OPTIMAL
    assert mb.model.objective_value == pytest.approx(expected, abs=1e-6)
