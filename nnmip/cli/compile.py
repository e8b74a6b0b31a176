"""``nnmip compile``: build the model of every question of a file (training and verification) and write LP/MPS."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

from nnmip.cli.common import EXIT_OK, add_emit_args, command, say, write_json
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
    from nnmip.drivers.compile import program_questions, question_paths, question_slots, slot_paths
    from nnmip.drivers.task import load_program
    from nnmip.io.safe import check_writable
    from nnmip.io.writers import EXTENSIONS, write_model

    if not a.output.lower().endswith((*EXTENSIONS, ".nnmip")):
        raise NnmipError.at("E0601", f"-o: unknown model file extension in '{a.output}'",
                            notes=["help: use .lp, .mps, .lp.gz or .mps.gz"])
    cp = load_program(a.file)
    preflight(a, inputs=[a.file], outputs={"-o": a.output, "--json": a.json})
    _json_apart(a.json, a.output)
    if not cp.tasks and not cp.verify_specs:
        raise NnmipError.at("E0181", f"'{a.file}' has no training or verification task to compile",
                            notes=["help: add train <network> on <data> { ... } or verify <network> { ... }"])
    # every numbered file is checked before any model is built (bound tightening can take long)
    for path in slot_paths(a.output, question_slots(cp)):
        check_writable(path, "-o")
        _json_apart(a.json, str(path))
    t0 = time.perf_counter()
    questions = program_questions(cp, emit=a.emit, relax=a.relax, solver=a.solver)
    build_s = time.perf_counter() - t0
    paths = question_paths(a.output, questions)
    for path in paths:   # the same files (checked again: the names are the questions' own)
        check_writable(path, "-o")
        _json_apart(a.json, str(path))
    files = []
    for q, path in zip(questions, paths, strict=True):
        write_model(q.model, path)
        stats = dict(q.model.stats(), question=q.describe(), file=str(path))
        if q.notes:
            stats["notes"] = list(q.notes)
        files.append(stats)
        if a.stats:
            say(a, f"{path}: " + "  ".join(f"{k} {v}" for k, v in stats.items() if k not in ("file", "question")))
        print(f"wrote {path}  ({q.describe()})", file=sys.stderr)
        for note in q.notes:
            print(note, file=sys.stderr)
    if a.json:
        out = dict(files[0], build_seconds=round(build_s, 4)) if len(files) == 1 else \
            {"build_seconds": round(build_s, 4), "files": files}
        write_json(a.json, out)
    return EXIT_OK


cmd_compile.configure = _configure_compile  # type: ignore[attr-defined]


def _json_apart(json_out: str | None, output: str) -> None:
    """Refuse a ``--json`` file that is ``output`` or one of the numbered model files ``STEM.q<i>[.c<k>].EXT`` that
    ``-o output`` may stand for (``E0615``), before any model is built."""
    from nnmip.io.safe import OutputError

    if not json_out or json_out == "-":
        return
    target, model = os.path.realpath(json_out), os.path.realpath(output)
    name = os.path.basename(model)
    low = name.lower()
    ext = next((e for e in (".lp.gz", ".mps.gz", ".lp", ".mps") if low.endswith(e)), os.path.splitext(name)[1])
    stem, ext = name[: len(name) - len(ext)], name[len(name) - len(ext):]
    numbered = re.escape(stem) + r"\.q\d+(?:\.c\d+)?" + re.escape(ext)
    if target == model or _same_file(target, model) or (
            os.path.dirname(target) == os.path.dirname(model) and re.fullmatch(numbered, os.path.basename(target))):
        raise OutputError.at("E0615", f"--json and -o name the same file '{json_out}'", notes=[
            f"note: with several questions, -o '{output}' stands for {stem}.q<i>{ext} (and {stem}.q<i>.c<k>{ext} "
            "for the cases of a question)", "help: give --json a name of its own, such as sizes.json"])


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
