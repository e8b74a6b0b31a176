"""The BeMi protocol on scikit-learn's digits, full digits, iris: one_vs_one ensembles against MLPClassifier.

BeMi (Bernardelli, Gualandi, Lau, Milanesi, LION 2023): ``k`` training images per class drawn at random (seeded),
test on every remaining image.  Methods, all on minmax-scaled features fitted on the training images:

* ``ovo``: nnmip's one_vs_one ensemble, 45 members ``dense(64 -> 1, weights real[-1, 1], bias real[-10, 10])``
  + step, each trained exactly with the lexicographic objective hamming > max_margin (``margin_cap`` 8),
  ``eps = 0.05``, 2 worker processes, one time limit for the whole ensemble;
* ``mlp``: ``MLPClassifier(hidden_layer_sizes=(16,), max_iter=2000)`` on the same images;
* ``split``: nnmip's single network 64-16-10 (``BinarizedNetworkClassifier(hidden=(16,))``, data splitting) with
  a time limit for the whole fit (``--single-seeds`` seeds only: it is the slow one).

Run from the repository root::

    python benchmarks/bemi_digits.py --k 10 40 --seeds 5 --json out.json
    python benchmarks/bemi_digits.py --full --iris
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklearn.datasets import load_digits, load_iris  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

from nnmip.drivers.strategies import train_ensemble  # noqa: E402
from nnmip.io.data import Scaler  # noqa: E402
from nnmip.io.safe import check_writable, write_text  # noqa: E402
from nnmip.ir.builder import NetworkBuilder, real  # noqa: E402
from nnmip.solution import SolveOptions  # noqa: E402


def member(n_in: int):
    nb = NetworkBuilder("member")
    x = nb.input("x", n_in)
    nb.step("y", nb.dense("o", x, 1, weights=real(-1, 1), bias=real(-10, 10)))
    return nb.build()


def run_ovo(X, y, tr, te, n_classes, time_limit):
    sc = Scaler.fit("minmax", X[tr])
    t0 = time.perf_counter()
    res = train_ensemble(member(X.shape[1]), sc.transform(X[tr]), y[tr], n_classes, kind="one_vs_one", eps=0.05,
                         objectives=("max_margin",), margin_cap=8.0, options=SolveOptions(time_limit=time_limit),
                         workers=2)
    sec = time.perf_counter() - t0
    ens = res.ensemble
    return {"accuracy": float(np.mean(ens.predict(sc.transform(X[te])) == y[te])), "seconds": sec,
            "verified": bool(res.verified), "status": str(res.status), "params": ens.num_params(),
            "train_accuracy": res.extension["train_accuracy"]}


def run_mlp(X, y, tr, te, seed):
    sc = Scaler.fit("minmax", X[tr])
    t0 = time.perf_counter()
    m = MLPClassifier(hidden_layer_sizes=(16,), max_iter=2000, random_state=seed).fit(sc.transform(X[tr]), y[tr])
    sec = time.perf_counter() - t0
    n_params = sum(w.size for w in m.coefs_) + sum(b.size for b in m.intercepts_)
    return {"accuracy": float(np.mean(m.predict(sc.transform(X[te])) == y[te])), "seconds": sec, "params": n_params}


def run_split(X, y, tr, te, seed, time_limit):
    from nnmip.sklearn import BinarizedNetworkClassifier

    t0 = time.perf_counter()
    clf = BinarizedNetworkClassifier(hidden=(16,), time_limit=time_limit, seed=seed).fit(X[tr], y[tr])
    sec = time.perf_counter() - t0
    return {"accuracy": float(np.mean(clf.predict(X[te]) == y[te])), "seconds": sec, "verified": clf.verified_}


def draw(y, k, seed):
    rng = np.random.default_rng(seed)
    tr = np.concatenate([rng.choice(np.flatnonzero(y == c), k, replace=False) for c in np.unique(y)])
    return np.sort(tr), np.setdiff1d(np.arange(y.size), tr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, nargs="*", default=[10, 20, 40])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--single-seeds", type=int, default=0, help="seeds of the single-network split baseline")
    ap.add_argument("--time-limit", type=float, default=120.0, help="seconds for each whole fit")
    ap.add_argument("--full", action="store_true", help="full digits, 50/25/25 split (seed 0; test = last 25%%)")
    ap.add_argument("--iris", action="store_true", help="iris, 50/50 split, 5 seeds")
    ap.add_argument("--json", help="write the results as JSON")
    a = ap.parse_args()
    if a.json:
        check_writable(a.json, "--json")    # refused before any work, not after it
    X, y = load_digits(return_X_y=True)
    out: dict = {"machine": platform.platform(), "python": platform.python_version(), "rows": []}
    for k in a.k:
        for seed in range(a.seeds):
            tr, te = draw(y, k, seed)
            row = {"data": "digits", "k": k, "seed": seed, "ovo": run_ovo(X, y, tr, te, 10, a.time_limit),
                   "mlp": run_mlp(X, y, tr, te, seed)}
            if seed < a.single_seeds:
                row["split"] = run_split(X, y, tr, te, seed, a.time_limit)
            out["rows"].append(row)
            print(json.dumps(row), flush=True)
    if a.full:
        perm = np.random.default_rng(0).permutation(y.size)
        n = y.size
        tr, te = np.sort(perm[: n // 2]), np.sort(perm[n - n // 4:])
        row = {"data": "digits-full", "train": int(tr.size), "test": int(te.size),
               "ovo": run_ovo(X, y, tr, te, 10, a.time_limit), "mlp": run_mlp(X, y, tr, te, 0)}
        out["rows"].append(row)
        print(json.dumps(row), flush=True)
    if a.iris:
        Xi, yi = load_iris(return_X_y=True)
        for seed in range(5):
            perm = np.random.default_rng(seed).permutation(yi.size)
            tr, te = np.sort(perm[:75]), np.sort(perm[75:])
            row = {"data": "iris", "seed": seed, "ovo": run_ovo(Xi, yi, tr, te, 3, a.time_limit),
                   "mlp": run_mlp(Xi, yi, tr, te, seed)}
            out["rows"].append(row)
            print(json.dumps(row), flush=True)
    if a.json:
        write_text(a.json, json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
