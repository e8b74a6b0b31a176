"""The dense path of the ONNX import (a Gemm or MatMul straight on an IR node keeps its weights dense) gives the
same network as the general path through scipy.sparse: the same nodes, the same matrices and biases (signed zeros
included), the same forward pass."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnmip.io.onnx as onnx_io
from nnmip.io.onnx import import_onnx
from nnmip.ir.network import Network
from nnmip.ir.ops import Dense

D = TensorProto.DOUBLE


def model_of(nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray], in_shape: list[Any]) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", D, in_shape)],
                              [helper.make_tensor_value_info("y", D, None)],
                              [numpy_helper.from_array(np.asarray(v, np.float64), k) for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def weights(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Random weights with exact zeros, negative zeros and a sparse column."""
    w = rng.standard_normal(shape)
    w[rng.random(shape) < 0.2] = 0.0
    w[rng.random(shape) < 0.1] = -0.0
    w[:, 1] = 0.0
    return w


def both(model: onnx.ModelProto, monkeypatch: pytest.MonkeyPatch) -> tuple[Network, Network]:
    fast, _ = import_onnx(model)
    with monkeypatch.context() as m:
        m.setattr(onnx_io, "_FAST_PRODUCTS", False)
        general, _ = import_onnx(model)
    return fast, general


def assert_same(fast: Network, general: Network, n_dense: int) -> None:
    assert list(fast.items().__iter__())
    assert [n for n, _ in fast.items()] == [n for n, _ in general.items()]
    seen = 0
    for (n, a), (_, b) in zip(fast.items(), general.items(), strict=True):
        assert type(a) is type(b), n
        assert fast.inputs_of(n) == general.inputs_of(n)
        if isinstance(a, Dense):
            assert isinstance(b, Dense)
            seen += 1
            assert (a.n_in, a.n_out) == (b.n_in, b.n_out)
            assert (a.sparse is None) == (b.sparse is None)
            if a.sparse is not None:    # the same csr arrays, entry order included
                for part in ("indptr", "indices", "data"):
                    assert np.array_equal(getattr(a.sparse, part), getattr(b.sparse, part)), part
            Wa, Wb = a.W, b.W
            assert Wa.dtype == Wb.dtype == np.float64
            assert np.array_equal(Wa, Wb)
            assert np.array_equal(np.signbit(Wa), np.signbit(Wb))   # no negative zero on either side
            assert Wa.flags.c_contiguous
            assert Wb.flags.c_contiguous
            assert (a.bias is None) == (b.bias is None)
            assert np.array_equal(a.b, b.b)
            assert np.array_equal(np.signbit(a.b), np.signbit(b.b))
    assert seen == n_dense
    X = np.random.default_rng(3).uniform(-1, 1, (5, fast.n_inputs))
    assert np.array_equal(fast.forward(X), general.forward(X))


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("alpha", [1.0, 0.37])
@pytest.mark.parametrize("beta", [1.0, -2.5])
def test_gemm_dense_path_equals_general(trans_b: int, alpha: float, beta: float,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(trans_b * 10 + int(alpha * 100) + int(beta))
    w1, w2 = weights(rng, (6, 9)), weights(rng, (9, 4))
    b1, b2 = rng.standard_normal(9), rng.standard_normal(4)
    b1[0] = -0.0
    inits = {"w1": w1.T if trans_b else w1, "b1": b1, "w2": w2.T if trans_b else w2, "b2": b2}
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", alpha=alpha, beta=beta, transB=trans_b),
             helper.make_node("Relu", ["h"], ["r"], name="relu1"),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="fc2", alpha=alpha, beta=beta, transB=trans_b)]
    fast, general = both(model_of(nodes, inits, ["N", 6]), monkeypatch)
    assert_same(fast, general, 2)
    W = fast.op("fc1").W       # the values themselves: alpha * W (transposed back), not just equal to each other
    assert np.array_equal(W, (float(np.float32(alpha)) * w1).T + 0.0)   # ONNX holds alpha as a float


def test_matmul_dense_path_equals_general(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    w1, w2 = weights(rng, (8, 7)), weights(rng, (7, 3))
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
             helper.make_node("Add", ["h", "b1"], ["ha"], name="add1"),
             helper.make_node("Relu", ["ha"], ["r"], name="relu1"),
             helper.make_node("MatMul", ["r", "w2"], ["y"], name="mm2")]
    fast, general = both(model_of(nodes, {"w1": w1, "b1": rng.standard_normal(7), "w2": w2}, [1, 8]), monkeypatch)
    assert_same(fast, general, 2)
    assert fast.op("mm2").bias is None
    assert np.array_equal(fast.op("mm1").W, w1.T + 0.0)


def test_sparse_weights_and_following_ops_take_the_general_form(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mostly-zero Gemm stays a sparse layer; a Mul and a Transpose after it convert the dense map back."""
    rng = np.random.default_rng(9)
    w1 = np.zeros((80, 70))
    w1[rng.integers(0, 80, 60), rng.integers(0, 70, 60)] = rng.standard_normal(60)
    w2 = weights(rng, (70, 5))
    nodes = [helper.make_node("Gemm", ["x", "w1"], ["h"], name="fc1"),
             helper.make_node("Relu", ["h"], ["r"], name="relu1"),
             helper.make_node("Gemm", ["r", "w2"], ["g"], name="fc2"),
             helper.make_node("Mul", ["g", "s"], ["m"], name="scale"),
             helper.make_node("Transpose", ["m"], ["t"], name="tr", perm=[1, 0]),
             helper.make_node("Flatten", ["t"], ["f"], name="flat", axis=0),
             helper.make_node("Relu", ["f"], ["y"], name="relu2")]
    inits = {"w1": w1, "w2": w2, "s": rng.standard_normal(5)}
    fast, general = both(model_of(nodes, inits, [1, 80]), monkeypatch)
    assert fast.op("fc1").sparse is not None
    assert_same(fast, general, 2)
