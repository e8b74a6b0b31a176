"""Writing files without losing anything: every file nnmip writes goes through :func:`atomic_write`.

Guarantees
----------
* **Nothing is written over an input.** Inside :func:`run_scope` (each ``nnmip`` command runs in one), every file
  the run reads is recorded with :func:`note_input`; a target that is the same file as one of them, by resolved
  path or by ``(st_dev, st_ino)`` (so symlinks and hard links are caught too), is refused with ``E0613``.
* **Outputs are checked before the work.** :func:`check_writable` refuses a target that is a folder (``E0610``),
  whose folder does not exist (``E0611``) or cannot be written (``E0612``: a file is created there and removed
  at once to find out, since permissions do not tell on ``/sys``, ``/proc`` or a read-only mount), or that
  names an input (``E0613``); the commands call it for every output before any solve starts.
* **Atomic replacement.** The bytes go to a temporary file in the target's folder (``tempfile``), are flushed
  and ``fsync``-ed, and only then renamed over the target with :func:`os.replace`.  A failure at any point (a
  full disk, a size limit, an exception, Ctrl-C) removes the temporary file and leaves the previous file as it
  was; the error is ``E0614``.  A target that is a symlink is written through: the file it points to is
  replaced and the link stays.
* **Devices and pipes stay what they are.** A target that exists and is not a regular file (``/dev/null``,
  ``/dev/stdout``, a FIFO) is opened and written in place: no temporary file, no rename, hence no atomicity.

Outside a run scope (plain library use) the input registry is empty, so only the folder, permission and
atomicity guarantees apply.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from nnmip.errors import NnmipError

__all__ = ["OutputError", "atomic_write", "check_writable", "note_input", "run_scope", "inputs"]


class OutputError(NnmipError):
    """An output file cannot or must not be written."""

    code = "E0610"


_lock = threading.Lock()
_scopes: list[dict[str, tuple[str, tuple[int, int] | None]]] = []


def _identity(path: str | os.PathLike[str]) -> tuple[str, tuple[int, int] | None]:
    real = os.path.realpath(os.fspath(path))
    try:
        st = os.stat(real)
        return real, (st.st_dev, st.st_ino)
    except OSError:
        return real, None


@contextlib.contextmanager
def run_scope(paths: Iterable[str | os.PathLike[str]] = ()) -> Iterator[None]:
    """Record the inputs of one run (a command) until the block ends; nested scopes see their parents' inputs."""
    with _lock:
        _scopes.append({})
    try:
        for p in paths:
            note_input(p)
        yield
    finally:
        with _lock:
            _scopes.pop()


def note_input(path: str | os.PathLike[str] | None) -> None:
    """Record ``path`` as an input of the current run (no-op outside :func:`run_scope` or for ``-``/None)."""
    if path is None or not _scopes:
        return
    text = os.fspath(path)
    if not text or text == "-":
        return
    real, ident = _identity(text)
    with _lock:
        _scopes[-1][real] = (text, ident)


def inputs() -> list[str]:
    """The inputs recorded so far in the current run, as given."""
    with _lock:
        return [given for scope in _scopes for given, _ in scope.values()]


def _input_named_by(target: str) -> str | None:
    real, ident = _identity(target)
    with _lock:
        for scope in _scopes:
            for in_real, (given, in_ident) in scope.items():
                if in_real == real or (ident is not None and in_ident is not None and ident == in_ident):
                    return given
    return None


def _err(code: str, message: str, option: str | None, *notes: str) -> OutputError:
    where = f"{option}: " if option else ""
    e = OutputError.at(code, where + message, notes=notes)
    assert isinstance(e, OutputError)
    return e


def check_writable(path: str | os.PathLike[str], option: str | None = None, *, source: bool = False) -> Path:
    """Refuse an output target that cannot or must not be written; return the file that will be replaced.

    ``option`` (for example ``"--json"``) names where the path came from in messages.  The returned path is the
    symlink-resolved target.  ``source=True`` is for the writers of ``.nnmip`` text (``nnmip.io.source``), the
    only outputs that may end in ``.nnmip``; inputs of the run are refused all the same.
    """
    text = os.fspath(path)
    if not text:
        raise _err("E0611", "the output path is empty", option, "help: give a file name")
    if "\x00" in text:
        raise _err("E0611", f"the output path {text!r} holds a NUL character", option,
                   "help: give a plain file name")
    given = Path(text)
    if given.name.lower().endswith(".nnmip") and not source:
        raise _err("E0603", f"refusing to write '{text}': a .nnmip name is kept for source files", option,
                   "help: give the output another name; .nnmip files are only read")
    owner = _input_named_by(text)
    if owner is not None:
        same = "" if owner == text else f" ('{owner}')"
        raise _err("E0613", f"refusing to write '{text}': it is an input of this run{same}", option,
                   "help: write the output to a new file name; nnmip never overwrites what it reads")
    target = Path(os.path.realpath(text))
    if target.is_dir():
        raise _err("E0610", f"'{text}' is a folder, not a file", option, "help: give a file name inside it")
    folder = target.parent
    if not folder.is_dir():
        raise _err("E0611", f"the folder of '{text}' does not exist", option,
                   f"help: create '{given.parent}' first or write somewhere else")
    if target.exists() and not os.access(target, os.W_OK):
        raise _err("E0612", f"'{text}' is not writable", option, "help: check its permissions")
    if _special(target):
        return target    # written in place (a device, a FIFO): nothing is created in its folder
    if not os.access(folder, os.W_OK | os.X_OK) or not _can_create_in(folder):
        raise _err("E0612", f"cannot create files in the folder of '{text}'", option,
                   "help: check the folder's permissions or write somewhere else")
    return target


def _special(target: Path) -> bool:
    """Whether ``target`` exists and is not a regular file (a device or a FIFO: it is written in place)."""
    try:
        return not stat.S_ISREG(os.stat(target).st_mode)
    except OSError:
        return False


def _can_create_in(folder: Path) -> bool:
    """Whether a file can be created in ``folder``, tried with one that is removed at once: permissions alone do
    not tell (root may write anywhere the permissions say, but not in ``/sys`` or ``/proc``, nor on a read-only
    mount).
    """
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".nnmip-probe.", suffix=".part")
    except OSError:
        return False
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return True


def _mode_for(target: Path) -> int:
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], option: str | None = None, *, source: bool = False
                 ) -> Iterator[IO[bytes]]:
    """A binary file to write ``path``'s new content to; it replaces ``path`` only when the block succeeds.

    Raises :class:`OutputError` (``E0603``, ``E0610``-``E0614``); the previous file is untouched on any error.
    """
    target = check_writable(path, option, source=source)
    if _special(target):
        # a device or a FIFO (``/dev/null``, a pipe): write to it in place; renaming would replace it
        with _write_failure(path, option), open(target, "wb") as f:
            yield f
        return
    try:
        tmp = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", suffix=".part",  # noqa: SIM115
                                          delete=False)
    except OSError as exc:   # the folder changed since the check, or refuses new files
        raise _err("E0612", f"cannot create files in the folder of '{os.fspath(path)}': {exc.strerror or exc}",
                   option, "help: the previous file (if any) was kept; check the folder's permissions or write "
                   "somewhere else") from None
    done = False
    try:
        with _write_failure(path, option):
            yield tmp
            tmp.flush()
            os.fsync(tmp.fileno())
            tmp.close()
            os.chmod(tmp.name, _mode_for(target))
            os.replace(tmp.name, target)
            done = True
    finally:
        if not done:
            # closing flushes what is still buffered, which fails again on a full disk: never let that stop the
            # removal of the temporary file
            with contextlib.suppress(OSError):
                tmp.close()
            with contextlib.suppress(OSError):
                os.unlink(tmp.name)


@contextlib.contextmanager
def _write_failure(path: str | os.PathLike[str], option: str | None) -> Iterator[None]:
    """Turn an ``OSError`` of the block (a full disk, a size limit, an I/O error) into ``E0614``."""
    try:
        yield
    except OSError as exc:
        raise _err("E0614", f"cannot write '{os.fspath(path)}': {exc.strerror or exc}", option,
                   "help: the previous file (if any) was kept; free disk space or choose another place"
                   ) from None


def write_bytes(path: str | os.PathLike[str], data: bytes, option: str | None = None, *,
                source: bool = False) -> Path:
    """Atomically replace ``path`` by ``data``."""
    with atomic_write(path, option, source=source) as f:
        f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str, option: str | None = None, *,
               source: bool = False) -> Path:
    """Atomically replace ``path`` by ``text`` (UTF-8)."""
    return write_bytes(path, text.encode("utf-8"), option, source=source)
