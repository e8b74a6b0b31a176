"""Sparse training of ReLU MLPs, and what the sparsity buys the MILP verifier.

Part 1, training.  A one-hidden-layer ReLU MLP on digits (64-H-10, pixels / 16, 60/20/20 split, seed 0) and on
Breast Cancer Wisconsin (9-H-2, the project's CSV min-max scaled, examples/bcw.nnmip's 50/25/25 split): test
accuracy, fraction of weights exactly zero, hidden units removed and parameters left after pruning, for

* ``MLPClassifier`` (scikit-learn, Adam, the dense reference; same hidden width, its default alpha=1e-4);
* ``sgd``: nnmip's trainer with no penalty (dense, same epochs and steps as the sparse methods);
* ``prox_sg`` and ``obproxsg+`` with the l1 penalty, the same lambda, step, epochs and fine-tuning;
* ``obproxsg+ group``: the group penalty on the hidden units (prune = neurons(h));
* ``spr``: Prox-SG on the Structured Perspective Regulariser of the hidden units (exact prox), then the pruning
  rule (z_g <= tau) and fine-tuning.

Part 2, verification.  The dense reference and the pruned OBProx-SG+ network answer the same robustness
questions: for the first ``--points`` test rows that both classify correctly, is the class constant over the linf
ball of radius ``--eps`` (intersected with the input domain [0, 1])?  For each network: total binaries and
non-zeros of the models nnmip solves, build time (interval bounds + formulation, no solve) and total verify time
(``nnmip.drivers.verify.verify``: bounds, LP tightening, MILP); ratios dense / sparse from the same run.

    python benchmarks/sparse_mlp.py [--hidden 64] [--points 20] [--eps 0.02] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from nnmip.drivers.sparse import SparseConfig, train_sparse
from nnmip.drivers.verify import as_region, network_from_layers, verify
from nnmip.formulations.verification import build_fixed_model
from nnmip.ir.builder import NetworkBuilder, real
from nnmip.ir.network import Network
from nnmip.ir.spec import classified, linf
from nnmip.ir.train_spec import PruneSpec
from nnmip.passes.bounds import tighten_bounds

ROOT = Path(__file__).resolve().parents[1]


def digits() -> tuple[np.ndarray, ...]:
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_tr, X_rest, y_tr, y_rest = train_test_split(X, y, train_size=0.6, random_state=0, stratify=y)
    X_va, X_te, y_va, y_te = train_test_split(X_rest, y_rest, train_size=0.5, random_state=0, stratify=y_rest)
    return X_tr, y_tr, X_va, y_va, X_te, y_te


def bcw() -> tuple[np.ndarray, ...]:
    from nnmip.drivers.task import load_program, task_dataset

    cp = load_program(ROOT / "examples" / "bcw.nnmip")
    ds = task_dataset(cp, cp.tasks[0])
    return (ds.X(ds.train_all), ds.y[ds.train_all], ds.X(ds.validation), ds.y[ds.validation], ds.X(ds.test),
            ds.y[ds.test])


def mlp(n_in: int, hidden: int, n_out: int) -> Network:
    nb = NetworkBuilder("mlp")
    x = nb.input("x", n_in)
    h = nb.relu("r", nb.dense("h", x, hidden, weights=real(-10, 10), bias=real(-10, 10)))
    nb.identity("y", nb.dense("o", h, n_out, weights=real(-10, 10), bias=real(-10, 10)))
    return nb.build()


def zero_fraction(net: Network) -> float:
    Ws = [W for W, _ in net.params().values()]
    return float(sum(np.count_nonzero(W == 0) for W in Ws) / sum(W.size for W in Ws))


def train_all(name: str, data: tuple[np.ndarray, ...], hidden: int, lam: float, lam_group: float, lam_spr: float,
              lr: float, epochs: int, finetune: int, seed: int) -> tuple[dict[str, Any], dict[str, Network]]:
    X_tr, y_tr, X_va, y_va, X_te, y_te = data
    k = int(max(y_tr.max(), y_te.max())) + 1
    n_out = k if k > 2 else 2
    rows: dict[str, Any] = {}
    nets: dict[str, Network] = {}
    t0 = time.perf_counter()
    sk = MLPClassifier(hidden_layer_sizes=(hidden,), max_iter=500, random_state=seed).fit(X_tr, y_tr)
    W1, W2 = sk.coefs_
    b1, b2 = sk.intercepts_
    if n_out == 2 and W2.shape[1] == 1:     # scikit-learn's single logistic unit -> two scores (0, z)
        W2 = np.hstack([np.zeros_like(W2), W2])
        b2 = np.array([0.0, b2[0]])
    dense = network_from_layers([(W1.T, b1), (W2.T, b2)])
    assert np.array_equal(dense.predict(X_te), sk.predict(X_te))
    rows["MLPClassifier (adam)"] = {"test": float(np.mean(dense.predict(X_te) == y_te)), "zero": zero_fraction(dense),
                                    "neurons_removed": 0, "parameters": dense.num_params(),
                                    "nonzero": int(sum(np.count_nonzero(W) + np.count_nonzero(b)
                                                       for W, b in dense.params().values())),
                                    "seconds": time.perf_counter() - t0}
    nets["dense"] = dense
    neurons = (PruneSpec("neurons", ("h",)),)
    base = {"lr": lr, "epochs": epochs, "batch": 32, "seed": seed}
    configs = {
        "sgd (no penalty)": (SparseConfig(method="sgd", **base), ()),
        "prox_sg l1": (SparseConfig(method="prox_sg", lam=lam, finetune=finetune, **base), ()),
        "obproxsg+ l1": (SparseConfig(method="obproxsg", lam=lam, n_p=epochs // 2, n_o=None, finetune=finetune,
                                      **base), ()),
        "obproxsg+ group": (SparseConfig(method="obproxsg", lam=lam_group, n_p=epochs // 2, n_o=None,
                                         penalty="group", finetune=finetune, **base), neurons),
        "spr": (SparseConfig(method="spr", lam=lam_spr, alpha=0.5, tau=0.01, finetune=finetune, **base), neurons),
    }
    net = mlp(X_tr.shape[1], hidden, n_out)
    for key, (cfg, specs) in configs.items():
        res = train_sparse(net, X_tr, y_tr, n_out, cfg, specs=specs, X_val=X_va, y_val=y_va)
        X_all = np.vstack([X_tr, X_va, X_te])
        assert np.array_equal(res.pruned.predict(X_all[:, res.kept_features]), res.network.predict(X_all))
        sp = res.sparsity
        rows[key] = {"test": float(np.mean(res.network.predict(X_te) == y_te)), "zero": sp["zero_fraction"],
                     "neurons_removed": sp["neurons_removed"], "parameters": sp["parameters_after"],
                     "nonzero": sp["nonzero_after"], "seconds": res.seconds,
                     "validation": res.history[-1]["validation_accuracy"]}
        nets[key] = res.pruned
    return rows, nets


def verify_side(dense: Network, sparse: Network, X: np.ndarray, y: np.ndarray, eps: float, points: int,
                time_limit: float) -> dict[str, Any]:
    ok = np.flatnonzero((dense.predict(X) == y) & (sparse.predict(X) == y))[:points]
    out: dict[str, Any] = {"points": int(ok.size), "eps": eps}
    for key, net in (("dense", dense), ("sparse", sparse)):
        agg = {"binaries_interval": 0, "nonzeros_interval": 0, "build_seconds": 0.0, "binaries": 0,
               "nonzeros": 0, "verify_seconds": 0.0, "certified": 0, "counterexample": 0, "other": 0}
        for i in ok:
            region = as_region(net, [linf(X[i], eps)], (np.zeros(net.n_inputs), np.ones(net.n_inputs)))
            t0 = time.perf_counter()
            rep = tighten_bounds(net, region, method="interval")
            fm = build_fixed_model(net, region, rep.bounds)
            agg["build_seconds"] += time.perf_counter() - t0
            stats = fm.model.stats()
            agg["binaries_interval"] += stats["binaries"]
            agg["nonzeros_interval"] += stats["nonzeros"]
            r = verify(net, [linf(X[i], eps)], classified(int(y[i])), domain=(np.zeros(net.n_inputs),
                                                                             np.ones(net.n_inputs)),
                       time_limit=time_limit)
            agg["verify_seconds"] += r.seconds
            agg["binaries"] += r.binaries
            agg["nonzeros"] += int(r.model.get("nonzeros", 0))
            agg[r.result if r.result in ("certified", "counterexample") else "other"] += 1
        out[key] = agg
    out["ratios_dense_over_sparse"] = {
        k: (out["dense"][k] / out["sparse"][k] if out["sparse"][k] else None)
        for k in ("binaries_interval", "nonzeros_interval", "build_seconds", "binaries", "nonzeros", "verify_seconds")}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--finetune", type=int, default=50)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--lam", type=float, default=2e-3, help="l1 penalty of prox_sg and obproxsg+")
    p.add_argument("--lam-group", type=float, default=1e-2, help="group penalty of obproxsg+ group")
    p.add_argument("--lam-spr", type=float, default=1e-2, help="lambda of spr")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--points", type=int, default=20)
    p.add_argument("--eps", type=float, default=0.05)
    p.add_argument("--time-limit", type=float, default=60.0, help="per verification question")
    p.add_argument("--json", metavar="OUT")
    a = p.parse_args()
    out: dict[str, Any] = {"machine": platform.platform(), "args": vars(a), "datasets": {}}
    for name, loader in (("digits", digits), ("bcw", bcw)):
        data = loader()
        rows, nets = train_all(name, data, a.hidden, a.lam, a.lam_group, a.lam_spr, a.lr, a.epochs, a.finetune,
                               a.seed)
        print(f"\n{name}: {data[0].shape[1]}-{a.hidden}-{max(2, int(data[0].shape[1] and data[1].max() + 1))} MLP, "
              f"{a.epochs} epochs + {a.finetune} fine-tuning, lambda {a.lam} (group {a.lam_group}, spr {a.lam_spr})")
        print(f"{'method':<22}{'test acc':>9}{'zero w':>8}{'units cut':>10}{'params':>8}{'nonzero':>9}{'sec':>7}")
        for k, v in rows.items():
            print(f"{k:<22}{v['test']:>9.4f}{v['zero']:>8.3f}{v['neurons_removed']:>10}{v['parameters']:>8}"
                  f"{v['nonzero']:>9}{v['seconds']:>7.1f}")
        X_te, y_te = data[4], data[5]
        ver = verify_side(nets["dense"], nets["obproxsg+ l1"], X_te, y_te, a.eps, a.points, a.time_limit)
        print(f"verification, {ver['points']} test points, linf {a.eps}: dense MLPClassifier vs pruned obproxsg+ l1")
        for key in ("dense", "sparse"):
            v = ver[key]
            print(f"  {key:<7} binaries {v['binaries_interval']} (interval bounds) / {v['binaries']} (verify), "
                  f"non-zeros {v['nonzeros_interval']} / {v['nonzeros']}, build {v['build_seconds']:.3f}s, "
                  f"verify {v['verify_seconds']:.2f}s, certified {v['certified']}, counterexamples "
                  f"{v['counterexample']}, other {v['other']}")
        print("  ratios dense/sparse: " + ", ".join(f"{k} {'-' if r is None else f'{r:.2f}'}"
                                                    for k, r in ver["ratios_dense_over_sparse"].items()))
        out["datasets"][name] = {"training": rows, "verification": ver}
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
