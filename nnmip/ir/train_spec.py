"""What a training task asks beyond the plain fit: a robust set around every training point and pruning
declarations with the regulariser weights.

The checker (:mod:`nnmip.check.training_ext`) builds these from the language; the formulations
(:mod:`nnmip.formulations.robust`, :mod:`nnmip.formulations.pruning`) read them.  They live next to the IR so that
neither side imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from nnmip.errors import NO_SPAN, Span

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class RobustSpec:
    """Every training point ``x_i`` may move inside ``U(x_i) = {x_i + d : ||d||_p <= r}`` (or a box)."""

    target: str
    kind: str                             # linf | l1 | l2 | box
    radius: float = 0.0                   # linf, l1, l2
    radii: tuple[float, ...] = ()         # box: one radius per input feature
    span: Span = field(default=NO_SPAN, compare=False)

    def dual_norm(self, W: FloatArray) -> FloatArray:
        """``max_{d in U(0)} W_l . d`` for every row ``l`` of ``W`` (n_out, n_in): the worst shift of ``a_l``."""
        W = np.asarray(W, dtype=np.float64)
        if self.kind == "linf":
            return self.radius * np.abs(W).sum(axis=-1)
        if self.kind == "l1":
            return self.radius * np.abs(W).max(axis=-1, initial=0.0)
        if self.kind == "l2":
            return self.radius * np.sqrt((W * W).sum(axis=-1))
        if self.kind == "box":
            return np.abs(W) @ np.asarray(self.radii, dtype=np.float64)
        raise ValueError(f"unknown set kind {self.kind!r}")

    def describe(self) -> str:
        if self.kind == "box":
            return f"box({', '.join(f'{r:g}' for r in self.radii)})"
        return f"{self.kind}({self.radius:g})"

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "kind": self.kind, "radius": self.radius, "radii": list(self.radii)}


@dataclass(frozen=True)
class PruneSpec:
    """One pruning declaration: groups of one kind over the named layers, each with an indicator ``z_g``."""

    kind: str                             # weights | neurons | features | layers
    layers: tuple[str, ...]               # dense layers (weights, neurons, layers) or the input (features)
    cost: float = 0.0                     # objective + cost * (number of kept groups)
    budget: int | None = None             # at most this many kept groups
    M: float | None = None                # group bound |w| <= M z_g (default: from the weight domain)
    span: Span = field(default=NO_SPAN, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "layers": list(self.layers), "cost": self.cost, "budget": self.budget,
                "M": self.M}


@dataclass(frozen=True)
class PruneConfig:
    """Everything the pruning formulation needs: the declarations plus the regulariser weights."""

    specs: tuple[PruneSpec, ...] = ()
    alpha: float = 0.0
    lam: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.specs)
