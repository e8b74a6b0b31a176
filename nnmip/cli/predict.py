"""``nnmip predict``: run a saved network on new raw data (the forward pass, with the saved input scaling)."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from nnmip.cli.common import EXIT_OK, command
from nnmip.errors import DataError, Span


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
    """Raw feature rows (and the label column when asked) of a CSV, .npy or .npz file
    (:func:`nnmip.io.data.read_points`)."""
    from nnmip.io.data import read_points

    return read_points(path, delimiter=delimiter, header=header, label=label, label_option="--label: column")


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
    net.check_features(X_raw.shape, f"the rows of '{a.data}'", Span(file=a.data),
                       ["help: use --label COL to drop the label column"])
    X = scaler.transform(X_raw) if scaler is not None else X_raw
    pred = net.predict(X)
    extra = read_extra(a.weights)
    classes = extra.get("classes")
    labels = classes[pred] if classes is not None else pred
    out: dict[str, object] = {"predictions": np.asarray(labels).tolist(), "rows": int(X.shape[0])}
    if y_raw is not None:
        known = np.asarray(classes) if classes is not None else np.arange(net.n_outputs)
        try:
            if known.dtype.kind in "biuf":
                unknown = ~np.isin(np.asarray(y_raw, dtype=np.float64), known.astype(np.float64))
            else:
                unknown = ~np.isin(np.asarray(y_raw).astype(str), known.astype(str))
        except (TypeError, ValueError):
            unknown = np.ones(len(y_raw), dtype=bool)
        if unknown.any():
            i = int(np.argmax(unknown))
            raise DataError.at("E0312", f"label '{y_raw[i]}' in data row {i + 1} of '{a.data}' is not one of the "
                               f"network's classes {known.tolist()}", Span(file=a.data), notes=[
                                   "help: check --label (the column of the true label)"])
        if known.dtype.kind in "biuf":      # numeric classes: labels compared as numbers ("2" and "2.0" alike)
            hit = np.asarray(labels, dtype=np.float64) == np.asarray(y_raw, dtype=np.float64)
        else:                               # class names
            hit = np.asarray(labels).astype(str) == np.asarray(y_raw).astype(str)
        out["accuracy"] = float(np.mean(hit))
    if a.json:
        write_json(a.json, out)
    else:
        for v in out["predictions"]:  # type: ignore[attr-defined]
            print(v)
        if "accuracy" in out:
            print(f"accuracy {out['accuracy']:.6g}", file=sys.stderr)
    return EXIT_OK


cmd_predict.configure = _configure  # type: ignore[attr-defined]
