"""Lossless compression of fixed-weight networks over an input domain, and the ``nnmip compress`` command.

Over a bounded input box, a unit whose pre-activation bounds fix its activation computes a constant or a
linear function:

* a ReLU unit with ``U <= 0`` is dead (always 0), a step/sign unit with ``L > 0`` or ``U <= 0`` is constant,
  and so is any unit whose incoming weights are all zero (``act(b)``): the unit is removed and its constant
  output folded into the next layer's bias;
* a ReLU unit with ``L >= 0`` is linear; when every unit left in a layer is linear the layer is folded into the
  next affine map (``W' = W_next W``, ``b' = W_next b + b_next``), provided that does not add parameters.
  (A layer that mixes linear and non-linear units stays: a chain network has no skip connection to carry the
  linear part.)

Stability is proven by interval bounds, then LP bounds, then a MILP per still-unstable unit (``method``).  The
result is checked twice: sampled inputs must agree (:func:`sampled_difference`) and, for small networks, a
MILP over the domain proves ``max_x |f(x) - g(x)|`` (:func:`prove_equivalence`).  The smaller network equals the
original on the box only, so it declares the box as its input domain; a box reaching past the declared domain
replaces it (:meth:`~nnmip.ir.network.Network.with_input_domain`).  A time limit or a :class:`Deadline` is one
wall-clock budget shared by the bound tightening and the proof.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from nnmip.drivers.deadline import Deadline
from nnmip.errors import FormulationError, ParameterError
from nnmip.formulations.verification import FixedModel, build_fixed_model
from nnmip.ir.builder import NetworkBuilder, fixed
from nnmip.ir.network import Network
from nnmip.ir.ops import Dense, Identity, Input, ReLU, Sign, Step
from nnmip.ir.spec import Region, box
from nnmip.model import Block
from nnmip.passes.bounds import (
    MILP_TRUST_SCALE,
    SAFETY,
    UNIT_ROUNDOFF,
    BoundReport,
    bound_scale,
    rounding_profile,
    rounding_slack,
    tighten_bounds,
)
from nnmip.solution import STOP, stops_on_ctrl_c

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


@dataclass
class _Layer:
    name: str
    W: FloatArray
    b: FloatArray
    act: str | None          # "relu" | "step" | "sign" | None (affine output)
    act_name: str | None
    has_bias: bool = True    # False for a layer declared without a bias: written without one while it stays 0


@dataclass
class CompressResult:
    """The compressed network and what was removed; ``max_sampled_diff`` / ``proof`` once checked."""

    network: Network
    original: Network
    method: str
    removed_units: dict[str, int] = field(default_factory=dict)
    folded_layers: list[str] = field(default_factory=list)
    units_before: int = 0
    units_after: int = 0
    params_before: int = 0
    params_after: int = 0
    bounds: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    max_sampled_diff: float | None = None
    samples: int = 0
    proof: dict[str, Any] | None = None
    #: the box compressed over (in the network's input units): the smaller network declares it as its domain
    domain: tuple[FloatArray, FloatArray] | None = None

    def to_dict(self) -> dict[str, Any]:
        dom = None if self.domain is None else {"lo": self.domain[0].tolist(), "hi": self.domain[1].tolist()}
        return {"method": self.method, "domain": dom, "units_before": self.units_before,
                "units_after": self.units_after,
                "params_before": self.params_before, "params_after": self.params_after,
                "removed_units": self.removed_units, "folded_layers": self.folded_layers,
                "seconds": round(self.seconds, 4), "max_sampled_diff": self.max_sampled_diff,
                "samples": self.samples, "proof": self.proof, "bounds": self.bounds,
                "layers": [(n, net_op.kind, self.network.dim(n)) for n, net_op in self.network.items()]}


def _chain(net: Network) -> tuple[str, list[_Layer], str | None]:
    """The network as [dense (+ activation)] layers; raises for shapes compression does not handle."""
    from nnmip.formulations.training import check_trainable_chain

    check_trainable_chain(net)
    layers: list[_Layer] = []
    out_identity = None
    nodes = [n for n in net.nodes if not isinstance(net.op(n), Input)]
    i = 0
    while i < len(nodes):
        n = nodes[i]
        op = net.op(n)
        if isinstance(op, Identity):
            out_identity = n if i == len(nodes) - 1 else out_identity
            i += 1
            continue
        if not isinstance(op, Dense):
            raise FormulationError.at("E0425", f"compression expects dense layers each followed by at most one "
                                      f"activation, but '{n}' ({op.kind}) follows no dense layer", op.span)
        if op.trainable:
            raise FormulationError.at("E0421", f"layer '{n}' has weights that are not fixed", op.span,
                                      ["help: compression needs fixed weights"])
        act = act_name = None
        if i + 1 < len(nodes) and isinstance(net.op(nodes[i + 1]), (ReLU, Step, Sign)):
            act_name = nodes[i + 1]
            act = net.op(act_name).kind
            i += 1
        layers.append(_Layer(n, np.array(op.W, dtype=np.float64), np.array(op.b, dtype=np.float64), act, act_name,
                             op.bias is not None))
        i += 1
    return net.input, layers, out_identity


def _bound(what: str, value: object, n: int) -> npt.NDArray[np.float64]:
    """One number or ``n`` numbers for a side of the input box (ParameterError otherwise)."""
    try:
        a = np.asarray(value)
        if a.dtype.kind not in "biuf":
            raise TypeError
        a = a.astype(np.float64)
    except (TypeError, ValueError):
        raise ParameterError.of(what, f"must be a number or an array of numbers, got {value!r:.60}",
                                code="E0108") from None
    if a.ndim > 1 or (a.ndim == 1 and a.shape[0] != n) or np.isnan(a).any():
        raise ParameterError.of(what, f"must be one number or {n} numbers (no NaN), got shape {a.shape}",
                                f"the network has {n} inputs", code="E0412")
    return np.broadcast_to(a, (n,)).copy()


@stops_on_ctrl_c
def compress(net: Network, lo: npt.ArrayLike | None = None, hi: npt.ArrayLike | None = None, *,
             method: str = "milp", solver: str = "highs", time_limit: float | None = None,
             deadline: Deadline | None = None) -> CompressResult:
    """Remove the units of ``net`` whose activation is fixed on the box ``[lo, hi]`` (default: the input domain)
    and fold layers that became linear; the result computes the same function on the box, and declares that box
    as its input domain (it stands for ``net`` there only).

    A unit whose incoming weights are all zero computes the constant ``act(b)`` (exactly, in the forward pass):
    it is removed like a stable unit.  ``time_limit`` (seconds) and ``deadline`` (a :class:`Deadline` shared with
    the rest of a run, e.g. :func:`prove_equivalence`) bound the wall-clock time of the bound tightening; units
    not proven stable in time are kept.
    """
    t0 = time.perf_counter()
    from nnmip.errors import check_instance, check_number

    if not isinstance(net, Network):
        raise ParameterError.of("net", f"must be a Network, got {type(net).__name__}", code="E0108")
    check_number("time_limit", time_limit, low=0.0, none=True)
    check_instance("deadline", deadline, Deadline, "a Deadline or None", none=True)
    dl = Deadline.of(time_limit, deadline)
    if not isinstance(solver, str):
        raise ParameterError.of("solver", f"must be a solver name, got {solver!r:.60}",
                                "use 'highs', 'cbc' or 'gurobi'")
    from nnmip.backends import get_backend

    get_backend(solver)   # an unknown or missing solver is refused before any bound is computed
    op_in = net.op(net.input)
    assert isinstance(op_in, Input)
    n = net.n_inputs
    lo_a = _bound("lo", lo if lo is not None else (op_in.lo if op_in.lo is not None else -np.inf), n)
    hi_a = _bound("hi", hi if hi is not None else (op_in.hi if op_in.hi is not None else np.inf), n)
    if not (np.isfinite(lo_a).all() and np.isfinite(hi_a).all()):
        raise FormulationError.at("E0413", "compression needs a bounded input domain", op_in.span,
                                  ["help: pass --domain LO HI, or declare the input as x: n real[lo, hi]"])
    region = Region((box(lo_a, hi_a),))
    inp, layers, out_identity = _chain(net)
    STOP.begin()        # a Ctrl-C from here ends the tightening with the units it proved (the rest are kept)
    rep: BoundReport = tighten_bounds(net.with_input_domain(lo_a, hi_a), region, method=method, solver=solver,
                                      time_limit=dl.left())
    res = CompressResult(net, net, method, bounds=rep.to_dict(), domain=(lo_a.copy(), hi_a.copy()))
    res.units_before = sum(L.W.shape[0] for L in layers if L.act is not None)
    res.params_before = net.num_params()

    k = 0
    while k < len(layers) - 1:
        L, nxt = layers[k], layers[k + 1]
        if L.act is None:
            k += 1
            continue
        a_lo, a_hi = rep.bounds[L.name]
        if L.act == "relu":
            const = a_hi <= 0
            linear = a_lo >= 0
            value = np.zeros_like(a_lo)
        else:
            on, off = a_lo > 0, a_hi <= 0
            const = on | off
            linear = np.zeros_like(const)
            low = 0.0 if L.act == "step" else -1.0
            value = np.where(on, 1.0, low)
        # a unit with no incoming weight outputs act(b) for every input, exactly (0 * x adds nothing)
        zero_row = ~np.any(L.W != 0, axis=1)
        if zero_row.any():
            act_op = net.op(L.act_name) if L.act_name is not None else None
            assert act_op is not None
            value = np.where(zero_row, act_op.forward(L.b), value)
            const = const | zero_row
            linear = linear & ~zero_row
        keep = ~const
        if const.any():
            nxt.b = nxt.b + nxt.W[:, const] @ value[const]
            res.removed_units[L.act_name or L.name] = int(const.sum())
            if not keep.any():                      # keep one silent unit so the chain stays a chain
                keep = np.zeros_like(keep)
                keep[0] = True
                L.W[0] = 0.0
                L.b[0] = 0.0
                nxt.W[:, 0] = 0.0
                linear = np.zeros_like(keep)
            L.W, L.b, nxt.W = L.W[keep], L.b[keep], nxt.W[:, keep]
            a_lo, a_hi, linear = a_lo[keep], a_hi[keep], linear[keep]
            rep.bounds[L.name] = (a_lo, a_hi)
        if L.act == "relu" and linear.all():
            merged_W = nxt.W @ L.W
            if merged_W.size + nxt.b.size <= L.W.size + L.b.size + nxt.W.size + nxt.b.size:
                nxt.b = nxt.W @ L.b + nxt.b
                nxt.W = merged_W
                res.folded_layers.append(L.name)
                layers.pop(k)
                continue
        k += 1

    nb = NetworkBuilder(net.name)
    # the smaller network equals ``net`` on the compression box only: that box is its declared domain
    cur = nb.input(inp, n, lo_a, hi_a, span=op_in.span)
    for L in layers:
        with_bias = L.has_bias or bool(np.any(L.b != 0.0))   # folded constants may give a layer one
        cur = nb.dense(L.name, cur, L.W.shape[0], weights=fixed(L.W), bias=fixed(L.b) if with_bias else None)
        if L.act is not None:
            cur = nb.activation(L.act, L.act_name or f"{L.name}_act", cur)
    if out_identity is not None:
        cur = nb.identity(out_identity, cur)
    res.network = nb.build()
    res.units_after = sum(L.W.shape[0] for L in layers if L.act is not None)
    res.params_after = res.network.num_params()
    res.seconds = time.perf_counter() - t0
    log.info("compress %s: %d -> %d units, %d -> %d parameters (%s bounds) in %.2fs", net.name, res.units_before,
             res.units_after, res.params_before, res.params_after, method, res.seconds)
    return res


def _pair_box(f: object, g: object, lo: object, hi: object) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The box of a comparison of two networks, after refusing what cannot be compared: ``f`` or ``g`` not a
    Network (E0108), networks of different input or output sizes, a side of the box of the wrong size or with
    NaN (E0412), an unbounded box (E0413) or an empty one (E0412).
    """
    for name, v in (("f", f), ("g", g)):
        if not isinstance(v, Network):
            raise ParameterError.of(name, f"must be a Network, got {type(v).__name__}", code="E0108")
    assert isinstance(f, Network)
    assert isinstance(g, Network)
    if (f.n_inputs, f.n_outputs) != (g.n_inputs, g.n_outputs):
        raise ParameterError.of("g", f"has {g.n_inputs} inputs and {g.n_outputs} outputs, f has "
                                f"{f.n_inputs} and {f.n_outputs}", "compare two networks of the same shape",
                                code="E0412")
    lo_a, hi_a = _bound("lo", lo, f.n_inputs), _bound("hi", hi, f.n_inputs)
    if not (np.isfinite(lo_a).all() and np.isfinite(hi_a).all()):
        raise ParameterError.of("lo", "and hi must be finite: the comparison is over a bounded box",
                                "pass the box the networks are compared on", code="E0413")
    if (lo_a > hi_a).any():
        j = int(np.argmax(lo_a > hi_a))
        raise ParameterError.of("lo", f"exceeds hi at input {j} ({lo_a[j]:g} > {hi_a[j]:g}): the box is empty",
                                code="E0412")
    return lo_a, hi_a


#: points drawn and run at a time by :func:`sampled_difference` (the deadline is looked at between chunks)
SAMPLE_CHUNK = 16_384


def sampled_difference(f: Network, g: Network, lo: npt.ArrayLike, hi: npt.ArrayLike, n: int = 10_000,
                       seed: int = 0, *, deadline: Deadline | None = None) -> float:
    """``max |f(x) - g(x)|`` over ``n`` (at least 1) random points of the box, a tenth of them corners of the
    box picked at random.  The points run in chunks of :data:`SAMPLE_CHUNK` (each a tenth corners); with a
    ``deadline`` they stop when it ends (after the first chunk): :func:`sampled_points` says how many ran.
    """
    return sampled_points(f, g, lo, hi, n, seed, deadline=deadline)[0]


def sampled_points(f: Network, g: Network, lo: npt.ArrayLike, hi: npt.ArrayLike, n: int = 10_000,
                   seed: int = 0, *, deadline: Deadline | None = None) -> tuple[float, int]:
    """:func:`sampled_difference` and the number of points it ran: ``n``, or fewer when ``deadline`` ended (or a
    stop request came) first.  The first chunk always runs, so that the check is never empty.
    """
    from nnmip.errors import check_instance, check_int

    lo_a, hi_a = _pair_box(f, g, lo, hi)
    check_int("n", n, low=1)
    check_int("seed", seed, low=0)
    check_instance("deadline", deadline, Deadline, "a Deadline or None", none=True)
    rng = np.random.default_rng(seed)
    d = f.n_inputs
    worst, done = 0.0, 0
    while done < n and (done == 0 or deadline is None or not deadline.expired()):
        m = min(SAMPLE_CHUNK, n - done)
        X = lo_a + rng.random((m, d)) * (hi_a - lo_a)
        X[: m // 10] = np.where(rng.integers(0, 2, (m // 10, d)).astype(bool), hi_a, lo_a)
        worst = max(worst, float(np.max(np.abs(f.forward(X) - g.forward(X)))))
        done += m
    return worst, done


def prove_equivalence(f: Network, g: Network, lo: npt.ArrayLike, hi: npt.ArrayLike, *, solver: str = "highs",
                      time_limit: float | None = None, deadline: Deadline | None = None) -> dict[str, Any]:
    """Prove a bound on ``max_x |f(x) - g(x)|`` over the box by MILPs over both networks on one input.

    Returns ``{"bound": proven upper bound, "value": largest forward-pass difference at the solutions,
    "optimal": all MILPs solved to optimality, "milps": count}``.  ``time_limit`` (seconds) and ``deadline`` (the
    run's :class:`Deadline`) bound the wall-clock time of the whole proof, its LP bounds included; a MILP cut
    short, or not started because the time ran out, leaves a sound but looser bound and ``optimal`` false.
    """
    from nnmip.backends import get_backend
    from nnmip.errors import check_instance, check_number
    from nnmip.solution import SolveOptions, Status

    lo_a, hi_a = _pair_box(f, g, lo, hi)
    check_number("time_limit", time_limit, low=0.0, none=True)
    check_instance("deadline", deadline, Deadline, "a Deadline or None", none=True)
    dl = Deadline.of(time_limit, deadline)
    t0 = time.perf_counter()
    region = Region((box(lo_a, hi_a),))
    # the proof is over the box, whatever they declare
    f, g = f.with_input_domain(lo_a, hi_a), g.with_input_domain(lo_a, hi_a)
    # the LP bounds share the budget: the units not reached in time keep their (sound) interval bounds
    bf = tighten_bounds(f, region, method="lp", time_limit=dl.left()).bounds
    bg = tighten_bounds(g, region, method="lp", time_limit=dl.left()).bounds
    fa = build_fixed_model(f, region, bf, name="f")
    ga = build_fixed_model(g, region, bg, name="g")
    m, oa, ob, xa, xb = _joint(fa, ga)
    backend = get_backend(solver)
    # what the float64 forward passes may add to the exact difference (formulations.md §6), and the interval
    # bound of |f - g| that stands where a MILP is no proof
    prof_f, prof_g = rounding_profile(f, lo_a, hi_a), rounding_profile(g, lo_a, hi_a)
    Pf, Pg = prof_f[0][f.output], prof_g[0][g.output]
    slack = (rounding_slack(f, lo_a, hi_a, prof_f)[f.output] + rounding_slack(g, lo_a, hi_a, prof_g)[g.output]
             + 4.0 * UNIT_ROUNDOFF * (Pf + Pg))
    (flo, fhi), (glo, ghi) = bf[f.output], bg[g.output]
    box_gap = np.maximum(fhi - glo, ghi - flo) + slack
    scale = max(bound_scale(bf), bound_scale(bg))
    trusted = scale <= MILP_TRUST_SCALE
    bound, value, optimal, count = 0.0, 0.0, trusted, 0
    notes: list[str] = []
    if not trusted:
        notes.append(f"the networks' values reach {scale:.3g}: past {MILP_TRUST_SCALE:.0e} a MILP is no proof, so "
                     "the bound is the interval one")
    skipped = 0
    for i in range(f.n_outputs):
        out_bound = -np.inf
        for sgn in (1.0, -1.0):
            if not trusted:
                out_bound = np.inf
                break
            if dl.expired():     # no time left for this MILP: the interval bound of |f - g| stands for the output
                out_bound, optimal = np.inf, False
                skipped += 1
                break
            c = sgn * (oa[i] - ob[i])
            raw = backend.solve(m.replace(c=np.asarray(c, dtype=np.float64), c0=0.0, sense="max"),
                                SolveOptions(time_limit=dl.solve_limit(), mip_gap=0.0))
            count += 1
            optimal &= raw.status is Status.OPTIMAL
            b = raw.bound if raw.bound is not None else (raw.objective if raw.status is Status.OPTIMAL else np.inf)
            b = np.inf if b is None else float(b)
            out_bound = max(out_bound, b + SAFETY * (1 + abs(b)) + float(slack[i]))
            if raw.x is not None:
                x = np.clip(raw.x[xa], lo_a, hi_a)
                value = max(value, float(np.max(np.abs(f.forward(x) - g.forward(x)))))
        bound = max(bound, min(out_bound, float(box_gap[i])))
    if skipped:
        notes.append(f"the time ran out: {skipped} of {f.n_outputs} outputs are bounded by interval arithmetic only")
    if value > bound:     # a forward difference above the MILPs' bound: they failed numerically
        notes.append(f"a forward-pass difference {value:.3g} exceeds the MILPs' bound {bound:.3g}: the bound is the "
                     "interval one")
        bound, optimal = max(float(np.max(box_gap)), value), False
    return {"bound": bound, "value": value, "optimal": bool(optimal), "milps": count,
            "seconds": round(time.perf_counter() - t0, 4), "notes": notes}



def _joint(fa: FixedModel, ga: FixedModel) -> tuple[Any, list[FloatArray], list[FloatArray], Any, Any]:
    """Both models side by side with ``x_f = x_g``; returns the model and each output as a cost vector."""
    A, B = fa.model, ga.model
    na = A.num_cols
    n = na + B.num_cols
    k = fa.x_cols.size
    tie = sp.csr_array((np.r_[np.ones(k), -np.ones(k)], (np.r_[np.arange(k), np.arange(k)],
                                                         np.r_[fa.x_cols, na + ga.x_cols])), shape=(k, n))
    M = sp.csr_array(sp.vstack([sp.block_diag([A.A, B.A]), tie], format="csr"))
    shift = tuple(Block(b.node, b.role, b.start + na, b.shape) for b in B.col_blocks)
    rshift = tuple(Block(b.node, b.role, b.start + A.num_rows, b.shape) for b in B.row_blocks)
    m = A.replace(A=M, c=np.zeros(n), c0=0.0, row_lb=np.r_[A.row_lb, B.row_lb, np.zeros(k)],
                  row_ub=np.r_[A.row_ub, B.row_ub, np.zeros(k)], col_lb=np.r_[A.col_lb, B.col_lb],
                  col_ub=np.r_[A.col_ub, B.col_ub], vtype=np.r_[A.vtype, B.vtype],
                  col_blocks=A.col_blocks + shift, row_blocks=A.row_blocks + rshift + (Block("x", "tie", M.shape[0]
                                                                                          - k, (k,)),),
                  cones=(), name="equivalence")
    oa_coef = fa.out.padded(na).toarray()
    ob_coef = ga.out.padded(B.num_cols).toarray()
    outs_a = [np.r_[oa_coef[i], np.zeros(B.num_cols)] for i in range(oa_coef.shape[0])]
    outs_b = [np.r_[np.zeros(na), ob_coef[i]] for i in range(ob_coef.shape[0])]
    # constants of the two outputs differ by a fixed amount: fold it into the comparison afterwards
    if np.any(fa.out.const != ga.out.const):
        const_col = n
        m = m.replace(A=sp.csr_array(sp.hstack([M, sp.csr_array((M.shape[0], 1))])), c=np.zeros(n + 1),
                      col_lb=np.r_[m.col_lb, 1.0], col_ub=np.r_[m.col_ub, 1.0], vtype=np.r_[m.vtype, "C"],
                      col_blocks=m.col_blocks + (Block("const", "one", const_col, ()),))
        outs_a = [np.r_[o, fa.out.const[i]] for i, o in enumerate(outs_a)]
        outs_b = [np.r_[o, ga.out.const[i]] for i, o in enumerate(outs_b)]
    return m, outs_a, outs_b, fa.x_cols, ga.x_cols + na
