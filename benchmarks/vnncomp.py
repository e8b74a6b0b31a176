"""Score ``nnmip vnncomp`` results against the competition's answers, and confirm every counterexample.

For each instance of each results folder (the ``summary.json`` that ``nnmip vnncomp`` writes) the answer is
compared with the official one (``official_results.json``, keys ``family|network|property``; the official
answer is the one the competition's tools agreed on, ``conflict`` where they did not -- such instances are
counted but not scored).  Every ``sat`` answer is confirmed independently of nnmip's forward pass: the
counterexample of the result file is fed to **onnxruntime on the original ONNX file** (``.onnx.gz`` read as
shipped), and the property is checked on onnxruntime's output: the input within the property's bounds up to
``TOL_IN`` and every row of one unsafe case ``g(y) <= TOL_OUT`` (the float32 network rounds differently from
the float64 forward pass).  An answer that contradicts the official one, or a counterexample that does not
confirm, counts as **wrong**.

::

    python benchmarks/vnncomp.py RESULTS_DIR [RESULTS_DIR ...] --official official_results.json [--json OUT]

Prints one row per family: instances, loaded, answered (sat + unsat), agreed, wrong, counterexamples confirmed,
and the wall-clock time (total and per instance).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

TOL_IN = 1e-6
TOL_OUT = 1e-4


def read_counterexample(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """``(X, Y)`` from a result file ``sat`` ``((X_0 v) ... (Y_0 v))``; None when it holds no assignment."""
    text = path.read_text(encoding="utf-8")
    xs: dict[int, float] = {}
    ys: dict[int, float] = {}
    for kind, i, v in re.findall(r"\(\s*([XY])_(\d+)\s+([^\s()]+)\s*\)", text):
        (xs if kind == "X" else ys)[int(i)] = float(v)
    if not xs:
        return None
    X = np.array([xs[i] for i in range(len(xs))])
    Y = np.array([ys[i] for i in range(len(ys))])
    return X, Y


def _onnx_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def ort_output(onnx_path: Path, x: np.ndarray) -> np.ndarray:
    """The original network's output at ``x`` (reshaped to the model's input shape, batch 1) by onnxruntime."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(_onnx_bytes(onnx_path), so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
    dtype = np.float64 if "double" in inp.type else np.float32
    if int(np.prod(shape)) != x.size:
        shape = [1, x.size]
    out = sess.run(None, {inp.name: x.reshape(shape).astype(dtype)})[0]
    return np.asarray(out, dtype=np.float64).ravel()


def _vnnlib(path: Path) -> Any:
    from nnmip.io.vnnlib import parse_vnnlib

    if path.suffix == ".gz":
        return parse_vnnlib(str(path), gzip.decompress(path.read_bytes()).decode("utf-8"))
    return parse_vnnlib(path)


def confirm(onnx_path: Path, vnnlib_path: Path, x: np.ndarray) -> tuple[bool, str]:
    """Whether onnxruntime's output at ``x`` violates the property (within the tolerances); and why not."""
    vp = _vnnlib(vnnlib_path)
    if x.size != vp.n_inputs:
        return False, f"{x.size} inputs, the property has {vp.n_inputs}"
    y = ort_output(onnx_path, x)
    if y.size != vp.n_outputs:
        return False, f"{y.size} outputs, the property has {vp.n_outputs}"
    for vc in vp.cases:
        if np.any(x < vc.lo - TOL_IN) or np.any(x > vc.hi + TOL_IN):
            continue
        if any(s.kind == "halfspaces" and np.any(s.A @ x > s.b + TOL_IN) for s in vc.sets):
            continue
        for cs in vc.prop.raw_cases:
            if np.all(cs.G @ y + cs.h <= TOL_OUT):
                return True, ""
    return False, "onnxruntime's output does not violate the property at the counterexample"


def score(results_dirs: list[Path], official: dict[str, Any]) -> dict[str, Any]:
    """Per-family counts and per-instance rows."""
    fams: dict[str, dict[str, Any]] = {}
    rows = []
    for d in results_dirs:
        summary = json.loads((d / "summary.json").read_text(encoding="utf-8"))
        bench = Path(summary["run"]["bench"])
        from nnmip.drivers.vnncomp import find_instances_csv, read_instances

        csv_path = Path(summary["run"]["instances"]) if summary["run"].get("instances") else \
            find_instances_csv(bench)
        paths = {i.key: i for i in read_instances(bench, csv_path)}
        for r in summary["results"]:
            f = fams.setdefault(r["family"], {"instances": 0, "loaded": 0, "answered": 0, "sat": 0, "unsat": 0,
                                               "agreed": 0, "wrong": 0, "confirmed": 0, "no_official": 0,
                                               "seconds": 0.0, "timeouts": []})
            f["instances"] += 1
            f["loaded"] += bool(r["loaded"])
            f["seconds"] += float(r["seconds"])
            f["timeouts"].append(float(r["timeout"]))
            off = official.get(r["key"], {}).get("official")
            ans = r["result"]
            row = {"key": r["key"], "result": ans, "official": off, "seconds": r["seconds"], "wrong": False,
                   "confirmed": None, "why": ""}
            if ans in ("sat", "unsat"):
                f["answered"] += 1
                f[ans] += 1
                if off not in ("sat", "unsat"):
                    f["no_official"] += 1
                elif off == ans:
                    f["agreed"] += 1
                else:
                    row["wrong"], row["why"] = True, f"official answer is {off}"
            if ans == "sat":
                inst = paths[r["key"]]
                rf = Path(r["result_file"])
                if not rf.is_absolute() and not rf.exists():   # scored from another folder than the run's
                    rf = d / rf.name
                cex = read_counterexample(rf)
                ok, why = (False, "no counterexample in the result file") if cex is None else \
                    confirm(bench / inst.onnx, bench / inst.vnnlib, cex[0])
                row["confirmed"] = ok
                if ok:
                    f["confirmed"] += 1
                elif not row["wrong"]:
                    row["wrong"], row["why"] = True, why
                    if off == "sat":
                        f["agreed"] -= 1
            if row["wrong"]:
                f["wrong"] += 1
            rows.append(row)
    for f in fams.values():
        t = f.pop("timeouts")
        f["timeout_total"] = round(float(np.sum(t)), 1)
        f["seconds"] = round(f["seconds"], 1)
    return {"families": fams, "instances": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", type=Path, help="folders written by nnmip vnncomp")
    p.add_argument("--official", type=Path, required=True, help="the competition's official_results.json")
    p.add_argument("--json", type=Path, help="write the scores as JSON")
    a = p.parse_args(argv)
    from nnmip.io.safe import check_writable, write_text

    if a.json:
        check_writable(a.json, "--json")    # refused before any work, not after it
    official = json.loads(a.official.read_text(encoding="utf-8"))
    out = score(a.results, official)
    print("| family | instances | loaded | answered | sat | unsat | agreed | wrong | cex confirmed | time (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, f in out["families"].items():
        print(f"| {name} | {f['instances']} | {f['loaded']} | {f['answered']} | {f['sat']} | {f['unsat']} | "
              f"{f['agreed']} | {f['wrong']} | {f['confirmed']}/{f['sat']} | {f['seconds']} |")
    for r in out["instances"]:
        if r["wrong"]:
            print(f"WRONG {r['key']}: {r['result']} ({r['why']})", file=sys.stderr)
    if a.json:
        write_text(a.json, json.dumps(out, indent=2) + "\n")
    return 1 if any(f["wrong"] for f in out["families"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
