"""``nnmip compile`` on every kind of question: the written LP/MPS files, read by HiGHS, CBC and SCIP themselves
(not through nnmip's backends), reach the optimum nnmip finds.

Training questions are compared with nnmip's verified training objective; verification questions with the
answer of ``verify``: the optimum of a case model lies between nnmip's best forward-pass value and its proven
bound, is negative for a certified property and non-negative for a counterexample.
"""

from __future__ import annotations

import contextlib
import gzip
import shutil
from pathlib import Path

import pytest
from conftest import BCW_CSV, EXAMPLES

from nnmip.backends import is_installed
from nnmip.cli import main
from nnmip.drivers.compile import program_questions, question_paths
from nnmip.drivers.task import load_program, run_train_task
from nnmip.drivers.verify import CERTIFIED, COUNTEREXAMPLE, run_verify_spec
from nnmip.solution import SolveOptions

pytestmark = pytest.mark.skipif(not is_installed("highs"), reason="highspy is not installed")

READERS = ["highs", "cbc", "scip"]


def solve_file(solver: str, path: Path) -> float:
    """Read ``path`` with the solver's own reader, solve to a zero gap, return the optimum."""
    if not is_installed(solver):
        pytest.skip(f"solver '{solver}' is not installed")
    if path.name.endswith(".gz"):       # python-mip's and SCIP's readers want plain text
        plain = path.with_name(path.name[:-3])
        plain.write_bytes(gzip.decompress(path.read_bytes()))
        path = plain
    if solver == "highs":
        import highspy

        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("mip_rel_gap", 0.0)
        h.setOptionValue("mip_feasibility_tolerance", 1e-9)
        assert h.readModel(str(path)) == highspy.HighsStatus.kOk
        h.run()
        assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
        return float(h.getInfo().objective_function_value)
    if solver == "cbc":
        import mip

        m = mip.Model(solver_name=mip.CBC)
        m.verbose = 0
        with contextlib.redirect_stdout(None):
            m.read(str(path))
        m.max_mip_gap = 0.0
        m.max_mip_gap_abs = 0.0
        assert m.optimize() == mip.OptimizationStatus.OPTIMAL
        return float(m.objective_value)
    import pyscipopt

    s = pyscipopt.Model()
    s.hideOutput()
    s.readProblem(str(path))
    s.setParam("limits/gap", 0.0)
    s.setParam("numerics/feastol", 1e-9)
    s.optimize()
    assert s.getStatus() == "optimal"
    return float(s.getObjVal())


@pytest.fixture(scope="module")
def verify_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[object]]:
    """``nnmip compile examples/verify_bcw.nnmip -o v.mps`` and nnmip's own answers to its questions."""
    out = tmp_path_factory.mktemp("compile") / "v.mps"
    assert main(["compile", str(EXAMPLES / "verify_bcw.nnmip"), "-o", str(out)]) == 0
    cp = load_program(EXAMPLES / "verify_bcw.nnmip")
    answers = [run_verify_spec(cp, s, solver="highs") for s in cp.verify_specs]
    return sorted(out.parent.glob("v.*.mps")), answers


def test_verify_example_writes_one_file_per_question(verify_files: tuple[list[Path], list[object]]) -> None:
    files, answers = verify_files
    assert [f.name for f in files] == ["v.q0.mps", "v.q1.mps", "v.q2.mps"]
    assert [a.result for a in answers] == [CERTIFIED, COUNTEREXAMPLE, CERTIFIED]  # type: ignore[attr-defined]


@pytest.mark.parametrize("solver", READERS)
def test_verify_models_resolve_to_nnmip_answer(verify_files: tuple[list[Path], list[object]], solver: str) -> None:
    files, answers = verify_files
    for path, res in zip(files, answers, strict=True):
        opt = solve_file(solver, path)
        bound, value = res.bound, res.value  # type: ignore[attr-defined]
        tol = 1e-6 * (1 + abs(opt))
        if res.result == CERTIFIED:  # type: ignore[attr-defined]
            assert opt < 0 or res.prop.startswith("maximize")  # type: ignore[attr-defined]
            assert opt <= bound + tol
        else:
            assert opt >= 0
        if value is not None:
            assert opt >= value - tol          # the forward pass attains value; the model can do no worse
    # the maximisation question: proven optimum, attained by the forward pass, equal across solvers
    q2 = answers[2]
    assert solve_file(solver, files[2]) == pytest.approx(q2.value, abs=1e-6)  # type: ignore[attr-defined]


TRAIN = """
data bcw = csv("data/breast-cancer-wisconsin.csv", delimiter=";", label=-1, scale=minmax)
           split(train=0.5, validation=0.25, test=0.25, seed=0)

network bdnn(x: 9) {
    h1 = dense(x, 2, weights=real[-1, 1], bias=real[-10, 10])
    a1 = step(h1)
    h2 = dense(a1, 2, weights=int[-1, 1], bias=real[-5, 5])
    y  = step(h2)
}

network soft(x: 9) {
    h1 = dense(x, 2, weights=real[-1, 1], bias=real[-10, 10])
    a1 = step(h1)
    h2 = dense(a1, 2, weights=real[-0.1, 0.1], bias=real[-5, 5])
    y  = identity(h2)
}

train soft on bcw {
    loss = hinge
    subset = random(14, seed=3)
}

train bdnn on bcw {
    loss = hamming
    subset = random(12, seed=4)
    robust x in linf(0.3)
}

train bdnn on bcw {
    loss = hamming
    subset = random(12, seed=5)
    prune = [features(cost=0.25), neurons(h1, cost=0.5)]
}
"""


@pytest.fixture(scope="module")
def train_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[float]]:
    d = tmp_path_factory.mktemp("train")
    (d / "data").mkdir()
    shutil.copy(BCW_CSV, d / "data" / BCW_CSV.name)
    (d / "t.nnmip").write_text(TRAIN, encoding="utf-8")
    assert main(["compile", str(d / "t.nnmip"), "-o", str(d / "t.lp.gz")]) == 0
    cp = load_program(d / "t.nnmip")
    objectives = []
    for task in cp.tasks:
        rep = run_train_task(cp, task, options=SolveOptions(mip_gap=0.0))
        assert rep.result.verified
        objectives.append(float(rep.result.objective))
    return [d / f"t.q{i}.lp.gz" for i in range(3)], objectives


@pytest.mark.parametrize("solver", READERS)
@pytest.mark.parametrize("question", [0, 1, 2], ids=["plain", "robust", "pruning"])
def test_training_models_resolve_to_nnmip_objective(train_files: tuple[list[Path], list[float]], solver: str,
                                                    question: int) -> None:
    files, objectives = train_files
    assert solve_file(solver, files[question]) == pytest.approx(objectives[question], abs=1e-6)


def test_question_paths_are_predictable(tmp_path: Path) -> None:
    cp = load_program(EXAMPLES / "verify_onnx.nnmip")
    qs = program_questions(cp)
    names = [p.name for p in question_paths(tmp_path / "o.lp.gz", qs)]
    assert names == ["o.q0.lp.gz", "o.q1.lp.gz", "o.q2.c0.lp.gz", "o.q2.c1.lp.gz", "o.q2.c2.lp.gz", "o.q2.c3.lp.gz"]
    assert [p.name for p in question_paths(tmp_path / "one.mps", qs[:1])] == ["one.mps"]


def test_compile_without_a_question_is_e0181(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "n.nnmip").write_text("network n(x: 2) { h = dense(x, 1); y = step(h) }\n", encoding="utf-8")
    assert main(["compile", str(tmp_path / "n.nnmip"), "-o", str(tmp_path / "n.mps")]) == 2
    err = capsys.readouterr().err
    assert "error[E0181]" in err
    assert "help:" in err
