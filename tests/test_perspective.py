"""Perspective relaxation of the pruning objective (docs/formulations.md §10): emission modes and ordering.

On small training instances: big-M LP relaxation <= perspective relaxation (conic = cut loop) <= MILP optimum.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nnmip.backends import get_backend, is_installed
from nnmip.drivers.cuts import solve_with_cuts
from nnmip.drivers.train import train_network
from nnmip.errors import BackendUnavailable, SolverError
from nnmip.formulations.training import build_training_model
from nnmip.ir.builder import NetworkBuilder, real
from nnmip.ir.train_spec import PruneConfig, PruneSpec
from nnmip.solution import SolveOptions, Status

needs_cvxpy = pytest.mark.skipif(not is_installed("cvxpy"), reason="cvxpy is not installed")
OPTS = SolveOptions(mip_gap=0.0)
TOL = 1e-5


def linear_case():
    nb = NetworkBuilder("lin")
    x = nb.input("x", 3)
    nb.identity("y", nb.dense("h", x, 1, weights=real(-4, 4), bias=real(-4, 4)))
    rng = np.random.default_rng(1)
    X = rng.random((12, 3))
    y = (X[:, 0] > X[:, 1]).astype(np.int64)
    return nb.build(), X, y, PruneConfig((PruneSpec("weights", ("h",)),), alpha=0.5, lam=0.5)


def deep_case():
    nb = NetworkBuilder("deep")
    x = nb.input("x", 2)
    a = nb.step("a", nb.dense("h1", x, 2, weights=real(-1, 1), bias=real(-1, 1)))
    nb.identity("y", nb.dense("h2", a, 1, weights=real(-2, 2), bias=real(-2, 2)))
    X = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.4], [0.9, 0.7], [0.2, 0.1], [0.6, 0.95]])
    y = np.array([0, 1, 0, 1, 0, 0])
    return nb.build(), X, y, PruneConfig((PruneSpec("neurons", ("h1",), cost=0.2),), alpha=0.5, lam=0.6)


def values(case):
    net, X, y, pc = case
    hs, cv = get_backend("highs"), get_backend("cvxpy")
    kw = dict(loss="hinge", margin=1.0, prune=pc)
    m_milp = build_training_model(net, X, y, 2, emit="milp", **kw)
    m_conic = build_training_model(net, X, y, 2, emit="perspective-conic", **kw)
    m_cuts = build_training_model(net, X, y, 2, emit="perspective-cuts", **kw)
    bigm, _, _ = solve_with_cuts(m_milp.model.relaxed(), hs, OPTS, m_milp.extension.reg)
    conic = cv.solve(m_conic.model.relaxed(), OPTS)
    cuts, _, rounds = solve_with_cuts(m_cuts.model.relaxed(), hs, OPTS, m_cuts.extension.reg)
    milp, _, _ = solve_with_cuts(m_cuts.model, hs, OPTS, m_cuts.extension.reg)
    for r in (bigm, conic, cuts, milp):
        assert r.status is Status.OPTIMAL
    return bigm.objective, conic.objective, cuts.objective, milp.objective, m_conic


@needs_cvxpy
@pytest.mark.parametrize("case", [linear_case, pytest.param(deep_case, marks=pytest.mark.slow)],  # step: ~40 s
                         ids=["linear", "step"])
def test_relaxations_are_ordered_and_the_cut_loop_reaches_the_conic_value(case) -> None:
    bigm, conic, cuts, milp, m_conic = values(case())
    assert bigm <= conic + TOL
    assert cuts == pytest.approx(conic, rel=1e-5, abs=1e-6)
    assert conic <= milp + TOL
    assert bigm < milp - 1e-3            # the instances have a real gap
    if is_installed("gurobi"):           # the exact MISOCP (rotated cones, binary z) agrees with the MILP cut loop
        try:
            exact = get_backend("gurobi").solve(m_conic.model, OPTS)
        except BackendUnavailable as exc:
            pytest.skip(str(exc))
        assert exact.objective == pytest.approx(milp, rel=1e-5, abs=1e-6)


def test_perspective_is_strictly_tighter_on_the_linear_case() -> None:
    pytest.importorskip("cvxpy")
    bigm, conic, _, _, _ = values(linear_case())
    assert conic > bigm + 0.1


def test_trained_loss_includes_the_exact_quadratic_term() -> None:
    net, X, y, pc = linear_case()
    res = train_network(net, X, y, 2, loss="hinge", margin=1.0, prune=pc, emit="perspective-cuts", options=OPTS)
    assert res.verified
    assert res.network is not None
    W, b = res.network.params()["h"]
    out = res.network.forward(X)[:, 0]
    hinge = np.maximum(0.0, 1.0 - (2 * y - 1) * out).sum()
    kept = np.count_nonzero(W)
    want = hinge + 0.5 * 0.5 * float((W * W).sum()) + 0.5 * 0.5 * kept
    assert res.loss == pytest.approx(want, rel=1e-9)
    assert res.objective == pytest.approx(res.loss, rel=1e-6)   # the cut loop closed the gap


def test_perspective_cuts_model_round_trips_through_lp_and_mps(tmp_path: Path) -> None:
    import highspy

    from nnmip.io.writers import write_model

    net, X, y, pc = linear_case()
    tm = build_training_model(net, X, y, 2, loss="hinge", prune=pc, emit="perspective-cuts")
    assert not tm.model.cones
    mem = get_backend("highs").solve(tm.model, OPTS)
    for ext in ("lp", "mps"):
        path = tmp_path / f"m.{ext}"
        write_model(tm.model, path)
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("mip_rel_gap", 0.0)
        h.readModel(str(path))
        h.run()
        assert h.getInfo().objective_function_value == pytest.approx(mem.objective, rel=1e-7, abs=1e-9)


def test_conic_emission_needs_a_conic_backend() -> None:
    net, X, y, pc = linear_case()
    tm = build_training_model(net, X, y, 2, loss="hinge", prune=pc, emit="perspective-conic")
    assert [c.kind for c in tm.model.cones] == ["rsoc"]
    with pytest.raises(SolverError, match="cone"):
        get_backend("highs").solve(tm.model, OPTS)


@needs_cvxpy
def test_cli_compile_and_relaxed_solve(tmp_path: Path) -> None:
    from nnmip.cli import main

    src = """
data d = sklearn("iris")
network n(x: 4) { h = dense(x, 2, weights=real[-1, 1], bias=real[-1, 1]); a = step(h)
                  o = dense(a, 3, weights=real[-1, 1], bias=real[-1, 1]); y = step(o) }
train n on d { loss = hamming; subset = first(12); prune = neurons(h); lambda = 1; alpha = 0.5 }
"""
    f = tmp_path / "p.nnmip"
    f.write_text(src)
    assert main(["compile", str(f), "-o", str(tmp_path / "c.lp"), "--emit", "perspective-cuts"]) == 0
    assert "tangent" in (tmp_path / "c.lp").read_text()
    assert main(["compile", str(f), "-o", str(tmp_path / "c.mps"), "--emit", "milp", "--relax"]) == 0
    out = tmp_path / "r.json"
    assert main(["solve", str(f), "-q", "--solver", "cvxpy", "--emit", "perspective-conic", "--relax",
                 "--json", str(out)]) == 0
    conic = json.loads(out.read_text())
    assert main(["solve", str(f), "-q", "--emit", "perspective-cuts", "--relax", "--json", str(out)]) == 0
    cuts = json.loads(out.read_text())
    assert conic["objective"] == pytest.approx(cuts["objective"], rel=1e-5, abs=1e-6)
    assert main(["solve", str(f), "-q", "--emit", "perspective-cuts", "--json", str(out)]) == 0
    full = json.loads(out.read_text())
    assert full["verified"] is True
    assert conic["objective"] <= full["loss"] + 1e-6
