"""Verification of imported networks with max pooling and residual sums: the MILP optimum is attained by the
forward pass and no sampled or enumerated input beats it; binaries only where bounds leave a maximum open; the
networks shipped with VNN-COMP load and answer as the competition's tools agreed."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from nnmip.drivers.verify import CERTIFIED, COUNTEREXAMPLE, load_model, verify, verify_vnnlib
from nnmip.formulations.verification import build_fixed_model
from nnmip.io.onnx import import_onnx
from nnmip.io.vnnlib import parse_vnnlib
from nnmip.ir.network import Network
from nnmip.ir.spec import Region, box, maximize
from nnmip.passes.bounds import tighten_bounds

DATA = Path(__file__).parent / "data" / "vnncomp"
RNG = np.random.default_rng(11)


def model(nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray], in_shape: list[int],
          out_shape: list[int]) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, in_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, out_shape)],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def conv_maxpool_net() -> Network:
    nodes = [helper.make_node("Conv", ["x", "K", "kb"], ["c"], kernel_shape=[2, 2]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["m"], kernel_shape=[2, 2], strides=[1, 1]),
             helper.make_node("Flatten", ["m"], ["f"]),
             helper.make_node("Gemm", ["f", "W", "b"], ["y"], transB=1)]
    inits = {"K": RNG.normal(size=(2, 1, 2, 2)), "kb": RNG.normal(size=2) * 0.3,
             "W": RNG.normal(size=(2, 8)), "b": RNG.normal(size=2)}
    net, _ = import_onnx(model(nodes, inits, [1, 1, 4, 4], [1, 2]))
    return net


def residual_net() -> Network:
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["g1"], transB=1), helper.make_node("Relu", ["g1"], ["h"]),
             helper.make_node("Gemm", ["h", "W2", "b2"], ["g2"], transB=1), helper.make_node("Relu", ["g2"], ["r"]),
             helper.make_node("Add", ["h", "r"], ["s"], name="skip"), helper.make_node("Relu", ["s"], ["s2"]),
             helper.make_node("Add", ["s2", "g1"], ["t"], name="skip2"),
             helper.make_node("Gemm", ["t", "W3"], ["y"], transB=1)]
    inits = {"W1": RNG.normal(size=(6, 3)), "b1": RNG.normal(size=6) * 0.5, "W2": RNG.normal(size=(6, 6)),
             "b2": RNG.normal(size=6) * 0.5, "W3": RNG.normal(size=(2, 6))}
    net, _ = import_onnx(model(nodes, inits, [1, 3], [1, 2]))
    return net


def assert_exact_optimum(net: Network, lo: np.ndarray, hi: np.ndarray, coef: np.ndarray, X: np.ndarray) -> None:
    """The MILP maximum of ``coef . y`` is attained by the forward pass and is at least every value on ``X``."""
    res = verify(net, [box(lo, hi)], maximize(coef), samples=0)
    assert res.result == CERTIFIED
    assert res.counterexample is not None
    assert res.value is not None
    assert res.bound is not None
    x = res.counterexample
    assert np.all(x >= lo - 1e-9)
    assert np.all(x <= hi + 1e-9)
    attained = float(coef @ net.forward(x[None, :])[0])
    assert attained == pytest.approx(res.value, abs=1e-9)
    assert res.bound >= res.value - 1e-9
    assert res.bound - res.value <= 1e-5 * (1 + abs(res.bound))
    sampled = float(np.max(net.forward(X) @ coef))
    assert sampled <= res.bound + 1e-9 * (1 + abs(sampled))
    assert sampled <= attained + 1e-9 * (1 + abs(sampled))     # nothing sampled beats the MILP's input


@pytest.mark.parametrize("k", [0, 1])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_maxpool_milp_optimum_is_exact(k: int, sign: float) -> None:
    net = conv_maxpool_net()
    assert "maxpool" in [net.op(n).kind for n in net.nodes]
    lo, hi = -np.ones(16), np.ones(16)
    X = RNG.uniform(lo, hi, size=(20000, 16))
    coef = np.zeros(2)
    coef[k] = sign
    assert_exact_optimum(net, lo, hi, coef, X)


def test_maxpool_milp_matches_enumeration_on_a_two_input_net() -> None:
    """A max of four affine functions of two inputs, pooled in two pairs: the MILP maximum equals the best
    point of a 401 x 401 grid up to the grid's resolution, and is never below it."""
    nodes = [helper.make_node("Gemm", ["x", "A", "c"], ["a"], transB=1),
             helper.make_node("Reshape", ["a", "shape"], ["img"]),
             helper.make_node("MaxPool", ["img"], ["m"], kernel_shape=[2, 1], strides=[2, 1]),
             helper.make_node("Flatten", ["m"], ["f"]),
             helper.make_node("Gemm", ["f", "w"], ["y"], transB=1)]
    A = RNG.normal(size=(4, 2))
    inits = {"A": A, "c": RNG.normal(size=4), "shape": np.array([1, 1, 2, 2]), "w": np.array([[1.0, -1.0]])}
    net, _ = import_onnx(model(nodes, inits, [1, 2], [1, 1]))
    g = np.linspace(-1, 1, 401)
    X = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    res = verify(net, [box(-np.ones(2), np.ones(2))], maximize([1.0]), samples=0)
    grid = float(np.max(net.forward(X)))
    assert res.result == CERTIFIED
    assert res.bound is not None
    assert res.value is not None
    assert grid <= res.bound + 1e-9
    lipschitz = 2 * np.abs(A).sum(axis=1).max()
    assert res.value >= grid - lipschitz * (g[1] - g[0])
    assert res.bound - res.value <= 1e-5 * (1 + abs(res.bound))


def test_maxpool_binaries_only_where_bounds_leave_the_maximum_open() -> None:
    net = conv_maxpool_net()
    c = RNG.uniform(-1, 1, size=16)
    tiny = Region((box(c - 1e-7, c + 1e-7),))
    fm = build_fixed_model(net, tiny, tighten_bounds(net, tiny, method="interval").bounds)
    assert fm.model.num_binaries == 0      # every window's maximum (and every ReLU) is settled
    wide = Region((box(-np.ones(16), np.ones(16)),))
    bm = tighten_bounds(net, wide, method="interval").bounds
    fm = build_fixed_model(net, wide, bm)
    pool = next(n for n in net.nodes if net.op(n).kind == "maxpool")
    src = net.inputs_of(pool)[0]
    L, U = bm[src]
    expected = 0
    for grp in net.op(pool).groups:  # type: ignore[attr-defined]
        cand = np.union1d(grp[U[grp] > L[grp].max()], grp[np.argmax(L[grp])])
        expected += cand.size if cand.size > 1 else 0
    relu_binaries = sum(u.unstable for u in fm.units.values())
    assert fm.model.num_binaries == expected + relu_binaries
    assert expected > 0


@pytest.mark.parametrize("k", [0, 1])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_residual_milp_optimum_is_exact(k: int, sign: float) -> None:
    net = residual_net()
    assert not net.is_chain
    lo, hi = -np.ones(3), np.ones(3)
    coef = np.zeros(2)
    coef[k] = sign
    assert_exact_optimum(net, lo, hi, coef, RNG.uniform(lo, hi, size=(50000, 3)))


def test_residual_lp_bounds_contain_the_values() -> None:
    net = residual_net()
    region = Region((box(-np.ones(3), np.ones(3)),))
    rep = tighten_bounds(net, region, method="lp")
    vals = net.forward(RNG.uniform(-1, 1, size=(5000, 3)), all_nodes=True)
    for n, v in vals.items():
        lo, hi = rep.bounds[n]
        assert np.all(v >= lo - 1e-9), n
        assert np.all(v <= hi + 1e-9), n


# ---------------------------------------------------------------------------------------------------------------
# networks as VNN-COMP 2021 ships them (a few small ones copied into tests/data/vnncomp)
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.onnx")))
def test_shipped_networks_load_and_match_onnxruntime(name: str) -> None:
    ort = pytest.importorskip("onnxruntime")
    net, scaler = import_onnx(DATA / name)
    from nnmip.drivers.verify import fold_scaler

    net = fold_scaler(net, scaler)
    shapes = net.source_shapes
    sess = ort.InferenceSession(str(DATA / name), providers=["CPUExecutionProvider"])
    for _ in range(5):
        x = RNG.uniform(0, 1, size=net.n_inputs).astype(np.float32)
        want = np.asarray(sess.run([shapes["output_name"]], {shapes["input_name"]: x.reshape(shapes["input"])})[0])
        got = net.forward(x[None, :].astype(np.float64))[0]
        np.testing.assert_allclose(got, want.ravel(), rtol=1e-4, atol=1e-4 * (1 + np.abs(want).max()))


def test_shipped_network_kinds() -> None:
    kinds = {p.name: sorted({net.op(n).kind for n in net.nodes})
             for p in DATA.glob("*.onnx") for net in [import_onnx(p)[0]]}
    assert kinds["Convnet_maxpool.onnx"] == ["dense", "input", "maxpool", "relu"]
    assert kinds["Convnet_avgpool.onnx"] == ["dense", "input", "relu"]
    assert kinds["ACASXU_run2a_1_1_batch_2000.onnx"] == ["dense", "input", "relu"]
    acas = import_onnx(DATA / "ACASXU_run2a_1_1_batch_2000.onnx")[0]
    assert acas.source_shapes["input"] == [1, 1, 1, 5]
    assert acas.n_inputs == 5


TEST_FAMILY = {"test_nano.onnx": "unsat", "test_tiny.onnx": "unsat", "test_small.onnx": "unsat",
               "test_sat.onnx": "sat", "test_unsat.onnx": "unsat"}


def test_test_family_answers_as_the_competition() -> None:
    ort = pytest.importorskip("onnxruntime")
    with open(DATA / "test_instances.csv", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh) if r]
    assert len(rows) == 5
    for onnx_name, prop_name, _timeout in rows:
        net = load_model("onnx", DATA / onnx_name)
        vp = parse_vnnlib(DATA / prop_name)
        r = verify_vnnlib(net, vp, time_limit=60)
        assert r.vnn_answer == TEST_FAMILY[onnx_name], onnx_name
        if r.result == COUNTEREXAMPLE:
            assert r.counterexample is not None
            sess = ort.InferenceSession(str(DATA / onnx_name), providers=["CPUExecutionProvider"])
            shp = net.source_shapes
            y = sess.run(None, {shp["input_name"]: r.counterexample.reshape(shp["input"]).astype(np.float32)})[0]
            hit = any(case.prop.violated(np.asarray(y, np.float64).reshape(1, -1))[0]
                      and np.all(r.counterexample >= case.lo - 1e-9) and np.all(r.counterexample <= case.hi + 1e-9)
                      for case in vp.cases)
            assert hit


def test_verivital_maxpool_instance_is_unsat() -> None:
    net = load_model("onnx", DATA / "Convnet_maxpool.onnx")
    r = verify_vnnlib(net, parse_vnnlib(DATA / "maxpool_prop_0_0.004.vnnlib"), time_limit=60)
    assert r.vnn_answer == "unsat"


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("NNMIP_VNNCOMP_DIR"), reason="set NNMIP_VNNCOMP_DIR to a VNN-COMP folder")
def test_every_network_of_a_benchmark_folder_loads_or_is_refused_with_a_located_message() -> None:
    from nnmip.errors import NnmipError

    root = Path(os.environ["NNMIP_VNNCOMP_DIR"])
    files = sorted(p for p in root.rglob("*") if p.name.endswith((".onnx", ".onnx.gz")))
    assert files
    loaded = refused = 0
    for p in files:
        try:
            net, _ = import_onnx(p)
            assert net.n_inputs > 0
            assert net.n_outputs > 0
            loaded += 1
        except NnmipError as e:
            d = e.diagnostics[0]
            assert d.code in ("E0701", "E0702")
            assert d.span.file == str(p)
            assert "onnx" in d.message
            assert any(n.startswith("help:") for n in d.notes)
            refused += 1
    assert loaded > refused


def test_dag_networks_are_not_saved_as_npz_nor_trained(tmp_path: Path) -> None:
    from nnmip.errors import FormulationError
    from nnmip.formulations.training import build_training_model
    from nnmip.io.weights import save_npz
    from nnmip.io.writers import ExportError

    for net in (residual_net(), conv_maxpool_net()):
        with pytest.raises(ExportError) as e:
            save_npz(net, tmp_path / "w.npz")
        assert e.value.diagnostics[0].code == "E0606"
        with pytest.raises(FormulationError) as f:
            build_training_model(net, np.zeros((2, net.n_inputs)), np.zeros(2, dtype=np.int64), net.n_outputs)
        assert f.value.diagnostics[0].code == "E0426"
        assert "not a chain" in str(f.value)
