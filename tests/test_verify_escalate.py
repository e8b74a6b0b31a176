"""verify with ``tighten="auto"``: an optimisation MILP not solved within ``ESCALATE_SECONDS`` is solved again on
the stronger model (lp-cuts bounds, ideal ReLU cuts, the best input as start), and the answer is the same."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from verify_nets import relu_question

from nnmip.drivers import verify as verify_mod
from nnmip.drivers.verify import CERTIFIED, verify
from nnmip.ir import spec as vs
from nnmip.solution import SolveOptions

AGAIN = "the MILP was not solved within"


def _ask(seed: int, sizes: tuple[int, ...], eps: float, **kw: object) -> tuple[object, np.ndarray, object]:
    net, x0, eps, coef, _ = relu_question(seed, sizes=sizes, eps=eps)
    r = verify(net, [vs.linf(x0, eps)], vs.maximize(coef), domain=(0, 1), **kw)  # type: ignore[arg-type]
    return net, coef, r


@pytest.mark.parametrize(("seed", "sizes", "eps"), [(2, (5, 12, 12, 12, 2), 0.3), (0, (8, 24, 24, 2), 0.3),
                                                    (1, (10, 24, 24, 24, 2), 0.3)])
def test_an_unsolved_milp_is_solved_again_on_the_stronger_model(monkeypatch: pytest.MonkeyPatch, seed: int,
                                                                 sizes: tuple[int, ...], eps: float) -> None:
    _, _, plain = _ask(seed, sizes, eps, tighten="lp")            # a named method: no second model
    assert not any(AGAIN in n for n in plain.notes)                # type: ignore[attr-defined]
    monkeypatch.setattr(verify_mod, "ESCALATE_SECONDS", 0.0)      # the first solve stops at once
    net, coef, r = _ask(seed, sizes, eps)
    assert r.result == CERTIFIED                                   # type: ignore[attr-defined]
    notes = [n for n in r.notes if AGAIN in n]                     # type: ignore[attr-defined]
    assert len(notes) == 1, r.notes                                # type: ignore[attr-defined]
    assert r.value == pytest.approx(plain.value, abs=1e-6)         # type: ignore[attr-defined]
    assert r.bound == pytest.approx(r.value, abs=1e-5)             # type: ignore[attr-defined]
    y = net.forward(np.asarray(r.counterexample)[None, :])[0]      # type: ignore[attr-defined]
    assert float(coef @ y) == pytest.approx(r.value, abs=1e-9)     # the reported input re-runs to the value
    assert r.binaries < plain.binaries                             # type: ignore[attr-defined]  # tighter bounds
    assert r.bounds["method"] == "lp-cuts"                         # type: ignore[attr-defined]


@pytest.mark.parametrize("kw", [{"tighten": "lp"}, {"tighten": "symbolic"}, {"method": {"relu": "bigm"}},
                                {"method": {"relu": "ideal-cuts"}}])
def test_a_method_named_by_the_user_is_kept(monkeypatch: pytest.MonkeyPatch, kw: dict[str, object]) -> None:
    """A named bound method or relu formulation is what the user gets: solved to the end, no second model."""
    monkeypatch.setattr(verify_mod, "ESCALATE_SECONDS", 0.0)
    _, _, r = _ask(2, (5, 12, 12, 12, 2), 0.3, **kw)
    assert not any(AGAIN in n for n in r.notes), r.notes          # type: ignore[attr-defined]
    assert r.result == CERTIFIED                                   # type: ignore[attr-defined]


def test_yes_no_questions_are_not_escalated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_mod, "ESCALATE_SECONDS", 0.0)
    net, x0, eps, coef, _ = relu_question(2, sizes=(5, 12, 12, 12, 2), eps=0.3)
    label = int(net.predict(x0[None, :])[0])
    r = verify(net, [vs.linf(x0, eps)], vs.classified(label), domain=(0, 1), bab="off")
    assert not any(AGAIN in n for n in r.notes), r.notes


def test_the_second_model_stays_within_the_run_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first solve gets ESCALATE_SECONDS, the lp-cuts bounds half of the rest, the second solve the remainder:
    the whole call ends within its time limit, with the smaller bound and an input that re-runs to its value."""
    monkeypatch.setattr(verify_mod, "ESCALATE_SECONDS", 0.5)       # an 8 s run has the 2 s it needs after bounds
    t0 = time.monotonic()
    net, coef, r = _ask(0, (12, 48, 48, 48, 2), 0.4, time_limit=8.0, samples=0,
                        options=SolveOptions(threads=1, mip_gap=1e-9))
    spent = time.monotonic() - t0
    assert spent < 8.0 + 1.0, spent
    assert any(AGAIN in n for n in r.notes), r.notes               # type: ignore[attr-defined]
    assert r.bound >= r.value - 1e-6                               # type: ignore[attr-defined]
    y = net.forward(np.asarray(r.counterexample)[None, :])[0]      # type: ignore[attr-defined]
    assert float(coef @ y) == pytest.approx(r.value, abs=1e-9)     # type: ignore[attr-defined]


def test_a_short_budget_keeps_its_one_milp(monkeypatch: pytest.MonkeyPatch) -> None:
    """Less than ESCALATE_BUDGET times the first solve's share left: the first MILP gets all of it."""
    monkeypatch.setattr(verify_mod, "ESCALATE_SECONDS", 0.5)
    _, _, r = _ask(0, (12, 48, 48, 48, 2), 0.4, time_limit=1.8, samples=0)
    assert not any(AGAIN in n for n in r.notes), r.notes          # type: ignore[attr-defined]


def test_a_shorter_solver_limit_of_the_user_is_not_a_reason_to_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_mod, "ESCALATE_SECONDS", 1.0)
    _, _, r = _ask(0, (12, 48, 48, 48, 2), 0.4, samples=0, options=SolveOptions(time_limit=0.05))
    assert not any(AGAIN in n for n in r.notes), r.notes          # type: ignore[attr-defined]
    assert r.result != CERTIFIED                                   # type: ignore[attr-defined]  # its 0.05 s ran out


@pytest.mark.parametrize("act", ["step", "sign"])
def test_networks_without_relus_keep_their_one_milp(monkeypatch: pytest.MonkeyPatch, act: str) -> None:
    """lp-cuts and ideal cuts work on ReLUs only: a step or sign network would get the same model again."""
    from verify_nets import mlp_layers

    from nnmip.drivers.verify import network_from_layers

    monkeypatch.setattr(verify_mod, "ESCALATE_SECONDS", 0.0)
    net = network_from_layers(mlp_layers([6, 12, 12, 2], 1), act)
    x0 = np.full(6, 0.5)
    r = verify(net, [vs.linf(x0, 0.3)], vs.maximize(np.array([1.0, -1.0])), domain=(0, 1))
    assert not any(AGAIN in n for n in r.notes), r.notes
    assert r.result == CERTIFIED


@pytest.mark.parametrize("solver", ["cbc", "scip", "cvxpy"])
def test_which_solvers_switch(monkeypatch: pytest.MonkeyPatch, solver: str) -> None:
    """HiGHS and CBC switch; SCIP (cuts in its tree) and cvxpy keep their one MILP."""
    from nnmip.backends import is_installed

    if not is_installed(solver):
        pytest.skip(f"{solver} is not installed")
    monkeypatch.setattr(verify_mod, "ESCALATE_SECONDS", 0.0)
    net, coef, r = _ask(2, (5, 12, 12, 12, 2), 0.3, solver=solver)
    switched = any(AGAIN in n for n in r.notes)                    # type: ignore[attr-defined]
    assert switched == (solver == "cbc"), r.notes                  # type: ignore[attr-defined]
    if switched:
        _, _, plain = _ask(2, (5, 12, 12, 12, 2), 0.3, tighten="lp")
        assert r.value == pytest.approx(plain.value, abs=1e-6)     # type: ignore[attr-defined]


def test_the_command_line_switches_unless_a_relu_formulation_is_named(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    """``nnmip verify`` leaves the formulation to verify unless ``--relu`` names one (the same for .nnmip files,
    which take the command's options)."""
    import json

    import onnx
    from verify_nets import mlp_layers, mlp_onnx

    from nnmip.cli import main

    monkeypatch.setattr(verify_mod, "ESCALATE_SECONDS", 0.0)
    p = tmp_path / "net.onnx"
    onnx.save(mlp_onnx(mlp_layers([5, 12, 12, 12, 2], 2), "relu"), p)
    notes = {}
    for extra in ([], ["--relu", "bigm"]):
        js = tmp_path / f"r{len(extra)}.json"
        rc = main(["verify", "--onnx", str(p), "--point", "0.3,0.6,0.2,0.8,0.5", "--linf", "0.3", "--domain", "0",
                   "1", "--maximize", "1,-1", "-q", "--json", str(js), *extra])
        assert rc == 0
        notes[len(extra)] = json.loads(js.read_text())["notes"]
    assert any(AGAIN in n for n in notes[0]), notes[0]
    assert not any(AGAIN in n for n in notes[2]), notes[2]


def test_auto_tightening_takes_lp_cuts_where_highs_solves_the_bound_lps() -> None:
    from verify_nets import mlp_layers

    from nnmip.backends import get_backend
    from nnmip.drivers.verify import AUTO_LP_PARAMS, auto_tighten, network_from_layers

    net, _, _ = _ask(2, (5, 12, 12, 12, 2), 0.3)
    assert auto_tighten(net) == "lp-cuts"                          # type: ignore[arg-type]
    _, _, r = _ask(2, (5, 12, 12, 12, 2), 0.3)
    assert r.bounds["method"] == "lp-cuts"                         # type: ignore[attr-defined]
    cbc = "lp" if get_backend("cbc").capabilities.lp_duals else "lp-cuts"   # CBC's own LP session: no rows
    assert auto_tighten(net, "cbc") == cbc                         # type: ignore[arg-type]
    big = network_from_layers(mlp_layers([200, 100, 2], 0), "relu")
    assert big.num_params() > AUTO_LP_PARAMS
    assert auto_tighten(big) == "symbolic"
