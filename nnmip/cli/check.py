"""``nnmip check``: parse and check a .nnmip file."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from nnmip.cli.common import EXIT_OK, command, err, write_json

if TYPE_CHECKING:
    from nnmip.check import CheckedProgram


def _configure_check(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a .nnmip file")
    p.add_argument("--json", metavar="OUT", help="write the diagnostics as JSON ('-' for stdout)")
    p.add_argument("--no-data", action="store_true",
                   help="do not read the data files (by default they are read and checked like 'solve' does)")


@command("check", "parse and check a .nnmip file")
def cmd_check(a: argparse.Namespace) -> int:
    from nnmip.cli.common import preflight
    from nnmip.drivers.task import load_program

    cp = load_program(a.file)
    preflight(a, inputs=[a.file], outputs={"--json": a.json})
    if not a.no_data:
        _check_data(cp)
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


def _check_data(cp: CheckedProgram) -> None:
    """Read every data set the file declares and check it against the networks trained on it, as ``solve`` would
    (errors are located in the data statement or the file)."""
    import dataclasses

    from nnmip.drivers.task import task_dataset
    from nnmip.errors import CheckError, DataError
    from nnmip.io.data import load_dataset

    prog = cp.program
    for decl in cp.data.values():
        if any(t.data == decl.name for t in cp.tasks):
            continue   # read below with the task's subset
        try:
            load_dataset(decl.source, dataclasses.replace(decl.pre), cp.base_dir)
        except DataError as exc:
            raise exc.with_source(prog.source) from None
    from nnmip.cli.common import located
    from nnmip.drivers.verify import check_question, resolve_verify_spec
    from nnmip.errors import NnmipError

    for spec in cp.verify_specs:
        try:   # the model, the points it names, the sizes, the region (as 'verify' checks them before solving)
            q = resolve_verify_spec(cp, spec)
            check_question(q.net, q.sets, q.prop, q.domain, fixed=not q.net.trainable)
        except NnmipError as exc:
            raise located(exc, spec.span, prog.source) from None
    for task in cp.tasks:
        ds = task_dataset(cp, task)
        net = cp.networks[task.network]
        if ds.n_features != net.n_inputs:
            raise CheckError.at("E0122", f"data '{task.data}' have {ds.n_features} features but network "
                                f"'{task.network}' takes {net.n_inputs} inputs", task.span,
                                [f"help: declare the input as ({net.input}: {ds.n_features})"], source=prog.source)
