"""Ctrl-C while a solver's module loads: held until the import has ended, then handed to the handler in place
(it was turned into "solver 'highs' is not installed", or lost, when it came inside a compiled module's start)."""

from __future__ import annotations

import os
import signal
import types

import pytest

from nnmip.backends import _common
from nnmip.errors import BackendUnavailable

STATE = {"importing": False}


def _compiled_import(name: str) -> types.ModuleType:
    """An import that gets SIGINT half-way and, like a compiled module's initialisation, turns an exception
    raised there into an ``ImportError``."""
    STATE["importing"] = True
    try:
        os.kill(os.getpid(), signal.SIGINT)        # the Python handler runs right after this call
    except BaseException as exc:
        raise ImportError(f"initialization of {name} failed") from exc
    finally:
        STATE["importing"] = False
    return types.ModuleType(name)


def test_a_ctrl_c_during_the_import_reaches_the_handler_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(STATE["importing"]))
    try:
        monkeypatch.setattr(_common.importlib, "import_module", _compiled_import)
        mod = _common.import_solver("fake", "nnmip_fake_solver_module")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert mod.__name__ == "nnmip_fake_solver_module"
    assert seen == [False]           # handed over once, after the import


def test_with_python_default_handler_the_ctrl_c_is_a_keyboard_interrupt_not_a_missing_solver(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_common.importlib, "import_module", _compiled_import)
    # Python's own handler (a process started in the background inherits SIGINT ignored)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _common.import_solver("fake", "nnmip_fake_solver_module")
    except BackendUnavailable as exc:
        pytest.fail(f"a Ctrl-C became '{exc}'")
    except KeyboardInterrupt:
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    else:
        pytest.fail("the Ctrl-C was lost")
    finally:
        signal.signal(signal.SIGINT, previous)
