"""The gradient strategies keep to their time limit and stop on Ctrl-C with the point they reached."""

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
import pytest
from conftest import EXAMPLES, ROOT
from test_interrupt import wait_for
from test_sparse_train import mlp

from nnmip.cli import main
from nnmip.drivers.sparse import SparseConfig, train_sparse
from nnmip.errors import ParameterError
from nnmip.io.weights import load_npz
from nnmip.ir.losses import smooth_loss
from nnmip.solution import STOP


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _checked(res, X, y) -> None:  # type: ignore[no-untyped-def]
    """The result is the network at the point reached, measured by the forward pass and pruned exactly."""
    out = res.network.forward(X)
    assert res.data_loss == pytest.approx(smooth_loss("cross_entropy", out, y, 10)[0], rel=1e-12)
    np.testing.assert_array_equal(res.pruned.predict(X[:, res.kept_features]), res.network.predict(X))


def test_time_limit_stops_the_epochs(data) -> None:  # type: ignore[no-untyped-def]
    X, y = data
    cfg = SparseConfig(method="obproxsg", lam=0.01, epochs=100_000, batch=16, finetune=5)
    t0 = time.perf_counter()
    res = train_sparse(mlp(64, 16, 10), X, y, 10, cfg, time_limit=0.5)
    took = time.perf_counter() - t0
    assert took < 0.5 + 0.5, took                     # an epoch here is a few ms; the check is per mini-batch
    assert res.stopped == "time_limit"
    assert 0 < res.epochs_done < 100_000
    # one record per epoch run to its end, in order: a stopped epoch has none (its batches are in x)
    assert [h["epoch"] for h in res.history] == list(range(res.epochs_done))
    assert all(h["phase"] != "finetune" for h in res.history)   # no fine-tuning after a stop
    _checked(res, X, y)


def test_a_finished_run_says_so(data) -> None:  # type: ignore[no-untyped-def]
    X, y = data
    res = train_sparse(mlp(64, 8, 10), X[:200], y[:200], 10, SparseConfig(epochs=2, finetune=1), time_limit=60)
    assert res.stopped is None
    assert res.epochs_done == 3
    assert [h["phase"] for h in res.history] == ["obproxsg", "obproxsg", "finetune"]


def test_zero_time_limit_returns_the_start(data) -> None:  # type: ignore[no-untyped-def]
    X, y = data
    res = train_sparse(mlp(64, 8, 10), X, y, 10, SparseConfig(epochs=5), time_limit=0)
    assert (res.stopped, res.epochs_done, res.history) == ("time_limit", 0, [])
    _checked(res, X, y)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), "5"])
def test_bad_time_limit(bad: object, data) -> None:  # type: ignore[no-untyped-def]
    X, y = data
    with pytest.raises(ParameterError, match="time_limit"):
        train_sparse(mlp(64, 8, 10), X, y, 10, SparseConfig(epochs=1), time_limit=bad)  # type: ignore[arg-type]


def test_stop_request_keeps_the_point_reached(data) -> None:  # type: ignore[no-untyped-def]
    X, y = data
    timer = threading.Timer(0.5, STOP.request)
    timer.start()
    try:
        t0 = time.perf_counter()
        res = train_sparse(mlp(64, 16, 10), X, y, 10, SparseConfig(epochs=100_000, batch=16))
        took = time.perf_counter() - t0
    finally:
        timer.cancel()
        STOP.clear()
    assert res.stopped == "interrupted"
    assert took < 5.0, took
    assert res.epochs_done > 0
    _checked(res, X, y)


def test_solve_keeps_to_the_time_limit(tmp_path: Path) -> None:
    """``nnmip solve --time-limit`` bounds the epochs too (it was ignored: all of them ran, here about 20 s)."""
    src = (EXAMPLES / "digits_sparse.nnmip").read_text(encoding="utf-8").replace("epochs=40", "epochs=3000")
    (tmp_path / "long.nnmip").write_text(src, encoding="utf-8")
    t0 = time.perf_counter()
    code = main(["solve", str(tmp_path / "long.nnmip"), "-q", "--time-limit", "4", "--json", str(tmp_path / "r.json")])
    took = time.perf_counter() - t0
    assert code == 0
    assert took < 4 + 1.5, took
    d = json.loads((tmp_path / "r.json").read_text())
    assert d["status"] == "time_limit"
    assert d["verified"] is True
    ext = d["extension"]
    assert ext["stopped"] == "time_limit"
    assert 0 < ext["epochs_done"] < ext["epochs_planned"] == 3010
    assert any(n.startswith("stopped by the time limit after") for n in d["notes"]), d["notes"]


def test_ctrl_c_of_solve_writes_the_network_reached(tmp_path: Path) -> None:
    """SIGINT while the epochs run: exit 130 and the outputs hold the network reached (was: exit 130 with
    ``{"status": "interrupted"}`` and no network)."""
    src = (EXAMPLES / "digits_sparse.nnmip").read_text(encoding="utf-8").replace("epochs=40", "epochs=100000")
    (tmp_path / "long.nnmip").write_text(src, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))
    p = subprocess.Popen([sys.executable, "-m", "nnmip.cli", "solve", "long.nnmip", "--json", "r.json",
                          "--save-weights", "w.npz"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for(p, "epoch   2 ", 60)       # the epochs run
        p.send_signal(signal.SIGINT)
        t0 = time.perf_counter()
        _, err = p.communicate(timeout=30)   # reads the epoch lines, so that the child never blocks on a full pipe
        took = time.perf_counter() - t0
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert took < 10, took
    d = json.loads((tmp_path / "r.json").read_text())
    assert d["status"] == "interrupted"
    assert d["verified"] is True
    assert d["extension"]["stopped"] == "interrupted"
    assert d["extension"]["epochs_done"] >= 2
    net, scaler = load_npz(tmp_path / "w.npz")
    assert scaler is not None
    assert net.num_params() == d["extension"]["parameters_after"]      # the pruned network is what is saved


def test_a_stop_during_fine_tuning_is_said_as_such(tmp_path: Path) -> None:
    src = (EXAMPLES / "digits_sparse.nnmip").read_text(encoding="utf-8").replace("epochs=40", "epochs=2") \
        .replace("finetune=10", "finetune=3000")
    (tmp_path / "ft.nnmip").write_text(src, encoding="utf-8")
    assert main(["solve", str(tmp_path / "ft.nnmip"), "-q", "--time-limit", "3", "--json", str(tmp_path / "r.json")]) \
        == 0
    d = json.loads((tmp_path / "r.json").read_text())
    assert d["extension"]["epochs_done"] > 2                      # some fine-tuning epochs ran
    note = next(n for n in d["notes"] if n.startswith("stopped by the time limit after"))
    assert "(no fine-tuning)" not in note
    assert any(h["phase"] == "finetune" for h in d["history"])
