"""The solver-neutral model: a sparse MILP with two-sided rows, optional cone blocks and names.

``MatrixModel`` is what every backend and writer receives.  It is built in whole numpy / scipy.sparse blocks by
:class:`ModelBuilder`; formulations describe linear expressions with :class:`Affine`.

Conventions
-----------
* ``row_lb <= A @ x <= row_ub`` (``-inf``/``+inf`` for a free side), ``col_lb <= x <= col_ub``.
* ``vtype`` holds ``"C"`` (continuous), ``"B"`` (binary) or ``"I"`` (integer) per column.
* Column and row names are ``{node}__{role}_{index}``, made lazily from the blocks (they are never needed for a
  solve, only for writers and reports).
* A :class:`Cone` block of kind ``"soc"`` states ``||x[tail]||_2 <= x[head[0]]``; kind ``"rsoc"`` states
  ``||x[tail]||_2^2 <= x[head[0]] * x[head[1]]`` with both heads non-negative.
* A :class:`Margin` block marks rows that hold a strict inequality (an activation margin) whenever a binary
  column takes a given value.  The repair step uses it to maximise the smallest margin of a fixed pattern.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from nnmip.errors import FormulationError

#: the largest magnitude accepted for a number that becomes a model coefficient or bound (weight and input
#: domains, margins, radii, input sets): beyond it the big-M rows built from it leave what any solver keeps
#: apart from infinity (HiGHS treats 1e20 as infinite and refuses matrix entries above 1e15; CBC and Gurobi
#: lose all precision long before), so such a number is refused where it enters (E0133) instead of failing
#: inside the solver
MAX_MAGNITUDE = 1e9

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def lp_safe(name: str) -> str:
    """Make ``name`` safe for LP and MPS files: ``[A-Za-z0-9_]`` only, no leading digit, '.', 'e' or 'E'."""
    name = _UNSAFE.sub("_", name) or "_"
    if name[0].isdigit() or name[0] in "eE.":
        name = "n_" + name
    return name


@dataclass(frozen=True, slots=True)
class Block:
    """A named, contiguous range of columns or rows with a logical shape."""

    node: str
    role: str
    start: int
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def key(self) -> str:
        return f"{self.node}__{self.role}"

    @property
    def slice(self) -> slice:
        return slice(self.start, self.start + self.size)

    def names(self) -> Iterator[str]:
        prefix = lp_safe(self.key)
        if not self.shape:
            yield prefix
            return
        for idx in np.ndindex(*self.shape):
            yield prefix + "_" + "_".join(map(str, idx))


@dataclass(frozen=True)
class Cone:
    """``k`` cones of one kind: ``head`` has shape (k, 1) for "soc" and (k, 2) for "rsoc"; ``tail`` (k, t)."""

    kind: str
    head: IntArray
    tail: IntArray

    def __post_init__(self) -> None:
        if self.kind not in ("soc", "rsoc"):
            raise ValueError(f"unknown cone kind {self.kind!r}")
        want = 1 if self.kind == "soc" else 2
        if self.head.ndim != 2 or self.head.shape[1] != want or self.tail.ndim != 2:
            raise ValueError("cone head must be (k, 1) for soc, (k, 2) for rsoc; tail (k, t)")
        if self.head.shape[0] != self.tail.shape[0]:
            raise ValueError("cone head and tail disagree on the number of cones")

    @property
    def count(self) -> int:
        return int(self.head.shape[0])


@dataclass(frozen=True)
class Margin:
    """Rows ``rows`` hold a strict margin when column ``cols`` equals ``when`` (``cols == -1``: always)."""

    rows: IntArray
    cols: IntArray
    when: IntArray


@dataclass(frozen=True)
class MatrixModel:
    """A solver-neutral sparse model (see the module docstring for conventions)."""

    sense: str
    c: FloatArray
    c0: float
    A: sp.csr_array
    row_lb: FloatArray
    row_ub: FloatArray
    col_lb: FloatArray
    col_ub: FloatArray
    vtype: npt.NDArray[np.str_]
    col_blocks: tuple[Block, ...] = ()
    row_blocks: tuple[Block, ...] = ()
    cones: tuple[Cone, ...] = ()
    margins: tuple[Margin, ...] = ()
    notes: tuple[str, ...] = ()
    name: str = "nnmip"

    def __post_init__(self) -> None:
        m, n = self.A.shape
        if self.sense not in ("min", "max"):
            raise ValueError(f"sense must be 'min' or 'max', got {self.sense!r}")
        for label, arr, size in (("c", self.c, n), ("col_lb", self.col_lb, n), ("col_ub", self.col_ub, n),
                                 ("vtype", self.vtype, n), ("row_lb", self.row_lb, m),
                                 ("row_ub", self.row_ub, m)):
            if arr.shape != (size,):
                raise ValueError(f"{label} has shape {arr.shape}, expected ({size},)")
        for label, arr in (("c", self.c), ("col_lb", self.col_lb), ("col_ub", self.col_ub),
                           ("row_lb", self.row_lb), ("row_ub", self.row_ub), ("A", self.A.data)):
            if np.isnan(arr).any():
                raise ValueError(f"{label} contains NaN")
        if not np.isfinite(self.A.data).all() or not np.isfinite(self.c).all():
            raise ValueError("A and c must be finite")
        if (self.col_lb > self.col_ub).any():
            j = int(np.argmax(self.col_lb > self.col_ub))
            raise FormulationError.at("E0401", f"column {self.col_name(j)} has lower bound above upper bound")
        if (self.row_lb > self.row_ub).any():
            i = int(np.argmax(self.row_lb > self.row_ub))
            raise FormulationError.at("E0401", f"row {self.row_name(i)} has lower bound above upper bound")
        if not np.isin(self.vtype, ("C", "B", "I")).all():
            raise ValueError("vtype entries must be 'C', 'B' or 'I'")

    # -- sizes -------------------------------------------------------------------------------------------
    @property
    def num_cols(self) -> int:
        return int(self.A.shape[1])

    @property
    def num_rows(self) -> int:
        return int(self.A.shape[0])

    @property
    def num_binaries(self) -> int:
        return int(np.count_nonzero(self.vtype == "B"))

    @property
    def num_integers(self) -> int:
        return int(np.count_nonzero(self.vtype == "I"))

    @property
    def is_mip(self) -> bool:
        return bool((self.vtype != "C").any())

    def stats(self) -> dict[str, int]:
        return {
            "variables": self.num_cols,
            "binaries": self.num_binaries,
            "integers": self.num_integers,
            "continuous": self.num_cols - self.num_binaries - self.num_integers,
            "rows": self.num_rows,
            "nonzeros": int(self.A.nnz),
            "cones": sum(c.count for c in self.cones),
        }

    # -- names ---------------------------------------------------------------------------------------------
    def col_names(self) -> list[str]:
        return _names(self.col_blocks, self.num_cols, "c")

    def row_names(self) -> list[str]:
        return _names(self.row_blocks, self.num_rows, "r")

    def col_name(self, j: int) -> str:
        return _name_of(self.col_blocks, j, "c")

    def row_name(self, i: int) -> str:
        return _name_of(self.row_blocks, i, "r")

    @property
    def varmap(self) -> dict[str, slice]:
        """``{node}__{role}`` -> column slice."""
        return {b.key: b.slice for b in self.col_blocks}

    @property
    def rowmap(self) -> dict[str, slice]:
        return {b.key: b.slice for b in self.row_blocks}

    def cols_of(self, node: str, role: str) -> IntArray:
        """Column indices of block ``{node}__{role}`` in its logical shape."""
        for b in self.col_blocks:
            if b.node == node and b.role == role:
                return np.arange(b.start, b.start + b.size).reshape(b.shape)
        raise KeyError(f"{node}__{role}")

    # -- derived models ------------------------------------------------------------------------------------
    def replace(self, **changes: object) -> MatrixModel:
        from dataclasses import replace

        return replace(self, **changes)  # type: ignore[arg-type]

    def relaxed(self) -> MatrixModel:
        """The continuous relaxation (binaries become [0, 1] columns, integers continuous)."""
        return self.replace(vtype=np.full(self.num_cols, "C"), name=self.name + "_relaxed")

    def objective_value(self, x: FloatArray) -> float:
        return float(self.c @ x + self.c0)

    def max_violation(self, x: FloatArray) -> float:
        """Largest violation of a row or column bound at ``x`` (0 when feasible)."""
        ax = self.A @ x
        v = [
            np.maximum(self.row_lb - ax, 0.0),
            np.maximum(ax - self.row_ub, 0.0),
            np.maximum(self.col_lb - x, 0.0),
            np.maximum(x - self.col_ub, 0.0),
        ]
        return float(max((a.max() if a.size else 0.0) for a in v))


def _fill(values: float | npt.ArrayLike, shape: tuple[int, ...]) -> FloatArray:
    """``values`` broadcast to ``shape`` (a flat array of the right size is reshaped), as a flat copy."""
    arr = np.asarray(values, dtype=np.float64)
    size = int(np.prod(shape, dtype=np.int64))
    if arr.ndim == 1 and arr.size == size and arr.shape != shape:
        arr = arr.reshape(shape)
    return np.broadcast_to(arr, shape).ravel().copy()


def _names(blocks: tuple[Block, ...], n: int, fallback: str) -> list[str]:
    names = [f"{fallback}{j}" for j in range(n)]
    for b in blocks:
        names[b.start:b.start + b.size] = list(b.names())
    return names


def _name_of(blocks: tuple[Block, ...], j: int, fallback: str) -> str:
    for b in blocks:
        if b.start <= j < b.start + b.size:
            idx = np.unravel_index(j - b.start, b.shape) if b.shape else ()
            return lp_safe(b.key) + "".join(f"_{int(i)}" for i in idx)
    return f"{fallback}{j}"


# ------------------------------------------------------------------------------------------------------------
# Affine expressions
# ------------------------------------------------------------------------------------------------------------
class Affine:
    """A block of affine expressions ``coef @ x + const`` over model columns, with a logical shape.

    ``coef`` is a CSR array with one row per expression (row-major over ``shape``).  Its column count may be
    smaller than the model's: expressions are padded on demand when combined.
    """

    __slots__ = ("coef", "const", "shape")

    def __init__(self, coef: sp.csr_array, const: FloatArray, shape: tuple[int, ...]) -> None:
        size = int(np.prod(shape, dtype=np.int64))
        if coef.shape[0] != size or const.shape != (size,):
            raise ValueError(f"affine block of shape {shape} has {coef.shape[0]} rows and {const.shape} consts")
        self.coef = sp.csr_array(coef)
        self.const = np.asarray(const, dtype=np.float64)
        self.shape = tuple(int(s) for s in shape)

    # constructors
    @classmethod
    def from_cols(cls, cols: IntArray, scale: float | FloatArray = 1.0, offset: float | FloatArray = 0.0
                  ) -> Affine:
        """``scale * x[cols] + offset`` elementwise; ``cols`` may be any shape."""
        flat = np.asarray(cols, dtype=np.int64).ravel()
        n = int(flat.max()) + 1 if flat.size else 0
        data = np.broadcast_to(np.asarray(scale, dtype=np.float64), cols.shape).ravel().copy()
        coef = sp.csr_array((data, flat, np.arange(flat.size + 1)), shape=(flat.size, n))
        const = np.broadcast_to(np.asarray(offset, dtype=np.float64), cols.shape).ravel().copy()
        return cls(coef, const, cols.shape)

    @classmethod
    def constant(cls, values: FloatArray) -> Affine:
        values = np.asarray(values, dtype=np.float64)
        coef = sp.csr_array((values.size, 0))
        return cls(coef, values.ravel().copy(), values.shape)

    @classmethod
    def from_triplets(cls, rows: IntArray, cols: IntArray, vals: FloatArray, const: FloatArray,
                      shape: tuple[int, ...]) -> Affine:
        size = int(np.prod(shape, dtype=np.int64))
        n = int(cols.max()) + 1 if cols.size else 0
        coef = sp.csr_array((vals, (rows, cols)), shape=(size, n))
        coef.sum_duplicates()
        return cls(coef, np.asarray(const, dtype=np.float64).ravel(), shape)

    # basic facts
    @property
    def size(self) -> int:
        return int(self.const.size)

    @property
    def is_constant(self) -> bool:
        return self.coef.nnz == 0 or not np.any(self.coef.data)

    def padded(self, n: int) -> sp.csr_array:
        """The coefficient matrix with exactly ``n`` columns."""
        m, k = self.coef.shape
        if k == n:
            return self.coef
        if k > n:
            raise ValueError("cannot pad to fewer columns")
        c = self.coef
        return sp.csr_array((c.data, c.indices, c.indptr), shape=(m, n))

    # algebra
    def _binary(self, other: Affine | float | FloatArray, sign: float) -> Affine:
        if not isinstance(other, Affine):
            const = np.broadcast_to(np.asarray(other, dtype=np.float64), self.shape).ravel()
            return Affine(self.coef, self.const + sign * const, self.shape)
        if other.shape != self.shape:
            raise ValueError(f"shape mismatch {self.shape} vs {other.shape}")
        n = max(self.coef.shape[1], other.coef.shape[1])
        coef = self.padded(n) + sign * other.padded(n)
        return Affine(sp.csr_array(coef), self.const + sign * other.const, self.shape)

    def __add__(self, other: Affine | float | FloatArray) -> Affine:
        return self._binary(other, 1.0)

    def __sub__(self, other: Affine | float | FloatArray) -> Affine:
        return self._binary(other, -1.0)

    def __neg__(self) -> Affine:
        return Affine(-self.coef, -self.const, self.shape)

    def scale(self, factor: float | FloatArray) -> Affine:
        """Elementwise product with a constant broadcastable to ``shape``."""
        f = np.broadcast_to(np.asarray(factor, dtype=np.float64), self.shape).ravel()
        return Affine(sp.csr_array(sp.diags_array(f) @ self.coef), self.const * f, self.shape)

    def take(self, index: IntArray, axis: int = 0) -> Affine:
        """Select entries along ``axis`` (numpy ``take`` on the logical shape)."""
        ids = np.arange(self.size).reshape(self.shape).take(index, axis=axis)
        flat = ids.ravel()
        return Affine(sp.csr_array(self.coef[flat]), self.const[flat], ids.shape)

    def reshape(self, shape: tuple[int, ...]) -> Affine:
        return Affine(self.coef, self.const, shape)

    def matmul_t(self, W: FloatArray) -> Affine:
        """For a block of shape (R, d_in): the block ``self @ W.T`` of shape (R, d_out) (``W`` is (d_out, d_in))."""
        R, d_in = self.shape
        d_out = W.shape[0]
        if W.shape[1] != d_in:
            raise ValueError(f"weights {W.shape} do not fit input width {d_in}")
        big = sp.kron(sp.eye_array(R, format="csr"), sp.csr_array(W), format="csr")
        return Affine(sp.csr_array(big @ self.coef), (self.const.reshape(R, d_in) @ W.T).ravel(), (R, d_out))

    def sum(self, axis: int) -> Affine:
        ids = np.arange(self.size).reshape(self.shape)
        moved = np.moveaxis(ids, axis, -1)
        out_shape: tuple[int, ...] = tuple(moved.shape[:-1])
        k = int(moved.shape[-1])
        rows = np.repeat(np.arange(int(np.prod(out_shape, dtype=np.int64))), k)
        gather = sp.csr_array((np.ones(rows.size), (rows, moved.ravel())),
                              shape=(int(np.prod(out_shape, dtype=np.int64)), self.size))
        return Affine(sp.csr_array(gather @ self.coef), gather @ self.const, out_shape)

    def value(self, x: FloatArray) -> FloatArray:
        """Evaluate at a full column vector ``x``."""
        return (self.padded(x.size) @ x + self.const).reshape(self.shape)


# ------------------------------------------------------------------------------------------------------------
# Builder
# ------------------------------------------------------------------------------------------------------------
@dataclass
class ModelBuilder:
    """Collects column blocks, row blocks (as COO triplets), objective terms and cones; ``build`` assembles."""

    name: str = "nnmip"
    _ncols: int = 0
    _nrows: int = 0
    _col_lb: list[FloatArray] = field(default_factory=list)
    _col_ub: list[FloatArray] = field(default_factory=list)
    _vtype: list[npt.NDArray[np.str_]] = field(default_factory=list)
    _col_blocks: list[Block] = field(default_factory=list)
    _row_blocks: list[Block] = field(default_factory=list)
    _rows: list[IntArray] = field(default_factory=list)
    _cols: list[IntArray] = field(default_factory=list)
    _vals: list[FloatArray] = field(default_factory=list)
    _row_lb: list[FloatArray] = field(default_factory=list)
    _row_ub: list[FloatArray] = field(default_factory=list)
    _obj_cols: list[IntArray] = field(default_factory=list)
    _obj_vals: list[FloatArray] = field(default_factory=list)
    c0: float = 0.0
    cones: list[Cone] = field(default_factory=list)
    margins: list[Margin] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def num_cols(self) -> int:
        return self._ncols

    @property
    def num_rows(self) -> int:
        return self._nrows

    def block_cols(self, node: str, role: str) -> IntArray:
        """The flat column indices of the block ``{node}__{role}`` added so far."""
        for blk in self._col_blocks:
            if blk.node == node and blk.role == role:
                return np.arange(blk.start, blk.start + blk.size, dtype=np.int64)
        raise KeyError(f"{node}__{role}")

    def col_bounds(self, cols: IntArray) -> tuple[FloatArray, FloatArray]:
        """The lower and upper bounds of the columns ``cols`` added so far."""
        lb = np.concatenate(self._col_lb) if self._col_lb else np.zeros(0)
        ub = np.concatenate(self._col_ub) if self._col_ub else np.zeros(0)
        idx = np.asarray(cols, dtype=np.int64)
        return lb[idx], ub[idx]

    def add_cols(self, node: str, role: str, shape: tuple[int, ...] | int, lb: float | FloatArray = 0.0,
                 ub: float | FloatArray = np.inf, vtype: str = "C") -> IntArray:
        """Add a block of columns; returns their indices in the logical ``shape``."""
        shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
        size = int(np.prod(shape, dtype=np.int64))
        lo = _fill(lb, shape)
        hi = _fill(ub, shape)
        if np.isnan(lo).any() or np.isnan(hi).any():
            raise FormulationError.at("E0402", f"bounds of {node}__{role} contain NaN")
        if vtype == "B":
            lo = np.maximum(lo, 0.0)
            hi = np.minimum(hi, 1.0)
        self._col_lb.append(lo)
        self._col_ub.append(hi)
        self._vtype.append(np.full(size, vtype))
        self._col_blocks.append(Block(node, role, self._ncols, shape))
        idx = np.arange(self._ncols, self._ncols + size, dtype=np.int64).reshape(shape)
        self._ncols += size
        return idx

    def add_rows_coo(self, node: str, role: str, rows: IntArray, cols: IntArray, vals: FloatArray,
                     lb: float | FloatArray, ub: float | FloatArray, shape: tuple[int, ...] | int) -> IntArray:
        """Add ``lb <= A_block @ x <= ub`` from local COO triplets (``rows`` in ``0..size-1``)."""
        shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
        size = int(np.prod(shape, dtype=np.int64))
        lo = _fill(lb, shape)
        hi = _fill(ub, shape)
        r, j = _index_array(rows), _index_array(cols)
        v = np.asarray(vals, dtype=np.float64).ravel()
        if not (r.size == j.size == v.size):
            raise ValueError(f"row block {node}__{role}: triplet arrays differ in length")
        if r.size and (r.min() < 0 or r.max() >= size or j.min() < 0 or j.max() >= self._ncols):
            raise ValueError(f"row block {node}__{role}: triplet index out of range")
        self._rows.append(r)   # local row numbers, 0..size-1
        self._cols.append(j)
        self._vals.append(v)
        self._row_lb.append(lo)
        self._row_ub.append(hi)
        self._row_blocks.append(Block(node, role, self._nrows, shape))
        idx = np.arange(self._nrows, self._nrows + size, dtype=np.int64).reshape(shape)
        self._nrows += size
        return idx

    def add_rows(self, node: str, role: str, expr: Affine, lb: float | FloatArray = -np.inf,
                 ub: float | FloatArray = np.inf) -> IntArray:
        """Add ``lb <= expr <= ub`` elementwise; returns row indices in ``expr.shape``."""
        lo = (np.broadcast_to(np.asarray(lb, dtype=np.float64), expr.shape).ravel() - expr.const).reshape(expr.shape)
        hi = (np.broadcast_to(np.asarray(ub, dtype=np.float64), expr.shape).ravel() - expr.const).reshape(expr.shape)
        coo = expr.coef.tocoo()
        return self.add_rows_coo(node, role, coo.row, coo.col, coo.data, lo, hi, expr.shape)

    def add_objective(self, expr: Affine, weight: float | FloatArray = 1.0) -> None:
        """Add ``sum(weight * expr)`` to the objective."""
        w = np.broadcast_to(np.asarray(weight, dtype=np.float64), expr.shape).ravel()
        coef = expr.coef.T @ w
        nz = np.flatnonzero(coef)
        self._obj_cols.append(nz.astype(np.int64))
        self._obj_vals.append(np.asarray(coef[nz], dtype=np.float64))
        self.c0 += float(w @ expr.const)

    def add_objective_cols(self, cols: IntArray, vals: float | FloatArray) -> None:
        cols = np.asarray(cols, dtype=np.int64)
        self._obj_vals.append(_fill(vals, cols.shape))
        self._obj_cols.append(cols.ravel())

    def add_margin(self, rows: IntArray, cols: IntArray | None, when: int | IntArray = 1) -> None:
        rows = np.asarray(rows, dtype=np.int64).ravel()
        c = np.full(rows.size, -1, dtype=np.int64) if cols is None else np.asarray(cols, np.int64).ravel()
        w = np.broadcast_to(np.asarray(when, dtype=np.int64), rows.shape).copy()
        if c.size != rows.size:
            raise ValueError("margin rows and columns differ in size")
        self.margins.append(Margin(rows, c, w))

    def build(self, sense: str = "min") -> MatrixModel:
        """Assemble the model: one canonical CSR matrix (sorted, summed, no explicit zeros) with 32-bit indices
        where they fit, built block by block from the collected triplets with one copy of each array.
        """
        n, m = self._ncols, self._nrows
        c = np.zeros(n)
        if self._obj_cols:
            c += np.bincount(np.concatenate(self._obj_cols), weights=np.concatenate(self._obj_vals), minlength=n)
        return MatrixModel(
            sense=sense,
            c=c,
            c0=float(self.c0),
            A=_assemble_csr(self._rows, self._cols, self._vals, [b.size for b in self._row_blocks], m, n),
            row_lb=_cat(self._row_lb, np.float64),
            row_ub=_cat(self._row_ub, np.float64),
            col_lb=_cat(self._col_lb, np.float64),
            col_ub=_cat(self._col_ub, np.float64),
            vtype=_cat(self._vtype, np.dtype("<U1")),
            col_blocks=tuple(self._col_blocks),
            row_blocks=tuple(self._row_blocks),
            cones=tuple(self.cones),
            margins=tuple(self.margins),
            notes=tuple(self.notes),
            name=self.name,
        )


def _index_array(a: npt.ArrayLike) -> np.ndarray:
    """A flat integer array of ``a`` (integer arrays are kept as they are, without a copy)."""
    arr = np.asarray(a).ravel()
    return arr if arr.dtype.kind == "i" else arr.astype(np.int64)


def _cat(parts: list[np.ndarray], dtype: np.dtype | type) -> np.ndarray:
    """One array of ``dtype`` from ``parts`` (a single copy)."""
    if not parts:
        return np.zeros(0, dtype=dtype)
    return np.concatenate(parts, dtype=dtype, casting="same_kind")


def _assemble_csr(rows: list[IntArray], cols: list[IntArray], vals: list[FloatArray], sizes: list[int], m: int,
                  n: int) -> sp.csr_array:
    """The canonical CSR array (sorted columns, duplicates summed, no explicit zeros) of the row blocks.

    Block ``k`` holds COO triplets with local rows ``0..sizes[k]-1``; the blocks follow each other.  Most blocks
    list their rows in order with increasing columns, so their triplets already are CSR arrays: ``indptr`` is a
    cumulative row count and nothing is sorted.  Other blocks are made canonical one by one (scipy's linear
    COO -> CSR, then ``sum_duplicates``).  The result equals ``coo -> csr, sum_duplicates, eliminate_zeros`` of
    all triplets, entry for entry, and is assembled with one copy of each array.
    """
    nnz = sum(int(v.size) for v in vals)
    idx: type = np.int32 if max(m, n, nnz) < np.iinfo(np.int32).max else np.int64
    counts: list[np.ndarray] = []
    indices: list[np.ndarray] = []
    data: list[np.ndarray] = []
    for r, j, v, size in zip(rows, cols, vals, sizes, strict=True):
        zero = v == 0.0
        if zero.any():
            keep = ~zero
            r, j, v = r[keep], j[keep], v[keep]
        if r.size > 1:
            r0, r1 = r[:-1], r[1:]
            canonical = bool(np.all(r1 >= r0)) and bool(np.all((r1 > r0) | (j[1:] > j[:-1])))
        else:
            canonical = True
        if canonical:
            counts.append(np.bincount(r, minlength=size))
            indices.append(j)
            data.append(v)
            continue
        B = sp.csr_array(sp.coo_array((v, (r, j)), shape=(size, n)))
        B.sum_duplicates()
        B.eliminate_zeros()
        counts.append(np.diff(B.indptr))
        indices.append(B.indices)
        data.append(B.data)
    indptr: np.ndarray = np.zeros(m + 1, dtype=idx)
    if counts:
        np.cumsum(_cat(counts, idx), dtype=idx, out=indptr[1:])
    A = sp.csr_array((_cat(data, np.float64), _cat(indices, idx), indptr), shape=(m, n), copy=False)
    A.has_sorted_indices = True
    A.has_canonical_format = True
    return A
