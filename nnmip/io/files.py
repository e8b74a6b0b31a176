"""Reading user files safely: size limits checked before allocation, ``.npy`` / ``.npz`` without pickles, text.

The memory limit is ``MEMORY_LIMIT`` bytes (4 GiB by default; the environment variable ``NNMIP_MEMORY_LIMIT``
overrides it, in bytes or with a ``K``, ``M``, ``G`` suffix).  An array file whose header announces more, a
network whose parameters would take more, or a model whose estimated size is larger is refused with its
estimate (``E0311`` for data files, ``E0430`` for networks and models) instead of being attempted.

:func:`load_npy_arrays` never unpickles (``allow_pickle=False``), checks every array's header against the
file's real size and the limit before reading it, and turns every numpy or zip failure into a located
:class:`~nnmip.errors.DataError`.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import IO

import numpy as np

from nnmip.errors import MEMORY_LIMIT, DataError, SizeError, Span, check_memory, human_bytes, memory_limit
from nnmip.io.safe import note_input

__all__ = ["MEMORY_LIMIT", "SizeError", "memory_limit", "human_bytes", "check_memory", "load_npy_arrays"]

def _header(f: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    return shape, dtype


def _check_header(f: IO[bytes], available: int, name: str, span: Span) -> None:
    shape, dtype = _header(f)
    if dtype.hasobject:
        raise DataError.at("E0309", f"{name} holds Python objects, which nnmip does not read", span,
                           ["help: store plain numeric arrays (numpy.savez(path, X=X.astype(float), y=y))"])
    need = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if need > available:
        raise DataError.at("E0311", f"{name} is truncated: its header announces {human_bytes(need)} of data "
                           f"but the file holds {human_bytes(available)}", span,
                           ["help: write the file again"])
    check_memory(need, name, span, code="E0311")


def load_npy_arrays(path: str | os.PathLike[str], span: Span | None = None,
                    display: str | None = None) -> dict[str, np.ndarray]:
    """Every array of a ``.npy`` file (key ``""``) or ``.npz`` file, read safely (see the module docstring)."""
    p = Path(path)
    name = f"'{display or os.fspath(path)}'"
    sp = span or Span(file=os.fspath(path))
    kind = "npy" if p.suffix.lower() == ".npy" else "npz"
    note_input(p)
    if p.is_dir():
        raise DataError.at("E0301", f"{name} is a folder, not a data file", sp)
    if not p.is_file():
        raise DataError.at("E0301", f"file {name} does not exist", sp)
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(6)
        if head.startswith(b"PK"):
            out: dict[str, np.ndarray] = {}
            with zipfile.ZipFile(p) as zf:
                for info in zf.infolist():
                    if not info.filename.endswith(".npy"):
                        continue
                    key = info.filename[:-4]
                    with zf.open(info) as member:
                        _check_header(member, info.file_size, f"array '{key}' of {name}", sp)
            with np.load(p, allow_pickle=False) as z:
                for key in z.files:
                    out[key] = np.asarray(z[key])
            return out
        if head == b"\x93NUMPY":
            with open(p, "rb") as f:
                _check_header(f, size, name, sp)
            return {"": np.asarray(np.load(p, allow_pickle=False))}
        raise DataError.at("E0309", f"{name} cannot be read as an {kind} file", sp,
                           ["note: it is neither a .npy nor a .npz file",
                            "help: write it with numpy.save or numpy.savez"])
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, MemoryError, TypeError) as exc:
        detail = str(exc).split(".")[0].strip() or type(exc).__name__
        if "allow_pickle" in detail or "Object arrays" in detail:
            detail = "it holds Python objects, which nnmip does not read"
        raise DataError.at("E0309", f"{name} cannot be read as an {kind} file", sp,
                           [f"note: {detail}",
                            "help: write it with numpy.save / numpy.savez from plain numeric arrays"]) from None


_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"),
         (b"\xfe\xff", "UTF-16"))


def read_text_file(path: str | os.PathLike[str], display: str | None = None, span: Span | None = None,
                   code: str = "E0302") -> str:
    """The UTF-8 text of a file (a BOM is skipped), refusing folders, UTF-16/32 and invalid bytes with the row."""
    p = Path(path)
    name = display or os.fspath(path)
    sp = span or Span(file=name)
    note_input(p)
    if p.is_dir():
        raise DataError.at("E0301", f"'{name}' is a folder, not a file", sp)
    if not p.is_file():
        raise DataError.at("E0301", f"file '{name}' does not exist", sp)
    size = p.stat().st_size
    check_memory(size * 4.0, f"reading '{name}' ({human_bytes(size)})", sp, code="E0311")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DataError.at("E0301", f"'{name}' cannot be read: {exc.strerror or exc}", sp) from None
    for bom, enc in _BOMS:
        if raw.startswith(bom):
            raise DataError.at(code, f"'{name}' is {enc} text, not UTF-8", sp,
                               ["help: save the file as UTF-8"])
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        where = Span(line, col, line, col + 1, sp.file) if not sp.known else sp
        raise DataError.at(code, f"'{name}' is not UTF-8 text: byte 0x{raw[e.start]:02x} at row {line}, "
                           f"column {col}", where, ["help: save the file as UTF-8"]) from None


def read_number_table(path: str | os.PathLike[str], delimiter: str | None = None, header: bool = False,
                      display: str | None = None) -> np.ndarray:
    """A 2-D float array from a text file of numbers (blank lines and ``#`` comments skipped).

    ``delimiter`` None guesses ';', ',' or white space from the first data line.  Errors carry
    ``file:row:column``: ``E0310`` ragged rows, ``E0302`` a cell that is not a number, ``E0303`` NaN or infinity,
    ``E0305`` no rows.
    """
    return read_labelled_table(path, None, delimiter, header, display)[0]


def read_labelled_table(path: str | os.PathLike[str], label: int | None, delimiter: str | None = None,
                        header: bool = False, display: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`read_number_table` with the column ``label`` (an index into the row, negative from the end; None:
    none) kept apart as text: the float array of the other columns and the label strings (labels may be names).
    A ``label`` out of range is the caller's to refuse: here it is read as no label.
    """
    name = display or os.fspath(path)
    text = read_text_file(path, name)
    rows: list[list[str]] = []
    line_no: list[int] = []
    for k, line in enumerate(text.splitlines()):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if delimiter is None:
            delimiter = ";" if ";" in s else ("," if "," in s else "")
        rows.append(s.split() if not delimiter.strip() else [c.strip() for c in s.split(delimiter)])
        line_no.append(k + 1)
    if header and rows:
        rows, line_no = rows[1:], line_no[1:]
    if not rows:
        raise DataError.at("E0305", f"'{name}' holds no rows of numbers", Span(file=name))
    width = len(rows[0])
    for r, n in zip(rows, line_no, strict=True):
        if len(r) != width:
            raise DataError.at("E0310", f"row {n} of '{name}' has {len(r)} columns but row {line_no[0]} has "
                               f"{width}", Span(n, 1, file=name),
                               [f"help: every row needs {width} values"
                                + (f" separated by '{delimiter}'" if delimiter else "")])
    labels = None
    cols = list(range(width))           # the file's column of each number column
    if label is not None and -width <= label < width:
        col = label % width
        labels = np.array([r[col] for r in rows], dtype=str)
        rows = [r[:col] + r[col + 1:] for r in rows]
        cols.pop(col)
    try:
        table = np.array(rows, dtype=np.float64).reshape(len(rows), len(cols))
    except ValueError:
        table = None
    if table is None:
        for r, n in zip(rows, line_no, strict=True):
            for j, cell in enumerate(r):
                try:
                    float(cell)
                except ValueError:
                    raise DataError.at("E0302", f"row {n}, column {cols[j] + 1} of '{name}' is not a number: "
                                       f"'{cell[:40]}'", Span(n, cols[j] + 1, file=name),
                                       ["help: every value must be a number; check the delimiter and the header"]
                                       ) from None
        raise DataError.at("E0302", f"'{name}' cannot be read as numbers", Span(file=name))  # pragma: no cover
    bad = ~np.isfinite(table)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise DataError.at("E0303", f"row {line_no[i]}, column {cols[j] + 1} of '{name}' is not finite: "
                           f"'{rows[i][j]}'", Span(line_no[i], cols[j] + 1, file=name),
                           ["help: drop or impute missing and infinite values"])
    return table, labels


def numeric_array(a: np.ndarray, name: str, file: str = "") -> np.ndarray:
    """``a`` as finite float64, or a ``DataError`` naming ``file`` (``E0302`` not numbers, ``E0303`` NaN/infinity)."""
    sp = Span(file=file)
    if a.dtype.kind not in "biuf":
        raise DataError.at("E0302", f"{name} does not hold numbers (dtype {a.dtype})", sp,
                           ["help: store plain numeric arrays"])
    out = np.asarray(a, dtype=np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        idx = tuple(int(v) for v in np.argwhere(bad)[0])
        raise DataError.at("E0303", f"{name} holds a non-finite value at index {idx}", sp,
                           ["help: drop or impute missing and infinite values"])
    return out
