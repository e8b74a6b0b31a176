"""The time limit of verification and compression is one wall-clock budget, and a stop request ends the work
promptly: the steps that ran past it (a second MILP with the first one's limit, sampling millions of inputs in one
pass, a bound MILP with the limit of the one before it) now ask what is left."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nnmip.backends as backends_module
from nnmip.backends import is_installed
from nnmip.cli import main
from nnmip.drivers.verify import UNKNOWN, network_from_layers, verify
from nnmip.ir import spec as vs
from nnmip.passes.bounds import tighten_bounds
from nnmip.solution import STOP, RawResult, Status

pytestmark = pytest.mark.skipif(not is_installed("highs"), reason="highspy is not installed")


def _net(sizes: list[int], seed: int, act: str = "relu") -> Any:
    rng = np.random.default_rng(seed)
    return network_from_layers([(rng.normal(size=(b, a)) / np.sqrt(a), rng.normal(size=b) * 0.1)
                                for a, b in zip(sizes[:-1], sizes[1:], strict=True)], activation=act)


def test_the_step_margin_search_keeps_to_the_time_limit() -> None:
    """On a step network the MILP's optimum sits at a = 0 of some unit, and a second MILP (the margin model)
    looks for an attained value: it ran with the first one's time limit, after the first one had spent it
    (3.9 s for a 2 s limit)."""
    net = _net([10, 40, 40, 2], 0, "step")
    t0 = time.perf_counter()
    r = verify(net, vs.linf(np.zeros(10), 0.5), vs.maximize([1.0, -1.0]), time_limit=2)
    took = time.perf_counter() - t0
    assert took < 2 + 0.7, took
    assert r.result == UNKNOWN
    assert r.timed_out
    assert r.value is not None
    assert r.bound is not None
    x = np.asarray(r.counterexample)
    assert float(net.forward(x[None, :])[0] @ [1.0, -1.0]) == r.value    # the value is the forward pass's
    assert r.value <= r.bound


@pytest.mark.parametrize("stop", [False, True])
def test_sampling_keeps_to_the_time_limit_and_stops_on_request(stop: bool) -> None:
    """``samples`` up to ten million ran in one forward pass, whatever the time limit or a stop request (27 s
    for a 1 s limit); they run in chunks now, and the answer says how many ran."""
    net = _net([20, 64, 64, 2], 1)
    x0 = np.zeros(20)
    label = int(net.predict(x0[None, :])[0])
    STOP.clear()
    timer = threading.Timer(1.0, STOP.request) if stop else None
    if timer is not None:
        timer.start()
    try:
        t0 = time.perf_counter()
        r = verify(net, vs.linf(x0, 0.05), vs.classified(label), samples=5_000_000, time_limit=60 if stop else 1)
        took = time.perf_counter() - t0
    finally:
        if timer is not None:
            timer.cancel()
        STOP.clear()
    assert took < 1 + 2.5, took                      # a chunk of points runs to its end
    assert r.result == UNKNOWN
    word = "stop request" if stop else "time limit"
    assert any(n.startswith(f"sampling stopped by the {word} after ") and n.endswith(" of 5000000 inputs")
               for n in r.notes), r.notes


def test_a_bound_milp_gets_what_the_one_before_it_left(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each unit's second bound MILP (its lower side) got the time that was left before the first one ran:
    with the first one taking its whole limit, the pass ended past its budget."""
    real = backends_module.get_backend("highs")
    calls: list[tuple[float, float | None]] = []

    class Slow:
        name, capabilities = real.name, real.capabilities

        def solve(self, model: Any, opts: Any) -> RawResult:
            calls.append((time.perf_counter(), opts.time_limit))
            time.sleep(min(0.25, opts.time_limit if opts.time_limit is not None else 0.25))
            return RawResult(Status.TIME_LIMIT, "slow", None, None, None)

    monkeypatch.setattr(backends_module, "get_backend", lambda solver: Slow())
    net = _net([6, 12, 12, 2], 0)
    t0 = time.perf_counter()
    rep = tighten_bounds(net, vs.Region((vs.linf(np.zeros(6), 1.0),)), method="milp", time_limit=1.0)
    took = time.perf_counter() - t0
    assert len(calls) >= 3
    for started, limit in calls:    # no solve may be given more time than the pass has left when it starts
        assert limit is not None
        assert started + limit <= t0 + 1.0 + 0.02, (started - t0, limit)
    assert took < 1.0 + 0.3, took
    assert rep.milps < len(calls) + 1


def test_compress_sampling_keeps_to_the_time_limit(tmp_path: Path) -> None:
    """``nnmip compress --samples`` ran every sample in one pass after the budget (12 s for a 1 s limit, ten
    million samples); the samples stop with the time limit and the report says how many ran."""
    from conftest import EXAMPLES

    js = tmp_path / "r.json"
    t0 = time.perf_counter()
    code = main(["compress", "--onnx", str(EXAMPLES / "data" / "verify_bcw.onnx"), "--domain", "1", "10",
                 "--samples", "10000000", "--time-limit", "1", "-o", str(tmp_path / "c.onnx"), "--json", str(js)])
    took = time.perf_counter() - t0
    assert code == 0
    assert took < 1 + 3.0, took
    d = json.loads(js.read_text())
    assert 0 < d["samples"] < 10_000_000          # they all ran before, whatever the limit
    assert d["max_sampled_diff"] == 0.0


def test_points_share_the_time_limit_of_the_run(tmp_path: Path) -> None:
    """``nnmip verify --points --time-limit T`` is one budget for every point (it was each point's own: twelve
    points of a hard ball took twelve times T); ``--point-time-limit`` caps each point, and a point that starts
    after the run's end answers unknown at once."""
    from nnmip.io.weights import save_npz

    net = _net([20, 64, 64, 2], 1)
    save_npz(net, tmp_path / "n.npz")
    X = np.random.default_rng(0).uniform(-0.1, 0.1, (12, 20))
    np.save(tmp_path / "pts.npy", X)
    js = tmp_path / "p.json"
    t0 = time.perf_counter()
    code = main(["verify", "--npz", str(tmp_path / "n.npz"), "--points", str(tmp_path / "pts.npy"),
                 "--label-column", "none", "--linf", "0.08", "--time-limit", "2", "--point-time-limit", "0.6",
                 "--jobs", "1", "--json", str(js), "-q"])
    took = time.perf_counter() - t0
    assert code == 1                                 # unknown points
    assert took < 2 + 3.0, took
    d = json.loads(js.read_text())
    assert d["unknown"] == 12
    rows = d["results"]
    assert all(r["result"] == "unknown" for r in rows)
    assert all(r["timed_out"] for r in rows)
    assert all(r["seconds"] < 0.6 + 1.0 for r in rows if "seconds" in r)      # each point's own cap
    # one budget: the points' times add up to at most the run's (one after the other: --jobs 1), where before
    # each had 2 s of its own
    assert sum(r.get("seconds", 0.0) for r in rows) < 2 + 1.0


def test_points_that_start_after_the_end_do_no_work() -> None:
    from nnmip.drivers.deadline import Deadline
    from nnmip.drivers.verify import robust_accuracy

    net = _net([20, 64, 64, 2], 1)
    X = np.random.default_rng(0).uniform(-0.1, 0.1, (5, 20))
    t0 = time.perf_counter()
    acc, rows = robust_accuracy(net, X, None, 0.08, deadline=Deadline(0.0))
    assert time.perf_counter() - t0 < 1.0
    assert acc == 0.0
    for r in rows:
        assert (r["result"], r["robust"], r["timed_out"]) == (UNKNOWN, False, True)
        assert r["notes"] == ["the run's time limit ended before this point started"]


@pytest.mark.parametrize(("args", "code"), [(["--point", "0,0", "--point-time-limit", "1"], "E0104"),
                                            (["--points", "P", "--point-time-limit", "0"], "E0109"),
                                            (["--points", "P", "--point-time-limit", "nan"], "E0109")])
def test_point_time_limit_is_checked_first(args: list[str], code: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Refused before anything is read (the network file does not exist: that would be another error)."""
    argv = [a.replace("P", str(tmp_path / "p.npy")) for a in args]
    assert main(["verify", "--npz", str(tmp_path / "missing.npz"), "--linf", "0.1", *argv]) == 2
    err = capsys.readouterr().err
    assert f"error[{code}]" in err
    assert "--point-time-limit" in err


def test_sampling_goes_on_after_a_chunk_with_no_point_in_the_region() -> None:
    """In a thin strip (halfspaces) a chunk of samples may hold no point of the region; the next chunks are still
    drawn (a first empty chunk ended the sampling)."""
    from nnmip.drivers.deadline import Deadline
    from nnmip.drivers.verify import SAMPLE_CHUNK, _Question

    net = _net([2, 4, 1], 0)
    sets = [vs.box([-1, -1], [1, 1]), vs.halfspaces(np.array([[1.0, 0.0], [-1.0, 0.0]]), np.array([0.5004, -0.5]))]

    def question() -> Any:
        return _Question.setup(net, sets, vs.maximize([1.0]), solver="highs", options=None, domain=None,
                               on_case=None, deadline=Deadline(None))

    first = question().region.sample(2, SAMPLE_CHUNK, np.random.default_rng(0))
    assert first.shape[0] == 0            # seed 0: the first chunk misses the strip
    q = question()
    assert not q.sample(20 * SAMPLE_CHUNK, 0)
    assert np.isfinite(q.case_values[0])
    x = q.best_x
    assert x is not None
    assert 0.5 <= x[0] <= 0.5004
    assert float(net.forward(x[None, :])[0, 0]) == q.case_values[0]
