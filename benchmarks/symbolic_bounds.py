"""Time the symbolic (back-substitution) bounds on a 784-256-256-256-10 ReLU network.

The network is the seeded ONNX MLP of ``benchmarks/verify_omlt.py`` (He-scaled normal weights); the region an
linf ball of radius eps around a random point of [0, 1]^784, intersected with [0, 1].  Each figure is the best
of ``--repeat`` runs of ``tighten_bounds(method="symbolic")`` (interval bounds, then the back-substitution of
every hidden and output layer), with the number of unstable units it leaves::

    python benchmarks/symbolic_bounds.py [--repeat 3] [--eps 0.02 0.05] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from verify_omlt import mlp  # noqa: E402

from nnmip.io.onnx import import_onnx  # noqa: E402
from nnmip.ir.spec import Region, linf  # noqa: E402
from nnmip.passes.bounds import tighten_bounds  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[784, 256, 256, 256, 10])
    ap.add_argument("--eps", type=float, nargs="+", default=[0.02, 0.05])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", metavar="OUT")
    a = ap.parse_args(argv)
    model, _ = mlp(a.sizes, seed=0)
    net, _ = import_onnx(model)
    x0 = np.random.default_rng(1).random(a.sizes[0])
    rows = []
    for eps in a.eps:
        region = Region((linf(x0, eps),), np.zeros(a.sizes[0]), np.ones(a.sizes[0]))
        times, rep = [], None
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            rep = tighten_bounds(net, region, method="symbolic")
            times.append(time.perf_counter() - t0)
        assert rep is not None
        width = float(sum(np.sum(hi - lo) for lo, hi in rep.bounds.values() if np.all(np.isfinite(hi - lo))))
        rows.append({"eps": eps, "best_seconds": min(times), "seconds": times, "unstable": rep.unstable,
                     "units": rep.units, "total_width": width})
        print(f"{'-'.join(map(str, a.sizes))} eps {eps:<5} symbolic bounds {min(times):.3f}s "
              f"(best of {a.repeat}), {rep.unstable} of {rep.units} units unstable, total width {width:.6g}")
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": {"python": platform.python_version(),
                                                        "platform": platform.platform()}, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
