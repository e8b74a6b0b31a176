"""Writing networks and programs as ``.nnmip`` source, and ``nnmip import``: exact round trips
(.nnmip -> IR -> .nnmip, ONNX -> .nnmip -> ONNX), refusals with E0620, and an imported VNN-COMP mnistfc-shaped
network that gains a ``prune`` declaration in the file and is trained and verified from there."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import onnx
import pytest
from conftest import EXAMPLES
from onnx import TensorProto, helper, numpy_helper

from nnmip.cli import main
from nnmip.drivers.task import load_program
from nnmip.errors import NnmipError
from nnmip.io.onnx import export_onnx, import_onnx, to_onnx
from nnmip.io.source import network_source, write_network, write_program
from nnmip.ir.builder import NetworkBuilder, fixed, integer, real
from nnmip.ir.network import Network
from nnmip.ir.ops import Dense, Input, Op
from nnmip.syntax import format_program, parse_file


def same_network(a: Network, b: Network) -> None:
    """Same nodes, ops, input domains and parameter domains, bit for bit."""
    assert a.nodes == b.nodes
    for n in a.nodes:
        oa, ob = a.op(n), b.op(n)
        assert type(oa) is type(ob), n
        assert a.inputs_of(n) == b.inputs_of(n)
        if isinstance(oa, Input):
            assert isinstance(ob, Input)
            assert oa.dim == ob.dim
            for u, v in ((oa.lo, ob.lo), (oa.hi, ob.hi)):
                assert (u is None) == (v is None)
                if u is not None:
                    assert np.array_equal(u, v)
        if isinstance(oa, Dense):
            assert isinstance(ob, Dense)
            for pa, pb in ((oa.weights, ob.weights), (oa.bias, ob.bias)):
                assert (pa is None) == (pb is None)
                if pa is not None and pb is not None:
                    assert pa.kind == pb.kind
                    assert pa.lo.tobytes() == pb.lo.tobytes()
                    assert pa.hi.tobytes() == pb.hi.tobytes()


def built() -> Network:
    rng = np.random.default_rng(0)
    nb = NetworkBuilder("mixed")
    x = nb.input("x", 5, 0.0, 1.0)
    h = nb.dense("h", x, 3, weights=fixed(rng.standard_normal((3, 5))), bias=fixed([0.25, -0.0, 1e-300]))
    a = nb.relu("a", h)
    g = nb.dense("g", a, 4, weights=real(-1, 1), bias=None)
    s = nb.step("s", g)
    k = nb.dense("k", s, 2, weights=integer(-1, 1), bias=real(-5, 5.5))
    nb.sign("y", nb.identity("o", k))
    return nb.build()


def test_builder_network_round_trips_exactly(tmp_path: Path) -> None:
    net = built()
    out, side = write_network(net, tmp_path / "m.nnmip")
    assert side == tmp_path / "m.npz"
    text = out.read_text(encoding="utf-8")
    assert 'weights=load("m.npz", "h.weight")' in text      # 15 numbers: in the side file
    assert "bias=[0.25, -0.0, 1e-300]" in text              # 3 numbers: inline, -0.0 kept
    assert "g = dense(a, 4, weights=real[-1, 1], bias=none)" in text
    assert "k = dense(s, 2, weights=int[-1, 1], bias=real[-5, 5.5])" in text
    assert "network mixed(x: 5 real[0, 1])" in text
    back = load_program(out).networks["mixed"]
    same_network(net, back)
    # IR -> .nnmip again: the same text and the same arrays
    text2, arrays2 = network_source(back, "m.npz")
    assert text2 == text
    with np.load(side) as z:
        assert sorted(z.files) == sorted(arrays2)
        for k, v in arrays2.items():
            assert z[k].tobytes() == v.tobytes()


@pytest.mark.parametrize("width", [3, 12])
def test_input_domains_entry_by_entry_round_trip(tmp_path: Path, width: int) -> None:
    lo = np.linspace(-1.0, 0.0, width)
    nb = NetworkBuilder("boxed")
    nb.identity("y", nb.dense("h", nb.input("x", width, lo, lo + 0.1), 1, weights=real(-1, 1)))
    net = nb.build()
    out, side = write_network(net, tmp_path / "b.nnmip")
    text = out.read_text(encoding="utf-8")
    assert f"network boxed(x: {width} box(lo=" in text
    assert (side is None) == (width <= 8)         # 12 entries: load("b.npz", "x.lo")
    back = load_program(out).networks["boxed"]
    same_network(net, back)
    assert network_source(back, "b.npz")[0] == text
    nb = NetworkBuilder("half")
    nb.dense("h", nb.input("x", 2, lo=[0.0, 1.0]), 1)
    same_network(nb.build(), load_program(write_network(nb.build(), tmp_path / "h.nnmip")[0]).networks["half"])


def test_whole_program_round_trips(tmp_path: Path) -> None:
    prog = parse_file(EXAMPLES / "verify_bcw.nnmip")
    out, side = write_program(prog, tmp_path / "p.nnmip")
    assert side is None
    assert out.read_text(encoding="utf-8") == format_program(prog)
    assert parse_file(out) == prog


def test_program_with_a_replaced_network(tmp_path: Path) -> None:
    (tmp_path / "data").symlink_to(EXAMPLES / "data")
    prog = parse_file(EXAMPLES / "verify_bcw.nnmip")
    net = load_program(EXAMPLES / "verify_bcw.nnmip").networks["clf"]
    out, side = write_program(prog, tmp_path / "p.nnmip", {"clf": net})
    assert side == tmp_path / "p.npz"
    cp = load_program(out)
    same_network(net, cp.networks["clf"])
    assert len(cp.verify_specs) == 3
    assert 'load("p.npz", "h.weight")' in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("scaled", [False, True])
def test_onnx_nnmip_onnx_is_exact(tmp_path: Path, scaled: bool, capsys: pytest.CaptureFixture[str]) -> None:
    src = EXAMPLES / "data" / "verify_bcw.onnx"
    args = ["import", str(src), "-o", str(tmp_path / "n.nnmip")] + (["--fold-scaling"] if scaled else [])
    if not scaled:   # the example scales its raw input: the language has no scaling node
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "error[E0620]" in err
        assert "help: pass --fold-scaling" in err
        net, scaler = import_onnx(src)
        assert scaler is not None
        export_onnx(net, tmp_path / "plain.onnx")            # the same network without the scaling prefix
        args = ["import", str(tmp_path / "plain.onnx"), "-o", str(tmp_path / "n.nnmip")]
        src = tmp_path / "plain.onnx"
    assert main(args) == 0
    capsys.readouterr()
    first, first_scaler = import_onnx(src)
    if scaled:
        from nnmip.drivers.verify import fold_scaler

        first = fold_scaler(first, first_scaler)
    back = load_program(tmp_path / "n.nnmip").networks[first.name]
    same_network(first, back)
    assert to_onnx(back).SerializeToString() == to_onnx(first).SerializeToString()
    if not scaled:      # the file written from ONNX exported by nnmip is that very file again
        assert to_onnx(back).SerializeToString() == onnx.load(str(src)).SerializeToString()


def mnistfc_like(path: Path, widths: tuple[int, ...] = (784, 8, 8, 10), seed: int = 0) -> None:
    """An ONNX network shaped like VNN-COMP 2021 mnistfc (input [1, 784, 1], Flatten, then float32
    Gemm(transB=1) and Relu layers named layers.<k>); narrower hidden layers let a test train it."""
    rng = np.random.default_rng(seed)
    inits: list[onnx.TensorProto] = []
    nodes = [helper.make_node("Flatten", ["0"], ["7"], axis=1)]
    cur = "7"
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        W = (rng.standard_normal((b, a)) / np.sqrt(a)).astype(np.float32)
        c = (0.1 * rng.standard_normal(b)).astype(np.float32)
        inits += [numpy_helper.from_array(W, f"layers.{2 * i}.weight"),
                  numpy_helper.from_array(c, f"layers.{2 * i}.bias")]
        nodes.append(helper.make_node("Gemm", [cur, f"layers.{2 * i}.weight", f"layers.{2 * i}.bias"], [f"g{i}"],
                                      alpha=1.0, beta=1.0, transB=1))
        cur = f"g{i}"
        if i < len(widths) - 2:
            nodes.append(helper.make_node("Relu", [cur], [f"r{i}"]))
            cur = f"r{i}"
    graph = helper.make_graph(nodes, "torch_jit", [helper.make_tensor_value_info("0", TensorProto.FLOAT, [1, 784, 1])],
                              [helper.make_tensor_value_info(cur, TensorProto.FLOAT, [1, widths[-1]])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)]), str(path))


def test_mnistfc_imports_gains_prune_trains_and_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mnistfc_like(tmp_path / "mnist.onnx")
    assert main(["import", str(tmp_path / "mnist.onnx"), "-o", str(tmp_path / "mnist.nnmip"),
                 "--domain", "0", "1", "--name", "mnistfc"]) == 0
    text = (tmp_path / "mnist.nnmip").read_text(encoding="utf-8")
    assert "network mnistfc(x: 784 real[0, 1])" in text
    net = import_onnx(tmp_path / "mnist.onnx")[0]
    imported = load_program(tmp_path / "mnist.nnmip").networks["mnistfc"]
    X = np.random.default_rng(1).random((30, 784))
    assert np.array_equal(imported.forward(X), net.forward(X))       # the same weights, bit for bit
    assert to_onnx(imported).SerializeToString() == to_onnx(import_onnx(tmp_path / "mnist.onnx",
                                                                        name="mnistfc")[0]).SerializeToString()

    # edit the file: a copy whose last layer is trained again (fine-tuning) with pruning indicators on its
    # weights, plus a verification question on the imported network
    y = np.arange(X.shape[0]) % 10
    np.savetxt(tmp_path / "d.csv", np.hstack([X, y[:, None]]), delimiter=",", fmt="%.6g")
    body = text.split("network mnistfc", 1)[1]
    tuned = "network tuned" + body.replace('weights=load("mnist.npz", "g2.weight"), bias=load("mnist.npz", '
                                           '"g2.bias")', "weights=real[-1, 1], bias=real[-1, 1]")
    assert tuned != "network tuned" + body
    (tmp_path / "mnist.nnmip").write_text(text + "\n" + tuned + """
data d = csv("d.csv", label=-1, scale=none)

train tuned on d {
    loss = hinge
    subset = random(8, seed=0)
    prune = [weights(g2, cost=0.01)]
}

verify mnistfc {
    input x in linf(0.002, around=row(d, 0))
    property = classified()
}
""", encoding="utf-8")
    assert main(["solve", str(tmp_path / "mnist.nnmip"), "--json", str(tmp_path / "r.json"), "-q",
                 "--save-weights", str(tmp_path / "tuned.npz")]) == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["status"] == "optimal"
    assert r["verified"]
    assert main(["verify", str(tmp_path / "mnist.nnmip"), "--json", str(tmp_path / "v.json")]) == 0
    v = json.loads((tmp_path / "v.json").read_text())
    results = v.get("results", [v])
    assert results[0]["result"] == "certified"
    capsys.readouterr()
    # the trained network written as a .nnmip file, read again: the same function
    from nnmip.io.weights import load_npz

    trained, _ = load_npz(tmp_path / "tuned.npz")
    g2 = trained.op("g2")
    assert isinstance(g2, Dense)
    assert (g2.W == 0).any()                     # the pruning indicators removed weights
    out, _ = write_network(trained, tmp_path / "after.nnmip")
    again = load_program(out).networks[trained.name]
    assert not again.trainable
    assert np.array_equal(again.forward(X), trained.forward(X))


def test_full_size_mnistfc_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """784-256-256-10 as in mnist-net_256x2: the weights live in the side file and come back bit for bit."""
    mnistfc_like(tmp_path / "m.onnx", (784, 256, 256, 10))
    assert main(["import", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.nnmip"), "--name", "mnist"]) == 0
    capsys.readouterr()
    text = (tmp_path / "m.nnmip").read_text(encoding="utf-8")
    assert len(text) < 2000                     # readable: every large array is in m.npz
    first = import_onnx(tmp_path / "m.onnx", name="mnist")[0]
    back = load_program(tmp_path / "m.nnmip").networks["mnist"]
    same_network(first, back)
    assert to_onnx(back).SerializeToString() == to_onnx(first).SerializeToString()
    assert network_source(back, "m.npz")[0] == text.split("\n", 2)[2]    # IR -> .nnmip: the same text


@dataclass(frozen=True, eq=False)
class Square(Op):
    """An operation the language does not have."""

    kind: ClassVar[str] = "square"
    elementwise: ClassVar[bool] = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x * x


def test_an_operation_the_language_lacks_is_e0610(tmp_path: Path) -> None:
    nb = NetworkBuilder("sq")
    x = nb.input("x", 2)
    nb.dense("h", x, 2, weights=fixed(np.eye(2)), bias=None)
    g = nb.build().graph.copy()
    g.add_node("q", op=Square(), inputs=("h",))
    g.add_edge("h", "q")
    with pytest.raises(NnmipError) as info:
        write_network(Network(g, "sq"), tmp_path / "sq.nnmip")
    d = info.value.diagnostics[0]
    assert d.code == "E0620"
    assert "node 'q'" in d.message
    assert "'square'" in d.message
    assert any(n.startswith("help:") for n in d.notes)
    assert not (tmp_path / "sq.nnmip").exists()


def test_names_and_domains_the_language_cannot_say(tmp_path: Path) -> None:
    nb = NetworkBuilder("n")
    nb.input("x", 2, [0.0, -np.inf], [1.0, 2.0])
    nb.dense("h", "x", 1)
    with pytest.raises(NnmipError, match="domain of input 'x' is open"):
        write_network(nb.build(), tmp_path / "n.nnmip")
    nb = NetworkBuilder("n")
    nb.input("in", 2)
    nb.step("layer.0", nb.dense("data", "in", 1, weights=fixed([[1.0, 2.0]]), bias=None))
    text, _ = network_source(nb.build())
    assert "network n(in_: 2)" in text
    assert "data_ = dense(in_, 1" in text
    assert "layer_0 = step(data_)" in text
    with pytest.raises(NnmipError, match="E0603|nnmip"):
        write_network(nb.build(), tmp_path / "n.onnx")


def test_import_never_writes_over_its_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mnistfc_like(tmp_path / "m.onnx")
    before = (tmp_path / "m.onnx").read_bytes()
    assert main(["import", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.nnmip"),
                 "--npz", str(tmp_path / "m.onnx")]) == 2
    assert "error[E0613]" in capsys.readouterr().err
    assert (tmp_path / "m.onnx").read_bytes() == before
    assert not (tmp_path / "m.nnmip").exists()


@pytest.mark.parametrize(("domain", "code"), [
    ("box(lo=[0, 0, 0], hi=1)", "E0121"),
    ("box(lo=[0, 2], hi=[1, 1])", "E0130"),
    ("box()", "E0104"),
    ("ball(lo=0)", "E0108"),
])
def test_bad_input_boxes_are_located(tmp_path: Path, domain: str, code: str) -> None:
    (tmp_path / "b.nnmip").write_text(f"network n(x: 2 {domain}) {{ h = dense(x, 1) }}\n", encoding="utf-8")
    with pytest.raises(NnmipError) as info:
        load_program(tmp_path / "b.nnmip")
    d = info.value.diagnostics[0]
    assert d.code == code
    assert d.span.known


def test_onnx_operations_the_language_lacks_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A residual sum and a large convolution (a sparse affine map in the IR) are named in the error."""
    rng = np.random.default_rng(0)
    F = TensorProto.FLOAT
    W = numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), "W")
    res = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("Add", ["r", "x"], ["y"])], "residual",
        [helper.make_tensor_value_info("x", F, [1, 4])], [helper.make_tensor_value_info("y", F, [1, 4])], [W])
    onnx.save(helper.make_model(res, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "res.onnx"))
    K = numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "K")
    conv = helper.make_graph(
        [helper.make_node("Conv", ["x", "K"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["y"])], "conv",
        [helper.make_tensor_value_info("x", F, [1, 1, 28, 28])], [helper.make_tensor_value_info("y", F, None)], [K])
    onnx.save(helper.make_model(conv, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "conv.onnx"))
    for name, words in (("res", "'add' operation"), ("conv", "sparse affine map")):
        assert main(["import", str(tmp_path / f"{name}.onnx"), "-o", str(tmp_path / f"{name}.nnmip")]) == 2
        err = capsys.readouterr().err
        assert "error[E0620]" in err
        assert words in err
        assert "help:" in err
        assert not (tmp_path / f"{name}.nnmip").exists()
