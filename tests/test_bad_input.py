"""Bad input at every entry point: a clear located error with a documented exit code, never a traceback, and no
file outside the run's own outputs created, changed or removed.

Each case runs in-process (``nnmip.cli.main(argv)`` with captured output, or the Python API) inside a fresh folder
holding a small valid project (``prog.nnmip``, ``train.csv``, ``w.npz``, ``net.onnx``, ``prop.vnnlib``,
``x.npy``, ``pts.csv``) plus the bad files of the case.  Every file of the folder is hashed before and after; only
the case's declared outputs may differ.  The corpus is the tables below (hand-written, one class of mistake per
row) plus files built by ``make_files``; ``test_bad_input_generated.py`` adds generated cases (hypothesis, fixed
seeds).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from nnmip.cli import main

DOCUMENTED_EXIT = {0, 1, 2, 3, 4, 130}
CODE = re.compile(r"(?:error|warning)\[(E\d{4})\]")
LOCATED = re.compile(r"^\S[^\n]*?:\d+:\d+: error\[E\d{4}\]", re.M)

PROG = """\
data d = csv("train.csv", label=-1, scale=minmax) split(train=1.0, seed=0)

network n(x: 2) {
    h = dense(x, 2, weights=real[-1, 1], bias=real[-1, 1])
    a = step(h)
    o = dense(a, 2, weights=int[-1, 1], bias=real[-1, 1])
    y = step(o)
}

train n on d {
    loss = hamming
}

solve with highs(time_limit=5)
"""

TRAIN = "0.1,0.2,0\n0.9,0.8,1\n0.2,0.1,0\n0.8,0.9,1\n0.3,0.2,0\n0.7,0.8,1\n"

VNNLIB = """\
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(assert (>= X_0 0.0))
(assert (<= X_0 1.0))
(assert (>= X_1 0.0))
(assert (<= X_1 1.0))
(assert (>= Y_0 Y_1))
"""


def fixed_net() -> object:
    from nnmip.ir.builder import NetworkBuilder, fixed

    nb = NetworkBuilder("f")
    x = nb.input("x", 2, lo=0.0, hi=1.0)
    h = nb.dense("h", x, 3, weights=fixed(np.array([[1.0, -1.0], [0.5, 0.5], [-1.0, 1.0]])),
                 bias=fixed(np.array([0.0, -0.5, 0.1])))
    r = nb.relu("r", h)
    nb.dense("y", r, 2, weights=fixed(np.array([[1.0, 0.0, -1.0], [0.0, 1.0, 1.0]])), bias=fixed(np.zeros(2)))
    return nb.build()


_BASE: dict[str, bytes] = {}


def base_files() -> dict[str, bytes]:
    """The valid project every case starts from (built once)."""
    if not _BASE:
        import tempfile

        from nnmip.io.onnx import export_onnx
        from nnmip.io.weights import save_npz

        net = fixed_net()
        with tempfile.TemporaryDirectory() as d:
            save_npz(net, Path(d) / "w.npz")  # type: ignore[arg-type]
            export_onnx(net, Path(d) / "net.onnx")  # type: ignore[arg-type]
            buf = io.BytesIO()
            np.save(buf, np.array([0.3, 0.6]))
            _BASE.update({"w.npz": (Path(d) / "w.npz").read_bytes(), "net.onnx": (Path(d) / "net.onnx").read_bytes(),
                          "x.npy": buf.getvalue()})
        _BASE.update({"prog.nnmip": PROG.encode(), "train.csv": TRAIN.encode(), "prop.vnnlib": VNNLIB.encode(),
                      "pts.csv": b"0.1,0.2,0\n0.9,0.8,1\n"})
    return _BASE


def snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(root))] = "link:" + os.readlink(p)
        elif p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.is_dir():
            out[str(p.relative_to(root)) + "/"] = "dir"
    return out


@dataclass
class Case:
    """One bad input: the command line (or a Python call), the files it needs, what must come out."""

    id: str
    argv: list[str] | None = None
    files: dict[str, bytes | str] = field(default_factory=dict)
    code: str | None = None          # the expected error code (None: any documented E code)
    exit: int = 2
    located: bool = False            # a file:line:col location is required
    where: str | None = None         # a file location ("name:" before the error) is required
    outputs: tuple[str, ...] = ()    # files the run may create or change
    call: Callable[[Path], object] | None = None
    symlinks: dict[str, str] = field(default_factory=dict)


def run_case(case: Case, tmp: Path) -> None:
    for name, data in base_files().items():
        (tmp / name).write_bytes(data)
    for name, data in case.files.items():
        p = tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    for name, target in case.symlinks.items():
        (tmp / name).symlink_to(target)
    before = snapshot(tmp)
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        if case.call is not None:
            check_api(case, tmp)
        else:
            assert case.argv is not None
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = main(case.argv)
            text = err.getvalue()
            assert "Traceback" not in text, text
            assert "E0900" not in text, text
            assert rc in DOCUMENTED_EXIT
            assert rc == case.exit, f"exit {rc}, expected {case.exit}\n{text}\n{out.getvalue()}"
            if case.exit in (2, 3):
                codes = CODE.findall(text)
                assert codes or "usage:" in text, text
                if case.code is not None:
                    assert case.code in codes, f"expected {case.code}, got {codes}\n{text}"
                assert "help:" in text or "usage:" in text, text
            if case.located:
                assert LOCATED.search(text), f"no file:line:col location\n{text}"
            if case.where is not None:
                assert re.search(rf"(^|/){re.escape(case.where)}(:\d+:\d+)?: error\[", text, re.M), \
                    f"the error does not name {case.where}\n{text}"
    finally:
        os.chdir(cwd)
    after = snapshot(tmp)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    allowed = set(case.outputs)
    assert changed <= allowed, f"files touched outside the outputs: {sorted(changed - allowed)}"


def check_api(case: Case, tmp: Path) -> None:
    from nnmip.errors import NnmipError

    assert case.call is not None
    with pytest.raises(NnmipError) as info:
        case.call(tmp)
    e = info.value
    codes = [d.code for d in e.diagnostics] or [e.code]
    if case.code is not None:
        assert case.code in codes, (codes, str(e))
    assert re.fullmatch(r"E\d{4}", codes[0])
    assert str(e)
    if case.located:
        assert any(d.span.known or d.span.file for d in e.diagnostics), e.render()


# ------------------------------------------------------------------------------------------------------------
# The corpus
# ------------------------------------------------------------------------------------------------------------
def prog(**subs: str) -> str:
    """PROG with lines replaced: keys are the start of a line, values its new text ('' removes it)."""
    lines = PROG.splitlines()
    for key, new in subs.items():
        key = key.replace("_", " ")
        lines = [new if ln.strip().startswith(key.strip()) else ln for ln in lines]
    return "\n".join(lines) + "\n"


def with_data(line: str) -> str:
    return PROG.replace('data d = csv("train.csv", label=-1, scale=minmax) split(train=1.0, seed=0)', line)


def with_net(body: str) -> str:
    start = PROG.index("network n")
    end = PROG.index("}", start) + 1
    return PROG[:start] + body + PROG[end:]


def with_train(body: str) -> str:
    start = PROG.index("train n on d")
    end = PROG.index("}", start) + 1
    return PROG[:start] + body + PROG[end:]


LANGUAGE: dict[str, str] = {
    # syntax
    "empty": "",
    "only-comment": "# nothing\n",
    "garbage": "\x00\x01\x02 binary junk \xff",
    "unclosed-brace": PROG.replace("    y = step(o)\n}", "    y = step(o)\n"),
    "unclosed-paren": PROG.replace("step(o)", "step(o"),
    "single-quotes": PROG.replace('"train.csv"', "'train.csv'"),
    "bad-escape": PROG.replace('"train.csv"', '"tr\\qain.csv"'),
    "lone-surrogate": PROG.replace('"train.csv"', '"tr\\ud800ain.csv"'),
    "stray-char": PROG.replace("loss = hamming", "loss = hamming $"),
    "keyword-as-name": PROG.replace("network n(x: 2)", "network network(x: 2)"),
    "missing-dim": PROG.replace("network n(x: 2)", "network n(x)"),
    "newline-in-string": PROG.replace('"train.csv"', '"train\n.csv"'),
    "unicode-name": PROG.replace("h = dense", "\u00e9 = dense"),
    "bom-utf16": "\ufeff" + PROG,
    # names and calls
    "unknown-node": PROG.replace("a = step(h)", "a = step(hh)"),
    "unknown-op": PROG.replace("a = step(h)", "a = conv(h)"),
    "unknown-network": PROG.replace("train n on d", "train m on d"),
    "unknown-data": PROG.replace("train n on d", "train n on e"),
    "train-net-on-net": PROG.replace("train n on d", "train n on n"),
    "train-data-on-data": PROG.replace("train n on d", "train d on d"),
    "duplicate-node": PROG.replace("a = step(h)", "a = step(h)\n    a = step(h)"),
    "duplicate-network": PROG + "\nnetwork n(x: 2) { y = step(x) }\n",
    "two-solve": PROG + "solve with highs()\n",
    "unknown-solver": PROG.replace("solve with highs(time_limit=5)", "solve with cplex()"),
    "cycle": PROG.replace("a = step(h)", "a = step(y)"),
    "missing-width": PROG.replace("dense(x, 2, weights", "dense(x, weights"),
    "unknown-kwarg": PROG.replace("bias=real[-1, 1])\n    a", "bias=real[-1, 1], bogus=3)\n    a"),
    "kwarg-twice": PROG.replace("weights=real[-1, 1], bias", "weights=real[-1, 1], weights=real[-1, 1], bias"),
    "positional-after-kw": PROG.replace("dense(x, 2, weights=real[-1, 1], bias=real[-1, 1])",
                                        "dense(x, weights=real[-1, 1], 2)"),
    "string-width": PROG.replace("dense(x, 2,", 'dense(x, "2",'),
    # values
    "zero-width": PROG.replace("dense(x, 2,", "dense(x, 0,"),
    "negative-width": PROG.replace("dense(x, 2,", "dense(x, -3,"),
    "float-width": PROG.replace("dense(x, 2,", "dense(x, 2.5,"),
    "huge-width": PROG.replace("dense(x, 2,", "dense(x, 1000000000,"),
    "huge-width-2": PROG.replace("dense(a, 2,", "dense(a, 100000000000000,"),
    "huge-int-literal": PROG.replace("dense(x, 2,", "dense(x, " + "9" * 5000 + ","),
    "huge-int-seed": PROG.replace("seed=0", "seed=" + "7" * 5000),
    "negative-seed": PROG.replace("seed=0", "seed=-1"),
    "float-seed": PROG.replace("seed=0", "seed=0.5"),
    "huge-seed": PROG.replace("seed=0", "seed=99999999999999999999"),
    "nan-bound": PROG.replace("real[-1, 1], bias", "real[nan, 1], bias"),
    "inf-bound": PROG.replace("real[-1, 1], bias", "real[-1, 1e999], bias"),
    "crossed-domain": PROG.replace("real[-1, 1], bias", "real[1, -1], bias"),
    "empty-int-domain": PROG.replace("int[-1, 1]", "int[0.2, 0.7]"),
    "zero-input-dim": PROG.replace("network n(x: 2)", "network n(x: 0)"),
    "negative-input-dim": PROG.replace("network n(x: 2)", "network n(x: -2)"),
    "huge-input-dim": PROG.replace("network n(x: 2)", "network n(x: 10000000000)"),
    "huge-list": PROG.replace("weights=real[-1, 1], bias=real[-1, 1])\n    a",
                              "weights=[" + ",".join(["0.5"] * 200_000) + "], bias=real[-1, 1])\n    a"),
    "deep-list": PROG.replace("weights=real[-1, 1], bias=real[-1, 1])\n    a",
                              "weights=" + "[" * 20000 + "1" + "]" * 20000 + ", bias=real[-1, 1])\n    a"),
    "deep-list-moderate": PROG.replace("weights=real[-1, 1], bias=real[-1, 1])\n    a",
                                       "weights=" + "[" * 300 + "1" + "]" * 300 + ", bias=real[-1, 1])\n    a"),
    "ragged-weights": PROG.replace("weights=real[-1, 1], bias=real[-1, 1])\n    a",
                                   "weights=[[1, 2], [3]], bias=real[-1, 1])\n    a"),
    "nan-weights-list": PROG.replace("weights=real[-1, 1], bias=real[-1, 1])\n    a",
                                     "weights=[[nan, 1], [1, 1]], bias=real[-1, 1])\n    a"),
    # data statements
    "missing-data-file": PROG.replace("train.csv", "nope.csv"),
    "data-is-folder": PROG.replace("train.csv", "sub"),
    "data-absolute-missing": PROG.replace("train.csv", "/nonexistent/x.csv"),
    "bad-delimiter": PROG.replace("label=-1,", 'label=-1, delimiter=";;",'),
    "label-out-of-range": PROG.replace("label=-1", "label=7"),
    "label-negative-far": PROG.replace("label=-1", "label=-9"),
    "bad-split-sum": PROG.replace("split(train=1.0, seed=0)", "split(train=0.5, test=0.2, seed=0)"),
    "negative-split": PROG.replace("split(train=1.0, seed=0)", "split(train=1.2, test=-0.2, seed=0)"),
    "nan-split": PROG.replace("split(train=1.0, seed=0)", "split(train=nan, seed=0)"),
    "unknown-scale": PROG.replace("scale=minmax", "scale=cubic"),
    "unknown-source": PROG.replace('csv("train.csv", label=-1, scale=minmax)', 'parquet("train.csv")'),
    "unknown-sklearn": PROG.replace('csv("train.csv", label=-1, scale=minmax)', 'sklearn("mnist")'),
    "npz-missing": PROG.replace('csv("train.csv", label=-1, scale=minmax)', 'npz("nope.npz")'),
    # tasks
    "unknown-loss": PROG.replace("loss = hamming", "loss = mse"),
    "negative-eps": PROG.replace("loss = hamming", "loss = hamming\n    eps = -1"),
    "negative-l1": PROG.replace("loss = hamming", "loss = hamming\n    l1 = -1"),
    "nan-l1": PROG.replace("loss = hamming", "loss = hamming\n    l1 = nan"),
    "zero-subset": PROG.replace("loss = hamming", "loss = hamming\n    subset = random(0, seed=1)"),
    "negative-subset": PROG.replace("loss = hamming", "loss = hamming\n    subset = random(-5, seed=1)"),
    "subset-negative-seed": PROG.replace("loss = hamming", "loss = hamming\n    subset = random(3, seed=-4)"),
    "huge-subset": PROG.replace("loss = hamming", "loss = hamming\n    subset = random(100000, seed=1)"),
    "unknown-strategy": PROG.replace("loss = hamming", "loss = hamming\n    strategy = magic(3)"),
    "unknown-setting": PROG.replace("loss = hamming", "loss = hamming\n    colour = blue"),
    "negative-time-limit": PROG.replace("time_limit=5", "time_limit=-5"),
    "nan-time-limit": PROG.replace("time_limit=5", "time_limit=nan"),
    "negative-gap": PROG.replace("time_limit=5", "gap=-0.1"),
    "zero-threads": PROG.replace("time_limit=5", "threads=-2"),
    "no-tasks": "network n(x: 2) { y = step(x) }\n",
    "width-mismatch": PROG.replace("network n(x: 2)", "network n(x: 3)"),
    "load-missing": PROG.replace("weights=real[-1, 1], bias=real[-1, 1])\n    a",
                                 'weights=load("nope.npz", "W"), bias=real[-1, 1])\n    a'),
    "load-bad-npz": PROG.replace("weights=real[-1, 1], bias=real[-1, 1])\n    a",
                                 'weights=load("train.csv", "W"), bias=real[-1, 1])\n    a'),
    "load-missing-key": PROG.replace("weights=real[-1, 1], bias=real[-1, 1])\n    a",
                                     'weights=load("w.npz", "nokey"), bias=real[-1, 1])\n    a'),
    # verify statements
    "verify-missing-onnx": PROG + 'verify v { model = onnx("nope.onnx")\n input x in linf(0.1, around=[0.5, 0.5])\n'
                                  " property = classified(0) }\n",
    "verify-bad-onnx": PROG + 'verify v { model = onnx("train.csv")\n input x in linf(0.1, around=[0.5, 0.5])\n'
                              " property = classified(0) }\n",
    "verify-negative-radius": PROG + "verify n { input x in linf(-0.1, around=[0.5, 0.5])\n"
                                     " property = classified(0) }\n",
    "verify-nan-radius": PROG + "verify n { input x in linf(nan, around=[0.5, 0.5])\n property = classified(0) }\n",
    "verify-bad-class": PROG + "verify n { input x in linf(0.1, around=[0.5, 0.5])\n property = classified(9) }\n",
    "verify-wrong-center": PROG + "verify n { input x in linf(0.1, around=[0.5])\n property = classified(0) }\n",
    "verify-no-property": PROG + "verify n { input x in linf(0.1, around=[0.5, 0.5]) }\n",
    "verify-row-missing": PROG + 'verify n { input x in linf(0.1, around=row("nope.csv", 0))\n'
                                 " property = classified(0) }\n",
    "verify-row-out-of-range": PROG + 'verify n { input x in linf(0.1, around=row("train.csv", 99))\n'
                                      " property = classified(0) }\n",
}

# (command, case) -> exit code where a command does not read the faulty part (solve ignores verify statements).
LANGUAGE_EXIT = {("solve", "verify-bad-onnx"): 0, ("check", "no-tasks"): 0}
for _name in ("verify-bad-class", "verify-wrong-center", "verify-row-out-of-range"):   # solve ignores verify
    LANGUAGE_EXIT.update({("solve", _name): 0})
LANGUAGE_EXIT[("check", "verify-wrong-center")] = 0   # one value is broadcast over the inputs: a valid center

EXPECTED_CODES = {
    "unknown-node": "E0102", "unknown-op": "E0101", "unknown-network": "E0102", "unknown-data": "E0102",
    "train-net-on-net": "E0102", "train-data-on-data": "E0102", "duplicate-node": "E0103",
    "huge-width": "E0430", "huge-input-dim": "E0430", "negative-seed": "E0109", "huge-seed": "E0109",
    "missing-data-file": "E0301", "unknown-loss": "E0150", "negative-eps": "E0109", "negative-l1": "E0109",
}

# A case that needs a folder or a special file adds it here.
LANGUAGE_FILES: dict[str, dict[str, bytes | str]] = {
    "data-is-folder": {"sub/keep.txt": "x"},
}


def language_cases() -> list[Case]:
    cases = []
    for name, text in LANGUAGE.items():
        files: dict[str, bytes | str] = {"bad.nnmip": text.encode("utf-16") if name == "bom-utf16" else text}
        files.update(LANGUAGE_FILES.get(name, {}))
        code = EXPECTED_CODES.get(name)
        cases.append(Case(f"check-{name}", ["check", "bad.nnmip"], files, code, located=code is not None,
                          exit=LANGUAGE_EXIT.get(("check", name), 2)))
        if name.startswith("verify-"):
            cases.append(Case(f"verify-{name}", ["verify", "bad.nnmip", "-q"], files, code, located=True))
        cases.append(Case(f"compile-{name}", ["compile", "bad.nnmip", "-o", "out.lp"], files, code))
        cases.append(Case(f"solve-{name}", ["solve", "bad.nnmip", "-q", "--json", "r.json"], files, code,
                          outputs=("r.json",), exit=LANGUAGE_EXIT.get(("solve", name), 2)))
    return cases


# Bad data files: each is read through the language (csv()/npz()), predict, verify --points and verify --point.
def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def npz_pickle() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, X=np.array([{"a": 1}, None], dtype=object), y=np.array([0, 1]))
    return buf.getvalue()


def npy_huge_header() -> bytes:
    header = np.lib.format.header_data_from_array_1_0(np.zeros((2, 2)))
    header["shape"] = (100_000, 100_000)   # 80 GB announced, 32 bytes present
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + np.zeros(4).tobytes()


def npz_huge_member() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("X.npy", npy_huge_header())
        zf.writestr("y.npy", npy_bytes(np.array([0, 1])))
    return buf.getvalue()


CSV_FILES: dict[str, bytes] = {
    "empty": b"",
    "only-newlines": b"\n\n\n",
    "only-comments": b"# a\n# b\n",
    "ragged": b"0.1,0.2,0\n0.9,0.8\n0.2,0.1,0\n",
    "ragged-long": b"0.1,0.2,0\n0.9,0.8,1,5,6\n",
    "text-cell": b"0.1,0.2,0\n0.9,abc,1\n",
    "nan-cell": b"0.1,0.2,0\nnan,0.8,1\n",
    "inf-cell": b"0.1,0.2,0\ninf,0.8,1\n",
    "empty-cell": b"0.1,,0\n0.9,0.8,1\n",
    "utf16": "0.1,0.2,0\n0.9,0.8,1\n".encode("utf-16"),
    "utf16-be": "0.1,0.2,0\n0.9,0.8,1\n".encode("utf-16-be"),
    "latin1": b"0.1,0.2,0\n0.9,0.8,1 # caf\xe9\n",
    "binary": bytes(range(256)) * 4,
    "semicolons": b"0.1;0.2;0\n0.9;0.8;1\n",
    "one-column": b"0\n1\n0\n",
    "huge-number": b"0.1,1e400,0\n0.9,0.8,1\n",
    "one-class": b"0.1,0.2,0\n0.9,0.8,0\n",
    "header-only": b"a,b,y\n",
    "long-line": b"0.1," * 50_000 + b"0\n",
    "nul-bytes": b"0.1,0.2,0\n\x00\x00\x00\n",
}

NPY_FILES: dict[str, bytes] = {
    "truncated-npy": npy_bytes(np.ones((4, 2)))[:-8],
    "huge-header-npy": npy_huge_header(),
    "object-npy": b"",   # filled below (pickled object array)
    "not-npy": b"hello world, not numpy",
    "string-npy": npy_bytes(np.array([["a", "b"], ["c", "d"]])),
    "nan-npy": npy_bytes(np.array([[np.nan, 1.0]])),
    "3d-npy": npy_bytes(np.ones((2, 2, 2))),
    "empty-npy": b"",
}

NPZ_FILES: dict[str, bytes] = {
    "truncated-npz": npz_bytes(X=np.ones((4, 2)), y=np.array([0, 1, 0, 1]))[:-30],
    "pickle-npz": npz_pickle(),
    "huge-member-npz": npz_huge_member(),
    "no-x-npz": npz_bytes(Z=np.ones((2, 2))),
    "nan-npz": npz_bytes(X=np.array([[np.nan, 1.0], [0.0, 1.0]]), y=np.array([0, 1])),
    "ragged-y-npz": npz_bytes(X=np.ones((3, 2)), y=np.array([0, 1])),
    "float-y-npz": npz_bytes(X=np.ones((2, 2)), y=np.array([0.5, 1.0])),
    "not-zip-npz": b"PK\x03\x04garbage",
    "empty-npz": npz_bytes(),
}


def _object_npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    return buf.getvalue()


NPY_FILES["object-npy"] = _object_npy()


NPZ_OK = {"float-y-npz"}   # labels may be any values, 0.5 and 1.0 are two classes


def data_cases() -> list[Case]:
    cases = []
    for name, data in CSV_FILES.items():
        files = {"bad.csv": data, "bad.nnmip": PROG.replace("train.csv", "bad.csv")}
        cases.append(Case(f"lang-csv-{name}", ["solve", "bad.nnmip", "-q"], files, located=True))
        ok = name in ("one-class",)
        cases.append(Case(f"predict-csv-{name}", ["predict", "w.npz", "bad.csv", "--label", "-1"], files,
                          where=None if ok else "bad.csv", exit=0 if ok else 2))
        ok = name in ("one-class", "semicolons")   # verify --points guesses the delimiter
        cases.append(Case(f"points-csv-{name}", ["verify", "--npz", "w.npz", "--points", "bad.csv", "--linf",
                                                 "0.01", "-q"], files, where=None if ok else "bad.csv",
                          exit=0 if ok else 2))
        cases.append(Case(f"point-csv-{name}", ["verify", "--npz", "w.npz", "--point", "bad.csv", "--linf",
                                                "0.01", "-q"], files, where="bad.csv"))
    for name, data in {**NPY_FILES, **NPZ_FILES}.items():
        ext = ".npy" if name.endswith("npy") else ".npz"
        files = {f"bad{ext}": data}
        if ext == ".npz":
            files["bad.nnmip"] = PROG.replace('csv("train.csv", label=-1, scale=minmax)', 'npz("bad.npz")')
            cases.append(Case(f"lang-{name}", ["solve", "bad.nnmip", "-q"], files, located=name not in NPZ_OK,
                              exit=0 if name in NPZ_OK else 2))
            cases.append(Case(f"weights-{name}", ["predict", "bad.npz", "pts.csv", "--label", "-1"], files))
            cases.append(Case(f"verify-npz-{name}", ["verify", "--npz", "bad.npz", "--point", "0.5,0.5",
                                                     "--linf", "0.1", "-q"], files))
        cases.append(Case(f"predict-{name}", ["predict", "w.npz", f"bad{ext}"], files))
        ok = name in ("no-x-npz",)    # --points takes the first array when there is no 'X'
        cases.append(Case(f"points-{name}", ["verify", "--npz", "w.npz", "--points", f"bad{ext}", "--linf",
                                             "0.01", "-q"], files, exit=0 if ok else 2,
                          where=None if ok else f"bad{ext}"))
        cases.append(Case(f"point-{name}", ["verify", "--npz", "w.npz", "--point", f"bad{ext}", "--linf", "0.01",
                                            "-q"], files))
    return cases


def _onnx_nan() -> bytes:
    import onnx
    from onnx import numpy_helper

    model = onnx.load_model_from_string(base_files()["net.onnx"])
    for i, t in enumerate(model.graph.initializer):
        arr = numpy_helper.to_array(t).copy()
        if arr.dtype.kind == "f" and arr.size > 1:
            arr.flat[0] = np.nan
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(arr, t.name))
            break
    return model.SerializeToString()


def onnx_files() -> dict[str, bytes]:
    good = base_files()["net.onnx"]
    return {"empty": b"", "text": b"not an onnx model", "truncated": good[: len(good) // 2],
            "zeros": b"\x00" * 1000, "nan-weights": _onnx_nan(), "csv-as-onnx": TRAIN.encode()}


def onnx_cases() -> list[Case]:
    cases = []
    for name, data in onnx_files().items():
        files = {"bad.onnx": data}
        cases.append(Case(f"onnx-verify-{name}", ["verify", "--onnx", "bad.onnx", "--point", "0.5,0.5", "--linf",
                                                  "0.1", "-q"], files))
        cases.append(Case(f"onnx-compress-{name}", ["compress", "--onnx", "bad.onnx", "-o", "c.npz"], files))
        cases.append(Case(f"onnx-vnnlib-{name}", ["verify", "--onnx", "bad.onnx", "--vnnlib", "prop.vnnlib", "-q"],
                          files))
        files2 = dict(files, **{"v.nnmip": 'verify v { model = onnx("bad.onnx")\n'
                                "  input x in linf(0.1, around=[0.5, 0.5])\n  property = classified(0) }\n"})
        cases.append(Case(f"onnx-lang-{name}", ["verify", "v.nnmip", "-q"], files2, located=True))
    return cases


VNNLIB_BAD: dict[str, bytes] = {
    "empty": b"",
    "unbalanced-close": VNNLIB.encode() + b")",
    "unclosed": VNNLIB.encode()[:-2],
    "latin1-comment": b"; caf\xe9 au lait\n" + VNNLIB.encode(),
    "utf16": VNNLIB.encode("utf-16"),
    "deep-and": ("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert " + "(and " * 5000
                 + "(>= X_0 0.0)" + ")" * 5000 + ")\n").encode(),
    "deep-or": ("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert " + "(or " * 3000
                + "(>= X_0 0.0)" + ")" * 3000 + ")\n").encode(),
    "gz": gzip.compress(VNNLIB.encode()),
    "unknown-var": VNNLIB.replace("(>= Y_0 Y_1)", "(>= Z_0 Y_1)").encode(),
    "int-sort": VNNLIB.replace("X_0 Real", "X_0 Int").encode(),
    "unbounded-input": VNNLIB.replace("(assert (<= X_0 1.0))\n", "").encode(),
    "mixed": VNNLIB.replace("(>= Y_0 Y_1)", "(>= Y_0 X_1)").encode(),
    "nonlinear": VNNLIB.replace("(>= Y_0 Y_1)", "(>= (* Y_0 Y_1) 0)").encode(),
    "nan-bound": VNNLIB.replace("(<= X_0 1.0)", "(<= X_0 nan)").encode(),
    "huge-number": VNNLIB.replace("(<= X_0 1.0)", "(<= X_0 " + "9" * 5000 + ")").encode(),
    "wrong-width": VNNLIB.replace("(declare-const X_1 Real)\n", "").replace("(assert (>= X_1 0.0))\n", "")
                         .replace("(assert (<= X_1 1.0))\n", "").encode(),
    "crossed-box": VNNLIB.replace("(<= X_0 1.0)", "(<= X_0 -1.0)").encode(),
    "binary": bytes(range(256)),
    "push": VNNLIB.encode() + b"(push 1)\n",
    "string-literal": VNNLIB.replace("(>= Y_0 Y_1)", '(>= Y_0 "a")').encode(),
}


# Read as they are meant: a gzip-compressed file, a Latin-1 byte inside a comment, an empty input box (the
# property holds vacuously: 'unsat').
VNNLIB_ACCEPTED = {"gz", "latin1-comment", "crossed-box"}


def vnnlib_cases() -> list[Case]:
    cases = []
    for name, data in VNNLIB_BAD.items():
        fname = "bad.vnnlib.gz" if name == "gz" else "bad.vnnlib"
        files = {fname: data}
        ok = name in VNNLIB_ACCEPTED
        cases.append(Case(f"vnnlib-{name}", ["verify", "--npz", "w.npz", "--vnnlib", fname, "-q"], files,
                          located=name in ("unbalanced-close", "unclosed", "unknown-var", "int-sort"),
                          exit=0 if ok else 2))
        cases.append(Case(f"vnnlib-cex-{name}", ["verify", "--onnx", "net.onnx", "--vnnlib", fname, "-q",
                                                 "--counterexample", "cex.txt"], files, outputs=("cex.txt",),
                          exit=0 if ok else 2))
    return cases


FLAGS: dict[str, tuple[list[str], str | None, int]] = {
    # id: argv, expected code, exit
    "no-command": ([], "E0190", 2),
    "unknown-command": (["train", "prog.nnmip"], "E0190", 2),
    "unknown-option": (["solve", "prog.nnmip", "--bogus"], "E0190", 2),
    "missing-file": (["check", "nope.nnmip"], "E0002", 2),
    "file-is-folder": (["check", "."], None, 2),
    "file-is-csv": (["check", "train.csv"], "E0001", 2),
    "solve-missing-value": (["solve", "prog.nnmip", "--time-limit"], "E0190", 2),
    "verify-text-linf": (["verify", "--onnx", "net.onnx", "--point", "x.npy", "--linf", "abc"], "E0190", 2),
    "verify-negative-inf-linf": (["verify", "--onnx", "net.onnx", "--point", "x.npy", "--linf", "-inf"], "E0109", 2),
    "verify-negative-inf-domain": (["verify", "--onnx", "net.onnx", "--point", "x.npy", "--linf", "0.1",
                                    "--domain", "-inf", "inf"], "E0109", 2),
    "verify-huge-workers": (["verify", "--onnx", "net.onnx", "--point", "x.npy", "--linf", "0.1", "--workers",
                             "99999999999999999999"], "E0109", 2),
    "verify-negative-workers": (["verify", "--onnx", "net.onnx", "--point", "x.npy", "--linf", "0.1", "--workers",
                                 "-1"], "E0109", 2),
    "vnncomp-inf-timeout": (["vnncomp", "sub", "--timeout", "inf"], "E0109", 2),
    "vnncomp-nan-timeout-scale": (["vnncomp", "sub", "--timeout-scale", "nan"], "E0109", 2),
    "vnncomp-huge-workers": (["vnncomp", "sub", "--workers", "99999999999999999999"], "E0109", 2),
    "vnncomp-results-dir-is-file": (["vnncomp", "sub", "--results-dir", "train.csv"], "E0610", 2),
    "solve-negative-time": (["solve", "prog.nnmip", "--time-limit", "-1"], "E0109", 2),
    "solve-nan-time": (["solve", "prog.nnmip", "--time-limit", "nan"], "E0109", 2),
    "solve-inf-time": (["solve", "prog.nnmip", "--time-limit", "inf"], "E0109", 2),
    "solve-zero-time": (["solve", "prog.nnmip", "--time-limit", "0"], "E0109", 2),
    "solve-text-time": (["solve", "prog.nnmip", "--time-limit", "soon"], "E0190", 2),
    "solve-negative-gap": (["solve", "prog.nnmip", "--gap", "-0.5"], "E0109", 2),
    "solve-nan-gap": (["solve", "prog.nnmip", "--gap", "nan"], "E0109", 2),
    "solve-negative-threads": (["solve", "prog.nnmip", "--threads", "-3"], "E0109", 2),
    "solve-huge-threads": (["solve", "prog.nnmip", "--threads", "100000"], "E0109", 2),
    "solve-unknown-solver": (["solve", "prog.nnmip", "--solver", "cplex"], "E0503", 3),
    "solve-empty-solver": (["solve", "prog.nnmip", "--solver", ""], "E0503", 3),
    "solve-bad-emit": (["solve", "prog.nnmip", "--emit", "conic"], "E0190", 2),
    "solve-json-folder": (["solve", "prog.nnmip", "--json", "."], "E0610", 2),
    "solve-json-missing-folder": (["solve", "prog.nnmip", "--json", "no/r.json"], "E0611", 2),
    "solve-json-over-source": (["solve", "prog.nnmip", "--json", "prog.nnmip"], "E0603", 2),
    "solve-json-over-data": (["solve", "prog.nnmip", "--json", "train.csv"], "E0613", 2),
    "solve-weights-over-data": (["solve", "prog.nnmip", "--save-weights", "train.csv"], "E0613", 2),
    "solve-onnx-over-data": (["solve", "prog.nnmip", "--save-onnx", "train.csv"], "E0613", 2),
    "solve-weights-over-source": (["solve", "prog.nnmip", "--save-weights", "prog.nnmip"], "E0603", 2),
    "solve-same-outputs": (["solve", "prog.nnmip", "--json", "o.json", "--save-weights", "o.json"], "E0615", 2),
    "solve-empty-json": (["solve", "prog.nnmip", "--json", ""], None, 2),
    "compile-over-source": (["compile", "prog.nnmip", "-o", "prog.nnmip"], "E0603", 2),
    "compile-over-data": (["compile", "prog.nnmip", "-o", "train.csv"], "E0601", 2),
    "compile-over-data-lp": (["compile", "prog.nnmip", "-o", "link.lp"], "E0613", 2),
    "compile-bad-ext": (["compile", "prog.nnmip", "-o", "model.txt"], "E0601", 2),
    "compile-folder": (["compile", "prog.nnmip", "-o", "sub.lp"], "E0610", 2),
    "compile-missing-folder": (["compile", "prog.nnmip", "-o", "no/m.lp"], "E0611", 2),
    "compile-json-over-source": (["compile", "prog.nnmip", "-o", "m.lp", "--json", "prog.nnmip"], "E0603", 2),
    "check-json-over-source": (["check", "prog.nnmip", "--json", "prog.nnmip"], "E0603", 2),
    "check-json-over-source-link": (["check", "prog.nnmip", "--json", "src.json"], "E0613", 2),
    "check-json-over-data": (["check", "prog.nnmip", "--json", "train.csv"], "E0613", 2),
    "predict-missing-weights": (["predict", "nope.npz", "pts.csv"], "E0608", 2),
    "predict-weights-csv": (["predict", "train.csv", "pts.csv"], "E0608", 2),
    "predict-missing-data": (["predict", "w.npz", "nope.csv"], "E0301", 2),
    "predict-data-folder": (["predict", "w.npz", "sub"], "E0301", 2),
    "predict-label-past-end": (["predict", "w.npz", "pts.csv", "--label", "5"], "E0304", 2),
    "predict-label-far-negative": (["predict", "w.npz", "pts.csv", "--label", "-7"], "E0304", 2),
    "predict-no-label": (["predict", "w.npz", "pts.csv"], "E0122", 2),
    "predict-unknown-labels": (["predict", "w.npz", "labels7.csv", "--label", "-1"], "E0312", 2),
    "predict-bad-delimiter": (["predict", "w.npz", "pts.csv", "--delimiter", ""], "E0109", 2),
    "predict-long-delimiter": (["predict", "w.npz", "pts.csv", "--delimiter", ",,"], "E0109", 2),
    "predict-json-over-data": (["predict", "w.npz", "pts.csv", "--label", "-1", "--json", "pts.csv"], "E0613", 2),
    "predict-json-over-weights": (["predict", "w.npz", "pts.csv", "--label", "-1", "--json", "w.npz"], "E0613", 2),
    "verify-no-network": (["verify", "--point", "0.5,0.5", "--linf", "0.1"], "E0104", 2),
    "verify-two-networks": (["verify", "--npz", "w.npz", "--onnx", "net.onnx", "--point", "0.5,0.5", "--linf",
                             "0.1"], "E0104", 2),
    "verify-no-set": (["verify", "--npz", "w.npz", "--point", "0.5,0.5"], "E0104", 2),
    "verify-no-point": (["verify", "--npz", "w.npz", "--linf", "0.1"], "E0104", 2),
    "verify-nan-point": (["verify", "--npz", "w.npz", "--point", "nan,0.5", "--linf", "0.1"], "E0109", 2),
    "verify-inf-point": (["verify", "--npz", "w.npz", "--point", "inf,0.5", "--linf", "0.1"], "E0109", 2),
    "verify-text-point": (["verify", "--npz", "w.npz", "--point", "a,b", "--linf", "0.1"], "E0301", 2),
    "verify-empty-point": (["verify", "--npz", "w.npz", "--point", ",", "--linf", "0.1"], "E0301", 2),
    "verify-short-point": (["verify", "--npz", "w.npz", "--point", "0.5", "--linf", "0.1"], "E0412", 2),
    "verify-negative-linf": (["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--linf", "-0.1"], "E0109", 2),
    "verify-nan-linf": (["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--linf", "nan"], "E0109", 2),
    "verify-inf-l1": (["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--l1", "inf"], "E0109", 2),
    "verify-negative-time": (["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--linf", "0.1", "--time-limit",
                              "-1"], "E0109", 2),
    "verify-negative-gap": (["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--linf", "0.1", "--gap", "-1"],
                            "E0109", 2),
    "verify-nan-threshold": (["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--linf", "0.1", "--maximize",
                              "1,0", "--threshold", "nan"], "E0109", 2),
    "verify-nan-coef": (["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--linf", "0.1", "--maximize",
                         "nan,0"], "E0109", 2),
    "verify-both-objectives": (["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--linf", "0.1", "--maximize",
                                "1,0", "--minimize", "1,0"], "E0104", 2),
    "verify-negative-label": (["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--linf", "0.1", "--label", "-1"],
                              "E0414", 2),
    "verify-huge-label": (["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--linf", "0.1", "--label", "99"],
                          "E0414", 2),
    "verify-crossed-domain": (["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--linf", "0.1", "--domain", "1",
                               "0"], "E0410", 2),
    "verify-nan-domain": (["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--linf", "0.1", "--domain", "nan",
                           "1"], "E0109", 2),
    "verify-label-column-text": (["verify", "--npz", "w.npz", "--points", "pts.csv", "--linf", "0.1",
                                  "--label-column", "last"], "E0109", 2),
    "verify-label-column-past-end": (["verify", "--npz", "w.npz", "--points", "pts.csv", "--linf", "0.1",
                                      "--label-column", "3"], "E0304", 2),
    "verify-points-bad-labels": (["verify", "--npz", "w.npz", "--points", "labels7.csv", "--linf", "0.1"],
                                 "E0414", 2),
    "verify-points-no-linf": (["verify", "--npz", "w.npz", "--points", "pts.csv"], "E0104", 2),
    "verify-json-over-vnnlib": (["verify", "--npz", "w.npz", "--vnnlib", "prop.vnnlib", "--json", "prop.vnnlib"],
                                "E0613", 2),
    "verify-cex-over-vnnlib": (["verify", "--npz", "w.npz", "--vnnlib", "prop.vnnlib", "--counterexample",
                                "prop.vnnlib"], "E0613", 2),
    "verify-cex-over-weights": (["verify", "--npz", "w.npz", "--vnnlib", "prop.vnnlib", "--counterexample",
                                 "w.npz"], "E0613", 2),
    "verify-json-over-point": (["verify", "--npz", "w.npz", "--point", "x.npy", "--linf", "0.1", "--json",
                                "x.npy"], "E0613", 2),
    "verify-json-over-points": (["verify", "--npz", "w.npz", "--points", "pts.csv", "--linf", "0.1", "--json",
                                 "pts.csv"], "E0613", 2),
    "verify-cex-folder": (["verify", "--npz", "w.npz", "--vnnlib", "prop.vnnlib", "--counterexample", "sub"],
                          "E0610", 2),
    "verify-missing-vnnlib": (["verify", "--npz", "w.npz", "--vnnlib", "nope.vnnlib"], "E0710", 2),
    "verify-file-json-over-source": (["verify", "prog.nnmip", "--json", "prog.nnmip"], "E0603", 2),
    "verify-file-no-verify": (["verify", "prog.nnmip"], "E0181", 2),
    "compress-no-network": (["compress", "-o", "c.npz"], "E0104", 2),
    "compress-negative-samples": (["compress", "--npz", "w.npz", "-o", "c.npz", "--samples", "-5"], "E0109", 2),
    "compress-huge-samples": (["compress", "--npz", "w.npz", "-o", "c.npz", "--samples", "1000000000000"],
                              "E0109", 2),
    "compress-bad-ext": (["compress", "--npz", "w.npz", "-o", "c.txt"], "E0601", 2),
    "compress-over-input": (["compress", "--npz", "w.npz", "-o", "w.npz"], "E0613", 2),
    "compress-over-input-link": (["compress", "--npz", "w.npz", "-o", "wlink.npz"], "E0613", 2),
    "compress-onnx-over-input": (["compress", "--onnx", "net.onnx", "-o", "net.onnx"], "E0613", 2),
    "compress-missing-folder": (["compress", "--npz", "w.npz", "-o", "no/c.npz"], "E0611", 2),
    "compress-crossed-domain": (["compress", "--npz", "w.npz", "-o", "c.npz", "--domain", "1", "0"], "E0410", 2),
    "compress-nan-domain": (["compress", "--npz", "w.npz", "-o", "c.npz", "--domain", "nan", "1"], "E0109", 2),
    "compress-negative-time": (["compress", "--npz", "w.npz", "-o", "c.npz", "--time-limit", "-2"], "E0109", 2),
    "compress-unknown-solver": (["compress", "--npz", "w.npz", "-o", "c.npz", "--solver", "cplex"], "E0503", 3),
    "compress-two-networks": (["compress", "--npz", "w.npz", "--onnx", "net.onnx", "-o", "c.npz"], "E0104", 2),
    "compress-same-outputs": (["compress", "--npz", "w.npz", "-o", "c.npz", "-o", "c.npz"], "E0615", 2),
    "compress-json-over-input": (["compress", "--npz", "w.npz", "-o", "c.npz", "--json", "w.npz"], "E0613", 2),
    "verify-huge-jobs": (["verify", "--npz", "w.npz", "--points", "pts.csv", "--linf", "0.1", "--jobs",
                          "99999999999999999999"], "E0109", 2),
    "solve-huge-jobs": (["solve", "prog.nnmip", "--jobs", "100000"], "E0109", 2),
    "verify-point-and-vnnlib": (["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--linf", "0.1", "--vnnlib",
                                 "prop.vnnlib"], "E0104", 2),
    "verify-point-and-points": (["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--points", "pts.csv", "--linf",
                                 "0.1"], "E0104", 2),
    "verify-threshold-alone": (["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--linf", "0.1", "--threshold",
                                "1"], "E0104", 2),
    "verify-empty-maximize": (["verify", "--npz", "w.npz", "--point", "0.5,0.5", "--linf", "0.1", "--maximize", ""],
                              "E0109", 2),
    "verify-cex-and-json-stdout": (["verify", "--npz", "w.npz", "--vnnlib", "prop.vnnlib", "--counterexample", "-",
                                    "--json", "-"], "E0615", 2),
    "vnncomp-negative-seed": (["vnncomp", "sub", "--seed", "-1"], "E0109", 2),
    "vnncomp-unknown-solver": (["vnncomp", "sub", "--solver", "cplex"], "E0503", 3),
    "compile-json-numbered": (["compile", "prog.nnmip", "-o", "m.lp", "--json", "m.q0.lp"], "E0615", 2),
    "solve-weights-npy": (["solve", "prog.nnmip", "--save-weights", "w.npy"], "E0601", 2),
    "import-nan-domain": (["import", "net.onnx", "-o", "i.nnmip", "--domain", "nan", "1"], "E0109", 2),
    "import-negative-inline": (["import", "net.onnx", "-o", "i.nnmip", "--inline", "-1"], "E0109", 2),
    "bad-log-level": (["--log-level", "bogus", "check", "prog.nnmip"], "E0190", 2),
}


def flag_cases() -> list[Case]:
    files: dict[str, bytes | str] = {"sub/keep.txt": "x", "sub.lp/keep.txt": "x",
                                     "labels7.csv": "0.1,0.2,7\n0.9,0.8,1\n"}
    links = {"link.lp": "train.csv", "src.json": "prog.nnmip", "wlink.npz": "w.npz"}
    return [Case(f"flag-{k}", argv, files, code, exit=ex, symlinks=links) for k, (argv, code, ex) in FLAGS.items()]


# The Python API: every bad argument is an NnmipError with a code that names the argument.
def _train(**kw: object) -> Callable[[Path], object]:
    def call(tmp: Path) -> object:
        from nnmip.check import check
        from nnmip.drivers.train import train_network
        from nnmip.syntax import parse

        cp = check(parse(PROG, "prog.nnmip"), tmp)
        X = np.array([[0.1, 0.2], [0.9, 0.8], [0.2, 0.1], [0.8, 0.9]])
        y = np.array([0, 1, 0, 1])
        args: dict[str, object] = dict(loss="hamming", solver="highs")
        args.update(kw)
        Xa = args.pop("X", X)
        ya = args.pop("y", y)
        nc = args.pop("n_classes", 2)
        return train_network(cp.networks["n"], Xa, ya, nc, **args)  # type: ignore[arg-type]
    return call


def _estimator(**kw: object) -> Callable[[Path], object]:
    def call(tmp: Path) -> object:
        from nnmip.sklearn import BinarizedNetworkClassifier

        X = kw.pop("X", np.array([[0.1, 0.2], [0.9, 0.8], [0.2, 0.1], [0.8, 0.9]]))
        y = kw.pop("y", np.array([0, 1, 0, 1]))
        return BinarizedNetworkClassifier(**kw).fit(X, y)  # type: ignore[arg-type]
    return call


def _verify(sets: Callable[[], object], prop: Callable[[], object], **kw: object) -> Callable[[Path], object]:
    def call(tmp: Path) -> object:
        from nnmip.drivers.verify import verify

        return verify(fixed_net(), sets(), prop(), **kw)  # type: ignore[arg-type]
    return call


def _loader(fn: str, name: str) -> Callable[[Path], object]:
    def call(tmp: Path) -> object:
        if fn == "npz":
            from nnmip.io.weights import load_npz

            return load_npz(tmp / name)
        if fn == "onnx":
            from nnmip.io.onnx import import_onnx

            return import_onnx(tmp / name)
        if fn == "vnnlib":
            from nnmip.io.vnnlib import parse_vnnlib

            return parse_vnnlib(tmp / name)
        from nnmip.drivers.verify import load_points

        return load_points(tmp / name)
    return call


def _save(fn: str, target: str) -> Callable[[Path], object]:
    def call(tmp: Path) -> object:
        net = fixed_net()
        if fn == "npz":
            from nnmip.io.weights import save_npz

            return save_npz(net, tmp / target)  # type: ignore[arg-type]
        from nnmip.io.onnx import export_onnx

        return export_onnx(net, tmp / target)  # type: ignore[arg-type]
    return call


def _spec() -> object:
    from nnmip.ir import spec as vs

    return vs


API: dict[str, tuple[Callable[[Path], object], str | None]] = {
    "train-loss-mse": (_train(loss="mse"), "E0109"),
    "train-loss-none": (_train(loss=None), "E0109"),
    "train-solver-none": (_train(solver=None), "E0109"),
    "train-solver-unknown": (_train(solver="cplex"), "E0503"),
    "train-eps-negative": (_train(eps=-1.0), "E0109"),
    "train-eps-nan": (_train(eps=float("nan")), "E0109"),
    "train-l1-negative": (_train(l1=-1.0), "E0109"),
    "train-l1-inf": (_train(l1=float("inf")), "E0109"),
    "train-l1-string": (_train(l1="0.1"), "E0109"),
    "train-margin-zero": (_train(margin=0.0), "E0109"),
    "train-margin-negative": (_train(margin=-2.0), "E0109"),
    "train-classes-one": (_train(n_classes=1), "E0109"),
    "train-classes-float": (_train(n_classes=2.5), "E0109"),
    "train-x-nan": (_train(X=np.array([[np.nan, 0.1], [0.9, 0.8], [0.2, 0.1], [0.8, 0.9]])), "E0303"),
    "train-x-wide": (_train(X=np.ones((4, 3))), "E0122"),
    "train-x-1d": (_train(X=np.ones(4)), "E0122"),
    "train-y-short": (_train(y=np.array([0, 1])), "E0122"),
    "train-y-out-of-range": (_train(y=np.array([0, 1, 2, 5])), "E0305"),
    "train-y-negative": (_train(y=np.array([0, -1, 0, 1])), "E0305"),
    "train-y-float": (_train(y=np.array([0.5, 1.0, 0.0, 1.0])), "E0305"),
    "train-no-rows": (_train(X=np.ones((0, 2)), y=np.zeros(0, dtype=int)), "E0305"),
    "sk-loss-mse": (_estimator(loss="mse"), "E0109"),
    "sk-activation": (_estimator(activation="relu"), "E0109"),
    "sk-hidden-zero": (_estimator(hidden=(0,)), "E0109"),
    "sk-hidden-text": (_estimator(hidden="wide"), "E0109"),
    "sk-hidden-empty": (_estimator(hidden=()), "E0109"),
    "sk-hidden-huge": (_estimator(hidden=(10**12,)), "E0430"),
    "sk-weights-text": (_estimator(weights="real(-1, 1)"), "E0109"),
    "sk-weights-crossed": (_estimator(weights="real[1, -1]"), "E0109"),
    "sk-weights-tuple": (_estimator(weights=("real", 1)), "E0109"),
    "sk-bias-nan": (_estimator(bias=("real", float("nan"), 1.0)), "E0109"),
    "sk-scale": (_estimator(scale="log"), "E0109"),
    "sk-strategy": (_estimator(strategy="magic"), "E0109"),
    "sk-margin": (_estimator(margin=-1.0), "E0109"),
    "sk-eps": (_estimator(eps=-0.5), "E0109"),
    "sk-time-limit": (_estimator(time_limit=-1.0), "E0109"),
    "sk-time-limit-nan": (_estimator(time_limit=float("nan")), "E0109"),
    "sk-seed": (_estimator(seed=-3), "E0109"),
    "sk-seed-float": (_estimator(seed=1.5), "E0109"),
    "sk-solver-none": (_estimator(solver=None), "E0109"),
    "sk-one-class": (_estimator(y=np.array([1, 1, 1, 1])), "E0109"),
    "verify-negative-radius": (_verify(lambda: _spec().linf([0.5, 0.5], -0.1), lambda: _spec().classified(0)),
                               None),
    "verify-nan-center": (_verify(lambda: _spec().linf([np.nan, 0.5], 0.1), lambda: _spec().classified(0)),
                          "E0109"),
    "verify-wrong-width": (_verify(lambda: _spec().linf([0.5], 0.1), lambda: _spec().classified(0)), "E0412"),
    "verify-bad-class": (_verify(lambda: _spec().linf([0.5, 0.5], 0.1), lambda: _spec().classified(7)), "E0414"),
    "verify-crossed-box": (_verify(lambda: _spec().box([1.0, 1.0], [0.0, 0.0]), lambda: _spec().classified(0)),
                           None),
    "verify-unknown-solver": (_verify(lambda: _spec().linf([0.5, 0.5], 0.1), lambda: _spec().classified(0),
                                      solver="cplex"), "E0503"),
    "verify-unknown-tighten": (_verify(lambda: _spec().linf([0.5, 0.5], 0.1), lambda: _spec().classified(0),
                                       tighten="crown"), None),
    "load-npz-missing": (_loader("npz", "nope.npz"), "E0608"),
    "load-npz-csv": (_loader("npz", "train.csv"), "E0608"),
    "load-npz-pickle": (_loader("npz", "p.npz"), None),
    "load-npz-huge": (_loader("npz", "h.npz"), "E0311"),
    "load-onnx-missing": (_loader("onnx", "nope.onnx"), "E0703"),
    "load-onnx-csv": (_loader("onnx", "train.csv"), "E0703"),
    "load-onnx-folder": (_loader("onnx", "sub"), "E0703"),
    "load-vnnlib-missing": (_loader("vnnlib", "nope.vnnlib"), "E0710"),
    "load-vnnlib-folder": (_loader("vnnlib", "sub"), "E0710"),
    "load-points-missing": (_loader("points", "nope.csv"), "E0301"),
    "load-points-ragged": (_loader("points", "ragged.csv"), "E0310"),
    "save-npz-folder": (_save("npz", "sub"), "E0610"),
    "save-npz-missing-folder": (_save("npz", "no/w.npz"), "E0611"),
    "save-npz-source": (_save("npz", "prog.nnmip"), "E0603"),
    "save-onnx-folder": (_save("onnx", "sub"), "E0610"),
    "save-onnx-source": (_save("onnx", "prog.nnmip"), "E0603"),
}
API_FILES: dict[str, bytes | str] = {"sub/keep.txt": "x", "p.npz": npz_pickle(), "h.npz": npz_huge_member(),
                                     "ragged.csv": "1,2,0\n3,4\n"}


def api_cases() -> list[Case]:
    return [Case(f"api-{k}", None, API_FILES, code, call=fn) for k, (fn, code) in API.items()]


CASES = language_cases() + data_cases() + onnx_cases() + vnnlib_cases() + flag_cases() + api_cases()


def test_the_corpus_is_large() -> None:
    assert len(CASES) >= 400
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path) -> None:
    run_case(case, tmp_path)
