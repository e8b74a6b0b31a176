"""Save, load and export ensembles (:class:`~nnmip.ir.ensemble.Ensemble`) as one ``.npz`` file and one ONNX graph.

npz layout (every array loads with ``allow_pickle=False``): ``"format"`` = ``"nnmip-ensemble/1"``,
``"ensemble.kind"``, ``"ensemble.n_classes"``, ``"ensemble.pairs"`` (M, 2); per member ``m`` its graph
``"member{m}.graph"`` (JSON of :meth:`Network.describe`) and ``"member{m}.{layer}.W"`` / ``".b"``; the scaler
(``"scaler.offset"``, ``"scaler.scale"``, ``"scaler.kind"``) and ``"extra.{key}"`` as in :mod:`nnmip.io.weights`.

The ONNX graph takes raw features (the scaler folded in as its first nodes), runs every member's network, and
outputs ``output`` (N, K): the vote counts (one_vs_one) or member scores (one_vs_rest), and ``label`` (N,):
their ``ArgMax`` with the first index on ties, which is :meth:`Ensemble.predict`'s rule.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nnmip.io.data import Scaler
from nnmip.io.safe import atomic_write, write_bytes
from nnmip.io.weights import WeightsError, _corrupt, _export_error, _open
from nnmip.ir.ensemble import Ensemble, score_node
from nnmip.ir.network import Network, from_description

if TYPE_CHECKING:
    import onnx

__all__ = ["FORMAT", "is_ensemble_file", "load_ensemble", "save_ensemble", "ensemble_to_onnx",
           "export_ensemble_onnx"]

FORMAT = "nnmip-ensemble/1"


def save_ensemble(ens: Ensemble, path: str | os.PathLike[str], scaler: Scaler | None = None,
                  extra: dict[str, Any] | None = None) -> Path:
    """Write every member's weights and graph, the vote rule and the scaler to one npz file; return the path."""
    target = Path(path)
    if target.name.lower().endswith(".nnmip"):
        raise _export_error("E0603", f"refusing to write weights to '{target}': a .nnmip name is kept for source files",
                            "help: give the output a .npz name")
    arrays: dict[str, np.ndarray] = {"format": np.array(FORMAT), "ensemble.kind": np.array(ens.kind),
                                     "ensemble.n_classes": np.array(ens.n_classes),
                                     "ensemble.pairs": np.asarray(ens.pairs, dtype=np.int64).reshape(-1, 2)}
    for m, net in enumerate(ens.members):
        arrays[f"member{m}.graph"] = np.array(json.dumps(net.describe()))
        for n, (W, b) in net.params().items():
            arrays[f"member{m}.{n}.W"] = np.asarray(W, dtype=np.float64)
            if b is not None:
                arrays[f"member{m}.{n}.b"] = np.asarray(b, dtype=np.float64)
    if scaler is not None:
        arrays["scaler.offset"] = np.asarray(scaler.offset, dtype=np.float64)
        arrays["scaler.scale"] = np.asarray(scaler.scale, dtype=np.float64)
        arrays["scaler.kind"] = np.array(str(scaler.kind))
    for key, value in (extra or {}).items():
        a = np.asarray(value)
        if a.dtype.kind not in "biufcUSM?":
            raise _export_error("E0606", f"extra value '{key}' of type {type(value).__name__} cannot be "
                                         "stored in an npz file", "help: pass numbers, strings or arrays of them")
        arrays[f"extra.{key}"] = a
    with atomic_write(target) as f:  # a file object: numpy would otherwise append ".npz" to the name
        np.savez(f, **arrays)  # type: ignore[arg-type]
    return target


def is_ensemble_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an npz file written by :func:`save_ensemble`."""
    z = _open(Path(path))
    return "format" in z and str(z["format"][()]) == FORMAT


def load_ensemble(path: str | os.PathLike[str]) -> tuple[Ensemble, Scaler | None]:
    """Read a file written by :func:`save_ensemble`."""
    p = Path(path)
    z = _open(p)
    if "format" not in z or str(z["format"][()]) != FORMAT:
        raise _corrupt(p, f"it is not an ensemble file (format '{FORMAT}')")
    try:
        kind = str(z["ensemble.kind"][()])
        k = int(z["ensemble.n_classes"][()])
        pairs = [(int(a), int(b)) for a, b in np.asarray(z["ensemble.pairs"]).reshape(-1, 2)]
        members: list[Network] = []
        for m in range(len(pairs)):
            desc = json.loads(str(z[f"member{m}.graph"][()]))
            params = {}
            for d in desc["nodes"]:
                if d["op"] == "dense":
                    n = d["name"]
                    b = z.get(f"member{m}.{n}.b")
                    params[n] = (np.asarray(z[f"member{m}.{n}.W"], dtype=np.float64),
                                 None if b is None else np.asarray(b, dtype=np.float64))
            members.append(from_description(desc, params))
        ens = Ensemble(kind, k, members, pairs)
    except WeightsError:
        raise
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise _corrupt(p, f"its ensemble cannot be read ({type(e).__name__}: {e})") from None
    scaler = None
    if "scaler.offset" in z and "scaler.scale" in z:
        kind_s = str(z["scaler.kind"][()]) if "scaler.kind" in z else "custom"
        scaler = Scaler(kind_s, np.asarray(z["scaler.offset"], dtype=np.float64),
                        np.asarray(z["scaler.scale"], dtype=np.float64))
    return ens, scaler


def _score_network(ens: Ensemble, net: Network) -> Network:
    """The member cut at its score node (one_vs_rest) or whole (one_vs_one: its output's sign is the vote)."""
    if ens.kind == "one_vs_one":
        return net
    node = score_node(net)
    if node == net.output:
        return net
    desc = net.describe()
    desc["nodes"] = [d for d in desc["nodes"] if d["name"] != net.output]
    desc["output"] = node
    return from_description(desc, net.params())


def ensemble_to_onnx(ens: Ensemble, scaler: Scaler | None = None, opset: int = 17) -> onnx.ModelProto:
    """One ONNX graph for the whole ensemble (see the module docstring); checked with onnx.checker."""
    # onnx takes about a second to import: saving an ensemble as npz should not pay it
    import onnx
    from onnx import TensorProto, compose, helper, numpy_helper

    from nnmip.io.onnx import to_onnx

    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    src = "input"
    if scaler is not None:
        inits += [numpy_helper.from_array(np.asarray(scaler.offset, dtype=np.float64), "scaler_offset"),
                  numpy_helper.from_array(np.asarray(scaler.scale, dtype=np.float64), "scaler_scale")]
        nodes += [helper.make_node("Sub", ["input", "scaler_offset"], ["input_shifted"], name="scaler_sub"),
                  helper.make_node("Div", ["input_shifted", "scaler_scale"], ["input_scaled"], name="scaler_div")]
        src = "input_scaled"
    outs = []
    for m, net in enumerate(ens.members):
        sub = compose.add_prefix(to_onnx(_score_network(ens, net), None, opset), f"m{m}_")
        nodes.append(helper.make_node("Identity", [src], [f"m{m}_input"], name=f"m{m}_feed"))
        keep = {f"m{m}_output"}
        for nd in reversed(list(sub.graph.node)):   # drop the member's own label nodes
            if any(o in keep for o in nd.output):
                keep.update(nd.input)
        nodes += [nd for nd in sub.graph.node if any(o in keep for o in nd.output)]
        inits += [t for t in sub.graph.initializer if t.name in keep]
        outs.append(f"m{m}_output")
    nodes.append(helper.make_node("Concat", outs, ["member_values"], name="members", axis=1))
    if ens.kind == "one_vs_one":
        D = np.zeros((len(ens.members), ens.n_classes))
        base = np.zeros(ens.n_classes)
        for m, (i, j) in enumerate(ens.pairs):
            D[m, j] += 1.0
            D[m, i] -= 1.0
            base[i] += 1.0
        inits += [numpy_helper.from_array(np.float64(0.0), "zero"),
                  numpy_helper.from_array(D, "vote_matrix"), numpy_helper.from_array(base[None, :], "vote_base")]
        nodes += [helper.make_node("Greater", ["member_values", "zero"], ["member_positive"], name="positive"),
                  helper.make_node("Cast", ["member_positive"], ["member_bits"], name="bits",
                                   to=TensorProto.DOUBLE),
                  helper.make_node("MatMul", ["member_bits", "vote_matrix"], ["vote_sum"], name="vote"),
                  helper.make_node("Add", ["vote_sum", "vote_base"], ["output"], name="votes")]
    else:
        nodes.append(helper.make_node("Identity", ["member_values"], ["output"], name="scores"))
    nodes.append(helper.make_node("ArgMax", ["output"], ["label"], name="label", axis=1, keepdims=0,
                                  select_last_index=0))
    graph = helper.make_graph(
        nodes, ens.name,
        [helper.make_tensor_value_info("input", TensorProto.DOUBLE, ["N", ens.n_inputs])],
        [helper.make_tensor_value_info("output", TensorProto.DOUBLE, ["N", ens.n_classes]),
         helper.make_tensor_value_info("label", TensorProto.INT64, ["N"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", int(opset))], producer_name="nnmip",
                              doc_string=f"nnmip {ens.kind} ensemble of {len(ens.members)} networks")
    onnx.checker.check_model(model, full_check=True)
    return model


def export_ensemble_onnx(ens: Ensemble, path: str | os.PathLike[str], scaler: Scaler | None = None,
                         opset: int = 17) -> Path:
    """Write :func:`ensemble_to_onnx` to ``path``."""
    target = Path(path)
    if target.name.lower().endswith(".nnmip"):
        raise _export_error("E0603", f"refusing to write an ONNX model to '{target}': a .nnmip name is kept for "
                            "source files",
                            "help: give the output a .onnx name")
    write_bytes(target, ensemble_to_onnx(ens, scaler, opset).SerializeToString())
    return target
