"""Deterministic free-format MPS writer for a linear :class:`~nnmip.model.MatrixModel`.

Free MPS (fields separated by blanks; names never hold blanks) is read by HiGHS and by CBC (python-mip);
the tests check both.

Layout and choices
------------------
* ``NAME``, then ``OBJSENSE`` / ``MAX`` for a maximisation only (HiGHS and CBC both read it; a minimisation
  has no OBJSENSE section, so older readers see the default).
* ``ROWS``: the objective ``N`` row (named ``obj``, or ``obj_``... when a row is called ``obj``), then every
  row that is not free, in stored order: ``E`` when ``lb == ub``, ``G`` when only ``lb`` is finite, ``L``
  when only ``ub`` is finite.  A ranged row (both finite, different) is **one** ``G`` row with right-hand
  side ``lb`` and range ``R = ub - lb``; readers rebuild ``ub = lb + |R|``, and when that sum does not give
  back ``ub`` exactly but ``ub - R == lb`` holds, the row is written as ``L`` with right-hand side ``ub``
  instead.  Only when neither holds (rare: bounds of mixed sign such as ``[-0.1, 0.2]``) does the upper
  bound read back one ulp off; the LP writer has no such loss.  Free rows are skipped (see
  :mod:`nnmip.io.writers`).
* ``COLUMNS`` column by column in stored order: the objective entry when the cost is nonzero (or when the
  column has no other entry, so that it is still declared), then the matrix entries in row order.  Runs of
  integer and binary columns sit between ``MARKER 'MARKER' 'INTORG'`` / ``'INTEND'`` lines.  The objective
  constant is the fixed column ``obj_constant`` (see :mod:`nnmip.io.writers`).
* ``RHS`` (nonzero right-hand sides only), ``RANGES`` (only when there are ranged rows).
* ``BOUNDS`` states every non-default bound explicitly: ``BV`` for a binary column with bounds ``[0, 1]``,
  ``FX`` for a fixed column, ``FR`` for a free one, ``MI`` followed by ``UP`` for ``(-inf, u]``, else ``LO``
  (when ``lb != 0``) and ``UP``.  Integer columns with no upper bound get an explicit ``PL``: both HiGHS
  and CBC otherwise read an integer column without bounds as binary.
* Numbers are ``repr(float)``.
"""

from __future__ import annotations

import logging
from typing import TextIO

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from nnmip.io.plumbing import ExportError, PathOrFile, Prepared, comment_text, num, open_text, prepare
from nnmip.model import MatrixModel, lp_safe

log = logging.getLogger(__name__)


def write_mps(model: MatrixModel, path_or_file: PathOrFile) -> None:
    """Write ``model`` in free MPS format to a path (gzip when it ends in ``.gz``) or an open file.

    Raises
    ------
    ExportError
        ``E0602`` for a model with cones, ``E0604`` for duplicate names, ``E0605`` for unwritable values
        (including a ranged row whose width overflows); nothing is written then.
    """
    prep = prepare(model, "MPS")
    kinds, rhs, ranges = _row_kinds(model, prep)
    if prep.num_free_rows:
        log.info("MPS export of %s skips %d free rows", model.name, prep.num_free_rows)
    with open_text(path_or_file) as out:
        out.write(f"* nnmip model {comment_text(model.name)}: {model.num_cols} columns, "
                  f"{model.num_rows} rows, {model.A.nnz} nonzeros\n")
        for note in model.notes:
            out.write(f"* {comment_text(note)}\n")
        out.write(f"NAME {lp_safe(model.name)}\n")
        if model.sense == "max":
            out.write("OBJSENSE\n    MAX\n")
        out.write(f"ROWS\n N  {prep.obj_name}\n")
        for name, kind in zip(prep.row_names, kinds.tolist(), strict=True):
            if kind:
                out.write(f" {kind}  {name}\n")
        _columns(out, model, prep)
        out.write("RHS\n")
        for name, kind, value in zip(prep.row_names, kinds.tolist(), rhs.tolist(), strict=True):
            if kind and value != 0.0:
                out.write(f"    RHS  {name}  {num(value)}\n")
        if np.isfinite(ranges).any():
            out.write("RANGES\n")
            for name, value in zip(prep.row_names, ranges.tolist(), strict=True):
                if value == value:  # not NaN
                    out.write(f"    RNG  {name}  {num(value)}\n")
        _bounds(out, model, prep)
        out.write("ENDATA\n")


def _row_kinds(model: MatrixModel, prep: Prepared
               ) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per row: MPS type ("" for a skipped free row), right-hand side and range (NaN when none)."""
    lb, ub = model.row_lb, model.row_ub
    lo_fin, hi_fin = np.isfinite(lb), np.isfinite(ub)
    kinds = np.full(lb.size, "", dtype="<U1")
    rhs = np.zeros(lb.size)
    ranges = np.full(lb.size, np.nan)
    eq = lo_fin & hi_fin & (lb == ub)
    ranged = lo_fin & hi_fin & (lb != ub)
    g_only, l_only = lo_fin & ~hi_fin, hi_fin & ~lo_fin
    kinds[eq] = "E"
    rhs[eq] = lb[eq]
    kinds[g_only] = "G"
    rhs[g_only] = lb[g_only]
    kinds[l_only] = "L"
    rhs[l_only] = ub[l_only]
    idx = np.flatnonzero(ranged)
    if idx.size:
        lo, hi = lb[idx], ub[idx]
        with np.errstate(over="ignore"):
            width = hi - lo
        if not np.isfinite(width).all():
            i = int(idx[np.argmax(~np.isfinite(width))])
            raise ExportError.at("E0605", f"row '{prep.row_names[i]}' has a range too wide to write",
                                 notes=["help: tighten the row bounds or write an LP file"])
        as_l = (lo + width != hi) & (hi - width == lo)
        kinds[idx] = np.where(as_l, "L", "G")
        rhs[idx] = np.where(as_l, hi, lo)
        ranges[idx] = width
    return kinds, rhs, ranges


def _columns(out: TextIO, model: MatrixModel, prep: Prepared) -> None:
    out.write("COLUMNS\n")
    kept_rows = np.flatnonzero(prep.kept)
    A = prep.A if kept_rows.size == prep.A.shape[0] else sp.csr_array(prep.A[kept_rows])
    C = sp.csc_array(A)
    C.sort_indices()
    indptr, indices, data = C.indptr, C.indices, C.data
    row_names = [prep.row_names[i] for i in kept_rows.tolist()]
    obj = prep.obj_name
    in_marker = False
    cols = zip(prep.col_names, model.c.tolist(), model.vtype.tolist(), strict=True)
    for j, (name, cost, vt) in enumerate(cols):
        integral = vt != "C"
        if integral != in_marker:
            out.write(f"    MARKER  'MARKER'  '{'INTORG' if integral else 'INTEND'}'\n")
            in_marker = integral
        s, e = int(indptr[j]), int(indptr[j + 1])
        if cost != 0.0 or e == s:
            out.write(f"    {name}  {obj}  {num(cost)}\n")
        for i, v in zip(indices[s:e].tolist(), data[s:e].tolist(), strict=True):
            out.write(f"    {name}  {row_names[i]}  {num(v)}\n")
    if in_marker:
        out.write("    MARKER  'MARKER'  'INTEND'\n")
    if prep.const_name is not None:
        out.write(f"    {prep.const_name}  {obj}  {num(model.c0)}\n")


def _bounds(out: TextIO, model: MatrixModel, prep: Prepared) -> None:
    out.write("BOUNDS\n")
    for name, lb, ub, vt in zip(prep.col_names, model.col_lb.tolist(), model.col_ub.tolist(),
                                model.vtype.tolist(), strict=True):
        if vt == "B" and lb == 0.0 and ub == 1.0:
            out.write(f" BV BND  {name}\n")
        elif lb == ub:
            out.write(f" FX BND  {name}  {num(lb)}\n")
        elif lb == -np.inf:
            if ub == np.inf:
                out.write(f" FR BND  {name}\n")
            else:
                out.write(f" MI BND  {name}\n UP BND  {name}  {num(ub)}\n")
        else:
            if lb != 0.0:
                out.write(f" LO BND  {name}  {num(lb)}\n")
            if ub != np.inf:
                out.write(f" UP BND  {name}  {num(ub)}\n")
            elif vt != "C":
                out.write(f" PL BND  {name}\n")
    if prep.const_name is not None:
        out.write(f" FX BND  {prep.const_name}  1.0\n")
