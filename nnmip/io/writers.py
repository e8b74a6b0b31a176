"""Model files: :func:`write_model` picks the LP or MPS writer from the file name; shared writer plumbing.

Supported names end in ``.lp``, ``.mps``, ``.lp.gz`` or ``.mps.gz`` (case-insensitive); ``.gz`` files are
gzip-compressed with a fixed header (no file name, mtime 0), so equal models give equal bytes.

Choices shared by both writers (see :mod:`nnmip.io.lp` and :mod:`nnmip.io.mps` for the format details):

* Linear models only: a model with cone blocks raises :class:`ExportError` ``E0602``.
* Columns and rows are written in stored order with the names of ``model.col_names()`` and
  ``model.row_names()``; numbers are written with ``repr(float)``, which reads back bit for bit.
* The objective constant ``c0`` is written as an extra column ``obj_constant`` fixed to 1 with cost ``c0``
  (only when ``c0 != 0``), placed after the model's columns.  HiGHS reads a native constant in both formats,
  but CBC (python-mip) silently drops it in both, so the fixed column is the only portable form.
* Free rows (``-inf <= a x <= inf``) are skipped in both formats: they constrain nothing, LP cannot state
  them and readers drop extra ``N`` rows of an MPS file anyway.
* Files are streamed row by row (LP) or column by column (MPS); the text is never held in memory.

Errors (all :class:`ExportError`, a ``ValueError``): ``E0601`` unknown extension, ``E0602`` cones,
``E0603`` a target ending in ``.nnmip``, ``E0604`` duplicate column or row names, ``E0605`` a value that
cannot be written (a non-finite objective constant, a bound fixed at infinity, a range too wide).
"""

from __future__ import annotations

import os
from pathlib import Path

from nnmip.io.lp import write_lp
from nnmip.io.mps import write_mps
from nnmip.io.plumbing import EXTENSIONS, ExportError
from nnmip.model import MatrixModel

__all__ = ["EXTENSIONS", "ExportError", "write_model"]


def write_model(model: MatrixModel, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` to ``path`` as LP or MPS chosen by the extension (``.gz`` compresses); return the path.

    Raises
    ------
    ExportError
        ``E0603`` when ``path`` ends in ``.nnmip`` (it would overwrite a source file), ``E0601`` for an
        unknown extension, and the writers' own errors (``E0602`` cones, ``E0604``, ``E0605``).
    """
    target = Path(path)
    low = target.name.lower()
    if low.endswith(".nnmip"):
        raise ExportError.at(
            "E0603", f"refusing to write a model to '{target}': a .nnmip name is kept for source files",
            notes=["help: give the output a .lp, .mps, .lp.gz or .mps.gz name"])
    if low.endswith((".lp", ".lp.gz")):
        write_lp(model, target)
    elif low.endswith((".mps", ".mps.gz")):
        write_mps(model, target)
    else:
        ext = "".join(target.suffixes[-2:]) if low.endswith(".gz") else target.suffix
        raise ExportError.at("E0601", f"unknown model file extension '{ext}'",
                             notes=["help: use .lp, .mps, .lp.gz or .mps.gz"])
    return target
