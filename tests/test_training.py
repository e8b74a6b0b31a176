"""Training by MILP on instances whose optimum is known: by construction, by hand, or by brute force.

Every result is checked three ways: the solver's status and objective, the loss ``train_network`` reports,
and the loss recomputed here from the returned network's numpy forward pass by an independent
implementation of each loss (``oracle_loss`` below, which shares no code with :mod:`nnmip.ir.losses`).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from conftest import licence_skip

from nnmip.backends import get_backend, is_installed
from nnmip.drivers.train import TrainResult, check_solution, repair_model, train_network
from nnmip.formulations.training import DEFAULT_EPS, build_training_model
from nnmip.ir import Dense, Network, NetworkBuilder, integer, real
from nnmip.solution import RawResult, SolveOptions, Status

EXACT = SolveOptions(mip_gap=0.0, time_limit=60)
TOL = 1e-6


#: SCIP's feasibility tolerance (1e-9) lets a margin row end 1e-9 inside eps; the exact oracle below checks the
#: margin to 1e-12 and rejects it (the forward pass still agrees: the network is verified).  Measured on
#: test_conflicting_duplicates[scip-1-2-2-3].
pytestmark = pytest.mark.solvers("highs", "cbc", "gurobi", reason="margins within SCIP's 1e-9 tolerance fail the "
                                 "1e-12 oracle check")


# -- an independent oracle ----------------------------------------------------------------------------------
def margins(out: npt.NDArray[np.float64], y: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Per point (and per leading batch index): own score minus the best other score; ``(2y-1) a`` for one unit."""
    if out.shape[-1] == 1:
        return (2 * y - 1) * out[..., 0]
    own = np.take_along_axis(out, np.broadcast_to(y[:, None], out.shape[:-1] + (1,)), axis=-1)[..., 0]
    mask = np.arange(out.shape[-1]) == y[:, None]
    other = np.where(mask, -np.inf, out).max(axis=-1)
    return own - other


def oracle_loss(kind: str, pre: npt.NDArray[np.float64], y: npt.NDArray[np.int64], W_abs: Any, margin: float = 1.0,
                l1: float = 0.0, eps: float = DEFAULT_EPS) -> tuple[Any, Any]:
    """``(loss, feasible)`` of output pre-activations ``pre`` (..., N, n_out) as the training MILP defines them.

    hamming: step outputs of ``pre``; a pre-activation inside (-eps, eps) is infeasible (activation margin).
    zero_one / hinge: scores ``pre`` with margin ``g``.  min_weight: every margin >= g, objective sum |W|.
    max_margin: every margin >= eps, objective minus the smallest margin.  ``W_abs``: sum |W| (l1 term).
    """
    n_out = pre.shape[-1]
    pen = l1 * W_abs
    if kind == "hamming":
        bits = (pre > 0).astype(float)
        T = y[:, None].astype(float) if n_out == 1 else np.eye(n_out)[y]
        loss = np.abs(T - bits).sum(axis=(-1, -2))
        feasible = (np.abs(pre) >= eps - 1e-12).all(axis=(-1, -2))
        return loss + pen, feasible
    m = margins(pre, y)
    if kind == "zero_one":
        return (m < margin - 1e-9).sum(axis=-1) + pen, np.ones(m.shape[:-1], bool)
    if kind == "hinge":
        return np.maximum(0.0, margin - m).sum(axis=-1) + pen, np.ones(m.shape[:-1], bool)
    if kind == "min_weight":
        return W_abs * (1.0 + l1), (m >= margin - 1e-9).all(axis=-1)
    if kind == "max_margin":
        return -m.min(axis=-1) + pen, (m >= eps - 1e-9).all(axis=-1)
    raise AssertionError(kind)


def forward_loss(res: TrainResult, X: np.ndarray, y: np.ndarray, kind: str, margin: float = 1.0,
                 l1: float = 0.0) -> float:
    """The loss of the returned network, recomputed from its forward pass."""
    assert res.network is not None
    vals = res.network.forward(X, all_nodes=True)
    out_node = res.network.output
    pre = vals[res.network.inputs_of(out_node)[0]] if kind == "hamming" else vals[out_node]
    if kind == "hamming":   # count wrong bits of the step outputs directly
        bits = vals[out_node]
        T = y[:, None].astype(float) if bits.shape[1] == 1 else np.eye(bits.shape[1])[y]
        assert set(np.unique(bits)) <= {0.0, 1.0}
    W_abs = sum(float(np.abs(op.W).sum()) for n, op in res.network.items() if isinstance(op, Dense))
    loss, feasible = oracle_loss(kind, pre, y, W_abs, margin, l1)
    assert bool(feasible), "the returned network breaks a hard constraint of its own model"
    if kind == "hamming":
        assert float(loss) == float(np.abs(T - bits).sum()) + l1 * W_abs
    return float(loss)


def train(net: Network, X: np.ndarray, y: np.ndarray, n_classes: int, solver: str, **kw: Any) -> TrainResult:
    with licence_skip(solver):
        return train_network(net, X, y, n_classes, solver=solver, options=EXACT, **kw)


def assert_optimal(res: TrainResult, X: np.ndarray, y: np.ndarray, kind: str, expected: float, **kw: Any) -> None:
    assert res.status is Status.OPTIMAL, res.message
    assert res.verified, res.notes
    assert res.objective == pytest.approx(expected, abs=TOL)
    assert res.loss == pytest.approx(expected, abs=TOL)
    assert forward_loss(res, X, y, kind, **kw) == pytest.approx(expected, abs=TOL)


# -- networks -------------------------------------------------------------------------------------------------
def one_layer(n_in: int, n_out: int, act: str, weights: Any = None, bias: Any = None) -> Network:
    nb = NetworkBuilder("one")
    x = nb.input("x", n_in)
    nb.activation(act, "y", nb.dense("h", x, n_out, weights=weights or real(-1, 1), bias=bias or real(-1, 1)))
    return nb.build()


def two_layer(n_in: int, hidden: int, n_out: int, act: str = "step") -> Network:
    nb = NetworkBuilder("two")
    h = nb.dense("h", nb.input("x", n_in), hidden, weights=real(-1, 1), bias=real(-1, 1))
    a = nb.activation(act, "a", h)
    nb.step("y", nb.dense("o", a, n_out, weights=real(-1, 1), bias=real(-1, 1)))
    return nb.build()


XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([0, 1, 1, 0])


# -- (a) conflicting duplicates ---------------------------------------------------------------------------------
def conflicts(k: int) -> tuple[np.ndarray, np.ndarray]:
    """k points given twice with opposite labels, plus four points separable by x1 > 0.5."""
    pairs = np.array([[0.2, 0.8], [0.7, 0.3], [0.9, 0.9], [0.4, 0.1]])[:k]
    X = np.vstack([pairs, pairs, [[0.0, 0.0], [1.0, 0.0], [0.1, 0.0], [1.0, 1.0]]])
    y = np.r_[np.zeros(k, int), np.ones(k, int), [0, 1, 0, 1]]
    return X, y


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize(("n_out", "per_pair"), [(1, 1), (2, 2)])
@pytest.mark.parametrize("depth", [1, 2])
def test_conflicting_duplicates(milp_solver: str, k: int, n_out: int, per_pair: int, depth: int) -> None:
    """Both copies of a point get the same output.  One output bit: exactly one copy is wrong, cost 1.  Two
    one-hot bits (b0, b1) against targets (1, 0) and (0, 1): (1 - b0) + b1 + b0 + (1 - b1) = 2 whatever the
    bits.  The other points are separable, so the optimum is exactly ``per_pair * k``."""
    X, y = conflicts(k)
    net = one_layer(2, n_out, "step") if depth == 1 else two_layer(2, 2, n_out)
    res = train(net, X, y, 2, milp_solver)
    assert_optimal(res, X, y, "hamming", per_pair * k)


# -- (b) XOR ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("act", ["step", "sign"])
@pytest.mark.parametrize(("n_out", "optimum"), [(1, 1.0), (2, 2.0)])
def test_xor_with_one_hidden_unit(milp_solver: str, n_out: int, optimum: float, act: str) -> None:
    """One hidden step unit a(x) = [w.x + b > 0] splits the four points into two groups by a line; every
    output bit is a function g(a) of that unit alone.  XOR is not linearly separable, so every split leaves
    a group holding both labels.  One output: the best split ({00} | {01, 10, 11}) misclassifies one
    point: optimum 1.  Two one-hot outputs: a group with n0 points of label 0 and n1 of label 1 costs
    min(2 n1, 2 n0, n0 + n1) = 2 min(n0, n1) (bits (1,0), (0,1), or (0,0)/(1,1)), so the optimum is 2.
    A sign unit (-1/+1 instead of 0/1) splits the points the same way."""
    res = train(two_layer(2, 1, n_out, act), XOR_X, XOR_Y, 2, milp_solver)
    assert_optimal(res, XOR_X, XOR_Y, "hamming", optimum)
    assert res.bound == pytest.approx(optimum, abs=TOL)


@pytest.mark.parametrize("act", ["step", "sign"])
@pytest.mark.parametrize("n_out", [1, 2])
def test_xor_with_two_hidden_units(milp_solver: str, n_out: int, act: str) -> None:
    """OR and AND units (x1 + x2 - 0.5 and 0.5 x1 + 0.5 x2 - 0.75) and OR - AND - 0.5 fit XOR in [-1, 1];
    with sign units (s_or, s_and in {-1, 1}) s_or - s_and - 0.5 does."""
    res = train(two_layer(2, 2, n_out, act), XOR_X, XOR_Y, 2, milp_solver)
    assert_optimal(res, XOR_X, XOR_Y, "hamming", 0.0)
    assert res.network is not None
    assert res.network.predict(XOR_X).tolist() == XOR_Y.tolist()


# -- continuous weights by hand -------------------------------------------------------------------------------
LINE_X = np.array([[1.0], [-1.0], [0.5]])
LINE_Y = np.array([1, 0, 1])


@pytest.mark.parametrize(("kind", "expected"), [
    # margins m = (w + b, w - b, 0.5 w + b) for the three points; w, b in [-1, 1].
    # min_weight (margin 1): w - b >= 1 and 0.5 w + b >= 1 add up to 1.5 w >= 2, w >= 4/3 > 1: infeasible
    ("min_weight", None),
    # max_margin: for w >= 0, min m = min(w - b, 0.5 w + b), largest at b = w / 4 where it is 3 w / 4;
    # w = 1 gives 0.75, so the loss (minus the smallest margin) is -0.75
    ("max_margin", -0.75),
    # hinge (margin 1): the last two terms alone are >= (1 - w + b) + (1 - 0.5 w - b) = 2 - 1.5 w >= 0.5;
    # w = 1, b = 0.5 reaches it: 0 + 0.5 + 0
    ("hinge", 0.5),
])
def test_continuous_weights_by_hand(milp_solver: str, kind: str, expected: float | None) -> None:
    net = one_layer(1, 1, "identity")
    res = train(net, LINE_X, LINE_Y, 2, milp_solver, loss=kind)
    if expected is None:
        assert res.status in (Status.INFEASIBLE, Status.INF_OR_UNBD)
        return
    assert_optimal(res, LINE_X, LINE_Y, kind, expected)


def test_min_weight_by_hand(milp_solver: str) -> None:
    """x = 1 -> 1, x = -1 -> 0 with margin 1: w + b >= 1, b - w <= -1, so w >= 1: min |w| = 1."""
    res = train(one_layer(1, 1, "identity"), LINE_X[:2], LINE_Y[:2], 2, milp_solver, loss="min_weight")
    assert_optimal(res, LINE_X[:2], LINE_Y[:2], "min_weight", 1.0)


# -- brute force over a tiny integer domain ----------------------------------------------------------------------
GRID = np.array([[i, j] for i in range(3) for j in range(3)], dtype=float)   # {0, 1, 2}^2
DATASETS = {
    # y = [x1 > x2] on points with |x1 - x2| >= 1: separable with margin 1 by a = x1 - x2
    "sep2": (np.array([[0, 1], [1, 0], [2, 0], [0, 2], [2, 1], [1, 2]], dtype=float), np.array([0, 1, 1, 0, 1, 0])),
    # class scores (x1, x2, 1) separate these with margin 1
    "sep3": (np.array([[2, 0], [0, 2], [0, 0], [2, 1], [1, 2]], dtype=float), np.array([0, 1, 2, 0, 1])),
    "noisy2": (GRID, np.array([1, 0, 0, 1, 1, 0, 1, 1, 0])),
    "noisy3": (GRID, np.array([2, 1, 1, 0, 2, 1, 0, 0, 2])),
}


def brute_force(kind: str, X: np.ndarray, y: np.ndarray, n_out: int, margin: float, l1: float
                ) -> tuple[float | None, int]:
    """Optimum over every W in {-1,0,1}^(n_out x 2), b in {-1,0,1}^n_out (None when none is feasible)."""
    n_in = X.shape[1]
    k = n_out * n_in + n_out
    grid = np.array(list(itertools.product((-1.0, 0.0, 1.0), repeat=k)))   # (C, k)
    W = grid[:, :n_out * n_in].reshape(-1, n_out, n_in)
    b = grid[:, n_out * n_in:]
    pre = np.einsum("coi,ni->cno", W, X) + b[:, None, :]
    loss, feasible = oracle_loss(kind, pre, y, np.abs(W).sum(axis=(1, 2)), margin, l1)
    if not feasible.any():
        return None, int(grid.shape[0])
    return float(loss[feasible].min()), int(grid.shape[0])


CASES = [
    ("hamming", "sep2", 1, 1.0, 0.0),
    ("hamming", "sep2", 2, 1.0, 0.25),
    ("hamming", "noisy2", 1, 1.0, 0.0),
    ("hamming", "noisy2", 2, 1.0, 0.0),
    ("hamming", "noisy3", 3, 1.0, 0.0),
    ("zero_one", "noisy2", 1, 1.0, 0.0),
    ("zero_one", "noisy2", 2, 0.5, 0.0),
    ("zero_one", "noisy3", 3, 1.0, 0.0),
    ("zero_one", "noisy3", 3, 1.0, 0.2),
    ("hinge", "noisy2", 1, 1.0, 0.0),
    ("hinge", "noisy2", 2, 2.0, 0.1),
    ("hinge", "noisy3", 3, 1.0, 0.0),
    ("hinge", "sep2", 2, 1.0, 0.3),
    ("min_weight", "sep2", 1, 1.0, 0.0),
    ("min_weight", "sep2", 2, 1.0, 0.0),
    ("min_weight", "sep2", 2, 1.5, 0.5),
    ("min_weight", "sep3", 3, 1.0, 0.0),
    ("min_weight", "noisy2", 1, 1.0, 0.0),      # infeasible: no network classifies every point
    ("max_margin", "sep2", 1, 1.0, 0.0),
    ("max_margin", "sep2", 2, 1.0, 0.0),
    ("max_margin", "sep2", 1, 1.0, 0.1),
    ("max_margin", "sep3", 3, 1.0, 0.0),
]


@pytest.mark.parametrize(("kind", "data", "n_out", "margin", "l1"), CASES,
                         ids=[f"{k}-{d}-{n}out-g{g}-l1_{p}" for k, d, n, g, p in CASES])
def test_milp_optimum_equals_brute_force(milp_solver: str, kind: str, data: str, n_out: int, margin: float,
                                         l1: float) -> None:
    X, y = DATASETS[data]
    n_classes = int(y.max()) + 1
    best, n_combos = brute_force(kind, X, y, n_out, margin, l1)
    assert n_combos == 3 ** (3 * n_out)
    act = "step" if kind == "hamming" else "identity"
    net = one_layer(2, n_out, act, weights=integer(-1, 1), bias=integer(-1, 1))
    res = train(net, X, y, n_classes, milp_solver, loss=kind, margin=margin, l1=l1)
    if best is None:
        assert res.status in (Status.INFEASIBLE, Status.INF_OR_UNBD), res.status
        assert res.network is None
        assert not res.verified
        return
    assert_optimal(res, X, y, kind, best, margin=margin, l1=l1)


def test_brute_force_oracle_by_hand() -> None:
    """The oracle itself, on cases small enough to check on paper."""
    y = np.array([0, 1])
    pre = np.array([[[-1.0], [2.0]], [[0.0], [1.0]], [[0.5], [-0.5]]])   # three candidate networks, 1 output
    loss, feas = oracle_loss("hamming", pre, y, np.zeros(3))
    assert loss.tolist() == [0.0, 0.0, 2.0]
    assert feas.tolist() == [True, False, True]
    loss, _ = oracle_loss("hinge", pre, y, np.zeros(3))
    assert loss.tolist() == [0.0 + 0.0, 1.0 + 0.0, 1.5 + 1.5]
    loss, feas = oracle_loss("max_margin", pre, y, np.zeros(3))
    assert loss.tolist() == [-1.0, -0.0, 0.5]
    assert feas.tolist() == [True, False, False]
    three = np.array([[[3.0, 1.0, 1.0], [0.0, 2.0, 2.0]]])   # a tie for the best other class
    assert margins(three, np.array([0, 1])).tolist() == [[2.0, 0.0]]


# -- cross-solver agreement ------------------------------------------------------------------------------------------
def bcw_like(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 5, size=(n, 4)) / 4.0
    y = ((X @ np.array([1.0, -1.0, 0.5, 0.25]) + 0.1 * rng.standard_normal(n)) > 0.2).astype(int)
    return X, y


@pytest.mark.parametrize(("loss", "n_out"), [("hamming", 2), ("hinge", 1), ("zero_one", 2)])
def test_highs_and_cbc_agree(loss: str, n_out: int) -> None:
    if not (is_installed("highs") and is_installed("cbc")):
        pytest.skip("needs highspy and mip")
    X, y = bcw_like(14, 3)
    if loss == "hamming":
        net = two_layer(4, 2, n_out)
    else:
        nb = NetworkBuilder("s")
        a = nb.step("a", nb.dense("h", nb.input("x", 4), 2, weights=real(-1, 1), bias=real(-1, 1)))
        nb.identity("y", nb.dense("o", a, n_out, weights=integer(-2, 2), bias=real(-1, 1)))
        net = nb.build()
    tm = build_training_model(net, X, y, 2, loss)
    raws = {s: get_backend(s).solve(tm.model, EXACT) for s in ("highs", "cbc")}
    assert {r.status for r in raws.values()} == {Status.OPTIMAL}
    assert raws["highs"].objective == pytest.approx(raws["cbc"].objective, abs=TOL)
    for s in ("highs", "cbc"):
        res = train_network(net, X, y, 2, loss=loss, solver=s, options=EXACT)
        assert res.verified
        assert res.loss == pytest.approx(raws["highs"].objective, abs=TOL)
        assert forward_loss(res, X, y, loss) == pytest.approx(res.loss, abs=TOL)


# -- the repair path ---------------------------------------------------------------------------------------------------
def _broken_solution(net: Network, X: np.ndarray, y: np.ndarray) -> tuple[Any, np.ndarray, float]:
    """A solver-like answer whose activation pattern the forward pass does not reproduce: from an optimal
    solution, move a bias so that one pre-activation lies just below 0 while its binary reads 1 - 1e-6."""
    tm = build_training_model(net, X, y, 2, "hamming")
    raw = get_backend("highs").solve(tm.model, EXACT)
    assert raw.status is Status.OPTIMAL
    assert raw.x is not None
    x = raw.x.copy()
    u_cols, rows = tm.patterns["a"]
    pc = tm.params["h"]
    assert pc.W_cols is not None
    assert pc.b_cols is not None
    a = X @ x[pc.W_cols].T + x[pc.b_cols]
    i, j = np.argwhere(np.round(x[u_cols][rows]) == 1)[0]   # a point whose first-layer unit is on
    x[pc.b_cols[j]] -= a[i, j] + 1e-7                         # now a[i, j] = -1e-7 < 0
    x[u_cols[rows[i], j]] = 1.0 - 1e-6
    return tm, x, float(raw.objective)


def test_repair_model_fixes_a_perturbed_solution() -> None:
    if not is_installed("highs"):
        pytest.skip("needs highspy")
    net = two_layer(2, 2, 1)
    tm, x, objective = _broken_solution(net, XOR_X, XOR_Y)
    before = check_solution(tm, net, XOR_X, XOR_Y, x, objective)
    assert not before.verified
    assert before.mismatches >= 1
    rep = get_backend("highs").solve(repair_model(tm.model, x, objective), SolveOptions())
    assert rep.status is Status.OPTIMAL
    assert rep.x is not None
    assert rep.x[-1] > 0                                      # a positive extra margin exists
    after = check_solution(tm, net, XOR_X, XOR_Y, rep.x[:-1], objective)
    assert after.verified
    assert after.mismatches == 0
    assert after.loss == pytest.approx(objective, abs=TOL)
    # the repaired weights keep every binary of the perturbed pattern
    u_cols, _ = tm.patterns["a"]
    assert np.array_equal(np.round(rep.x[u_cols]), np.round(x[u_cols]))


class _PerturbingBackend:
    """Wraps a backend: the first solve answers with a perturbed solution, later solves pass through."""

    def __init__(self, inner: Any, x: np.ndarray, objective: float) -> None:
        self.inner, self.x, self.objective, self.calls = inner, x, objective, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def solve(self, model: Any, opts: SolveOptions) -> RawResult:
        self.calls += 1
        if self.calls == 1:
            return RawResult(Status.OPTIMAL, "highs", self.x.copy(), self.objective, self.objective, 0.0)
        return self.inner.solve(model, opts)


def test_train_network_repairs_and_reports_it(monkeypatch: pytest.MonkeyPatch) -> None:
    if not is_installed("highs"):
        pytest.skip("needs highspy")
    net = two_layer(2, 2, 1)
    _, x, objective = _broken_solution(net, XOR_X, XOR_Y)
    fake = _PerturbingBackend(get_backend("highs"), x, objective)
    monkeypatch.setattr("nnmip.drivers.train.get_backend", lambda name: fake)
    res = train_network(net, XOR_X, XOR_Y, 2, solver="highs", options=EXACT)
    assert fake.calls == 2
    assert res.repaired
    assert res.verified
    assert any(n.startswith("forward-pass check failed before repair") for n in res.notes)
    assert res.loss == pytest.approx(forward_loss(res, XOR_X, XOR_Y, "hamming"), abs=0)
    assert res.loss == pytest.approx(objective, abs=TOL)


def test_unrepairable_solution_is_reported_unverified(monkeypatch: pytest.MonkeyPatch) -> None:
    """A claimed objective below the true optimum cannot be repaired: the result says so loudly."""
    if not is_installed("highs"):
        pytest.skip("needs highspy")
    net = two_layer(2, 1, 1)   # XOR with one hidden unit: optimum 1
    tm = build_training_model(net, XOR_X, XOR_Y, 2, "hamming")
    raw = get_backend("highs").solve(tm.model, EXACT)
    assert raw.x is not None
    x = raw.x.copy()
    u_out, rows = tm.patterns["y"]
    x[u_out[rows, 0]] = XOR_Y            # claim every output bit right
    fake = _PerturbingBackend(get_backend("highs"), x, 0.0)
    monkeypatch.setattr("nnmip.drivers.train.get_backend", lambda name: fake)
    res = train_network(net, XOR_X, XOR_Y, 2, solver="highs", options=EXACT)
    assert not res.verified
    assert not res.repaired
    assert any(n.startswith("NOT VERIFIED") for n in res.notes)
    assert res.loss is not None
    assert res.loss >= 1.0


# -- model sizes ------------------------------------------------------------------------------------------
def test_model_size_by_hand() -> None:
    """N points, d inputs, hidden width h, outputs o: W1 (h d) + b1 (h) + u1 (N h) + W2 (o h) + b2 (o)
    + s (N o h) + u2 (N o) columns; rows: 2 per u and 4 per s."""
    N, d, h, o = 4, 2, 3, 2
    tm = build_training_model(two_layer(d, h, o), XOR_X, XOR_Y, 2, "hamming")
    st = tm.model.stats()
    assert st["variables"] == h * d + h + N * h + o * h + o + N * o * h + N * o
    assert st["binaries"] == N * h + N * o
    assert st["rows"] == 2 * N * h + 4 * N * o * h + 2 * N * o


# -- other paths through the formulation ------------------------------------------------------------------------
@pytest.mark.parametrize(("hidden", "optimum"), [(1, 1.0), (2, 0.0)])
def test_fixed_layer_between_trainable_ones(milp_solver: str, hidden: int, optimum: float) -> None:
    """A fixed copy layer (identity weights, bias -1/2, then step) between the hidden units and the output
    passes the bits on unchanged, so the XOR optima stay 1 (one hidden unit) and 0 (two)."""
    from nnmip.ir import fixed

    nb = NetworkBuilder("copy")
    a = nb.step("a", nb.dense("h", nb.input("x", 2), hidden, weights=real(-1, 1), bias=real(-1, 1)))
    c = nb.step("c", nb.dense("f", a, hidden, weights=fixed(np.eye(hidden)), bias=fixed(np.full(hidden, -0.5))))
    nb.step("y", nb.dense("o", c, 1, weights=real(-1, 1), bias=real(-1, 1)))
    res = train(nb.build(), XOR_X, XOR_Y, 2, milp_solver)
    assert_optimal(res, XOR_X, XOR_Y, "hamming", optimum)


@pytest.mark.parametrize(("hidden", "optimum"), [(1, 1.0), (2, 0.0)])
def test_sign_output_and_no_bias(milp_solver: str, hidden: int, optimum: float) -> None:
    """A sign output (-1/+1, read as bit 1 when +1) under hamming, and a bias-free hidden layer fed with an
    extra constant input 1: the same XOR optima."""
    nb = NetworkBuilder("sgn")
    a = nb.step("a", nb.dense("h", nb.input("x", 3), hidden, weights=real(-1, 1), bias=None))
    nb.sign("y", nb.dense("o", a, 1, weights=real(-1, 1), bias=real(-1, 1)))
    X = np.c_[XOR_X, np.ones(4)]
    res = train(nb.build(), X, XOR_Y, 2, milp_solver)
    assert res.status is Status.OPTIMAL
    assert res.verified
    assert res.objective == pytest.approx(optimum, abs=TOL)
    assert res.loss == pytest.approx(optimum, abs=TOL)
    assert res.network is not None
    out = res.network.forward(X)[:, 0]
    assert set(out.tolist()) <= {-1.0, 1.0}
    assert float(np.sum((out == 1.0) != (XOR_Y == 1))) == pytest.approx(optimum)
