"""Verification of fixed-weight networks: ``verify(net, input_set, property) -> VerifyResult``.

Answers
-------
``certified``
    The property holds on the whole input set; ``bound`` is the proven bound (for ``classified``: an upper
    bound of ``max_{j != c} y_j - y_c`` over the set, negative; for ``maximize``: an upper bound of the
    objective).
``counterexample``
    An input of the set that the numpy forward pass shows to violate the property (never reported
    otherwise).
``unknown``
    A time limit or an undecided relaxation; ``bound`` and ``value`` are the best known bounds.

For ``maximize``/``minimize`` without a threshold the answer is ``certified`` when the optimum is proven
(``value`` is the forward-pass value of the best input found, ``bound`` the solver's proven bound).

Pipeline: sample the set (a violating sample is returned at once), prove interval bounds, tighten them
(symbolic back-substitution, LP per unstable unit), then per failure case: the interval bound, the LP bound,
and finally the MILP.  For a yes/no property the MILP carries the floor ``score >= 0``: it is infeasible exactly
when the case cannot be hit (then ``bound`` is the best relaxation bound, or 0), and any solution it finds is a
candidate counterexample for the forward pass.  A candidate the forward pass rejects (a tie, a step unit at
``a = 0``) sends the case to the plain optimisation MILP, whose bound then decides.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from nnmip.drivers.deadline import Deadline
from nnmip.errors import (
    FormulationError,
    ParameterError,
    check_callable,
    check_choice,
    check_instance,
    check_int,
    check_number,
)
from nnmip.formulations.verification import FixedModel, build_fixed_model, score_bounds, start_vector, with_case
from nnmip.ir.builder import NetworkBuilder, fixed
from nnmip.ir.network import Network
from nnmip.ir.ops import Dense, Input, ReLU
from nnmip.ir.spec import Case, InputSet, Property, Region
from nnmip.passes.bounds import (
    MILP_TRUST_SCALE,
    SAFETY,
    BoundReport,
    LpSession,
    bound_scale,
    count_units,
    propagate_bounds,
    rounding_profile,
    rounding_slack,
    score_slack,
    tighten_bounds,
    unstable_mask,
)
from nnmip.solution import STOP, SolveOptions, Status, stops_on_ctrl_c

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

CERTIFIED, COUNTEREXAMPLE, UNKNOWN = "certified", "counterexample", "unknown"
#: ``tighten="auto"`` runs per-unit LPs only on networks up to this many parameters (symbolic bounds beyond)
AUTO_LP_PARAMS = 20_000


def auto_tighten(net: Network, solver: str = "highs") -> str:
    """What ``tighten="auto"`` means for ``net``: ``"lp-cuts"`` up to :data:`AUTO_LP_PARAMS` parameters when the
    bound LPs run in an LP session that takes rows (HiGHS's, which also serves SCIP, Gurobi and cvxpy: the cut
    rounds start from the last basis), ``"lp"`` when they run in one that does not (CBC's), and ``"symbolic"``
    beyond.  With one big-M MILP, lp-cuts bounds took 0.94x the median CPU of the LP bounds and their second
    model on the 20-64-64-2 questions, and 1.6-2.4x less time on the two slowest (docs/benchmarks.md).
    """
    from nnmip.backends import get_backend

    if net.num_params() > AUTO_LP_PARAMS:
        return "symbolic"
    caps = get_backend(solver).capabilities
    if not caps.lp_duals:                 # the bound LPs run in HiGHS's session (see LpBounds)
        caps = get_backend("highs").capabilities
    return "lp-cuts" if caps.lp_rows else "lp"
#: rounds of ideal ReLU cuts at the root with the ``ideal-cuts`` relu formulation (docs/formulations.md §18)
ROOT_CUT_ROUNDS = 15
#: with ``tighten="auto"`` on a ReLU network small enough for per-unit LPs and HiGHS or CBC (no cuts in their
#: tree), an optimisation MILP not solved within this many seconds is stopped and solved again on the stronger
#: model: bounds tightened with ``lp-cuts`` and ReLUs with ideal cuts, started from the best input found.  Only
#: when at least ``ESCALATE_BUDGET`` times as long is left (or the run is unlimited): a short budget keeps its
#: one MILP
ESCALATE_SECONDS = 15.0
ESCALATE_BUDGET = 4.0


def _escalates(caps: Any) -> bool:
    """Solvers that switch to the stronger model: those without cuts in their tree (Gurobi and SCIP take the ideal
    cuts there instead) that take a start (so the second solve begins where the first ended): HiGHS, CBC.
    """
    return bool(caps.warm_start and not caps.user_cuts)
VNN_ANSWERS = {CERTIFIED: "unsat", COUNTEREXAMPLE: "sat"}


@dataclass
class CaseResult:
    """One failure case: its proven upper bound of the score, the best forward-pass score, how it ended."""

    label: str
    bound: float
    value: float | None
    decided_by: str          # "interval" | "symbolic" | "lp" | "milp" | "sampling" | "search" | "split" | "undecided"
    status: str = ""
    seconds: float = 0.0
    binaries: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"case": self.label, "bound": _num(self.bound), "value": _num(self.value),
                "decided_by": self.decided_by, "status": self.status, "seconds": round(self.seconds, 4),
                "binaries": self.binaries}


@dataclass
class VerifyResult:
    """The answer to one verification question (see the module docstring)."""

    result: str
    property: str
    bound: float | None
    value: float | None
    counterexample: FloatArray | None = None
    output: FloatArray | None = None
    predicted: int | None = None
    seconds: float = 0.0
    timed_out: bool = False
    solver: str = ""
    stable_units: int = 0
    unstable_units: int = 0
    total_units: int = 0
    binaries: int = 0
    binaries_saved: int = 0
    bounds: dict[str, Any] = field(default_factory=dict)
    model: dict[str, int] = field(default_factory=dict)
    cases: list[CaseResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def vnn_answer(self) -> str:
        """The VNN-COMP word: ``sat`` (counterexample), ``unsat`` (certified), ``timeout`` or ``unknown``."""
        if self.result in VNN_ANSWERS:
            return VNN_ANSWERS[self.result]
        return "timeout" if self.timed_out else "unknown"

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "property": self.property,
            "bound": _num(self.bound),
            "value": _num(self.value),
            "counterexample": None if self.counterexample is None else self.counterexample.tolist(),
            "output": None if self.output is None else self.output.tolist(),
            "predicted": self.predicted,
            "seconds": round(self.seconds, 4),
            "timed_out": self.timed_out,
            "solver": self.solver,
            "stable_units": self.stable_units,
            "unstable_units": self.unstable_units,
            "total_units": self.total_units,
            "binaries": self.binaries,
            "binaries_saved": self.binaries_saved,
            "bounds": self.bounds,
            "model": self.model,
            "cases": [c.to_dict() for c in self.cases],
            "notes": list(self.notes),
        }


def _num(v: float | None) -> float | str | None:
    if v is None:
        return None
    v = float(v)
    if np.isfinite(v):
        return v
    return "inf" if v > 0 else "-inf"


# ------------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------------
def as_region(net: Network, sets: Region | InputSet | Sequence[InputSet],
              domain: tuple[npt.ArrayLike, npt.ArrayLike] | None = None) -> Region:
    """A :class:`Region` from sets; the domain is ``domain``, else the network's input domain, if any."""
    if isinstance(sets, Region):
        region = sets
    elif isinstance(sets, InputSet):
        region = Region((sets,))
    else:
        region = Region(tuple(sets))
    lo = region.domain_lo
    hi = region.domain_hi
    if domain is not None:
        lo = np.broadcast_to(np.asarray(domain[0], np.float64), (net.n_inputs,)).copy()
        hi = np.broadcast_to(np.asarray(domain[1], np.float64), (net.n_inputs,)).copy()
    op = net.op(net.input)
    assert isinstance(op, Input)
    if lo is None and op.lo is not None:
        lo = op.lo
    if hi is None and op.hi is not None:
        hi = op.hi
    return Region(region.sets, lo, hi)


def fold_scaler(net: Network, scaler: Any) -> Network:
    """The network on raw inputs: ``x_scaled = (x - offset) / scale`` folded into the first dense layer."""
    if scaler is None:
        return net
    offset = np.asarray(scaler.offset, dtype=np.float64)
    scale = np.asarray(scaler.scale, dtype=np.float64)
    first = [n for n in net.nodes if not isinstance(net.op(n), Input)]
    if not first or not isinstance(net.op(first[0]), Dense):
        raise FormulationError.at("E0424", f"cannot fold the input scaling of '{net.name}' into its first layer",
                                  notes=["help: the first node after the input must be a dense layer"])
    d = net.op(first[0])
    assert isinstance(d, Dense)
    W = d.W / scale[None, :]
    b = d.b - W @ offset
    g = net.graph.copy()
    g.nodes[first[0]]["op"] = Dense(n_in=d.n_in, n_out=d.n_out, weights=fixed(W).resolve(W.shape),
                                    bias=fixed(b).resolve(b.shape), span=d.span)
    raw = Network(g, net.name)
    inp = net.op(net.input)
    if isinstance(inp, Input) and (inp.lo is not None or inp.hi is not None):
        # the declared domain is in scaled units (real[0, 1] after min-max scaling): the raw network's is mapped
        raw = raw.with_input_domain(*raw_domain(inp.lo, inp.hi, scaler))
    return raw


def raw_domain(lo: Any, hi: Any, scaler: Any) -> tuple[Any, Any]:
    """The box ``[lo, hi]`` of scaled inputs in raw units: ``x = x_scaled * scale + offset`` end by end, the ends
    swapped where a scale factor is negative (``None`` sides stay open: -inf / +inf).  Each end is widened by the
    rounding of that product and sum, so a raw input that scales to an end of ``[lo, hi]`` stays inside.
    """
    scale = np.asarray(scaler.scale, dtype=np.float64)
    offset = np.asarray(scaler.offset, dtype=np.float64)
    n = scale.size
    lo_s = np.full(n, -np.inf) if lo is None else np.broadcast_to(np.asarray(lo, np.float64), (n,))
    hi_s = np.full(n, np.inf) if hi is None else np.broadcast_to(np.asarray(hi, np.float64), (n,))
    eps = 2.0 * np.finfo(np.float64).eps
    with np.errstate(invalid="ignore"):
        a, b = lo_s * scale + offset, hi_s * scale + offset
        ra, rb = (np.nan_to_num(eps * (np.abs(v * scale) + np.abs(offset)), posinf=0.0) for v in (lo_s, hi_s))
    return np.minimum(a - ra, b - rb), np.maximum(a + ra, b + rb)


def _base_options(solver: str, opts: SolveOptions | None, time_left: float | None, decide: bool,
                  strict: bool) -> SolveOptions:
    o = SolveOptions() if opts is None else SolveOptions(**{**opts.__dict__})
    o.solver_options = dict(o.solver_options)
    if time_left is not None:
        o.time_limit = max(time_left, 0.01) if o.time_limit is None else min(o.time_limit, max(time_left, 0.01))
    if o.mip_gap is None:
        o.mip_gap = 1e-4 if decide else 1e-6
    if decide:
        # stop at the first incumbent that fails the property (the forward pass re-checks it), or once the bound
        # is decisive after widening (backends without early stopping solve to the gap)
        o.stop_objective = 1e-9 if strict else 0.0
        o.stop_bound = -2 * SAFETY
    return o


def _decided(bound: float, case: Case) -> bool:
    """The case cannot be hit when its score is bounded below 0 (or at 0 when every row is strict)."""
    return bound < 0 or (bound <= 0 and bool(np.all(case.strict)))


# ------------------------------------------------------------------------------------------------------------
# verify
# ------------------------------------------------------------------------------------------------------------
#: the most sample points :func:`verify` draws (each is one forward pass)
MAX_SAMPLES = 10_000_000
#: inputs drawn and run at a time by the sampling step (the time limit is looked at between chunks)
SAMPLE_CHUNK = 8_192


def _check_run(*, time_limit: object = None, samples: object = 0, seed: object = 0, workers: object = 1,
               options: object = None, method: object = None, domain: object = None, on_case: object = None,
               progress: object = None) -> None:
    """Refuse run arguments of :func:`verify` and its kin that cannot be used (ParameterError naming them)."""
    check_number("time_limit", time_limit, low=0.0, none=True)
    check_int("samples", samples, low=0, high=MAX_SAMPLES)
    check_int("seed", seed, low=0, high=2**32 - 1)
    check_int("workers", workers, low=1, high=1024)
    check_instance("options", options, SolveOptions, "SolveOptions or None", none=True)
    check_instance("method", method, dict, "a dict of layer name to formulation method, or None", none=True)
    check_callable("on_case", on_case)
    check_callable("progress", progress)
    if domain is not None:
        if not isinstance(domain, (tuple, list)) or len(domain) != 2:
            raise ParameterError.of("domain", f"must be a pair (lo, hi), got {domain!r:.60}", code="E0108")
        for side, v in zip(("lo", "hi"), domain, strict=True):
            try:
                a = np.asarray(v, dtype=np.float64)
            except (TypeError, ValueError):
                raise ParameterError.of("domain", f"{side} must be numbers, got {v!r:.60}", code="E0108") from None
            if np.isnan(a).any():
                raise ParameterError.of("domain", f"{side} contains NaN")


def check_question(net: Network, sets: Region | InputSet | Sequence[InputSet], prop: Property,
                   domain: tuple[npt.ArrayLike, npt.ArrayLike] | None = None, *, fixed: bool = True
                   ) -> tuple[Region, list[Case]]:
    """Everything about a verification question that needs no solve: fixed weights (unless ``fixed`` is False),
    sizes of the sets and the property, a bounded region within ``MAX_MAGNITUDE`` that holds a point, a property
    that survives an import's cut-off output.  ``nnmip check`` runs it on every verify statement; :func:`verify`
    before any work.  Returns the region and the property's cases.
    """
    region = as_region(net, sets, domain)
    if fixed and net.trainable:
        trainable = [n for n in net.dense_nodes() if net.op(n).trainable]  # type: ignore[attr-defined]
        op = net.op(trainable[0])
        raise FormulationError.at("E0421", f"layer '{trainable[0]}' of '{net.name}' has weights that are not "
                                  "fixed", op.span, ["help: verification needs fixed weights: load(...) them, "
                                                     "import an ONNX model, or train the network first"])
    if net.cut_output and not prop.compares_outputs_only(net.n_outputs):
        raise FormulationError.at(
            "E0428", f"the property uses output values, but the final {'/'.join(net.cut_output)} of "
            f"'{net.name}' was cut off at import: the network's outputs are the values before it",
            prop.span, ["help: state the property as comparisons between outputs (classified(c), or rows "
                        "c*(Y_i - Y_j) <= 0), or verify a model exported without the final activation"])
    cases = prop.cases(net.n_outputs)
    lo, hi = region.check(net.n_inputs)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise FormulationError.at("E0413", "the input region is unbounded", region.span,
                                  ["help: give the input a domain or a bounded set (box, linf, ...)"])
    return region, cases


def _check_question(net: object, sets: object, prop: object) -> None:
    """Refuse a ``net``, ``sets`` or ``prop`` of the wrong type (ParameterError naming the argument)."""
    if not isinstance(net, Network):
        raise ParameterError.of("net", f"must be a Network, got {type(net).__name__}",
                                "build one with NetworkBuilder or load it from a .nnmip or .onnx file", code="E0108")
    items = sets.sets if isinstance(sets, Region) else (sets,) if isinstance(sets, InputSet) else sets
    if not isinstance(items, (list, tuple)) or not all(isinstance(s, InputSet) for s in items):
        raise ParameterError.of("sets", f"must be an input set or a list of input sets, got {sets!r:.60}",
                                "use nnmip.ir.spec.linf/l1/l2/box/halfspaces", code="E0108")
    if not isinstance(prop, Property):
        raise ParameterError.of("prop", f"must be a Property, got {type(prop).__name__}",
                                "use nnmip.ir.spec.classified/maximize/minimize/output_box", code="E0108")


@stops_on_ctrl_c
def verify(net: Network, sets: Region | InputSet | Sequence[InputSet], prop: Property, *, solver: str = "highs",
           time_limit: float | None = None, tighten: str = "auto", options: SolveOptions | None = None,
           samples: int = 256, seed: int = 0, method: dict[str, str] | None = None,
           domain: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
           on_case: Callable[[CaseResult], None] | None = None, bab: str = "auto", workers: int = 1,
           deadline: Deadline | None = None) -> VerifyResult:
    """Decide ``prop`` for every input of ``sets`` (intersected with the input domain); see the module docs.

    ``tighten`` is ``"interval"``, ``"symbolic"``, ``"lp"``, ``"lp-cuts"`` (the LPs strengthened by ideal cuts of
    the earlier layers: tighter and slower), ``"milp"`` or ``"auto"`` (default: ``"lp-cuts"`` for networks
    with at most ``AUTO_LP_PARAMS`` parameters, ``"lp"`` there when CBC's LP sessions solve the bound LPs, else
    ``"symbolic"``: :func:`auto_tighten`; then with HiGHS or CBC and no relu formulation named, an optimisation
    MILP of a ReLU network not solved within :data:`ESCALATE_SECONDS` is solved again with ``"lp-cuts"`` bounds
    and ideal ReLU cuts when the budget allows); ``time_limit`` is the wall-clock budget of
    the whole call (sampling, bounds, tightening, branch and bound and every MILP share it; ``deadline`` passes a
    budget shared with the caller); ``options`` passes solver options (gap, threads, verbose, solver_options) to
    every MILP.  ``bab`` chooses branch and bound for yes/no properties of ReLU networks: ``"auto"`` splits the
    input box (:mod:`nnmip.drivers.bab`) for networks with at most :data:`nnmip.drivers.bab.AUTO_MAX_INPUTS`
    inputs and unstable ReLUs (:mod:`nnmip.drivers.relu_bab`) for larger ones on box and linf sets; ``"on"``
    does the same for any set (branching on its bounding box), ``"input"`` and ``"relu"`` force one kind,
    ``"off"`` leaves the question to the MILP; ``workers`` is the number of processes it uses.  A network with
    sigmoid or tanh units has no MILP: it is answered by bounds and search, its input box split as
    ``bab`` says (:meth:`_Question.smooth_answer`; ``"relu"`` is refused with E0429).
    ``method`` maps op kinds to formulations (``{"relu": "ideal-cuts"}``) and ``"branching"`` to ``"none"``
    (default) or ``"layers"``: branching priorities favouring the earliest layers' unstable units, passed to the
    solvers that take them (Gurobi, SCIP); with ``{"relu": "ideal-cuts"}``, ``"cuts"`` is ``"root"`` (default:
    rounds at the root) or ``"tree"`` (also at the nodes of the solver's tree, where it takes cuts: Gurobi, SCIP).
    """
    if tighten not in ("interval", "symbolic", "lp", "lp-cuts", "milp", "auto"):
        raise FormulationError.at("E0423", f"unknown bound method '{tighten!r:.40}'",
                                  notes=["help: tighten is 'interval', 'symbolic', 'lp', 'lp-cuts', 'milp' or 'auto'"])
    _check_question(net, sets, prop)
    _check_run(time_limit=time_limit, samples=samples, seed=seed, workers=workers, options=options,
               method=method, domain=domain, on_case=on_case)
    check_choice("bab", bab, ("auto", "on", "off", "input", "relu"), code="E0427")
    branching_of(method)
    cuts_of(method)
    smooth = has_smooth(net)
    if smooth:
        _check_smooth(net, tighten, bab, method)
    q = _Question.setup(net, sets, prop, solver=solver, options=options, domain=domain, on_case=on_case,
                        deadline=Deadline.of(time_limit, deadline))
    if smooth:
        q.res.bounds = {"method": "symbolic" if tighten == "auto" else tighten, "smooth_units": smooth_units(net)}
        q.res.total_units = sum(net.dim(n) for n, op in net.items() if op.smooth or op.kind in ("relu", "step", "sign"))
    STOP.begin()        # from here a Ctrl-C ends the search, the bounds or the MILP with what they have
    if q.sample(samples, seed):
        return q.finish(COUNTEREXAMPLE)
    if q.decide and q.search(seed):
        return q.finish(COUNTEREXAMPLE)
    if not q.decide:
        q.ascend(seed)
    if smooth:
        return q.smooth_answer(tighten, bab)
    kind = _use_bab(bab, net, q.region) if q.decide else None
    if kind == "input":
        return q.branch_and_bound(workers, seed, method)
    if kind == "relu":
        return q.relu_branch_and_bound(workers, seed)
    fm, rep = q.bound(tighten, method)
    q.escalate = (tighten == "auto" and rep.method in ("lp", "lp-cuts") and "relu" not in (method or {})
                  and not q.decide
                  and _escalates(q.backend.capabilities) and _has_unstable_relus(net, rep.bounds))
    for k in q.case_order(fm):
        if q.deadline.expired() and q.tried_all_cheap(k, fm):
            continue
        done = q.decide_case(k, fm, rep, method) if q.decide else q.optimize_case(k, fm, rep, method)
        if done:
            return q.finish(COUNTEREXAMPLE)
    return q.conclude()


def has_smooth(net: Network) -> bool:
    """Whether ``net`` holds a sigmoid or tanh (no MILP models it: :meth:`_Question.smooth_answer`)."""
    return any(op.smooth for _, op in net.items())


def smooth_units(net: Network) -> dict[str, int]:
    """The sigmoid and tanh units of ``net``, counted by kind."""
    units: dict[str, int] = {}
    for n, op in net.items():
        if op.smooth:
            units[op.kind] = units.get(op.kind, 0) + net.dim(n)
    return units


def _check_smooth(net: Network, tighten: str, bab: str, method: dict[str, str] | None) -> None:
    """Refuse what a network with sigmoid or tanh units cannot have: LP or MILP bounds, ReLU branch and bound, MILP
    formulations, cuts or branching priorities.
    """
    what = " and ".join(sorted(smooth_units(net)))
    if tighten in ("lp", "lp-cuts", "milp"):
        raise FormulationError.at("E0429", f"tighten '{tighten}' needs an LP or MILP of the network, and its "
                                  f"{what} units have none", notes=[
                                      "help: a network with sigmoid or tanh units is verified by symbolic bounds "
                                      "and counterexample search: use tighten 'auto' (the default) or 'symbolic' "
                                      "(the same here), or 'interval'"])
    defaults = {"cuts": CUTS[0], "branching": BRANCHING[0]}
    chosen = {k: v for k, v in (method or {}).items() if defaults.get(k) != v}
    if chosen:
        raise FormulationError.at("E0429", f"method {chosen!r:.80} chooses MILP formulations, cuts or branching, "
                                  f"and this network's {what} units have no MILP", notes=[
                                      "help: leave method out (--relu, --cuts, --branching): the network is "
                                      "verified by symbolic bounds and counterexample search"])
    if bab == "relu":
        raise FormulationError.at("E0429", f"branch and bound on ReLU phases ('relu') takes ReLU networks, and this "
                                  f"one has {what} units", notes=[
                                      "help: use bab 'auto', 'input' or 'on' (splitting the input box) or 'off' "
                                      "(the bounds over the whole set)"])


#: the choices of the ``method`` entries that are not op kinds, each with its default first
BRANCHING = ("none", "layers")
CUTS = ("root", "tree")
#: the counterexample search before the bounds may use this share of the time left, and at most SEARCH_SECONDS
SEARCH_SHARE = 0.2
SEARCH_SECONDS = 30.0


def _method_choice(method: dict[str, str] | None, key: str, choices: tuple[str, ...]) -> str:
    """The ``key`` entry of a verification ``method`` (default ``choices[0]``); E0427 for an unknown one."""
    value = (method or {}).get(key, choices[0])
    check_choice(f"method['{key}']", value, choices, code="E0427")
    return str(value)


def cuts_of(method: dict[str, str] | None) -> str:
    """The ``cuts`` entry of a verification ``method``: ``root`` (default) or ``tree``."""
    return _method_choice(method, "cuts", CUTS)


def branching_of(method: dict[str, str] | None) -> str:
    """The ``branching`` entry of a verification ``method``: ``none`` (default) or ``layers``."""
    return _method_choice(method, "branching", BRANCHING)


def _use_bab(bab: str, net: Network, region: Region) -> str | None:
    """Which branch and bound decides the question: ``"input"`` (split the input box), ``"relu"`` (split unstable
    ReLUs) or None (the MILP path).
    """
    from nnmip.drivers import bab as bb

    if bab not in ("auto", "on", "off", "input", "relu"):
        raise FormulationError.at("E0427", f"unknown branch-and-bound setting '{bab}'",
                                  notes=["help: choose auto, on, off, input or relu"])
    if bab == "off" or not region.kinds() <= {"box", "linf", "halfspaces"} or bb.relu_chain(net) is None:
        return None
    if bab in ("input", "relu"):
        return bab
    if net.n_inputs <= bb.AUTO_MAX_INPUTS:
        return "input"
    if bab == "on" or region.kinds() <= {"box", "linf"}:
        return "relu"
    return None


@dataclass
class _Question:
    """The state of one :func:`verify` call; each method answers one part of the question."""

    net: Network
    region: Region
    prop: Property
    cases: list[Case]
    res: VerifyResult
    deadline: Deadline
    solver: str
    backend: Any
    options: SolveOptions | None
    on_case: Callable[[CaseResult], None] | None
    best_x: FloatArray | None = None
    case_x: dict[int, FloatArray] = field(default_factory=dict)   # the best input met per case (a MILP start)
    ascended: set[int] = field(default_factory=set)               # cases whose case_x the gradient ascent found
    case_bounds: FloatArray = field(default_factory=lambda: np.zeros(0))
    case_values: FloatArray = field(default_factory=lambda: np.zeros(0))
    proven_negative: set[int] = field(default_factory=set)   # cases whose floor model "score >= 0" is infeasible
    timed_out: bool = False
    lp: LpSession | None = None
    tree_cuts: int = 0                                            # ideal cuts offered in the solver's tree
    escalate: bool = False                # an unsolved optimisation MILP is retried on the stronger model
    strong: tuple[FixedModel, BoundReport] | None = None          # that model (lp-cuts bounds, ideal cuts)
    slack: FloatArray = field(default_factory=lambda: np.zeros(0))  # per case: rounding slack of its score
    unreliable: set[int] = field(default_factory=set)             # cases whose MILP bound a value contradicted
    cheap: FloatArray = field(default_factory=lambda: np.zeros(0))  # per case: its interval / LP bound
    scale: float = 0.0                    # the largest magnitude of any proven bound (see MILP_TRUST_SCALE)

    @property
    def decide(self) -> bool:
        return not self.prop.is_optimization

    @classmethod
    def setup(cls, net: Network, sets: Region | InputSet | Sequence[InputSet], prop: Property, *, solver: str,
              options: SolveOptions | None, domain: tuple[npt.ArrayLike, npt.ArrayLike] | None,
              on_case: Callable[[CaseResult], None] | None, deadline: Deadline) -> _Question:
        """Check the question (fixed weights, a bounded region, a solver for its sets) before any work."""
        from nnmip.backends import canonical, get_backend

        solver = canonical(solver)
        # a missing solver fails before any work; a network with sigmoid or tanh units uses none
        backend = None if has_smooth(net) else get_backend(solver)
        region, cases = check_question(net, sets, prop, domain)
        if backend is not None and "l2" in region.kinds() and not backend.capabilities.cones:
            raise FormulationError.at("E0415", f"an l2 input set needs a solver with second-order cones, and "
                                      f"'{solver}' has none", region.span,
                                      ["help: use --solver gurobi (or cvxpy with a mixed-integer conic solver), "
                                       "or an linf/l1 set"])
        res = VerifyResult(UNKNOWN, prop.describe(), None, None, solver=solver)
        res.notes.extend(net.notes)   # e.g. an output softmax cut off at import
        lo, hi = region.box(net.n_inputs)
        P, N = rounding_profile(net, lo, hi)
        out = net.output
        out_slack = rounding_slack(net, lo, hi, (P, N))[out]
        slack = np.array([score_slack(P[out], N[out], out_slack, cs.G, cs.h) for cs in cases])
        return cls(net, region, prop, cases, res, deadline, solver, backend, options, on_case,
                   case_bounds=np.full(len(cases), np.inf), case_values=np.full(len(cases), -np.inf),
                   slack=slack, cheap=np.full(len(cases), np.inf))

    @property
    def milp_trusted(self) -> bool:
        """Whether the MILP's answers (its bound, its infeasibility) count as proofs: only while every proven
        bound stays within :data:`MILP_TRUST_SCALE`.
        """
        return self.scale <= MILP_TRUST_SCALE

    def _distrust_note(self) -> None:
        note = (f"the network's values reach {self.scale:.3g} under the proven bounds: past "
                f"{MILP_TRUST_SCALE:.0e} the solver's tolerances no longer make its MILP answers proofs, so only "
                "the interval and LP bounds (and counterexamples re-run by the forward pass) count")
        if note not in self.res.notes:
            self.res.notes.append(note)

    def _milp_case_bound(self, k: int, raw: Any, widen: bool) -> float:
        """The MILP's bound of case ``k``'s score plus the score's rounding slack; ``inf`` (no bound) when the
        MILP is not trusted.
        """
        if not self.milp_trusted:
            self._distrust_note()
            return np.inf
        return _milp_bound(raw, widen=widen) + float(self.slack[k])

    # -- shared ---------------------------------------------------------------------------------------------
    def finish(self, result: str) -> VerifyResult:
        res = self.res
        res.result = result
        if self.tree_cuts:
            res.notes.append(f"ideal ReLU cuts in the solver's tree: {self.tree_cuts} offered")
        res.seconds = self.deadline.elapsed()
        log.info("verify %s: %s (bound %s, value %s) in %.2fs", self.net.name, result, res.bound, res.value,
                 res.seconds)
        return res

    def _mip_gap(self) -> float:
        """The relative gap the optimisation MILPs were solved to."""
        g = None if self.options is None else self.options.mip_gap
        return 1e-6 if g is None else float(g)

    def to_prop(self, score: float | None) -> float | None:
        if score is None:
            return None
        if self.prop.kind in ("maximize", "minimize"):
            return self.prop.sign * score + (self.prop.threshold or 0.0)
        return score

    def record_cex(self, x: FloatArray) -> bool:
        """Keep ``x`` as the counterexample when the forward pass shows it in the region and violating."""
        y = self.net.forward(x[None, :])
        if not self.region.contains_point(x) or not self.prop.violated(y)[0]:
            return False
        self.res.counterexample, self.res.output = x.copy(), y[0].copy()
        self.res.predicted = int(self.net.predict(x[None, :])[0])
        return True

    def _emit(self, cr: CaseResult, tc: float) -> None:
        cr.seconds = time.perf_counter() - tc
        self.res.cases.append(cr)
        _emit(self.on_case, cr)

    # -- 1. sampling: cheap counterexamples and lower bounds -----------------------------------------------
    def sample(self, samples: int, seed: int) -> bool:
        """Run the forward pass on sampled inputs; True when one is a counterexample.

        The inputs are drawn and run in chunks of :data:`SAMPLE_CHUNK`, and the deadline (a stop request too) is
        looked at before each: a large ``samples`` stops with the time limit, with a note of how many were run.
        """
        if samples <= 0:
            return False
        rng = np.random.default_rng(seed)
        best: dict[int, tuple[float, FloatArray]] = {}       # each case's best row so far
        asked = drawn = 0          # points asked of the region, and those in it (points outside halfspaces drop)
        while asked < samples:
            if self.deadline.expired():
                self.res.notes.append(f"sampling stopped by the {'stop request' if STOP.is_set() else 'time limit'}"
                                      f" after {asked} of {samples} inputs")
                break
            chunk = min(SAMPLE_CHUNK, samples - asked)
            X = self.region.sample(self.net.n_inputs, chunk, rng)
            asked += chunk
            if not X.shape[0]:        # every point fell outside a halfspace: the next chunk may do better
                continue
            drawn += X.shape[0]
            Y = self.net.forward(X)
            scores = np.stack([cs.score(Y) for cs in self.cases], axis=1)
            viol = self.prop.violated(Y)
            if self.decide and viol.any():
                k = int(np.argmax(viol))
                if self.record_cex(X[k]):
                    assert self.res.output is not None    # the value at the input as reported: its own forward pass
                    score = max(float(cs.score(self.res.output[None, :])[0]) for cs in self.cases)
                    self.res.value = self.to_prop(score)
                    self.res.cases = [CaseResult("sampling", np.inf, score, "sampling")]
                    self.res.notes.append(f"found by sampling {drawn} inputs of the set")
                    return True
            for k in range(len(self.cases)):
                i = int(np.argmax(scores[:, k]))
                if k not in best or scores[i, k] > best[k][0]:
                    best[k] = (float(scores[i, k]), X[i].copy())
        # each case's best row, run again on its own: in a batch a row may round differently (by 1e-9 where terms
        # cancel), and a value is reported with the forward pass of its input alone
        for k, (_, x) in best.items():
            cs = self.cases[k]
            v = float(cs.score(self.net.forward(x[None, :]))[0])
            if v > self.case_values[k]:
                self.case_values[k] = v
                if self.prop.is_optimization:
                    self.case_x[k] = x
        if self.prop.is_optimization and self.case_x:
            self.best_x = self.case_x[max(self.case_x, key=lambda k: self.case_values[k])]
        return False

    # -- 2. local search on the network's gradient ------------------------------------------------------------
    def search(self, seed: int) -> bool:
        """Projected gradient search for a counterexample (chains of dense layers with ReLU, sigmoid or tanh
        units); True when one is confirmed.
        """
        from nnmip.drivers import bab as bb

        chain = bb.search_chain(self.net)
        if chain is None:
            return False
        lo, hi = self.region.box(self.net.n_inputs)
        # a share of the budget only: on a wide network the full search schedule can take the whole time limit,
        # and when the property holds the bounds that follow settle it (the searches inside branch and bound
        # go on looking)
        x = bb.pgd_search(chain, lo, hi, bb.Rows.of(self.cases), seed=seed, deadline=self._search_budget())
        if x is None:
            return False
        x = self.region.project(x)
        if not self.record_cex(x):
            return False
        score = max(float(cs.score(self.res.output[None, :])[0]) for cs in self.cases)  # type: ignore[index]
        self.res.value = self.to_prop(score)
        self.res.cases = [CaseResult("search", np.inf, score, "search")]
        self.res.notes.append("found by projected gradient search")
        return True

    def _search_budget(self) -> Deadline:
        """The deadline of a local search before the bounds: a share of the time left, at most SEARCH_SECONDS."""
        left = self.deadline.left()
        return Deadline(SEARCH_SECONDS if left is None else min(SEARCH_SHARE * left, SEARCH_SECONDS))

    def ascend(self, seed: int) -> None:
        """Optimisation questions on chains of ReLU, sigmoid or tanh units over box and linf sets: projected gradient
        ascent of each case score for a good input before the MILP.  Its forward-pass value is a proven lower bound,
        and the input (with the phases it sets) is handed to the solver as a start, so that the search prunes with it
        from the first node.  Other sets are skipped: the ascent runs in a box, and projecting its end point onto an
        l1 or l2 ball (or leaving a set of halfspaces) loses what it climbed.
        """
        from nnmip.drivers import bab as bb

        chain = bb.search_chain(self.net)
        if chain is None or not self.region.kinds() <= {"box", "linf"}:
            return
        lo, hi = self.region.box(self.net.n_inputs)
        budget = self._search_budget()
        rows = bb.Rows.of(self.cases)
        for k, cs in enumerate(self.cases):
            found = bb.pgd_ascent(chain, lo, hi, rows, k, seed=seed, deadline=budget)
            if found is None:
                return
            x = self.region.project(found[0])
            if not self.region.contains_point(x):
                continue
            s_val = float(cs.score(self.net.forward(x[None, :]))[0])
            if s_val > self.case_values[k]:
                self.case_values[k], self.case_x[k] = s_val, x
                self.ascended.add(k)
                if s_val >= float(np.max(self.case_values)):
                    self.best_x = x

    # -- 3. branch and bound on the input box ----------------------------------------------------------------
    def branch_and_bound(self, workers: int, seed: int, method: dict[str, str] | None) -> VerifyResult:
        """Decide the property by splitting the input box (:mod:`nnmip.drivers.bab`), small leaves by MILP."""
        from nnmip.drivers import bab as bb
        from nnmip.ir.spec import box

        chain = bb.relu_chain(self.net)
        assert chain is not None
        lo, hi = self.region.box(self.net.n_inputs)

        def confirm(x: FloatArray) -> bool:
            return self.record_cex(self.region.project(x))

        def leaf(llo: FloatArray, lhi: FloatArray, dl: Deadline) -> tuple[str, FloatArray | None, float]:
            sub = Region((*self.region.sets, box(llo, lhi)), self.region.domain_lo, self.region.domain_hi)
            r = verify(self.net, sub, self.prop, solver=self.solver, tighten="lp", options=self.options,
                       samples=0, method=method, bab="off", deadline=dl)
            if r.result == COUNTEREXAMPLE and r.counterexample is not None:
                return COUNTEREXAMPLE, r.counterexample, np.inf
            return r.result, None, -np.inf if r.bound is None else float(r.bound)

        out = bb.branch_and_bound(chain, lo, hi, self.cases, deadline=self.deadline, confirm=confirm, leaf=leaf,
                                  workers=workers, seed=seed)
        self.res.notes.extend(out.notes)
        self.res.notes.append(f"branch and bound: {out.boxes} boxes, {out.leaves} MILP leaves, depth "
                              f"{out.max_depth}")
        self.res.bounds = {"method": "branch_and_bound", "boxes": out.boxes, "leaves": out.leaves,
                           "max_depth": out.max_depth, "open_boxes": out.open_boxes}
        return self._bab_answer(out)

    # -- 3b. branch and bound on the ReLU phases ---------------------------------------------------------------
    def relu_branch_and_bound(self, workers: int, seed: int) -> VerifyResult:
        """Decide the property by splitting unstable ReLUs (:mod:`nnmip.drivers.relu_bab`)."""
        from nnmip.drivers import bab as bb
        from nnmip.drivers import relu_bab as rb

        chain = bb.relu_chain(self.net)
        assert chain is not None
        lo, hi = self.region.box(self.net.n_inputs)

        def confirm(x: FloatArray) -> bool:
            return self.record_cex(self.region.project(x))

        out = rb.relu_branch_and_bound(chain, lo, hi, self.cases, deadline=self.deadline, confirm=confirm,
                                       workers=workers, seed=seed)
        self.res.notes.extend(out.notes)
        self.res.notes.append(f"ReLU branch and bound: {out.boxes} sub-problems, depth {out.max_depth}")
        self.res.bounds = {"method": "relu_branch_and_bound", "subproblems": out.boxes, "max_depth": out.max_depth,
                           "open": out.open_boxes}
        return self._bab_answer(out)

    def _bab_answer(self, out: Any) -> VerifyResult:
        if out.units:       # ReLU splitting: its root bounds
            units, unstable = out.units, out.unstable
        else:               # input splitting: interval bounds over the whole input set
            counts = count_units(self.net, propagate_bounds(self.net, self.region)).values()
            units, unstable = sum(u for u, _ in counts), sum(k for _, k in counts)
        self.res.total_units, self.res.unstable_units = units, unstable
        self.res.stable_units = units - unstable
        cr = CaseResult("all cases", out.bound, None, "bab", status=out.result, seconds=out.seconds)
        if out.result == COUNTEREXAMPLE:
            assert self.res.output is not None
            score = max(float(cs.score(self.res.output[None, :])[0]) for cs in self.cases)
            cr.value = score
            self.res.value, self.res.bound = self.to_prop(score), self.to_prop(max(out.bound, score))
            self.res.cases.append(cr)
            return self.finish(COUNTEREXAMPLE)
        self.res.cases.append(cr)
        self.res.bound = self.to_prop(out.bound)
        if out.result == CERTIFIED:
            return self.finish(CERTIFIED)
        self.res.timed_out = out.timed_out
        finite = self.case_values[np.isfinite(self.case_values)]
        self.res.value = self.to_prop(float(finite.max())) if finite.size else None
        return self.finish(UNKNOWN)

    # -- 3c. networks with sigmoid or tanh units: bounds only -------------------------------------------------
    def smooth_answer(self, tighten: str, bab: str) -> VerifyResult:
        """Decide each case by the back-substitution bound of its rows (sampling and the gradient search having
        found no counterexample); no MILP models a sigmoid or tanh exactly.  A yes/no question the bounds over the
        whole set do not decide is split on its input box (:meth:`smooth_split`) when ``bab`` asks for it
        (``"auto"``: up to :data:`nnmip.drivers.bab.AUTO_MAX_INPUTS` inputs); otherwise, or when the time runs
        out, the undecided cases stay ``unknown`` (an optimisation question gets its proven bound and the best
        value found).
        """
        from nnmip.drivers import bab as bb

        method = "symbolic" if tighten == "auto" else tighten
        units = smooth_units(self.net)
        kinds = " and ".join(sorted(units))
        split = self.decide and (bab in ("on", "input") or (
            bab == "auto" and self.net.n_inputs <= bb.AUTO_MAX_INPUTS
            and self.region.kinds() <= {"box", "linf", "halfspaces"}))
        how = "bounds, split on the input box where they do not decide" if split else "bounds"
        self.res.notes.append(f"{kinds} units: no MILP models them exactly, so the answer rests on {method} {how} "
                              "(and on counterexamples the forward pass confirms); a case they do not decide is "
                              "left unknown")
        tc = time.perf_counter()
        rep, ubs = self._smooth_bounds(self.region, method)
        self.res.bounds = {**rep.to_dict(), "smooth_units": units}
        self.res.stable_units, self.res.unstable_units = rep.stable, rep.unstable     # of its ReLU, step, sign units
        open_ = [k for k, cs in enumerate(self.cases) if not _decided(ubs[k], cs)]
        if split and open_ and not self.deadline.expired():
            out = self.smooth_split(method, float(np.max(ubs)))
            if out is not None:
                return out
            ubs = np.minimum(ubs, self.case_bounds)
        for k, cs in enumerate(self.cases):
            v = self.case_values[k]
            self.case_bounds[k] = self.cheap[k] = ubs[k]
            ok = _decided(ubs[k], cs) if self.decide else np.isfinite(ubs[k])
            self._emit(CaseResult(cs.label, float(ubs[k]), float(v) if np.isfinite(v) else None,
                                  method if ok else "undecided"), tc)
        return self.conclude()

    def _smooth_bounds(self, region: Region, method: str) -> tuple[BoundReport, FloatArray]:
        """The bounds of every node over ``region`` and each case's proven upper bound of its score (its rounding
        slack included): by back-substitution of every case's rows at once (``"symbolic"``), or by interval
        arithmetic on the output (``"interval"``).
        """
        from nnmip.passes.bounds import bounds_with_rows

        out = np.empty(len(self.cases))
        if method == "interval":
            rep = tighten_bounds(self.net, region, method="interval")
            for k, cs in enumerate(self.cases):
                out[k] = float(score_bounds(cs, *rep.bounds[self.net.output])[1][0]) + float(self.slack[k])
            return rep, out
        rep, (_, up) = bounds_with_rows(self.net, region, np.vstack([-cs.G for cs in self.cases]),
                                        np.concatenate([-cs.h for cs in self.cases]))
        ends = np.cumsum([cs.G.shape[0] for cs in self.cases])
        for k, cs in enumerate(self.cases):
            out[k] = float(np.min(up[ends[k] - cs.G.shape[0]:ends[k]])) + float(self.slack[k])
        return rep, out

    def smooth_split(self, method: str, root: float) -> VerifyResult | None:
        """Branch and bound on the input box of a network with sigmoid or tanh units: the box whose bound is
        highest is halved along the input where it is widest (relative to the whole box), each half is bounded
        again and its centre and four random points are run through the forward pass.  A half where every case
        is bounded below 0 is dropped.  Returns the answer when the search ends (``certified`` when no box is
        left, ``counterexample`` when a point of one violates the property), or None when the time ran out or no
        box can be split further (the caller answers with the bounds over the whole set).  ``root`` is the bound
        over the whole set.  Each box is bounded as a box (with the input domain): for a set that is not a box
        (halfspaces) that bounds a superset, which is sound; points are projected into the set and checked.

        Every relaxation tightens as its box shrinks (the lines of a unit meet its function as the unit's input
        interval closes), so the search is complete for boxes in the limit, like the ReLU search of
        :mod:`nnmip.drivers.bab`; it bounds one box at a time.
        """
        import heapq

        from nnmip.drivers import bab as bb
        from nnmip.ir.spec import box

        lo0, hi0 = self.region.box(self.net.n_inputs)
        span = np.where(hi0 > lo0, hi0 - lo0, 1.0)
        rng = np.random.default_rng(0)
        heap: list[tuple[float, int, FloatArray, FloatArray]] = [(-root, 0, lo0, hi0)]
        count = 0
        leaves: list[float] = []       # the bounds of the boxes dropped (each below 0)
        stuck = False
        boxes = 0
        while heap:
            if self.deadline.expired():
                self.timed_out = True
                break
            neg, _, lo, hi = heapq.heappop(heap)
            j = int(np.argmax((hi - lo) / span))
            if hi[j] - lo[j] <= bb.MIN_REL_WIDTH * (1.0 + abs(lo[j]) + abs(hi[j])):
                stuck = True          # too thin to split: it stays open
                leaves.append(-neg)
                continue
            mid_hi, mid_lo = hi.copy(), lo.copy()       # the two halves along input j
            mid_hi[j] = mid_lo[j] = 0.5 * lo[j] + 0.5 * hi[j]
            for clo, chi in ((lo, mid_hi), (mid_lo, hi)):
                boxes += 1
                pts = np.vstack([0.5 * clo + 0.5 * chi, rng.uniform(clo, chi, size=(4, clo.size))])
                for x in pts:
                    if self.record_cex(self.region.project(x)):
                        assert self.res.output is not None
                        score = max(float(cs.score(self.res.output[None, :])[0]) for cs in self.cases)
                        self.res.value = self.to_prop(score)
                        self.res.cases = [CaseResult("split", np.inf, score, "search")]
                        self.res.notes.append(f"found in a box of the input split ({boxes} boxes)")
                        return self.finish(COUNTEREXAMPLE)
                sub = Region((box(clo, chi),), self.region.domain_lo, self.region.domain_hi)
                ub = self._smooth_bounds(sub, method)[1]
                if all(_decided(ub[k], cs) for k, cs in enumerate(self.cases)):
                    leaves.append(float(np.max(ub)))
                    continue
                count += 1
                heapq.heappush(heap, (-float(np.max(ub)), count, clo, chi))
        top = max([-h[0] for h in heap] + leaves) if (heap or leaves) else -np.inf
        self.res.bounds["split_boxes"] = boxes
        self.res.bounds["open_boxes"] = len(heap) + int(stuck)
        if not heap and not stuck:
            self.res.notes.append(f"certified by splitting the input box: {boxes} boxes, each case bounded below 0 "
                                  "on every one")
            self.case_bounds[:] = top
            for cs in self.cases:
                self._emit(CaseResult(cs.label, top, None, "split"), time.perf_counter())
            return self.conclude()
        why = "the time ran out" if self.timed_out else "a box became too thin to split"
        self.res.notes.append(f"input split: {boxes} boxes, {len(heap)} still open when {why}")
        self.case_bounds[:] = np.minimum(self.case_bounds, top)
        return None

    # -- 4. bounds ---------------------------------------------------------------------------------------------
    def bound(self, tighten: str, method: dict[str, str] | None) -> tuple[FixedModel, BoundReport]:
        """Prove bounds of every unit (tightening gets at most half of the time left) and formulate the MILP."""
        net = self.net
        if tighten == "auto":
            tighten = auto_tighten(net, self.solver)
        share = self.deadline.share(0.5).left()
        rep: BoundReport = tighten_bounds(net, self.region, method=tighten, solver=self.solver, time_limit=share,
                                          method_map=method)
        fm: FixedModel = build_fixed_model(net, self.region, rep.bounds, method=method)
        self._describe(fm, rep)
        self.scale = bound_scale(rep.bounds)
        return fm, rep

    def _describe(self, fm: FixedModel, rep: BoundReport) -> None:
        """The result's account of the bounds and the model (of the last model built)."""
        res = self.res
        res.notes.extend(n for n in fm.fallbacks if n not in res.notes)
        res.stable_units, res.unstable_units, res.total_units = fm.stable_units, fm.unstable_units, fm.total_units
        res.binaries = fm.model.num_binaries
        res.binaries_saved = rep.binaries_saved
        res.bounds = rep.to_dict()
        res.model = fm.model.stats()
        note = "bound tightening stopped at its time share; the units not reached keep their earlier bounds"
        if not rep.complete and note not in res.notes:
            res.notes.append(note)

    def case_order(self, fm: FixedModel) -> list[int]:
        """Cases, most promising (highest interval bound) first."""
        return sorted(range(len(self.cases)),
                      key=lambda k: -float(score_bounds(self.cases[k], fm.out_lo, fm.out_hi)[1][0]))

    def tried_all_cheap(self, k: int, fm: FixedModel) -> bool:
        """Past the deadline: record case ``k`` with its interval bound only (True: nothing more to do)."""
        cs = self.cases[k]
        ib = float(score_bounds(cs, fm.out_lo, fm.out_hi)[1][0]) + float(self.slack[k])
        self.case_bounds[k] = self.cheap[k] = ib
        if self.decide and _decided(ib, cs):
            self._emit(CaseResult(cs.label, ib, None, "interval"), time.perf_counter())
            return True
        self.timed_out = True
        v = self.case_values[k]
        self._emit(CaseResult(cs.label, ib, float(v) if np.isfinite(v) else None, "undecided", "time_limit"),
                   time.perf_counter())
        return True

    def _cheap_bounds(self, k: int, fm: FixedModel, tc: float) -> tuple[CaseResult, Any, bool]:
        """The interval and LP bounds of case ``k``; True when they decide it."""
        cs = self.cases[k]
        ib = float(score_bounds(cs, fm.out_lo, fm.out_hi)[1][0]) + float(self.slack[k])
        v = self.case_values[k]
        cr = CaseResult(cs.label, ib, None if not np.isfinite(v) else float(v), "interval")
        self.case_bounds[k] = self.cheap[k] = ib
        if self.decide and _decided(ib, cs):
            self._emit(cr, tc)
            return cr, None, True
        model = with_case(fm, cs)
        if self.lp is None:
            self.lp = LpSession(model, self.deadline.solve_limit())
        lb = _case_lp_bound(self.lp, model, self.deadline.solve_limit()) + float(self.slack[k])
        if lb < self.case_bounds[k]:
            self.case_bounds[k] = self.cheap[k] = lb
            cr.bound, cr.decided_by = lb, "lp"
        if self.decide and _decided(self.case_bounds[k], cs):
            self._emit(cr, tc)
            return cr, model, True
        return cr, model, False

    # -- 5. yes/no cases: MILP with the floor "score >= 0" -----------------------------------------------------
    def decide_case(self, k: int, fm: FixedModel, rep: BoundReport, method: dict[str, str] | None) -> bool:
        """Decide whether case ``k`` can be hit; True when a counterexample is confirmed (the run ends)."""
        cs, net, res = self.cases[k], self.net, self.res
        tc = time.perf_counter()
        cr, model, done = self._cheap_bounds(k, fm, tc)
        if done:
            return False
        if self.deadline.expired():
            self.timed_out = True
            cr.decided_by, cr.status = "undecided", "time_limit"
            self._emit(cr, tc)
            return False
        strict = bool(np.all(cs.strict))
        model = self._strengthen(fm, model)
        opts = self._guided(_base_options(self.solver, self.options, self.deadline.solve_limit(), True, strict),
                            model, method, fm)
        # the decision only needs to know whether the score can reach 0: with the floor "score >= 0" the MILP is
        # infeasible exactly when the case cannot be hit, which the solver proves without closing the gap of the
        # optimisation problem
        raw = self.backend.solve(_with_floor(model), opts)
        if raw.status is Status.INFEASIBLE and not self.milp_trusted:
            self._distrust_note()
        elif raw.status is Status.INFEASIBLE:
            self.case_bounds[k] = min(self.case_bounds[k], 0.0)
            cr.bound, cr.decided_by, cr.status = float(self.case_bounds[k]), "milp", "infeasible"
            cr.binaries = model.num_binaries
            self.proven_negative.add(k)
            self._emit(cr, tc)
            return False
        cr.status, cr.binaries = str(raw.status), model.num_binaries
        bound = np.inf if raw.status is Status.INFEASIBLE else self._milp_case_bound(k, raw, widen=True)
        for attempt in range(2):
            if raw.x is not None:
                x = self.region.project(raw.x[fm.x_cols])
                s_val = float(cs.score(net.forward(x[None, :]))[0])
                if self.region.contains_point(x):
                    self.case_values[k] = max(self.case_values[k], s_val)
                if self.record_cex(x):
                    return self._found(cr, s_val, bound, tc)
            if _decided(bound, cs) or raw.x is None or attempt == 1:
                break
            if _has_steps(net):
                # a solution at a = 0 of a step unit may not be reproduced: search with a margin on both sides
                x2 = _margin_search(net, self.region, rep, cs, self.backend, opts, method, self.deadline)
                if x2 is not None and self.record_cex(x2):
                    s_val = float(cs.score(net.forward(x2[None, :]))[0])
                    res.notes.append("counterexample from the step model with a margin of 1e-6 on both sides")
                    return self._found(cr, s_val, bound, tc)
            if opts.stop_objective is None or not self.backend.capabilities.early_stop:
                break
            # the solver stopped at an incumbent the forward pass does not confirm: finish the proof
            opts = self._guided(_base_options(self.solver, self.options, self.deadline.solve_limit(), False,
                                              strict), model, method, fm)
            raw = self.backend.solve(model, opts)
            cr.status = str(raw.status)
            bound = min(bound, self._milp_case_bound(k, raw, widen=True))
        self._close_case(k, cr, raw, bound, tc)
        return False

    def _guided(self, opts: SolveOptions, model: Any, method: dict[str, str] | None, fm: FixedModel
                ) -> SolveOptions:
        """With ``method={"branching": "layers"}``: branching priorities favouring the earliest layers' unstable
        units, for the backends that take them (Gurobi, SCIP; HiGHS and CBC have none and branch as they would).
        With the ``ideal-cuts`` relu formulation and ``{"cuts": "tree"}``, on backends that take cuts in the tree
        (Gurobi, SCIP): the ideal cuts violated at each node's LP point are offered there too (HiGHS and CBC have
        no such callback; their cuts are the root rounds of :meth:`_strengthen`).
        """
        if branching_of(method) == "layers" and self.backend.capabilities.branch_priority:
            from nnmip.formulations.verification import layer_priorities

            opts.branch_priority = layer_priorities(model)
        if cuts_of(method) != "tree":
            return opts
        if not (fm.cut_units and self.backend.capabilities.user_cuts):
            why = (f"solver '{self.solver}' takes no cuts in its tree" if fm.cut_units
                   else "there are no ideal cuts to separate (relu 'ideal-cuts' with unstable units needed)")
            note = f"cuts 'tree': {why}; none are added below the root"
            if note not in self.res.notes:
                self.res.notes.append(note)
        elif opts.cut_separator is None:
            from nnmip.formulations.ideal import cut_rows

            units, lb, ub, n = fm.cut_units, model.col_lb, model.col_ub, model.num_cols

            def separator(x: FloatArray) -> tuple[Any, FloatArray]:
                A, rhs, _ = cut_rows(units, x, lb, ub, n)
                self.tree_cuts += int(rhs.size)
                return A, rhs

            opts.cut_separator = separator
        return opts

    def _strengthen(self, fm: FixedModel, model: Any) -> Any:
        """With the ``ideal-cuts`` relu formulation: rounds of ideal ReLU cuts at the root (§18) before the MILP."""
        if not fm.cut_units:
            return model
        from nnmip.drivers.relu_cuts import strengthen_root

        left = self.deadline.solve_limit()
        model, rr = strengthen_root(model, fm.cut_units, rounds=ROOT_CUT_ROUNDS, solver=self.solver,
                                    time_limit=None if left is None else 0.25 * left)
        self.res.notes.append(f"ideal ReLU cuts at the root: {rr.cuts} cuts in {len(rr.rounds)} rounds")
        return model

    def _found(self, cr: CaseResult, s_val: float, bound: float, tc: float) -> bool:
        cr.value, cr.bound, cr.decided_by = s_val, bound, "milp"
        self.res.value, self.res.bound = self.to_prop(s_val), self.to_prop(max(bound, s_val))
        self._emit(cr, tc)
        return True

    def _close_case(self, k: int, cr: CaseResult, raw: Any, bound: float, tc: float) -> None:
        cs = self.cases[k]
        v = self.case_values[k]
        if np.isfinite(v) and v > bound + SAFETY * (1 + abs(bound)):
            # an input of the region reaches more than the MILP's "proven" bound: the solve went wrong
            # numerically, and neither its bound nor its status is a proof
            self.res.notes.append(f"case '{cs.label}': the solver's bound {bound:.6g} is below the value {v:.6g} "
                                  "that the forward pass reaches at an input of the region: a numerical failure of "
                                  "the MILP; its bound is not used")
            bound = np.inf
            self.unreliable.add(k)
        if raw.status is Status.TIME_LIMIT and (not self.decide or not _decided(bound, cs)):
            self.timed_out = True
        self.case_bounds[k] = min(self.case_bounds[k], bound)
        cr.bound = float(self.case_bounds[k])
        cr.value = None if not np.isfinite(v) else float(v)
        if self.decide:
            cr.decided_by = "milp" if _decided(cr.bound, cs) else "undecided"
        else:
            cr.decided_by = "milp" if np.isfinite(bound) else "undecided"
        if raw.status is Status.INFEASIBLE and self.milp_trusted and k not in self.unreliable:
            self.res.notes.append(f"case '{cs.label}': no input of the set reaches it (the model is infeasible)")
        self._emit(cr, tc)

    # -- 6. optimisation: the MILP optimum of the objective ----------------------------------------------------
    def optimize_case(self, k: int, fm: FixedModel, rep: BoundReport, method: dict[str, str] | None) -> bool:
        """Maximise the case score; the solver's bound and the best forward-pass value are kept (never True).

        With :attr:`escalate` (``tighten="auto"`` on a small network, no relu formulation named), a MILP not
        solved within :data:`ESCALATE_SECONDS` is solved again on the stronger model (:meth:`_escalated`).
        """
        tc = time.perf_counter()
        cr, model, _ = self._cheap_bounds(k, fm, tc)
        if self.deadline.expired():
            self.timed_out = True
            cr.decided_by, cr.status = "undecided", "time_limit"
            self._emit(cr, tc)
            return False
        model = self._strengthen(fm, model)
        opts = self._guided(_base_options(self.solver, self.options, self.deadline.solve_limit(), False, False),
                            model, method, fm)
        self._start(k, fm, model, opts)
        left = self.deadline.left()
        # the cap applies only where it is the binding limit (not a shorter solver time limit of the user's)
        escalate = (self.escalate and model.num_binaries > 0
                    and (left is None or left >= ESCALATE_BUDGET * ESCALATE_SECONDS)
                    and (opts.time_limit is None or opts.time_limit > ESCALATE_SECONDS))
        if escalate:
            opts.time_limit = ESCALATE_SECONDS
        raw = self.backend.solve(model, opts)
        cr.status, cr.binaries = str(raw.status), model.num_binaries
        bound = self._milp_case_bound(k, raw, widen=False)
        self._take(k, raw, fm, rep, opts, method, bound)
        if escalate and raw.status is Status.TIME_LIMIT and not self.deadline.expired():
            again = self._escalated(k, fm, rep, method, bound)
            if again is not None:
                raw, bound, model = again
                cr.status, cr.binaries = str(raw.status), model.num_binaries
        self._close_case(k, cr, raw, bound, tc)
        return False

    def _start(self, k: int, fm: FixedModel, model: Any, opts: SolveOptions) -> None:
        """The best input met for case ``k`` as the solver's start, when it fixes every binary."""
        if k in self.case_x and self.backend.capabilities.warm_start and opts.warm_start is None:
            ws = start_vector(fm, self.net, self.case_x[k], model.num_cols)
            if not np.isnan(ws[model.vtype != "C"]).any():   # every binary known: the solver completes by an LP
                opts.warm_start = ws
                if opts.focus is None and k in self.ascended:
                    opts.focus = "bound"      # a local optimum of the ascent: spend the effort on the bound

    def _take(self, k: int, raw: Any, fm: FixedModel, rep: BoundReport, opts: SolveOptions,
              method: dict[str, str] | None, bound: float) -> None:
        """Keep the solver's input for case ``k`` when the forward pass gives it a better value than known."""
        cs, net = self.cases[k], self.net
        if raw.x is None:
            return
        x = self._inside(self.region.project(raw.x[fm.x_cols]), k)
        s_val = float(cs.score(net.forward(x[None, :]))[0])
        if s_val > self.case_values[k] and self.region.contains_point(x):   # only inputs of the region count
            self.case_values[k], self.best_x = s_val, x
            self.case_x[k] = x                # (still a start for focus="bound": it is at least as good)
        if _has_steps(net) and self.case_values[k] < bound - 1e-9 * (1 + abs(bound)):
            # the optimum sits at a = 0 of some step unit: look for an attained value with a margin
            x2 = _margin_search(net, self.region, rep, cs, self.backend, opts, method, self.deadline)
            if x2 is not None:
                s2 = float(cs.score(net.forward(x2[None, :]))[0])
                if s2 > self.case_values[k] and self.region.contains_point(x2):
                    self.case_values[k], self.best_x = s2, x2

    def _escalated(self, k: int, fm: FixedModel, rep: BoundReport, method: dict[str, str] | None, bound: float
                   ) -> tuple[Any, float, Any] | None:
        """Solve case ``k`` again on the stronger model: bounds tightened by LPs with ideal cuts (``lp-cuts``,
        from the LP bounds, within half of the time left), ReLUs with ideal cuts at the root, the best input met as
        the start.  Returns the solve, the smaller of the two proven bounds (both hold) and the model; None when
        the time ran out (or a stop came) before the second solve, which leaves the first one's answer.
        """
        net, cs = self.net, self.cases[k]
        strong = {**(method or {}), "relu": "ideal-cuts"}
        if self.strong is None:             # built once, for every case that needs it
            rep2 = rep if rep.method == "lp-cuts" and rep.complete else tighten_bounds(
                net, self.region, method="lp-cuts", bounds=rep.bounds, solver=self.solver,
                time_limit=self.deadline.share(0.5).left(), method_map=strong)
            self.strong = (build_fixed_model(net, self.region, rep2.bounds, method=strong), rep2)
        if self.deadline.expired():
            return None
        fm2, rep2 = self.strong
        model = self._strengthen(fm2, with_case(fm2, cs))
        opts = self._guided(_base_options(self.solver, self.options, self.deadline.solve_limit(), False, False),
                            model, strong, fm2)
        self._start(k, fm2, model, opts)
        self._describe(fm2, rep2)
        tightened = "" if rep2 is rep else (f" bounds tightened by lp-cuts ({fm.unstable_units} -> "
                                            f"{fm2.unstable_units} unstable units) and")
        self.res.notes.append(f"case '{cs.label}': the MILP was not solved within {ESCALATE_SECONDS:g}s: solved "
                              f"again with{tightened} ideal ReLU cuts"
                              + (", from the best input found" if opts.warm_start is not None else ""))
        raw = self.backend.solve(model, opts)
        bound = min(bound, self._milp_case_bound(k, raw, widen=False))
        self._take(k, raw, fm2, rep2, opts, strong, bound)
        return raw, bound, model

    def _inside(self, x: FloatArray, k: int) -> FloatArray:
        """``x`` itself when it lies in the region; else the first point that does on the segment towards a known
        input of the region (the best one met for case ``k``), at most 1e-3 of the way (a solver's input may sit a
        rounding error outside a set of halfspaces); ``x`` as it is when no input of the region is known.
        """
        if self.region.contains_point(x):
            return x
        anchor = self.case_x.get(k, self.best_x)
        if anchor is None or not self.region.contains_point(anchor):
            return x
        for t in (1e-12, 1e-9, 1e-6, 1e-3):
            y = x + t * (anchor - x)
            if self.region.contains_point(y):
                return y
        return x

    # -- 7. the answer -------------------------------------------------------------------------------------------
    def conclude(self) -> VerifyResult:
        res, cases, net = self.res, self.cases, self.net
        res.timed_out = self.timed_out
        top = float(np.max(self.case_bounds)) if len(cases) else -np.inf
        val = float(np.max(self.case_values)) if len(cases) else None
        res.value = self.to_prop(val) if val is not None and np.isfinite(val) else None
        res.bound = self.to_prop(top)
        if self.prop.is_optimization:
            if self.best_x is not None:
                y = net.forward(self.best_x[None, :])
                res.counterexample, res.output = self.best_x, y[0]
                res.predicted = int(net.predict(self.best_x[None, :])[0])
                res.notes.append("counterexample holds the input attaining 'value' (an optimum, not a violation)")
            raw_ok = all(c.status == str(Status.OPTIMAL) for c in res.cases if c.decided_by == "milp")
            # a MILP's optimum, or a sigmoid / tanh network's symbolic bound, met by a forward value
            by = res.cases[0].decided_by if res.cases else ""
            if raw_ok and not self.timed_out and by in ("milp", "symbolic"):
                gap = abs(top - val) if val is not None and np.isfinite(val) else np.inf
                allowed = (self._mip_gap() + 1e-5) * (1 + abs(top))
                if by == "milp" and gap > 1e-5 * (1 + abs(top)):
                    res.notes.append(f"the proven bound and the best forward value differ by {gap:.3g}")
                if gap <= allowed:
                    return self.finish(CERTIFIED)
                # the solver's optimum is not reproduced by the forward pass (a step unit at 0, or rounding):
                # the bound holds, but no input is known to reach it
            return self.finish(UNKNOWN)
        if all(k in self.proven_negative or _decided(self.case_bounds[k], cases[k]) for k in range(len(cases))):
            if self.proven_negative:
                res.notes.append("certified by the infeasibility of 'score >= 0': max score < 0 (bound reported as "
                                 "0 when no relaxation proved a negative number)")
            return self.finish(CERTIFIED)
        return self.finish(UNKNOWN)


def _has_unstable_relus(net: Network, bounds: dict[str, Any]) -> bool:
    """Whether some ReLU of ``net`` is unstable under ``bounds`` (what ideal cuts and lp-cuts can work on)."""
    return any(isinstance(op, ReLU) and unstable_mask(op, *bounds[net.inputs_of(n)[0]]).any()
               for n, op in net.items())


def _emit(cb: Callable[[CaseResult], None] | None, cr: CaseResult) -> None:
    if cb is not None:
        cb(cr)


def _has_steps(net: Network) -> bool:
    return any(op.kind in ("step", "sign") for _, op in net.items())


def _case_lp_bound(lp: LpSession, model: Any, time_limit: float | None = None) -> float:
    """Sound LP bound of the case objective (the session holds the same rows for single-row cases)."""
    if model.num_cols != lp.model.num_cols:
        return LpSession(model, time_limit).maximize({j: float(v) for j, v in enumerate(model.c) if v != 0}) + model.c0
    return lp.maximize({j: float(v) for j, v in enumerate(model.c) if v != 0}) + model.c0


def _with_floor(model: Any) -> Any:
    """``model`` with the extra row ``objective >= 0`` (the case score may not be negative)."""
    import scipy.sparse as sp

    from nnmip.model import Block

    row = sp.csr_array(model.c.reshape(1, -1))
    return model.replace(A=sp.csr_array(sp.vstack([model.A, row], format="csr")),
                         row_lb=np.r_[model.row_lb, -model.c0], row_ub=np.r_[model.row_ub, np.inf],
                         row_blocks=model.row_blocks + (Block("case", "floor", model.num_rows, (1,)),))




def _milp_bound(raw: Any, widen: bool = False) -> float:
    """The solver's bound of the case score; ``widen`` relaxes it by the LP safety margin ``1e-7 (1 + |b|)``
    (the solver proves it only up to its tolerances, so a decision at 0 needs the margin).
    """
    if raw.status is Status.INFEASIBLE:
        return -np.inf
    if raw.bound is not None and np.isfinite(raw.bound):
        b = float(raw.bound)
    elif raw.status is Status.OPTIMAL and raw.objective is not None:
        b = float(raw.objective)
    else:
        return np.inf
    return b + SAFETY * (1 + abs(b)) if widen else b


def _margin_search(net: Network, region: Region, rep: BoundReport, cs: Case, backend: Any, opts: SolveOptions,
                   method: dict[str, str] | None, deadline: Deadline) -> FloatArray | None:
    """An input of case ``cs`` from the step model with a margin on both sides of every step, solved within
    what is left of ``deadline`` (and ``opts.time_limit``, the limit of the solve before it); None when none is
    found or no time is left.
    """
    if deadline.expired():
        return None
    m = {**(method or {}), "step": "margin", "sign": "margin"}
    fm = build_fixed_model(net, region, rep.bounds, method=m)
    raw = backend.solve(with_case(fm, cs), replace(opts, time_limit=deadline.solve_limit(opts.time_limit)))
    if raw.x is None:
        return None
    return region.project(raw.x[fm.x_cols])


@stops_on_ctrl_c
def robust_accuracy(net: Network, X: FloatArray, y: npt.ArrayLike | None, eps: float, *,
                    domain: tuple[npt.ArrayLike, npt.ArrayLike] | None = None, solver: str = "highs",
                    time_limit: float | None = None, tighten: str = "auto",
                    progress: Callable[[Any, Any], None] | None = None, executor: Any = None,
                    deadline: Deadline | None = None, **kw: Any) -> tuple[float, list[dict[str, Any]]]:
    """Certify every row of ``X`` under an linf ball of radius ``eps``; return (robust accuracy, per-point rows).

    ``deadline`` (a :class:`~nnmip.drivers.deadline.Deadline`) is the end of the whole run: each point gets what
    is left of it when it starts (on its worker, by the wall clock: ``time.time()``), at most ``time_limit``
    seconds; a point that starts after it answers ``unknown`` at once, ``timed_out``.

    A point counts as robust when the network classifies it as its label (``y``; the prediction when ``y`` is
    None) and the ball is certified.  A misclassified point is not verified.  The points are tasks of
    ``executor`` (:mod:`nnmip.drivers.executor`; default serial), each running :func:`verify_point`; every
    counterexample that comes back is re-checked here by the forward pass.  A point whose task has no answer
    (its worker was lost twice) gets ``result: "error"`` and the error; a point that never ran because of a stop
    request (Ctrl-C) gets ``result: "interrupted"``.  ``progress(state, outcome)`` follows
    :data:`nnmip.drivers.executor.Progress`.
    """
    from nnmip.drivers.executor import INTERRUPTED_CODE, SerialExecutor
    from nnmip.drivers.train import _real_array
    from nnmip.ir.spec import _radius

    check_instance("net", net, Network, "a Network")
    X = np.atleast_2d(_real_array("X", X, f"pass X as a float array of shape (N, {net.n_inputs})")
                      ).astype(np.float64)
    if X.ndim != 2 or X.shape[1] != net.n_inputs or not np.isfinite(X).all():
        raise ParameterError.of("X", f"must be a finite array of shape (N, {net.n_inputs}), got shape {X.shape}",
                                code="E0122")
    try:
        _radius(eps)
    except ParameterError as e:
        raise ParameterError.of("eps", str(e).replace("argument 'radius' ", ""), code=e.diagnostics[0].code) from None
    _check_run(time_limit=time_limit, domain=domain, progress=progress)
    check_instance("deadline", deadline, Deadline, "a Deadline or None", none=True)
    pred = net.predict(X)
    if y is None:
        labels = pred
    else:
        ya = _real_array("y", y, "one class index per row of X")
        if ya.shape != (X.shape[0],) or not np.all(np.isfinite(ya)) or not np.all(ya == np.round(ya)) \
                or (ya.size and (ya.min() < 0 or ya.max() >= net.n_outputs)):
            raise ParameterError.of("y", f"must hold one class index in 0..{net.n_outputs - 1} per row of X",
                                    "pass y=None to use the network's own predictions", code="E0414")
        labels = ya.astype(np.int64)
    lo_hi = None if domain is None else tuple(np.broadcast_to(np.asarray(d, np.float64), (net.n_inputs,)).copy()
                                              for d in domain)
    options = {"solver": solver, "time_limit": time_limit, "tighten": tighten, "domain": lo_hi, **kw}
    if deadline is not None and deadline.end is not None:
        # the run's end as a wall-clock time, since the points may run on other machines (a stop request is not
        # the end of the time: the executor reports the points it stops as interrupted)
        options["run_end"] = time.time() + (deadline.end - time.monotonic())
    tasks = [(X[i], int(labels[i]), int(pred[i]), float(eps), options) for i in range(X.shape[0])]
    ex = executor if executor is not None else SerialExecutor()
    outcomes = ex.map(verify_point, tasks, shared=net, progress=progress)
    rows: list[dict[str, Any]] = []
    for i, out in enumerate(outcomes):
        if out.error is not None and out.error.code == INTERRUPTED_CODE:   # Ctrl-C came before this point ran
            row = {"index": i, "label": int(labels[i]), "predicted": int(pred[i]), "result": "interrupted",
                   "robust": False}
        elif out.error is not None:
            row = {"index": i, "label": int(labels[i]), "predicted": int(pred[i]), "result": "error",
                   "robust": False, "error": out.error.to_dict()}
        else:
            row = {"index": i, **out.value}
            if not point_answer_holds(net, row, X[i], eps, lo_hi):
                row = {"index": i, "label": int(labels[i]), "predicted": int(pred[i]), "result": "error",
                       "robust": False, "error": {"code": "E0806", "message": f"the counterexample of point {i} "
                                                  "does not survive the forward pass here; answer dropped"}}
        rows.append(row)
    robust = sum(bool(r["robust"]) for r in rows)
    acc = robust / X.shape[0] if X.shape[0] else 0.0
    return acc, rows


def verify_point(net: Network, task: tuple[FloatArray, int, int, float, dict[str, Any]]) -> dict[str, Any]:
    """One point of :func:`robust_accuracy` (a task of its executor): ``(x, label, predicted, eps, options)``
    -> the point's row (without ``index``).  A counterexample is re-checked by the forward pass before it is
    returned.
    """
    from nnmip.ir.spec import classified, linf

    x, label, predicted, eps, options = task
    if label != predicted:
        return {"label": label, "predicted": predicted, "result": "misclassified", "robust": False}
    options = dict(options)
    run_end = options.pop("run_end", None)
    if run_end is not None:
        left = run_end - time.time()
        if left <= 0:
            return {"label": label, "predicted": predicted, "result": UNKNOWN, "robust": False, "timed_out": True,
                    "notes": ["the run's time limit ended before this point started"]}
        own = options.get("time_limit")
        options["time_limit"] = left if own is None else min(own, left)
    r = verify(net, [linf(x, eps)], classified(label), **options)
    row = {**r.to_dict(), "label": label, "predicted": predicted, "robust": r.result == CERTIFIED}
    if not point_answer_holds(net, row, x, eps, options.get("domain")):
        return {"label": label, "predicted": predicted, "result": "error", "robust": False,
                "error": {"code": "E0806", "message": "the counterexample does not survive the forward pass on the "
                                                     "worker; answer dropped"}}
    return row


def point_answer_holds(net: Network, row: dict[str, Any], x0: FloatArray, eps: float,
                       domain: tuple[FloatArray, FloatArray] | None) -> bool:
    """A ``counterexample`` row is kept only when its input lies in the ball and the domain and the numpy
    forward pass shows it violating ``classified(label)`` (the test :func:`verify` itself applies); other answers
    pass through.
    """
    from nnmip.ir.spec import classified, linf

    if row.get("result") != COUNTEREXAMPLE:
        return True
    x = np.asarray(row["counterexample"], dtype=np.float64)
    if x.shape != x0.shape:
        return False
    region = as_region(net, [linf(x0, eps)], domain)
    return bool(region.contains_point(x) and classified(int(row["label"])).violated(net.forward(x[None, :]))[0])


def network_from_layers(layers: Sequence[tuple[FloatArray, FloatArray]], activation: str = "relu",
                        name: str = "net") -> Network:
    """A chain network from ``[(W, b), ...]`` with ``activation`` between layers (handy for scripts and tests)."""
    nb = NetworkBuilder(name)
    cur = nb.input("x", int(np.asarray(layers[0][0]).shape[1]))
    for k, (W, b) in enumerate(layers):
        W = np.asarray(W, dtype=np.float64)
        cur = nb.dense(f"fc{k}", cur, W.shape[0], weights=fixed(W), bias=fixed(np.asarray(b, np.float64)))
        if k < len(layers) - 1:
            cur = nb.activation(activation, f"{activation}{k}", cur)
    return nb.build()


def vacuous_note(vp: Any) -> str:
    """What the disjuncts of a VNN-LIB property with no input left out (``vp.empty``) mean for the answer."""
    first = vp.empty[0]
    more = f", and {len(vp.empty) - 1} more" if len(vp.empty) > 1 else ""
    if not vp.cases:
        return (f"no input satisfies the property's input constraints: {first}{more}; no input can violate it, so "
                f"it holds (unsat) whatever the network")
    n = len(vp.empty)
    return (f"{n} of the property's {n + sum(len(c.prop.raw_cases) for c in vp.cases)} disjuncts "
            f"{'has' if n == 1 else 'have'} no input and {'was' if n == 1 else 'were'} left out: {first}{more}")


@stops_on_ctrl_c
def verify_vnnlib(net: Network, vp: Any, *, solver: str = "highs", time_limit: float | None = None,
                  deadline: Deadline | None = None, **kw: Any) -> VerifyResult:
    """Decide a parsed VNN-LIB property (:func:`nnmip.io.vnnlib.parse_vnnlib`): ``sat`` if some input region
    has a counterexample, ``unsat`` if every region is certified.

    Every region draws on one budget (``time_limit`` seconds, or ``deadline``).
    """
    from nnmip.io.vnnlib import VnnProperty

    check_instance("net", net, Network, "a Network")
    check_instance("vp", vp, VnnProperty, "a parsed VNN-LIB property (nnmip.parse_vnnlib(path))")
    check_number("time_limit", time_limit, low=0.0, none=True)
    if not isinstance(solver, str):
        raise ParameterError.of("solver", f"must be a solver name, got {solver!r:.60}",
                                "use 'highs', 'cbc' or 'gurobi'")
    if vp.n_inputs != net.n_inputs or vp.n_outputs != net.n_outputs:
        raise FormulationError.at("E0412", f"the property has {vp.n_inputs} inputs and {vp.n_outputs} outputs but "
                                  f"network '{net.name}' has {net.n_inputs} and {net.n_outputs}")
    t0 = time.perf_counter()
    dl = Deadline.of(time_limit, deadline)
    total = VerifyResult(CERTIFIED, f"vnnlib ({len(vp.cases)} input region(s))", -np.inf, None, solver=solver)
    if vp.empty:
        total.notes.append(vacuous_note(vp))
    for i, vc in enumerate(vp.cases):
        if dl.expired():
            total.result, total.timed_out = UNKNOWN, True
            total.bound = np.inf
            total.notes.append(f"time limit reached before input region {i}")
            break
        r = verify(net, Region(vc.sets), vc.prop, solver=solver, deadline=dl, **kw)
        for c in r.cases:
            c.label = f"region {i}: {c.label}"
        total.cases.extend(r.cases)
        total.notes.extend(n for n in r.notes if n not in total.notes)
        total.stable_units += r.stable_units
        total.unstable_units += r.unstable_units
        total.total_units += r.total_units
        total.binaries = max(total.binaries, r.binaries)
        total.binaries_saved += r.binaries_saved
        total.bounds, total.model = r.bounds, r.model
        if r.result == COUNTEREXAMPLE:
            total.result, total.bound, total.value = COUNTEREXAMPLE, None, r.value
            total.counterexample, total.output, total.predicted = r.counterexample, r.output, r.predicted
            break
        if r.result == UNKNOWN:
            total.result = UNKNOWN
            total.timed_out |= r.timed_out
        if r.bound is not None and total.bound is not None:
            total.bound = max(total.bound, r.bound)
    total.seconds = time.perf_counter() - t0
    return total


# ------------------------------------------------------------------------------------------------------------
# verify statements of .nnmip files
# ------------------------------------------------------------------------------------------------------------
def load_points(path: str | Any, *, label_column: int | None = -1, delimiter: str | None = None,
                label_option: str = "label column") -> tuple[FloatArray, npt.NDArray[np.int64] | None]:
    """Rows (and integer labels, when there are any) from ``.npy``, ``.npz`` (keys ``X``/``y``), ``.csv`` or
    ``.txt`` (:func:`nnmip.io.data.read_points`; ``label_column`` ``None``: no labels; the delimiter is guessed
    unless given).
    """
    from nnmip.io.data import read_points

    return read_points(path, delimiter=delimiter, label=label_column, integer_labels=True,  # type: ignore[return-value]
                       any_npz_key=True, label_option=label_option)


def _resolve_point(cp: Any, ref: Any, n: int | None, cache: dict[str, Any]) -> FloatArray:
    from pathlib import Path

    from nnmip.errors import DataError

    if ref.kind == "values":
        v = np.asarray(ref.values, dtype=np.float64)
        return np.full(n, v[0]) if (v.size == 1 and n is not None) else v
    if ref.kind == "file":
        X, _ = load_points(Path(cp.base_dir) / ref.path, label_column=None)
        return X.ravel()
    if ref.kind == "row":
        X, _ = load_points(Path(cp.base_dir) / ref.path, label_column=ref.label, delimiter=ref.delimiter)
        if ref.index >= X.shape[0]:
            raise DataError.at("E0305", f"'{ref.path}' has {X.shape[0]} rows; row {ref.index} does not exist",
                               ref.span)
        return X[ref.index]
    from nnmip.io.data import load_dataset

    if ref.data not in cache:
        decl = cp.data[ref.data]
        cache[ref.data] = load_dataset(decl.source, decl.pre, cp.base_dir)
    ds = cache[ref.data]
    if ref.index >= ds.n_rows:
        raise DataError.at("E0305", f"data '{ref.data}' has {ds.n_rows} rows; row {ref.index} does not exist",
                           ref.span)
    return np.asarray(ds.X(np.array([ref.index])), dtype=np.float64)[0]


def load_file(kind: str, path: Any) -> tuple[Network, Any]:
    """The network of an ONNX file (``kind`` ``"onnx"``) or an npz weights file and its input scaler (or None)."""
    if kind == "onnx":
        from nnmip.io.onnx import import_onnx

        return import_onnx(path)
    from nnmip.io.weights import load_npz

    return load_npz(path)


def load_model(kind: str, path: Any) -> Network:
    """A fixed-weight network on raw inputs from an ONNX file or an npz weights file (scaling folded in)."""
    return fold_scaler(*load_file(kind, path))


def spec_network(cp: Any, spec: Any) -> Network:
    """The network a checked ``verify`` statement names."""
    from pathlib import Path

    if spec.model is not None:
        return load_model(spec.model[0], Path(cp.base_dir) / spec.model[1])
    return cp.networks[spec.name]  # type: ignore[no-any-return]


@dataclass
class VerifyProblem:
    """A checked ``verify`` statement resolved to arrays: the network, its input sets, the property, the domain."""

    net: Network
    sets: list[InputSet]
    prop: Property
    domain: tuple[FloatArray, FloatArray] | None
    tighten: str
    time_limit: float | None


def resolve_verify_spec(cp: Any, spec: Any) -> VerifyProblem:
    """The network, sets and property of one checked ``verify`` statement (points and files loaded)."""
    from nnmip.errors import NnmipError
    from nnmip.ir import spec as vs

    try:
        net = spec_network(cp, spec)
        n = net.n_inputs
        cache: dict[str, Any] = {}
        sets: list[InputSet] = []
        first_center: FloatArray | None = None
        for st in spec.sets:
            if st.kind == "box":
                lo = _resolve_point(cp, st.lo, n, cache) if st.lo is not None else np.full(n, -np.inf)
                hi = _resolve_point(cp, st.hi, n, cache) if st.hi is not None else np.full(n, np.inf)
                sets.append(vs.box(lo, hi, span=st.span))
            elif st.kind == "halfspaces":
                sets.append(vs.halfspaces(st.A, st.b, span=st.span))
            else:
                c = _resolve_point(cp, st.center, n, cache)
                first_center = c if first_center is None else first_center
                sets.append(getattr(vs, st.kind)(c, st.radius, span=st.span))
        ps = spec.prop
        if ps.kind == "classified":
            label = ps.label
            if label is None:
                assert first_center is not None
                label = int(net.predict(first_center[None, :])[0])
            prop = vs.classified(label, span=ps.span)
        elif ps.kind in ("maximize", "minimize"):
            coef = _resolve_point(cp, ps.coef, None, cache)
            prop = getattr(vs, ps.kind)(coef, threshold=ps.threshold, span=ps.span)
        elif ps.kind == "unsafe":
            prop = vs.unsafe([vs.Case(G, h, strict, f"case {k}") for k, (G, h, strict) in enumerate(ps.cases)],
                             span=ps.span)
        else:
            m = net.n_outputs
            lo = _resolve_point(cp, ps.lo, m, cache) if ps.lo is not None else None
            hi = _resolve_point(cp, ps.hi, m, cache) if ps.hi is not None else None
            prop = vs.output_box(lo, hi, span=ps.span)
        domain = None if spec.domain is None else (np.full(n, spec.domain[0]), np.full(n, spec.domain[1]))
        return VerifyProblem(net, sets, prop, domain, spec.tighten, spec.time_limit)
    except NnmipError as exc:
        raise exc.with_source(cp.program.source) from None


def run_verify_spec(cp: Any, spec: Any, *, solver: str | None = None, time_limit: float | None = None,
                    options: SolveOptions | None = None, tighten: str | None = None,
                    deadline: Deadline | None = None, method: dict[str, str] | None = None, bab: str = "auto",
                    workers: int = 1) -> VerifyResult:
    """Run one checked ``verify`` statement (:class:`nnmip.check.verify_stmt.VerifySpec`) of a program.

    ``deadline`` is a budget shared with the statements around it; ``method``, ``bab`` and ``workers`` as for
    :func:`verify`.
    """
    from nnmip.errors import NnmipError

    vp = resolve_verify_spec(cp, spec)
    try:
        return verify(vp.net, vp.sets, vp.prop, solver=solver or cp.solver.name,
                      time_limit=time_limit if time_limit is not None else vp.time_limit,
                      tighten=tighten or vp.tighten, options=options, domain=vp.domain, deadline=deadline,
                      method=method, bab=bab, workers=workers)
    except NnmipError as exc:
        raise exc.with_source(cp.program.source) from None
