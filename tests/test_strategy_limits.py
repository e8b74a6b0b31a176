"""Limits of the training strategies: the data-splitting loop when no cluster can be split any more, seeds at the top
of their range, and one wall-clock budget for a whole run (``time_limit`` / ``--time-limit`` and a strategy's
``time_budget``: the smaller wins; loading the data counts).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.cluster import KMeans
from test_strategies import small_net

import nnmip.drivers.strategies.local_search as local_search_module
import nnmip.drivers.strategies.split as split_module
import nnmip.drivers.task as task_module
from nnmip.backends import is_installed
from nnmip.cli import main
from nnmip.drivers.deadline import Budget, Deadline
from nnmip.drivers.strategies import train_local_search, train_split
from nnmip.drivers.strategies.split import split_cluster
from nnmip.errors import ParameterError
from nnmip.ir.losses import data_loss
from nnmip.solution import SolveOptions

pytestmark = pytest.mark.skipif(not is_installed("highs"), reason="highspy is not installed")


def xor_data(n: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, size=(n, 2))
    y = ((X[:, 0] > 0.5) ^ (X[:, 1] > 0.5)).astype(np.int64)
    y[[3, 7]] ^= 1
    return X, y


def forward_loss(net, X, y) -> float:
    return data_loss("hamming", net.forward(X), y, 2)


def write_program(folder: Path, strategy: str, n: int = 24) -> Path:
    """A .nnmip program on ``n`` rows of noisy XOR (all of them training rows) with the given strategy."""
    X, y = xor_data(n)
    np.savetxt(folder / "d.csv", np.c_[X, y], delimiter=",", fmt=["%.6f", "%.6f", "%d"])
    path = folder / "t.nnmip"
    path.write_text('data d = csv("d.csv", label=-1) split(train=1.0, seed=0)\n'
                    "network n(x: 2) {\n"
                    "    h = dense(x, 2, weights=real[-1, 1], bias=real[-2, 2])\n"
                    "    a = step(h)\n"
                    "    o = dense(a, 1, weights=int[-1, 1], bias=real[-2, 2])\n"
                    "    y = step(o)\n"
                    "}\n"
                    f"train n on d {{\n    loss = hamming\n    strategy = {strategy}\n}}\n"
                    "solve with highs(threads=1)\n", encoding="utf-8")
    return path


def slow_solves(monkeypatch: pytest.MonkeyPatch, module: Any, pause: float) -> list[float | None]:
    """Make every solve of ``module`` last ``pause`` seconds longer; returns the time limit each solve was given."""
    limits: list[float | None] = []
    real_train = module.train_network

    def slow(*args: Any, **kwargs: Any) -> Any:
        limits.append(kwargs["options"].time_limit)
        time.sleep(pause)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(module, "train_network", slow)
    return limits


# -- bug 1: random batches once every cluster holds one point --------------------------------------------------
def test_split_with_batches_stops_when_no_cluster_can_be_split() -> None:
    X, y = xor_data(24)
    res = train_split(small_net(), X, y, 2, options=SolveOptions(time_limit=60), batch=4, max_splits=40)
    assert res.verified
    assert res.loss == forward_loss(res.network, X, y)          # the best network, re-checked
    assert res.loss == min(h["best_loss"] for h in res.history)
    assert any("23 splits, 24 clusters" in n for n in res.notes)  # every one of the 24 points alone
    assert any("stopped" in n and "no cluster left to split" in n for n in res.notes)
    assert "no cluster left to split" in res.history[-1]["stop"]
    assert len(res.history) == 24


def test_split_never_splits_a_cluster_of_one_point() -> None:
    # cluster 0 is a single point, cluster 1 two copies of one point: nothing can be split (2-means on one point
    # raised scikit-learn's ValueError)
    X = np.array([[0.1, 0.2], [0.9, 0.8], [0.9, 0.8]])
    y = np.array([0, 1, 1])
    res = train_split(small_net(), X, y, 2, options=SolveOptions(time_limit=30), batch=2,
                      groups=np.array([0, 1, 1]), max_splits=5)
    assert res.verified
    assert len(res.history) == 1
    assert "no cluster left to split" in res.history[-1]["stop"]
    with pytest.raises(ParameterError) as ei:
        split_cluster(X, np.array([0]), seed=0)
    assert ei.value.diagnostics[0].code == "E0109"


def test_cli_split_with_batches_ends_with_a_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_program(tmp_path, "split(batch=4, max_splits=40)")
    code = main(["solve", str(path), "-q", "--time-limit", "60"])
    err = capsys.readouterr().err
    assert "E0900" not in err
    assert "Traceback" not in err
    assert code == 0


# -- bug 2: the largest accepted seed ----------------------------------------------------------------------------
def test_split_accepts_the_largest_seed() -> None:
    X, y = xor_data(16)
    res = train_split(small_net(), X, y, 2, options=SolveOptions(time_limit=30), max_splits=2, seed=2**32 - 1)
    assert res.verified
    assert len(res.history) == 3                                   # both splits done
    res = train_local_search(small_net(), X, y, 2, options=SolveOptions(time_limit=30), init="split",
                             init_splits=2, rounds=1, seed=2**32 - 1)
    assert res.verified


def test_split_cluster_seeds_modulo_the_kmeans_range() -> None:
    X, _ = xor_data(30, seed=3)
    members = np.arange(30)
    ordinary = split_cluster(X, members, seed=7)
    labels = KMeans(n_clusters=2, n_init=4, random_state=7).fit_predict(X)
    assert ordinary.tolist() == members[labels == 1].tolist()     # ordinary seeds: the same split as before
    assert split_cluster(X, members, seed=2**32 + 7).tolist() == ordinary.tolist()


# -- bug 3: a strategy's time_budget never lifts the run's time limit --------------------------------------------
def test_budget_is_the_smallest_limit() -> None:
    b = Budget.of(SolveOptions(time_limit=2), time_budget=90, step_time=3)
    assert (b.total, b.per_solve) == (2, 3)
    b = Budget.of(SolveOptions(time_limit=90), time_budget=2, step_time=None)
    assert (b.total, b.per_solve) == (2, None)
    b = Budget.of(SolveOptions(time_limit=None, solve_time_limit=1), time_budget=None, step_time=3)
    assert (b.total, b.per_solve) == (None, 1)
    assert Budget.of(SolveOptions(), None, None).total is None
    from nnmip.drivers.deadline import run_deadline

    with run_deadline(Deadline(0.5)):                            # the end of the whole run bounds every budget
        assert Budget.of(SolveOptions(time_limit=60), time_budget=90, step_time=None).total <= 0.5
        assert Budget.of(SolveOptions(), None, None).total <= 0.5
    assert Budget.of(SolveOptions(), None, None).total is None   # and only inside the block


def test_split_time_budget_does_not_lift_the_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = xor_data(24)
    limits = slow_solves(monkeypatch, split_module, 0.3)
    t0 = time.perf_counter()
    res = train_split(small_net(), X, y, 2, options=SolveOptions(time_limit=1.5), time_budget=30, step_time=3,
                      max_splits=20)
    wall = time.perf_counter() - t0
    assert res.verified
    assert all(t is not None and t <= 1.5 for t in limits)
    assert wall < 1.5 + 3.0                                     # 21 solves of 0.3 s and more without the bound
    assert any("time budget is spent" in n for n in res.notes)


def test_split_starts_no_import_of_scikit_learn_it_has_no_time_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first split imports scikit-learn (about a second, which nothing can stop): with less time left than
    that the loop stops before it, with a note that says why, instead of ending past the time limit."""
    import sys

    X, y = xor_data(24)
    monkeypatch.delitem(sys.modules, "sklearn.cluster")       # as in a process that has not imported it yet
    monkeypatch.setattr(split_module, "KMEANS_IMPORT_SECONDS", 1e6)
    called: list[int] = []
    monkeypatch.setattr(split_module, "split_cluster", lambda *a: called.append(1))
    res = train_split(small_net(), X, y, 2, options=SolveOptions(time_limit=60), max_splits=20)
    assert res.verified
    assert called == []
    assert any("less than the first split's import of scikit-learn" in n for n in res.notes), res.notes
    monkeypatch.setattr(split_module, "KMEANS_IMPORT_SECONDS", 0.0)     # with the time for it, it splits
    monkeypatch.setattr(split_module, "split_cluster", lambda *a: (called.append(1), a[1][:1])[1])
    train_split(small_net(), X, y, 2, options=SolveOptions(time_limit=60), max_splits=1)
    assert called == [1]


def test_the_first_split_needs_time_only_for_what_is_not_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    assert split_module.first_split_seconds() == 0.0                  # these tests import sklearn.cluster
    monkeypatch.delitem(sys.modules, "sklearn.cluster")
    assert split_module.first_split_seconds() == pytest.approx(split_module.KMEANS_IMPORT_SECONDS / 5)
    monkeypatch.delitem(sys.modules, "sklearn")
    assert split_module.first_split_seconds() == split_module.KMEANS_IMPORT_SECONDS


def test_local_search_time_budget_does_not_lift_the_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = xor_data(24)
    limits = slow_solves(monkeypatch, local_search_module, 0.1)
    res = train_local_search(small_net(), X, y, 2, options=SolveOptions(time_limit=1.0), time_budget=30,
                             rounds=2, seed=1)
    assert res.verified
    assert limits
    assert all(t is not None and t <= 1.0 for t in limits)


def test_cli_time_limit_bounds_the_time_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = write_program(tmp_path, "split(max_splits=20, time_budget=90, step_time=3, seed=0)")
    limits = slow_solves(monkeypatch, split_module, 0.3)
    t0 = time.perf_counter()
    code = main(["solve", str(path), "-q", "--time-limit", "1.5"])
    wall = time.perf_counter() - t0
    assert code == 0, capsys.readouterr().err
    assert all(t is not None and t <= 1.5 for t in limits)
    assert wall < 1.5 + 3.0


# -- bug 4: the run's clock starts before the data are loaded ----------------------------------------------------
def test_cli_time_limit_counts_loading_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = write_program(tmp_path, "local_search(rounds=1, seed=1)")
    real_dataset = task_module.task_dataset

    def slow_dataset(*args: Any, **kwargs: Any) -> Any:
        time.sleep(1.0)                                          # a large data set
        return real_dataset(*args, **kwargs)

    monkeypatch.setattr(task_module, "task_dataset", slow_dataset)
    limits = slow_solves(monkeypatch, local_search_module, 0.0)
    code = main(["solve", str(path), "-q", "--time-limit", "2"])
    assert code == 0, capsys.readouterr().err
    assert limits
    assert limits[0] is not None
    assert limits[0] <= 1.05                                     # 2 s less the second spent loading the data
