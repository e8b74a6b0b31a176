"""Tests of saving and loading fixed-weight networks as .npz files (nnmip.io.weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nnmip.errors import NnmipError
from nnmip.io.data import Scaler
from nnmip.io.weights import WeightsError, load_npz, read_extra, save_npz
from nnmip.io.writers import ExportError
from nnmip.ir.builder import NetworkBuilder, fixed, integer
from nnmip.ir.network import Network
from nnmip.ir.ops import Dense


def make_net(rng: np.random.Generator, out: int = 2, domain: bool = False) -> Network:
    nb = NetworkBuilder("bnn")
    x = nb.input("x", 4, lo=-1.0 if domain else None, hi=np.array([1.0, 2.0, 3.0, np.inf]) if domain else None)
    h1 = nb.dense("h1", x, 3, weights=fixed(rng.normal(size=(3, 4))), bias=fixed(rng.normal(size=3)))
    a1 = nb.sign("a1", h1)
    h2 = nb.dense("h2", a1, 5, weights=fixed(rng.integers(-1, 2, size=(5, 3))), bias=None)
    a2 = nb.relu("a2", nb.step("s2", h2))
    nb.identity("y", nb.dense("h3", a2, out, weights=fixed(rng.normal(size=(out, 5))),
                              bias=fixed(rng.normal(size=out))))
    return nb.build()


def dense(net: Network, node: str) -> Dense:
    op = net.op(node)
    assert isinstance(op, Dense)
    return op


def assert_same_scaler(a: Scaler | None, b: Scaler | None) -> None:
    assert a is not None
    assert b is not None
    assert a.kind == b.kind
    assert a.offset.dtype == np.float64
    assert np.array_equal(a.offset, b.offset)
    assert a.scale.dtype == np.float64
    assert np.array_equal(a.scale, b.scale)


@pytest.mark.parametrize("out", [1, 3])
@pytest.mark.parametrize("domain", [False, True])
def test_round_trip(tmp_path: Path, out: int, domain: bool) -> None:
    rng = np.random.default_rng(out + 10 * domain)
    net = make_net(rng, out, domain)
    X_raw = rng.normal(size=(50, 4)) * 5 + 2
    scaler = Scaler.fit("minmax", X_raw)
    path = save_npz(net, tmp_path / "w.npz", scaler)
    assert path == tmp_path / "w.npz"
    net2, scaler2 = load_npz(path)
    assert net2.describe() == net.describe()
    assert net2.name == "bnn"
    assert net2.nodes == net.nodes
    assert_same_scaler(scaler2, scaler)
    assert scaler2 is not None
    assert np.array_equal(net2.forward(scaler2.transform(X_raw)), net.forward(scaler.transform(X_raw)))
    assert np.array_equal(net2.predict(X_raw), net.predict(X_raw))
    for n in net.dense_nodes():
        assert np.array_equal(dense(net2, n).W, dense(net, n).W)
    assert dense(net2, "h2").bias is None


def test_file_layout(tmp_path: Path) -> None:
    net = make_net(np.random.default_rng(0), 2)
    scaler = Scaler("standard", np.arange(4.0), np.array([1.0, 2.0, 3.0, 4.0]))
    save_npz(net, tmp_path / "w.npz", scaler, extra={"accuracy": 0.875, "solver": "highs", "gap": [0.0, 1e-9]})
    with np.load(tmp_path / "w.npz", allow_pickle=False) as z:
        keys = set(z.files)
        assert {"h1.W", "h1.b", "h2.W", "h3.W", "h3.b", "scaler.offset", "scaler.scale", "scaler.kind",
                "graph"} <= keys
        assert "h2.b" not in keys
        assert z["h1.W"].shape == (3, 4)
        assert z["h2.W"].shape == (5, 3)
        assert z["h3.W"].shape == (2, 5)
        assert np.array_equal(z["h1.W"], dense(net, "h1").W)
        assert np.array_equal(z["h3.b"], dense(net, "h3").b)
        assert z["scaler.kind"].shape == ()
        assert str(z["scaler.kind"]) == "standard"
        assert np.array_equal(z["scaler.scale"], [1.0, 2.0, 3.0, 4.0])
        assert z["graph"].shape == ()
        assert json.loads(str(z["graph"])) == net.describe()
    extra = read_extra(tmp_path / "w.npz")
    assert float(extra["accuracy"]) == 0.875
    assert str(extra["solver"]) == "highs"
    assert np.array_equal(extra["gap"], [0.0, 1e-9])


def test_without_scaler_and_exact_name(tmp_path: Path) -> None:
    net = make_net(np.random.default_rng(1), 1)
    path = save_npz(net, tmp_path / "trained.weights")
    assert path.exists()
    assert not (tmp_path / "trained.weights.npz").exists()
    net2, scaler = load_npz(str(path))
    assert scaler is None
    X = np.random.default_rng(2).normal(size=(20, 4))
    assert np.array_equal(net2.forward(X), net.forward(X))
    assert read_extra(path) == {}


def test_save_refuses(tmp_path: Path) -> None:
    net = make_net(np.random.default_rng(0))
    with pytest.raises(ExportError) as e:
        save_npz(net, tmp_path / "model.nnmip")
    assert e.value.diagnostics[0].code == "E0603"
    assert not (tmp_path / "model.nnmip").exists()

    nb = NetworkBuilder("untrained")
    nb.dense("h", nb.input("x", 2), 1, weights=integer(-1, 1))
    with pytest.raises(ExportError) as e:
        save_npz(nb.build(), tmp_path / "w.npz")
    assert e.value.diagnostics[0].code == "E0606"
    assert "'h'" in str(e.value)

    with pytest.raises(ExportError) as e:
        save_npz(net, tmp_path / "w.npz", extra={"obj": {"a": 1}})
    assert e.value.diagnostics[0].code == "E0606"


def code_of(exc: pytest.ExceptionInfo[WeightsError]) -> str:
    assert isinstance(exc.value, NnmipError)
    return exc.value.diagnostics[0].code


def test_load_missing(tmp_path: Path) -> None:
    with pytest.raises(WeightsError) as e:
        load_npz(tmp_path / "nope.npz")
    assert code_of(e) == "E0608"
    assert "nope.npz" in str(e.value)
    assert "does not exist" in str(e.value)


def test_load_corrupt(tmp_path: Path) -> None:
    net = make_net(np.random.default_rng(3))
    good = save_npz(net, tmp_path / "good.npz", Scaler("none", np.zeros(4), np.ones(4)))
    data = good.read_bytes()
    with np.load(good, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}

    cases: dict[str, bytes | dict[str, np.ndarray] | None] = {
        "junk": b"this is not a zip file at all" * 5,
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "no_graph": {k: v for k, v in arrays.items() if k != "graph"},
        "no_weights": {k: v for k, v in arrays.items() if k != "h2.W"},
        "bad_shape": {**arrays, "h1.W": np.ones((3, 7))},
        "bad_units": {**arrays, "h3.W": np.ones((4, 5))},
        "bad_bias": {**arrays, "h1.b": np.ones(2)},
        "bad_json": {**arrays, "graph": np.array("{not json")},
        "bad_scaler": {**arrays, "scaler.scale": np.ones(3)},
        "half_scaler": {k: v for k, v in arrays.items() if k != "scaler.offset"},
        "pickled": {**arrays, "graph": np.array([{"a": 1}], dtype=object)},
    }
    for name, content in cases.items():
        path = tmp_path / f"{name}.npz"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            assert content is not None
            with open(path, "wb") as f:
                np.savez(f, **content)  # type: ignore[arg-type]
        with pytest.raises(WeightsError) as e:
            load_npz(path)
        assert code_of(e) == "E0608", name
        assert f"{name}.npz" in str(e.value), name
        assert any(n.startswith("help:") for n in e.value.diagnostics[0].notes), name

    npy = tmp_path / "single.npy"
    np.save(npy, np.ones(3))
    with pytest.raises(WeightsError) as e:
        load_npz(npy)
    assert code_of(e) == "E0608"


def test_saving_npz_files_does_not_import_onnx(tmp_path: Path) -> None:
    """Writing a network or an ensemble as npz runs after a run's time limit; it must not pay the import of the
    onnx package (about a second: it did, through the argument check that lived beside the ONNX exporter)."""
    import subprocess
    import sys

    from conftest import ROOT

    script = (
        "import sys\n"
        "import numpy as np\n"
        "from nnmip.drivers.verify import network_from_layers\n"
        "from nnmip.io.ensemble import save_ensemble\n"
        "from nnmip.io.weights import save_npz\n"
        "from nnmip.ir.ensemble import Ensemble\n"
        "net = network_from_layers([(np.ones((1, 2)), np.zeros(1))])\n"
        "save_npz(net, sys.argv[1] + '/n.npz')\n"
        "save_ensemble(Ensemble('one_vs_one', 2, [net], [(0, 1)]), sys.argv[1] + '/e.npz')\n"
        "print('onnx' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr
    assert (tmp_path / "n.npz").is_file()
    assert (tmp_path / "e.npz").is_file()
