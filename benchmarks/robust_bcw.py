"""Robust against plain training on Breast Cancer Wisconsin: accuracy against the attack radius.

Kurtz & Bah's setting: minmax-scaled features, a 9-4-2 binarized network (continuous first layer, integer second
layer, step activations, hamming loss), robust training over the l-infinity ball of radius 0.1 around every
training point.  For each seed a random training subset is drawn from the training split; the same subset is
trained twice with HiGHS (plain, robust), each run under a time limit.  Every test point is then evaluated at
radii 0, 0.025, ..., 0.2:

* certified: the first binary layer's pattern is constant over the ball (exact, by the dual norm) and the point is
  classified correctly -- a proof that no perturbation within the radius changes the (correct) prediction;
* attack: correct at the point and at every one of ``--trials`` random-sign perturbations ``x + r s`` (not clipped
  to the data range).

Run from the repository root::

    python benchmarks/robust_bcw.py                      # 3 seeds x 40 points, 90 s limit per solve: 3-10 minutes
    python benchmarks/robust_bcw.py --seeds 1 --points 30 --time-limit 20 --json out.json --plot out.png
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nnmip.drivers.evaluate import attack, certified  # noqa: E402
from nnmip.drivers.train import train_network  # noqa: E402
from nnmip.io.data import DataSource, Preprocess, load_dataset  # noqa: E402
from nnmip.io.safe import check_writable, write_text  # noqa: E402
from nnmip.ir.builder import NetworkBuilder, integer, real  # noqa: E402
from nnmip.ir.train_spec import RobustSpec  # noqa: E402
from nnmip.solution import SolveOptions  # noqa: E402

log = logging.getLogger("robust_bcw")
RADII = [0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2]


def network():
    nb = NetworkBuilder("bdnn")
    x = nb.input("x", 9)
    a1 = nb.step("a1", nb.dense("h1", x, 4, weights=real(-1, 1), bias=real(-10, 10)))
    nb.step("y", nb.dense("h2", a1, 2, weights=integer(-1, 1), bias=real(-5, 5)))
    return nb.build()


def run(seeds: int, points: int, radius: float, time_limit: float, trials: int) -> dict:
    src = DataSource("csv", path=str(ROOT / "examples" / "data" / "breast-cancer-wisconsin.csv"), delimiter=";",
                     label=-1)
    ds = load_dataset(src, Preprocess(scale="minmax", train=0.5, validation=0.25, test=0.25, seed=0), ROOT)
    net = network()
    Xte, yte = ds.X(ds.test), ds.y[ds.test]
    runs = []
    for seed in range(1, seeds + 1):
        rows = np.random.default_rng(seed).choice(ds.train, size=points, replace=False)
        X, y = ds.X(rows), ds.y[rows]
        for kind in ("plain", "robust"):
            spec = RobustSpec("x", "linf", radius) if kind == "robust" else None
            t0 = time.perf_counter()
            res = train_network(net, X, y, ds.n_classes, solver="highs", robust=spec,
                                options=SolveOptions(time_limit=time_limit, mip_gap=0.0, threads=2))
            seconds = time.perf_counter() - t0
            if res.network is None:
                log.warning("seed %d %s: no network (%s)", seed, kind, res.status)
                continue
            cert = [float(np.mean(certified(res.network, Xte, yte, RobustSpec("x", "linf", r)))) for r in RADII]
            att = [float(np.mean(attack(res.network, Xte, yte, RobustSpec("x", "linf", r), trials, seed)))
                   for r in RADII]
            runs.append({"seed": seed, "kind": kind, "status": str(res.status), "verified": res.verified,
                         "loss": res.loss, "bound": res.bound, "seconds": round(seconds, 2),
                         "train_accuracy": float(np.mean(res.network.predict(X) == y)),
                         "certified": cert, "attack": att})
            log.info("seed %d %-6s %s loss %s bound %s %.1fs  clean %.3f  attack@0.1 %.3f  certified@0.1 %.3f",
                     seed, kind, res.status, res.loss, res.bound, seconds, att[0], att[4], cert[4])
    return {"radii": RADII, "train_radius": radius, "points": points, "seeds": seeds, "time_limit": time_limit,
            "trials": trials, "test_points": int(yte.size), "runs": runs,
            "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()}}


def summary(out: dict) -> dict[str, dict[str, list[float]]]:
    table: dict[str, dict[str, list[float]]] = {}
    for kind in ("plain", "robust"):
        rs = [r for r in out["runs"] if r["kind"] == kind]
        if rs:
            table[kind] = {m: np.mean([r[m] for r in rs], axis=0).tolist() for m in ("attack", "certified")}
    return table


def markdown(out: dict) -> str:
    t = summary(out)
    head = "| radius | " + " | ".join(f"{r:g}" for r in out["radii"]) + " |"
    lines = [head, "|" + "---|" * (len(out["radii"]) + 1)]
    for kind in t:
        for m in ("attack", "certified"):
            lines.append(f"| {kind} {m} | " + " | ".join(f"{v:.3f}" for v in t[kind][m]) + " |")
    return "\n".join(lines)


def plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = summary(out)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    style = {"plain": "tab:blue", "robust": "tab:red"}
    for kind, vals in t.items():
        ax.plot(out["radii"], vals["attack"], "-o", color=style[kind], label=f"{kind}: random-sign attack")
        ax.plot(out["radii"], vals["certified"], "--s", color=style[kind], label=f"{kind}: certified")
    ax.axvline(out["train_radius"], color="grey", lw=0.8, ls=":")
    ax.set_xlabel("l-infinity radius (minmax-scaled features)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"BCW, 9-4-2 BNN, {out['points']} training points x {out['seeds']} seeds")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--points", type=int, default=40)
    p.add_argument("--radius", type=float, default=0.1, help="training radius of the robust run")
    p.add_argument("--time-limit", type=float, default=90.0, help="seconds per solve")
    p.add_argument("--trials", type=int, default=50, help="random-sign perturbations per test point")
    p.add_argument("--json", type=Path, help="write every run as JSON")
    p.add_argument("--plot", type=Path, default=ROOT / "docs" / "img" / "robust_bcw.png")
    a = p.parse_args()
    if a.json:
        check_writable(a.json, "--json")    # refused before any work, not after it
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("nnmip").setLevel(logging.ERROR)
    out = run(a.seeds, a.points, a.radius, a.time_limit, a.trials)
    if a.json:
        write_text(a.json, json.dumps(out, indent=2) + "\n")
    plot(out, a.plot)
    sys.stdout.write(markdown(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
