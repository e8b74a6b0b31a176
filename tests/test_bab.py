"""Branch and bound on the input box, projected gradient search and the shared time budget.

The oracle enumerates every activation pattern of a tiny ReLU network and solves one LP per pattern (scipy
``linprog``) for the largest case score ``max_x min_r f_r(y(x))``: the exact answer the search must agree with.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from nnmip.drivers import bab as bb
from nnmip.drivers.deadline import Deadline
from nnmip.drivers.verify import CERTIFIED, COUNTEREXAMPLE, UNKNOWN, network_from_layers, verify
from nnmip.ir import spec as vs
from nnmip.ir.spec import Case

SETTINGS = settings(derandomize=True, deadline=None, max_examples=30,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def case_max(layers: list[tuple[np.ndarray, np.ndarray]], case: Case, lo: np.ndarray, hi: np.ndarray) -> float:
    """Exact ``max_x min_r -(G_r y + h_r)`` over the box: one LP per activation pattern."""
    hidden = [W.shape[0] for W, _ in layers[:-1]]
    n = lo.size
    best = -np.inf
    for bits in itertools.product((0, 1), repeat=sum(hidden)):
        P, q = np.eye(n), np.zeros(n)
        A_ub: list[np.ndarray] = []
        b_ub: list[float] = []
        off = 0
        for W, b in layers[:-1]:
            Pa, qa = W @ P, W @ q + b
            p = np.array(bits[off:off + W.shape[0]], dtype=bool)
            off += W.shape[0]
            for i in range(W.shape[0]):          # on: a >= 0; off: a <= 0
                sgn = -1.0 if p[i] else 1.0
                A_ub.append(np.r_[sgn * Pa[i], 0.0])
                b_ub.append(-sgn * qa[i])
            P, q = Pa * p[:, None], qa * p
        W, b = layers[-1]
        Py, qy = W @ P, W @ q + b
        for r in range(case.G.shape[0]):         # t <= -(G_r y + h_r)
            A_ub.append(np.r_[case.G[r] @ Py, 1.0])
            b_ub.append(-(case.G[r] @ qy + case.h[r]))
        c = np.zeros(n + 1)
        c[-1] = -1.0
        res = linprog(c, A_ub=np.array(A_ub), b_ub=np.array(b_ub),
                      bounds=[(lo[j], hi[j]) for j in range(n)] + [(None, None)], method="highs")
        if res.status == 0:
            best = max(best, -float(res.fun))
    return best


def quarters(draw, shape: tuple[int, ...], lo: int = -6, hi: int = 6) -> np.ndarray:
    vals = draw(st.lists(st.integers(lo, hi), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    return np.array(vals, dtype=np.float64).reshape(shape) / 4.0


@st.composite
def problems(draw):
    n_in = draw(st.integers(2, 3))
    hidden = draw(st.sampled_from([[3], [4], [2, 2], [3, 2]]))
    n_out = 3
    sizes = [n_in, *hidden, n_out]
    layers = [(quarters(draw, (b, a)), quarters(draw, (b,), -3, 3))
              for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    lo = quarters(draw, (n_in,), -4, 0)
    hi = lo + quarters(draw, (n_in,), 1, 6)
    cases = []
    for k in range(draw(st.integers(1, 2))):
        m = draw(st.integers(1, 2))
        cases.append(Case(quarters(draw, (m, n_out), -4, 4), quarters(draw, (m,), -4, 4), np.zeros(m, bool),
                          f"case {k}"))
    return layers, lo, hi, cases


@SETTINGS
@given(data=st.data())
def test_branch_and_bound_agrees_with_the_pattern_oracle(data) -> None:
    layers, lo, hi, cases = data.draw(problems())
    net = network_from_layers(layers)
    worst = max(case_max(layers, c, lo, hi) for c in cases)
    chain = bb.relu_chain(net)
    assert chain is not None
    prop = vs.unsafe(cases)

    def confirm(x: np.ndarray) -> bool:
        return bool(prop.violated(net.forward(x[None, :]))[0]) and bool(np.all((lo <= x) & (x <= hi)))

    # splitting alone (no MILP leaves): complete on a box, so it must decide every case with a margin
    out = bb.branch_and_bound(chain, lo, hi, cases, deadline=Deadline(30), confirm=confirm, leaf_unstable=-1)
    if worst >= 0:
        assert out.result != CERTIFIED, (worst, out)
    if worst > 1e-6:
        assert out.result == COUNTEREXAMPLE, (worst, out)
    if worst < -1e-6:
        assert out.result == CERTIFIED, (worst, out)
        assert worst <= out.bound < 0
    if out.result == COUNTEREXAMPLE:
        assert confirm(out.x)
    # the same through verify(), with MILP leaves
    r = verify(net, [vs.box(lo, hi)], prop, bab="on", samples=0, time_limit=60)
    if worst >= 0:
        assert r.result != CERTIFIED, (worst, r.to_dict())
    if worst < -1e-6:
        assert r.result == CERTIFIED, (worst, r.to_dict())
        assert worst <= r.bound
    if worst > 1e-6:
        assert r.result == COUNTEREXAMPLE, (worst, r.to_dict())
    if r.result == COUNTEREXAMPLE:
        y = net.forward(r.counterexample[None, :])
        assert prop.violated(y)[0]
        assert np.all((lo <= r.counterexample) & (r.counterexample <= hi))


def test_box_bounds_contain_every_sampled_score() -> None:
    rng = np.random.default_rng(3)
    layers = [(rng.normal(size=(8, 4)), rng.normal(size=8)), (rng.normal(size=(8, 8)), rng.normal(size=8)),
              (rng.normal(size=(3, 8)), rng.normal(size=3))]
    chain = bb.relu_chain(network_from_layers(layers))
    assert chain is not None
    rows = bb.Rows.of([Case(np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]]), np.array([0.5, -0.25]),
                            np.zeros(2, bool))])
    lo = rng.uniform(-1, 0, size=(64, 4))
    hi = lo + rng.uniform(0, 1, size=(64, 4))
    U, A, unstable, _ = bb.box_bounds(chain, lo, hi, rows)
    for i in range(0, 64, 8):
        X = lo[i] + rng.random((2000, 4)) * (hi[i] - lo[i])
        Y, _ = chain.forward(X)
        F = Y @ rows.C.T + rows.d
        assert (F.max(axis=0) <= U[i]).all()
    assert (unstable >= 0).all()
    assert A.shape == (64, 2, 4)


@pytest.mark.parametrize("limit", ["budget", "deadline"])
def test_box_bounds_stay_sound_when_refinement_is_capped(limit: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Wide layers cap the back-substitution refinement (and a passed deadline skips it): the bounds differ
    from the fully refined ones and stay sound.  (They are not looser on every box: the lower ReLU slope is
    chosen from the unit's bounds, so tighter intermediate bounds need not tighten every final one.)
    """
    rng = np.random.default_rng(5)
    layers = [(rng.normal(size=(16, 3)), rng.normal(size=16)), (rng.normal(size=(16, 16)), rng.normal(size=16)),
              (rng.normal(size=(16, 16)), rng.normal(size=16)), (rng.normal(size=(2, 16)), rng.normal(size=2))]
    chain = bb.relu_chain(network_from_layers(layers))
    assert chain is not None
    rows = bb.Rows.of([Case(np.array([[1.0, -1.0]]), np.zeros(1), np.zeros(1, bool))])
    lo = rng.uniform(-1, 0, size=(32, 3))
    hi = lo + rng.uniform(0.2, 1, size=(32, 3))
    full, _, _, _ = bb.box_bounds(chain, lo, hi, rows)
    if limit == "budget":
        monkeypatch.setattr(bb, "REFINE_FLOPS", 1.0)
        capped, _, _, _ = bb.box_bounds(chain, lo, hi, rows)
    else:
        passed = Deadline(0.0)
        time.sleep(0.01)
        capped, _, _, _ = bb.box_bounds(chain, lo, hi, rows, deadline=passed)
    assert np.abs(capped - full).max() > 1e-6
    for i in range(32):
        X = lo[i] + rng.random((2000, 3)) * (hi[i] - lo[i])
        Y, _ = chain.forward(X)
        assert ((Y @ rows.C.T + rows.d).max(axis=0) <= capped[i]).all()


def test_refinement_cap_keeps_the_units_open_on_most_boxes(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    chain = bb.Chain([rng.normal(size=(4, 2)), rng.normal(size=(5, 4)), rng.normal(size=(1, 5))],
                     [np.zeros(4), np.zeros(5), np.zeros(1)])
    l_ = np.array([[-1.0, -1.0, 1.0, -1.0, 1.0], [-1.0, 1.0, 1.0, -1.0, 1.0], [-1.0, 1.0, 1.0, 1.0, 1.0]])
    u = np.ones_like(l_)
    # unit 0 is open on 3 boxes, unit 3 on 2, unit 1 on 1; 2 and 4 are stable
    per_unit = 2 * 2 * 3 * 4 * 2
    assert bb._refine_units(chain, 1, l_, u, None).tolist() == [0, 1, 3]
    monkeypatch.setattr(bb, "REFINE_FLOPS", 2 * per_unit)
    assert bb._refine_units(chain, 1, l_, u, None).tolist() == [0, 3]
    monkeypatch.setattr(bb, "REFINE_FLOPS", per_unit - 1)
    assert bb._refine_units(chain, 1, l_, u, None).tolist() == []


def test_relu_chain_refuses_other_activations() -> None:
    layers = [(np.eye(2), np.zeros(2)), (np.eye(2), np.zeros(2))]
    assert bb.relu_chain(network_from_layers(layers, "relu")) is not None
    assert bb.relu_chain(network_from_layers(layers, "step")) is None


def _needle(n: int = 20) -> tuple:
    """y1 - y0 = sum_i relu(x_i) + relu(x_i - 1/2) - (3n/2 - 1/4) on [0, 1]^n: only points within 1/4 (summed
    over the inputs, weighted) of the all-ones corner are misclassified, which random samples and the box's
    corners towards random signs miss."""
    W1 = np.vstack([np.eye(n), np.eye(n)])
    b1 = np.r_[np.zeros(n), np.full(n, -0.5)]
    W2 = np.vstack([np.zeros(2 * n), np.ones(2 * n)])
    b2 = np.array([0.0, -(1.5 * n - 0.25)])
    return [(W1, b1), (W2, b2)], np.zeros(n), np.ones(n)


def test_projected_gradient_finds_a_needle_counterexample() -> None:
    layers, lo, hi = _needle()
    net = network_from_layers(layers)
    # sampling alone misses it
    X = vs.Region((vs.box(lo, hi),)).sample(lo.size, 256, np.random.default_rng(0))
    assert not vs.classified(0).violated(net.forward(X)).any()
    chain = bb.relu_chain(net)
    assert chain is not None
    x = bb.pgd_search(chain, lo, hi, bb.Rows.of(vs.classified(0).cases(2)), seed=0)
    assert x is not None
    assert net.predict(x[None, :])[0] == 1
    # and verify reports it, re-run by the forward pass (20 inputs: the MILP path, search first)
    r = verify(net, [vs.box(lo, hi)], vs.classified(0), time_limit=30)
    assert r.result == COUNTEREXAMPLE
    assert "projected gradient" in " ".join(r.notes)
    assert net.predict(r.counterexample[None, :])[0] == 1


def test_two_workers_agree_with_one() -> None:
    rng = np.random.default_rng(7)
    layers = [(rng.normal(size=(12, 3)), rng.normal(size=12)), (rng.normal(size=(12, 12)), rng.normal(size=12)),
              (rng.normal(size=(2, 12)), rng.normal(size=2))]
    net = network_from_layers(layers)
    x0 = np.zeros(3)
    label = int(net.predict(x0[None, :])[0])
    answers = []
    for workers in (1, 2):
        r = verify(net, [vs.linf(x0, 0.2)], vs.classified(label), bab="on", workers=workers, time_limit=60,
                   samples=0)
        answers.append(r.result)
        assert r.result in (CERTIFIED, COUNTEREXAMPLE)
    assert answers[0] == answers[1]


def test_deadline_shares_and_caps() -> None:
    d = Deadline(10)
    assert 9 < d.left() <= 10
    assert d.solve_limit(3) == 3
    assert 4 < d.share(0.5).left() <= 5
    assert Deadline.of(2, d).left() <= 2
    assert Deadline.of(None, d) is d
    assert Deadline(None).left() is None
    assert Deadline(0).expired()
    assert Deadline(0).solve_limit() == Deadline.MIN_SOLVE


def _hard(n_in: int, width: int, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    sizes = [n_in, width, width, width, 2]
    layers = [(rng.normal(size=(b, a)) / np.sqrt(a), rng.normal(size=b) * 0.1)
              for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    return network_from_layers(layers)


def test_the_time_limit_is_the_budget_of_the_milp_path() -> None:
    # the largest output difference over a wide ball of a random 40-60-60-60-2 network: the MILP needs minutes
    net = _hard(40, 60, 0)
    t = time.perf_counter()
    r = verify(net, [vs.linf(np.zeros(40), 1.0)], vs.maximize([1.0, -1.0]), time_limit=3)
    took = time.perf_counter() - t
    assert took < 3 + 5, took
    assert r.result == UNKNOWN
    assert r.timed_out
    assert r.bound >= r.value        # the best bound so far, and the best value found


def test_the_time_limit_is_the_budget_of_branch_and_bound() -> None:
    # y0 - y1 < t with t a little above its largest value at the corners of the box: too tight to settle in 3 s
    net = _hard(6, 60, 0)
    X = np.array(list(itertools.product([-1.0, 1.0], repeat=6)))
    Y = net.forward(X)
    t_val = float((Y[:, 0] - Y[:, 1]).max()) + 0.1
    t = time.perf_counter()
    r = verify(net, [vs.linf(np.zeros(6), 1.0)], vs.maximize([1.0, -1.0], threshold=t_val), time_limit=3)
    took = time.perf_counter() - t
    assert took < 3 + 5, took
    assert r.result == UNKNOWN
    assert r.timed_out
    assert r.bound > t_val > r.value     # y0 - y1 <= bound proven, the best value found below the threshold
    assert "branch and bound" in " ".join(r.notes)


@pytest.mark.slow
def test_the_command_line_ends_within_its_time_limit(tmp_path) -> None:
    from nnmip.io.weights import save_npz

    net = _hard(40, 60, 0)
    save_npz(net, tmp_path / "w.npz")
    # the interpreter's start-up and imports, on this machine now (the budget starts when the command runs)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nnmip.cli", "verify", "--help"], capture_output=True, timeout=120)
    startup = time.perf_counter() - t
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "nnmip.cli", "verify", "--npz", str(tmp_path / "w.npz"), "--point",
                        ",".join(["0"] * 40), "--linf", "1", "--maximize", "1,-1", "--time-limit", "5", "-q"],
                       capture_output=True, text=True, timeout=120)
    took = time.perf_counter() - t
    assert p.returncode == 1, p.stderr      # unknown: the run ended at its budget
    assert took < 5 + 5 + startup, (took, startup)
    assert p.stdout.startswith("unknown"), p.stdout
