"""Inputs refused where they enter, before any solve: magnitudes no solver handles (E0133), input regions with no
point (E0410), verify questions whose sizes do not fit (found by ``nnmip check``), data errors at the data file's
own row and column, and memory estimates before allocation (E0430)."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
from test_bad_input import PROG, base_files

import nnmip
from nnmip.cli import main
from nnmip.errors import NnmipError


def run(tmp: Path, argv: list[str], files: dict[str, str]) -> tuple[int, str]:
    for name, data in base_files().items():
        (tmp / name).write_bytes(data)
    for name, text in files.items():
        (tmp / name).write_text(text)
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(argv)
    finally:
        os.chdir(cwd)
    return rc, err.getvalue()


VERIFY = 'verify m {{\n    model = npz("w.npz")\n    {}\n}}\n'


@pytest.mark.parametrize(("body", "code", "line"), [
    ("input x in linf(0.1, around=[0.5, 0.5])\n    property = output_box(lo=[0, 0, 0])", "E0412", 4),
    ("input x in linf(0.1, around=[0.5, 0.5])\n    property = maximize([1, 0, 0])", "E0412", 4),
    ("input x in linf(0.1, around=[0.5, 0.5])\n    property = classified(5)", "E0414", 4),
    ("input x in halfspaces(A=[[1, 0], [-1, 0]], b=[-1, -1])\n    property = classified(0)", "E0410", 3),
    ("input x in halfspaces(A=[[1, 0]], b=[1e12])\n    property = classified(0)", "E0133", 3),
])
def test_check_finds_what_verify_would_refuse(tmp_path: Path, body: str, code: str, line: int) -> None:
    rc, text = run(tmp_path, ["check", "v.nnmip"], {"v.nnmip": VERIFY.format(body)})
    assert rc == 2, text
    assert text.startswith(f"v.nnmip:{line}:"), text
    assert f"error[{code}]" in text
    rc, _ = run(tmp_path, ["check", "v.nnmip", "--no-data"], {"v.nnmip": VERIFY.format(body)})
    assert rc == 0   # --no-data reads no model: its sizes are unknown


def test_an_empty_halfspace_region_is_refused_before_any_solve() -> None:
    from test_bad_input import fixed_net

    with pytest.raises(NnmipError) as info:
        nnmip.verify(fixed_net(), nnmip.halfspaces([[1.0, 1.0], [-1.0, -1.0]], [0.5, -1.0]),  # type: ignore[arg-type]
                     nnmip.classified(0))
    assert info.value.diagnostics[0].code == "E0410"
    # a region that holds a point is still verified
    res = nnmip.verify(fixed_net(), nnmip.halfspaces([[1.0, 1.0]], [0.5]), nnmip.classified(0),  # type: ignore[arg-type]
                       time_limit=20)
    assert res.result in ("certified", "counterexample")


@pytest.mark.parametrize(("old", "new", "what"), [
    ("weights=real[-1, 1], bias=real[-1, 1])\n    a", "weights=real[-1e300, 1e300], bias=real[-1, 1])\n    a",
     "weights domain"),
    ("loss = hamming", "loss = hamming\n    eps = 1e308", "'eps'"),
    ("loss = hamming", "loss = hamming\n    l1 = 1e10", "'l1'"),
    ("network n(x: 2)", "network n(x: 2 real[-1e12, 1])", "domain of input"),
])
def test_magnitudes_beyond_the_limit_are_located_input_errors(tmp_path: Path, old: str, new: str, what: str) -> None:
    assert old in PROG
    rc, text = run(tmp_path, ["check", "bad.nnmip", "--no-data"], {"bad.nnmip": PROG.replace(old, new)})
    assert rc == 2, text
    first = text.splitlines()[0]
    assert first.startswith("bad.nnmip:"), text
    assert "error[E0133]" in first, text
    assert what in first, text
    assert "help:" in text


def test_time_limits_and_seeds_have_no_magnitude_limit(tmp_path: Path) -> None:
    rc, text = run(tmp_path, ["check", "bad.nnmip", "--no-data"],
                   {"bad.nnmip": PROG.replace("time_limit=5", "time_limit=1e12")})
    assert rc == 0, text


def test_python_training_refuses_magnitudes() -> None:
    from test_api_audit import X, Y, _bnn

    with pytest.raises(NnmipError) as info:
        nnmip.train_network(_bnn(), X, Y, 2, eps=1e300)
    assert info.value.diagnostics[0].code == "E0133"
    assert "'eps'" in str(info.value)


@pytest.mark.parametrize(("data", "where", "code"), [
    ("0.1,0.2,0\n0.9,abc,1\n", "train.csv:2:2", "E0302"),
    ("0.1,0.2,0\n\n0.9,nan,1\n", "train.csv:3:2", "E0303"),
    ("0.1,0.2,0\n0.9,0.8\n", "train.csv:2:1", "E0310"),
    ("0.1,0.2,0\n0.9,0.8,\n", "train.csv:2:3", "E0303"),
    ("0.1,0.2,0\n0.9,0.8,1\xff\n", "train.csv:2:", "E0302"),
])
def test_data_errors_are_located_in_the_data_file(tmp_path: Path, data: str, where: str, code: str) -> None:
    for argv in (["check", "prog.nnmip"], ["solve", "prog.nnmip", "-q", "--time-limit", "5"]):
        (tmp_path / "train.csv").write_bytes(data.encode("latin-1"))   # '\xff' is one byte that is not UTF-8
        rc, text = _run_keep(tmp_path, argv)
        assert rc == 2, text
        assert text.startswith(where), text
        assert f"error[{code}]" in text
        assert "note: the file is read for prog.nnmip:1:" in text


def _run_keep(tmp: Path, argv: list[str]) -> tuple[int, str]:
    """Run without rewriting train.csv (it holds a byte that is not UTF-8)."""
    keep = (tmp / "train.csv").read_bytes()
    for name, data in base_files().items():
        if name != "train.csv":
            (tmp / name).write_bytes(data)
    (tmp / "train.csv").write_bytes(keep)
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(argv)
    finally:
        os.chdir(cwd)
    return rc, err.getvalue()


def test_memory_estimates_refuse_before_allocating(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNMIP_MEMORY_LIMIT", "1M")
    nb = nnmip.NetworkBuilder("n")
    x = nb.input("x", 100_000)
    with pytest.raises(NnmipError) as info:
        nb.dense("h", x, 100_000, weights=nnmip.real(-1, 1))
    assert info.value.diagnostics[0].code == "E0430"
    assert "GiB" in str(info.value)

    nb = nnmip.NetworkBuilder("n")
    x = nb.input("x", 20)
    a = nb.step("a", nb.dense("h", x, 50, weights=nnmip.real(-1, 1), bias=nnmip.real(-1, 1)))
    nb.step("y", nb.dense("o", a, 2, weights=nnmip.real(-1, 1)))
    rng = np.random.default_rng(0)
    with pytest.raises(NnmipError) as info:
        nnmip.train_network(nb.build(), rng.random((1000, 20)), rng.integers(0, 2, 1000), 2)
    assert info.value.diagnostics[0].code == "E0430"
    assert "training model of 1000 rows" in str(info.value)

    onnx_file = tmp_path / "big.onnx"
    onnx_file.write_bytes(b"\x08" * 400_000)   # 1.2 MB to parse: over the limit before it is read
    with pytest.raises(NnmipError) as info:
        nnmip.import_onnx(onnx_file)
    assert info.value.diagnostics[0].code == "E0430"
    assert info.value.diagnostics[0].span.file == str(onnx_file)
