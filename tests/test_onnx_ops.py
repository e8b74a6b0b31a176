"""ONNX operators as the benchmarks ship them: each tiny graph is run by onnxruntime and by nnmip's forward pass on
random inputs (they must agree), and the interval, symbolic and LP bounds of every node must contain the node's
values on inputs sampled from a box."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from nnmip.io.onnx import OnnxImportError, import_onnx
from nnmip.io.vnnlib import parse_vnnlib
from nnmip.ir.network import Network
from nnmip.ir.spec import Region, box
from nnmip.passes.bounds import propagate_bounds, tighten_bounds

ort = pytest.importorskip("onnxruntime")
RNG = np.random.default_rng(7)
F = TensorProto.FLOAT


def graph_model(nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray], in_shape: list[Any],
                out_shape: list[Any] | None = None, opset: int = 17, out: str = "y",
                extra_outputs: tuple[onnx.ValueInfoProto, ...] = (), ml: bool = False,
                dtype: int = TensorProto.DOUBLE) -> onnx.ModelProto:
    """A model on a double input (float for the operators onnxruntime computes in float only)."""
    np_t = np.float64 if dtype == TensorProto.DOUBLE else np.float32
    outputs = [helper.make_tensor_value_info(out, dtype, out_shape)] if out_shape is not None else []
    arrays = {k: np.asarray(v).astype(np_t) if np.asarray(v).dtype.kind == "f" else np.asarray(v)
              for k, v in inits.items()}
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", dtype, in_shape)],
                              outputs + list(extra_outputs),
                              [numpy_helper.from_array(v, k) for k, v in arrays.items()])
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("ai.onnx.ml", 3)] if ml else [])
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 8
    return model


def ort_run(model: onnx.ModelProto, x: np.ndarray, output: str | None = None) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    x = x.astype(np.float32 if "float)" in inp.type else np.float64)
    return np.asarray(sess.run([output] if output else None, {inp.name: x})[0], np.float64)


def check(model: onnx.ModelProto, n: int = 20, rtol: float = 1e-10, lo: float = -2.0, hi: float = 2.0,
          lp: bool = True) -> Network:
    """Forward pass equals onnxruntime; interval / symbolic / LP bounds of every node contain sampled values."""
    net, scaler = import_onnx(model)
    assert scaler is None
    shape = net.source_shapes["input"]
    X = RNG.uniform(lo, hi, size=(n, net.n_inputs))
    if model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT:
        X = X.astype(np.float32).astype(np.float64)     # float weights are exact in double: only sums differ
        rtol = max(rtol, 1e-5)
    for x in X:
        expected = ort_run(model, x.reshape(shape)).ravel()
        np.testing.assert_allclose(net.forward(x[None, :])[0], expected, rtol=rtol, atol=rtol)
    check_bounds(net, np.full(net.n_inputs, lo / 2), np.full(net.n_inputs, hi / 2), lp=lp)
    return net


def check_bounds(net: Network, lo: np.ndarray, hi: np.ndarray, lp: bool = True) -> None:
    region = Region((box(lo, hi),))
    S = np.vstack([RNG.uniform(lo, hi, size=(400, lo.size)), lo, hi])
    vals = net.forward(S, all_nodes=True)
    maps = [propagate_bounds(net, region), tighten_bounds(net, region, method="symbolic").bounds]
    if lp:
        maps.append(tighten_bounds(net, region, method="lp").bounds)
    for bm in maps:
        for node, v in vals.items():
            b_lo, b_hi = bm[node]
            tol = 1e-9 * (1 + np.abs(v))
            assert np.all(v >= b_lo - tol), node
            assert np.all(v <= b_hi + tol), node


def R(*shape: int) -> np.ndarray:
    return RNG.normal(size=shape)


# ---------------------------------------------------------------------------------------------------------------
# ranks and shape operators
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [[1, 5], [1, 1, 1, 5], [1, 5, 1], [1, 1, 5, 1]])
def test_input_ranks_with_batch_one(shape: list[int]) -> None:
    nodes = [helper.make_node("Flatten", ["x"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "W", "b"], ["g"], transB=1),
             helper.make_node("Relu", ["g"], ["y"])]
    net = check(graph_model(nodes, {"W": R(4, 5), "b": R(4)}, shape, [1, 4]))
    assert net.n_inputs == 5
    assert net.source_shapes["input"] == shape


def test_symbolic_batch_and_image_input() -> None:
    nodes = [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "W"], ["y"])]
    net = check(graph_model(nodes, {"W": R(12, 3)}, ["N", 3, 2, 2], ["N", 3]))
    assert net.n_inputs == 12


def test_a_static_first_axis_is_part_of_the_input() -> None:
    """The network is the function of the whole input tensor: a first axis of 4 gives 4 x 3 inputs."""
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")]
    net = check(graph_model(nodes, {"W": R(3, 2)}, [4, 3], [4, 2]))
    assert (net.n_inputs, net.n_outputs) == (12, 8)


def test_reshape_transpose_squeeze_unsqueeze_identity_dropout_cast_constant() -> None:
    nodes = [
        helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([0, 2, 3, -1]))),
        helper.make_node("Reshape", ["x", "shape"], ["r"]),                 # [1, 6, 2] -> [1, 2, 3, 2]
        helper.make_node("Transpose", ["r"], ["t"], perm=[0, 3, 1, 2]),     # [1, 2, 2, 3]
        helper.make_node("Unsqueeze", ["t", "ax"], ["u"]),                  # [1, 1, 2, 2, 3]
        helper.make_node("Squeeze", ["u", "ax"], ["s"]),                    # [1, 2, 2, 3]
        helper.make_node("Dropout", ["s"], ["d"]),
        helper.make_node("Cast", ["d"], ["c"], to=TensorProto.DOUBLE),
        helper.make_node("Shape", ["c"], ["shp"]),
        helper.make_node("Gather", ["shp", "zero"], ["n0"], axis=0),
        helper.make_node("Unsqueeze", ["n0", "ax0"], ["n0u"]),
        helper.make_node("Concat", ["n0u", "minus1"], ["flat_shape"], axis=0),
        helper.make_node("Reshape", ["c", "flat_shape"], ["f"]),            # [1, 12] the way PyTorch flattens
        helper.make_node("MatMul", ["f", "W"], ["m"]),
        helper.make_node("Identity", ["m"], ["y"], name="out"),
    ]
    inits = {"ax": np.array([1]), "zero": np.array(0), "ax0": np.array([0]), "minus1": np.array([-1]),
             "W": R(12, 4)}
    net = check(graph_model(nodes, inits, [1, 6, 2], [1, 4]))
    assert [net.op(n).kind for n in net.nodes] == ["input", "dense", "identity"]


# ---------------------------------------------------------------------------------------------------------------
# elementwise constants, MatMul, Gemm
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("const_first", [False, True])
@pytest.mark.parametrize("cshape", [(), (1, 3, 1, 1), (3, 2, 2)])
def test_elementwise_constants(op: str, const_first: bool, cshape: tuple[int, ...]) -> None:
    if op == "Div" and const_first:
        pytest.skip("a constant divided by a computed tensor is not affine (refusal tested below)")
    C = RNG.uniform(0.5, 2.0, size=cshape) * RNG.choice([-1.0, 1.0], size=cshape)
    ins = ["C", "x"] if const_first else ["x", "C"]
    nodes = [helper.make_node(op, ins, ["e"]), helper.make_node("Flatten", ["e"], ["f"]),
             helper.make_node("Gemm", ["f", "W"], ["y"], transB=1)]
    net = check(graph_model(nodes, {"C": C, "W": R(2, 12)}, [1, 3, 2, 2], [1, 2]))
    assert [net.op(n).kind for n in net.nodes] == ["input", "dense"]     # folded into the layer


def test_elementwise_refusals() -> None:
    nodes = [helper.make_node("Div", ["C", "x"], ["y"], name="recip")]
    with pytest.raises(OnnxImportError, match="'recip' \\(Div\\) divides a constant"):
        import_onnx(graph_model(nodes, {"C": np.ones(3)}, [1, 3], [1, 3]))
    nodes = [helper.make_node("Mul", ["x", "x"], ["y"], name="square")]
    with pytest.raises(OnnxImportError, match="'square' \\(Mul\\) multiplies or divides two computed"):
        import_onnx(graph_model(nodes, {}, [1, 3], [1, 3]))


def test_matmul_constant_on_the_left_with_a_rank_one_input() -> None:
    nodes = [helper.make_node("MatMul", ["W0", "x"], ["m0"]), helper.make_node("Add", ["m0", "b0"], ["h0"]),
             helper.make_node("Relu", ["h0"], ["r0"]), helper.make_node("MatMul", ["W1", "r0"], ["y"])]
    net = check(graph_model(nodes, {"W0": R(4, 2), "b0": R(4), "W1": R(1, 4)}, [2], [1]))
    assert (net.n_inputs, net.n_outputs) == (2, 1)


def test_matmul_on_a_matrix_input_both_sides() -> None:
    nodes = [helper.make_node("MatMul", ["x", "B"], ["m"]),          # [1, 3, 4] @ [4, 2] -> [1, 3, 2]
             helper.make_node("Transpose", ["m"], ["t"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["A", "t"], ["y"])]          # [5, 2] @ [1, 2, 3] -> [1, 5, 3]
    check(graph_model(nodes, {"B": R(4, 2), "A": R(5, 2)}, [1, 3, 4], [1, 5, 3]))


@pytest.mark.parametrize(("ta", "tb", "alpha", "beta"), [(0, 0, 1.0, 1.0), (1, 0, 0.5, 2.0), (0, 1, -1.5, 0.0),
                                                         (1, 1, 2.0, -1.0)])
def test_gemm_attributes(ta: int, tb: int, alpha: float, beta: float) -> None:
    shape = [4, 1] if ta else [1, 4]
    B = R(3, 4) if tb else R(4, 3)
    nodes = [helper.make_node("Gemm", ["x", "B", "C"], ["y"], transA=ta, transB=tb, alpha=alpha, beta=beta)]
    check(graph_model(nodes, {"B": B, "C": R(1, 3)}, shape, [1, 3]))


def test_gemm_with_the_computed_tensor_second() -> None:
    nodes = [helper.make_node("Gemm", ["A", "x", "C"], ["y"], transB=1, alpha=0.5)]   # [3, 4] @ [1, 4]^T
    check(graph_model(nodes, {"A": R(3, 4), "C": R(3, 1)}, [1, 4], [3, 1]))


# ---------------------------------------------------------------------------------------------------------------
# convolution, normalisation, padding, pooling
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("attrs", "cin", "cout"), [
    ({"strides": [2, 2], "pads": [1, 1, 1, 1]}, 3, 4),
    ({"pads": [1, 0, 2, 1], "dilations": [2, 1]}, 2, 3),
    ({"group": 2, "strides": [1, 2]}, 4, 6),
    ({"auto_pad": "SAME_UPPER", "strides": [2, 2]}, 1, 2),
    ({"auto_pad": "SAME_LOWER"}, 1, 2),
])
def test_conv(attrs: dict[str, Any], cin: int, cout: int) -> None:
    groups = attrs.get("group", 1)
    nodes = [helper.make_node("Conv", ["x", "K", "kb"], ["c"], kernel_shape=[3, 2], **attrs),
             helper.make_node("Relu", ["c"], ["y"])]
    model = graph_model(nodes, {"K": R(cout, cin // groups, 3, 2), "kb": R(cout)}, [1, cin, 6, 5], None, dtype=F)
    model.graph.output.append(helper.make_tensor_value_info("y", F, None))
    net = check(model, lp=False)
    dense = net.op(net.nodes[1])
    assert dense.kind == "dense"


def test_conv_batchnorm_folded_then_dense() -> None:
    C = 3
    nodes = [helper.make_node("Conv", ["x", "K"], ["c"], kernel_shape=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["bn"], epsilon=1e-3),
             helper.make_node("Relu", ["bn"], ["r"]), helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("Gemm", ["f", "W"], ["y"], transB=1)]
    inits = {"K": R(C, 2, 2, 2), "g": RNG.uniform(0.5, 2, C), "b": R(C), "m": R(C), "v": RNG.uniform(0.5, 2, C),
             "W": R(2, C * 5 * 5)}
    net = check(graph_model(nodes, inits, [1, 2, 4, 4], [1, 2], dtype=F))
    assert [net.op(n).kind for n in net.nodes] == ["input", "dense", "relu", "dense"]


@pytest.mark.parametrize(("mode", "value"), [("constant", 0.0), ("constant", 1.5), ("edge", 0.0), ("reflect", 0.0)])
def test_pad(mode: str, value: float) -> None:
    nodes = [helper.make_node("Pad", ["x", "pads", "val"], ["p"], mode=mode), helper.make_node("Relu", ["p"], ["y"])]
    model = graph_model(nodes, {"pads": np.array([0, 0, 1, 2, 0, 0, 2, 1]), "val": np.array(value)},
                        [1, 2, 3, 3], None, dtype=F)
    model.graph.output.append(helper.make_tensor_value_info("y", F, None))
    check(model)


@pytest.mark.parametrize("attrs", [{"kernel_shape": [2, 2], "strides": [2, 2]},
                                   {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 2]},
                                   {"kernel_shape": [3, 2], "pads": [1, 0, 1, 1], "count_include_pad": 1}])
def test_average_pool(attrs: dict[str, Any]) -> None:
    nodes = [helper.make_node("AveragePool", ["x"], ["a"], **attrs), helper.make_node("Relu", ["a"], ["y"])]
    model = graph_model(nodes, {}, [1, 2, 5, 4], None, dtype=F)
    model.graph.output.append(helper.make_tensor_value_info("y", F, None))
    check(model)


def test_global_average_pool() -> None:
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["a"]), helper.make_node("Flatten", ["a"], ["y"])]
    check(graph_model(nodes, {}, [1, 3, 4, 4], [1, 3], dtype=F))


@pytest.mark.parametrize("attrs", [{"kernel_shape": [2, 2], "strides": [2, 2]},
                                   {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 2]},
                                   {"kernel_shape": [2, 3], "dilations": [2, 1]}])
def test_max_pool(attrs: dict[str, Any]) -> None:
    nodes = [helper.make_node("Conv", ["x", "K"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("MaxPool", ["c"], ["m"], **attrs), helper.make_node("Flatten", ["m"], ["f"]),
             helper.make_node("Gemm", ["f", "W"], ["y"], transB=1)]
    probe = graph_model(nodes[:2], {"K": R(2, 1, 1, 1)}, [1, 1, 5, 5], None, dtype=F)
    probe.graph.output.append(helper.make_tensor_value_info("m", F, None))
    width = ort_run(probe, np.zeros((1, 1, 5, 5))).size
    net = check(graph_model(nodes, {"K": R(2, 1, 1, 1), "W": R(3, width)}, [1, 1, 5, 5], [1, 3], dtype=F))
    assert "maxpool" in [net.op(n).kind for n in net.nodes]


# ---------------------------------------------------------------------------------------------------------------
# residual connections
# ---------------------------------------------------------------------------------------------------------------
def residual_model() -> onnx.ModelProto:
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["g1"], transB=1), helper.make_node("Relu", ["g1"], ["h"]),
             helper.make_node("Gemm", ["h", "W2", "b2"], ["g2"], transB=1), helper.make_node("Relu", ["g2"], ["r"]),
             helper.make_node("Add", ["h", "r"], ["s"], name="skip"),
             helper.make_node("Sub", ["s", "g1"], ["d"], name="diff"),       # another sum of computed tensors
             helper.make_node("Gemm", ["d", "W3"], ["y"], transB=1)]
    inits = {"W1": R(5, 3), "b1": R(5), "W2": R(5, 5), "b2": R(5), "W3": R(2, 5)}
    return graph_model(nodes, inits, [1, 3], [1, 2])


def test_residual_add_makes_a_dag() -> None:
    net = check(residual_model())
    assert not net.is_chain
    sums = [n for n in net.nodes if net.op(n).kind == "add"]
    assert sums
    assert len(net.inputs_of(sums[0])) >= 2


# ---------------------------------------------------------------------------------------------------------------
# graphs ending in Softmax / Sigmoid / ArgMax / ZipMap
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tail", ["Softmax", "Sigmoid", "LogSoftmax"])
def test_final_probabilities_are_cut(tail: str) -> None:
    nodes = [helper.make_node("Gemm", ["x", "W"], ["logits"], transB=1),
             helper.make_node(tail, ["logits"], ["y"], name="probs")]
    model = graph_model(nodes, {"W": R(3, 4)}, [1, 4], [1, 3])
    net, _ = import_onnx(model)
    model.graph.output.append(helper.make_tensor_value_info("logits", TensorProto.DOUBLE, [1, 3]))
    x = RNG.normal(size=4)
    np.testing.assert_allclose(net.forward(x[None, :])[0], ort_run(model, x[None, :], "logits")[0], rtol=1e-12)
    assert any(tail in n and "'probs'" in n and "logits" in n for n in net.notes)


def test_classifier_export_with_argmax_and_zipmap() -> None:
    """The layout of scikit-learn classifier exports: a label output and a ZipMap of probabilities."""
    nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["logits"], transB=1),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
             helper.make_node("ArgMax", ["probs"], ["label"], axis=1, keepdims=0),
             helper.make_node("ZipMap", ["probs"], ["output_probability"], domain="ai.onnx.ml",
                              classlabels_int64s=[0, 1, 2])]
    seq = helper.make_value_info("output_probability", helper.make_sequence_type_proto(helper.make_map_type_proto(
        TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, []))))
    label = helper.make_tensor_value_info("label", TensorProto.INT64, [1])
    graph = helper.make_graph(nodes, "clf", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [label, seq], [numpy_helper.from_array(R(3, 4).astype(np.float32), "W"),
                                             numpy_helper.from_array(R(3).astype(np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 1)])
    model.ir_version = 8
    net, _ = import_onnx(model)
    assert net.n_outputs == 3
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for _ in range(10):
        x = RNG.normal(size=4).astype(np.float32)
        lab, probs = sess.run(None, {"x": x[None, :]})
        logits = net.forward(x[None, :].astype(np.float64))[0]
        assert int(np.argmax(logits)) == int(lab[0])
        p = np.exp(logits - logits.max())
        np.testing.assert_allclose(p / p.sum(), [probs[0][k] for k in range(3)], rtol=1e-5)
    assert any("ZipMap" in n for n in net.notes)
    assert any("Softmax" in n for n in net.notes)


@pytest.mark.parametrize("op", ["Sigmoid", "Tanh"])
def test_hidden_sigmoid_and_tanh_match_onnxruntime_and_their_bounds_hold(op: str) -> None:
    nodes = [helper.make_node("Gemm", ["x", "W"], ["g"], transB=1, name="fc"),
             helper.make_node(op, ["g"], ["s"], name="act"),
             helper.make_node("Gemm", ["s", "W"], ["y"], transB=1, name="fc2")]
    net = check(graph_model(nodes, {"W": R(3, 3)}, [1, 3], [1, 3]), lp=False)
    assert net.op("act").kind == op.lower()


def test_hidden_softplus_is_refused_with_a_located_message(tmp_path: Path) -> None:
    nodes = [helper.make_node("Gemm", ["x", "W"], ["g"], transB=1, name="fc"),
             helper.make_node("Softplus", ["g"], ["s"], name="act"),
             helper.make_node("Gemm", ["s", "W"], ["y"], transB=1, name="fc2")]
    path = tmp_path / "soft.onnx"
    onnx.save_model(graph_model(nodes, {"W": R(3, 3)}, [1, 3], [1, 3]), str(path))
    with pytest.raises(OnnxImportError) as e:
        import_onnx(path)
    d = e.value.diagnostics[0]
    assert d.code == "E0701"
    assert d.span.file == str(path)
    assert "'act' has op type 'Softplus'" in d.message
    assert any(n.startswith("help:") and "Sigmoid and Tanh" in n for n in d.notes)


# ---------------------------------------------------------------------------------------------------------------
# compressed files
# ---------------------------------------------------------------------------------------------------------------
def test_gzipped_onnx_and_vnnlib(tmp_path: Path) -> None:
    model = residual_model()
    (tmp_path / "n.onnx.gz").write_bytes(gzip.compress(model.SerializeToString()))
    net, _ = import_onnx(tmp_path / "n.onnx.gz")
    net2, _ = import_onnx(model)
    x = RNG.normal(size=(5, 3))
    np.testing.assert_array_equal(net.forward(x), net2.forward(x))
    text = "".join(f"(declare-const X_{i} Real)\n" for i in range(3)) + "(declare-const Y_0 Real)\n" \
        "(declare-const Y_1 Real)\n" + "".join(f"(assert (>= X_{i} -1))\n(assert (<= X_{i} 1))\n" for i in range(3)) \
        + "(assert (>= Y_0 Y_1))\n"
    (tmp_path / "p.vnnlib.gz").write_bytes(gzip.compress(text.encode()))
    vp = parse_vnnlib(tmp_path / "p.vnnlib.gz")
    assert (vp.n_inputs, vp.n_outputs) == (3, 2)


def test_verify_command_states_the_cut(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from nnmip.cli import main

    W = np.array([[2.0, -1.0, 0.5], [-1.0, 1.0, 1.0]])
    nodes = [helper.make_node("Gemm", ["x", "W"], ["logits"], transB=1),
             helper.make_node("Softmax", ["logits"], ["y"], name="probs")]
    onnx.save_model(graph_model(nodes, {"W": W}, [1, 3], [1, 2]), str(tmp_path / "m.onnx"))
    rc = main(["verify", "--onnx", str(tmp_path / "m.onnx"), "--point", "1,0,0", "--linf", "0.1",
               "--json", str(tmp_path / "r.json")])
    assert rc == 0
    assert "note: the final Softmax (onnx node 'probs') is cut off" in capsys.readouterr().err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["result"] == "certified"
    assert any("Softmax" in n and "logits" in n for n in report["notes"])


def test_a_cut_softmax_allows_only_comparisons_between_outputs(tmp_path: Path) -> None:
    """Thresholds on probabilities do not carry over to the logits: refused (E0428); comparisons do."""
    from nnmip import classified, linf, maximize, output_box, verify
    from nnmip.errors import FormulationError
    from nnmip.ir.spec import Case, unsafe

    W = np.array([[2.0, -1.0, 0.5], [-1.0, 1.0, 1.0]])
    nodes = [helper.make_node("Gemm", ["x", "W"], ["logits"], transB=1),
             helper.make_node("Softmax", ["logits"], ["y"], name="probs")]
    net, _ = import_onnx(graph_model(nodes, {"W": W}, [1, 3], [1, 2]))
    x0 = np.array([1.0, 0.0, 0.0])
    assert verify(net, linf(x0, 0.1), classified(0)).result == "certified"
    swapped = unsafe([Case(np.array([[1.0, -1.0]]), np.zeros(1), np.array([False]))])   # fails where y_0 <= y_1
    assert verify(net, linf(x0, 0.1), swapped).result == "certified"
    for prop in (output_box(lo=[0.0, 0.0], hi=[1.0, 1.0]), maximize([1.0, 0.0]),
                 unsafe([Case(np.array([[-1.0, 0.0]]), np.array([0.5]), np.array([False]))])):  # y_0 >= 0.5
        with pytest.raises(FormulationError) as e:
            verify(net, linf(x0, 0.1), prop)
        assert e.value.diagnostics[0].code == "E0428"
