"""Verification solves with the big-M ReLU formulation, ideal ReLU cuts at the root (§18) and the extended
formulation (§19), side by side.

20-64-64-2 ReLU networks (the seeded ONNX MLPs of ``benchmarks/verify_omlt.py``, seeds 100..), an linf ball of
radius eps around a random point of [0, 1]^20; the question max ``y_other - y_c`` solved to optimality with HiGHS
(one thread) by ``verify`` with ``method={"relu": f}`` for each formulation ``f`` of ``--formulations`` (default
``bigm,ideal-cuts``), the runs of an instance back to back with the order rotating.  All optima must agree to
1e-6.  ``--solver gurobi --cuts tree``
measures the cuts also offered in Gurobi's tree (``method={"cuts": "tree"}``)::

    python benchmarks/relu_cuts.py [--instances 10] [--eps 0.1] [--time-limit 120] [--solver highs]
        [--cuts root|tree] [--formulations bigm,ideal-cuts,extended] [--sizes 20 64 64 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from verify_omlt import small_question  # noqa: E402

from nnmip.drivers.verify import verify  # noqa: E402
from nnmip.io.safe import check_writable, write_text  # noqa: E402
from nnmip.ir.spec import linf, maximize  # noqa: E402
from nnmip.solution import SolveOptions  # noqa: E402


def run(net: object, x0: np.ndarray, eps: float, coef: np.ndarray, relu: str, limit: float, solver: str = "highs",
        cuts: str = "root") -> dict[str, object]:
    t0, c0 = time.perf_counter(), time.process_time()
    r = verify(net, [linf(x0, eps)], maximize(coef), domain=(0, 1), samples=0, time_limit=limit,  # type: ignore[arg-type]
               options=SolveOptions(threads=1), method={"relu": relu, "cuts": cuts}, bab="off", solver=solver)
    return {"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0, "value": r.value, "bound": r.bound,
            "timed_out": r.timed_out, "notes": [n for n in r.notes if "cuts" in n]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=10)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--time-limit", type=float, default=120.0)
    ap.add_argument("--solver", default="highs")
    ap.add_argument("--cuts", choices=("root", "tree"), default="root")
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 64, 64, 2], help="layer widths of the networks")
    ap.add_argument("--formulations", default="bigm,ideal-cuts",
                    help="relu formulations to compare, the first the reference (bigm, ideal-cuts, extended)")
    ap.add_argument("--json", metavar="OUT")
    a = ap.parse_args(argv)
    if a.json:
        check_writable(a.json, "--json")    # refused before any work, not after it
    forms = a.formulations.split(",")
    rows, ok = [], True
    for seed in range(a.instances):
        _, net, x0, _, _, coef = small_question(seed, tuple(a.sizes))
        k = seed % len(forms)
        order = forms[k:] + forms[:k]                     # the order rotates from one instance to the next
        row: dict[str, Any] = {"seed": seed}
        for relu in order:
            row[relu] = run(net, x0, a.eps, coef, relu, a.time_limit, a.solver, a.cuts)
        base = row[forms[0]]
        for f in forms[1:]:
            o = row[f]
            same = (base["value"] is not None and o["value"] is not None and abs(base["value"] - o["value"]) <= 1e-6) \
                or base["timed_out"] or o["timed_out"]
            ok &= bool(same)
        rows.append(row)
        print(f"seed {seed}: " + " | ".join(f"{f} {row[f]['seconds']:.2f}s value {row[f]['value']}" for f in forms)
              + " | ratios " + ", ".join(f"{forms[0]}/{f} {base['seconds'] / row[f]['seconds']:.2f}"
                                         for f in forms[1:]), flush=True)
    meds = {f: statistics.median(r[f]["seconds"] for r in rows) for f in forms}
    print("median: " + ", ".join(f"{f} {m:.2f}s" for f, m in meds.items()))
    if a.json:
        write_text(a.json, json.dumps({"machine": {"python": platform.python_version(),
                                                        "platform": platform.platform()},
                                            "args": {k: v for k, v in vars(a).items() if k != "json"},
                                            "rows": rows}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
