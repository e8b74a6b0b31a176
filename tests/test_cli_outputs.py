"""Outputs never land on inputs, and are checked before the work: the result files of ``nnmip vnncomp``, the
numbered model files of ``nnmip compile``, error reports written before the inputs are known, folders that refuse
new files although their permissions say otherwise, and the outputs that can still be written when one cannot."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from cli_cases import SMALL, SMALL_DATA, bcw_bench, run
from conftest import EXAMPLES


# -- nnmip vnncomp: the instance list, the networks and the properties are inputs ------------------------------
def test_vnncomp_never_writes_its_summary_over_the_instance_list(tmp_path: Path, capsys) -> None:
    d = bcw_bench(tmp_path)
    shutil.copy(d / "instances.csv", d / "summary.csv")
    code, _, err = run(["vnncomp", str(d), "--instances", str(d / "summary.csv"), "--results-dir", str(d), "-q"],
                       capsys)
    assert code == 2
    assert "error[E0613]" in err
    assert "summary.csv" in err
    assert (d / "summary.csv").read_text() == "net.onnx,prop.vnnlib,30\n"
    assert not (d / "summary.json").exists()      # refused before any instance ran


def test_vnncomp_never_replaces_a_property_by_a_result_file(tmp_path: Path, capsys) -> None:
    d = bcw_bench(tmp_path)
    # instance 0's result file is 0000_net_prop.txt: here that is the property of instance 1
    shutil.copy(d / "prop.vnnlib", d / "0000_net_prop.txt")
    (d / "list.csv").write_text("net.onnx,prop.vnnlib,30\nnet.onnx,0000_net_prop.txt,30\n")
    before = (d / "0000_net_prop.txt").read_bytes()
    code, _, err = run(["vnncomp", str(d), "--instances", str(d / "list.csv"), "--results-dir", str(d), "-q"],
                       capsys)
    assert code == 2
    assert "error[E0613]" in err
    assert "0000_net_prop.txt" in err
    assert (d / "0000_net_prop.txt").read_bytes() == before
    assert not (d / "summary.csv").exists()


def test_vnncomp_results_over_a_network_are_refused_in_python(tmp_path: Path) -> None:
    from nnmip.drivers.vnncomp import run_family
    from nnmip.errors import NnmipError

    d = bcw_bench(tmp_path)
    (d / "list.csv").write_text("net.onnx,prop.vnnlib,30\n")
    shutil.copy(d / "net.onnx", d / "summary.json")
    (d / "list2.csv").write_text("summary.json,prop.vnnlib,30\n")
    with pytest.raises(NnmipError) as info:
        run_family(d, instances_csv=d / "list2.csv", results_dir=d)
    assert info.value.diagnostics[0].code == "E0613"
    assert (d / "summary.json").read_bytes() == (d / "net.onnx").read_bytes()


# -- nnmip compile: --json against the numbered model files ----------------------------------------------------
def test_compile_json_may_not_name_a_numbered_model_file(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("v.q0.lp", "v.q2.lp", "v.q1.c3.lp", "./v.q0.lp"):
        code, _, err = run(["compile", str(EXAMPLES / "verify_bcw.nnmip"), "-o", "v.lp", "--json", name], capsys)
        assert code == 2
        assert "error[E0615]" in err
        assert "help:" in err
        assert sorted(os.listdir(tmp_path)) == []       # refused before any model was built or written
    code, _, _ = run(["compile", str(EXAMPLES / "verify_bcw.nnmip"), "-o", "v.lp", "--json", "v.json"], capsys)
    assert code == 0
    assert len(json.loads(Path("v.json").read_text())["files"]) == 3
    assert Path("v.q0.lp").read_text().lstrip().startswith("\\")      # an LP file, not the JSON


# -- error reports written before the inputs are known --------------------------------------------------------
def test_error_json_is_not_written_through_a_symlink_onto_the_data(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("d3.csv").write_text(SMALL_DATA)
    Path("s.json").symlink_to("d3.csv")
    Path("ss.nnmip").write_text(SMALL.replace('"d.csv"', '"d3.csv"') + "}\n")
    code, _, err = run(["solve", "ss.nnmip", "--json", "s.json"], capsys)
    assert code == 2
    assert "error[E0001]" in err
    assert Path("d3.csv").read_text() == SMALL_DATA
    assert os.readlink("s.json") == "d3.csv"


def test_error_json_replaces_a_report_but_not_a_data_file_named_json(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("dd.json").write_text(SMALL_DATA)
    Path("sj.nnmip").write_text(SMALL.replace('"d.csv"', '"dd.json"') + "}\n")
    code, _, _ = run(["solve", "sj.nnmip", "--json", "dd.json"], capsys)
    assert code == 2
    assert Path("dd.json").read_text() == SMALL_DATA
    # the report of an earlier run is replaced by the error
    Path("r.json").write_text('{"status": "optimal"}\n')
    assert run(["solve", "sj.nnmip", "--json", "r.json"], capsys)[0] == 2
    report = json.loads(Path("r.json").read_text())
    assert report["status"] == "error"
    assert report["errors"][0]["code"] == "E0001"


def test_a_bad_option_still_writes_the_error_json(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("d.csv").write_text(SMALL_DATA)
    Path("small.nnmip").write_text(SMALL)
    Path("o.json").write_text('{"status": "optimal"}\n')
    code, _, err = run(["solve", "small.nnmip", "--json", "o.json", "--bogus"], capsys)
    assert code == 2
    assert "error[E0190]" in err
    report = json.loads(Path("o.json").read_text())
    assert report["status"] == "error"
    assert report["errors"][0]["code"] == "E0190"
    # an input named on the command line is never the target of the report
    code, _, _ = run(["predict", "o.json", "d.csv", "--json", "o.json", "--bogus"], capsys)
    assert code == 2
    assert json.loads(Path("o.json").read_text()) == report


# -- folders that take no new file ----------------------------------------------------------------------------
@pytest.mark.skipif(not os.path.isdir("/sys/kernel") or os.geteuid() != 0,
                    reason="needs /sys and root (to whom the permissions of /sys say 'writable')")
def test_an_output_in_sys_is_refused_before_the_solve(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("d.csv").write_text(SMALL_DATA)
    Path("small.nnmip").write_text(SMALL)
    code, _, err = run(["solve", "small.nnmip", "--json", "/sys/result.json"], capsys)
    assert code == 2
    assert "error[E0612]" in err
    assert "training 'n'" not in err      # before the solve


def test_a_folder_that_refuses_the_temporary_file_is_e0612(tmp_path: Path, monkeypatch) -> None:
    import tempfile

    from nnmip.io import safe

    target = tmp_path / "r.json"
    target.write_text("old\n")

    def refuse(*args: object, **kwargs: object) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(safe, "_can_create_in", lambda folder: True)     # the check passed; the folder changed
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
    with pytest.raises(safe.OutputError) as info:
        safe.write_text(target, "new\n", "--json")
    assert info.value.diagnostics[0].code == "E0612"
    assert "help:" in info.value.diagnostics[0].notes[-1]
    assert target.read_text() == "old\n"


def test_an_output_that_fails_stops_no_other(tmp_path: Path, capsys, monkeypatch) -> None:
    """``--save-weights`` that cannot be written at the end: the JSON and the ONNX file are written all the same."""
    from nnmip.io import safe, weights

    monkeypatch.chdir(tmp_path)
    Path("d.csv").write_text(SMALL_DATA)
    Path("small.nnmip").write_text(SMALL)

    def full_disk(net: object, path: str, *args: object, **kwargs: object) -> None:
        raise safe.OutputError.at("E0614", f"--save-weights: cannot write '{path}': No space left on device")

    monkeypatch.setattr(weights, "save_npz", full_disk)
    code, _, err = run(["solve", "small.nnmip", "-q", "--save-weights", "w.npz", "--save-onnx", "w.onnx",
                        "--json", "r.json"], capsys)
    assert code == 2
    assert "error[E0614]" in err
    assert not Path("w.npz").exists()
    assert Path("w.onnx").stat().st_size > 0
    report = json.loads(Path("r.json").read_text())
    assert report["onnx_file"] == "w.onnx"
    assert "weights_file" not in report
