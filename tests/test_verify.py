"""Verification of fixed-weight networks: MILP optima against samples, interval bounds and an exact oracle;
certificates against samples; counterexamples against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from verify_nets import mlp_layers, mlp_onnx, ort_forward, pattern_oracle

from nnmip.backends import is_installed
from nnmip.drivers.verify import CERTIFIED, COUNTEREXAMPLE, fold_scaler, network_from_layers, verify
from nnmip.errors import FormulationError
from nnmip.formulations.verification import build_fixed_model, with_case
from nnmip.io.onnx import import_onnx
from nnmip.ir import spec as vs
from nnmip.passes.bounds import propagate_bounds

ACTS = ("relu", "step", "sign")


def _net(sizes: list[int], seed: int, act: str):
    layers = mlp_layers(sizes, seed)
    model = mlp_onnx(layers, act)
    net, scaler = import_onnx(model)
    assert scaler is None
    return layers, model, net


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("seed", range(4))
def test_max_between_samples_and_interval_and_equal_to_oracle(act: str, seed: int) -> None:
    layers, model, net = _net([3, 4, 3, 2], seed, act)
    rng = np.random.default_rng(seed)
    x0 = rng.random(3)
    eps = 0.3
    lo, hi = np.clip(x0 - eps, 0, 1), np.clip(x0 + eps, 0, 1)
    c = np.array([1.0, -1.0])
    r = verify(net, [vs.linf(x0, eps)], vs.maximize(c), domain=(0, 1), samples=0)
    assert r.result == CERTIFIED
    X = lo + rng.random((20000, 3)) * (hi - lo)
    sampled = float(np.max(ort_forward(model, X) @ c))
    ibp = propagate_bounds(net, (lo, hi))[net.output]
    interval = float(np.maximum(c, 0) @ ibp[1] + np.minimum(c, 0) @ ibp[0])
    assert sampled - 1e-9 <= r.bound <= interval + 1e-9
    oracle = pattern_oracle(layers, act, c, lo, hi)
    assert r.bound == pytest.approx(oracle, abs=1e-6)
    # the reported value is the forward pass at the reported input, which lies in the set
    assert r.counterexample is not None
    assert np.all(r.counterexample >= lo - 1e-12)
    assert np.all(r.counterexample <= hi + 1e-12)
    assert float((net.forward(r.counterexample) @ c)[0]) == pytest.approx(r.value, abs=1e-12)
    assert r.value <= r.bound + 1e-9
    if act == "relu":                        # continuous: the optimum is attained, also under onnxruntime
        assert r.value == pytest.approx(oracle, abs=1e-6)
        assert float((ort_forward(model, r.counterexample) @ c)[0]) == pytest.approx(r.value, abs=1e-9)
    else:                                    # a margin of 1e-6 on both sides loses at most a little
        assert r.value >= sampled - 1e-9


@pytest.mark.parametrize("act", ACTS)
def test_minimize_is_negated_maximize(act: str) -> None:
    layers, model, net = _net([3, 5, 2], 11, act)
    x0 = np.full(3, 0.5)
    up = verify(net, [vs.linf(x0, 0.4)], vs.maximize([-1.0, 2.0]), samples=0)
    down = verify(net, [vs.linf(x0, 0.4)], vs.minimize([1.0, -2.0]), samples=0)
    assert down.bound == pytest.approx(-up.bound, abs=1e-7)
    oracle = pattern_oracle(layers, act, np.array([-1.0, 2.0]), x0 - 0.4, x0 + 0.4)
    assert up.bound == pytest.approx(oracle, abs=1e-6)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("seed", range(6))
def test_answers_agree_with_samples_and_onnxruntime(act: str, seed: int) -> None:
    layers, model, net = _net([4, 8, 8, 3], 100 + seed, act)
    rng = np.random.default_rng(seed)
    x0 = rng.random(4)
    label = int(np.argmax(ort_forward(model, x0)))
    for eps in (0.005, 0.05, 0.2):
        r = verify(net, [vs.linf(x0, eps)], vs.classified(label), domain=(0, 1), samples=64, seed=seed)
        lo, hi = np.clip(x0 - eps, 0, 1), np.clip(x0 + eps, 0, 1)
        X = lo + rng.random((5000, 4)) * (hi - lo)
        Y = ort_forward(model, X)
        others = np.delete(Y, label, axis=1).max(axis=1) - Y[:, label]
        if r.result == CERTIFIED:
            assert np.all(others < 0), "a certified set holds a sampled violation"
            assert r.bound <= 0
            assert r.bound >= others.max() - 1e-9
        elif r.result == COUNTEREXAMPLE:
            x = r.counterexample
            assert np.all(x >= lo)
            assert np.all(x <= hi)
            y = ort_forward(model, x)[0]
            assert np.delete(y, label).max() >= y[label]
            np.testing.assert_allclose(r.output, y, atol=1e-9)
        else:
            pytest.fail(f"no answer without a time limit: {r.to_dict()}")


def test_certified_and_counterexample_on_a_hand_network() -> None:
    # y0 = relu(x) , y1 = 0.5: classified as 1 iff x < 0.5
    net = network_from_layers([(np.array([[1.0]]), np.array([0.0])),
                               (np.array([[1.0], [0.0]]), np.array([0.0, 0.5]))])
    r = verify(net, [vs.linf([0.2], 0.1)], vs.classified(1), samples=0)
    assert r.result == CERTIFIED
    assert r.bound == pytest.approx(-0.2, abs=1e-6)
    r = verify(net, [vs.linf([0.2], 0.4)], vs.classified(1), samples=0)
    assert r.result == COUNTEREXAMPLE
    assert r.counterexample[0] >= 0.5 - 1e-9
    assert r.output[0] >= r.output[1]


def test_output_box_and_l1_set() -> None:
    # f(x) = relu(x0 - x1): over the l1 ball of radius 0.3 around (0.5, 0.5) its maximum is 0.3
    net = network_from_layers([(np.array([[1.0, -1.0]]), np.array([0.0])), (np.array([[1.0]]), np.array([0.0]))])
    x0 = np.array([0.5, 0.5])
    r = verify(net, [vs.linf(x0, 0.5), vs.l1(x0, 0.3)], vs.maximize([1.0]), samples=0)
    assert r.result == CERTIFIED
    assert r.bound == pytest.approx(0.3, abs=1e-7)
    assert np.abs(r.counterexample - x0).sum() <= 0.3 + 1e-9
    assert verify(net, [vs.l1(x0, 0.3)], vs.output_box(hi=[0.31]), samples=0).result == CERTIFIED
    r = verify(net, [vs.l1(x0, 0.3)], vs.output_box(hi=[0.29]), samples=0)
    assert r.result == COUNTEREXAMPLE
    assert r.output[0] > 0.29


def test_threshold_properties() -> None:
    net = network_from_layers([(np.array([[2.0]]), np.array([-1.0]))])        # y = 2x - 1 on [0, 1]
    assert verify(net, [vs.box([0.0], [1.0])], vs.maximize([1.0], threshold=1.5)).result == CERTIFIED
    r = verify(net, [vs.box([0.0], [1.0])], vs.maximize([1.0], threshold=0.5), samples=0)
    assert r.result == COUNTEREXAMPLE
    assert 2 * r.counterexample[0] - 1 >= 0.5
    assert verify(net, [vs.box([0.0], [1.0])], vs.minimize([1.0], threshold=-1.5)).result == CERTIFIED


def test_stable_units_have_no_binaries() -> None:
    rng = np.random.default_rng(0)
    W1 = rng.normal(size=(6, 3))
    b1 = np.array([5.0, 5.0, -5.0, -5.0, 0.0, 0.0])     # 2 always active, 2 always dead, 2 unstable
    W1[4:] = [[1, -1, 0], [0, 1, -1]]
    net = network_from_layers([(W1 * np.r_[0.1, 0.1, 0.1, 0.1, 1, 1][:, None], b1), (rng.normal(size=(2, 6)),
                                                                                      np.zeros(2))])
    region = vs.Region((vs.box(np.zeros(3), np.ones(3)),))
    fm = build_fixed_model(net, region, propagate_bounds(net, region))
    assert fm.units["relu0"].active == 2
    assert fm.units["relu0"].inactive == 2
    assert fm.units["relu0"].unstable == 2
    assert fm.model.num_binaries == 2
    # 2 dense blocks (6 + 2 equality rows) + 3 rows per unstable unit
    assert fm.model.num_rows == 8 + 3 * 2


def test_fixed_input_model_reproduces_forward_pass() -> None:
    for act in ACTS:
        layers, model, net = _net([3, 5, 4, 2], 7, act)
        x = np.array([0.2, 0.7, 0.4])
        region = vs.Region((vs.box(x, x),))
        fm = build_fixed_model(net, region, propagate_bounds(net, region))
        for i in range(2):
            c = np.zeros(2)
            c[i] = 1.0
            from nnmip.backends import solve

            raw = solve(with_case(fm, vs.maximize(c).cases(2)[0]))
            assert raw.objective == pytest.approx(float(net.forward(x)[0, i]), abs=1e-7)


def test_step_ambiguity_at_zero_gives_a_genuine_counterexample() -> None:
    # step(x0 - x1) at x = (0.5, 0.5) is 0; the class flips only where x0 > x1 strictly
    net = network_from_layers([(np.array([[1.0, -1.0]]), np.array([0.0])),
                               (np.array([[1.0], [-1.0]]), np.array([0.0, 0.5]))], activation="step")
    r = verify(net, [vs.box([0.5, 0.0], [0.5, 1.0]), vs.linf([0.5, 0.5], 0.5)], vs.classified(1), samples=0)
    # x0 = 0.5 and x1 in [0, 1]: x1 < 0.5 turns the step on: y0 = 1 > y1 = -0.5
    assert r.result == COUNTEREXAMPLE
    y = net.forward(r.counterexample)[0]
    assert y[0] >= y[1]


def test_step_margin_model_keeps_both_sides_off_zero() -> None:
    """The margin model's solutions must be reproduced by the forward pass: ``u = 1`` needs ``a >= eps`` and
    ``u = 0`` needs ``a <= -eps`` (a solution at ``a = 0`` with ``u = 0`` may evaluate to ``+1e-17`` and switch
    the unit on)."""
    from nnmip.backends import solve
    from nnmip.formulations.verification import STRICT_EPS

    net = network_from_layers([(np.array([[1.0, -1.0]]), np.array([0.0])),
                               (np.array([[-1.0], [1.0]]), np.array([0.0, 0.0]))], activation="step")
    region = vs.Region((vs.box([0.5, 0.0], [0.5, 1.0]),))
    fm = build_fixed_model(net, region, propagate_bounds(net, region), method={"step": "margin"})
    rows = {b.role: b for b in fm.model.row_blocks if b.node == "step0"}
    assert fm.model.row_ub[rows["off"].start] == -STRICT_EPS
    # x1 is the only free input: every optimum of "maximize y1 - y0" has the unit on, x1 <= 0.5 - eps
    for sign, side in ((1.0, "on"), (-1.0, "off")):
        raw = solve(with_case(fm, vs.maximize(np.array([-sign, sign])).cases(2)[0]))
        x = raw.x[fm.x_cols]
        a = 0.5 - x[1]
        assert (a >= STRICT_EPS * (1 - 1e-3)) if side == "on" else (a <= -STRICT_EPS * (1 - 1e-3)), (side, x)
        y = net.forward(x)[0]
        assert sign * (y[1] - y[0]) == pytest.approx(raw.objective, abs=1e-9)


def test_errors() -> None:
    net = network_from_layers([(np.eye(2), np.zeros(2))])
    with pytest.raises(FormulationError) as e:
        verify(net, [vs.l2([0.5, 0.5], 0.1)], vs.classified(0), solver="highs")
    assert e.value.diagnostics[0].code == "E0415"
    with pytest.raises(FormulationError) as e:
        verify(net, [vs.linf([0.5, 0.5, 0.5], 0.1)], vs.classified(0))
    assert e.value.diagnostics[0].code == "E0412"
    with pytest.raises(FormulationError) as e:
        verify(net, [vs.linf([0.5, 0.5], 0.1)], vs.classified(5))
    assert e.value.diagnostics[0].code == "E0414"
    with pytest.raises(FormulationError) as e:
        verify(net, [vs.linf([0.5, 0.5], 0.1)], vs.classified(0), domain=(2, 3))
    assert e.value.diagnostics[0].code == "E0410"
    relu_net = network_from_layers([(np.eye(2), np.zeros(2)), (np.eye(2), np.zeros(2))])
    with pytest.raises(FormulationError) as e:
        build_fixed_model(relu_net, vs.Region(()), propagate_bounds(relu_net, (np.full(2, -np.inf), np.zeros(2) + 1)))
    assert e.value.diagnostics[0].code == "E0420"


def test_registry_names_every_formulation() -> None:
    import nnmip.formulations.training  # noqa: F401  (training imports robust, pruning and perspective)
    from nnmip.formulations.common import FORMULATIONS, methods
    from nnmip.formulations.verification import relu_bigm

    assert FORMULATIONS[("verification", "relu", "bigm")] is relu_bigm
    assert set(methods("training", "step")) >= {"margin", "robust", "prunable"}
    assert set(methods("training", "regulariser")) == {"milp", "perspective-cuts", "perspective-conic"}
    assert set(methods("training", "loss")) == {"hamming", "zero_one", "hinge", "min_weight", "max_margin"}
    assert set(methods("verification", "set")) == {"box", "linf", "l1", "l2", "halfspaces"}
    for fn in set(FORMULATIONS.values()):
        assert "Math" in (fn.__doc__ or ""), fn.__name__


@pytest.mark.skipif(not is_installed("cbc"), reason="python-mip (CBC) is not installed")
def test_cbc_agrees_with_highs() -> None:
    layers, model, net = _net([3, 6, 2], 5, "relu")
    x0 = np.array([0.4, 0.5, 0.6])
    a = verify(net, [vs.linf(x0, 0.3)], vs.maximize([1.0, -1.0]), samples=0, solver="highs")
    b = verify(net, [vs.linf(x0, 0.3)], vs.maximize([1.0, -1.0]), samples=0, solver="cbc")
    assert a.bound == pytest.approx(b.bound, abs=1e-6)


def test_scaler_folding_matches_raw_inputs() -> None:
    from nnmip.io.data import Scaler

    net = network_from_layers(mlp_layers([3, 4, 2], 3))
    sc = Scaler("minmax", np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 0.5]))
    raw = fold_scaler(net, sc)
    X = np.random.default_rng(0).random((50, 3)) * 5
    np.testing.assert_allclose(raw.forward(X), net.forward(sc.transform(X)), atol=1e-12)


@pytest.mark.skipif(not is_installed("gurobi"), reason="gurobipy is not installed")
def test_l2_ball_as_a_cone_with_gurobi() -> None:
    from nnmip.errors import BackendUnavailable

    # f(x) = relu(x0 - x1) over the l2 ball of radius 0.3 around (0.5, 0.5): max 0.3 * sqrt(2)
    net = network_from_layers([(np.array([[1.0, -1.0]]), np.array([0.0])), (np.array([[1.0]]), np.array([0.0]))])
    x0 = np.array([0.5, 0.5])
    try:
        r = verify(net, [vs.l2(x0, 0.3)], vs.maximize([1.0]), solver="gurobi", samples=0)
    except BackendUnavailable as exc:      # an unlicensed or size-limited installation
        pytest.skip(str(exc))
    assert r.result == CERTIFIED
    assert r.bound == pytest.approx(0.3 * np.sqrt(2), abs=1e-5)
    assert np.linalg.norm(r.counterexample - x0) <= 0.3 + 1e-9
    assert r.value == pytest.approx(0.3 * np.sqrt(2), abs=1e-5)
