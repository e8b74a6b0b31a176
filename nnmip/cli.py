"""The ``nnmip`` command.

Exit codes: 0 success (a verified result); 1 solved without a verified result (infeasible, unbounded, a time
limit without an incumbent, or a solution the forward pass does not reproduce); 2 bad input (syntax, check,
data, model); 3 solver missing, unlicensed or failing; 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nnmip import __version__
from nnmip.errors import BackendUnavailable, NnmipError, SolverError
from nnmip.solution import Progress, Status

EXIT_OK, EXIT_UNSOLVED, EXIT_INPUT, EXIT_SOLVER, EXIT_INTERRUPT = 0, 1, 2, 3, 130

Command = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, tuple[Command, Callable[[argparse.ArgumentParser], None], str]] = {}


def command(name: str, help_text: str) -> Callable[[Command], Command]:
    """Register a subcommand; ``configure`` adds its arguments (set as ``fn.configure``)."""
    def deco(fn: Command) -> Command:
        _COMMANDS[name] = (fn, getattr(fn, "configure", lambda p: None), help_text)
        return fn
    return deco


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


class ProgressPrinter:
    """Prints elapsed time, incumbent and bound on one updating stderr line during a solve."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.enabled = enabled
        self.label = label
        self.last: Progress | None = None
        self.t0 = time.perf_counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tty = sys.stderr.isatty()
        self._last_print = 0.0

    def __call__(self, p: Progress) -> None:
        self.last = p
        self._print()

    def _print(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and not self._tty and now - self._last_print < 5.0:
            return
        self._last_print = now
        p = self.last
        inc = "-" if p is None or p.incumbent is None else f"{p.incumbent:.6g}"
        bnd = "-" if p is None or p.bound is None else f"{p.bound:.6g}"
        gap = "" if p is None or p.gap is None else f"  gap {100 * p.gap:.2f}%"
        line = f"  {self.label}: {now - self.t0:7.1f}s  incumbent {inc}  bound {bnd}{gap}"
        if self._tty:
            sys.stderr.write("\r" + line.ljust(78))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def __enter__(self) -> ProgressPrinter:
        if self.enabled:
            def beat() -> None:
                while not self._stop.wait(1.0):
                    self._print()
            self._thread = threading.Thread(target=beat, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self.enabled and self._tty:
            sys.stderr.write("\n")


# --------------------------------------------------------------------------------------------------------------
def _add_solver_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--solver", help="highs (default), cbc or gurobi; overrides the file's 'solve with'")
    p.add_argument("--time-limit", type=float, metavar="T", help="seconds")
    p.add_argument("--gap", type=float, metavar="G", help="relative MIP gap (0 proves optimality)")
    p.add_argument("--threads", type=int, metavar="N")
    p.add_argument("--verbose", action="store_true", help="show the solver's own log")


def _configure_check(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a .nnmip file")
    p.add_argument("--json", metavar="OUT", help="write the diagnostics as JSON ('-' for stdout)")


@command("check", "parse and check a .nnmip file")
def cmd_check(a: argparse.Namespace) -> int:
    from nnmip.task import load_program

    cp = load_program(a.file)
    for w in cp.warnings:
        _err(w.render(cp.program.source))
    summary = {"file": a.file, "ok": True, "networks": sorted(cp.networks), "data": sorted(cp.data),
               "train_tasks": len(cp.tasks), "verify_tasks": len(cp.verify_tasks),
               "warnings": [w.to_dict() for w in cp.warnings]}
    if a.json:
        _write_json(a.json, summary)
    else:
        print(f"{a.file}: ok ({len(cp.networks)} network(s), {len(cp.tasks)} training task(s), "
              f"{len(cp.warnings)} warning(s))")
    return EXIT_OK


cmd_check.configure = _configure_check  # type: ignore[attr-defined]


def _configure_compile(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a .nnmip file")
    p.add_argument("-o", "--output", required=True, metavar="MODEL",
                   help="model file: .lp, .mps, .lp.gz or .mps.gz")
    p.add_argument("--stats", action="store_true", help="print the model size")
    p.add_argument("--json", metavar="OUT", help="write the model size as JSON ('-' for stdout)")
    _add_emit_args(p)


def _add_emit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--emit", choices=("milp", "perspective-conic", "perspective-cuts"), default="milp",
                   help="how pruning's squared-norm term is written (see docs/robust.md)")
    p.add_argument("--relax", action="store_true", help="relax integrality (a lower bound, no network)")


@command("compile", "build the model of a .nnmip training task and write it as LP or MPS")
def cmd_compile(a: argparse.Namespace) -> int:
    from nnmip.formulations.training import build_training_model
    from nnmip.io.writers import write_model
    from nnmip.task import load_program, task_dataset

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
        _write_json(a.json, stats)
    print(f"wrote {out}", file=sys.stderr)
    return EXIT_OK


cmd_compile.configure = _configure_compile  # type: ignore[attr-defined]


def _configure_solve(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a .nnmip file")
    _add_solver_args(p)
    p.add_argument("--json", metavar="OUT", help="write the full result as JSON ('-' for stdout)")
    p.add_argument("--save-weights", metavar="W.npz", help="save the trained network (weights, scaling, graph)")
    p.add_argument("--save-onnx", metavar="M.onnx", help="save the trained network as ONNX (raw-feature input)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress, no table")
    _add_emit_args(p)


@command("solve", "train the network of a .nnmip file and verify the result by the forward pass")
def cmd_solve(a: argparse.Namespace) -> int:
    import numpy as np

    from nnmip.task import load_program, run_train_task, solve_options

    cp = load_program(a.file)
    for w in cp.warnings:
        if not a.quiet:
            _err(w.render(cp.program.source))
    if not cp.tasks:
        raise NnmipError.at("E0181", f"'{a.file}' has no training task",
                            notes=["help: add train <network> on <data> { ... }, or use 'nnmip verify'"])
    solver = a.solver or cp.solver.name
    from nnmip.backends import get_backend

    get_backend(solver)  # a missing solver fails before any work
    printer = ProgressPrinter(not a.quiet, solver)
    opts = solve_options(cp.solver, time_limit=a.time_limit, gap=a.gap, threads=a.threads,
                         verbose=a.verbose or None, progress=printer)
    if not a.quiet:
        t = cp.tasks[0]
        _err(f"training '{t.network}' on '{t.data}' (loss {t.loss.kind}) with {solver}")
    with printer:
        report = run_train_task(cp, solver=solver, options=opts, emit=a.emit, relax=a.relax)
    res = report.result
    d = report.to_dict()
    if a.relax:
        if a.json:
            _write_json(a.json, d)
        if not a.quiet:
            print(f"relaxation ({res.status}): {_fmt(res.objective)}")
        return EXIT_OK if res.status is Status.OPTIMAL else EXIT_UNSOLVED
    if report.pruned is not None:  # save the smaller network (its inputs are the kept features)
        from dataclasses import replace as _replace

        from nnmip.formulations.pruning import sub_scaler

        res = _replace(res, network=report.pruned)
        report = _replace(report, dataset=_replace(report.dataset, scaler=sub_scaler(
            report.dataset.scaler, report.kept_features)))
    if res.network is not None:
        if a.save_weights:
            from nnmip.io.weights import save_npz

            save_npz(res.network, a.save_weights, report.dataset.scaler,
                     extra={"classes": np.asarray(report.dataset.classes)})
            d["weights_file"] = a.save_weights
        if a.save_onnx:
            from nnmip.io.onnx import export_onnx

            export_onnx(res.network, a.save_onnx, report.dataset.scaler)
            d["onnx_file"] = a.save_onnx
    if a.json:
        _write_json(a.json, d)
    if not a.quiet and a.json != "-":   # with --json - the standard output holds the JSON alone
        _print_table(d)
    why = explain_status(d["status"], d.get("task", {}).get("loss"), res.network is not None)
    if why:
        _err(why)
    if res.network is None:
        return EXIT_UNSOLVED
    return EXIT_OK if res.verified else EXIT_UNSOLVED


cmd_solve.configure = _configure_solve  # type: ignore[attr-defined]


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _print_table(d: dict[str, Any]) -> None:
    m = d.get("metrics", {})
    model = d.get("model", {})
    rows = [
        ("status", d["status"]),
        ("solver", d["solver"]),
        ("verified", "yes" if d["verified"] else "NO"),
        ("loss (forward pass)", _fmt(d["loss"])),
        ("solver objective", _fmt(d["objective"])),
        ("best bound", _fmt(d["bound"])),
        ("gap", "-" if d["gap"] is None else f"{100 * d['gap']:.3g}%"),
        ("solve seconds", _fmt(d["seconds"])),
        ("accuracy train", _fmt(m.get("train"))),
        ("accuracy validation", _fmt(m.get("validation"))),
        ("accuracy test", _fmt(m.get("test"))),
        ("model", f"{model.get('variables')} variables ({model.get('binaries')} binary, "
                  f"{model.get('integers')} integer), {model.get('rows')} rows, {model.get('nonzeros')} nonzeros"),
    ]
    ext = d.get("extension") or {}
    rows += [(f"robust {k.replace('_', ' ')}", _fmt(m[k])) for k in ("certified_train", "certified_test",
                                                                       "attack_test") if k in m]
    if "removed_count" in ext:
        rows.append(("pruned groups", f"{ext['removed_count']} of {ext.get('groups')} removed: "
                     + (", ".join(g["name"] for g in ext["removed_groups"][:12]) or "none")))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    for n in d.get("notes", []):
        if n.startswith("NOT VERIFIED") or n.startswith("forward-pass") or n.startswith("repair"):
            print(f"note: {n}")


def explain_status(status: str, loss: str | None, has_network: bool) -> str:
    """A sentence on what an unsuccessful status means and what to try (empty when there is nothing to say)."""
    if status == "infeasible":
        hard = loss in ("min_weight", "max_margin")
        return ("note: the model is infeasible: no weights in the declared domains satisfy the constraints"
                + (f" ({loss} requires every training point to be classified with the margin; equal points with "
                   "different labels make that impossible)" if hard else "")
                + "\nhelp: " + ("use loss = hinge or zero_one, " if hard else "")
                + "widen the weight or bias domains, lower the margin or eps, or add units")
    if status in ("unbounded", "infeasible_or_unbounded"):
        return "note: the solver reports an unbounded or infeasible model\nhelp: check the domains and the loss"
    if status == "time_limit" and not has_network:
        return "note: the time limit ended the solve before any solution was found\nhelp: raise --time-limit, " \
               "train on fewer points (subset = random(n)), or use strategy = split(...)"
    if status == "error":
        return "note: the solver failed; run again with --verbose to see its log"
    return ""


def _write_json(target: str, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, default=_json_default)
    if target == "-":
        print(text)
        return
    p = Path(target)
    if p.suffix == ".nnmip":
        raise NnmipError.at("E0603", f"refusing to write JSON over the model file '{p}'")
    p.write_text(text + "\n", encoding="utf-8")


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Status):
        return str(o)
    return str(o)


def build_parser() -> argparse.ArgumentParser:
    _load_plugins()
    p = argparse.ArgumentParser(prog="nnmip", description="Neural networks as mixed-integer optimization models.",
                                epilog="exit codes: 0 verified result, 1 no verified result, 2 bad input, "
                                       "3 solver problem, 130 interrupted")
    p.add_argument("--version", action="version", version=f"nnmip {__version__}")
    p.add_argument("--log-level", default="WARNING", help="library log level (DEBUG, INFO, WARNING)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (fn, _, help_text) in _COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        getattr(fn, "configure", lambda _p: None)(sp)
    return p


def _load_plugins() -> None:
    """Subcommands defined in other modules register themselves on import."""
    import importlib

    for mod in ("nnmip.predict_cli", "nnmip.verify_cli", "nnmip.compress"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_INPUT
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
                        format="%(levelname)s %(name)s: %(message)s")
    fn = _COMMANDS[args.command][0]
    try:
        return fn(args)
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPT
    except (BackendUnavailable, SolverError) as exc:
        _err(_with_file_source(exc, args).render())
        _maybe_json_error(args, exc)
        return EXIT_SOLVER
    except NnmipError as exc:
        _err(_with_file_source(exc, args).render())
        _maybe_json_error(args, exc)
        return EXIT_INPUT
    except BrokenPipeError:  # pragma: no cover
        return EXIT_OK


def _with_file_source(exc: NnmipError, args: argparse.Namespace) -> NnmipError:
    """Attach the command's .nnmip text to an error raised after parsing (data, formulation, solver), so
    that it renders with the source line and caret like the checker's errors."""
    path = getattr(args, "file", None)
    if exc.source is None and path and any(d.span.file == path for d in exc.diagnostics):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            exc.with_source(Path(path).read_text(encoding="utf-8"))
    return exc


def _maybe_json_error(args: argparse.Namespace, exc: NnmipError) -> None:
    target = getattr(args, "json", None)
    if not target or target == "-":
        return
    with contextlib.suppress(OSError, NnmipError):
        _write_json(target, {"status": "error", "errors": [d.to_dict() for d in exc.diagnostics]
                             or [{"code": exc.code, "message": str(exc)}]})


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
