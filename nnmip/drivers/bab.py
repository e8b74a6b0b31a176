"""Complete verification of ReLU networks by branch and bound on the input box, and counterexample search.

For a yes/no property (a union of failure cases, :class:`nnmip.ir.spec.Case`) over an input box, the search keeps
a frontier of sub-boxes.  Each round, for a batch of boxes at once:

1. **Bound.**  Linear (back-substitution) bounds of every hidden pre-activation and of every case row, computed
   for all boxes of the batch together (the relaxation of :func:`nnmip.passes.bounds.symbolic_bounds`).
2. **Drop** the boxes where every case has a row that cannot be hit (its upper bound is below 0).
3. **Look** for a counterexample at the box centre and at the corner that maximises the linear bound of the
   most promising row; a hit is re-run by the network's own forward pass before it is reported.
4. **Leaves.**  A box whose hidden units are all stable but for a few goes to the MILP
   (:func:`nnmip.drivers.verify.verify` on that box), which decides it exactly.
5. **Split** the remaining boxes in two along the input with the largest *smear* ``|a_i| (hi_i - lo_i)`` (``a``:
   the coefficients of the linear bound of the most promising row): the input that moves that bound most.

Math
----
For a chain ``z_k = W_k h_{k-1} + b_k``, ``h_k = max(0, z_k)``, ``h_{-1} = x`` and a row ``f = c . z_{L-1} + d``,
back-substitution keeps ``f <= A_k . h_k + e_k``: through an affine layer ``A_{k-1} = A_k W_k``,
``e += A_k b_k``; through a ReLU with proven pre-activation bounds ``[l, u]``, positive coefficients take the
chord ``h <= u (z - l) / (u - l)`` of an unstable unit and negative ones the lower line ``h >= s z``
(``s = 1`` when ``u >= -l``, else 0); stable units are exact.  At the input, ``max_{x in box} a . x + e =
a^+ . hi + a^- . lo + e``.  Every bound is widened by the safety margin ``1e-7 (1 + |b|)`` of
:mod:`nnmip.passes.bounds`, so a box is dropped only when its bound is negative after widening.  Splitting the
input box makes every relaxation exact in the limit (each unit becomes stable on a small enough box), so the
search is complete for boxes; time is what bounds it.

Counterexample search (:func:`pgd_search`): projected gradient ascent on the case score ``min_r -(G_r y + h_r)``
of the piecewise-linear network (the gradient is exact on each linear piece) from the box centre, corners and
random points, with steps proportional to the box width, then clipping back into the box.

Parallelism: with ``workers > 1`` the frontier is dealt to processes in small picklable tasks (the weights and
a stack of boxes), each worker searching its share for a time slice and handing back what it did not finish.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from nnmip.drivers.deadline import Deadline
from nnmip.ir.network import Network
from nnmip.ir.ops import Dense, Identity, Input, Op, ReLU, Smooth
from nnmip.ir.spec import Case
from nnmip.passes.bounds import SAFETY, UNIT_ROUNDOFF, row_slack
from nnmip.solution import STOP, stop_on_sigint

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

#: boxes bounded together in one batch
BATCH = 256
#: a box goes to the MILP once at most this many hidden units are unstable on it
LEAF_UNSTABLE = 6
#: a box no wider than this (relative to its coordinates' size) along every input is not split again
MIN_REL_WIDTH = 1e-9
#: input dimensions up to which ``bab="auto"`` splits the input box
AUTO_MAX_INPUTS = 16
#: floating-point operations one layer's back-substitution refinement may cost per batch (about a second of one
#: core); past it only the units unstable on the most boxes are refined, or none (the forward bounds stand)
REFINE_FLOPS = 2e9


def _widen(b: FloatArray, up: bool) -> FloatArray:
    return b + SAFETY * (1 + np.abs(b)) if up else b - SAFETY * (1 + np.abs(b))


# ------------------------------------------------------------------------------------------------------------
# the network as a chain of affine maps and ReLUs
# ------------------------------------------------------------------------------------------------------------
@dataclass
class Chain:
    """``z_k = W_k h_{k-1} + b_k`` (k = 0..L-1), ``h_k = max(0, z_k)`` between them; the output is ``z_{L-1}``.

    ``slack[k]`` is the rounding slack of ``z_k`` over the search's box (:meth:`with_slack`; zero until then):
    every bound of ``z_k`` is widened by it, so that it holds for the float64 forward pass too.
    """

    Ws: list[FloatArray]
    bs: list[FloatArray]
    slack: list[FloatArray] = field(default_factory=list)
    mag: list[FloatArray] = field(default_factory=list)     # ``P`` of nnmip.passes.bounds.rounding_slack per layer
    adds: list[int] = field(default_factory=list)          # and its ``N``
    #: the activation after each hidden layer when some is not a ReLU (:func:`search_chain`; the counterexample
    #: searches only); empty: every one is a ReLU
    acts: list[Op] = field(default_factory=list)

    def with_slack(self, lo: FloatArray, hi: FloatArray) -> Chain:
        """The chain with the rounding slack of every layer over the box ``[lo, hi]`` (the terms of
        :func:`nnmip.passes.bounds.rounding_slack`: ``4 N u P``; a sub-box has no larger slack).
        """
        assert not self.acts, "branch and bound takes ReLU chains only"
        P = np.maximum(np.abs(lo), np.abs(hi))
        n = 0
        slack, mag, adds = [], [], []
        for k, (W, b) in enumerate(zip(self.Ws, self.bs, strict=True)):
            P = np.abs(W) @ (P if k == 0 else np.maximum(P, 0.0)) + np.abs(b)
            n += W.shape[1] + 1
            slack.append(4.0 * n * UNIT_ROUNDOFF * P)
            mag.append(P)
            adds.append(n)
        return Chain(self.Ws, self.bs, slack, mag, adds)

    def row_slack(self, C: FloatArray, d: FloatArray) -> FloatArray:
        """The rounding slack of the rows ``C y + d`` of the output ``y`` (zeros without :meth:`with_slack`)."""
        if not self.slack:
            return np.zeros(C.shape[0])
        return row_slack(self.mag[-1], self.adds[-1], self.slack[-1], C, d)

    def layer_slack(self, k: int) -> FloatArray | float:
        """``slack[k]``, or 0 without :meth:`with_slack`."""
        return self.slack[k] if self.slack else 0.0

    @property
    def n_in(self) -> int:
        return int(self.Ws[0].shape[1])

    @property
    def hidden(self) -> int:
        return int(sum(W.shape[0] for W in self.Ws[:-1]))

    def forward(self, X: FloatArray) -> tuple[FloatArray, list[FloatArray]]:
        """Outputs of rows ``X`` (N, n) and the pre-activations of the hidden layers."""
        h = X
        pre: list[FloatArray] = []
        for k, (W, b) in enumerate(zip(self.Ws, self.bs, strict=True)):
            z = h @ W.T + b
            if k == len(self.Ws) - 1:
                return z, pre
            pre.append(z)
            h = self.acts[k].forward(z) if self.acts else np.maximum(z, 0.0)
        raise AssertionError("empty chain")


def relu_chain(net: Network) -> Chain | None:
    """The network as a :class:`Chain`, or None when it holds anything but fixed dense layers and ReLUs.

    Dense layers that follow each other without a ReLU between them are multiplied out (their forward pass may
    round differently; bounds are widened and every counterexample is re-run by the network itself); a ReLU of
    the input or of another ReLU, and a ReLU at the output, get an identity layer.
    """
    return _chain(net, smooth=False)


def search_chain(net: Network) -> Chain | None:
    """:func:`relu_chain`, also for chains whose activations include sigmoids and tanhs (for the counterexample
    searches, which need only the forward pass and its gradient).
    """
    return _chain(net, smooth=True)


def _chain(net: Network, smooth: bool) -> Chain | None:
    Ws: list[FloatArray] = []
    bs: list[FloatArray] = []
    acts: list[Op] = []
    open_affine = False     # the last entry of Ws has no ReLU after it yet
    prev: str | None = None
    for n, op in net.items():
        ins = net.inputs_of(n)
        if isinstance(op, Input):
            if prev is not None:
                return None
            prev = n
            continue
        if len(ins) != 1 or ins[0] != prev:
            return None
        prev = n
        if isinstance(op, Identity):
            continue
        if isinstance(op, Dense):
            if op.trainable:
                return None
            W, b = np.asarray(op.W, np.float64), np.asarray(op.b, np.float64)
            if open_affine:
                Ws[-1], bs[-1] = W @ Ws[-1], W @ bs[-1] + b
            else:
                Ws.append(W)
                bs.append(b)
            open_affine = True
        elif isinstance(op, ReLU) or (smooth and isinstance(op, Smooth)):
            if not open_affine:     # a ReLU of the input or of a ReLU: an identity layer before it
                n = net.dim(ins[0])
                Ws.append(np.eye(n))
                bs.append(np.zeros(n))
            acts.append(op)
            open_affine = False
        else:
            return None
    if not Ws or prev != net.output:
        return None
    if not open_affine:             # the output is a ReLU: an identity layer after it
        n = net.dim(net.output)
        Ws.append(np.eye(n))
        bs.append(np.zeros(n))
    return Chain(Ws, bs, acts=acts if any(isinstance(a, Smooth) for a in acts) else [])


# ------------------------------------------------------------------------------------------------------------
# cases as one matrix of rows
# ------------------------------------------------------------------------------------------------------------
@dataclass
class Rows:
    """Every row of every case: ``f_r(y) = C_r . y + d_r`` (the negated ``g``: a case is hit when every one of its
    rows has ``f_r >= 0``, ``> 0`` when strict).  ``case[r]`` tells which case row ``r`` belongs to.
    """

    C: FloatArray
    d: FloatArray
    strict: npt.NDArray[np.bool_]
    case: npt.NDArray[np.int64]
    n_cases: int

    @classmethod
    def of(cls, cases: list[Case]) -> Rows:
        C = np.vstack([-c.G for c in cases])
        d = np.concatenate([-c.h for c in cases])
        strict = np.concatenate([np.asarray(c.strict, bool) for c in cases])
        case = np.concatenate([np.full(c.G.shape[0], k) for k, c in enumerate(cases)])
        return cls(C, d, strict, case.astype(np.int64), len(cases))

    def scores(self, F: FloatArray) -> FloatArray:
        """Case scores ``min_r f_r`` per row of ``F`` (N, rows) -> (N, cases)."""
        out = np.full((F.shape[0], self.n_cases), np.inf)
        for k in range(self.n_cases):
            out[:, k] = F[:, self.case == k].min(axis=1)
        return out

    def hit(self, F: FloatArray) -> npt.NDArray[np.bool_]:
        """Which rows of ``F`` hit some case (every row of it ``>= 0``, ``> 0`` when strict)."""
        ok = np.where(self.strict, F > 0, F >= 0)
        out = np.zeros(F.shape[0], dtype=bool)
        for k in range(self.n_cases):
            out |= ok[:, self.case == k].all(axis=1)
        return out

    def safe(self, U: FloatArray) -> npt.NDArray[np.bool_]:
        """Boxes (rows of the upper bounds ``U`` (B, rows)) on which no case can be hit."""
        cannot = np.where(self.strict, U <= 0, U < 0)
        out = np.ones(U.shape[0], dtype=bool)
        for k in range(self.n_cases):
            out &= cannot[:, self.case == k].any(axis=1)
        return out


# ------------------------------------------------------------------------------------------------------------
# batched linear bounds
# ------------------------------------------------------------------------------------------------------------
def _relax(l: FloatArray, u: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """ReLU relaxation on ``[l, u]`` (B, n): lower slope ``sl``, upper slope ``su`` and upper intercept ``tu``."""
    act = l >= 0
    unst = (l < 0) & (u > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(unst, u / np.where(unst, u - l, 1.0), 0.0)
    su = np.where(act, 1.0, slope)
    tu = np.where(unst, -slope * l, 0.0)
    sl = np.where(act | (unst & (u >= -l)), 1.0, 0.0)
    return sl, su, tu


def _backsub(chain: Chain, k: int, A: FloatArray, e: FloatArray, relax: list[tuple[FloatArray, ...]],
             lo: FloatArray, hi: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Upper bounds of ``A . h_k + e`` (A: (B, m, n_k), e: (B, m); ``h_k`` the input of layer ``k + 1``, the input
    itself for ``k = -1``) over each box, and their input coefficients (B, m, n).
    """
    B, m = A.shape[0], A.shape[1]
    while k >= 0:
        sl, su, tu = relax[k]
        Ap, An = np.maximum(A, 0.0), np.minimum(A, 0.0)
        e = e + np.einsum("bmn,bn->bm", Ap, tu)
        A = Ap * su[:, None, :] + An * sl[:, None, :]
        W, b = chain.Ws[k], chain.bs[k]
        e = e + A @ b
        A = (A.reshape(B * m, -1) @ W).reshape(B, m, -1)     # one matrix product for the whole batch
        k -= 1
    up = np.einsum("bmn,bn->bm", np.maximum(A, 0.0), hi) + np.einsum("bmn,bn->bm", np.minimum(A, 0.0), lo) + e
    return up, A


def _concrete(A: FloatArray, c: FloatArray, lo: FloatArray, hi: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Widened max and min of ``A x + c`` (A: (B, m, n)) over each box."""
    Ap, An = np.maximum(A, 0.0), np.minimum(A, 0.0)
    up = np.einsum("bin,bn->bi", Ap, hi) + np.einsum("bin,bn->bi", An, lo) + c
    down = np.einsum("bin,bn->bi", Ap, lo) + np.einsum("bin,bn->bi", An, hi) + c
    return _widen(up, True), _widen(down, False)


def _refine_units(chain: Chain, k: int, l_: FloatArray, u: FloatArray, deadline: Any) -> npt.NDArray[np.int64]:
    """The units of layer ``k`` whose bounds back-substitution refines: those unstable on some box, as many as
    :data:`REFINE_FLOPS` pays for (those unstable on the most boxes first); none once the deadline has passed.
    """
    if deadline is not None and deadline.expired():
        return np.empty(0, dtype=np.int64)
    open_ = (l_ < 0) & (u > 0)
    idx = np.flatnonzero(open_.any(axis=0))
    # one product (B * 2m, n_j) @ (n_j, n_{j-1}) per layer crossed on the way back to the input
    per_unit = 2 * 2 * l_.shape[0] * sum(W.shape[0] * W.shape[1] for W in chain.Ws[:k])
    cap = int(REFINE_FLOPS // max(per_unit, 1))
    if idx.size > cap:
        idx = idx[np.argsort(-open_[:, idx].sum(axis=0), kind="stable")[:cap]]
        idx.sort()
    return idx


def box_bounds(chain: Chain, lo: FloatArray, hi: FloatArray, rows: Rows, refine: bool = True,
               deadline: Any = None
               ) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64], list[tuple[FloatArray, ...]]]:
    """Upper bounds ``U`` (B, rows) of every row over each box (B, n), their input coefficients (B, rows, n), and
    the number of unstable hidden units per box, and the ReLU relaxations (``sl, su, tu`` per hidden layer).

    Hidden units are bounded by forward symbolic intervals (each unit between two linear functions of the input,
    ``AL x + cL <= z <= AU x + cU``, pushed through the layers with the ReLU relaxation applied to the upper
    and lower function), which costs a few products with the (small) input dimension per layer; the rows are
    then bounded by back-substitution through those relaxations.  Units still unstable are refined by
    back-substitution as far as :data:`REFINE_FLOPS` per layer allows (on wide, deep layers that would cost
    minutes per batch) and the ``deadline`` (a :class:`nnmip.drivers.deadline.Deadline`) has not passed: the
    forward bounds are sound on their own, so refinement only tightens.
    """
    B, n0 = lo.shape
    relax: list[tuple[FloatArray, ...]] = []
    unstable = np.zeros(B, dtype=np.int64)
    AL = AU = np.broadcast_to(np.eye(n0), (B, n0, n0))
    cL = cU = np.zeros((B, n0))
    for k in range(len(chain.Ws) - 1):
        W, b = chain.Ws[k], chain.bs[k]
        Wp, Wn = np.maximum(W, 0.0), np.minimum(W, 0.0)
        zAU = Wp @ AU + Wn @ AL
        zcU = cU @ Wp.T + cL @ Wn.T + b
        zAL = Wp @ AL + Wn @ AU
        zcL = cL @ Wp.T + cU @ Wn.T + b
        uU, lU = _concrete(zAU, zcU, lo, hi)
        uL, lL = _concrete(zAL, zcL, lo, hi)
        sk = chain.layer_slack(k)
        uU, lU, uL, lL = uU + sk, lU - sk, uL + sk, lL - sk
        l_, u = lL, uU
        if refine and k > 0:
            idx = _refine_units(chain, k, l_, u, deadline)
            if idx.size:    # back-substitution for the units still unstable on some box
                Wi, bi = W[idx], b[idx]
                m = idx.size
                A = np.broadcast_to(np.vstack([Wi, -Wi]), (B, 2 * m, W.shape[1])).copy()
                e = np.broadcast_to(np.concatenate([bi, -bi]), (B, 2 * m)).copy()
                up, _ = _backsub(chain, k - 1, A, e, relax, lo, hi)
                l_, u = l_.copy(), u.copy()
                s_idx = chain.slack[k][idx] if chain.slack else 0.0
                l_[:, idx] = np.maximum(l_[:, idx], _widen(-up[:, m:], False) - s_idx)
                u[:, idx] = np.minimum(u[:, idx], _widen(up[:, :m], True) + s_idx)
        unstable += ((l_ < 0) & (u > 0)).sum(axis=1)
        relax.append(_relax(l_, u))
        # h <= relu(zU) <= the chord of relu over the range of zU; h >= relu(zL) >= s zL likewise
        slU, suU, tuU = _relax(np.maximum(lU, l_), np.minimum(uU, u))
        slL, _, _ = _relax(np.maximum(lL, l_), np.minimum(uL, u))
        AU, cU = zAU * suU[:, :, None], zcU * suU + tuU
        AL, cL = zAL * slL[:, :, None], zcL * slL
    L = len(chain.Ws) - 1
    C = rows.C @ chain.Ws[L]
    d = rows.d + rows.C @ chain.bs[L]
    A0 = np.broadcast_to(C, (B, *C.shape)).copy()
    U, A = _backsub(chain, L - 1, A0, np.broadcast_to(d, (B, d.size)).copy(), relax, lo, hi)
    return _widen(U, True) + chain.row_slack(rows.C, rows.d), A, unstable, relax


def smear(chain: Chain, relax: list[tuple[FloatArray, ...]], rows: Rows, best: npt.NDArray[np.int64],
          lo: FloatArray, hi: FloatArray) -> FloatArray:
    """``max |d f / d x_i| (hi_i - lo_i)`` per box and input for row ``best`` of each box: the interval bound of
    the gradient (an unstable unit's derivative anywhere in [0, 1]) times the width.
    """
    L = len(chain.Ws) - 1
    Gl = Gu = rows.C[best] @ chain.Ws[L]                      # (B, n_{L-1})
    for k in range(L - 1, -1, -1):
        sl, su, _ = relax[k]
        act = (sl == 1.0) & (su == 1.0)
        unst = (su > 0) & ~act
        Gl = np.where(act, Gl, np.where(unst, np.minimum(Gl, 0.0), 0.0))
        Gu = np.where(act, Gu, np.where(unst, np.maximum(Gu, 0.0), 0.0))
        Wp, Wn = np.maximum(chain.Ws[k], 0.0), np.minimum(chain.Ws[k], 0.0)
        Gl, Gu = Gl @ Wp + Gu @ Wn, Gu @ Wp + Gl @ Wn
    return np.maximum(np.abs(Gl), np.abs(Gu)) * (hi - lo)


# ------------------------------------------------------------------------------------------------------------
# counterexample search
# ------------------------------------------------------------------------------------------------------------
def _case_grad(chain: Chain, pre: list[FloatArray], F: FloatArray, rows: Rows, k: int) -> FloatArray:
    """Gradient of ``sum_r min(f_r, 0)`` over the rows of case ``k`` at each point, from its forward pass
    (``pre`` its pre-activations, ``F`` its row values; exact on the linear piece of each point): it pushes up
    every row that still keeps the point out of the case.
    """
    idx = np.flatnonzero(rows.case == k)
    low = (F[:, idx] <= 1e-9).astype(np.float64)             # (N, rows of k)
    return _backprop(chain, pre, low @ rows.C[idx])          # d objective / d y, (N, n_out), back to the input


def _backprop(chain: Chain, pre: list[FloatArray], G: FloatArray) -> FloatArray:
    """The input gradient of ``G . y`` at each point, ``G`` (N, n_out) and ``pre`` its forward pass's
    pre-activations: exact on the linear piece of each point.
    """
    for j in range(len(chain.Ws) - 1, -1, -1):
        G = G @ chain.Ws[j]
        if j > 0:
            G = chain.acts[j - 1].backward(pre[j - 1], G) if chain.acts else G * (pre[j - 1] > 0)
    return G


def _sign_step(X: FloatArray, G: FloatArray, t: int, steps: int, lo: FloatArray, hi: FloatArray) -> FloatArray:
    """Step ``t`` of ``steps`` of projected sign-gradient ascent: a quarter of the box's width at first, decaying
    geometrically to 0.002 of that.
    """
    step = 0.25 * 0.002 ** (t / max(steps - 1, 1))
    return np.clip(X + step * (hi - lo) * np.sign(G), lo, hi)


def _starts(lo: FloatArray, hi: FloatArray, restarts: int, rng: np.random.Generator) -> FloatArray:
    """The box centre and ``restarts - 1`` (at least one) uniform points of the box, one per row."""
    return np.vstack([0.5 * (lo + hi)[None, :], lo + rng.random((max(restarts - 1, 1), lo.size)) * (hi - lo)])


def pgd_search(chain: Chain, lo: FloatArray, hi: FloatArray, rows: Rows, *, restarts: int = 16, steps: int = 40,
               seed: int = 0, deadline: Any = None, start: FloatArray | None = None) -> FloatArray | None:
    """Projected gradient ascent of every case score in the box ``[lo, hi]``; a point the chain says hits a case
    (the caller re-runs it through the network), or None.  BLAS runs single-threaded: the products are small,
    and threads only contend on a busy machine.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _pgd_search(chain, lo, hi, rows, restarts=restarts, steps=steps, seed=seed, deadline=deadline,
                           start=start)


def _pgd_search(chain: Chain, lo: FloatArray, hi: FloatArray, rows: Rows, *, restarts: int, steps: int, seed: int,
                deadline: Any, start: FloatArray | None) -> FloatArray | None:
    rng = np.random.default_rng(seed)
    X0 = _starts(lo, hi, restarts, rng)
    if start is not None:
        X0 = np.vstack([np.clip(np.atleast_2d(start), lo, hi), X0])
    for k in range(rows.n_cases):
        X = X0.copy()
        for t in range(steps):
            if deadline is not None and deadline.expired():
                return None
            Y, pre = chain.forward(X)
            F = Y @ rows.C.T + rows.d
            hit = rows.hit(F)
            if hit.any():
                return X[int(np.argmax(hit))]
            X = _sign_step(X, _case_grad(chain, pre, F, rows, k), t, steps, lo, hi)
        Y, _ = chain.forward(X)
        hit = rows.hit(Y @ rows.C.T + rows.d)
        if hit.any():
            return X[int(np.argmax(hit))]
    return None


def pgd_ascent(chain: Chain, lo: FloatArray, hi: FloatArray, rows: Rows, k: int, *, restarts: int = 128,
               steps: int = 60, seed: int = 0, deadline: Any = None) -> tuple[FloatArray, float] | None:
    """Projected (sign) gradient ascent of the score of case ``k`` (``min_r f_r`` over its rows) in the box
    ``[lo, hi]`` from the centre and ``restarts - 1`` random points: the best point met and its chain score, or
    None when the deadline passed before one step.  For optimisation questions: the point is a lower bound (the
    caller re-runs it through the network) and a start for the MILP.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        X = _starts(lo, hi, restarts, np.random.default_rng(seed))
        idx = np.flatnonzero(rows.case == k)
        C, d = rows.C[idx], rows.d[idx]
        best: tuple[FloatArray, float] | None = None
        for t in range(steps + 1):
            if deadline is not None and deadline.expired():
                break
            Y, pre = chain.forward(X)
            F = Y @ C.T + d
            s = F.min(axis=1)
            i = int(np.argmax(s))
            if best is None or s[i] > best[1]:
                best = (X[i].copy(), float(s[i]))
            if t == steps:
                break
            G = _backprop(chain, pre, C[np.argmin(F, axis=1)])   # d score / d x on each point's linear piece
            X = _sign_step(X, G, t, steps, lo, hi)
        return best


# ------------------------------------------------------------------------------------------------------------
# the search
# ------------------------------------------------------------------------------------------------------------
@dataclass
class Task:
    """A share of the frontier for one worker: boxes ``lo``/``hi`` (B, n) and their depths."""

    chain: Chain
    rows: Rows
    lo: FloatArray
    hi: FloatArray
    depth: npt.NDArray[np.int64]
    bound: FloatArray                    # a proven upper bound of the largest case score on each box
    seconds: float
    leaf_unstable: int = LEAF_UNSTABLE
    check: bool = True                   # look for counterexamples at box centres and corners


@dataclass
class TaskResult:
    """What a worker hands back: unfinished boxes, leaves for the MILP, a candidate point and counts."""

    lo: FloatArray                       # boxes not finished
    hi: FloatArray
    depth: npt.NDArray[np.int64]
    bound: FloatArray
    leaf_lo: FloatArray                  # boxes for the MILP
    leaf_hi: FloatArray
    leaf_bound: FloatArray
    candidate: FloatArray | None = None  # a point the chain says hits a case
    boxes: int = 0                       # boxes bounded
    safe: int = 0                        # boxes dropped as settled
    worst: float = -np.inf               # largest certified bound of a dropped box (max over cases)
    max_depth: int = 0


def _worker_start(stop: Any) -> None:
    """The start of a search worker process: SIGINT (Ctrl-C in a terminal reaches the whole process group) and
    the parent's ``stop`` event (set on the parent's stop request: a notebook's interrupt, ``STOP.request()``)
    are stop requests of this process, which its slice checks between batches.
    """
    stop_on_sigint()

    def forward() -> None:
        stop.wait()
        STOP.request()

    threading.Thread(target=forward, name="nnmip-stop", daemon=True).start()


@contextlib.contextmanager
def worker_pool(workers: int) -> Iterator[Executor | None]:
    """``workers`` processes for the slices of a search (None for one: the slices run here), stopped with the
    parent: its stop request sets an event each worker watches (:func:`_worker_start`).
    """
    if workers <= 1:
        yield None
        return
    import multiprocessing

    stop = multiprocessing.Event()
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_start, initargs=(stop,))
    try:
        with STOP.watch(stop.set):
            yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_task(t: Task) -> TaskResult:
    """Search the task's boxes depth first for ``t.seconds``; hand back what is left (picklable both ways).

    BLAS runs single-threaded here: the products are small, and threads only contend (with each other and with
    the other worker) on a busy machine.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _run_task(t)


def _run_task(t: Task) -> TaskResult:
    t_end = time.monotonic() + t.seconds
    slice_end = Deadline(end=t_end)
    n = t.lo.shape[1]
    stack_lo, stack_hi, stack_d, stack_b = [t.lo], [t.hi], [t.depth], [t.bound]
    res = TaskResult(np.empty((0, n)), np.empty((0, n)), np.empty(0, np.int64), np.empty(0), np.empty((0, n)),
                     np.empty((0, n)), np.empty(0))
    leaves_lo: list[FloatArray] = []
    leaves_hi: list[FloatArray] = []
    leaves_b: list[FloatArray] = []
    rows = t.rows
    while stack_lo and time.monotonic() < t_end and not STOP.is_set():
        lo, hi, dep = np.vstack(stack_lo), np.vstack(stack_hi), np.concatenate(stack_d)
        bnd = np.concatenate(stack_b)
        lo, rest_lo = lo[-BATCH:], lo[:-BATCH]
        hi, rest_hi = hi[-BATCH:], hi[:-BATCH]
        dep, rest_d = dep[-BATCH:], dep[:-BATCH]
        bnd, rest_b = bnd[-BATCH:], bnd[:-BATCH]
        stack_lo, stack_hi, stack_d, stack_b = ([rest_lo], [rest_hi], [rest_d], [rest_b]) if rest_lo.shape[0] \
            else ([], [], [], [])
        res.boxes += lo.shape[0]
        U, A, unstable, relax = box_bounds(t.chain, lo, hi, rows, deadline=slice_end)
        bnd = np.minimum(bnd, rows.scores(U).max(axis=1))   # a box's bound also holds on its halves
        safe = rows.safe(U)
        if safe.any():
            # per box: max over cases of the smallest row bound (the certified bound of the box)
            s = rows.scores(U[safe])
            res.worst = max(res.worst, float(s.max()))
            res.safe += int(safe.sum())
        keep = ~safe
        if not keep.any():
            continue
        lo, hi, dep, U, A, bnd = lo[keep], hi[keep], dep[keep], U[keep], A[keep], bnd[keep]
        unstable = unstable[keep]
        relax = [tuple(v[keep] for v in r) for r in relax]
        res.max_depth = max(res.max_depth, int(dep.max()))
        # candidates: centre, and the corner maximising the best row of each open case
        best = _best_rows(rows, U)
        Ab = A[np.arange(A.shape[0]), best]                    # (B, n)
        if t.check:
            cands = np.vstack([0.5 * (lo + hi), np.where(Ab > 0, hi, lo)])
            Y, _ = t.chain.forward(cands)
            hit = rows.hit(Y @ rows.C.T + rows.d)
            if hit.any():
                res.candidate = cands[int(np.argmax(hit))]
                stack_lo.append(lo)       # the batch goes back unsplit: the caller decides
                stack_hi.append(hi)
                stack_d.append(dep)
                stack_b.append(bnd)
                break
        leaf = unstable <= t.leaf_unstable
        dims = np.zeros(lo.shape[0], dtype=np.int64)
        if (~leaf).any():
            # boxes too narrow to split further along the input they would be split on (a case score of exactly
            # 0, or units whose kink the box straddles, can keep a box open forever) go to the leaf test as they are
            sub = np.flatnonzero(~leaf)
            j = dims[sub] = _split_dims(t.chain, relax, rows, best, Ab, lo, hi, sub)
            w = hi[sub, j] - lo[sub, j]
            leaf[sub[w <= MIN_REL_WIDTH * (1.0 + np.abs(lo[sub, j]) + np.abs(hi[sub, j]))]] = True
        if leaf.any():
            leaves_lo.append(lo[leaf])
            leaves_hi.append(hi[leaf])
            leaves_b.append(bnd[leaf])
        split = ~leaf
        if not split.any():
            continue
        j = dims[split]
        lo, hi, dep, bnd, best = lo[split], hi[split], dep[split], bnd[split], best[split]
        r = np.arange(lo.shape[0])
        mid = 0.5 * (lo[r, j] + hi[r, j])
        hi1, lo2 = hi.copy(), lo.copy()
        hi1[r, j] = mid
        lo2[r, j] = mid
        stack_lo.append(np.vstack([lo, lo2]))
        stack_hi.append(np.vstack([hi1, hi]))
        stack_d.append(np.concatenate([dep + 1, dep + 1]))
        stack_b.append(np.concatenate([bnd, bnd]))
    if stack_lo:
        res.lo, res.hi, res.depth = np.vstack(stack_lo), np.vstack(stack_hi), np.concatenate(stack_d)
        res.bound = np.concatenate(stack_b)
    if leaves_lo:
        res.leaf_lo, res.leaf_hi = np.vstack(leaves_lo), np.vstack(leaves_hi)
        res.leaf_bound = np.concatenate(leaves_b)
    return res


def _split_dims(chain: Chain, relax: list[tuple[FloatArray, ...]], rows: Rows, best: npt.NDArray[np.int64],
                Ab: FloatArray, lo: FloatArray, hi: FloatArray, idx: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The input each box ``idx`` is split on: the largest smear, two views of where the bound is loose (the
    linear bound's own coefficients, and the interval bound of the gradient, large where unstable units leave
    the slope open), each normalised per box.
    """
    lo, hi, best = lo[idx], hi[idx], best[idx]
    s1 = np.abs(Ab[idx]) * (hi - lo)
    s2 = smear(chain, [tuple(v[idx] for v in r) for r in relax], rows, best, lo, hi)
    sm = s1 / np.maximum(s1.max(axis=1, keepdims=True), 1e-300) \
        + s2 / np.maximum(s2.max(axis=1, keepdims=True), 1e-300)
    sm[(hi - lo) <= 0] = -1.0
    return np.argmax(sm, axis=1)


def _best_rows(rows: Rows, U: FloatArray) -> npt.NDArray[np.int64]:
    """Per box, the row to split on: of the open case with the highest score bound, its smallest-bound row."""
    best = np.zeros(U.shape[0], dtype=np.int64)
    top = np.full(U.shape[0], -np.inf)
    for k in range(rows.n_cases):
        idx = np.flatnonzero(rows.case == k)
        sub = U[:, idx]
        arg = np.argmin(sub, axis=1)
        val = sub[np.arange(U.shape[0]), arg]
        better = val > top
        best[better], top[better] = idx[arg[better]], val[better]
    return best


@dataclass
class BabResult:
    """How the search ended: ``certified``, ``counterexample`` (``x``, re-run by the caller) or ``unknown``."""

    result: str
    x: FloatArray | None = None
    bound: float = np.inf            # proven upper bound of the largest case score (when certified)
    boxes: int = 0
    leaves: int = 0
    max_depth: int = 0
    open_boxes: int = 0
    seconds: float = 0.0
    timed_out: bool = False          # unknown because the time ran out (else: boxes no test could settle)
    units: int = 0                   # ReLU units of the network, and those unstable under the root's bounds
    unstable: int = 0                # (0 and 0: the caller counts them)
    notes: list[str] = field(default_factory=list)


def branch_and_bound(chain: Chain, lo: FloatArray, hi: FloatArray, cases: list[Case], *, deadline: Any,
                     confirm: Any, leaf: Any = None, workers: int = 1, leaf_unstable: int = LEAF_UNSTABLE,
                     slice_seconds: float = 1.0, seed: int = 0) -> BabResult:
    """Decide whether some case can be hit in the box ``[lo, hi]``.

    ``confirm(x) -> bool`` re-runs a candidate through the network and the property (only a confirmed point is
    a counterexample); ``leaf(lo, hi, deadline) -> (str, x | None, bound)`` decides one small box exactly (the
    MILP) and answers ``certified``, ``counterexample`` or ``unknown``.  ``deadline`` is a
    :class:`nnmip.drivers.deadline.Deadline`.  ``bound`` of the result is a proven upper bound of the largest
    case score over the box: negative when certified, the largest bound of the open boxes otherwise.
    """
    t0 = time.monotonic()
    rows = Rows.of(cases)
    chain = chain.with_slack(lo, hi)        # every bound below also holds for the float64 forward pass
    out = BabResult("unknown")
    U, _, _, _ = box_bounds(chain, lo[None, :], hi[None, :], rows, deadline=deadline)
    out.bound = float(rows.scores(U).max())
    x = pgd_search(chain, lo, hi, rows, seed=seed, deadline=deadline)
    if x is not None and confirm(x):
        out.result, out.x = "counterexample", x
        out.notes.append("found by projected gradient search")
        return _done(out, t0)
    F_lo, F_hi = lo[None, :].copy(), hi[None, :].copy()
    F_d, F_b = np.zeros(1, np.int64), np.full(1, out.bound)
    worst = -np.inf
    stuck: list[float] = []          # bounds of the leaves the MILP did not settle in time
    check = True
    pgd_round = 0
    with worker_pool(workers) as pool:      # stopped with this process (SIGINT, a stop request)
        while F_lo.shape[0]:
            left = deadline.left()
            if left is not None and left <= 0.05:
                out.timed_out = True
                break
            sl = slice_seconds if left is None else max(min(slice_seconds, left - 0.05), 0.01)
            parts = max(1, min(workers, F_lo.shape[0]))
            chunks = np.array_split(np.arange(F_lo.shape[0]), parts)
            tasks = [Task(chain, rows, F_lo[c], F_hi[c], F_d[c], F_b[c], sl, leaf_unstable, check=check)
                     for c in chunks]
            results = list(pool.map(run_task, tasks)) if pool is not None else [run_task(tasks[0])]
            check = True
            nl, nh, nd, nb = [], [], [], []
            for r in results:
                out.boxes += r.boxes
                out.max_depth = max(out.max_depth, r.max_depth)
                worst = max(worst, r.worst)
                nl.append(r.lo)
                nh.append(r.hi)
                nd.append(r.depth)
                nb.append(r.bound)
                if r.candidate is not None:
                    if confirm(r.candidate):
                        out.result, out.x = "counterexample", r.candidate
                        out.notes.append(f"found at a box centre or corner after {out.boxes} boxes")
                        return _done(out, t0)
                    check = False      # the network disagrees with the chain (a rounding tie): split on
                for i in range(r.leaf_lo.shape[0]):
                    if leaf is None or deadline.expired():
                        out.timed_out |= leaf is not None
                        stuck.append(float(r.leaf_bound[i]))
                        continue
                    out.leaves += 1
                    verdict, xl, b = leaf(r.leaf_lo[i], r.leaf_hi[i], deadline)
                    if verdict == "counterexample" and xl is not None and confirm(xl):
                        out.result, out.x = "counterexample", xl
                        out.notes.append(f"found by the MILP of a leaf box after {out.boxes} boxes")
                        return _done(out, t0)
                    if verdict == "certified":
                        worst = max(worst, min(b, float(r.leaf_bound[i])))
                    else:       # the MILP's bound, where it has one, may be tighter than the box's
                        stuck.append(min(b, float(r.leaf_bound[i])) if np.isfinite(b) else float(r.leaf_bound[i]))
            F_lo, F_hi, F_d, F_b = np.vstack(nl), np.vstack(nh), np.concatenate(nd), np.concatenate(nb)
            if F_lo.shape[0] and pgd_round < 16:
                # local search from the most promising open box
                pgd_round += 1
                j = int(np.argmax(F_b))
                x = pgd_search(chain, F_lo[j], F_hi[j], rows, restarts=8, steps=30, seed=seed + pgd_round,
                               deadline=deadline)
                if x is not None and confirm(x):
                    out.result, out.x = "counterexample", x
                    out.notes.append("found by projected gradient search in an open box")
                    return _done(out, t0)
    out.open_boxes = int(F_lo.shape[0]) + len(stuck)
    if out.open_boxes == 0:
        out.result, out.bound = "certified", worst
    else:
        out.bound = max([worst, *stuck, *F_b.tolist()])
        out.timed_out |= deadline.expired()
        if out.timed_out:
            out.notes.append(f"{out.open_boxes} boxes still open when "
                             + ("the search was stopped (Ctrl-C)" if STOP.is_set() else "the time ran out"))
        else:
            out.notes.append(f"{out.open_boxes} boxes left undecided: "
                             + ("their MILP neither certified them nor found a counterexample (a strict case "
                                "whose largest score is 0 exactly stays undecided within the safety margin)"
                                if leaf is not None else "they are too small to split and no MILP decides them"))
    return _done(out, t0)


def _done(out: BabResult, t0: float) -> BabResult:
    out.seconds = time.monotonic() - t0
    log.info("branch and bound: %s after %d boxes (%d leaves, depth %d) in %.2fs", out.result, out.boxes,
             out.leaves, out.max_depth, out.seconds)
    return out
