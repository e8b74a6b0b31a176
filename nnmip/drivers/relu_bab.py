"""Complete verification of ReLU networks by branch and bound on the ReLU phases (for high-dimensional inputs).

Splitting the input box is hopeless with hundreds of inputs (MNIST: 784); what stays small is the number of
*unstable* hidden units, whose phase the input does not fix.  A **sub-problem** is a set of split decisions: a
unit fixed active (``z >= 0``, so ``h = z``) or inactive (``z <= 0``, so ``h = 0``); the input box is the whole
region throughout.  Each round, for a batch of sub-problems at once:

1. **Bound.**  The pre-activation bounds of the hidden layers come from the root (back-substitution, CROWN,
   Zhang et al., NeurIPS 2018, with optimised slopes), clamped by each sub-problem's splits; with
   ``recompute`` they are recomputed under the splits by back-substitution for the units still unstable in
   some sub-problem of the batch, intersected with the inherited bounds.  Every case row is bounded with
   *optimised* relaxations: the lower slopes of the unstable units (alpha-CROWN, Xu et al., ICLR 2021) and
   Lagrange multipliers of the split constraints (beta-CROWN, Wang et al., NeurIPS 2021), both by projected
   gradient (Adam) with analytic gradients.
2. **Drop** the sub-problems where every case has a row that cannot be hit, and those whose splits contradict
   their bounds (a unit with ``l > u``: no input satisfies them).
3. **Look** for a counterexample at the input vertex that maximises each open row's linear bound; a hit is
   re-run by the network's own forward pass before it is reported, and projected gradient search
   (:func:`nnmip.drivers.bab.pgd_search`) restarts from the most promising vertices now and then.
4. **Branch** every open sub-problem in two on the unstable unit with the highest BaBSR score (Bunel et al.,
   "Branch and bound for piecewise linear neural network verification", JMLR 2020): the part of the bound the
   unit's relaxation intercept contributes, ``[P_j]_+ (-u_j l_j / (u_j - l_j))`` summed over the open rows
   (``P_j``: the bound's coefficient of ``h_j``), ties broken by ``|P_j| (u_j - l_j)``.
5. **Leaves.**  A sub-problem with every phase fixed is affine: one LP per open case (:func:`_lp_leaf`) yields
   a candidate or the multipliers of a certificate that the back-substitution computes itself.

Math
----
For a chain ``z_k = W_k h_{k-1} + b_k``, ``h_k = max(0, z_k)``, ``h_{-1} = x`` in the box ``[lo, hi]`` and a row
``f = c . z_K + d``, back-substitution keeps ``f <= Lam_k . z_k + e``: ``P_{k-1} = Lam_k W_k`` and
``e += Lam_k . b_k`` through the affine map, then through the ReLU of an unstable unit (``l < 0 < u``)
``Lam_{k-1,j} = [P_j]_+ u/(u - l) + [P_j]_- alpha_j + beta_j s_j`` and ``e += [P_j]_+ (-u l / (u - l))``
(the chord above, the line ``h >= alpha z`` below: sound for every ``alpha`` in [0, 1]); stable units and split
units are exact (``h = z`` or ``h = 0``), and a split unit ``j`` with sign ``s_j`` (``+1``: ``z_j >= 0``,
``-1``: ``z_j <= 0``) adds ``beta_j s_j z_j >= 0`` (``beta_j >= 0``) to the objective, which is sound because
every input of the sub-problem satisfies ``s_j z_j >= 0``.  At the input ``max_x P x + e =
[P]_+ . hi + [P]_- . lo + e``.  With ``g_x = [P > 0] hi + [P <= 0] lo`` the gradient flows back as
``gLam_k = gP_k W_k^T + b_k``, ``d/d alpha_j = gLam_j [P_j]_-``, ``d/d beta_j = gLam_j s_j``,
``gP_j = gLam_j (su_j [P_j > 0] + alpha_j [P_j <= 0]) + [P_j > 0] tu_j``; each step is projected back to
``alpha in [0, 1]``, ``beta >= 0``, and the smallest bound met over the steps is kept (each one is a valid
bound).  Every concrete bound is widened by the safety margin ``1e-7 (1 + |b|)`` of
:mod:`nnmip.passes.bounds`.  Once every unstable unit is split the network is affine on the sub-problem and the
LP of the leaf decides it (with the LP's optimal multipliers the bound above equals the LP optimum, up to
rounding), so the search is complete; time is what bounds it.

Parallelism: with ``workers > 1`` the frontier is dealt to processes for a time slice each; a worker searches
its share depth first and hands back what it did not finish.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from nnmip.drivers.bab import BabResult, Chain, Rows, pgd_search, worker_pool
from nnmip.ir.spec import Case
from nnmip.passes.bounds import SAFETY
from nnmip.solution import STOP

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: sub-problems bounded together in one batch
BATCH = 64
#: projected-gradient steps of the slopes and multipliers per batch (at the root: ``ROOT_ITERS``)
ITERS = 12
ROOT_ITERS = 40
#: the back-substitution of a layer's unstable units runs in chunks whose one pass is about this many
#: multiply-adds (about a second on one core), so that a deadline is noticed between them
CHUNK_FLOPS = 2e9
#: Adam step sizes of the lower slopes and the split multipliers
LR_ALPHA = 0.25
LR_BETA = 0.05


def _up(b: FloatArray) -> FloatArray:
    return b + SAFETY * (1 + np.abs(b))


_up_ = _up


def _down(b: FloatArray) -> FloatArray:
    return b - SAFETY * (1 + np.abs(b))


# ------------------------------------------------------------------------------------------------------------
# relaxations and optimised back-substitution
# ------------------------------------------------------------------------------------------------------------
@dataclass
class Relax:
    """The ReLU relaxation of one hidden layer for a batch (B, n): upper slope and intercept, the default lower
    slope, the unstable units and the split signs (``+1`` active, ``-1`` inactive, 0 free).
    """

    su: FloatArray
    tu: FloatArray
    sl: FloatArray
    unstable: BoolArray
    sign: FloatArray

    @classmethod
    def of(cls, l: FloatArray, u: FloatArray, split: npt.NDArray[np.int8]) -> Relax:
        act = l >= 0
        unst = (l < 0) & (u > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where(unst, u / np.where(unst, u - l, 1.0), 0.0)
            tu = np.where(unst, -slope * l, 0.0)
        su = np.where(act, 1.0, slope)
        sl = np.where(act | (unst & (u >= -l)), 1.0, 0.0)
        return cls(su, tu, sl, unst, split.astype(np.float64))


def _matmul(A: FloatArray, W: FloatArray) -> FloatArray:
    """``A @ W`` for a stack A (B, m, n) as one matrix product."""
    B, m = A.shape[0], A.shape[1]
    return (A.reshape(B * m, -1) @ W).reshape(B, m, -1)


def _bound(chain: Chain, K: int, C: FloatArray, d: FloatArray, rel: list[Relax], alpha: list[FloatArray] | None,
           beta: list[FloatArray] | None, lo: FloatArray, hi: FloatArray, grad: bool
           ) -> tuple[FloatArray, FloatArray, list[FloatArray], list[FloatArray] | None, list[FloatArray] | None]:
    """Upper bounds (B, m) of ``C_b . z_K + d`` (C: (B, m, n_K)) under the relaxations of the layers below K.

    ``alpha[k]`` (B, m, n_k) are lower slopes (the default ones when None), ``beta[k]`` (B, m, n_k) the split
    multipliers (none when None).  Returns the bounds (not widened), the input coefficients ``P`` (B, m, n), the
    coefficients ``P_k`` of every hidden layer and, with ``grad``, the gradients in alpha and beta.
    """
    _B, _m = C.shape[0], C.shape[1]
    Lam = C
    e = d.copy()
    Ps: list[FloatArray] = [np.empty(0)] * K
    for k in range(K, -1, -1):
        e = e + Lam @ chain.bs[k]
        P = _matmul(Lam, chain.Ws[k])
        if k == 0:
            break
        j = k - 1
        r = rel[j]
        Ps[j] = P
        Pp, Pn = np.maximum(P, 0.0), np.minimum(P, 0.0)
        e = e + np.einsum("bmn,bn->bm", Pp, r.tu)
        sl = r.sl[:, None, :] if alpha is None else alpha[j]
        Lam = Pp * r.su[:, None, :] + Pn * sl
        if beta is not None:
            Lam = Lam + beta[j] * r.sign[:, None, :]
    U = (np.maximum(P, 0.0) * hi + np.minimum(P, 0.0) * lo).sum(axis=2) + e
    if not grad:
        return U, P, Ps, None, None
    g_alpha: list[FloatArray] = [np.empty(0)] * K
    g_beta: list[FloatArray] = [np.empty(0)] * K
    gP = np.where(P > 0, hi, lo)
    for j in range(K):
        gLam = _matmul(gP, chain.Ws[j].T) + chain.bs[j]
        r = rel[j]
        Pj = Ps[j]
        sl = r.sl[:, None, :] if alpha is None else alpha[j]
        g_alpha[j] = np.where(r.unstable[:, None, :], gLam * np.minimum(Pj, 0.0), 0.0)
        g_beta[j] = gLam * r.sign[:, None, :]
        pos = Pj > 0
        gP = gLam * np.where(pos, r.su[:, None, :], sl) + np.where(pos, r.tu[:, None, :], 0.0)
    return U, P, Ps, g_alpha, g_beta


@dataclass
class _Adam:
    """Adam steps (Kingma & Ba, 2015) on a list of arrays, descending."""

    lr: float
    m: list[FloatArray] = field(default_factory=list)
    v: list[FloatArray] = field(default_factory=list)
    t: int = 0

    def step(self, xs: list[FloatArray], gs: list[FloatArray]) -> None:
        if not self.m:
            self.m = [np.zeros_like(g) for g in gs]
            self.v = [np.zeros_like(g) for g in gs]
        self.t += 1
        b1, b2 = 0.9, 0.999
        for x, g, m, v in zip(xs, gs, self.m, self.v, strict=True):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            mh = m / (1 - b1 ** self.t)
            vh = v / (1 - b2 ** self.t)
            x -= self.lr * mh / (np.sqrt(vh) + 1e-12)


def optimised_bound(chain: Chain, K: int, C: FloatArray, d: FloatArray, rel: list[Relax], lo: FloatArray,
                    hi: FloatArray, iters: int, *, use_beta: bool = True, stop: Any = None,
                    slack: FloatArray | float = 0.0) -> tuple[FloatArray, FloatArray, list[FloatArray]]:
    """Widened upper bounds (B, m) of ``C . z_K + d`` with optimised lower slopes (and split multipliers).

    Starts from the plain back-substitution bound (``iters = 0`` gives it) and never returns anything looser:
    the bound of each row is the smallest one met.  ``stop(U) -> bool`` ends the steps early (e.g. once every
    sub-problem is settled).  Returns the bounds, the input coefficients and the hidden-layer coefficients of
    the last step (for the branching score).  ``slack`` (per row, or one number) is the rows' rounding slack,
    added to every bound returned.
    """
    B, m = C.shape[0], C.shape[1]

    def _up(b: FloatArray) -> FloatArray:
        return _up_(b) + slack

    U, P, Ps, _, _ = _bound(chain, K, C, d, rel, None, None, lo, hi, False)
    best = U
    split = use_beta and any((r.sign != 0).any() for r in rel[:K])
    if iters <= 0 or K == 0 or not (split or any(r.unstable.any() for r in rel[:K])):
        return _up(best), P, Ps
    alpha = [np.broadcast_to(r.sl[:, None, :], (B, m, r.sl.shape[1])).copy() for r in rel[:K]]
    beta = [np.zeros((B, m, r.sl.shape[1])) for r in rel[:K]] if split else None
    oa, ob = _Adam(LR_ALPHA), _Adam(LR_BETA)
    for _ in range(iters):
        if stop is not None and stop(_up(best)):
            return _up(best), P, Ps      # the bounds met so far (no last pass: it would cost one more)
        U, P, Ps, ga, gb = _bound(chain, K, C, d, rel, alpha, beta, lo, hi, True)
        best = np.minimum(best, U)
        assert ga is not None
        assert gb is not None
        oa.step(alpha, ga)
        for a in alpha:
            np.clip(a, 0.0, 1.0, out=a)
        if beta is not None:
            ob.step(beta, gb)
            for b in beta:
                np.maximum(b, 0.0, out=b)
    U, P, Ps, _, _ = _bound(chain, K, C, d, rel, alpha, beta, lo, hi, False)
    best = np.minimum(best, U)
    return _up(best), P, Ps


# ------------------------------------------------------------------------------------------------------------
# pre-activation bounds under splits
# ------------------------------------------------------------------------------------------------------------
def layer_bounds(chain: Chain, lo: FloatArray, hi: FloatArray, split: list[npt.NDArray[np.int8]],
                 lower: list[FloatArray] | None = None, upper: list[FloatArray] | None = None, *,
                 iters: int = 0, start: int = 1, deadline: Any = None
                 ) -> tuple[list[FloatArray], list[FloatArray], BoolArray]:
    """Pre-activation bounds of every hidden layer for a batch of sub-problems (splits (B, n_k) per layer).

    The first layer is bounded exactly over the box; layer ``k >= start`` by back-substitution (``iters``
    optimisation steps of the slopes) for the units unstable in some sub-problem, intersected with the
    inherited ``lower``/``upper``; the optimisation stops when ``deadline`` expires.  Split units are clamped
    (``l >= 0`` active, ``u <= 0`` inactive).  Returns the bounds and which sub-problems are infeasible (a unit
    with ``l > u``).
    """
    B = split[0].shape[0]
    n_hidden = len(chain.Ws) - 1
    Ls: list[FloatArray] = []
    Us: list[FloatArray] = []
    rel: list[Relax] = []
    for k in range(n_hidden):
        W, b = chain.Ws[k], chain.bs[k]
        if lower is not None and upper is not None:
            l, u = lower[k].copy(), upper[k].copy()
        else:
            l, u = np.full((B, W.shape[0]), -np.inf), np.full((B, W.shape[0]), np.inf)
        if k == 0:
            Wp, Wn = np.maximum(W, 0.0), np.minimum(W, 0.0)
            u0 = _up(Wp @ hi + Wn @ lo + b) + chain.layer_slack(0)
            l0 = _down(Wp @ lo + Wn @ hi + b) - chain.layer_slack(0)
            l, u = np.maximum(l, l0), np.minimum(u, u0)
        elif k >= start:
            # the interval bounds from the layer below first (cheap, and a floor if the time runs out), then
            # back-substitution for the units still unstable in some sub-problem, in chunks of about
            # CHUNK_FLOPS, none started once ``deadline`` has expired
            li, ui = _interval(W, b, Ls[-1], Us[-1])
            sk = chain.layer_slack(k)
            l, u = np.maximum(l, li - sk), np.minimum(u, ui + sk)
            idx = np.flatnonzero(((l < 0) & (u > 0) & (split[k] == 0)).any(axis=0))
            per_row = B * sum(int(chain.Ws[j].size) for j in range(k + 1))    # one pass (the optimisation
            step = max(1, int(CHUNK_FLOPS // max(2 * per_row, 1)))             # looks at the deadline per step)
            stop = None if deadline is None else (lambda _U: deadline.expired())
            for c0 in range(0, idx.size, step):
                if deadline is not None and deadline.expired():
                    break
                part = idx[c0:c0 + step]
                mi = part.size
                C = np.zeros((2 * mi, W.shape[0]))
                C[np.arange(mi), part] = 1.0
                C[mi + np.arange(mi), part] = -1.0
                Cb = np.broadcast_to(C, (B, *C.shape))
                s_part = chain.slack[k][part] if chain.slack else np.zeros(mi)
                U, _, _ = optimised_bound(chain, k, Cb, np.zeros((B, 2 * mi)), rel, lo, hi, iters, use_beta=False,
                                          stop=stop, slack=np.concatenate([s_part, s_part]))
                l[:, part] = np.maximum(l[:, part], -U[:, mi:])
                u[:, part] = np.minimum(u[:, part], U[:, :mi])
        l = np.where(split[k] > 0, np.maximum(l, 0.0), l)
        u = np.where(split[k] < 0, np.minimum(u, 0.0), u)
        Ls.append(l)
        Us.append(u)
        rel.append(Relax.of(l, u, split[k]))
    infeasible = np.zeros(B, dtype=bool)
    for l, u in zip(Ls, Us, strict=True):
        infeasible |= (l > u).any(axis=1)
    return Ls, Us, infeasible


def _interval(W: FloatArray, b: FloatArray, l: FloatArray, u: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Widened interval bounds (B, n_k) of ``W relu(z) + b`` for ``z`` in ``[l, u]`` (B, n_{k-1})."""
    hl, hu = np.maximum(l, 0.0), np.maximum(u, 0.0)
    Wp, Wn = np.maximum(W, 0.0), np.minimum(W, 0.0)
    return _down(hl @ Wp.T + hu @ Wn.T + b), _up(hu @ Wp.T + hl @ Wn.T + b)


def _closed(rows: Rows, U: FloatArray) -> BoolArray:
    """Which cases (B, n_cases) the row bounds ``U`` settle: some row of the case cannot be hit."""
    cannot = np.where(rows.strict, U <= 0, U < 0)
    out = np.zeros((U.shape[0], rows.n_cases), dtype=bool)
    for k in range(rows.n_cases):
        out[:, k] = cannot[:, rows.case == k].any(axis=1)
    return out


def _case_values(rows: Rows, U: FloatArray) -> FloatArray:
    """Proven upper bound of each case score (B, n_cases): the smallest bound of its rows."""
    out = np.full((U.shape[0], rows.n_cases), np.inf)
    for k in range(rows.n_cases):
        sel = rows.case == k
        if sel.any():
            out[:, k] = U[:, sel].min(axis=1)
    return out


# ------------------------------------------------------------------------------------------------------------
# the frontier
# ------------------------------------------------------------------------------------------------------------
@dataclass
class Frontier:
    """Sub-problems: splits, inherited pre-activation bounds per hidden layer, open cases, their proven bound
    (largest case score) and the largest certified bound of the cases already settled.
    """

    split: list[npt.NDArray[np.int8]]
    lower: list[FloatArray]
    upper: list[FloatArray]
    open: BoolArray
    bound: FloatArray
    settled: FloatArray
    depth: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.bound.shape[0])

    def take(self, idx: npt.NDArray[Any]) -> Frontier:
        return Frontier([s[idx] for s in self.split], [v[idx] for v in self.lower], [v[idx] for v in self.upper],
                        self.open[idx], self.bound[idx], self.settled[idx], self.depth[idx])

    @staticmethod
    def join(parts: list[Frontier]) -> Frontier:
        parts = [p for p in parts if len(p)] or parts[:1]
        return Frontier([np.concatenate([p.split[k] for p in parts]) for k in range(len(parts[0].split))],
                        [np.concatenate([p.lower[k] for p in parts]) for k in range(len(parts[0].lower))],
                        [np.concatenate([p.upper[k] for p in parts]) for k in range(len(parts[0].upper))],
                        np.concatenate([p.open for p in parts]), np.concatenate([p.bound for p in parts]),
                        np.concatenate([p.settled for p in parts]), np.concatenate([p.depth for p in parts]))


@dataclass
class Task:
    """A share of the frontier for one worker and a time slice."""

    chain: Chain
    rows: Rows
    lo: FloatArray
    hi: FloatArray
    frontier: Frontier
    seconds: float
    iters: int = ITERS
    batch: int = BATCH
    recompute: bool = False


@dataclass
class TaskResult:
    """What a worker hands back: the open sub-problems, candidate points and counts."""

    frontier: Frontier
    candidates: FloatArray                # points the chain says hit a case (re-run by the caller)
    promising: FloatArray                 # input vertices of the most promising open rows (for local search)
    domains: int = 0
    settled: int = 0
    worst: float = -np.inf                # largest certified bound of a settled sub-problem
    max_depth: int = 0
    stuck: list[float] = field(default_factory=list)   # bounds of the LP leaves not settled
    batch_seconds: float = 0.0            # the longest batch (to keep the next one within the deadline)


def run_task(t: Task) -> TaskResult:
    """Search the task's sub-problems depth first for ``t.seconds`` (BLAS single-threaded: the workers are the
    parallelism); hand back what is left.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _run_task(t)


def _run_task(t: Task) -> TaskResult:
    t_end = time.monotonic() + t.seconds
    rows, chain = t.rows, t.chain
    L = len(chain.Ws) - 1
    stack = [t.frontier]
    res = TaskResult(t.frontier.take(np.zeros(0, np.int64)), np.empty((0, t.lo.size)), np.empty((0, t.lo.size)))
    while stack and time.monotonic() + res.batch_seconds < t_end and not STOP.is_set():   # Ctrl-C ends the slice
        tb = time.monotonic()
        F = Frontier.join(stack)
        stack = []
        if not len(F):
            break
        n = len(F)
        cur, rest = F.take(np.arange(max(n - t.batch, 0), n)), F.take(np.arange(max(n - t.batch, 0)))
        if len(rest):
            stack.append(rest)
        res.domains += len(cur)
        # 1. bounds under the splits
        Ls, Us, infeasible = layer_bounds(chain, t.lo, t.hi, cur.split, cur.lower, cur.upper,
                                          start=1 if t.recompute else L)
        rel = [Relax.of(l, u, s) for l, u, s in zip(Ls, Us, cur.split, strict=True)]
        rsel = np.flatnonzero(cur.open[:, rows.case].any(axis=0))       # rows of cases open in some sub-problem
        B = len(cur)
        C = np.broadcast_to(rows.C[rsel], (B, rsel.size, rows.C.shape[1]))
        d = np.broadcast_to(rows.d[rsel], (B, rsel.size))
        sub = Rows(rows.C[rsel], rows.d[rsel], rows.strict[rsel], rows.case[rsel], rows.n_cases)

        def settled_all(U: FloatArray, cur: Frontier = cur, sub: Rows = sub) -> bool:
            return not (cur.open & ~_closed(sub, U)).any()

        U, P, Ps = optimised_bound(chain, L, C, d, rel, t.lo, t.hi, t.iters, stop=settled_all,
                                   slack=chain.row_slack(rows.C[rsel], rows.d[rsel]))
        closed = _closed(sub, U)
        vals = _case_values(sub, U)
        open_ = cur.open & ~closed
        done = ~open_.any(axis=1) | infeasible
        new_settled = np.maximum(cur.settled, np.where(cur.open & closed, vals, -np.inf).max(axis=1))
        fin = done & ~infeasible
        if fin.any():
            res.worst = max(res.worst, float(new_settled[fin].max()))
        res.settled += int(done.sum())
        bound = np.minimum(cur.bound, np.where(open_, vals, -np.inf).max(axis=1))
        keep = np.flatnonzero(~done)
        if not keep.size:
            continue
        res.max_depth = max(res.max_depth, int(cur.depth[keep].max()))
        # 2. input vertices that maximise the open rows' linear bounds
        P_open = P[keep]
        rmask = open_[keep][:, sub.case]                                  # (b, rows)
        V = np.where(P_open > 0, t.hi, t.lo)[rmask]
        if V.shape[0]:
            Y, _ = chain.forward(V)
            hit = rows.hit(Y @ rows.C.T + rows.d)
            if hit.any():
                res.candidates = V[hit][:4]
                stack.append(cur.take(keep))
                break
            top = np.argsort(-(np.where(rmask, U[keep], -np.inf)).max(axis=1))[:2]
            res.promising = np.where(P_open[top, np.argmax(np.where(rmask, U[keep], -np.inf)[top], axis=1)] > 0,
                                     t.hi, t.lo)
        # 3. branch on the unit with the highest score
        child = cur.take(keep)
        child.bound = bound[keep]
        child.open = open_[keep]
        child.settled = new_settled[keep]
        child.lower = [v[keep] for v in Ls]
        child.upper = [v[keep] for v in Us]
        layer, unit = _branch_choice([r for r in rel], Ps, keep, rmask)
        b = keep.size
        ok = layer >= 0
        for i in np.flatnonzero(~ok):     # every unit's phase is fixed: the network is affine there, an LP
            x, val = _lp_leaf(chain, t.lo, t.hi, rows, child.take(np.array([i])))
            if x is not None:
                res.candidates = np.vstack([res.candidates, x[None, :]])
            if val is None:
                res.stuck.append(float(child.bound[i]))
            else:
                res.worst = max(res.worst, val)
                res.settled += 1
        act, ina = child.take(np.arange(b)), child.take(np.arange(b))
        act.split = [s.copy() for s in act.split]
        ina.split = [s.copy() for s in ina.split]
        for kk in np.unique(layer[ok]):
            sel = np.flatnonzero(ok & (layer == kk))
            act.split[kk][sel, unit[sel]] = 1
            ina.split[kk][sel, unit[sel]] = -1
        act.depth = act.depth + 1
        ina.depth = ina.depth + 1
        stack.append(Frontier.join([act.take(np.flatnonzero(ok)), ina.take(np.flatnonzero(ok))]))
        res.batch_seconds = max(res.batch_seconds, time.monotonic() - tb)
    if stack:
        res.frontier = Frontier.join(stack)
    return res


def _lp_leaf(chain: Chain, lo: FloatArray, hi: FloatArray, rows: Rows, leaf: Frontier
             ) -> tuple[FloatArray | None, float | None]:
    """Settle a sub-problem (one row of ``leaf``) whose every unit has a fixed phase.

    The network is affine on it, so each open row is maximised by one LP (HiGHS through scipy) over the input
    box and the split constraints ``s_j z_j(x) >= 0``.  The LP's multipliers of the split constraints become the
    ``beta`` of :func:`_bound`, whose result is the certified bound (weak duality, computed and widened here,
    whatever the LP's accuracy); an infeasible LP gives the multipliers of its phase-one problem, scaled up.
    Returns an LP maximiser that may hit a case (for the caller to re-run), and the certified largest case
    bound when every open case is settled (None otherwise).
    """
    from scipy.optimize import linprog

    L = len(chain.Ws) - 1
    Ls, Us = [v[0] for v in leaf.lower], [v[0] for v in leaf.upper]
    A, c = np.eye(lo.size), np.zeros(lo.size)
    cons_A: list[FloatArray] = []
    cons_b: list[FloatArray] = []
    where: list[tuple[int, int]] = []
    for k in range(L):
        A, c = chain.Ws[k] @ A, chain.Ws[k] @ c + chain.bs[k]
        s = leaf.split[k][0]
        j = np.flatnonzero(s != 0)
        cons_A.append(-s[j, None] * A[j])
        cons_b.append(s[j] * c[j])
        where.extend((k, int(u)) for u in j)
        act = (Ls[k] >= 0).astype(np.float64)
        A, c = A * act[:, None], c * act
    A_out, c_out = chain.Ws[L] @ A, chain.Ws[L] @ c + chain.bs[L]
    A_ub, b_ub = np.vstack([np.zeros((0, lo.size)), *cons_A]), np.concatenate([np.zeros(0), *cons_b])
    rel = [Relax.of(Ls[k][None, :], Us[k][None, :], leaf.split[k]) for k in range(L)]
    bounds = list(zip(lo, hi, strict=True))
    cand: FloatArray | None = None
    vals = np.full(rows.n_cases, -np.inf)
    nc = b_ub.size
    for k in np.flatnonzero(leaf.open[0]):
        R = np.flatnonzero(rows.case == k)
        G, g0 = rows.C[R] @ A_out, rows.C[R] @ c_out + rows.d[R]
        # max t  s.t.  t <= f_r(x) (rows of the case), s_j z_j(x) >= 0 (splits), x in the box
        A1 = np.vstack([np.hstack([A_ub, np.zeros((nc, 1))]), np.hstack([-G, np.ones((R.size, 1))])])
        b1 = np.concatenate([b_ub, g0])
        cost = np.r_[np.zeros(lo.size), -1.0]
        res = linprog(cost, A_ub=A1, b_ub=b1, bounds=[*bounds, (None, None)], method="highs")
        if res.status == 0:
            y = np.maximum(-res.ineqlin.marginals, 0.0)
            beta_y, lam = y[:nc], y[nc:]
            if -res.fun >= 0:
                cand = res.x[:-1] if cand is None else cand
        elif res.status == 2 and nc:     # infeasible: the multipliers of min t s.t. -s z(x) - t <= 0
            ph = linprog(np.r_[np.zeros(lo.size), 1.0], A_ub=np.hstack([A_ub, -np.ones((nc, 1))]), b_ub=b_ub,
                         bounds=[*bounds, (-1.0, None)], method="highs")
            if ph.status != 0 or ph.fun <= 0:
                return cand, None
            lam = np.full(R.size, 1.0 / R.size)
            plain = float(np.abs(lam @ G).sum() * np.abs(np.r_[lo, hi]).max() + np.abs(g0).max() + 1.0)
            beta_y = np.maximum(-ph.ineqlin.marginals, 0.0) * 2.0 * plain / ph.fun
        else:
            return cand, None
        if lam.sum() <= 0:
            return cand, None
        lam = lam / lam.sum()
        beta = [np.zeros((1, 1, W.shape[0])) for W in chain.Ws[:L]]
        for (kk, u), yy in zip(where, beta_y, strict=True):
            beta[kk][0, 0, u] = yy
        U, _, _, _, _ = _bound(chain, L, (lam @ rows.C[R])[None, None, :], np.array([[lam @ rows.d[R]]]), rel,
                               beta_alpha(rel), beta, lo, hi, False)
        # min_r f_r is at most any convex combination of the rows
        best = float(_up(U)[0, 0]) + float(lam @ chain.row_slack(rows.C[R], rows.d[R]))
        if not best < 0:
            return cand, None
        vals[k] = best
    return cand, float(max(vals.max(), leaf.settled[0]))


def beta_alpha(rel: list[Relax]) -> list[FloatArray]:
    """The default lower slopes as per-row arrays (B, 1, n)."""
    return [r.sl[:, None, :] for r in rel]


def _branch_choice(rel: list[Relax], Ps: list[FloatArray], keep: npt.NDArray[np.int64], rmask: BoolArray
                   ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Per sub-problem (rows ``keep`` of the batch), the (layer, unit) of the highest BaBSR score among its free
    unstable units, ``(-1, -1)`` when none is left.
    """
    b = keep.size
    best = np.full(b, -np.inf)
    layer = np.full(b, -1, dtype=np.int64)
    unit = np.full(b, -1, dtype=np.int64)
    w = rmask.astype(np.float64)[:, :, None]
    for k, (r, P) in enumerate(zip(rel, Ps, strict=True)):
        P = P[keep]
        free = r.unstable[keep] & (r.sign[keep] == 0)
        if not free.any():
            continue
        inter = (np.maximum(P, 0.0) * w).sum(axis=1) * r.tu[keep]
        width = (np.abs(P) * w).sum(axis=1) * (r.su[keep] > 0) * 1e-4
        score = np.where(free, inter + width + 1e-12, -np.inf)
        j = np.argmax(score, axis=1)
        s = score[np.arange(b), j]
        better = s > best
        best[better], layer[better], unit[better] = s[better], k, j[better]
    return layer, unit


# ------------------------------------------------------------------------------------------------------------
# the search
# ------------------------------------------------------------------------------------------------------------
def relu_branch_and_bound(chain: Chain, lo: FloatArray, hi: FloatArray, cases: list[Case], *, deadline: Any,
                          confirm: Any, workers: int = 1, slice_seconds: float = 4.0, seed: int = 0,
                          iters: int = ITERS, root_iters: int = ROOT_ITERS, batch: int = BATCH,
                          recompute: bool = False, search: bool = True) -> BabResult:
    """Decide whether some case can be hit in the box ``[lo, hi]`` by splitting unstable ReLUs.

    ``confirm(x) -> bool`` re-runs a candidate through the network and the property (only a confirmed point is
    a counterexample); ``deadline`` is a :class:`nnmip.drivers.deadline.Deadline`.  The result's ``bound`` is a
    proven upper bound of the largest case score over the box (negative when certified); ``boxes`` counts the
    sub-problems bounded.  ``search=False`` leaves out the projected gradient search (the vertices of the bounds
    and the LPs of fully split leaves still yield counterexamples); ``recompute`` recomputes the hidden layers'
    bounds of every sub-problem by back-substitution under its splits (otherwise they are the root's, clamped by
    the splits, and the multipliers carry the splits).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):     # the workers are the parallelism
        return _search(chain, lo, hi, cases, deadline=deadline, confirm=confirm, workers=workers,
                       slice_seconds=slice_seconds, seed=seed, iters=iters, root_iters=root_iters, batch=batch,
                       recompute=recompute, search=search)


def _search(chain: Chain, lo: FloatArray, hi: FloatArray, cases: list[Case], *, deadline: Any, confirm: Any,
            workers: int, slice_seconds: float, seed: int, iters: int, root_iters: int, batch: int,
            recompute: bool, search: bool) -> BabResult:
    t0 = time.monotonic()
    rows = Rows.of(cases)
    chain = chain.with_slack(lo, hi)        # every bound below also holds for the float64 forward pass
    out = BabResult("unknown")
    L = len(chain.Ws) - 1
    n_hidden = [W.shape[0] for W in chain.Ws[:-1]]
    split0 = [np.zeros((1, n), np.int8) for n in n_hidden]
    # the root: every layer's bounds with optimised slopes (done once)
    Ls, Us, _ = layer_bounds(chain, lo, hi, split0, iters=root_iters, deadline=deadline)
    log.info("root layer bounds in %.2fs", time.monotonic() - t0)
    rel = [Relax.of(l, u, s) for l, u, s in zip(Ls, Us, split0, strict=True)]
    C = rows.C[None, :, :]
    U, P, _ = optimised_bound(chain, L, C, rows.d[None, :], rel, lo, hi, root_iters,
                              stop=lambda U: bool(_closed(rows, U).all()) or deadline.expired(),
                              slack=chain.row_slack(rows.C, rows.d))
    closed = _closed(rows, U)
    vals = _case_values(rows, U)
    out.bound = float(vals.max())
    out.boxes = 1
    unstable = int(sum(r.unstable.sum() for r in rel))
    out.units, out.unstable = int(sum(n_hidden)), unstable
    out.notes.append(f"{unstable} unstable ReLUs at the root")
    log.info("root bound %.4g with %d unstable ReLUs in %.2fs", out.bound, unstable, time.monotonic() - t0)
    if closed.all():
        out.result = "certified"
        return _done(out, t0)
    # counterexample search from the vertices of the open rows
    V = np.where(P[0] > 0, hi, lo)[~closed[0][rows.case]]
    for x in V if search else ():
        if deadline.expired():
            break
        xs = pgd_search(chain, lo, hi, rows, restarts=2, steps=30, seed=seed, deadline=deadline, start=x)
        if xs is not None and confirm(xs):
            out.result, out.x = "counterexample", xs
            out.notes.append("found by projected gradient search from a vertex of the bound")
            return _done(out, t0)
    F = Frontier(split0, Ls, Us, ~closed, np.array([out.bound]),
                 np.array([np.where(closed, vals, -np.inf).max()]), np.zeros(1, np.int64))
    worst = float(F.settled[0])
    pgd_round = rounds = 0
    stuck: list[float] = []
    with worker_pool(workers) as pool:      # stopped with this process (SIGINT, a stop request)
        batch_seconds = 0.0
        while len(F):
            left = deadline.left()
            if left is not None and left <= 0.05 + batch_seconds:
                out.timed_out = True
                break
            sl = slice_seconds if left is None else max(min(slice_seconds, left - 0.05), 0.01)
            parts = max(1, min(workers, len(F)))
            chunks = np.array_split(np.arange(len(F)), parts)
            tasks = [Task(chain, rows, lo, hi, F.take(c), sl, iters, batch, recompute) for c in chunks]
            results = list(pool.map(run_task, tasks)) if pool is not None else [run_task(tasks[0])]
            parts_f = []
            promising: list[FloatArray] = []
            for r in results:
                out.boxes += r.domains
                out.max_depth = max(out.max_depth, r.max_depth)
                worst = max(worst, r.worst)
                stuck.extend(r.stuck)
                batch_seconds = max(batch_seconds, r.batch_seconds)
                parts_f.append(r.frontier)
                for x in r.candidates:
                    if confirm(x):
                        out.result, out.x = "counterexample", x
                        out.notes.append(f"found at a vertex of a sub-problem's bound after {out.boxes} "
                                         "sub-problems")
                        return _done(out, t0)
                promising.extend(r.promising)
            F = Frontier.join(parts_f)
            log.info("%.1fs: %d sub-problems bounded, %d open, depth %d, bound %.4g", time.monotonic() - t0,
                     out.boxes, len(F), out.max_depth, float(F.bound.max()) if len(F) else -np.inf)
            rounds += 1
            if search and len(F) and promising and pgd_round < 16 and rounds % 4 == 0 and not deadline.expired():
                pgd_round += 1
                xs = pgd_search(chain, lo, hi, rows, restarts=2, steps=20, seed=seed + pgd_round,
                                deadline=deadline, start=np.vstack(promising))
                if xs is not None and confirm(xs):
                    out.result, out.x = "counterexample", xs
                    out.notes.append("found by projected gradient search during branch and bound")
                    return _done(out, t0)
    out.open_boxes = len(F) + len(stuck)
    if not out.open_boxes:
        out.result, out.bound = "certified", worst
    else:
        out.bound = max([worst, *stuck, *F.bound.tolist()])
        out.timed_out |= deadline.expired()
        if len(F):
            out.notes.append(f"{len(F)} sub-problems still open when "
                             + ("the search was stopped (Ctrl-C)" if STOP.is_set() else "the time ran out"))
        if stuck:
            out.notes.append(f"{len(stuck)} sub-problems with every ReLU phase fixed whose LP did not settle them")
    return _done(out, t0)


def _done(out: BabResult, t0: float) -> BabResult:
    out.seconds = time.monotonic() - t0
    log.info("ReLU branch and bound: %s after %d sub-problems (depth %d) in %.2fs", out.result, out.boxes,
             out.max_depth, out.seconds)
    return out
