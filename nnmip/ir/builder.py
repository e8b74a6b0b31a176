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

from nnmip.errors import NO_SPAN, CheckError, Diagnostic, Span
from nnmip.ir.network import Network, validate_graph
from nnmip.ir.ops import ACTIVATIONS, Dense, Input, Op, ParamDomain


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
                    raise ValueError(f"fixed values have shape {v.shape}, expected {shape}")
            return ParamDomain.fixed(v, self.span)
        return ParamDomain.box(self.kind, self.lo, self.hi, shape, self.span)


def real(lo: float, hi: float) -> DomainSpec:
    """Continuous parameters in [lo, hi]."""
    return DomainSpec("real", float(lo), float(hi))


def integer(lo: int, hi: int) -> DomainSpec:
    """Integer parameters in {lo, ..., hi}."""
    return DomainSpec("int", float(lo), float(hi))


def fixed(values: npt.ArrayLike) -> DomainSpec:
    """Parameters fixed to ``values``."""
    return DomainSpec("fixed", values=np.asarray(values, dtype=np.float64))


class NetworkBuilder:
    """Add named nodes, each naming its input; ``build`` validates and returns a :class:`Network`."""

    def __init__(self, name: str = "net") -> None:
        self.name = name
        self.graph = nx.DiGraph()
        self._dims: dict[str, int] = {}

    def _add(self, name: str, op: Op, inputs: tuple[str, ...], dim: int) -> str:
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
        lo_a = None if lo is None else np.broadcast_to(np.asarray(lo, dtype=np.float64), (dim,)).copy()
        hi_a = None if hi is None else np.broadcast_to(np.asarray(hi, dtype=np.float64), (dim,)).copy()
        return self._add(name, Input(dim=int(dim), lo=lo_a, hi=hi_a, span=span), (), int(dim))

    def dense(self, name: str, x: str, width: int, weights: DomainSpec | None = None,
              bias: DomainSpec | None = DomainSpec("real", -1.0, 1.0), span: Span = NO_SPAN) -> str:
        if x not in self._dims:
            raise CheckError.at("E0102", f"unknown node '{x}'", span)
        n_in = self._dims[x]
        weights = weights if weights is not None else real(-1, 1)
        op = Dense(n_in=n_in, n_out=int(width), weights=weights.resolve((int(width), n_in)),
                   bias=None if bias is None else bias.resolve((int(width),)), span=span)
        return self._add(name, op, (x,), int(width))

    def activation(self, kind: str, name: str, x: str, span: Span = NO_SPAN) -> str:
        if x not in self._dims:
            raise CheckError.at("E0102", f"unknown node '{x}'", span)
        return self._add(name, ACTIVATIONS[kind](span=span), (x,), self._dims[x])

    def step(self, name: str, x: str, span: Span = NO_SPAN) -> str:
        return self.activation("step", name, x, span)

    def sign(self, name: str, x: str, span: Span = NO_SPAN) -> str:
        return self.activation("sign", name, x, span)

    def relu(self, name: str, x: str, span: Span = NO_SPAN) -> str:
        return self.activation("relu", name, x, span)

    def identity(self, name: str, x: str, span: Span = NO_SPAN) -> str:
        return self.activation("identity", name, x, span)

    def build(self) -> Network:
        diags: list[Diagnostic] = validate_graph(self.graph, self.name)
        if diags:
            raise CheckError(diagnostics=diags)
        return Network(self.graph.copy(), self.name)
