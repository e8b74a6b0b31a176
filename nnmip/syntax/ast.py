"""The abstract syntax tree of a ``.nnmip`` file.

Nodes are frozen dataclasses; their ``span`` is excluded from equality, so two trees are equal when they say the
same thing, wherever it was written (``parse(format(p)) == p``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from nnmip.errors import NO_SPAN, Span


@dataclass(frozen=True, slots=True)
class Num:
    """A number literal."""

    value: int | float
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Str:
    """A string literal."""

    value: str
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to a name."""

    name: str
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Domain:
    """``real[lo, hi]`` or ``int[lo, hi]``."""

    kind: str
    lo: Num
    hi: Num
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ListLit:
    """A list literal."""

    items: tuple[Value, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class KwArg:
    """A keyword argument ``key=value``."""

    key: str
    value: Value
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Call:
    """A call ``func(args)``."""

    func: str
    args: tuple[Value | KwArg, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)

    @property
    def positional(self) -> tuple[Value, ...]:
        return tuple(a for a in self.args if not isinstance(a, KwArg))

    @property
    def keywords(self) -> dict[str, KwArg]:
        return {a.key: a for a in self.args if isinstance(a, KwArg)}


Value = Union[Num, Str, Ref, Domain, ListLit, Call]


@dataclass(frozen=True, slots=True)
class DataStmt:
    """``data name = source(...) split(...)``."""

    name: str
    calls: tuple[Call, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Param:
    """A network parameter ``x: dim``."""

    name: str
    dim: int
    domain: Domain | None = None
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class NodeDef:
    """A node ``name = op(...)`` of a network."""

    name: str
    call: Call
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class NetworkStmt:
    """``network name(x: d) { ... }``."""

    name: str
    params: tuple[Param, ...]
    nodes: tuple[NodeDef, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Setting:
    """A setting ``key = value``."""

    key: str
    value: Value
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class SetDecl:
    """``robust x in linf(0.1)`` (training) or ``input x in box(...)`` (verification)."""

    keyword: str
    target: str
    set: Call
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class TrainStmt:
    """``train network on data { ... }``."""

    network: str
    data: str
    items: tuple[Setting | SetDecl, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class VerifyStmt:
    """``verify network { ... }``."""

    network: str
    items: tuple[Setting | SetDecl, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class CompressStmt:
    """``compress NET { domain = ...; method = ...; output = "small.onnx" }``."""

    network: str
    items: tuple[Setting, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class SolveStmt:
    """``solve with solver(...)``."""

    solver: Call | Ref
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


Stmt = Union[DataStmt, NetworkStmt, TrainStmt, VerifyStmt, CompressStmt, SolveStmt]


@dataclass(frozen=True, slots=True)
class Program:
    """A parsed ``.nnmip`` file: its statements in order."""

    items: tuple[Stmt, ...]
    file: str = field(default="", compare=False, repr=False)
    source: str = field(default="", compare=False, repr=False)
