"""Errors and diagnostics.

Every error a user can cause carries a stable code (listed in ``docs/errors.md``), a message that names the
thing, the source span it came from and optional ``help:`` notes.  :func:`Diagnostic.render` prints it as
``file:line:col: error[E0203]: message`` followed by the source line and a caret under the span.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source file (1-based lines and columns, end exclusive)."""

    line: int = 0
    column: int = 0
    end_line: int = 0
    end_column: int = 0
    file: str = ""

    @property
    def known(self) -> bool:
        return self.line > 0

    @classmethod
    def of(cls, meta: object, file: str = "") -> Span:
        """Span of a lark ``Meta`` or ``Token`` (anything with line/column attributes)."""
        if getattr(meta, "empty", False):
            return NO_SPAN
        return cls(
            int(getattr(meta, "line", 0) or 0),
            int(getattr(meta, "column", 0) or 0),
            int(getattr(meta, "end_line", 0) or 0),
            int(getattr(meta, "end_column", 0) or 0),
            file,
        )

    def __str__(self) -> str:
        where = self.file or "<input>"
        return f"{where}:{self.line}:{self.column}" if self.known else where


NO_SPAN = Span()


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One located problem: a stable code, a lowercase message, a span and ``help:`` notes."""

    code: str
    message: str
    span: Span = NO_SPAN
    notes: tuple[str, ...] = ()
    severity: str = "error"

    def render(self, source: str | None = None) -> str:
        head = f"{self.severity}[{self.code}]: {self.message}"
        if self.span.known or self.span.file:   # no '<input>:' prefix for errors that come from no file
            head = f"{self.span}: {head}"
        lines = [head]
        if source is not None and self.span.known:
            src_lines = source.splitlines()
            if 0 < self.span.line <= len(src_lines):
                text = src_lines[self.span.line - 1]
                gutter = f"{self.span.line:>4} | "
                lines.append(gutter + text)
                start = max(self.span.column, 1)
                if self.span.end_line == self.span.line and self.span.end_column > start:
                    width = self.span.end_column - start
                else:
                    width = max(len(text) - start + 1, 1)
                lines.append(" " * (len(gutter) + start - 1) + "^" * width)
        lines.extend(f"  = {n}" for n in self.notes)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "file": self.span.file,
            "line": self.span.line,
            "column": self.span.column,
            "notes": list(self.notes),
        }


class NnmipError(Exception):
    """Base class of every error nnmip raises on purpose."""

    code = "E0000"

    def __init__(self, message: str = "", *, diagnostics: Sequence[Diagnostic] = (),
                 source: str | None = None) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        self.source = source
        if not message and self.diagnostics:
            message = self.diagnostics[0].message
        super().__init__(message)

    @classmethod
    def at(cls, code: str, message: str, span: Span = NO_SPAN, notes: Iterable[str] = (),
           source: str | None = None) -> NnmipError:
        """Build an error carrying one diagnostic."""
        return cls(message, diagnostics=[Diagnostic(code, message, span, tuple(notes))], source=source)

    def with_source(self, source: str | None) -> NnmipError:
        if self.source is None:
            self.source = source
        return self

    def render(self) -> str:
        if not self.diagnostics:
            return f"error[{self.code}]: {self}"
        return "\n".join(d.render(self.source) for d in self.diagnostics)


class NnmipSyntaxError(NnmipError, SyntaxError):
    """The text is not in the language."""

    code = "E0001"


class CheckError(NnmipError, ValueError):
    """The text parses but does not make sense; holds every diagnostic found."""

    code = "E0100"


class DataError(NnmipError, ValueError):
    """A data source cannot be read or holds values that cannot be used."""

    code = "E0300"


class FormulationError(NnmipError, ValueError):
    """A model cannot be built (for example an infinite big-M bound)."""

    code = "E0400"


class BackendUnavailable(NnmipError, ImportError):
    """The requested solver is not installed or not licensed."""

    code = "E0500"


class SolverError(NnmipError, RuntimeError):
    """The solver failed or refused the model."""

    code = "E0501"


class NoSolutionError(NnmipError, RuntimeError):
    """The solve ended without a solution (infeasible, unbounded, or a time limit without an incumbent)."""

    code = "E0502"


class ParameterError(NnmipError, ValueError):
    """A Python API argument has a value that cannot be used; the message names the argument."""

    code = "E0109"

    @classmethod
    def of(cls, name: str, message: str, hint: str = "", code: str = "E0109") -> ParameterError:
        """``argument 'name' ...`` with ``code`` (``E0109`` unless a more precise code fits) and a help line."""
        e = cls.at(code, f"argument '{name}' {message}", notes=[f"help: {hint or 'see the function docstring'}"])
        assert isinstance(e, ParameterError)
        return e


class ArgumentTypeError(ParameterError, TypeError):
    """A Python API argument of the wrong type where callers (scikit-learn's checks) expect a ``TypeError``."""

    code = "E0108"


def check_number(name: str, value: object, *, low: float | None = 0.0, strict: bool = False,
                 none: bool = False, integer: bool = False) -> None:
    """Refuse a Python API number that is missing, not a real number, not finite, or below ``low``."""
    import math
    import numbers

    if value is None and none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError.of(name, f"must be a number, got {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise ParameterError.of(name, f"must be finite, got {value!r}")
    if integer and not x.is_integer():
        raise ParameterError.of(name, f"must be a whole number, got {value!r}")
    if low is not None and (x < low or (strict and x == low)):
        raise ParameterError.of(name, f"must be {'greater than' if strict else 'at least'} {low:g}, got {value!r}")


def check_int(name: str, value: object, *, low: int = 0, high: int | None = None, none: bool = False) -> None:
    """Refuse a Python API count or index that is not a whole number in ``[low, high]``."""
    import numbers

    if value is None and none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError.of(name, f"must be a whole number, got {value!r:.60}", code="E0108")
    if int(value) < low or (high is not None and int(value) > high):
        top = "" if high is None else f" and at most {high}"
        raise ParameterError.of(name, f"must be at least {low}{top}, got {value!r}")


def check_choice(name: str, value: object, choices: Iterable[str], *, none: bool = False,
                 code: str = "E0109") -> None:
    """Refuse a Python API option that is not one of ``choices`` (strings)."""
    if value is None and none:
        return
    options = tuple(choices)
    if not isinstance(value, str) or value not in options:
        raise ParameterError.of(name, f"must be one of {', '.join(repr(c) for c in options)}, got {value!r:.60}",
                                f"choose one of {', '.join(options)}", code=code)


def check_instance(name: str, value: object, kind: type | tuple[type, ...], what: str, *,
                   none: bool = False) -> None:
    """Refuse a Python API argument of the wrong type (``what`` says what is expected)."""
    if value is None and none:
        return
    if not isinstance(value, kind):
        raise ParameterError.of(name, f"must be {what}, got {type(value).__name__}", code="E0108")


def check_path(name: str, value: object) -> None:
    """Refuse a Python API file path that is not a non-empty ``str`` or ``os.PathLike``."""
    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)) or str(value) == "":
        raise ParameterError.of(name, f"must be a file path (str or pathlib.Path), got {value!r:.60}", code="E0108")


def check_callable(name: str, value: object, *, none: bool = True) -> None:
    """Refuse a Python API callback that cannot be called."""
    if value is None and none:
        return
    if not callable(value):
        raise ParameterError.of(name, f"must be a function{' or None' if none else ''}, got {value!r:.60}",
                                code="E0108")


# ------------------------------------------------------------------------------------------------------------
# Memory estimates: refuse before allocating
# ------------------------------------------------------------------------------------------------------------
MEMORY_LIMIT = 4 * 1024**3


def memory_limit() -> int:
    """The limit in bytes: ``NNMIP_MEMORY_LIMIT`` when set to a valid size, else ``MEMORY_LIMIT``."""
    text = os.environ.get("NNMIP_MEMORY_LIMIT", "").strip().upper()
    if text:
        mult = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}.get(text[-1], 1)
        digits = text[:-1] if text[-1] in "KMGT" else text
        try:
            value = int(float(digits) * mult)
            if value > 0:
                return value
        except ValueError:
            pass
    return MEMORY_LIMIT


def human_bytes(n: float) -> str:
    """``n`` bytes in B, KiB, MiB, GiB or TiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


class SizeError(NnmipError, MemoryError):
    """A network, model or array would need more memory than the limit allows."""

    code = "E0430"


def check_memory(estimate: float, what: str, span: Span | None = None, code: str = "E0430") -> None:
    """Refuse ``what`` when its estimated memory ``estimate`` (bytes) exceeds :func:`memory_limit`."""
    limit = memory_limit()
    if estimate > limit:
        cls = DataError if code.startswith("E03") else SizeError
        raise cls.at(code, f"{what} would need about {human_bytes(estimate)}, more than the limit of "
                     f"{human_bytes(limit)}", span or Span(),
                     ["help: make it smaller, or raise the limit with the environment variable NNMIP_MEMORY_LIMIT "
                      "(for example NNMIP_MEMORY_LIMIT=16G)"])
