"""Sparse gradient training end to end: the pruned network predicts exactly as the trained one, the strategies
in the language, and the pipeline solve -> compress -> verify on a small network."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import BCW_CSV, EXAMPLES

from nnmip.backends import is_installed
from nnmip.check import check
from nnmip.cli import main
from nnmip.drivers.sparse import SparseConfig, remove_dead, train_sparse
from nnmip.drivers.sparse.task import config_of
from nnmip.drivers.task import load_program, run_train_task
from nnmip.ir.builder import NetworkBuilder, fixed, real
from nnmip.ir.losses import smooth_loss
from nnmip.ir.train_spec import PruneSpec
from nnmip.syntax import parse


def mlp(n_in: int, hidden: int, n_out: int) -> object:
    nb = NetworkBuilder("mlp")
    x = nb.input("x", n_in)
    h = nb.relu("r", nb.dense("h", x, hidden, weights=real(-5, 5), bias=real(-5, 5)))
    nb.identity("y", nb.dense("o", h, n_out, weights=real(-5, 5), bias=real(-5, 5)))
    return nb.build()


def test_remove_dead_units_by_hand() -> None:
    W1 = np.array([[1.0, -2.0], [0.0, 0.0], [0.0, 0.0], [3.0, 1.0]])
    b1 = np.array([0.5, -1.0, 2.0, 0.0])      # unit 1 dead (zero row, relu(-1) = 0); unit 2 constant relu(2) = 2
    W2 = np.array([[1.0, 4.0, 1.0, 0.0], [2.0, 5.0, -1.0, 0.0]])    # unit 3 unused (zero outgoing column)
    nb = NetworkBuilder("n")
    x = nb.input("x", 2)
    h = nb.relu("r", nb.dense("h", x, 4, weights=fixed(W1), bias=fixed(b1)))
    nb.identity("y", nb.dense("o", h, 2, weights=fixed(W2), bias=fixed([0.0, 0.0])))
    net = nb.build()
    small, kept, removed = remove_dead(net)
    assert sorted(r.index[0] for r in removed) == [1, 3]
    assert kept.tolist() == [0, 1]
    W, b = small.params()["h"]
    np.testing.assert_array_equal(W, W1[[0, 2]])
    np.testing.assert_array_equal(small.params()["o"][0], W2[:, [0, 2]])
    X = np.random.default_rng(0).normal(size=(200, 2))
    np.testing.assert_array_equal(small.predict(X), net.predict(X))
    np.testing.assert_allclose(small.forward(X), net.forward(X), rtol=0, atol=1e-12)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X[:500] / 16.0, y[:500]


@pytest.mark.parametrize("method", ["obproxsg", "prox_sg", "rda", "spr"])
def test_pruned_network_predicts_exactly_as_the_trained_one(method: str, digits) -> None:  # type: ignore[no-untyped-def]
    X, y = digits
    net = mlp(64, 16, 10)
    specs = (PruneSpec("neurons", ("h",)), PruneSpec("features", ("x",)))
    cfg = SparseConfig(method=method, lam=0.05, lr=0.1, epochs=8, batch=32, n_p=4,
                       n_o=None, gamma=20.0, penalty="group", alpha=0.5, tau=0.01, finetune=2)
    res = train_sparse(net, X, y, 10, cfg, specs=specs)
    # the reported objective is the forward pass's
    out = res.network.forward(X)
    assert res.data_loss == pytest.approx(smooth_loss("cross_entropy", out, y, 10)[0], rel=1e-12)
    if method != "rda":   # dual averaging centred at the random start zeroes nothing in 8 epochs
        assert res.sparsity["features_removed"] > 0        # the blank border pixels of the digits
        assert res.pruned.n_inputs == res.kept_features.size < 64
    np.testing.assert_array_equal(res.pruned.predict(X[:, res.kept_features]), res.network.predict(X))
    np.testing.assert_allclose(res.pruned.forward(X[:, res.kept_features]), out, atol=1e-9)
    assert np.mean(res.network.predict(X) == y) > 0.6
    assert len(res.history) == 10
    assert res.history[-1]["phase"] == "finetune"


def test_finetuning_keeps_the_zeros(digits) -> None:  # type: ignore[no-untyped-def]
    X, y = digits
    net = mlp(64, 16, 10)
    res = train_sparse(net, X, y, 10, SparseConfig(method="obproxsg", lam=0.01, epochs=6, n_p=3, n_o=None,
                                                   finetune=3))
    dens = [h["density"] for h in res.history]
    assert dens[0] < 1.0
    assert dens[-1] == dens[-2] == dens[-3] == dens[5]      # fine-tuning epochs: zeros frozen, density fixed
    assert res.sparsity["zero_fraction"] == pytest.approx(1 - dens[-1])


def test_obproxsg_plus_never_revives_a_zero_in_orthant_epochs(digits) -> None:  # type: ignore[no-untyped-def]
    X, y = digits
    res = train_sparse(mlp(64, 16, 10), X, y, 10, SparseConfig(method="obproxsg", lam=0.01, epochs=6, n_p=2,
                                                               n_o=None))
    orth = [h["zero_weights"] for h in res.history if h["stage"] == "orthant"]
    assert len(orth) == 4
    assert orth == sorted(orth)


TASK = """
data d = sklearn("digits", scale=minmax) split(train=0.6, validation=0.2, test=0.2, seed=0)
network n(x: 64) {
    h = dense(x, 8, weights=real[-5, 5], bias=real[-5, 5])
    r = relu(h)
    y = dense(r, 10, weights=real[-5, 5], bias=real[-5, 5])
}
train n on d {
    prune = neurons(h)
    STRATEGY
}
"""


def test_strategy_options_reach_the_configuration() -> None:
    cp = check(parse(TASK.replace("STRATEGY", "strategy = obproxsg(lambda=0.02, lr=0.05, epochs=7, batch=full, "
                                  "n_p=3, n_o=inf, penalty=group, finetune=2, schedule=step, step_every=3)")))
    cfg = config_of(cp.tasks[0])
    assert (cfg.method, cfg.lam, cfg.lr, cfg.epochs, cfg.batch, cfg.n_p, cfg.n_o, cfg.penalty, cfg.finetune) == \
        ("obproxsg", 0.02, 0.05, 7, None, 3, None, "group", 2)
    assert cfg.loss == "cross_entropy"         # the default loss of the gradient strategies
    assert cfg.lr_at(2) == 0.05
    assert cfg.lr_at(3) == pytest.approx(0.005)
    cp = check(parse(TASK.replace("STRATEGY", "lambda = 0.5\n alpha = 0.3\n strategy = spr(tau=0.01)")))
    cfg = config_of(cp.tasks[0])
    assert (cfg.method, cfg.lam, cfg.alpha, cfg.tau) == ("spr", 0.5, 0.3, 0.01)


@pytest.mark.parametrize(("strategy", "code"), [("obproxsg(penalty=box)", "E0154"), ("rda(n_o=3)", "E0105"),
                                                ("obproxsg(n_o=0)", "E0108"), ("prox_sg(batch=-1)", "E0108")])
def test_bad_strategy_options(strategy: str, code: str) -> None:
    from nnmip.errors import CheckError

    with pytest.raises(CheckError) as exc:
        check(parse(TASK.replace("STRATEGY", f"strategy = {strategy}")))
    assert code in [d.code for d in exc.value.diagnostics]


needs_highs = pytest.mark.skipif(not is_installed("highs"), reason="highspy is not installed")


@needs_highs
def test_solve_compress_verify_pipeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(BCW_CSV, data / BCW_CSV.name)
    src = tmp_path / "bcw.nnmip"
    src.write_text(f"""
data bcw = csv("data/{BCW_CSV.name}", delimiter=";", label=-1, scale=minmax)
           split(train=0.5, validation=0.25, test=0.25, seed=0)
network clf(x: 9 real[0, 1]) {{
    h = dense(x, 12, weights=real[-5, 5], bias=real[-5, 5])
    r = relu(h)
    y = dense(r, 2, weights=real[-5, 5], bias=real[-5, 5])
}}
train clf on bcw {{
    prune = [neurons(h), features(x)]
    strategy = obproxsg(lambda=0.01, lr=0.1, epochs=30, batch=16, n_p=10, n_o=inf, penalty=group, finetune=5)
}}
""", encoding="utf-8")
    out_json, onnx, npz = tmp_path / "r.json", tmp_path / "s.onnx", tmp_path / "s.npz"
    assert main(["solve", str(src), "--json", str(out_json), "--save-onnx", str(onnx), "--save-weights",
                 str(npz)]) == 0
    printed = capsys.readouterr()
    assert "epoch  29 orthant" in printed.err
    assert "validation accuracy" in printed.err
    assert "zero weights" in printed.out
    assert "pruned network" in printed.out
    d = json.loads(out_json.read_text())
    sp = d["extension"]["sparse"]
    assert d["verified"]
    assert d["extension"]["pruned_agrees"]
    assert len(d["history"]) == 35
    assert d["metrics"]["test"] > 0.9
    assert sp["neurons_removed"] + sp["features_removed"] > 0
    kept = d["pruned_network"]["kept_features"]
    # the saved (pruned) network takes the raw kept features and predicts as the trained network on every row
    import onnxruntime as ort

    rep = run_train_task(load_program(src))      # the same seeded run
    raw = np.asarray(rep.dataset.X_raw, dtype=np.float64)
    assert rep.pruned is not None
    sess = ort.InferenceSession(str(onnx))
    scores = sess.run(None, {sess.get_inputs()[0].name: raw[:, kept]})[0]
    np.testing.assert_array_equal(np.argmax(scores, axis=1), rep.network.predict(rep.dataset.scaler.transform(raw)))
    # compress (stable units over the declared input box [0, 1] of the scaled features) and verify the result
    small = tmp_path / "small.npz"
    assert main(["compress", "--npz", str(npz), "-o", str(small), "--samples", "2000"]) == 0
    np.save(tmp_path / "p.npy", raw[0, kept])      # verify --npz folds the scaling in: its points are raw
    assert main(["verify", "--npz", str(small), "--point", str(tmp_path / "p.npy"), "--linf", "0.05", "--json",
                 str(tmp_path / "v.json")]) == 0
    v = json.loads((tmp_path / "v.json").read_text())
    assert v["result"] in ("certified", "counterexample"), v


def test_example_digits_sparse() -> None:
    rep = run_train_task(load_program(EXAMPLES / "digits_sparse.nnmip"))
    ext = rep.result.extension
    assert rep.result.verified
    assert ext["pruned_agrees"]
    assert ext["sparse"]["zero_fraction"] >= 0.75
    assert rep.metrics["test"] is not None
    assert rep.metrics["test"] >= 0.93
    assert rep.pruned is not None
    assert rep.pruned.num_params() < rep.network.num_params()


@pytest.mark.parametrize("args", [["compile", "-o", "OUT.lp"], ["solve", "--relax"],
                                  ["solve", "--emit", "perspective-cuts"]])
def test_gradient_tasks_have_no_training_model(args: list[str], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "t.nnmip"
    src.write_text(TASK.replace("STRATEGY", "strategy = prox_sg(epochs=1)"), encoding="utf-8")
    argv = [a.replace("OUT", str(tmp_path / "m")) for a in args]
    assert main([argv[0], str(src), *argv[1:]]) == 2
    assert "error[E0173]" in capsys.readouterr().err
    assert not (tmp_path / "m.lp").exists()


def test_obproxsg_reaches_the_l1_logistic_optimum_sparser_than_prox_sg() -> None:
    """The convex benchmark in small: lambda = 1/N l1 logistic regression on breast_cancer, 100 epochs."""
    import warnings

    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    N, d = X.shape
    nb = NetworkBuilder("logreg")
    nb.identity("y", nb.dense("w", nb.input("x", d), 1, weights=real(-1e6, 1e6), bias=None))
    net = nb.build()
    import sklearn

    new = tuple(int(v) for v in sklearn.__version__.split(".")[:2]) >= (1, 8)   # l1_ratio replaces penalty
    l1: dict[str, Any] = {"l1_ratio": 1.0} if new else {"penalty": "l1"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w_sk = LogisticRegression(**l1, solver="liblinear", C=1.0, fit_intercept=False, tol=1e-12,
                                  max_iter=100_000).fit(X, y).coef_.ravel()
    F_sk = smooth_loss("cross_entropy", X @ w_sk[:, None], y, 2)[0] + np.abs(w_sk).sum() / N
    runs = {m: train_sparse(net, X, y, 2, SparseConfig(method=m, lam=1.0 / N, lr=1.0, epochs=100, n_p=20, n_o=None),
                            x0=np.zeros(d)) for m in ("obproxsg", "prox_sg")}
    ob, px = runs["obproxsg"], runs["prox_sg"]
    assert ob.objective <= 1.01 * F_sk
    assert ob.sparsity["density"] <= np.mean(w_sk != 0) + 0.1
    assert px.sparsity["density"] > ob.sparsity["density"] + 0.2
