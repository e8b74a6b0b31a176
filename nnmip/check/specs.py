"""What the checker produces: the checked program and its typed tasks, and two helpers the checks share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnmip.errors import NO_SPAN, Diagnostic, Span
from nnmip.io.data import DataSource, Preprocess
from nnmip.ir.network import Network
from nnmip.syntax import ast


@dataclass(frozen=True)
class LossSpec:
    """The loss of a training task: its kind and margin."""

    kind: str = "hamming"
    margin: float = 1.0
    span: Span = field(default=NO_SPAN, compare=False)
    then: tuple[str, ...] = ()             # lexicographic secondary objectives: loss = [hamming, max_margin, ...]


@dataclass(frozen=True)
class SolverSpec:
    """The ``solve with`` statement: solver name and options."""

    name: str = "highs"
    time_limit: float | None = None
    gap: float | None = None
    threads: int | None = None
    verbose: bool = False
    options: tuple[tuple[str, Any], ...] = ()
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class DataDecl:
    """A checked ``data`` statement: where the data come from and how they are prepared."""

    name: str
    source: DataSource
    pre: Preprocess
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class StrategySpec:
    """The training strategy of a task (``exact``, ``split``, ``local_search``, ...) and its options."""

    kind: str = "exact"
    options: tuple[tuple[str, Any], ...] = ()
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class TrainTask:
    """A checked ``train`` statement: network, data, loss, margins, strategy, robust set and pruning."""

    network: str
    data: str
    loss: LossSpec
    eps: float | None = None
    l1: float = 0.0
    subset: tuple[str, int, int] | None = None
    strategy: StrategySpec = StrategySpec()
    settings: tuple[ast.Setting | ast.SetDecl, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False)
    robust: Any = None                       # training_ext.RobustSpec
    prune: tuple[Any, ...] = ()              # training_ext.PruneSpec, one per declaration
    alpha: float = 0.0                       # weight of ||W_g||^2 against z_g in the lambda term
    lam: float = 0.0                         # lambda * sum_g (alpha ||W_g||^2 + (1 - alpha) z_g)
    emit: str = "milp"                       # how pruning's squared-norm term is written (EMIT_MODES)
    relax: bool = False                      # solve the continuous relaxation (a bound, no network)
    time_limit: float | None = None          # seconds for this task (over the solve statement's)
    warm_start: Path | None = None           # an nnmip weights file whose weights start the solver


@dataclass
class CheckedProgram:
    """A program that passed every check: its networks (IR), data declarations and tasks."""

    program: ast.Program
    base_dir: Path
    data: dict[str, DataDecl]
    networks: dict[str, Network]
    tasks: list[TrainTask]
    solver: SolverSpec
    warnings: list[Diagnostic]
    verify_tasks: list[ast.VerifyStmt] = field(default_factory=list)
    verify_specs: list[Any] = field(default_factory=list)   # check.verify_stmt.VerifySpec, one per verify_tasks
    compress_specs: list[Any] = field(default_factory=list)  # check.compress_stmt.CompressSpec


def _span(v: Any) -> Span:
    return getattr(v, "span", NO_SPAN)


def _describe(v: Any) -> str:
    if isinstance(v, ast.Num):
        return f"the number {v.value}"
    if isinstance(v, ast.Str):
        return f"the string {v.value!r}"
    if isinstance(v, ast.Ref):
        return f"the name '{v.name}'"
    if isinstance(v, ast.Call):
        return f"a call to '{v.func}'"
    if isinstance(v, ast.Domain):
        return f"a {v.kind}[...] domain"
    if isinstance(v, ast.ListLit):
        return "a list"
    return type(v).__name__


__all__ = ["CheckedProgram", "DataDecl", "LossSpec", "SolverSpec", "StrategySpec", "TrainTask", "_describe", "_span"]
