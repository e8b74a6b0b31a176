"""Training losses evaluated by the numpy forward pass: the value every reported loss comes from.

``margins(out, y)`` is the classification margin per point: ``out[y] - max_{c != y} out[c]`` for several
outputs, ``(2y - 1) * out`` for a single output unit.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from nnmip.ir.network import Network

FloatArray = npt.NDArray[np.float64]

#: a margin within this relative tolerance of the required margin counts as met (solvers' feasibility
#: tolerance); the step activations themselves are evaluated exactly
MARGIN_TOL = 1e-6


def targets(y: npt.NDArray[np.int64], n_out: int, n_classes: int) -> FloatArray:
    """0/1 target bits: one-hot for ``n_out == n_classes``, the label itself for one output and two classes."""
    if n_out == 1 and n_classes <= 2:
        return y.astype(np.float64)[:, None]
    if n_out != n_classes:
        raise ValueError(f"{n_out} outputs cannot encode {n_classes} classes")
    T = np.zeros((y.size, n_out))
    T[np.arange(y.size), y] = 1.0
    return T


def margins(out: FloatArray, y: npt.NDArray[np.int64]) -> FloatArray:
    """Per point, the output margin of the true class over the best other class (``(2y - 1) a`` for one output)."""
    out = np.asarray(out, dtype=np.float64)
    if out.shape[1] == 1:
        return (2.0 * y - 1.0) * out[:, 0]
    idx = np.arange(y.size)
    own = out[idx, y]
    rest = out.copy()
    rest[idx, y] = -np.inf
    return own - rest.max(axis=1)


def data_loss(kind: str, out: FloatArray, y: npt.NDArray[np.int64], n_classes: int, margin: float = 1.0,
              binary_levels: tuple[float, float] = (0.0, 1.0)) -> float:
    """The data term of loss ``kind`` at the network outputs ``out`` (N, n_out)."""
    out = np.asarray(out, dtype=np.float64)
    if kind == "hamming":
        lo, hi = binary_levels
        bits = (out == hi).astype(np.float64)
        return float(np.abs(targets(y, out.shape[1], n_classes) - bits).sum())
    m = margins(out, y)
    tol = MARGIN_TOL * max(1.0, abs(margin))
    if kind == "zero_one":
        return float(np.count_nonzero(m < margin - tol))
    if kind == "hinge":
        if out.shape[1] == 1:
            return float(np.maximum(0.0, margin - m).sum())
        idx = np.arange(y.size)
        diff = out[idx, y][:, None] - out
        viol = np.maximum(0.0, margin - diff)
        viol[idx, y] = 0.0
        return float(viol.max(axis=1).sum())
    if kind in SMOOTH_LOSSES:
        return float(smooth_loss(kind, out, y, n_classes)[0] * y.size)
    if kind == "min_weight":
        return 0.0   # the objective is the weight norm; feasibility is checked by ``margin_violations``
    if kind == "max_margin":
        return float(-m.min()) if m.size else 0.0
    raise ValueError(f"unknown loss '{kind}'")


#: losses of gradient training (mean over the points; ``data_loss`` reports their sum like the other losses)
SMOOTH_LOSSES = ("cross_entropy", "squared_error")


def smooth_loss(kind: str, out: FloatArray, y: npt.NDArray[np.int64], n_classes: int) -> tuple[float, FloatArray]:
    """Mean loss over the N rows of ``out`` and its gradient with respect to ``out`` (N, n_out).

    Math:
        cross_entropy, several outputs (softmax):  l_i = logsumexp(o_i) - o_{i, y_i};
                                                   dl_i/do_i = softmax(o_i) - e_{y_i}
        cross_entropy, one output (logistic):      l_i = log(1 + exp(-s_i o_i)), s_i = 2 y_i - 1;
                                                   dl_i/do_i = -s_i / (1 + exp(s_i o_i))
        squared_error:                             l_i = 1/2 ||o_i - t_i||^2 with t_i the 0/1 targets (one-hot);
                                                   dl_i/do_i = o_i - t_i
    The value is ``(1/N) sum_i l_i`` and the gradient ``(1/N) dl_i/do_i`` row by row.
    """
    out = np.asarray(out, dtype=np.float64)
    N = max(y.size, 1)
    if kind == "cross_entropy":
        if out.shape[1] == 1:
            s = 2.0 * y - 1.0
            z = s * out[:, 0]
            val = np.logaddexp(0.0, -z)
            g = (-s * np.exp(-np.logaddexp(0.0, z)))[:, None]
            return float(val.sum() / N), g / N
        if out.shape[1] != n_classes:
            raise ValueError(f"{out.shape[1]} outputs cannot encode {n_classes} classes")
        mx = out.max(axis=1, keepdims=True)
        lse = mx[:, 0] + np.log(np.exp(out - mx).sum(axis=1))
        idx = np.arange(y.size)
        val = lse - out[idx, y]
        p = np.exp(out - lse[:, None])
        p[idx, y] -= 1.0
        return float(val.sum() / N), p / N
    if kind == "squared_error":
        diff = out - targets(y, out.shape[1], n_classes)
        return float(0.5 * (diff * diff).sum() / N), diff / N
    raise ValueError(f"unknown smooth loss '{kind}'")


def margin_violations(kind: str, out: FloatArray, y: npt.NDArray[np.int64], margin: float) -> int:
    """Points that break a hard margin constraint of ``min_weight`` (``max_margin``: not classified right)."""
    if kind == "min_weight":
        m = margins(out, y)
        return int(np.count_nonzero(m < margin - MARGIN_TOL * max(1.0, abs(margin))))
    if kind == "max_margin":
        return int(np.count_nonzero(margins(out, y) <= 0))
    return 0


def objective_terms(net: Network, out: FloatArray, y: npt.NDArray[np.int64], kind: str, margin: float,
                    n_classes: int, l1: float, weighted: Collection[str]) -> tuple[float, float, int]:
    """The training objective of the fixed network ``net`` at its outputs ``out``, as the MILP defines it.

    Returns ``(data loss, weight penalty, hard-margin violations)``.  The penalty is ``l1 * sum |W|`` (plus
    ``sum |W|`` for ``min_weight``) over the dense layers named in ``weighted`` (those whose weights are trained).
    """
    from nnmip.ir.ops import Dense, Sign, Step

    out_op = net.op(net.output)
    levels = out_op.binary if isinstance(out_op, (Step, Sign)) else (0.0, 1.0)
    dl = data_loss(kind, out, y, n_classes, margin, levels)
    weight = l1 + (1.0 if kind == "min_weight" else 0.0)
    pen = 0.0
    if weight:
        for n in weighted:
            op = net.op(n)
            assert isinstance(op, Dense)
            pen += float(np.abs(op.W).sum())
    return dl, weight * pen, margin_violations(kind, out, y, margin)
