"""Properties of training on random tiny data sets and networks (HiGHS as the solver).

A network with integer weights and biases offset from the integers is drawn directly, so that every
pre-activation (and every difference of two output scores) is at least 1/16 away from 0 (no ``assume``):
it is a feasible point of the training MILP.
Hence the MILP optimum is at most its loss.  And the loss ``train_network`` reports equals the loss of
the returned network recomputed from the numpy forward pass by the independent oracle of test_training.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_training import forward_loss, oracle_loss

from nnmip.backends import is_installed
from nnmip.drivers.train import train_network
from nnmip.ir import Network, NetworkBuilder, integer, real
from nnmip.solution import SolveOptions, Status

pytestmark = pytest.mark.skipif(not is_installed("highs"), reason="highspy is not installed")

OPTS = SolveOptions(mip_gap=0.0, time_limit=30)
TOL = 1e-6


@st.composite
def instances(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    """Data on the quarter grid of [0, 1], a trainable network, and a feasible weight assignment for it."""
    n = draw(st.integers(2, 6))
    d = draw(st.integers(1, 2))
    X = np.array(draw(st.lists(st.lists(st.integers(0, 4), min_size=d, max_size=d), min_size=n, max_size=n)),
                 dtype=float) / 4.0
    hidden = draw(st.sampled_from([0, 1, 2]))
    n_out = draw(st.sampled_from([1, 2]))
    out_act = "step" if kind == "hamming" else "identity"
    nb = NetworkBuilder("p")
    cur = nb.input("x", d)
    params: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    # quarter-grid data: offsets 1/8 + c/16 keep every a and every difference of scores at least 1/16 from 0;
    # 0/1 inputs of later layers: offsets 1/2 + c/16
    width_in, offset = d, 0.125
    layers = ([("h", hidden)] if hidden else []) + [("o", n_out)]
    for name, width in layers:
        cur = nb.dense(name, cur, width, weights=integer(-2, 2), bias=real(-3, 3))
        W = np.array(draw(st.lists(st.integers(-2, 2), min_size=width * width_in, max_size=width * width_in)),
                     dtype=float).reshape(width, width_in)
        b = np.array(draw(st.lists(st.integers(-2, 1), min_size=width, max_size=width)), dtype=float)
        b += offset + np.arange(width) / 16.0   # distinct offsets: no ties between output scores either
        params[name] = (W, b)
        cur = nb.step(f"{name}_a", cur) if name == "h" else nb.activation(out_act, "y", cur)
        width_in, offset = width, 0.5
    net = nb.build()
    fixed = net.with_params(params)
    if kind in ("max_margin", "min_weight"):   # labels the drawn network classifies with margin >= 1/16
        y = fixed.predict(X)
    else:
        y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    return {"net": net, "fixed": fixed, "X": X, "y": y}


def drawn_loss(fixed: Network, X: np.ndarray, y: np.ndarray, kind: str, margin: float) -> float:
    vals = fixed.forward(X, all_nodes=True)
    out = fixed.output
    pre = vals[fixed.inputs_of(out)[0]] if kind == "hamming" else vals[out]
    for node, op in fixed.items():   # every step unit is at least 1/16 from 0: a feasible MILP point
        if op.kind == "step":
            assert (np.abs(vals[fixed.inputs_of(node)[0]]) >= 1 / 16).all()
    W_abs = sum(float(np.abs(W).sum()) for W, _ in fixed.params().values())
    loss, feasible = oracle_loss(kind, pre, y, W_abs, margin)
    assert bool(feasible)
    return float(loss)


def check(case: dict[str, Any], kind: str, margin: float = 1.0) -> None:
    X, y = case["X"], case["y"]
    res = train_network(case["net"], X, y, 2, loss=kind, margin=margin, solver="highs", options=OPTS)
    assert res.status is Status.OPTIMAL, res.message
    assert res.verified, res.notes
    assert res.objective is not None
    assert res.loss is not None
    assert res.loss == pytest.approx(res.objective, abs=TOL)
    assert res.loss == pytest.approx(forward_loss(res, X, y, kind, margin=margin), abs=TOL)
    assert res.loss <= drawn_loss(case["fixed"], X, y, kind, margin) + TOL


@settings(max_examples=25, deadline=None, derandomize=True)
@given(instances("hamming"))
def test_hamming_optimum_beats_any_feasible_network(case: dict[str, Any]) -> None:
    check(case, "hamming")


@settings(max_examples=20, deadline=None, derandomize=True)
@given(instances("hinge"), st.sampled_from([0.5, 1.0]))
def test_hinge_optimum_beats_any_network(case: dict[str, Any], margin: float) -> None:
    check(case, "hinge", margin)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(instances("zero_one"))
def test_zero_one_optimum_beats_any_network(case: dict[str, Any]) -> None:
    check(case, "zero_one")


@settings(max_examples=20, deadline=None, derandomize=True)
@given(instances("max_margin"))
def test_max_margin_optimum_beats_the_labelling_network(case: dict[str, Any]) -> None:
    check(case, "max_margin")


@settings(max_examples=20, deadline=None, derandomize=True)
@given(instances("min_weight"))
def test_min_weight_optimum_beats_the_labelling_network(case: dict[str, Any]) -> None:
    check(case, "min_weight", margin=1 / 16)
