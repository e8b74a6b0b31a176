"""Capture what a solver's C library prints on standard output (file descriptor 1)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def captured(enabled: bool = True) -> Iterator[list[str]]:
    """Capture file descriptor 1 while enabled (CBC prints even at ``verbose = 0``, HiGHS prints a banner on
    construction); yields a list that holds the captured text afterwards."""
    out: list[str] = []
    try:
        sys.stdout.flush()
        saved = os.dup(1) if enabled else -1
    except (OSError, ValueError):
        saved = -1
    if saved < 0:
        yield out
        return
    with tempfile.TemporaryFile() as tmp:
        try:
            os.dup2(tmp.fileno(), 1)
            yield out
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode(errors="replace"))
