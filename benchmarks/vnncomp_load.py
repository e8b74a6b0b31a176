"""Load every ONNX network of VNN-COMP benchmark directories as shipped and print what nnmip makes of it.

For each ``*.onnx`` / ``*.onnx.gz`` file under each directory given (searched recursively; the family is the
directory's name): loaded or refused (with the error code and message), the IR's op kinds, the number of
activation units (ReLU, step, sign, sigmoid, tanh, max-pool outputs), the input and output widths and the load
time.  With ``--check`` each loaded network is also run on random inputs by onnxruntime and by nnmip's forward
pass and the largest difference is printed.

    python benchmarks/vnncomp_load.py BENCH_DIR [BENCH_DIR ...] [--check] [--json out.json]

A directory holding several families (one sub-directory each) may be given instead: every sub-directory that
holds ONNX files is a family.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from nnmip.errors import NnmipError
from nnmip.io.onnx import import_onnx

UNIT_KINDS = ("relu", "step", "sign", "maxpool", "sigmoid", "tanh")


def networks(root: Path) -> list[tuple[str, Path]]:
    """``(family, file)`` for every ONNX file under ``root`` (families are the sub-directories, if any)."""
    files = sorted(p for p in root.rglob("*") if p.name.endswith((".onnx", ".onnx.gz")))
    subdirs = sorted({p.relative_to(root).parts[0] for p in files if len(p.relative_to(root).parts) > 1})
    top_level_files = [p for p in files if p.parent == root]
    if top_level_files or not subdirs:
        return [(root.name, p) for p in files]
    fam_has_instances = {d: any((root / d).glob("*instances.csv")) for d in subdirs}
    if not any(fam_has_instances.values()):
        return [(root.name, p) for p in files]
    return [(p.relative_to(root).parts[0], p) for p in files]


def check_ort(path: Path, net: Any, n: int = 32, seed: int = 0) -> float:
    """Largest absolute difference between onnxruntime and the forward pass on ``n`` random inputs."""
    import onnxruntime as ort

    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    shapes = net.source_shapes
    inp = sess.get_inputs()[0]
    dtype = np.float64 if "double" in inp.type else np.float32
    rng = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(n):
        x = rng.uniform(-1.0, 1.0, size=net.n_inputs)
        out = sess.run([shapes["output_name"]], {inp.name: x.reshape(shapes["input"]).astype(dtype)})[0]
        worst = max(worst, float(np.max(np.abs(np.asarray(out, np.float64).ravel() - net.forward(x[None, :])[0]))))
    return worst


def load_one(family: str, path: Path, check: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    row: dict[str, Any] = {"family": family, "network": path.name}
    try:
        net, scaler = import_onnx(path)
    except NnmipError as e:
        row.update(result="refused", seconds=time.perf_counter() - t0, code=e.diagnostics[0].code if
                   e.diagnostics else e.code, message=str(e))
        return row
    secs = time.perf_counter() - t0
    kinds = collections.Counter(op.kind for _, op in net.items() if op.kind != "input")
    units = sum(net.dim(n) for n, op in net.items() if op.kind in UNIT_KINDS)
    row.update(result="loaded", seconds=secs, ops=dict(kinds), units=units, inputs=net.n_inputs,
               outputs=net.n_outputs, scaler=scaler is not None, notes=net.notes)
    if check:
        from nnmip.drivers.verify import fold_scaler

        row["max_abs_diff_vs_onnxruntime"] = check_ort(path, fold_scaler(net, scaler))
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dirs", nargs="+", type=Path, help="benchmark directories")
    ap.add_argument("--check", action="store_true", help="compare each loaded network with onnxruntime")
    ap.add_argument("--json", type=Path, help="write the rows as JSON")
    a = ap.parse_args(argv)
    rows = []
    for d in a.dirs:
        for family, path in networks(d):
            rows.append(load_one(family, path, a.check))
    head = f"{'family':<10} {'network':<40} {'result':<8} {'in':>5} {'out':>4} {'units':>6} {'load s':>7}  ops"
    print(head)
    print("-" * len(head))
    for r in rows:
        if r["result"] == "loaded":
            ops = ", ".join(f"{k} {v}" for k, v in sorted(r["ops"].items()))
            extra = f"  (max |diff| vs onnxruntime {r['max_abs_diff_vs_onnxruntime']:.1e})" \
                if "max_abs_diff_vs_onnxruntime" in r else ""
            print(f"{r['family']:<10} {r['network']:<40} {'loaded':<8} {r['inputs']:>5} {r['outputs']:>4} "
                  f"{r['units']:>6} {r['seconds']:>7.2f}  {ops}{extra}")
        else:
            print(f"{r['family']:<10} {r['network']:<40} {'refused':<8} {'':>5} {'':>4} {'':>6} "
                  f"{r['seconds']:>7.2f}  {r['code']}: {r['message']}")
    loaded = sum(r["result"] == "loaded" for r in rows)
    print(f"\n{loaded} of {len(rows)} networks loaded")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
