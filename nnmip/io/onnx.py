"""ONNX export and import of fixed-weight networks.

Export (:func:`export_onnx`, :func:`to_onnx`)
    The graph input ``input`` is float64 ``[N, n_in]`` of *raw* features.  When a :class:`Scaler` is given the
    first two nodes apply it exactly as :meth:`Scaler.transform` does: ``Sub(offset)`` then ``Div(scale)``
    (a division, not a product with the reciprocal, so the scaled values are bit-identical to numpy).  Then,
    node by node:

    ========  =================================================================
    dense     ``MatMul(x, W.T)`` followed by ``Add(b)`` when the layer has a bias
    step      ``Cast<double>(Greater(a, 0))``
    sign      ``Where(Greater(a, 0), 1.0, -1.0)`` (ONNX ``Sign`` is 0 at 0; ours is -1)
    relu      ``Relu``
    identity  ``Identity``
    ========  =================================================================

    Outputs: ``output`` (float64 ``[N, n_out]``, the network output) and ``label`` (int64 ``[N]``): the
    first index of the maximum (``ArgMax(axis=1, keepdims=0, select_last_index=0)``) when ``n_out > 1``,
    else ``out > 0`` -- the same as :func:`nnmip.ir.network.predict_from_output`.  The main ONNX node of
    every layer carries the layer's name, so :func:`import_onnx` gives the layers their names back.

    Numerics: the element-wise nodes (scaling, activations, ``Add``) round exactly as numpy does.  The
    matrix product does too whenever the products and partial sums are exact (integer or dyadic weights and
    inputs, as in binarized networks); otherwise onnxruntime and numpy may differ in the last bits because
    their BLAS kernels sum in different orders or use FMA (numpy itself gives different bits for the same
    row in batches of different sizes).

Import (:func:`import_onnx`)
    Reads fixed-weight MLPs: ``Gemm`` (``alpha``, ``beta``, ``transA=0``, ``transB``; ``C`` optional),
    ``MatMul`` optionally followed by ``Add`` of a constant (either operand order), ``Relu``, ``Sign``,
    ``Identity``, ``Flatten``/``Reshape`` that keep ``[N, d]`` (dropped), the exported step pattern
    ``Cast(Greater(a, 0))`` (also ``Where(Greater(a, 0), 1, 0)``), the exported sign pattern
    ``Where(Greater(a, 0), 1, -1)``, and the exported scaling prefix ``Sub``/``Div`` by constants on the
    input, which is returned as a :class:`Scaler`.  Weights come from initializers or ``Constant`` nodes.
    ONNX ``Sign`` becomes nnmip ``sign``; the two differ at exactly 0 (ONNX 0, nnmip -1).

    Only the nodes that compute the primary output (the graph output named ``output``, else the first
    one) are read; other branches such as the exported ``label`` are ignored.  Layer names are derived from
    the ONNX node names (else output names) and made LP-safe and unique; the input is named ``x``.

Errors: :class:`OnnxImportError` ``E0701`` for an unsupported op, ``E0702`` for a graph nnmip cannot read
(non-constant weights, branches, shapes that do not fit), ``E0703`` for a file that is not an ONNX model;
:class:`nnmip.io.writers.ExportError` ``E0603`` for a target ending in ``.nnmip`` and ``E0606`` for a
network that cannot be exported (weights not fixed, a scaler of the wrong width, an unsupported opset).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from nnmip.errors import NnmipError
from nnmip.io.data import Scaler
from nnmip.io.safe import check_writable, note_input, write_bytes
from nnmip.io.writers import ExportError
from nnmip.ir.builder import NetworkBuilder, fixed
from nnmip.ir.network import Network
from nnmip.ir.ops import Dense, Identity, Input, ReLU, Sign, Step

__all__ = ["OnnxImportError", "export_onnx", "to_onnx", "import_onnx", "SUPPORTED_OPS", "MIN_OPSET"]

MIN_OPSET = 13
SUPPORTED_OPS = ("Gemm", "MatMul", "Add", "Relu", "Sign", "Identity", "Flatten", "Reshape", "Greater", "Cast",
                 "Where", "Sub", "Div", "Constant")
_SUPPORTED_HELP = ("help: nnmip imports fixed-weight MLPs built from Gemm, MatMul (+ Add), Relu, Sign, "
                   "Identity, Flatten/Reshape that keep [N, d], Cast(Greater(a, 0)) (step), "
                   "Where(Greater(a, 0), 1, -1) (sign) and a Sub/Div scaling of the input")
_FLOAT_TYPES = (TensorProto.DOUBLE, TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16)
_META_SCALER_KIND = "nnmip.scaler_kind"
_META_NETWORK = "nnmip.network"


class OnnxImportError(NnmipError, ValueError):
    """An ONNX model cannot be read as an nnmip network."""

    code = "E0701"


# ---------------------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------------------


class _Names:
    """Hands out unique names: ``base``, ``base_2``, ``base_3``, ..."""

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        self.used = set(reserved)

    def take(self, base: str) -> str:
        name, k = base, 1
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return name


def _export_error(code: str, message: str, *notes: str) -> ExportError:
    err = ExportError.at(code, message, notes=notes)
    assert isinstance(err, ExportError)
    return err


def to_onnx(net: Network, scaler: Scaler | None = None, opset: int = 17) -> onnx.ModelProto:
    """The ONNX model of ``net`` (raw-feature input when ``scaler`` is given); checked with onnx.checker."""
    latest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= int(opset) <= latest:
        raise _export_error("E0606", f"cannot export to ONNX opset {opset}",
                            f"help: choose an opset from {MIN_OPSET} to {latest}")
    trainable = [n for n in net.dense_nodes() if net.op(n).trainable]  # type: ignore[attr-defined]
    if trainable:
        raise _export_error("E0606", f"cannot export network '{net.name}' to ONNX: layer '{trainable[0]}' "
                                     "has weights that are not fixed",
                            "help: train the network first, or give every dense layer fixed weights")
    if len(net.input_nodes) != 1:
        raise _export_error("E0606", f"cannot export network '{net.name}' to ONNX: it has "
                                     f"{len(net.input_nodes)} inputs, ONNX export supports one")
    n_in, n_out = net.n_inputs, net.n_outputs
    if scaler is not None:
        offset = np.asarray(scaler.offset, dtype=np.float64).reshape(-1)
        scale = np.asarray(scaler.scale, dtype=np.float64).reshape(-1)
        if offset.shape != (n_in,) or scale.shape != (n_in,):
            raise _export_error("E0606", f"the scaler has {offset.size} offsets and {scale.size} scales but "
                                         f"network '{net.name}' has {n_in} inputs",
                                "help: pass the scaler fitted on the data the network was trained on")

    tensors = _Names(["input", "output", "label"])
    node_names = _Names()
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    consts: dict[str, str] = {}

    def init(base: str, value: npt.ArrayLike, dtype: Any = np.float64) -> str:
        name = tensors.take(base)
        inits.append(numpy_helper.from_array(np.ascontiguousarray(np.asarray(value, dtype=dtype)), name))
        return name

    def const(key: str, value: float) -> str:
        if key not in consts:
            consts[key] = init(key, np.float64(value))
        return consts[key]

    def node(op_type: str, inputs: list[str], output: str, name: str, **attrs: Any) -> None:
        nodes.append(helper.make_node(op_type, inputs, [output], name=node_names.take(name), **attrs))

    values: dict[str, str] = {}
    for n, op in net.items():
        out = "output" if n == net.output else tensors.take(n)
        if isinstance(op, Input):
            src = "input"
            if scaler is not None:
                shifted = tensors.take("input_shifted")
                node("Sub", [src, init("scaler_offset", offset)], shifted, "scaler_sub")
                src = tensors.take("input_scaled") if out != "output" else out
                node("Div", [shifted, init("scaler_scale", scale)], src, "scaler_div")
            if out == "output" and src != "output":
                node("Identity", [src], out, n)
            values[n] = out if out == "output" else src
            continue
        x = values[net.inputs_of(n)[0]]
        if isinstance(op, Dense):
            w_t = init(f"{n}_W_T", op.W.T)
            if op.bias is not None:
                prod = tensors.take(f"{n}_matmul")
                node("MatMul", [x, w_t], prod, n)
                node("Add", [prod, init(f"{n}_b", op.b)], out, f"{n}_add")
            else:
                node("MatMul", [x, w_t], out, n)
        elif isinstance(op, Step):
            gt = tensors.take(f"{n}_positive")
            node("Greater", [x, const("zero", 0.0)], gt, n)
            node("Cast", [gt], out, f"{n}_cast", to=TensorProto.DOUBLE)
        elif isinstance(op, Sign):
            gt = tensors.take(f"{n}_positive")
            node("Greater", [x, const("zero", 0.0)], gt, n)
            node("Where", [gt, const("one", 1.0), const("minus_one", -1.0)], out, f"{n}_where")
        elif isinstance(op, ReLU):
            node("Relu", [x], out, n)
        elif isinstance(op, Identity):
            node("Identity", [x], out, n)
        else:
            raise _export_error("E0606", f"cannot export node '{n}' of kind '{op.kind}' to ONNX")
        values[n] = out

    if n_out > 1:
        node("ArgMax", ["output"], "label", "label", axis=1, keepdims=0, select_last_index=0)
    else:
        gt = tensors.take("output_positive")
        node("Greater", ["output", const("zero", 0.0)], gt, "label_greater")
        as_int = tensors.take("label_column")
        node("Cast", [gt], as_int, "label_cast", to=TensorProto.INT64)
        node("Reshape", [as_int, init("label_shape", [-1], np.int64)], "label", "label")

    graph = helper.make_graph(
        nodes, re.sub(r"\W", "_", net.name) or "net",
        [helper.make_tensor_value_info("input", TensorProto.DOUBLE, ["N", n_in])],
        [helper.make_tensor_value_info("output", TensorProto.DOUBLE, ["N", n_out]),
         helper.make_tensor_value_info("label", TensorProto.INT64, ["N"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", int(opset))],
                              producer_name="nnmip", doc_string=f"nnmip network '{net.name}'")
    meta = {_META_NETWORK: net.name}
    if scaler is not None:
        meta[_META_SCALER_KIND] = str(scaler.kind)
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    return model


def export_onnx(net: Network, path: str | os.PathLike[str], scaler: Scaler | None = None,
                opset: int = 17) -> Path:
    """Write ``net`` (with ``scaler`` applied to the raw input) as an ONNX file; return the path.

    Raises :class:`ExportError` ``E0603`` for a path ending in ``.nnmip`` and ``E0606`` when the network
    cannot be exported (weights not fixed, scaler of the wrong width, opset out of range).
    """
    target = Path(path)
    if target.name.lower().endswith(".nnmip"):
        raise _export_error("E0603", f"refusing to write an ONNX model over the source file '{target}'",
                            "help: give the output a .onnx name")
    check_writable(target)   # before the export work; written atomically below
    model = to_onnx(net, scaler, opset)
    write_bytes(target, model.SerializeToString())
    return target


# ---------------------------------------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------------------------------------


def _import_error(code: str, message: str, *notes: str) -> OnnxImportError:
    err = OnnxImportError.at(code, message, notes=notes)
    assert isinstance(err, OnnxImportError)
    return err


def _label(node: onnx.NodeProto) -> str:
    return f"onnx node '{node.name or node.output[0]}'"


def lp_safe(name: str) -> str:
    """Letters, digits and underscores only; prefixed with ``n_`` if empty or starting with a digit or e/E."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not s or s[0].isdigit() or s[0] in "eE":
        s = "n_" + s
    return s


@dataclass
class _Layer:
    kind: str
    name: str
    W: np.ndarray | None = None
    b: np.ndarray | None = None


@dataclass
class _Graph:
    """The nodes of an ONNX graph that compute its primary output, with its constants."""

    model: onnx.ModelProto
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    consumers: dict[str, list[onnx.NodeProto]] = field(default_factory=dict)
    input: str = ""
    input_dim: int | None = None
    input_rank: int | None = None
    output: str = ""

    def const(self, name: str, node: onnx.NodeProto, what: str) -> np.ndarray:
        if name not in self.consts:
            raise _import_error("E0702", f"{_label(node)} ({node.op_type}) takes {what} from '{name}', "
                                         "which is not a constant", _SUPPORTED_HELP)
        return self.consts[name]

    def only_consumer(self, tensor: str) -> onnx.NodeProto | None:
        users = self.consumers.get(tensor, [])
        if len(users) > 1:
            names = ", ".join(f"'{u.name or u.output[0]}'" for u in users)
            raise _import_error("E0702", f"onnx tensor '{tensor}' feeds {len(users)} nodes ({names}); nnmip "
                                         "imports chains of layers only")
        return users[0] if users else None


def _attr(node: onnx.NodeProto, name: str, default: Any) -> Any:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _constant_value(node: onnx.NodeProto) -> np.ndarray:
    for a in node.attribute:
        if a.name == "value":
            return np.asarray(numpy_helper.to_array(a.t))
        if a.name in ("value_float", "value_floats", "value_int", "value_ints"):
            return np.asarray(helper.get_attribute_value(a))
    raise _import_error("E0702", f"{_label(node)} (Constant) has no numeric value", _SUPPORTED_HELP)


def _load(path_or_model: str | os.PathLike[str] | bytes | onnx.ModelProto) -> onnx.ModelProto:
    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model
    where = "the bytes" if isinstance(path_or_model, bytes) else f"'{os.fspath(path_or_model)}'"
    try:
        if isinstance(path_or_model, bytes):
            model = onnx.load_model_from_string(path_or_model)
        else:
            note_input(path_or_model)
            if os.path.isdir(path_or_model):
                raise _import_error("E0703", f"{where} is a folder, not an ONNX file")
            model = onnx.load_model(os.fspath(path_or_model))
    except OnnxImportError:
        raise
    except FileNotFoundError:
        raise _import_error("E0703", f"onnx file {where} does not exist") from None
    except Exception as e:  # protobuf DecodeError, OSError, external-data errors
        detail = str(e).strip()
        raise _import_error("E0703", f"{where} cannot be read as an ONNX model",
                            *([f"note: {detail}"] if detail else []),
                            "help: write the file with onnx.save_model or torch.onnx.export") from None
    _check_finite(model, where)
    return model


def _check_finite(model: onnx.ModelProto, where: str) -> None:
    """Refuse NaN or infinite numbers in the constant tensors of the graph, naming the file and the tensor."""
    for t in model.graph.initializer:
        try:
            arr = numpy_helper.to_array(t)
        except Exception:  # an unreadable tensor is reported where it is used
            continue
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = int(np.count_nonzero(~np.isfinite(arr)))
            raise _import_error("E0704", f"onnx tensor '{t.name}' of {where} holds {bad} NaN or infinite "
                                "value(s)", "help: export the network again from finite weights")


def _analyse(model: onnx.ModelProto) -> _Graph:
    g = model.graph
    info = _Graph(model)
    for t in g.initializer:
        info.consts[t.name] = np.asarray(numpy_helper.to_array(t))
    for n in g.node:  # nodes are topologically sorted; fold Constant and Identity-of-constant
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
            info.consts[n.output[0]] = _constant_value(n)
        elif n.op_type == "Identity" and n.input and n.input[0] in info.consts:
            info.consts[n.output[0]] = info.consts[n.input[0]]
    inputs = [v for v in g.input if v.name not in info.consts]
    if len(inputs) != 1:
        raise _import_error("E0702", f"the onnx graph has {len(inputs)} non-constant inputs; nnmip imports "
                                     "networks with exactly one input")
    if not g.output:
        raise _import_error("E0702", "the onnx graph has no output")
    inp = inputs[0]
    info.input = inp.name
    tt = inp.type.tensor_type
    if tt.elem_type not in _FLOAT_TYPES:
        raise _import_error("E0702", f"onnx input '{inp.name}' has element type "
                                     f"{TensorProto.DataType.Name(tt.elem_type)}; nnmip needs real numbers")
    if tt.HasField("shape"):  # a rank other than 2 is reported after the walk, so that ops are named first
        dims = tt.shape.dim
        info.input_rank = len(dims)
        if len(dims) == 2 and dims[1].HasField("dim_value") and dims[1].dim_value > 0:
            info.input_dim = int(dims[1].dim_value)
    outs = [o.name for o in g.output]
    info.output = "output" if "output" in outs else outs[0]

    producer = {o: n for n in g.node for o in n.output}
    needed: set[int] = set()
    stack = [info.output]
    seen: set[str] = set()
    while stack:
        t = stack.pop()
        if t in seen or t in info.consts or t == info.input or not t:
            continue
        seen.add(t)
        if t not in producer:
            raise _import_error("E0702", f"onnx tensor '{t}' is neither an input, a constant nor computed by "
                                         "a node")
        n = producer[t]
        needed.add(id(n))
        stack.extend(n.input)
    for n in g.node:
        if id(n) not in needed:
            continue
        for t in n.input:
            if t and t not in info.consts:
                info.consumers.setdefault(t, []).append(n)
    return info


def _is_const_value(g: _Graph, name: str, value: float) -> bool:
    return name in g.consts and g.consts[name].size > 0 and bool(np.all(g.consts[name] == value))


def _vector(v: np.ndarray, d: int | None, node: onnx.NodeProto, what: str) -> np.ndarray:
    """A constant broadcast over the feature axis: shape (), (1,), (d,), (1, 1) or (1, d) -> (d,)."""
    a = np.asarray(v, dtype=np.float64)
    if a.ndim == 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim > 1 or (d is not None and a.size not in (1, d)):
        width = d if d is not None else "the"
        raise _import_error("E0702", f"{_label(node)} ({node.op_type}) has a {what} of shape {v.shape}, "
                                     f"which does not broadcast over {width} features")
    if d is None:
        return a.reshape(-1)
    return np.broadcast_to(a.reshape(-1), (d,)).copy()


def _dense(g: _Graph, node: onnx.NodeProto, cur: str) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Weights (n_out, n_in), bias and output tensor of a Gemm node or a MatMul (+ Add) pair."""
    if not node.input or node.input[0] != cur:
        raise _import_error("E0702", f"{_label(node)} ({node.op_type}) multiplies a constant by the layer "
                                     "input from the left; nnmip needs the input as the first operand")
    if node.op_type == "Gemm":
        B = np.asarray(g.const(node.input[1], node, "its weights"), dtype=np.float64)
        alpha = float(_attr(node, "alpha", 1.0))
        beta = float(_attr(node, "beta", 1.0))
        if int(_attr(node, "transA", 0)) != 0:
            raise _import_error("E0702", f"{_label(node)} (Gemm) has transA=1; nnmip needs the batch along "
                                         "the first axis of the input")
        if B.ndim != 2:
            raise _import_error("E0702", f"{_label(node)} (Gemm) has weights of shape {B.shape}")
        W = B if int(_attr(node, "transB", 0)) else B.T
        if alpha != 1.0:
            W = alpha * W
        b = None
        if len(node.input) > 2 and node.input[2]:
            C = g.const(node.input[2], node, "its bias")
            b = _vector(C, W.shape[0], node, "bias")
            if beta != 1.0:
                b = beta * b
        return np.ascontiguousarray(W), b, node.output[0]
    B = np.asarray(g.const(node.input[1], node, "its weights"), dtype=np.float64)
    if B.ndim != 2:
        raise _import_error("E0702", f"{_label(node)} (MatMul) has weights of shape {B.shape}; nnmip imports "
                                     "2-D weight matrices")
    W = np.ascontiguousarray(B.T)
    out = node.output[0]
    nxt = g.only_consumer(out)
    if nxt is None or nxt.op_type != "Add" or out == g.output:
        return W, None, out
    other = nxt.input[1] if nxt.input[0] == out else nxt.input[0]
    b = _vector(g.const(other, nxt, "its bias"), W.shape[0], nxt, "bias")
    return W, b, nxt.output[0]


def import_onnx(path_or_model: str | os.PathLike[str] | bytes | onnx.ModelProto,
                name: str | None = None) -> tuple[Network, Scaler | None]:
    """Read a fixed-weight MLP from an ONNX file or model; return the network and its input scaler (or None).

    See the module docstring for the supported ops.  Raises :class:`OnnxImportError`.
    """
    model = _load(path_or_model)
    g = _analyse(model)
    meta = {p.key: p.value for p in model.metadata_props}

    layers: list[_Layer] = []
    offset: np.ndarray | None = None
    scale: np.ndarray | None = None
    d = g.input_dim
    cur = g.input
    prefix = True  # still reading the Sub/Div scaling of the raw input
    while cur != g.output:
        node = g.only_consumer(cur)
        if node is None:
            raise _import_error("E0702", f"onnx tensor '{cur}' does not lead to the output '{g.output}'")
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise _import_error("E0701", f"{_label(node)} has op type '{node.domain}.{op}', which nnmip "
                                         "cannot import", _SUPPORTED_HELP)
        base = node.name or node.output[0]
        if op in ("Sub", "Div") and prefix and not layers:
            if node.input[0] != cur:
                raise _import_error("E0702", f"{_label(node)} ({op}) must take the input as its first "
                                             "operand")
            v = _vector(g.const(node.input[1], node, f"its {'offset' if op == 'Sub' else 'scale'}"), d, node,
                        "constant")
            if d is None and v.size > 1:
                d = int(v.size)
            if op == "Sub":
                if offset is not None or scale is not None:
                    raise _import_error("E0702", f"{_label(node)} (Sub) follows another scaling node; nnmip "
                                                 "imports a Sub followed by a Div")
                offset = v
            else:
                if scale is not None:
                    raise _import_error("E0702", f"{_label(node)} (Div) follows another Div")
                scale = v
            cur = node.output[0]
            continue
        prefix = False
        if op in ("Sub", "Div", "Add"):
            where = "right after a MatMul" if op == "Add" else "on the graph input, before every layer"
            raise _import_error("E0702", f"{_label(node)} ({op}) is not part of a pattern nnmip imports: "
                                         f"{op} is supported {where}", _SUPPORTED_HELP)
        if op in ("Gemm", "MatMul"):
            W, b, cur = _dense(g, node, cur)
            if d is None:
                d = int(W.shape[1])
            elif W.shape[1] != d:
                raise _import_error("E0702", f"{_label(node)} ({op}) has weights for {W.shape[1]} inputs but "
                                             f"receives {d}")
            layers.append(_Layer("dense", base, W, b))
            d = int(W.shape[0])
        elif op in ("Relu", "Sign", "Identity"):
            layers.append(_Layer({"Relu": "relu", "Sign": "sign", "Identity": "identity"}[op], base))
            cur = node.output[0]
        elif op == "Flatten":
            if int(_attr(node, "axis", 1)) != 1:
                raise _import_error("E0702", f"{_label(node)} (Flatten) has axis {_attr(node, 'axis', 1)}; "
                                             "nnmip imports Flatten(axis=1) on [N, d] tensors only")
            cur = node.output[0]
        elif op == "Reshape":
            shape = [int(s) for s in np.asarray(g.const(node.input[1], node, "its shape")).reshape(-1)]
            keeps = (len(shape) == 2 and shape[0] in (0, -1) and shape != [-1, -1]
                     and (shape[1] == -1 or (d is not None and shape[1] == d)
                          or (shape[1] == 0 and not _attr(node, "allowzero", 0))))
            if not keeps:
                raise _import_error("E0702", f"{_label(node)} (Reshape) reshapes to {shape}; nnmip imports "
                                             "reshapes that keep [N, d] only")
            cur = node.output[0]
        elif op == "Greater":
            if node.input[0] != cur or not _is_const_value(g, node.input[1], 0.0):
                raise _import_error("E0702", f"{_label(node)} (Greater) is not a comparison 'a > 0'",
                                    _SUPPORTED_HELP)
            nxt = g.only_consumer(node.output[0])
            kind = None
            if nxt is not None and nxt.op_type == "Cast" and int(_attr(nxt, "to", 0)) in _FLOAT_TYPES:
                kind = "step"
            elif nxt is not None and nxt.op_type == "Where" and nxt.input[0] == node.output[0]:
                if _is_const_value(g, nxt.input[1], 1.0) and _is_const_value(g, nxt.input[2], -1.0):
                    kind = "sign"
                elif _is_const_value(g, nxt.input[1], 1.0) and _is_const_value(g, nxt.input[2], 0.0):
                    kind = "step"
            if kind is None or nxt is None:
                raise _import_error("E0702", f"{_label(node)} (Greater) is not followed by Cast to a float "
                                             "type (step) or Where(., 1, -1) (sign)", _SUPPORTED_HELP)
            layers.append(_Layer(kind, base))
            cur = nxt.output[0]
        else:
            notes = [_SUPPORTED_HELP]
            if op in ("Softmax", "LogSoftmax"):
                notes.append(f"help: {op} does not change the predicted class; export the network without it")
            raise _import_error("E0701", f"{_label(node)} has op type '{op}', which nnmip cannot import",
                                *notes)

    if g.input_rank not in (None, 2):
        raise _import_error("E0702", f"onnx input '{g.input}' has {g.input_rank} axes; nnmip imports inputs "
                                     "of shape [N, d]")
    if not layers:
        raise _import_error("E0702", "the onnx model has no layers nnmip can import", _SUPPORTED_HELP)
    first = next((ly.W for ly in layers if ly.W is not None), None)
    n_in = g.input_dim or (int(first.shape[1]) if first is not None else None)
    for vec in (offset, scale):
        if n_in is None and vec is not None and vec.size > 1:
            n_in = int(vec.size)
    if n_in is None:
        raise _import_error("E0702", "cannot infer the input width of the onnx model",
                            "help: give the graph input a static shape [N, d]")

    net_name = name if name is not None else meta.get(_META_NETWORK) or model.graph.name or "net"
    nb = NetworkBuilder(net_name)
    names = _Names(["x"])
    prev = nb.input("x", n_in)
    for ly in layers:
        node_name = names.take(lp_safe(ly.name))
        if ly.kind == "dense":
            assert ly.W is not None
            prev = nb.dense(node_name, prev, int(ly.W.shape[0]), weights=fixed(ly.W),
                            bias=None if ly.b is None else fixed(ly.b))
        else:
            prev = nb.activation(ly.kind, node_name, prev)
    net = nb.build()

    scaler = None
    if offset is not None or scale is not None:
        off = offset if offset is not None else np.zeros(n_in)
        sc = scale if scale is not None else np.ones(n_in)
        off = np.broadcast_to(off, (n_in,)).copy()
        sc = np.broadcast_to(sc, (n_in,)).copy()
        kind = meta.get(_META_SCALER_KIND) or ("none" if not off.any() and np.all(sc == 1) else "custom")
        off.setflags(write=False)
        sc.setflags(write=False)
        scaler = Scaler(kind, off, sc)
    return net, scaler
