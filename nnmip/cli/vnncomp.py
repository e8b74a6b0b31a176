"""``nnmip vnncomp``: run a VNN-COMP benchmark family as shipped and write the competition's result files.

::

    nnmip vnncomp BENCH_DIR [--instances instances.csv] [--jobs N] [--results-dir D]

Exit codes: 0 every instance was answered (sat or unsat); 1 some instance ended ``timeout`` or ``unknown``;
2 bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from nnmip.cli.common import EXIT_OK, EXIT_UNSOLVED, check_count, check_number, command


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("bench", metavar="BENCH_DIR", help="the family's folder (networks, properties, instances CSV)")
    p.add_argument("--instances", metavar="CSV",
                   help="the instance list: network,property,timeout per line (default: the folder's "
                        "*instances.csv)")
    p.add_argument("--results-dir", metavar="D", help="where result files and summary.csv/json go "
                                                      "(default vnncomp_results/FAMILY)")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="instances run at once (default 1)")
    p.add_argument("--scheduler", metavar="ADDR",
                   help="run the instances on a Dask cluster (tcp://host:8786, or 'local'); needs nnmip[dask]")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="branch-and-bound processes per instance (default 1)")
    p.add_argument("--timeout", type=float, metavar="T", help="every instance's timeout, instead of the list's")
    p.add_argument("--timeout-scale", type=float, default=1.0, metavar="F",
                   help="multiply every timeout by F (default 1)")
    p.add_argument("--sample", type=int, metavar="K", help="run a seeded sample of K instances")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    p.add_argument("--solver", default="highs", help="MILP solver (default highs)")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="solver and BLAS threads of each instance (default 1: instances, not threads, share the "
                        "cores)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress")



def _check_results_dir(path: str) -> None:
    """Refuse a --results-dir that cannot be created or written, before any instance runs (``E0610``-``E0612``)."""
    from nnmip.io.safe import OutputError

    d = Path(os.path.realpath(path))
    if d.exists() and not d.is_dir():
        raise OutputError.at("E0610", f"--results-dir: '{path}' is a file, not a folder",
                             notes=["help: give a folder (it is created if missing)"])
    existing = d
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError.at("E0611", f"--results-dir: '{existing}' in '{path}' is not a folder",
                             notes=["help: give a folder path"])
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "write in" if existing == d else "create folders in"
        raise OutputError.at("E0612", f"--results-dir: cannot {what} '{existing}'",
                             notes=["help: check the folder's permissions or write somewhere else"])


@command("vnncomp", "run a VNN-COMP benchmark family and write the competition's result files")
def cmd_vnncomp(a: argparse.Namespace) -> int:
    from nnmip.drivers.vnncomp import InstanceResult, run_family

    check_number("--timeout", a.timeout, positive=True)
    check_number("--timeout-scale", a.timeout_scale, positive=True)
    for name in ("jobs", "workers", "threads"):
        check_count(f"--{name}", getattr(a, name))
    check_number("--sample", a.sample, positive=True, integer=True)
    check_number("--seed", a.seed, integer=True)
    from nnmip.backends import get_backend

    get_backend(a.solver)   # an unknown or missing solver fails before any instance runs (exit code 3)
    if a.results_dir is not None:
        _check_results_dir(a.results_dir)
    t0 = time.monotonic()

    def progress(r: InstanceResult, done: int, total: int) -> None:
        if not a.quiet:
            note = f"  ({r.note})" if r.note else ""
            print(f"[{done}/{total}] {r.network} {r.property}: {r.result} in {r.seconds:.1f}s{note}",
                  file=sys.stderr)

    results, out = run_family(a.bench, instances_csv=a.instances, results_dir=a.results_dir, jobs=a.jobs,
                              workers=a.workers, timeout=a.timeout, timeout_scale=a.timeout_scale,
                              sample=a.sample, seed=a.seed, solver=a.solver, progress=progress,
                              scheduler=a.scheduler, threads=a.threads)
    counts = {w: sum(r.result == w for r in results) for w in ("sat", "unsat", "timeout", "unknown")}
    loaded = sum(r.loaded for r in results)
    print(f"{len(results)} instances, {loaded} loaded: {counts['sat']} sat, {counts['unsat']} unsat, "
          f"{counts['timeout']} timeout, {counts['unknown']} unknown in {time.monotonic() - t0:.1f}s; "
          f"results in {out}")
    return EXIT_OK if counts["sat"] + counts["unsat"] == len(results) else EXIT_UNSOLVED


cmd_vnncomp.configure = _configure  # type: ignore[attr-defined]
