"""The data layer: read a data source, split it, take a subset and scale it.

A ``.nnmip`` ``data`` statement becomes a :class:`DataSource` (where the rows come from) and a
:class:`Preprocess` (how they are split, subset and scaled).  :func:`load_dataset` turns the pair into a
:class:`Dataset`: the raw feature matrix, class indices, the split row indices and a :class:`Scaler` fitted
on the train rows only.

Every problem a user can cause raises :class:`~nnmip.errors.DataError` with a stable code:

====== =====================================================================
E0301  data file not found
E0302  non-numeric feature value
E0303  NaN, infinite or missing value
E0304  label column out of range
E0305  empty data set, no feature columns, or fewer than 2 classes
E0306  bad split fractions
E0307  subset larger than the train split (or otherwise invalid)
E0308  unknown sklearn dataset
E0309  npz file missing a key, unreadable, or with wrong shapes
E0310  rows with different numbers of columns
====== =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnmip.errors import NO_SPAN, DataError, Span
from nnmip.io.safe import note_input

__all__ = [
    "SCALE_KINDS",
    "SKLEARN_DATASETS",
    "SOURCE_KINDS",
    "Dataset",
    "DataSource",
    "Preprocess",
    "Scaler",
    "load_dataset",
    "read_points",
    "read_source",
]

SOURCE_KINDS = ("csv", "npz", "sklearn")
SCALE_KINDS = ("none", "minmax", "standard")
SKLEARN_DATASETS = ("iris", "breast_cancer", "wine", "digits")
SUBSET_MODES = ("first", "random")

# Cell texts (compared lowercased, stripped) that mean "no value here".
_MISSING_TOKENS = ("", "?", "na", "n/a", "null", "none")
_FRACTION_TOL = 1e-9

_Table = tuple[np.ndarray, np.ndarray, tuple[str, ...]]


# ---------------------------------------------------------------------------------------------------------
# Statement-level descriptions
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSource:
    """What a ``data`` statement says about where the rows come from."""

    kind: str
    path: str = ""
    name: str = ""
    delimiter: str = ","
    header: bool = False
    label: int = -1
    x_key: str = "X"
    y_key: str = "y"
    span: Span = NO_SPAN

    def describe(self) -> str:
        """A short human description, e.g. ``csv:examples/data/bcw.csv`` or ``sklearn:iris``."""
        return f"{self.kind}:{self.name if self.kind == 'sklearn' else self.path}"


@dataclass(frozen=True)
class Preprocess:
    """How the rows are split, subset and scaled."""

    scale: str = "minmax"
    train: float = 1.0
    validation: float = 0.0
    test: float = 0.0
    seed: int = 0
    subset: tuple[str, int, int] | None = None
    span: Span = NO_SPAN


# ---------------------------------------------------------------------------------------------------------
# Scaler and Dataset
# ---------------------------------------------------------------------------------------------------------


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Scaler:
    """An affine per-feature map ``x_scaled = (x_raw - offset) / scale``."""

    kind: str
    offset: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, kind: str, X: np.ndarray) -> Scaler:
        """Fit ``kind`` on the rows of ``X``; constant columns get scale 1."""
        X = np.asarray(X, dtype=np.float64)
        d = X.shape[1]
        if kind == "none" or X.shape[0] == 0:
            offset, scale = np.zeros(d), np.ones(d)
        elif kind == "minmax":
            offset = X.min(axis=0)
            scale = X.max(axis=0) - offset
        elif kind == "standard":
            offset = X.mean(axis=0)
            scale = X.std(axis=0)
        else:
            raise ValueError(f"unknown scaling {kind!r}; expected one of {', '.join(SCALE_KINDS)}")
        scale = np.where(scale > 0, scale, 1.0)
        offset = _frozen(np.array(offset, dtype=np.float64))
        return cls(kind, offset, _frozen(np.array(scale, dtype=np.float64)))

    def transform(self, X_raw: np.ndarray) -> np.ndarray:
        return (np.asarray(X_raw, dtype=np.float64) - self.offset) / self.scale

    def inverse(self, X_scaled: np.ndarray) -> np.ndarray:
        return np.asarray(X_scaled, dtype=np.float64) * self.scale + self.offset

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "offset": self.offset.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scaler:
        return cls(
            str(d["kind"]),
            _frozen(np.asarray(d["offset"], dtype=np.float64).reshape(-1)),
            _frozen(np.asarray(d["scale"], dtype=np.float64).reshape(-1)),
        )


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded, split and scaled data set.  Row index arrays are 0-based indices into ``X_raw``."""

    X_raw: np.ndarray
    y: np.ndarray
    classes: np.ndarray
    feature_names: tuple[str, ...]
    scaler: Scaler
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    train_all: np.ndarray
    source: str

    def X(self, rows: np.ndarray | None = None) -> np.ndarray:  # noqa: N802 - the usual name
        """Scaled features of ``rows`` (all rows when ``None``)."""
        raw = self.X_raw if rows is None else self.X_raw[np.asarray(rows, dtype=np.int64)]
        return self.scaler.transform(raw)

    @property
    def n_classes(self) -> int:
        return int(len(self.classes))

    @property
    def n_features(self) -> int:
        return int(self.X_raw.shape[1])

    @property
    def n_rows(self) -> int:
        return int(self.X_raw.shape[0])


# ---------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------


def _err(code: str, message: str, span: Span, *notes: str) -> DataError:
    return DataError.at(code, message, span, notes)  # type: ignore[return-value]


def display_path(path: str | Path) -> str:
    """``path`` as the user would type it from here: relative to the working folder when inside it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(p)


@dataclass(frozen=True)
class _Where:
    """Where a data file's problems are reported: at the row and column of the file itself (``file:row:column``)
    with a note naming the statement that loads it; a problem of the whole file (unreadable, not npz, a missing
    array) at the statement that names the file, the message naming the file.
    """

    file: str
    stmt: Span

    def at(self, row: int = 0, col: int = 0) -> Span:
        return Span(row, col, row, col, self.file) if row > 0 else Span(file=self.file)

    def err(self, code: str, message: str, row: int = 0, col: int = 0, *notes: str) -> DataError:
        if row <= 0:
            return DataError.at(code, message, self.stmt if self.stmt.known else self.at(), notes)  # type: ignore
        extra = (f"note: the file is read for {self.stmt}",) if self.stmt.known else ()
        e = DataError.at(code, message, self.at(row, col), (*extra, *notes))
        e.source = ""   # the span is in the data file, not in the program text: show no program line under it
        return e  # type: ignore[return-value]


def _resolve(src: DataSource, base_dir: str | Path) -> Path:
    if not src.path:
        raise _err("E0301", f"{src.kind} data source has no file path", src.span,
                   f'help: give the file, e.g. data d = {src.kind}("data/train.{src.kind}")')
    p = Path(src.path).expanduser()
    if not p.is_absolute():
        p = Path(base_dir) / p
    p = p.resolve()
    note_input(p)
    if not p.is_file():
        what = "is a directory, not a file" if p.is_dir() else "not found"
        raise _err("E0301", f"data file {what}: {p}", src.span,
                   "help: relative paths are resolved against the directory of the .nnmip file")
    return p


def _is_missing(cells: np.ndarray) -> np.ndarray:
    return np.isin(np.char.lower(np.char.strip(cells)), _MISSING_TOKENS)


_OK, _MISSING, _NONFINITE, _NOT_NUMBER = 0, 1, 2, 3


def _classify(tok: str) -> int:
    """Why one cell is (or is not) a usable feature value."""
    t = tok.strip()
    if t.lower() in _MISSING_TOKENS:
        return _MISSING
    try:
        v = float(t)
    except ValueError:
        return _NOT_NUMBER
    return _OK if np.isfinite(v) else _NONFINITE


def _cell_error(kind: int, where: str, tok: str, w: _Where, row: int, col: int) -> DataError:
    tok = tok.strip()[:40]
    if kind == _NOT_NUMBER:
        return w.err("E0302", f"{where} is not a number: '{tok}'", row, col,
                     "help: features must be numbers; encode categorical columns numerically first")
    if kind == _MISSING:
        return w.err("E0303", f"{where} is missing" + (f": '{tok}'" if tok else ""), row, col,
                     "help: remove or impute rows with missing values before loading")
    return w.err("E0303", f"{where} is not finite: '{tok}'", row, col,
                 "help: remove or impute rows with NaN or infinite values before loading")


def _to_float(cells: np.ndarray, rows: np.ndarray, cols: np.ndarray, name: str, w: _Where) -> np.ndarray:
    """Convert a 2-D string array to float64; on failure report the first bad cell in file order.

    ``rows[i]`` is the 1-based file line of row ``i``; ``cols[j]`` the 1-based file column of column ``j``.
    """
    try:
        values = cells.astype(np.float64)
    except ValueError:
        kinds = np.vectorize(_classify, otypes=[np.int64])(cells)
    else:
        bad = ~np.isfinite(values)
        if not bad.any():
            return values
        kinds = np.zeros(cells.shape, dtype=np.int64)
        kinds[bad] = [_classify(str(t)) for t in cells[bad]]
    i, j = (int(k) for k in np.argwhere(kinds != _OK)[0])  # row-major: the first bad cell in file order
    where = f"row {int(rows[i])}, column {int(cols[j])} of '{name}'"
    raise _cell_error(int(kinds[i, j]), where, str(cells[i, j]), w, int(rows[i]), int(cols[j]))


def _labels_from_strings(cells: np.ndarray, rows: np.ndarray, col: int, name: str, w: _Where) -> np.ndarray:
    """Label cells as numbers when they all are (ints when integral), else as stripped strings."""
    cells = np.char.strip(cells)
    missing = _is_missing(cells)
    if missing.any():
        i = int(np.argmax(missing))
        raise w.err("E0303", f"row {int(rows[i])}, column {col} of '{name}' is missing"
                    + (f": '{cells[i]}'" if cells[i] else ""), int(rows[i]), col,
                    "help: every row needs a label; remove unlabelled rows before loading")
    try:
        values = cells.astype(np.float64)
    except ValueError:
        return cells.astype(str)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        raise w.err("E0303", f"row {int(rows[i])}, column {col} of '{name}' is not finite: '{cells[i]}'",
                    int(rows[i]), col, "help: every row needs a finite label")
    if np.all(values == np.round(values)):
        return values.astype(np.int64)
    return values


def _read_csv(src: DataSource, base_dir: str | Path) -> _Table:
    path = _resolve(src, base_dir)
    name, span = src.path, src.span
    w = _Where(display_path(path), span)
    from nnmip.io.files import read_text_file

    try:
        text = read_text_file(path, name)
    except DataError as e:   # not UTF-8 (located at its row and column), unreadable
        d = e.diagnostics[0]
        raise w.err(d.code, d.message, d.span.line, d.span.column,
                    *[n for n in d.notes if not n.startswith("help:")],
                    "help: save the file as UTF-8 comma- or semicolon-separated text") from None
    lines = text.splitlines()
    keep = [k for k, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    whitespace = src.delimiter.strip() == ""
    split = [lines[k].split() if whitespace else lines[k].split(src.delimiter) for k in keep]
    line_no = np.asarray(keep, dtype=np.int64) + 1

    header: list[str] | None = None
    if src.header and split:
        header, split, line_no = split[0], split[1:], line_no[1:]
    if not split:
        raise w.err("E0305", f"'{name}' holds no data rows", len(lines) if lines else 1, 1,
                    "help: the file is empty" + (" apart from its header" if header is not None else ""))

    widths = np.fromiter((len(r) for r in split), dtype=np.int64, count=len(split))
    ncols = len(header) if header is not None else int(widths[0])
    odd = widths != ncols
    if odd.any():
        i = int(np.argmax(odd))
        first = "the header" if header is not None else f"row {int(line_no[0])}"
        notes = [f"help: every row needs {ncols} values separated by '{src.delimiter}'"]
        if ncols == 1 or int(widths[i]) == 1:
            notes.append("help: check the delimiter (set it with delimiter=\";\" in the data statement)")
        raise w.err("E0310", f"row {int(line_no[i])} of '{name}' has {int(widths[i])} columns "
                             f"but {first} has {ncols}", int(line_no[i]), 1, *notes)

    label = src.label if src.label >= 0 else ncols + src.label
    if not 0 <= label < ncols:
        raise _err("E0304", f"label column {src.label} is out of range: the file has {ncols} columns", span,
                   f"help: columns are counted from 0 (0..{ncols - 1}); negative numbers count from the end, "
                   "-1 is the last column")
    if ncols < 2:
        raise w.err("E0305", f"'{name}' has no feature columns besides the label", int(line_no[0]), 1,
                    "help: check the delimiter (set it with delimiter=\";\" in the data statement)")

    cells = np.char.strip(np.array(split, dtype=str), " \t\"'")
    feat_cols = np.array([j for j in range(ncols) if j != label], dtype=np.int64)
    X = _to_float(cells[:, feat_cols], line_no, feat_cols + 1, name, w)
    y = _labels_from_strings(cells[:, label], line_no, label + 1, name, w)
    if header is not None:
        names = tuple(header[j].strip().strip("\"'") or f"x{j}" for j in feat_cols)
    else:
        names = tuple(f"x{j}" for j in range(len(feat_cols)))
    return X, y, names


def _read_npz(src: DataSource, base_dir: str | Path) -> _Table:
    path = _resolve(src, base_dir)
    name, span = src.path, src.span
    w = _Where(display_path(path), span)
    from nnmip.io.files import load_npy_arrays

    try:
        z = load_npy_arrays(path, w.at(), name)
    except DataError as e:
        d = e.diagnostics[0]
        raise w.err(d.code, d.message, 0, 0, *d.notes) from None
    span = w.stmt if w.stmt.known else w.at()
    if "" in z:
        raise _err("E0309", f"'{name}' cannot be read as an npz file: it holds a single array", span,
                   "help: write it with numpy.savez(path, X=..., y=...)")
    keys = list(z)
    for key in (src.x_key, src.y_key):
        if key not in keys:
            raise _err("E0309", f"'{name}' has no array '{key}'", span,
                       f"help: the file holds {', '.join(repr(k) for k in keys) or 'no arrays'}; "
                       "choose with npz(..., x=\"...\", y=\"...\")")
    X = np.asarray(z[src.x_key])
    y = np.asarray(z[src.y_key])
    names = tuple(str(s) for s in z["feature_names"]) if "feature_names" in keys else None
    if X.ndim != 2:
        raise _err("E0309", f"array '{src.x_key}' of '{name}' must be 2-D (rows x features), "
                            f"got shape {X.shape}", span)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise _err("E0309", f"array '{src.y_key}' of '{name}' must be 1-D with one label per row of "
                            f"'{src.x_key}' ({X.shape[0]}), got shape {y.shape}", span)
    rows = np.arange(1, X.shape[0] + 1)
    cols = np.arange(1, X.shape[1] + 1)
    if X.dtype.kind in "US":
        X = _to_float(X.astype(str), rows, cols, name, w)
    elif X.dtype.kind not in "biuf":
        raise _err("E0302", f"array '{src.x_key}' of '{name}' does not hold numbers (dtype {X.dtype})", span,
                   "help: features must be real numbers")
    X = X.astype(np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        raise _cell_error(_NONFINITE, f"row {i + 1}, column {j + 1} of '{name}'", str(X[i, j]), w, i + 1, j + 1)
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            i = int(np.argmax(~np.isfinite(y)))
            raise w.err("E0303", f"label {i + 1} of '{name}' is not finite: '{y[i]}'", i + 1, 1,
                        "help: every row needs a finite label")
        if np.all(y == np.round(y)):
            y = y.astype(np.int64)
    if names is None or len(names) != X.shape[1]:
        names = tuple(f"x{j}" for j in range(X.shape[1]))
    return X, y, names


def _read_sklearn(src: DataSource) -> _Table:
    key = src.name.strip().lower().replace("-", "_")
    if key not in SKLEARN_DATASETS:
        raise _err("E0308", f"unknown sklearn dataset '{src.name}'", src.span,
                   f"help: choose one of {', '.join(SKLEARN_DATASETS)}")
    try:
        from sklearn import datasets
    except ImportError:
        raise _err("E0308", f"sklearn dataset '{src.name}' needs scikit-learn, which is not installed",
                   src.span, "help: pip install scikit-learn") from None
    bunch = getattr(datasets, f"load_{key}")()
    X = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target)
    raw_names = getattr(bunch, "feature_names", None)
    if raw_names is not None and len(raw_names) == X.shape[1]:
        names = tuple(str(s) for s in raw_names)
    else:
        names = tuple(f"x{j}" for j in range(X.shape[1]))
    return X, y, names


def read_source(src: DataSource, base_dir: str | Path = ".") -> _Table:
    """Read every row of ``src``: ``(X_raw (n, d) float64, raw label values (n,), feature names)``."""
    if src.kind == "csv":
        return _read_csv(src, base_dir)
    if src.kind == "npz":
        return _read_npz(src, base_dir)
    if src.kind == "sklearn":
        return _read_sklearn(src)
    raise _err("E0300", f"unknown data source kind '{src.kind}'", src.span,
               f"help: use one of {', '.join(SOURCE_KINDS)}")


def read_points(path: str | Path, *, delimiter: str | None = None, header: bool = False, label: int | None = None,
                integer_labels: bool = False, any_npz_key: bool = False, label_option: str = "label column"
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows of points (and their labels) from ``.npy``, ``.npz`` or a text table: the one reader of point files
    (``nnmip predict``, ``nnmip verify --points``, points in verification statements).

    * ``.npy``: one array, rows x features (a single row may be 1-D); no labels.
    * ``.npz``: array ``X`` (any first array when ``any_npz_key``) and, when present, labels ``y``.
    * text: numbers (:func:`nnmip.io.files.read_number_table`: ``delimiter`` ``None`` guesses it, ``header`` skips
      the first row); ``label`` is the label column (negative counts from the end; ``None``: no labels).

    ``integer_labels`` requires integral labels and returns them as ``int64``; otherwise a text table's labels are
    numbers when every one is, else the strings as written (class names, as training data may have);
    ``label_option`` names the label setting in messages.  Errors: E0309 (npz keys and shapes), E0304 (label
    column out of range or not integral), E0305 (no feature column besides the label), and the cell errors of the
    reading helpers.
    """
    from nnmip.io.files import load_npy_arrays, numeric_array, read_labelled_table, read_number_table

    p = Path(path)
    name = str(path)
    where = Span(file=name)
    if p.suffix.lower() in (".npy", ".npz"):
        arrays = load_npy_arrays(p)
        y: np.ndarray | None = None
        if "" in arrays:
            X = numeric_array(arrays[""], f"'{name}'", name)
            key = ""
        else:
            if not arrays:
                raise DataError.at("E0309", f"'{name}' holds no arrays", where)
            if "X" not in arrays and not any_npz_key:
                raise DataError.at("E0309", f"'{name}' has no array 'X'", where,
                                   [f"help: it holds {sorted(arrays)}"])
            key = "X" if "X" in arrays else next(iter(arrays))
            X = numeric_array(arrays[key], f"array '{key}' of '{name}'", name)
        if X.ndim > 2:
            what = f"'{name}' holds an array" if key == "" else f"array '{key}' of '{name}' has"
            raise DataError.at("E0309", f"{what} of shape {X.shape}; expected rows x features", where)
        X = np.atleast_2d(X)
        if "y" in arrays and key != "":
            y = np.asarray(arrays["y"]).ravel()
            if integer_labels:
                yf = numeric_array(arrays["y"], f"array 'y' of '{name}'", name).ravel()
                if yf.shape[0] != X.shape[0] or not np.all(yf == np.round(yf)):
                    raise DataError.at("E0309", f"array 'y' of '{name}' must hold one integer label per row of "
                                       f"'{key}' ({X.shape[0]}), got {yf.shape[0]} values", where)
                y = yf.astype(np.int64)
            elif y.shape[0] != X.shape[0]:
                raise DataError.at("E0309", f"array 'y' of '{name}' has {y.shape[0]} labels for {X.shape[0]} rows",
                                   where)
        return X, y
    if label is not None and not integer_labels:
        # labels as written (class names or numbers: the caller compares them with the network's classes)
        # (a label column out of range, no feature column or a label that is not finite: the checks below)
        A, names = read_labelled_table(p, label, delimiter, header, display=name)
        if names is not None and A.shape[1] >= 1:
            try:
                numbers = names.astype(np.float64)
            except ValueError:                  # class names
                return A, names
            if np.isfinite(numbers).all():
                return A, numbers
    A = read_number_table(p, delimiter, header, display=name)
    if label is None:
        return A, None
    if not -A.shape[1] <= label < A.shape[1]:
        raise DataError.at("E0304", f"{label_option} {label} is out of range: '{name}' has {A.shape[1]} columns",
                           where, [f"help: columns are counted from 0 (0..{A.shape[1] - 1}); -1 is the last; "
                                   "'none' when the file has no labels"])
    if A.shape[1] < 2:
        raise DataError.at("E0305", f"'{name}' has no feature columns besides the label", where,
                           ["help: give --label-column none when the file has no labels"])
    col = label % A.shape[1]
    labels = A[:, col]
    if integer_labels:
        if not np.all(labels == np.round(labels)):
            i = int(np.argmax(labels != np.round(labels)))
            raise DataError.at("E0304", f"column {label} of '{name}' holds non-integer labels ({labels[i]:g} "
                               f"in data row {i + 1})", where,
                               ["help: give --label-column none when the file has no labels"])
        return np.delete(A, col, axis=1), labels.astype(np.int64)
    return np.delete(A, col, axis=1), labels


# ---------------------------------------------------------------------------------------------------------
# Splitting, subsetting, scaling
# ---------------------------------------------------------------------------------------------------------


def _split(n: int, pre: Preprocess) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fr = {"train": pre.train, "validation": pre.validation, "test": pre.test}
    listing = ", ".join(f"{k} {v:g}" for k, v in fr.items())
    negative = [k for k, v in fr.items() if not v >= 0]  # also catches NaN
    if negative:
        raise _err("E0306", f"split fraction {negative[0]} must be between 0 and 1, got {fr[negative[0]]:g}",
                   pre.span, "help: give fractions such as split(train=0.7, validation=0.15, test=0.15)")
    total = pre.train + pre.validation + pre.test
    if abs(total - 1.0) > _FRACTION_TOL:
        raise _err("E0306", f"split fractions must sum to 1, got {total:g} ({listing})", pre.span,
                   "help: give fractions such as split(train=0.7, validation=0.15, test=0.15)")
    n_train = min(int(np.floor(pre.train * n + 0.5)), n)
    n_val = min(int(np.floor(pre.validation * n + 0.5)), n - n_train)
    if n_train == 0:
        raise _err("E0306", f"the train split of {n} rows is empty ({listing})", pre.span,
                   "help: raise the train fraction")
    perm = np.random.default_rng(pre.seed).permutation(n)
    train = np.sort(perm[:n_train])
    val = np.sort(perm[n_train:n_train + n_val])
    test = np.sort(perm[n_train + n_val:])
    return train.astype(np.int64), val.astype(np.int64), test.astype(np.int64)


def _subset(train_all: np.ndarray, pre: Preprocess) -> np.ndarray:
    if pre.subset is None:
        return train_all
    mode, count, seed = pre.subset
    if mode not in SUBSET_MODES:
        raise _err("E0307", f"unknown subset mode '{mode}'", pre.span,
                   f"help: use one of {', '.join(SUBSET_MODES)}")
    count = int(count)
    if count < 1:
        raise _err("E0307", f"subset must take at least 1 row, got {count}", pre.span)
    if count > len(train_all):
        raise _err("E0307", f"subset of {count} rows is larger than the train split ({len(train_all)} rows)",
                   pre.span, f"help: take at most {len(train_all)} rows or raise the train fraction")
    if mode == "first":
        return train_all[:count].copy()
    picked = np.random.default_rng(int(seed)).choice(train_all, size=count, replace=False)
    return np.sort(picked).astype(np.int64)


def _classes(y_raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    classes, y = np.unique(y_raw, return_inverse=True)
    return classes, y.reshape(-1).astype(np.int64)


def load_dataset(src: DataSource, pre: Preprocess = Preprocess(), base_dir: str | Path = ".") -> Dataset:
    """Read ``src``, split and subset its rows as ``pre`` says and fit the scaler on the train split."""
    if pre.scale not in SCALE_KINDS:
        raise _err("E0300", f"unknown scaling '{pre.scale}'", pre.span,
                   f"help: use one of {', '.join(SCALE_KINDS)}")
    X_raw, y_raw, names = read_source(src, base_dir)
    n = int(X_raw.shape[0])
    what = src.describe()
    if n == 0:
        raise _err("E0305", f"data set {what} has no rows", src.span)
    if X_raw.shape[1] == 0:
        raise _err("E0305", f"data set {what} has no feature columns", src.span)
    classes, y = _classes(y_raw)
    if len(classes) < 2:
        raise _err("E0305", f"data set {what} has fewer than 2 classes: every label is '{classes[0]}'",
                   src.span, "help: check the label column (label -1 is the last column)")
    train_all, val, test = _split(n, pre)
    train = _subset(train_all, pre)
    scaler = Scaler.fit(pre.scale, X_raw[train_all])
    X_raw = np.ascontiguousarray(X_raw, dtype=np.float64)
    return Dataset(
        X_raw=_frozen(X_raw),
        y=_frozen(y),
        classes=_frozen(np.asarray(classes)),
        feature_names=tuple(names),
        scaler=scaler,
        train=_frozen(train),
        validation=_frozen(val),
        test=_frozen(test),
        train_all=_frozen(train_all),
        source=what,
    )
