"""The Structured Perspective Regulariser (Cacciola, Frangioni, Li, Lodi; docs/formulations.md §10).

Projecting the indicators out of the perspective relaxation of
``min lambda sum_g (alpha ||W_g||^2 + (1 - alpha) z_g)  s.t.  |w| <= M z_g, z_g in [0, 1]`` gives, per group with
``a = ||W_g||_inf``, ``n = ||W_g||_2`` and ``c = sqrt(alpha / (1 - alpha))``::

    if max(a / M, c n) >= 1:   SPR = alpha n^2 + (1 - alpha)
    elif a / M <= c n:         SPR = 2 sqrt(alpha (1 - alpha)) n
    else:                      SPR = alpha M n^2 / a + (1 - alpha) a / M

It is what a gradient trainer adds to its loss on networks too large for a MIP.  :func:`spr` gives the value and
a subgradient in numpy; :func:`spr_torch` the same as a differentiable torch expression (when torch is
installed).  :func:`spr_from_task` reads groups, M, alpha and lambda from a ``.nnmip`` pruning declaration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from nnmip.formulations.groups import build_groups

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _case(a: FloatArray, n: FloatArray, M: FloatArray, alpha: float) -> tuple[FloatArray, FloatArray]:
    c = math.sqrt(alpha / (1.0 - alpha))
    full = np.maximum(a / M, c * n) >= 1.0
    mid = ~full & (a / M <= c * n)
    return full, mid


def spr_groups(values: npt.ArrayLike, gid: npt.ArrayLike, M: npt.ArrayLike, alpha: float, lam: float = 1.0
               ) -> tuple[FloatArray, FloatArray]:
    """Per-group SPR values (G,) times ``lam`` and the subgradient (k,) with respect to ``values``.

    ``values`` (k,) are the weights, ``gid`` (k,) the group of each, ``M`` (G,) or a scalar the group bounds.
    A weight that belongs to several groups appears once per group (the subgradient is per entry).
    """
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must lie in [0, 1), got {alpha}")
    w = np.asarray(values, dtype=np.float64).ravel()
    g = np.asarray(gid, dtype=np.int64).ravel()
    G = int(g.max()) + 1 if g.size else 0
    M_arr = np.broadcast_to(np.asarray(M, dtype=np.float64), (G,)).astype(np.float64)
    if (M_arr <= 0).any():
        raise ValueError("group bounds M must be positive")
    aw = np.abs(w)
    a = np.zeros(G)
    np.maximum.at(a, g, aw)
    n2 = np.bincount(g, w * w, minlength=G)
    n = np.sqrt(n2)
    full, mid = _case(a, n, M_arr, alpha)
    low = ~full & ~mid
    val = np.empty(G)
    val[full] = alpha * n2[full] + (1.0 - alpha)
    val[mid] = 2.0 * math.sqrt(alpha * (1.0 - alpha)) * n[mid]
    a_safe = np.where(a > 0, a, 1.0)
    val[low] = np.where(a[low] > 0, alpha * M_arr[low] * n2[low] / a_safe[low] + (1.0 - alpha) * a[low] / M_arr[low],
                        0.0)
    # subgradient per entry
    grad = np.zeros_like(w)
    fm, mm, lm = full[g], mid[g], low[g]
    grad[fm] = 2.0 * alpha * w[fm]
    n_safe = np.where(n > 0, n, 1.0)
    grad[mm] = 2.0 * math.sqrt(alpha * (1.0 - alpha)) * w[mm] / n_safe[g[mm]]
    if lm.any():
        # d/dw [alpha M n^2 / a + (1 - alpha) a / M]; d a / d w is sign(w) at the (first) arg max of |w|
        is_max = np.zeros_like(w, dtype=bool)
        idx = np.flatnonzero(lm)
        order = idx[np.lexsort((-aw[idx], g[idx]))]
        first = np.ones(order.size, dtype=bool)
        first[1:] = g[order][1:] != g[order][:-1]
        is_max[order[first]] = True
        ga = a_safe[g]
        grad[lm] = 2.0 * alpha * M_arr[g[lm]] * w[lm] / ga[lm]
        sel = lm & is_max & (aw > 0)
        da = np.sign(w[sel]) * (-alpha * M_arr[g[sel]] * n2[g[sel]] / ga[sel] ** 2 + (1.0 - alpha) / M_arr[g[sel]])
        grad[sel] += da
    return lam * val, lam * grad


def spr(values: npt.ArrayLike, gid: npt.ArrayLike, M: npt.ArrayLike, alpha: float, lam: float = 1.0
        ) -> tuple[float, FloatArray]:
    """``lam * sum_g SPR(W_g)`` and its subgradient with respect to ``values`` (see :func:`spr_groups`)."""
    vals, grad = spr_groups(values, gid, M, alpha, lam)
    return float(vals.sum()), grad


def spr_torch(values: Any, gid: Any, M: Any, alpha: float, lam: float = 1.0) -> Any:
    """The same value as a differentiable torch expression (needs torch).

    ``values`` is a 1-D tensor, ``gid`` a 1-D long tensor, ``M`` a scalar or a (G,) tensor.
    """
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("spr_torch needs PyTorch: pip install torch (or use nnmip.formulations.spr.spr)") from exc
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must lie in [0, 1), got {alpha}")
    w = values.reshape(-1)
    g = torch.as_tensor(gid, dtype=torch.long, device=w.device).reshape(-1)
    G = int(g.max().item()) + 1 if g.numel() else 0
    Mt = torch.as_tensor(M, dtype=w.dtype, device=w.device).expand(G)
    aw = w.abs()
    a = torch.zeros(G, dtype=w.dtype, device=w.device).scatter_reduce(0, g, aw, reduce="amax", include_self=True)
    n2 = torch.zeros(G, dtype=w.dtype, device=w.device).index_add(0, g, w * w)
    n = torch.sqrt(n2 + 1e-30)
    c = math.sqrt(alpha / (1.0 - alpha))
    full = torch.maximum(a / Mt, c * n) >= 1.0
    mid = (~full) & (a / Mt <= c * n)
    v_full = alpha * n2 + (1.0 - alpha)
    v_mid = 2.0 * math.sqrt(alpha * (1.0 - alpha)) * n
    a_safe = torch.where(a > 0, a, torch.ones_like(a))
    v_low = torch.where(a > 0, alpha * Mt * n2 / a_safe + (1.0 - alpha) * a / Mt, torch.zeros_like(a))
    return lam * torch.where(full, v_full, torch.where(mid, v_mid, v_low)).sum()


@dataclass
class SprSpec:
    """Groups of a network's parameters for the SPR term, as flat arrays over named tensors."""

    pkeys: list[tuple[str, str]]     # (layer, "W" | "b")
    gid: IntArray
    pidx: IntArray
    flat: IntArray
    M: FloatArray                    # (G,)
    alpha: float
    lam: float
    names: list[str]

    def values(self, params: dict[str, tuple[FloatArray, FloatArray | None]]) -> FloatArray:
        out = np.zeros(self.gid.size)
        for p, (layer, role) in enumerate(self.pkeys):
            sel = self.pidx == p
            arr = params[layer][0] if role == "W" else params[layer][1]
            assert arr is not None
            out[sel] = np.asarray(arr, dtype=np.float64).ravel()[self.flat[sel]]
        return out

    def __call__(self, params: dict[str, tuple[FloatArray, FloatArray | None]]
                 ) -> tuple[float, dict[str, tuple[FloatArray, FloatArray | None]]]:
        """The SPR value of ``params`` and its subgradient laid out like ``params``."""
        val, grad = spr(self.values(params), self.gid, self.M, self.alpha, self.lam)
        out: dict[str, tuple[FloatArray, FloatArray | None]] = {
            k: (np.zeros_like(np.asarray(W, dtype=np.float64)), None if b is None else np.zeros_like(b))
            for k, (W, b) in params.items()}
        for p, (layer, role) in enumerate(self.pkeys):
            sel = self.pidx == p
            arr = out[layer][0] if role == "W" else out[layer][1]
            assert arr is not None
            np.add.at(arr.reshape(-1), self.flat[sel], grad[sel])
        return val, out


def spr_from_task(net: Any, task: Any) -> SprSpec:
    """Groups, M, alpha and lambda from a checked task's ``prune`` declarations (``lambda`` defaults to 1)."""
    specs = tuple(getattr(task, "prune", ()) or ())
    if not specs:
        raise ValueError("the task declares no pruning groups")
    g = build_groups(net, specs)
    lam = float(getattr(task, "lam", 0.0)) or 1.0
    return SprSpec(g.pkeys, g.gid, g.pidx, g.flat, g.M, float(getattr(task, "alpha", 0.0)), lam,
                   [r.name for r in g.refs])
