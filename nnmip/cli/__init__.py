"""The ``nnmip`` command.

Exit codes: 0 success (a verified result); 1 solved without a verified result (infeasible, unbounded, a time
limit without an incumbent, or a solution the forward pass does not reproduce); 2 bad input (syntax, check,
data, model, an output that cannot or must not be written); 3 solver missing, unlicensed or failing; 4 an
internal error (a bug: reported without a traceback); 130 interrupted (Ctrl-C; the outputs hold the incumbent).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nnmip import __version__
from nnmip.cli import (  # noqa: F401  (each registers its command)
    check,
    compile,
    compress,
    import_,
    predict,
    solve,
    verify,
    vnncomp,
)
from nnmip.cli.common import (  # noqa: F401  (the exit codes are part of the interface)
    COMMANDS,
    EXIT_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPT,
    EXIT_OK,
    EXIT_SOLVER,
    EXIT_UNSOLVED,
    err,
    write_json,
)
from nnmip.errors import BackendUnavailable, Diagnostic, NnmipError, SolverError

ARGS_CODE = "E0190"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ArgumentsExit(SystemExit):
    """How :class:`Parser` ends on a bad command line: exit code 2, with the diagnostic it printed."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(EXIT_INPUT)
        self.diagnostic = diagnostic


class Parser(argparse.ArgumentParser):
    """argparse with nnmip's error format, and negative numbers (``-inf``, ``-1e-3``) read as values.

    A bad option prints ``error[E0190]: <message>`` and a ``help:`` line naming the command's ``--help``, and exits
    with 2 (bad input).  Subcommand parsers are built from this class too (argparse uses the parent's class).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # argparse takes "-inf" or "-1e-3" for an option; every nnmip option value that starts with "-" is a number
        self._negative_number_matcher = re.compile(
            r"^-(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|inf|infinity|nan)$", re.IGNORECASE)

    def error(self, message: str) -> Any:  # argparse's signature is NoReturn
        d = Diagnostic(ARGS_CODE, message, notes=(f"help: run '{self.prog} --help'",))
        err(d.render())
        raise ArgumentsExit(d)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="nnmip", description="Neural networks as mixed-integer optimization models.",
                                epilog="exit codes: 0 verified result, 1 no verified result, 2 bad input, "
                                       "3 solver problem, 4 internal error, 130 interrupted")
    p.add_argument("--version", action="version", version=f"nnmip {__version__}")
    p.add_argument("--log-level", default="WARNING", type=str.upper, choices=LOG_LEVELS, metavar="LEVEL",
                   help="library log level: DEBUG, INFO, WARNING (default), ERROR")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (fn, _, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        getattr(fn, "configure", lambda _p: None)(sp)
    return p



def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``nnmip`` command and return its exit code (argument errors give 2, ``--help`` 0, Ctrl-C 130)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:   # Ctrl-C outside the command's own handling (parsing the arguments, importing)
        err("interrupted")
        return EXIT_INTERRUPT


def _main(argv: Sequence[str] | None) -> int:
    from nnmip.cli.common import JSON_OUT

    JSON_OUT.printed = False
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except ArgumentsExit as exc:   # a bad option (message printed): the --json it names still gets the error
        from nnmip.io.safe import run_scope

        words = list(sys.argv[1:] if argv is None else argv)
        target, others = _json_option(words)
        with run_scope(w for w in others if w and "\x00" not in w):   # any word may name an input
            _maybe_json(argparse.Namespace(json=target), _error_report([exc.diagnostic]))
        return EXIT_INPUT
    except SystemExit as exc:   # argparse: --help, --version (0)
        return exc.code if isinstance(exc.code, int) else EXIT_INPUT
    if not args.command:
        parser.print_usage(sys.stderr)
        err(f"error[{ARGS_CODE}]: no command given\n  = help: run 'nnmip --help' for the list of commands")
        return EXIT_INPUT
    level = getattr(logging, args.log_level)
    if getattr(args, "quiet", False) and level == logging.WARNING:
        level = logging.ERROR       # -q: no warnings (a --log-level below WARNING still shows what it asks for)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    fn = COMMANDS[args.command][0]
    from nnmip.cli.common import interruptible
    from nnmip.io.safe import run_scope
    from nnmip.solution import STOP

    code = _run(fn, args, run_scope, interruptible)
    if STOP.is_set() and code in (EXIT_OK, EXIT_UNSOLVED):
        code = EXIT_INTERRUPT   # stopped by Ctrl-C: the outputs hold what was found, marked 'interrupted'
    if STOP.is_set() and (argv is None or any(t.is_alive() for t in STOP.abandoned)):
        # Interrupted as the 'nnmip' program (or with a solver thread that cannot be stopped): every output is
        # written and synced, so end now instead of waiting for the solvers' worker threads to wind down.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _run(fn: Any, args: argparse.Namespace, run_scope: Any, interruptible: Any) -> int:
    with run_scope(), interruptible():
        try:
            return int(fn(args))
        except KeyboardInterrupt:
            err("interrupted")
            _maybe_json(args, {"status": "interrupted", "errors": []})
            return EXIT_INTERRUPT
        except (BackendUnavailable, SolverError) as exc:
            err(_with_help(_with_file_source(exc, args)).render())
            _maybe_json_error(args, exc)
            return EXIT_SOLVER
        except NnmipError as exc:
            err(_with_help(_with_file_source(exc, args)).render())
            _maybe_json_error(args, exc)
            return EXIT_INPUT
        except BrokenPipeError:  # pragma: no cover
            return EXIT_OK
        except MemoryError:
            exc = NnmipError.at("E0431", "out of memory",
                                notes=["help: make the problem smaller (fewer rows, units or points)"])
            err(exc.render())
            _maybe_json_error(args, exc)
            return EXIT_INPUT
        except RecursionError:
            exc = NnmipError.at("E0432", "the input is nested too deeply to be processed",
                                notes=["help: flatten the nesting"])
            err(exc.render())
            _maybe_json_error(args, exc)
            return EXIT_INPUT
        except Exception as exc:   # a bug: say so plainly, without a traceback unless asked for
            logging.getLogger("nnmip").debug("internal error", exc_info=True)
            bug = NnmipError.at("E0900", f"internal error: {type(exc).__name__}: {exc}", notes=[
                "note: this is a bug in nnmip; run again with --log-level DEBUG to see where it happened",
                "help: please report it with the command and its input files"])
            err(bug.render())
            _maybe_json_error(args, bug)
            return EXIT_INTERNAL


def _with_help(exc: NnmipError) -> NnmipError:
    """Give every diagnostic a ``help:`` line: one pointing at its entry in docs/errors.md when it has none."""
    from dataclasses import replace

    if not exc.diagnostics:
        exc.diagnostics = (Diagnostic(exc.code, str(exc)),)
    exc.diagnostics = tuple(d if any(n.startswith("help:") for n in d.notes) else
                            replace(d, notes=(*d.notes, f"help: see {d.code} in docs/errors.md"))
                            for d in exc.diagnostics)
    return exc


def _with_file_source(exc: NnmipError, args: argparse.Namespace) -> NnmipError:
    """Attach the command's .nnmip text to an error raised after parsing (data, formulation, solver), so
    that it renders with the source line and caret like the checker's errors."""
    path = getattr(args, "file", None)
    if exc.source is None and path and any(d.span.file == path for d in exc.diagnostics):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            exc.with_source(Path(path).read_text(encoding="utf-8-sig"))
    return exc


OUTPUT_CODES = ("E0603", "E0610", "E0611", "E0612", "E0613", "E0614", "E0615")


def _error_report(diagnostics: Sequence[Diagnostic]) -> dict[str, object]:
    return {"status": "error", "errors": [d.to_dict() for d in diagnostics]}


def _maybe_json_error(args: argparse.Namespace, exc: NnmipError) -> None:
    if getattr(args, "json", None) != "-" and any(d.code in OUTPUT_CODES for d in exc.diagnostics):
        return   # the error is about an output file: write no more files
    _maybe_json(args, _error_report(exc.diagnostics or (Diagnostic(exc.code, str(exc)),)))


def _maybe_json(args: argparse.Namespace, data: dict[str, object]) -> None:
    """Write ``data`` to the command's ``--json`` target when it has one that may be written: standard output
    (unless the command printed its JSON there already), or a file that is no input of the run."""
    from nnmip.cli.common import JSON_OUT

    target = getattr(args, "json", None)
    if not target:
        return
    if target == "-":
        if not JSON_OUT.printed:
            with contextlib.suppress(OSError):
                write_json(target, data)
        return
    if not getattr(args, "json_checked", False) and not _may_replace(target):
        return   # the error came before the command knew all its inputs: never risk writing over one of them
    from nnmip.io.safe import note_input

    for p in _command_inputs(args):
        note_input(p)
    with contextlib.suppress(OSError, NnmipError):
        write_json(target, data)


def _may_replace(target: str) -> bool:
    """Whether an error report may go to ``target`` before the command's inputs are known: a new file, or a
    regular file (not a symlink) that holds a JSON object, such as the report of an earlier run.  A data,
    network or property file, or a link to one, is never such a file."""
    try:
        if not os.path.lexists(target):
            return True
        if os.path.islink(target) or not os.path.isfile(target) or os.path.getsize(target) > 64 * 1024 * 1024:
            return False
        with open(target, encoding="utf-8") as f:
            return isinstance(json.load(f), dict)
    except (OSError, ValueError):
        return False


def _json_option(words: Sequence[str]) -> tuple[str | None, list[str]]:
    """The value of ``--json`` in a command line that did not parse (None without one), and the other words."""
    for i, w in enumerate(words):
        if w == "--":
            break
        if w == "--json" and i + 1 < len(words):
            return words[i + 1], [*words[:i], *words[i + 2:]]
        if w.startswith("--json="):
            return w[len("--json="):], [*words[:i], *words[i + 1:]]
    return None, list(words)


def _command_inputs(args: argparse.Namespace) -> list[str]:
    """The files a command's arguments name as inputs (never to be written over, even by an error report)."""
    names = ("file", "weights", "data", "onnx", "npz", "vnnlib", "points", "point")
    return [v for k in names if isinstance(v := getattr(args, k, None), str)]
