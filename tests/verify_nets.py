"""Random fixed-weight MLPs as ONNX models (built with onnx.helper) and independent oracles for the verify tests."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from scipy.optimize import linprog


def mlp_layers(sizes: list[int], seed: int, scale: float = 1.0, quarter: bool = False
               ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random (W, b) per layer; ``quarter`` rounds to multiples of 0.25 (exact in binary)."""
    rng = np.random.default_rng(seed)
    out = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        W = rng.normal(size=(b, a)) * scale / np.sqrt(a)
        bias = rng.normal(size=b) * 0.3
        if quarter:
            W, bias = np.round(W * 4) / 4, np.round(bias * 4) / 4
        out.append((W, bias))
    return out


def relu_question(seed: int, sizes: tuple[int, ...] = (6, 16, 16, 3), eps: float = 0.2) -> tuple[Any, ...]:
    """A random ReLU network, a point, eps, the objective ``y_0 - y_last`` and the linf region in [0, 1]."""
    from nnmip.drivers.verify import network_from_layers
    from nnmip.ir import spec as vs

    net = network_from_layers(mlp_layers(list(sizes), seed), "relu")
    x0 = np.random.default_rng(seed).random(sizes[0])
    coef = np.zeros(sizes[-1])
    coef[0], coef[-1] = 1.0, -1.0
    region = vs.Region((vs.linf(x0, eps),), np.zeros(sizes[0]), np.ones(sizes[0]))
    return net, x0, eps, coef, region


def random_dense(rng: np.random.Generator, n_in: int, n_out: int) -> Any:
    """A fixed-weight dense layer with normal weights and small normal biases."""
    from nnmip.ir.ops import Dense, ParamDomain

    return Dense(n_in=n_in, n_out=n_out, weights=ParamDomain.fixed(rng.normal(size=(n_out, n_in))),
                 bias=ParamDomain.fixed(0.1 * rng.normal(size=n_out)))


def dag_network(nodes: list[tuple[str, Any, tuple[str, ...]]], name: str = "dag") -> Any:
    """A network from ``(name, op, inputs)`` triples in topological order (sums and max-pools may join branches)."""
    import networkx as nx

    from nnmip.ir.network import Network

    g = nx.DiGraph()
    for node, op, ins in nodes:
        g.add_node(node, op=op, inputs=ins)
        for i in ins:
            g.add_edge(i, node)
    return Network(g, name)


def max_case(coef: np.ndarray) -> Any:
    """The failure case whose score is ``coef . y`` (maximised by the verification model)."""
    from nnmip.ir import spec as vs

    return vs.Case(-coef[None, :], np.zeros(1), np.array([False]))


def mlp_onnx(layers: list[tuple[np.ndarray, np.ndarray]], act: str = "relu",
             dtype: type = np.float64) -> onnx.ModelProto:
    """An ONNX MLP: Gemm layers (transB=1) with ``act`` (relu | step | sign) between them."""
    tp = TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT
    nodes, inits = [], []
    cur = "input"
    if act in ("step", "sign") and len(layers) > 1:
        inits.append(numpy_helper.from_array(np.array(0.0, dtype=dtype), "zero"))
    if act == "sign" and len(layers) > 1:
        inits += [numpy_helper.from_array(np.array(1.0, dtype=dtype), "one"),
                  numpy_helper.from_array(np.array(-1.0, dtype=dtype), "minus_one")]
    for k, (W, b) in enumerate(layers):
        inits += [numpy_helper.from_array(np.asarray(W, dtype=dtype), f"W{k}"),
                  numpy_helper.from_array(np.asarray(b, dtype=dtype), f"b{k}")]
        out = "output" if k == len(layers) - 1 else f"a{k}"
        nodes.append(helper.make_node("Gemm", [cur, f"W{k}", f"b{k}"], [out], name=f"fc{k}", transB=1))
        cur = out
        if k == len(layers) - 1:
            break
        if act == "relu":
            nodes.append(helper.make_node("Relu", [cur], [f"y{k}"], name=f"relu{k}"))
        elif act == "step":
            nodes.append(helper.make_node("Greater", [cur, "zero"], [f"g{k}"], name=f"step{k}"))
            nodes.append(helper.make_node("Cast", [f"g{k}"], [f"y{k}"], name=f"step{k}_cast", to=tp))
        elif act == "sign":
            nodes.append(helper.make_node("Greater", [cur, "zero"], [f"g{k}"], name=f"sign{k}"))
            nodes.append(helper.make_node("Where", [f"g{k}", "one", "minus_one"], [f"y{k}"], name=f"sign{k}_w"))
        cur = f"y{k}"
    d_in, d_out = layers[0][0].shape[1], layers[-1][0].shape[0]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("input", tp, ["N", d_in])],
                              [helper.make_tensor_value_info("output", tp, ["N", d_out])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def ort_forward(model: onnx.ModelProto, X: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(["output"], {"input": np.atleast_2d(X).astype(dtype)})[0], dtype=np.float64)


def pattern_oracle(layers: list[tuple[np.ndarray, np.ndarray]], act: str, c: np.ndarray, lo: np.ndarray,
                   hi: np.ndarray) -> float:
    """``max c . f(x)`` over the box by enumerating activation patterns, one LP (scipy linprog) per pattern.

    For step/sign units a pattern fixes ``a >= 0`` (on) or ``a <= 0`` (off): the closure of each region, the
    same semantics as the sound verification encoding.  Exponential: tiny networks only.
    """
    hidden = [W.shape[0] for W, _ in layers[:-1]]
    n = layers[0][0].shape[1]
    best = -np.inf
    for pat in itertools.product((0, 1), repeat=sum(hidden)):
        # express every pre-activation as an affine map of x: a = P x + q
        P, q = np.eye(n), np.zeros(n)
        A_ub, b_ub = [], []
        off = 0
        for k, (W, b) in enumerate(layers):
            Pa, qa = W @ P, W @ q + b
            if k == len(layers) - 1:
                P, q = Pa, qa
                break
            p = np.array(pat[off:off + W.shape[0]], dtype=bool)
            off += W.shape[0]
            # on: -a <= 0 ; off: a <= 0
            sgn = np.where(p, -1.0, 1.0)
            A_ub.append(sgn[:, None] * Pa)
            b_ub.append(-sgn * qa)
            if act == "relu":
                P, q = Pa * p[:, None], qa * p
            else:
                lo_v = 0.0 if act == "step" else -1.0
                P = np.zeros_like(Pa)
                q = np.where(p, 1.0, lo_v)
        obj = c @ P
        res = linprog(-obj, A_ub=np.vstack(A_ub), b_ub=np.concatenate(b_ub),
                      bounds=list(zip(lo, hi, strict=True)), method="highs")
        if res.status == 0:
            best = max(best, float(-res.fun + c @ q))
    return best
