"""Tests of the data layer (nnmip.io.data): reading, splitting, subsetting, scaling and every data error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nnmip.errors import DataError, Diagnostic, Span
from nnmip.io.data import (
    Dataset,
    DataSource,
    Preprocess,
    Scaler,
    load_dataset,
    read_source,
)

ROOT = Path(__file__).resolve().parents[1]
BCW = "examples/data/breast-cancer-wisconsin.csv"
BCW_SRC = DataSource("csv", BCW, delimiter=";")
SPAN = Span(3, 1, 3, 40, "model.nnmip")
SPLIT = Preprocess(train=0.7, validation=0.15, test=0.15, seed=1)


def load_bcw(pre: Preprocess = SPLIT) -> Dataset:
    return load_dataset(BCW_SRC, pre, base_dir=ROOT)


def write(tmp_path: Path, text: str, name: str = "d.csv") -> DataSource:
    (tmp_path / name).write_text(text)
    return DataSource("csv", name, span=SPAN)


def diag(exc: pytest.ExceptionInfo[DataError]) -> Diagnostic:
    assert len(exc.value.diagnostics) == 1
    return exc.value.diagnostics[0]


DEFAULT = Preprocess()


def expect(code: str, src: DataSource, pre: Preprocess = DEFAULT, base: Path | str = ".") -> Diagnostic:
    with pytest.raises(DataError) as exc:
        load_dataset(src, pre, base_dir=base)
    d = diag(exc)
    assert d.code == code, d
    assert str(exc.value) == d.message
    assert d.message == d.message.strip()
    assert not d.message.endswith(".")
    assert code in exc.value.render()
    return d


# ----------------------------------------------------------------------------------------------------------
# The real data set
# ----------------------------------------------------------------------------------------------------------


def test_bcw_loads_all_rows_and_classes() -> None:
    ds = load_bcw(Preprocess())
    assert ds.X_raw.shape == (699, 9)
    assert ds.X_raw.dtype == np.float64
    assert ds.y.shape == (699,)
    assert ds.y.dtype == np.int64
    assert ds.classes.tolist() == [0, 1]
    assert np.bincount(ds.y).tolist() == [458, 241]
    assert ds.n_classes == 2
    assert ds.n_features == 9
    assert ds.feature_names == tuple(f"x{j}" for j in range(9))
    assert ds.source == f"csv:{BCW}"
    # The whole file is the train split by default; nothing held out.
    assert ds.train.tolist() == list(range(699))
    assert ds.train_all.tolist() == list(range(699))
    assert ds.validation.size == 0
    assert ds.test.size == 0
    # The first line of the file is 5;1;1;1;2;1;3;1;1;0.
    assert ds.X_raw[0].tolist() == [5, 1, 1, 1, 2, 1, 3, 1, 1]
    assert ds.y[0] == 0


def test_bcw_splits_are_disjoint_cover_and_sized() -> None:
    ds = load_bcw()
    parts = [ds.train_all, ds.validation, ds.test]
    assert [len(p) for p in parts] == [489, 105, 105]  # round(489.3), round(104.85), rest
    for p in parts:
        assert p.dtype == np.int64
        assert np.all(np.diff(p) > 0)  # sorted ascending, no repeats
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(699))
    assert np.array_equal(ds.train, ds.train_all)


def test_split_is_deterministic_per_seed() -> None:
    a, b = load_bcw(), load_bcw()
    c = load_bcw(Preprocess(train=0.7, validation=0.15, test=0.15, seed=2))
    for name in ("train", "validation", "test"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.train, c.train)
    assert not np.array_equal(a.test, c.test)
    # The documented recipe: a seeded permutation, counts by rounding.
    perm = np.random.default_rng(1).permutation(699)
    assert np.array_equal(a.train, np.sort(perm[:489]))
    assert np.array_equal(a.validation, np.sort(perm[489:594]))
    assert np.array_equal(a.test, np.sort(perm[594:]))


def test_minmax_fitted_on_train_rows_only() -> None:
    ds = load_bcw()
    Xtr = ds.X(ds.train_all)
    assert Xtr.min() >= 0.0
    assert Xtr.max() <= 1.0
    raw = ds.X_raw[ds.train_all]
    # Hand computation, column by column, over the train rows only.
    for j in range(9):
        col = [float(raw[i, j]) for i in range(len(raw))]
        lo, hi = min(col), max(col)
        assert ds.scaler.offset[j] == lo
        assert ds.scaler.scale[j] == (hi - lo if hi > lo else 1.0)
        r = int(ds.test[0])
        assert ds.X([r])[0, j] == pytest.approx((ds.X_raw[r, j] - lo) / (hi - lo))
    assert ds.scaler.kind == "minmax"


def test_minmax_ignores_held_out_rows(tmp_path: Path) -> None:
    # Feature values 0..9 in a column; with half the rows held out, the scaler must only see train rows.
    src = write(tmp_path, "".join(f"{v},{100 - v},7,{v % 2}\n" for v in range(10)))
    ds = load_dataset(src, Preprocess(train=0.5, test=0.5, seed=3), base_dir=tmp_path)
    train_vals = sorted(int(v) for v in ds.X_raw[ds.train_all, 0])
    assert len(train_vals) == 5
    lo, hi = train_vals[0], train_vals[-1]
    assert ds.scaler.offset.tolist() == [lo, 100 - hi, 7]
    assert ds.scaler.scale.tolist() == [hi - lo, hi - lo, 1.0]  # constant column -> scale 1
    all_scaled = ds.X()
    assert all_scaled[:, 2].tolist() == [0.0] * 10
    if (lo, hi) != (0, 9):  # a held-out row beyond the train range scales outside [0, 1]
        assert all_scaled[:, 0].min() < 0 or all_scaled[:, 0].max() > 1
    assert ds.X(ds.train_all)[:, 0].min() == 0.0
    assert ds.X(ds.train_all)[:, 0].max() == 1.0


def test_minmax_by_hand(tmp_path: Path) -> None:
    src = write(tmp_path, "2,10,a\n4,10,b\n6,10,a\n")
    ds = load_dataset(src, Preprocess(), base_dir=tmp_path)
    assert ds.X().tolist() == [[0.0, 0.0], [0.5, 0.0], [1.0, 0.0]]
    assert ds.classes.tolist() == ["a", "b"]
    assert ds.y.tolist() == [0, 1, 0]


def test_standard_and_none_scaling(tmp_path: Path) -> None:
    src = write(tmp_path, "1,5,0\n2,5,1\n3,5,0\n6,5,1\n")
    std = load_dataset(src, Preprocess(scale="standard"), base_dir=tmp_path)
    assert std.scaler.offset.tolist() == [3.0, 5.0]
    assert std.scaler.scale[0] == pytest.approx(np.sqrt((4 + 1 + 0 + 9) / 4))
    assert std.scaler.scale[1] == 1.0
    assert std.X()[:, 0].mean() == pytest.approx(0.0)
    assert std.X()[:, 0].std() == pytest.approx(1.0)
    none = load_dataset(src, Preprocess(scale="none"), base_dir=tmp_path)
    assert np.array_equal(none.X(), none.X_raw)


def test_scaler_dict_round_trip() -> None:
    s = load_bcw().scaler
    t = Scaler.from_dict(s.to_dict())
    assert t.kind == s.kind
    assert np.array_equal(t.offset, s.offset)
    assert np.array_equal(t.scale, s.scale)
    x = np.arange(9.0)[None, :]
    assert np.array_equal(t.transform(x), (x - s.offset) / s.scale)


def test_dataset_arrays_are_read_only() -> None:
    ds = load_bcw()
    with pytest.raises(ValueError, match="read-only"):
        ds.X_raw[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        ds.train[0] = 1


# ----------------------------------------------------------------------------------------------------------
# Subsets
# ----------------------------------------------------------------------------------------------------------


def test_subset_first() -> None:
    ds = load_bcw(Preprocess(train=0.7, validation=0.15, test=0.15, seed=1, subset=("first", 50, 0)))
    assert np.array_equal(ds.train, ds.train_all[:50])
    assert len(ds.train_all) == 489
    # The scaler still sees the whole train split.
    assert np.array_equal(ds.scaler.offset, load_bcw().scaler.offset)


def test_subset_random() -> None:
    def pick(seed: int) -> Dataset:
        pre = Preprocess(train=0.7, validation=0.15, test=0.15, seed=1, subset=("random", 40, seed))
        return load_bcw(pre)

    a, b, c = pick(5), pick(5), pick(6)
    assert len(a.train) == 40
    assert np.all(np.diff(a.train) > 0)
    assert np.isin(a.train, a.train_all).all()
    assert np.array_equal(a.train, b.train)
    assert not np.array_equal(a.train, c.train)
    want = np.sort(np.random.default_rng(5).choice(a.train_all, size=40, replace=False))
    assert np.array_equal(a.train, want)


def test_subset_whole_split_is_allowed() -> None:
    ds = load_bcw(Preprocess(subset=("random", 699, 0)))
    assert np.array_equal(ds.train, np.arange(699))


# ----------------------------------------------------------------------------------------------------------
# Other sources and CSV variants
# ----------------------------------------------------------------------------------------------------------


def test_sklearn_iris() -> None:
    ds = load_dataset(DataSource("sklearn", name="iris"), Preprocess())
    assert ds.X_raw.shape == (150, 4)
    assert ds.n_classes == 3
    assert ds.classes.tolist() == [0, 1, 2]
    assert np.bincount(ds.y).tolist() == [50, 50, 50]
    assert ds.feature_names[0] == "sepal length (cm)"
    assert ds.source == "sklearn:iris"


def test_npz_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 3))
    y = np.array(["spam", "ham", "eggs"] * 4)
    np.savez(tmp_path / "d.npz", features=X, target=y)
    src = DataSource("npz", "d.npz", x_key="features", y_key="target")
    ds = load_dataset(src, Preprocess(scale="none", train=0.5, test=0.5), base_dir=tmp_path)
    assert np.array_equal(ds.X_raw, X)
    assert ds.classes.tolist() == ["eggs", "ham", "spam"]
    assert np.array_equal(ds.classes[ds.y], y)
    assert ds.feature_names == ("x0", "x1", "x2")
    assert ds.source == "npz:d.npz"
    Xr, yr, names = read_source(src, tmp_path)
    assert np.array_equal(Xr, X)
    assert np.array_equal(yr, y)
    assert names == ("x0", "x1", "x2")


def test_csv_header_string_labels_and_label_column(tmp_path: Path) -> None:
    src = write(tmp_path, "kind,width,height\ncat,1.5,2\ndog,3,4\ncat,5,6e0\n")
    src = DataSource("csv", src.path, header=True, label=0)
    ds = load_dataset(src, Preprocess(scale="none"), base_dir=tmp_path)
    assert ds.feature_names == ("width", "height")
    assert ds.X_raw.tolist() == [[1.5, 2.0], [3.0, 4.0], [5.0, 6.0]]
    assert ds.classes.tolist() == ["cat", "dog"]
    assert ds.y.tolist() == [0, 1, 0]


def test_csv_numeric_labels_sort_numerically(tmp_path: Path) -> None:
    src = write(tmp_path, "1,10\n2,9\n3,10\n4,-1\n")
    ds = load_dataset(DataSource("csv", src.path, label=-1), Preprocess(), base_dir=tmp_path)
    assert ds.classes.tolist() == [-1, 9, 10]
    assert ds.y.tolist() == [2, 1, 2, 0]


def test_csv_blank_lines_whitespace_delimiter_and_absolute_path(tmp_path: Path) -> None:
    (tmp_path / "w.txt").write_text("\n1  2\t0\n\n3 4 1\n")
    src = DataSource("csv", str(tmp_path / "w.txt"), delimiter=" ")
    ds = load_dataset(src, Preprocess(scale="none"), base_dir="/nonexistent")
    assert ds.X_raw.tolist() == [[1.0, 2.0], [3.0, 4.0]]


# ----------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------


def test_e0301_file_not_found(tmp_path: Path) -> None:
    d = expect("E0301", DataSource("csv", "nope/missing.csv", span=SPAN), base=tmp_path)
    assert str((tmp_path / "nope" / "missing.csv").resolve()) in d.message
    assert d.message.startswith("data file not found: ")
    assert d.span == SPAN
    assert any(n.startswith("help: ") for n in d.notes)


def test_e0302_non_numeric_value_counts_header_line(tmp_path: Path) -> None:
    src = write(tmp_path, "a,b,c,label\n1,2,3,0\n4,five,6,1\n7,8,x,0\n")
    d = expect("E0302", DataSource("csv", src.path, header=True, span=SPAN), base=tmp_path)
    assert d.message == "row 3, column 2 of 'd.csv' is not a number: 'five'"
    # located in the data file itself (file:row:column), with a note naming the statement that reads it
    assert (d.span.line, d.span.column, Path(d.span.file).name) == (3, 2, "d.csv")
    assert d.notes[0] == f"note: the file is read for {SPAN}"
    assert d.notes[-1].startswith("help: ")


def test_e0302_without_header_and_label_first(tmp_path: Path) -> None:
    src = write(tmp_path, "0,1,2\n1,3,4\n0,5,6x\n")
    d = expect("E0302", DataSource("csv", src.path, label=0), base=tmp_path)
    assert d.message == "row 3, column 3 of 'd.csv' is not a number: '6x'"


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("?", "row 2, column 2 of 'd.csv' is missing: '?'"),
        ("", "row 2, column 2 of 'd.csv' is missing"),
        ("nan", "row 2, column 2 of 'd.csv' is not finite: 'nan'"),
        ("inf", "row 2, column 2 of 'd.csv' is not finite: 'inf'"),
        ("-Infinity", "row 2, column 2 of 'd.csv' is not finite: '-Infinity'"),
    ],
)
def test_e0303_missing_nan_and_infinite(tmp_path: Path, cell: str, message: str) -> None:
    src = write(tmp_path, f"1,2,0\n3,{cell},1\n5,6,0\n")
    d = expect("E0303", src, base=tmp_path)
    assert d.message == message


def test_e0303_first_bad_cell_in_file_order(tmp_path: Path) -> None:
    # A missing value before a non-number is reported first (row-major order).
    src = write(tmp_path, "1,2,0\n3,?,1\nx,6,0\n")
    assert expect("E0303", src, base=tmp_path).message == "row 2, column 2 of 'd.csv' is missing: '?'"


def test_e0303_missing_label(tmp_path: Path) -> None:
    src = write(tmp_path, "1,2,0\n3,4,\n")
    assert expect("E0303", src, base=tmp_path).message == "row 2, column 3 of 'd.csv' is missing"


def test_e0303_npz_infinite(tmp_path: Path) -> None:
    X = np.ones((3, 2))
    X[1, 1] = np.inf
    np.savez(tmp_path / "d.npz", X=X, y=np.array([0, 1, 0]))
    d = expect("E0303", DataSource("npz", "d.npz"), base=tmp_path)
    assert d.message == "row 2, column 2 of 'd.npz' is not finite: 'inf'"


def test_e0304_label_out_of_range(tmp_path: Path) -> None:
    src = write(tmp_path, ",".join(str(v) for v in range(10)) + "\n" + ",".join("1" * 10) + "\n")
    d = expect("E0304", DataSource("csv", src.path, label=12, span=SPAN), base=tmp_path)
    assert d.message == "label column 12 is out of range: the file has 10 columns"
    assert d.span == SPAN
    assert d.notes
    assert d.notes[0].startswith("help: ")
    d = expect("E0304", DataSource("csv", src.path, label=-11), base=tmp_path)
    assert d.message == "label column -11 is out of range: the file has 10 columns"


def test_e0305_empty_and_single_class(tmp_path: Path) -> None:
    assert expect("E0305", write(tmp_path, "\n\n"), base=tmp_path).message == "'d.csv' holds no data rows"
    header_only = DataSource("csv", write(tmp_path, "a,b\n").path, header=True)
    assert expect("E0305", header_only, base=tmp_path).message == "'d.csv' holds no data rows"
    d = expect("E0305", write(tmp_path, "1,2,7\n3,4,7\n"), base=tmp_path)
    assert d.message == "data set csv:d.csv has fewer than 2 classes: every label is '7'"


def test_e0305_bcw_with_wrong_delimiter() -> None:
    # With ',' every BCW line is one column: no feature columns.
    d = expect("E0305", DataSource("csv", BCW), base=ROOT)
    assert "no feature columns" in d.message
    assert any("delimiter" in n for n in d.notes)


@pytest.mark.parametrize(
    ("pre", "message"),
    [
        (Preprocess(train=0.7, validation=0.2, test=0.0, span=SPAN),
         "split fractions must sum to 1, got 0.9 (train 0.7, validation 0.2, test 0)"),
        (Preprocess(train=1.2, validation=-0.2, span=SPAN),
         "split fraction validation must be between 0 and 1, got -0.2"),
        (Preprocess(train=0.0, test=1.0, span=SPAN),
         "the train split of 699 rows is empty (train 0, validation 0, test 1)"),
    ],
)
def test_e0306_bad_split(pre: Preprocess, message: str) -> None:
    with pytest.raises(DataError) as exc:
        load_bcw(pre)
    d = diag(exc)
    assert (d.code, d.message, d.span) == ("E0306", message, SPAN)


def test_e0306_tolerates_rounding_error() -> None:
    ds = load_bcw(Preprocess(train=0.1 + 0.2, validation=0.3, test=0.4))  # 0.30000000000000004
    assert len(ds.train) + len(ds.validation) + len(ds.test) == 699


def test_e0307_subset_larger_than_train_split() -> None:
    pre = Preprocess(train=0.7, validation=0.15, test=0.15, seed=1, subset=("random", 490, 0), span=SPAN)
    with pytest.raises(DataError) as exc:
        load_bcw(pre)
    d = diag(exc)
    assert d.code == "E0307"
    assert d.span == SPAN
    assert d.message == "subset of 490 rows is larger than the train split (489 rows)"
    assert d.notes == ("help: take at most 489 rows or raise the train fraction",)


def test_e0308_unknown_sklearn_dataset() -> None:
    d = expect("E0308", DataSource("sklearn", name="mnist", span=SPAN))
    assert d.message == "unknown sklearn dataset 'mnist'"
    assert d.notes == ("help: choose one of iris, breast_cancer, wine, digits",)


def test_e0309_npz_problems(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", X=np.ones((3, 2)), labels=np.array([0, 1, 0]))
    d = expect("E0309", DataSource("npz", "a.npz"), base=tmp_path)
    assert d.message == "'a.npz' has no array 'y'"
    assert "'X', 'labels'" in d.notes[0]
    np.savez(tmp_path / "b.npz", X=np.ones(3), y=np.array([0, 1, 0]))
    d = expect("E0309", DataSource("npz", "b.npz"), base=tmp_path)
    assert d.message == "array 'X' of 'b.npz' must be 2-D (rows x features), got shape (3,)"
    np.savez(tmp_path / "c.npz", X=np.ones((3, 2)), y=np.array([0, 1]))
    d = expect("E0309", DataSource("npz", "c.npz"), base=tmp_path)
    assert d.message == "array 'y' of 'c.npz' must be 1-D with one label per row of 'X' (3), got shape (2,)"
    (tmp_path / "e.npz").write_text("not a zip file")
    d = expect("E0309", DataSource("npz", "e.npz"), base=tmp_path)
    assert d.message == "'e.npz' cannot be read as an npz file"


def test_e0310_ragged_rows(tmp_path: Path) -> None:
    src = write(tmp_path, "1,2,0\n3,4,1\n\n5,6,7,0\n")
    d = expect("E0310", src, base=tmp_path)
    assert d.message == "row 4 of 'd.csv' has 4 columns but row 1 has 3"
    assert (d.span.line, d.span.column, Path(d.span.file).name) == (4, 1, "d.csv")
    hdr = DataSource("csv", write(tmp_path, "a,b,y\n1,2\n").path, header=True)
    d = expect("E0310", hdr, base=tmp_path)
    assert d.message == "row 2 of 'd.csv' has 2 columns but the header has 3"


# ---------------------------------------------------------------------------------------------------------
# read_points: the one reader of point files (predict, verify --points, verification statements)
# ---------------------------------------------------------------------------------------------------------
def test_point_readers_are_one_reader(tmp_path) -> None:
    from nnmip.cli.predict import read_features
    from nnmip.drivers.verify import load_points
    from nnmip.io.data import read_points

    csv = tmp_path / "p.csv"
    csv.write_text("0.5,0.25,1\n0.75,1.5,0\n")
    X, y = read_points(csv, label=-1, integer_labels=True)
    np.testing.assert_array_equal(X, [[0.5, 0.25], [0.75, 1.5]])
    np.testing.assert_array_equal(y, [1, 0])
    for other in (read_features(str(csv), label=-1), load_points(csv)):
        np.testing.assert_array_equal(other[0], X)
        np.testing.assert_array_equal(other[1], y)
    semi = tmp_path / "p.txt"
    semi.write_text("0.5;0.25\n0.75;1.5\n")
    np.testing.assert_array_equal(load_points(semi, label_column=None)[0], X)    # delimiter guessed
    bad = tmp_path / "bad.csv"
    bad.write_text("0.5,0.25,1\n0.75,oops,0\n")
    for call in (lambda: read_features(str(bad), label=-1), lambda: load_points(bad)):
        with pytest.raises(DataError, match="row 2, column 2 of .* is not a number: 'oops'") as e:
            call()
        assert e.value.diagnostics[0].code == "E0302"
    with pytest.raises(DataError) as e:
        read_points(csv, label=7)
    assert e.value.diagnostics[0].code == "E0304"
    frac = tmp_path / "frac.csv"
    frac.write_text("0.5,0.5\n0.5,0.25\n")
    with pytest.raises(DataError) as e:
        load_points(frac)
    assert e.value.diagnostics[0].code == "E0304"
    one = tmp_path / "one.npy"
    np.save(one, np.array([0.1, 0.2]))
    assert read_points(one)[0].shape == (1, 2)
    npz = tmp_path / "w.npz"
    np.savez(npz, Z=np.zeros((2, 2)))
    with pytest.raises(DataError) as e:
        read_points(npz)
    assert e.value.diagnostics[0].code == "E0309"
    with pytest.raises(DataError) as e:
        read_points(tmp_path / "missing.csv")
    assert e.value.diagnostics[0].code == "E0301"


def test_one_feature_count_check() -> None:
    from nnmip.drivers.train import train_network
    from nnmip.formulations.training import build_training_model
    from nnmip.ir.builder import NetworkBuilder, real

    nb = NetworkBuilder("n")
    nb.step("y", nb.dense("h", nb.input("x", 3), 1, weights=real(-1, 1), bias=real(-1, 1)))
    net = nb.build()
    X, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    for call in (lambda: build_training_model(net, X, y, 2), lambda: train_network(net, X, y, 2),
                 lambda: net.check_features(X.shape)):
        with pytest.raises(DataError, match="have 2 features but network 'n' takes 3 inputs") as e:
            call()
        assert e.value.diagnostics[0].code == "E0122"
    net.check_features((4, 3))
