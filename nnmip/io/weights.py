"""Save and load trained (fixed-weight) networks as ``.npz`` files.

Layout of the file (every array loads with ``allow_pickle=False``):

* ``"{n}.W"`` -- the weights (n_out, n_in) of every dense node ``n``; ``"{n}.b"`` -- its bias, if it has one;
* ``"scaler.offset"``, ``"scaler.scale"`` (float64) and ``"scaler.kind"`` (0-d str), when a scaler is given;
* ``"graph"`` -- the JSON text of :meth:`Network.describe` (0-d str);
* ``"format"`` -- ``"nnmip-weights/1"`` (0-d str);
* ``"extra.{key}"`` -- whatever was passed as ``extra`` (read back with :func:`read_extra`).

Errors: :class:`ExportError` ``E0603`` for a target ending in ``.nnmip``, ``E0606`` for a network whose
weights are not fixed or an ``extra`` value that is not a plain array; :class:`WeightsError` ``E0608`` for a
file that is missing or is not a weights file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from nnmip.errors import NnmipError
from nnmip.io.data import Scaler
from nnmip.io.safe import atomic_write, note_input
from nnmip.io.writers import ExportError
from nnmip.ir.network import Network, from_description
from nnmip.ir.ops import Dense

__all__ = ["save_npz", "load_npz", "read_extra", "WeightsError", "FORMAT"]

FORMAT = "nnmip-weights/1"
_HELP = "help: write the file with nnmip.io.weights.save_npz (nnmip solve --save-weights W.npz)"


class WeightsError(NnmipError, ValueError):
    """A weights file is missing or cannot be read."""

    code = "E0608"


def _export_error(code: str, message: str, *notes: str) -> ExportError:
    err = ExportError.at(code, message, notes=notes)
    assert isinstance(err, ExportError)
    return err


def _corrupt(path: Path, why: str) -> WeightsError:
    err = WeightsError.at("E0608", f"'{path}' is not an nnmip weights file: {why}", notes=[_HELP])
    assert isinstance(err, WeightsError)
    return err


def _check_save_call(net: object, path: object, scaler: object) -> None:
    """Refuse a network, path or scaler of the wrong type (ParameterError naming the argument)."""
    from nnmip.errors import check_instance, check_path

    check_instance("net", net, Network, "a Network")
    check_path("path", path)
    check_instance("scaler", scaler, Scaler, "a Scaler or None", none=True)


def save_npz(net: Network, path: str | os.PathLike[str], scaler: Scaler | None = None,
             extra: dict[str, Any] | None = None) -> Path:
    """Write the weights, the scaler and the graph of ``net`` to ``path`` (exactly that name); return it."""
    from nnmip.errors import check_instance

    _check_save_call(net, path, scaler)
    check_instance("extra", extra, dict, "a dict of names to arrays, or None", none=True)
    target = Path(path)
    if target.name.lower().endswith(".nnmip"):
        raise _export_error("E0603", f"refusing to write weights to '{target}': a .nnmip name is kept for source files",
                            "help: give the output a .npz name")
    arrays: dict[str, np.ndarray] = {}
    for n, op in net.items():
        if op.kind in ("add", "maxpool"):   # imported from ONNX; the npz graph format holds chains of layers
            raise _export_error("E0606", f"cannot save network '{net.name}' as npz weights: node '{n}' is a "
                                         f"{op.kind} node", "help: keep such a network in its ONNX file")
    for n in net.dense_nodes():
        op = net.op(n)
        assert isinstance(op, Dense)
        if op.trainable:
            raise _export_error("E0606", f"cannot save network '{net.name}': layer '{n}' has weights that "
                                         "are not fixed", "help: train the network first")
        arrays[f"{n}.W"] = np.asarray(op.W, dtype=np.float64)
        if op.bias is not None:
            arrays[f"{n}.b"] = np.asarray(op.b, dtype=np.float64)
    if scaler is not None:
        arrays["scaler.offset"] = np.asarray(scaler.offset, dtype=np.float64)
        arrays["scaler.scale"] = np.asarray(scaler.scale, dtype=np.float64)
        arrays["scaler.kind"] = np.array(str(scaler.kind))
    arrays["graph"] = np.array(json.dumps(net.describe()))
    arrays["format"] = np.array(FORMAT)
    for key, value in (extra or {}).items():
        a = np.asarray(value)
        if a.dtype.kind not in "biufcUSM?":
            raise _export_error("E0606", f"extra value '{key}' of type {type(value).__name__} cannot be "
                                         "stored in an npz file",
                                "help: pass numbers, strings or arrays of them")
        arrays[f"extra.{key}"] = a
    with atomic_write(target) as f:  # a file object: numpy would otherwise append ".npz" to the name
        np.savez(f, **arrays)  # type: ignore[arg-type]
    return target


def _open(path: Path) -> dict[str, np.ndarray]:
    from nnmip.errors import DataError
    from nnmip.io.files import load_npy_arrays

    note_input(path)
    if not path.exists():
        err = WeightsError.at("E0608", f"weights file '{path}' does not exist",
                              notes=["help: check the path; write the file with save_npz"])
        assert isinstance(err, WeightsError)
        raise err
    try:
        arrays = load_npy_arrays(path)
    except DataError as e:
        if e.diagnostics and e.diagnostics[0].code == "E0311":
            raise
        notes = [n[len("note: "):] for d in e.diagnostics for n in d.notes if n.startswith("note: ")]
        raise _corrupt(path, notes[0] if notes else str(e)) from None
    if "" in arrays:
        raise _corrupt(path, "it holds a single array, not an npz archive")
    return arrays


def load_npz(path: str | os.PathLike[str]) -> tuple[Network, Scaler | None]:
    """Read a file written by :func:`save_npz`: the fixed-weight network and its scaler (or None)."""
    from nnmip.errors import check_path

    check_path("path", path)
    p = Path(path)
    z = _open(p)
    if "graph" not in z:
        raise _corrupt(p, "it has no 'graph' entry")
    try:
        desc = json.loads(str(z["graph"][()]))
        nodes = desc["nodes"]
        params: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        for d in nodes:
            if d["op"] != "dense":
                continue
            n = d["name"]
            if f"{n}.W" not in z:
                raise _corrupt(p, f"the weights '{n}.W' of layer '{n}' are missing")
            W = np.asarray(z[f"{n}.W"], dtype=np.float64)
            b = np.asarray(z[f"{n}.b"], dtype=np.float64) if f"{n}.b" in z else None
            if W.ndim != 2 or W.shape[0] != int(d["dim"]):
                raise _corrupt(p, f"layer '{n}' has {d['dim']} units but weights of shape {W.shape}")
            if (b is None) != (d.get("bias") is None):
                raise _corrupt(p, f"the bias '{n}.b' of layer '{n}' is "
                                  + ("missing" if b is None else "not in the graph"))
            if b is not None and b.shape != (W.shape[0],):
                raise _corrupt(p, f"layer '{n}' has {W.shape[0]} units but a bias of shape {b.shape}")
            params[n] = (W, b)
        net = from_description(desc, params)
        dims = {d["name"]: int(d["dim"]) for d in nodes}
        for n in net.dense_nodes():
            src = net.inputs_of(n)[0]
            n_in = params[n][0].shape[1]
            if n_in != dims[src]:
                raise _corrupt(p, f"layer '{n}' has weights for {n_in} inputs but its input '{src}' has "
                                  f"{dims[src]} units")
        for n in net.nodes:
            if net.dim(n) != dims[n]:
                raise _corrupt(p, f"node '{n}' has {net.dim(n)} units, the graph says {dims[n]}")
    except WeightsError:
        raise
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise _corrupt(p, f"its graph cannot be read ({type(e).__name__}: {e})") from None

    scaler = None
    if "scaler.offset" in z or "scaler.scale" in z:
        if "scaler.offset" not in z or "scaler.scale" not in z:
            raise _corrupt(p, "it has only half of the scaler (offset and scale)")
        offset = np.asarray(z["scaler.offset"], dtype=np.float64).reshape(-1)
        scale = np.asarray(z["scaler.scale"], dtype=np.float64).reshape(-1)
        if offset.shape != (net.n_inputs,) or scale.shape != (net.n_inputs,):
            raise _corrupt(p, f"the scaler has {offset.size} offsets and {scale.size} scales but the network "
                              f"has {net.n_inputs} inputs")
        kind = str(z["scaler.kind"][()]) if "scaler.kind" in z else "custom"
        offset.setflags(write=False)
        scale.setflags(write=False)
        scaler = Scaler(kind, offset, scale)
    return net, scaler


def read_extra(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The ``extra`` arrays stored by :func:`save_npz` (0-d arrays for scalars and strings)."""
    z = _open(Path(path))
    return {k[len("extra."):]: v for k, v in z.items() if k.startswith("extra.")}
