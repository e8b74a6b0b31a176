"""Task functions for the executor tests (a module the worker processes can import by name)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from nnmip.errors import DataError


def square(x: int) -> int:
    time.sleep(0.01 * (x % 3))       # finish out of order
    return x * x


def scaled(k: int, x: int) -> int:
    return k * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is not allowed")
    return x


def bad_input_on_two(x: int) -> int:
    if x == 2:
        raise DataError.at("E0301", "file 'two.csv' does not exist", notes=["help: give the file"])
    return x


def _die_first_time(marker: str) -> None:
    """Ends this worker process abruptly when the marker file is absent (writing it first)."""
    m = Path(marker)
    if not m.exists():
        m.write_text("died once")
        os._exit(13)


def die_once(task: tuple[int, str]) -> int:
    """Ends its worker process abruptly the first time (marker file absent), returns on the retry."""
    x, marker = task
    if x == 1:
        _die_first_time(marker)
    time.sleep(0.05)
    return x + 100


def die_always(task: tuple[int, str]) -> int:
    """Ends its worker process abruptly on every attempt (counting them in the marker file) for ``x == 1``."""
    x, marker = task
    if x == 1:
        m = Path(marker)
        m.write_text(str(int(m.read_text()) + 1 if m.exists() else 1))
        os._exit(13)
    time.sleep(0.05)
    return x + 100


def threads_seen(x: int) -> tuple[int, list[int], int | None]:
    """The item, the thread counts of the BLAS/OpenMP pools and the default solver threads inside the task."""
    from threadpoolctl import threadpool_info

    from nnmip.solution import default_solver_threads

    return x, sorted({int(i["num_threads"]) for i in threadpool_info()}), default_solver_threads()


def tiny(x: int) -> int:
    return 3 * x


class Counted:
    """A shared payload that notes, in a file, every process that unpickles it."""

    def __init__(self, path: str, k: int) -> None:
        self.path, self.k = path, k

    def __reduce__(self) -> tuple[object, tuple[str, int]]:
        return (_counted, (self.path, self.k))


def _counted(path: str, k: int) -> Counted:
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{os.getpid()}\n")
    return Counted(path, k)


def times_counted(c: Counted, x: int) -> int:
    time.sleep(0.002)
    return c.k * x


def die_once_in_a_chunk(task: tuple[int, str]) -> int:
    """Tiny tasks (they travel in chunks); ``x == 150`` ends its worker the first time (marker file absent)."""
    x, marker = task
    if x == 150:
        _die_first_time(marker)
    return x + 100


def stop_at_two(x: int) -> int:
    """Task 2 makes a stop request in this process, as Ctrl-C does (serial runs: the caller's process)."""
    from nnmip.solution import STOP

    if x == 2:
        STOP.request()
    return x


def wait_for_stop(x: int) -> str:
    """Waits up to 60 s for a stop request in this process (a worker gets one from SIGINT), then says which."""
    from nnmip.solution import STOP

    return "stopped" if STOP.wait(60.0) else "not stopped"
