"""Start-up of the ``nnmip`` command: loaded first by ``nnmip/__init__.py``, before the heavy modules."""

from __future__ import annotations


def quiet_start() -> None:
    """When this process is the ``nnmip`` command (``nnmip ...`` or ``python -m nnmip.cli ...``), Ctrl-C while its
    modules load ends it at once with code 130 and one line instead of a traceback (nothing has been done yet).
    The command installs its own Ctrl-C handling once loaded; ``import nnmip`` anywhere else changes nothing.
    """
    import os
    import signal
    import sys
    import threading

    argv = list(getattr(sys, "orig_argv", sys.argv))
    command = (any(argv[i:i + 2] in (["-m", "nnmip.cli"], ["-m", "nnmip"]) for i in range(len(argv)))
               or os.path.basename(sys.argv[0] if sys.argv else "") in ("nnmip", "nnmip.exe"))
    if (not command or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        return

    def interrupted(_signum: int, _frame: object) -> None:
        os.write(2, b"\ninterrupted\n")
        os._exit(130)

    signal.signal(signal.SIGINT, interrupted)


quiet_start()
