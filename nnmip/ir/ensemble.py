"""Ensembles of binary networks voting on a multi-class problem (one_vs_one, one_vs_rest).

Each member is a fixed-weight network with one output unit, trained on a two-class problem; its prediction is
``out > 0`` (class "positive").  The ensemble is evaluated by the members' own numpy forward passes.

* ``one_vs_one``: one member per pair of classes ``(i, j)``, ``i < j``, trained with label 1 for ``j`` and 0 for
  ``i``; each member gives one vote (to ``j`` when it predicts positive, else to ``i``).  The predicted class has
  the most votes; **ties go to the smallest class index** (numpy's and ONNX's ``argmax`` first-index rule).
* ``one_vs_rest``: one member per class ``c``, trained with label 1 for ``c``; the member's score is the
  pre-activation of its output unit (the value before the final step/sign, or the output itself); the predicted
  class has the highest score, **ties to the smallest class index**.

This is the BeMi ensemble of Bernardelli, Gualandi, Lau and Milanesi (LION 2023, arXiv 2212.03659) for the
one_vs_one case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nnmip.ir.network import Network
from nnmip.ir.ops import Sign, Step

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

KINDS = ("one_vs_one", "one_vs_rest")


def member_tasks(kind: str, n_classes: int) -> list[tuple[int, int]]:
    """``(negative, positive)`` class of every member: all pairs ``i < j`` or ``(-1, c)`` per class ``c``."""
    if kind == "one_vs_one":
        return [(i, j) for i in range(n_classes) for j in range(i + 1, n_classes)]
    if kind == "one_vs_rest":
        return [(-1, c) for c in range(n_classes)]
    raise ValueError(f"ensemble kind must be one of {KINDS}, got {kind!r}")


def score_node(net: Network) -> str:
    """The node whose value is a member's score: the input of a final step/sign, else the output."""
    op = net.op(net.output)
    return net.inputs_of(net.output)[0] if isinstance(op, (Step, Sign)) else net.output


@dataclass
class Ensemble:
    """A vote of fixed-weight binary networks (see the module docstring for the rules)."""

    kind: str
    n_classes: int
    members: list[Network]
    pairs: list[tuple[int, int]]
    name: str = "ensemble"

    def __post_init__(self) -> None:
        if self.pairs != member_tasks(self.kind, self.n_classes):
            raise ValueError(f"{self.kind} on {self.n_classes} classes needs members "
                             f"{member_tasks(self.kind, self.n_classes)}, got {self.pairs}")
        if len(self.members) != len(self.pairs):
            raise ValueError(f"{len(self.pairs)} members expected, got {len(self.members)}")
        for m in self.members:
            if m.n_outputs != 1:
                raise ValueError(f"member '{m.name}' has {m.n_outputs} outputs; ensemble members have one")

    @property
    def n_inputs(self) -> int:
        return self.members[0].n_inputs

    def bits(self, X: npt.ArrayLike) -> IntArray:
        """(N, M): each member's prediction (1 = its positive class)."""
        return np.stack([m.predict(X) for m in self.members], axis=1).astype(np.int64)

    def scores(self, X: npt.ArrayLike) -> FloatArray:
        """(N, M): each member's score (the pre-activation of its output unit)."""
        cols = []
        for m in self.members:
            vals = m.forward(X, all_nodes=True)
            cols.append(np.asarray(vals[score_node(m)], dtype=np.float64)[:, 0])
        return np.stack(cols, axis=1)

    def votes(self, X: npt.ArrayLike) -> FloatArray:
        """(N, K): one_vs_one vote counts, or one_vs_rest scores."""
        if self.kind == "one_vs_rest":
            return self.scores(X)
        b = self.bits(X)
        out = np.zeros((b.shape[0], self.n_classes))
        for m, (i, j) in enumerate(self.pairs):
            out[:, j] += b[:, m]
            out[:, i] += 1 - b[:, m]
        return out

    def predict(self, X: npt.ArrayLike) -> IntArray:
        """The class with the most votes (highest score); ties to the smallest class index."""
        return np.argmax(self.votes(X), axis=1).astype(np.int64)

    def num_params(self) -> int:
        return sum(m.num_params() for m in self.members)
