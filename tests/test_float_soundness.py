"""Answers stay sound where float64 rounding is large: bounds hold for the forward pass when large terms cancel,
a MILP is not taken as a proof on badly scaled models or when a forward value contradicts its bound, an
optimum is certified only when an input reaches it, reported inputs lie in the set, and input branch and bound
ends on boxes it cannot settle."""

from __future__ import annotations

import threading

import networkx as nx
import numpy as np
import pytest

from nnmip.backends import available_backends
from nnmip.drivers.verify import MILP_TRUST_SCALE, network_from_layers, verify
from nnmip.ir import spec as vs
from nnmip.ir.network import Network
from nnmip.ir.ops import Dense, Input, MaxPool, ParamDomain, ReLU
from nnmip.model import MatrixModel
from nnmip.passes.bounds import dual_bound, rounding_slack, tighten_bounds

A = 1e11


def _cancelling() -> Network:
    """``y = relu(A x + A) - relu(A x) - A + relu(x) = x`` on ``x >= 0``: exact, but float64 loses about 1e-5."""
    return network_from_layers([(np.array([[A], [A], [1.0]]), np.array([A, 0.0, 0.0])),
                                (np.array([[1.0, -1.0, 1.0]]), np.array([-A]))], "relu")


def test_bounds_hold_for_the_forward_pass_when_terms_cancel() -> None:
    net = _cancelling()
    X = 0.3 + 0.4 * np.random.default_rng(0).random((100_000, 1))
    Y = net.forward(X)[:, 0]
    assert Y.max() > 0.7 + 1e-6            # rounding takes the forward pass past the exact range
    region = vs.Region((vs.box([0.3], [0.7]),))
    for method in ("interval", "symbolic", "lp", "lp-cuts"):
        lo, hi = tighten_bounds(net, region, method=method).bounds[net.output]
        assert lo[0] <= Y.min(), method
        assert Y.max() <= hi[0], method
        assert hi[0] - lo[0] < 0.41 if method != "interval" else True     # still tight where cancelling


def test_no_certificate_the_forward_pass_breaks() -> None:
    net = _cancelling()
    r = verify(net, [vs.box([0.3], [0.7])], vs.maximize([1.0], threshold=0.7 + 1e-6))
    assert r.result in ("counterexample", "unknown")
    if r.result == "counterexample":
        assert r.counterexample is not None
        assert net.forward(r.counterexample[None, :])[0, 0] >= 0.7 + 1e-6


def test_rounding_slack_grows_with_the_cancelled_terms() -> None:
    net = _cancelling()
    s = rounding_slack(net, np.array([0.3]), np.array([0.7]))
    assert s[net.output][0] > 1e-6                       # terms of 1e11 cancel
    small = network_from_layers([(np.array([[1.0], [1.0]]), np.zeros(2)), (np.array([[1.0, -1.0]]), np.zeros(1))],
                                "relu")
    assert rounding_slack(small, np.array([0.3]), np.array([0.7]))[small.output][0] < 1e-14


@pytest.mark.parametrize("sparse", [False, True])
def test_dense_magnitude_is_the_interval_on_the_symmetric_box(sparse: bool) -> None:
    """The rounding slack's ``|W| m + |b|`` is ``max(|lo|, |hi|)`` of the interval product over ``[-m, m]``."""
    import scipy.sparse as sps

    rng = np.random.default_rng(3)
    W = rng.normal(size=(7, 5)) * (rng.random((7, 5)) < 0.6)
    b = rng.normal(size=7)
    op = (Dense(n_in=5, n_out=7, sparse=sps.csr_array(W), bias=ParamDomain.fixed(b)) if sparse else
          Dense(n_in=5, n_out=7, weights=ParamDomain.fixed(W), bias=ParamDomain.fixed(b)))
    m = rng.random(5) * 10.0
    lo, hi = op.interval(-m, m)
    np.testing.assert_allclose(op.magnitude(m), np.maximum(np.abs(lo), np.abs(hi)), rtol=1e-14)
    np.testing.assert_allclose(op.magnitude(m), np.abs(W) @ m + np.abs(b), rtol=1e-14)


def test_dual_bound_adds_its_rounding() -> None:
    # max x0 - x1 with x0 = x1 + 1 (a row), x in [0, 1e12]: the duals 1 give 1 with terms of 1e12 cancelling
    import scipy.sparse as sp

    m = MatrixModel(A=sp.csr_array(np.array([[1.0, -1.0]])), row_lb=np.array([1.0]), row_ub=np.array([1.0]),
                    col_lb=np.zeros(2), col_ub=np.full(2, 1e12), c=np.zeros(2), vtype=np.array(["C", "C"]),
                    sense="max", c0=0.0)
    b = dual_bound(m, np.array([1.0, -1.0]), np.array([1.0]))
    assert b >= 1.0
    assert 1e-4 < b - 1.0 < 1e-2       # the rounding term of the 1e12 terms, and no more


# a ReLU -> ReLU -> max-pool network whose values reach 3e7: HiGHS called its MILP infeasible (bound -inf)
MAXPOOL = [
    ("x", "input", 5, ()),
    ("d0", "dense", ([[976.3369372458307, -726.4425805546559, 82.45389258948708, 621.7157119527078, -1065.082978290793],
                      [-0.009935661441419233, -0.0017361133998608379, -0.002706361470945855, 0.0020644395038441152,
                       -0.0009459292750817647]], [663.3605246876572, 333.9179308064502]), ("x",)),
    ("a0", "relu", None, ("d0",)),
    ("d1", "dense", ([[15144.963389549388, 10667.058960784638], [11887.989190957329, -7827.674671763432],
                      [11829.788652161902, 3306.9009601596963], [-11394.099171209242, -9158.314125068346],
                      [5086.644950326953, 2583.510261253756]], [0.0, 0.0, 0.0, 0.0, 0.0]), ("a0",)),
    ("a1", "relu", None, ("d1",)),
    ("p1", "maxpool", [[1, 0, 4], [4, 3, 2], [1, 4, 3]], ("a1",)),
    ("out", "dense", ([[-0.3872506482272401, 0.48492125328458197, 0.11926583366080265],
                       [0.9895988354526728, -0.6801528684330561, 0.818486158289947],
                       [-0.14906008835373064, -0.956162002253259, 0.6190870707620111]],
                      [-1.2998298772512387, -0.04488354279903244, 0.987695600980483]), ("p1",)),
]
LO = np.array([0.6044007423870359, 0.5349937451039105, 0.778075774465208, 0.22276927833427562, 0.17359558489762916])
HI = np.array([1.0041664747315455, 0.5349937451039105, 0.778075774465208, 0.48934513583837624, 0.40459642191676837])
C = np.array([1.68192456, 1.79463139, 1.28344242])


def _maxpool_net() -> Network:
    g = nx.DiGraph()
    for n, kind, p, ins in MAXPOOL:
        if kind == "input":
            op = Input(dim=p)
        elif kind == "relu":
            op = ReLU()
        elif kind == "maxpool":
            op = MaxPool(index=np.asarray(p, dtype=np.int64))
        else:
            W, b = np.asarray(p[0]), np.asarray(p[1])
            op = Dense(n_in=W.shape[1], n_out=W.shape[0], weights=ParamDomain.fixed(W), bias=ParamDomain.fixed(b))
        g.add_node(n, op=op, inputs=tuple(ins))
        for i in ins:
            g.add_edge(i, n)
    return Network(g, "maxpool_net")


@pytest.mark.parametrize("solver", [s for s in ("highs", "cbc") if s in available_backends()])
def test_badly_scaled_milp_is_no_proof(solver: str) -> None:
    net = _maxpool_net()
    X = LO + np.random.default_rng(0).random((20_000, LO.size)) * (HI - LO)
    reached = float((net.forward(X) @ C).max())
    assert reached > MILP_TRUST_SCALE
    r = verify(net, [vs.box(LO, HI)], vs.maximize(C), solver=solver, time_limit=30,
               domain=(np.zeros(5), np.ones(5)))
    assert r.bound is not None
    assert r.bound >= reached
    assert r.value is not None
    assert r.bound >= r.value
    assert r.result == "unknown"
    assert any("no longer make its MILP answers proofs" in n for n in r.notes)
    t = vs.maximize(C, threshold=0.99 * reached)        # violated: never certified
    assert verify(net, [vs.box(LO, HI)], t, solver=solver, time_limit=30, samples=0, bab="off",
                  domain=(np.zeros(5), np.ones(5))).result in ("counterexample", "unknown")


def test_an_optimum_no_input_reaches_is_not_certified() -> None:
    # y = step(x - 0.5) over the single point x = 0.5: step(0) = 0, while the model leaves a = 1 open at 0
    net = network_from_layers([(np.array([[1.0]]), np.array([-0.5])), (np.array([[1.0]]), np.array([0.0]))], "step")
    r = verify(net, [vs.linf([0.5], 0.0)], vs.maximize([1.0]), time_limit=30)
    assert r.result == "unknown"
    assert r.bound is not None
    assert r.value is not None
    assert r.bound >= r.value == 0.0


def test_reported_inputs_lie_in_a_small_l1_ball() -> None:
    for seed in range(6):
        rng = np.random.default_rng(seed)
        net = network_from_layers([(rng.normal(size=(6, 3)), rng.normal(size=6)),
                                   (rng.normal(size=(1, 6)), rng.normal(size=1))], "relu")
        c = rng.random(3)
        r = verify(net, [vs.l1(c, 1e-6)], vs.maximize([1.0]), domain=(np.zeros(3), np.ones(3)), time_limit=30)
        region = vs.Region((vs.l1(c, 1e-6),), np.zeros(3), np.ones(3))
        assert r.counterexample is not None
        assert region.contains_point(r.counterexample), seed
        assert r.value == pytest.approx(float(net.forward(r.counterexample[None, :])[0, 0]), abs=0.0)


def test_input_branch_and_bound_ends_on_boxes_it_cannot_settle() -> None:
    """Sixteen units share a kink at x0 = 1/3 where the score is 0 exactly (a strict case: never hit, never
    certified by the margin): the boxes around the kink stop splitting once they are too narrow, and the answer
    is 'unknown' without a time limit, not an endless search."""
    t = 1.0 / 3.0
    W1 = np.vstack([np.array([[1.0, 0.0], [-1.0, 0.0]])] * 8)
    net = network_from_layers([(W1, np.tile([-t, t], 8)), (-np.ones((1, 16)), np.zeros(1))], "relu")
    case = vs.Case(G=np.array([[-1.0]]), h=np.zeros(1), strict=np.array([True]))      # y > 0
    out: list[object] = []
    # a daemon thread: were the search endless again, the test fails instead of hanging the run
    th = threading.Thread(target=lambda: out.append(verify(net, [vs.box([0, 0], [1, 1])], vs.unsafe([case]),
                                                           samples=0, bab="input")), daemon=True)
    th.start()
    th.join(120)
    assert not th.is_alive()
    r = out[0]
    assert r.result == "unknown"          # type: ignore[attr-defined]
    assert r.timed_out is False           # type: ignore[attr-defined]


def test_sampled_points_lie_in_the_region_exactly() -> None:
    """The corners of a tiny l1 ball's box, pulled to the ball, may round just outside it: sampling keeps only the
    points the exact test accepts (they may be reported as the input attaining a value)."""
    region = vs.Region((vs.l1(np.array([0.85574424]), 1e-6),), np.zeros(1), np.ones(1))
    X = region.sample(1, 256, np.random.default_rng(0))
    assert X.shape[0] > 0
    assert all(region.contains_point(x) for x in X)
    for seed in range(5):
        c = np.random.default_rng(seed).random(3)
        reg3 = vs.Region((vs.l1(c, 1e-6),), np.zeros(3), np.ones(3))
        assert all(reg3.contains_point(x) for x in reg3.sample(3, 256, np.random.default_rng(seed)))


def test_the_value_is_the_forward_pass_of_the_reported_input() -> None:
    """The value of an optimum is the forward pass of the input reported with it, run on its own (in a batch of
    samples a row can round differently where terms cancel)."""
    net = _cancelling()
    for seed in range(4):
        r = verify(net, [vs.box([0.3], [0.7])], vs.maximize([1.0]), seed=seed, time_limit=30)
        assert r.counterexample is not None
        assert r.value == float(net.forward(r.counterexample[None, :])[0, 0])
    rng = np.random.default_rng(1974)
    layers = [(rng.normal(size=(8, 4)) * 10 ** rng.uniform(-3, 3, size=(8, 1)), rng.normal(size=8)),
              (rng.normal(size=(2, 8)), rng.normal(size=2))]
    wide = network_from_layers(layers, "relu")
    r = verify(wide, [vs.box(np.zeros(4), np.ones(4))], vs.maximize([1.0, -1.0]), time_limit=30)
    assert r.counterexample is not None
    assert r.value == float(wide.forward(r.counterexample[None, :])[0] @ np.array([1.0, -1.0]))


def test_a_proven_difference_holds_for_the_forward_passes() -> None:
    """``prove_equivalence`` (``nnmip compress --prove``) against ``g(x) = x``: the cancelling network computes x
    exactly but its forward pass strays by about 2e-5; the proven bound of |f - g| must cover that."""
    from nnmip.drivers.compress import prove_equivalence

    f = _cancelling()
    g = network_from_layers([(np.array([[1.0]]), np.zeros(1)), (np.array([[1.0]]), np.zeros(1))], "relu")
    X = 0.3 + 0.4 * np.random.default_rng(0).random((100_000, 1))
    seen = float(np.max(np.abs(f.forward(X) - g.forward(X))))
    assert seen > 1e-6
    proof = prove_equivalence(f, g, [0.3], [0.7])
    assert proof["bound"] >= seen
    assert proof["optimal"] is False        # values of 1e11: no MILP proof, the interval bound stands
    # an ordinary pair: the MILPs count, and the bound is about the true largest difference (0.1)
    h = network_from_layers([(np.array([[1.0]]), np.zeros(1)), (np.array([[1.1]]), np.zeros(1))], "relu")
    p2 = prove_equivalence(g, h, [0.0], [1.0])
    assert p2["optimal"] is True
    assert 0.1 - 1e-9 <= p2["bound"] <= 0.1 + 1e-6
