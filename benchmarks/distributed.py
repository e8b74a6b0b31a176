"""Speed-up of 200-point certification batches on 2 local processes and on a 2-worker Dask LocalCluster over a
serial run, the check that all three give the same answers, and how a batch would spread over more workers.

Batches (``nnmip verify --points``, through :func:`nnmip.drivers.verify.robust_accuracy`):

* ``digits`` (the realistic one): a 64-64-64-10 ReLU network trained by scikit-learn (``MLPClassifier``,
  ``random_state=0``, one BLAS thread) on 1297 images of scikit-learn's bundled digits data (pixels / 16), and
  the first 200 of the other 500 images (seeded split), linf radius 0.05, domain [0, 1]: tasks of LP bound
  tightening and MILPs taking 0.05 to 1 s;
* ``relu``: a random 8-64-64-4 ReLU network (weights N(0, 4/fan_in), seed 0), 200 uniform points of [0, 1]^8
  (seed 0), linf radius 0.1, domain [0, 1]: tasks of about 40 ms, a few up to 0.3 s;
* ``bcw``: ``examples/data/verify_bcw.onnx`` (9-12-2) on the first 200 rows of the BCW data, linf radius 1 on the
  raw 1..10 features: tasks of a few milliseconds, where the per-task overhead shows.

Modes: ``serial`` (one thread per task, as nnmip runs batches), ``serial_mt`` (the libraries' own threads: BLAS
and HiGHS as they come, the behaviour before tasks were limited to one thread), ``jobs2`` (``--jobs 2``: two
local processes) and ``dask2`` (``--scheduler local --jobs 2``, or ``--scheduler ADDR``).

For each batch and mode: the wall-clock time from making the executor to the last answer (the process pool's
start and the LocalCluster's start included; the start is also shown apart), the CPU time the tasks used on
their workers, the chunks sent, the load average before and after, and a digest of the JSON rows without their
``seconds`` fields (the same digest = the same answers).  "CPU share" is task CPU / task wall: how much of a
core each task really had (below 1 on a busy machine; near 2 for ``serial_mt`` when BLAS threads spin).

Scaling beyond the cores of this machine, two ways:

* *simulation*: the serial run's per-task CPU times, dispatched in order to the first free of P workers, each task
  paying a per-task overhead (default 1 ms, Dask's documented order of magnitude per task);
* *emulation* (``--emulate 4,8,16``): a LocalCluster of P single-threaded worker processes runs tasks that sleep
  for those per-task times, so that Dask's real dispatch, transfer and bookkeeping are measured at P workers
  although the machine has only 2 cores.

``--vnncomp DIR`` times ``nnmip vnncomp DIR`` (:func:`nnmip.drivers.vnncomp.run_family`) serially, with
``--jobs 2`` and on a 2-worker LocalCluster (``--sample K --seed S`` for a seeded sample), and compares answers.

Run (on 2 otherwise idle cores: about 2 minutes per mode for digits, 10 s for relu)::

    python benchmarks/distributed.py --json out.json                 # digits and relu, serial/jobs2/dask2
    python benchmarks/distributed.py --batch digits relu bcw --modes serial_mt serial jobs2 dask2 --json out.json
    python benchmarks/distributed.py --batch relu --modes serial --emulate 4,8,16 --json out.json
    python benchmarks/distributed.py --batch --vnncomp /data/vnncomp2021/acasxu --sample 20 --seed 0 --json v.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
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
from nnmip.io.safe import check_writable, write_text  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODES = ("serial", "serial_mt", "jobs2", "dask2")


def digits_batch(n: int) -> dict[str, Any]:
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    perm = np.random.default_rng(0).permutation(len(y))
    train, test = perm[:1297], perm[1297:]
    with threadpool_limits(1):      # one BLAS thread: the same weights on every run
        clf = MLPClassifier((64, 64), random_state=0, max_iter=300, alpha=1e-3).fit(X[train], y[train])
    net = network_from_layers([(W.T, b) for W, b in zip(clf.coefs_, clf.intercepts_, strict=True)],
                              name="digits_64_64")
    acc = float(np.mean(net.predict(X[test]) == y[test]))
    return {"net": net, "X": X[test][:n], "y": y[test][:n].astype(np.int64), "eps": 0.05, "domain": (0.0, 1.0),
            "what": f"digits 64-64-64-10 relu (MLPClassifier, seed 0; test accuracy {acc:.3f}), first {n} test "
                    "images, linf 0.05, domain [0,1]"}


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


BATCHES = {"digits": digits_batch, "relu": relu_batch, "bcw": bcw_batch}


def untimed(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: untimed(v) for k, v in d.items() if k != "seconds"}
    if isinstance(d, list):
        return [untimed(v) for v in d]
    return d


def load() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def make(mode: str, scheduler: str) -> Executor:
    if mode == "serial":
        return SerialExecutor()
    if mode == "serial_mt":
        return SerialExecutor(threads=None)
    if mode == "jobs2":
        return ProcessExecutor(2)
    return DaskExecutor(scheduler, workers=2)


def stop_forkserver() -> None:
    """Stop this process's forkserver, so that the next process pool pays its start as a new ``nnmip`` would."""
    import multiprocessing.forkserver as fs

    stop = getattr(fs._forkserver, "_stop", None)
    if stop is not None:
        stop()


def run(mode: str, b: dict[str, Any], scheduler: str) -> dict[str, Any]:
    """One batch on a new executor; the wall time counts from making the executor (its start included)."""
    outs: list[Outcome] = []
    states: list[BatchState] = []

    def progress(st: BatchState, out: Outcome) -> None:
        outs.append(out)
        states[:] = [st]
    load_before = load()
    c0, t0 = time.process_time(), time.perf_counter()
    ex = make(mode, scheduler)
    start = time.perf_counter() - t0
    try:
        t1 = time.perf_counter()
        acc, rows = robust_accuracy(b["net"], b["X"], b["y"], b["eps"], domain=b["domain"], executor=ex,
                                    progress=progress)
        batch = time.perf_counter() - t1
    finally:
        ex.close()
    wall = time.perf_counter() - t0
    if mode == "jobs2":
        stop_forkserver()
    text = json.dumps(untimed(rows), sort_keys=True)
    task_cpu = sum(o.cpu_seconds for o in outs)
    task_wall = sum(o.seconds for o in outs)
    outs.sort(key=lambda o: o.index)
    return {"wall": wall, "start": start, "batch_wall": batch, "driver_cpu": time.process_time() - c0,
            "task_cpu": task_cpu, "task_wall": task_wall, "cpu_share": task_cpu / task_wall if task_wall else 0.0,
            "robust_accuracy": acc, "chunks": states[0].chunks if states else 0,
            "answers": {r: sum(1 for x in rows if x["result"] == r) for r in sorted({x["result"] for x in rows})},
            "errors": sum(1 for x in rows if x["result"] == "error"),
            "digest": hashlib.sha256(text.encode()).hexdigest()[:16],
            "task_cpu_each": [o.cpu_seconds for o in outs], "task_wall_each": [o.seconds for o in outs],
            "workers": len({o.worker for o in outs}), "load_before": load_before, "load_after": load()}


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


def vnncomp(bench: Path, sample: int | None, seed: int, modes: list[str], scheduler: str) -> dict[str, Any]:
    """``nnmip vnncomp`` on one family (or a seeded sample) serially, with --jobs 2 and on Dask."""
    from nnmip.drivers.vnncomp import run_family

    res: dict[str, Any] = {"bench": str(bench), "sample": sample, "seed": seed}
    for mode in modes:
        if mode == "serial_mt":
            continue
        load_before = load()
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            results, _ = run_family(bench, results_dir=Path(tmp) / "r", jobs=1 if mode == "serial" else 2,
                                    sample=sample, seed=seed, scheduler=scheduler if mode == "dask2" else None)
            wall = time.perf_counter() - t0
        answers = {r.key: r.result for r in results}
        counts = {a: sum(v == a for v in answers.values()) for a in sorted(set(answers.values()))}
        res[mode] = {"wall": wall, "instance_seconds": sum(r.seconds for r in results), "counts": counts,
                     "answers": answers, "load_before": load_before, "load_after": load()}
        print(f"  vnncomp {mode:9s} wall {wall:7.1f} s  instance seconds {res[mode]['instance_seconds']:7.1f}  "
              f"{counts}  load {load_before[0]:.1f} -> {res[mode]['load_after'][0]:.1f}", flush=True)
    if "serial" in res:
        for mode in modes:
            if mode in ("serial", "serial_mt") or mode not in res:
                continue
            r = res[mode]
            r["speedup"] = res["serial"]["wall"] / r["wall"]
            r["same_answers"] = r["answers"] == res["serial"]["answers"]
            diff = sorted(k for k in r["answers"] if r["answers"][k] != res["serial"]["answers"].get(k))
            r["differ"] = diff
            print(f"  vnncomp {mode}: speed-up {r['speedup']:.2f}x over serial, same answers: {r['same_answers']}"
                  + (f" (differ: {diff})" if diff else ""), flush=True)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", nargs="*", default=["digits", "relu"], choices=list(BATCHES))
    p.add_argument("--points", type=int, default=200)
    p.add_argument("--modes", nargs="+", default=["serial", "jobs2", "dask2"], choices=MODES)
    p.add_argument("--overhead", type=float, default=0.001, help="per-task overhead of the simulation (s)")
    p.add_argument("--scheduler", default="local",
                   help="the Dask scheduler of the dask2 mode (default: a 2-worker LocalCluster started here)")
    p.add_argument("--emulate", default="", help="comma-separated worker counts for the sleep emulation")
    p.add_argument("--vnncomp", type=Path, metavar="DIR", help="also time nnmip vnncomp on this family")
    p.add_argument("--sample", type=int, help="a seeded sample of the --vnncomp family")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="write every figure as JSON")
    p.add_argument("--serial-from", type=Path, metavar="JSON",
                   help="take the serial run (answers digest, per-task times) from an earlier --json output")
    a = p.parse_args(argv)
    if a.json:
        check_writable(a.json, "--json")    # refused before any work, not after it
    report: dict[str, Any] = {"machine": {"cores": len(os.sched_getaffinity(0)), "load_before": load()},
                              "command": " ".join(sys.argv)}
    print(f"{report['machine']['cores']} cores, load average {report['machine']['load_before']}", flush=True)
    for name in a.batch:
        b = BATCHES[name](a.points)
        print(f"\n== {name}: {a.points} points, {b['what']}", flush=True)
        res: dict[str, Any] = {"what": b["what"]}
        if a.serial_from:
            res["serial"] = json.loads(a.serial_from.read_text())[name]["serial"]
            print(f"  serial run from {a.serial_from}: wall {res['serial']['wall']:.2f} s, digest "
                  f"{res['serial']['digest']}")
        for mode in a.modes:
            if mode == "serial" and a.serial_from:
                continue
            r = run(mode, b, a.scheduler)
            res[mode] = r
            print(f"  {mode:9s} wall {r['wall']:7.2f} s (start {r['start']:.2f} s)  task CPU {r['task_cpu']:7.2f} s  "
                  f"task wall {r['task_wall']:7.2f} s  CPU share {r['cpu_share']:.2f}  driver CPU "
                  f"{r['driver_cpu']:.2f} s  chunks {r['chunks']}  workers {r['workers']}  {r['answers']}  digest "
                  f"{r['digest']}  load {r['load_before'][0]:.2f} -> {r['load_after'][0]:.2f}", flush=True)
        if "serial" in res:
            base = res["serial"]
            for mode in a.modes:
                if mode != "serial" and mode in res:
                    r = res[mode]
                    r["speedup"] = base["wall"] / r["wall"]
                    r["speedup_without_start"] = base["wall"] / r["batch_wall"]
                    r["same_answers"] = r["digest"] == base["digest"]
                    print(f"  {mode}: speed-up {r['speedup']:.2f}x over serial, start included "
                          f"({r['speedup_without_start']:.2f}x on a running pool/cluster), same answers: "
                          f"{r['same_answers']}", flush=True)
            durations = base["task_cpu_each"]
            total = sum(durations)
            sim = []
            for P in (1, 2, 4, 8, 16, 32, 64, 128, 200):
                for ov in (a.overhead, 0.01):
                    m = simulate(durations, P, ov)
                    sim.append({"workers": P, "overhead": ov, "makespan": m, "speedup": total / m})
            res["simulation"] = {"serial_task_cpu": total, "longest_task": max(durations), "rows": sim}
            print(f"  simulation from the serial per-task CPU times (sum {total:.2f} s, median "
                  f"{float(np.median(durations)):.3f} s, longest {max(durations):.3f} s):")
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
    if a.vnncomp:
        print(f"\n== vnncomp: {a.vnncomp}" + (f", sample {a.sample} (seed {a.seed})" if a.sample else ""), flush=True)
        report["vnncomp"] = vnncomp(a.vnncomp, a.sample, a.seed, a.modes, a.scheduler)
    report["machine"]["load_after"] = load()
    print(f"\nload average before {report['machine']['load_before']}, after {report['machine']['load_after']}")
    if a.json:
        write_text(a.json, json.dumps(report, indent=1) + "\n")
    bad = [f"{n}/{m}" for n in a.batch for m in a.modes if m != "serial" and "serial" in report[n]
           and not report[n][m]["same_answers"]]
    if bad:
        print("answers differ from serial: " + ", ".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
