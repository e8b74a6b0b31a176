"""Proximal operators: ``prox_{t psi}(v) = argmin_x 1/2 ||x - v||^2 + t psi(x)``.

Groups are given as an integer array ``gid`` (one entry per coordinate; ``-1``: the coordinate is in no group and
is returned unchanged).  Groups of one call are disjoint.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def soft_threshold(v: npt.ArrayLike, t: float | FloatArray) -> FloatArray:
    """The proximal operator of ``t ||x||_1``.

    Math:
        prox_{t ||.||_1}(v)_i = sign(v_i) max(|v_i| - t, 0)
    """
    v = np.asarray(v, dtype=np.float64)
    return np.asarray(np.sign(v) * np.maximum(np.abs(v) - t, 0.0), dtype=np.float64)


def group_norms(v: FloatArray, gid: IntArray, n_groups: int | None = None) -> FloatArray:
    """``||v_g||_2`` of every group (coordinates with ``gid < 0`` ignored)."""
    sel = gid >= 0
    G = int(gid.max()) + 1 if n_groups is None and gid.size else (n_groups or 0)
    return np.sqrt(np.bincount(gid[sel], v[sel] * v[sel], minlength=G))


def group_soft_threshold(v: npt.ArrayLike, gid: npt.ArrayLike, t: float) -> FloatArray:
    """The proximal operator of ``t sum_g ||x_g||_2`` (group lasso) for disjoint groups.

    Math:
        prox(v)_g = max(0, 1 - t / ||v_g||_2) v_g       (0 when ||v_g||_2 <= t)
    """
    v = np.array(v, dtype=np.float64)
    g = np.asarray(gid, dtype=np.int64)
    sel = g >= 0
    if not sel.any():
        return v
    n = group_norms(v, g)
    scale = np.maximum(0.0, 1.0 - t / np.where(n > 0, n, 1.0))
    scale[n <= t] = 0.0
    v[sel] *= scale[g[sel]]
    return v


def spr_prox(v: npt.ArrayLike, gid: npt.ArrayLike, M: float | npt.ArrayLike, alpha: float, t: float,
             iterations: int = 48) -> FloatArray:
    """The proximal operator of ``t SPR`` (Structured Perspective Regulariser, Cacciola et al.) per group.

    Math:
        SPR(w_g) = min_{z in [0, 1]} alpha ||w_g||^2 / z + (1 - alpha) z   s.t.  ||w_g||_inf <= M_g z
        (the perspective relaxation with the indicator projected out; ``nnmip.formulations.spr`` gives its closed
        form).  The proximal problem is jointly convex in (w_g, z), so

            prox(v)_g = w_g(z*),   w_g(z)_i = clip(v_i z / (z + 2 t alpha), -M_g z, M_g z)     (alpha = 0: clip(v_i))
            h(z) = 1/2 ||w_g(z) - v_g||^2 + t (alpha ||w_g(z)||^2 / z + (1 - alpha) z),   h(0) = 1/2 ||v_g||^2

        with z* = argmin_{[0, 1]} h, a convex function of one variable.  Near 0, w_g(z) = z u with
        u_i = clip(v_i / (2 t alpha), -M_g, M_g) (u_i = M_g sign(v_i) for alpha = 0), so the right derivative is

            h'(0+) = -v.u + t alpha ||u||^2 + t (1 - alpha)

        and the group is exactly zero iff h'(0+) >= 0.  Otherwise z* is found by golden-section search on (0, 1]
        (``iterations`` steps, all groups at once: the interval shrinks to 0.618^48 < 1e-9).  The prox includes
        the bound |w_i| <= M_g that the regulariser's z <= 1 implies.
    """
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must lie in [0, 1), got {alpha}")
    v = np.array(v, dtype=np.float64)
    g = np.asarray(gid, dtype=np.int64)
    sel = g >= 0
    if not sel.any() or t <= 0:
        return v
    gs, vs = g[sel], v[sel]
    G = int(gs.max()) + 1
    M_g = np.broadcast_to(np.asarray(M, dtype=np.float64), (G,)).astype(np.float64)
    Mi = M_g[gs]
    u = np.clip(vs / (2.0 * t * alpha), -Mi, Mi) if alpha > 0 else Mi * np.sign(vs)
    d0 = -np.bincount(gs, vs * u, minlength=G) + t * alpha * np.bincount(gs, u * u, minlength=G) + t * (1 - alpha)
    present = np.bincount(gs, minlength=G) > 0

    def w_of(z: FloatArray) -> FloatArray:
        zi = z[gs]
        shrink = zi / (zi + 2.0 * t * alpha) if alpha > 0 else np.ones_like(zi)
        return np.asarray(np.clip(vs * shrink, -Mi * zi, Mi * zi), dtype=np.float64)

    def h(z: FloatArray) -> FloatArray:
        w = w_of(z)
        r = w - vs
        quad = np.bincount(gs, r * r, minlength=G) / 2.0
        ww = np.bincount(gs, w * w, minlength=G)
        return np.asarray(quad + t * (alpha * ww / np.maximum(z, 1e-300) + (1.0 - alpha) * z), dtype=np.float64)

    lo, hi = np.zeros(G), np.ones(G)
    a = hi - _GOLDEN * (hi - lo)
    b = lo + _GOLDEN * (hi - lo)
    ha, hb = h(a), h(b)
    for _ in range(iterations):        # one new evaluation per iteration and group
        left = ha < hb                 # the minimum lies in [lo, b]: b <- a, new a; else [a, hi]: a <- b, new b
        hi = np.where(left, b, hi)
        lo = np.where(left, lo, a)
        new = np.where(left, hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo))
        h_new = h(new)
        a, b, ha, hb = (np.where(left, new, b), np.where(left, a, new), np.where(left, h_new, hb),
                        np.where(left, ha, h_new))
    z = (lo + hi) / 2.0
    z = np.where(h(np.ones(G)) <= h(z), 1.0, z)
    z[(d0 >= 0) | ~present] = 0.0
    w = w_of(z)
    w[z[gs] == 0.0] = 0.0
    v[sel] = w
    return v
