"""Batches on every executor: ordered values, explicit errors, a lost worker retried once, and the same JSON
answers from ``nnmip verify --points`` serially, in local processes and on a 2-worker Dask cluster."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from executor_tasks import (
    Counted,
    bad_input_on_two,
    die_always,
    die_once,
    die_once_in_a_chunk,
    fail_on_three,
    scaled,
    square,
    stop_at_two,
    threads_seen,
    times_counted,
    tiny,
    wait_for_stop,
)
from verify_nets import mlp_layers, mlp_onnx, ort_forward

from nnmip.cli import main
from nnmip.drivers.executor import (
    BatchState,
    Executor,
    ExecutorError,
    Outcome,
    ProcessExecutor,
    SerialExecutor,
    available_cores,
    make_executor,
    parallel_map,
)
from nnmip.drivers.verify import network_from_layers, robust_accuracy
from nnmip.errors import DataError


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[Executor]:
    """One 2-worker LocalCluster (single-threaded worker processes) for the whole module: it takes seconds."""
    pytest.importorskip("distributed", reason="Dask distributed is not installed (pip install 'nnmip[dask]')")
    from nnmip.drivers.executor import DaskExecutor

    ex = DaskExecutor("local", workers=2)
    yield ex
    ex.close()


def _executors(request: pytest.FixtureRequest, fresh_cluster: bool) -> Iterator[Executor]:
    """The executor of ``request.param``; for Dask the module's LocalCluster, or a fresh one."""
    if request.param == "serial":
        yield SerialExecutor()
    elif request.param == "processes":
        with ProcessExecutor(2) as ex:
            yield ex
    elif not fresh_cluster:
        yield request.getfixturevalue("dask_cluster")
    else:
        pytest.importorskip("distributed", reason="Dask distributed is not installed (pip install 'nnmip[dask]')")
        from nnmip.drivers.executor import DaskExecutor

        ex = DaskExecutor("local", workers=2)
        try:
            yield ex
        finally:
            ex.close()


@pytest.fixture(params=["serial", "processes", "dask"])
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    yield from _executors(request, fresh_cluster=False)


@pytest.fixture(params=["serial", "processes", "dask"])
def killing_executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    """Like ``executor``, but a fresh LocalCluster for each test whose tasks end their worker processes: the
    nanny's restarts of one test do not carry over to the next.
    """
    yield from _executors(request, fresh_cluster=True)


def test_values_in_order_with_progress(executor: Executor) -> None:
    seen: list[tuple[int, int, int, int]] = []

    def progress(st: BatchState, out: Outcome) -> None:
        seen.append((st.done, st.failed, st.running, out.index))
    outs = executor.map(square, range(10), progress=progress)
    assert [o.value for o in outs] == [i * i for i in range(10)]
    assert [o.index for o in outs] == list(range(10))
    assert all(o.ok and o.attempts == 1 and o.worker for o in outs)
    assert [d for d, _, _, _ in seen] == list(range(1, 11))
    assert sorted(i for _, _, _, i in seen) == list(range(10))
    assert all(0 <= r <= 2 for _, _, r, _ in seen)
    assert executor.map(square, []) == []


def test_shared_payload_travels_once_and_is_used(executor: Executor) -> None:
    assert executor.values(scaled, [1, 2, 3], shared=7) == [7, 14, 21]


def test_tasks_run_single_threaded(executor: Executor) -> None:
    """BLAS/OpenMP pools and the solvers' default threads are 1 inside every task, serial runs included."""
    rows = executor.values(threads_seen, range(4))
    assert [r[0] for r in rows] == list(range(4))
    assert all(r[1] in ([], [1]) and r[2] == 1 for r in rows)


def test_serial_threads_restored_and_none_leaves_defaults() -> None:
    from threadpoolctl import threadpool_info

    from nnmip.solution import default_solver_threads

    before = sorted({int(i["num_threads"]) for i in threadpool_info()})
    assert SerialExecutor().values(threads_seen, [0])[0][2] == 1
    assert sorted({int(i["num_threads"]) for i in threadpool_info()}) == before
    assert default_solver_threads() is None
    assert SerialExecutor(threads=None).values(threads_seen, [0])[0][1:] == (before, None)
    with pytest.raises(ExecutorError) as info:
        SerialExecutor(threads=0)
    assert info.value.diagnostics[0].code == "E0803"


def test_short_tasks_travel_in_chunks_in_order(executor: Executor) -> None:
    states: list[BatchState] = []
    outs = executor.map(tiny, range(300), progress=lambda st, out: states.append(st))
    assert [o.value for o in outs] == [3 * i for i in range(300)]
    assert all(o.ok and o.attempts == 1 for o in outs)
    assert len(states) == 300
    assert states[-1].done == 300
    if isinstance(executor, SerialExecutor):
        assert states[-1].chunks == 300
    else:    # one item in each worker's first chunk, then chunks of about CHUNK_SECONDS of work
        assert 2 <= states[-1].chunks <= 100


def test_shared_payload_unpickled_once_per_worker(executor: Executor, tmp_path: Path) -> None:
    log = tmp_path / "unpickled"
    shared = Counted(str(log), 5)
    assert executor.values(times_counted, range(60), shared=shared) == [5 * i for i in range(60)]
    if isinstance(executor, SerialExecutor):
        assert not log.exists()          # no copy in this process
        return
    pids = log.read_text().split()
    assert len(pids) == len(set(pids))
    assert 1 <= len(pids) <= 2


def test_exception_in_a_task_is_that_tasks_error(executor: Executor) -> None:
    outs = executor.map(fail_on_three, range(5))
    assert [o.value for o in outs if o.ok] == [0, 1, 2, 4]
    bad = outs[3]
    assert bad.error is not None
    assert bad.error.code == "E0805"
    assert "ValueError: three is not allowed" in bad.error.message
    assert bad.attempts == 1                 # not retried: it would fail the same way
    with pytest.raises(ExecutorError) as info:
        executor.values(fail_on_three, range(5))
    assert info.value.diagnostics[0].code == "E0805"


def test_input_error_of_a_task_is_raised_as_in_a_serial_loop(executor: Executor) -> None:
    with pytest.raises(DataError) as info:
        executor.map(bad_input_on_two, range(4))
    d = info.value.diagnostics[0]
    assert d.code == "E0301"
    assert d.notes == ("help: give the file",)


def test_worker_lost_once_is_retried(killing_executor: Executor, tmp_path: Path) -> None:
    executor = killing_executor
    if isinstance(executor, SerialExecutor):
        pytest.skip("a serial run has no worker to lose")
    marker = tmp_path / "died"
    outs = executor.map(die_once, [(i, str(marker)) for i in range(4)])
    assert marker.read_text() == "died once"
    assert [o.value for o in outs] == [i + 100 for i in range(4)]
    assert outs[1].attempts == 2
    # a process pool cannot tell whose worker died: the tasks running next to it are run again as well
    assert all(1 <= o.attempts <= 2 for o in outs)


def test_worker_lost_under_a_chunk_costs_no_answer(killing_executor: Executor, tmp_path: Path) -> None:
    executor = killing_executor
    if isinstance(executor, SerialExecutor):
        pytest.skip("a serial run has no worker to lose")
    marker = tmp_path / "died"
    states: list[BatchState] = []
    outs = executor.map(die_once_in_a_chunk, [(i, str(marker)) for i in range(300)],
                        progress=lambda st, out: states.append(st))
    assert marker.read_text() == "died once"
    assert [o.value for o in outs] == [i + 100 for i in range(300)]
    assert states[-1].chunks < 300               # the tasks did travel in chunks
    assert outs[150].attempts == 2
    assert all(1 <= o.attempts <= 2 for o in outs)


def test_worker_lost_twice_is_an_explicit_error(killing_executor: Executor, tmp_path: Path) -> None:
    executor = killing_executor
    if isinstance(executor, SerialExecutor):
        pytest.skip("a serial run has no worker to lose")
    marker = tmp_path / "deaths"
    outs = executor.map(die_always, [(i, str(marker)) for i in range(4)])
    assert marker.read_text() == "2"                     # the first run and one retry
    lost = outs[1]
    assert lost.error is not None
    assert lost.error.code == "E0804"
    assert "lost its worker 2 times" in lost.error.message
    assert [o.value for k, o in enumerate(outs) if k != 1] == [i + 100 for i in range(4) if i != 1]


def test_make_executor_choices() -> None:
    assert isinstance(make_executor(1), SerialExecutor)
    with make_executor(3) as ex:
        assert isinstance(ex, ProcessExecutor)
        assert ex.workers == 3
    with make_executor() as ex:
        assert ex.workers == available_cores()
    with pytest.raises(ExecutorError) as info:
        make_executor(0)
    assert info.value.diagnostics[0].code == "E0803"
    assert parallel_map(square, [3, 4], jobs=2) == [9, 16]


def test_scheduler_without_dask_names_the_extra(monkeypatch: pytest.MonkeyPatch, capsys, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)      # import distributed -> ImportError
    with pytest.raises(ExecutorError) as info:
        make_executor(scheduler="local")
    assert info.value.diagnostics[0].code == "E0801"
    path, _ = _net(tmp_path)
    np.savetxt(tmp_path / "p.csv", np.random.default_rng(0).random((3, 4)), delimiter=",")
    rc = main(["verify", "--onnx", str(path), "--points", str(tmp_path / "p.csv"), "--label-column", "none",
               "--linf", "0.01", "--scheduler", "tcp://127.0.0.1:8786", "-q"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "error[E0801]" in err
    assert "pip install 'nnmip[dask]'" in err


def test_unreachable_scheduler_is_a_clear_error() -> None:
    pytest.importorskip("distributed", reason="Dask distributed is not installed")
    from nnmip.drivers.executor import DaskExecutor

    with pytest.raises(ExecutorError) as info:
        DaskExecutor("tcp://127.0.0.1:9", timeout=1)
    assert info.value.diagnostics[0].code == "E0802"


# ------------------------------------------------------------------------------------------------------------
# verify --points: the same answers everywhere
# ------------------------------------------------------------------------------------------------------------
def _net(tmp_path: Path) -> tuple[Path, onnx.ModelProto]:
    model = mlp_onnx(mlp_layers([4, 16, 16, 3], 1, scale=2.0), "relu")
    p = tmp_path / "net.onnx"
    onnx.save(model, p)
    return p, model


def _untimed(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _untimed(v) for k, v in d.items() if k != "seconds"}
    if isinstance(d, list):
        return [_untimed(v) for v in d]
    return d


def test_verify_points_same_json_serial_processes_dask(tmp_path: Path, dask_cluster: Any) -> None:
    path, model = _net(tmp_path)
    X = np.random.default_rng(1).random((20, 4))
    y = np.argmax(ort_forward(model, X), axis=1)
    y[4] = (y[4] + 1) % 3                                     # one misclassified point
    np.savetxt(tmp_path / "pts.csv", np.column_stack([X, y]), delimiter=",")
    texts = {}
    for name, extra in {"serial": ["--jobs", "1"], "jobs2": ["--jobs", "2"],
                        "dask": ["--scheduler", dask_cluster.address]}.items():
        out = tmp_path / f"{name}.json"
        rc = main(["verify", "--onnx", str(path), "--points", str(tmp_path / "pts.csv"), "--linf", "0.1",
                   "--domain", "0", "1", "--json", str(out), "-q", *extra])
        assert rc == 0
        texts[name] = json.dumps(_untimed(json.loads(out.read_text())), sort_keys=True)
    assert texts["serial"] == texts["jobs2"] == texts["dask"]
    d = json.loads(texts["serial"])
    kinds = {r["result"] for r in d["results"]}
    assert {"certified", "counterexample", "misclassified"} <= kinds   # the batch exercises every answer
    for r in d["results"]:
        if r["result"] == "counterexample":
            x = np.array(r["counterexample"])
            assert np.max(np.abs(x - X[r["index"]])) <= 0.1 + 1e-12
            assert np.argmax(ort_forward(model, x)[0]) != r["label"]


def test_robust_accuracy_marks_a_lost_point_and_keeps_the_rest(tmp_path: Path, monkeypatch) -> None:
    """The driver never leaves a gap: a point whose task has no answer becomes an explicit error row."""
    net = network_from_layers(mlp_layers([3, 8, 2], 2))
    X = np.random.default_rng(3).random((5, 3))

    class LosesPointTwo(SerialExecutor):
        def map(self, fn, items, **kw):  # type: ignore[no-untyped-def]
            outs = super().map(fn, items, **kw)
            from nnmip.drivers.executor import TaskError
            outs[2] = Outcome(2, error=TaskError("E0804", "task 2 lost its worker 2 times"), attempts=2)
            return outs
    acc, rows = robust_accuracy(net, X, None, 0.01, executor=LosesPointTwo())
    assert [r["index"] for r in rows] == list(range(5))
    assert rows[2]["result"] == "error"
    assert rows[2]["error"]["code"] == "E0804"
    assert not rows[2]["robust"]
    assert all(r["result"] in ("certified", "counterexample") for k, r in enumerate(rows) if k != 2)
    assert acc == sum(r["robust"] for r in rows) / 5


def test_serial_batch_starts_no_task_after_a_stop_request() -> None:
    """Ctrl-C during task 2: tasks 0-2 keep their values, 3-5 are not run and say so (E0807)."""
    from nnmip.solution import STOP

    try:
        outs = SerialExecutor().map(stop_at_two, range(6))
    finally:
        STOP.clear()
    assert [o.value for o in outs[:3]] == [0, 1, 2]
    assert all(o.ok for o in outs[:3])
    assert [o.error.code if o.error else None for o in outs[3:]] == ["E0807"] * 3
    assert all(o.attempts == 0 for o in outs[3:])


def _stopped_batch(ex: Executor, after: float, within: float) -> None:
    """Six tasks that wait for a stop request, on ``ex``; a stop request in the caller after ``after`` seconds.
    The running tasks (at most 2) see it on their workers and return; the others are not run (E0807); the batch
    ends within ``within`` seconds, long before the tasks' 60 s.
    """
    import threading
    import time

    from nnmip.solution import STOP

    timer = threading.Timer(after, STOP.request)
    timer.start()
    t0 = time.perf_counter()
    try:
        outs = ex.map(wait_for_stop, range(6))
    finally:
        timer.cancel()
        STOP.clear()
    seconds = time.perf_counter() - t0
    assert seconds < within, seconds
    ran = [o for o in outs if o.error is None]
    assert ran                                          # the running tasks' answers are kept
    assert all(o.value == "stopped" for o in ran)       # each running task saw its worker's stop
    assert len(ran) <= 2
    assert all(o.error is not None and o.error.code == "E0807" for o in outs if o not in ran)


def test_process_batch_stops_its_workers_and_starts_no_task_after_a_stop_request() -> None:
    """A stop request in the caller reaches the running tasks in the workers (SIGINT: their STOP is set, so their
    solves would stop) and no queued task starts."""
    with ProcessExecutor(2) as ex:
        _stopped_batch(ex, 3.0, 30.0)     # the workers start (forkserver) and take tasks 0 and 1


def test_dask_batch_stops_its_workers_and_keeps_what_they_return(dask_cluster: Any) -> None:
    """On a Dask cluster a stop request in the caller reaches the running tasks on the workers (``Client.run``
    sets their STOP), their answers come back, and no queued task starts."""
    import time

    dask_cluster.map(tiny, range(2))                # the workers are up
    _stopped_batch(dask_cluster, 2.0, 20.0)
    t0 = time.perf_counter()
    # the cluster serves the next batch at once: no chunk of the stopped one goes on waiting on a worker
    assert [o.value for o in dask_cluster.map(tiny, range(3))] == [0, 3, 6]
    assert time.perf_counter() - t0 < 15.0


def test_robust_accuracy_reports_points_not_run_after_ctrl_c() -> None:
    from nnmip.drivers.executor import TaskError

    net = network_from_layers(mlp_layers([3, 8, 2], 2))
    X = np.random.default_rng(3).random((4, 3))

    class StoppedAfterOne(SerialExecutor):
        def map(self, fn, items, **kw):  # type: ignore[no-untyped-def]
            items = list(items)
            outs = super().map(fn, items[:1], **kw)
            return outs + [Outcome(i, error=TaskError("E0807", "not run"), attempts=0) for i in range(1, 4)]
    _, rows = robust_accuracy(net, X, None, 0.01, executor=StoppedAfterOne())
    assert rows[0]["result"] in ("certified", "counterexample")
    assert [r["result"] for r in rows[1:]] == ["interrupted"] * 3
    assert not any(r["robust"] for r in rows[1:])


@pytest.mark.slow
def test_200_point_bcw_batch_same_json_everywhere(tmp_path: Path, dask_cluster: Any) -> None:
    """The full-size batch of docs/benchmarks.md: 200 BCW rows on the example's verify network."""
    root = Path(__file__).resolve().parents[1]
    A = np.loadtxt(root / "examples" / "data" / "breast-cancer-wisconsin.csv", delimiter=";")[:200]
    np.savetxt(tmp_path / "bcw200.csv", A, delimiter=",")
    texts = {}
    for name, extra in {"serial": ["--jobs", "1"], "jobs2": ["--jobs", "2"],
                        "dask": ["--scheduler", dask_cluster.address]}.items():
        out = tmp_path / f"{name}.json"
        rc = main(["verify", "--onnx", str(root / "examples" / "data" / "verify_bcw.onnx"), "--points",
                   str(tmp_path / "bcw200.csv"), "--linf", "1", "--domain", "1", "10", "--json", str(out), "-q",
                   *extra])
        assert rc == 0
        texts[name] = json.dumps(_untimed(json.loads(out.read_text())), sort_keys=True)
    assert texts["serial"] == texts["jobs2"] == texts["dask"]
    d = json.loads(texts["serial"])
    assert d["points"] == 200
    assert [r["index"] for r in d["results"]] == list(range(200))
    assert {r["result"] for r in d["results"]} == {"certified", "counterexample", "misclassified"}


def test_chunk_sizes_follow_the_measured_task_times() -> None:
    from nnmip.drivers.executor import CHUNK_SECONDS, MAX_CHUNK, _Chunker

    c = _Chunker(1000, 2)
    assert c.take() == [0]                       # nothing measured yet: one item
    assert c.take() == [1]
    for _ in range(2):
        c.record(0.01)                           # 10 ms per item: chunks of about CHUNK_SECONDS
    assert len(c.take()) == round(CHUNK_SECONDS / 0.01)
    c.record(0.0)
    c.record(0.0)
    c.record(0.0)
    assert len(c.take()) <= MAX_CHUNK
    taken = c.next
    sizes = []
    while c.left:
        sizes.append(len(c.take()))
    assert taken + sum(sizes) == 1000            # every item once, in order
    assert sizes[-1] == 1                        # the end of the batch is shared out finely
    assert all(a >= b for a, b in zip(sizes, sizes[1:], strict=False))
    slow = _Chunker(10, 2)
    slow.take()
    slow.record(5.0)                             # long tasks travel one by one
    assert len(slow.take()) == 1
