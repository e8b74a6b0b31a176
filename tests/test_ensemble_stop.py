"""Ensembles stopped part-way: by their time budget, by a stop request (STOP, from another thread) and by Ctrl-C
of ``nnmip solve``.  The ensemble ends with the members it has (the others are stand-ins, reported as such), it
ends within its budget, and every number reported is the forward pass / vote of the returned ensemble."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.datasets import load_digits
from test_ensemble import member_net as ensemble_member_net

from nnmip.drivers.executor import ProcessExecutor, SerialExecutor
from nnmip.drivers.strategies import train_ensemble
from nnmip.drivers.strategies.ensemble import member_data
from nnmip.io.ensemble import ensemble_to_onnx, load_ensemble, save_ensemble
from nnmip.ir.ensemble import member_tasks
from nnmip.solution import STOP, SolveOptions, Status

ROOT = Path(__file__).resolve().parents[1]
#: how long after its budget an ensemble may end: the members running then finish (a member's solves get at least
#: 0.1 s, and a member whose solver found nothing completes its start with a short solve), and the worker
#: processes are shut down
MARGIN = 1.0


@pytest.fixture(autouse=True)
def _no_stop_left():
    """A stop request of one test must not stop the next one."""
    STOP.clear()
    yield
    STOP.clear()


def digits(n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    n = y.size if n is None else n
    return X[:n] / 16.0, y[:n].astype(np.int64)


def member_net(hidden: int = 0):
    """A member on the 64 digit features, output bias in [-10, 10] (the lowest score of a one_vs_rest stand-in)."""
    return ensemble_member_net(hidden, n_in=64, out_bias=10.0)


def check_result(res, kind: str, X: np.ndarray, y: np.ndarray, why: str) -> None:
    """The returned ensemble is complete; each member's reported loss is its own forward pass on its two-class
    problem; stand-ins are constant, listed and explained; the reported accuracy is the vote's; the saved npz
    and the ONNX graph vote as the returned ensemble does."""
    ens = res.ensemble
    assert ens is not None
    pairs = member_tasks(kind, 10)
    assert ens.pairs == pairs
    assert len(ens.members) == len(res.history) == len(pairs)
    stand_ins = []
    for i, (pair, net, h) in enumerate(zip(pairs, ens.members, res.history, strict=True)):
        assert h["index"] == i
        assert h["pair"] == list(pair)
        Xm, ym = member_data(kind, pair, X, y)
        assert h["loss"] == float(np.sum(net.predict(Xm) != ym))    # hamming: the member's errors
        if h["stand_in"]:
            stand_ins.append(i)
            assert np.unique(net.predict(X)).size == 1              # a constant classifier
            assert np.all(net.predict(Xm) == np.bincount(ym, minlength=2).argmax())
        else:
            assert h["verified"]
            assert h.get("not_run") is None
    assert res.extension["stand_ins"] == stand_ins
    assert res.extension["trained_members"] == len(pairs) - len(stand_ins)
    assert res.loss == sum(h["loss"] for h in res.history)
    assert res.extension["train_accuracy"] == float(np.mean(ens.predict(X) == y))
    assert any(n.startswith(f"{why}: {len(pairs) - len(stand_ins)} of {len(pairs)} members trained")
               for n in res.notes), res.notes
    sess = ort.InferenceSession(ensemble_to_onnx(ens).SerializeToString(), providers=["CPUExecutionProvider"])
    label = sess.run(["label"], {"input": np.asarray(X, dtype=np.float64)})[0]
    np.testing.assert_array_equal(label, ens.predict(X))


# ---------------------------------------------------------------------------------------------------------
# the time budget bounds the whole ensemble
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "hidden", "workers", "limit"),
                         [("one_vs_one", 2, 1, 1.0), ("one_vs_rest", 2, 2, 1.0)])
def test_time_limited_ensemble_ends_within_its_budget(kind: str, hidden: int, workers: int, limit: float) -> None:
    """Once the budget is spent no member starts: the members not started are stand-ins (``time_limit``), and
    the accuracy reported is that of the returned vote."""
    X, y = digits(600)
    t0 = time.perf_counter()
    res = train_ensemble(member_net(hidden), X, y, 10, kind=kind, eps=0.05, options=SolveOptions(time_limit=limit),
                         workers=workers)
    took = time.perf_counter() - t0
    assert took <= limit + MARGIN, took
    assert res.status is Status.TIME_LIMIT
    assert res.verified
    not_run = [h["index"] for h in res.history if h.get("not_run") == "time_limit"]
    assert not_run, "the budget did not cut the ensemble: this test would test nothing"
    assert all(res.history[i]["status"] == "time_limit" for i in not_run)
    check_result(res, kind, X, y, "time limit")


def test_spent_budget_starts_no_member() -> None:
    """A budget below what a member needs to start: every member is a stand-in, at once, without processes."""
    X, y = digits(300)
    t0 = time.perf_counter()
    res = train_ensemble(member_net(), X, y, 10, kind="one_vs_one", eps=0.05, time_budget=0.05, workers=2)
    assert time.perf_counter() - t0 < 2.0
    assert res.status is Status.TIME_LIMIT
    assert [h.get("not_run") for h in res.history] == ["time_limit"] * 45
    check_result(res, "one_vs_one", X, y, "time limit")


# ---------------------------------------------------------------------------------------------------------
# a stop request (STOP, Ctrl-C) part-way keeps the trained members
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["serial", "processes"])
def test_stop_request_keeps_the_trained_members(tmp_path: Path, where: str) -> None:
    """``STOP.request()`` from another thread part-way: the members trained are kept, the ones never started
    are stand-ins (``interrupted``), the status is ``interrupted``, and the numbers are those of the returned
    ensemble (also once saved and loaded back)."""
    X, y = digits()
    ex = SerialExecutor() if where == "serial" else ProcessExecutor(2, method="fork")
    with ex:   # the worker processes start before the timer's thread exists
        timer = threading.Timer(1.0, STOP.request)
        t0 = time.perf_counter()
        timer.start()
        try:
            res = train_ensemble(member_net(), X, y, 10, kind="one_vs_one", eps=0.05, objectives=("max_margin",),
                                 options=SolveOptions(time_limit=120), executor=ex)
        finally:
            timer.cancel()
        took = time.perf_counter() - t0
    assert took < 1.0 + 3.0, took     # stopped promptly, not after the 45 members
    assert res.status is Status.INTERRUPTED
    assert res.verified
    kept = [h for h in res.history if not h["stand_in"]]
    assert kept, "no member was trained before the stop request"
    assert all(h["status"] in ("optimal", "time_limit", "interrupted") for h in kept)
    not_run = [h["index"] for h in res.history if h.get("not_run") == "interrupted"]
    assert not_run, "every member was trained before the stop request: this test would test nothing"
    assert all(res.history[i]["stand_in"] for i in not_run)
    check_result(res, "one_vs_one", X, y, "interrupted")
    save_ensemble(res.ensemble, tmp_path / "e.npz")
    back, _ = load_ensemble(tmp_path / "e.npz")
    np.testing.assert_array_equal(back.predict(X), res.ensemble.predict(X))


def test_a_member_stopped_while_it_trains_keeps_its_incumbent() -> None:
    """The stop request comes during the first member's long solve (no time limit): that member keeps the
    network its solver had (status ``interrupted``, checked by the forward pass), the others are stand-ins."""
    X, y = digits(600)
    timer = threading.Timer(1.0, STOP.request)
    t0 = time.perf_counter()
    timer.start()
    try:
        res = train_ensemble(member_net(hidden=3), X, y, 10, kind="one_vs_rest", eps=0.05, workers=1)
    finally:
        timer.cancel()
    assert time.perf_counter() - t0 < 1.0 + 3.0
    assert res.status is Status.INTERRUPTED
    first = res.history[0]
    assert (first["status"], first["stand_in"], first["verified"]) == ("interrupted", False, True)
    assert all(h["stand_in"] for h in res.history[1:])
    assert any(n.startswith("members [0] were stopped while training") for n in res.notes), res.notes
    check_result(res, "one_vs_rest", X, y, "interrupted")


OVO = """\
data digits = sklearn("digits", scale=minmax) split(train=0.5, validation=0.25, test=0.25, seed=0)
network m(x: 64) {
    o = dense(x, 1, weights=real[-1, 1], bias=real[-10, 10])
    y = step(o)
}
train m on digits {
    loss = [hamming, max_margin]
    eps = 0.05
    strategy = one_vs_one(member=exact, workers=2)
}
solve with highs(time_limit=120)
"""


def test_ctrl_c_of_solve_writes_the_ensemble_it_has(tmp_path: Path) -> None:
    """SIGINT to ``nnmip solve`` while the members train: exit 130, the JSON and the weights file hold the
    ensemble with the members trained (was: exit 2, E0807, no weights), and the accuracies in the JSON are
    those of the saved ensemble on the data's splits."""
    from nnmip.drivers.task import load_program, task_dataset

    (tmp_path / "ovo.nnmip").write_text(OVO, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))
    p = subprocess.Popen([sys.executable, "-m", "nnmip.cli", "--log-level", "INFO", "solve", "ovo.nnmip", "-q",
                          "--json", "r.json", "--save-weights", "w.npz"], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert p.stderr is not None
        t0 = time.perf_counter()
        while "ensemble: 45 members" not in p.stderr.readline():   # the members start
            assert p.poll() is None, "the run ended before its ensemble started"
            assert time.perf_counter() - t0 < 60, "the ensemble did not start"
        time.sleep(1.0)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["status"] == "interrupted"
    assert report["verified"] is True
    assert any(n.startswith("interrupted: ") and "not started (interrupted)" in n for n in report["notes"]), \
        report["notes"]
    assert 0 < report["extension"]["trained_members"] < 45
    ens, scaler = load_ensemble(tmp_path / "w.npz")
    assert scaler is not None
    cp = load_program(tmp_path / "ovo.nnmip")
    ds = task_dataset(cp, cp.tasks[0])
    for split, rows in (("train", ds.train), ("validation", ds.validation), ("test", ds.test)):
        acc = float(np.mean(ens.predict(scaler.transform(ds.X_raw[rows])) == ds.y[rows]))
        assert report["metrics"][split] == acc, split
