"""Build the IR from Python.  The language lowers through this same builder, so a network written in a
``.nnmip`` file and the same network built here compile to identical models.

>>> from nnmip.ir.builder import NetworkBuilder, real, integer
>>> nb = NetworkBuilder("bdnn")
>>> x = nb.input("x", 9)
>>> h1 = nb.dense("h1", x, 4, weights=real(-1, 1), bias=real(-10, 10))
>>> a1 = nb.step("a1", h1)
>>> y = nb.step("y", nb.dense("h2", a1, 2, weights=integer(-1, 1), bias=integer(-5, 5)))
>>> nb.build().n_outputs
2
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np
import numpy.typing as npt

from nnmip.errors import NO_SPAN, CheckError, Diagnostic, ParameterError, Span, check_memory, check_number
from nnmip.ir.network import Network, validate_graph
from nnmip.ir.ops import NODE_ACTIVATIONS, Dense, Input, Op, ParamDomain


@dataclass(frozen=True)
class DomainSpec:
    """A parameter domain before its shape is known: ``real(lo, hi)``, ``integer(lo, hi)`` or ``fixed(values)``."""

    kind: str
    lo: float = 0.0
    hi: float = 0.0
    values: npt.NDArray[np.float64] | None = None
    span: Span = NO_SPAN

    def resolve(self, shape: tuple[int, ...]) -> ParamDomain:
        if self.kind == "fixed":
            assert self.values is not None
            v = np.asarray(self.values, dtype=np.float64)
            if v.shape != shape:
                if v.size == int(np.prod(shape)) and v.ndim == 1 and len(shape) == 2 and shape[0] == 1:
                    v = v.reshape(shape)
                else:
                    raise ParameterError.of("values", f"of fixed() have shape {v.shape}, expected {shape}",
                                            "weights are (width, inputs), one row per unit; a bias has one entry "
                                            "per unit", code="E0121")
            return ParamDomain.fixed(v, self.span)
        return ParamDomain.box(self.kind, self.lo, self.hi, shape, self.span)


def _bound(name: str, value: object) -> float:
    """A domain bound: a finite real number (not a bool, not a string)."""
    check_number(name, value, low=None)
    return float(value)  # type: ignore[arg-type]


def _domain(kind: str, lo: object, hi: object) -> DomainSpec:
    a, b = _bound("lo", lo), _bound("hi", hi)
    if kind == "int" and not (a.is_integer() and b.is_integer()):
        raise ParameterError.of("lo" if not a.is_integer() else "hi", f"of integer() must be a whole number, "
                                f"got {lo if not a.is_integer() else hi!r}", "integer domains have whole bounds")
    if a > b:
        raise ParameterError.of("lo", f"must not exceed hi, got [{a:g}, {b:g}]", "write the lower bound first",
                                code="E0130")
    return DomainSpec(kind, a, b)


def real(lo: float, hi: float) -> DomainSpec:
    """Continuous parameters in [lo, hi] (finite, lo <= hi)."""
    return _domain("real", lo, hi)


def integer(lo: int, hi: int) -> DomainSpec:
    """Integer parameters in {lo, ..., hi} (whole numbers, lo <= hi)."""
    return _domain("int", lo, hi)


def fixed(values: npt.ArrayLike) -> DomainSpec:
    """Parameters fixed to ``values`` (finite numbers)."""
    return DomainSpec("fixed", values=_finite_array("values", values))


def _finite_array(name: str, values: object) -> npt.NDArray[np.float64]:
    """``values`` as a float array of finite real numbers, or a :class:`ParameterError` naming ``name``."""
    try:
        a = np.asarray(values)
        if a.dtype.kind not in "biuf" or a.dtype == np.bool_:
            raise TypeError
        a = a.astype(np.float64)
    except (TypeError, ValueError):
        raise ParameterError.of(name, f"must be an array of real numbers, got {_short(values)}",
                                "pass a list or numpy array of floats with a regular shape", code="E0108") from None
    if not np.all(np.isfinite(a)):
        raise ParameterError.of(name, "must hold only finite numbers (found NaN or infinity)",
                                "replace missing or infinite entries")
    return a


def _short(value: object) -> str:
    r = repr(value)
    return r if len(r) <= 60 else r[:57] + "..."


def _check_name(name: object, what: str = "name") -> str:
    if not isinstance(name, str) or not name:
        raise ParameterError.of(what, f"must be a non-empty string, got {_short(name)}", "name every node",
                                code="E0108")
    return name


def _check_width(width: object, what: str = "width") -> int:
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or int(width) < 1:
        raise ParameterError.of(what, f"must be a positive whole number, got {_short(width)}",
                                "a layer has at least one unit", code="E0120")
    return int(width)


class NetworkBuilder:
    """Add named nodes, each naming its input; ``build`` validates and returns a :class:`Network`."""

    def __init__(self, name: str = "net") -> None:
        self.name = _check_name(name)
        self.graph = nx.DiGraph()
        self._dims: dict[str, int] = {}

    def _add(self, name: str, op: Op, inputs: tuple[str, ...], dim: int) -> str:
        _check_name(name)
        if name in self.graph:
            raise CheckError.at("E0103", f"node '{name}' is defined twice", op.span)
        for src in inputs:
            if src not in self.graph:
                raise CheckError.at("E0102", f"unknown node '{src}'", op.span)
        self.graph.add_node(name, op=op, inputs=inputs)
        for src in inputs:
            self.graph.add_edge(src, name)
        self._dims[name] = dim
        return name

    def dim(self, node: str) -> int:
        return self._dims[node]

    def input(self, name: str, dim: int, lo: npt.ArrayLike | None = None, hi: npt.ArrayLike | None = None,
              span: Span = NO_SPAN) -> str:
        _check_name(name)
        dim = _check_width(dim, "dim")
        lo_a = None if lo is None else self._input_bound("lo", lo, dim)
        hi_a = None if hi is None else self._input_bound("hi", hi, dim)
        if lo_a is not None and hi_a is not None and np.any(lo_a > hi_a):
            i = int(np.argmax(lo_a > hi_a))
            raise ParameterError.of("lo", f"exceeds hi at entry {i}: [{lo_a[i]:g}, {hi_a[i]:g}]",
                                    "write the lower bound first", code="E0130")
        return self._add(name, Input(dim=dim, lo=lo_a, hi=hi_a, span=span), (), dim)

    @staticmethod
    def _input_bound(what: str, value: npt.ArrayLike, dim: int) -> npt.NDArray[np.float64]:
        """An input bound: one number or ``dim`` numbers, never NaN (an infinite bound leaves that side open)."""
        try:
            a = np.asarray(value)
            if a.dtype.kind not in "biuf" or a.dtype == np.bool_:
                raise TypeError
            a = a.astype(np.float64)
        except (TypeError, ValueError):
            raise ParameterError.of(what, f"must be a number or an array of numbers, got {_short(value)}",
                                    code="E0108") from None
        if a.ndim > 1 or (a.ndim == 1 and a.shape[0] != dim):
            raise ParameterError.of(what, f"has shape {a.shape}, expected one number or {dim} numbers",
                                    "give one bound per input entry", code="E0121")
        if np.any(np.isnan(a)):
            raise ParameterError.of(what, "contains NaN", "use -inf/inf for an open side")
        return np.broadcast_to(a, (dim,)).copy()

    def dense(self, name: str, x: str, width: int, weights: DomainSpec | None = None,
              bias: DomainSpec | None = DomainSpec("real", -1.0, 1.0), span: Span = NO_SPAN) -> str:
        _check_name(name)
        if not isinstance(x, str) or x not in self._dims:
            raise CheckError.at("E0102", f"unknown node '{x}'", span)
        n_in = self._dims[x]
        width = _check_width(width)
        weights = weights if weights is not None else real(-1, 1)
        for what, d in (("weights", weights), ("bias", bias)):
            if d is not None and not isinstance(d, DomainSpec):
                raise ParameterError.of(what, f"must be real(lo, hi), integer(lo, hi), fixed(values) or "
                                        f"{'None' if what == 'bias' else 'omitted'}, got {_short(d)}",
                                        "wrap arrays in fixed(...)", code="E0108")
        check_memory(24.0 * width * (n_in + 1), f"layer '{name}' ({width} x {n_in} parameters)", span)
        op = Dense(n_in=n_in, n_out=width, weights=weights.resolve((width, n_in)),
                   bias=None if bias is None else bias.resolve((width,)), span=span)
        return self._add(name, op, (x,), width)

    def activation(self, kind: str, name: str, x: str, span: Span = NO_SPAN) -> str:
        if not isinstance(kind, str) or kind not in NODE_ACTIVATIONS:
            raise ParameterError.of("kind", f"must be one of {', '.join(NODE_ACTIVATIONS)}, got {_short(kind)}",
                                    "other activations are not supported", code="E0101")
        _check_name(name)
        if not isinstance(x, str) or x not in self._dims:
            raise CheckError.at("E0102", f"unknown node '{x}'", span)
        return self._add(name, NODE_ACTIVATIONS[kind](span=span), (x,), self._dims[x])

    def step(self, name: str, x: str, span: Span = NO_SPAN) -> str:
        return self.activation("step", name, x, span)

    def sign(self, name: str, x: str, span: Span = NO_SPAN) -> str:
        return self.activation("sign", name, x, span)

    def relu(self, name: str, x: str, span: Span = NO_SPAN) -> str:
        return self.activation("relu", name, x, span)

    def identity(self, name: str, x: str, span: Span = NO_SPAN) -> str:
        return self.activation("identity", name, x, span)

    def sigmoid(self, name: str, x: str, span: Span = NO_SPAN) -> str:
        """A sigmoid node (verification only: bounds and search, no MILP; see :class:`nnmip.ir.ops.Smooth`)."""
        return self.activation("sigmoid", name, x, span)

    def tanh(self, name: str, x: str, span: Span = NO_SPAN) -> str:
        """A tanh node (verification only, like :meth:`sigmoid`)."""
        return self.activation("tanh", name, x, span)

    def build(self) -> Network:
        diags: list[Diagnostic] = validate_graph(self.graph, self.name)
        if diags:
            raise CheckError(diagnostics=diags)
        return Network(self.graph.copy(), self.name)
