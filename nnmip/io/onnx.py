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
    sigmoid   ``Sigmoid``
    tanh      ``Tanh``
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
    Reads networks as the VNN-COMP benchmarks ship them (``.onnx`` or ``.onnx.gz``): an input of any rank whose
    symbolic first axis is read as a batch of 1, flattened in C order.  Every tensor is tracked as an affine
    function of IR nodes (``_Lin``): shape operators change its shape, constants (Add/Sub/Mul/Div, Pad,
    BatchNormalization) and weights (MatMul, Gemm, Conv, AveragePool) compose into its map, and an activation
    (Relu, Sign, the step and sign patterns ``Cast(Greater(a, 0))`` and ``Where(Greater(a, 0), 1, -1)``, and the
    smooth Sigmoid and Tanh between layers, which only verification by bounds and search takes), a
    MaxPool or the output turns it into IR nodes: a dense layer (holding a scipy.sparse matrix when sparse, e.g.
    a convolution) per weight-bearing ONNX node, and a sum node where two computed tensors are added (residual
    connections).  Nodes whose inputs are all constants are evaluated with onnx's reference evaluator.  A final
    Softmax, LogSoftmax, Sigmoid, ArgMax or ZipMap is cut off with a note on the network (:attr:`Network.notes`).
    A ``Sub``/``Div`` scaling right before the first dense layer of an ``[N, d]`` input is returned as a
    :class:`Scaler` (the exported scaling prefix).  ONNX ``Sign`` becomes nnmip ``sign``; the two differ at
    exactly 0 (ONNX 0, nnmip -1).  See docs/verification.md for the table of operators.

    Only the nodes that compute the primary output (the graph output named ``output``, else the first float
    tensor output, else a ZipMap's) are read; other branches such as the exported ``label`` are ignored.  Layer
    names are derived from the ONNX node names (else output names) and made LP-safe and unique; the input is
    named ``x``.

Errors: :class:`OnnxImportError` ``E0701`` for an unsupported op, ``E0702`` for a graph nnmip cannot read
(non-constant weights, products of two computed tensors, shapes that do not fit), ``E0703`` for a file that is
not an ONNX model, ``E0704`` for NaN or infinite weights;
:class:`nnmip.io.writers.ExportError` ``E0603`` for a target ending in ``.nnmip`` and ``E0606`` for a
network that cannot be exported (weights not fixed, a scaler of the wrong width, an unsupported opset).
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import numpy.typing as npt
import onnx
import scipy.sparse as sp
from onnx import TensorProto, helper, numpy_helper

from nnmip.errors import NO_SPAN, NnmipError, SizeError, Span, check_memory, human_bytes, memory_limit
from nnmip.io.data import Scaler
from nnmip.io.safe import check_writable, note_input, write_bytes
from nnmip.io.weights import _check_save_call
from nnmip.io.writers import ExportError
from nnmip.ir.network import Network, validate_graph
from nnmip.ir.ops import Dense, Identity, Input, MaxPool, Op, ParamDomain, ReLU, Sigmoid, Sign, Step, Sum, Tanh

__all__ = ["OnnxImportError", "export_onnx", "to_onnx", "import_onnx", "SUPPORTED_OPS", "MIN_OPSET"]

MIN_OPSET = 13
SUPPORTED_OPS = ("Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "Sign", "Identity", "Dropout", "Cast",
                 "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Shape", "Constant", "Conv",
                 "BatchNormalization", "Pad", "AveragePool", "GlobalAveragePool", "MaxPool", "Greater", "Where",
                 "Softmax", "LogSoftmax", "Sigmoid", "Tanh", "ArgMax", "ZipMap")
_SUPPORTED_HELP = ("help: nnmip imports Gemm, MatMul, Conv, BatchNormalization, Add/Sub/Mul/Div with constants, "
                   "Add/Sub of two computed tensors, Relu, Sign, Sigmoid, Tanh, MaxPool, AveragePool, Pad, shape "
                   "operators (Flatten, Reshape, Transpose, Squeeze, Unsqueeze, Identity, Dropout, Cast), step and "
                   "sign patterns, and Softmax/Sigmoid/ArgMax/ZipMap as the last nodes")
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
        elif isinstance(op, Sigmoid):
            node("Sigmoid", [x], out, n)
        elif isinstance(op, Tanh):
            node("Tanh", [x], out, n)
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
    _check_save_call(net, path, scaler)
    from nnmip.errors import check_int

    check_int("opset", opset, low=1, high=10**4)
    target = Path(path)
    if target.name.lower().endswith(".nnmip"):
        raise _export_error("E0603", f"refusing to write an ONNX model to '{target}': a .nnmip name is kept for "
                            "source files",
                            "help: give the output a .onnx name")
    check_writable(target)   # before the export work; written atomically below
    model = to_onnx(net, scaler, opset)
    write_bytes(target, model.SerializeToString())
    return target


# ---------------------------------------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------------------------------------


def _import_error(code: str, message: str, *notes: str, file: str = "") -> OnnxImportError:
    err = OnnxImportError.at(code, message, Span(file=file) if file else NO_SPAN, notes=notes)
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


def _attr(node: onnx.NodeProto, name: str, default: Any) -> Any:
    for a in node.attribute:
        if a.name == name:
            v = helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def _constant_value(node: onnx.NodeProto) -> np.ndarray:
    for a in node.attribute:
        if a.name == "value":
            return np.asarray(numpy_helper.to_array(a.t))
        if a.name in ("value_float", "value_floats", "value_int", "value_ints"):
            return np.asarray(helper.get_attribute_value(a))
    raise _import_error("E0702", f"{_label(node)} (Constant) has no numeric value", _SUPPORTED_HELP)


_GZIP = b"\x1f\x8b"


def _load(path_or_model: str | os.PathLike[str] | bytes | onnx.ModelProto) -> onnx.ModelProto:
    """The model from a file (``.onnx`` or gzip-compressed ``.onnx.gz``), bytes or a ModelProto."""
    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model
    where = "the bytes" if isinstance(path_or_model, bytes) else f"'{os.fspath(path_or_model)}'"
    file = "" if isinstance(path_or_model, bytes) else os.fspath(path_or_model)   # whole-file errors name it
    try:
        if isinstance(path_or_model, bytes):
            model = onnx.load_model_from_string(gzip.decompress(path_or_model) if path_or_model[:2] == _GZIP
                                                else path_or_model)
        else:
            note_input(path_or_model)
            if os.path.isdir(path_or_model):
                raise _import_error("E0703", f"{where} is a folder, not an ONNX file",
                                    "help: name the .onnx file inside the folder", file=file)
            with open(os.fspath(path_or_model), "rb") as fh:
                gz = fh.read(2) == _GZIP
            size = os.path.getsize(path_or_model)
            # protobuf parsing holds the bytes and the parsed message: about three times the file
            check_memory(3.0 * size, f"reading the ONNX model {where} ({human_bytes(size)})",
                         Span(file=os.fspath(path_or_model)))
            if gz:   # .onnx.gz as the benchmarks ship them
                limit = memory_limit() // 3
                with gzip.open(os.fspath(path_or_model), "rb") as fz:
                    raw = fz.read(limit + 1)
                check_memory(3.0 * len(raw), f"the ONNX model {where} once decompressed (more than "
                             f"{human_bytes(limit)})", Span(file=os.fspath(path_or_model)))
                model = onnx.load_model_from_string(raw)
            else:
                model = onnx.load_model(os.fspath(path_or_model))
    except (OnnxImportError, SizeError):
        raise
    except FileNotFoundError:
        raise _import_error("E0703", f"onnx file {where} does not exist", "help: check the path",
                            file=file) from None
    except Exception as e:  # protobuf DecodeError, OSError, gzip errors
        detail = str(e).strip()
        raise _import_error("E0703", f"{where} cannot be read as an ONNX model",
                            *([f"note: {detail}"] if detail else []),
                            "help: write the file with onnx.save_model or torch.onnx.export", file=file) from None
    _check_finite(model, where, file)
    return model


def _check_finite(model: onnx.ModelProto, where: str, file: str = "") -> None:
    """Refuse NaN or infinite numbers in the constant tensors of the graph, naming the file and the tensor."""
    for t in model.graph.initializer:
        try:
            arr = numpy_helper.to_array(t)
        except Exception:  # an unreadable tensor is reported where it is used
            continue
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = int(np.count_nonzero(~np.isfinite(arr)))
            raise _import_error("E0704", f"onnx tensor '{t.name}' of {where} holds {bad} NaN or infinite "
                                "value(s)", "help: export the network again from finite weights", file=file)


@dataclass
class _Lin:
    """An ONNX tensor that is an affine function of IR nodes: ``sum_v M_v z_v + c``, of ``shape`` (batch 1, C order).

    ``name`` is the ONNX node the affine map is named after (the first weight-bearing one, else the first one).
    """

    shape: tuple[int, ...]
    #: one matrix per IR node: a scipy.sparse csr array, or a dense array with no negative zeros (the map of a
    #: Gemm or MatMul straight on a node, kept dense so that the dense layer it becomes is not rebuilt from CSR)
    terms: dict[str, Any]
    c: np.ndarray
    name: str = ""
    weighty: bool = False
    has_bias: bool = False

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @classmethod
    def of(cls, node: str, shape: tuple[int, ...]) -> _Lin:
        n = int(np.prod(shape, dtype=np.int64))
        return cls(tuple(shape), {node: sp.identity(n, format="csr")}, np.zeros(n))

    def named(self, name: str, weighty: bool) -> _Lin:
        out = replace(self)
        if weighty and not self.weighty:
            out.name, out.weighty = name, True
        elif not self.name:
            out.name = name
        return out

    def with_shape(self, shape: tuple[int, ...]) -> _Lin:
        return replace(self, shape=tuple(int(s) for s in shape))

    def rows(self, idx: np.ndarray, shape: tuple[int, ...]) -> _Lin:
        """Entries ``idx`` (flat) of this tensor, arranged in ``shape``."""
        terms = {k: sp.csr_array(_csr(M)[idx]) for k, M in self.terms.items()}
        return replace(self, shape=tuple(shape), terms=terms, c=self.c[idx])

    def transpose(self, perm: list[int] | None = None) -> _Lin:
        """The tensor with its axes permuted (reversed without ``perm``), as ONNX Transpose and numpy do."""
        idx = np.arange(self.size).reshape(self.shape).transpose(perm)
        return self.rows(idx.ravel(), idx.shape)

    def left(self, K: Any, bias: np.ndarray | None, shape: tuple[int, ...]) -> _Lin:
        """``K @ self + bias`` with ``K`` a (sparse) matrix of shape (new size, size)."""
        K = sp.csr_array(K)
        c = np.asarray(K @ self.c, dtype=np.float64)
        if bias is not None:
            c = c + bias
        terms = {k: sp.csr_array(K @ _csr(M)) for k, M in self.terms.items()}
        return replace(self, shape=tuple(shape), terms=terms, c=c, has_bias=self.has_bias or bias is not None)

    def scaled(self, v: np.ndarray) -> _Lin:
        D = sp.diags_array(np.asarray(v, dtype=np.float64))
        return replace(self, terms={k: sp.csr_array(D @ _csr(M)) for k, M in self.terms.items()}, c=self.c * v)

    def shifted(self, v: np.ndarray) -> _Lin:
        return replace(self, c=self.c + v, has_bias=True)

    def plus(self, o: _Lin, sign: float = 1.0) -> _Lin:
        terms = dict(self.terms)
        for k, M in o.terms.items():
            M = _csr(M)
            terms[k] = sp.csr_array(_csr(terms[k]) + sign * M) if k in terms else sp.csr_array(sign * M)
        return replace(self, terms=terms, c=self.c + sign * o.c, has_bias=self.has_bias or o.has_bias)

    def broadcast(self, shape: tuple[int, ...]) -> _Lin:
        if tuple(shape) == self.shape:
            return self
        idx = np.broadcast_to(np.arange(self.size).reshape(self.shape), shape).ravel()
        return self.rows(idx, tuple(shape))

    def is_node(self) -> str | None:
        """The IR node this tensor is exactly (identity map, no constant), else None."""
        if len(self.terms) != 1 or self.c.any():
            return None
        (k, M), = self.terms.items()
        n = self.size
        if M.shape != (n, n):
            return None
        if isinstance(M, np.ndarray):
            return k if _is_identity(M) else None
        if M.nnz != n:
            return None
        M = sp.csr_array(M)
        M.sort_indices()
        if np.array_equal(M.indices, np.arange(n)) and np.all(M.data == 1.0) and np.all(np.diff(M.indptr) == 1):
            return k
        return None


def _csr(M: Any) -> sp.csr_array:
    """A term of :class:`_Lin` as a csr array: a sparse one as it is; a dense one (``B.T`` of a product straight on
    an IR node) as the general path of :meth:`_Importer.matmul_right` builds it, entry order included
    (``kron(I_1, B.T) @ I``), so that every sum over it runs in the same order.
    """
    if not isinstance(M, np.ndarray):
        return M
    K = sp.kron(sp.identity(1, format="csr"), sp.csr_array(M), format="csr")
    return sp.csr_array(K @ sp.identity(M.shape[1], format="csr"))


def _is_identity(M: np.ndarray) -> bool:
    """A dense square matrix that is the identity."""
    n = M.shape[0]
    return bool(np.count_nonzero(M) == n and np.all(np.diagonal(M) == 1.0))


@dataclass
class _Cmp:
    """``Greater(a, 0)`` of a computed tensor, waiting for the Cast / Where that makes it a step or a sign."""

    node: onnx.NodeProto
    src: str
    shape: tuple[int, ...]


_Value = np.ndarray | _Lin | _Cmp
#: the dense path of :meth:`_Importer.matmul_right` (tests turn it off to compare with the general path)
_FAST_PRODUCTS = True
CUT_OPS = ("Softmax", "LogSoftmax", "Sigmoid", "ArgMax", "ZipMap")
_PASS_OPS = ("Identity", "Dropout", "Cast")


def _windows(size: int, k: int, s: int, p0: int, p1: int, d: int, ceil: bool) -> tuple[int, np.ndarray]:
    """Output length and input positions (out, k) of a sliding window along one axis (may fall outside)."""
    span = size + p0 + p1 - d * (k - 1) - 1
    n_out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (n_out - 1) * s >= size + p0:   # the last window must start inside the input or the left pad
        n_out -= 1
    pos = np.arange(n_out)[:, None] * s - p0 + np.arange(k)[None, :] * d
    return int(n_out), pos


class _Importer:
    """Reads the nodes that compute the primary output, in graph order, into IR nodes."""

    def __init__(self, model: onnx.ModelProto, name: str | None, file: str) -> None:
        self.model = model
        self.file = file
        self.opset = next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        self.graph = nx.DiGraph()
        self.dims: dict[str, int] = {}
        self.names = _Names(["x"])
        self.values: dict[str, _Value] = {}
        self.made: dict[str, str] = {}      # tensor -> IR node materialised for it
        self.notes: list[str] = []
        self.cut: list[str] = []     # op types of the final nodes cut off (Softmax, ...)
        self.skip: set[int] = set()     # nodes of an extracted input scaling
        self._used = {t for n in model.graph.node for t in n.input} | {o.name for o in model.graph.output}
        meta = {p.key: p.value for p in model.metadata_props}
        self.meta = meta
        self.net_name = name if name is not None else meta.get(_META_NETWORK) or model.graph.name or "net"

    # errors ----------------------------------------------------------------------------------------------------
    def err(self, code: str, message: str, *notes: str) -> OnnxImportError:
        return _import_error(code, message, *notes, file=self.file)

    def unsupported(self, node: onnx.NodeProto, *notes: str) -> OnnxImportError:
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        return self.err("E0701", f"{_label(node)} has op type '{op}', which nnmip cannot import",
                        *(notes or (_SUPPORTED_HELP,)))

    # IR ----------------------------------------------------------------------------------------------------------
    def add(self, base: str, op: Op, inputs: tuple[str, ...], dim: int) -> str:
        if dim < 1:
            raise self.err("E0702", f"onnx node '{base}' computes an empty tensor (no value)",
                           "help: every layer of the network needs at least one unit")
        name = self.names.take(lp_safe(base))
        self.graph.add_node(name, op=op, inputs=inputs)
        for s_ in inputs:
            self.graph.add_edge(s_, name)
        self.dims[name] = int(dim)
        return name

    def materialize(self, v: _Lin, tensor: str) -> str:
        """The IR node holding tensor ``v`` (a new dense layer, or a sum of several, when it is not one)."""
        node = v.is_node()
        if node is not None:
            return node
        if tensor in self.made:
            return self.made[tensor]
        base = v.name or tensor
        parts: list[str] = []
        for i, (src, M) in enumerate(v.terms.items()):
            bias = v.c if i == 0 else None
            if bias is not None and not v.has_bias and not bias.any():
                bias = None
            n_out, n_in = M.shape
            if isinstance(M, np.ndarray):   # a dense term: the same layer as its csr array would give
                nnz = int(np.count_nonzero(M))
                ident = n_out == n_in and nnz == n_out and bool(np.all(np.diagonal(M) == 1.0))
            else:
                M = sp.csr_array(M)
                nnz = int(M.nnz)
                ident = n_out == n_in and _Lin(v.shape, {src: M}, np.zeros(n_out)).is_node() is not None
            if ident and bias is None:
                parts.append(src)
                continue
            dense = nnz >= 0.25 * n_out * n_in or n_out * n_in <= 4096
            weights = (M if isinstance(M, np.ndarray) else M.toarray()) if dense else None
            op = Dense(n_in=n_in, n_out=n_out,
                       weights=ParamDomain.fixed(weights) if weights is not None else None,
                       bias=None if bias is None else ParamDomain.fixed(bias),
                       sparse=None if dense else _csr(M))
            parts.append(self.add(base, op, (src,), n_out))
        out = parts[0] if len(parts) == 1 else self.add(f"{base}_sum", Sum(), tuple(parts), v.size)
        self.made[tensor] = out
        return out

    # values ------------------------------------------------------------------------------------------------------
    def get(self, name: str, node: onnx.NodeProto) -> _Value:
        if name not in self.values:
            raise self.err("E0702", f"{_label(node)} ({node.op_type}) reads '{name}', which is neither an input, "
                           "a constant nor computed by a node")
        return self.values[name]

    def const(self, name: str, node: onnx.NodeProto, what: str) -> np.ndarray:
        v = self.values.get(name)
        if not isinstance(v, np.ndarray):
            raise self.err("E0702", f"{_label(node)} ({node.op_type}) takes {what} from '{name}', which is not a "
                           "constant", _SUPPORTED_HELP)
        return v

    def lin(self, name: str, node: onnx.NodeProto) -> _Lin:
        v = self.get(name, node)
        if isinstance(v, _Cmp):
            raise self.cmp_error(v)
        if isinstance(v, np.ndarray):
            raise self.err("E0702", f"{_label(node)} ({node.op_type}) expects a computed tensor in '{name}'")
        return v

    def cmp_error(self, v: _Cmp) -> OnnxImportError:
        return self.err("E0702", f"{_label(v.node)} (Greater) is not followed by Cast to a float type (step) or "
                        "Where(., 1, -1) (sign)", _SUPPORTED_HELP)

    # folding -----------------------------------------------------------------------------------------------------
    def fold(self, node: onnx.NodeProto) -> None:
        """Evaluate a node whose inputs are all constants (shape arithmetic, weight preprocessing)."""
        from onnx.reference import ReferenceEvaluator

        ins = [t for t in node.input if t]
        feeds = {t: self.values[t] for t in ins}
        vinfo = [helper.make_tensor_value_info(t, helper.np_dtype_to_tensor_dtype(np.asarray(v).dtype),
                                               np.asarray(v).shape) for t, v in feeds.items()]
        outs = [helper.make_value_info(o, onnx.TypeProto()) for o in node.output if o]
        g = helper.make_graph([node], "fold", vinfo, outs)
        m = helper.make_model(g, opset_imports=list(self.model.opset_import))
        try:
            res = ReferenceEvaluator(m).run(None, {t: np.asarray(v) for t, v in feeds.items()})
        except Exception as e:  # an op the reference evaluator does not know, or bad constants
            raise self.err("E0702", f"{_label(node)} ({node.op_type}) on constants cannot be evaluated: {e}",
                           _SUPPORTED_HELP) from None
        for o, r in zip([o for o in node.output if o], res, strict=False):
            self.values[o] = np.asarray(r)

    # the walk ------------------------------------------------------------------------------------------------------
    def run(self) -> tuple[Network, Scaler | None]:
        g = self.model.graph
        for t in g.initializer:
            try:
                self.values[t.name] = np.asarray(numpy_helper.to_array(t))
            except Exception as e:  # data that do not fit the declared shape, an unknown element type, ...
                raise self.err("E0703", f"onnx tensor '{t.name}' of shape {list(t.dims)} cannot be read: {e}",
                               "help: write the file again with onnx.save_model or torch.onnx.export") from None
        inputs = [v for v in g.input if v.name not in self.values]
        if len(inputs) != 1:
            raise self.err("E0702", f"the onnx graph has {len(inputs)} non-constant inputs; nnmip imports "
                           "networks with exactly one input")
        if not g.output:
            raise self.err("E0702", "the onnx graph has no output")
        inp = inputs[0]
        tt = inp.type.tensor_type
        if tt.elem_type not in _FLOAT_TYPES:
            raise self.err("E0702", f"onnx input '{inp.name}' has element type "
                           f"{TensorProto.DataType.Name(tt.elem_type)}; nnmip needs real numbers")
        producer = {o: n for n in g.node for o in n.output}
        out_name = self.primary_output(producer)
        needed = self.needed(out_name, inp.name, producer)
        shape = self.input_shape(inp, [n for n in g.node if id(n) in needed])
        n_in = int(np.prod(shape, dtype=np.int64))
        if n_in < 1:
            raise self.err("E0702", f"the onnx input '{inp.name}' has the shape {list(shape)}, which holds no value",
                           "help: give the graph input a static shape such as [1, d] or [1, c, h, w]")
        x = "x"
        self.graph.add_node(x, op=Input(dim=n_in), inputs=())
        self.dims[x] = n_in
        self.values[inp.name] = _Lin.of(x, shape)
        scaler = self.scaler_prefix(inp.name, shape, [n for n in g.node if id(n) in needed])

        for node in g.node:
            if id(node) not in needed:
                continue
            if node.domain not in ("", "ai.onnx"):
                raise self.unsupported(node)
            if node.op_type == "Constant":
                self.values[node.output[0]] = _constant_value(node)
                continue
            ins = [t for t in node.input if t]
            if node.op_type == "Shape" and ins and isinstance(self.values.get(ins[0]), _Lin | _Cmp):
                v = self.values[ins[0]]
                shp = np.asarray(v.shape, dtype=np.int64)
                self.values[node.output[0]] = shp[int(_attr(node, "start", 0)):_attr(node, "end", None)]
                continue
            if ins and all(isinstance(self.values.get(t), np.ndarray) for t in ins) and node.op_type not in (
                    "Identity",) or (not ins and node.op_type not in ("Constant",)):
                self.fold(node)
                continue
            if node.op_type == "Identity" and ins and isinstance(self.values.get(ins[0]), np.ndarray):
                self.values[node.output[0]] = self.values[ins[0]]
                continue
            self.step(node)

        final = self.values.get(out_name)
        if isinstance(final, _Cmp):
            raise self.cmp_error(final)
        if not isinstance(final, _Lin):
            raise self.err("E0702", f"the onnx output '{out_name}' does not depend on the input")
        out = self.materialize(final, out_name)
        if out == x:
            raise self.err("E0702", "the onnx model has no layers nnmip can import", _SUPPORTED_HELP)
        keep = nx.ancestors(self.graph, out) | {out, x}
        self.graph.remove_nodes_from([n for n in list(self.graph.nodes) if n not in keep])
        self.graph.graph["notes"] = list(self.notes)
        self.graph.graph["cut_output"] = list(self.cut)
        self.graph.graph["source_shapes"] = {"input_name": inp.name, "input": list(shape),
                                             "output_name": out_name, "output": list(final.shape)}
        diags = validate_graph(self.graph, self.net_name)
        if diags:
            raise self.err("E0702", diags[0].message)
        self.check_magnitudes()
        return Network(self.graph, self.net_name), scaler

    def check_magnitudes(self) -> None:
        """Refuse a weight or bias beyond :data:`nnmip.model.MAX_MAGNITUDE` (``E0133``), as a ``.nnmip`` file's is:
        no solver keeps the rows built from it apart from infinity.
        """
        from nnmip.model import MAX_MAGNITUDE

        for name in self.graph.nodes:
            op = self.graph.nodes[name]["op"]
            if not isinstance(op, Dense):
                continue
            for what, dom in (("weight", op.weights), ("bias", op.bias)):
                values = np.asarray(op.sparse.data if what == "weight" and op.sparse is not None
                                    else [] if dom is None else dom.lo, dtype=np.float64).ravel()
                if values.size and np.abs(values).max() > MAX_MAGNITUDE:
                    big = float(values[np.argmax(np.abs(values))])
                    raise self.err("E0133", f"layer '{name}' has a {what} of {big:g}, beyond {MAX_MAGNITUDE:g}, the "
                                   "largest magnitude nnmip gives a solver",
                                   "help: scale the network's weights down (the outputs scale with them), or "
                                   "export it again from a model trained with smaller weights")

    def primary_output(self, producer: dict[str, onnx.NodeProto]) -> str:
        g = self.model.graph
        outs = [o.name for o in g.output]
        floats = [o.name for o in g.output if o.type.HasField("tensor_type")
                  and o.type.tensor_type.elem_type in _FLOAT_TYPES]
        zipped = [o for o in outs if o in producer and producer[o].op_type == "ZipMap"]
        name = "output" if "output" in outs else (floats or zipped or outs)[0]
        while name in producer and producer[name].op_type in CUT_OPS and producer[name].domain in (
                "", "ai.onnx", "ai.onnx.ml"):
            node = producer[name]
            name = node.input[0]
            self.cut.append(node.op_type)
            self.notes.append(f"the final {node.op_type} ({_label(node)}) is cut off: the network's outputs are "
                              f"the values before it (the logits), and properties are checked on them")
        return name

    def needed(self, out: str, inp: str, producer: dict[str, onnx.NodeProto]) -> set[int]:
        needed: set[int] = set()
        stack, seen = [out], set()
        while stack:
            t = stack.pop()
            if t in seen or t == inp or not t or t in self.values:
                continue
            seen.add(t)
            if t not in producer:
                raise self.err("E0702", f"onnx tensor '{t}' is neither an input, a constant nor computed by a node")
            n = producer[t]
            needed.add(id(n))
            stack.extend(n.input)
        return needed

    def input_shape(self, inp: onnx.ValueInfoProto, nodes: list[onnx.NodeProto]) -> tuple[int, ...]:
        tt = inp.type.tensor_type
        if not tt.HasField("shape"):
            dims: list[int | None] = [None, None]
        else:
            dims = [int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim]
        if len(dims) >= 2 and dims[0] is None:
            dims[0] = 1     # a symbolic batch axis: one input at a time (a static first axis is kept as it is)
        if all(d is not None for d in dims):
            return tuple(int(d) for d in dims)  # type: ignore[arg-type]
        if len(dims) == 2:
            width = self.infer_width(inp.name, nodes)
            if width is not None:
                return (1, width)
        raise self.err("E0702", "cannot infer the input width of the onnx model",
                       "help: give the graph input a static shape such as [1, d] or [1, c, h, w]")

    def infer_width(self, start: str, nodes: list[onnx.NodeProto]) -> int | None:
        """The width of a symbolic ``[N, d]`` input, from the first weights or scaling vector it meets."""
        consts = {k: v for k, v in self.values.items() if isinstance(v, np.ndarray)}
        for n in nodes:
            if n.op_type == "Constant":
                consts[n.output[0]] = _constant_value(n)
        t = start
        for _ in range(len(nodes)):
            users = [n for n in nodes if t in n.input]
            if len(users) != 1:
                return None
            n = users[0]
            others = [consts.get(i) for i in n.input if i and i != t]
            if n.op_type == "Gemm" and others and others[0] is not None and others[0].ndim == 2:
                return int(others[0].shape[1 if int(_attr(n, "transB", 0)) else 0])
            if n.op_type == "MatMul" and n.input[0] == t and others[0] is not None and others[0].ndim == 2:
                return int(others[0].shape[0])
            if n.op_type in ("Sub", "Div", "Add", "Mul") and others and others[0] is not None \
                    and others[0].size > 1:
                return int(others[0].size)
            if n.op_type not in ("Sub", "Div", "Add", "Mul", "Identity", "Cast", "Dropout", "Flatten", "Reshape"):
                return None
            t = n.output[0]
        return None

    def scaler_prefix(self, start: str, shape: tuple[int, ...], nodes: list[onnx.NodeProto]) -> Scaler | None:
        """The ``Sub``/``Div`` scaling of an ``[N, d]`` input right before its first dense layer, as a Scaler."""
        if len(shape) != 2:
            return None
        d = shape[1]
        consts = {k: v for k, v in self.values.items() if isinstance(v, np.ndarray)}
        for n in nodes:
            if n.op_type == "Constant":
                consts[n.output[0]] = _constant_value(n)
        t = start
        found: dict[str, np.ndarray] = {}
        chain: list[onnx.NodeProto] = []
        for op in ("Sub", "Div"):
            users = [n for n in nodes if t in n.input]
            if len(users) != 1 or users[0].op_type != op or users[0].input[0] != t:
                continue
            c = consts.get(users[0].input[1])
            if c is None:
                return None
            a = np.asarray(c, dtype=np.float64)
            if a.ndim == 2 and a.shape[0] == 1:
                a = a[0]
            if a.ndim > 1 or a.size not in (1, d):
                return None
            found[op] = np.broadcast_to(a.reshape(-1), (d,)).copy()
            chain.append(users[0])
            t = users[0].output[0]
        if not chain:
            return None
        users = [n for n in nodes if t in n.input]
        if len(users) != 1 or users[0].op_type not in ("Gemm", "MatMul") or users[0].input[0] != t \
                or (users[0].op_type == "Gemm" and int(_attr(users[0], "transA", 0))):
            return None
        for n in chain:   # the scaling is returned, not formulated: its nodes pass the input through
            self.values[n.output[0]] = self.values[start]
            self.skip.add(id(n))
        off = found.get("Sub", np.zeros(d))
        sc = found.get("Div", np.ones(d))
        kind = self.meta.get(_META_SCALER_KIND) or ("none" if not off.any() and np.all(sc == 1) else "custom")
        off.setflags(write=False)
        sc.setflags(write=False)
        return Scaler(kind, off, sc)

    # one node --------------------------------------------------------------------------------------------------------
    def step(self, node: onnx.NodeProto) -> None:
        if id(node) in self.skip:
            return
        op = node.op_type
        handler = getattr(self, f"op_{op}", None)
        if op in ("Add", "Sub", "Mul", "Div"):
            handler = self.elementwise
        if handler is None:
            notes = [_SUPPORTED_HELP]
            if op in CUT_OPS:
                notes.append(f"help: {op} is read only as the last node of the graph, where it is cut off and the "
                             "properties are checked on its input")
            elif op in ("Softplus", "Elu", "Exp", "Log", "HardSigmoid", "LeakyRelu"):
                notes.append(f"help: of the activations that are not piecewise linear, nnmip reads Sigmoid and Tanh "
                             f"(verified by bounds and search); {op} is not one of them")
            raise self.unsupported(node, *notes)
        handler(node)

    def put(self, node: onnx.NodeProto, v: _Value) -> None:
        self.values[node.output[0]] = v

    # shape ops
    def op_Identity(self, node: onnx.NodeProto) -> None:
        v = self.lin(node.input[0], node)
        src = self.materialize(v, node.input[0])
        out = self.add(node.name or node.output[0], Identity(), (src,), v.size)
        self.put(node, _Lin.of(out, v.shape))

    def op_Dropout(self, node: onnx.NodeProto) -> None:
        if len(node.output) > 1 and node.output[1] and node.output[1] in self._used:
            raise self.err("E0702", f"{_label(node)} (Dropout) has its mask used; nnmip reads Dropout in "
                           "inference mode only")
        self.put(node, self.get(node.input[0], node))

    def op_Cast(self, node: onnx.NodeProto) -> None:
        v = self.get(node.input[0], node)
        to = int(_attr(node, "to", 0))
        if isinstance(v, _Cmp):
            if to not in _FLOAT_TYPES:
                raise self.cmp_error(v)
            out = self.add(v.node.name or v.node.output[0], Step(), (v.src,), self.dims[v.src])
            self.put(node, _Lin.of(out, v.shape))
            return
        if to not in _FLOAT_TYPES:
            raise self.err("E0702", f"{_label(node)} (Cast) casts a computed tensor to "
                           f"{TensorProto.DataType.Name(to)}; nnmip computes with real numbers", _SUPPORTED_HELP)
        self.put(node, v)

    def op_Flatten(self, node: onnx.NodeProto) -> None:
        v = self.lin(node.input[0], node)
        axis = int(_attr(node, "axis", 1))
        axis = axis + len(v.shape) if axis < 0 else axis
        s = v.shape
        self.put(node, v.with_shape((int(np.prod(s[:axis], dtype=np.int64)), int(np.prod(s[axis:], dtype=np.int64)))))

    def op_Reshape(self, node: onnx.NodeProto) -> None:
        v = self.lin(node.input[0], node)
        if len(node.input) > 1:
            target = [int(s) for s in np.asarray(self.const(node.input[1], node, "its shape")).reshape(-1)]
        else:
            target = [int(s) for s in _attr(node, "shape", [])]
        allowzero = int(_attr(node, "allowzero", 0))
        shape = [v.shape[i] if (s == 0 and not allowzero and i < len(v.shape)) else s for i, s in enumerate(target)]
        if shape.count(-1) == 1:
            rest = int(np.prod([s for s in shape if s != -1], dtype=np.int64))
            shape[shape.index(-1)] = v.size // rest if rest else 0
        if int(np.prod(shape, dtype=np.int64)) != v.size or any(s < 0 for s in shape):
            raise self.err("E0702", f"{_label(node)} (Reshape) reshapes a tensor of shape {list(v.shape)} to "
                           f"{target}, which does not fit")
        self.put(node, v.with_shape(tuple(shape)))

    def _axes(self, node: onnx.NodeProto) -> list[int] | None:
        if len(node.input) > 1 and node.input[1]:
            return [int(a) for a in np.asarray(self.const(node.input[1], node, "its axes")).reshape(-1)]
        a = _attr(node, "axes", None)
        return None if a is None else [int(x) for x in a]

    def op_Squeeze(self, node: onnx.NodeProto) -> None:
        v = self.lin(node.input[0], node)
        axes = self._axes(node)
        r = len(v.shape)
        drop = {a % r for a in axes} if axes is not None else {i for i, s in enumerate(v.shape) if s == 1}
        if any(v.shape[a] != 1 for a in drop):
            raise self.err("E0702", f"{_label(node)} (Squeeze) squeezes an axis of length other than 1")
        self.put(node, v.with_shape(tuple(s for i, s in enumerate(v.shape) if i not in drop)))

    def op_Unsqueeze(self, node: onnx.NodeProto) -> None:
        v = self.lin(node.input[0], node)
        axes = self._axes(node) or []
        r = len(v.shape) + len(axes)
        shape = list(v.shape)
        for a in sorted(x % r for x in axes):
            shape.insert(a, 1)
        self.put(node, v.with_shape(tuple(shape)))

    def op_Transpose(self, node: onnx.NodeProto) -> None:
        v = self.lin(node.input[0], node)
        perm = _attr(node, "perm", None)
        self.put(node, v.transpose(None if perm is None else [int(p) for p in perm]))

    # elementwise
    def elementwise(self, node: onnx.NodeProto) -> None:
        op = node.op_type
        a, b = self.get(node.input[0], node), self.get(node.input[1], node)
        for v in (a, b):
            if isinstance(v, _Cmp):
                raise self.cmp_error(v)
        if isinstance(a, _Lin) and isinstance(b, _Lin):
            if op not in ("Add", "Sub"):
                raise self.err("E0702", f"{_label(node)} ({op}) multiplies or divides two computed tensors, "
                               "which is not piecewise linear", _SUPPORTED_HELP)
            shape = np.broadcast_shapes(a.shape, b.shape)
            out = a.broadcast(shape).plus(b.broadcast(shape), 1.0 if op == "Add" else -1.0)
            self.put(node, out.named(node.name or node.output[0], False))
            return
        lin_first = isinstance(a, _Lin)
        v = a if lin_first else b
        C = np.asarray(b if lin_first else a, dtype=np.float64)
        assert isinstance(v, _Lin)
        try:
            shape = np.broadcast_shapes(v.shape, C.shape)
        except ValueError:
            raise self.err("E0702", f"{_label(node)} ({op}) has a constant of shape {list(C.shape)}, which does not "
                           f"broadcast over a tensor of shape {list(v.shape)}") from None
        v = v.broadcast(shape)
        Cb = np.broadcast_to(C, shape).ravel()
        if op == "Add":
            out = v.shifted(Cb)
        elif op == "Sub":
            out = v.shifted(-Cb) if lin_first else v.scaled(-np.ones(v.size)).shifted(Cb)
        elif op == "Mul":
            out = v.scaled(Cb)
        else:
            if not lin_first:
                raise self.err("E0702", f"{_label(node)} (Div) divides a constant by a computed tensor, which is "
                               "not piecewise linear", _SUPPORTED_HELP)
            if not np.all(Cb != 0):
                raise self.err("E0702", f"{_label(node)} (Div) divides by 0")
            out = v.scaled(1.0 / Cb)
        self.put(node, out.named(node.name or node.output[0], False))

    # products
    def matmul_right(self, node: onnx.NodeProto, v: _Lin, B: np.ndarray) -> _Lin:
        """``v @ B`` for a constant ``B`` (2-D, or 1-D)."""
        s = v.shape
        if not s or B.ndim == 0:
            raise self.err("E0702", f"{_label(node)} ({node.op_type}) multiplies a scalar (a tensor of rank 0); "
                           "a matrix product needs tensors of rank 1 or more",
                           "help: give the graph input a static shape such as [1, d]")
        k = s[-1]
        if B.ndim > 2:
            raise self.err("E0702", f"{_label(node)} ({node.op_type}) has weights of shape {list(B.shape)}; nnmip "
                           "imports 2-D weight matrices")
        if B.shape[0] != k:
            raise self.err("E0702", f"{_label(node)} ({node.op_type}) has weights for {B.shape[0]} inputs but "
                           f"receives {k}")
        reps = v.size // k
        node_in = v.is_node() if reps == 1 and B.ndim == 2 and _FAST_PRODUCTS else None
        if node_in is not None:
            # a vector straight from an IR node: the map is B.T itself, kept dense (C order, -0.0 made 0.0 as the
            # csr detour below would make it)
            return replace(v, shape=s[:-1] + (B.shape[1],), terms={node_in: np.add(B.T, 0.0, order="C")},
                           c=np.zeros(B.shape[1]))
        Bt = sp.csr_array(np.atleast_2d(B.T) if B.ndim == 2 else B[None, :])
        K = sp.kron(sp.identity(reps, format="csr"), Bt, format="csr")
        shape = s[:-1] + ((B.shape[1],) if B.ndim == 2 else ())
        return v.left(K, None, shape)

    def matmul_left(self, node: onnx.NodeProto, A: np.ndarray, v: _Lin) -> _Lin:
        """``A @ v`` for a constant 2-D ``A``."""
        if not v.shape:
            raise self.err("E0702", f"{_label(node)} ({node.op_type}) multiplies a scalar (a tensor of rank 0); "
                           "a matrix product needs tensors of rank 1 or more",
                           "help: give the graph input a static shape such as [1, d]")
        if A.ndim != 2:
            raise self.err("E0702", f"{_label(node)} ({node.op_type}) has weights of shape {list(A.shape)}; nnmip "
                           "imports 2-D weight matrices")
        s = v.shape
        n = s[0] if len(s) == 1 else s[-2]
        if A.shape[1] != n:
            raise self.err("E0702", f"{_label(node)} ({node.op_type}) has weights for {A.shape[1]} inputs but "
                           f"receives {n}")
        if len(s) == 1:
            return v.left(sp.csr_array(A), None, (A.shape[0],))
        k = s[-1]
        reps = v.size // (n * k)
        K = sp.kron(sp.identity(reps, format="csr"), sp.kron(sp.csr_array(A), sp.identity(k, format="csr")),
                    format="csr")
        return v.left(K, None, s[:-2] + (A.shape[0], k))

    def layer_input(self, node: onnx.NodeProto, k: int) -> _Value:
        """Input ``k`` of a weight-bearing node: a tensor that already went through weights becomes a layer of its
        own first, so that every Gemm, MatMul and Conv of the file stays one layer (normalisations, shape ops and
        pooling fold into the next one).
        """
        v = self.get(node.input[k], node)
        if isinstance(v, _Lin) and v.weighty:
            return _Lin.of(self.materialize(v, node.input[k]), v.shape)
        return v

    def op_MatMul(self, node: onnx.NodeProto) -> None:
        a, b = self.layer_input(node, 0), self.layer_input(node, 1)
        if isinstance(a, _Lin) and isinstance(b, np.ndarray):
            out = self.matmul_right(node, a, np.asarray(b, np.float64))
        elif isinstance(b, _Lin) and isinstance(a, np.ndarray):
            out = self.matmul_left(node, np.asarray(a, np.float64), b)
        else:
            raise self.err("E0702", f"{_label(node)} (MatMul) multiplies two computed tensors; nnmip needs one "
                           "constant operand", _SUPPORTED_HELP)
        self.put(node, out.named(node.name or node.output[0], True))

    def op_Gemm(self, node: onnx.NodeProto) -> None:
        a, b = self.layer_input(node, 0), self.layer_input(node, 1)
        alpha, beta = float(_attr(node, "alpha", 1.0)), float(_attr(node, "beta", 1.0))
        ta, tb = int(_attr(node, "transA", 0)), int(_attr(node, "transB", 0))
        if isinstance(a, _Lin) and isinstance(b, np.ndarray):
            if len(a.shape) != 2:
                raise self.err("E0702", f"{_label(node)} (Gemm) multiplies a tensor of shape {list(a.shape)}; Gemm "
                               "needs a matrix")
            if ta:
                a = a.transpose()
            B = np.asarray(b, np.float64)
            if B.ndim != 2:
                raise self.err("E0702", f"{_label(node)} (Gemm) has weights of shape {list(B.shape)}")
            W = B.T if tb else B
            out = self.matmul_right(node, a, alpha * W if alpha != 1.0 else W)
        elif isinstance(b, _Lin) and isinstance(a, np.ndarray):
            if len(b.shape) != 2:
                raise self.err("E0702", f"{_label(node)} (Gemm) multiplies a tensor of shape {list(b.shape)}; Gemm "
                               "needs a matrix")
            if tb:
                b = b.transpose()
            A = np.asarray(a, np.float64)
            A = A.T if ta else A
            out = self.matmul_left(node, alpha * A if alpha != 1.0 else A, b)
        else:
            raise self.err("E0702", f"{_label(node)} (Gemm) multiplies two computed tensors; nnmip needs one "
                           "constant operand", _SUPPORTED_HELP)
        if len(node.input) > 2 and node.input[2]:
            C = np.asarray(self.const(node.input[2], node, "its bias"), np.float64)
            try:
                Cb = np.broadcast_to(C, out.shape).ravel()
            except ValueError:
                raise self.err("E0702", f"{_label(node)} (Gemm) has a bias of shape {list(C.shape)}, which does not "
                               f"broadcast over {list(out.shape)}") from None
            out = out.shifted(beta * Cb if beta != 1.0 else Cb.copy())
        self.put(node, out.named(node.name or node.output[0], True))

    # convolution and pooling
    def _image(self, node: onnx.NodeProto, v: _Lin) -> tuple[int, int, int]:
        if len(v.shape) != 4 or v.shape[0] != 1:
            raise self.err("E0702", f"{_label(node)} ({node.op_type}) reads a tensor of shape {list(v.shape)}; "
                           "nnmip imports 2-D images [1, c, h, w]")
        return v.shape[1], v.shape[2], v.shape[3]

    def _geometry(self, node: onnx.NodeProto, H: int, W: int, kernel: list[int], ceil: bool = False
                  ) -> tuple[int, np.ndarray, int, np.ndarray]:
        strides = [int(s) for s in _attr(node, "strides", [1, 1])]
        dil = [int(s) for s in _attr(node, "dilations", [1, 1])]
        pads = [int(p) for p in _attr(node, "pads", [0, 0, 0, 0])]
        auto = str(_attr(node, "auto_pad", "NOTSET"))
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            pads = [0, 0, 0, 0]
            for ax, size in enumerate((H, W)):
                out = -(-size // strides[ax])
                total = max((out - 1) * strides[ax] + (kernel[ax] - 1) * dil[ax] + 1 - size, 0)
                first = total // 2 if auto == "SAME_UPPER" else total - total // 2
                pads[ax], pads[ax + 2] = first, total - first
        elif auto == "VALID":
            pads = [0, 0, 0, 0]
        Ho, ih = _windows(H, kernel[0], strides[0], pads[0], pads[2], dil[0], ceil)
        Wo, iw = _windows(W, kernel[1], strides[1], pads[1], pads[3], dil[1], ceil)
        return Ho, ih, Wo, iw

    def op_Conv(self, node: onnx.NodeProto) -> None:
        v = self.layer_input(node, 0)
        if not isinstance(v, _Lin):
            v = self.lin(node.input[0], node)
        Cin, H, W = self._image(node, v)
        K = np.asarray(self.const(node.input[1], node, "its kernel"), np.float64)
        if K.ndim != 4:
            raise self.err("E0702", f"{_label(node)} (Conv) has a kernel of shape {list(K.shape)}; nnmip imports "
                           "2-D convolutions")
        groups = int(_attr(node, "group", 1))
        Cout, Cg, kh, kw = K.shape
        if Cg * groups != Cin or Cout % groups:
            raise self.err("E0702", f"{_label(node)} (Conv) has a kernel for {Cg * groups} channels in {groups} "
                           f"group(s) but receives {Cin}")
        Ho, ih, Wo, iw = self._geometry(node, H, W, [kh, kw])
        co = np.arange(Cout)[:, None, None, None, None, None]
        cl = np.arange(Cg)[None, :, None, None, None, None]
        oh = np.arange(Ho)[None, None, :, None, None, None]
        ow = np.arange(Wo)[None, None, None, :, None, None]
        IH = ih[None, None, :, None, :, None]
        IW = iw[None, None, None, :, None, :]
        ci = (co // (Cout // groups)) * Cg + cl
        a = np.arange(kh)[None, None, None, None, :, None]
        b = np.arange(kw)[None, None, None, None, None, :]
        shape = (Cout, Cg, Ho, Wo, kh, kw)
        rows = np.broadcast_to((co * Ho + oh) * Wo + ow, shape)
        cols = np.broadcast_to((ci * H + IH) * W + IW, shape)
        vals = np.broadcast_to(K[co, cl, a, b], shape)
        ok = np.broadcast_to((IH >= 0) & (IH < H) & (IW >= 0) & (IW < W), shape) & (vals != 0)
        M = sp.csr_array((vals[ok], (rows[ok], cols[ok])), shape=(Cout * Ho * Wo, Cin * H * W))
        bias = None
        if len(node.input) > 2 and node.input[2]:
            bias = np.repeat(np.asarray(self.const(node.input[2], node, "its bias"), np.float64), Ho * Wo)
        self.put(node, v.left(M, bias, (1, Cout, Ho, Wo)).named(node.name or node.output[0], True))

    def op_BatchNormalization(self, node: onnx.NodeProto) -> None:
        v = self.lin(node.input[0], node)
        if len(v.shape) < 2:
            raise self.err("E0702", f"{_label(node)} (BatchNormalization) reads a tensor of shape {list(v.shape)}")
        gamma, beta, mean, var = (np.asarray(self.const(t, node, what), np.float64).reshape(-1) for t, what in
                                  zip(node.input[1:5], ("its scale", "its bias", "its mean", "its variance"),
                                      strict=True))
        eps = float(_attr(node, "epsilon", 1e-5))
        s = gamma / np.sqrt(var + eps)
        t = beta - mean * s
        per = (v.shape[1],) + (1,) * (len(v.shape) - 2)
        S = np.broadcast_to(s.reshape(per), v.shape).ravel()
        T = np.broadcast_to(t.reshape(per), v.shape).ravel()
        self.put(node, v.scaled(S).shifted(T).named(node.name or node.output[0], False))

    def op_Pad(self, node: onnx.NodeProto) -> None:
        v = self.lin(node.input[0], node)
        mode = str(_attr(node, "mode", "constant"))
        if self.opset >= 11:
            pads = [int(p) for p in np.asarray(self.const(node.input[1], node, "its pads")).reshape(-1)]
            value = 0.0
            if len(node.input) > 2 and node.input[2]:
                value = float(np.asarray(self.const(node.input[2], node, "its value")).reshape(-1)[0])
            if len(node.input) > 3 and node.input[3]:
                axes = [int(a) % len(v.shape) for a in np.asarray(self.const(node.input[3], node, "its axes"))]
                full = [0] * (2 * len(v.shape))
                for i, ax in enumerate(axes):
                    full[ax], full[ax + len(v.shape)] = pads[i], pads[i + len(axes)]
                pads = full
        else:
            pads = [int(p) for p in _attr(node, "pads", [])]
            value = float(_attr(node, "value", 0.0))
        r = len(v.shape)
        if len(pads) != 2 * r or any(p < 0 for p in pads):
            raise self.err("E0702", f"{_label(node)} (Pad) has pads {pads} for a tensor of rank {r}")
        width = [(pads[i], pads[i + r]) for i in range(r)]
        src = np.arange(v.size).reshape(v.shape)
        if mode == "constant":
            idx = np.pad(src, width, mode="constant", constant_values=-1)
        elif mode in ("edge", "reflect"):
            idx = np.pad(src, width, mode=mode)  # type: ignore[call-overload]
        else:
            raise self.err("E0702", f"{_label(node)} (Pad) has mode '{mode}'; nnmip imports constant, edge and "
                           "reflect padding")
        flat = idx.ravel()
        inside = flat >= 0
        S = sp.csr_array((np.ones(int(inside.sum())), (np.flatnonzero(inside), flat[inside])),
                         shape=(flat.size, v.size))
        bias = np.where(inside, 0.0, value) if value != 0.0 else None
        self.put(node, v.left(S, bias, idx.shape).named(node.name or node.output[0], False))

    def _pool(self, node: onnx.NodeProto, v: _Lin) -> tuple[int, int, int, int, int, np.ndarray, np.ndarray]:
        C, H, W = self._image(node, v)
        kernel = [int(k) for k in _attr(node, "kernel_shape", [])]
        if len(kernel) != 2:
            raise self.err("E0702", f"{_label(node)} ({node.op_type}) has kernel {kernel}; nnmip imports 2-D pooling")
        ceil = bool(int(_attr(node, "ceil_mode", 0)))
        Ho, ih, Wo, iw = self._geometry(node, H, W, kernel, ceil)
        return C, H, W, Ho, Wo, ih, iw

    def _pool_index(self, C: int, H: int, W: int, Ho: int, Wo: int, ih: np.ndarray, iw: np.ndarray
                    ) -> np.ndarray:
        """Input units of every window, (C * Ho * Wo, kh * kw), -1 outside the image."""
        c = np.arange(C)[:, None, None, None, None]
        IH = ih[None, :, None, :, None]
        IW = iw[None, None, :, None, :]
        ok = (IH >= 0) & (IH < H) & (IW >= 0) & (IW < W)
        idx = np.where(ok, (c * H + IH) * W + IW, -1)
        return np.asarray(idx.reshape(C * Ho * Wo, -1), dtype=np.int64)

    def op_AveragePool(self, node: onnx.NodeProto) -> None:
        v = self.lin(node.input[0], node)
        C, H, W, Ho, Wo, ih, iw = self._pool(node, v)
        idx = self._pool_index(C, H, W, Ho, Wo, ih, iw)
        ok = idx >= 0
        if int(_attr(node, "count_include_pad", 0)):
            kh, kw = ih.shape[1], iw.shape[1]
            # the divisor counts the window's positions inside the padded image
            pads = [int(p) for p in _attr(node, "pads", [0, 0, 0, 0])]
            inh = (ih >= -pads[0]) & (ih < H + pads[2])
            inw = (iw >= -pads[1]) & (iw < W + pads[3])
            cnt = (inh.sum(1)[:, None] * inw.sum(1)[None, :]).astype(np.float64)
            count = np.tile(cnt.ravel(), C)
            del kh, kw
        else:
            count = ok.sum(axis=1).astype(np.float64)
        if np.any(count == 0):
            raise self.err("E0702", f"{_label(node)} (AveragePool) has a window with no input")
        rows = np.repeat(np.arange(idx.shape[0]), idx.shape[1]).reshape(idx.shape)
        M = sp.csr_array(((1.0 / count)[rows[ok]], (rows[ok], idx[ok])), shape=(idx.shape[0], v.size))
        self.put(node, v.left(M, None, (1, C, Ho, Wo)).named(node.name or node.output[0], False))

    def op_GlobalAveragePool(self, node: onnx.NodeProto) -> None:
        v = self.lin(node.input[0], node)
        C, H, W = self._image(node, v)
        M = sp.kron(sp.identity(C, format="csr"), sp.csr_array(np.full((1, H * W), 1.0 / (H * W))), format="csr")
        self.put(node, v.left(M, None, (1, C, 1, 1)).named(node.name or node.output[0], False))

    def op_MaxPool(self, node: onnx.NodeProto) -> None:
        if len(node.output) > 1 and node.output[1] and node.output[1] in self._used:
            raise self.err("E0702", f"{_label(node)} (MaxPool) has its Indices output used; nnmip reads the "
                           "pooled values only")
        v = self.lin(node.input[0], node)
        C, H, W, Ho, Wo, ih, iw = self._pool(node, v)
        idx = self._pool_index(C, H, W, Ho, Wo, ih, iw)
        if np.any((idx < 0).all(axis=1)):
            raise self.err("E0702", f"{_label(node)} (MaxPool) has a window with no input")
        src = self.materialize(v, node.input[0])
        out = self.add(node.name or node.output[0], MaxPool(index=idx), (src,), idx.shape[0])
        self.put(node, _Lin.of(out, (1, C, Ho, Wo)))

    # activations
    def _activation(self, node: onnx.NodeProto, op: Op) -> None:
        v = self.lin(node.input[0], node)
        src = self.materialize(v, node.input[0])
        out = self.add(node.name or node.output[0], op, (src,), v.size)
        self.put(node, _Lin.of(out, v.shape))

    def op_Relu(self, node: onnx.NodeProto) -> None:
        self._activation(node, ReLU())

    def op_Sign(self, node: onnx.NodeProto) -> None:
        self._activation(node, Sign())

    def op_Sigmoid(self, node: onnx.NodeProto) -> None:
        self._activation(node, Sigmoid())

    def op_Tanh(self, node: onnx.NodeProto) -> None:
        self._activation(node, Tanh())

    def op_Greater(self, node: onnx.NodeProto) -> None:
        a = self.get(node.input[0], node)
        zero = self.values.get(node.input[1])
        if not isinstance(a, _Lin) or not isinstance(zero, np.ndarray) or zero.size == 0 or np.any(zero != 0):
            raise self.err("E0702", f"{_label(node)} (Greater) is not a comparison 'a > 0'", _SUPPORTED_HELP)
        self.put(node, _Cmp(node, self.materialize(a, node.input[0]), a.shape))

    def op_Where(self, node: onnx.NodeProto) -> None:
        cond = self.get(node.input[0], node)
        if not isinstance(cond, _Cmp):
            raise self.err("E0702", f"{_label(node)} (Where) is not a step Where(a > 0, 1, 0) or a sign "
                           "Where(a > 0, 1, -1)", _SUPPORTED_HELP)
        t, f = self.values.get(node.input[1]), self.values.get(node.input[2])
        if isinstance(t, np.ndarray) and isinstance(f, np.ndarray) and t.size and f.size and np.all(t == 1):
            kind: type[Op] | None = Sign if np.all(f == -1) else Step if np.all(f == 0) else None
        else:
            kind = None
        if kind is None:
            raise self.cmp_error(cond)
        out = self.add(cond.node.name or cond.node.output[0], kind(), (cond.src,), self.dims[cond.src])
        self.put(node, _Lin.of(out, cond.shape))


def import_onnx(path_or_model: str | os.PathLike[str] | bytes | onnx.ModelProto,
                name: str | None = None) -> tuple[Network, Scaler | None]:
    """Read a fixed-weight network from an ONNX file (``.onnx`` or ``.onnx.gz``) or model; return the network
    and its input scaler (or None).

    See the module docstring for the supported ops.  Raises :class:`OnnxImportError`.
    """
    from nnmip.errors import ParameterError, check_path

    if not isinstance(path_or_model, bytes | onnx.ModelProto):
        check_path("path_or_model", path_or_model)
    if name is not None and not isinstance(name, str):
        raise ParameterError.of("name", f"must be a str or None, got {name!r:.60}", code="E0108")
    file = "" if isinstance(path_or_model, bytes | onnx.ModelProto) else os.fspath(path_or_model)
    model = _load(path_or_model)
    return _Importer(model, name, file).run()
