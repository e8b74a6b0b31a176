"""Tests of ONNX export and import (nnmip.io.onnx), checked against onnxruntime where it is installed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from nnmip.errors import NnmipError
from nnmip.io.data import Scaler
from nnmip.io.onnx import OnnxImportError, export_onnx, import_onnx, lp_safe, to_onnx
from nnmip.io.writers import ExportError
from nnmip.ir.builder import NetworkBuilder, fixed, real
from nnmip.ir.network import Network
from nnmip.ir.ops import Dense

# A layer spec: ("dense", width, has_bias) or an activation kind.
SPECS: dict[str, list[Any]] = {
    "step-bias-3out": [("dense", 4, True), "step", ("dense", 3, True), "identity"],
    "sign-nobias-1out": [("dense", 5, False), "sign", ("dense", 4, True), "sign", ("dense", 1, True)],
    "relu-mixed-2out": [("dense", 6, True), "relu", ("dense", 2, False), "relu"],
    "relu-then-step": [("dense", 4, True), "relu", ("dense", 3, True), "step"],
    "sign-out-1": [("dense", 3, False), "identity", ("dense", 1, False), "sign"],
    "step-out-1": [("dense", 3, True), "step", ("dense", 1, True), "step"],
}
N_IN = 3


def dyadic(rng: np.random.Generator, shape: Any, denom: int = 4, bound: float = 2.0) -> np.ndarray:
    """Random multiples of 1/denom in [-bound, bound]: sums and products of these are exact in float64."""
    k = int(bound * denom)
    return rng.integers(-k, k + 1, size=shape).astype(np.float64) / denom


def build(spec: list[Any], rng: np.random.Generator, *, exact: bool = True, n_in: int = N_IN,
          name: str = "net") -> Network:
    nb = NetworkBuilder(name)
    prev = nb.input("x", n_in)
    width = n_in
    for i, layer in enumerate(spec):
        if isinstance(layer, tuple):
            _, out, has_bias = layer
            W = dyadic(rng, (out, width)) if exact else rng.normal(size=(out, width))
            if i == 0:
                W[0, 0] = 1.0  # lets the tests solve for inputs that make unit 0 exactly 0
            b = (dyadic(rng, out) if exact else rng.normal(size=out)) if has_bias else None
            prev = nb.dense(f"h{i}", prev, out, weights=fixed(W), bias=None if b is None else fixed(b))
            width = out
        else:
            prev = nb.activation(layer, f"a{i}", prev)
    return nb.build()


def exact_scaler(rng: np.random.Generator, n_in: int = N_IN) -> Scaler:
    """Dyadic offsets and power-of-two scales, so scaled dyadic inputs stay exact."""
    offset = dyadic(rng, n_in)
    scale = 2.0 ** rng.integers(-2, 3, size=n_in)
    return Scaler("standard", offset, scale.astype(np.float64))


def raw_inputs_with_zero(net: Network, scaler: Scaler, rng: np.random.Generator, n: int = 64) -> np.ndarray:
    """Dyadic raw inputs; half of the rows make unit 0 of the first dense layer exactly 0."""
    S = dyadic(rng, (n, net.n_inputs), denom=8, bound=4.0)
    first = net.op(net.dense_nodes()[0])
    assert isinstance(first, Dense)
    assert first.W[0, 0] == 1.0
    rest = S[: n // 2, 1:] @ first.W[0, 1:] + first.b[0]
    S[: n // 2, 0] = -rest
    return S * scaler.scale + scaler.offset


def dense(net: Network, node: str) -> Dense:
    op = net.op(node)
    assert isinstance(op, Dense)
    return op


@pytest.fixture
def ort() -> Any:
    return pytest.importorskip("onnxruntime")


def run(ort: Any, model: onnx.ModelProto, X: np.ndarray, optimize: bool = True) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return list(sess.run(None, {sess.get_inputs()[0].name: X}))


# ---------------------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("optimize", [True, False])
@pytest.mark.parametrize("spec", list(SPECS), ids=list(SPECS))
def test_export_matches_forward_exactly(ort: Any, spec: str, optimize: bool) -> None:
    rng = np.random.default_rng(sorted(SPECS).index(spec))
    net = build(SPECS[spec], rng)
    scaler = exact_scaler(rng)
    X_raw = raw_inputs_with_zero(net, scaler, rng)
    vals = net.forward(scaler.transform(X_raw), all_nodes=True)
    first = net.dense_nodes()[0]
    assert np.count_nonzero(vals[first][:, 0] == 0.0) >= 32  # the zero rows really are zero
    out, label = run(ort, to_onnx(net, scaler), X_raw, optimize)
    expected = net.forward(scaler.transform(X_raw))
    assert out.dtype == np.float64
    assert out.shape == (len(X_raw), net.n_outputs)
    assert np.array_equal(out, expected)
    assert label.dtype == np.int64
    assert label.shape == (len(X_raw),)
    assert np.array_equal(label, net.predict(scaler.transform(X_raw)))


@pytest.mark.parametrize("kind", ["step", "sign"])
def test_export_step_and_sign_at_zero(ort: Any, kind: str) -> None:
    nb = NetworkBuilder("at0")
    x = nb.input("x", 4)
    h = nb.dense("h", x, 4, weights=fixed(np.eye(4)), bias=None)
    nb.activation(kind, "y", h)
    net = nb.build()
    X = np.array([[0.0, -0.0, 5e-324, -5e-324], [1.0, -1.0, 0.0, 0.0]])
    out, label = run(ort, to_onnx(net), X)
    low = 0.0 if kind == "step" else -1.0
    assert np.array_equal(out, [[low, low, 1.0, low], [1.0, low, low, low]])
    assert np.array_equal(out, net.forward(X))
    assert np.array_equal(label, [2, 0])  # ties go to the first index
    assert np.array_equal(label, net.predict(X))


def test_export_label_ties_pick_first_index(ort: Any) -> None:
    nb = NetworkBuilder("ties")
    x = nb.input("x", 2)
    W = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # units 0 and 2 always tie
    nb.dense("y", x, 3, weights=fixed(W), bias=fixed([0.0, 0.0, 0.0]))
    net = nb.build()
    X = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [0.0, 0.0], [-1.0, -2.0]])
    out, label = run(ort, to_onnx(net), X)
    assert np.array_equal(out, net.forward(X))
    assert np.array_equal(label, [0, 1, 0, 0, 0])
    assert np.array_equal(label, net.predict(X))


def test_export_one_output_label_is_positive_part(ort: Any) -> None:
    nb = NetworkBuilder("one")
    x = nb.input("x", 2)
    nb.dense("y", x, 1, weights=fixed([[1.0, -1.0]]), bias=fixed([0.5]))
    net = nb.build()
    X = np.array([[0.0, 0.5], [0.0, 0.25], [0.0, 1.0], [3.0, 0.0]])  # outputs 0, 0.25, -0.5, 3.5
    out, label = run(ort, to_onnx(net), X)
    assert np.array_equal(out[:, 0], [0.0, 0.25, -0.5, 3.5])
    assert np.array_equal(label, [0, 1, 0, 1])


def test_export_scaling_is_bit_identical_on_real_data(ort: Any) -> None:
    rng = np.random.default_rng(7)
    nb = NetworkBuilder("scale")
    nb.identity("y", nb.input("x", 5))
    net = nb.build()
    X_raw = rng.normal(size=(500, 5)) * 100
    scaler = Scaler.fit("standard", X_raw)
    out, _ = run(ort, to_onnx(net, scaler), X_raw)
    assert np.array_equal(out, scaler.transform(X_raw))
    assert not np.array_equal(out, (X_raw - scaler.offset) * (1.0 / scaler.scale))  # Div, not Mul


@pytest.mark.parametrize("spec", list(SPECS), ids=list(SPECS))
def test_export_real_weights_close(ort: Any, spec: str) -> None:
    rng = np.random.default_rng(100 + sorted(SPECS).index(spec))
    net = build(SPECS[spec], rng, exact=False)
    X_raw = rng.normal(size=(200, N_IN)) * 3 + 1
    scaler = Scaler.fit("minmax", X_raw)
    out, label = run(ort, to_onnx(net, scaler), X_raw)
    expected = net.forward(scaler.transform(X_raw))
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    assert np.array_equal(label, net.predict(scaler.transform(X_raw)))


def test_export_file_is_valid_onnx(tmp_path: Path) -> None:
    net = build(SPECS["step-bias-3out"], np.random.default_rng(1))
    path = export_onnx(net, tmp_path / "m.onnx", exact_scaler(np.random.default_rng(2)), opset=13)
    assert path == tmp_path / "m.onnx"
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 13
    g = model.graph
    assert [(v.name, v.type.tensor_type.elem_type) for v in g.input] == [("input", TensorProto.DOUBLE)]
    assert [(v.name, v.type.tensor_type.elem_type) for v in g.output] == [
        ("output", TensorProto.DOUBLE), ("label", TensorProto.INT64)]
    assert [n.op_type for n in g.node] == ["Sub", "Div", "MatMul", "Add", "Greater", "Cast", "MatMul", "Add",
                                          "Identity", "ArgMax"]
    assert "Sign" not in {n.op_type for n in g.node}
    assert "Mul" not in {n.op_type for n in g.node}


def test_export_errors(tmp_path: Path) -> None:
    nb = NetworkBuilder("train_me")
    nb.dense("h", nb.input("x", 2), 1, weights=real(-1, 1))
    with pytest.raises(ExportError) as e:
        export_onnx(nb.build(), tmp_path / "m.onnx")
    assert e.value.diagnostics[0].code == "E0606"
    assert "'h'" in str(e.value)

    net = build(SPECS["relu-mixed-2out"], np.random.default_rng(0))
    with pytest.raises(ExportError) as e:
        export_onnx(net, tmp_path / "model.NNMIP")
    assert e.value.diagnostics[0].code == "E0603"
    assert not (tmp_path / "model.NNMIP").exists()

    with pytest.raises(ExportError) as e:
        to_onnx(net, Scaler("none", np.zeros(2), np.ones(2)))
    assert e.value.diagnostics[0].code == "E0606"
    assert "2 offsets" in str(e.value)
    with pytest.raises(ExportError) as e:
        to_onnx(net, opset=11)
    assert e.value.diagnostics[0].code == "E0606"


# ---------------------------------------------------------------------------------------------------------
# Round trip
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_scaler", [True, False])
@pytest.mark.parametrize("spec", list(SPECS), ids=list(SPECS))
def test_round_trip(tmp_path: Path, spec: str, with_scaler: bool) -> None:
    rng = np.random.default_rng(200 + sorted(SPECS).index(spec))
    net = build(SPECS[spec], rng, exact=False, name="rt")
    X_raw = rng.normal(size=(100, N_IN))
    scaler = Scaler.fit("standard", X_raw) if with_scaler else None
    path = export_onnx(net, tmp_path / "m.onnx", scaler)
    net2, scaler2 = import_onnx(path)
    assert net2.describe() == net.describe()  # same names, kinds, widths and biases
    assert np.array_equal(net2.forward(X_raw), net.forward(X_raw))
    for n in net.dense_nodes():
        assert np.array_equal(dense(net2, n).W, dense(net, n).W)
        assert np.array_equal(dense(net2, n).b, dense(net, n).b)
    if scaler is None:
        assert scaler2 is None
    else:
        assert scaler2 is not None
        assert scaler2.kind == "standard"
        assert np.array_equal(scaler2.offset, scaler.offset)
        assert np.array_equal(scaler2.scale, scaler.scale)
        assert np.array_equal(scaler2.transform(X_raw), scaler.transform(X_raw))


def test_round_trip_makes_names_lp_safe() -> None:
    nb = NetworkBuilder("odd names")
    x = nb.input("input", 2)
    h = nb.dense("e1", x, 2, weights=fixed([[1.0, 2.0], [3.0, 4.0]]), bias=None)
    nb.relu("x", h)
    net2, scaler = import_onnx(to_onnx(nb.build()))
    assert net2.nodes == ["x", "n_e1", "x_2"]
    assert net2.name == "odd names"
    assert scaler is None
    assert import_onnx(to_onnx(nb.build()), name="renamed")[0].name == "renamed"


def test_lp_safe() -> None:
    assert lp_safe("/fc1/Gemm") == "_fc1_Gemm"
    assert lp_safe("1st") == "n_1st"
    assert lp_safe("exp") == "n_exp"
    assert lp_safe("Eq") == "n_Eq"
    assert lp_safe("onnx::Gemm_0") == "onnx__Gemm_0"
    assert lp_safe("") == "n_"


# ---------------------------------------------------------------------------------------------------------
# Import of models built with onnx.helper
# ---------------------------------------------------------------------------------------------------------


def make_model(nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray], n_in: int | str, n_out: int,
               dtype: int = TensorProto.DOUBLE, out: str = "y") -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x_in", dtype, ["N", n_in])],
        [helper.make_tensor_value_info(out, dtype, ["N", n_out])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


def compare(ort: Any, model: onnx.ModelProto, n_in: int, rtol: float = 1e-12, dtype: Any = np.float64,
            seed: int = 0) -> Network:
    net, scaler = import_onnx(model)
    assert scaler is None
    X = np.random.default_rng(seed).normal(size=(300, n_in)).astype(dtype)
    (expected,) = run(ort, model, X)[:1]
    got = net.forward(X.astype(np.float64))
    np.testing.assert_allclose(got, expected.astype(np.float64), rtol=rtol, atol=rtol)
    return net


def test_import_gemm_defaults(ort: Any) -> None:
    rng = np.random.default_rng(1)
    B, C = rng.normal(size=(4, 3)), rng.normal(size=3)
    model = make_model([helper.make_node("Gemm", ["x_in", "B", "C"], ["y"], name="fc")], {"B": B, "C": C}, 4, 3)
    net = compare(ort, model, 4)
    assert net.nodes == ["x", "fc"]
    assert np.array_equal(dense(net, "fc").W, B.T)
    assert np.array_equal(dense(net, "fc").b, C)


def test_import_gemm_alpha_beta_transb(ort: Any) -> None:
    rng = np.random.default_rng(2)
    B, C = rng.normal(size=(3, 4)), rng.normal(size=3)
    node = helper.make_node("Gemm", ["x_in", "B", "C"], ["y"], name="fc", transB=1, alpha=0.5, beta=2.0)
    net = compare(ort, make_model([node], {"B": B, "C": C}, 4, 3), 4)
    assert np.array_equal(dense(net, "fc").W, 0.5 * B)
    assert np.array_equal(dense(net, "fc").b, 2 * C)
    # no C: a dense layer without bias
    node = helper.make_node("Gemm", ["x_in", "B"], ["y"], name="nobias", transB=1)
    net = compare(ort, make_model([node], {"B": B}, 4, 3), 4)
    assert dense(net, "nobias").bias is None


@pytest.mark.parametrize("bias_first", [False, True])
def test_import_matmul_add(ort: Any, bias_first: bool) -> None:
    rng = np.random.default_rng(3)
    B, b = rng.normal(size=(5, 2)), rng.normal(size=2)
    add_in = ["b", "mm"] if bias_first else ["mm", "b"]
    nodes = [helper.make_node("MatMul", ["x_in", "B"], ["mm"], name="lin"),
             helper.make_node("Add", add_in, ["y"], name="lin_add")]
    net = compare(ort, make_model(nodes, {"B": B, "b": b}, 5, 2), 5)
    assert net.nodes == ["x", "lin"]
    assert np.array_equal(dense(net, "lin").b, b)


@pytest.mark.parametrize(("dtype", "np_dtype", "rtol"), [(TensorProto.DOUBLE, np.float64, 1e-12),
                                                          (TensorProto.FLOAT, np.float32, 1e-5)])
def test_import_relu_mlp(ort: Any, dtype: int, np_dtype: Any, rtol: float) -> None:
    rng = np.random.default_rng(4)
    inits = {"W1": rng.normal(size=(8, 6)), "b1": rng.normal(size=6),
             "W2": rng.normal(size=(6, 5)), "b2": rng.normal(size=(1, 5)),
             "W3": rng.normal(size=(3, 5)), "b3": rng.normal(size=3)}
    inits = {k: v.astype(np_dtype) for k, v in inits.items()}
    nodes = [helper.make_node("Flatten", ["x_in"], ["flat"], name="flatten", axis=1),
             helper.make_node("Gemm", ["flat", "W1", "b1"], ["g1"], name="/fc1/Gemm"),
             helper.make_node("Relu", ["g1"], ["r1"], name="/act1/Relu"),
             helper.make_node("MatMul", ["r1", "W2"], ["m2"], name="/fc2/MatMul"),
             helper.make_node("Add", ["m2", "b2"], ["a2"], name="/fc2/Add"),
             helper.make_node("Relu", ["a2"], ["r2"], name=""),
             helper.make_node("Gemm", ["r2", "W3", "b3"], ["y"], name="3out", transB=1)]
    net = compare(ort, make_model(nodes, inits, 8, 3, dtype), 8, rtol=rtol, dtype=np_dtype)
    assert net.nodes == ["x", "_fc1_Gemm", "_act1_Relu", "_fc2_MatMul", "r2", "n_3out"]
    assert [net.op(n).kind for n in net.nodes] == ["input", "dense", "relu", "dense", "relu", "dense"]
    assert net.n_inputs == 8
    assert net.n_outputs == 3


def test_import_constant_nodes_symbolic_input_and_reshape(ort: Any) -> None:
    rng = np.random.default_rng(5)
    W, b = rng.normal(size=(3, 4)), rng.normal(size=4)
    nodes = [helper.make_node("Constant", [], ["W"], value=numpy_helper.from_array(W)),
             helper.make_node("Constant", [], ["b"], value=numpy_helper.from_array(b)),
             helper.make_node("Constant", [], ["shape"], value_ints=[-1, 4]),
             helper.make_node("MatMul", ["x_in", "W"], ["m"], name="dense"),
             helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Reshape", ["a", "shape"], ["r"], name="reshape"),
             helper.make_node("Identity", ["r"], ["y"], name="out")]
    net = compare(ort, make_model(nodes, {}, "D", 4), 3)
    assert net.n_inputs == 3
    assert [net.op(n).kind for n in net.nodes] == ["input", "dense", "identity"]


def test_import_onnx_sign_is_nnmip_sign(ort: Any) -> None:
    W = np.array([[1.0, -1.0], [2.0, 0.5]])
    nodes = [helper.make_node("Gemm", ["x_in", "W"], ["g"], name="h", transB=1),
             helper.make_node("Sign", ["g"], ["y"], name="s")]
    model = make_model(nodes, {"W": W}, 2, 2)
    net = compare(ort, model, 2)  # random inputs: no exact zeros
    assert net.op("s").kind == "sign"
    X = np.array([[1.0, 1.0]])  # unit 0 is exactly 0: ONNX Sign gives 0, nnmip sign gives -1
    assert np.array_equal(run(ort, model, X)[0], [[0.0, 1.0]])
    assert np.array_equal(net.forward(X), [[-1.0, 1.0]])


def test_import_scaling_prefix_from_helper_model() -> None:
    off, sc = np.array([1.0, 2.0]), np.array([4.0, 0.5])
    nodes = [helper.make_node("Sub", ["x_in", "off"], ["s"]), helper.make_node("Div", ["s", "sc"], ["d"]),
             helper.make_node("Gemm", ["d", "W"], ["y"], name="h")]
    model = make_model(nodes, {"off": off, "sc": sc, "W": np.ones((2, 1))}, 2, 1)
    net, scaler = import_onnx(model)
    assert scaler is not None
    assert scaler.kind == "custom"
    assert np.array_equal(scaler.offset, off)
    assert np.array_equal(scaler.scale, sc)
    assert net.nodes == ["x", "h"]


def _gemm_act_gemm(op: str, name: str, W: np.ndarray) -> onnx.ModelProto:
    """``Gemm(x, W) -> op -> Gemm(., W)`` on a float input ``[N, 2]``, the activation node named ``name``."""
    nodes = [helper.make_node("Gemm", ["x_in", "W"], ["g"], name="fc1"),
             helper.make_node(op, ["g"], ["t"], name=name),
             helper.make_node("Gemm", ["t", "W"], ["y"], name="fc2")]
    graph = helper.make_graph(
        nodes, f"{name}_net", [helper.make_tensor_value_info("x_in", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], [numpy_helper.from_array(W, "W")])
    return helper.make_model(graph)


def test_import_unsupported_op_names_the_node() -> None:
    with pytest.raises(OnnxImportError) as e:
        import_onnx(_gemm_act_gemm("Softplus", "soft1", np.ones((2, 2), np.float32)))
    err = e.value
    assert isinstance(err, NnmipError)
    assert isinstance(err, ValueError)
    assert err.diagnostics[0].code == "E0701"
    assert str(err) == "onnx node 'soft1' has op type 'Softplus', which nnmip cannot import"
    assert any("Gemm" in n and "Relu" in n and "Tanh" in n for n in err.diagnostics[0].notes)
    assert any("Sigmoid and Tanh" in n and "Softplus is not one of them" in n for n in err.diagnostics[0].notes)


def test_import_hidden_tanh_is_a_tanh_node() -> None:
    W = np.array([[1.0, -2.0], [0.5, 3.0]], np.float32)
    net, _ = import_onnx(_gemm_act_gemm("Tanh", "tanh1", W))
    assert [net.op(n).kind for n in net.nodes] == ["input", "dense", "tanh", "dense"]
    x = np.array([[0.3, -0.7], [2.0, 1.0]])
    W64 = W.astype(np.float64)
    np.testing.assert_allclose(net.forward(x), np.tanh(x @ W64) @ W64, rtol=1e-12)


def test_import_unsupported_op_is_located_in_the_file(tmp_path: Path) -> None:
    nodes = [helper.make_node("Gemm", ["x_in", "W"], ["g"], name="fc1"),
             helper.make_node("LeakyRelu", ["g"], ["y"], name="leaky")]
    path = tmp_path / "leaky.onnx"
    onnx.save_model(make_model(nodes, {"W": np.ones((2, 2))}, 2, 2), str(path))
    with pytest.raises(OnnxImportError) as e:
        import_onnx(path)
    d = e.value.diagnostics[0]
    assert d.span.file == str(path)
    assert e.value.render().startswith(f"{path}: error[E0701]: onnx node 'leaky' has op type 'LeakyRelu'")
    assert any(n.startswith("help:") for n in d.notes)


def test_import_softmax_inside_gets_a_hint() -> None:
    nodes = [helper.make_node("Gemm", ["x_in", "W"], ["g"], name="h"),
             helper.make_node("Softmax", ["g"], ["s"], name="probs"),
             helper.make_node("Gemm", ["s", "W"], ["y"], name="h2")]
    with pytest.raises(OnnxImportError) as e:
        import_onnx(make_model(nodes, {"W": np.ones((2, 2))}, 2, 2))
    assert e.value.diagnostics[0].code == "E0701"
    assert "'probs'" in str(e.value)
    assert any("cut off" in n for n in e.value.diagnostics[0].notes)


def test_import_structure_errors() -> None:
    # weights from a second graph input
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x_in", "w_in"], ["y"], name="mm")], "g",
        [helper.make_tensor_value_info("x_in", TensorProto.DOUBLE, ["N", 2]),
         helper.make_tensor_value_info("w_in", TensorProto.DOUBLE, [2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["N", 2])])
    with pytest.raises(OnnxImportError) as e:
        import_onnx(helper.make_model(graph))
    assert e.value.diagnostics[0].code == "E0702"
    # a Greater that is not a step or sign
    nodes = [helper.make_node("Greater", ["x_in", "z"], ["gt"], name="cmp"),
             helper.make_node("Cast", ["gt"], ["y"], to=TensorProto.INT64)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x_in", TensorProto.DOUBLE, ["N", 2])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, ["N", 2])],
                              [numpy_helper.from_array(np.float64(0.0), "z")])
    with pytest.raises(OnnxImportError) as e:
        import_onnx(helper.make_model(graph))
    assert e.value.diagnostics[0].code == "E0702"
    assert "'cmp'" in str(e.value)
    # weights that do not fit the width
    nodes = [helper.make_node("Gemm", ["x_in", "W1"], ["g"], name="a"),
             helper.make_node("Gemm", ["g", "W2"], ["y"], name="b")]
    good = make_model(nodes, {"W1": np.ones((2, 3)), "W2": np.ones((3, 1))}, 2, 1)
    assert import_onnx(good.SerializeToString())[0].nodes == ["x", "a", "b"]  # bytes are accepted too
    bad = make_model(nodes, {"W1": np.ones((2, 3)), "W2": np.ones((3, 1))}, 2, 1)
    bad.graph.initializer[1].CopyFrom(numpy_helper.from_array(np.ones((4, 1)), "W2"))
    with pytest.raises(OnnxImportError) as e:
        import_onnx(bad)
    assert e.value.diagnostics[0].code == "E0702"
    assert "4 inputs but receives 3" in str(e.value)


def test_import_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(OnnxImportError) as e:
        import_onnx(tmp_path / "missing.onnx")
    assert e.value.diagnostics[0].code == "E0703"
    assert "does not exist" in str(e.value)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\xffnot a protobuf\x07" * 10)
    with pytest.raises(OnnxImportError) as e:
        import_onnx(junk)
    assert e.value.diagnostics[0].code == "E0703"
