"""A second, independent corpus of malformed input, built by mutation operators that the hand-written tables of
``test_bad_input.py`` and the hypothesis edits of ``test_bad_input_generated.py`` do not use: truncation at fixed
fractions, byte flips, inserted Unicode (accents, right-to-left marks, zero-width spaces, NUL, an emoji), byte
order marks, UTF-16/Latin-1 re-encodings, CRLF and CR line endings, empty and blank files, gzip content under a
plain name, a folder or a dangling symlink where a file is expected, option values written in ways people do
(full-width digits, a Unicode minus, ``1_000``, hex, underflow, 400 digits), outputs that cannot be written, and
data of the wrong type handed to the scikit-learn estimator.

Every file of the small valid project in ``test_bad_input.py`` (``prog.nnmip``, ``train.csv``, ``pts.csv``,
``x.npy``, ``w.npz``, ``net.onnx``, ``prop.vnnlib``) goes through every operator and then through every command
that reads it, in-process (``nnmip.cli.main``).  A mutant may still be valid (CRLF endings are fine), so the test
does not fix the exit code; it asserts what must hold for any input:

* no traceback and no internal error (exit 4, ``E0900``); a documented exit code;
* exit 2 carries an error code and a ``help:`` line; an error about the language or a data file (``E00xx`` to
  ``E03xx``, ``E07xx``) is located: ``file:line:col``, or at least the name of the file at the start of the line;
* exit 3 (a solver problem) never comes from a malformed input: the mutants are tiny, so it fails the test;
* no file other than the run's declared outputs is created, changed or removed.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from test_bad_input import CODE, LOCATED, base_files, snapshot

from nnmip.cli import main

# ------------------------------------------------------------------------------------------------------------
# Mutation operators: bytes -> bytes (seeded, so every run tries the same mutants)
# ------------------------------------------------------------------------------------------------------------
Op = Callable[[bytes], bytes]


def _truncate(frac: float) -> Op:
    return lambda b: b[: int(len(b) * frac)]


def _flip(seed: int, count: int) -> Op:
    def op(b: bytes) -> bytes:
        if not b:
            return b
        a = bytearray(b)
        rng = np.random.default_rng(seed)
        for p in rng.integers(0, len(a), size=count):
            a[int(p)] ^= 0xFF
        return bytes(a)
    return op


def _insert(text: str, where: float) -> Op:
    return lambda b: b[: int(len(b) * where)] + text.encode("utf-8") + b[int(len(b) * where):]


def _reencode(enc: str) -> Op:
    def op(b: bytes) -> bytes:
        try:
            return b.decode("utf-8").encode(enc)
        except UnicodeDecodeError:   # binary files: encode their Latin-1 reading
            return b.decode("latin-1").encode(enc)
    return op


OPS: dict[str, Op] = {
    "empty": lambda b: b"",
    "blank": lambda b: b" \n\t\n  \n",
    "cut-1byte": lambda b: b[:1],
    "cut-quarter": _truncate(0.25),
    "cut-half": _truncate(0.5),
    "cut-last-byte": lambda b: b[:-1],
    "flip-1": _flip(1, 1),
    "flip-8": _flip(2, 8),
    "flip-head": lambda b: bytes([b[0] ^ 0xFF]) + b[1:] if b else b,
    "nul-middle": _insert("\x00", 0.5),
    "rtl-mark": _insert("\u202e", 0.3),
    "zero-width": _insert("\u200b", 0.6),
    "accent": _insert("\u00e9", 0.4),
    "emoji": _insert("\U0001f600", 0.7),
    "nbsp": _insert("\u00a0", 0.2),
    "bom-utf8": lambda b: b"\xef\xbb\xbf" + b,
    "bom-utf16": lambda b: b"\xff\xfe" + b,
    "utf16": _reencode("utf-16"),
    "utf32": _reencode("utf-32"),
    "latin1-byte": lambda b: b[: len(b) // 2] + b"\xff" + b[len(b) // 2:],
    "crlf": lambda b: b.replace(b"\n", b"\r\n"),
    "cr-only": lambda b: b.replace(b"\n", b"\r"),
    "no-final-newline": lambda b: b.rstrip(b"\n"),
    "doubled": lambda b: b + b,
    "gzip": lambda b: gzip.compress(b, mtime=0),
    "long-line": lambda b: b + b"#" + b"9" * 200_000 + b"\n",
}
# file kinds whose content is not text: the text operators still apply (they are byte edits)
TEXT_FILES = ("prog.nnmip", "train.csv", "pts.csv", "prop.vnnlib")
BINARY_FILES = ("x.npy", "w.npz", "net.onnx")

# which commands read each file; outputs the command may write
COMMANDS: dict[str, list[tuple[list[str], tuple[str, ...]]]] = {
    "prog.nnmip": [(["check", "prog.nnmip"], ()), (["compile", "prog.nnmip", "-o", "out.lp"], ("out.lp",))],
    "train.csv": [(["check", "prog.nnmip"], ()),
                  (["solve", "prog.nnmip", "-q", "--time-limit", "3", "--json", "r.json"], ("r.json",))],
    "pts.csv": [(["predict", "w.npz", "pts.csv", "--label", "-1"], ()),
                (["verify", "--npz", "w.npz", "--points", "pts.csv", "--linf", "0.01", "-q"], ())],
    "x.npy": [(["verify", "--npz", "w.npz", "--point", "x.npy", "--linf", "0.05", "-q"], ())],
    "w.npz": [(["predict", "w.npz", "pts.csv", "--label", "-1"], ()),
              (["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--linf", "0.05", "-q"], ())],
    "net.onnx": [(["verify", "--onnx", "net.onnx", "--point", "0.5,0.5", "--linf", "0.05", "-q"], ()),
                 (["compress", "--onnx", "net.onnx", "-o", "c.onnx", "--time-limit", "5"], ("c.onnx",))],
    "prop.vnnlib": [(["verify", "--npz", "w.npz", "--vnnlib", "prop.vnnlib", "-q", "--counterexample", "cex.txt"],
                     ("cex.txt",))],
}
# operators that leave these files readable on purpose (a valid mutant is fine; the run just must not break)
INPUT_CODES = re.compile(r"error\[E0[0-3]\d\d\]|error\[E07\d\d\]")


@dataclass
class Mutant:
    id: str
    argv: list[str]
    files: dict[str, bytes] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    target: str = ""                  # the file the mutation is about (named in its errors)
    folder: str | None = None         # replace this file by a folder
    dangling: str | None = None       # replace this file by a dangling symlink
    expect_exit: int | None = None    # when the outcome is known
    option: str = ""                  # the command-line option the mutation is about (named in its errors)


def file_mutants() -> list[Mutant]:
    base = base_files()
    out: list[Mutant] = []
    for name, cmds in COMMANDS.items():
        for op_name, op in OPS.items():
            data = op(base[name])
            for k, (argv, outputs) in enumerate(cmds):
                out.append(Mutant(f"{name}-{op_name}-{argv[0]}{k}", argv, {name: data}, outputs, name))
        for k, (argv, outputs) in enumerate(cmds):
            out.append(Mutant(f"{name}-folder-{argv[0]}{k}", argv, {}, outputs, name, folder=name, expect_exit=2))
            out.append(Mutant(f"{name}-dangling-{argv[0]}{k}", argv, {}, outputs, name, dangling=name,
                              expect_exit=2))
    return out


# Option values as people type them.  Each flag goes into a command that is otherwise valid.
ODD_NUMBERS = ["\uff15", "\u22121", "1_000", "0x10", "1e-400", "9" * 400, " 5", "5 ", "+inf", "-0", "1e309", "5s",
               "1,5", ""]
FLAG_COMMANDS: dict[str, list[str]] = {
    "--time-limit": ["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--linf", "0.05", "-q", "--time-limit"],
    "--gap": ["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--linf", "0.05", "-q", "--gap"],
    "--threads": ["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--linf", "0.05", "-q", "--threads"],
    "--linf": ["verify", "--npz", "w.npz", "--point", "0.5,0.5", "-q", "--linf"],
    "--l1": ["verify", "--npz", "w.npz", "--point", "0.5,0.5", "-q", "--l1"],
    "--label": ["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--linf", "0.05", "-q", "--label"],
    "--threshold": ["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--linf", "0.05", "-q", "--maximize", "1,0",
                    "--threshold"],
    "--workers": ["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--linf", "0.05", "-q", "--workers"],
    "--label-column": ["verify", "--npz", "w.npz", "--points", "pts.csv", "--linf", "0.01", "-q",
                       "--label-column"],
    "predict --label": ["predict", "w.npz", "pts.csv", "--label"],
    "--domain": ["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--linf", "0.05", "-q", "--domain", "0"],
    "--samples": ["compress", "--npz", "w.npz", "-o", "c.npz", "--samples"],
    "--point": ["verify", "--npz", "w.npz", "--linf", "0.05", "-q", "--point"],
    "solve --time-limit": ["solve", "prog.nnmip", "-q", "--time-limit"],
}


def flag_mutants() -> list[Mutant]:
    out = []
    for flag, argv in FLAG_COMMANDS.items():
        for k, v in enumerate(ODD_NUMBERS):
            outputs = ("c.npz",) if "compress" in argv else ()
            out.append(Mutant(f"flag{flag.replace(' ', '_')}-{k}", [*argv, v], {}, outputs, option=argv[-1]))
    return out


def output_mutants() -> list[Mutant]:
    """Outputs that cannot be written: refused before the work, never a traceback, inputs untouched."""
    cmds = [   # (argv, the inputs of the run: an output over any other existing file is the user's choice)
        (["compile", "prog.nnmip", "-o", "{}"], {"prog.nnmip", "train.csv"}),
        (["check", "prog.nnmip", "--json", "{}"], {"prog.nnmip", "train.csv"}),
        (["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--linf", "0.05", "-q", "--json", "{}"], {"w.npz"}),
        (["compress", "--npz", "w.npz", "-o", "{}"], {"w.npz"}),
        (["solve", "prog.nnmip", "-q", "--time-limit", "3", "--save-weights", "{}"], {"prog.nnmip", "train.csv"}),
    ]
    targets = {"dir": "sub", "missing-dir": "nope/out.x", "over-data": "train.csv", "over-points": "pts.csv",
               "dir-slash": "sub/", "empty-name": "", "nul-name": "a\x00b", "dev-full": "/dev/full"}
    out = []
    for k, (argv, inputs) in enumerate(cmds):
        for t, target in targets.items():
            refused = target in inputs or t not in ("over-data", "over-points", "dev-full")
            out.append(Mutant(f"out-{argv[0]}{k}-{t}", [a.replace("{}", target) for a in argv],
                              {"sub/keep.txt": b"x"}, () if refused else (target,),
                              expect_exit=2 if refused else None))
    return out


def language_mutants() -> list[Mutant]:
    """Whole-line edits of the program: each line dropped, doubled, or cut in half (new ways to break a file)."""
    prog = base_files()["prog.nnmip"].decode()
    lines = prog.splitlines(keepends=True)
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        variants = {
            "drop": lines[:i] + lines[i + 1:],
            "double": lines[:i] + [line, line] + lines[i + 1:],
            "halve": lines[:i] + [line[: len(line) // 2] + "\n"] + lines[i + 1:],
            "tab-indent": lines[:i] + ["\t" + line.lstrip()] + lines[i + 1:],
        }
        for v, ls in variants.items():
            out.append(Mutant(f"line{i + 1}-{v}", ["check", "prog.nnmip"], {"prog.nnmip": "".join(ls).encode()},
                              (), "prog.nnmip"))
    return out


MUTANTS = file_mutants() + flag_mutants() + output_mutants() + language_mutants()


def run_mutant(m: Mutant, tmp: Path) -> None:
    for name, data in base_files().items():
        (tmp / name).write_bytes(data)
    for name, data in m.files.items():
        p = tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    if m.folder:
        (tmp / m.folder).unlink()
        (tmp / m.folder).mkdir()
        (tmp / m.folder / "keep.txt").write_text("x")
    if m.dangling:
        (tmp / m.dangling).unlink()
        (tmp / m.dangling).symlink_to(tmp / "no-such-target")
    before = snapshot(tmp)
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(m.argv)
    finally:
        os.chdir(cwd)
    after = snapshot(tmp)
    text = err.getvalue()
    assert "Traceback" not in text, text
    assert "E0900" not in text, f"internal error\n{text}"
    assert rc != 4, f"internal error\n{text}"
    assert rc in (0, 1, 2, 130), f"exit {rc}\n{text}"
    if m.expect_exit is not None:
        assert rc == m.expect_exit, f"exit {rc}, expected {m.expect_exit}\n{text}{out.getvalue()}"
    if rc == 2:
        assert CODE.search(text) or "usage:" in text, text
        assert "help:" in text or "usage:" in text, text
        if INPUT_CODES.search(text) and m.target:
            first = next(ln for ln in text.splitlines() if "error[" in ln)
            assert LOCATED.search(text) or re.match(r"[^\s:]+\.[A-Za-z0-9]+(:\d+:\d+)?: error\[", first), \
                f"the input error is not located\n{text}"
        if m.option:
            assert m.option in text or "usage:" in text, f"the error does not name {m.option}\n{text}"
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert changed <= set(m.outputs), f"files touched outside the outputs: {sorted(changed - set(m.outputs))}"


def test_the_corpus_is_large() -> None:
    assert len(MUTANTS) >= 300
    assert len({m.id for m in MUTANTS}) == len(MUTANTS)


@pytest.mark.parametrize("m", MUTANTS, ids=[m.id for m in MUTANTS])
def test_mutant(m: Mutant, tmp_path: Path) -> None:
    run_mutant(m, tmp_path)


# ------------------------------------------------------------------------------------------------------------
# The scikit-learn estimator: data of the wrong type or shape
# ------------------------------------------------------------------------------------------------------------
X4 = np.array([[0.1, 0.2], [0.9, 0.8], [0.2, 0.1], [0.8, 0.9]])
Y4 = np.array([0, 1, 0, 1])
ESTIMATOR_DATA: dict[str, tuple[object, object]] = {
    "x-strings": (np.array([["a", "b"]] * 4), Y4),
    "x-3d": (np.zeros((4, 2, 2)), Y4),
    "x-1d": (np.zeros(4), Y4),
    "x-ragged": ([[0.1, 0.2], [0.3], [0.5, 0.6], [0.7, 0.8]], Y4),
    "x-inf": (np.where(X4 > 0.85, np.inf, X4), Y4),
    "x-nan": (np.where(X4 > 0.85, np.nan, X4), Y4),
    "x-empty": (np.zeros((0, 2)), np.zeros(0, dtype=int)),
    "x-none": (None, Y4),
    "x-dict": ({"a": 1}, Y4),
    "x-complex": (X4 + 1j, Y4),
    "x-object-none": (np.array([[None, 1.0]] * 4, dtype=object), Y4),
    "y-short": (X4, Y4[:2]),
    "y-nan": (X4, np.array([0.0, np.nan, 0.0, 1.0])),
    "y-2d": (X4, np.array([[0, 1], [1, 0], [0, 1], [1, 0]])),
    "y-continuous": (X4, np.array([0.1, 0.7, 0.3, 0.9])),
    "y-one-class": (X4, np.zeros(4, dtype=int)),
    "y-none": (X4, None),
    "y-mixed": (X4, np.array([0, "a", 0, "a"], dtype=object)),
    "x-huge": (X4 * 1e300, Y4),
    "x-one-row": (X4[:1], Y4[:1]),
}


@pytest.mark.parametrize("name", sorted(ESTIMATOR_DATA))
def test_estimator_data(name: str) -> None:
    from nnmip.errors import NnmipError
    from nnmip.sklearn import BinarizedNetworkClassifier

    X, y = ESTIMATOR_DATA[name]
    est = BinarizedNetworkClassifier(hidden=(2,), strategy="exact", time_limit=5.0)
    error: NnmipError | None = None
    try:
        est.fit(X, y)
    except NnmipError as e:   # anything else escapes and fails the test
        error = e
    if error is None:   # accepted: the fitted network predicts one label per row
        assert est.predict(np.asarray(X, dtype=float)).shape == (np.asarray(X).shape[0],)
        return
    codes = [d.code for d in error.diagnostics] or [error.code]
    assert re.fullmatch(r"E0[0-4]\d\d", codes[0]), (codes, str(error))   # an input error, not a solver failure
    assert any(n.startswith("help:") for d in error.diagnostics for n in d.notes), error.render()
