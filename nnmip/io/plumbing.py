"""What the LP and MPS writers share: names, numbers, text streams, the checks before writing (see
:mod:`nnmip.io.writers` for the choices they make).
"""


from __future__ import annotations

import gzip
import io
import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TextIO

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from nnmip.errors import NnmipError
from nnmip.io.safe import atomic_write
from nnmip.model import MatrixModel

log = logging.getLogger(__name__)

PathOrFile = str | os.PathLike[str] | IO[str] | IO[bytes]

EXTENSIONS = (".lp", ".mps", ".lp.gz", ".mps.gz")


class ExportError(NnmipError, ValueError):
    """A model cannot be written to an LP or MPS file."""

    code = "E0600"


# ------------------------------------------------------------------------------------------------------------
# Shared by lp.py and mps.py
# ------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prepared:
    """What both writers need, checked once: canonical rows, names and the extra objective-constant column."""

    A: sp.csr_array                   # canonical (sorted, no duplicates); explicit zeros are kept
    col_names: list[str]
    row_names: list[str]
    kept: npt.NDArray[np.bool_]       # rows that are not free on both sides
    obj_name: str                     # objective label / N row, distinct from every row name
    const_name: str | None            # the fixed column carrying c0, or None when c0 == 0

    @property
    def num_free_rows(self) -> int:
        return int(self.kept.size - np.count_nonzero(self.kept))


def prepare(model: MatrixModel, fmt: str) -> Prepared:
    """Check that ``model`` can be written as ``fmt`` ("LP" or "MPS") and collect the shared pieces."""
    if any(cone.count for cone in model.cones):
        raise ExportError.at(
            "E0602", f"{fmt} export does not support cone constraints",
            notes=["help: write the linear perspective cuts instead (--emit perspective-cuts) "
                   "or solve with a cone-capable backend such as cvxpy"])
    if not math.isfinite(model.c0):
        raise ExportError.at("E0605", f"objective constant {model.c0!r} cannot be written")
    bad = (model.col_lb == np.inf) | (model.col_ub == -np.inf)
    if bad.any():
        j = int(np.argmax(bad))
        raise ExportError.at("E0605", f"column '{model.col_name(j)}' is fixed at an infinite value")
    bad = (model.row_lb == np.inf) | (model.row_ub == -np.inf)
    if bad.any():
        i = int(np.argmax(bad))
        raise ExportError.at("E0605", f"row '{model.row_name(i)}' has an infinite right-hand side")

    col_names = model.col_names()
    row_names = model.row_names()
    _check_unique(col_names, "column")
    _check_unique(row_names, "row")
    A = model.A
    if not A.has_canonical_format:
        A = sp.csr_array(A, copy=True)
        A.sum_duplicates()
    kept = ~((model.row_lb == -np.inf) & (model.row_ub == np.inf))
    const_name = unique_name("obj_constant", set(col_names)) if model.c0 != 0.0 else None
    return Prepared(A, col_names, row_names, kept, unique_name("obj", set(row_names)), const_name)


def unique_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base`` followed by as many ``_`` as needed to avoid ``taken``."""
    name = base
    while name in taken:
        name += "_"
    return name


def _check_unique(names: list[str], what: str) -> None:
    if len(set(names)) == len(names):
        return
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ExportError.at("E0604", f"{what} name '{name}' is used more than once",
                                 notes=["help: give each model block a distinct node or role"])
        seen.add(name)


def num(value: float) -> str:
    """A float as the shortest text that reads back to the same double (``repr``)."""
    return repr(float(value))


def comment_text(text: str) -> str:
    """``text`` on one ASCII line, safe inside a comment."""
    one = " ".join(text.split())
    return one.encode("ascii", "backslashreplace").decode("ascii")


@contextmanager
def open_text(target: PathOrFile) -> Iterator[TextIO]:
    """A text stream to write to: a path (gzip when it ends in ``.gz``) or an open text or binary file.

    A path is written through :func:`nnmip.io.safe.atomic_write`: a failure leaves the previous file as it was.
    An open file is flushed and left open.
    """
    if isinstance(target, (str, os.PathLike)):
        path = Path(target)
        with atomic_write(path) as raw:   # a temporary file renamed over the target only on success
            if path.name.lower().endswith(".gz"):
                gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0)
                text = io.TextIOWrapper(gz, encoding="ascii", newline="\n")
                yield text
                text.flush()
                text.detach()
                gz.close()   # writes the gzip trailer; the temporary file itself stays open
            else:
                text = io.TextIOWrapper(raw, encoding="ascii", newline="\n")
                yield text
                text.flush()
                text.detach()
    elif isinstance(target, io.TextIOBase) or hasattr(target, "encoding"):
        yield target  # type: ignore[misc]
        target.flush()
    else:
        wrapper = io.TextIOWrapper(target, encoding="ascii", newline="\n")  # type: ignore[type-var]
        try:
            yield wrapper
        finally:
            wrapper.flush()
            wrapper.detach()


class Lines:
    """Join terms into lines of about ``width`` characters (LP readers limit line length)."""

    def __init__(self, out: TextIO, first: str, width: int = 100) -> None:
        self.out = out
        self.width = width
        self.line = first
        self.indent = " " * min(len(first), 4)

    def add(self, term: str) -> None:
        if len(self.line) + len(term) > self.width and self.line.strip():
            self.out.write(self.line)
            self.out.write("\n")
            self.line = self.indent
        self.line += term

    def end(self, tail: str = "") -> None:
        self.out.write(self.line + tail + "\n")
        self.line = self.indent
