"""Verification solves with and without branching priorities on the earliest layers' unstable units.

20-64-64-2 ReLU networks (the seeded ONNX MLPs of ``benchmarks/verify_omlt.py``, seeds 100..), an linf ball of
radius eps around a random point of [0, 1]^20; the question max ``y_other - y_c`` solved to a relative gap of
1e-6 (one thread) by ``verify`` with ``method={"branching": "none"}`` and ``{"branching": "layers"}``, for each
solver that takes priorities (Gurobi, SCIP; HiGHS and CBC have none), the two runs of an instance back to back
with the order alternating.  Wall and CPU seconds; where both finish the optima must agree to 1e-6::

    python benchmarks/branching.py [--solvers gurobi,scip] [--instances 10] [--eps 0.1] [--time-limit 60]
        [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from verify_omlt import small_question  # noqa: E402

from nnmip.backends import is_installed  # noqa: E402
from nnmip.drivers.verify import verify  # noqa: E402
from nnmip.io.safe import check_writable, write_text  # noqa: E402
from nnmip.ir.spec import linf, maximize  # noqa: E402
from nnmip.solution import SolveOptions  # noqa: E402


def run(net: Any, x0: np.ndarray, eps: float, coef: np.ndarray, solver: str, branching: str,
        limit: float) -> dict[str, Any]:
    w0, c0 = time.perf_counter(), time.process_time()
    r = verify(net, [linf(x0, eps)], maximize(coef), domain=(0, 1), samples=0, time_limit=limit, solver=solver,
               options=SolveOptions(threads=1, mip_gap=1e-6), method={"branching": branching})
    return {"wall": time.perf_counter() - w0, "cpu": time.process_time() - c0, "value": r.value,
            "bound": r.bound, "timed_out": r.timed_out}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--solvers", default="gurobi,scip")
    ap.add_argument("--instances", type=int, default=10)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--json", metavar="OUT")
    a = ap.parse_args(argv)
    if a.json:
        check_writable(a.json, "--json")    # refused before any work, not after it
    solvers = []
    for s in a.solvers.split(","):
        if is_installed(s):
            solvers.append(s)
        else:
            print(f"skipping {s}: its python module is not installed", file=sys.stderr)
    out: dict[str, Any] = {"machine": {"python": platform.python_version(), "platform": platform.platform(),
                                       "load": os.getloadavg()}, "rows": []}
    ok = True
    for solver in solvers:
        for seed in range(a.instances):
            _, net, x0, _, _, coef = small_question(seed)
            order = ("none", "layers") if seed % 2 == 0 else ("layers", "none")
            row: dict[str, Any] = {"solver": solver, "seed": seed}
            for b in order:
                row[b] = run(net, x0, a.eps, coef, solver, b, a.time_limit)
            n, g = row["none"], row["layers"]
            if not (n["timed_out"] or g["timed_out"]):
                ok &= abs(n["value"] - g["value"]) <= 1e-6 * (1 + abs(n["value"]))
            out["rows"].append(row)
            print(f"{solver} seed {seed}: off {n['cpu']:.2f}s CPU ({n['wall']:.2f}s wall) bound {n['bound']:.6f}"
                  f"{' (limit)' if n['timed_out'] else ''} | layers {g['cpu']:.2f}s CPU ({g['wall']:.2f}s wall) "
                  f"bound {g['bound']:.6f}{' (limit)' if g['timed_out'] else ''} | CPU ratio on/off "
                  f"{g['cpu'] / n['cpu']:.2f}", flush=True)
        rs = [r for r in out["rows"] if r["solver"] == solver]
        print(f"{solver}: median CPU off {statistics.median(r['none']['cpu'] for r in rs):.2f}s, on "
              f"{statistics.median(r['layers']['cpu'] for r in rs):.2f}s; median CPU ratio on/off "
              f"{statistics.median(r['layers']['cpu'] / r['none']['cpu'] for r in rs):.2f}; finished off "
              f"{sum(not r['none']['timed_out'] for r in rs)}/{len(rs)}, on "
              f"{sum(not r['layers']['timed_out'] for r in rs)}/{len(rs)}", flush=True)
    out["load_after"] = os.getloadavg()
    if a.json:
        write_text(a.json, json.dumps(out, indent=1, default=float))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
