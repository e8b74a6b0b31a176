"""Ensembles (one_vs_one, one_vs_rest), lexicographic objectives, one time budget per fit with a feasible start,
strategies with robust sets and pruning."""

from __future__ import annotations

import time

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.datasets import load_iris

from nnmip.check import check
from nnmip.drivers.strategies import train_ensemble, train_split
from nnmip.drivers.task import run_train_task
from nnmip.drivers.train import activation_margin, constant_params, train_network, weight_norm
from nnmip.errors import CheckError
from nnmip.io.data import Scaler
from nnmip.io.ensemble import ensemble_to_onnx, is_ensemble_file, load_ensemble, save_ensemble
from nnmip.ir.builder import NetworkBuilder, fixed, integer, real
from nnmip.ir.ensemble import Ensemble, member_tasks
from nnmip.solution import SolveOptions, Status
from nnmip.syntax import parse


def member_net(hidden: int = 0, n_in: int = 4, out_bias: float = 5.0):
    nb = NetworkBuilder("m")
    x = nb.input("x", n_in)
    if hidden:
        x = nb.step("a", nb.dense("h", x, hidden, weights=real(-1, 1), bias=real(-5, 5)))
        nb.step("y", nb.dense("o", x, 1, weights=integer(-1, 1), bias=real(-out_bias, out_bias)))
    else:
        nb.step("y", nb.dense("o", x, 1, weights=real(-1, 1), bias=real(-out_bias, out_bias)))
    return nb.build()


def iris_scaled():
    X, y = load_iris(return_X_y=True)
    sc = Scaler.fit("minmax", X)
    return X, sc.transform(X), y.astype(np.int64), sc


def run_onnx(model, X):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out, label = sess.run(["output", "label"], {"input": np.asarray(X, dtype=np.float64)})
    return out, label


# ---------------------------------------------------------------------------------------------------------
# the vote
# ---------------------------------------------------------------------------------------------------------
def _linear(w, b):
    nb = NetworkBuilder("lin")
    x = nb.input("x", 1)
    nb.step("y", nb.dense("o", x, 1, weights=fixed([[w]]), bias=fixed([b])))
    return nb.build()


def test_one_vs_one_vote_and_tie_rule_match_onnx() -> None:
    # three classes; members (0,1), (0,2), (1,2).  At x = 1: (0,1) -> 1, (0,2) -> 2, (1,2) -> 1: class 1 wins.
    # At x = -1: (0,1) -> 0, (0,2) -> 2, (1,2) -> 1: one vote each, the tie goes to class 0.
    members = [_linear(1.0, 0.0), _linear(0.0, 1.0), _linear(1.0, -5.0)]
    ens = Ensemble("one_vs_one", 3, members, member_tasks("one_vs_one", 3))
    X = np.array([[1.0], [-1.0], [10.0]])
    np.testing.assert_array_equal(ens.votes(X), [[0, 2, 1], [1, 1, 1], [0, 1, 2]])
    np.testing.assert_array_equal(ens.predict(X), [1, 0, 2])
    out, label = run_onnx(ensemble_to_onnx(ens), X)
    np.testing.assert_array_equal(out, ens.votes(X))
    np.testing.assert_array_equal(label, [1, 0, 2])


def test_one_vs_rest_scores_are_pre_activations() -> None:
    members = [_linear(1.0, 0.5), _linear(-1.0, 0.5), _linear(2.0, -3.0)]
    ens = Ensemble("one_vs_rest", 3, members, member_tasks("one_vs_rest", 3))
    X = np.array([[0.0], [-2.0], [4.0], [-0.5]])
    np.testing.assert_allclose(ens.scores(X), np.c_[X[:, 0] + 0.5, -X[:, 0] + 0.5, 2 * X[:, 0] - 3])
    np.testing.assert_array_equal(ens.predict(X), [0, 1, 2, 1])   # x=0: 0.5, 0.5, -3 -> tie to class 0
    _, label = run_onnx(ensemble_to_onnx(ens), X)
    np.testing.assert_array_equal(label, ens.predict(X))


def test_bad_ensembles_are_refused() -> None:
    with pytest.raises(ValueError, match="needs members"):
        Ensemble("one_vs_one", 3, [_linear(1, 0)] * 2, [(0, 1), (0, 2)])
    with pytest.raises(ValueError, match="kind"):
        member_tasks("all_pairs", 3)
    with pytest.raises(ValueError, match="one output unit"):
        train_ensemble(_two_out(), np.zeros((2, 1)), np.array([0, 1]), 2)


def _two_out():
    nb = NetworkBuilder("two")
    x = nb.input("x", 1)
    nb.step("y", nb.dense("o", x, 2, weights=real(-1, 1), bias=real(-1, 1)))
    return nb.build()


# ---------------------------------------------------------------------------------------------------------
# training ensembles
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "workers"), [("one_vs_one", 2), ("one_vs_rest", 1)])
def test_ensemble_on_iris_saved_and_exported(tmp_path, kind: str, workers: int) -> None:
    X_raw, X, y, sc = iris_scaled()
    tr = np.arange(0, 150, 3)
    te = np.setdiff1d(np.arange(150), tr)
    res = train_ensemble(member_net(), X[tr], y[tr], 3, kind=kind, eps=0.05, objectives=("max_margin",),
                         options=SolveOptions(time_limit=30), workers=workers, margin_cap=4.0)
    ens = res.ensemble
    assert res.verified
    assert res.network is None
    assert len(ens.members) == 3
    assert len(res.history) == 3
    for h in res.history:
        assert h["verified"]
        assert [s["stage"] for s in h["stages"]] == ["hamming", "max_margin"]
        assert h["stages"][1]["forward_value"] >= -h["stages"][1]["solver_value"] - 1e-6
    # each member re-checked here by its own forward pass on its two-class problem
    from nnmip.drivers.strategies.ensemble import member_data

    for (pair, net), h in zip(zip(ens.pairs, ens.members, strict=True), res.history, strict=True):
        Xm, ym = member_data(kind, pair, X[tr], y[tr])
        assert h["loss"] == float(np.sum(net.predict(Xm) != ym))
    acc = float(np.mean(ens.predict(X[te]) == y[te]))
    assert acc >= 0.85, acc
    assert res.extension["train_accuracy"] == float(np.mean(ens.predict(X[tr]) == y[tr]))
    # one npz, one ONNX graph on raw features, same predictions
    path = tmp_path / "ens.npz"
    save_ensemble(ens, path, sc, extra={"classes": np.arange(3)})
    assert is_ensemble_file(path)
    back, sc2 = load_ensemble(path)
    assert sc2 is not None
    np.testing.assert_array_equal(back.predict(sc2.transform(X_raw)), ens.predict(X))
    _, label = run_onnx(ensemble_to_onnx(back, sc2), X_raw)
    np.testing.assert_array_equal(label, ens.predict(X))


@pytest.mark.parametrize("where", ["processes", "dask"])
def test_ensemble_members_on_the_shared_executor_match_serial(where: str) -> None:
    """Members are tasks of the shared executor: local processes and a Dask cluster train the same members,
    with the same weights, as a serial run."""
    from nnmip.drivers.executor import DaskExecutor, ProcessExecutor, SerialExecutor

    if where == "dask":
        pytest.importorskip("distributed", reason="Dask distributed is not installed (pip install 'nnmip[dask]')")
    _, X, y, _ = iris_scaled()
    tr = np.arange(0, 150, 5)

    def fit(ex):
        with ex:
            return train_ensemble(member_net(), X[tr], y[tr], 3, kind="one_vs_one", eps=0.05, executor=ex)
    ref = fit(SerialExecutor())
    got = fit(ProcessExecutor(2) if where == "processes" else DaskExecutor("local", workers=2))
    assert ref.verified
    assert got.verified
    assert [h["loss"] for h in got.history] == [h["loss"] for h in ref.history]
    assert [h["status"] for h in got.history] == [h["status"] for h in ref.history]
    for a, b in zip(ref.ensemble.members, got.ensemble.members, strict=True):
        for (Wa, ba), (Wb, bb) in zip(a.params().values(), b.params().values(), strict=True):
            np.testing.assert_array_equal(Wa, Wb)
            np.testing.assert_array_equal(ba, bb)
    assert got.notes[0].startswith("one_vs_one ensemble of 3 exact members, 2 processes")
    np.testing.assert_array_equal(got.ensemble.predict(X), ref.ensemble.predict(X))


def test_ensemble_members_by_split_strategy() -> None:
    _, X, y, _ = iris_scaled()
    tr = np.arange(0, 150, 2)
    res = train_ensemble(member_net(hidden=2), X[tr], y[tr], 3, kind="one_vs_one", member="split",
                         member_options={"max_splits": 3}, eps=0.05, options=SolveOptions(time_limit=20),
                         workers=1)
    assert res.verified
    assert all(h["verified"] for h in res.history)
    assert float(np.mean(res.ensemble.predict(X[tr]) == y[tr])) >= 0.7


# ---------------------------------------------------------------------------------------------------------
# lexicographic objectives
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_lexicographic_stages_keep_the_loss_and_are_verified(milp_solver: str) -> None:
    rng = np.random.default_rng(3)
    X = rng.uniform(0, 1, size=(24, 2))
    y = (X[:, 0] + 0.3 * X[:, 1] > 0.6).astype(np.int64)
    y[:2] = 1 - y[:2]                                     # two label flips: the loss stays positive
    nb = NetworkBuilder("n")
    x = nb.input("x", 2)
    a = nb.step("a", nb.dense("h", x, 2, weights=real(-1, 1), bias=real(-2, 2)))
    nb.step("y", nb.dense("o", a, 1, weights=integer(-1, 1), bias=real(-2, 2)))
    net = nb.build()
    opts = SolveOptions(time_limit=60, mip_gap=0.0)
    base = train_network(net, X, y, 2, eps=0.01, solver=milp_solver, options=opts)
    lex = train_network(net, X, y, 2, eps=0.01, solver=milp_solver, options=opts,
                        objectives=("max_margin", "min_weight"), margin_cap=2.0)
    assert base.status is Status.OPTIMAL
    assert base.verified
    assert lex.verified
    assert lex.loss == base.loss                          # the first objective keeps its optimum
    stages = {h["stage"]: h for h in lex.history}
    assert list(stages) == ["hamming", "max_margin", "min_weight"]
    assert all(h["accepted"] for h in lex.history)
    gamma = -stages["max_margin"]["solver_value"]
    assert gamma > 0
    # the margin holds in the forward pass of the final network (the min_weight stage keeps it)
    assert activation_margin(lex.network, X, 0.01) >= gamma - 1e-6 * (1 + gamma) - 1e-6   # stage tolerance
    trained = [n for n in lex.network.dense_nodes()]
    assert stages["min_weight"]["forward_value"] == pytest.approx(weight_norm(lex.network, trained), abs=1e-6)


def test_objective_list_in_the_language() -> None:
    src = PROGRAM.replace("LOSS", "[hamming, max_margin, min_weight]").replace("STRATEGY", "exact").replace(
        "OUT", "3")
    cp = check(parse(src, "<test>"))
    assert cp.tasks[0].loss.then == ("max_margin", "min_weight")
    rep = run_train_task(cp)
    assert rep.result.verified
    assert [h["stage"] for h in rep.result.history] == ["hamming", "max_margin", "min_weight"]


@pytest.mark.parametrize(("loss", "col"), [("[hamming, hinge]", 22), ("[max_margin, min_weight]", 12),
                                           ("[hamming, min_weight, min_weight]", 34)])
def test_bad_objective_lists(loss: str, col: int) -> None:
    src = PROGRAM.replace("LOSS", loss).replace("STRATEGY", "exact").replace("OUT", "3")
    with pytest.raises(CheckError) as ei:
        check(parse(src, "<test>"))
    d = ei.value.diagnostics[0]
    assert (d.code, d.span.column) == ("E0156", col)


PROGRAM = """\
data d = sklearn("iris") split(train=0.5, validation=0.25, test=0.25, seed=0)
network n(x: 4) {
    h = dense(x, 2, weights=real[-1, 1], bias=real[-5, 5])
    a = step(h)
    o = dense(a, OUT, weights=int[-1, 1], bias=real[-5, 5])
    y = step(o)
}
train n on d {
    loss = LOSS
    strategy = STRATEGY
    eps = 0.05
}
solve with highs(time_limit=20)
"""


def test_ensemble_strategy_in_the_language(tmp_path) -> None:
    from nnmip.cli import main

    src = PROGRAM.replace("LOSS", "[hamming, max_margin]").replace(
        "STRATEGY", "one_vs_one(member=split(max_splits=2), workers=2)").replace("OUT", "1")
    f = tmp_path / "ovo.nnmip"
    f.write_text(src)
    cp = check(parse(src, "<test>"))
    assert dict(cp.tasks[0].strategy.options)["member"] == "split"
    code = main(["solve", str(f), "-q", "--save-weights", str(tmp_path / "w.npz"),
                 "--save-onnx", str(tmp_path / "w.onnx"), "--json", str(tmp_path / "r.json")])
    assert code == 0
    import json

    d = json.loads((tmp_path / "r.json").read_text())
    ens, sc = load_ensemble(tmp_path / "w.npz")
    X_raw, _, y, _ = iris_scaled()
    test = np.asarray(d["data"]["test"])
    assert d["metrics"]["test"] == pytest.approx(float(np.mean(ens.predict(sc.transform(X_raw[test])) == y[test])))
    import onnx

    _, label = run_onnx(onnx.load(str(tmp_path / "w.onnx")), X_raw)
    np.testing.assert_array_equal(label, ens.predict(sc.transform(X_raw)))


@pytest.mark.parametrize(("strategy", "code"), [("one_vs_one(member=one_vs_rest)", "E0154"),
                                                ("one_vs_rest(member=anneal)", "E0153")])
def test_bad_ensemble_members(strategy: str, code: str) -> None:
    src = PROGRAM.replace("LOSS", "hamming").replace("STRATEGY", strategy).replace("OUT", "1")
    with pytest.raises(CheckError) as ei:
        check(parse(src, "<test>"))
    assert ei.value.diagnostics[0].code == code


# ---------------------------------------------------------------------------------------------------------
# one time budget per fit, a feasible start always
# ---------------------------------------------------------------------------------------------------------
def test_constant_classifier_is_the_feasible_start() -> None:
    net = member_net(hidden=2)
    X = np.random.default_rng(0).uniform(0, 1, size=(30, 4))
    y = np.r_[np.ones(20, np.int64), np.zeros(10, np.int64)]
    params = constant_params(net, X, y, 2, 0.05)
    const = net.with_params(params)
    np.testing.assert_array_equal(const.predict(X), np.ones(30))     # the most frequent class
    assert all(np.all(W == 0) for W, _ in params.values())
    assert activation_margin(const, X, 0.05) >= 0


def test_every_backend_returns_a_verified_network_when_time_runs_out(milp_solver: str) -> None:
    import dataclasses

    from conftest import EXAMPLES, licence_skip

    from nnmip.drivers.task import load_program, task_dataset

    cp = load_program(EXAMPLES / "bcw.nnmip")
    task = dataclasses.replace(cp.tasks[0], subset=None)
    ds = task_dataset(cp, task)
    net = cp.networks[task.network]
    X, y = ds.X(ds.train), ds.y[ds.train]
    t0 = time.perf_counter()
    with licence_skip(milp_solver):
        res = train_network(net, X, y, 2, solver=milp_solver, options=SolveOptions(time_limit=1.0))
    took = time.perf_counter() - t0
    assert res.verified
    assert res.network is not None
    assert res.status in (Status.TIME_LIMIT, Status.OPTIMAL)
    assert res.loss == pytest.approx(float(np.sum(np.abs(res.network.forward(X) - np.eye(2)[y]))))
    assert took < 10, took


def test_strategy_time_limit_bounds_the_whole_fit() -> None:
    X, y = load_iris(return_X_y=True)
    X = Scaler.fit("minmax", X).transform(X)
    nb = NetworkBuilder("n")
    x = nb.input("x", 4)
    a = nb.step("a", nb.dense("h", x, 4, weights=real(-1, 1), bias=real(-5, 5)))
    nb.step("y", nb.dense("o", a, 3, weights=integer(-1, 1), bias=real(-5, 5)))
    net = nb.build()
    t0 = time.perf_counter()
    res = train_split(net, X, y.astype(np.int64), 3, options=SolveOptions(time_limit=3.0), max_splits=50)
    assert time.perf_counter() - t0 < 3.0 + 3.0
    assert res.verified


# ---------------------------------------------------------------------------------------------------------
# strategies with robust sets and pruning
# ---------------------------------------------------------------------------------------------------------
ROBUST = """\
data bcw = csv("CSV", delimiter=";", label=-1, scale=minmax)
           split(train=0.5, validation=0.25, test=0.25, seed=0)
network bdnn(x: 9) {
    h1 = dense(x, 2, weights=real[-1, 1], bias=real[-10, 10])
    a1 = step(h1)
    h2 = dense(a1, 1, weights=int[-1, 1], bias=real[-5, 5])
    y  = step(h2)
}
train bdnn on bcw {
    subset = random(80, seed=1)
    eps = 0.05
    robust x in linf(0.05)
    EXTRA
    strategy = STRATEGY
}
solve with highs(time_limit=20)
"""


@pytest.mark.parametrize("strategy", ["split(max_splits=3)", "local_search(rounds=1)"])
def test_strategies_train_robustly(strategy: str) -> None:
    from conftest import BCW_CSV

    from nnmip.drivers.evaluate import certified

    src = ROBUST.replace("CSV", str(BCW_CSV)).replace("STRATEGY", strategy).replace("EXTRA", "")
    cp = check(parse(src, "<test>"))
    rep = run_train_task(cp)
    res = rep.result
    assert res.verified
    ds = rep.dataset
    cert = float(np.mean(certified(res.network, ds.X(ds.test), ds.y[ds.test], cp.tasks[0].robust)))
    assert rep.metrics["certified_test"] == cert
    assert cert >= 0.6


def test_split_with_pruning_keeps_predictions() -> None:
    from conftest import BCW_CSV

    src = ROBUST.replace("CSV", str(BCW_CSV)).replace("STRATEGY", "split(max_splits=2)").replace(
        "    robust x in linf(0.05)\n", "").replace("EXTRA", "prune = [features(cost=0.5)]")
    cp = check(parse(src, "<test>"))
    rep = run_train_task(cp)
    assert rep.result.verified
    assert rep.result.extension.get("pruned_agrees") is True
    assert rep.pruned is not None


def test_ensemble_with_robust_training_is_refused() -> None:
    from conftest import BCW_CSV

    src = ROBUST.replace("CSV", str(BCW_CSV)).replace("STRATEGY", "one_vs_one").replace("EXTRA", "")
    with pytest.raises(CheckError) as ei:
        check(parse(src, "<test>"))
    assert ei.value.diagnostics[0].code == "E0155"


@pytest.mark.slow
@pytest.mark.parametrize("ensemble", [None, "one_vs_one"])
def test_cross_val_score_on_iris_within_a_minute(ensemble: str | None) -> None:
    from sklearn.model_selection import cross_val_score

    from nnmip.sklearn import BinarizedNetworkClassifier

    X, y = load_iris(return_X_y=True)
    t0 = time.perf_counter()
    scores = cross_val_score(BinarizedNetworkClassifier(time_limit=10, ensemble=ensemble), X, y, cv=5)
    took = time.perf_counter() - t0
    assert took < 75, took          # five fits of at most 10 s each, plus set-up
    assert scores.mean() > (0.8 if ensemble else 0.5), scores


def test_solve_jobs_runs_the_members_on_the_shared_executor(tmp_path) -> None:
    """``nnmip solve --jobs N`` trains the members of an ensemble on N local processes (1: serially)."""
    import json

    from nnmip.cli import main

    src = PROGRAM.replace("LOSS", "hamming").replace(
        "STRATEGY", "one_vs_one(member=split(max_splits=2), workers=2)").replace("OUT", "1")
    f = tmp_path / "ovo.nnmip"
    f.write_text(src)
    for jobs in (1, 2):
        out = tmp_path / f"r{jobs}.json"
        assert main(["solve", str(f), "-q", "--jobs", str(jobs), "--json", str(out)]) == 0
        notes = json.loads(out.read_text())["notes"]
        assert any(n.startswith(f"one_vs_one ensemble of 3 split members, {jobs} processes") for n in notes), notes
