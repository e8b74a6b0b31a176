"""``nnmip predict`` on a saved network: the forward pass with the saved scaling, on raw rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nnmip.cli import main
from nnmip.io.data import Scaler
from nnmip.io.weights import save_npz
from nnmip.ir import NetworkBuilder, fixed


def _saved(tmp_path):
    nb = NetworkBuilder("p")
    x = nb.input("x", 2)
    nb.step("y", nb.dense("h", x, 2, weights=fixed([[1.0, -1.0], [-1.0, 1.0]]), bias=fixed([0.0, 0.0])))
    net = nb.build()
    scaler = Scaler("minmax", np.array([0.0, 0.0]), np.array([10.0, 10.0]))
    path = tmp_path / "w.npz"
    save_npz(net, path, scaler, extra={"classes": np.array([3, 7])})
    return path


def test_predict_maps_raw_rows_through_scaling_and_classes(tmp_path, capsys):
    w = _saved(tmp_path)
    data = tmp_path / "d.csv"
    # scaled rows: (0.9, 0.1) -> unit 0 on -> class index 0 -> label 3; (0.1, 0.9) -> index 1 -> label 7;
    # (0.5, 0.5): both pre-activations exactly 0 -> both step outputs 0 -> argmax ties -> index 0 -> label 3
    data.write_text("9,1,3\n1,9,7\n5,5,7\n")
    out = tmp_path / "p.json"
    assert main(["predict", str(w), str(data), "--label", "-1", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["predictions"] == [3, 7, 3]
    assert d["accuracy"] == pytest.approx(2 / 3)


def test_predict_wrong_width_is_a_located_error(tmp_path, capsys):
    w = _saved(tmp_path)
    data = tmp_path / "d.csv"
    data.write_text("9,1,3\n")
    assert main(["predict", str(w), str(data)]) == 2
    err = capsys.readouterr().err
    assert "E0122" in err
    assert "--label" in err

