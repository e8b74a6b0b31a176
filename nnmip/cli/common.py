"""What every ``nnmip`` subcommand shares: the exit codes, the command registry, progress, JSON output."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from nnmip.errors import Diagnostic, NnmipError, Span
from nnmip.solution import MAX_PARALLEL, Progress, Status

EXIT_OK, EXIT_UNSOLVED, EXIT_INPUT, EXIT_SOLVER, EXIT_INTERNAL, EXIT_INTERRUPT = 0, 1, 2, 3, 4, 130

Command = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, tuple[Command, Callable[[argparse.ArgumentParser], None], str]] = {}


def command(name: str, help_text: str) -> Callable[[Command], Command]:
    """Register a subcommand; ``configure`` adds its arguments (set as ``fn.configure``)."""
    def deco(fn: Command) -> Command:
        COMMANDS[name] = (fn, getattr(fn, "configure", lambda p: None), help_text)
        return fn
    return deco


def err(msg: str) -> None:
    print(msg, file=sys.stderr)


def say(a: argparse.Namespace, text: str) -> None:
    """Human-readable output: standard output, or standard error when standard output carries the JSON or the
    counterexample (``--json -``, ``--counterexample -``)."""
    to_stdout = "-" not in (getattr(a, "json", None), getattr(a, "counterexample", None))
    print(text, file=sys.stdout if to_stdout else sys.stderr)


class JsonOutput:
    """What the running command has sent to standard output as JSON (``--json -``)."""

    def __init__(self) -> None:
        #: its JSON has been printed: an error after that adds no second document
        self.printed = False


JSON_OUT = JsonOutput()


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



@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C handling of a command (main thread only): :func:`nnmip.solution.ctrl_c_stops`, announced on
    standard error.  Before any solve has started, Ctrl-C ends the command at once; once one has, the first Ctrl-C
    stops the solvers and the command checks what it has by the forward pass and writes its outputs marked
    ``interrupted`` (exit code 130); a second one ends the command at once.
    """
    from nnmip.solution import ctrl_c_stops

    with ctrl_c_stops(err, library=False):
        yield


def located(exc: NnmipError, span: Span, source: str | None) -> NnmipError:
    """``exc`` with its unlocated diagnostics placed at ``span`` (the statement that named the file)."""
    from dataclasses import replace

    if not span.known or any(d.span.known for d in exc.diagnostics):
        return exc
    exc.diagnostics = tuple(replace(d, span=span) for d in exc.diagnostics) or (
        Diagnostic(exc.code, str(exc), span),)
    exc.source = source
    return exc


def add_solver_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--solver", help="highs (default), cbc, scip, gurobi or cvxpy; overrides the file's "
                                    "'solve with'")
    p.add_argument("--time-limit", type=float, metavar="T", help="seconds")
    p.add_argument("--gap", type=float, metavar="G", help="relative MIP gap (0 proves optimality)")
    p.add_argument("--threads", type=int, metavar="N")
    p.add_argument("--verbose", action="store_true", help="show the solver's own log")


def _bad_option(option: str, value: object, what: str, help_text: str = "") -> NnmipError:
    help_line = f"help: {help_text}" if help_text else f"help: see 'nnmip COMMAND --help' for {option}"
    return NnmipError.at("E0109", f"{option}: {value!r} {what}", notes=[help_line])


def check_number(option: str, value: float | int | None, *, positive: bool = False, upper: float | None = None,
                 integer: bool = False, help_text: str = "") -> None:
    """Refuse a non-finite, negative (or, with ``positive``, zero) or too large option value (``E0109``)."""
    if value is None:
        return
    try:
        finite = math.isfinite(value)
    except OverflowError:   # an integer of hundreds of digits
        raise _bad_option(option, f"{str(value)[:20]}...", "is too large", help_text) from None
    if not finite:
        raise _bad_option(option, value, "is not a finite number", help_text)
    if value < 0 or (positive and value == 0):
        raise _bad_option(option, value, "must be positive" if positive else "must not be negative", help_text)
    if upper is not None and value > upper:
        raise _bad_option(option, value, f"must be at most {upper:g}", help_text)
    if integer and value != int(value):
        raise _bad_option(option, value, "must be a whole number", help_text)


def check_count(option: str, value: int | None, upper: int = MAX_PARALLEL) -> None:
    """Refuse a count of processes or threads (``--jobs``, ``--workers``, ``--threads``) that is not a whole number
    from 1 to ``upper`` (``E0109``): more would start a process or a thread pool per unit and stall the machine."""
    check_number(option, value, positive=True, upper=upper, integer=True,
                 help_text=f"give a whole number from 1 to {upper}")


def box_text(lo: Any, hi: Any) -> str:
    """A box of inputs for people: one interval when every input has the same, else the range of its ends."""
    import numpy as np

    lo, hi = np.asarray(lo), np.asarray(hi)
    if lo.size and np.all(lo == lo[0]) and np.all(hi == hi[0]):
        return f"the box [{lo[0]:.6g}, {hi[0]:.6g}] for each of the {lo.size} inputs"
    return (f"a per-input box (lower ends {lo.min():.6g} to {lo.max():.6g}, upper ends {hi.min():.6g} to "
            f"{hi.max():.6g})")


def check_domain(domain: Any) -> None:
    """Refuse a ``--domain LO HI`` that is not a finite box (``E0109``) or whose ends are crossed (``E0410``)."""
    if domain is None:
        return
    lo, hi = domain
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise NnmipError.at("E0109", f"--domain: {lo:g} {hi:g} is not a finite box",
                            notes=["help: for example --domain 0 1"])
    if lo > hi:
        raise NnmipError.at("E0410", f"--domain: the lower end {lo:g} is above the upper end {hi:g}",
                            notes=["help: give LO HI with LO <= HI"])


def check_solver_args(a: argparse.Namespace) -> None:
    """The options of :func:`add_solver_args`, checked before any work."""
    check_number("--time-limit", getattr(a, "time_limit", None), positive=True)
    check_number("--gap", getattr(a, "gap", None), upper=1e6)
    check_count("--threads", getattr(a, "threads", None))
    solver = getattr(a, "solver", None)
    if solver is not None:
        from nnmip.backends import get_backend

        get_backend(solver)   # an unknown or missing solver fails before any work (exit code 3)


def add_executor_args(p: argparse.ArgumentParser, default: str = "the cores available") -> None:
    """``--jobs`` and ``--scheduler``: where the tasks of a batch run (:mod:`nnmip.drivers.executor`);
    ``default`` says what runs them when neither is given."""
    g = p.add_argument_group("parallel runs (batches only)")
    g.add_argument("--jobs", type=int, metavar="N",
                   help=f"worker processes on this machine (default: {default}; 1: serial); with "
                        "--scheduler local, the number of Dask workers")
    g.add_argument("--scheduler", metavar="ADDR",
                   help="run on a Dask cluster: its scheduler address (tcp://host:8786), or 'local' to start one "
                        "here (needs pip install 'nnmip[dask]')")


def check_executor_args(a: argparse.Namespace) -> None:
    """The options of :func:`add_executor_args`, checked before any work (``E0109``)."""
    check_count("--jobs", getattr(a, "jobs", None))
    scheduler = getattr(a, "scheduler", None)
    if scheduler is not None and not scheduler.strip():
        raise _bad_option("--scheduler", scheduler, "is empty",
                          "give the scheduler's address (tcp://host:8786) or 'local'")


def make_executor_from_args(a: argparse.Namespace) -> Any:
    """The :class:`nnmip.drivers.executor.Executor` that ``--jobs`` / ``--scheduler`` ask for; each task runs
    with ``--threads`` threads (default 1: the cores go to the tasks).
    """
    from nnmip.drivers.executor import make_executor

    return make_executor(getattr(a, "jobs", None), getattr(a, "scheduler", None),
                         threads=getattr(a, "threads", None) or 1)


def add_emit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--emit", choices=("milp", "perspective-conic", "perspective-cuts"), default=None,
                   help="how pruning's squared-norm term is written (see docs/pruning.md); overrides the task's emit")
    p.add_argument("--relax", action="store_true", default=None,
                   help="relax integrality (a lower bound, no network); overrides the task's relax")


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


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
    if status == "interrupted":
        return ("note: interrupted: the result is the best solution found before Ctrl-C, checked by the forward pass"
                if has_network else "note: interrupted before the solver found a solution")
    if status == "error":
        return "note: the solver failed; run again with --verbose to see its log"
    return ""


def write_json(target: str, data: dict[str, Any], option: str = "--json") -> None:
    """Write ``data`` as JSON to standard output (``-``) or atomically to a file (see :mod:`nnmip.io.safe`).

    After Ctrl-C (a stop request) the report says so: ``"status": "interrupted"`` and ``"interrupted": true``
    (what was found before, e.g. a trained network or a certified point, is still reported and was checked).
    """
    from nnmip.io.safe import write_text
    from nnmip.solution import STOP

    if STOP.is_set():
        data = {**data, "status": "interrupted", "interrupted": True}

    text = json.dumps(data, indent=2, default=json_default)
    if target == "-":
        print(text)
        JSON_OUT.printed = True
        return
    write_text(target, text + "\n", option)


def write_each(writes: Iterable[Callable[[], object]]) -> None:
    """Write every output of a command, each by its own call: one that fails (a full disk, a folder that went
    away) stops no other, so that every output that can be written is; then the failures are raised together."""
    from nnmip.io.safe import OutputError

    failed: list[Diagnostic] = []
    for write in writes:
        try:
            write()
        except OutputError as exc:
            failed.extend(exc.diagnostics or (Diagnostic(exc.code, str(exc)),))
    if failed:
        raise OutputError(diagnostics=failed)


def preflight(a: argparse.Namespace, inputs: Iterable[str | None] = (),
              outputs: dict[str, str | list[str] | None] | None = None) -> None:
    """Record the command's input files and check every output before any work (``E0603``, ``E0610``-``E0615``).

    ``outputs`` maps an option name to its path (or list of paths); None and ``-`` (standard output) are skipped.
    """
    from nnmip.io.safe import OutputError, check_writable, note_input

    for p in inputs:
        note_input(p)
    seen: dict[str, str] = {}
    for option, value in (outputs or {}).items():
        for path in ([value] if isinstance(value, str) else (value or [])):
            if path == "-" and "-" in seen:
                raise OutputError.at("E0615", f"{option} and {seen['-']} both name standard output ('-')",
                                     notes=["help: send one of them to a file"])
            if path == "-":
                seen["-"] = option
            if path is None or path == "-":
                continue
            target = str(check_writable(path, option))
            if option == "--json":
                a.json_checked = True
            if target in seen:
                raise OutputError.at("E0615", f"{option} and {seen[target]} name the same file '{path}'",
                                     notes=["help: give each output its own file"])
            seen[target] = option


def json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Status):
        return str(o)
    return str(o)


