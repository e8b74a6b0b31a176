"""Run a VNN-COMP benchmark family as shipped: every instance (network, property, timeout) of its instances CSV.

Each instance runs as its own ``nnmip verify --onnx NET --vnnlib PROP --time-limit T`` process, so that a crash,
a refused network or a run that overstays its budget touches no other instance; a process still running
``KILL_GRACE`` seconds after its timeout is ended and the instance counts as ``timeout``.  The result file of each
instance holds the competition's words: ``sat`` followed by the counterexample ``((X_0 v) ... (Y_0 v))``,
``unsat``, ``timeout`` or ``unknown`` (also written when the network or property could not be loaded; the reason
is in the summary).

:func:`run_family` returns one :class:`InstanceResult` per instance and writes ``summary.csv`` and
``summary.json`` in the results folder.  Instances run ``jobs`` at a time on the shared executor
(:mod:`nnmip.drivers.executor`: local processes, or a Dask cluster) over a picklable task.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nnmip.drivers.executor import THREAD_ENV
from nnmip.errors import DataError
from nnmip.io.safe import write_text
from nnmip.solution import STOP

#: seconds a verify process may run past its timeout before it is ended
KILL_GRACE = 10.0
#: seconds of the timeout left to process start-up (interpreter, imports) and to writing the result
STARTUP = 2.0
ANSWERS = ("sat", "unsat", "timeout", "unknown")


@dataclass
class Instance:
    """One row of an instances CSV: paths relative to the benchmark folder, and the timeout in seconds."""

    family: str
    onnx: str
    vnnlib: str
    timeout: float
    index: int = 0
    #: the instance's line in its instances CSV (1-based; 0 when it was not read from a file)
    line: int = 0

    @property
    def key(self) -> str:
        """The instance's key in ``official_results.json``: ``family|network|property`` (file names, no ``.gz``)."""
        return f"{self.family}|{_stem(self.onnx)}|{_stem(self.vnnlib)}"

    @property
    def name(self) -> str:
        return f"{self.index:04d}_{Path(_stem(self.onnx)).stem}_{Path(_stem(self.vnnlib)).stem}"


def _stem(path: str) -> str:
    name = Path(path).name
    return name[:-3] if name.endswith(".gz") else name


@dataclass
class InstanceResult:
    """How one instance ended: the answer, the wall-clock seconds and whether the network and property loaded."""

    key: str
    family: str
    network: str
    property: str
    timeout: float
    result: str
    seconds: float
    loaded: bool
    result_file: str
    note: str = ""
    exit_code: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def find_instances_csv(bench: Path) -> Path:
    """The family's instances CSV: ``instances.csv``, else the one ``*instances.csv`` in the folder."""
    plain = bench / "instances.csv"
    if plain.is_file():
        return plain
    found = sorted(bench.glob("*instances.csv"))
    if len(found) != 1:
        raise DataError.at("E0313", f"'{bench}' has {len(found)} files named *instances.csv; expected one",
                           notes=["help: give the list with --instances FILE"])
    return found[0]


def read_instances(bench: Path, csv_path: Path, family: str | None = None) -> list[Instance]:
    """The rows ``network,property,timeout`` of ``csv_path`` (paths relative to ``bench``).

    A malformed list is ``E0313``, located at its line: not three fields, a timeout that is not a finite positive
    number of seconds, or a file that is not UTF-8 text (a UTF-8 byte-order mark is skipped).
    """
    from nnmip.errors import Span
    from nnmip.io.files import read_text_file

    fam = family or bench.resolve().name
    name = str(csv_path)
    out: list[Instance] = []
    text = read_text_file(csv_path, name, code="E0313")
    line = 0

    def bad(message: str, help_text: str) -> DataError:
        e = DataError.at("E0313", f"line {line} of '{name}' {message}", Span(line, 1, line, 1, name),
                         [f"help: {help_text}"])
        assert isinstance(e, DataError)
        return e

    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise bad("holds a NUL byte: the list is not a text file", "give the family's instances CSV, one "
                  "network,property,timeout per line")
    reader = csv.reader(text.splitlines())
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            line = reader.line_num
            raise bad(f"cannot be read as CSV: {exc}", "VNN-COMP instance lists are plain text, one "
                      "network,property,timeout per line") from None
        line = reader.line_num
        if not row or not "".join(row).strip():
            continue
        if len(row) != 3:
            raise bad(f"has {len(row)} fields; expected network, property, timeout",
                      "VNN-COMP instance lists have three columns")
        try:
            t = float(row[2])
        except ValueError:
            raise bad(f"has the timeout '{row[2].strip()[:40]}', which is not a number",
                      "the third column is the timeout in seconds") from None
        if not math.isfinite(t) or t <= 0:
            raise bad(f"has the timeout {row[2].strip()[:40]}, which is not a positive number of seconds",
                      "the third column is the timeout in seconds, a finite number above 0")
        out.append(Instance(fam, row[0].strip(), row[1].strip(), t, len(out), line))
    return out


def command(bench: Path, inst: Instance, out_dir: Path, time_limit: float, *, workers: int = 1,
            solver: str = "highs", threads: int | None = None) -> list[str]:
    """The ``nnmip verify`` command line of one instance."""
    return [sys.executable, "-m", "nnmip.cli", "verify", "--onnx", str(bench / inst.onnx),
            "--vnnlib", str(bench / inst.vnnlib), "--time-limit", f"{time_limit:g}", "--solver", solver,
            "--workers", str(workers), *(["--threads", str(threads)] if threads is not None else []),
            "--counterexample", str(out_dir / f"{inst.name}.txt"), "--json", str(out_dir / f"{inst.name}.json"),
            "-q"]


@dataclass
class Task:
    """Everything one instance needs, picklable (for a process pool or any other executor)."""

    bench: str
    inst: Instance
    out_dir: str
    time_limit: float
    workers: int = 1
    solver: str = "highs"
    #: solver and BLAS/OpenMP threads of the instance's process (``None``: the libraries' defaults)
    threads: int | None = 1


def run_instance(task: Task) -> InstanceResult:
    """Run one instance in its own process and read back its answer."""
    inst, out_dir = task.inst, Path(task.out_dir)
    res_file = out_dir / f"{inst.name}.txt"
    json_file = out_dir / f"{inst.name}.json"
    for f in (res_file, json_file):
        f.unlink(missing_ok=True)
    cmd = command(Path(task.bench), inst, out_dir, max(task.time_limit - STARTUP, 0.5), workers=task.workers,
                  solver=task.solver, threads=task.threads)
    t0 = time.monotonic()
    note = ""
    code: int | None = None
    killed = False
    env = dict(os.environ)
    if task.threads is not None:     # the instance's own process: BLAS and OpenMP read these when they load
        env.update({var: str(task.threads) for var in THREAD_ENV})
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as p:
        def stop() -> None:     # Ctrl-C: the instance stops its solve and writes its answer (exit code 130)
            with contextlib.suppress(OSError):
                p.send_signal(signal.SIGINT)

        try:
            with STOP.watch(stop):
                _, err = p.communicate(timeout=task.time_limit + KILL_GRACE)
            code = p.returncode
            err = err.strip()
        except subprocess.TimeoutExpired:
            killed = True
            p.kill()
            _, err = p.communicate()
            err = (err or "").strip()
        except BaseException:   # a second Ctrl-C: never leave the instance running
            p.kill()
            raise
    seconds = time.monotonic() - t0
    answer = ""
    if res_file.is_file():
        answer = res_file.read_text(encoding="utf-8").split("\n", 1)[0].strip()
    extra: dict[str, Any] = {}
    if json_file.is_file():
        try:
            data = json.loads(json_file.read_text(encoding="utf-8"))
            extra = {k: data.get(k) for k in ("bound", "value", "binaries", "notes") if k in data}
            if "errors" in data:
                note = "; ".join(f"{e.get('code', '')} {e.get('message', '')}".strip() for e in data["errors"])
        except (OSError, ValueError):
            pass
    loaded = answer in ANSWERS
    if killed:
        answer, note = "timeout", f"ended {KILL_GRACE:g} s after its timeout"
    elif answer not in ANSWERS:
        answer = "unknown"
        if not note:
            note = err.splitlines()[0] if err else f"exit code {code}"
    if not res_file.is_file() or answer != res_file.read_text(encoding="utf-8").split("\n", 1)[0].strip():
        write_text(res_file, answer + "\n")
    return InstanceResult(inst.key, inst.family, _stem(inst.onnx), _stem(inst.vnnlib), inst.timeout, answer,
                          round(seconds, 3), loaded, str(res_file), note, code, extra)


def run_instances(tasks: Sequence[Task], jobs: int = 1, progress: Callable[[InstanceResult, int, int], None] | None
                  = None, scheduler: str | None = None) -> list[InstanceResult]:
    """Run the tasks on :func:`nnmip.drivers.executor.make_executor` (``jobs`` local processes, or a Dask
    ``scheduler``), ``jobs`` instances at a time; one result per task, in order.
    """
    from nnmip.drivers.executor import INTERRUPTED_CODE, BatchState, Outcome, make_executor, unwrap

    def report(state: BatchState, out: Outcome) -> None:
        if progress is not None and out.ok:
            progress(out.value, state.finished, state.total)

    with make_executor(jobs=max(1, jobs), scheduler=scheduler, threads=None) as ex:
        outcomes = ex.map(run_instance, list(tasks), progress=report)
    # after Ctrl-C the instances that never started are left out (the summary covers those that ran)
    return unwrap([o for o in outcomes if o.error is None or o.error.code != INTERRUPTED_CODE])


def select(instances: list[Instance], sample: int | None, seed: int) -> list[Instance]:
    """A seeded sample of ``sample`` instances (in their CSV order), or all."""
    if sample is None or sample >= len(instances):
        return instances
    import numpy as np

    idx = np.sort(np.random.default_rng(seed).choice(len(instances), size=sample, replace=False))
    return [instances[int(i)] for i in idx]


def run_family(bench: str | os.PathLike[str], *, instances_csv: str | os.PathLike[str] | None = None,
               results_dir: str | os.PathLike[str] | None = None, jobs: int = 1, workers: int = 1,
               timeout: float | None = None, timeout_scale: float = 1.0, sample: int | None = None, seed: int = 0,
               solver: str = "highs", progress: Callable[[InstanceResult, int, int], None] | None = None,
               scheduler: str | None = None, threads: int | None = 1) -> tuple[list[InstanceResult], Path]:
    """Run a family; return the per-instance results and the results folder (with ``summary.csv/json``).

    Each instance's budget is its own timeout (``timeout`` replaces it, ``timeout_scale`` multiplies it); each
    instance's process runs its solver and BLAS with ``threads`` threads (``None``: the libraries' defaults).
    """
    from nnmip.errors import check_int
    from nnmip.io.safe import note_input, run_scope

    check_int("seed", seed)
    check_int("sample", sample, low=1, none=True)
    b = Path(bench)
    if not b.is_dir():
        raise DataError.at("E0301", f"benchmark folder '{b}' does not exist")
    csv_path = Path(instances_csv) if instances_csv is not None else find_instances_csv(b)
    with run_scope():   # the list, the networks and the properties: no result file may be written over one
        note_input(csv_path)
        listed = read_instances(b, csv_path)
        for i in listed:
            note_input(b / i.onnx)
            note_input(b / i.vnnlib)
        insts = select(listed, sample, seed)
        budgets = [_budget(i, csv_path, timeout, timeout_scale) for i in insts]
        out = Path(results_dir) if results_dir is not None else Path("vnncomp_results") / b.resolve().name
        check_outputs(out, insts)
        out.mkdir(parents=True, exist_ok=True)
        tasks = [Task(str(b), i, str(out), t, workers, solver, threads) for i, t in zip(insts, budgets, strict=True)]
        t0 = time.monotonic()
        results = run_instances(tasks, jobs, progress, scheduler)
        write_summary(out, results, {"bench": str(b), "instances": str(csv_path), "jobs": jobs, "workers": workers,
                                     "timeout": timeout, "timeout_scale": timeout_scale, "sample": sample,
                                     "seed": seed, "solver": solver, "threads": threads,
                                     "seconds": round(time.monotonic() - t0, 2),
                                     **({"interrupted": True, "not_run": len(tasks) - len(results)}
                                        if STOP.is_set() else {})})
    return results, out


#: the longest budget of one instance in seconds (about 115 days): beyond it no timer of the run keeps time
MAX_TIMEOUT = 1e7


def _budget(inst: Instance, csv_path: Path, timeout: float | None, scale: float) -> float:
    """The seconds ``inst`` may run: its timeout (or ``timeout``) times ``scale``; ``E0313`` at the instance's
    line (``E0109`` when ``timeout`` is the cause) for a budget that is not a positive number of seconds up to
    :data:`MAX_TIMEOUT`.
    """
    from nnmip.errors import Span

    t = (timeout if timeout is not None else inst.timeout) * scale
    if math.isfinite(t) and 0 < t <= MAX_TIMEOUT:
        return t
    if timeout is not None:
        raise DataError.at("E0109", f"--timeout {timeout:g} times --timeout-scale {scale:g} is {t:g} seconds, "
                           f"not between 0 and {MAX_TIMEOUT:g}",
                           notes=["help: give a timeout and a scale whose product is a sensible number of seconds"])
    where = Span(inst.line, 1, inst.line, 1, str(csv_path)) if inst.line else Span(file=str(csv_path))
    raise DataError.at("E0313", f"line {inst.line} of '{csv_path}': the timeout {inst.timeout:g} times "
                       f"--timeout-scale {scale:g} is {t:g} seconds, not between 0 and {MAX_TIMEOUT:g}", where,
                       ["help: lower --timeout-scale, or give the instance a timeout of at most "
                        f"{MAX_TIMEOUT:g} seconds"])


def check_outputs(out: Path, insts: Sequence[Instance]) -> None:
    """Refuse, before any instance runs, a results folder where a result file or a summary would replace an
    input of the run (``E0613``) or cannot be written (``E0610``-``E0612``).
    """
    from nnmip.io.safe import check_writable

    if not out.is_dir():
        return    # a folder still to be made holds no file
    for name in ("summary.csv", "summary.json"):
        check_writable(out / name, "--results-dir")
    for i in insts:
        for ext in (".txt", ".json"):
            check_writable(out / f"{i.name}{ext}", "--results-dir")


def write_summary(out: Path, results: list[InstanceResult], run: dict[str, Any]) -> None:
    """``summary.csv`` (one row per instance) and ``summary.json`` (the run's settings, counts and rows)."""
    cols = ["key", "family", "network", "property", "timeout", "result", "seconds", "loaded", "note",
            "result_file"]
    table = io.StringIO(newline="")
    w = csv.writer(table)
    w.writerow(cols)
    for r in results:
        w.writerow([getattr(r, c) for c in cols])
    write_text(out / "summary.csv", table.getvalue())
    counts = {a: sum(r.result == a for r in results) for a in ANSWERS}
    data = {"run": run, "counts": counts, "loaded": sum(r.loaded for r in results), "instances": len(results),
            "results": [asdict(r) for r in results]}
    write_text(out / "summary.json", json.dumps(data, indent=2, default=str) + "\n")
