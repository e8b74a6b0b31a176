"""Training heuristics against scikit-learn's MLPClassifier (Kurtz & Bah's experiment, reproduced).

For each data set (BCW, iris, digits) and seed: a 50/25/25 train/validation/test split (minmax scaling fitted on
the train rows), then

* ``split``: the binarized network trained by iterative data splitting (``nnmip.drivers.strategies.train_split``);
* ``local_search``: the same network trained by local search from a seeded random start;
* ``local_search_split``: local search started from a 5-split data-splitting network;
* ``mlp``: ``MLPClassifier`` (ReLU, Adam) with the same hidden width.

Reported: mean and standard deviation of the test accuracy and of the wall time.  A second part compares the
heuristics' training loss with the exact MILP optimum on subsets small enough for the exact model, with the
ratio of their times.

Run (about 20 minutes on 2 cores)::

    python benchmarks/paper_experiment.py --jobs 2

Writes ``benchmarks/results/paper_experiment.json``, ``docs/img/paper_experiment.png`` and prints the Markdown
tables pasted into docs/benchmarks.md.  ``--quick`` runs 2 seeds with short limits (a smoke test).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnmip.drivers.executor import parallel_map
from nnmip.io.safe import check_writable, write_text

ROOT = Path(__file__).resolve().parents[1]
BCW = ROOT / "examples" / "data" / "breast-cancer-wisconsin.csv"
log = logging.getLogger("paper_experiment")


@dataclass(frozen=True)
class Config:
    """One data set's network and limits."""

    name: str
    width: int                                  # hidden width (the MLP gets the same)
    eps: float = 0.05                           # activation margin of the step units
    split: dict[str, Any] = field(default_factory=dict)     # train_split options
    local: dict[str, Any] = field(default_factory=dict)     # train_local_search options
    local_subset: int | None = None             # local search on a random subset of the train rows
    step_time: float = 2.0                      # seconds per MILP solve
    exact_points: int = 30                      # subset size for the exact comparison


CONFIGS = {
    "bcw": Config("bcw", 4, split={"max_splits": 20}, local={"rounds": 3}, step_time=3.0, exact_points=100),
    "iris": Config("iris", 3, split={"max_splits": 20}, local={"rounds": 3}, exact_points=50),
    "digits": Config("digits", 8, split={"max_splits": 10, "batch": 64}, local={"rounds": 2}, local_subset=150,
                     exact_points=30),
}


METHODS = ("split", "local_search", "local_search_split", "mlp")
LABELS = {"split": "data splitting", "local_search": "local search (random start)",
          "local_search_split": "local search (from 5 splits)", "mlp": "MLPClassifier"}


def load(name: str, seed: int) -> Any:
    from nnmip.io.data import DataSource, Preprocess, load_dataset

    if name == "bcw":
        src = DataSource("csv", path=str(BCW), delimiter=";", label=-1)
    else:
        src = DataSource("sklearn", name=name)
    return load_dataset(src, Preprocess(scale="minmax", train=0.5, validation=0.25, test=0.25, seed=seed))


def network(n_in: int, width: int, n_classes: int) -> Any:
    """Kurtz & Bah's network: a continuous first layer, an integer output layer, step activations."""
    from nnmip.ir.builder import NetworkBuilder, integer, real

    nb = NetworkBuilder("bdnn")
    x = nb.input("x", n_in)
    a = nb.step("a1", nb.dense("h1", x, width, weights=real(-1, 1), bias=real(-10, 10)))
    n_out = 1 if n_classes == 2 else n_classes
    nb.step("y", nb.dense("h2", a, n_out, weights=integer(-1, 1), bias=real(-5, 5)))
    return nb.build()


def run_seed(name: str, seed: int, quick: bool) -> dict[str, Any]:
    """All three methods on one split of one data set."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    from nnmip.drivers.strategies import train_local_search, train_split
    from nnmip.solution import SolveOptions

    cfg = CONFIGS[name]
    ds = load(name, seed)
    X, y = ds.X(ds.train), ds.y[ds.train]
    Xv, yv = ds.X(ds.validation), ds.y[ds.validation]
    Xt, yt = ds.X(ds.test), ds.y[ds.test]
    net = network(ds.n_features, cfg.width, ds.n_classes)
    step = 0.5 if quick else cfg.step_time
    opts = SolveOptions(time_limit=step, threads=1)
    out: dict[str, Any] = {"dataset": name, "seed": seed, "train": int(y.size), "test": int(yt.size)}
    split_kw = dict(cfg.split)
    if quick:
        split_kw["max_splits"] = min(4, split_kw.get("max_splits", 4))
    t0 = time.perf_counter()
    res = train_split(net, X, y, ds.n_classes, eps=cfg.eps, options=opts, X_val=Xv, y_val=yv, seed=seed,
                      **split_kw)   # best network by validation accuracy (Kurtz & Bah)
    out["split"] = _measure(res, time.perf_counter() - t0, Xt, yt)
    rng = np.random.default_rng(seed)
    rows = np.arange(y.size) if cfg.local_subset is None else np.sort(rng.choice(y.size, cfg.local_subset, False))
    local_kw = dict(cfg.local)
    if quick:
        local_kw["rounds"] = 1
    t0 = time.perf_counter()
    res = train_local_search(net, X[rows], y[rows], ds.n_classes, eps=cfg.eps, options=opts, X_val=Xv, y_val=yv,
                             seed=seed, init="random", **local_kw)
    out["local_search"] = _measure(res, time.perf_counter() - t0, Xt, yt)
    t0 = time.perf_counter()
    res = train_local_search(net, X[rows], y[rows], ds.n_classes, eps=cfg.eps, options=opts, X_val=Xv, y_val=yv,
                             seed=seed, init="split", init_splits=2 if quick else 5, **local_kw)
    out["local_search_split"] = _measure(res, time.perf_counter() - t0, Xt, yt)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier(hidden_layer_sizes=(cfg.width,), activation="relu", solver="adam", max_iter=2000,
                            random_state=seed).fit(X, y)
    out["mlp"] = {"test_accuracy": float(mlp.score(Xt, yt)), "seconds": time.perf_counter() - t0}
    log.info("%s seed %d: %s", name, seed, ", ".join(
        f"{m} {out[m]['test_accuracy']:.3f} ({out[m]['seconds']:.1f}s)" for m in METHODS))
    return out


def _measure(res: Any, seconds: float, Xt: np.ndarray, yt: np.ndarray) -> dict[str, Any]:
    acc = float(np.mean(res.network.predict(Xt) == yt)) if res.network is not None else None
    return {"test_accuracy": acc, "seconds": seconds, "loss": res.loss, "iterations": len(res.history),
            "verified": res.verified, "status": str(res.status)}


def run_exact(name: str, seed: int, quick: bool) -> dict[str, Any]:
    """Training loss of the heuristics against the exact MILP optimum on a small subset of the train rows."""
    from nnmip.drivers.strategies import train_local_search, train_split
    from nnmip.drivers.train import train_network
    from nnmip.solution import SolveOptions, Status

    cfg = CONFIGS[name]
    ds = load(name, seed)
    rng = np.random.default_rng(1000 + seed)
    rows = np.sort(rng.choice(ds.train, cfg.exact_points, replace=False))
    X, y = ds.X(rows), ds.y[rows]
    net = network(ds.n_features, cfg.width, ds.n_classes)
    limit = 20.0 if quick else 120.0
    t0 = time.perf_counter()
    exact = train_network(net, X, y, ds.n_classes, eps=cfg.eps,
                          options=SolveOptions(time_limit=limit, mip_gap=0.0, threads=1))
    t_exact = time.perf_counter() - t0
    out: dict[str, Any] = {"dataset": name, "seed": seed, "points": int(y.size), "exact_loss": exact.loss,
                           "exact_bound": exact.bound, "exact_optimal": exact.status is Status.OPTIMAL,
                           "exact_seconds": t_exact}
    opts = SolveOptions(time_limit=cfg.step_time, threads=1)
    t0 = time.perf_counter()
    sp = train_split(net, X, y, ds.n_classes, eps=cfg.eps, options=opts, seed=seed, select="loss",
                     max_splits=cfg.split.get("max_splits", 20))
    out["split_loss"], out["split_seconds"] = sp.loss, time.perf_counter() - t0
    t0 = time.perf_counter()
    ls = train_local_search(net, X, y, ds.n_classes, eps=cfg.eps, options=opts, seed=seed, **cfg.local)
    out["local_loss"], out["local_seconds"] = ls.loss, time.perf_counter() - t0
    log.info("%s exact seed %d: exact %s (%.1fs), split %s (%.1fs), local %s (%.1fs)", name, seed,
             exact.loss, t_exact, sp.loss, out["split_seconds"], ls.loss, out["local_seconds"])
    return out


def _job(args: tuple[str, str, int, bool]) -> dict[str, Any]:
    kind, name, seed, quick = args
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("nnmip").setLevel(logging.WARNING)
    return run_seed(name, seed, quick) if kind == "seed" else run_exact(name, seed, quick)


def summarise(rows: list[dict[str, Any]], exact: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name in dict.fromkeys(r["dataset"] for r in rows):
        rs = [r for r in rows if r["dataset"] == name]
        summary[name] = {}
        for m in METHODS:
            acc = np.array([r[m]["test_accuracy"] for r in rs], dtype=float)
            sec = np.array([r[m]["seconds"] for r in rs], dtype=float)
            summary[name][m] = {"acc_mean": float(np.nanmean(acc)), "acc_std": float(np.nanstd(acc)),
                                "sec_mean": float(sec.mean()), "sec_std": float(sec.std()), "n": len(rs)}
    ex: dict[str, Any] = {}
    for name in dict.fromkeys(r["dataset"] for r in exact):
        es = [r for r in exact if r["dataset"] == name]
        ex[name] = {
            "points": es[0]["points"], "runs": len(es),
            "optimal": sum(bool(r["exact_optimal"]) for r in es),
            "exact_loss": float(np.mean([r["exact_loss"] for r in es])),
            "exact_bound": float(np.mean([r["exact_bound"] if r["exact_bound"] is not None else np.nan
                                          for r in es])),
            "split_loss": float(np.mean([r["split_loss"] for r in es])),
            "local_loss": float(np.mean([r["local_loss"] for r in es])),
            "split_equal": sum(r["split_loss"] == r["exact_loss"] for r in es),
            "local_equal": sum(r["local_loss"] == r["exact_loss"] for r in es),
            "split_time_ratio": float(np.mean([r["split_seconds"] / r["exact_seconds"] for r in es])),
            "local_time_ratio": float(np.mean([r["local_seconds"] / r["exact_seconds"] for r in es])),
            "exact_seconds": float(np.mean([r["exact_seconds"] for r in es])),
        }
    return {"accuracy": summary, "exact": ex}


def tables(summary: dict[str, Any]) -> str:
    names = LABELS
    lines = ["| data set | method | width | test accuracy (mean ± std) | wall time s (mean ± std) |",
             "| --- | --- | --- | --- | --- |"]
    for ds, ms in summary["accuracy"].items():
        for m, s in ms.items():
            lines.append(f"| {ds} | {names[m]} | {CONFIGS[ds].width} | {100 * s['acc_mean']:.1f} ± "
                         f"{100 * s['acc_std']:.1f} | {s['sec_mean']:.1f} ± {s['sec_std']:.1f} |")
    lines += ["", "| data set | points | exact optimal | exact loss | exact bound | split loss (= exact) | "
              "local search loss (= exact) | exact s | split / exact time | local / exact time |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for ds, e in summary["exact"].items():
        lines.append(f"| {ds} | {e['points']} | {e['optimal']}/{e['runs']} | {e['exact_loss']:.2f} | "
                     f"{e['exact_bound']:.2f} | "
                     f"{e['split_loss']:.2f} ({e['split_equal']}/{e['runs']}) | {e['local_loss']:.2f} "
                     f"({e['local_equal']}/{e['runs']}) | {e['exact_seconds']:.1f} | {e['split_time_ratio']:.2f} | "
                     f"{e['local_time_ratio']:.2f} |")
    return "\n".join(lines)


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acc = summary["accuracy"]
    datasets = list(acc)
    methods, labels = METHODS, LABELS
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    w = 0.2
    for i, m in enumerate(methods):
        xs = np.arange(len(datasets)) + (i - (len(methods) - 1) / 2) * w
        axes[0].bar(xs, [100 * acc[d][m]["acc_mean"] for d in datasets], w,
                    yerr=[100 * acc[d][m]["acc_std"] for d in datasets], capsize=3, label=labels[m])
        axes[1].bar(xs, [acc[d][m]["sec_mean"] for d in datasets], w,
                    yerr=[acc[d][m]["sec_std"] for d in datasets], capsize=3, label=labels[m])
    for ax, title in zip(axes, ("test accuracy (%)", "wall time (s)"), strict=True):
        ax.set_xticks(np.arange(len(datasets)), [f"{d}\n(width {CONFIGS[d].width})" for d in datasets])
        ax.set_title(title)
    axes[0].set_ylim(0, 100)
    axes[1].set_yscale("log")
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle("Binarized networks by MILP heuristics vs MLPClassifier (10 seeds, 50/25/25 splits)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--exact-seeds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=2, help="worker processes (with --scheduler local: Dask workers)")
    p.add_argument("--scheduler", help="run the seeds on a Dask cluster (tcp://host:8786, or 'local')")
    p.add_argument("--quick", action="store_true", help="2 seeds, short limits")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "paper_experiment.json")
    p.add_argument("--plot", type=Path, default=ROOT / "docs" / "img" / "paper_experiment.png")
    a = p.parse_args(argv)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    check_writable(a.out, "--out")        # refused before any work, not after it
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    seeds = 2 if a.quick else a.seeds
    jobs = [("seed", d, s, a.quick) for d in a.datasets for s in range(seeds)]
    jobs += [("exact", d, s, a.quick) for d in a.datasets for s in range(min(seeds, a.exact_seeds))]
    t0 = time.perf_counter()
    results = parallel_map(_job, jobs, jobs=a.jobs, scheduler=a.scheduler)
    rows = [r for (k, *_), r in zip(jobs, results, strict=True) if k == "seed"]
    exact = [r for (k, *_), r in zip(jobs, results, strict=True) if k == "exact"]
    summary = summarise(rows, exact)
    total = time.perf_counter() - t0
    config = {k: asdict(v) for k, v in CONFIGS.items() if k in a.datasets}
    write_text(a.out, json.dumps({"config": config, "seeds": seeds, "quick": a.quick, "total_seconds": total,
                                  "runs": rows, "exact": exact, "summary": summary}, indent=1, default=str) + "\n")
    plot(summary, a.plot)
    print(tables(summary))
    where = f"Dask ({a.scheduler})" if a.scheduler else f"{a.jobs} worker processes"
    print(f"\ntotal wall time {total:.0f} s on {where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
