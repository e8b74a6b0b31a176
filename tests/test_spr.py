"""The Structured Perspective Regulariser: closed form = the perspective-conic relaxation over the indicators."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from nnmip.backends import get_backend, is_installed
from nnmip.drivers.cuts import solve_with_cuts
from nnmip.formulations.perspective import group_model
from nnmip.formulations.spr import spr, spr_from_task, spr_groups, spr_torch
from nnmip.solution import SolveOptions, Status

needs_cvxpy = pytest.mark.skipif(not is_installed("cvxpy"), reason="cvxpy is not installed")


def brute(w: np.ndarray, M: float, alpha: float) -> float:
    """min over z in [max|w|/M, 1] of alpha ||w||^2 / z + (1 - alpha) z, by a fine grid plus the end points."""
    a, n2 = float(np.abs(w).max(initial=0.0)), float((w * w).sum())
    if n2 == 0:
        return 0.0
    z = np.r_[np.linspace(a / M, 1.0, 200001), a / M, 1.0]
    z = z[z > 0]
    return float(np.min(alpha * n2 / z + (1 - alpha) * z))


def random_case(rng: np.random.Generator, G: int = 4, k: int = 12) -> tuple[np.ndarray, ...]:
    gid = np.r_[np.arange(G), rng.integers(0, G, k - G)]
    M = rng.uniform(0.5, 2.0, G)
    scale = rng.choice([0.02, 0.3, 1.0], G)            # small, medium and saturated groups
    w = rng.uniform(-1, 1, k) * M[gid] * scale[gid]
    return w, gid, M


def test_closed_form_cases_by_hand() -> None:
    # one group, alpha = 0.5 (c = 1), M = 1
    # w = (0.6, 0.8): n = 1 >= 1 -> alpha n^2 + 1 - alpha = 0.5 + 0.5 = 1
    assert spr([0.6, 0.8], [0, 0], 1.0, 0.5)[0] == pytest.approx(1.0)
    # w = (0.3, 0.4): n = 0.5, a = 0.4 <= c n = 0.5 < 1 -> 2 sqrt(0.25) n = 0.5
    assert spr([0.3, 0.4], [0, 0], 1.0, 0.5)[0] == pytest.approx(0.5)
    # w = (0.5,), M = 1, alpha = 0.2 (c = 0.5): a/M = 0.5 > c n = 0.25 -> 0.2*1*0.25/0.5 + 0.8*0.5 = 0.5
    assert spr([0.5], [0], 1.0, 0.2)[0] == pytest.approx(0.5)
    # lambda scales, zeros cost nothing
    assert spr([0.0, 0.0], [0, 1], 1.0, 0.3, lam=7.0)[0] == 0.0
    assert spr([0.5], [0], 1.0, 0.2, lam=3.0)[0] == pytest.approx(1.5)


def test_closed_form_matches_brute_force_minimisation() -> None:
    rng = np.random.default_rng(7)
    for _ in range(40):
        M = rng.uniform(0.5, 2.0)
        w = rng.uniform(-1, 1, rng.integers(1, 5)) * M * rng.choice([0.05, 0.3, 1.0])
        alpha = rng.uniform(0.05, 0.95)
        assert spr(w, np.zeros(w.size, int), M, alpha)[0] == pytest.approx(brute(w, M, alpha), rel=1e-6, abs=1e-9)


def test_subgradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(3)
    branches = set()
    for _ in range(60):
        w, gid, M = random_case(rng)
        alpha = rng.uniform(0.05, 0.95)
        vals, grad = spr_groups(w, gid, M, alpha, 1.3)
        a = np.zeros(M.size)
        np.maximum.at(a, gid, np.abs(w))
        n = np.sqrt(np.bincount(gid, w * w, minlength=M.size))
        c = math.sqrt(alpha / (1 - alpha))
        branches |= {("full" if max(ai / Mi, c * ni) >= 1 else "mid" if ai / Mi <= c * ni else "low")
                     for ai, ni, Mi in zip(a, n, M, strict=True)}
        h = 1e-7
        for j in range(w.size):
            e = np.zeros_like(w)
            e[j] = h
            fd = (spr(w + e, gid, M, alpha, 1.3)[0] - spr(w - e, gid, M, alpha, 1.3)[0]) / (2 * h)
            if abs(fd - grad[j]) > 1e-4 * (1 + abs(fd)):
                # a kink (tie for the max, or a branch boundary) is allowed only within h of it
                v1 = spr(w + 1e3 * e, gid, M, alpha, 1.3)[0]
                v0 = spr(w - 1e3 * e, gid, M, alpha, 1.3)[0]
                assert v1 + v0 >= 2 * vals.sum() - 1e-6  # convex along the coordinate
    assert branches == {"full", "mid", "low"}


@needs_cvxpy
def test_conic_relaxation_equals_spr_on_random_cases() -> None:
    """Done criterion: min over (z, s) of the perspective-conic relaxation = lambda sum_g SPR(W_g)."""
    rng = np.random.default_rng(11)
    cv = get_backend("cvxpy")
    for _ in range(25):
        w, gid, M = random_case(rng, G=int(rng.integers(1, 6)), k=int(rng.integers(6, 14)))
        alpha, lam = float(rng.uniform(0.05, 0.95)), float(rng.uniform(0.1, 3.0))
        model, _ = group_model(w, gid, M, alpha, lam, "perspective-conic")
        assert model.cones
        assert model.cones[0].kind == "rsoc"
        raw = cv.solve(model, SolveOptions())
        assert raw.status is Status.OPTIMAL
        want = spr(w, gid, M, alpha, lam)[0]
        assert raw.objective == pytest.approx(want, rel=1e-6, abs=1e-7)


def test_cut_loop_reaches_spr_with_highs() -> None:
    rng = np.random.default_rng(5)
    hs = get_backend("highs")
    for _ in range(8):
        w, gid, M = random_case(rng)
        alpha, lam = float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.5, 2.0))
        model, reg = group_model(w, gid, M, alpha, lam, "perspective-cuts")
        assert not model.cones
        raw, cut_model, rounds = solve_with_cuts(model, hs, SolveOptions(), reg)
        assert rounds >= 1
        assert cut_model.num_rows >= model.num_rows
        assert raw.objective == pytest.approx(spr(w, gid, M, alpha, lam)[0], rel=1e-6, abs=1e-7)


def test_spr_from_a_pruning_declaration(tmp_path: Path) -> None:
    from nnmip.check import check
    from nnmip.syntax import parse

    src = """
network n(x: 3) { h = dense(x, 2, weights=real[-2, 2], bias=real[-1, 1]); a = step(h)
                  o = dense(a, 1, weights=real[-1, 1]); y = step(o) }
data d = sklearn("iris")
train n on d { loss = hamming; prune = neurons(h); lambda = 0.5; alpha = 0.25 }
"""
    cp = check(parse(src), tmp_path)
    task = cp.tasks[0]
    net = cp.networks["n"]
    sp = spr_from_task(net, task)
    assert (sp.alpha, sp.lam) == (0.25, 0.5)
    assert sp.names == ["h[0]", "h[1]"]
    params = {"h": (np.array([[0.1, 0.0, 0.0], [1.0, 2.0, 0.0]]), np.array([0.0, 0.5])),
              "o": (np.array([[0.2, -1.0]]), np.zeros(1))}
    val, grad = sp(params)
    # group h[0] = (0.1, 0, 0, bias 0, out 0.2), M = 2; group h[1] = (1, 2, 0, 0.5, -1), M = 2
    w0 = np.array([0.1, 0, 0, 0, 0.2])
    w1 = np.array([1.0, 2.0, 0, 0.5, -1.0])
    want = spr(np.r_[w0, w1], np.r_[np.zeros(5, int), np.ones(5, int)], 2.0, 0.25, 0.5)[0]
    assert val == pytest.approx(want)
    assert grad["h"][0].shape == (2, 3)
    assert grad["o"][0].shape == (1, 2)


def test_spr_torch_matches_numpy() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed; spr_torch is optional")
    rng = np.random.default_rng(2)
    w, gid, M = random_case(rng)
    t = torch.tensor(w, requires_grad=True)
    val = spr_torch(t, torch.tensor(gid), torch.tensor(M), 0.4, 1.5)
    val.backward()
    v, g = spr(w, gid, M, 0.4, 1.5)
    assert float(val) == pytest.approx(v, rel=1e-9)
    np.testing.assert_allclose(t.grad.numpy(), g, rtol=1e-6, atol=1e-9)


def test_alpha_out_of_range() -> None:
    with pytest.raises(ValueError, match="alpha"):
        spr([1.0], [0], 1.0, 1.0)
