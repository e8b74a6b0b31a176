"""The graph IR: hand-computed forward passes, interval bounds that contain every sampled value, and the same
network written as text or built in Python compiling to the identical training model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnmip.check import check
from nnmip.errors import FormulationError
from nnmip.formulations.training import build_training_model
from nnmip.ir import Dense, Network, NetworkBuilder, fixed, integer, real
from nnmip.ir.network import from_description, predict_from_output
from nnmip.model import MatrixModel
from nnmip.syntax import parse


def fixed_net() -> Network:
    nb = NetworkBuilder("f")
    x = nb.input("x", 2)
    h = nb.dense("h", x, 3, weights=fixed([[1, -1], [0.5, 0.5], [2, 0]]), bias=fixed([0, -1, -1]))
    nb.step("s", h)
    return nb.build()


# -- forward pass by hand --------------------------------------------------------------------------------------
def test_dense_step_by_hand() -> None:
    net = fixed_net()
    X = np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 2.0], [0.5, -3.0]])
    # h = [x1 - x2, (x1 + x2)/2 - 1, 2 x1 - 1]
    #   (1, 1)    -> [0, 0, 1]        step: [0, 0, 1]   (exactly 0 gives 0)
    #   (2, 0)    -> [2, 0, 3]        step: [1, 0, 1]
    #   (0, 2)    -> [-2, 0, -1]      step: [0, 0, 0]
    #   (0.5, -3) -> [3.5, -2.25, 0]  step: [1, 0, 0]
    vals = net.forward(X, all_nodes=True)
    assert np.array_equal(vals["h"], [[0, 0, 1], [2, 0, 3], [-2, 0, -1], [3.5, -2.25, 0]])
    assert np.array_equal(vals["s"], [[0, 0, 1], [1, 0, 1], [0, 0, 0], [1, 0, 0]])
    assert np.array_equal(net.forward(X[1]), [[1, 0, 1]])   # one row is accepted


@pytest.mark.parametrize(("kind", "expected"), [
    ("step", [0.0, 0.0, 1.0, 0.0]),
    ("sign", [-1.0, -1.0, 1.0, -1.0]),   # sign(0) = -1
    ("relu", [0.0, 0.0, 0.25, 0.0]),
    ("identity", [-1.5, 0.0, 0.25, -0.0]),
])
def test_activations_at_and_around_zero(kind: str, expected: list[float]) -> None:
    nb = NetworkBuilder()
    x = nb.input("x", 1)
    nb.activation(kind, "y", nb.dense("h", x, 1, weights=fixed([[1.0]]), bias=None))
    out = nb.build().forward(np.array([[-1.5], [0.0], [0.25], [-0.0]]))
    assert out[:, 0].tolist() == expected


def test_sign_chain_by_hand() -> None:
    nb = NetworkBuilder()
    x = nb.input("x", 2)
    a = nb.sign("a", nb.dense("h", x, 2, weights=fixed([[1, 1], [1, -1]]), bias=fixed([0, 0])))
    nb.identity("y", nb.dense("o", a, 2, weights=fixed([[1, 1], [-1, 0.5]]), bias=fixed([0.5, 0])))
    net = nb.build()
    # (1, 0): h = [1, 1] -> a = [1, 1] -> o = [2.5, -0.5];  (0, 0): h = [0, 0] -> a = [-1, -1] -> o = [-1.5, 0.5]
    # (-1, 1): h = [0, -2] -> a = [-1, -1] -> o = [-1.5, 0.5]
    out = net.forward([[1, 0], [0, 0], [-1, 1]])
    assert out.tolist() == [[2.5, -0.5], [-1.5, 0.5], [-1.5, 0.5]]
    assert net.predict([[1, 0], [0, 0]]).tolist() == [0, 1]


def test_prediction_rules() -> None:
    assert predict_from_output(np.array([[1.0, 1.0], [0.0, 2.0], [3.0, -1.0]])).tolist() == [0, 1, 0]  # ties: first
    assert predict_from_output(np.array([[0.0], [1e-12], [-1.0]])).tolist() == [0, 1, 0]  # one unit: out > 0


def test_forward_rejects_wrong_width() -> None:
    with pytest.raises(ValueError, match=r"expects inputs of shape \(N, 2\)"):
        fixed_net().forward(np.zeros((3, 4)))


def test_trainable_layer_has_no_forward_pass() -> None:
    nb = NetworkBuilder()
    nb.step("y", nb.dense("h", nb.input("x", 2), 1, weights=real(-1, 1)))
    with pytest.raises(FormulationError) as info:
        nb.build().forward(np.zeros((1, 2)))
    assert info.value.diagnostics[0].code == "E0403"


def test_with_params_and_description_round_trip() -> None:
    nb = NetworkBuilder("t")
    x = nb.input("x", 2)
    a = nb.step("a", nb.dense("h", x, 2, weights=real(-1, 1), bias=integer(-2, 2)))
    nb.identity("y", nb.dense("o", a, 1, weights=integer(-1, 1), bias=None))
    net = nb.build()
    assert net.trainable
    assert net.num_params() == 2 * 2 + 2 + 2
    params = {"h": (np.array([[0.5, -1.0], [1.0, 1.0]]), np.array([0.0, -1.0])), "o": (np.array([[1.0, -1.0]]), None)}
    trained = net.with_params(params)
    assert not trained.trainable
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.2, 0.6]])
    # h = [0.5 x1 - x2, x1 + x2 - 1]: rows -> [0.5, 0], [-1, 0], [-0.5, 1], [-0.5, -0.2]
    # a = step(h) -> [1, 0], [0, 0], [0, 1], [0, 0];  o = a1 - a2 -> 1, 0, -1, 0
    assert trained.forward(X)[:, 0].tolist() == [1.0, 0.0, -1.0, 0.0]
    again = from_description(trained.describe(), trained.params())
    assert again.nodes == trained.nodes
    assert np.array_equal(again.forward(X), trained.forward(X))
    with pytest.raises(ValueError, match="has no bias"):
        net.with_params({"o": (np.ones((1, 2)), np.ones(1))})


# -- interval bounds contain the forward pass (hypothesis) ------------------------------------------------------
QUARTERS = st.integers(-8, 8).map(lambda k: k / 4.0)   # multiples of 0.25 in [-2, 2]: exact in binary


@st.composite
def networks(draw: st.DrawFn, trainable: bool = False) -> tuple[Network, np.ndarray, np.ndarray]:
    """1-3 dense layers of width 1-4 with fixed quarter weights (or quarter-bounded domains), an activation
    after each, and a box input domain."""
    d_in = draw(st.integers(1, 4))
    lo = np.array(draw(st.lists(QUARTERS, min_size=d_in, max_size=d_in)))
    width = np.array(draw(st.lists(st.integers(0, 8), min_size=d_in, max_size=d_in))) / 4.0
    hi = lo + width
    nb = NetworkBuilder("h")
    cur = nb.input("x", d_in)
    n_in = d_in
    for k in range(draw(st.integers(1, 3))):
        n_out = draw(st.integers(1, 4))
        if trainable and draw(st.booleans()):
            a, b = sorted(draw(st.lists(QUARTERS, min_size=2, max_size=2)))
            w = real(a, b) if draw(st.booleans()) else integer(np.ceil(a), max(np.ceil(a), np.floor(b)))
            c, d = sorted(draw(st.lists(QUARTERS, min_size=2, max_size=2)))
            bias = real(c, d)
        else:
            w = fixed(np.array(draw(st.lists(QUARTERS, min_size=n_out * n_in, max_size=n_out * n_in)))
                      .reshape(n_out, n_in))
            bias = fixed(np.array(draw(st.lists(QUARTERS, min_size=n_out, max_size=n_out))))
        h = nb.dense(f"d{k}", cur, n_out, weights=w, bias=bias)
        cur = nb.activation(draw(st.sampled_from(["step", "sign", "relu", "identity"])), f"a{k}", h)
        n_in = n_out
    return nb.build(), lo, hi


def sample_box(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """Uniform points plus every corner-ish point on the quarter grid edges."""
    X = lo + (hi - lo) * rng.random((n, lo.size))
    corners = np.where(rng.random((n, lo.size)) < 0.5, lo, hi)
    return np.vstack([X, corners, lo, hi])


@settings(max_examples=120, deadline=None, derandomize=True)
@given(networks(), st.integers(0, 2**32 - 1))
def test_forward_stays_inside_interval_bounds(case: tuple[Network, np.ndarray, np.ndarray], seed: int) -> None:
    net, lo, hi = case
    X = sample_box(np.random.default_rng(seed), lo, hi, 64)
    vals = net.forward(X, all_nodes=True)
    bounds = net.interval(lo, hi)
    for node in net.nodes:
        b_lo, b_hi = bounds[node]
        assert (b_lo <= b_hi).all()
        assert (vals[node] >= b_lo - 1e-12).all(), node
        assert (vals[node] <= b_hi + 1e-12).all(), node


@settings(max_examples=80, deadline=None, derandomize=True)
@given(networks(trainable=True), st.integers(0, 2**32 - 1))
def test_interval_covers_every_weight_in_the_domain(case: tuple[Network, np.ndarray, np.ndarray],
                                                    seed: int) -> None:
    """Trainable layers: bounds over the weight domain contain the forward pass of sampled weights."""
    net, lo, hi = case
    rng = np.random.default_rng(seed)
    bounds = net.interval(lo, hi)
    X = sample_box(rng, lo, hi, 16)
    for _ in range(8):
        params = {}
        for n in net.dense_nodes():
            op = net.op(n)
            assert isinstance(op, Dense)
            assert op.weights is not None
            assert op.bias is not None
            W = op.weights.lo + (op.weights.hi - op.weights.lo) * rng.random(op.weights.lo.shape)
            if op.weights.kind == "int":
                W = np.round(W)
            b = op.bias.lo + (op.bias.hi - op.bias.lo) * rng.random(op.bias.lo.shape)
            params[n] = (W, b)
        vals = net.with_params(params).forward(X, all_nodes=True)
        for node in net.nodes:
            assert (vals[node] >= bounds[node][0] - 1e-9).all(), node
            assert (vals[node] <= bounds[node][1] + 1e-9).all(), node


def test_interval_by_hand() -> None:
    bounds = fixed_net().interval([0.0, -1.0], [1.0, 1.0])
    # h1 = x1 - x2 in [-1, 2]; h2 = (x1 + x2)/2 - 1 in [-1.5, 0]; h3 = 2 x1 - 1 in [-1, 1]
    assert bounds["h"][0].tolist() == [-1.0, -1.5, -1.0]
    assert bounds["h"][1].tolist() == [2.0, 0.0, 1.0]
    assert bounds["s"][0].tolist() == [0.0, 0.0, 0.0]
    assert bounds["s"][1].tolist() == [1.0, 0.0, 1.0]


# -- text and builder compile to the identical model ------------------------------------------------------------
TEXT = """
network bdnn(x: 3) {
    h1 = dense(x, 4, weights=real[-1, 1], bias=real[-10, 10])
    a1 = step(h1)
    h2 = dense(a1, 3, weights=int[-1, 1], bias=int[-2, 2])
    a2 = sign(h2)
    h3 = dense(a2, 2, weights=real[-0.5, 2], bias=none)
    y  = step(h3)
}
"""


def built(final: str) -> Network:
    nb = NetworkBuilder("bdnn")
    x = nb.input("x", 3)
    a1 = nb.step("a1", nb.dense("h1", x, 4, weights=real(-1, 1), bias=real(-10, 10)))
    a2 = nb.sign("a2", nb.dense("h2", a1, 3, weights=integer(-1, 1), bias=integer(-2, 2)))
    nb.activation(final, "y", nb.dense("h3", a2, 2, weights=real(-0.5, 2), bias=None))
    return nb.build()


def assert_identical(a: MatrixModel, b: MatrixModel) -> None:
    assert a.A.shape == b.A.shape
    assert np.array_equal(a.A.indptr, b.A.indptr)
    assert np.array_equal(a.A.indices, b.A.indices)
    assert np.array_equal(a.A.data, b.A.data)
    for name in ("c", "row_lb", "row_ub", "col_lb", "col_ub", "vtype"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert (a.c0, a.sense) == (b.c0, b.sense)
    assert a.col_names() == b.col_names()
    assert a.row_names() == b.row_names()


@pytest.mark.parametrize(("loss", "final"), [("hamming", "step"), ("hinge", "identity")])
def test_text_and_builder_compile_identically(loss: str, final: str) -> None:
    text_net = check(parse(TEXT.replace("y  = step(h3)", f"y = {final}(h3)"))).networks["bdnn"]
    py_net = built(final)
    rng = np.random.default_rng(0)
    X = rng.random((7, 3)).round(2)
    y = np.array([0, 1, 1, 0, 1, 0, 0])
    a = build_training_model(text_net, X, y, 2, loss=loss, l1=0.1).model
    b = build_training_model(py_net, X, y, 2, loss=loss, l1=0.1).model
    assert a.num_cols > 50
    assert a.num_binaries > 0
    assert_identical(a, b)
    names = a.col_names()
    assert names[0] == "h1__W_0_0"
    assert "a1__u_6_3" in names
    assert "h2__s_6_2_3" in names


def test_with_input_domain_replaces_the_declared_box() -> None:
    from nnmip.drivers.verify import network_from_layers

    net = network_from_layers([(np.eye(2), np.zeros(2)), (np.ones((1, 2)), np.zeros(1))])
    boxed = net.with_input_domain(0.0, [1.0, 2.0])
    op = boxed.op(boxed.input)
    np.testing.assert_array_equal(op.lo, [0.0, 0.0])       # type: ignore[attr-defined]
    np.testing.assert_array_equal(op.hi, [1.0, 2.0])       # type: ignore[attr-defined]
    assert net.op(net.input).lo is None                     # type: ignore[attr-defined]  (a new network)
    assert boxed.with_input_domain([0.0, 0.0], [1.0, 2.0]) is boxed     # the same box: itself
    np.testing.assert_array_equal(boxed.forward(np.array([[0.5, 1.5]])), [[2.0]])
