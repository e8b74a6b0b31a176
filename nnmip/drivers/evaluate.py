"""Robust accuracy of a trained network: exact certification of the first binary layer, and a random-sign attack.

Certification (what robust training guarantees).  For a network ``x -> dense W, b -> step/sign -> ...`` and a set
``U(x) = {x + d : ||d|| <= r}``, the first binary layer's activation is constant over ``U(x_i)`` exactly when for
every unit ``a_l - r ||W_l||_* > 0`` (on) or ``a_l + r ||W_l||_* <= 0`` (off), where ``||.||_*`` is the dual norm
(l1 for linf, linf for l1, l2 for l2, ``sum_j r_j |W_lj|`` for a box).  Deeper layers then see the same input, so
the prediction is constant over the set.  A point is *certified* when its pattern is constant and its prediction
is correct.  This is a sufficient condition: an uncertified point may still be robust.

Attack (Kurtz & Bah's evaluation).  Each point is moved to ``x + r * s`` for random sign vectors ``s`` (for a box
``x_j + r_j s_j``; for l2 ``x + r s / sqrt(d)``; for l1 ``x +/- r e_j`` at a random feature ``j``): vertices of the
set, where a linear first layer is at its worst.  The perturbed points are *not* clipped to the data range: the
set is the full ball that training protects.  A point resists when every trial is classified correctly.  A
certified point always resists (tested).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from nnmip.ir.network import Network
from nnmip.ir.ops import Dense, Sign, Step

if TYPE_CHECKING:
    from nnmip.ir.train_spec import RobustSpec

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def first_layer(net: Network, target: str | None = None) -> tuple[str, str]:
    """The (dense, activation) pair on the input: the layer whose pattern certification checks."""
    target = target or net.input
    users = [n for n in net.nodes if net.inputs_of(n) and net.inputs_of(n)[0] == target]
    if not users or not isinstance(net.op(users[0]), Dense):
        raise ValueError(f"network '{net.name}' has no dense layer on '{target}'")
    dense = users[0]
    acts = [n for n in net.nodes if net.inputs_of(n) and net.inputs_of(n)[0] == dense]
    if not acts or not isinstance(net.op(acts[0]), (Step, Sign)):
        raise ValueError(f"layer '{dense}' is not followed by step(...) or sign(...)")
    return dense, acts[0]


def first_layer_stable(net: Network, X: npt.ArrayLike, spec: RobustSpec) -> npt.NDArray[np.bool_]:
    """(N, d_1): whether each first-layer unit keeps its activation over the whole set around each point."""
    dense, _ = first_layer(net, spec.target)
    op = net.op(dense)
    assert isinstance(op, Dense)
    X = np.asarray(X, dtype=np.float64)
    a = X @ op.W.T + op.b
    dn = spec.dual_norm(op.W)[None, :]
    return (a - dn > 0) | (a + dn <= 0)


def certified(net: Network, X: npt.ArrayLike, y: npt.ArrayLike, spec: RobustSpec) -> npt.NDArray[np.bool_]:
    """(N,): correctly classified and with a first-layer pattern constant over the set."""
    X = np.asarray(X, dtype=np.float64)
    correct = net.predict(X) == np.asarray(y)
    return correct & first_layer_stable(net, X, spec).all(axis=1)


def perturbations(spec: RobustSpec, n: int, d: int, trials: int, rng: np.random.Generator) -> FloatArray:
    """(trials, n, d) random vertices of the set (see the module docstring)."""
    s = rng.choice(np.array([-1.0, 1.0]), size=(trials, n, d))
    if spec.kind == "linf":
        return spec.radius * s
    if spec.kind == "box":
        return s * np.asarray(spec.radii, dtype=np.float64)[None, None, :]
    if spec.kind == "l2":
        return spec.radius * s / np.sqrt(d)
    if spec.kind == "l1":
        out = np.zeros((trials, n, d))
        j = rng.integers(0, d, size=(trials, n))
        t, i = np.meshgrid(np.arange(trials), np.arange(n), indexing="ij")
        out[t, i, j] = spec.radius * s[t, i, j]
        return out
    raise ValueError(f"unknown set kind {spec.kind!r}")


def attack(net: Network, X: npt.ArrayLike, y: npt.ArrayLike, spec: RobustSpec, trials: int = 20,
           seed: int = 0) -> npt.NDArray[np.bool_]:
    """(N,): whether the point is classified correctly at itself and under every random-sign trial."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    ok = net.predict(X) == y
    if X.shape[0] == 0:
        return ok
    D = perturbations(spec, X.shape[0], X.shape[1], trials, rng)
    for t in range(trials):
        ok &= net.predict(X + D[t]) == y
    return ok


def robust_metrics(net: Network, ds: Any, spec: RobustSpec, trials: int = 20, seed: int = 0
                   ) -> dict[str, float | None]:
    """``certified_train``, ``certified_test`` and ``attack_test`` (fractions; None for an empty split)."""
    out: dict[str, float | None] = {}
    for key, rows in (("train", ds.train), ("test", ds.test)):
        out[f"certified_{key}"] = None if rows.size == 0 else \
            float(np.mean(certified(net, ds.X(rows), ds.y[rows], spec)))
    rows = ds.test
    out["attack_test"] = None if rows.size == 0 else \
        float(np.mean(attack(net, ds.X(rows), ds.y[rows], spec, trials, seed)))
    return out
