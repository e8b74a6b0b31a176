"""``nnmip predict --label``: class names as labels, as training takes them; accuracy against the predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_cases import SMALL, run

DATA = "0,0,cat\n0,1,dog\n1,0,dog\n1,1,cat\n0.9,0.1,dog\n0.1,0.1,cat\n"


def test_predict_takes_class_names_as_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    Path("d.csv").write_text(DATA)
    Path("p.nnmip").write_text(SMALL)      # its data: d.csv, the label last
    code, _, _ = run(["solve", "p.nnmip", "--save-weights", "w.npz", "-q"], capsys)
    assert code == 0
    code, _, err = run(["predict", "w.npz", "d.csv", "--label", "2", "--json", "out.json"], capsys)
    assert code == 0, err
    out = json.loads(Path("out.json").read_text())
    truth = [line.split(",")[2] for line in DATA.split()]
    assert set(out["predictions"]) <= {"cat", "dog"}
    assert out["accuracy"] == pytest.approx(sum(p == t for p, t in zip(out["predictions"], truth, strict=True)) / 6)
    # a name the network does not know is refused with its row
    Path("e.csv").write_text("0,0,cat\n1,1,bird\n")
    code, _, err = run(["predict", "w.npz", "e.csv", "--label", "2"], capsys)
    assert code == 2
    assert "E0312" in err
    assert "'bird' in data row 2" in err
