"""Proven bounds of every node of a fixed-weight network over an input region (docs/formulations.md §6).

* :func:`propagate_bounds` -- interval arithmetic (IBP): for a fixed dense layer ``W c -+ |W| r + b`` over the
  centre ``c`` and half-widths ``r`` of its input box (which is ``W+ lo + W- hi + b`` in exact arithmetic).
* :func:`symbolic_bounds` -- linear bounds by back-substitution (the DeepPoly / CROWN relaxation: each unstable
  ReLU between ``y >= s a`` and the chord ``y <= U (a - L) / (U - L)``), all units of a layer at once, concretised
  over the input box and, where tighter, over the l1 / l2 balls by their dual norms.
* :func:`tighten_bounds` -- progressive screening: layer by layer, IBP from the bounds proven so far, then
  symbolic bounds, then for the units that are still unstable an LP (``method="lp"``: min and max of ``a_i``
  over the LP relaxation of the layers before it), the same LP strengthened by rounds of the ideal cuts of the
  earlier ReLU layers (``method="lp-cuts"``), or a MILP (``method="milp"``: the exact question, used for
  lossless compression).  ``method="symbolic"`` stops after the symbolic bounds.

Soundness of LP bounds: the solver's optimum is not trusted.  From the LP's row duals ``y`` we compute the
weak-duality bound ``sup c.x <= sum_i sup_{r in [rl_i, ru_i]} y_i r + sum_j sup_{x_j in [l_j, u_j]} (c - A^T y)_j x_j``,
which holds for *any* ``y``, and widen it by the safety margin ``1e-7 (1 + |bound|)`` for rounding.  A
bound that cannot be proven this way keeps its interval value.

Soundness in floating point: besides the relative margin, every bound of an affine node is widened by
:func:`rounding_slack`, a first-order bound of how far float64 sums of the node's terms (the forward pass's, or a
bound's, in any order) may stray from exact arithmetic: ``4 N u P`` with ``u = 2^-53``, ``N`` the number of
additions on the longest path from the input and ``P`` the node's value computed with ``|W|``, ``|b|`` and the
largest input magnitudes.  Where large terms cancel (``P`` far above the node's values) this margin, not the
relative one, is what keeps the bounds around what the forward pass computes.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from nnmip.errors import FormulationError
from nnmip.ir.network import Network, node_interval
from nnmip.ir.ops import Dense, Identity, Input, MaxPool, Op, ParamDomain, ReLU, Sign, Smooth, Step, Sum
from nnmip.ir.spec import Region
from nnmip.model import MatrixModel
from nnmip.solution import STOP, stops_on_ctrl_c

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
Interval = tuple[FloatArray, FloatArray]
BoundMap = dict[str, Interval]

SAFETY = 1e-7
METHODS = ("interval", "symbolic", "lp", "lp-cuts", "milp")
#: rounds of ideal cuts each bound LP of ``method="lp-cuts"`` gets (measured on 20-64-64-2 at eps 0.25: one round
#: narrowed the second layer's unstable intervals from 3.80 to 3.02 on average, three to 2.60)
CUT_BOUND_ROUNDS = 3


#: the unit roundoff of float64
UNIT_ROUNDOFF = 2.0 ** -53
#: the largest magnitude of a proven bound (of any node) at which a MILP's answer still counts as a proof: the
#: big-M coefficients and column bounds of the model are of that size, and beyond about six orders of magnitude
#: between them and the weights the solvers' tolerances (1e-9 absolute here, 1e-6 by default) and rounding can
#: turn a feasible model infeasible or move its bound (Gurobi's guidelines for numerical issues recommend
#: variable bounds of 1e4 or less and coefficient ranges within six orders of magnitude)
MILP_TRUST_SCALE = 1e6


def bound_scale(bounds: BoundMap) -> float:
    """The largest finite magnitude of any bound in ``bounds`` (compared with :data:`MILP_TRUST_SCALE`)."""
    top = 0.0
    for lo, hi in bounds.values():
        a = np.abs(np.concatenate([np.ravel(lo), np.ravel(hi)]))
        a = a[np.isfinite(a)]
        if a.size:
            top = max(top, float(a.max()))
    return top


def widen(lo: FloatArray, hi: FloatArray) -> Interval:
    """Relax bounds outward by ``1e-7 (1 + |b|)``."""
    return lo - SAFETY * (1 + np.abs(lo)), hi + SAFETY * (1 + np.abs(hi))


def rounding_slack(net: Network, lo: FloatArray, hi: FloatArray,
                   profile: tuple[dict[str, FloatArray], dict[str, int]] | None = None) -> dict[str, FloatArray]:
    """Per affine node (dense, sum) of ``net``, for inputs in the box ``[lo, hi]``: how far a float64 evaluation
    of the node -- the forward pass, or any bound formed from the same terms summed in another order -- may stray
    from exact arithmetic (zero for the other nodes, which do not round).

    Math
    ----
    ``P`` is the network evaluated on magnitudes: ``P_x = max(|lo|, |hi|)``, a dense node ``|W| P + |b|``, a sum
    the sum of its inputs' ``P``, an activation or pooling the largest magnitude over ``[-P, P]``, a sigmoid or
    tanh also at least its Lipschitz constant times its input's ``P`` (what an error of its input can become).
    ``N`` counts the additions on the longest path from the input (a dense node adds its fan-in plus one, a
    sigmoid or tanh the relative error of its own evaluation, :attr:`Smooth.ULPS` units of ``u``).  The error of a
    float64 sum of ``N`` products whose absolute values add up to ``P`` is at most ``N u P / (1 - N u)``
    (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1), whatever the order, and products of
    matrices, or scalings by relaxation slopes in ``[0, 1]``, do not raise it to first order.  The slack is
    ``4 N u P``: one such error for the forward pass, one for the bound, doubled for what first order leaves out.
    ``profile`` is :func:`rounding_profile`'s result when the caller has it.
    """
    P, N = rounding_profile(net, lo, hi) if profile is None else profile
    return {n: 4.0 * N[n] * UNIT_ROUNDOFF * P[n] if isinstance(op, (Dense, Sum)) else np.zeros_like(P[n])
            for n, op in net.items()}


def rounding_profile(net: Network, lo: FloatArray, hi: FloatArray) -> tuple[dict[str, FloatArray], dict[str, int]]:
    """``P`` and ``N`` of :func:`rounding_slack` for every node."""
    P: dict[str, tuple[FloatArray, FloatArray]] = {}
    N: dict[str, int] = {}
    with np.errstate(invalid="ignore", over="ignore"):
        for n, op in net.items():
            srcs = net.inputs_of(n)
            if isinstance(op, Input):     # the box within the input's domain
                a, b = op.interval(np.asarray(lo, np.float64), np.asarray(hi, np.float64))
                m = np.maximum(np.abs(a), np.abs(b))
                N[n] = 0
            elif isinstance(op, Dense) and not op.trainable:
                m = op.magnitude(P[srcs[0]][1])
            else:
                a, b = node_interval(net, n, P)
                m = np.maximum(np.abs(a), np.abs(b))
                if isinstance(op, Smooth):     # an error e of its input moves it by up to lipschitz * e
                    m = np.maximum(m, op.lipschitz * P[srcs[0]][1])
            if not isinstance(op, Input):
                fan = (op.n_in + 1) if isinstance(op, Dense) else (len(srcs) if isinstance(op, Sum) else 0)
                if isinstance(op, Smooth):     # its own error: ULPS roundings' worth
                    fan = int(np.ceil(op.ULPS))
                N[n] = max(N[s] for s in srcs) + fan
            m = np.where(np.isnan(m), np.inf, m)
            P[n] = (-m, m)
    return {n: v[1] for n, v in P.items()}, N


def row_slack(P_out: FloatArray, N_out: int, slack_out: FloatArray, G: FloatArray, h: FloatArray) -> FloatArray:
    """The rounding slack of each row ``G_r . y + h_r`` of the output ``y``: :func:`rounding_slack` of one more
    affine step, plus the output's own slack ``slack_out`` carried through ``|G|``.
    """
    absG = np.abs(np.atleast_2d(G))
    n_add = N_out + absG.shape[1] + 1
    with np.errstate(invalid="ignore", over="ignore"):
        return np.asarray(absG @ slack_out + 4.0 * n_add * UNIT_ROUNDOFF * (absG @ P_out + np.abs(h)))


def score_slack(P_out: FloatArray, N_out: int, slack_out: FloatArray, G: FloatArray, h: FloatArray) -> float:
    """The rounding slack of a case score ``min_r -(G_r . y + h_r)``: the largest of its rows' slack."""
    per_row = row_slack(P_out, N_out, slack_out, G, h)
    worst = float(np.max(per_row)) if per_row.size else 0.0
    return worst if np.isfinite(worst) else np.inf


def _check_bounds_call(net: object, region: object, box: bool = True) -> None:
    """Refuse a network or region of the wrong type (ParameterError naming the argument)."""
    from nnmip.errors import ParameterError, check_instance

    check_instance("net", net, Network, "a Network")
    assert isinstance(net, Network)
    if isinstance(region, Region):
        return
    ok = box and isinstance(region, (tuple, list)) and len(region) == 2
    if ok:
        try:
            sides = [np.asarray(v, dtype=np.float64) for v in region]  # type: ignore[attr-defined]
            ok = all(s.size in (1, net.n_inputs) and not np.isnan(s).any() for s in sides)
        except (TypeError, ValueError):
            ok = False
    if not ok:
        raise ParameterError.of("region", f"must be a Region{' or a box (lo, hi)' if box else ''} over the "
                                f"{net.n_inputs} inputs, got {region!r:.60}",
                                "build one with nnmip.Region((nnmip.box(lo, hi),))", code="E0108")


def propagate_bounds(net: Network, region: Region | Interval) -> BoundMap:
    """Interval bounds of every node's output for inputs in ``region`` (a :class:`Region` or a box)."""
    _check_bounds_call(net, region)
    if isinstance(region, Region):
        lo, hi = region.box(net.n_inputs)
    else:
        lo, hi = (np.broadcast_to(np.asarray(v, dtype=np.float64), (net.n_inputs,)) for v in region)
    return _propagate(net, lo, hi, rounding_slack(net, lo, hi))


def _box_interval(net: Network, node: str, bounds: BoundMap) -> Interval:
    """:func:`node_interval`, for a fixed dense layer as ``W c -+ |W| r + b`` over the box of its input
    (:meth:`Dense.box_interval`): two passes over the weights instead of the four of ``W+ lo + W- hi``.

    Math
    ----
    The two are equal in exact arithmetic.  In float64, ``c = lo/2 + hi/2`` and ``r = hi/2 - lo/2`` each round
    once, by at most ``u (|c| + |r|) = u max(|lo|, |hi|)`` per input, which adds ``u |W| max(|lo|, |hi|)`` to the
    error of the sums: inside the ``4 N u P`` of :func:`rounding_slack` (``N >= 2``) that every caller adds.
    """
    op = net.op(node)
    if not isinstance(op, Dense) or op.sparse is not None or op.trainable:
        return node_interval(net, node, bounds)
    return op.box_interval(*bounds[net.inputs_of(node)[0]])


def _propagate(net: Network, lo: FloatArray, hi: FloatArray, slack: dict[str, FloatArray]) -> BoundMap:
    out: BoundMap = {}
    with np.errstate(invalid="ignore"):
        for n, op in net.items():
            if isinstance(op, Input):
                a, b = op.interval(np.asarray(lo, np.float64), np.asarray(hi, np.float64))
            else:
                a, b = _box_interval(net, n, out)
            # 0 * inf gives NaN in the interval product; the sound answer is "unbounded"
            a, b = np.where(np.isnan(a), -np.inf, a), np.where(np.isnan(b), np.inf, b)
            if isinstance(op, (Dense, Sum, Smooth)):
                # floating-point sums may round differently in the forward pass (an exact tie such as
                # [0, 0] can evaluate to 1e-17, large terms that cancel much more): widen affine bounds so that
                # they stay sound; a sigmoid or tanh of the forward pass may stray a few ulps from its value at
                # the bounds
                a, b = widen(a, b)
                a, b = a - slack[n], b + slack[n]
            out[n] = (a, b)
    return out


def _feeds(net: Network, node: str) -> Op | None:
    """The first non-identity op fed by ``node`` (None for the output)."""
    succ = list(net.graph.successors(node))
    while succ:
        op = net.op(succ[0])
        if not isinstance(op, Identity):
            return op
        succ = list(net.graph.successors(succ[0]))
    return None


def unstable_mask(op: Op | None, lo: FloatArray, hi: FloatArray) -> npt.NDArray[np.bool_]:
    """Units of a pre-activation whose activation ``op`` is not fixed by ``[lo, hi]``."""
    if isinstance(op, ReLU):
        return (lo < 0) & (hi > 0)
    if isinstance(op, (Step, Sign)):
        return (lo <= 0) & (hi > 0)
    return np.zeros(lo.shape, dtype=bool)


def count_units(net: Network, bounds: BoundMap) -> dict[str, tuple[int, int]]:
    """Per activation node: (units, unstable units) under ``bounds``."""
    out = {}
    for n, op in net.items():
        if isinstance(op, (ReLU, Step, Sign)):
            lo, hi = bounds[net.inputs_of(n)[0]]
            out[n] = (int(lo.size), int(unstable_mask(op, lo, hi).sum()))
    return out


@dataclass
class BoundReport:
    """Bounds and what tightening achieved: stable units before/after, LPs/MILPs solved, time."""

    bounds: BoundMap
    method: str
    units: int = 0
    unstable_interval: int = 0
    unstable: int = 0
    lps: int = 0
    milps: int = 0
    seconds: float = 0.0
    complete: bool = True
    per_node: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def stable(self) -> int:
        return self.units - self.unstable

    @property
    def binaries_saved(self) -> int:
        """Binaries the tightening saved over interval bounds alone."""
        return self.unstable_interval - self.unstable

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "units": self.units, "stable_units": self.stable,
                "unstable_units": self.unstable, "unstable_interval": self.unstable_interval,
                "binaries_saved_by_tightening": self.binaries_saved, "lps": self.lps, "milps": self.milps,
                "seconds": round(self.seconds, 4), "complete": self.complete, "per_node": self.per_node}


# ------------------------------------------------------------------------------------------------------------
# sound LP bounds
# ------------------------------------------------------------------------------------------------------------
def dual_bound(m: MatrixModel, c: FloatArray, y: FloatArray, r_mag: FloatArray | None = None) -> float:
    """Weak-duality upper bound of ``max c.x`` over ``m``'s rows and column bounds, valid for any ``y``, plus the
    rounding error its float64 sums can make (``4 n u`` times the sum of the absolute terms, ``n`` the number of
    additions: Higham §3.1).  ``r_mag`` is ``|c| + |A|^T |y|`` when the caller has it (:func:`reduced_magnitude`).
    """
    r = c - m.A.T @ y
    if r_mag is None:
        r_mag = reduced_magnitude(m, c, y)
    with np.errstate(invalid="ignore", over="ignore"):
        rows = np.where(y > 0, y * m.row_ub, np.where(y < 0, y * m.row_lb, 0.0))
        cols = np.where(r > 0, r * m.col_ub, np.where(r < 0, r * m.col_lb, 0.0))
        total = float(np.sum(rows) + np.sum(cols))
        # |r| may be off by the rounding of c - A^T y, at most (nnz of the column + 1) u (|c| + |A|^T |y|)
        size = np.maximum(np.abs(m.col_lb), np.abs(m.col_ub))
        col_err = np.where((r_mag > 0) & np.isfinite(size), r_mag * size, 0.0)   # (free columns: r must be 0)
        n_add = m.num_rows + m.num_cols + 2
        err = 4.0 * n_add * UNIT_ROUNDOFF * float(np.sum(np.abs(rows)) + np.sum(col_err))
    total += err
    return total if np.isfinite(total) else np.inf


def reduced_magnitude(m: MatrixModel, c: FloatArray, y: FloatArray, absA: Any = None) -> FloatArray:
    """``|c| + |A|^T |y|``: the size of the terms of the reduced costs ``c - A^T y`` (``absA``: ``|A|``, when the
    caller keeps it).
    """
    nz = np.flatnonzero(y)
    if not nz.size:
        return np.abs(c)
    if absA is not None:
        return np.abs(c) + absA.T @ np.abs(y)
    return np.abs(c) + abs(m.A[nz]).T @ np.abs(y[nz])      # the rows with a dual only


class LpBounds:
    """Sound LP bounds over ``model`` (its continuous relaxation, cones dropped) from the chosen backend's LP
    session: the backend returns row duals, and weak duality (:func:`dual_bound`) turns them into a bound that
    holds whatever their accuracy, widened by ``SAFETY``.  A backend without LP sessions lends HiGHS's.
    """

    def __init__(self, model: MatrixModel, time_limit: float | None = None, solver: str = "highs") -> None:
        from nnmip.backends import get_backend

        backend = get_backend(solver)
        if not backend.capabilities.lp_duals:
            log.info("bounds: solver '%s' has no LP sessions; the bound LPs run in HiGHS", backend.name)
            backend = get_backend("highs")
        # cones are dropped: a relaxation with fewer constraints still bounds from above
        self.model = model.relaxed().replace(c=np.zeros(model.num_cols), c0=0.0, sense="max", cones=())
        self.session = backend.lp_session(self.model, time_limit)  # type: ignore[attr-defined]
        self.solver = backend.name
        self._abs: Any = None        # |A|, for the rounding term of every bound

    @property
    def solves(self) -> int:
        return int(self.session.solves)

    def maximize(self, c: dict[int, float]) -> float:
        """A sound upper bound of ``max sum_j c_j x_j`` (``inf`` when the LP fails or the bound is not finite)."""
        status, y = self.session.maximize(c)
        if status == "infeasible":
            return -np.inf
        if status != "optimal" or y is None:
            return np.inf
        if self._abs is None:
            self._abs = abs(self.model.A)
        return _sound_bound(self.model, c, y, self._abs)


def _sound_bound(m: MatrixModel, c: dict[int, float], y: FloatArray, absA: Any = None) -> float:
    """The weak-duality bound of ``max sum_j c_j x_j`` over ``m`` from the row duals ``y`` (either sign
    convention), widened by the safety margin; ``inf`` when it is not finite.  ``absA`` is ``|A|`` when the
    caller keeps it.
    """
    cv = np.zeros(m.num_cols)
    for j, v in c.items():
        cv[j] = v
    r_mag = reduced_magnitude(m, cv, y, absA)     # the same for y and -y
    b = min(dual_bound(m, cv, y, r_mag), dual_bound(m, cv, -y, r_mag))
    return b + SAFETY * (1 + abs(b)) if np.isfinite(b) else np.inf


#: the name :mod:`nnmip.drivers.verify` uses for the case LPs (HiGHS unless a solver is named)
LpSession = LpBounds


# ------------------------------------------------------------------------------------------------------------
# symbolic (back-substitution) bounds
# ------------------------------------------------------------------------------------------------------------
def row_bounds(net: Network, region: Region, bounds: BoundMap, C: npt.ArrayLike, d: npt.ArrayLike,
               shared: _Shared | None = None) -> Interval:
    """Bounds of the rows ``C y + d`` of the output ``y`` over ``region``, by back-substitution through the whole
    network (:func:`symbolic_bounds` of one more dense layer), no looser than interval arithmetic on the
    output's bounds.  ``bounds`` must hold proven bounds of every node (a :class:`BoundReport`'s).  Like every
    back-substitution bound this holds for exact arithmetic on the rows; the caller adds their rounding slack
    (:func:`row_slack`).
    """
    C = np.atleast_2d(np.asarray(C, dtype=np.float64))
    d = np.asarray(d, dtype=np.float64).reshape(-1)
    out = net.output
    g = net.graph.copy()
    name = "rows"
    while name in g:
        name = "_" + name
    op = Dense(n_in=C.shape[1], n_out=C.shape[0], weights=ParamDomain.fixed(C), bias=ParamDomain.fixed(d))
    g.add_node(name, op=op, inputs=(out,))
    g.add_edge(out, name)
    aug = Network(g, net.name)
    i_lo, i_hi = widen(*op.box_interval(*bounds[out]))
    s_lo, s_hi = symbolic_bounds(aug, region, name, bounds, shared)
    return np.maximum(i_lo, s_lo), np.minimum(i_hi, s_hi)


def _relaxation(op: Op, L: FloatArray, U: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Linear bounds ``sl a + tl <= y <= su a + tu`` of an activation on ``[L, U]``."""
    if isinstance(op, Identity):
        one, zero = np.ones_like(L), np.zeros_like(L)
        return one, zero, one, zero
    if isinstance(op, ReLU):
        act = L >= 0
        dead = U <= 0
        unst = ~act & ~dead
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where(unst, U / (U - L), 0.0)
        su = np.where(act, 1.0, slope)
        tu = np.where(unst, -slope * L, 0.0)
        sl = np.where(act | (unst & (U >= -L)), 1.0, 0.0)
        return sl, np.zeros_like(L), su, tu
    if isinstance(op, Smooth):
        return smooth_relaxation(op, L, U)
    lo, hi = op.interval(L, U)          # step / sign: constant bounds
    z = np.zeros_like(L)
    return z, np.asarray(lo, np.float64), z, np.asarray(hi, np.float64)


def smooth_relaxation(op: Smooth, L: FloatArray, U: FloatArray
                      ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Lines ``sl a + tl <= f(a) <= su a + tu`` of a sigmoid or tanh ``f`` on ``[L, U]`` (finite, ``L <= U``).

    Math
    ----
    ``f`` is increasing, convex on ``a <= 0`` and concave on ``a >= 0``, and point-symmetric about ``(0, f(0))``:
    ``f(-a) = 2 f(0) - f(a)``.  The upper line (:func:`_smooth_upper`) is the chord where ``U <= 0``, the
    tangent at the midpoint where ``L >= 0``, and otherwise the tangent at the ``d`` in ``[0, U]`` whose tangent
    passes through ``(L, f(L))`` (the chord when there is none): the lines of Zhang et al., "Efficient neural
    network robustness certification with general activation functions" (CROWN, NeurIPS 2018).  The lower line
    is the upper line of ``[-U, -L]`` reflected through the point of symmetry: from ``f(-a) <= s (-a) + t``,
    ``f(a) >= s a + 2 f(0) - t``.
    """
    L = np.asarray(L, np.float64)
    U = np.asarray(U, np.float64)
    su, tu = _smooth_upper(op, L, U)
    s_, t_ = _smooth_upper(op, -U, -L)
    f0 = float(op.forward(np.zeros(1))[0])
    return s_, 2.0 * f0 - t_, su, tu


#: bisection steps for the tangent point of the mixed case (the bracket shrinks to 2**-40 of U)
TANGENT_STEPS = 40


def _smooth_upper(op: Smooth, L: FloatArray, U: FloatArray) -> tuple[FloatArray, FloatArray]:
    """An upper line ``s a + t >= f(a)`` on ``[L, U]`` (see :func:`smooth_relaxation`).

    Math
    ----
    - ``U <= 0``: ``f`` is convex there, so the chord lies above it.
    - ``L >= 0``: ``f`` is concave there, so the tangent at the midpoint lies above it.
    - ``L < 0 < U``: for ``d >= 0`` let ``T_d`` be the tangent at ``d``.  It lies above ``f`` on ``[0, inf)``
      (concave), and ``T_d - f`` is concave on ``[L, 0]``, so ``T_d >= f`` on ``[L, U]`` as soon as
      ``T_d(L) >= f(L)``.  ``T_d(L)`` grows with ``d`` (its derivative is ``f''(d) (L - d) >= 0``) from
      ``T_0(L) <= f(L)``.  If ``T_U(L) <= f(L)`` the chord's slope is at most ``f'(U)``: ``chord - f`` is
      convex on ``[0, U]``, zero at ``U`` and decreasing there, so nonnegative, and concave on ``[L, 0]`` with
      nonnegative ends; the chord is the line.  Otherwise bisection finds ``d*`` with ``T_d*(L) >= f(L)``, the
      end of the bracket where that holds.  Every ``T_d`` with ``d >= d*`` holds too; the line is the one at
      ``d = max(d*, m)`` (``m`` the midpoint; ``d*`` is at least 0): ``T_d(m)``, which is its area over
      ``[L, U]`` up to a constant, is smallest at ``d = m`` (its derivative in ``d`` is ``f''(d) (m - d)``)
      and grows with ``d`` past it.  Where the tangent at ``max(m, 0)`` passes above ``(L, f(L))`` it is the
      line without a bisection.  It is then lifted by what ``T_d(L)`` may still miss of ``f(L)`` as computed.
    - The line through ``(U, f(U))`` of slope ``k = min(f'(L), f'(U))`` lies above ``f`` on any interval:
      ``f'`` rises to 0 and falls after it, so ``f' >= k`` on ``[L, U]`` and ``f(U) + k (a - U) - f(a)`` falls
      to 0 (DeepPoly's line, Singh et al., POPL 2019).  In the mixed case it is kept where it is lower at the
      midpoint than the line above (it then leaves the smaller area between itself and ``f``); where ``U - L``
      is below ``1e-6 (1 + |L| + |U|)``, where the chord or the tangent point would come from nearly equal
      numbers, it is the line.
    Floating point: ``f``, ``f'`` and the line's slope and intercept take a few roundings each, and the forward
    pass's ``f`` may stray :attr:`Smooth.ULPS` units of ``2**-53`` from the true one; the intercept is raised by
    ``16 u (1 + |t| + |s| max(|L|, |U|))``, which bounds both at every ``a`` of ``[L, U]``.
    """
    fL, fU = op.forward(L), op.forward(U)
    dL, dU = op.derivative(L), op.derivative(U)
    k = np.minimum(dL, dU)
    s, t = k, fU - k * U                              # the narrow case's line
    width = U - L
    wide = width > 1e-6 * (1.0 + np.abs(L) + np.abs(U))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        chord = np.where(wide, (fU - fL) / np.where(wide, width, 1.0), 0.0)
    convex = wide & (U <= 0)
    concave = wide & (L >= 0)
    mixed = wide & ~convex & ~concave
    use_chord = convex | (mixed & (fU + dU * (L - U) <= fL))
    dp_s, dp_t = s, t
    s = np.where(use_chord, chord, s)
    t = np.where(use_chord, fL - chord * L, t)
    if concave.any():
        m = 0.5 * L + 0.5 * U
        dm = op.derivative(m)
        s = np.where(concave, dm, s)
        t = np.where(concave, op.forward(m) - dm * m, t)
    tangent = mixed & ~use_chord
    if tangent.any():
        Lm, Um, fLm = L[tangent], U[tangent], fL[tangent]
        # any tangent at d >= d* (>= 0) holds, and of those the one nearest the midpoint encloses the least: where
        # the tangent at max(midpoint, 0) passes above (L, f(L)) it is the line, and only the other units need d*
        d = np.maximum(0.5 * Lm + 0.5 * Um, 0.0)
        need = op.forward(d) + op.derivative(d) * (Lm - d) < fLm
        if need.any():
            Ln, fLn = Lm[need], fLm[need]
            lo_d, hi_d = np.zeros_like(Ln), Um[need]     # T_lo(L) <= f(L) <= T_hi(L)
            for _ in range(TANGENT_STEPS):
                mid = 0.5 * lo_d + 0.5 * hi_d
                above = op.forward(mid) + op.derivative(mid) * (Ln - mid) >= fLn
                hi_d = np.where(above, mid, hi_d)
                lo_d = np.where(above, lo_d, mid)
            d[need] = np.maximum(hi_d, d[need])
        sd = op.derivative(d)
        td = op.forward(d) - sd * d
        td = td + np.maximum(fLm - (sd * Lm + td), 0.0)   # through (L, f(L)) or above it, as computed
        s, t = s.copy(), t.copy()
        s[tangent], t[tangent] = sd, td
    if mixed.any():
        # DeepPoly's line (the narrow case's) can enclose less: keep whichever is lower at the midpoint, that is
        # leaves the smaller area between itself and f over [L, U]
        m = 0.5 * L + 0.5 * U
        dp = mixed & (dp_s * m + dp_t < s * m + t)
        s, t = np.where(dp, dp_s, s), np.where(dp, dp_t, t)
    reach = np.maximum(np.abs(L), np.abs(U))
    return s, t + 16.0 * UNIT_ROUNDOFF * (1.0 + np.abs(t) + np.abs(s) * reach)


def _concretize(C: FloatArray, region: Region, lo: FloatArray, hi: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Bounds of ``C @ x`` (rows of C) over the region: the box, and each ball by its dual norm if tighter."""
    Cp, Cn = np.maximum(C, 0.0), np.minimum(C, 0.0)
    with np.errstate(invalid="ignore"):
        up = Cp @ hi + Cn @ lo
        down = Cp @ lo + Cn @ hi
    for s in region.sets:
        if s.kind in ("l1", "l2", "linf") and s.center is not None:
            norm = {"l1": np.inf, "l2": 2, "linf": 1}[s.kind]
            mid = C @ s.center
            rad = s.radius * np.linalg.norm(C, ord=norm, axis=1)
            up, down = np.minimum(up, mid + rad), np.maximum(down, mid - rad)
    return np.where(np.isnan(down), -np.inf, down), np.where(np.isnan(up), np.inf, up)


def _maxpool_relaxation(op: MaxPool, L: FloatArray, U: FloatArray
                        ) -> tuple[sp.csr_array, sp.csr_array, FloatArray]:
    """Linear bounds of a max over groups: ``y_j >= x_{i_j}`` and ``y_j <= x_{i_j}`` or ``y_j <= max_i U_i``.

    Math
    ----
    For group ``G_j`` let ``i_j`` be the member with the largest lower bound.  Then ``y_j >= x_{i_j}`` always;
    when ``L_{i_j} >= U_i`` for every other member the maximum is settled and ``y_j <= x_{i_j}``, otherwise
    ``y_j <= max_{i in G_j} U_i`` (a constant).  Returns the lower selection matrix, the upper selection matrix
    (zero rows where the upper bound is the constant) and the constants (0 where settled).
    """
    idx = op.index
    Lg = np.where(idx >= 0, L[np.maximum(idx, 0)], -np.inf)
    Ug = np.where(idx >= 0, U[np.maximum(idx, 0)], -np.inf)
    best = np.argmax(Lg, axis=1)
    rows = np.arange(idx.shape[0])
    pick = idx[rows, best]
    others = Ug.copy()
    others[rows, best] = -np.inf
    settled = Lg[rows, best] >= others.max(axis=1)
    n_in = L.shape[0]
    low = sp.csr_array((np.ones(rows.size), (rows, pick)), shape=(rows.size, n_in))
    keep = np.flatnonzero(settled)
    up = sp.csr_array((np.ones(keep.size), (keep, pick[keep])), shape=(rows.size, n_in))
    const = np.where(settled, 0.0, Ug.max(axis=1))
    return low, up, const


#: bytes of scratch memory a thread keeps between back-substitutions (see :class:`_Scratch`)
SCRATCH_KEEP = 64 * 2**20


class _Scratch:
    """The large arrays of one back-substitution, drawn from memory this thread kept from earlier ones.

    Fresh memory costs a page fault per 4 KiB page when first touched, and the allocator hands large blocks back
    to the system when they are freed, so without this every call pays again: on a 2-core virtual machine a
    fresh 3.2 MB array took 3.5 ms to touch against 0.14 ms for a warm one, and first touches were about a third
    of the plain back-substitution's time on 784-256-256-256-10.  Each :meth:`empty` hands out a buffer no other
    array of the call uses (nothing is recycled within a call, so no array can alias another), and nothing drawn
    from here outlives the call; :meth:`close` keeps the buffers, up to ``SCRATCH_KEEP`` bytes, for the next call
    on this thread.
    """

    _local = threading.local()

    def __init__(self, slot: str = "free") -> None:
        self.slot = slot               # each slot keeps its own buffers
        self.free: list[FloatArray] = getattr(self._local, slot, [])
        setattr(self._local, slot, [])          # a nested call on this thread starts with none
        self.used: list[FloatArray] = []

    def empty(self, shape: tuple[int, ...]) -> FloatArray:
        n = int(np.prod(shape))
        fits = [i for i, b in enumerate(self.free) if b.size >= n]
        buf = self.free.pop(min(fits, key=lambda i: self.free[i].size)) if fits else np.empty(max(n, 1))
        self.used.append(buf)
        return buf[:n].reshape(shape)

    def close(self) -> None:
        keep: list[FloatArray] = []
        total = 0
        for b in sorted(self.free + self.used, key=lambda b: b.size):
            if total + b.nbytes > SCRATCH_KEEP:
                break
            keep.append(b)
            total += b.nbytes
        setattr(self._local, self.slot, keep)


class _Shared:
    """What the back-substitutions of one :func:`tighten_bounds` call share: each activation's relaxation, and
    each weight matrix without the rows of the units that are dead (the same ones for every later layer once
    their layer's bounds are final).  Both are recomputed when the bounds they came from are not the same
    arrays.  The rows live in scratch memory of their own (:class:`_Scratch`), kept until :meth:`close`.
    """

    def __init__(self) -> None:
        self.relaxations: dict[str, tuple[FloatArray, FloatArray, Any]] = {}
        self.rows: dict[int, tuple[Any, npt.NDArray[np.intp], FloatArray]] = {}
        self.ws = _Scratch("shared")

    def relaxation(self, node: str, op: Op, L: FloatArray, U: FloatArray) -> Any:
        hit = self.relaxations.get(node)
        if hit is None or hit[0] is not L or hit[1] is not U:
            hit = (L, U, _relaxation(op, L, U))
            self.relaxations[node] = hit
        return hit[2]

    def live_rows(self, M: FloatArray, keep: npt.NDArray[np.intp]) -> FloatArray:
        hit = self.rows.get(id(M))
        if hit is None or hit[0] is not M or not np.array_equal(hit[1], keep):
            hit = (M, keep, np.take(M, keep, axis=0, mode="clip", out=self.ws.empty((keep.size, M.shape[1]))))
            self.rows[id(M)] = hit
        return hit[2]

    def close(self) -> None:
        self.ws.close()


def symbolic_bounds(net: Network, region: Region, node: str, bounds: BoundMap, shared: _Shared | None = None
                    ) -> Interval:
    """Bounds of ``node`` (a dense layer) by back-substitution through the nodes before it.

    The network may be a DAG (residual sums): linear bounds are pushed back in reverse topological order, a sum
    node handing its coefficients to each of its inputs.  ``bounds`` must hold proven bounds of every node
    before ``node``; the result is sound and widened by the safety margin.

    Both sides travel together.  Until the first unstable unit is met the upper and lower coefficients are the
    same matrix.  Right after it the two sides differ only in the columns of the unstable units, so they are
    kept as a mean and a half-difference on those columns (:class:`_Split`) and the next weight matrix costs
    ``k (n + u)`` rows of products instead of ``2 k n``.  From there on they are stacked in one array (the
    upper rows above the lower ones), so each layer costs one matrix product whichever side is asked for.  A
    relaxation step scales whole rows and splits signs only in the columns whose two lines differ
    (:func:`_relax`).  Units whose coefficients vanish on both sides (dead ReLUs, and what feeds only them) are
    dropped from the next product once a quarter of them are.  Over a finite input box the bounds are
    ``C c +- |C| r`` (``c`` the box centre, ``r`` its half-widths), formed in place; an linf ball is never
    consulted, since the box already lies inside it.  Exactly, this is the plain back-substitution term for term
    (only zero terms are skipped and sums regrouped); in floating point it agrees with the plain one to rounding
    (tested), and the result is widened by the safety margin like every bound.  The large arrays live in
    memory kept between calls (:class:`_Scratch`).  ``shared`` carries what the calls of one tightening pass
    have in common (:class:`_Shared`).
    """
    ws = _Scratch()
    own = shared is None
    sh = _Shared() if shared is None else shared
    try:
        return _back_substitute(net, region, node, bounds, ws, sh)
    finally:
        ws.close()
        if own:
            sh.close()


def _back_substitute(net: Network, region: Region, node: str, bounds: BoundMap, ws: _Scratch, sh: _Shared
                     ) -> Interval:
    op = net.op(node)
    assert isinstance(op, Dense)
    n_out = op.n_out
    # pending linear bounds on each node: ``P[v] = (A, stacked)``; unstacked, A (n_out rows) is both sides,
    # stacked, A[:n_out] bounds from above (upper  sum_v A[v] z_v + cu) and A[n_out:] from below (+ cl)
    P: dict[str, tuple[Any, bool]] = {}     # A may also be a _Split: stacked, kept as mean and half-difference
    cu = op.b.astype(np.float64)
    cl = cu.copy()
    src = net.inputs_of(node)[0]
    M0 = op.matrix
    if not sp.issparse(M0) and M0.dtype == np.float64 and op.finite:
        first = M0.view()              # I @ W is W; read-only, so that no step can overwrite the weights
        first.flags.writeable = False
    elif not sp.issparse(M0) and op.finite:
        first = np.add(M0, 0.0, out=ws.empty(M0.shape), dtype=np.float64)
    else:
        first = _right_times(np.eye(n_out), M0)
    P[src] = (first, False)
    order = net.nodes
    pos = {n: i for i, n in enumerate(order)}
    x_node = net.input

    def push(target: str, A: Any, stacked: bool) -> None:
        if target not in P:
            P[target] = (A, stacked)
            return
        B, b_stacked = P[target]
        A, B = _stacked(A), _stacked(B)
        if stacked == b_stacked:
            P[target] = (B + A, stacked)
        else:
            P[target] = ((np.vstack((B, B)) if stacked else B) + (A if stacked else np.vstack((A, A))), True)

    for cur in sorted(set(order[:pos[node]]), key=lambda v: -pos[v]):
        if cur not in P:
            continue
        cop = net.op(cur)
        if isinstance(cop, Input):
            continue
        A, stacked = P.pop(cur)
        srcs = net.inputs_of(cur)
        if isinstance(A, _Split):
            if isinstance(cop, Dense):
                bias = cop.b.astype(np.float64)
                c_m, c_h = A.mean @ bias, A.half @ bias[A.cols]
                cu, cl = cu + (c_m + c_h), cl + (c_m - c_h)
                push(srcs[0], A.times(cop.matrix, ws, sh), True)
                continue
            A = A.stacked()
        if isinstance(cop, Dense):
            c = A @ cop.b.astype(np.float64)
            if stacked:
                cu, cl = cu + c[:n_out], cl + c[n_out:]
            else:
                cu, cl = cu + c, cl + c
            push(srcs[0], _right_times_live(A, cop.matrix, ws, sh), stacked)
        elif isinstance(cop, Sum):
            for i, s_ in enumerate(srcs):
                push(s_, A if i == 0 else A.copy(), stacked)    # each pending array has one owner (see _relax)
        elif isinstance(cop, MaxPool):
            L, U = bounds[srcs[0]]
            if not (np.isfinite(L).all() and np.isfinite(U).all()):
                return np.full(n_out, -np.inf), np.full(n_out, np.inf)
            low, up, const = _maxpool_relaxation(cop, L, U)
            au, al = (A[:n_out], A[n_out:]) if stacked else (A, A)
            aup, aun = np.maximum(au, 0.0), np.minimum(au, 0.0)
            alp, aln = np.maximum(al, 0.0), np.minimum(al, 0.0)
            # upper: positive coefficients take the upper relaxation, negative ones the lower one
            cu = cu + aup @ const
            cl = cl + aln @ const
            push(srcs[0], np.vstack((_right_times(aup, up) + _right_times(aun, low),
                                     _right_times(alp, low) + _right_times(aln, up))), True)
        else:
            L, U = bounds[srcs[0]]
            if not (np.isfinite(L).all() and np.isfinite(U).all()):
                return np.full(n_out, -np.inf), np.full(n_out, np.inf)
            sl, tl, su, tu = sh.relaxation(cur, cop, L, U)
            const = [0.0, 0.0]
            if np.array_equal(sl, su) and not tu.any() and not tl.any():
                # every unit is stable (or its relaxation is the same line on both sides): one scaling
                push(srcs[0], A * su, stacked)
                continue
            push(srcs[0], _relax(A, stacked, n_out, sl, tl, su, tu, const, ws), True)
            cu, cl = cu + const[0], cl + const[1]
    lo_x, hi_x = bounds[x_node]
    if x_node not in P:      # the node does not depend on the input
        return widen(cl, cu)
    C, stacked = P[x_node]
    C = _stacked(C)
    up_, down = _concretize_sides(C, stacked, n_out, region, lo_x, hi_x)
    return widen(down + cl, up_ + cu)


def _relax(A: FloatArray, stacked: bool, k: int, sl: FloatArray, tl: FloatArray, su: FloatArray, tu: FloatArray,
           const: list[Any], ws: _Scratch | None = None) -> Any:
    """Coefficients on an activation's input from those on its output, both sides stacked; ``A`` may be
    overwritten.  ``const`` receives the constants the relaxation adds to the upper and the lower bound.

    Math
    ----
    With ``sl a + tl <= y <= su a + tu``, an upper bound takes the upper line where its coefficient is >= 0
    and the lower one where it is < 0, and a lower bound the other way round.  Written as ``A sl +
    max(A, 0) (su - sl)`` (upper) and ``A sl + min(A, 0) (su - sl)`` (lower), only the columns where the two
    lines differ (the unstable units of a ReLU) need the sign split; the rest is one scaling.
    """
    m = A.shape[1]
    split = np.flatnonzero((su != sl) | (tu != 0.0) | (tl != 0.0))
    # few split columns: gather them; many: whole rows (contiguous, no index arrays)
    cols: Any = split if 4 * split.size < m else slice(None)
    Au, Al = (A[:k], A[k:]) if stacked else (A, A)
    d, tdiff, tl_c = (su - sl)[cols], (tu - tl)[cols], tl[cols]
    # min(A, 0) = A - max(A, 0), so one part per side suffices
    pos_u = np.maximum(Au[:, cols], 0.0, out=_empty(ws, (k, d.size)))
    neg_l = np.minimum(Al[:, cols], 0.0, out=_empty(ws, (k, d.size)))
    const[0] = pos_u @ tdiff
    const[1] = neg_l @ tdiff
    if tl_c.any():
        const[0] = const[0] + Au[:, cols] @ tl_c
        const[1] = const[1] + Al[:, cols] @ tl_c
    pos_u *= d
    neg_l *= d
    if not stacked and isinstance(cols, np.ndarray):
        # the two sides differ only in the split columns: keep A (sl + d / 2) and |A| d / 2 there
        mslope = sl.copy()
        mslope[cols] += 0.5 * d
        neg_l *= -1.0                                  # |A| d = (max(A, 0) - min(A, 0)) d on the split columns
        neg_l += pos_u
        neg_l *= 0.5
        return _Split(np.multiply(A, mslope, out=_empty(ws, A.shape)), cols, neg_l)
    if stacked:
        out = A
        out *= sl
    else:
        out = _empty(ws, (2 * k, m))
        np.multiply(A, sl, out=out[:k])
        out[k:] = out[:k]
    out[:k, cols] += pos_u
    out[k:, cols] += neg_l
    return out


class _Split:
    """Stacked coefficients ``[mean + H; mean - H]`` whose sides differ only in the columns ``cols``
    (``H[:, cols] = half``, zero elsewhere): what the first unstable activation of a back-substitution leaves.

    Math
    ----
    Times a matrix ``W``, both sides are ``mean W +- half W[cols]``: ``k (n + |cols|)`` rows of products
    instead of ``2 k n``.
    """

    __slots__ = ("mean", "cols", "half")

    def __init__(self, mean: FloatArray, cols: npt.NDArray[np.intp], half: FloatArray) -> None:
        self.mean, self.cols, self.half = mean, cols, half

    def stacked(self) -> FloatArray:
        k = self.mean.shape[0]
        out = np.vstack((self.mean, self.mean))
        out[:k, self.cols] += self.half
        out[k:, self.cols] -= self.half
        return out

    def times(self, M: Any, ws: _Scratch, sh: _Shared) -> FloatArray:
        k = self.mean.shape[0]
        out = ws.empty((2 * k, M.shape[1]))
        _right_times_live(self.mean, M, ws, sh, out[:k])
        if sp.issparse(M) or M.dtype != np.float64:
            ph = _right_times(self.half, M[self.cols] if sp.issparse(M) else M[self.cols, :])
        else:
            Mc = np.take(M, self.cols, axis=0, mode="clip", out=ws.empty((self.cols.size, M.shape[1])))
            ph = np.matmul(self.half, Mc, out=ws.empty((k, M.shape[1])))
        np.subtract(out[:k], ph, out=out[k:])
        out[:k] += ph
        return out


def _stacked(A: Any) -> Any:
    return A.stacked() if isinstance(A, _Split) else A


def _concretize_sides(C: FloatArray, stacked: bool, k: int, region: Region, lo: FloatArray, hi: FloatArray
                      ) -> tuple[FloatArray, FloatArray]:
    """Upper bounds of the first ``k`` rows of ``C @ x`` and lower bounds of the last ``k`` (of all rows when
    not stacked) over the region; ``C`` is consumed where it may be written.

    Math
    ----
    Over the box ``[lo, hi]`` with centre ``c`` and half-widths ``r``, ``max C_i x = C_i c + |C_i| r`` and
    ``min C_i x = C_i c - |C_i| r``.  An l1 or l2 ball gives ``C_i m +- rho ||C_i||_*`` (the dual norm), kept
    where tighter; an linf ball never is, because the region's box is the intersection of the ball with the
    other sets and so lies inside it.
    """
    balls = [s for s in region.sets if s.kind in ("l1", "l2") and s.center is not None]
    r = (hi - lo) * 0.5
    if balls or not (np.isfinite(lo).all() and np.isfinite(hi).all() and np.isfinite(r).all()):
        if not stacked:
            down, up = _concretize(C, region, lo, hi)
            return up, down
        return _concretize(C[:k], region, lo, hi)[1], _concretize(C[k:], region, lo, hi)[0]
    mid = C @ ((lo + hi) * 0.5)
    C = np.abs(C, out=C if C.flags.writeable else None)
    rad = C @ r
    if stacked:
        return mid[:k] + rad[:k], mid[k:] - rad[k:]
    return mid + rad, mid - rad


def _right_times_live(A: FloatArray, M: Any, ws: _Scratch, sh: _Shared, out: FloatArray | None = None) -> Any:
    """``A @ M`` (into ``out`` if given, else into scratch), skipping the rows of ``M`` whose coefficients in
    ``A`` are all zero (the rows of a dense ``M`` kept by ``sh``, see :meth:`_Shared.live_rows`).  (Every
    ``np.take`` here has ``mode="clip"``: the indices are valid, and with the default mode numpy buffers ``out``
    in fresh memory, whose first touch costs page faults.)

    Skipping copies the live parts of ``A`` and ``M``, which costs about as much as the rows saved while few
    are dead, so it is done once a quarter of them are (measured on 784-256-256-256-10: from a half, eps 0.005
    missed a layer with 46 % dead units; from an eighth was no better than a quarter).
    """
    live = np.any(A != 0.0, axis=0)
    if 4 * (live.size - np.count_nonzero(live)) >= live.size:
        keep = np.flatnonzero(live)
        A = np.take(A, keep, axis=1, mode="clip", out=ws.empty((A.shape[0], keep.size)))
        if sp.issparse(M):
            M = M[keep]
        elif M.dtype == np.float64:
            M = sh.live_rows(M, keep)
        else:
            M = M[keep, :]
    if out is None and not sp.issparse(M):
        out = ws.empty((A.shape[0], M.shape[1]))
    return _right_times(A, M, out)


def _empty(ws: _Scratch | None, shape: tuple[int, ...]) -> FloatArray:
    return np.empty(shape) if ws is None else ws.empty(shape)


def _right_times(A: FloatArray, M: Any, out: FloatArray | None = None) -> FloatArray:
    """``A @ M`` for a dense ``A`` and a dense or scipy.sparse ``M``, as a dense array (into ``out`` if given)."""
    if sp.issparse(M):
        prod = np.asarray((M.T @ A.T).T, dtype=np.float64)
    elif out is not None and M.dtype == np.float64 and A.dtype == np.float64:
        return np.matmul(A, M, out=out)
    else:
        prod = np.asarray(A @ M, dtype=np.float64)
    if out is None:
        return prod
    out[...] = prod
    return out


# ------------------------------------------------------------------------------------------------------------
# progressive tightening
# ------------------------------------------------------------------------------------------------------------
@stops_on_ctrl_c
def tighten_bounds(net: Network, region: Region, *, method: str = "lp", bounds: BoundMap | None = None,
                   solver: str = "highs", time_limit: float | None = None, method_map: dict[str, str] | None = None
                   ) -> BoundReport:
    """Interval bounds, then LP (or MILP) bounds for the units that interval arithmetic leaves unstable.

    ``method`` is ``"interval"``, ``"symbolic"``, ``"lp"``, ``"lp-cuts"`` (each bound LP gets up to
    ``CUT_BOUND_ROUNDS`` rounds of the ideal cuts of the earlier ReLU layers that its optimum violates:
    tighter, and slower) or ``"milp"``.

    Layers are processed in order, so each LP sees the bounds (and the stable units) proven for the layers
    before it.  ``time_limit`` caps the whole pass, and a stop request (Ctrl-C) ends it; units not reached keep
    their interval bounds (``complete`` is then False).  Returns a :class:`BoundReport`.
    """
    from nnmip.errors import ParameterError, check_instance, check_number

    _check_bounds_call(net, region, box=False)
    if not isinstance(method, str) or method not in METHODS:
        raise FormulationError.at("E0423", f"unknown bound method {method!r:.40}",
                                  notes=[f"help: choose one of {', '.join(METHODS)}"])
    check_number("time_limit", time_limit, low=0.0, none=True)
    check_instance("bounds", bounds, dict, "a dict of node name to (lo, hi), or None", none=True)
    if bounds is not None and set(bounds) != set(net.graph):
        raise ParameterError.of("bounds", "must give (lo, hi) for every node of the network", "pass the result of "
                                "propagate_bounds(net, region), or None", code="E0108")
    if method not in ("interval", "symbolic"):
        from nnmip.backends import get_backend

        smooth = next((n for n, op in net.items() if op.smooth), None)
        if smooth is not None:
            raise FormulationError.at("E0429", f"bound method '{method}' solves LPs or MILPs of the network, and its "
                                      f"node '{smooth}' is a {net.op(smooth).kind}, which none models exactly",
                                      net.op(smooth).span, ["help: use method 'symbolic' or 'interval' for a "
                                                            "network with sigmoid or tanh units"])
        get_backend(solver)   # an unknown or missing solver fails before any bound
    check_instance("method_map", method_map, dict, "a dict of node name to method, or None", none=True)
    shared = _Shared()   # what the symbolic passes of the layers have in common
    try:
        return _tighten(net, region, method, bounds, solver, time_limit, method_map, shared)
    finally:
        shared.close()


def bounds_with_rows(net: Network, region: Region, C: npt.ArrayLike, d: npt.ArrayLike
                     ) -> tuple[BoundReport, Interval]:
    """:func:`tighten_bounds` with ``method="symbolic"``, then :func:`row_bounds` of the rows ``C y + d``, the
    rows' back-substitution reusing the activations' relaxations of the tightening pass (the same bounds give the
    same relaxations).  The rows' rounding slack is the caller's, as for :func:`row_bounds`.
    """
    _check_bounds_call(net, region, box=False)
    shared = _Shared()
    try:
        rep = _tighten(net, region, "symbolic", None, "highs", None, None, shared)
        return rep, row_bounds(net, region, rep.bounds, C, d, shared)
    finally:
        shared.close()


def _tighten(net: Network, region: Region, method: str, bounds: BoundMap | None, solver: str,
             time_limit: float | None, method_map: dict[str, str] | None, shared: _Shared) -> BoundReport:
    """The work of :func:`tighten_bounds` (its arguments checked), with ``shared`` for its back-substitutions."""
    t0 = time.perf_counter()
    box = region.box(net.n_inputs)
    slack = rounding_slack(net, *box)
    ibp = _propagate(net, *box, slack)
    bm = dict(bounds) if bounds is not None else dict(ibp)
    rep = BoundReport(bm, method)
    for units, unst in count_units(net, ibp).values():
        rep.units += units
        rep.unstable_interval += unst
    if method == "interval":
        rep.unstable = rep.unstable_interval
        rep.seconds = time.perf_counter() - t0
        rep.per_node = {n: {"units": u, "unstable": k} for n, (u, k) in count_units(net, bm).items()}
        return rep
    from nnmip.formulations.verification import build_fixed_model  # the relaxations are formulations

    for n, op in net.items():
        if isinstance(op, Input):
            continue
        if bounds is None and all(bm[s] is ibp[s] for s in net.inputs_of(n)):
            lo, hi = bm[n]           # its inputs have their interval bounds still: so has the node
        else:
            lo, hi = _box_interval(net, n, bm)
            if isinstance(op, (Dense, Sum, Smooth)):
                lo, hi = widen(lo, hi)   # as in propagate_bounds: float sums may round the other way
                lo, hi = lo - slack[n], hi + slack[n]
            lo, hi = np.maximum(lo, bm[n][0]), np.minimum(hi, bm[n][1])
            bm[n] = (lo, hi)
        nxt = _feeds(net, n)
        if not isinstance(op, Dense):
            continue
        if isinstance(net.op(net.inputs_of(n)[0]), Input) and region.kinds() <= {"box", "linf"}:
            continue   # interval bounds of a first layer over a box are exact
        if not isinstance(nxt, (ReLU, Step, Sign)) or unstable_mask(nxt, lo, hi).any():
            s_lo, s_hi = symbolic_bounds(net, region, n, bm, shared)
            lo, hi = np.maximum(lo, s_lo - slack[n]), np.minimum(hi, s_hi + slack[n])
            bm[n] = (lo, hi)
        if not isinstance(nxt, (ReLU, Step, Sign)):
            continue
        todo = np.flatnonzero(unstable_mask(nxt, lo, hi))
        if method == "symbolic":
            continue
        left = None if time_limit is None else time_limit - (time.perf_counter() - t0)
        if todo.size == 0 or (left is not None and left <= 0) or STOP.is_set():   # time up, or Ctrl-C
            rep.complete &= todo.size == 0
            continue
        mm = method_map
        if method == "lp-cuts" and (method_map or {}).get("relu", "bigm") == "bigm":
            mm = {**(method_map or {}), "relu": "ideal-cuts"}   # "extended" is already the ideal formulation
        fm = build_fixed_model(net, region, bm, upto=n, method=mm)
        cols = fm.pre_cols[n]
        if method == "lp" or (method == "lp-cuts" and not fm.cut_units):
            lo, hi, done, solves = _lp_pass(fm.model, cols, todo, lo, hi, nxt, t0, time_limit, solver)
            rep.lps += solves
        elif method == "lp-cuts":
            lo, hi, done, solves = _lp_cut_pass(fm, cols, todo, lo, hi, nxt, t0, time_limit, solver)
            rep.lps += solves
        else:
            lo, hi, done, solves = _milp_pass(net, fm, n, cols, todo, lo, hi, nxt, solver, t0, time_limit)
            rep.milps += solves
        rep.complete &= done >= todo.size
        # the LPs bound the exact network; the forward pass may round past them by the node's slack
        bm[n] = (np.maximum(bm[n][0], lo - slack[n]), np.minimum(bm[n][1], hi + slack[n]))
    rep.per_node = {k: {"units": u, "unstable": s} for k, (u, s) in count_units(net, bm).items()}
    rep.unstable = sum(v["unstable"] for v in rep.per_node.values())
    rep.seconds = time.perf_counter() - t0
    log.info("bounds (%s): %d of %d units stable (interval: %d), %d LPs, %d MILPs, %.2fs", method, rep.stable,
             rep.units, rep.units - rep.unstable_interval, rep.lps, rep.milps, rep.seconds)
    return rep


def _unit_pass(cols: npt.NDArray[np.int64], todo: npt.NDArray[np.int64], lo: FloatArray, hi: FloatArray, act: Op,
               spent: Any, upper: Any) -> tuple[FloatArray, FloatArray, int]:
    """Tighten the units ``todo`` in order with ``upper(j, s)``, a sound bound of ``max s x_j`` over the column
    ``j = cols[i]``: the upper bound first, the lower one only while the unit is still unstable.  Stops when
    ``spent()``; returns the new bounds and the number of units done.
    """
    lo, hi = lo.copy(), hi.copy()
    done = 0
    for i in todo:
        if spent():
            break
        j = int(cols[i])
        hi[i] = min(hi[i], upper(j, 1.0))
        if unstable_mask(act, lo[i:i + 1], hi[i:i + 1]).any():
            lo[i] = max(lo[i], -upper(j, -1.0))
        if lo[i] > hi[i]:   # only possible when the region is empty up to tolerances
            lo[i] = hi[i] = 0.5 * (lo[i] + hi[i])
        done += 1
    return lo, hi, done


def _lp_pass(model: MatrixModel, cols: npt.NDArray[np.int64], todo: npt.NDArray[np.int64], lo: FloatArray,
             hi: FloatArray, act: Op, t0: float, time_limit: float | None, solver: str = "highs"
             ) -> tuple[FloatArray, FloatArray, int, int]:
    left = None if time_limit is None else time_limit - (time.perf_counter() - t0)
    ses = LpBounds(model, left, solver)

    def spent() -> bool:
        return (time_limit is not None and time.perf_counter() - t0 > time_limit) or STOP.is_set()

    lo, hi, done = _unit_pass(cols, todo, lo, hi, act, spent, lambda j, s: ses.maximize({j: s}))
    return lo, hi, done, ses.solves


def _lp_cut_pass(fm: Any, cols: npt.NDArray[np.int64], todo: npt.NDArray[np.int64], lo: FloatArray,
                 hi: FloatArray, act: Op, t0: float, time_limit: float | None, solver: str = "highs"
                 ) -> tuple[FloatArray, FloatArray, int, int]:
    """Per-unit LP bounds, each LP strengthened by the ideal cuts of the earlier ReLU layers.

    Math
    ----
    For unit ``i`` and each side, solve ``max +-a_i`` over the LP relaxation of the layers before it, add the
    ideal cuts (docs/formulations.md §18) of the earlier unstable units that the optimum violates, and repeat, up
    to ``CUT_BOUND_ROUNDS`` rounds or until none is violated; the bound is the weak-duality bound of the last
    LP (:class:`LpBounds`), so it is sound whatever the solver's accuracy.  Every cut is valid for every input
    of the region (it holds on the graph of each ReLU over the proven bounds of its inputs), so the bound is
    one of the network, and it is never looser than the plain LP's: the first round is that LP.  Each LP keeps
    only its own cuts: pooling them over the units of a layer made each LP larger and the pass slower
    (129 s against 9 s on 20-64-64-2, for bounds 4 % tighter).

    With HiGHS the rounds run in one LP session for the whole layer: the cuts of a bound are added as rows and
    dropped once it is proven, and each solve starts from the last basis (5.3x faster than solving every round
    from scratch on the hard 20-64-64-2 instance, 1.6 s against 8.5 s; the cuts then come from other optimal
    vertices, so single bounds differ either way while the sum of the widths was 1.3 % smaller).  Backends
    whose LP sessions take no rows solve each round from scratch.
    """
    from nnmip.backends import get_backend
    from nnmip.formulations.ideal import add_cuts, cut_rows
    from nnmip.solution import SolveOptions, Status

    backend = get_backend(solver)
    if not backend.capabilities.lp_duals:
        backend = get_backend("highs")
    base = fm.model.relaxed().replace(c0=0.0, sense="max", cones=())
    solves = 0

    def left() -> float | None:
        """Seconds left, or None; 0 once spent or stopped (the clock is read once per decision)."""
        if STOP.is_set():
            return 0.0
        return None if time_limit is None else max(time_limit - (time.perf_counter() - t0), 0.0)

    if backend.capabilities.lp_rows:
        ses = backend.lp_session(base, left())  # type: ignore[attr-defined]

        def warm(j: int, sign: float) -> float:
            """The rounds in one LP session: the cuts are added as rows and dropped afterwards, the basis kept."""
            nonlocal solves
            blocks: list[Any] = []
            y, used, status = None, 0, "failed"
            for r in range(CUT_BOUND_ROUNDS + 1):
                t = left()
                if t == 0.0:
                    break
                status, yr = ses.maximize({j: sign}, t)
                solves += 1
                if status != "optimal":
                    break
                y, used = yr, len(blocks)
                if r == CUT_BOUND_ROUNDS:
                    break
                A, rhs, _ = cut_rows(fm.cut_units, ses.x, base.col_lb, base.col_ub, base.num_cols)
                if rhs.size == 0:
                    break
                ses.add_rows(A, np.full(rhs.size, -np.inf), rhs)
                blocks.append((A, rhs))
            ses.drop_rows(base.num_rows)
            if status == "infeasible":      # no input of the region (the cuts hold for all of them)
                return -np.inf
            if y is None:
                return np.inf
            m = base
            if used:
                m = base.replace(A=sp.csr_array(sp.vstack([base.A] + [a for a, _ in blocks[:used]], format="csr")),
                                 row_lb=np.concatenate([base.row_lb] + [np.full(b.size, -np.inf)
                                                                        for _, b in blocks[:used]]),
                                 row_ub=np.concatenate([base.row_ub] + [b for _, b in blocks[:used]]))
            return _sound_bound(m, {j: sign}, y)

        lo, hi, done = _unit_pass(cols, todo, lo, hi, act, lambda: left() == 0.0, warm)
        return lo, hi, done, solves

    def upper(j: int, sign: float) -> float:
        nonlocal solves
        c = np.zeros(base.num_cols)
        c[j] = sign
        m = base.replace(c=c)
        for r in range(CUT_BOUND_ROUNDS):
            t = left()
            if t == 0.0:
                break
            raw = backend.solve(m, SolveOptions(time_limit=t, threads=1))   # small LPs: one thread
            solves += 1
            if raw.status is not Status.OPTIMAL or raw.x is None:
                break
            m, added = add_cuts(m, fm.cut_units, raw.x, r)
            if added == 0:
                break
        solves += 1
        return LpBounds(m, left(), backend.name).maximize({j: sign})

    lo, hi, done = _unit_pass(cols, todo, lo, hi, act, lambda: left() == 0.0, upper)
    return lo, hi, done, solves


def _milp_pass(net: Network, fm: Any, node: str, cols: npt.NDArray[np.int64], todo: npt.NDArray[np.int64],
               lo: FloatArray, hi: FloatArray, act: Op, solver: str, t0: float,
               time_limit: float | None) -> tuple[FloatArray, FloatArray, int, int]:
    """Decide each unit exactly: is ``a_i`` ever positive (and, for ReLU, ever negative)?"""
    from nnmip.backends import get_backend
    from nnmip.solution import SolveOptions, Status

    backend = get_backend(solver)
    lo, hi = lo.copy(), hi.copy()
    done = solves = 0
    model = fm.model
    size = np.abs(np.concatenate([model.col_lb, model.col_ub]))
    size = size[np.isfinite(size)]
    if size.size and float(size.max()) > MILP_TRUST_SCALE:
        log.info("bounds: the model's bounds reach %.3g, past %.0e: its MILPs are no proof, the units keep their "
                 "LP bounds", float(size.max()), MILP_TRUST_SCALE)
        return lo, hi, int(todo.size), 0
    def left() -> float | None:
        return None if time_limit is None else time_limit - (time.perf_counter() - t0)

    for i in todo:
        rest = left()
        if (rest is not None and rest <= 0) or STOP.is_set():
            break
        j = int(cols[i])
        cut = False
        for direction in (1.0, -1.0):
            rest = left()        # the second direction gets what the first one left, not what was left before it
            if direction < 0 and ((rest is not None and rest <= 0) or STOP.is_set()):
                cut = True       # the unit keeps its lower bound (sound), and counts as not done
                break
            c = np.zeros(model.num_cols)
            c[j] = direction
            # stop as soon as a witness of instability is found (a_i > 0 for max, a_i < 0 for min)
            res = backend.solve(model.replace(c=c, c0=0.0, sense="max"),
                                SolveOptions(time_limit=None if rest is None else max(rest, 0.01),
                                             stop_objective=1e-6))
            solves += 1
            if res.status is Status.INFEASIBLE:
                bound = -np.inf
            elif res.bound is not None and res.status in (Status.OPTIMAL, Status.TIME_LIMIT):
                bound = res.bound + SAFETY * (1 + abs(res.bound))
            else:
                bound = np.inf
            if res.x is not None:   # a forward-pass witness keeps the bound honest
                x = res.x[fm.x_cols]
                val = net.forward(x[None, :], all_nodes=True)[node][0, i]
                bound = max(bound, direction * val)
            if direction > 0:
                hi[i] = min(hi[i], bound)
                if not unstable_mask(act, lo[i:i + 1], hi[i:i + 1]).any():
                    break
            else:
                lo[i] = max(lo[i], -bound)
        if cut:
            break
        done += 1
    return lo, hi, done, solves
