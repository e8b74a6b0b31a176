"""Training strategies: data splitting, local search, warm starts, the strategy setting of the language."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nnmip.backends import is_installed
from nnmip.check import check
from nnmip.drivers.strategies import make_blocks, random_params, train_local_search, train_split
from nnmip.drivers.strategies.split import split_cluster, splittable
from nnmip.drivers.task import run_train_task
from nnmip.drivers.train import result_dict, train_network
from nnmip.errors import CheckError
from nnmip.ir.builder import NetworkBuilder, integer, real
from nnmip.ir.losses import data_loss
from nnmip.model import Affine, ModelBuilder
from nnmip.solution import SolveOptions, Status
from nnmip.syntax import parse

EXACT = SolveOptions(mip_gap=0.0, time_limit=60)


def small_net(hidden: int = 2, n_in: int = 2, out_int: bool = True):
    nb = NetworkBuilder("small")
    x = nb.input("x", n_in)
    a = nb.step("a1", nb.dense("h1", x, hidden, weights=real(-1, 1), bias=real(-2, 2)))
    nb.step("y", nb.dense("h2", a, 1, weights=integer(-1, 1) if out_int else real(-1, 1), bias=real(-2, 2)))
    return nb.build()


def xor_data(n: int = 14, seed: int = 0):
    """Noisy XOR in [0, 1]^2 plus two duplicated points (one with a conflicting label)."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, size=(n, 2))
    y = ((X[:, 0] > 0.5) ^ (X[:, 1] > 0.5)).astype(np.int64)
    flip = rng.choice(n, size=2, replace=False)
    y[flip] = 1 - y[flip]
    X = np.vstack([X, X[:2]])
    y = np.r_[y, 1 - y[0], y[1]]
    return X, y


def forward_loss(net, X, y):
    return data_loss("hamming", net.forward(X), y, 2)


# ---------------------------------------------------------------------------------------------------------
# data splitting
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.slow  # about 14 s on 2 busy cores
def test_split_reaches_the_exact_optimum() -> None:
    X, y = xor_data()
    net = small_net()
    exact = train_network(net, X, y, 2, options=EXACT)
    assert exact.status is Status.OPTIMAL
    assert exact.verified
    res = train_split(net, X, y, 2, options=EXACT, max_splits=100)
    distinct = np.unique(X, axis=0).shape[0]
    assert res.history[-1]["clusters"] == distinct          # ended on the exact model
    assert res.loss == exact.loss                            # the exact optimum
    assert res.status is Status.OPTIMAL
    assert res.bound == pytest.approx(exact.loss)
    assert forward_loss(res.network, X, y) == res.loss      # re-checked by the forward pass
    assert res.history[0]["clusters"] == 1
    clusters = [h["clusters"] for h in res.history]
    assert clusters == list(range(1, distinct + 1)) or clusters == sorted(clusters)
    # binaries grow with the clusters: 2 hidden + 1 output unit per cluster (minus those fixed by bounds)
    assert all(h["binaries"] <= 3 * h["clusters"] for h in res.history)
    best = [h["best_loss"] for h in res.history]
    assert best[-1] == res.loss
    assert all(b >= res.loss for b in best)


def test_split_stops_at_the_split_budget_and_reports_history() -> None:
    X, y = xor_data(20, seed=1)
    res = train_split(small_net(), X, y, 2, options=EXACT, max_splits=3)
    assert len(res.history) <= 4
    assert res.status is Status.TIME_LIMIT                   # a heuristic result: not proven
    assert res.verified
    assert res.loss == forward_loss(res.network, X, y)
    for h in res.history:
        assert {"loss", "validation_accuracy", "clusters", "binaries", "seconds"} <= set(h)
    assert [h["clusters"] for h in res.history] == list(range(1, len(res.history) + 1))
    json.dumps(result_dict(res))                             # the history is JSON-able


def test_split_selects_by_validation_accuracy() -> None:
    X, y = xor_data(24, seed=2)
    Xv, yv = xor_data(12, seed=3)
    res = train_split(small_net(), X, y, 2, options=EXACT, max_splits=4, X_val=Xv, y_val=yv)
    val = [h["validation_accuracy"] for h in res.history if h["verified"]]
    assert np.mean(res.network.predict(Xv) == yv) == pytest.approx(max(val))


def test_split_random_batches() -> None:
    X, y = xor_data(30, seed=4)
    res = train_split(small_net(), X, y, 2, options=EXACT, max_splits=3, batch=10, seed=5)
    assert [h["batch"] for h in res.history] == [10] * len(res.history)
    assert res.verified
    assert res.loss == forward_loss(res.network, X, y)


def test_splittable_and_split_cluster() -> None:
    X = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.9, 1.0], [0.0, 0.1]])
    groups = np.array([0, 0, 1, 1, 1])
    assert splittable(X, groups, 2).tolist() == [False, True]
    moved = split_cluster(X, np.array([2, 3, 4]), seed=0)
    assert sorted(moved.tolist()) in ([4], [2, 3])          # 2-means separates (0, 0.1) from the pair near 1


# ---------------------------------------------------------------------------------------------------------
# local search
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.slow  # about 65 s
def test_local_search_never_increases_the_loss() -> None:
    X, y = xor_data(24, seed=6)
    net = small_net(hidden=3)
    res = train_local_search(net, X, y, 2, options=EXACT, rounds=4, seed=1)
    losses = [h["best_loss"] for h in res.history]
    assert all(b <= a for a, b in zip(losses, losses[1:], strict=False))
    accepted = [h["loss"] for h in res.history if h["accepted"]]
    assert all(b <= a for a, b in zip(accepted, accepted[1:], strict=False))
    start = random_params(net, X, seed=1)
    assert losses[0] == forward_loss(net.with_params(start), X, y)     # the start is the seeded random net
    assert res.loss == forward_loss(res.network, X, y) == losses[-1]
    exact = train_network(net, X, y, 2, options=EXACT)
    assert res.loss >= exact.loss                                       # a heuristic cannot beat the optimum
    steps = [h["step"] for h in res.history[1:]]
    assert steps[:2] == ["round 1 IP1", "round 1 IP2"]


def test_local_search_from_a_bad_start_improves() -> None:
    X, y = xor_data(16, seed=7)
    net = small_net()
    zeros = {"h1": (np.zeros((2, 2)), np.full(2, -1.0)), "h2": (np.zeros((1, 2)), np.array([-1.0]))}
    start_loss = forward_loss(net.with_params(zeros), X, y)
    assert start_loss == float(y.sum())                                 # predicts class 0 everywhere
    res = train_local_search(net, X, y, 2, options=EXACT, init=zeros, rounds=3)
    assert res.loss < start_loss


def test_local_search_on_one_trainable_layer_is_exact() -> None:
    X, y = xor_data(12, seed=8)
    nb = NetworkBuilder("one")
    x = nb.input("x", 2)
    nb.step("y", nb.dense("h", x, 1, weights=real(-1, 1), bias=real(-2, 2)))
    net = nb.build()
    assert make_blocks(net) == [["h"]]
    res = train_local_search(net, X, y, 2, options=EXACT, rounds=2)
    exact = train_network(net, X, y, 2, options=EXACT)
    assert res.loss == exact.loss


def test_blocks() -> None:
    nb = NetworkBuilder("deep")
    x = nb.input("x", 2)
    a = nb.step("a1", nb.dense("h1", x, 2))
    a = nb.step("a2", nb.dense("h2", a, 2))
    nb.step("y", nb.dense("h3", a, 1))
    net = nb.build()
    assert make_blocks(net, "pair") == [["h1", "h2"], ["h3"]]
    assert make_blocks(net, "layer") == [["h1"], ["h2"], ["h3"]]


def test_local_search_layer_blocks_on_a_deeper_network() -> None:
    X, y = xor_data(12, seed=9)
    nb = NetworkBuilder("deep")
    x = nb.input("x", 2)
    a = nb.step("a1", nb.dense("h1", x, 2, weights=real(-1, 1), bias=real(-2, 2)))
    a = nb.step("a2", nb.dense("h2", a, 2, weights=integer(-1, 1), bias=real(-2, 2)))
    nb.step("y", nb.dense("h3", a, 1, weights=integer(-1, 1), bias=real(-2, 2)))
    net = nb.build()
    res = train_local_search(net, X, y, 2, options=EXACT, rounds=2, blocks="layer")
    steps = [h["step"] for h in res.history[1:4]]
    assert steps == ["round 1 h1", "round 1 h2", "round 1 h3"][:len(steps)]
    losses = [h["best_loss"] for h in res.history]
    assert all(b <= a for a, b in zip(losses, losses[1:], strict=False))
    assert res.loss == forward_loss(res.network, X, y)


# ---------------------------------------------------------------------------------------------------------
# warm starts with unknown (NaN) entries
# ---------------------------------------------------------------------------------------------------------
def _knapsack():
    """min -(4 5 6 7 8 9) x  s.t.  (3 4 5 6 7 8) x <= 12, binary x; one free continuous column."""
    b = ModelBuilder(name="ks")
    x = b.add_cols("k", "x", 6, 0.0, 1.0, "B")
    t = b.add_cols("k", "t", 1, 0.0, 10.0, "C")
    b.add_rows("k", "cap", Affine.from_cols(x[None, :]).matmul_t(np.array([[3, 4, 5, 6, 7, 8.0]])), ub=12.0)
    b.add_rows("k", "link", Affine.from_cols(t[None, :]) - Affine.from_cols(x[None, :1]), lb=0.0)
    b.add_objective_cols(x, -np.array([4, 5, 6, 7, 8, 9.0]))
    model = b.build("min")
    ws = np.full(model.num_cols, np.nan)
    ws[[0, 1, 3, 4, 5]] = [1, 0, 0, 0, 1]      # x2 and t unknown: completes to cost -13 (optimum -15)
    return model, ws


@pytest.mark.skipif(not is_installed("highs"), reason="highspy not installed")
def test_highs_completes_a_partial_start(capfd: pytest.CaptureFixture[str]) -> None:
    from nnmip.backends import get_backend

    model, ws = _knapsack()
    res = get_backend("highs").solve(model, SolveOptions(warm_start=ws, verbose=True))
    out = capfd.readouterr().out
    assert res.objective == pytest.approx(-15.0)
    assert "objective value is -13" in out            # the completed start (NaN entries would give 'nan')


@pytest.mark.skipif(not is_installed("cbc"), reason="python-mip not installed")
def test_cbc_completes_a_partial_start(capfd: pytest.CaptureFixture[str]) -> None:
    from nnmip.backends import get_backend

    model, ws = _knapsack()
    res = get_backend("cbc").solve(model, SolveOptions(warm_start=ws, verbose=True))
    out = capfd.readouterr().out
    assert res.objective == pytest.approx(-15.0)
    assert "MIPStart provided solution with cost -13" in out   # NaN entries would leave x2 fractional


@pytest.mark.skipif(not is_installed("gurobi"), reason="gurobipy not installed")
def test_gurobi_completes_a_partial_start() -> None:
    from nnmip.backends import get_backend

    model, ws = _knapsack()
    try:
        res = get_backend("gurobi").solve(model, SolveOptions(warm_start=ws, solver_options={"SolutionLimit": 1}))
    except Exception as exc:  # no licence
        pytest.skip(f"gurobi unusable: {exc}")
    assert res.objective == pytest.approx(-13.0)       # stopped at the first solution: the completed start


def test_training_warm_start_from_the_optimum_is_kept() -> None:
    X, y = xor_data(12, seed=10)
    net = small_net()
    exact = train_network(net, X, y, 2, options=EXACT)
    params = {n: exact.network.params()[n] for n in ("h1", "h2")}
    warm = train_network(net, X, y, 2, options=SolveOptions(time_limit=60, mip_gap=0.0), warm_start=params)
    assert warm.loss == exact.loss


# ---------------------------------------------------------------------------------------------------------
# the language: strategy = ...
# ---------------------------------------------------------------------------------------------------------
PROGRAM = """\
data d = sklearn("iris") split(train=0.5, validation=0.25, test=0.25, seed=0)
network n(x: 4) {
    h = dense(x, 2, weights=real[-1, 1], bias=real[-5, 5])
    a = step(h)
    o = dense(a, 3, weights=int[-1, 1], bias=real[-5, 5])
    y = step(o)
}
train n on d {
    subset = random(30, seed=1)
    strategy = STRATEGY
}
solve with highs(time_limit=10)
"""


def _checked(strategy: str):
    return check(parse(PROGRAM.replace("STRATEGY", strategy), "<test>"))


@pytest.mark.parametrize(("strategy", "code", "col"), [
    ("splitting(max_splits=3)", "E0153", 16),
    ("greedy", "E0153", 16),
    ("split(max_split=3)", "E0105", 22),
    ("split(max_splits=-1)", "E0109", 33),
    ("split(batch=1.5)", "E0108", 28),
    ("split(select=best)", "E0154", 29),
    ("local_search(init=zeros)", "E0154", 34),
    ("local_search(rounds=0)", "E0109", 36),
    ("split(time_budget=\"a\")", "E0108", 34),
])
def test_strategy_errors_are_located(strategy: str, code: str, col: int) -> None:
    with pytest.raises(CheckError) as ei:
        _checked(strategy)
    d = ei.value.diagnostics[0]
    assert (d.code, d.span.line, d.span.column) == (code, 10, col)


def test_strategy_options_reach_the_task() -> None:
    cp = _checked("split(max_splits=3, batch=full, seed=2, select=loss)")
    spec = cp.tasks[0].strategy
    assert spec.kind == "split"
    assert dict(spec.options) == {"max_splits": 3, "seed": 2, "select": "loss"}
    assert _checked("local_search").tasks[0].strategy.kind == "local_search"
    assert dict(_checked("split(batch=64)").tasks[0].strategy.options) == {"batch": 64}


def test_strategy_runs_from_a_program() -> None:
    cp = _checked("split(max_splits=3, seed=1)")
    report = run_train_task(cp)
    d = report.to_dict()
    assert report.result.verified
    assert 1 <= len(d["history"]) <= 4
    assert d["history"][0]["clusters"] == 1
    json.dumps(d, default=str)
    X, y = report.dataset.X(report.dataset.train), report.dataset.y[report.dataset.train]
    out = report.network.forward(X)
    assert report.result.loss == data_loss("hamming", out, y, 3)
    cp = _checked("local_search(rounds=1, seed=1)")
    report = run_train_task(cp)
    assert report.result.verified
    assert report.result.history[0]["step"] == "start (random)"


def test_ensemble_strategy_with_robust_training_is_rejected() -> None:
    robust = "    subset = random(30, seed=1)\n    robust x in linf(0.1)\n"
    src = PROGRAM.replace("STRATEGY", "split(max_splits=3)").replace("    subset = random(30, seed=1)\n", robust)
    assert check(parse(src, "<test>")).tasks[0].robust is not None   # split trains robustly
    src = PROGRAM.replace("STRATEGY", "one_vs_one(member=split)").replace("    subset = random(30, seed=1)\n",
                                                                         robust)
    with pytest.raises(CheckError) as ei:
        check(parse(src, "<test>"))
    d = ei.value.diagnostics[0]
    assert (d.code, d.span.line, d.span.column) == ("E0155", 11, 16)
