"""``nnmip predict``: run a saved network on new raw data (the forward pass, with the saved input scaling)."""

from __future__ import annotations

import argparse
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
    from nnmip.errors import Span
    from nnmip.io.files import load_npy_arrays, numeric_array, read_number_table

    p = Path(path)
    if p.suffix.lower() in (".npy", ".npz"):
        arrays = load_npy_arrays(p)
        if "" in arrays:
            X = numeric_array(arrays[""], f"'{path}'")
            y = None
        else:
            if "X" not in arrays:
                raise DataError.at("E0309", f"'{path}' has no array 'X'", Span(file=path),
                                   notes=[f"help: it holds {sorted(arrays)}"])
            X = numeric_array(arrays["X"], f"array 'X' of '{path}'")
            y = np.asarray(arrays["y"]).ravel() if "y" in arrays else None
        X = np.atleast_2d(X)
        if X.ndim != 2:
            raise DataError.at("E0309", f"'{path}' holds an array of shape {X.shape}; expected rows x features",
                               Span(file=path))
        if y is not None and y.shape[0] != X.shape[0]:
            raise DataError.at("E0309", f"array 'y' of '{path}' has {y.shape[0]} labels for {X.shape[0]} rows",
                               Span(file=path))
        return X, y
    table = read_number_table(p, delimiter, header, display=path)
    if label is None:
        return table, None
    col = label if label >= 0 else table.shape[1] + label
    if not 0 <= col < table.shape[1]:
        raise DataError.at("E0304", f"--label: column {label} is out of range: the file has {table.shape[1]} "
                           "columns", Span(file=path),
                           [f"help: columns are counted from 0 (0..{table.shape[1] - 1}); -1 is the last"])
    return np.delete(table, col, axis=1), table[:, col]


@command("predict", "run a saved network (.npz) on new raw data")
def cmd_predict(a: argparse.Namespace) -> int:
    from nnmip.cli.common import preflight, write_json
    from nnmip.io.weights import load_npz, read_extra

    if len(a.delimiter) != 1 or a.delimiter in "\r\n\"#":
        raise DataError.at("E0109", f"--delimiter: '{a.delimiter}' is not a single separator character",
                           notes=["help: use ',', ';' or a tab"])
    preflight(a, inputs=[a.weights, a.data], outputs={"--json": a.json})
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
        known = np.asarray(classes) if classes is not None else np.arange(net.n_outputs)
        try:
            y_cmp = np.asarray(y_raw).astype(known.dtype) if known.dtype.kind in "biuf" else np.asarray(y_raw)
            unknown = ~np.isin(y_cmp, known)
        except (TypeError, ValueError):
            unknown = np.ones(len(y_raw), dtype=bool)
        if unknown.any():
            i = int(np.argmax(unknown))
            raise DataError.at("E0312", f"label '{y_raw[i]}' in data row {i + 1} of '{a.data}' is not one of the "
                               f"network's classes {known.tolist()}", notes=[
                                   "help: check --label (the column of the true label)"])
        out["accuracy"] = float(np.mean(np.asarray(labels, dtype=np.float64) == np.asarray(y_raw, dtype=np.float64)))
    if a.json:
        write_json(a.json, out)
    else:
        for v in out["predictions"]:  # type: ignore[attr-defined]
            print(v)
        if "accuracy" in out:
            print(f"accuracy {out['accuracy']:.6g}", file=sys.stderr)
    return EXIT_OK


cmd_predict.configure = _configure  # type: ignore[attr-defined]
