"""Generated bad input (hypothesis, derandomized so that every run tries the same cases): mutated ``.nnmip``
files, random bytes as data, VNN-LIB and ONNX files, random option values.  Each example runs in-process through
``nnmip.cli.main`` in a fresh folder and must give a documented exit code, a coded error (located for language
and data errors), no traceback and no change to any file but the run's own outputs.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bad_input import CODE, DOCUMENTED_EXIT, PROG, TRAIN, VNNLIB, base_files, snapshot

from nnmip.cli import main

SETTINGS = settings(derandomize=True, max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def run(argv: list[str], files: dict[str, bytes], outputs: tuple[str, ...] = ()) -> tuple[int, str]:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        for name, data in {**base_files(), **files}.items():
            (root / name).write_bytes(data)
        before = snapshot(root)
        out, err = io.StringIO(), io.StringIO()
        cwd = os.getcwd()
        os.chdir(root)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = main(argv)
        finally:
            os.chdir(cwd)
        after = snapshot(root)
    text = err.getvalue()
    assert "Traceback" not in text, text
    assert "E0900" not in text, text
    assert rc in DOCUMENTED_EXIT, (rc, text)
    if rc in (2, 3):
        assert CODE.search(text) or "usage:" in text, text
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert changed <= set(outputs), sorted(changed)
    return rc, text


def mutate(text: str, edits: list[tuple[int, int, str]]) -> str:
    for pos, length, insert in edits:
        p = pos % (len(text) + 1)
        text = text[:p] + insert + text[p + length:]
    return text


EDITS = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 6),
                           st.sampled_from(["", "(", ")", "[", "]", "{", "}", ",", "=", "-", "1e999", "nan", "0",
                                            "-1", '"', "x", "dense", "step", "\n", "#", "99999999999", "\u00e9",
                                            "real[", "int[1, 0]", "load(", "csv(", ";"])),
                 min_size=1, max_size=4)


@SETTINGS
@given(EDITS)
def test_mutated_program(edits: list[tuple[int, int, str]]) -> None:
    src = mutate(PROG, edits)
    rc, text = run(["check", "bad.nnmip"], {"bad.nnmip": src.encode()})
    if rc == 2 and "error[E0" in text and "usage:" not in text:
        first = text.splitlines()[0]
        assert first.startswith("bad.nnmip") or first.startswith("error[E0") or "train.csv" in first, text


CELLS = st.sampled_from(["0.1", "1", "-2", "abc", "", "nan", "inf", "1e400", "\"x\"", "0x10", "1,5", " ", "é"])


@SETTINGS
@given(st.lists(st.lists(CELLS, min_size=1, max_size=5), min_size=0, max_size=6),
       st.sampled_from(["solve", "predict", "points"]))
def test_generated_csv(rows: list[list[str]], entry: str) -> None:
    data = "\n".join(",".join(r) for r in rows).encode()
    if entry == "solve":
        rc, text = run(["solve", "bad.nnmip", "-q", "--time-limit", "5"],
                       {"bad.nnmip": PROG.replace("train.csv", "bad.csv").encode(), "bad.csv": data})
    elif entry == "predict":
        rc, text = run(["predict", "w.npz", "bad.csv", "--label", "-1"], {"bad.csv": data})
    else:
        rc, text = run(["verify", "--npz", "w.npz", "--points", "bad.csv", "--linf", "0.01", "-q"],
                       {"bad.csv": data})
    if rc == 2:
        assert "bad.csv" in text, text


@SETTINGS
@given(st.binary(max_size=400), st.sampled_from(["csv", "npy", "npz", "onnx", "vnnlib", "weights"]))
def test_random_bytes(data: bytes, kind: str) -> None:
    if kind == "csv":
        run(["solve", "bad.nnmip", "-q", "--time-limit", "5"],
            {"bad.nnmip": PROG.replace("train.csv", "bad.csv").encode(), "bad.csv": data})
    elif kind in ("npy", "npz"):
        run(["verify", "--npz", "w.npz", "--points", f"bad.{kind}", "--linf", "0.01", "-q"], {f"bad.{kind}": data})
    elif kind == "onnx":
        run(["verify", "--onnx", "bad.onnx", "--point", "0.5,0.5", "--linf", "0.1", "-q"], {"bad.onnx": data})
    elif kind == "vnnlib":
        run(["verify", "--npz", "w.npz", "--vnnlib", "bad.vnnlib", "-q"], {"bad.vnnlib": data})
    else:
        run(["predict", "bad.npz", "pts.csv", "--label", "-1"], {"bad.npz": data})


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 4),
                          st.sampled_from(["", "(", ")", "(and ", "(or ", "X_9", "Y_7", "nan", "1e999", "-",
                                           "assert", "declare-const", ";", "\n", "Int"])), min_size=1, max_size=4))
def test_mutated_vnnlib(edits: list[tuple[int, int, str]]) -> None:
    run(["verify", "--npz", "w.npz", "--vnnlib", "bad.vnnlib", "-q", "--counterexample", "cex.txt"],
        {"bad.vnnlib": mutate(VNNLIB, edits).encode()}, outputs=("cex.txt",))


FLOATS = st.sampled_from(["-1", "0", "nan", "inf", "-inf", "1e308", "abc", "", "0.5", "1e-300"])


@SETTINGS
@given(st.sampled_from(["--time-limit", "--gap", "--threads", "--linf", "--l1", "--threshold", "--label",
                        "--label-column", "--point", "--maximize"]), FLOATS)
def test_generated_verify_flags(option: str, value: str) -> None:
    argv = ["verify", "--npz", "w.npz", "--point", "0.3,0.6", "--linf", "0.05", "-q"]
    if option in ("--point", "--linf"):
        i = argv.index(option)
        argv[i + 1] = value
    else:
        argv += [option, value]
    run(argv, {}, outputs=())


@SETTINGS
@given(st.sampled_from(["--time-limit", "--gap", "--threads"]), FLOATS,
       st.sampled_from(["--json", "--save-weights", "--save-onnx"]),
       st.sampled_from(["prog.nnmip", "train.csv", "", ".", "no/x", "out.bin", "w.npz"]))
def test_generated_solve_flags(option: str, value: str, out_opt: str, out: str) -> None:
    # w.npz is not read by this run: overwriting it is what the user asked for
    rc, text = run(["solve", "prog.nnmip", "-q", option, value, out_opt, out], {}, outputs=("out.bin", "w.npz"))
    if out in ("prog.nnmip", "train.csv", ".", "no/x", ""):
        assert rc == 2, text


def test_data_rows_in_the_train_file_are_untouched() -> None:
    """The base project is what the generators mutate; it is itself valid."""
    rc, text = run(["check", "prog.nnmip"], {})
    assert rc == 0, text
    assert TRAIN.count("\n") == 6
