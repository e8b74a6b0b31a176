"""Sparse optimisers: each update against a hand-computed step, the proximal operators against brute force, and
every op's gradient (and the losses') against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from nnmip.drivers.sparse.layout import layout_of, loss_and_grad
from nnmip.formulations.spr import spr_groups
from nnmip.ir.builder import NetworkBuilder, real
from nnmip.ir.losses import smooth_loss
from nnmip.ir.ops import Dense, Identity, Input, ReLU
from nnmip.optim import (
    RDA,
    SGD,
    GroupPenalty,
    L1Penalty,
    OBProxSG,
    ProxSG,
    SPRPenalty,
    group_soft_threshold,
    soft_threshold,
    spr_prox,
)


def fd_vjp(f, x: np.ndarray, gy: np.ndarray, h: float = 1e-6) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Central differences of ``sum(gy * f(x))`` with respect to every entry of ``x``."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        g[idx] = (np.sum(gy * f(x + e)) - np.sum(gy * f(x - e))) / (2 * h)
    return g


# ---- op gradients ------------------------------------------------------------------------------------------
def test_dense_backward_matches_finite_differences() -> None:
    rng = np.random.default_rng(0)
    x, W, b, gy = rng.normal(size=(5, 4)), rng.normal(size=(3, 4)), rng.normal(size=3), rng.normal(size=(5, 3))
    gx, gW, gb = Dense.backward_params(x, gy, W)
    np.testing.assert_allclose(gx, fd_vjp(lambda v: Dense.affine(v, W, b), x, gy), atol=1e-7)
    np.testing.assert_allclose(gW, fd_vjp(lambda v: Dense.affine(x, v, b), W, gy), atol=1e-7)
    np.testing.assert_allclose(gb, fd_vjp(lambda v: Dense.affine(x, W, v), b, gy), atol=1e-7)
    from nnmip.ir.ops import ParamDomain

    op = Dense(n_in=4, n_out=3, weights=ParamDomain.fixed(W), bias=ParamDomain.fixed(b))
    np.testing.assert_array_equal(op.forward(x), Dense.affine(x, W, b))
    np.testing.assert_allclose(op.backward(x, gy), gx)


@pytest.mark.parametrize("op", [ReLU(), Identity(), Input(dim=4)])
def test_elementwise_backward_matches_finite_differences(op) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 4))
    x[np.abs(x) < 1e-3] = 0.5           # away from the relu kink
    gy = rng.normal(size=(6, 4))
    np.testing.assert_allclose(op.backward(x, gy), fd_vjp(op.forward, x, gy), atol=1e-7)


def test_relu_backward_at_the_kink_is_zero() -> None:
    assert ReLU().backward(np.array([[0.0, -1.0, 2.0]]), np.ones((1, 3))).tolist() == [[0.0, 0.0, 1.0]]


@pytest.mark.parametrize(("kind", "n_out"), [("cross_entropy", 3), ("cross_entropy", 1), ("squared_error", 3)])
def test_smooth_losses_match_finite_differences(kind: str, n_out: int) -> None:
    rng = np.random.default_rng(2)
    out = rng.normal(size=(7, n_out)) * 3
    y = rng.integers(0, 3 if n_out == 3 else 2, 7)
    n_classes = 3 if n_out == 3 else 2
    val, g = smooth_loss(kind, out, y, n_classes)
    num = fd_vjp(lambda o: np.array(smooth_loss(kind, o, y, n_classes)[0]), out, np.array(1.0))
    np.testing.assert_allclose(g, num, atol=1e-7)
    if kind == "cross_entropy" and n_out == 3:   # by hand: mean of logsumexp(o) - o_y
        o = out
        ref = np.mean(np.log(np.exp(o).sum(axis=1)) - o[np.arange(7), y])
        assert val == pytest.approx(ref)


def test_network_gradient_matches_finite_differences() -> None:
    nb = NetworkBuilder("n")
    x = nb.input("x", 3)
    h = nb.relu("r", nb.dense("h", x, 4, weights=real(-5, 5), bias=real(-5, 5)))
    nb.identity("y", nb.dense("o", h, 3, weights=real(-5, 5), bias=real(-5, 5)))
    net = nb.build()
    lay = layout_of(net)
    rng = np.random.default_rng(3)
    p = rng.normal(size=lay.size)
    X, y = rng.normal(size=(9, 3)), rng.integers(0, 3, 9)
    val, g = loss_and_grad(net, lay, p, X, y, 3, "cross_entropy")
    num = fd_vjp(lambda v: np.array(loss_and_grad(net, lay, v, X, y, 3, "cross_entropy")[0]), p, np.array(1.0))
    np.testing.assert_allclose(g, num, atol=1e-6)
    # the value is the one of the network's own forward pass
    from nnmip.drivers.sparse.layout import with_point

    assert val == pytest.approx(smooth_loss("cross_entropy", with_point(net, lay, p).forward(X), y, 3)[0])


# ---- proximal operators ------------------------------------------------------------------------------------
def test_soft_and_group_thresholding_by_hand() -> None:
    assert soft_threshold([1.5, -0.2, -3.0, 0.0], 0.5).tolist() == [1.0, 0.0, -2.5, 0.0]
    # group 0 = (3, 4) has norm 5 -> scaled by 1 - 1/5; group 1 = (0.3, 0.4) has norm 0.5 <= 1 -> 0; -1 untouched
    out = group_soft_threshold([3.0, 4.0, 0.3, 0.4, 7.0], [0, 0, 1, 1, -1], 1.0)
    np.testing.assert_allclose(out, [2.4, 3.2, 0.0, 0.0, 7.0])


def brute_spr_prox(v: np.ndarray, M: float, alpha: float, t: float) -> float:
    """The optimal value of 1/2 ||w - v||^2 + t SPR(w), |w| <= M, by several bounded local searches."""
    def f(w: np.ndarray) -> float:
        return 0.5 * float(((w - v) ** 2).sum()) + t * float(spr_groups(w, np.zeros(v.size, int), M, alpha)[0][0])
    best = f(np.zeros_like(v))
    for start in (v, 0.2 * v):
        r = minimize(f, np.clip(start, -M, M), method="L-BFGS-B", bounds=[(-M, M)] * v.size)
        best = min(best, float(r.fun))
    return best


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.8])
def test_spr_prox_reaches_the_brute_force_optimum(alpha: float) -> None:
    rng = np.random.default_rng(4)
    for _ in range(5):
        k = int(rng.integers(1, 4))
        M = float(rng.uniform(0.5, 2.0))
        v = rng.normal(size=k) * rng.choice([0.05, 0.5, 2.0])
        t = float(rng.choice([0.01, 0.1, 1.0]))
        w = spr_prox(v, np.zeros(k, int), M, alpha, t)
        val = 0.5 * float(((w - v) ** 2).sum()) + t * float(spr_groups(w, np.zeros(k, int), M, alpha)[0][0])
        assert np.all(np.abs(w) <= M + 1e-12)
        assert val <= brute_spr_prox(v, M, alpha, t) + 1e-7


def test_spr_prox_zeroes_small_groups_exactly_and_keeps_ungrouped() -> None:
    # alpha = 0: zero iff M ||v||_1 <= t  (h'(0+) = -M ||v||_1 + t)
    v = np.array([0.1, -0.1, 0.5, 9.0])
    out = spr_prox(v, [0, 0, 1, -1], 1.0, 0.0, 0.25)
    assert out[0] == 0.0
    assert out[1] == 0.0
    assert out[2] != 0.0                          # 0.5 > 0.25
    assert out[3] == 9.0


# ---- optimiser steps by hand ---------------------------------------------------------------------------------
def test_prox_sg_step_by_hand() -> None:
    pen = L1Penalty(0.5, np.array([True, True, True, False]))
    x = np.array([1.0, -0.2, 0.3, 2.0])
    g = np.array([1.0, 1.0, -1.0, 1.0])
    # v = x - 0.1 g = (0.9, -0.3, 0.4, 1.9); threshold 0.05 on the first three
    out = ProxSG(pen).step(x, g, 0.1)
    np.testing.assert_allclose(out, [0.85, -0.25, 0.35, 1.9])


def test_box_is_applied_after_the_prox() -> None:
    out = ProxSG(L1Penalty(0.0, np.ones(2, bool)), lo=np.array([-1.0, -1.0]), hi=np.array([1.0, 1.0])).step(
        np.array([0.9, 0.0]), np.array([-5.0, 0.0]), 0.1)
    assert out.tolist() == [1.0, 0.0]


def test_rda_steps_by_hand() -> None:
    pen = L1Penalty(0.5, np.ones(2, bool))
    opt = RDA(pen, gamma=2.0)
    x = np.zeros(2)
    # t = 1: gbar = (1, -0.2); beta = 2; x = -(1/2) S_0.5(gbar) = (-0.25, 0)
    x = opt.step(x, np.array([1.0, -0.2]), 99.0)
    np.testing.assert_allclose(x, [-0.25, 0.0])
    # t = 2: gbar = ((1 + 2) / 2, (-0.2 - 1.8) / 2) = (1.5, -1); beta = 2 sqrt 2; x = -(2 / beta) S_0.5(gbar)
    x = opt.step(x, np.array([2.0, -1.8]), 99.0)
    r = 2 / (2 * np.sqrt(2))
    np.testing.assert_allclose(x, [-r * 1.0, r * 0.5])


def test_obproxsg_orthant_step_by_hand() -> None:
    pen = L1Penalty(1.0, np.array([True, True, True, True, False]))
    opt = OBProxSG(pen, n_p=1, n_o=1)
    opt.start_epoch(1)
    assert opt.stage() == "orthant"
    x = np.array([0.5, -0.5, 0.0, 0.2, 1.0])
    g = np.array([1.0, 1.0, 5.0, 4.0, 1.0])
    # d = g + sign(x) on the non-zeros, 0 on zeros: (2, 0, 0, 5, 1); trial = x - 0.1 d = (0.3, -0.5, 0, -0.3, 0.9)
    # the fourth coordinate changed sign -> 0; the zero stays zero; the unpenalised one is a plain step
    out = opt.step(x, g, 0.1)
    np.testing.assert_allclose(out, [0.3, -0.5, 0.0, 0.0, 0.9])
    opt.start_epoch(0)
    assert opt.stage() == "prox"
    np.testing.assert_allclose(opt.step(x, g, 0.1), ProxSG(pen).step(x, g, 0.1))


def test_obproxsg_plus_schedule() -> None:
    opt = OBProxSG(L1Penalty(1.0, np.ones(1, bool)), n_p=2, n_o=None)
    stages = []
    for e in range(6):
        opt.start_epoch(e)
        stages.append(opt.stage())
    assert stages == ["prox", "prox", "orthant", "orthant", "orthant", "orthant"]
    opt = OBProxSG(L1Penalty(1.0, np.ones(1, bool)), n_p=1, n_o=2)
    seq = []
    for e in range(6):
        opt.start_epoch(e)
        seq.append(opt.stage())
    assert seq == ["prox", "orthant", "orthant", "prox", "orthant", "orthant"]


def test_group_orthant_step_by_hand() -> None:
    # groups {0, 1} and {2, 3}; coordinate 4 in no group; group {2, 3} is zero (frozen)
    pen = GroupPenalty(1.0, [np.array([0, 0, 1, 1, -1])])
    opt = OBProxSG(pen, n_p=0, n_o=None)
    opt.start_epoch(0)
    x = np.array([3.0, 4.0, 0.0, 0.0, 1.0])
    g = np.array([0.0, 0.0, 9.0, 9.0, 2.0])
    # d_g = g_g + x_g / ||x_g|| = (0.6, 0.8); trial = x - 1 * d = (2.4, 3.2); x_g . trial > 0 -> kept
    np.testing.assert_allclose(opt.step(x, g, 1.0), [2.4, 3.2, 0.0, 0.0, -1.0])
    # a step that crosses the half-space through 0 zeroes the group
    out = opt.step(x, np.array([-10.0, -10.0, 0, 0, 0]) * -1, 1.0)
    assert out[:2].tolist() == [0.0, 0.0]


def test_group_prox_step_by_hand() -> None:
    pen = GroupPenalty(2.0, [np.array([0, 0, -1])])
    out = ProxSG(pen).step(np.array([3.0, 4.0, 1.0]), np.zeros(3), 0.5)
    np.testing.assert_allclose(out, [3.0 * 0.8, 4.0 * 0.8, 1.0])     # threshold 0.5 * 2 = 1 on norm 5


def test_spr_penalty_value_and_prox_step() -> None:
    pen = SPRPenalty(2.0, 0.5, [np.array([0, 0, 1])], [np.array([1.0, 1.0])])
    x = np.array([0.6, 0.8, 0.0])
    assert pen.value(x) == pytest.approx(2.0 * 1.0)            # alpha n^2 + (1 - alpha) = 1 (see test_spr)
    out = ProxSG(pen).step(x, np.zeros(3), 0.1)
    np.testing.assert_allclose(out, spr_prox(x, [0, 0, 1], 1.0, 0.5, 0.2))


def test_sgd_keeps_frozen_coordinates() -> None:
    out = SGD(frozen=np.array([True, False])).step(np.array([0.0, 1.0]), np.array([5.0, 5.0]), 0.1)
    assert out.tolist() == [0.0, 0.5]


def test_torch_optimizers_match_the_numpy_steps() -> None:
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (the torch optimisers are optional)")
    from nnmip.optim.torch_optim import OBProxSGTorch, ProxSGTorch

    x = np.array([0.5, -0.5, 0.0, 0.2])
    g = np.array([1.0, 1.0, 5.0, 4.0])
    pen = L1Penalty(1.0, np.ones(4, bool))
    for opt_cls, epoch, ref in ((ProxSGTorch, 0, ProxSG(pen)), (OBProxSGTorch, 1, OBProxSG(pen, n_p=1, n_o=1))):
        p = torch.nn.Parameter(torch.tensor(x))
        opt = opt_cls([p], lr=0.1, lam=1.0)
        if hasattr(opt, "start_epoch"):
            opt.start_epoch(epoch)
        ref.start_epoch(epoch)
        p.grad = torch.tensor(g)
        opt.step()
        np.testing.assert_allclose(p.detach().numpy(), ref.step(x, g, 0.1))


def test_sum_and_maxpool_backward_match_finite_differences() -> None:
    from nnmip.ir.ops import MaxPool, Sum

    rng = np.random.default_rng(5)
    xs = [rng.normal(size=(4, 3)) for _ in range(3)]
    gy = rng.normal(size=(4, 3))
    grads = Sum().backward_many(xs, gy)
    for k in range(3):
        def f(v: np.ndarray, k: int = k) -> np.ndarray:
            return Sum().forward_many([v if j == k else xs[j] for j in range(3)])
        np.testing.assert_allclose(grads[k], fd_vjp(f, xs[k], gy), atol=1e-7)
    pool = MaxPool(index=np.array([[0, 1, 2], [2, 3, -1], [4, -1, -1]]))
    x = rng.normal(size=(5, 5))          # distinct values: the maximum is unique, so the gradient exists
    gy = rng.normal(size=(5, 3))
    np.testing.assert_allclose(pool.backward(x, gy), fd_vjp(pool.forward, x, gy), atol=1e-7)


def test_dag_network_gradient_matches_finite_differences() -> None:
    from verify_nets import dag_network

    from nnmip.ir.ops import MaxPool, ParamDomain, Sum

    def dense(n_in: int, n_out: int) -> Dense:
        return Dense(n_in=n_in, n_out=n_out, weights=ParamDomain.box("real", -5, 5, (n_out, n_in)),
                     bias=ParamDomain.box("real", -5, 5, (n_out,)))

    nodes = [("x", Input(dim=3), ()), ("h1", dense(3, 4), ("x",)), ("r1", ReLU(), ("h1",)),
             ("h2", dense(4, 4), ("r1",)), ("s", Sum(), ("r1", "h2")), ("p", MaxPool(index=np.array([[0, 1], [2, 3]])),
                                                                     ("s",)), ("o", dense(2, 3), ("p",))]
    net = dag_network(nodes)
    lay = layout_of(net)
    rng = np.random.default_rng(6)
    p = rng.normal(size=lay.size)
    X, y = rng.normal(size=(7, 3)), rng.integers(0, 3, 7)
    val, grad = loss_and_grad(net, lay, p, X, y, 3, "cross_entropy")
    num = fd_vjp(lambda v: np.array(loss_and_grad(net, lay, v, X, y, 3, "cross_entropy")[0]), p, np.array(1.0))
    np.testing.assert_allclose(grad, num, atol=1e-6)
    from nnmip.drivers.sparse.layout import with_point

    assert val == pytest.approx(smooth_loss("cross_entropy", with_point(net, lay, p).forward(X), y, 3)[0])
