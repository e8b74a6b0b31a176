"""``--relax`` (``relax = true``) with a training strategy other than ``exact``: the relaxation of the whole
training model, never the strategy's MILP objective; an ensemble has no one model to relax (E0174)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_cases import run

#: XOR with a conflicting duplicate: no network fits every row, so a trained network's loss is at least 1
DATA = "0,0,0\n0,1,1\n1,0,1\n1,1,0\n0,0,1\n"
PROGRAM = """\
data d = csv("d.csv", label=-1)
network n(x: 2) {{
    h = dense(x, 2, weights=real[-1, 1], bias=real[-1, 1])
    a = step(h)
    o = dense(a, 1, weights=int[-1, 1], bias=real[-1, 1])
    y = step(o)
}}
train n on d {{ loss = hamming{strategy} }}
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    Path("d.csv").write_text(DATA)
    return tmp_path


def _relaxed(name: str, strategy: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    Path(name).write_text(PROGRAM.format(strategy=strategy))
    code, _, _ = run(["solve", name, "--relax", "--json", name + ".json", "-q"], capsys)
    return code, json.loads(Path(name + ".json").read_text())


@pytest.mark.parametrize("strategy", ["\n    strategy = split(max_splits=3, seed=0)",
                                      "\n    strategy = local_search(seed=0)"])
def test_a_strategy_relaxes_the_whole_training_model(folder: Path, capsys, strategy: str) -> None:
    code_e, exact = _relaxed("exact.nnmip", "", capsys)
    code_s, other = _relaxed("other.nnmip", strategy, capsys)
    assert code_e == code_s == 0
    assert exact["status"] == other["status"] == "optimal"
    assert exact["objective"] < 1.0 - 1e-6            # below the loss of any trained network here
    assert other["objective"] == pytest.approx(exact["objective"], abs=1e-9)
    assert any("not run to relax" in n for n in other["notes"])   # type: ignore[union-attr]
    # the training MILP of the same file is at least 1: a network reported here would be the strategy's
    code, _, _ = run(["solve", "other.nnmip", "--json", "trained.json", "-q"], capsys)
    assert json.loads(Path("trained.json").read_text())["loss"] >= 1.0


def test_an_ensemble_has_no_model_to_relax(folder: Path, capsys) -> None:
    Path("e.nnmip").write_text(PROGRAM.format(strategy="\n    strategy = one_vs_rest(member=exact)"))
    code, out, err = run(["solve", "e.nnmip", "--relax"], capsys)
    assert code == 2
    assert "E0174" in err
    assert "help:" in err
    assert "e.nnmip:" in err
