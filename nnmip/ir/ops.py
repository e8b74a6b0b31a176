"""IR operations.  Each op owns its numpy forward pass (the single source of truth for what a network computes)
and its interval propagation; no op knows anything about formulations.

Arrays carry a leading batch axis: ``forward`` maps (N, d_in) to (N, d_out); ``interval`` maps bounds of shape
(N, d_in) (or (d_in,)) to bounds of the output of the same leading shape.  ``backward`` is the vector-Jacobian
product used by gradient training: given the op's input ``x`` (N, d_in) and the gradient ``gy`` (N, d_out) of a
scalar with respect to its output, it returns the gradient with respect to ``x`` (a dense layer also returns the
gradients of its weights and bias, and takes them explicitly: :meth:`Dense.affine`, :meth:`Dense.backward`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.special import expit

from nnmip.errors import NO_SPAN, FormulationError, Span

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class ParamDomain:
    """Where a weight matrix or bias vector lives: ``real`` box, ``int`` range, or ``fixed`` values."""

    kind: str                  # "real" | "int" | "fixed"
    lo: FloatArray
    hi: FloatArray
    span: Span = field(default=NO_SPAN, compare=False)

    @property
    def trainable(self) -> bool:
        return self.kind != "fixed"

    @property
    def value(self) -> FloatArray:
        if self.kind != "fixed":
            raise ValueError("a trainable parameter has no fixed value")
        return self.lo

    @classmethod
    def fixed(cls, value: npt.ArrayLike, span: Span = NO_SPAN) -> ParamDomain:
        v = np.array(value, dtype=np.float64)
        v.setflags(write=False)
        return cls("fixed", v, v, span)

    @classmethod
    def box(cls, kind: str, lo: float, hi: float, shape: tuple[int, ...], span: Span = NO_SPAN) -> ParamDomain:
        lo_a = np.full(shape, float(lo))
        hi_a = np.full(shape, float(hi))
        lo_a.setflags(write=False)
        hi_a.setflags(write=False)
        return cls(kind, lo_a, hi_a, span)

    def describe(self) -> str:
        if self.kind == "fixed":
            return "fixed"
        lo, hi = float(self.lo.min()), float(self.hi.max())
        return f"{self.kind}[{lo:g}, {hi:g}]"


@dataclass(frozen=True, eq=False)
class Op:
    """Base class: ``span`` points at the source that defined the node."""

    span: Span = field(default=NO_SPAN, kw_only=True)
    kind: ClassVar[str] = "op"
    elementwise: ClassVar[bool] = False
    #: number of inputs; ``0`` means any number (see :meth:`forward_many`)
    arity: ClassVar[int] = 1
    #: a smooth (not piecewise-linear) activation: no exact MILP (:class:`Smooth`)
    smooth: ClassVar[bool] = False

    def out_dim(self, in_dim: int) -> int:
        return in_dim

    def forward(self, x: FloatArray) -> FloatArray:
        raise NotImplementedError

    def interval(self, lo: FloatArray, hi: FloatArray) -> tuple[FloatArray, FloatArray]:
        raise NotImplementedError

    def backward(self, x: FloatArray, gy: FloatArray) -> FloatArray:
        """Vector-Jacobian product ``gy @ d forward(x) / d x`` (row by row)."""
        raise NotImplementedError(f"op '{self.kind}' has no gradient")


@dataclass(frozen=True, eq=False)
class Input(Op):
    """A network input of width ``dim`` with an optional domain box."""

    dim: int = 0
    lo: FloatArray | None = None
    hi: FloatArray | None = None
    kind: ClassVar[str] = "input"

    def out_dim(self, in_dim: int = 0) -> int:
        return self.dim

    def forward(self, x: FloatArray) -> FloatArray:
        return x

    def backward(self, x: FloatArray, gy: FloatArray) -> FloatArray:
        return gy

    def interval(self, lo: FloatArray, hi: FloatArray) -> tuple[FloatArray, FloatArray]:
        if self.lo is not None and self.hi is not None:
            return np.maximum(lo, self.lo), np.minimum(hi, self.hi)
        return lo, hi


@dataclass(frozen=True, eq=False)
class Dense(Op):
    """``a = x @ W.T + b`` with ``W`` of shape (n_out, n_in) and ``b`` of shape (n_out,) (zero when absent).

    Fixed weights may be held as a scipy.sparse matrix in ``sparse`` instead of ``weights`` (convolutions,
    pooling and other structured affine maps lowered from ONNX): :attr:`matrix` is then that sparse matrix,
    the forward pass and the interval propagation use it directly, and :attr:`W` is its dense copy.
    """

    n_in: int = 0
    n_out: int = 0
    weights: ParamDomain | None = None
    bias: ParamDomain | None = None
    sparse: Any = None
    kind: ClassVar[str] = "dense"

    @property
    def trainable(self) -> bool:
        return bool((self.weights is not None and self.weights.trainable)
                    or (self.bias is not None and self.bias.trainable))

    def out_dim(self, in_dim: int) -> int:
        return self.n_out

    @property
    def W(self) -> FloatArray:
        if self.sparse is not None:
            return np.asarray(self.sparse.toarray(), dtype=np.float64)
        assert self.weights is not None
        return self.weights.value

    @property
    def matrix(self) -> Any:
        """The fixed weight matrix as held: a scipy.sparse csr array or a dense (n_out, n_in) array."""
        return self.sparse if self.sparse is not None else self.W

    @cached_property
    def _sparse_parts(self) -> tuple[Any, Any]:
        """The positive and negative parts of the sparse matrix (computed once: bounds use them again and again)."""
        S = sp.csr_array(self.sparse)
        return S.maximum(0.0), S.minimum(0.0)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the cached sign splits below (a copy recomputes them when it needs them)."""
        cached = ("_fixed_parts", "_sparse_parts", "_abs_matrix", "finite")
        return {k: v for k, v in self.__dict__.items() if k not in cached}

    @cached_property
    def _fixed_parts(self) -> tuple[FloatArray, FloatArray]:
        """The positive and negative parts of fixed dense weights, transposed (computed once, as above)."""
        assert self.weights is not None
        w = self.weights.lo
        return np.maximum(w, 0.0).T, np.minimum(w, 0.0).T

    def magnitude(self, m: FloatArray) -> FloatArray:
        """``|W| m + |b|``: the largest magnitude of the output for inputs in ``[-m, m]`` (fixed weights; this is
        ``max(|lo'|, |hi'|)`` of :meth:`interval` on that box, in one product instead of four).
        """
        if self.sparse is not None:
            return np.asarray(_times(self._abs_matrix, m) + np.abs(self.b), dtype=np.float64)
        return np.asarray(m @ self._abs_matrix + np.abs(self.b), dtype=np.float64)

    def box_interval(self, lo: FloatArray, hi: FloatArray) -> tuple[FloatArray, FloatArray]:
        """:meth:`interval` of fixed dense weights as ``W c -+ |W| r + b`` (``c = lo/2 + hi/2``, ``r = hi/2 - lo/2``,
        neither of which can overflow): two passes over the weights instead of four.  The same in exact
        arithmetic; in floating point forming ``c`` and ``r`` adds at most ``u |W| max(|lo|, |hi|)`` to the
        rounding error (:func:`nnmip.passes.bounds.rounding_slack` covers it).
        """
        c, r = lo * 0.5 + hi * 0.5, hi * 0.5 - lo * 0.5
        mid = self.W @ c + self.b
        rad = r @ self._abs_matrix
        return mid - rad, mid + rad

    @cached_property
    def finite(self) -> bool:
        """Whether every fixed weight is finite (checked once)."""
        M = self.matrix
        return bool(np.isfinite(M.data if sp.issparse(M) else M).all())

    @cached_property
    def _abs_matrix(self) -> Any:
        """``|W|``: sparse as held, or dense and transposed like :attr:`_fixed_parts` (computed once)."""
        if self.sparse is not None:
            return abs(sp.csr_array(self.sparse))
        wp, wn = self._fixed_parts
        return wp - wn

    @property
    def nnz(self) -> int:
        """Stored weights: non-zeros of a sparse matrix, else ``n_out * n_in``."""
        return int(self.sparse.nnz) if self.sparse is not None else self.n_in * self.n_out

    @property
    def b(self) -> FloatArray:
        return self.bias.value if self.bias is not None else np.zeros(self.n_out)

    def forward(self, x: FloatArray) -> FloatArray:
        if self.trainable:
            raise FormulationError.at("E0403", "cannot run the forward pass of a layer whose weights are not fixed",
                                      self.span, ["help: train the network first, or give fixed weights"])
        if self.sparse is not None:
            return np.asarray(_times(self.sparse, x) + self.b, dtype=np.float64)
        return self.affine(x, self.W, self.b)

    @staticmethod
    def affine(x: FloatArray, W: FloatArray, b: FloatArray | None) -> FloatArray:
        """The forward pass with explicit parameters: ``x @ W.T + b`` (``b`` None: no bias)."""
        out = x @ W.T
        return np.asarray(out if b is None else out + b, dtype=np.float64)

    @staticmethod
    def backward_params(x: FloatArray, gy: FloatArray, W: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Gradients of a scalar ``L`` through ``a = x W^T + b``.

        Math:
            dL/dx = gy W,    dL/dW = gy^T x,    dL/db = sum_i gy_i     (gy = dL/da, one row per point)
        """
        return gy @ W, gy.T @ x, gy.sum(axis=0)

    def backward(self, x: FloatArray, gy: FloatArray) -> FloatArray:
        if self.sparse is not None:
            return _times(sp.csr_array(self.sparse).T, gy)
        return gy @ self.W

    def interval(self, lo: FloatArray, hi: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Interval product summed over inputs (exact for fixed weights: ``W+ lo + W- hi + b``)."""
        if self.sparse is not None:
            sp_, sn = self._sparse_parts
            with np.errstate(invalid="ignore"):
                return (_times(sp_, lo) + _times(sn, hi) + self.b, _times(sp_, hi) + _times(sn, lo) + self.b)
        assert self.weights is not None
        wl, wh = self.weights.lo, self.weights.hi
        if self.bias is None:
            bl = bh = np.zeros(self.n_out)
        else:
            bl, bh = self.bias.lo, self.bias.hi
        if self.weights.kind == "fixed":
            wp, wn = self._fixed_parts
            out_lo = lo @ wp + hi @ wn + bl
            out_hi = hi @ wp + lo @ wn + bh
            return out_lo, out_hi
        xl = lo[..., None, :]
        xh = hi[..., None, :]
        cands = np.stack([wl * xl, wl * xh, wh * xl, wh * xh])
        return cands.min(axis=0).sum(axis=-1) + bl, cands.max(axis=0).sum(axis=-1) + bh


def _times(S: Any, x: FloatArray) -> FloatArray:
    """``x @ S.T`` for a sparse ``S`` and rows ``x`` of shape (..., n_in) (or (n_in,))."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        return np.asarray(S @ x, dtype=np.float64)
    flat = x.reshape(-1, x.shape[-1])
    # 0 * inf terms are not stored in a sparse product, so an infinite bound only reaches the units it touches
    out = np.asarray((S @ flat.T).T, dtype=np.float64)
    return out.reshape(*x.shape[:-1], S.shape[0])


@dataclass(frozen=True, eq=False)
class Step(Op):
    """``y = 1 if a > 0 else 0`` (Kurtz & Bah)."""

    kind: ClassVar[str] = "step"
    elementwise: ClassVar[bool] = True
    binary: ClassVar[tuple[float, float]] = (0.0, 1.0)   # output for u = 0 and u = 1

    def forward(self, x: FloatArray) -> FloatArray:
        return (x > 0).astype(np.float64)

    def interval(self, lo: FloatArray, hi: FloatArray) -> tuple[FloatArray, FloatArray]:
        return (lo > 0).astype(np.float64), (hi > 0).astype(np.float64)


@dataclass(frozen=True, eq=False)
class Sign(Op):
    """``y = 1 if a > 0 else -1`` (so ``y = 2u - 1`` with the step's ``u``)."""

    kind: ClassVar[str] = "sign"
    elementwise: ClassVar[bool] = True
    binary: ClassVar[tuple[float, float]] = (-1.0, 1.0)

    def forward(self, x: FloatArray) -> FloatArray:
        return np.where(x > 0, 1.0, -1.0)

    def interval(self, lo: FloatArray, hi: FloatArray) -> tuple[FloatArray, FloatArray]:
        return np.where(lo > 0, 1.0, -1.0), np.where(hi > 0, 1.0, -1.0)


@dataclass(frozen=True, eq=False)
class ReLU(Op):
    """``y = max(0, a)``."""

    kind: ClassVar[str] = "relu"
    elementwise: ClassVar[bool] = True

    def forward(self, x: FloatArray) -> FloatArray:
        return np.maximum(x, 0.0)

    def backward(self, x: FloatArray, gy: FloatArray) -> FloatArray:
        """``gy * 1[x > 0]`` (the subgradient 0 at the kink)."""
        return np.where(x > 0, gy, 0.0)

    def interval(self, lo: FloatArray, hi: FloatArray) -> tuple[FloatArray, FloatArray]:
        return np.maximum(lo, 0.0), np.maximum(hi, 0.0)


@dataclass(frozen=True, eq=False)
class Smooth(Op):
    """An S-shaped activation (:class:`Sigmoid`, :class:`Tanh`): increasing, convex for ``a <= 0`` and concave for
    ``a >= 0``, with its largest slope :attr:`lipschitz` at 0.  No MILP models it exactly; verification bounds
    it by two lines on the interval of its input (docs/formulations.md, "Sigmoid and tanh") and searches for
    counterexamples with its gradient.

    numpy's ``tanh`` and scipy's ``expit`` are accurate to a few units in the last place; the bounds allow
    :attr:`ULPS` of them (relative) between the value they reason about and the one the forward pass computes.
    """

    elementwise: ClassVar[bool] = True
    smooth: ClassVar[bool] = True
    lipschitz: ClassVar[float] = 1.0
    #: relative error (in units of 2**-53) allowed for one evaluation in the forward pass
    ULPS: ClassVar[float] = 4.0

    def derivative(self, x: FloatArray) -> FloatArray:
        raise NotImplementedError

    def backward(self, x: FloatArray, gy: FloatArray) -> FloatArray:
        return np.asarray(gy, dtype=np.float64) * self.derivative(x)

    def interval(self, lo: FloatArray, hi: FloatArray) -> tuple[FloatArray, FloatArray]:
        return self.forward(lo), self.forward(hi)


@dataclass(frozen=True, eq=False)
class Sigmoid(Smooth):
    """``y = 1 / (1 + exp(-a))`` (scipy's ``expit``: no overflow for any ``a``)."""

    kind: ClassVar[str] = "sigmoid"
    lipschitz: ClassVar[float] = 0.25

    def forward(self, x: FloatArray) -> FloatArray:
        return np.asarray(expit(np.asarray(x, dtype=np.float64)), dtype=np.float64)

    def derivative(self, x: FloatArray) -> FloatArray:
        s = self.forward(x)
        return s * (1.0 - s)


@dataclass(frozen=True, eq=False)
class Tanh(Smooth):
    """``y = tanh(a)``."""

    kind: ClassVar[str] = "tanh"
    lipschitz: ClassVar[float] = 1.0

    def forward(self, x: FloatArray) -> FloatArray:
        return np.tanh(np.asarray(x, dtype=np.float64))

    def derivative(self, x: FloatArray) -> FloatArray:
        t = np.tanh(np.asarray(x, dtype=np.float64))
        return 1.0 - t * t


@dataclass(frozen=True, eq=False)
class Identity(Op):
    """``y = a`` (output scores)."""

    kind: ClassVar[str] = "identity"
    elementwise: ClassVar[bool] = True

    def forward(self, x: FloatArray) -> FloatArray:
        return x

    def backward(self, x: FloatArray, gy: FloatArray) -> FloatArray:
        return gy

    def interval(self, lo: FloatArray, hi: FloatArray) -> tuple[FloatArray, FloatArray]:
        return lo, hi


@dataclass(frozen=True, eq=False)
class Sum(Op):
    """``y = x_1 + x_2 + ...``: the sum of two or more computed vectors of one width (residual connections)."""

    kind: ClassVar[str] = "add"
    arity: ClassVar[int] = 0

    def forward(self, x: FloatArray) -> FloatArray:
        return x

    def forward_many(self, xs: list[FloatArray]) -> FloatArray:
        out = np.array(xs[0], dtype=np.float64)
        for v in xs[1:]:
            out = out + v
        return out

    def interval_many(self, los: list[FloatArray], his: list[FloatArray]) -> tuple[FloatArray, FloatArray]:
        return self.forward_many(los), self.forward_many(his)

    def backward_many(self, xs: list[FloatArray], gy: FloatArray) -> list[FloatArray]:
        """Vector-Jacobian products: the gradient reaches every summand unchanged."""
        return [gy for _ in xs]


@dataclass(frozen=True, eq=False)
class MaxPool(Op):
    """``y_j = max_{i in G_j} x_i``: the maximum over groups of input units (max pooling).

    ``index`` (n_out, k) holds the input units of every group, padded with -1 where a group has fewer than ``k``
    (windows that hang over the border of the image).
    """

    index: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, 1), dtype=np.int64))
    kind: ClassVar[str] = "maxpool"

    def out_dim(self, in_dim: int) -> int:
        return int(self.index.shape[0])

    @property
    def groups(self) -> list[npt.NDArray[np.int64]]:
        return [row[row >= 0] for row in self.index]

    def _gather(self, x: FloatArray) -> FloatArray:
        x = np.asarray(x, dtype=np.float64)
        vals = x[..., np.maximum(self.index, 0)]
        return np.where(self.index >= 0, vals, -np.inf)

    def forward(self, x: FloatArray) -> FloatArray:
        return np.asarray(self._gather(x).max(axis=-1), dtype=np.float64)

    def interval(self, lo: FloatArray, hi: FloatArray) -> tuple[FloatArray, FloatArray]:
        return self.forward(lo), self.forward(hi)

    def backward(self, x: FloatArray, gy: FloatArray) -> FloatArray:
        """Each output's gradient goes to the first input unit attaining its maximum."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        gy = np.atleast_2d(np.asarray(gy, dtype=np.float64))
        win = np.take_along_axis(self.index[None, :, :].repeat(x.shape[0], 0),
                                 self._gather(x).argmax(axis=-1)[..., None], axis=-1)[..., 0]
        gx = np.zeros_like(x)
        rows = np.repeat(np.arange(x.shape[0]), win.shape[1])
        np.add.at(gx, (rows, win.ravel()), gy.ravel())
        return gx


#: the activations of the .nnmip language (piecewise linear: each has an exact MILP)
ACTIVATIONS: dict[str, type[Op]] = {"step": Step, "sign": Sign, "relu": ReLU, "identity": Identity}
#: smooth activations: read from ONNX and built from Python for verification (bounds and search, no MILP)
SMOOTH_ACTIVATIONS: dict[str, type[Op]] = {"sigmoid": Sigmoid, "tanh": Tanh}
#: every activation a network node may be (the builder, saved networks)
NODE_ACTIVATIONS: dict[str, type[Op]] = {**ACTIVATIONS, **SMOOTH_ACTIVATIONS}
