"""Time the symbolic (back-substitution) bounds on a 784-256-256-256-10 ReLU network, side by side with the plain
back-substitution.

The network is the seeded ONNX MLP of ``benchmarks/verify_omlt.py`` (He-scaled normal weights); the region an
linf ball of radius eps around a random point of [0, 1]^784, intersected with [0, 1].  Each round runs
``tighten_bounds(method="symbolic")`` (interval bounds, then the back-substitution of every hidden and output
layer) twice, once with nnmip's back-substitution and once with the plain one of ``tests/test_bounds_fast.py``
(both sides separately, every product formed in full: the code nnmip had before), in alternating order.  It
prints the best and median seconds of each, the median of the per-round ratios plain / nnmip, the number of
unstable units, the page faults per run (first touches of fresh memory, which cost microseconds each on a virtual
machine), and the largest gap between the two sets of bounds (nnmip's must be the same or tighter, to
1e-12 relative: the exit status is 1 otherwise).  Each
round also times the full-width products: for every layer after the first, both sides stacked, times each weight
matrix down to the input, on random matrices of the same shapes.  They are the floor of an exact
back-substitution once (nearly) every unit is unstable; below that, nnmip skips the dead units' rows and shares
the two sides' product after the first unstable layer, and can go under them::

    python benchmarks/symbolic_bounds.py [--rounds 15] [--eps 0.02 0.05] [--json OUT]

Run it with ``OPENBLAS_NUM_THREADS=1`` (or the variable of your BLAS) for one thread.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent / "tests"))

from test_bounds_fast import reference_symbolic_bounds  # noqa: E402
from verify_omlt import mlp  # noqa: E402

from nnmip.io.onnx import import_onnx  # noqa: E402
from nnmip.io.safe import check_writable, write_text  # noqa: E402
from nnmip.ir.spec import Region, linf  # noqa: E402
from nnmip.passes import bounds as bounds_mod  # noqa: E402
from nnmip.passes.bounds import tighten_bounds  # noqa: E402


def _faults() -> int:
    """Minor page faults of this process so far (first touches of fresh memory; 0 where not available)."""
    try:
        import resource
    except ImportError:          # not on Unix
        return 0
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)


def _run(net, region, plain: bool):  # type: ignore[no-untyped-def]
    f0 = _faults()
    t0 = time.perf_counter()
    if plain:
        with mock.patch.object(bounds_mod, "symbolic_bounds", reference_symbolic_bounds):
            rep = tighten_bounds(net, region, method="symbolic")
    else:
        rep = tighten_bounds(net, region, method="symbolic")
    return time.perf_counter() - t0, rep, _faults() - f0


def _floor(sizes: list[int], rng: np.random.Generator) -> float:
    """Seconds for the full-width products of the back-substitution: ``(2 n_k x n_j) @ (n_j x n_{j-1})`` for every
    layer ``k`` after the first and every ``j < k`` (random matrices of the network's shapes)."""
    mats = [rng.normal(size=(sizes[j + 1], sizes[j])) for j in range(len(sizes) - 1)]
    starts = [rng.normal(size=(2 * sizes[k + 1], sizes[k])) for k in range(1, len(mats))]
    t0 = time.perf_counter()
    for k, A in enumerate(starts, start=1):
        for j in range(k - 1, -1, -1):
            A = A @ mats[j]
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[784, 256, 256, 256, 10])
    ap.add_argument("--eps", type=float, nargs="+", default=[0.02, 0.05])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--json", metavar="OUT")
    a = ap.parse_args(argv)
    if a.json:
        check_writable(a.json, "--json")    # refused before any work, not after it
    model, _ = mlp(a.sizes, seed=0)
    net, _ = import_onnx(model)
    x0 = np.random.default_rng(1).random(a.sizes[0])
    rows = []
    for eps in a.eps:
        region = Region((linf(x0, eps),), np.zeros(a.sizes[0]), np.ones(a.sizes[0]))
        fast_t, plain_t, floor_t, fast_f, plain_f = [], [], [], [], []
        rng = np.random.default_rng(2)
        for r in range(a.rounds + 1):            # round 0 warms both up and is not counted
            order = (False, True) if r % 2 else (True, False)
            got = {plain: _run(net, region, plain) for plain in order}
            floor = _floor(a.sizes, rng)
            if r:
                floor_t.append(floor)
                fast_t.append(got[False][0])
                plain_t.append(got[True][0])
                fast_f.append(got[False][2])
                plain_f.append(got[True][2])
        fast, plain = got[False][1], got[True][1]
        gap = 0.0                                 # how much looser nnmip's bounds are anywhere (<= 0: tighter)
        for n, (lo, hi) in fast.bounds.items():
            plo, phi = plain.bounds[n]
            fin = np.isfinite(plo) & np.isfinite(phi)
            scale = 1.0 + np.abs(plo[fin]) + np.abs(phi[fin])
            if fin.any():
                gap = max(gap, float(np.max((plo[fin] - lo[fin]) / scale)),
                          float(np.max((hi[fin] - phi[fin]) / scale)))
        ratios = [p / f for p, f in zip(plain_t, fast_t, strict=True)]
        row = {"eps": eps, "rounds": a.rounds, "nnmip_best": min(fast_t), "nnmip_median": float(np.median(fast_t)),
               "plain_best": min(plain_t), "plain_median": float(np.median(plain_t)),
               "floor_best": min(floor_t), "floor_median": float(np.median(floor_t)),
               "plain_over_floor_median": float(np.median([p / f for p, f in zip(plain_t, floor_t, strict=True)])),
               "ratio_median": float(np.median(ratios)), "ratio_of_best": min(plain_t) / min(fast_t),
               "unstable": fast.unstable, "unstable_plain": plain.unstable, "units": fast.units,
               "largest_relative_loosening": gap,
               "page_faults_nnmip_median": float(np.median(fast_f)),
               "page_faults_plain_median": float(np.median(plain_f))}
        rows.append(row)
        print(f"{'-'.join(map(str, a.sizes))} eps {eps:<5} nnmip {row['nnmip_best']:.4f}s best "
              f"{row['nnmip_median']:.4f}s median | plain {row['plain_best']:.4f}s best {row['plain_median']:.4f}s "
              f"median | full-width products {row['floor_best']:.4f}s best | plain / nnmip {row['ratio_median']:.2f} "
              f"(median of {a.rounds} rounds), "
              f"{row['ratio_of_best']:.2f} (best), plain / products {row['plain_over_floor_median']:.2f} "
              f"| unstable {fast.unstable} / {plain.unstable} of {fast.units} "
              f"| largest loosening {gap:.1e} | page faults per run {row['page_faults_nnmip_median']:.0f} / "
              f"{row['page_faults_plain_median']:.0f}")
    if a.json:
        write_text(a.json, json.dumps({"machine": {"python": platform.python_version(),
                                                        "platform": platform.platform(),
                                                        "numpy": np.__version__}, "rows": rows}, indent=1))
    # nnmip's bounds must be the plain ones or tighter, up to rounding (the safety margin is 1e-7)
    return 0 if all(r["largest_relative_loosening"] <= 1e-12 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
