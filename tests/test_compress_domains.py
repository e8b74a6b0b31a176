"""Input domains across compression, input scaling and ``verify --npz`` (each answer checked by the forward pass).

* ``verify --npz`` of a network saved with an input scaler takes raw points: the scaler is folded into the first
  layer and the declared domain (scaled units) is mapped to raw units, ends swapped for a negative scale;
* a compressed network declares the box it was compressed over (npz: its input domain; ONNX: metadata);
* ``compress --onnx --domain`` of a network whose input scaling divides by a negative number;
* ``compress --time-limit`` is one wall-clock budget for the whole run, the proof included;
* ``--samples 0`` is refused; units with zero incoming weights are removed exactly.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from verify_nets import ort_forward

from nnmip.cli import main
from nnmip.drivers.compress import compress, prove_equivalence
from nnmip.drivers.verify import network_from_layers
from nnmip.io.data import Scaler
from nnmip.io.weights import load_npz, save_npz
from nnmip.ir.network import Network


def _chain(layers: list[tuple[list[list[float]] | np.ndarray, list[float] | np.ndarray]], lo: float,
           hi: float, act: str = "relu") -> Network:
    """A dense chain with ``act`` between the layers and the input domain ``real[lo, hi]``."""
    return network_from_layers(layers, act).with_input_domain(lo, hi)  # type: ignore[arg-type]


def _scaler(offset: list[float], scale: list[float]) -> Scaler:
    return Scaler("custom", np.array(offset, dtype=np.float64), np.array(scale, dtype=np.float64))


# --------------------------------------------------------------------------------------------------------------
# bug 1: verify --npz of a network saved with an input scaler
# --------------------------------------------------------------------------------------------------------------
@pytest.fixture
def scaled_npz(tmp_path: Path) -> tuple[Path, Network, Scaler]:
    """f(x_s) = relu(x_s0) + relu(x_s1) on scaled inputs in [0, 1]^2 (convex: its maximum over a box is at a
    corner), saved with the scaler x_s = (x - 5) / [-2, 4]: the raw domain is [3, 5] x [5, 9]."""
    net = _chain([(np.eye(2), [0.0, 0.0]), ([[1.0, 1.0]], [0.0])], 0.0, 1.0)
    sc = _scaler([5.0, 5.0], [-2.0, 4.0])
    path = tmp_path / "w.npz"
    save_npz(net, path, sc)
    return path, net, sc


def _truth(net: Network, sc: Scaler, X_raw: np.ndarray) -> np.ndarray:
    """The saved network on raw inputs, by its numpy forward pass on the scaled ones."""
    return net.forward(sc.transform(np.atleast_2d(X_raw)))[:, 0]


def _verify_json(tmp_path: Path, args: list[str]) -> tuple[int, dict]:
    out = tmp_path / "v.json"
    rc = main(["verify", *args, "--maximize", "1", "--json", str(out), "-q"])
    return rc, (json.loads(out.read_text()) if out.exists() else {})


def test_verify_npz_takes_raw_points_and_gives_the_forward_value(tmp_path: Path, scaled_npz) -> None:
    path, net, sc = scaled_npz
    x = np.array([4.2, 6.0])                       # raw, inside the raw domain [3, 5] x [5, 9]
    rc, d = _verify_json(tmp_path, ["--npz", str(path), "--point", "4.2,6", "--linf", "0"])
    assert rc == 0, d
    assert d["result"] == "certified"
    assert d["value"] == pytest.approx(float(_truth(net, sc, x)[0]), abs=1e-9)
    assert d["bound"] == pytest.approx(float(_truth(net, sc, x)[0]), abs=1e-6)
    assert any("raw (unscaled)" in n for n in d["notes"])


def test_verify_npz_ball_is_clipped_to_the_raw_domain(tmp_path: Path, scaled_npz) -> None:
    """The ball [4.3, 5.3] x [8.5, 9.5] meets the raw domain [3, 5] x [5, 9] (the negative scale swaps the ends of
    input 0) in [4.3, 5] x [8.5, 9]; f is convex, so its maximum there is at a corner."""
    path, net, sc = scaled_npz
    rc, d = _verify_json(tmp_path, ["--npz", str(path), "--point", "4.8,9", "--linf", "0.5"])
    assert rc == 0, d
    corners = np.array([[a, b] for a in (4.3, 5.0) for b in (8.5, 9.0)])
    best = float(_truth(net, sc, corners).max())
    assert d["bound"] == pytest.approx(best, abs=1e-6)
    assert d["value"] == pytest.approx(best, abs=1e-6)


def test_verify_npz_domain_option_replaces_the_declared_domain(tmp_path: Path, scaled_npz) -> None:
    """A raw point outside the declared domain with a --domain that holds it: the forward value, no E0401."""
    path, net, sc = scaled_npz
    x = np.array([8.0, 12.0])
    rc, d = _verify_json(tmp_path, ["--npz", str(path), "--point", "8,12", "--linf", "0", "--domain", "0", "20"])
    assert rc == 0, d
    assert d["value"] == pytest.approx(float(_truth(net, sc, x)[0]), abs=1e-9)
    # without --domain the point lies outside the declared domain: refused with a located, coded error
    rc, _ = _verify_json(tmp_path, ["--npz", str(path), "--point", "8,12", "--linf", "0"])
    assert rc == 2


# --------------------------------------------------------------------------------------------------------------
# bug 2: the compressed network declares the box it was compressed over
# --------------------------------------------------------------------------------------------------------------
FR = """network fixed_relu(x: 2 real[-1, 1]) {
    h = dense(x, 2, weights=[[1, -1], [0.5, 2]], bias=[0, -0.5])
    r = relu(h)
    y = dense(r, 2, weights=[[1, 1], [-1, 0]], bias=[0, 0])
}

compress fixed_relu {
    domain = real[0, 0.1]
    method = lp
    output = ["small.npz", "small.onnx"]
}
"""


def test_compressed_network_declares_the_compression_box(tmp_path: Path) -> None:
    src = tmp_path / "fr.nnmip"
    src.write_text(FR, encoding="utf-8")
    js = tmp_path / "c.json"
    assert main(["compress", str(src), "--json", str(js)]) == 0
    small, scaler = load_npz(tmp_path / "small.npz")
    assert scaler is None
    op = small.op(small.input)
    np.testing.assert_array_equal(op.lo, [0.0, 0.0])     # not the original's [-1, 1]
    np.testing.assert_array_equal(op.hi, [0.1, 0.1])
    rep = json.loads(js.read_text())
    assert rep["domain"] == {"lo": [0.0, 0.0], "hi": [0.1, 0.1]}
    model = onnx.load(tmp_path / "small.onnx")
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["nnmip.input_domain"]) == {"lo": [0.0, 0.0], "hi": [0.1, 0.1]}
    # the smaller network equals the original on that box
    from nnmip.drivers.task import load_program

    orig = load_program(src).networks["fixed_relu"]
    X = np.random.default_rng(0).random((2000, 2)) * 0.1
    np.testing.assert_allclose(small.forward(X), orig.forward(X), atol=1e-12)
    np.testing.assert_allclose(ort_forward(model, X), orig.forward(X), atol=1e-12)
    # a later verify of the smaller network is asked within that box only
    rc = main(["verify", "--npz", str(tmp_path / "small.npz"), "--point", "0.9,0.9", "--linf", "0.1",
               "--maximize", "1,0", "-q"])
    assert rc == 2


def test_compress_api_declares_the_box() -> None:
    net = _chain([([[1.0, -1.0], [0.5, 2.0]], [0.0, -0.5]), ([[1.0, 1.0], [-1.0, 0.0]], [0.0, 0.0])], -1.0, 1.0)
    res = compress(net, [0.0, 0.0], [0.1, 0.2], method="lp")
    op = res.network.op(res.network.input)
    np.testing.assert_array_equal(op.lo, [0.0, 0.0])
    np.testing.assert_array_equal(op.hi, [0.1, 0.2])


def test_compression_box_past_the_declared_domain_replaces_it() -> None:
    """x declared in [-1, 1]: relu(x - 2) is dead there but not on [-5, 5]; compressing over [-5, 5] must keep it,
    and a proof over [-5, 5] must see that dropping it changes the function."""
    net = _chain([([[1.0], [1.0]], [-2.0, 0.0]), ([[1.0, 1.0]], [0.0])], -1.0, 1.0)
    res = compress(net, -5.0, 5.0, method="lp")
    assert res.units_after == 2
    X = np.linspace(-5, 5, 1001)[:, None]
    np.testing.assert_allclose(res.network.forward(X), net.forward(X), atol=1e-12)
    wrong = compress(net, method="lp").network       # compressed over the declared [-1, 1]: the unit is gone
    assert wrong.num_params() < net.num_params()
    proof = prove_equivalence(net, wrong, -5.0, 5.0)
    assert proof["bound"] >= float(np.max(np.abs(net.forward(X) - wrong.forward(X)))) - 1e-9 >= 2.9


# --------------------------------------------------------------------------------------------------------------
# bug 3: compress --onnx --domain with a negative input scale
# --------------------------------------------------------------------------------------------------------------
def _neg_onnx(path: Path) -> onnx.ModelProto:
    """input -> Sub(0) -> Div([-1, 1]) -> dense 2x3 -> Relu -> dense 3x1 (as /tmp/audit_compress/mkneg.py)."""
    W1 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b1 = np.array([0.0, 0.0, -1.5])
    W2 = np.array([[1.0, 1.0, 1.0]])
    inits = [numpy_helper.from_array(np.array([0.0, 0.0]), "off"), numpy_helper.from_array(np.array([-1.0, 1.0]), "sc"),
             numpy_helper.from_array(W1.T.copy(), "W1"), numpy_helper.from_array(b1, "b1"),
             numpy_helper.from_array(W2.T.copy(), "W2"), numpy_helper.from_array(np.array([0.0]), "b2")]
    nodes = [helper.make_node("Sub", ["input", "off"], ["s"]), helper.make_node("Div", ["s", "sc"], ["d"]),
             helper.make_node("MatMul", ["d", "W1"], ["m1"]), helper.make_node("Add", ["m1", "b1"], ["a1"]),
             helper.make_node("Relu", ["a1"], ["r1"]), helper.make_node("MatMul", ["r1", "W2"], ["m2"]),
             helper.make_node("Add", ["m2", "b2"], ["output"])]
    g = helper.make_graph(nodes, "neg", [helper.make_tensor_value_info("input", TensorProto.DOUBLE, ["N", 2])],
                          [helper.make_tensor_value_info("output", TensorProto.DOUBLE, ["N", 1])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(m, path)
    return m


def test_compress_onnx_domain_with_negative_input_scale(tmp_path: Path) -> None:
    model = _neg_onnx(tmp_path / "neg.onnx")
    out, js = tmp_path / "neg_small.onnx", tmp_path / "c.json"
    rc = main(["compress", "--onnx", str(tmp_path / "neg.onnx"), "--domain", "0", "1", "-o", str(out), "--prove",
               "--samples", "2000", "--json", str(js)])
    assert rc == 0
    rep = json.loads(js.read_text())
    assert rep["proof"]["bound"] <= 1e-6
    assert rep["raw_domain"] == {"lo": [0.0, 0.0], "hi": [1.0, 1.0]}
    # the network sees x_s = x / [-1, 1]: the scaled box is [-1, 0] x [0, 1]
    assert rep["domain"]["lo"] == [-1.0, 0.0]
    assert rep["domain"]["hi"] == [0.0, 1.0]
    X = np.random.default_rng(3).random((4000, 2))
    X[:4] = [[0, 0], [0, 1], [1, 0], [1, 1]]
    np.testing.assert_allclose(ort_forward(onnx.load(out), X), ort_forward(model, X), atol=1e-12)


# --------------------------------------------------------------------------------------------------------------
# bug 4: one wall-clock budget for compress, bound tightening and the proof
# --------------------------------------------------------------------------------------------------------------
def _big_npz(path: Path) -> Network:
    rng = np.random.default_rng(3)
    dims = [10, 40, 40, 40, 2]
    layers = [(np.round(rng.normal(size=(b, a)) / np.sqrt(a), 3), np.round(rng.normal(size=b) * 0.3, 3))
              for a, b in zip(dims[:-1], dims[1:], strict=True)]
    net = _chain(layers, 0.0, 1.0)
    save_npz(net, path)
    return net


def test_compress_time_limit_is_one_budget(tmp_path: Path) -> None:
    _big_npz(tmp_path / "big.npz")
    js = tmp_path / "c.json"
    limit = 1.0
    t0 = time.monotonic()
    rc = main(["compress", "--npz", str(tmp_path / "big.npz"), "-o", str(tmp_path / "small.onnx"), "--prove",
               "--time-limit", str(limit), "--samples", "1000", "--json", str(js)])
    elapsed = time.monotonic() - t0
    assert elapsed <= limit + 1.0, f"{elapsed:.2f}s for --time-limit {limit}"
    rep = json.loads(js.read_text())
    if rc != 0:     # inconclusive: said so, with a sound bound
        assert rc == 1
        assert not rep["proof"]["optimal"] or rep["proof"]["bound"] > 1e-6
    assert rep["proof"]["bound"] >= rep["max_sampled_diff"]


def test_prove_equivalence_keeps_its_time_limit(tmp_path: Path) -> None:
    net = _big_npz(tmp_path / "big.npz")
    t0 = time.monotonic()
    proof = prove_equivalence(net, net, np.zeros(10), np.ones(10), time_limit=0.5)
    assert time.monotonic() - t0 <= 0.5 + 1.0
    assert proof["bound"] >= 0.0


# --------------------------------------------------------------------------------------------------------------
# bug 5: --samples 0, and units with zero incoming weights
# --------------------------------------------------------------------------------------------------------------
def test_compress_refuses_zero_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "fr.nnmip"
    src.write_text(FR, encoding="utf-8")
    assert main(["compress", str(src), "--samples", "0"]) == 2
    err = capsys.readouterr().err
    assert "E0109" in err
    assert "--samples" in err
    assert "help:" in err
    assert not (tmp_path / "small.npz").exists()


@pytest.mark.parametrize("act", ["relu", "step", "sign"])
def test_units_with_zero_incoming_weights_are_removed_exactly(act: str) -> None:
    """relu(0.5), step(0.5), sign(0) ... of a unit with no incoming weight are constants: folded into the next
    bias, the smaller network gives the same forward pass."""
    W1 = [[1.0, -1.0], [0.0, 0.0], [0.5, 0.5], [0.0, 0.0]]
    b1 = [0.1, 0.5, -0.3, 0.0]
    net = _chain([(W1, b1), ([[1.0, 2.0, 1.0, -3.0], [-1.0, 1.0, 3.0, 2.0]], [0.0, 0.25])], 0.0, 1.0, act)
    res = compress(net, method="lp")
    assert res.units_before == 4
    assert res.units_after <= 2
    X = np.random.default_rng(5).random((5000, 2))
    np.testing.assert_allclose(res.network.forward(X), net.forward(X), rtol=0, atol=1e-12)


def test_a_loaded_network_declares_its_domain_in_raw_units(scaled_npz) -> None:
    """``load_model`` (``model = npz(...)`` of a verify statement, and ``verify --npz``): the scaling folded into
    the first layer, the declared domain [0, 1]^2 of the scaled inputs is the raw box [3, 5] x [5, 9]."""
    from nnmip.drivers.verify import load_model

    path, net, sc = scaled_npz
    raw = load_model("npz", path)
    op = raw.op(raw.input)
    np.testing.assert_allclose(op.lo, [3.0, 5.0], atol=1e-12)   # type: ignore[attr-defined]
    np.testing.assert_allclose(op.hi, [5.0, 9.0], atol=1e-12)   # type: ignore[attr-defined]
    assert np.all(op.lo <= [3.0, 5.0])      # type: ignore[attr-defined]
    assert np.all(op.hi >= [5.0, 9.0])      # type: ignore[attr-defined]
    X = np.array([[3.0, 5.0], [4.2, 6.0], [5.0, 9.0]])
    np.testing.assert_allclose(raw.forward(X)[:, 0], _truth(net, sc, X), atol=1e-12)
