"""``nnmip verify``: single points, robust accuracy over a file, VNN-LIB, and verify statements of .nnmip files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from verify_nets import mlp_layers, mlp_onnx, ort_forward

from nnmip.check import check
from nnmip.cli import main
from nnmip.errors import CheckError
from nnmip.syntax import parse

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def onnx_net(tmp_path: Path) -> tuple[Path, onnx.ModelProto]:
    model = mlp_onnx(mlp_layers([4, 10, 10, 3], 3), "relu")
    p = tmp_path / "net.onnx"
    onnx.save(model, p)
    return p, model


def test_point_certified_and_counterexample(tmp_path: Path, onnx_net, capsys) -> None:
    path, model = onnx_net
    x0 = np.array([0.3, 0.6, 0.2, 0.8])
    np.save(tmp_path / "x.npy", x0)
    label = int(np.argmax(ort_forward(model, x0)))
    out = tmp_path / "r.json"
    rc = main(["verify", "--onnx", str(path), "--point", str(tmp_path / "x.npy"), "--linf", "0.01",
               "--domain", "0", "1", "--json", str(out)])
    assert rc == 0
    d = json.loads(out.read_text())
    for key in ("result", "bound", "counterexample", "seconds", "stable_units", "binaries"):
        assert key in d
    assert d["result"] == "certified"
    assert d["bound"] <= 0
    assert d["property"] == f"classified as {label}"
    # a big ball and a wrong label: a counterexample that onnxruntime confirms
    wrong = (label + 1) % 3
    rc = main(["verify", "--onnx", str(path), "--point", "0.3,0.6,0.2,0.8", "--linf", "0.5", "--label", str(wrong),
               "--domain", "0", "1", "--json", str(out)])
    assert rc == 0
    d = json.loads(out.read_text())
    assert d["result"] == "counterexample"
    y = ort_forward(model, np.array(d["counterexample"]))[0]
    assert np.delete(y, wrong).max() >= y[wrong]
    assert "counterexample:" in capsys.readouterr().out


def test_points_reports_robust_accuracy_and_per_point_json(tmp_path: Path, onnx_net, capsys) -> None:
    path, model = onnx_net
    X = np.random.default_rng(0).random((12, 4))
    y = np.argmax(ort_forward(model, X), axis=1)
    y[0] = (y[0] + 1) % 3                           # one wrong label: not robust, not verified
    np.savetxt(tmp_path / "pts.csv", np.column_stack([X, y]), delimiter=",")
    out = tmp_path / "p.json"
    rc = main(["verify", "--onnx", str(path), "--points", str(tmp_path / "pts.csv"), "--linf", "0.02",
               "--domain", "0", "1", "--json", str(out)])
    assert rc == 0
    captured = capsys.readouterr()
    assert "robust accuracy" in captured.out
    assert "12/12" in captured.err                  # the progress line
    d = json.loads(out.read_text())
    assert len(d["results"]) == 12
    assert d["points"] == 12
    assert d["results"][0]["result"] == "misclassified"
    assert not d["results"][0]["robust"]
    robust = sum(r["robust"] for r in d["results"])
    assert d["robust_accuracy"] == pytest.approx(robust / 12)
    for r in d["results"][1:]:
        assert r["result"] in ("certified", "counterexample")
        assert r["robust"] == (r["result"] == "certified")


def test_vnnlib_answers(tmp_path: Path, onnx_net, capsys) -> None:
    path, model = onnx_net
    head = "".join(f"(declare-const X_{i} Real)\n" for i in range(4)) + \
        "".join(f"(declare-const Y_{j} Real)\n" for j in range(3))
    box = "".join(f"(assert (>= X_{i} 0))\n(assert (<= X_{i} 1))\n" for i in range(4))
    X = np.random.default_rng(0).random((20000, 4))
    Y = ort_forward(model, X)
    top = float(np.max(Y[:, 2]))
    (tmp_path / "sat.vnnlib").write_text(head + box + f"(assert (>= Y_2 {top - 0.01}))\n")
    (tmp_path / "unsat.vnnlib").write_text(head + box + f"(assert (>= Y_2 {top + 5}))\n")
    ce = tmp_path / "ce.txt"
    assert main(["verify", "--onnx", str(path), "--vnnlib", str(tmp_path / "sat.vnnlib"), "--counterexample",
                 str(ce), "-q"]) == 0
    assert capsys.readouterr().out.strip() == "sat"
    text = ce.read_text()
    assert text.startswith("sat\n")
    x = np.array([float(line.strip().strip("()").split()[1]) for line in text.splitlines()[1:5]])
    assert ort_forward(model, x)[0, 2] >= top - 0.01
    assert main(["verify", "--onnx", str(path), "--vnnlib", str(tmp_path / "unsat.vnnlib"), "-q"]) == 0
    assert capsys.readouterr().out.strip() == "unsat"


def test_examples_run(tmp_path: Path, capsys) -> None:
    for name in ("verify_bcw.nnmip", "verify_onnx.nnmip"):
        out = tmp_path / "r.json"
        assert main(["verify", str(ROOT / "examples" / name), "--json", str(out)]) == 0
        d = json.loads(out.read_text())
        assert all(r["result"] in ("certified", "counterexample") for r in d["results"])
    text = capsys.readouterr().out
    assert "clf (line 15): certified" in text


def _check_codes(src: str, tmp_path: Path) -> list[tuple[str, int]]:
    (tmp_path / "w.npz").write_bytes(b"")
    np.savez(tmp_path / "w.npz", W=np.eye(2), b=np.zeros(2))
    with pytest.raises(CheckError) as e:
        check(parse(src, "t.nnmip"), tmp_path)
    return [(d.code, d.span.line) for d in e.value.diagnostics]


NET = 'network n(x: 2 real[0, 1]) { h = dense(x, 2, weights=load("w.npz", "W"), bias=load("w.npz", "b")) }\n'


@pytest.mark.parametrize(("body", "code"), [
    ("verify m { input x in linf(0.1, around=[0, 0]); property = classified(0) }", "E0102"),
    ("verify n { input x in linf(0.1, around=[0, 0]) }", "E0104"),
    ("verify n { property = classified(0) }", "E0104"),
    ("verify n { input x in ball(0.1); property = classified(0) }", "E0101"),
    ("verify n { input z in linf(0.1, around=[0, 0]); property = classified(0) }", "E0102"),
    ("verify n { input x in linf(0.1, around=[0, 0]); property = robust(0) }", "E0150"),
    ("verify n { input x in linf(0.1, around=[0, 0]); property = classified(0); speed = 3 }", "E0105"),
    ("verify n { input x in linf(0.1, around=[0, 0]); property = classified(0); tighten = fast }", "E0108"),
    ("verify n { input x in linf(-0.1, around=[0, 0]); property = classified(0) }", "E0109"),
    ("verify n { input x in linf(0.1, around=point(\"missing.npy\")); property = classified(0) }", "E0301"),
    ("verify k { model = onnx(\"missing.onnx\"); input x in box(lo=0, hi=1); property = classified(0) }",
     "E0301"),
])
def test_verify_statement_errors(body: str, code: str, tmp_path: Path) -> None:
    codes = _check_codes(NET + body, tmp_path)
    assert codes
    assert codes[0] == (code, 2)


def test_verify_statement_checks_clean(tmp_path: Path) -> None:
    np.savez(tmp_path / "w.npz", W=np.eye(2), b=np.zeros(2))
    src = NET + "verify n { input x in linf(0.1, around=[0.5, 0.5]); input x in l1(0.15, around=[0.5, 0.5])\n" \
                "property = maximize([1, -1], below=1); tighten = interval; time_limit = 5 }"
    cp = check(parse(src, "t.nnmip"), tmp_path)
    (spec,) = cp.verify_specs
    assert [s.kind for s in spec.sets] == ["linf", "l1"]
    assert spec.prop.kind == "maximize"
    assert spec.prop.threshold == 1.0
    assert spec.tighten == "interval"
    assert spec.time_limit == 5.0
    from nnmip.drivers.verify import run_verify_spec

    r = run_verify_spec(cp, spec)
    # y = x on [0, 1]^2: max x0 - x1 over the intersection is 0.15 < 1; interval bounds (tighten = interval)
    # already prove it (0.2 over the linf box), so no MILP runs
    assert r.result == "certified"
    # the interval bound 0.2 plus the outward safety margins 1e-7 (1 + |b|) of the two affine layers
    assert 0.15 <= r.bound <= 0.2 + 4e-7
    assert r.cases[0].decided_by in ("interval", "lp")


def test_json_to_stdout_is_pure_json(capsys) -> None:
    from nnmip.cli import main

    code = main(["verify", "--onnx", "examples/data/verify_bcw.onnx", "--point", "5,1,1,1,2,1,3,1,1",
                 "--linf", "0.5", "--domain", "1", "10", "--json", "-"])
    out, err = capsys.readouterr()
    assert code == 0
    d = json.loads(out)
    assert d["result"] == "certified"
    assert "certified" in err
