"""The ``nnmip`` command end to end: solve with JSON and ONNX output checked against the raw CSV rows by
onnxruntime, compile to LP/MPS read back by HiGHS, JSON on standard output, exit codes and time limits."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import BCW_CSV, EXAMPLES

import nnmip.cli
from nnmip.backends import is_installed
from nnmip.cli import main

pytestmark = pytest.mark.skipif(not is_installed("highs"), reason="highspy is not installed")

BCW_TEXT = (EXAMPLES / "bcw.nnmip").read_text(encoding="utf-8")


def variant(tmp_path: Path, name: str, *replacements: tuple[str, str]) -> Path:
    """A copy of examples/bcw.nnmip (with its data folder) after exact text replacements."""
    text = BCW_TEXT
    for old, new in replacements:
        assert old in text, f"examples/bcw.nnmip no longer contains {old!r}"
        text = text.replace(old, new)
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    if not (data / BCW_CSV.name).exists():
        shutil.copy(BCW_CSV, data / BCW_CSV.name)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


SMALL = (("subset = random(100, seed=1)", "subset = random(30, seed=1)"), ("time_limit=120", "time_limit=30"))
#: scores from output weights in [-0.1, 0.1] on four 0/1 units differ by at most 0.8 between points, so the
#: hinge margins of two points with different labels add up to at most 1.6 < 2: a positive optimum
HINGE = SMALL + (("weights=int[-1, 1]", "weights=real[-0.1, 0.1]"), ("y  = step(h2)", "y  = identity(h2)"),
                 ("loss = hamming", "loss = hinge"))


def solve(path: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["solve", str(path), "--solver", "highs", *extra])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


# -- solve: JSON and ONNX ----------------------------------------------------------------------------------------
def raw_rows() -> tuple[np.ndarray, np.ndarray]:
    """The raw CSV, read here independently of the data layer: features and label column."""
    table = np.loadtxt(BCW_CSV, delimiter=";")
    return table[:, :-1], table[:, -1]


def assert_result_json(r: dict[str, Any], subset: int) -> None:
    for key in ("status", "solver", "objective", "bound", "gap", "seconds", "verified", "loss", "metrics",
                "model", "data"):
        assert key in r, key
    assert r["status"] == "optimal"
    assert r["solver"] == "highs"
    assert r["verified"] is True
    assert r["gap"] == 0.0
    assert r["seconds"] >= 0.0
    assert r["objective"] == pytest.approx(r["loss"], abs=1e-6)
    assert r["bound"] == pytest.approx(r["loss"], abs=1e-6)
    assert set(r["metrics"]) >= {"train", "validation", "test"}
    m = r["model"]
    assert m["variables"] > 0
    assert m["binaries"] > 0
    assert m["rows"] > 0
    assert m["nonzeros"] > 0
    assert m["integers"] == 8   # h2: 2 x 4 integer weights
    # 9 inputs, 4 hidden, 2 outputs on N points: binaries N (4 + 2); columns W1 36 + b1 4 + W2 8 + b2 2
    # + u 6 N + s 8 N
    n = subset
    assert m["binaries"] == 6 * n
    assert m["variables"] == 36 + 4 + 8 + 2 + 6 * n + 8 * n
    assert m["rows"] == 2 * 6 * n + 4 * 8 * n
    d = r["data"]
    assert d["source"].startswith("csv:")
    assert d["source"].endswith("breast-cancer-wisconsin.csv")
    assert len(d["train"]) == subset
    assert set(d["train"]) <= set(d["train_all"])
    split = set(d["train_all"]) | set(d["validation"]) | set(d["test"])
    assert len(split) == d["rows"] == 699
    assert len(d["train_all"]) + len(d["validation"]) + len(d["test"]) == 699


def assert_onnx_reproduces(r: dict[str, Any], onnx_path: Path) -> None:
    """onnxruntime on the raw CSV rows named in the JSON gives the reported loss and accuracies exactly."""
    ort = pytest.importorskip("onnxruntime")
    X_raw, labels = raw_rows()
    classes = np.asarray(r["data"]["classes"], dtype=float)
    y = np.searchsorted(classes, labels)
    assert np.array_equal(classes[y], labels)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    train = np.asarray(r["data"]["train"])
    out, label = sess.run(["output", "label"], {sess.get_inputs()[0].name: X_raw[train]})
    assert set(np.unique(out)) <= {0.0, 1.0}
    target = np.eye(out.shape[1])[y[train]]
    assert float(np.abs(target - out).sum()) == r["loss"]     # hamming loss, no penalty in this example
    for split in ("train", "train_all", "validation", "test"):
        rows = np.asarray(r["data"][split])
        (pred,) = sess.run(["label"], {sess.get_inputs()[0].name: X_raw[rows]})
        assert float(np.mean(pred == y[rows])) == r["metrics"][split], split


def test_solve_small_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = variant(tmp_path, "small.nnmip", *SMALL)
    try:
        import nnmip.io.onnx  # noqa: F401
        onnx_args = ["--save-onnx", str(tmp_path / "m.onnx")]
    except ImportError:
        onnx_args = []
    code, out, err = solve(path, "--json", str(tmp_path / "r.json"), *onnx_args, capsys=capsys)
    assert code == 0, err
    assert "verified" in out
    assert "accuracy test" in out
    r = json.loads((tmp_path / "r.json").read_text())
    assert_result_json(r, 30)
    assert r["loss"] == 0.0                                        # 30 BCW rows are separable by this network
    if not onnx_args:
        pytest.skip("nnmip.io.onnx is not importable: the ONNX part of this test did not run")
    assert r["onnx_file"] == str(tmp_path / "m.onnx")
    assert_onnx_reproduces(r, tmp_path / "m.onnx")


@pytest.mark.slow
def test_solve_bcw_example(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
                           ) -> None:
    """The exact-MILP example on 100 rows (about 30 s with HiGHS on 2 cores)."""
    monkeypatch.chdir(tmp_path)
    code, out, err = solve(EXAMPLES / "bcw.nnmip", "--json", "r.json", "--save-onnx", "m.onnx", capsys=capsys)
    assert code == 0, err
    r = json.loads((tmp_path / "r.json").read_text())
    assert_result_json(r, 100)
    assert_onnx_reproduces(r, tmp_path / "m.onnx")


@pytest.mark.slow
def test_readme_main_job(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
                         ) -> None:
    """The README's main job: data splitting on all 350 training rows within a 60 s budget, a verified network
    whose test accuracy is close to an MLP of the same width (96.2% on this split)."""
    monkeypatch.chdir(tmp_path)
    code, out, err = solve(EXAMPLES / "bcw_full.nnmip", "--json", "r.json", "--save-onnx", "m.onnx", capsys=capsys)
    assert code == 0, err
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["verified"] is True
    assert len(r["data"]["train"]) == 350     # every training row
    assert r["history"]                       # one record per split solve
    assert r["metrics"]["train"] >= 0.93
    assert r["metrics"]["test"] >= 0.93
    assert r["seconds"] <= 60 + 15
    assert_onnx_reproduces(r, tmp_path / "m.onnx")


def test_json_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = variant(tmp_path, "small.nnmip", *SMALL)
    code, out, _ = solve(path, "--json", "-", capsys=capsys)
    assert code == 0
    r = json.loads(out)                       # standard output holds the JSON and nothing else
    assert r["status"] == "optimal"
    assert r["verified"] is True


def test_json_to_stdout_in_a_real_process(tmp_path: Path) -> None:
    """No solver banner or table reaches standard output (the C library writes there directly)."""
    path = variant(tmp_path, "small.nnmip", *SMALL)
    proc = subprocess.run([sys.executable, "-m", "nnmip.cli", "solve", str(path), "--json", "-"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["status"] == "optimal"
    assert "training 'bdnn'" in proc.stderr  # progress goes to standard error


# -- compile: LP and MPS read back by HiGHS ----------------------------------------------------------------------
@pytest.mark.parametrize("case", ["small", "hinge"])
def test_compile_lp_and_mps_give_the_solve_objective(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     case: str) -> None:
    import highspy

    path = variant(tmp_path, f"{case}.nnmip", *(HINGE if case == "hinge" else SMALL))
    code, _, err = solve(path, "--json", str(tmp_path / "r.json"), "-q", capsys=capsys)
    assert code == 0, err
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["status"] == "optimal"
    assert r["verified"]
    if case == "hinge":
        assert r["loss"] > 1.0                 # the margin argument above: not a trivial optimum
    for suffix in ("lp", "mps"):
        target = tmp_path / f"model.{suffix}"
        assert main(["compile", str(path), "-o", str(target), "--json", str(tmp_path / f"{suffix}.json")]) == 0
        capsys.readouterr()
        stats = json.loads((tmp_path / f"{suffix}.json").read_text())
        assert {k: stats[k] for k in ("variables", "binaries", "integers", "rows", "nonzeros")} == \
            {k: r["model"][k] for k in ("variables", "binaries", "integers", "rows", "nonzeros")}
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("mip_rel_gap", 0.0)
        h.setOptionValue("mip_feasibility_tolerance", 1e-9)
        assert h.readModel(str(target)) == highspy.HighsStatus.kOk
        lp = h.getLp()
        extra = h.getNumCol() - r["model"]["variables"]   # the writers' fixed column holding the constant
        assert extra == (1 if case == "small" else 0)       # hamming: sum of the targets; hinge: none
        if extra:
            assert lp.col_names_[-1] == "obj_constant"
            assert (lp.col_lower_[-1], lp.col_upper_[-1], lp.col_cost_[-1]) == (1.0, 1.0, 30.0)
        assert h.getNumRow() == r["model"]["rows"]
        h.run()
        assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
        assert h.getInfo().objective_function_value == pytest.approx(r["objective"], abs=1e-6)


# -- exit codes ---------------------------------------------------------------------------------------------------
def test_exit_codes_are_documented() -> None:
    doc = nnmip.cli.__doc__ or ""
    for code, words in ((0, "success"), (1, "without a verified result"), (2, "bad input"), (3, "solver")):
        assert f"{code} " in doc
        assert words in doc
    assert (nnmip.cli.EXIT_OK, nnmip.cli.EXIT_UNSOLVED, nnmip.cli.EXIT_INPUT, nnmip.cli.EXIT_SOLVER) == (0, 1, 2, 3)


def test_exit_1_when_the_model_is_infeasible(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """min_weight needs every point classified with margin; the same point with both labels forbids it."""
    (tmp_path / "d.csv").write_text("0,1,0\n0,1,1\n1,0,1\n0,0,0\n")
    path = tmp_path / "inf.nnmip"
    path.write_text('data d = csv("d.csv", scale=none)\n'
                    "network n(x: 2) { h = dense(x, 1, weights=real[-1, 1]); y = identity(h) }\n"
                    "train n on d { loss = min_weight }\n")
    code, out, err = solve(path, "--json", str(tmp_path / "r.json"), "-q", capsys=capsys)
    assert code == 1, err
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["status"] in ("infeasible", "infeasible_or_unbounded")
    assert r["verified"] is False
    assert r["loss"] is None


def test_exit_2_and_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = variant(tmp_path, "small.nnmip", *SMALL)
    assert main(["solve", str(path), "--solver", "nosuch", "-q"]) == 3
    assert "error[E0503]" in capsys.readouterr().err
    bad = tmp_path / "bad.nnmip"
    bad.write_text("network n(x: 2) { h = dense(x, 1) ")
    assert main(["solve", str(bad), "-q"]) == 2
    assert main(["check", str(bad)]) == 2
    assert "error[E0001]" in capsys.readouterr().err
    assert main([]) == 2


def test_check_ok_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(EXAMPLES / "bcw.nnmip")]) == 0
    assert "ok (1 network(s), 1 training task(s)" in capsys.readouterr().out
    assert main(["check", str(EXAMPLES / "bcw.nnmip"), "--json", "-"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] is True
    assert summary["networks"] == ["bdnn"]
    assert summary["train_tasks"] == 1


# -- time limits --------------------------------------------------------------------------------------------------
def test_time_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """250 rows cannot be proved optimal in 1 s (100 rows take about 30 s): the run stops at the limit, and
    the exit code follows the documented rule (0 only with a verified incumbent)."""
    path = variant(tmp_path, "big.nnmip", ("subset = random(100, seed=1)", "subset = random(250, seed=1)"))
    code, out, err = solve(path, "--time-limit", "1", "--json", str(tmp_path / "r.json"), "-q", capsys=capsys)
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["status"] == "time_limit"
    assert r["seconds"] < 20
    if r["loss"] is None:                      # no incumbent
        assert code == 1
        assert r["verified"] is False
    else:
        assert code == (0 if r["verified"] else 1)
        assert r["bound"] is None or r["bound"] <= r["objective"] + 1e-6
        assert r["loss"] <= r["objective"] + 1e-6


def test_python_dash_m_nnmip_is_the_command(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "nnmip", "--version"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0
    assert ok.stdout.startswith("nnmip ")
    bad = subprocess.run([sys.executable, "-m", "nnmip", "check", str(tmp_path / "nope.nnmip")], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2
    assert "E0002" in bad.stderr
    assert "Traceback" not in bad.stderr
