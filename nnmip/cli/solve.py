"""``nnmip solve``: train the network of a .nnmip file and verify the result by the forward pass."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

from nnmip.cli.common import (
    EXIT_OK,
    EXIT_UNSOLVED,
    ProgressPrinter,
    add_emit_args,
    add_executor_args,
    add_solver_args,
    command,
    err,
    explain_status,
    fmt,
    make_executor_from_args,
    say,
    write_each,
    write_json,
)
from nnmip.errors import NnmipError
from nnmip.solution import Status


def _configure_solve(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a .nnmip file")
    add_solver_args(p)
    p.add_argument("--json", metavar="OUT", help="write the full result as JSON ('-' for stdout)")
    p.add_argument("--save-weights", metavar="W.npz", help="save the trained network (weights, scaling, graph)")
    p.add_argument("--save-onnx", metavar="M.onnx", help="save the trained network as ONNX (raw-feature input)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress, no table")
    add_emit_args(p)
    add_executor_args(p, "the file's workers=")    # the members of an ensemble (one_vs_one, one_vs_rest)


@command("solve", "train the network of a .nnmip file and verify the result by the forward pass")
def cmd_solve(a: argparse.Namespace) -> int:
    import time

    # the run's clock: the time limit bounds the whole run, reading the file and the data included (only the start-up
    # of Python and the import of the command's modules come before it)
    started = time.monotonic()
    import numpy as np

    from nnmip.cli.common import check_executor_args, check_solver_args, preflight
    from nnmip.drivers.deadline import Deadline, run_deadline
    from nnmip.drivers.task import load_program, run_train_task, solve_options

    check_solver_args(a)
    check_executor_args(a)
    cp = load_program(a.file)
    preflight(a, inputs=[a.file], outputs={"--json": a.json, "--save-weights": a.save_weights,
                                           "--save-onnx": a.save_onnx})
    for option, path, ext in (("--save-weights", a.save_weights, ".npz"), ("--save-onnx", a.save_onnx, ".onnx")):
        if path is not None and not path.lower().endswith(ext):
            raise NnmipError.at("E0601", f"{option}: '{path}' does not end in {ext}",
                                notes=[f"help: {option} writes an {ext} file: give it a name ending in {ext}"])
    for w in cp.warnings:
        if not a.quiet:
            err(w.render(cp.program.source))
    if not cp.tasks:
        raise NnmipError.at("E0181", f"'{a.file}' has no training task",
                            notes=["help: add train <network> on <data> { ... }, or use 'nnmip verify'"])
    solver = a.solver or cp.solver.name
    from nnmip.backends import get_backend

    get_backend(solver)  # a missing solver fails before any work
    from nnmip.check.sparse_spec import is_gradient

    gradient = is_gradient(cp.tasks[0].strategy.kind)
    printer = ProgressPrinter(not a.quiet and not gradient, solver)
    task_limit = cp.tasks[0].time_limit
    limit = next((t for t in (a.time_limit, task_limit, cp.solver.time_limit) if t is not None), None)
    # one deadline for the run: the training gets what is left of the limit after reading the file, and the
    # strategies (split, local_search) also count loading the data against it (run_deadline)
    run_end = None if limit is None else Deadline(end=started + float(limit))
    opts = solve_options(cp.solver, time_limit=None if run_end is None else run_end.solve_limit(),
                         gap=a.gap, threads=a.threads,
                         verbose=a.verbose or None, progress=printer)
    if not a.quiet:
        t = cp.tasks[0]
        err(f"training '{t.network}' on '{t.data}' (loss {t.loss.kind}) with "
            + (f"{t.strategy.kind} (stochastic gradient)" if gradient else solver))
    ensemble = cp.tasks[0].strategy.kind in ("one_vs_one", "one_vs_rest")
    asked = a.jobs is not None or a.scheduler is not None
    with printer, _epoch_lines(gradient and not a.quiet), run_deadline(run_end), \
            (make_executor_from_args(a) if ensemble and asked else contextlib.nullcontext()) as ex:
        report = run_train_task(cp, solver=solver, options=opts, emit=a.emit, relax=a.relax, executor=ex)
    res = report.result
    d = report.to_dict()
    if a.relax or (a.relax is None and cp.tasks[0].relax):
        if a.json:
            write_json(a.json, d)
        if not a.quiet:
            say(a, f"relaxation ({res.status}): {fmt(res.objective)}")
        return EXIT_OK if res.status is Status.OPTIMAL else EXIT_UNSOLVED
    if report.pruned is not None:  # save the smaller network (its inputs are the kept features)
        from dataclasses import replace as _replace

        from nnmip.passes.prune import sub_scaler

        res = _replace(res, network=report.pruned)
        report = _replace(report, dataset=_replace(report.dataset, scaler=sub_scaler(
            report.dataset.scaler, report.kept_features)))
    trained: Any = res.ensemble if res.ensemble is not None else res.network
    writes: list[Callable[[], object]] = []
    if trained is not None:
        # one npz and one ONNX graph for the whole vote of an ensemble; the ONNX modules (slow to import: a
        # second or more on a busy machine, which Ctrl-C would wait for) only when an ONNX file is asked for
        if res.ensemble is not None:
            from nnmip.io.ensemble import save_ensemble as save_npz
        else:
            from nnmip.io.weights import save_npz
        if a.save_onnx and res.ensemble is not None:
            from nnmip.io.ensemble import export_ensemble_onnx as export_onnx
        elif a.save_onnx:
            from nnmip.io.onnx import export_onnx
        if a.save_weights:
            def weights() -> None:
                save_npz(trained, a.save_weights, report.dataset.scaler,
                         extra={"classes": np.asarray(report.dataset.classes)})
                d["weights_file"] = a.save_weights
            writes.append(weights)
        if a.save_onnx:
            def onnx() -> None:
                export_onnx(trained, a.save_onnx, report.dataset.scaler)
                d["onnx_file"] = a.save_onnx
            writes.append(onnx)
    if a.json:
        writes.append(lambda: write_json(a.json, d))
    write_each(writes)
    if not a.quiet and a.json != "-":   # with --json - the standard output holds the JSON alone
        _print_table(d)
    why = explain_status(d["status"], d.get("task", {}).get("loss"), res.has_network)
    if why:
        err(why)
    if not res.has_network:
        return EXIT_UNSOLVED
    return EXIT_OK if res.verified else EXIT_UNSOLVED


cmd_solve.configure = _configure_solve  # type: ignore[attr-defined]


@contextlib.contextmanager
def _epoch_lines(enabled: bool) -> Iterator[None]:
    """Print the per-epoch lines of gradient training (logger ``nnmip.sparse``) on standard error."""
    if not enabled:
        yield
        return
    log = logging.getLogger("nnmip.sparse")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("  %(message)s"))
    old = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(old)
        log.propagate = True


def _print_table(d: dict[str, Any]) -> None:
    m = d.get("metrics", {})
    model = d.get("model", {})
    rows = [
        ("status", d["status"]),
        ("solver", d["solver"]),
        ("verified", "yes" if d["verified"] else "NO"),
        ("loss (forward pass)", fmt(d["loss"])),
        ("solver objective", fmt(d["objective"])),
        ("best bound", fmt(d["bound"])),
        ("gap", "-" if d["gap"] is None else f"{100 * d['gap']:.3g}%"),
        ("solve seconds", fmt(d["seconds"])),
        ("accuracy train", fmt(m.get("train"))),
        ("accuracy validation", fmt(m.get("validation"))),
        ("accuracy test", fmt(m.get("test"))),
        ("model", f"{model.get('variables')} variables ({model.get('binaries')} binary, "
                  f"{model.get('integers')} integer), {model.get('rows')} rows, {model.get('nonzeros')} nonzeros"),
    ]
    if not model:   # gradient training: no solver model
        rows = [r for r in rows if r[0] not in ("model", "solver objective", "best bound", "gap")]
    ext = d.get("extension") or {}
    if "ensemble" in ext:
        rows[-1] = ("ensemble", f"{ext['ensemble']}: {ext['members']} {ext['member_strategy']} members "
                                f"(majority vote, ties to the smallest class)")
    rows += [(f"robust {k.replace('_', ' ')}", fmt(m[k])) for k in ("certified_train", "certified_test",
                                                                       "attack_test") if k in m]
    sp = ext.get("sparse")
    if sp:
        rows.append(("zero weights", f"{sp['zero_weights']} of {sp['weights']} "
                     f"({100 * sp['zero_fraction']:.1f}%)"))
        for g in sp.get("groups", []):
            rows.append((f"zero groups ({g['kind']})", f"{g['zero']} of {g['groups']}"))
        rows.append(("pruned network", f"{sp['neurons_removed']} neurons and {sp['features_removed']} features "
                     f"removed; {sp['parameters_after']} of {sp['parameters_before']} parameters left, "
                     f"{sp['nonzero_after']} non-zero"))
    elif "removed_count" in ext:
        rows.append(("pruned groups", f"{ext['removed_count']} of {ext.get('groups')} removed: "
                     + (", ".join(g["name"] for g in ext["removed_groups"][:12]) or "none")))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    for n in d.get("notes", []):
        if n.startswith("NOT VERIFIED") or n.startswith("forward-pass") or n.startswith("repair"):
            print(f"note: {n}")

