"""CBC's program is never waited on forever: once signalled (a stop request, or its time limit long past) it gets
``STOP_GRACE`` seconds to end and is then killed, even if it ignores SIGINT (CBC has been seen to hang on a futex
from its start, with no CPU time used, under a 0.01 s limit)."""

from __future__ import annotations

import sys
import threading
import time
from types import SimpleNamespace

import pytest
import scipy.sparse as sp

from nnmip.backends import cbc
from nnmip.solution import STOP, SolveOptions

#: a program that ignores SIGINT and sleeps, standing in for a CBC that hangs
DEAF = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "print('started', flush=True); time.sleep(600)"]
MODEL = SimpleNamespace(A=sp.csr_array((1, 1)))


@pytest.mark.timeout(60)
def test_a_program_past_its_limit_that_ignores_sigint_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cbc, "LIMIT_MARGIN", 0.5)
    monkeypatch.setattr(cbc, "STOP_GRACE", 1.0)
    t0 = time.monotonic()
    log, code, stopped, gave_up = cbc._run_program(DEAF, SolveOptions(time_limit=0.1), MODEL, False)  # type: ignore[arg-type]
    assert time.monotonic() - t0 < 10.0
    assert code != 0
    assert not stopped
    assert "started" in log


@pytest.mark.timeout(60)
def test_a_stop_request_ends_a_program_that_ignores_sigint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cbc, "STOP_GRACE", 1.0)
    timer = threading.Timer(0.5, STOP.request)
    timer.start()
    t0 = time.monotonic()
    try:
        _, code, stopped, _ = cbc._run_program(DEAF, SolveOptions(), MODEL, False)  # type: ignore[arg-type]
    finally:
        timer.cancel()
        STOP.clear()
    assert time.monotonic() - t0 < 10.0
    assert code != 0
    assert stopped
