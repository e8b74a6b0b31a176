"""The cut loop of the tangent emissions keeps the best point and the best bound of all its rounds.

Every round's model is an outer approximation of the exact pruning model (tangents under-estimate the squares), so
a bound proven by any round stays valid, and any round's point with ``s`` at its exact square is a feasible point
of the exact model.  A last round cut short by the time limit (worse point, weaker bound) must not replace what
earlier rounds found, and the loop closes at the solver's gap, not at a tolerance no solver reaches.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from test_perspective import linear_case

import nnmip.drivers.train as train_mod
from nnmip.backends import get_backend, is_installed
from nnmip.drivers.cuts import exact_point, solve_with_cuts
from nnmip.drivers.train import train_network
from nnmip.formulations.perspective import Regulariser, group_model
from nnmip.model import MatrixModel
from nnmip.solution import RawResult, SolveOptions, Status

LAM, ALPHA, M = 1.0, 0.5, 2.0
PULL = np.array([1.5, -0.8, 0.3])     # linear "data term" -PULL . w


def tiny(emit: str, mip: bool = True) -> tuple[MatrixModel, Regulariser]:
    """``min sum_m lam (1 - alpha) z_m + lam alpha w_m^2 / z_m - PULL_m w_m`` over ``|w_m| <= M z_m``, one group
    per member, the squares by the tangents of ``emit`` (binary ``z`` when ``mip``)."""
    k = PULL.size
    model, reg = group_model(np.zeros(k), np.arange(k), np.full(k, M), ALPHA, LAM, emit)
    lb, ub, c, vt = model.col_lb.copy(), model.col_ub.copy(), model.c.copy(), model.vtype.copy()
    lb[reg.w], ub[reg.w] = -M, M
    c[reg.w] -= PULL
    if mip:
        vt[reg.zm] = "B"
    return model.replace(col_lb=lb, col_ub=ub, c=c, vtype=vt), reg


def tiny_optimum() -> float:
    """The exact optimum of :func:`tiny` with binary ``z``, in closed form: per member ``z = 0`` (value 0) or
    ``z = 1`` with ``w = clip(PULL / (2 lam alpha), -M, M)``."""
    w = np.clip(PULL / (2 * LAM * ALPHA), -M, M)
    on = LAM * (1 - ALPHA) + LAM * ALPHA * w * w - PULL * w
    return float(np.minimum(on, 0.0).sum())


class LastRoundCut:
    """HiGHS, except solve number ``at``, which ends ``time_limit`` with ``result(model, first)`` (``first``: the
    result of solve 1)."""

    name = "highs"

    def __init__(self, at: int, result: Any) -> None:
        self.at, self.result = at, result
        self.calls = 0
        self.first: RawResult | None = None
        self.capabilities = get_backend("highs").capabilities

    def solve(self, model: MatrixModel, opts: SolveOptions) -> RawResult:
        self.calls += 1
        if self.calls == self.at:
            return self.result(model, self.first)  # type: ignore[no-any-return]
        raw = get_backend("highs").solve(model, opts)
        if self.calls == 1:
            self.first = raw
        return raw


@pytest.mark.parametrize("emit", ["milp", "perspective-cuts"])
def test_a_time_cut_last_round_keeps_the_best_point_and_bound(emit: str) -> None:
    model, reg = tiny(emit)

    def worse(m: MatrixModel, first: RawResult) -> RawResult:   # all groups off: objective 0, a weak bound
        x = np.zeros(m.num_cols)
        return RawResult(Status.TIME_LIMIT, "highs", x, m.objective_value(x), -5.0, 0.01, "Time limit reached")

    be = LastRoundCut(2, worse)
    raw, _, rounds = solve_with_cuts(model, be, SolveOptions(), reg)
    assert be.calls == rounds == 2
    first = be.first
    assert first is not None
    assert first.x is not None
    assert first.bound is not None
    exact1 = model.objective_value(exact_point(reg, first.x))
    assert exact1 > first.bound + 0.1               # solve 1 left a real gap: the loop had to go on
    assert raw.status is Status.TIME_LIMIT          # the gap is still open
    assert raw.objective == pytest.approx(exact1, abs=1e-9)   # solve 1's point at its exact value, not 0
    assert raw.x is not None
    assert model.objective_value(raw.x) == pytest.approx(exact1, abs=1e-9)
    assert raw.bound == pytest.approx(first.bound, abs=1e-9)  # solve 1's bound, not -5
    assert raw.bound <= tiny_optimum() + 1e-9 <= raw.objective + 2e-9
    assert "time limit" in raw.message
    # the returned point is feasible for the model with every cut (s at its exact square)
    assert model.max_violation(raw.x) <= 1e-7


def test_the_loop_closes_at_the_solvers_gap() -> None:
    """A solver that keeps answering a point whose squares are under-estimated by 1e-6 (within its own
    tolerance): the old tolerance 1e-8 (1 + |obj|) never closed and re-solved until the rounds ran out."""
    model, reg = tiny("perspective-cuts")
    w = np.clip(PULL / (2 * LAM * ALPHA), -M, M)
    on = LAM * (1 - ALPHA) + LAM * ALPHA * w * w - PULL * w < 0
    x = np.zeros(model.num_cols)
    x[reg.w] = np.where(on, w, 0.0)
    x[reg.zm] = on.astype(float)
    x[reg.s] = np.where(on, w * w - 2e-6, 0.0)

    class Stalling:
        name = "highs"
        calls = 0

        def solve(self, m: MatrixModel, opts: SolveOptions) -> RawResult:
            self.calls += 1
            v = m.objective_value(x)
            return RawResult(Status.OPTIMAL, "highs", x.copy(), v, v, 0.0, "Optimal")

    be = Stalling()
    raw, _, rounds = solve_with_cuts(model, be, SolveOptions(), reg, max_rounds=20)
    assert raw.status is Status.OPTIMAL
    assert rounds == be.calls == 1
    assert raw.objective == pytest.approx(tiny_optimum(), abs=1e-9)
    assert raw.bound is not None
    assert raw.bound <= raw.objective
    # with a gap of 0 asked for, the absolute 1e-6 of the solver still holds, a gap of 1e-5 does not
    x[reg.s] = np.where(on, w * w - 2e-5, 0.0)
    raw, _, rounds = solve_with_cuts(model, Stalling(), SolveOptions(mip_gap=0.0), reg, max_rounds=3)
    assert raw.status is Status.TIME_LIMIT
    assert rounds == 4
    assert raw.objective == pytest.approx(tiny_optimum(), abs=1e-9)


def test_a_relaxation_keeps_its_best_bound_when_the_last_round_is_cut() -> None:
    """On an LP the loop's value is a bound: a cut-short LP's primal value must not replace it."""
    model, reg = tiny("perspective-cuts", mip=False)
    full, _, _ = solve_with_cuts(model, get_backend("highs"), SolveOptions(), reg)

    def unfinished(m: MatrixModel, first: RawResult) -> RawResult:
        assert first.x is not None
        return RawResult(Status.TIME_LIMIT, "highs", first.x.copy(), -100.0, None, 0.01, "Time limit reached")

    be = LastRoundCut(2, unfinished)
    raw, _, rounds = solve_with_cuts(model, be, SolveOptions(), reg)
    assert rounds == 2
    assert be.first is not None
    assert raw.status is Status.TIME_LIMIT
    assert raw.objective == pytest.approx(be.first.objective, abs=1e-9)
    assert raw.bound == raw.objective
    assert raw.objective <= full.objective + 1e-9
    assert full.objective <= tiny_optimum() + 1e-9


# -- end to end: train_network on a small pruning task ------------------------------------------------------------

def forward_loss(net: Any, X: np.ndarray, y: np.ndarray) -> float:
    """Hinge loss (margin 1) of the numpy forward pass plus ``lam (alpha ||w||^2 + (1 - alpha) #kept)``."""
    out = net.forward(X)[:, 0]
    W = np.asarray(net.op("h").W)
    hinge = np.maximum(0.0, 1.0 - (2.0 * y - 1.0) * out).sum()
    return float(hinge + 0.25 * (W * W).sum() + 0.25 * np.count_nonzero(W))


def linear_optimum(X: np.ndarray, y: np.ndarray) -> float:
    """The exact optimum by brute force: every pattern of kept weights, each a convex QP (cvxpy)."""
    import cvxpy as cp

    s = 2.0 * y - 1.0
    best = np.inf
    for z in itertools.product([0.0, 1.0], repeat=3):
        w, b = cp.Variable(3), cp.Variable()
        zz = np.array(z)
        obj = cp.sum(cp.pos(1 - cp.multiply(s, X @ w + b))) + 0.25 * cp.sum_squares(w) + 0.25 * zz.sum()
        p = cp.Problem(cp.Minimize(obj), [w >= -4 * zz, w <= 4 * zz, b >= -4, b <= 4])
        p.solve(solver="CLARABEL")
        best = min(best, float(p.value))
    return best


needs_cvxpy = pytest.mark.skipif(not is_installed("cvxpy"), reason="cvxpy is not installed")


@needs_cvxpy
@pytest.mark.parametrize("emit", ["milp", "perspective-cuts"])
def test_train_reports_the_kept_best_network_and_a_valid_bound(emit: str, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    net, X, y, pc = linear_case()
    opt = linear_optimum(X, y)

    def worse(m: MatrixModel, first: RawResult) -> RawResult:
        # a feasible point at least 1 worse than solve 1's value, as a time-cut solve might end with
        assert first.objective is not None
        import scipy.sparse as sp

        worse_m = m.replace(A=sp.csr_array(sp.vstack([m.A, sp.csr_array(m.c[None, :])], format="csr")),
                            row_lb=np.r_[m.row_lb, first.objective + 1.0 - m.c0], row_ub=np.r_[m.row_ub, np.inf])
        r = get_backend("highs").solve(worse_m, SolveOptions())
        assert r.x is not None
        return RawResult(Status.TIME_LIMIT, "highs", r.x, m.objective_value(r.x), 1.0, 0.01, "Time limit reached")

    be = LastRoundCut(2, worse)
    monkeypatch.setattr(train_mod, "get_backend", lambda name: be)
    res = train_network(net, X, y, 2, loss="hinge", margin=1.0, prune=pc, emit=emit)
    assert be.calls == 2
    assert be.first is not None
    assert be.first.bound is not None
    assert res.network is not None
    assert res.verified
    assert res.loss is not None
    fwd = forward_loss(res.network, X, y)
    assert res.loss == pytest.approx(fwd, abs=1e-6)          # the loss is the forward pass's
    assert res.objective == pytest.approx(fwd, abs=1e-6)     # and the kept point's exact objective
    assert fwd <= opt + 0.05                                 # solve 1's network, not the one 1 worse
    assert res.bound is not None
    assert res.bound == pytest.approx(be.first.bound, abs=1e-9)
    assert res.bound <= opt + 1e-6                           # a valid lower bound
    assert res.status is Status.TIME_LIMIT
    assert res.gap is not None
    assert res.gap > 0


@needs_cvxpy
@pytest.mark.parametrize("emit", ["milp", "perspective-cuts"])
def test_train_end_to_end_loss_is_the_forward_pass_and_bound_is_valid(emit: str) -> None:
    net, X, y, pc = linear_case()
    opt = linear_optimum(X, y)
    res = train_network(net, X, y, 2, loss="hinge", margin=1.0, prune=pc, emit=emit)
    assert res.status is Status.OPTIMAL
    assert res.verified
    assert res.network is not None
    assert res.loss is not None
    assert res.bound is not None
    assert res.objective is not None
    assert res.loss == pytest.approx(forward_loss(res.network, X, y), abs=1e-6)
    assert res.objective == pytest.approx(res.loss, abs=1e-6)
    assert res.bound <= opt + 1e-6 <= res.loss + 2e-6
    assert res.loss - res.bound <= 1e-4 * abs(res.loss) + 1e-6     # closed at the solver's gap
