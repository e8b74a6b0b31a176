"""``nnmip verify FILE`` passes --bab and --workers on to every verify statement; branch and bound tells a question
it could not settle from one that ran out of time; --counterexample needs --vnnlib."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nnmip.cli import main
from nnmip.drivers import verify as verify_mod

NET = """network fixed_relu(x: 2 real[-1, 1]) {
    h = dense(x, 2, weights=[[1, -1], [0.5, 2]], bias=[0, -0.5])
    r = relu(h)
    y = dense(r, 2, weights=[[1, 1], [-1, 0]], bias=[0, 0])
}
"""
# y1 - y0 = -2 relu(h0) - relu(h1) <= 0, reached (x = 0): 'y1 > y0 + 0.1' never holds, 'y1 > y0' holds nowhere
# either, but its largest score is 0 exactly, which the safety margin leaves undecided
QUESTION = """
verify fixed_relu {{
    input x in halfspaces(A=[[1, 1], [-1, 0], [0, -1]], b=[0.8, 0, 0])
    property = unsafe(case(G=[[1, -1]], h=[{h}], strict=true), case(G=[[-1, 0], [0, -1]], h=[5, 5]))
}}
"""


def _run(tmp_path: Path, h: str, *flags: str) -> tuple[int, dict[str, Any]]:
    f = tmp_path / "q.nnmip"
    f.write_text(NET + QUESTION.format(h=h), encoding="utf-8")
    out = tmp_path / "out.json"
    rc = main(["verify", str(f), "-q", "--json", str(out), *flags])
    return rc, json.loads(out.read_text(encoding="utf-8"))["results"][0]


def test_bab_option_reaches_the_statement(tmp_path: Path) -> None:
    rc, r = _run(tmp_path, "0.1")
    assert rc == 0
    assert r["result"] == "certified"
    assert r["bounds"]["method"] == "branch_and_bound"
    rc, r = _run(tmp_path, "0.1", "--bab", "off")
    assert rc == 0
    assert r["result"] == "certified"
    assert r["bounds"]["method"] != "branch_and_bound"
    assert r["cases"]
    assert all(c["decided_by"] != "bab" for c in r["cases"])


def test_workers_option_reaches_the_statement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    real = verify_mod.verify

    def spy(*args: Any, **kw: Any) -> Any:
        seen.append(kw)
        return real(*args, **kw)

    monkeypatch.setattr(verify_mod, "verify", spy)
    rc, _ = _run(tmp_path, "0.1", "--workers", "2", "--bab", "input")
    assert rc == 0
    assert seen[0]["workers"] == 2
    assert seen[0]["bab"] == "input"


def test_undecided_is_not_a_timeout(tmp_path: Path) -> None:
    """A strict case whose largest score is 0 exactly stays unknown, but not for lack of time: no time limit was
    set, and the answer says so."""
    for flags in ((), ("--bab", "off")):
        rc, r = _run(tmp_path, "0", *flags)
        assert rc == 1
        assert r["result"] == "unknown"
        assert r["timed_out"] is False, flags
        assert not any("time ran out" in n for n in r["notes"]), r["notes"]
        assert r["bound"] is not None
        assert 0 <= r["bound"] <= 1e-6
    _, r = _run(tmp_path, "0")
    assert any("left undecided" in n for n in r["notes"])


def test_bab_answers_count_units(tmp_path: Path) -> None:
    _, r = _run(tmp_path, "0.1")
    assert r["total_units"] == 2
    assert r["stable_units"] + r["unstable_units"] == 2


def test_counterexample_file_needs_vnnlib(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "q.nnmip"
    f.write_text(NET + QUESTION.format(h="0.1"), encoding="utf-8")
    assert main(["verify", str(f), "--counterexample", str(tmp_path / "c.txt")]) == 2
    assert "E0104" in capsys.readouterr().err
    assert not (tmp_path / "c.txt").exists()
