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
matrix down to the input, on random matrices of the same shapes, into output arrays made once (fresh ones would
add their first touches to the time).  They are the floor of an exact
back-substitution once (nearly) every unit is unstable; below that, nnmip skips the dead units' rows and shares
the two sides' product after the first unstable layer, and can go under them::

    python benchmarks/symbolic_bounds.py [--rounds 15] [--eps 0.02 0.05] [--no-floor] [--json OUT]
    python benchmarks/symbolic_bounds.py --vnncomp vnncomp2021/mnistfc [--sample K] [--rounds 5] [--json OUT]

With ``--vnncomp FOLDER`` it times, the same way, the instances of a VNN-COMP family as shipped (each network of
``instances.csv`` over the first input region of its property; the networks must be plain ReLU chains or DAGs
without an input scaler), instead of the generated network, and prints each network's median, least and
greatest ratio over its instances.

Run it with ``OPENBLAS_NUM_THREADS=1`` (or the variable of your BLAS) for one thread.

``--no-floor`` leaves the full-width products out, so that nothing but the two codes runs in the rounds.
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

from nnmip.errors import NnmipError  # noqa: E402
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


class _Products:
    """The full-width products of the back-substitution: ``(2 n_k x n_j) @ (n_j x n_{j-1})`` for every layer ``k``
    after the first and every ``j < k``, on random matrices of the network's shapes, each into an output array
    made once (so that the time is the products', not the first touches of fresh memory)."""

    def __init__(self, sizes: list[int], rng: np.random.Generator) -> None:
        self.mats = [rng.normal(size=(sizes[j + 1], sizes[j])) for j in range(len(sizes) - 1)]
        self.starts = [rng.normal(size=(2 * sizes[k + 1], sizes[k])) for k in range(1, len(self.mats))]
        self.outs = {(k, j): np.empty((A.shape[0], self.mats[j].shape[1]))
                     for k, A in enumerate(self.starts, start=1) for j in range(k)}
        self.time()                    # every output touched once

    def time(self) -> float:
        t0 = time.perf_counter()
        for k, A in enumerate(self.starts, start=1):
            for j in range(k - 1, -1, -1):
                A = np.matmul(A, self.mats[j], out=self.outs[k, j])
        return time.perf_counter() - t0


def _gap(fast, plain) -> float:  # type: ignore[no-untyped-def]
    """How much looser nnmip's bounds are anywhere than the plain ones, relative (<= 0: the same or tighter)."""
    gap = 0.0
    for n, (lo, hi) in fast.bounds.items():
        plo, phi = plain.bounds[n]
        fin = np.isfinite(plo) & np.isfinite(phi)
        scale = 1.0 + np.abs(plo[fin]) + np.abs(phi[fin])
        if fin.any():
            gap = max(gap, float(np.max((plo[fin] - lo[fin]) / scale)),
                      float(np.max((hi[fin] - phi[fin]) / scale)))
    return gap


def _measure(net, region, rounds: int, sizes: list[int] | None = None) -> dict:  # type: ignore[no-untyped-def]
    """Both back-substitutions ``rounds`` times in alternating order (after one round that warms them up), and the
    full-width products of ``sizes`` each round when given."""
    fast_t, plain_t, floor_t, fast_f, plain_f = [], [], [], [], []
    products = _Products(sizes, np.random.default_rng(2)) if sizes else None
    got = {}
    for r in range(rounds + 1):                # round 0 warms both up and is not counted
        order = (False, True) if r % 2 else (True, False)
        got = {plain: _run(net, region, plain) for plain in order}
        floor = products.time() if products else float("nan")
        if r:
            floor_t.append(floor)
            fast_t.append(got[False][0])
            plain_t.append(got[True][0])
            fast_f.append(got[False][2])
            plain_f.append(got[True][2])
    fast, plain = got[False][1], got[True][1]
    ratios = [p / f for p, f in zip(plain_t, fast_t, strict=True)]
    row = {"rounds": rounds, "nnmip_best": min(fast_t), "nnmip_median": float(np.median(fast_t)),
           "plain_best": min(plain_t), "plain_median": float(np.median(plain_t)),
           "ratio_median": float(np.median(ratios)), "ratio_of_best": min(plain_t) / min(fast_t),
           "unstable": fast.unstable, "unstable_plain": plain.unstable, "units": fast.units,
           "largest_relative_loosening": _gap(fast, plain),
           "page_faults_nnmip_median": float(np.median(fast_f)),
           "page_faults_plain_median": float(np.median(plain_f))}
    if sizes:
        row.update({"floor_best": min(floor_t), "floor_median": float(np.median(floor_t)),
                    "plain_over_floor_median": float(np.median([p / f for p, f in
                                                                zip(plain_t, floor_t, strict=True)]))})
    return row


def _instances(folder: str, sample: int | None, seed: int) -> list[tuple[str, str, object, object]]:
    """``(network, property, net, region)`` of a VNN-COMP family folder (its ``instances.csv``, the files as
    shipped), the first input region of each property; a seeded sample of ``sample`` of them when given."""
    from nnmip.drivers.vnncomp import find_instances_csv, read_instances
    from nnmip.io.vnnlib import parse_vnnlib

    bench = Path(folder)
    rows = read_instances(bench, find_instances_csv(bench))
    if sample is not None and sample < len(rows):
        pick = sorted(np.random.default_rng(seed).choice(len(rows), size=sample, replace=False))
        rows = [rows[i] for i in pick]
    nets: dict[str, object] = {}
    out = []
    for inst in rows:
        if inst.onnx not in nets:
            try:
                net, scaler = import_onnx(bench / inst.onnx)
            except NnmipError as exc:
                print(f"{inst.onnx}: skipped, it does not load ({exc.code}: {exc})")
                net, scaler = None, None
            if scaler is not None:
                print(f"{inst.onnx}: skipped, the network has an input scaler; this benchmark takes plain ones")
                net = None
            nets[inst.onnx] = net
        if nets[inst.onnx] is None:
            continue
        vp = parse_vnnlib(bench / inst.vnnlib)
        out.append((inst.onnx, inst.vnnlib, nets[inst.onnx], Region(vp.cases[0].sets)))
    return out


def _line(name: str, row: dict) -> str:
    floor = (f"full-width products {row['floor_best']:.4f}s best | " if "floor_best" in row else "")
    over = (f", plain / products {row['plain_over_floor_median']:.2f}" if "floor_best" in row else "")
    return (f"{name} nnmip {row['nnmip_best']:.4f}s best {row['nnmip_median']:.4f}s median | plain "
            f"{row['plain_best']:.4f}s best {row['plain_median']:.4f}s median | {floor}plain / nnmip "
            f"{row['ratio_median']:.2f} (median of {row['rounds']} rounds), {row['ratio_of_best']:.2f} (best){over} "
            f"| unstable {row['unstable']} / {row['unstable_plain']} of {row['units']} "
            f"| largest loosening {row['largest_relative_loosening']:.1e} | page faults per run "
            f"{row['page_faults_nnmip_median']:.0f} / {row['page_faults_plain_median']:.0f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[784, 256, 256, 256, 10])
    ap.add_argument("--eps", type=float, nargs="+", default=[0.02, 0.05])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--vnncomp", metavar="FOLDER",
                    help="a VNN-COMP family folder (instances.csv, ONNX and VNN-LIB files as shipped): time its "
                         "instances instead of the generated network")
    ap.add_argument("--sample", type=int, help="with --vnncomp: a seeded sample of this many instances")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-floor", action="store_true",
                    help="leave the full-width products out of the rounds (only the two codes run)")
    ap.add_argument("--json", metavar="OUT")
    a = ap.parse_args(argv)
    if a.json:
        check_writable(a.json, "--json")    # refused before any work, not after it
    rows = []
    if a.vnncomp:
        for onnx_name, prop, net, region in _instances(a.vnncomp, a.sample, a.seed):
            row = {"network": onnx_name, "property": prop, **_measure(net, region, a.rounds)}
            rows.append(row)
            print(_line(f"{Path(onnx_name).stem} {Path(prop).stem}", row), flush=True)
        by_net: dict[str, list[float]] = {}
        for r in rows:
            by_net.setdefault(r["network"], []).append(r["ratio_median"])
        for n, rs in by_net.items():
            print(f"{n}: plain / nnmip over {len(rs)} instances: median {np.median(rs):.2f}, "
                  f"min {min(rs):.2f}, max {max(rs):.2f}")
    else:
        model, _ = mlp(a.sizes, seed=0)
        net, _ = import_onnx(model)
        x0 = np.random.default_rng(1).random(a.sizes[0])
        for eps in a.eps:
            region = Region((linf(x0, eps),), np.zeros(a.sizes[0]), np.ones(a.sizes[0]))
            row = {"eps": eps, "floor_in_rounds": not a.no_floor,
                   **_measure(net, region, a.rounds, None if a.no_floor else a.sizes)}
            rows.append(row)
            print(_line(f"{'-'.join(map(str, a.sizes))} eps {eps:<5}", row), flush=True)
    if a.json:
        write_text(a.json, json.dumps({"machine": {"python": platform.python_version(),
                                                        "platform": platform.platform(),
                                                        "numpy": np.__version__}, "rows": rows}, indent=1))
    # nnmip's bounds must be the plain ones or tighter, up to rounding (the safety margin is 1e-7)
    return 0 if all(r["largest_relative_loosening"] <= 1e-12 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
