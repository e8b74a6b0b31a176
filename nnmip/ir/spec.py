"""What a fixed-weight question is about: input sets (where the input may be) and output properties.

Input sets (docs/formulations.md §13) are intersected with each other and with the input domain:

* ``box(lo, hi)``: ``lo <= x <= hi``;
* ``linf(center, r)``: ``|x - center|_inf <= r`` (a box);
* ``l1(center, r)``: ``|x - center|_1 <= r`` (linear rows in the model);
* ``l2(center, r)``: ``|x - center|_2 <= r`` (a second-order cone);
* ``halfspaces(A, b)``: ``A x <= b`` (linear input constraints, e.g. from VNN-LIB).

A property is described by where it *fails*: a union of output polyhedra ("cases").  Case ``k`` holds rows
``g_kr(y) = G_kr . y + h_kr`` and the input ``x`` violates the property through case ``k`` when every row has
``g_kr(y) <= 0`` (``< 0`` for a strict row).  The *score* of a case is ``s_k(y) = min_r -g_kr(y)``: the
property fails somewhere in the set exactly when ``max_x s_k(y(x)) >= 0`` for some ``k`` (``> 0`` when the
binding row is strict).  The optimisation properties ``maximize``/``minimize`` are one case whose score is the
objective (minus the threshold, when one is given).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from nnmip.errors import NO_SPAN, FormulationError, ParameterError, Span

FloatArray = npt.NDArray[np.float64]

SET_KINDS = ("box", "linf", "l1", "l2", "halfspaces")
PROPERTY_KINDS = ("maximize", "minimize", "classified", "output_box", "unsafe")


def _array(v: object, what: str, arg: str, ndim: int) -> FloatArray:
    """``v`` as a float array of ``ndim`` dimensions (1: flattened) without NaN, or a ParameterError naming ``arg``."""
    shape = "a flat array" if ndim == 1 else "a matrix"
    try:
        a = np.array(v)
        if a.dtype.kind not in "biufO" or a.dtype == np.bool_ or a.size == 0:
            raise TypeError
        a = a.astype(np.float64)
        a = a.reshape(-1) if ndim == 1 else np.atleast_2d(a)
        if a.ndim != ndim:
            raise TypeError
    except (TypeError, ValueError, OverflowError):
        raise ParameterError.at("E0108", f"argument '{arg}' ({what}) must be a number or {shape} of numbers, "
                                f"got {v!r:.60}",
                                notes=[f"help: give {what} as a list or numpy array of floats"]) from None
    if np.isnan(a).any():
        raise ParameterError.at("E0109", f"argument '{arg}' ({what}) contains NaN",
                                notes=[f"help: give {what} as finite numbers"])
    a.setflags(write=False)
    return a


def _vec(v: npt.ArrayLike | None, what: str, arg: str) -> FloatArray | None:
    return None if v is None else _array(v, what, arg, 1)


def _radius(r: object) -> float:
    if isinstance(r, bool) or not isinstance(r, (int, float, np.integer, np.floating)):
        raise ParameterError.at("E0108", f"argument 'radius' must be a number, got {r!r:.60}",
                                notes=["help: give the radius as a float such as 0.1"])
    if not math.isfinite(float(r)) or r < 0:
        raise ParameterError.of("radius", f"must be finite and not negative, got {r!r}",
                                "give a finite radius >= 0 such as 0.1", code="E0411")
    return float(r)


def _scalar(name: str, v: object, none: bool = False) -> float | None:
    """A finite real number (or ``None`` when allowed) for a Python API argument."""
    from nnmip.errors import check_number

    check_number(name, v, low=None, none=none)
    return None if v is None else float(v)  # type: ignore[arg-type]


@dataclass(frozen=True, eq=False)
class InputSet:
    """One input set; build it with :func:`box`, :func:`linf`, :func:`l1`, :func:`l2` or :func:`halfspaces`."""

    kind: str
    center: FloatArray | None = None
    radius: float = 0.0
    lo: FloatArray | None = None
    hi: FloatArray | None = None
    A: FloatArray | None = None
    b: FloatArray | None = None
    span: Span = field(default=NO_SPAN, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in SET_KINDS:
            raise ParameterError.at("E0109", f"unknown input set kind {self.kind!r}",
                                     notes=[f"help: one of {', '.join(SET_KINDS)}"])
        if self.kind in ("linf", "l1", "l2"):
            if self.center is None:
                raise ParameterError.at("E0109", f"a {self.kind} ball needs a center",
                                         notes=["help: give the center point"])
            if not np.isfinite(self.radius) or self.radius < 0:
                raise FormulationError.at("E0411", f"the radius of the {self.kind} ball must be finite and not "
                                          f"negative, got {self.radius}", self.span,
                                          ["help: give a finite radius >= 0 such as 0.1"])

    def dim(self) -> int | None:
        for v in (self.center, self.lo, self.hi):
            if v is not None:
                return int(v.size)
        if self.A is not None:
            return int(self.A.shape[1])
        return None

    def outer_box(self, n: int) -> tuple[FloatArray, FloatArray]:
        """The smallest box around the set (every ball's box is ``center +- radius``)."""
        if self.kind in ("linf", "l1", "l2"):
            assert self.center is not None
            c = np.broadcast_to(self.center, (n,))
            return c - self.radius, c + self.radius
        if self.kind == "box":
            lo = np.full(n, -np.inf) if self.lo is None else np.broadcast_to(self.lo, (n,)).astype(np.float64)
            hi = np.full(n, np.inf) if self.hi is None else np.broadcast_to(self.hi, (n,)).astype(np.float64)
            return lo, hi
        return np.full(n, -np.inf), np.full(n, np.inf)

    def contains(self, X: FloatArray, tol: float = 0.0) -> npt.NDArray[np.bool_]:
        """Which rows of ``X`` (N, n) lie in the set (up to ``tol``)."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        n = X.shape[1]
        if self.kind == "box":
            lo, hi = self.outer_box(n)
            return np.all((lo - tol <= X) & (hi + tol >= X), axis=1)
        if self.kind == "halfspaces":
            assert self.A is not None
            assert self.b is not None
            return np.all(self.b + tol >= X @ self.A.T, axis=1)
        assert self.center is not None
        d = X - self.center
        norm = {"linf": np.inf, "l1": 1, "l2": 2}[self.kind]
        return np.linalg.norm(d, ord=norm, axis=1) <= self.radius + tol

    def describe(self) -> str:
        if self.kind == "box":
            return "box"
        if self.kind == "halfspaces":
            assert self.A is not None
            return f"{self.A.shape[0]} halfspaces"
        return f"{self.kind}({self.radius:g})"


def box(lo: npt.ArrayLike, hi: npt.ArrayLike, span: Span = NO_SPAN) -> InputSet:
    """The box ``lo <= x <= hi`` (scalars broadcast over the input)."""
    return InputSet("box", lo=_vec(lo, "box lower bound", "lo"), hi=_vec(hi, "box upper bound", "hi"), span=span)


def linf(center: npt.ArrayLike, radius: float, span: Span = NO_SPAN) -> InputSet:
    """The ball ``|x - center|_inf <= radius``."""
    return InputSet("linf", center=_vec(center, "center", "center"), radius=_radius(radius), span=span)


def l1(center: npt.ArrayLike, radius: float, span: Span = NO_SPAN) -> InputSet:
    """The ball ``|x - center|_1 <= radius``."""
    return InputSet("l1", center=_vec(center, "center", "center"), radius=_radius(radius), span=span)


def l2(center: npt.ArrayLike, radius: float, span: Span = NO_SPAN) -> InputSet:
    """The ball ``|x - center|_2 <= radius``."""
    return InputSet("l2", center=_vec(center, "center", "center"), radius=_radius(radius), span=span)


def halfspaces(A: npt.ArrayLike, b: npt.ArrayLike, span: Span = NO_SPAN) -> InputSet:
    """The polyhedron ``A x <= b``."""
    A_a = _array(A, "constraint matrix", "A", 2)
    b_a = _array(b, "right-hand side", "b", 1)
    if A_a.shape[0] != b_a.size:
        raise ParameterError.at("E0412", "halfspaces: A and b disagree on the number of rows",
                                 notes=["help: give one bound in b per row of A"])
    return InputSet("halfspaces", A=A_a, b=b_a, span=span)


@dataclass(frozen=True, eq=False)
class Region:
    """The intersection of input sets and the input domain box."""

    sets: tuple[InputSet, ...]
    domain_lo: FloatArray | None = None
    domain_hi: FloatArray | None = None

    def box(self, n: int) -> tuple[FloatArray, FloatArray]:
        """The tightest box this region is known to lie in (outer boxes of every set and the domain)."""
        lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
        for s in self.sets:
            d = s.dim()
            if d is not None and d != n:
                raise FormulationError.at("E0412", f"input set {s.describe()} has {d} entries but the network "
                                          f"has {n} inputs", s.span)
            sl, sh = s.outer_box(n)
            lo, hi = np.maximum(lo, sl), np.minimum(hi, sh)
        if self.domain_lo is not None:
            lo = np.maximum(lo, np.broadcast_to(self.domain_lo, (n,)))
        if self.domain_hi is not None:
            hi = np.minimum(hi, np.broadcast_to(self.domain_hi, (n,)))
        if (lo > hi).any():
            j = int(np.argmax(lo > hi))
            raise FormulationError.at("E0410", f"the input region is empty: input {j} must lie in "
                                      f"[{lo[j]:g}, {hi[j]:g}]", self.span,
                                      ["help: the sets and the input domain do not intersect; check the center "
                                       "and the radius"])
        return lo, hi

    @property
    def span(self) -> Span:
        return self.sets[0].span if self.sets else NO_SPAN

    def check(self, n: int) -> tuple[FloatArray, FloatArray]:
        """The box of :meth:`box`, after refusing what no solver can use: an entry beyond ``MAX_MAGNITUDE``
        (E0133) and a region with no point (E0410; for halfspaces decided by one LP feasibility solve).
        """
        from nnmip.model import MAX_MAGNITUDE

        lo, hi = self.box(n)
        big = np.isfinite(lo) & (np.abs(lo) > MAX_MAGNITUDE) | np.isfinite(hi) & (np.abs(hi) > MAX_MAGNITUDE)
        if big.any():
            j = int(np.argmax(big))
            raise FormulationError.at("E0133", f"input {j} of the region may reach [{lo[j]:g}, {hi[j]:g}], beyond "
                                      f"{MAX_MAGNITUDE:g}, the largest magnitude nnmip gives a solver", self.span,
                                      [f"help: bound the input within +-{MAX_MAGNITUDE:g} (a domain or smaller "
                                       "sets), or scale it"])
        for s in self.sets:
            if s.A is not None and s.b is not None and (np.abs(np.r_[s.A.ravel(), s.b]) > MAX_MAGNITUDE).any():
                raise FormulationError.at("E0133", f"the halfspaces A x <= b hold a number beyond {MAX_MAGNITUDE:g},"
                                          " the largest magnitude nnmip gives a solver", s.span,
                                          ["help: scale the rows of A and b"])
        halfs = [s for s in self.sets if s.kind == "halfspaces"]
        if halfs:
            from scipy.optimize import linprog

            A = np.vstack([s.A for s in halfs if s.A is not None])
            b = np.concatenate([s.b for s in halfs if s.b is not None])
            bounds = [(None if not np.isfinite(a) else float(a), None if not np.isfinite(c) else float(c))
                      for a, c in zip(lo, hi, strict=True)]
            res = linprog(np.zeros(n), A_ub=A, b_ub=b, bounds=bounds, method="highs")
            if res.status == 2:
                raise FormulationError.at("E0410", f"the input region is empty: no input satisfies the "
                                          f"{A.shape[0]} halfspace rows A x <= b together with the other sets and "
                                          "the input domain", halfs[0].span,
                                          ["help: check the signs of A and b (the set is A x <= b)"])
        return lo, hi

    def kinds(self) -> set[str]:
        return {s.kind for s in self.sets}

    def contains(self, X: FloatArray, tol: float = 1e-9) -> npt.NDArray[np.bool_]:
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        lo, hi = self.box(X.shape[1])
        ok = np.all((lo - tol <= X) & (hi + tol >= X), axis=1)
        for s in self.sets:
            if s.kind in ("l1", "l2", "halfspaces"):
                ok &= s.contains(X, tol)
        return ok

    def contains_point(self, x: npt.ArrayLike) -> bool:
        """Whether the one input ``x`` lies in the region exactly (no tolerance): the test every input nnmip
        reports passes.
        """
        return bool(self.contains(np.asarray(x, dtype=np.float64)[None, :], tol=0.0)[0])

    def center(self, n: int) -> FloatArray:
        """A point of the box: the first ball's center clipped to the box, else the box middle."""
        lo, hi = self.box(n)
        for s in self.sets:
            if s.center is not None:
                return np.clip(s.center, lo, hi)
        mid = np.where(np.isfinite(lo) & np.isfinite(hi), (lo + hi) / 2, np.where(np.isfinite(lo), lo, hi))
        return np.where(np.isfinite(mid), mid, 0.0)

    def project(self, x: FloatArray) -> FloatArray:
        """``x`` clipped to the box and pulled towards each l1/l2 center until it fits (for solver round-off)."""
        n = x.size
        lo, hi = self.box(n)
        y = np.clip(np.asarray(x, dtype=np.float64), lo, hi)
        for s in self.sets:
            if s.kind in ("l1", "l2") and s.center is not None:
                norm = 1 if s.kind == "l1" else 2
                d = float(np.linalg.norm(y - s.center, ord=norm))
                if d > s.radius:
                    # pulled in a little further each time the rounding of center + offset still lands outside
                    # (a small ball far from 0), at last onto the center itself
                    for shrink in (1e-12, 1e-9, 1e-6, 1e-3, 1.0):
                        z = np.clip(s.center + (y - s.center) * (s.radius / d) * (1 - shrink), lo, hi)
                        if float(np.linalg.norm(z - s.center, ord=norm)) <= s.radius:
                            break
                    y = z
        return y

    def sample(self, n: int, k: int, rng: np.random.Generator) -> FloatArray:
        """Up to ``k`` points of the region: the center, box corners towards random signs and random points.

        Points are drawn in the outer box and, for l1/l2 balls, pulled towards the center until they fit;
        points that still fall outside (halfspaces) are dropped.
        """
        lo, hi = self.box(n)
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            raise FormulationError.at("E0413", "the input region is unbounded", self.span,
                                      ["help: give the input a domain or a bounded set"])
        c = self.center(n)
        pts = [c[None, :]]
        if k > 1:
            signs = rng.integers(0, 2, size=(k // 2, n)).astype(bool)
            pts.append(np.where(signs, hi, lo))
            pts.append(lo + rng.random((k - 1 - k // 2, n)) * (hi - lo))
        X = np.vstack(pts)
        for s in self.sets:
            if s.kind in ("l1", "l2") and s.center is not None:
                cc = np.clip(s.center, lo, hi)
                norm = 1 if s.kind == "l1" else 2
                d = np.linalg.norm(X - cc, ord=norm, axis=1)
                d0 = float(np.linalg.norm(cc - s.center, ord=norm))
                room = max(s.radius - d0, 0.0)
                f = np.ones_like(d)
                far = d > room                 # d > room >= 0: no division by zero, no overflow
                f[far] = room / d[far]
                X = cc + (X - cc) * f[:, None]
        return X[self.contains(X, tol=0.0)]    # exactly in the region: these points may be reported


# ----------------------------------------------------------------------------------------------------------
# properties
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Case:
    """One way to fail: every row ``G @ y + h <= 0`` (``< 0`` where ``strict``)."""

    G: FloatArray
    h: FloatArray
    strict: npt.NDArray[np.bool_]
    label: str = ""

    def score(self, Y: FloatArray) -> FloatArray:
        """``min_r -(G_r . y + h_r)`` for each row of ``Y`` (N, n_out)."""
        Y = np.atleast_2d(Y)
        return np.min(-(Y @ self.G.T + self.h), axis=1)

    def hit(self, Y: FloatArray) -> npt.NDArray[np.bool_]:
        """Which rows of ``Y`` lie in the failure polyhedron (the forward-pass test of a counterexample)."""
        Y = np.atleast_2d(Y)
        g = Y @ self.G.T + self.h
        return np.all(np.where(self.strict, g < 0, g <= 0), axis=1)


@dataclass(frozen=True, eq=False)
class Property:
    """An output property; build it with :func:`maximize`, :func:`minimize`, :func:`classified`,
    :func:`output_box` or :func:`unsafe`.
    """

    kind: str
    coef: FloatArray | None = None
    offset: float = 0.0
    threshold: float | None = None
    label: int | None = None
    lo: FloatArray | None = None
    hi: FloatArray | None = None
    raw_cases: tuple[Case, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in PROPERTY_KINDS:
            raise ParameterError.at("E0109", f"unknown property kind {self.kind!r}",
                                     notes=[f"help: one of {', '.join(PROPERTY_KINDS)}"])

    @property
    def is_optimization(self) -> bool:
        """``maximize``/``minimize`` without a threshold: the answer is a proven optimum, not a yes/no."""
        return self.kind in ("maximize", "minimize") and self.threshold is None

    @property
    def sign(self) -> float:
        """The score is ``sign * (objective)`` (minimize is solved as the maximum of the negation)."""
        return -1.0 if self.kind == "minimize" else 1.0

    def compares_outputs_only(self, n_out: int) -> bool:
        """True when the property only compares outputs with each other (``classified``, or every failure row
        ``c (y_i - y_j) <= 0`` with no constant): such a property holds on a network exactly when it holds after a
        strictly increasing map applied to every output alike (softmax, an elementwise sigmoid), so it can be
        checked on the logits before them.
        """
        if self.kind == "classified":
            return True
        if self.kind in ("maximize", "minimize"):
            return False
        for case in self.cases(n_out):
            for g, h in zip(np.atleast_2d(case.G), np.atleast_1d(case.h), strict=True):
                nz = np.flatnonzero(g)
                if h != 0.0 or nz.size != 2 or g[nz[0]] != -g[nz[1]]:
                    return False
        return True

    def cases(self, n_out: int) -> list[Case]:
        """The failure cases for a network with ``n_out`` outputs."""
        if self.kind in ("maximize", "minimize"):
            c = self._coef(n_out)
            s = self.sign
            t = 0.0 if self.threshold is None else float(self.threshold)
            # score = s * (c.y + offset - t);  row g = -score
            return [Case(-s * c[None, :], np.array([-s * (self.offset - t)]), np.array([False]),
                         f"{self.kind} objective")]
        if self.kind == "classified":
            assert self.label is not None
            c = int(self.label)
            if n_out == 1:
                if c not in (0, 1):
                    raise FormulationError.at("E0414", f"class {c} does not exist: a network with one output "
                                              "predicts class 0 (output <= 0) or 1 (output > 0)", self.span)
                # class 1 fails when y <= 0 (g = y); class 0 fails when y > 0 (g = -y, strict)
                sign = 1.0 if c == 1 else -1.0
                return [Case(np.array([[sign]]), np.zeros(1), np.array([c == 0]), "output sign")]
            if not 0 <= c < n_out:
                raise FormulationError.at("E0414", f"class {c} does not exist: the network has {n_out} outputs",
                                          self.span, [f"help: classes are 0 to {n_out - 1}"])
            out = []
            for j in range(n_out):
                if j == c:
                    continue
                G = np.zeros((1, n_out))
                G[0, c], G[0, j] = 1.0, -1.0       # fails when y_j - y_c >= 0 (> 0 for j > c: ties go to c)
                out.append(Case(G, np.zeros(1), np.array([j > c]), f"y{j} {'>' if j > c else '>='} y{c}"))
            return out
        if self.kind == "output_box":
            for what, v in (("lower", self.lo), ("upper", self.hi)):
                if v is not None and v.size not in (1, n_out):
                    raise FormulationError.at("E0412", f"the output box has {v.size} {what} bounds but the network "
                                              f"has {n_out} outputs", self.span,
                                              [f"help: give one bound or {n_out} bounds"])
            lo = np.full(n_out, -np.inf) if self.lo is None else np.broadcast_to(self.lo, (n_out,))
            hi = np.full(n_out, np.inf) if self.hi is None else np.broadcast_to(self.hi, (n_out,))
            out = []
            for i in range(n_out):
                e = np.zeros((1, n_out))
                e[0, i] = 1.0
                if np.isfinite(hi[i]):      # fails when y_i > hi_i
                    out.append(Case(-e, np.array([hi[i]]), np.array([True]), f"y{i} > {hi[i]:g}"))
                if np.isfinite(lo[i]):      # fails when y_i < lo_i
                    out.append(Case(e.copy(), np.array([-lo[i]]), np.array([True]), f"y{i} < {lo[i]:g}"))
            return out
        for cs in self.raw_cases:
            if cs.G.shape[1] != n_out:
                raise FormulationError.at("E0412", f"the property speaks of {cs.G.shape[1]} outputs but the "
                                          f"network has {n_out}", self.span)
        return list(self.raw_cases)

    def _coef(self, n_out: int) -> FloatArray:
        assert self.coef is not None
        if self.coef.size != n_out:
            raise FormulationError.at("E0412", f"the objective has {self.coef.size} coefficients but the network "
                                      f"has {n_out} outputs", self.span)
        return np.asarray(self.coef, dtype=np.float64)

    def objective(self, Y: FloatArray) -> FloatArray:
        """The value of a maximize/minimize objective ``c . y + offset`` per row of ``Y``."""
        c = self._coef(np.atleast_2d(Y).shape[1])
        return np.atleast_2d(Y) @ c + self.offset

    def violated(self, Y: FloatArray) -> npt.NDArray[np.bool_]:
        """Which rows of ``Y`` violate the property (never for a pure optimisation query)."""
        Y = np.atleast_2d(Y)
        if self.is_optimization:
            return np.zeros(Y.shape[0], dtype=bool)
        hit = np.zeros(Y.shape[0], dtype=bool)
        for cs in self.cases(Y.shape[1]):
            hit |= cs.hit(Y)
        return hit

    def describe(self) -> str:
        if self.kind in ("maximize", "minimize"):
            thr = "" if self.threshold is None else (f" < {self.threshold:g}" if self.kind == "maximize"
                                                      else f" > {self.threshold:g}")
            return f"{self.kind} c.y{thr}"
        if self.kind == "classified":
            return f"classified as {self.label}"
        if self.kind == "output_box":
            return "output box"
        return f"unsafe set of {len(self.raw_cases)} case(s)"


def maximize(coef: npt.ArrayLike, offset: float = 0.0, threshold: float | None = None,
             span: Span = NO_SPAN) -> Property:
    """Maximise ``coef . y + offset``; with ``threshold`` the property is ``coef . y + offset < threshold``."""
    return Property("maximize", coef=_vec(coef, "objective", "coef"),
                    offset=_scalar("offset", offset), threshold=_scalar("threshold", threshold, none=True), span=span)


def minimize(coef: npt.ArrayLike, offset: float = 0.0, threshold: float | None = None,
             span: Span = NO_SPAN) -> Property:
    """Minimise ``coef . y + offset``; with ``threshold`` the property is ``coef . y + offset > threshold``."""
    return Property("minimize", coef=_vec(coef, "objective", "coef"),
                    offset=_scalar("offset", offset), threshold=_scalar("threshold", threshold, none=True), span=span)


def classified(label: int, span: Span = NO_SPAN) -> Property:
    """Every input of the set is classified as ``label`` (argmax, first index on ties): ``y_j < y_label`` for
    ``j < label`` and ``y_j <= y_label`` for ``j > label``.
    """
    import numbers

    if isinstance(label, bool) or not isinstance(label, numbers.Integral) or int(label) < 0:
        raise ParameterError.of("label", f"must be a class index (a whole number >= 0), got {label!r:.60}",
                                "classes are numbered 0, 1, ..., n_outputs - 1", code="E0414")
    return Property("classified", label=int(label), span=span)


def output_box(lo: npt.ArrayLike | None = None, hi: npt.ArrayLike | None = None, span: Span = NO_SPAN) -> Property:
    """Every output stays in ``[lo, hi]`` (``None`` or infinite entries leave a side open)."""
    return Property("output_box", lo=_vec(lo, "output lower bound", "lo"), hi=_vec(hi, "output upper bound", "hi"),
                    span=span)


def unsafe(cases: list[Case] | tuple[Case, ...], span: Span = NO_SPAN) -> Property:
    """The property fails exactly on the union of ``cases`` (the VNN-LIB reading of an output assertion)."""
    return Property("unsafe", raw_cases=tuple(cases), span=span)
