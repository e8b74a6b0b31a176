"""Sparsity-inducing regularisers ``psi`` on a flat parameter vector, with what the optimisers need of them.

Each penalty knows its value, its proximal operator, its gradient on the support (the smooth piece the orthant
step uses), the coordinates it holds at zero, and the projection that keeps an orthant / half-space step on the
current face.  ``mask`` marks the penalised coordinates; the others (biases, by default) are left to the loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from nnmip.optim.prox import group_norms, group_soft_threshold, soft_threshold, spr_prox

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class Penalty:
    """``psi(x) = 0`` (plain stochastic gradient); the base of the other penalties."""

    def value(self, x: FloatArray) -> float:
        return 0.0

    def prox(self, v: FloatArray, t: float) -> FloatArray:
        """``prox_{t psi}(v)``."""
        return v

    def grad_support(self, x: FloatArray) -> FloatArray:
        """The gradient of ``psi`` where it is differentiable along the current face, 0 on the zero set."""
        return np.zeros_like(x)

    def zero_set(self, x: FloatArray) -> BoolArray:
        """Penalised coordinates that the orthant step keeps at zero (zero coordinates or zero groups)."""
        return np.zeros(x.shape, dtype=bool)

    def project(self, x_new: FloatArray, x_ref: FloatArray) -> FloatArray:
        """Project a trial point back onto the face of ``x_ref`` (zero what left it)."""
        return x_new


NoPenalty = Penalty


@dataclass
class L1Penalty(Penalty):
    """``psi(x) = lam sum_{i in mask} |x_i|``.

    Math:
        prox_{t psi}(v)_i = sign(v_i) max(|v_i| - t lam, 0) on the mask, v_i elsewhere
        orthant face of x: O(x) = {y : sign(y_i) in {0, sign(x_i)}};  on it psi(y) = lam sign(x)^T y
        projection onto O(x): y_i <- 0 where sign(y_i) != sign(x_i)   (Chen et al. 2020, arXiv 2004.03639)
    """

    lam: float
    mask: BoolArray

    def value(self, x: FloatArray) -> float:
        return float(self.lam * np.abs(x[self.mask]).sum())

    def prox(self, v: FloatArray, t: float) -> FloatArray:
        out = np.array(v, dtype=np.float64)
        out[self.mask] = soft_threshold(v[self.mask], t * self.lam)
        return out

    def grad_support(self, x: FloatArray) -> FloatArray:
        return np.where(self.mask, self.lam * np.sign(x), 0.0)

    def zero_set(self, x: FloatArray) -> BoolArray:
        return np.asarray(self.mask & (x == 0), dtype=bool)

    def project(self, x_new: FloatArray, x_ref: FloatArray) -> FloatArray:
        out = np.array(x_new, dtype=np.float64)
        out[self.mask & (np.sign(x_new) != np.sign(x_ref))] = 0.0
        return out


@dataclass
class GroupPenalty(Penalty):
    """``psi(x) = lam sum_p sum_g ||x_{p,g}||_2`` over one or more partitions ``p`` of disjoint groups.

    ``partitions`` holds one ``gid`` array per declaration (``-1``: not in a group of that declaration).  Groups of
    different declarations may overlap (a first-layer weight belongs to its neuron and to its input feature); the
    proximal step then applies each declaration's group soft thresholding in turn, which is the exact prox when
    they do not overlap and the usual splitting when they do.

    Math:
        prox_{t psi}(v)_g = max(0, 1 - t lam / ||v_g||) v_g
        face of x: its zero groups stay zero; on the others psi is smooth with gradient lam x_g / ||x_g||
        half-space projection (Chen et al., "A Half-Space Stochastic Projected Gradient Method for Group Sparsity
        Regularization"): y_g <- 0 where y_g^T x_g < eps ||x_g||^2.  With singleton groups and eps = 0 this is
        the orthant projection of :class:`L1Penalty`.
    """

    lam: float
    partitions: list[IntArray]
    eps: float = 0.0
    _G: list[int] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self._G = [int(p.max()) + 1 if p.size and p.max() >= 0 else 0 for p in self.partitions]

    def value(self, x: FloatArray) -> float:
        return float(self.lam * sum(group_norms(x, p, G).sum() for p, G in zip(self.partitions, self._G, strict=False)))

    def prox(self, v: FloatArray, t: float) -> FloatArray:
        out = np.array(v, dtype=np.float64)
        for p in self.partitions:
            out = group_soft_threshold(out, p, t * self.lam)
        return out

    def grad_support(self, x: FloatArray) -> FloatArray:
        out = np.zeros_like(x)
        for p, G in zip(self.partitions, self._G, strict=False):
            n = group_norms(x, p, G)
            sel = (p >= 0)
            ng = n[p[sel]]
            out[sel] += np.where(ng > 0, self.lam * x[sel] / np.where(ng > 0, ng, 1.0), 0.0)
        return out

    def zero_set(self, x: FloatArray) -> BoolArray:
        z = np.zeros(x.shape, dtype=bool)
        for p, G in zip(self.partitions, self._G, strict=False):
            n = group_norms(x, p, G)
            sel = p >= 0
            z[sel] |= n[p[sel]] == 0
        return z

    def project(self, x_new: FloatArray, x_ref: FloatArray) -> FloatArray:
        out = np.array(x_new, dtype=np.float64)
        for p, G in zip(self.partitions, self._G, strict=False):
            sel = p >= 0
            dot = np.bincount(p[sel], x_new[sel] * x_ref[sel], minlength=G)
            nref = np.bincount(p[sel], x_ref[sel] * x_ref[sel], minlength=G)
            drop = (dot < self.eps * nref) | (nref == 0)
            out[sel] = np.where(drop[p[sel]], 0.0, out[sel])
        return out


@dataclass
class SPRPenalty(Penalty):
    """``psi(x) = lam sum_p sum_g SPR(x_{p,g})`` with the group bounds ``M`` and weight ``alpha``.

    The proximal step is :func:`nnmip.optim.prox.spr_prox` (declarations applied in turn as for
    :class:`GroupPenalty`); the value comes from :func:`nnmip.formulations.spr.spr_groups`.
    """

    lam: float
    alpha: float
    partitions: list[IntArray]
    M: list[FloatArray]

    def value(self, x: FloatArray) -> float:
        from nnmip.formulations.spr import spr_groups

        total = 0.0
        for p, M in zip(self.partitions, self.M, strict=False):
            sel = p >= 0
            if sel.any():
                total += float(spr_groups(x[sel], p[sel], M, self.alpha, self.lam)[0].sum())
        return total

    def prox(self, v: FloatArray, t: float) -> FloatArray:
        out = np.array(v, dtype=np.float64)
        for p, M in zip(self.partitions, self.M, strict=False):
            out = spr_prox(out, p, M, self.alpha, t * self.lam)
        return out

    def indicators(self, x: FloatArray) -> list[FloatArray]:
        """The optimal indicator of every group: ``z_g = min(1, max(||x_g||_inf / M_g, c ||x_g||_2))``,
        ``c = sqrt(alpha / (1 - alpha))`` (the minimiser in the definition of SPR).
        """
        c = np.sqrt(self.alpha / (1.0 - self.alpha))
        out = []
        for p, M in zip(self.partitions, self.M, strict=False):
            sel = p >= 0
            G = int(p.max()) + 1 if sel.any() else 0
            a = np.zeros(G)
            np.maximum.at(a, p[sel], np.abs(x[sel]))
            n = group_norms(x, p, G)
            out.append(np.minimum(1.0, np.maximum(a / np.broadcast_to(M, (G,)), c * n)))
        return out
