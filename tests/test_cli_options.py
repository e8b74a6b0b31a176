"""Options are checked before anything is read or started: counts of processes and threads share one limit,
options that another option makes meaningless are refused instead of ignored, and output names say what they
hold."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_cases import run
from conftest import EXAMPLES

BCW_ONNX = str(EXAMPLES / "data" / "verify_bcw.onnx")
X0 = "5,1,1,1,2,1,3,1,1"
ENSEMBLE = """\
data iris = sklearn("iris", scale=minmax) split(train=0.5, validation=0.25, test=0.25, seed=0)
network n(x: 4) {
    h = dense(x, 2, weights=real[-1, 1], bias=real[-1, 1])
    a = step(h)
    o = dense(a, 2, weights=int[-1, 1], bias=real[-1, 1])
    y = step(o)
}
train n on iris { loss = hamming; subset = random(30, seed=0); strategy = one_vs_one(member=exact) }
"""


def refused(argv: list[str], code: str, capsys: pytest.CaptureFixture[str], exit_code: int = 2) -> str:
    rc, _, err = run(argv, capsys)
    assert rc == exit_code, err
    assert f"error[{code}]" in err, err
    assert "help:" in err, err
    return err


@pytest.fixture
def points(tmp_path: Path) -> str:
    rows = [line.replace(";", ",") for line in (EXAMPLES / "data" / "breast-cancer-wisconsin.csv").read_text()
            .splitlines()[:4]]
    p = tmp_path / "pts.csv"
    p.write_text("\n".join(rows) + "\n")
    return str(p)


# -- one limit for every count of processes and threads --------------------------------------------------------
@pytest.mark.parametrize("jobs", ["100000", "99999999999999999999", "1025", "0", "-3"])
def test_verify_points_jobs_are_limited(points: str, capsys, monkeypatch, jobs: str) -> None:
    import nnmip.drivers.executor as executor

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("no worker process may start")

    monkeypatch.setattr(executor.ProcessExecutor, "start", never)
    err = refused(["verify", "--onnx", BCW_ONNX, "--points", points, "--linf", "0.5", "--jobs", jobs, "-q"],
                  "E0109", capsys)
    assert "--jobs" in err


@pytest.mark.parametrize("jobs", ["99999999999999999999", "2000", "-3"])
def test_solve_jobs_are_limited_before_the_file_is_read(tmp_path: Path, capsys, monkeypatch, jobs: str) -> None:
    monkeypatch.chdir(tmp_path)
    Path("ens.nnmip").write_text(ENSEMBLE)
    refused(["solve", "ens.nnmip", "-q", "--jobs", jobs], "E0109", capsys)
    refused(["solve", str(EXAMPLES / "bcw.nnmip"), "-q", "--jobs", jobs], "E0109", capsys)   # not an ensemble


def test_threads_have_the_same_limit_as_jobs(capsys) -> None:
    err = refused(["solve", str(EXAMPLES / "bcw.nnmip"), "-q", "--threads", "4096"], "E0109", capsys)
    assert "at most 1024" in err
    assert "see the function docstring" not in err
    refused(["verify", "--onnx", BCW_ONNX, "--point", X0, "--linf", "0.1", "--workers", "1025"], "E0109", capsys)
    refused(["vnncomp", str(EXAMPLES), "--threads", "2048"], "E0109", capsys)


def test_the_executor_refuses_too_many_processes_before_starting_any(monkeypatch) -> None:
    import nnmip.drivers.executor as executor
    from nnmip.drivers.executor import ExecutorError, make_executor

    monkeypatch.setattr(executor.ProcessExecutor, "start", lambda self: pytest.fail("started"))
    for jobs in (100_000, 10**20):
        with pytest.raises(ExecutorError) as info:
            make_executor(jobs=jobs)
        assert info.value.diagnostics[0].code == "E0803"
    with pytest.raises(ExecutorError):
        executor.ProcessExecutor(5000, start=False)


# -- nnmip vnncomp ------------------------------------------------------------------------------------------------
def test_vnncomp_seed_must_not_be_negative(tmp_path: Path, capsys) -> None:
    refused(["vnncomp", str(tmp_path), "--sample", "1", "--seed", "-1", "--results-dir", str(tmp_path / "r")],
            "E0109", capsys)
    assert not (tmp_path / "r").exists()


def test_vnncomp_unknown_solver_fails_before_any_instance(tmp_path: Path, capsys) -> None:
    (tmp_path / "instances.csv").write_text("net.onnx,prop.vnnlib,30\n")
    refused(["vnncomp", str(tmp_path), "--solver", "nope", "--results-dir", str(tmp_path / "r")], "E0503", capsys,
            exit_code=3)
    assert not (tmp_path / "r").exists()


# -- options that do not go together ---------------------------------------------------------------------------
CONFLICTS = {
    "file-and-question": ["verify", str(EXAMPLES / "verify_bcw.nnmip"), "--point", "1,2", "--linf", "0.1",
                          "--label", "1", "-q"],
    "file-and-counterexample-vnnlib": ["verify", str(EXAMPLES / "verify_bcw.nnmip"), "--vnnlib", "p.vnnlib",
                                       "--counterexample", "ce.txt", "-q"],
    "point-and-vnnlib": ["verify", "--onnx", BCW_ONNX, "--point", X0, "--linf", "0.1", "--vnnlib", "p.vnnlib"],
    "point-and-points": ["verify", "--onnx", BCW_ONNX, "--point", X0, "--points", "pts.csv", "--linf", "0.1"],
    "threshold-alone": ["verify", "--onnx", BCW_ONNX, "--point", X0, "--linf", "0.1", "--threshold", "5"],
    "label-and-maximize": ["verify", "--onnx", BCW_ONNX, "--point", X0, "--linf", "0.1", "--maximize", "1,0",
                           "--label", "1"],
    "points-and-l1": ["verify", "--onnx", BCW_ONNX, "--points", "pts.csv", "--linf", "0.1", "--l1", "0.5"],
    "label-column-without-points": ["verify", "--onnx", BCW_ONNX, "--point", X0, "--linf", "0.1",
                                    "--label-column", "2"],
}


@pytest.mark.parametrize("case", sorted(CONFLICTS))
def test_contradicting_options_are_refused(tmp_path: Path, capsys, monkeypatch, case: str) -> None:
    monkeypatch.chdir(tmp_path)
    Path("p.vnnlib").write_text("(declare-const X_0 Real)\n")
    Path("pts.csv").write_text("5,1,1,1,2,1,3,1,1,0\n")
    err = refused(CONFLICTS[case], "E0104", capsys)
    assert "--" in err.split("help:")[0]
    assert sorted(os.listdir(tmp_path)) == ["p.vnnlib", "pts.csv"]     # no output written


def test_an_empty_objective_is_refused(capsys) -> None:
    err = refused(["verify", "--onnx", BCW_ONNX, "--point", X0, "--linf", "0.1", "--maximize", ""], "E0109", capsys)
    assert "--maximize" in err
    refused(["verify", "--onnx", BCW_ONNX, "--point", X0, "--linf", "0.1", "--minimize", " , "], "E0109", capsys)


def test_label_column_is_read_in_any_case(points: str, capsys) -> None:
    rc, out, err = run(["verify", "--onnx", BCW_ONNX, "--points", points, "--linf", "0.1", "--label-column", "NONE",
                        "--jobs", "1", "-q"], capsys)
    assert rc == 2           # the rows keep their label column: 10 values for 9 inputs, reported as such
    assert "error[E0412]" in err


def test_import_options_are_checked(tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "i.nnmip")
    base = ["import", BCW_ONNX, "-o", out, "--fold-scaling"]
    err = refused([*base, "--domain", "nan", "1"], "E0109", capsys)
    assert "--domain" in err
    refused([*base, "--domain", "1", "-inf"], "E0109", capsys)
    refused([*base, "--domain", "2", "1"], "E0410", capsys)
    refused([*base, "--inline", "-1"], "E0109", capsys)
    assert not os.path.exists(out)


def test_an_unknown_log_level_is_refused(capsys) -> None:
    err = refused(["--log-level", "bogus", "check", str(EXAMPLES / "bcw.nnmip")], "E0190", capsys)
    assert "--log-level" in err
    assert run(["--log-level", "info", "check", str(EXAMPLES / "bcw.nnmip"), "--no-data"], capsys)[0] == 0


# -- output names -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("option", "name"), [("--save-weights", "w.npy"), ("--save-onnx", "w.txt"),
                                              ("--save-weights", "-")])
def test_solve_outputs_have_their_extension(tmp_path: Path, capsys, monkeypatch, option: str, name: str) -> None:
    monkeypatch.chdir(tmp_path)
    err = refused(["solve", str(EXAMPLES / "bcw.nnmip"), "-q", option, name], "E0601", capsys)
    assert option in err
    assert os.listdir(tmp_path) == []


def test_counterexample_dash_is_standard_output(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    lines = [f"(declare-const X_{i} Real)" for i in range(9)] + ["(declare-const Y_0 Real)", "(declare-const Y_1 Real)"]
    for i, v in enumerate(X0.split(",")):
        lines += [f"(assert (<= X_{i} {float(v) + 0.5}))", f"(assert (>= X_{i} {float(v) - 0.5}))"]
    Path("p.vnnlib").write_text("\n".join([*lines, "(assert (>= Y_1 Y_0))"]) + "\n")
    rc, out, err = run(["verify", "--onnx", BCW_ONNX, "--vnnlib", "p.vnnlib", "--counterexample", "-", "-q"], capsys)
    assert rc == 0
    assert out == "unsat\n"       # the result file alone; the answer line went to standard error
    assert os.listdir(tmp_path) == ["p.vnnlib"]
    rc, out, err = run(["verify", "--onnx", BCW_ONNX, "--vnnlib", "p.vnnlib", "--counterexample", "-", "--json", "-",
                        "-q"], capsys)
    assert rc == 2
    assert "error[E0615]" in err
    assert json.loads(out)["errors"][0]["code"] == "E0615"


def test_an_ensembles_workers_has_the_same_limit_located(tmp_path: Path) -> None:
    src = """data iris = sklearn("iris", scale=minmax) split(train=0.5, validation=0.25, test=0.25, seed=0)
network n(x: 4) {
    h = dense(x, 2, weights=real[-1, 1], bias=real[-1, 1])
    a = step(h)
    o = dense(a, 2, weights=int[-1, 1], bias=real[-1, 1])
    y = step(o)
}
train n on iris { loss = hamming; subset = random(30, seed=0); strategy = one_vs_one(member=exact, workers=5000) }
"""
    f = tmp_path / "ens.nnmip"
    f.write_text(src, encoding="utf-8")
    from nnmip.check import check
    from nnmip.errors import NnmipError
    from nnmip.syntax import parse_file

    with pytest.raises(NnmipError) as info:
        check(parse_file(f), tmp_path)
    d = info.value.diagnostics[0]
    assert d.code == "E0109"
    assert "at most 1024" in d.message
    assert d.span.line == 8
