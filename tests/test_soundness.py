"""Adversarial soundness checks of what the compiler emits, against independent oracles.

Verification: tiny fixed-weight ReLU/step/sign networks with weights in multiples of 0.25 (exact in binary, so
ties are exact and likely).  The oracle enumerates every activation pattern of the hidden units and solves one
LP per pattern (scipy ``linprog``); for step/sign a pattern counts only when it is realisable with ``a > 0``
strictly on its active units.  Interval, LP- and MILP-tightened bounds must contain every sampled and every
oracle-extreme pre-activation; maxima must equal the oracle; ``certified`` must never come with a counterexample.

Training: with every parameter fixed (random multiples of 0.25, some neurons, features or layers zeroed), the
training model -- step/sign margins, McCormick products, every loss, clusters, the robust dual-norm rows, the
pruning links and the perspective cuts or cones -- must be feasible exactly when numpy says the margins hold, and
its optimum must equal the loss numpy computes.  Robust training is checked on the returned weights by the exact
dual norms and by sampling each training point's set.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from nnmip.backends import is_installed
from nnmip.drivers.verify import CERTIFIED, COUNTEREXAMPLE, UNKNOWN, network_from_layers, verify
from nnmip.ir import spec as vs
from nnmip.passes.bounds import propagate_bounds, tighten_bounds

SETTINGS = settings(derandomize=True, deadline=None, max_examples=25,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TOL = 1e-6


# ------------------------------------------------------------------------------------------------------------
# the oracle: activation patterns, one LP each
# ------------------------------------------------------------------------------------------------------------
class Oracle:
    """Exact extremes of affine functions of a tiny network's nodes over a box (optionally cut by an l1 ball)."""

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]], act: str, lo: np.ndarray, hi: np.ndarray,
                 l1: tuple[np.ndarray, float] | None = None) -> None:
        self.layers, self.act, self.lo, self.hi, self.l1 = layers, act, lo, hi, l1
        self.n = lo.size

    def _pieces(self, k: int, pattern: tuple[np.ndarray, ...]) -> tuple[list, np.ndarray, np.ndarray]:
        """Rows (A, d, active) of the hidden layers before dense layer ``k`` and its pre-activation A x + d."""
        A, d = np.eye(self.n), np.zeros(self.n)
        rows = []
        for j in range(k):
            W, b = self.layers[j]
            Aa, da = W @ A, W @ d + b
            p = pattern[j]
            rows.append((Aa, da, p))
            if self.act == "relu":
                A, d = Aa * p[:, None], da * p
            else:
                A = np.zeros_like(Aa)
                d = p.astype(float) if self.act == "step" else 2.0 * p - 1.0
        W, b = self.layers[k]
        return rows, W @ A, W @ d + b

    def _lp(self, rows: list, c: np.ndarray, strict: bool) -> tuple[float, np.ndarray | None]:
        """max c.x (or, with ``strict``, the largest margin tau of the active rows) over the pattern's set."""
        n = self.n
        m1 = n if self.l1 is not None else 0
        nv = n + m1 + 1                                   # x, l1 slacks, tau
        A_ub, b_ub = [], []
        for Aa, da, p in rows:
            for i in range(Aa.shape[0]):
                row = np.zeros(nv)
                if p[i]:        # active: A x + d >= tau (strict) or >= 0
                    row[:n] = -Aa[i]
                    row[-1] = 1.0 if strict else 0.0
                    A_ub.append(row)
                    b_ub.append(da[i])
                else:           # inactive: A x + d <= 0
                    row[:n] = Aa[i]
                    A_ub.append(row)
                    b_ub.append(-da[i])
        if self.l1 is not None:
            ctr, r = self.l1
            for j in range(n):
                row = np.zeros(nv)
                row[j], row[n + j] = 1.0, -1.0
                A_ub.append(row)
                b_ub.append(ctr[j])
                row = np.zeros(nv)
                row[j], row[n + j] = -1.0, -1.0
                A_ub.append(row)
                b_ub.append(-ctr[j])
            row = np.zeros(nv)
            row[n:n + m1] = 1.0
            A_ub.append(row)
            b_ub.append(r)
        bounds = [(self.lo[j], self.hi[j]) for j in range(n)] + [(0, None)] * m1 + [(0.0, 1.0 if strict else 0.0)]
        obj = np.zeros(nv)
        if strict:
            obj[-1] = -1.0
        else:
            obj[:n] = -c
        res = linprog(obj, A_ub=np.array(A_ub) if A_ub else None, b_ub=np.array(b_ub) if b_ub else None,
                      bounds=bounds, method="highs")
        if res.status == 2:
            return -np.inf, None
        assert res.status == 0, res.message
        return -float(res.fun), res.x[:n]

    def patterns(self, k: int):
        """Reachable patterns of the hidden layers before dense layer ``k``."""
        sizes = [self.layers[j][0].shape[0] for j in range(k)]
        for bits in itertools.product([False, True], repeat=sum(sizes)):
            offs = np.cumsum([0, *sizes])
            pat = tuple(np.array(bits[offs[j]:offs[j + 1]]) for j in range(k))
            rows, _, _ = self._pieces(k, pat)
            if self.act == "relu":
                val, _ = self._lp(rows, np.zeros(self.n), strict=False)
                ok = np.isfinite(val)
            else:
                val, _ = self._lp(rows, np.zeros(self.n), strict=True)
                ok = val > 1e-7
            if ok:
                yield pat

    def extremes(self, k: int, C: np.ndarray, h: np.ndarray | None = None) -> tuple[np.ndarray, list]:
        """max over the input set of ``C @ a_k + h`` per row of ``C`` (a_k the pre-activation of dense layer
        ``k``), and the maximisers found (one per pattern and row)."""
        h = np.zeros(C.shape[0]) if h is None else h
        best = np.full(C.shape[0], -np.inf)
        points = []
        for pat in self.patterns(k):
            rows, A, d = self._pieces(k, pat)
            for r in range(C.shape[0]):
                val, x = self._lp(rows, C[r] @ A, strict=False)
                val += float(C[r] @ d + h[r])
                if x is not None:
                    points.append(x)
                best[r] = max(best[r], val)
        return best, points


# ------------------------------------------------------------------------------------------------------------
# random tiny networks and sets
# ------------------------------------------------------------------------------------------------------------
def quarters(draw, shape: tuple[int, ...], lo: int = -6, hi: int = 6) -> np.ndarray:
    vals = draw(st.lists(st.integers(lo, hi), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    return np.array(vals, dtype=np.float64).reshape(shape) / 4.0


@st.composite
def problems(draw, act: str):
    n_in = draw(st.integers(2, 3))
    hidden = draw(st.sampled_from([[2], [3], [2, 2]]))
    n_out = draw(st.integers(1, 2))
    sizes = [n_in, *hidden, n_out]
    layers = [(quarters(draw, (b, a)), quarters(draw, (b,), -3, 3)) for a, b in zip(sizes[:-1], sizes[1:],
                                                                                   strict=True)]
    center = quarters(draw, (n_in,), -2, 2)
    kind = draw(st.sampled_from(["linf", "box", "l1"]))
    if kind == "linf":
        r = draw(st.sampled_from([0.25, 0.5, 1.0]))
        sets = [vs.linf(center, r)]
        lo, hi, l1 = center - r, center + r, None
    elif kind == "box":
        w = quarters(draw, (n_in,), 0, 4)
        sets = [vs.box(center - w, center + w)]
        lo, hi, l1 = center - w, center + w, None
    else:
        r = draw(st.sampled_from([0.5, 1.0]))
        sets = [vs.linf(center, 0.75), vs.l1(center, r)]
        lo, hi, l1 = center - 0.75, center + 0.75, (center, r)
    return layers, sets, Oracle(layers, act, lo, hi, l1)


def _samples(oracle: Oracle, k: int = 3000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lo, hi = oracle.lo, oracle.hi
    corners = np.array(list(itertools.product(*zip(lo, hi, strict=True))))
    X = np.vstack([corners, lo + rng.random((k, lo.size)) * (hi - lo)])
    if oracle.l1 is not None:
        c, r = oracle.l1
        X = X[np.abs(X - c).sum(axis=1) <= r]
        verts = np.vstack([c + r * s * e for e in np.eye(lo.size) for s in (-1.0, 1.0)])
        X = np.vstack([X, np.clip(verts, lo, hi), c[None]])
    return X


def _dense_nodes(net) -> list[str]:
    return [n for n in net.nodes if net.op(n).kind == "dense"]


# ------------------------------------------------------------------------------------------------------------
# 1. bounds contain every reachable pre-activation
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.slow  # about 13 s per activation on 2 busy cores
@pytest.mark.parametrize("act", ["relu", "step", "sign"])
@SETTINGS
@given(data=st.data())
def test_bounds_contain_samples_and_oracle_extremes(act: str, data) -> None:
    layers, sets, oracle = data.draw(problems(act))
    net = network_from_layers(layers, act)
    region = vs.Region(tuple(sets))
    ibp = propagate_bounds(net, region)
    sym = tighten_bounds(net, region, method="symbolic")
    lp = tighten_bounds(net, region, method="lp")
    milp = tighten_bounds(net, region, method="milp", bounds=lp.bounds)
    vals = net.forward(_samples(oracle), all_nodes=True)
    for k, node in enumerate(_dense_nodes(net)):
        d = layers[k][0].shape[0]
        eye = np.eye(d)
        top, pts = oracle.extremes(k, np.vstack([eye, -eye]))
        hi_true, lo_true = top[:d], -top[d:]
        v = vals[node]
        assert np.all(v.max(axis=0) <= hi_true + 1e-9)
        assert np.all(v.min(axis=0) >= lo_true - 1e-9)
        if pts:
            at = net.forward(np.array(pts), all_nodes=True)[node]
            assert np.all(at <= hi_true + 1e-9)
            assert np.all(at >= lo_true - 1e-9)
        for name, bm in (("interval", ibp), ("symbolic", sym.bounds), ("lp", lp.bounds), ("milp", milp.bounds)):
            lo_b, hi_b = bm[node]
            assert np.all(hi_b >= hi_true - 1e-12), (name, node, hi_b, hi_true)
            assert np.all(lo_b <= lo_true + 1e-12), (name, node, lo_b, lo_true)


# ------------------------------------------------------------------------------------------------------------
# 2. maxima equal the oracle; thresholds at the exact maximum are never certified
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.slow  # about 30 s per activation on 2 busy cores
@pytest.mark.parametrize("act", ["relu", "step", "sign"])
@SETTINGS
@given(data=st.data())
def test_maximum_equals_oracle_and_ties_are_never_certified(act: str, data) -> None:
    layers, sets, oracle = data.draw(problems(act))
    net = network_from_layers(layers, act)
    n_out = layers[-1][0].shape[0]
    c = quarters(data.draw, (n_out,), -4, 4)
    if not c.any():
        c[0] = 1.0
    L = len(layers) - 1
    (best,), pts = oracle.extremes(L, c[None, :])
    r = verify(net, sets, vs.maximize(c), samples=0)
    assert r.value is not None
    assert r.bound is not None
    if act == "relu":
        assert r.result == CERTIFIED
    else:   # step/sign: the model leaves a unit at a = 0 open both ways, so its optimum may be out of reach of the
        # forward pass: then the answer is the bound, not a certified optimum
        assert r.result in (CERTIFIED, UNKNOWN)
    if r.result == CERTIFIED:   # a certified optimum is reached by the reported input
        assert r.bound - r.value <= 1e-5 * (1 + abs(r.bound))
    assert r.bound >= best - TOL * (1 + abs(best))
    assert r.value <= best + TOL * (1 + abs(best))
    assert float(net.forward(r.counterexample)[0] @ c) == pytest.approx(r.value, abs=1e-9)
    if act == "relu":   # continuous: the bound is the maximum and the forward pass attains it
        assert r.bound == pytest.approx(best, rel=1e-6, abs=1e-7)
        assert r.value == pytest.approx(best, rel=1e-6, abs=1e-7)
    # the property c.y < t fails at the oracle's maximiser when t is the forward-pass value there: never certified
    P = np.clip(np.array(pts), oracle.lo, oracle.hi)
    P = P[vs.Region(tuple(sets)).contains(P, tol=0.0)]
    if P.shape[0]:
        vals = net.forward(P) @ c
        t = float(vals.max())
        assert t >= best - 1e-9 or act != "relu"     # step/sign: the LP point may sit at a = 0, a lesser witness
        tie = verify(net, sets, vs.maximize(c, threshold=t), samples=0)
        assert tie.result != CERTIFIED, tie.to_dict()
        if tie.result == COUNTEREXAMPLE:
            assert float(net.forward(tie.counterexample)[0] @ c) >= t
        # ... and c.y > t fails there too (minimize with threshold)
        assert verify(net, sets, vs.minimize(-c, threshold=-t), samples=0).result != CERTIFIED
    # c.y < best + 1/64 holds; c.y < best - 1/64 fails
    above = verify(net, sets, vs.maximize(c, threshold=best + 1 / 64), samples=0)
    assert above.result != COUNTEREXAMPLE
    if act == "relu":
        assert above.result == CERTIFIED
    below = verify(net, sets, vs.maximize(c, threshold=best - 1 / 64), samples=0)
    assert below.result != CERTIFIED
    if act == "relu":   # step/sign: a witness sitting at a = 0 of an inactive unit may stay unconfirmed
        assert below.result == COUNTEREXAMPLE


# ------------------------------------------------------------------------------------------------------------
# 3. classification certificates agree with the oracle
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("act", ["relu", "step", "sign"])
@SETTINGS
@given(data=st.data())
def test_certified_classification_agrees_with_oracle(act: str, data) -> None:
    layers, sets, oracle = data.draw(problems(act))
    net = network_from_layers(layers, act)
    n_out = layers[-1][0].shape[0]
    center = sets[0].center if sets[0].center is not None else 0.5 * (sets[0].lo + sets[0].hi)
    label = int(net.predict(center[None, :])[0])
    L = len(layers) - 1
    if n_out == 1:      # class 1 fails where y <= 0, class 0 where y > 0
        sgn = -1.0 if label == 1 else 1.0
        (worst,), _ = oracle.extremes(L, np.array([[sgn]]))
        fails = worst >= 0 if label == 1 else worst > 0
    else:               # class c fails where y_j >= y_c for j < c, y_j > y_c for j > c (ties: first index)
        C = np.array([np.eye(2)[1 - label] - np.eye(2)[label]])
        (worst,), _ = oracle.extremes(L, C)
        fails = worst > 0 if label == 0 else worst >= 0
    r = verify(net, sets, vs.classified(label), samples=0)
    if fails:
        assert r.result != CERTIFIED, (worst, r.to_dict())
    else:
        assert r.result != COUNTEREXAMPLE, (worst, r.to_dict())
        if act == "relu" and worst < -1e-6:   # exact ties stay unknown (the safety margin); step/sign may
            assert r.result == CERTIFIED, (worst, r.to_dict())   # too: u = 1 at a = 0 over-approximates
            assert r.bound >= worst - 1e-9
    if r.result == COUNTEREXAMPLE:
        assert vs.Region(tuple(sets)).contains(r.counterexample[None, :], tol=0.0)[0]
        y = net.forward(r.counterexample[None, :])[0]
        assert net.predict(r.counterexample[None, :])[0] != label, (y, label)


def test_tie_with_a_genuine_misclassification_is_not_certified() -> None:
    # y0 = 0, y1 = relu(x0 - x1/4 + 1/4) + 5/4 relu(-x0/4 - 3x1/4) + relu(-3x0/4 + 5x1/4) - 1/4 on [-1/4, 5/4]^2:
    # min y1 = 0 at x = (0, 0), where the tie y0 = y1 predicts class 0.  The MILP's bound of max(y0 - y1) comes
    # back as -1e-15; taken without the safety margin it certified class 1.
    layers = [(np.array([[1.0, -0.25], [-0.25, -0.75], [-0.75, 1.25]]), np.array([0.25, 0.0, 0.0])),
              (np.array([[0.0, 0.0, 0.0], [1.0, 1.25, 1.0]]), np.array([0.0, -0.25]))]
    net = network_from_layers(layers, "relu")
    box = vs.box([-0.25, -0.25], [1.25, 1.25])
    assert net.predict(np.array([[0.5, 0.5]]))[0] == 1
    assert net.predict(np.zeros((1, 2)))[0] == 0          # the counterexample the oracle finds
    oracle = Oracle(layers, "relu", np.full(2, -0.25), np.full(2, 1.25))
    (worst,), _ = oracle.extremes(1, np.array([[1.0, -1.0]]))
    assert worst == 0.0
    r = verify(net, [box], vs.classified(1), samples=0)
    assert r.result != CERTIFIED, r.to_dict()
    assert r.bound is not None
    assert r.bound >= 0.0


def test_solver_evidence_within_its_tolerance_of_zero_decides_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # the network above, with a solver that answers within its tolerances: bounds 1e-12 low and points 1e-9
    # off (the forward pass then rejects them).  The true maximum of y0 - y1 is 0 (a genuine misclassification at
    # x = 0), so "certified" would be wrong; the MILP bound must carry the safety margin.
    import dataclasses

    import nnmip.backends as backends

    layers = [(np.array([[1.0, -0.25], [-0.25, -0.75], [-0.75, 1.25]]), np.array([0.25, 0.0, 0.0])),
              (np.array([[0.0, 0.0, 0.0], [1.0, 1.25, 1.0]]), np.array([0.0, -0.25]))]
    net = network_from_layers(layers, "relu")
    real = backends.get_backend("highs")

    class Loose:
        name, capabilities, lp_session = "highs", real.capabilities, real.lp_session

        def solve(self, model, opts):
            raw = real.solve(model, opts)
            return dataclasses.replace(raw, x=None if raw.x is None else raw.x + 1e-9,
                                       bound=None if raw.bound is None else raw.bound - 1e-12)

    monkeypatch.setattr(backends, "get_backend", lambda name: Loose())
    r = verify(net, [vs.box([-0.25, -0.25], [1.25, 1.25])], vs.classified(1), samples=0)
    assert r.result != CERTIFIED, r.to_dict()


def test_a_tie_won_by_the_label_is_no_counterexample() -> None:
    # y0 = x, y1 = 2x - 1 on [0, 1]: y1 <= y0 with a tie at x = 1, where argmax (first index) still says 0
    net = network_from_layers([(np.array([[1.0], [2.0]]), np.array([0.0, -1.0]))])
    assert (net.predict(np.linspace(0, 1, 101)[:, None]) == 0).all()
    for samples in (0, 256):
        r = verify(net, [vs.box([0.0], [1.0])], vs.classified(0), samples=samples)
        assert r.result != COUNTEREXAMPLE, r.to_dict()
    # class 1 loses the same tie: x = 1 (and every x) is a genuine counterexample
    r = verify(net, [vs.box([0.0], [1.0])], vs.classified(1), samples=0)
    assert r.result == COUNTEREXAMPLE
    assert net.predict(r.counterexample[None, :])[0] == 0


# ------------------------------------------------------------------------------------------------------------
# 4. the training model with every parameter fixed: feasible exactly when the margins hold, optimum = numpy loss
# ------------------------------------------------------------------------------------------------------------
def _dual(kind: str, r: float, radii: np.ndarray, W: np.ndarray, cones: bool) -> np.ndarray:
    """Worst shift of each unit over the set, computed here from the definition of each dual norm."""
    A = np.abs(W)
    if kind == "linf" or (kind == "l2" and not cones):     # l2 without cones: the conservative l1 norm
        return r * A.sum(axis=1)
    if kind == "l1":
        return r * A.max(axis=1)
    if kind == "l2":
        return r * np.sqrt((W * W).sum(axis=1))
    return A @ radii                                        # box


@st.composite
def training_cases(draw):
    from nnmip.ir.builder import NetworkBuilder, integer, real

    d = draw(st.integers(2, 3))
    widths = draw(st.sampled_from([[2], [3], [2, 2]]))
    act = draw(st.sampled_from(["step", "sign"]))
    loss = draw(st.sampled_from(["hamming", "zero_one", "hinge", "min_weight"]))
    n_out = draw(st.integers(1, 2))
    N = draw(st.integers(3, 6))
    X = (2 * quarters(draw, (N, d), 0, 3) + 0.25) / 4.0              # odd multiples of 1/16 in [0, 1]
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=N, max_size=N)), dtype=np.int64)
    nb = NetworkBuilder("t")
    cur = nb.input("x", d)
    sizes = [d, *widths]
    params: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for k, w in enumerate(widths):
        ints = k > 0 and draw(st.booleans())
        dom = integer(-1, 1) if ints else real(-1, 1)
        name = f"h{k}"
        cur = nb.activation(act, f"a{k}", nb.dense(name, cur, w, weights=dom, bias=real(-2, 2)))
        W = np.array(draw(st.lists(st.integers(-1, 1), min_size=w * sizes[k], max_size=w * sizes[k])),
                     dtype=np.float64).reshape(w, sizes[k]) if ints else quarters(draw, (w, sizes[k]), -4, 4)
        params[name] = (W, quarters(draw, (w,), -8, 7) + 0.125)      # odd multiples of 1/8: a = 0 is rare
    out_act = "step" if loss == "hamming" else None
    o = nb.dense("out", cur, n_out, weights=real(-1, 1), bias=real(-1, 1))
    if out_act:
        nb.activation(out_act, "y", o)
    params["out"] = (quarters(draw, (n_out, widths[-1]), -4, 4), quarters(draw, (n_out,), -4, 3) + 0.125)
    extra = draw(st.sampled_from(["none", "groups", "robust", "prune", "robust+prune"]))
    if "prune" in extra:    # zero some first-layer neurons (incoming, bias, outgoing) and features
        W0, b0 = params["h0"]
        if draw(st.integers(0, 5)) == 0:      # the whole layer
            W0[:], b0[:] = 0.0, 0.0
        nxt = "h1" if len(widths) > 1 else "out"
        for l in range(widths[0]):
            if draw(st.integers(0, 2)) == 0:
                W0[l], b0[l] = 0.0, 0.0
                params[nxt][0][:, l] = 0.0
            elif draw(st.integers(0, 3)) == 0:    # incoming weights zero, bias live: the neuron stays
                W0[l] = 0.0
        for j in range(d):
            if draw(st.integers(0, 3)) == 0:
                W0[:, j] = 0.0
    if draw(st.booleans()):     # labels the network predicts: margins are positive, the hard losses feasible
        _, out = _forward(params, act, X, False)
        y = (out[:, 0] > 0).astype(np.int64) if n_out == 1 else (out[:, 1] > out[:, 0]).astype(np.int64)
    return nb.build(), X, y, params, act, loss, extra


def _forward(params, act: str, X: np.ndarray, out_step: bool) -> tuple[list[np.ndarray], np.ndarray]:
    """Pre-activations of every hidden layer and the output (numpy, independent of the library)."""
    h, pres = X, []
    names = [k for k in params if k != "out"]
    for name in names:
        W, b = params[name]
        a = h @ W.T + b
        pres.append(a)
        h = (a > 0).astype(float) if act == "step" else np.where(a > 0, 1.0, -1.0)
    W, b = params["out"]
    a = h @ W.T + b
    if out_step:
        pres.append(a)
    return pres, a


def _margins(out: np.ndarray, y: np.ndarray) -> np.ndarray:
    if out.shape[1] == 1:
        return (2 * y - 1) * out[:, 0]
    return out[np.arange(y.size), y] - out[np.arange(y.size), 1 - y]


@SETTINGS
@given(data=st.data())
def test_fixed_parameters_make_the_training_model_exact(data) -> None:
    from nnmip.backends import get_backend
    from nnmip.drivers.train import solve_training_model
    from nnmip.formulations.training import build_training_model
    from nnmip.ir.train_spec import PruneConfig, PruneSpec, RobustSpec
    from nnmip.solution import SolveOptions, Status

    net, X, y, params, act, loss, extra = data.draw(training_cases())
    draw = data.draw
    eps, g, l1 = 1e-3, 0.125, 0.25
    groups = robust = prune = None
    if extra == "groups":
        # clusters of points with one first-layer pattern, sometimes two of them merged (then infeasible)
        pat = _forward(params, act, X, False)[0][0] > 0
        groups = np.unique(pat, axis=0, return_inverse=True)[1].ravel()
        if draw(st.booleans()):
            groups = np.zeros_like(groups)
    if "robust" in extra:
        kind = draw(st.sampled_from(["linf", "l1", "l2", "box"]))
        r = draw(st.sampled_from([1 / 64, 1 / 32, 1 / 16]))
        radii = np.array(draw(st.lists(st.sampled_from([0.0, 1 / 64, 1 / 16]), min_size=X.shape[1],
                                       max_size=X.shape[1])))
        robust = RobustSpec("x", kind, r if kind != "box" else 0.0, tuple(radii) if kind == "box" else ())
    if "prune" in extra:
        kinds = draw(st.sampled_from([("neurons",), ("features",), ("weights",), ("neurons", "features"),
                                      ("layers",), ("layers", "features")]))
        specs = tuple(PruneSpec(k, ("x",) if k == "features" else ("h0",), 0.5) for k in kinds)
        alpha = draw(st.sampled_from([0.0, 0.5]))
        emit = draw(st.sampled_from(["milp", "perspective-cuts"]))
        prune = PruneConfig(specs, alpha=alpha, lam=1.0)
    tm = build_training_model(net, X, y, 2, loss=loss, margin=g, eps=eps, l1=l1, groups=groups, robust=robust,
                              prune=prune, emit=emit if prune else "milp")
    m = tm.model
    lb, ub = m.col_lb.copy(), m.col_ub.copy()
    for name, (W, b) in params.items():
        pc = tm.params[name]
        lb[pc.W_cols], ub[pc.W_cols] = W, W
        lb[pc.b_cols], ub[pc.b_cols] = b, b
    m = m.replace(col_lb=lb, col_ub=ub)

    # ---- the expectation, from numpy alone
    pres, out = _forward(params, act, X, loss == "hamming")
    W0, b0 = params["h0"]
    nxt = "h1" if "h1" in params else "out"
    pruned_unit = np.zeros(W0.shape[0], dtype=bool)
    kept_cost = 0.0
    quad = 0.0
    kept = None
    if prune is not None:
        members: list[np.ndarray] = []
        for spec in prune.specs:
            if spec.kind == "neurons":
                members += [np.r_[W0[l], b0[l], params[nxt][0][:, l]] for l in range(W0.shape[0])]
                pruned_unit = np.array([not members[-W0.shape[0] + l].any() for l in range(W0.shape[0])])
            elif spec.kind == "layers":         # the layer's own parameters; its units are off when pruned
                members.append(np.r_[W0.ravel(), b0])
                pruned_unit[:] = not members[-1].any()
            elif spec.kind == "features":
                members += [W0[:, j] for j in range(W0.shape[1])]
            else:
                members += [np.array([w]) for w in W0.ravel()]
        kept = np.array([v.any() for v in members])
        kept_cost = float(kept.sum()) * (0.5 + prune.lam * (1 - prune.alpha))
        quad = prune.lam * prune.alpha * float(sum((v * v).sum() for v in members))
    feasible = True
    for k, a in enumerate(pres):
        ok = np.abs(a) >= eps
        if k == 0 and pruned_unit.any():
            ok |= pruned_unit[None, :] & (a == 0)
        feasible &= bool(ok.all())
    robust_ok = {False: True, True: True}      # by cones: without (the MILP) and with (exact l2)
    if robust is not None:
        for cones in robust_ok:
            dn = _dual(robust.kind, robust.radius, np.asarray(robust.radii), W0, cones=cones)
            stable = (pres[0] - dn >= eps) | (pres[0] + dn <= -eps) | (pruned_unit[None, :] & (pres[0] == 0))
            robust_ok[cones] = bool(stable.all())
    if groups is not None:       # points of a cluster share their first-layer pattern
        pat = pres[0] > 0
        for c in np.unique(groups):
            feasible &= bool((pat[groups == c] == pat[groups == c][0]).all())
    marg = _margins(out, y)
    if loss == "hamming":
        T = y[:, None].astype(float) if out.shape[1] == 1 else np.eye(2)[y]
        data_term = float(np.abs(T - (out > 0)).sum())
    elif loss == "zero_one":
        data_term = float((marg < g).sum())
    elif loss == "hinge":
        data_term = float(np.maximum(0.0, g - marg).sum())
    else:
        data_term = 0.0
        feasible &= bool((marg >= g).all())
    trainable_W = sum(np.abs(W).sum() for W, _ in params.values())
    weight = l1 + (1.0 if loss == "min_weight" else 0.0)
    expected = data_term + weight * trainable_W + kept_cost + quad

    conic = (prune is not None and prune.alpha > 0) or (robust is not None and robust.kind == "l2")
    if conic and is_installed("cvxpy"):
        _conic_check(net, X, y, params, act, pres, loss, g, eps, l1, robust, prune, kept, expected,
                     feasible and robust_ok[True])
    feasible &= robust_ok[False]
    backend = get_backend("highs")
    opts = SolveOptions(mip_gap=0.0)
    raw = solve_training_model(tm, backend, m, opts)
    if not feasible:
        assert raw.status is Status.INFEASIBLE, (raw.status, raw.objective)
        return
    assert raw.status is Status.OPTIMAL, raw.status
    assert raw.objective == pytest.approx(expected, rel=1e-6, abs=1e-6)
    # the read-back returns the fixed parameters and the activation pattern of the forward pass
    back = tm.weights(raw.x)
    for name, (W, b) in params.items():
        np.testing.assert_array_equal(back[name][0], W)
        np.testing.assert_array_equal(back[name][1], b)
    u_cols, rows = tm.patterns["a0"]
    np.testing.assert_array_equal(np.round(raw.x[u_cols])[rows], (pres[0] > 0).astype(float))


def _conic_check(net, X, y, params, act, pres, loss, g, eps, l1, robust, prune, kept, expected, feasible
                 ) -> None:
    """The conic emissions (rotated cones of the perspective, l2 robust cones) with every parameter, activation
    and indicator fixed: a continuous conic problem whose value (or infeasibility) numpy predicts."""
    from nnmip.backends import get_backend
    from nnmip.formulations.training import build_training_model
    from nnmip.solution import SolveOptions, Status

    tm = build_training_model(net, X, y, 2, loss=loss, margin=g, eps=eps, l1=l1, robust=robust, prune=prune,
                              emit="perspective-conic" if prune else "milp", cones=True)
    assert tm.model.cones
    m = tm.model
    lb, ub = m.col_lb.copy(), m.col_ub.copy()

    def fix(cols, vals):
        lb[cols], ub[cols] = vals, vals

    for name, (W, b) in params.items():
        fix(tm.params[name].W_cols, W)
        fix(tm.params[name].b_cols, b)
    names = [n for n in tm.patterns if n != "y"] + (["y"] if "y" in tm.patterns else [])
    for name, a in zip(names, pres, strict=True):
        u_cols, rows = tm.patterns[name]
        fix(u_cols[rows], (a > 0).astype(float))
    if tm.error_cols is not None:
        fix(tm.error_cols, (_margins(_forward(params, act, X, False)[1], y) < g).astype(float))
    if prune is not None:
        fix(tm.extension.z, kept.astype(float))
    raw = get_backend("cvxpy").solve(m.replace(col_lb=lb, col_ub=ub).relaxed(), SolveOptions())
    if not feasible:
        assert raw.status is Status.INFEASIBLE, (raw.status, raw.objective)
        return
    assert raw.status is Status.OPTIMAL, raw.status
    assert raw.objective == pytest.approx(expected, rel=1e-5, abs=1e-5)


# ------------------------------------------------------------------------------------------------------------
# 5. robust training: every training point's first-layer pattern is constant over its whole set
# ------------------------------------------------------------------------------------------------------------
def _ball_points(kind: str, r: float, radii: np.ndarray, W: np.ndarray, d: int, rng: np.random.Generator
                 ) -> np.ndarray:
    """Shifts in the set: its vertices (linf, box, l1), each unit's worst directions (l2), random points."""
    if kind in ("linf", "box"):
        rad = np.full(d, r) if kind == "linf" else radii
        V = np.array(list(itertools.product([-1.0, 1.0], repeat=d))) * rad
        R = (rng.random((200, d)) * 2 - 1) * rad
    elif kind == "l1":
        V = np.vstack([r * np.eye(d), -r * np.eye(d)])
        R = rng.normal(size=(200, d))
        R *= r * rng.random((200, 1)) / np.abs(R).sum(axis=1, keepdims=True)
    else:
        nrm = np.linalg.norm(W, axis=1, keepdims=True)
        U = r * W / np.where(nrm > 0, nrm, 1.0)
        V = np.vstack([U, -U])
        R = rng.normal(size=(200, d))
        R *= r * rng.random((200, 1)) / np.linalg.norm(R, axis=1, keepdims=True)
    return np.vstack([V, R])


@pytest.mark.slow  # about 22 s on 2 busy cores
@SETTINGS
@given(kind=st.sampled_from(["linf", "l1", "l2", "box"]), act=st.sampled_from(["step", "sign"]),
       r=st.sampled_from([0.03, 0.1, 0.2]), seed=st.integers(0, 10_000))
def test_robust_training_keeps_first_layer_patterns_constant(kind: str, act: str, r: float, seed: int) -> None:
    from nnmip.drivers.train import train_network
    from nnmip.ir.builder import NetworkBuilder, integer, real
    from nnmip.ir.train_spec import RobustSpec
    from nnmip.solution import SolveOptions

    rng = np.random.default_rng(seed)
    d, N = 3, 8
    X = rng.random((N, d))
    y = (X[:, 0] - X[:, 1] + 0.3 * rng.normal(size=N) > 0).astype(np.int64)
    radii = np.array([r, r / 2, 0.0])
    spec = RobustSpec("x", kind, 0.0 if kind == "box" else r, tuple(radii) if kind == "box" else ())
    nb = NetworkBuilder("rob")
    h = nb.activation(act, "a1", nb.dense("h1", nb.input("x", d), 2, weights=real(-1, 1), bias=real(-1, 1)))
    nb.step("y", nb.dense("h2", h, 1, weights=integer(-1, 1), bias=real(-1, 1)))
    res = train_network(nb.build(), X, y, 2, robust=spec, options=SolveOptions(mip_gap=0.0, time_limit=30))
    assert res.network is not None, res.notes
    assert res.verified, res.notes
    W, b = res.network.params()["h1"]
    a = X @ W.T + b
    # exact dual norm of the returned weights (l2 exactly, although the MILP used the l1 bound)
    dn = _dual(kind, r, radii, W, cones=True)
    assert (((a - dn) > 0) | ((a + dn) <= 0)).all()
    if kind == "l2":   # what the MILP backend guarantees: the conservative l1 norm
        dn1 = r * np.abs(W).sum(axis=1)
        assert (((a - dn1) > 0) | ((a + dn1) <= 0)).all()
    # and by the forward pass at sampled points of every set
    first = res.network.forward(X, all_nodes=True)["h1"] > 0
    for i in range(N):
        P = X[i] + _ball_points(kind, r, radii, W, d, rng)
        pats = res.network.forward(P, all_nodes=True)["h1"] > 0
        assert (pats == first[i]).all(), i
        assert (res.network.predict(P) == res.network.predict(X[i:i + 1])[0]).all()


def test_a_rounding_tie_in_the_forward_pass_is_never_certified() -> None:
    # step(W x + b) with W = [0.1, -0.5, 0.6], b = 0.11 at the single point x = (-0.7, 0.2, 0.1): exactly 0 in
    # real arithmetic, but numpy's forward pass gives about 1e-17 > 0 (class 1) while unwidened interval
    # arithmetic gives the bounds [0, 0] (class 0 for certain).  The affine bounds must be widened.
    W = np.array([[0.1, -0.5, 0.6]])
    b = np.array([0.11])
    x = np.array([-0.7, 0.2, 0.1])
    layers = [(W, b), (np.array([[-1.0], [1.0]]), np.array([0.5, 0.0]))]
    net = network_from_layers(layers, "step")
    predicted = int(net.predict(x[None, :])[0])
    lo, hi = propagate_bounds(net, (x, x))[net.dense_nodes()[0]]
    pre = float((x @ W.T + b)[0])
    assert lo[0] <= pre <= hi[0]
    for label in (0, 1):
        r = verify(net, [vs.box(x, x)], vs.classified(label), samples=0)
        if label != predicted:
            assert r.result != CERTIFIED, r.to_dict()
