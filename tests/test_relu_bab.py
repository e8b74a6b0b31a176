"""Branch and bound on the ReLU phases: optimised bounds, soundness against the exact answer, the time budget.

The exact answer comes from the activation-pattern oracle of ``tests/test_bab.py`` (one LP per pattern).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_bab import SETTINGS, case_max, problems

from nnmip.drivers import bab as bb
from nnmip.drivers import relu_bab as rb
from nnmip.drivers.deadline import Deadline
from nnmip.drivers.verify import CERTIFIED, COUNTEREXAMPLE, UNKNOWN, network_from_layers, verify
from nnmip.ir import spec as vs
from nnmip.ir.spec import Case


def _random(seed: int, sizes: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(b, a)) / np.sqrt(a), rng.normal(size=b) * 0.3)
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)]


def _pre(chain: bb.Chain, X: np.ndarray) -> list[np.ndarray]:
    return chain.forward(X)[1]


@SETTINGS
@given(data=st.data())
def test_relu_splitting_agrees_with_the_pattern_oracle(data) -> None:
    layers, lo, hi, cases = data.draw(problems())
    net = network_from_layers(layers)
    worst = max(case_max(layers, c, lo, hi) for c in cases)
    chain = bb.relu_chain(net)
    assert chain is not None
    prop = vs.unsafe(cases)

    def confirm(x: np.ndarray) -> bool:
        return bool(prop.violated(net.forward(x[None, :]))[0]) and bool(np.all((lo <= x) & (x <= hi)))

    # the search alone (no gradient search): the vertices of the bounds and the LPs of the leaves decide it
    out = rb.relu_branch_and_bound(chain, lo, hi, cases, deadline=Deadline(30), confirm=confirm, batch=3,
                                   search=False)
    if worst >= 0:
        assert out.result != CERTIFIED, (worst, out)
    if worst > 1e-6:
        assert out.result == COUNTEREXAMPLE, (worst, out)
    if worst < -1e-6:
        assert out.result == CERTIFIED, (worst, out)
        assert worst <= out.bound < 0
    if out.result == COUNTEREXAMPLE:
        assert confirm(out.x)


@pytest.mark.parametrize("seed", range(4))
def test_relu_splitting_decides_wider_networks_like_the_milp(seed: int) -> None:
    layers = _random(seed, [5, 16, 16, 3])
    net = network_from_layers(layers)
    x0 = np.random.default_rng(seed).uniform(-1, 1, 5)
    label = int(net.predict(x0[None, :])[0])
    for eps in (0.05, 0.4):          # a small ball (certified) and a large one (a counterexample, mostly)
        exact = verify(net, [vs.linf(x0, eps)], vs.classified(label), bab="off", samples=0, time_limit=60)
        r = verify(net, [vs.linf(x0, eps)], vs.classified(label), bab="relu", samples=0, time_limit=60)
        assert exact.result in (CERTIFIED, COUNTEREXAMPLE)
        assert r.result == exact.result, (seed, eps, r.to_dict(), exact.to_dict())
        if r.result == CERTIFIED:
            assert r.bounds["method"] == "relu_branch_and_bound"
        else:
            assert net.predict(r.counterexample[None, :])[0] != label
            assert np.abs(r.counterexample - x0).max() <= eps + 1e-12


def _splits_of(chain: bb.Chain, X: np.ndarray, rng: np.random.Generator, k: int) -> list[np.ndarray]:
    """Split decisions that the point ``X[0]`` satisfies, on ``k`` units per layer at random."""
    pre = _pre(chain, X[:1])
    out = []
    for z in pre:
        s = np.zeros((1, z.shape[1]), np.int8)
        j = rng.choice(z.shape[1], size=min(k, z.shape[1]), replace=False)
        s[0, j] = np.where(z[0, j] >= 0, 1, -1)
        out.append(s)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_optimised_bounds_are_tighter_and_contain_every_reachable_point(seed: int) -> None:
    rng = np.random.default_rng(seed)
    chain = bb.relu_chain(network_from_layers(_random(seed, [6, 24, 24, 24, 4])))
    assert chain is not None
    lo, hi = -np.ones(6), np.ones(6)
    rows = bb.Rows.of([Case(rng.normal(size=(3, 4)), rng.normal(size=3), np.zeros(3, bool))])
    X = lo + rng.random((4000, 6)) * (hi - lo)
    split = _splits_of(chain, X, rng, 3)
    # the points of the sub-problem: those whose phases match every split
    pre = _pre(chain, X)
    inside = np.ones(X.shape[0], bool)
    for s, z in zip(split, pre, strict=True):
        inside &= ((s[0] == 0) | ((s[0] > 0) & (z >= 0)) | ((s[0] < 0) & (z <= 0))).all(axis=1)
    assert inside[0]
    Ls, Us, infeasible = rb.layer_bounds(chain, lo, hi, split, iters=10)
    assert not infeasible[0]
    for l, u, z in zip(Ls, Us, pre, strict=True):
        assert (z[inside] >= l[0] - 1e-12).all()
        assert (z[inside] <= u[0] + 1e-12).all()
    rel = [rb.Relax.of(l, u, s) for l, u, s in zip(Ls, Us, split, strict=True)]
    L = len(chain.Ws) - 1
    C, d = rows.C[None, :, :], rows.d[None, :]
    plain, _, _ = rb.optimised_bound(chain, L, C, d, rel, lo, hi, 0)
    tight, _, _ = rb.optimised_bound(chain, L, C, d, rel, lo, hi, 30)
    Y, _ = chain.forward(X[inside])
    F = Y @ rows.C.T + rows.d
    assert (tight <= plain).all()
    assert (F.max(axis=0) <= tight[0]).all()
    assert (tight < plain - 1e-9).any()      # the slopes and multipliers do tighten something here


def test_contradictory_splits_are_infeasible() -> None:
    # z = x and a unit z = x - 2 on [0, 1]: fixing the second active contradicts its bounds
    chain = bb.Chain([np.array([[1.0], [1.0]]), np.array([[1.0, 1.0]])], [np.array([0.0, -2.0]), np.zeros(1)])
    split = [np.array([[0, 1]], np.int8)]
    _, _, infeasible = rb.layer_bounds(chain, np.zeros(1), np.ones(1), split)
    assert infeasible[0]


def test_auto_splits_relus_of_networks_with_many_inputs() -> None:
    net = network_from_layers(_random(1, [30, 20, 20, 3]))
    x0 = np.zeros(30)
    label = int(net.predict(x0[None, :])[0])
    r = verify(net, [vs.linf(x0, 0.01)], vs.classified(label), time_limit=60)
    assert r.result == CERTIFIED
    assert r.bounds["method"] == "relu_branch_and_bound"
    assert r.bound < 0


def test_two_workers_agree_with_one() -> None:
    net = network_from_layers(_random(3, [20, 32, 32, 3]))
    x0 = np.random.default_rng(3).uniform(-1, 1, 20)
    label = int(net.predict(x0[None, :])[0])
    for workers in (1, 2):      # a ball that takes a few hundred sub-problems to certify
        r = verify(net, [vs.linf(x0, 0.2)], vs.classified(label), bab="relu", workers=workers, time_limit=60,
                   samples=0)
        assert r.result == CERTIFIED, r.to_dict()
        assert r.bounds["subproblems"] > 50
        assert r.bound < 0


def _within_budget(net: Any, eps: float, threshold: float, limit: float, **kw: Any) -> Any:
    """ReLU splitting on ``y0 - y1 < threshold`` over the linf ball of radius ``eps`` around 0 with a ``limit``
    second budget: the run ends within the budget (plus start-up) and answers soundly (certified, or unknown
    because the time ran out)."""
    prop = vs.maximize([1.0, -1.0], threshold=threshold)
    t = time.perf_counter()
    r = verify(net, [vs.linf(np.zeros(net.n_inputs), eps)], prop, bab="relu", time_limit=limit, **kw)
    took = time.perf_counter() - t
    assert took < limit + 5, took
    assert r.result in (UNKNOWN, CERTIFIED)
    if r.result == UNKNOWN:
        assert r.timed_out
    return r


def test_the_time_limit_is_the_budget_of_relu_splitting() -> None:
    # a wide ball around a point of a deep random network: far too many unstable units to settle in 3 s; the
    # threshold is far above anything reachable, far below the bound
    net = network_from_layers(_random(0, [40, 80, 80, 80, 80, 2]))
    r = _within_budget(net, 1.0, 50.0, 3, workers=2)
    if r.result == UNKNOWN:
        assert r.bound > 50.0


def test_the_time_limit_holds_while_the_root_bounds_are_computed() -> None:
    """Wide layers and a wide ball: the root's back-substitution alone takes minutes; it runs in chunks, none
    started past the deadline, so the run ends within its budget with a sound (interval-floored) bound."""
    net = network_from_layers(_random(2, [3072, 1600, 1600, 2]))   # one pass over its 3200 root rows: ~2e10 flops
    _within_budget(net, 0.5, 1e4, 4, samples=0)      # far above anything reachable: no counterexample


@pytest.mark.parametrize("workers", [1, 2])
def test_a_stop_request_ends_relu_splitting_within_a_batch(workers: int) -> None:
    """A stop request (Ctrl-C; here from another thread, as a notebook's interrupt or ``STOP.request()``) ends
    the search at its next batch, in this process and in the workers, and keeps its bound (was: each slice ran
    its 4 s to the end)."""
    import threading

    from nnmip.solution import STOP

    net = network_from_layers(_random(0, [40, 80, 80, 80, 80, 2]))
    prop = vs.maximize([1.0, -1.0], threshold=50.0)
    STOP.clear()
    timer = threading.Timer(1.5, STOP.request)
    timer.start()
    try:
        t = time.perf_counter()
        r = verify(net, [vs.linf(np.zeros(net.n_inputs), 1.0)], prop, bab="relu", time_limit=60, samples=0,
                   workers=workers)
        took = time.perf_counter() - t
    finally:
        timer.cancel()
        STOP.clear()
    assert took < 1.5 + 1.0, took
    assert r.result == UNKNOWN
    assert r.bound > 50.0
    assert any("stopped (Ctrl-C)" in n for n in r.notes), r.notes


def test_ctrl_c_ends_relu_splitting_in_every_worker(tmp_path: Path) -> None:
    """SIGINT to the process group (Ctrl-C in a terminal) while two workers split ReLUs: each worker ends its
    slice at its next batch (was: their 4 s slices ran to the end), and the answer keeps its bound."""
    import json
    import os
    import signal
    import subprocess
    import sys

    from conftest import ROOT

    from nnmip.io.weights import save_npz

    save_npz(network_from_layers(_random(0, [40, 80, 80, 80, 80, 2])), tmp_path / "n.npz")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))
    p = subprocess.Popen([sys.executable, "-m", "nnmip.cli", "verify", "--npz", "n.npz", "--point",
                          ",".join(["0"] * 40), "--linf", "1", "--maximize", "1,-1", "--threshold", "50", "--bab",
                          "relu", "--workers", "2", "--time-limit", "60", "--json", "r.json"],
                         cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        time.sleep(6.0)              # start-up, the root bounds, then the workers' slices
        assert p.poll() is None, p.communicate()
        os.killpg(p.pid, signal.SIGINT)
        t0 = time.perf_counter()
        _, err = p.communicate(timeout=60)
        took = time.perf_counter() - t0
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 130, err
    assert took < 1.5, took           # a batch is well under a second; a slice is 4 s
    d = json.loads((tmp_path / "r.json").read_text())
    assert d["result"] == "unknown"
    assert d["bound"] > 50.0
