"""What the command-line tests share: running ``nnmip`` in-process with no internal error, a small training
program with its data, and a one-instance VNN-COMP family on the bundled BCW network."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import EXAMPLES

from nnmip.cli import main

#: a point of the BCW data (raw features) and the bundled network that classifies it
BCW_X0 = [5, 1, 1, 1, 2, 1, 3, 1, 1]
BCW_ONNX = EXAMPLES / "data" / "verify_bcw.onnx"

#: a two-input step network trained on XOR (``d.csv``: SMALL_DATA)
SMALL = """\
data d = csv("d.csv", label=-1)
network n(x: 2) {
    h = dense(x, 2, weights=real[-1, 1], bias=real[-1, 1])
    a = step(h)
    o = dense(a, 1, weights=int[-1, 1], bias=real[-1, 1])
    y = step(o)
}
train n on d { loss = hamming }
"""
SMALL_DATA = "0,0,0\n0,1,1\n1,0,1\n1,1,0\n"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit code, standard output and standard error of ``nnmip ARGV``, which must not end in an internal error."""
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert "E0900" not in err
    return code, out, err


def bcw_vnnlib() -> str:
    """A VNN-LIB property on the BCW network: a box of half-width 0.5 around BCW_X0, unsafe where y1 >= y0."""
    lines = [f"(declare-const X_{i} Real)" for i in range(9)] + ["(declare-const Y_0 Real)", "(declare-const Y_1 Real)"]
    lines += [f"(assert (<= X_{i} {v + 0.5}))" for i, v in enumerate(BCW_X0)]
    lines += [f"(assert (>= X_{i} {v - 0.5}))" for i, v in enumerate(BCW_X0)]
    return "\n".join([*lines, "(assert (>= Y_1 Y_0))"]) + "\n"


def bcw_bench(root: Path) -> Path:
    """``root/bench``: a family of one instance, the BCW network and :func:`bcw_vnnlib`, with a 30 s timeout."""
    d = root / "bench"
    d.mkdir()
    shutil.copy(BCW_ONNX, d / "net.onnx")
    (d / "prop.vnnlib").write_text(bcw_vnnlib())
    (d / "instances.csv").write_text("net.onnx,prop.vnnlib,30\n")
    return d
