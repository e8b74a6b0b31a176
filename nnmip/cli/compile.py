"""``nnmip compile``: build the model of a training task and write it as LP or MPS."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from nnmip.cli.common import EXIT_OK, add_emit_args, command, write_json
from nnmip.errors import NnmipError


def _configure_compile(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a .nnmip file")
    p.add_argument("-o", "--output", required=True, metavar="MODEL",
                   help="model file: .lp, .mps, .lp.gz or .mps.gz")
    p.add_argument("--stats", action="store_true", help="print the model size")
    p.add_argument("--json", metavar="OUT", help="write the model size as JSON ('-' for stdout)")
    add_emit_args(p)



@command("compile", "build the model of a .nnmip training task and write it as LP or MPS")
def cmd_compile(a: argparse.Namespace) -> int:
    from nnmip.drivers.task import load_program, task_dataset
    from nnmip.formulations.training import build_training_model
    from nnmip.io.writers import write_model

    cp = load_program(a.file)
    if not cp.tasks:
        raise NnmipError.at("E0181", f"'{a.file}' has no training task to compile",
                            notes=["help: add train <network> on <data> { ... }"])
    task = cp.tasks[0]
    ds = task_dataset(cp, task)
    net = cp.networks[task.network]
    t0 = time.perf_counter()
    from nnmip.check.training_ext import prune_config

    tm = build_training_model(net, ds.X(ds.train), ds.y[ds.train], ds.n_classes, task.loss.kind,
                              task.loss.margin, task.eps, task.l1, robust=task.robust, prune=prune_config(task),
                              emit=a.emit)
    build_s = time.perf_counter() - t0
    out = Path(a.output)
    write_model(tm.model.relaxed() if a.relax else tm.model, out)
    stats = dict(tm.model.stats(), build_seconds=round(build_s, 4), file=str(out))
    if a.stats:
        print("  ".join(f"{k} {v}" for k, v in stats.items() if k != "file"))
    if a.json:
        write_json(a.json, stats)
    print(f"wrote {out}", file=sys.stderr)
    return EXIT_OK


cmd_compile.configure = _configure_compile  # type: ignore[attr-defined]
