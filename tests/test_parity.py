"""What Python can say, the file can say: emit/relax, per-task time limits, warm starts, halfspace input sets and
VNN-LIB-style disjunctive output properties give the same answers from a .nnmip file as from the Python calls."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import BCW_CSV

from nnmip.check.training_ext import prune_config
from nnmip.cli import main
from nnmip.drivers.task import load_program, run_train_task, task_dataset
from nnmip.drivers.train import train_network
from nnmip.drivers.verify import CERTIFIED, COUNTEREXAMPLE, UNKNOWN, run_verify_spec, verify
from nnmip.errors import NnmipError
from nnmip.io.weights import save_npz
from nnmip.ir import spec as vs
from nnmip.solution import SolveOptions

NET = """
data bcw = csv("data/breast-cancer-wisconsin.csv", delimiter=";", label=-1, scale=minmax)
           split(train=0.5, validation=0.25, test=0.25, seed=0)

network bdnn(x: 9) {
    h1 = dense(x, 2, weights=real[-1, 1], bias=real[-10, 10])
    a1 = step(h1)
    h2 = dense(a1, 2, weights=int[-1, 1], bias=real[-5, 5])
    y  = step(h2)
}
"""


def program(tmp_path: Path, body: str) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    shutil.copy(BCW_CSV, tmp_path / "data" / BCW_CSV.name)
    path = tmp_path / "p.nnmip"
    path.write_text(NET + body, encoding="utf-8")
    return path


def test_emit_and_relax_settings_match_python(tmp_path: Path) -> None:
    path = program(tmp_path, """
train bdnn on bcw {
    loss = hamming
    subset = random(12, seed=2)
    prune = [neurons(h1, cost=0.5)]
    lambda = 0.1
    emit = perspective_cuts
    relax = true
    time_limit = 20
}
""")
    cp = load_program(path)
    task = cp.tasks[0]
    assert (task.emit, task.relax, task.time_limit) == ("perspective-cuts", True, 20.0)
    rep = run_train_task(cp, task)
    ds = task_dataset(cp, task)
    py = train_network(cp.networks["bdnn"], ds.X(ds.train), ds.y[ds.train], ds.n_classes, loss="hamming",
                       prune=prune_config(task), emit="perspective-cuts", relax=True)
    assert rep.result.network is None                       # a relaxation gives a bound, not a network
    assert rep.result.objective == pytest.approx(py.objective, abs=1e-7)
    assert rep.result.model_stats == py.model_stats
    full = train_network(cp.networks["bdnn"], ds.X(ds.train), ds.y[ds.train], ds.n_classes, loss="hamming",
                         prune=prune_config(task), emit="perspective-cuts")
    assert full.objective is not None
    assert rep.result.objective <= full.objective + 1e-7


def test_warm_start_setting(tmp_path: Path) -> None:
    path = program(tmp_path, """
train bdnn on bcw {
    loss = hamming
    subset = random(14, seed=3)
}
""")
    cp = load_program(path)
    first = run_train_task(cp, options=SolveOptions(mip_gap=0.0))
    assert first.result.verified
    assert first.result.network is not None
    save_npz(first.result.network, tmp_path / "start.npz")
    path.write_text(path.read_text().replace("subset = random(14, seed=3)",
                                             'subset = random(14, seed=3)\n    warm_start = npz("start.npz")'))
    cp2 = load_program(path)
    assert cp2.tasks[0].warm_start == tmp_path / "start.npz"
    second = run_train_task(cp2, options=SolveOptions(mip_gap=0.0))
    assert second.result.verified
    assert second.result.loss == pytest.approx(first.result.loss)
    # a start for another network is refused with a located error
    other = load_program(path)
    from nnmip.ir.builder import NetworkBuilder, fixed

    nb = NetworkBuilder("bdnn")
    nb.dense("h1", nb.input("x", 3), 1, weights=fixed([[1.0, 2.0, 3.0]]), bias=None)
    save_npz(nb.build(), tmp_path / "start.npz")
    with pytest.raises(NnmipError) as info:
        run_train_task(other, options=SolveOptions(mip_gap=0.0))
    assert info.value.diagnostics[0].code == "E0163"


def test_bad_train_settings_are_located(tmp_path: Path) -> None:
    path = program(tmp_path, """
train bdnn on bcw {
    emit = perspective
    relax = 1
    warm_start = npz("missing.npz")
}
""")
    with pytest.raises(NnmipError) as info:
        load_program(path)
    codes = [d.code for d in info.value.diagnostics]
    assert codes == ["E0108", "E0108", "E0301"]
    assert all(d.span.known for d in info.value.diagnostics)


VERIFY = """
network fixed_relu(x: 2 real[-1, 1]) {
    h = dense(x, 2, weights=[[1, -1], [0.5, 2]], bias=[0, -0.5])
    r = relu(h)
    y = dense(r, 2, weights=[[1, 1], [-1, 0]], bias=[0, 0])
}

verify fixed_relu {
    input x in halfspaces(A=[[1, 1], [-1, 0], [0, -1]], b=[0.8, 0, 0])
    property = unsafe(case(G=[[-1, 1]], h=[0]), case(G=[[0, 1], [1, 0]], h=[-5, -5]))
}

verify fixed_relu {
    input x in halfspaces(A=load("hs.npz", "A"), b=load("hs.npz", "b"))
    property = unsafe(case(G=[[0, -1]], h=[0.5], strict=true))
}
"""


def test_halfspaces_and_disjunctive_properties_match_python(tmp_path: Path) -> None:
    A = np.array([[1.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    b = np.array([0.8, 0.0, 0.0])
    np.savez(tmp_path / "hs.npz", A=A, b=b)
    (tmp_path / "v.nnmip").write_text(VERIFY, encoding="utf-8")
    cp = load_program(tmp_path / "v.nnmip")
    net = cp.networks["fixed_relu"]
    file_answers = [run_verify_spec(cp, s) for s in cp.verify_specs]
    sets = [vs.halfspaces(A, b)]
    # (y0 <= y1) or (y1 <= 5 and y0 <= 5) fails at once: every input is a counterexample
    p0 = vs.unsafe([vs.Case(np.array([[-1.0, 1.0]]), np.zeros(1), np.array([False])),
                    vs.Case(np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([-5.0, -5.0]), np.array([False, False]))])
    # y1 > 0.5 never holds: y1 = -relu(x0 - x1) <= 0
    p1 = vs.unsafe([vs.Case(np.array([[0.0, -1.0]]), np.array([0.5]), np.array([True]))])
    py_answers = [verify(net, sets, p) for p in (p0, p1)]
    assert [r.result for r in file_answers] == [r.result for r in py_answers] == [COUNTEREXAMPLE, CERTIFIED]
    cex = file_answers[0].counterexample
    assert cex is not None
    assert np.all(A @ cex <= b + 1e-9)
    assert file_answers[1].bound == pytest.approx(py_answers[1].bound)
    assert UNKNOWN not in [r.result for r in file_answers]


@pytest.mark.parametrize(("body", "code"), [
    ("input x in halfspaces(A=[[1, 1]], b=[1, 2])\n    property = classified(0)", "E0121"),
    ("input x in halfspaces(A=[1, 1], b=[1])\n    property = classified(0)", "E0108"),
    ("input x in linf(0.1, around=[0, 0])\n    property = unsafe(G=[[1, 0]])", "E0108"),
    ("input x in linf(0.1, around=[0, 0])\n    property = unsafe(case(G=[[1, 0]], h=[1, 2]))", "E0121"),
    ("input x in linf(0.1, around=[0, 0])\n    property = unsafe(classified(0))", "E0108"),
])
def test_bad_sets_and_properties_are_located(tmp_path: Path, body: str, code: str) -> None:
    (tmp_path / "v.nnmip").write_text(VERIFY.split("verify")[0] + "verify fixed_relu {\n    " + body + "\n}\n",
                                      encoding="utf-8")
    with pytest.raises(NnmipError) as info:
        load_program(tmp_path / "v.nnmip")
    d = info.value.diagnostics[0]
    assert d.code == code
    assert d.span.known


def test_compress_statement_matches_python(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nnmip.drivers.compress import compress
    from nnmip.io.weights import load_npz

    (tmp_path / "c.nnmip").write_text(VERIFY.split("verify")[0] + """
compress fixed_relu {
    domain = real[0, 0.1]
    method = lp
    output = ["small.onnx", "small.npz"]
    prove = true
    samples = 500
}
""", encoding="utf-8")
    cp = load_program(tmp_path / "c.nnmip")
    assert main(["compress", str(tmp_path / "c.nnmip"), "--json", str(tmp_path / "r.json")]) == 0
    capsys.readouterr()
    import json

    r = json.loads((tmp_path / "r.json").read_text())
    net = cp.networks["fixed_relu"]
    py = compress(net, np.zeros(2), np.full(2, 0.1), method="lp")
    small, _ = load_npz(tmp_path / "small.npz")
    assert (tmp_path / "small.onnx").is_file()
    assert small.num_params() == py.network.num_params() < net.num_params()
    assert r["params_after"] == py.params_after
    X = np.random.default_rng(0).random((200, 2)) * 0.1
    assert np.array_equal(small.forward(X), py.network.forward(X))
    assert r["proof"]["bound"] <= 1e-6
    # the command line overrides the statement
    assert main(["compress", str(tmp_path / "c.nnmip"), "--domain", "-1", "1", "-o",
                 str(tmp_path / "wide.npz")]) == 0
    wide, _ = load_npz(tmp_path / "wide.npz")
    assert wide.num_params() == net.num_params()


def test_bad_compress_statements_are_located(tmp_path: Path) -> None:
    (tmp_path / "c.nnmip").write_text(VERIFY.split("verify")[0] + """
compress fixed_relu {
    method = exact
    output = "small.txt"
    depth = 3
}
""", encoding="utf-8")
    with pytest.raises(NnmipError) as info:
        load_program(tmp_path / "c.nnmip")
    assert [d.code for d in info.value.diagnostics] == ["E0108", "E0601", "E0105"]
    assert all(d.span.known for d in info.value.diagnostics)
