r"""Deterministic CPLEX-LP writer for a linear :class:`~nnmip.model.MatrixModel`.

The file is read back by HiGHS (``Highs.readModel``) and CBC (``mip.Model().read``); the tests check both.

Layout and choices
------------------
* ``Minimize`` / ``Maximize`` and one objective ``obj: ...`` listing **every** column in stored order, with
  ``+ 0.0 x`` for a column without cost.  Readers number columns by first appearance, so the file's columns
  keep the model's order (and a column used nowhere is still declared).
* Rows in stored order under ``Subject To``: ``lb == ub`` gives ``name: ... = lb``; one finite side gives
  ``>=`` or ``<=``.  A ranged row (both sides finite and different) becomes **two rows**
  ``name_lo: ... >= lb`` and ``name_hi: ... <= ub`` (made unique with trailing ``_`` if needed): neither
  HiGHS nor CBC reads the one-line form ``lb <= expr <= ub``, and two rows keep both bounds exact (the MPS
  writer keeps one row and uses RANGES).  A row without entries is written as ``0.0 x`` on the first column
  (on ``obj_constant`` in a model without columns).  Free rows are skipped (see :mod:`nnmip.io.writers`).
* The objective constant is the fixed column ``obj_constant`` (see :mod:`nnmip.io.writers`).
* ``Bounds`` lists every column whose bounds differ from the LP default ``[0, inf)``: ``x = v``, ``x free``,
  ``-inf <= x <= u``, ``x >= l`` or ``l <= x <= u``.  Binary columns with bounds ``[0, 1]`` go under
  ``Binaries`` without a bounds line; other binary columns (for example fixed ones) and integer columns go
  under ``Generals`` with their bounds.
* Coefficients are ``+ repr(|a|) name`` or ``- repr(|a|) name`` (``-0.0`` keeps its sign); right-hand sides
  and bounds are ``repr(float)``.  Lines are wrapped near 100 characters.
"""

from __future__ import annotations

import logging
import math
from typing import TextIO

import numpy as np

from nnmip.io.plumbing import Lines, PathOrFile, Prepared, comment_text, num, open_text, prepare, unique_name
from nnmip.model import MatrixModel

log = logging.getLogger(__name__)


def write_lp(model: MatrixModel, path_or_file: PathOrFile) -> None:
    """Write ``model`` in CPLEX LP format to a path (gzip when it ends in ``.gz``) or an open file.

    Raises
    ------
    ExportError
        ``E0602`` for a model with cones, ``E0604`` for duplicate names, ``E0605`` for unwritable values;
        nothing is written then.
    """
    prep = prepare(model, "LP")
    if prep.num_free_rows:
        log.info("LP export of %s skips %d free rows", model.name, prep.num_free_rows)
    with open_text(path_or_file) as out:
        _header(out, model, prep)
        _objective(out, model, prep)
        _rows(out, model, prep)
        _bounds(out, model, prep)
        out.write("End\n")


def _term(value: float, name: str) -> str:
    sign = "-" if math.copysign(1.0, value) < 0 else "+"
    return f" {sign} {num(abs(value))} {name}"


def _header(out: TextIO, model: MatrixModel, prep: Prepared) -> None:
    out.write(f"\\ nnmip model {comment_text(model.name)}: {model.num_cols} columns, "
              f"{model.num_rows} rows, {model.A.nnz} nonzeros\n")
    for note in model.notes:
        out.write(f"\\ {comment_text(note)}\n")


def _objective(out: TextIO, model: MatrixModel, prep: Prepared) -> None:
    out.write("Maximize\n" if model.sense == "max" else "Minimize\n")
    line = Lines(out, f" {prep.obj_name}:")
    for value, name in zip(model.c.tolist(), prep.col_names, strict=True):
        line.add(_term(value, name))
    if prep.const_name is not None:
        line.add(_term(model.c0, prep.const_name))
    line.end()


def _rows(out: TextIO, model: MatrixModel, prep: Prepared) -> None:
    out.write("Subject To\n")
    A = prep.A
    indptr, indices, data = A.indptr, A.indices, A.data
    names = prep.col_names
    taken = set(prep.row_names)
    kept = prep.kept.tolist()
    anchor = names[0] if names else prep.const_name or unique_name("obj_constant", set())
    rows = zip(prep.row_names, model.row_lb.tolist(), model.row_ub.tolist(), strict=True)
    for i, (name, lb, ub) in enumerate(rows):
        if not kept[i]:
            continue
        s, e = int(indptr[i]), int(indptr[i + 1])
        terms = ([_term(v, names[j]) for j, v in zip(indices[s:e].tolist(), data[s:e].tolist(), strict=True)]
                 if e > s else [_term(0.0, anchor)])
        if lb == ub:
            parts = [(name, " = " + num(lb))]
        elif ub == np.inf:
            parts = [(name, " >= " + num(lb))]
        elif lb == -np.inf:
            parts = [(name, " <= " + num(ub))]
        else:
            lo = unique_name(name + "_lo", taken)
            taken.add(lo)
            hi = unique_name(name + "_hi", taken)
            taken.add(hi)
            parts = [(lo, " >= " + num(lb)), (hi, " <= " + num(ub))]
        for label, tail in parts:
            line = Lines(out, f" {label}:")
            for term in terms:
                line.add(term)
            line.end(tail)


def _bounds(out: TextIO, model: MatrixModel, prep: Prepared) -> None:
    out.write("Bounds\n")
    generals: list[str] = []
    binaries: list[str] = []
    for name, lb, ub, vt in zip(prep.col_names, model.col_lb.tolist(), model.col_ub.tolist(),
                                model.vtype.tolist(), strict=True):
        if vt == "B" and lb == 0.0 and ub == 1.0:
            binaries.append(name)
            continue
        if vt != "C":
            generals.append(name)
        if lb == ub:
            out.write(f" {name} = {num(lb)}\n")
        elif lb == -np.inf:
            out.write(f" {name} free\n" if ub == np.inf else f" -inf <= {name} <= {num(ub)}\n")
        elif ub == np.inf:
            if lb != 0.0:
                out.write(f" {name} >= {num(lb)}\n")
        else:
            out.write(f" {num(lb)} <= {name} <= {num(ub)}\n")
    if prep.const_name is not None:
        out.write(f" {prep.const_name} = 1.0\n")
    for title, group in (("Generals", generals), ("Binaries", binaries)):
        if group:
            out.write(title + "\n")
            line = Lines(out, "")
            for name in group:
                line.add(" " + name)
            line.end()
