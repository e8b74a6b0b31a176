"""Speed-up of a 200-point certification batch on 2 local processes and on a 2-worker Dask LocalCluster over a
serial run, the check that all three give the same answers, and how the batch would spread over more workers.

Batches (``nnmip verify --points``, through :func:`nnmip.drivers.verify.robust_accuracy`):

* ``relu``: a random 8-64-64-4 ReLU network (weights N(0, 4/fan_in), seed 0), 200 uniform points of [0, 1]^8
  (seed 0), linf radius 0.1, domain [0, 1]: tasks of about 0.2 s of CPU, some decided by MILP;
* ``bcw``: ``examples/data/verify_bcw.onnx`` (9-12-2) on the first 200 rows of the BCW data, linf radius 1 on the
  raw 1..10 features: tasks of a few milliseconds, where the per-task overhead shows.

For each batch and executor: the wall-clock time of the batch (the pool start included for processes; the
LocalCluster start reported apart), the CPU time the tasks used on their workers, and a digest of the JSON rows
without their ``seconds`` fields (the same digest = the same answers).  The machine may be shared: the CPU time
the tasks got per second of their own wall time ("CPU share") says how much of a core each task really had.

Scaling beyond the cores of this machine, two ways:

* *simulation*: the serial run's per-task CPU times, dispatched in order to the first free of P workers, each task
  paying a per-task overhead (default 1 ms, Dask's documented order of magnitude per task);
* *emulation* (``--emulate 4,8,16``): a LocalCluster of P single-threaded worker processes runs tasks that sleep
  for those per-task times, so that Dask's real dispatch, transfer and bookkeeping are measured at P workers
  although the machine has only 2 cores.

Run (about 2 minutes on 2 otherwise idle cores; several times longer on a busy machine)::

    python benchmarks/distributed.py                         # both batches, the three executors, the simulation
    python benchmarks/distributed.py --batch relu --modes serial --json serial.json     # one executor at a time
    python benchmarks/distributed.py --batch relu --emulate 4,8,16 --json out.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

# this file is named like the ``distributed`` package: its directory must not shadow it
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from nnmip.drivers.executor import (  # noqa: E402
    BatchState,
    DaskExecutor,
    Executor,
    Outcome,
    ProcessExecutor,
    SerialExecutor,
)
from nnmip.drivers.verify import load_model, network_from_layers, robust_accuracy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def relu_batch(n: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    sizes = [8, 64, 64, 4]
    layers = [(rng.normal(size=(b, a)) * 2.0 / np.sqrt(a), rng.normal(size=b) * 0.3)
              for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    net = network_from_layers(layers, name="relu_8_64_64_4")
    X = np.random.default_rng(0).random((n, 8))
    return {"net": net, "X": X, "y": None, "eps": 0.1, "domain": (0.0, 1.0),
            "what": "random 8-64-64-4 relu, uniform points of [0,1]^8, linf 0.1, domain [0,1]"}


def bcw_batch(n: int) -> dict[str, Any]:
    net = load_model("onnx", ROOT / "examples" / "data" / "verify_bcw.onnx")
    A = np.loadtxt(ROOT / "examples" / "data" / "breast-cancer-wisconsin.csv", delimiter=";")[:n]
    return {"net": net, "X": A[:, :-1], "y": A[:, -1].astype(np.int64), "eps": 1.0, "domain": (1.0, 10.0),
            "what": "examples/data/verify_bcw.onnx (9-12-2 relu), BCW rows, linf 1, domain [1,10]"}


def untimed(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: untimed(v) for k, v in d.items() if k != "seconds"}
    if isinstance(d, list):
        return [untimed(v) for v in d]
    return d


def run(ex: Executor, b: dict[str, Any]) -> dict[str, Any]:
    outs: list[Outcome] = []

    def progress(st: BatchState, out: Outcome) -> None:
        outs.append(out)
    c0, t0 = time.process_time(), time.perf_counter()
    acc, rows = robust_accuracy(b["net"], b["X"], b["y"], b["eps"], domain=b["domain"], executor=ex,
                                progress=progress)
    wall = time.perf_counter() - t0
    text = json.dumps(untimed(rows), sort_keys=True)
    task_cpu = sum(o.cpu_seconds for o in outs)
    task_wall = sum(o.seconds for o in outs)
    outs.sort(key=lambda o: o.index)
    return {"wall": wall, "driver_cpu": time.process_time() - c0, "task_cpu": task_cpu, "task_wall": task_wall,
            "cpu_share": task_cpu / task_wall if task_wall else 0.0, "robust_accuracy": acc,
            "answers": {r: sum(1 for x in rows if x["result"] == r) for r in sorted({x["result"] for x in rows})},
            "errors": sum(1 for x in rows if x["result"] == "error"),
            "digest": hashlib.sha256(text.encode()).hexdigest()[:16],
            "task_cpu_each": [o.cpu_seconds for o in outs], "task_wall_each": [o.seconds for o in outs],
            "workers": len({o.worker for o in outs})}


def simulate(durations: list[float], workers: int, overhead: float) -> float:
    """Makespan of the tasks dispatched in order to the first free worker, each paying ``overhead``."""
    free = np.zeros(workers)
    for d in durations:
        k = int(np.argmin(free))
        free[k] += d + overhead
    return float(free.max())


def sleep_task(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def emulate(durations: list[float], workers: int) -> dict[str, float]:
    t0 = time.perf_counter()
    ex = DaskExecutor("local", workers=workers)
    start = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        ex.values(sleep_task, durations)
        wall = time.perf_counter() - t0
    finally:
        ex.close()
    return {"workers": workers, "start": start, "wall": wall, "ideal": simulate(durations, workers, 0.0),
            "speedup": sum(durations) / wall}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", nargs="+", default=["relu", "bcw"], choices=["relu", "bcw"])
    p.add_argument("--points", type=int, default=200)
    p.add_argument("--modes", nargs="+", default=["serial", "jobs2", "dask2"], choices=["serial", "jobs2", "dask2"])
    p.add_argument("--overhead", type=float, default=0.001, help="per-task overhead of the simulation (s)")
    p.add_argument("--scheduler", default="local",
                   help="the Dask scheduler of the dask2 mode (default: a 2-worker LocalCluster started here)")
    p.add_argument("--emulate", default="", help="comma-separated worker counts for the sleep emulation")
    p.add_argument("--json", type=Path, help="write every figure as JSON")
    p.add_argument("--serial-from", type=Path, metavar="JSON",
                   help="take the serial run (answers digest, per-task times) from an earlier --json output")
    a = p.parse_args(argv)
    report: dict[str, Any] = {"machine": {"cores": len(os.sched_getaffinity(0)),
                                          "load_before": Path("/proc/loadavg").read_text().split()[:3]}}
    for name in a.batch:
        b = relu_batch(a.points) if name == "relu" else bcw_batch(a.points)
        print(f"\n== {name}: {a.points} points, {b['what']}", flush=True)
        res: dict[str, Any] = {"what": b["what"]}
        if a.serial_from:
            res["serial"] = json.loads(a.serial_from.read_text())[name]["serial"]
            print(f"  serial run from {a.serial_from}: wall {res['serial']['wall']:.2f} s, digest "
                  f"{res['serial']['digest']}")
        for mode in a.modes:
            if mode == "serial" and a.serial_from:
                continue
            t0 = time.perf_counter()
            ex: Executor = SerialExecutor() if mode == "serial" else (
                ProcessExecutor(2) if mode == "jobs2" else DaskExecutor(a.scheduler, workers=2))
            start = time.perf_counter() - t0
            try:
                r = run(ex, b)
            finally:
                ex.close()
            r["start"] = start
            res[mode] = r
            print(f"  {mode:6s} wall {r['wall']:7.2f} s (+{start:.2f} s start)  task CPU {r['task_cpu']:7.2f} s  "
                  f"task wall {r['task_wall']:7.2f} s  CPU share {r['cpu_share']:.2f}  driver CPU "
                  f"{r['driver_cpu']:.2f} s  workers {r['workers']}  {r['answers']}  digest {r['digest']}",
                  flush=True)
        if "serial" in res:
            base = res["serial"]
            for mode in a.modes:
                if mode != "serial" and mode in res:
                    res[mode]["speedup"] = base["wall"] / res[mode]["wall"]
                    res[mode]["speedup_with_start"] = base["wall"] / (res[mode]["wall"] + res[mode]["start"])
                    res[mode]["same_answers"] = res[mode]["digest"] == base["digest"]
                    print(f"  {mode}: speed-up {res[mode]['speedup']:.2f}x over serial "
                          f"({res[mode]['speedup_with_start']:.2f}x counting the start), same answers: "
                          f"{res[mode]['same_answers']}", flush=True)
            durations = base["task_cpu_each"]
            total = sum(durations)
            sim = []
            for P in (1, 2, 4, 8, 16, 32, 64, 128, 200):
                for ov in (a.overhead, 0.01):
                    m = simulate(durations, P, ov)
                    sim.append({"workers": P, "overhead": ov, "makespan": m, "speedup": total / m})
            res["simulation"] = {"serial_task_cpu": total, "longest_task": max(durations), "rows": sim}
            print(f"  simulation from the serial per-task CPU times (sum {total:.2f} s, longest "
                  f"{max(durations):.3f} s):")
            for s in sim:
                print(f"    {s['workers']:4d} workers, {1000 * s['overhead']:4.0f} ms per task: makespan "
                      f"{s['makespan']:7.3f} s, speed-up {s['speedup']:6.1f}x")
            if a.emulate:
                res["emulation"] = []
                for P in [int(v) for v in a.emulate.split(",")]:
                    e = emulate(durations, P)
                    res["emulation"].append(e)
                    print(f"  emulation, {P:3d} Dask workers sleeping the task times: {e['wall']:.3f} s "
                          f"(ideal {e['ideal']:.3f} s), speed-up {e['speedup']:.1f}x, cluster start "
                          f"{e['start']:.1f} s", flush=True)
        report[name] = res
    report["machine"]["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
    print(f"\nload average before {report['machine']['load_before']}, after {report['machine']['load_after']}")
    if a.json:
        a.json.write_text(json.dumps(report, indent=1) + "\n")
    bad = [f"{n}/{m}" for n in a.batch for m in a.modes if m != "serial" and "serial" in report[n]
           and not report[n][m]["same_answers"]]
    if bad:
        print("answers differ from serial: " + ", ".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
