"""``nnmip check``: parse and check a .nnmip file."""

from __future__ import annotations

import argparse

from nnmip.cli.common import EXIT_OK, command, err, write_json


def _configure_check(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a .nnmip file")
    p.add_argument("--json", metavar="OUT", help="write the diagnostics as JSON ('-' for stdout)")


@command("check", "parse and check a .nnmip file")
def cmd_check(a: argparse.Namespace) -> int:
    from nnmip.cli.common import preflight
    from nnmip.drivers.task import load_program

    cp = load_program(a.file)
    preflight(a, inputs=[a.file], outputs={"--json": a.json})
    for w in cp.warnings:
        err(w.render(cp.program.source))
    summary = {"file": a.file, "ok": True, "networks": sorted(cp.networks), "data": sorted(cp.data),
               "train_tasks": len(cp.tasks), "verify_tasks": len(cp.verify_tasks),
               "warnings": [w.to_dict() for w in cp.warnings]}
    if a.json:
        write_json(a.json, summary)
    else:
        print(f"{a.file}: ok ({len(cp.networks)} network(s), {len(cp.tasks)} training task(s), "
              f"{len(cp.warnings)} warning(s))")
    return EXIT_OK


cmd_check.configure = _configure_check  # type: ignore[attr-defined]
