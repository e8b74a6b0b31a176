"""``nnmip vnncomp``: instance lists, result files in the competition's format, and the scoring script.

The scoring script (``benchmarks/vnncomp.py``) confirms every counterexample with onnxruntime on the original
ONNX file; the tests use it on a small family built here (a float32 Gemm/ReLU network, properties whose answers
are known by construction, and a network with an operator the importer refuses).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from verify_nets import mlp_layers, mlp_onnx

from nnmip.drivers.vnncomp import Instance, find_instances_csv, read_instances, run_family
from nnmip.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
TEST_FAMILY = ROOT / "tests" / "data" / "vnncomp" / "test"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_vnncomp", ROOT / "benchmarks" / "vnncomp.py")
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_vnncomp"] = mod
    spec.loader.exec_module(mod)
    return mod


def _vnnlib(lo: float, hi: float, n_in: int, n_out: int, out: str) -> str:
    lines = [f"(declare-const X_{i} Real)" for i in range(n_in)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    for i in range(n_in):
        lines += [f"(assert (>= X_{i} {lo}))", f"(assert (<= X_{i} {hi}))"]
    lines.append(out)
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def family(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A family 'mini': one network, a sat, an unsat and a refused instance, with the answers they must get."""
    d = tmp_path_factory.mktemp("bench") / "mini"
    d.mkdir()
    layers = mlp_layers([3, 8, 8, 2], seed=4)
    onnx.save(mlp_onnx(layers, dtype=np.float32), d / "net.onnx")
    # the largest y0 - y1 over the box, from a fine grid (the network is piecewise linear and small)
    g = np.linspace(-1, 1, 41)
    X = np.array(np.meshgrid(g, g, g)).reshape(3, -1).T
    h = X
    for k, (W, b) in enumerate(layers):
        h = h @ W.T + b
        if k < len(layers) - 1:
            h = np.maximum(h, 0)
    top = float((h[:, 0] - h[:, 1]).max())
    # sat: y0 - y1 >= top - 0.5 somewhere (the grid point shows it); unsat: y0 - y1 >= top + 5 nowhere
    (d / "sat.vnnlib").write_text(_vnnlib(-1, 1, 3, 2, f"(assert (>= (- Y_0 Y_1) {top - 0.5}))"))
    (d / "unsat.vnnlib").write_text(_vnnlib(-1, 1, 3, 2, f"(assert (>= (- Y_0 Y_1) {top + 5.0}))"))
    node = helper.make_node("Sin", ["input"], ["output"], name="odd")
    graph = helper.make_graph([node], "odd", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), d / "odd.onnx")
    (d / "odd.vnnlib").write_text(_vnnlib(-1, 1, 3, 3, "(assert (>= Y_0 0.0))"))
    (d / "mini_instances.csv").write_text("net.onnx,sat.vnnlib,30\nnet.onnx,unsat.vnnlib,30\n"
                                          "odd.onnx,odd.vnnlib,30\n")
    return d, {"mini|net.onnx|sat.vnnlib": "sat", "mini|net.onnx|unsat.vnnlib": "unsat",
               "mini|odd.onnx|odd.vnnlib": "unknown"}


def test_instance_lists(tmp_path: Path, family: tuple[Path, dict[str, str]]) -> None:
    d, _ = family
    insts = read_instances(d, find_instances_csv(d))
    assert [i.key for i in insts] == ["mini|net.onnx|sat.vnnlib", "mini|net.onnx|unsat.vnnlib",
                                      "mini|odd.onnx|odd.vnnlib"]
    assert insts[0].timeout == 30.0
    assert Instance("acasxu", "nets/a.onnx.gz", "specs/p.vnnlib.gz", 1.0).key == "acasxu|a.onnx|p.vnnlib"
    bad = tmp_path / "bad.csv"
    bad.write_text("net.onnx,sat.vnnlib\n")
    with pytest.raises(DataError) as e:
        read_instances(d, bad)
    assert e.value.diagnostics[0].code == "E0313"
    with pytest.raises(DataError) as e:
        find_instances_csv(tmp_path)
    assert e.value.diagnostics[0].code == "E0313"


def test_runner_writes_the_competition_format_and_the_scores_agree(tmp_path: Path,
                                                                    family: tuple[Path, dict[str, str]]) -> None:
    d, expected = family
    results, out = run_family(d, results_dir=tmp_path / "res", jobs=2)
    got = {r.key: r.result for r in results}
    assert got == expected
    by_key = {r.key: r for r in results}
    assert not by_key["mini|odd.onnx|odd.vnnlib"].loaded
    assert "E0701" in by_key["mini|odd.onnx|odd.vnnlib"].note
    assert Path(by_key["mini|odd.onnx|odd.vnnlib"].result_file).read_text() == "unknown\n"
    assert Path(by_key["mini|net.onnx|unsat.vnnlib"].result_file).read_text() == "unsat\n"
    sat = Path(by_key["mini|net.onnx|sat.vnnlib"].result_file).read_text()
    assert sat.startswith("sat\n((X_0 ")
    assert "(Y_1 " in sat
    assert sat.rstrip().endswith("))")
    for r in results:
        assert r.seconds < 30 + 10
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"sat": 1, "unsat": 1, "timeout": 0, "unknown": 1}
    assert summary["run"]["threads"] == 1            # each instance's process: one solver and BLAS thread
    assert summary["loaded"] == 2
    assert (out / "summary.csv").read_text().count("\n") == 4
    # scoring: onnxruntime confirms the counterexample on the original file; nothing is wrong
    bench = _bench()
    official = {k: {"official": v} for k, v in expected.items() if v != "unknown"}
    scores = bench.score([out], official)
    fam = scores["families"]["mini"]
    assert (fam["answered"], fam["agreed"], fam["wrong"], fam["confirmed"]) == (2, 2, 0, 1)
    # a counterexample onnxruntime does not confirm is counted wrong
    sat_file = Path(by_key["mini|net.onnx|sat.vnnlib"].result_file)
    sat_file.write_text("sat\n((X_0 5.0)\n (X_1 0.0)\n (X_2 0.0)\n (Y_0 0.0)\n (Y_1 0.0))\n")
    scores = bench.score([out], official)
    assert scores["families"]["mini"]["wrong"] == 1
    assert scores["families"]["mini"]["confirmed"] == 0


def test_instance_command_carries_the_thread_limit(tmp_path: Path) -> None:
    from nnmip.drivers.vnncomp import Instance, Task, command

    inst = Instance("fam", "net.onnx", "p.vnnlib", 10.0, 0)
    cmd = command(tmp_path, inst, tmp_path, 9.0)
    assert "--threads" not in cmd
    cmd = command(tmp_path, inst, tmp_path, 9.0, threads=1)
    assert cmd[cmd.index("--threads") + 1] == "1"
    assert Task(str(tmp_path), inst, str(tmp_path), 10.0).threads == 1


@pytest.mark.slow
def test_the_command_line(tmp_path: Path, family: tuple[Path, dict[str, str]]) -> None:
    d, _ = family
    p = subprocess.run([sys.executable, "-m", "nnmip.cli", "vnncomp", str(d), "--results-dir", str(tmp_path / "r"),
                        "--sample", "2", "--seed", "1", "--timeout", "20", "-q"],
                       capture_output=True, text=True, timeout=300)
    assert "2 instances" in p.stdout, p.stdout + p.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["run"]["sample"] == 2
    assert all(r["timeout"] == 30.0 for r in summary["results"])     # the list's timeout, recorded as is
    assert p.returncode in (0, 1)
    bad = subprocess.run([sys.executable, "-m", "nnmip.cli", "vnncomp", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert "E0301" in bad.stderr


@pytest.mark.slow
def test_the_shipped_test_family_is_answered_as_the_competition_did(tmp_path: Path) -> None:
    results, out = run_family(TEST_FAMILY, results_dir=tmp_path / "test", jobs=2)
    official = json.loads((TEST_FAMILY.parent / "official_results_test.json").read_text())
    assert len(results) == 5
    for r in results:
        assert r.loaded, r
        assert r.result == official[r.key]["official"], r
        assert r.seconds < r.timeout + 10
    fam = _bench().score([out], official)["families"]["test"]
    assert (fam["answered"], fam["agreed"], fam["wrong"], fam["confirmed"]) == (5, 5, 0, 1)
