"""Ctrl-C: a real ``nnmip solve`` process gets SIGINT during a long solve and must exit with 130 within seconds,
with ``--json`` written (status ``interrupted``) and the incumbent's loss equal to the forward pass."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

HARD = """\
data bcw = csv("{csv}", delimiter=";", label=-1, scale=minmax)
           split(train=0.5, validation=0.25, test=0.25, seed=0)

network bdnn(x: 9) {{
    h1 = dense(x, 6, weights=real[-1, 1], bias=real[-10, 10])
    a1 = step(h1)
    h2 = dense(a1, 2, weights=int[-1, 1], bias=real[-5, 5])
    y  = step(h2)
}}

train bdnn on bcw {{
    loss = hamming
    subset = random({n}, seed=1)
}}

solve with highs(time_limit=600, gap=0)
"""

CSV = ROOT / "examples" / "data" / "breast-cancer-wisconsin.csv"


def start(tmp: Path, solver: str, n: int, *extra: str) -> subprocess.Popen[str]:
    (tmp / "hard.nnmip").write_text(HARD.format(csv=CSV.as_posix(), n=n), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "nnmip.cli", "solve", "hard.nnmip", "--solver", solver,
                             "--json", "r.json", "--save-weights", "w.npz", *extra], cwd=tmp, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(p: subprocess.Popen[str], text: str, timeout: float) -> None:
    """Read standard error until ``text`` appears (the solver has started)."""
    assert p.stderr is not None
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        line = p.stderr.readline()
        if text in line:
            return
        if not line and p.poll() is not None:
            break
    raise AssertionError(f"'{text}' did not appear")


def interrupt(p: subprocess.Popen[str]) -> float:
    t0 = time.perf_counter()
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    return time.perf_counter() - t0


def forward_loss(tmp: Path, report: dict) -> float:
    from nnmip.io.data import Scaler
    from nnmip.io.weights import load_npz
    from nnmip.ir.losses import objective_terms

    net, scaler = load_npz(tmp / "w.npz")
    table = np.loadtxt(CSV, delimiter=";")
    rows = np.asarray(report["data"]["train"])
    X = table[rows, :-1]
    classes = np.asarray(report["data"]["classes"])
    y = np.searchsorted(classes, table[rows, -1])
    assert isinstance(scaler, Scaler)
    out = net.forward(scaler.transform(X))
    data_loss, penalty, _ = objective_terms(net, out, y, "hamming", 1.0, 2, 0.0, [])
    return float(data_loss + penalty)


def check_interrupted(p: subprocess.Popen[str], tmp: Path, need_incumbent: bool) -> float:
    seconds = interrupt(p)
    assert p.returncode == 130, p.stderr.read() if p.stderr else ""
    report = json.loads((tmp / "r.json").read_text())
    assert report["status"] == "interrupted"
    if need_incumbent:
        assert report["loss"] is not None
    if report["loss"] is not None:   # an incumbent was kept: its loss is the forward pass of the saved weights
        assert report["verified"] is True
        assert report["loss"] == pytest.approx(forward_loss(tmp, report), abs=1e-9)
    assert not [f for f in os.listdir(tmp) if f.endswith(".part")]
    return seconds


def test_sigint_during_a_highs_solve_keeps_the_incumbent(tmp_path: Path) -> None:
    p = start(tmp_path, "highs", 300)
    wait_for(p, "training 'bdnn'", 60)
    time.sleep(3.0)     # the model is built within about a second; then HiGHS runs for minutes
    assert p.poll() is None, "the solve ended before the interrupt"
    assert check_interrupted(p, tmp_path, need_incumbent=False) < 5.0


@pytest.mark.slow
def test_sigint_during_a_long_highs_solve_keeps_the_incumbent(tmp_path: Path) -> None:
    p = start(tmp_path, "highs", 300)
    wait_for(p, "training 'bdnn'", 60)
    time.sleep(15.0)
    assert p.poll() is None, "the solve ended before the interrupt"
    assert check_interrupted(p, tmp_path, need_incumbent=True) < 5.0


def test_sigint_before_the_solve_exits_at_once(tmp_path: Path) -> None:
    p = start(tmp_path, "highs", 300)
    wait_for(p, "training 'bdnn'", 60)    # the model is being built: no solve yet, nothing to keep
    seconds = interrupt(p)
    assert p.returncode == 130
    assert seconds < 5.0, seconds
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "interrupted"
    assert not (tmp_path / "w.npz").exists()


@pytest.mark.slow
def test_sigint_during_a_cbc_solve_exits_promptly(tmp_path: Path) -> None:
    p = start(tmp_path, "cbc", 300, "-q")
    time.sleep(25)    # python-mip builds the model row by row first
    assert p.poll() is None
    seconds = interrupt(p)
    assert p.returncode == 130
    assert seconds < 5.0, seconds
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "interrupted"
