"""The ``nnmip`` command.

Exit codes: 0 success (a verified result); 1 solved without a verified result (infeasible, unbounded, a time
limit without an incumbent, or a solution the forward pass does not reproduce); 2 bad input (syntax, check,
data, model); 3 solver missing, unlicensed or failing; 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from nnmip import __version__
from nnmip.cli import check, compile, compress, predict, solve, verify  # noqa: F401  (each registers its command)
from nnmip.cli.common import (  # noqa: F401  (the exit codes are part of the interface)
    COMMANDS,
    EXIT_INPUT,
    EXIT_INTERRUPT,
    EXIT_OK,
    EXIT_SOLVER,
    EXIT_UNSOLVED,
    err,
    write_json,
)
from nnmip.errors import BackendUnavailable, NnmipError, SolverError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nnmip", description="Neural networks as mixed-integer optimization models.",
                                epilog="exit codes: 0 verified result, 1 no verified result, 2 bad input, "
                                       "3 solver problem, 130 interrupted")
    p.add_argument("--version", action="version", version=f"nnmip {__version__}")
    p.add_argument("--log-level", default="WARNING", help="library log level (DEBUG, INFO, WARNING)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (fn, _, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        getattr(fn, "configure", lambda _p: None)(sp)
    return p



def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_INPUT
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
                        format="%(levelname)s %(name)s: %(message)s")
    fn = COMMANDS[args.command][0]
    try:
        return fn(args)
    except KeyboardInterrupt:
        err("interrupted")
        return EXIT_INTERRUPT
    except (BackendUnavailable, SolverError) as exc:
        err(_with_file_source(exc, args).render())
        _maybe_json_error(args, exc)
        return EXIT_SOLVER
    except NnmipError as exc:
        err(_with_file_source(exc, args).render())
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
        write_json(target, {"status": "error", "errors": [d.to_dict() for d in exc.diagnostics]
                             or [{"code": exc.code, "message": str(exc)}]})


