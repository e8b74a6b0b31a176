"""``nnmip compile``: build the model of every question of a file (training and verification) and write LP/MPS."""

from __future__ import annotations

import argparse
import sys
import time

from nnmip.cli.common import EXIT_OK, add_emit_args, command, write_json
from nnmip.errors import NnmipError


def _configure_compile(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a .nnmip file")
    p.add_argument("-o", "--output", required=True, metavar="MODEL",
                   help="model file: .lp, .mps, .lp.gz or .mps.gz; several questions are numbered "
                        "(v.mps -> v.q0.mps, v.q1.mps, v.q2.c0.mps ...)")
    p.add_argument("--stats", action="store_true", help="print the model size")
    p.add_argument("--json", metavar="OUT", help="write the files and model sizes as JSON ('-' for stdout)")
    p.add_argument("--solver", default="highs", help="solver of the bound-tightening LPs of verification (highs)")
    add_emit_args(p)


@command("compile", "build the model of every training and verification question of a .nnmip file and write "
                    "it as LP or MPS")
def cmd_compile(a: argparse.Namespace) -> int:
    from nnmip.cli.common import preflight
    from nnmip.drivers.compile import program_questions, question_paths
    from nnmip.drivers.task import load_program
    from nnmip.io.safe import check_writable
    from nnmip.io.writers import EXTENSIONS, write_model

    if not a.output.lower().endswith((*EXTENSIONS, ".nnmip")):
        raise NnmipError.at("E0601", f"-o: unknown model file extension in '{a.output}'",
                            notes=["help: use .lp, .mps, .lp.gz or .mps.gz"])
    cp = load_program(a.file)
    preflight(a, inputs=[a.file], outputs={"-o": a.output, "--json": a.json})
    if not cp.tasks and not cp.verify_specs:
        raise NnmipError.at("E0181", f"'{a.file}' has no training or verification task to compile",
                            notes=["help: add train <network> on <data> { ... } or verify <network> { ... }"])
    t0 = time.perf_counter()
    questions = program_questions(cp, emit=a.emit, relax=a.relax, solver=a.solver)
    build_s = time.perf_counter() - t0
    paths = question_paths(a.output, questions)
    for path in paths:   # every numbered file is checked before the first one is written
        check_writable(path, "-o")
    files = []
    for q, path in zip(questions, paths, strict=True):
        write_model(q.model, path)
        stats = dict(q.model.stats(), question=q.describe(), file=str(path))
        if q.notes:
            stats["notes"] = list(q.notes)
        files.append(stats)
        if a.stats:
            print(f"{path}: " + "  ".join(f"{k} {v}" for k, v in stats.items() if k not in ("file", "question")))
        print(f"wrote {path}  ({q.describe()})", file=sys.stderr)
        for note in q.notes:
            print(note, file=sys.stderr)
    if a.json:
        out = dict(files[0], build_seconds=round(build_s, 4)) if len(files) == 1 else \
            {"build_seconds": round(build_s, 4), "files": files}
        write_json(a.json, out)
    return EXIT_OK


cmd_compile.configure = _configure_compile  # type: ignore[attr-defined]
