"""Stochastic methods for ``min_x f(x) + psi(x)`` with ``f`` the mean loss over the data and ``psi`` a penalty of
:mod:`nnmip.optim.penalties`, optionally inside a box ``lo <= x <= hi`` (the declared weight domains).

Every method is a small stateful object: ``start_epoch(k)`` before epoch ``k`` and ``step(x, g, lr)`` with the
mini-batch gradient ``g`` of ``f`` at ``x``; ``step`` returns the new point and never modifies its arguments.
The box is applied last (``clip``): for ``psi = l1`` and a box containing 0 this is the exact proximal step of
``psi`` plus the box, for the group penalties an approximation that only acts when a bound is reached.

References
----------
    Chen, Ding, Ji, Wang, Shi, Tian, Yi, Tu, Zhu, "Orthant Based Proximal Stochastic Gradient Method for
    l1-Regularized Optimization", ECML-PKDD 2020, arXiv:2004.03639 (OBProx-SG, OBProx-SG+).
    Chen, Ji, Shi, Ding, Fang, Yi, Tu, "Neural Network Compression Via Sparse Optimization", arXiv:2011.04868.
    Xiao, "Dual Averaging Methods for Regularized Stochastic Learning and Online Optimization", JMLR 11 (2010) (RDA).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from nnmip.optim.penalties import Penalty

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class SGD:
    """Plain stochastic gradient on ``f`` (the penalty is ignored): ``x <- clip(x - a g)``.  Coordinates in
    ``frozen`` stay exactly where they are (fine-tuning a pruned network keeps its zeros).
    """

    name = "sgd"

    def __init__(self, penalty: Penalty | None = None, lo: FloatArray | None = None, hi: FloatArray | None = None,
                 frozen: BoolArray | None = None) -> None:
        self.penalty = penalty or Penalty()
        self.lo, self.hi = lo, hi
        self.frozen = frozen
        self.epoch = 0
        self.steps = 0

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def clip(self, x: FloatArray) -> FloatArray:
        if self.lo is not None or self.hi is not None:
            x = np.clip(x, self.lo if self.lo is not None else -np.inf, self.hi if self.hi is not None else np.inf)
        return x

    def stage(self) -> str:
        return self.name

    def step(self, x: FloatArray, g: FloatArray, lr: float) -> FloatArray:
        self.steps += 1
        out = self.clip(x - lr * g)
        if self.frozen is not None:
            out[self.frozen] = x[self.frozen]
        return out


class ProxSG(SGD):
    """Proximal stochastic gradient.

    Math:
        x_{k+1} = prox_{a_k psi}(x_k - a_k g_k)
        (l1: soft thresholding sign(v) max(|v| - a_k lam, 0); groups: max(0, 1 - a_k lam / ||v_g||) v_g)
    """

    name = "prox_sg"

    def step(self, x: FloatArray, g: FloatArray, lr: float) -> FloatArray:
        self.steps += 1
        return self.clip(self.penalty.prox(x - lr * g, lr))


class RDA(SGD):
    """Regularised dual averaging (Xiao 2010), centred at the starting point ``x0``.

    Math:
        gbar_t = (1/t) sum_{tau <= t} g_tau,   beta_t = gamma sqrt(t)
        x_{t+1} = argmin_x  gbar_t^T x + psi(x) + beta_t / (2 t) ||x - x0||^2
                = prox_{(t / beta_t) psi}(x0 - (t / beta_t) gbar_t)
        (l1 with x0 = 0: x_{t+1,i} = -(sqrt(t) / gamma) sign(gbar_i) max(|gbar_i| - lam, 0), Xiao's l1-RDA)
    The learning rate of ``step`` is not used; ``gamma`` sets the step scale.
    """

    name = "rda"

    def __init__(self, penalty: Penalty | None = None, lo: FloatArray | None = None, hi: FloatArray | None = None,
                 *, gamma: float = 1.0, x0: FloatArray | None = None) -> None:
        super().__init__(penalty, lo, hi)
        if gamma <= 0:
            raise ValueError("gamma must be positive")
        self.gamma = gamma
        self.x0 = None if x0 is None else np.array(x0, dtype=np.float64)
        self.gbar: FloatArray | None = None

    def step(self, x: FloatArray, g: FloatArray, lr: float) -> FloatArray:
        self.steps += 1
        t = self.steps
        if self.gbar is None:
            self.gbar = np.zeros_like(x)
        if self.x0 is None:
            self.x0 = np.zeros_like(x)
        self.gbar += (g - self.gbar) / t
        r = t / (self.gamma * math.sqrt(t))
        return self.clip(self.penalty.prox(self.x0 - r * self.gbar, r))


class OBProxSG(SGD):
    """Orthant-based proximal stochastic gradient (Chen et al. 2020): ``n_p`` Prox-SG epochs, then ``n_o``
    orthant epochs, repeated; ``n_o = None`` (infinity) is OBProx-SG+ (Prox-SG epochs, then orthant steps only).

    Math (orthant step at x_k, l1 penalty):
        zeta_k = sign(x_k),  O_k = {x : sign(x_i) in {0, zeta_{k,i}}}         (the orthant face of x_k)
        on O_k:  psi(x) = lam zeta_k^T x, smooth
        d_k = g_k + lam zeta_k on the non-zero coordinates, d_{k,i} = 0 where x_{k,i} = 0   (zeros frozen)
        x_{k+1} = Proj_{O_k}(x_k - a_k d_k):  coordinates whose sign would change become 0
    With a group penalty the face keeps zero groups at zero, the smooth part has gradient lam x_g / ||x_g|| and the
    projection is the half-space one (``GroupPenalty.project``): the group variant used for structured pruning.
    """

    name = "obproxsg"

    def __init__(self, penalty: Penalty | None = None, lo: FloatArray | None = None, hi: FloatArray | None = None,
                 *, n_p: int = 1, n_o: int | None = 1) -> None:
        super().__init__(penalty, lo, hi)
        if n_p < 0 or (n_o is not None and n_o < 1):
            raise ValueError("n_p must be >= 0 and n_o >= 1 (or None for OBProx-SG+)")
        self.n_p, self.n_o = n_p, n_o

    def stage(self) -> str:
        if self.n_o is None:
            return "prox" if self.epoch < self.n_p else "orthant"
        return "prox" if self.epoch % (self.n_p + self.n_o) < self.n_p else "orthant"

    def step(self, x: FloatArray, g: FloatArray, lr: float) -> FloatArray:
        self.steps += 1
        pen = self.penalty
        if self.stage() == "prox":
            return self.clip(pen.prox(x - lr * g, lr))
        zero = pen.zero_set(x)
        d = g + pen.grad_support(x)
        d[zero] = 0.0
        trial = x - lr * d
        out = pen.project(trial, x)
        out[zero] = 0.0
        return self.clip(out)


METHODS: dict[str, type[SGD]] = {"sgd": SGD, "prox_sg": ProxSG, "rda": RDA, "obproxsg": OBProxSG}


def make_optimizer(method: str, penalty: Penalty, lo: FloatArray | None = None, hi: FloatArray | None = None,
                   **kw: Any) -> SGD:
    """An optimiser by name: ``sgd``, ``prox_sg``, ``rda`` (``gamma``, ``x0``), ``obproxsg`` (``n_p``, ``n_o``)."""
    if method not in METHODS:
        raise ValueError(f"unknown method '{method}'")
    cls = METHODS[method]
    return cls(penalty, lo, hi, **kw)  # type: ignore[call-arg]
