"""Robust training (docs/formulations.md §8): language, formulation, certification and attack.

Certification is re-checked here by an independent oracle: the extreme values of each first-layer unit over the
set, found by enumerating the set's vertices (linf, box, l1) or its maximiser (l2), from weights saved to and
loaded from an .npz file.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from nnmip.backends import is_installed
from nnmip.check import check
from nnmip.drivers.evaluate import attack, certified, first_layer_stable
from nnmip.drivers.train import train_network
from nnmip.errors import BackendUnavailable, CheckError
from nnmip.ir.builder import NetworkBuilder, integer, real
from nnmip.ir.losses import data_loss
from nnmip.ir.train_spec import RobustSpec
from nnmip.solution import SolveOptions, Status
from nnmip.syntax import parse

ROOT = Path(__file__).resolve().parents[1]
BCW = ROOT / "examples" / "data" / "breast-cancer-wisconsin.csv"


def small_net(width: int = 3, d: int = 4):
    nb = NetworkBuilder("r")
    x = nb.input("x", d)
    a = nb.step("a1", nb.dense("h1", x, width, weights=real(-1, 1), bias=real(-2, 2)))
    nb.step("y", nb.dense("h2", a, 1, weights=integer(-1, 1), bias=real(-1, 1)))
    return nb.build()


def data(n: int = 16, d: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.random((n, d))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0.75).astype(np.int64)
    return X, y


def extremes(W: np.ndarray, b: np.ndarray, x: np.ndarray, spec: RobustSpec) -> tuple[np.ndarray, np.ndarray]:
    """Oracle: min and max of a = W (x + d) + b over the set, by vertices / the l2 maximiser."""
    d = x.size
    if spec.kind in ("linf", "box"):
        r = np.full(d, spec.radius) if spec.kind == "linf" else np.asarray(spec.radii)
        V = np.array(list(itertools.product([-1.0, 1.0], repeat=d))) * r
    elif spec.kind == "l1":
        V = np.vstack([spec.radius * np.eye(d), -spec.radius * np.eye(d)])
    else:
        nrm = np.linalg.norm(W, axis=1, keepdims=True)
        U = np.where(nrm > 0, W / np.where(nrm > 0, nrm, 1), 0.0) * spec.radius
        V = np.vstack([U, -U])            # each unit's maximiser and minimiser
    A = (x[None, :] + V) @ W.T + b
    return A.min(axis=0), A.max(axis=0)


def oracle_stable(net, X: np.ndarray, spec: RobustSpec) -> np.ndarray:
    W, b = net.params()["h1"]
    out = np.zeros((X.shape[0], W.shape[0]), dtype=bool)
    for i, x in enumerate(X):
        lo, hi = extremes(W, b, x, spec)
        out[i] = (lo > 0) | (hi <= 0)
    return out


def errors_of(src: str) -> list[tuple[str, int, int]]:
    with pytest.raises(CheckError) as ei:
        check(parse(src), ROOT / "examples")
    return [(d.code, d.span.line, d.span.column) for d in ei.value.diagnostics]


NET = """network n(x: 3) { h = dense(x, 2, weights=real[-1, 1]); a = step(h); o = dense(a, 1); y = step(o) }
data d = sklearn("iris")
"""


@pytest.mark.parametrize(("item", "code", "anchor"), [
    ("robust h in linf(0.1)", "E0201", "robust h"),          # the whole item
    ("robust q in linf(0.1)", "E0201", "robust q"),
    ("robust x in ball(0.1)", "E0202", "ball"),              # the set call
    ("robust x in linf(-0.1)", "E0203", "-0.1"),             # the radius
    ("robust x in box(0.1, 0.2)", "E0204", "box"),
    ("robust x in linf(0.1, 0.2)", "E0204", "linf"),
    ("robust x in linf(0.1); robust x in l1(0.1)", "E0205", "robust x in l1"),
])
def test_robust_set_errors_are_located(item: str, code: str, anchor: str) -> None:
    line = f"train n on d {{ loss = hamming; {item} }}"
    errs = errors_of(NET + line + "\n")
    assert (code, 3, line.index(anchor) + 1) in errs


def test_robust_set_needs_a_binary_first_layer() -> None:
    src = """network n(x: 3) { h = dense(x, 1); y = identity(h) }
data d = sklearn("iris")
train n on d { loss = hinge; robust x in linf(0.1) }
"""
    assert ("E0206", 3, 30) in errors_of(src)  # 'robust x in ...' starts at column 30


def test_robust_specs_are_typed() -> None:
    cp = check(parse(NET + "train n on d { loss = hamming; robust x in box([0.1, 0.2, 0.3]) }"), ROOT)
    spec = cp.tasks[0].robust
    assert spec == RobustSpec("x", "box", 0.0, (0.1, 0.2, 0.3))
    W = np.array([[1.0, -2.0, 0.5]])
    assert spec.dual_norm(W) == pytest.approx([0.1 + 0.4 + 0.15])
    assert RobustSpec("x", "linf", 0.5).dual_norm(W) == pytest.approx([1.75])
    assert RobustSpec("x", "l1", 0.5).dual_norm(W) == pytest.approx([1.0])
    assert RobustSpec("x", "l2", 0.5).dual_norm(W) == pytest.approx([0.5 * np.sqrt(5.25)])


SETS = [RobustSpec("x", "linf", 0.05), RobustSpec("x", "box", 0.0, (0.1, 0.02, 0.05, 0.0)),
        RobustSpec("x", "l1", 0.1), RobustSpec("x", "l2", 0.08)]


@pytest.mark.parametrize("spec", SETS, ids=lambda s: s.kind)
def test_robust_training_is_certified_point_by_point(spec: RobustSpec, tmp_path: Path) -> None:
    from nnmip.io.weights import load_npz, save_npz

    net = small_net()
    X, y = data()
    res = train_network(net, X, y, 2, solver="highs", robust=spec, options=SolveOptions(mip_gap=0, time_limit=60))
    assert res.status is Status.OPTIMAL
    assert res.verified
    assert res.network is not None
    # the reported loss is the forward-pass loss
    assert res.loss == data_loss("hamming", res.network.forward(X), y, 2)
    save_npz(res.network, tmp_path / "w.npz")
    loaded, _ = load_npz(tmp_path / "w.npz")
    stable = oracle_stable(loaded, X, spec)
    assert stable.all(), "every training point's first layer must be constant over its set"
    np.testing.assert_array_equal(stable, first_layer_stable(loaded, X, spec))
    # test points: the library's certificate agrees with the oracle, point by point
    Xt, yt = data(40, seed=9)
    cert = certified(loaded, Xt, yt, spec)
    np.testing.assert_array_equal(cert, oracle_stable(loaded, Xt, spec).all(axis=1) & (loaded.predict(Xt) == yt))
    if spec.kind == "l2":
        assert any("||W_l||_2 <= ||W_l||_1" in n for n in res.notes)  # MILP-only backend: conservative bound


def test_certified_points_survive_random_sign_attacks() -> None:
    spec = RobustSpec("x", "linf", 0.05)
    net = small_net()
    X, y = data()
    res = train_network(net, X, y, 2, solver="highs", robust=spec, options=SolveOptions(mip_gap=0))
    assert res.network is not None
    Xt, yt = data(60, seed=4)
    cert = certified(res.network, Xt, yt, spec)
    ok = attack(res.network, Xt, yt, spec, trials=300, seed=1)
    assert cert.any()
    assert ok[cert].all(), "a random-sign attack flipped a certified point"
    # and every vertex of the ball keeps every certified point's prediction
    for s in itertools.product([-1.0, 1.0], repeat=4):
        assert (res.network.predict(Xt[cert] + 0.05 * np.array(s)) == yt[cert]).all()


@pytest.mark.slow  # about 11 s on 2 busy cores
def test_robustness_costs_training_loss() -> None:
    net = small_net()
    X, y = data(14, seed=2)
    plain = train_network(net, X, y, 2, solver="highs", options=SolveOptions(mip_gap=0))
    rob = train_network(net, X, y, 2, solver="highs", robust=RobustSpec("x", "linf", 0.2),
                        options=SolveOptions(mip_gap=0))
    assert plain.status is Status.OPTIMAL
    assert rob.status is Status.OPTIMAL
    assert rob.loss >= plain.loss
    # a huge radius leaves only constant first-layer patterns: the loss is that of the best constant classifier
    huge = train_network(net, X, y, 2, solver="highs", robust=RobustSpec("x", "linf", 10.0),
                         options=SolveOptions(mip_gap=0))
    assert huge.loss == min(int(y.sum()), int((1 - y).sum()))


def test_big_m_bounds_include_the_perturbation() -> None:
    from nnmip.formulations.training import build_training_model

    net = small_net()
    X, y = data(5)
    tm = build_training_model(net, X, y, 2, robust=RobustSpec("x", "linf", 0.1))
    m = tm.model
    on = m.rowmap["a1__on"]
    # on-row: a - s - (eps - L') u >= L' with L' = L - r max ||W_l||_1 = L - 0.1 * 4
    lo_plain = net.op("h1").interval(X, X)[0]
    np.testing.assert_allclose(m.row_lb[on].reshape(5, 3), lo_plain - 0.4)


@pytest.mark.skipif(not is_installed("gurobi"), reason="gurobi is not installed")
def test_l2_uses_a_second_order_cone_on_gurobi() -> None:
    spec = RobustSpec("x", "l2", 0.08)
    net = small_net()
    X, y = data(10)
    try:
        res = train_network(net, X, y, 2, solver="gurobi", robust=spec, options=SolveOptions(mip_gap=0))
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    assert res.model_stats["cones"] == 3
    assert res.verified
    assert res.network is not None
    assert oracle_stable(res.network, X, spec).all()
    ref = train_network(net, X, y, 2, solver="highs", robust=spec, options=SolveOptions(mip_gap=0))
    assert res.loss <= ref.loss  # the exact l2 set is smaller than the conservative one


def test_bcw_robust_task_reports_forward_loss_and_certified_accuracy(tmp_path: Path) -> None:
    from nnmip.drivers.task import run_train_task

    src = (ROOT / "examples" / "bcw_robust.nnmip").read_text()
    src = src.replace("random(40, seed=1)", "random(16, seed=1)").replace("time_limit=60", "time_limit=20")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / BCW.name).write_bytes(BCW.read_bytes())
    cp = check(parse(src, str(tmp_path / "b.nnmip")), tmp_path)
    task = cp.tasks[0]
    assert task.robust == RobustSpec("x", "linf", 0.1)
    rep = run_train_task(cp)
    res, ds = rep.result, rep.dataset
    assert res.network is not None
    assert res.verified
    Xtr, ytr = ds.X(ds.train), ds.y[ds.train]
    assert res.loss == data_loss("hamming", res.network.forward(Xtr), ytr, 2)
    assert ds.X(ds.train).min() >= 0
    assert ds.X(ds.train).max() <= 1
    for key, rows in (("train", ds.train), ("test", ds.test)):
        want = float(np.mean(oracle_stable(res.network, ds.X(rows), task.robust).all(axis=1)
                             & (res.network.predict(ds.X(rows)) == ds.y[rows])))
        assert rep.metrics[f"certified_{key}"] == pytest.approx(want)
    assert rep.metrics["attack_test"] is not None
    assert rep.metrics["certified_test"] <= rep.metrics["attack_test"] <= rep.metrics["test"]
    d = rep.to_dict()
    assert d["extension"]["robust"]["kind"] == "linf"
