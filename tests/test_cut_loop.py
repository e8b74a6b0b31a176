"""The cut loop of the tangent emissions: one time limit for the whole loop, its true wall time, and what
``nnmip compile`` says about the tangents it writes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES

from nnmip.backends import get_backend
from nnmip.cli import main
from nnmip.drivers.cuts import solve_with_cuts
from nnmip.formulations.perspective import group_model
from nnmip.solution import SolveOptions, Status


def _case(seed: int = 3, k: int = 40, G: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.uniform(-1.0, 1.0, k)
    gid = rng.integers(0, G, k)
    return w, gid, np.full(G, 1.5)


def test_unlimited_loop_needs_several_solves() -> None:
    w, gid, M = _case()
    model, reg = group_model(w, gid, M, 0.5, 1.0, "perspective-cuts")
    raw, _, rounds = solve_with_cuts(model, get_backend("highs"), SolveOptions(), reg)
    assert raw.status is Status.OPTIMAL
    assert rounds > 2


class Slow:
    """HiGHS, with every solve taking at least ``delay`` seconds; records the time limit each solve gets."""

    name = "highs"

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.limits: list[float | None] = []
        self.spent: list[float] = []

    def solve(self, m, opts):  # type: ignore[no-untyped-def]
        self.limits.append(opts.time_limit)
        time.sleep(self.delay)
        r = get_backend("highs").solve(m, opts)
        self.spent.append(r.seconds + self.delay)
        return r


def test_loop_stops_at_the_time_limit_and_reports_its_wall_time() -> None:
    w, gid, M = _case()
    model, reg = group_model(w, gid, M, 0.5, 1.0, "perspective-cuts")
    full, _, full_rounds = solve_with_cuts(model, get_backend("highs"), SolveOptions(), reg)
    slow = Slow(0.1)
    t0 = time.perf_counter()
    raw, cut_model, rounds = solve_with_cuts(model, slow, SolveOptions(time_limit=0.25), reg)
    wall = time.perf_counter() - t0
    assert 2 <= rounds <= 3 < full_rounds
    assert len(slow.limits) == rounds
    assert slow.limits[0] == pytest.approx(0.25, abs=0.01)       # each solve gets what is left of the total
    assert all(b < a for a, b in zip(slow.limits, slow.limits[1:], strict=False))
    assert raw.status is Status.TIME_LIMIT            # the gap is still open: never reported as optimal
    assert "time limit" in raw.message
    assert raw.x is not None
    assert raw.objective is not None
    assert full.objective is not None
    assert raw.objective < full.objective - 1e-6      # tangents under-estimate the squares: a lower value
    assert raw.seconds == pytest.approx(wall, abs=0.02)
    assert raw.seconds >= sum(slow.spent)
    assert cut_model.num_rows > model.num_rows


def _prune_file(tmp_path: Path, extra: str) -> Path:
    text = (EXAMPLES / "bcw_prune.nnmip").read_text()
    text = text.replace("    prune = [features(cost=0.5), neurons(h1, cost=1)]",
                        "    prune = [features(cost=0.5), neurons(h1, cost=1)]\n" + extra)
    text = text.replace('"data/', f'"{EXAMPLES}/data/')
    path = tmp_path / "p.nnmip"
    path.write_text(text)
    return path


def test_compile_says_it_writes_the_starting_tangents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _prune_file(tmp_path, "    lambda = 0.5\n    alpha = 0.5\n")
    out = tmp_path / "m.lp"
    assert main(["compile", str(src), "-o", str(out), "--emit", "perspective-cuts", "--json", "-"]) == 0
    cap = capsys.readouterr()
    assert "starting tangents only" in cap.err
    assert json.loads(cap.out)["notes"][0].startswith("note: the squared-norm term")
    assert out.exists()


def test_compile_warns_when_there_is_nothing_to_cut(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.lp"
    assert main(["compile", str(_prune_file(tmp_path, "")), "-o", str(out), "--emit", "perspective-cuts"]) == 0
    assert "changes nothing here" in capsys.readouterr().err
    assert main(["compile", str(_prune_file(tmp_path, "")), "-o", str(out)]) == 0
    assert "changes nothing" not in capsys.readouterr().err
