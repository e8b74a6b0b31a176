"""What ``nnmip solve`` says when the solve ends without a verified network."""

from __future__ import annotations

import json

from nnmip.cli import main


def test_an_infeasible_training_model_is_explained(tmp_path, capsys):
    # equal feature rows (0, 0) with labels 0 and 1: no network classifies both, so min_weight is infeasible
    (tmp_path / "d.csv").write_text("0,0,0\n0,0,1\n1,1,1\n1,0,0\n")
    src = tmp_path / "inf.nnmip"
    src.write_text('data d = csv("d.csv", label=-1, scale=none)\n'
                   "network n(x: 2) { h = dense(x, 2, weights=real[-1, 1], bias=real[-1, 1]); y = identity(h) }\n"
                   "train n on d { loss = min_weight(margin=0.5) }\n")
    out = tmp_path / "r.json"
    assert main(["solve", str(src), "--quiet", "--json", str(out)]) == 1
    assert json.loads(out.read_text())["status"] == "infeasible"
    err = capsys.readouterr().err
    assert "infeasible" in err
    assert "help: use loss = hinge or zero_one" in err
