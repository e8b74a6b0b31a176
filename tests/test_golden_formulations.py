"""Golden LP text of every formulation on a one-neuron case: training, robust training, pruning, perspective cuts,
verification (a ReLU and a step unit).

Each case is small enough to read: two inputs, one trainable or fixed unit.  The text must match
``tests/golden/formulation_<case>.lp`` exactly; after an intended change of a formulation run
``python -m pytest tests/test_golden_formulations.py --update-golden`` and review the diff.  Each golden model is
also solved, so a file that was rewritten by mistake with a broken model does not pass silently.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from nnmip.backends import get_backend
from nnmip.formulations.training import build_training_model
from nnmip.formulations.verification import build_fixed_model, with_case
from nnmip.io.lp import write_lp
from nnmip.ir.builder import NetworkBuilder, fixed, real
from nnmip.ir.network import Network
from nnmip.ir.spec import Region, box, maximize
from nnmip.ir.train_spec import PruneConfig, PruneSpec, RobustSpec
from nnmip.model import MatrixModel
from nnmip.passes.bounds import propagate_bounds
from nnmip.solution import SolveOptions, Status

GOLDEN = Path(__file__).resolve().parent / "golden"
X = np.array([[0.2, 0.8], [0.9, 0.1], [0.6, 0.7]])
Y = np.array([0, 1, 1])


def one_trainable_neuron() -> Network:
    nb = NetworkBuilder("one")
    x = nb.input("x", 2)
    nb.step("y", nb.dense("h", x, 1, weights=real(-1, 1), bias=real(-1, 1)))
    return nb.build()


def one_fixed_neuron(act: str) -> Network:
    nb = NetworkBuilder("one")
    x = nb.input("x", 2, lo=[-1.0, -1.0], hi=[1.0, 1.0])
    h = nb.dense("h", x, 1, weights=fixed([[1.0, -2.0]]), bias=fixed([0.5]))
    nb.activation(act, "y", h)
    return nb.build()


def training() -> MatrixModel:
    return build_training_model(one_trainable_neuron(), X, Y, 2).model


def robust() -> MatrixModel:
    return build_training_model(one_trainable_neuron(), X, Y, 2, robust=RobustSpec("x", "linf", 0.05)).model


def _prune(emit: str) -> MatrixModel:
    cfg = PruneConfig((PruneSpec("weights", ("h",), cost=0.1),), alpha=0.5, lam=0.2)
    return build_training_model(one_trainable_neuron(), X, Y, 2, loss="hinge", prune=cfg, emit=emit).model


def pruning() -> MatrixModel:
    return _prune("milp")


def perspective() -> MatrixModel:
    return _prune("perspective-cuts")


def _verification(act: str) -> MatrixModel:
    net = one_fixed_neuron(act)
    region = Region((box([-1.0, -1.0], [1.0, 1.0]),))
    fm = build_fixed_model(net, region, propagate_bounds(net, region))
    return with_case(fm, maximize([1.0]).cases(1)[0])


CASES: dict[str, Callable[[], MatrixModel]] = {
    "training": training,
    "robust": robust,
    "pruning": pruning,
    "perspective": perspective,
    "verification_relu": lambda: _verification("relu"),
    "verification_step": lambda: _verification("step"),
}


def _update(request: pytest.FixtureRequest) -> bool:
    return os.environ.get("NNMIP_UPDATE_GOLDEN") == "1" or bool(request.config.getoption("--update-golden"))


@pytest.mark.parametrize("case", list(CASES))
def test_formulation_golden_lp(case: str, request: pytest.FixtureRequest) -> None:
    model = CASES[case]()
    buf = io.StringIO()
    write_lp(model, buf)
    text = buf.getvalue()
    golden = GOLDEN / f"formulation_{case}.lp"
    if _update(request):
        golden.write_text(text, encoding="ascii", newline="\n")
    assert golden.exists(), f"missing {golden}: run with --update-golden and review the new file"
    assert text == golden.read_text(encoding="ascii"), f"{golden} differs (--update-golden rewrites it)"
    res = get_backend("highs").solve(model, SolveOptions(mip_gap=0.0))
    assert res.status is Status.OPTIMAL
    assert res.objective is not None
    assert np.isfinite(res.objective)
