"""Bad input is a located user error with exit code 2, never an internal error: instance lists of ``nnmip vnncomp``
(timeouts, bytes that are not text, a byte-order mark), ONNX files whose tensors do not fit what they declare, and
files that start with a UTF-8 byte-order mark."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from cli_cases import bcw_bench, bcw_vnnlib, run
from conftest import EXAMPLES
from onnx import TensorProto, helper, numpy_helper


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    return bcw_bench(tmp_path)


# -- instance lists -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("timeout", ["nan", "inf", "-inf", "-5", "0", "1e400"])
def test_a_timeout_that_is_no_duration_is_located(bench: Path, capsys, timeout: str) -> None:
    (bench / "list.csv").write_text(f"net.onnx,prop.vnnlib,30\nnet.onnx,prop.vnnlib,{timeout}\n")
    code, _, err = run(["vnncomp", str(bench), "--instances", str(bench / "list.csv"), "--results-dir",
                        str(bench.parent / "r")], capsys)
    assert code == 2
    assert "list.csv:2:1: error[E0313]" in err
    assert "help: the third column is the timeout in seconds" in err
    assert not (bench.parent / "r").exists()


def test_a_timeout_scale_that_overflows_is_located(bench: Path, capsys) -> None:
    code, _, err = run(["vnncomp", str(bench), "--timeout-scale", "1e308", "--results-dir", str(bench.parent / "r")],
                       capsys)
    assert code == 2
    assert "instances.csv:1:1: error[E0313]" in err
    assert "--timeout-scale" in err
    code, _, err = run(["vnncomp", str(bench), "--timeout", "5", "--timeout-scale", "1e308", "--results-dir",
                        str(bench.parent / "r")], capsys)
    assert code == 2
    assert "error[E0109]" in err
    assert not (bench.parent / "r").exists()


@pytest.mark.parametrize("content", [b"\x83\xff\x00 not text",
                                     b"net.onnx,prop.vnnlib,30\nnet.onnx,prop\x00.vnnlib,30\n",
                                     "net.onnx,prop.vnnlib,30\n".encode("utf-16")])
def test_a_list_that_is_not_text_is_e0313(bench: Path, capsys, content: bytes) -> None:
    (bench / "list.csv").write_bytes(content)
    code, _, err = run(["vnncomp", str(bench), "--instances", str(bench / "list.csv"), "--results-dir",
                        str(bench.parent / "r")], capsys)
    assert code == 2
    assert "error[E0313]" in err
    assert "list.csv" in err
    assert "help:" in err


def test_a_binary_file_as_the_list(bench: Path, capsys) -> None:
    code, _, err = run(["vnncomp", str(bench), "--instances", str(bench / "net.onnx"), "--results-dir",
                        str(bench.parent / "r")], capsys)
    assert code == 2
    assert "net.onnx:1:" in err
    assert "error[E0313]" in err


def test_a_byte_order_mark_before_the_list_is_skipped(bench: Path) -> None:
    from nnmip.drivers.vnncomp import read_instances

    (bench / "bom.csv").write_bytes(b"\xef\xbb\xbfnet.onnx,prop.vnnlib,30\r\nnet.onnx,prop.vnnlib,20\r\n")
    insts = read_instances(bench, bench / "bom.csv")
    assert [(i.onnx, i.vnnlib, i.timeout, i.line) for i in insts] == [("net.onnx", "prop.vnnlib", 30.0, 1),
                                                                      ("net.onnx", "prop.vnnlib", 20.0, 2)]


# -- byte-order marks in .nnmip and VNN-LIB files -------------------------------------------------------------------
def test_a_nnmip_file_may_start_with_a_byte_order_mark(tmp_path: Path, capsys) -> None:
    text = (EXAMPLES / "verify_bcw.nnmip").read_text(encoding="utf-8")
    src = tmp_path / "bom.nnmip"
    src.write_bytes(b"\xef\xbb\xbf" + text.replace('"data/', f'"{EXAMPLES}/data/').encode())
    code, out, err = run(["check", str(src)], capsys)
    assert code == 0, err
    assert "ok" in out
    src.write_bytes(b"\xef\xbb\xbf}\n")      # an error after the mark is located as in any file
    code, _, err = run(["check", str(src)], capsys)
    assert code == 2
    assert "bom.nnmip:1:1: error[E0001]: unexpected '}'" in err


def test_a_vnnlib_file_may_start_with_a_byte_order_mark(bench: Path, capsys) -> None:
    (bench / "bom.vnnlib").write_bytes(b"\xef\xbb\xbf" + bcw_vnnlib().encode())
    code, out, err = run(["verify", "--onnx", str(bench / "net.onnx"), "--vnnlib", str(bench / "bom.vnnlib"), "-q"],
                         capsys)
    assert code == 0, err
    assert out.strip() == "unsat"


# -- ONNX files that do not hold what they declare ------------------------------------------------------------------
def save(path: Path, nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], shape: list[int] | None) -> str:
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return str(path)


def matmul(w: onnx.TensorProto, *rest: onnx.NodeProto) -> list[onnx.NodeProto]:
    return [helper.make_node("MatMul", ["x", w.name], ["h" if rest else "y"]), *rest]


def short_tensor() -> onnx.TensorProto:
    t = TensorProto()
    t.name, t.data_type = "W", TensorProto.FLOAT
    t.dims.extend([100000, 100000])
    t.raw_data = b"\0" * 16
    return t


ONNX_CASES = {   # name: (nodes, initializers, input shape, expected code)
    "rank-0-input": (lambda: matmul(numpy_helper.from_array(np.ones((2, 3), np.float32), "W")),
                     lambda: [numpy_helper.from_array(np.ones((2, 3), np.float32), "W")], [], "E0702"),
    "no-units": (lambda: matmul(numpy_helper.from_array(np.ones((2, 0), np.float32), "W")),
                 lambda: [numpy_helper.from_array(np.ones((2, 0), np.float32), "W")], [1, 2], "E0702"),
    "tensor-shorter-than-its-shape": (lambda: matmul(short_tensor()), lambda: [short_tensor()], [1, 100000],
                                      "E0703"),
    "weights-beyond-1e9": (lambda: matmul(numpy_helper.from_array(np.full((2, 3), 1e38, np.float32), "W"),
                                          helper.make_node("Relu", ["h"], ["y"])),
                           lambda: [numpy_helper.from_array(np.full((2, 3), 1e38, np.float32), "W")], [1, 2],
                           "E0133"),
}


@pytest.mark.parametrize("case", sorted(ONNX_CASES))
def test_an_onnx_file_that_cannot_be_used_is_a_located_error(tmp_path: Path, capsys, case: str) -> None:
    nodes, inits, shape, code = ONNX_CASES[case]
    path = save(tmp_path / f"{case}.onnx", nodes(), inits(), shape)
    rc, _, err = run(["verify", "--onnx", path, "--point", "1,1", "--linf", "0.1"], capsys)
    assert rc == 2, err
    assert f"{case}.onnx: error[{code}]" in err
    assert "help:" in err
    rc, _, err = run(["compress", "--onnx", path, "-o", str(tmp_path / "c.onnx")], capsys)
    assert rc == 2, err
    assert f"error[{code}]" in err
    assert not (tmp_path / "c.onnx").exists()
