"""Pruning indicators (docs/formulations.md §9): language, formulation, the smaller network and its files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nnmip.check import check
from nnmip.drivers.train import train_network
from nnmip.errors import CheckError
from nnmip.formulations.groups import GroupRef, build_groups
from nnmip.ir.builder import NetworkBuilder, real
from nnmip.ir.losses import data_loss
from nnmip.ir.train_spec import PruneConfig, PruneSpec
from nnmip.passes.prune import prune_network
from nnmip.solution import SolveOptions, Status
from nnmip.syntax import parse

ROOT = Path(__file__).resolve().parents[1]
BCW = ROOT / "examples" / "data" / "breast-cancer-wisconsin.csv"

NET = """network n(x: 3) { h = dense(x, 2, weights=real[-1, 1], bias=real[-1, 1]); a = step(h)
                  o = dense(a, 1, weights=real[-1, 1], bias=real[-1, 1]); y = step(o) }
data d = sklearn("iris")
"""


def errors_of(src: str) -> list[tuple[str, int, int]]:
    with pytest.raises(CheckError) as ei:
        check(parse(src), ROOT)
    return [(d.code, d.span.line, d.span.column) for d in ei.value.diagnostics]


@pytest.mark.parametrize(("setting", "code", "anchor"), [
    ("prune = nodes(cost=1)", "E0210", "nodes"),
    ("prune = neurons(q, cost=1)", "E0211", "q,"),
    ("prune = neurons(a, cost=1)", "E0211", "a,"),
    ("prune = features(h, cost=1)", "E0211", "h,"),
    ("prune = layers(cost=1)", "E0211", "layers"),
    ("prune = features(budget=4)", "E0212", "features"),
    ("prune = neurons(h, budget=3)", "E0212", "neurons"),
    ("prune = neurons(o, cost=1)", "E0213", "neurons"),
    ("prune = layers(h, cost=1)", "E0213", "layers"),
    ("prune = weights(h)", "E0214", "weights"),
    ("prune = weights(h, cost=1); alpha = 1.5; lambda = 1", "E0217", "1.5"),
    ("alpha = 0.5", "E0218", "alpha"),
    ("lambda = 0.5", "E0218", "lambda"),
    ("prune = weights(h, cost=1); prune = features(cost=1)", "E0106", "prune = f"),
    ("prune = weights(h, cost=-1)", "E0109", "-1"),
])
def test_pruning_errors_are_located(setting: str, code: str, anchor: str) -> None:
    line = f"train n on d {{ loss = hamming; {setting} }}"
    errs = errors_of(NET + line + "\n")
    assert (code, 4, line.index(anchor) + 1) in errs, errs


def test_domain_without_zero_and_fixed_weights_are_rejected() -> None:
    src = """network n(x: 3) { h = dense(x, 2, weights=real[0.5, 1]); a = step(h)
                  o = dense(a, 1, weights=[[1, 2]]); y = step(o) }
data d = sklearn("iris")
train n on d { loss = hamming; prune = weights(h, cost=1) }
train n on d { loss = hamming; prune = neurons(h, cost=1) }
"""
    codes = [c for c, _, _ in errors_of(src)]
    assert codes.count("E0216") == 2


def test_specs_are_typed() -> None:
    src = NET + "train n on d { loss = hamming; prune = [features(budget=2, M=0.5), neurons(h, cost=0.1)]; " \
                "lambda = 0.2; alpha = 0.5 }"
    task = check(parse(src), ROOT).tasks[0]
    assert task.prune == (PruneSpec("features", ("x",), 0.0, 2, 0.5), PruneSpec("neurons", ("h",), 0.1, None, None))
    assert (task.lam, task.alpha) == (0.2, 0.5)


def net3(d: int = 4, width: int = 3):
    nb = NetworkBuilder("p")
    x = nb.input("x", d)
    a = nb.step("a1", nb.dense("h1", x, width, weights=real(-1, 1), bias=real(-2, 2)))
    nb.step("y", nb.dense("h2", a, 2, weights=real(-1, 1), bias=real(-1, 1)))
    return nb.build()


def test_groups_by_hand() -> None:
    net = net3(d=2, width=2)
    g = build_groups(net, (PruneSpec("neurons", ("h1",), 1.0), PruneSpec("features", ("x",), 1.0)))
    assert [r.name for r in g.refs] == ["h1[0]", "h1[1]", "x[0]", "x[1]"]
    # neuron 0: W1[0, :] (2), b1[0], W2[:, 0] (2) -> 5 members; feature j: W1[:, j] -> 2 members
    assert np.bincount(g.gid).tolist() == [5, 5, 2, 2]
    assert g.M.tolist() == [2.0, 2.0, 1.0, 1.0]           # the bias domain is [-2, 2]
    assert g.unit_z["h1"].tolist() == [0, 1]


def data(n: int = 24, d: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.random((n, d))
    return X, (X[:, 0] > 0.5).astype(np.int64)    # only feature 0 matters


def test_pruned_network_reproduces_predictions_and_counts_match_indicators() -> None:
    net = net3()
    X, y = data()
    pc = PruneConfig((PruneSpec("features", ("x",), 0.3), PruneSpec("neurons", ("h1",), 0.3)))
    res = train_network(net, X, y, 2, prune=pc, options=SolveOptions(mip_gap=0))
    assert res.status is Status.OPTIMAL
    assert res.verified
    assert res.network is not None
    tm = res.training_model
    z = np.round(res.x[tm.extension.z])
    removed = tm.extension.removed(res.x)
    assert len(removed) == int((z == 0).sum()) == res.extension["removed_count"]
    # one feature and one neuron suffice for a perfect fit: 2 kept groups, loss 0.6
    assert res.loss == pytest.approx(0.6)
    assert res.data_loss == 0
    assert {r.kind for r in removed} == {"feature", "neuron"}
    assert len(removed) == 5
    small, kept = prune_network(res.network, removed)
    assert kept.tolist() == [0]
    assert small.n_inputs == 1
    assert small.params()["h1"][0].shape == (1, 1)
    Xall = np.random.default_rng(3).random((500, 4))
    np.testing.assert_array_equal(small.predict(Xall[:, kept]), res.network.predict(Xall))
    np.testing.assert_array_equal(small.forward(Xall[:, kept]), res.network.forward(Xall))
    # the forward-pass penalty counts the kept groups
    assert res.penalty == pytest.approx(0.3 * 2)


@pytest.mark.slow  # about 65 s on 2 busy cores
def test_budget_is_respected_and_reported_loss_is_forward_loss() -> None:
    net = net3()
    X, y = data(seed=1)
    y = ((X[:, 0] + X[:, 1]) > 1).astype(np.int64)
    pc = PruneConfig((PruneSpec("weights", ("h1",), 0.0, budget=2),))
    res = train_network(net, X, y, 2, prune=pc, options=SolveOptions(mip_gap=0))
    assert res.network is not None
    assert res.verified
    W1 = res.network.params()["h1"][0]
    assert np.count_nonzero(W1) <= 2
    assert res.loss == data_loss("hamming", res.network.forward(X), y, 2)
    # pruning with a budget cannot beat training without it
    free = train_network(net, X, y, 2, options=SolveOptions(mip_gap=0))
    assert free.loss <= res.loss


def test_pruned_step_unit_is_off_with_zero_pre_activation() -> None:
    """A unit whose weights and bias are all zero has a = 0, so its activation must read back as off."""
    net = net3(width=3)
    X, y = data(12)
    pc = PruneConfig((PruneSpec("neurons", ("h1",), 100.0),))  # a kept neuron costs more than all errors (<= 24)
    res = train_network(net, X, y, 2, prune=pc, options=SolveOptions(mip_gap=0))
    assert res.verified
    assert res.network is not None
    assert res.extension["removed_count"] == 3
    W1, b1 = res.network.params()["h1"]
    assert not W1.any()
    assert not b1.any()
    u_cols, rows = res.training_model.patterns["a1"]
    assert (np.round(res.x[u_cols]) == 0).all()
    assert res.mismatches == 0


def test_prune_network_refuses_live_outgoing_weights() -> None:
    net = net3(d=2, width=2).with_params({"h1": (np.ones((2, 2)), np.zeros(2)), "h2": (np.ones((2, 2)), np.zeros(2))})
    with pytest.raises(ValueError, match="non-zero"):
        prune_network(net, [GroupRef("neuron", "h1", (0,))])
    with pytest.raises(ValueError, match="cannot be removed"):
        prune_network(net, [GroupRef("layer", "h1")])


@pytest.mark.slow  # about 40 s
def test_bcw_prune_cli_saves_the_smaller_network(tmp_path: Path) -> None:
    from nnmip.cli import main
    from nnmip.io.data import load_dataset
    from nnmip.io.weights import load_npz

    src = (ROOT / "examples" / "bcw_prune.nnmip").read_text().replace("random(40, seed=1)", "random(24, seed=1)")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / BCW.name).write_bytes(BCW.read_bytes())
    f = tmp_path / "p.nnmip"
    f.write_text(src)
    code = main(["solve", str(f), "-q", "--json", str(tmp_path / "r.json"), "--save-weights",
                 str(tmp_path / "w.npz"), "--save-onnx", str(tmp_path / "m.onnx")])
    assert code == 0
    d = json.loads((tmp_path / "r.json").read_text())
    ext = d["extension"]
    assert ext["pruned_agrees"] is True
    assert ext["removed_count"] == len(ext["removed_groups"]) > 0
    kept = d["pruned_network"]["kept_features"]
    n_feat_removed = sum(g["kind"] == "feature" for g in ext["removed_groups"])
    assert len(kept) == 9 - n_feat_removed
    small, scaler = load_npz(tmp_path / "w.npz")
    assert small.n_inputs == len(kept)
    cp = check(parse(src, str(f)), tmp_path)
    decl = cp.data["bcw"]
    ds = load_dataset(decl.source, decl.pre, tmp_path)
    raw = ds.X_raw[:, kept]
    pred_small = small.predict(scaler.transform(raw))
    # the metrics were measured with the full network: the saved small one, fed raw kept columns, matches them
    for split in ("train_all", "test"):
        rows = getattr(ds, split)
        assert float(np.mean(pred_small[rows] == ds.y[rows])) == pytest.approx(d["metrics"][split])
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"))
    labels = sess.run(["label"], {sess.get_inputs()[0].name: raw.astype(np.float64)})[0]
    np.testing.assert_array_equal(labels, pred_small)
