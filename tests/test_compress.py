"""Lossless compression: the smaller network agrees on samples, by a MILP proof (ReLU), and through ONNX."""

from __future__ import annotations

import numpy as np
import pytest
from verify_nets import mlp_layers, mlp_onnx, ort_forward

from nnmip.cli import main
from nnmip.drivers.compress import compress, prove_equivalence, sampled_difference
from nnmip.drivers.verify import network_from_layers
from nnmip.errors import FormulationError


def _shifted(sizes: list[int], seed: int, shift: float) -> list[tuple[np.ndarray, np.ndarray]]:
    layers = mlp_layers(sizes, seed)
    return [(W, b + shift) for W, b in layers]


@pytest.mark.parametrize("act", ["relu", "step", "sign"])
@pytest.mark.parametrize("seed", range(3))
def test_compressed_network_agrees_on_samples(act: str, seed: int) -> None:
    net = network_from_layers(_shifted([4, 16, 16, 3], seed, -0.4), act)
    lo, hi = np.zeros(4), np.full(4, 0.4)
    res = compress(net, lo, hi, method="milp")
    assert res.units_after < res.units_before
    assert res.params_after < res.params_before
    assert sampled_difference(net, res.network, lo, hi, 20000, seed) <= 1e-12
    # a first-layer unit whose sampled pre-activation takes both signs is never removed
    a0 = net.forward(lo + np.random.default_rng(seed).random((5000, 4)) * (hi - lo), all_nodes=True)["fc0"]
    both = int(np.sum((a0.min(axis=0) < 0) & (a0.max(axis=0) > 0)))
    if "fc0" in res.network.nodes:
        assert res.network.dim("fc0") >= both


@pytest.mark.parametrize("seed", range(3))
def test_milp_proves_relu_equivalence(seed: int) -> None:
    net = network_from_layers(_shifted([3, 8, 8, 2], 20 + seed, -0.3))
    lo, hi = np.zeros(3), np.full(3, 0.5)
    res = compress(net, lo, hi, method="milp")
    proof = prove_equivalence(net, res.network, lo, hi)
    assert proof["optimal"]
    assert proof["bound"] <= 1e-6
    # the proof is not vacuous: against a network with one output bias changed it finds the change
    W, b = res.network.params()[res.network.dense_nodes()[-1]]
    other = res.network.with_params({res.network.dense_nodes()[-1]: (W, b + np.array([0.01, 0.0]))})
    bad = prove_equivalence(net, other, lo, hi)
    assert bad["bound"] == pytest.approx(0.01, abs=1e-6)
    assert bad["value"] == pytest.approx(0.01, abs=1e-9)


def test_dead_and_always_active_layers_by_hand() -> None:
    # on x in [0, 1]: unit 0 = x + 1 (always active), unit 1 = -x - 1 (dead); output = 2 relu0 + 3 relu1 + 1
    net = network_from_layers([(np.array([[1.0], [-1.0]]), np.array([1.0, -1.0])),
                               (np.array([[2.0, 3.0]]), np.array([1.0]))])
    res = compress(net, [0.0], [1.0], method="interval")
    assert res.removed_units == {"relu0": 1}
    assert res.folded_layers == ["fc0"]                       # the surviving unit is linear: folded
    assert res.network.dense_nodes() == ["fc1"]
    W, b = res.network.params()["fc1"]
    np.testing.assert_allclose(W, [[2.0]])
    np.testing.assert_allclose(b, [3.0])                      # 2 * (x + 1) + 1
    X = np.linspace(0, 1, 11)[:, None]
    np.testing.assert_allclose(res.network.forward(X), net.forward(X))


def test_step_constants_fold_into_the_next_bias() -> None:
    net = network_from_layers([(np.array([[1.0], [-1.0], [1.0]]), np.array([1.0, -1.0, -0.5])),
                               (np.array([[2.0, 3.0, 5.0]]), np.array([1.0]))], activation="step")
    res = compress(net, [0.0], [1.0], method="interval")
    assert res.removed_units == {"step0": 2}
    W, b = res.network.params()["fc1"]
    np.testing.assert_allclose(W, [[5.0]])
    np.testing.assert_allclose(b, [3.0])                      # 1 + 2 * step(x + 1) = 1 + 2
    X = np.linspace(0, 1, 101)[:, None]
    np.testing.assert_array_equal(res.network.forward(X), net.forward(X))


def test_unbounded_domain_is_an_error() -> None:
    net = network_from_layers([(np.eye(2), np.zeros(2)), (np.eye(2), np.zeros(2))])
    with pytest.raises(FormulationError) as e:
        compress(net)
    assert e.value.diagnostics[0].code == "E0413"


def test_cli_writes_onnx_and_npz_that_agree(tmp_path, capsys) -> None:
    import onnx

    layers = _shifted([4, 12, 12, 2], 9, -0.3)
    model = mlp_onnx(layers, "relu")
    src = tmp_path / "net.onnx"
    onnx.save(model, src)
    out_onnx, out_npz, js = tmp_path / "small.onnx", tmp_path / "small.npz", tmp_path / "r.json"
    rc = main(["compress", "--onnx", str(src), "--domain", "0", "0.5", "-o", str(out_onnx), "-o", str(out_npz),
               "--prove", "--samples", "2000", "--json", str(js)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "units 24 ->" in out
    assert "proven max |f - g|" in out
    import json

    rep = json.loads(js.read_text())
    assert rep["units_after"] < rep["units_before"]
    assert rep["proof"]["bound"] <= 1e-6
    X = np.random.default_rng(1).random((3000, 4)) * 0.5
    small = onnx.load(out_onnx)
    np.testing.assert_allclose(ort_forward(small, X), ort_forward(model, X), atol=1e-9)
    from nnmip.io.weights import load_npz

    net2, _ = load_npz(out_npz)
    np.testing.assert_allclose(net2.forward(X), ort_forward(model, X), atol=1e-9)


@pytest.mark.parametrize(("call", "code"), [
    (lambda f, g: sampled_difference(f, g, 0.0, 1.0, 0), "E0109"),          # no samples: nothing checked
    (lambda f, g: sampled_difference(f, g, 0.0, 1.0, -5), "E0109"),
    (lambda f, g: sampled_difference(f, g, 0.0, 1.0, 2.5), "E0108"),
    (lambda f, g: sampled_difference(f, g, 0.0, 1.0, 10, seed=-1), "E0109"),
    (lambda f, g: sampled_difference(f, "g", 0.0, 1.0), "E0108"),
    (lambda f, g: sampled_difference(f, g, [0.0, 0.0], 1.0), "E0412"),        # f has 3 inputs
    (lambda f, g: sampled_difference(f, g, 0.0, np.inf), "E0413"),
    (lambda f, g: sampled_difference(f, g, 1.0, 0.0), "E0412"),               # an empty box
    (lambda f, g: sampled_difference(f, network_from_layers(mlp_layers([4, 5, 2], 1)), 0.0, 1.0), "E0412"),
    (lambda f, g: prove_equivalence(f, g, 0.0, np.nan), "E0412"),
    (lambda f, g: prove_equivalence(f, network_from_layers(mlp_layers([3, 5, 3], 1)), 0.0, 1.0), "E0412"),
])
def test_comparing_two_networks_refuses_what_cannot_be_compared(call, code: str) -> None:  # type: ignore[no-untyped-def]
    """Bad arguments get a coded error before any work, not a traceback or a vacuous 0."""
    from nnmip.errors import ParameterError

    f = network_from_layers(mlp_layers([3, 5, 2], 0))
    with pytest.raises(ParameterError) as e:
        call(f, f)
    assert e.value.diagnostics[0].code == code


def test_sampled_difference_checks_corners_and_inside_points() -> None:
    """One sample is enough to compare; two networks that differ only near a corner are told apart."""
    f = network_from_layers([(np.array([[1.0, 1.0]]), np.array([0.0]))])
    g = network_from_layers([(np.array([[1.0, 1.0]]), np.array([0.0])), (np.eye(1), np.array([0.0]))])
    assert sampled_difference(f, f, 0.0, 1.0, 1) == 0.0
    # g = relu(x0 + x1): the same as f on [0, 1]^2, and different on [-1, 0]^2 (f < 0 there)
    assert sampled_difference(f, g, 0.0, 1.0, 200) == 0.0
    assert sampled_difference(f, g, -1.0, 0.0, 200) == pytest.approx(2.0)   # the corner (-1, -1) is sampled


def test_layers_without_a_bias_stay_without_one() -> None:
    """Removing dead ReLUs from a network declared without biases adds no bias (no parameter appears)."""
    from nnmip.ir.builder import NetworkBuilder, fixed

    W0 = np.array([[1.0, 1.0, 0.0], [-1.0, -2.0, -1.0], [0.5, -0.2, 1.0], [-1.0, 0.0, -3.0]])   # rows 1, 3 dead
    W1 = np.array([[1.0, 2.0, -1.0, 4.0], [0.5, -1.0, 1.0, 1.0]])
    nb = NetworkBuilder("nobias")
    cur = nb.input("x", 3, np.zeros(3), np.ones(3))
    cur = nb.activation("relu", "r0", nb.dense("fc0", cur, 4, weights=fixed(W0), bias=None))
    nb.dense("fc1", cur, 2, weights=fixed(W1), bias=None)
    net = nb.build()
    res = compress(net, 0.1, 1.0)      # (on [0, 1] the dead rows reach 0 at x = 0: not provably dead)
    assert res.removed_units == {"r0": 2}
    assert res.params_after == res.params_before - 2 * 3 - 2 * 2       # two rows of W0, two columns of W1
    assert all(res.network.op(n).bias is None for n in ("fc0", "fc1"))
    assert sampled_difference(net, res.network, 0.1, 1.0, 5000) == 0.0
    # a folded constant needs a bias: a step unit always on adds its weight to the next layer's
    nb = NetworkBuilder("nobias_step")
    cur = nb.input("x", 3, np.zeros(3), np.ones(3))
    cur = nb.activation("step", "s0", nb.dense("fc0", cur, 4, weights=fixed(W0), bias=fixed(np.r_[0.0, 0, 0, 5])))
    nb.dense("fc1", cur, 2, weights=fixed(W1), bias=None)
    net = nb.build()
    res = compress(net, 0.0, 1.0)
    assert res.network.op("fc1").bias is not None
    assert sampled_difference(net, res.network, 0.0, 1.0, 5000) == 0.0
