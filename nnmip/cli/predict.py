"""``nnmip predict``: run a saved network on new raw data (the forward pass, with the saved input scaling)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from nnmip.cli.common import EXIT_OK, command
from nnmip.errors import DataError


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("weights", help="a .npz file written by 'nnmip solve --save-weights'")
    p.add_argument("data", help="raw features: .csv (one row per point) or .npy / .npz (array 'X')")
    p.add_argument("--delimiter", default=",", help="CSV delimiter (default ',')")
    p.add_argument("--header", action="store_true", help="the CSV has a header line")
    p.add_argument("--label", type=int, metavar="COL",
                   help="the CSV column holding the true label: dropped from the features, used for accuracy")
    p.add_argument("--json", metavar="OUT", help="write predictions (and accuracy) as JSON ('-' for stdout)")


def read_features(path: str, delimiter: str = ",", header: bool = False,
                  label: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Raw feature rows (and the label column when asked) of a CSV, .npy or .npz file."""
    p = Path(path)
    if not p.is_file():
        raise DataError.at("E0301", f"file '{path}' does not exist")
    if p.suffix == ".npy":
        return np.asarray(np.load(p), dtype=np.float64), None
    if p.suffix == ".npz":
        with np.load(p) as z:
            if "X" not in z.files:
                raise DataError.at("E0309", f"'{path}' has no array 'X'", notes=[f"help: it holds {z.files}"])
            return np.asarray(z["X"], dtype=np.float64), (np.asarray(z["y"]) if "y" in z.files else None)
    table = np.genfromtxt(p, delimiter=delimiter, skip_header=1 if header else 0, dtype=np.float64, ndmin=2)
    if not np.isfinite(table).all():
        i, j = np.argwhere(~np.isfinite(table))[0]
        raise DataError.at("E0302", f"row {i + 1 + int(header)}, column {j + 1} of '{path}' is not a number")
    if label is None:
        return table, None
    col = label if label >= 0 else table.shape[1] + label
    if not 0 <= col < table.shape[1]:
        raise DataError.at("E0304", f"label column {label} is out of range: the file has {table.shape[1]} columns")
    return np.delete(table, col, axis=1), table[:, col]


@command("predict", "run a saved network (.npz) on new raw data")
def cmd_predict(a: argparse.Namespace) -> int:
    from nnmip.io.weights import load_npz, read_extra

    net, scaler = load_npz(a.weights)
    X_raw, y_raw = read_features(a.data, a.delimiter, a.header, a.label)
    if X_raw.shape[1] != net.n_inputs:
        raise DataError.at("E0122", f"'{a.data}' has {X_raw.shape[1]} feature columns but the network takes "
                           f"{net.n_inputs}", notes=["help: use --label COL to drop the label column"])
    X = scaler.transform(X_raw) if scaler is not None else X_raw
    pred = net.predict(X)
    extra = read_extra(a.weights)
    classes = extra.get("classes")
    labels = classes[pred] if classes is not None else pred
    out: dict[str, object] = {"predictions": np.asarray(labels).tolist(), "rows": int(X.shape[0])}
    if y_raw is not None:
        out["accuracy"] = float(np.mean(np.asarray(labels, dtype=np.float64) == np.asarray(y_raw, dtype=np.float64)))
    if a.json:
        text = json.dumps(out, indent=2)
        if a.json == "-":
            print(text)
        else:
            Path(a.json).write_text(text + "\n", encoding="utf-8")
    else:
        for v in out["predictions"]:  # type: ignore[attr-defined]
            print(v)
        if "accuracy" in out:
            print(f"accuracy {out['accuracy']:.6g}", file=sys.stderr)
    return EXIT_OK


cmd_predict.configure = _configure  # type: ignore[attr-defined]
