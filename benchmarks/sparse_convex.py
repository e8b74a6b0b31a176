"""The convex case of the OBProx-SG paper: l1-regularised logistic regression with lambda = 1/N.

    F(w) = (1/N) sum_i log(1 + exp(-s_i w.x_i)) + lambda ||w||_1,   s_i = 2 y_i - 1,   lambda = 1/N,  no intercept

on data shipped with scikit-learn (breast_cancer 569 x 30 and digits as "digit < 5" 1797 x 64, features
standardised).  OBProx-SG, Prox-SG and RDA (nnmip.optim, through nnmip.drivers.sparse.train_sparse on a one-layer
network) run the same number of epochs from w = 0 with the same mini-batches (OBProx-SG+: ``n_p`` Prox-SG epochs,
then orthant epochs only; OBProx-SG: four cycles of ``epochs/10`` Prox-SG and ``epochs/4 - epochs/10`` orthant
epochs); the ground truth is scikit-learn's
``LogisticRegression(penalty="l1", solver="liblinear", fit_intercept=False)`` (``l1_ratio=1`` in scikit-learn >= 1.8,
where ``penalty`` is deprecated; tol 1e-12), which minimises

    ||w||_1 + C sum_i log(1 + exp(-s_i w.x_i)).

Dividing by C N shows it minimises (1/N) sum_i log(...) + (1 / (C N)) ||w||_1, the same problem for
C = 1 / (lambda N); with lambda = 1/N this is C = 1 exactly.  Every objective below is F evaluated by the numpy
forward pass of the network (for scikit-learn's w too); density = non-zeros / d.

Step sizes (the same for OBProx-SG and Prox-SG on a data set, constant) and RDA's gamma were picked by a small sweep
(lr in {0.03, 0.1, 0.3, 1}, gamma in {0.1, 0.3, 1, 3, 10}); they are the defaults of ``STEP`` below.

    python benchmarks/sparse_convex.py [--epochs 300] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any

import numpy as np
import sklearn
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from nnmip.drivers.sparse import SparseConfig, train_sparse
from nnmip.ir.builder import NetworkBuilder, real
from nnmip.ir.losses import smooth_loss
from nnmip.ir.network import Network

#: the pure l1 penalty: ``l1_ratio=1`` from scikit-learn 1.8 on (where ``penalty`` is deprecated), else penalty="l1"
L1: dict[str, Any] = {"l1_ratio": 1.0} if tuple(int(v) for v in sklearn.__version__.split(".")[:2]) >= (1, 8) \
    else {"penalty": "l1"}


#: data set -> (lr of the proximal methods, RDA's gamma)
STEP = {"breast_cancer": (1.0, 0.3), "digits<5": (0.1, 0.3)}


def datasets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    Xb, yb = load_breast_cancer(return_X_y=True)
    Xd, yd = load_digits(return_X_y=True)
    out = {}
    for name, X, y in (("breast_cancer", Xb, yb), ("digits<5", Xd, (yd < 5).astype(np.int64))):
        out[name] = (StandardScaler().fit_transform(X), np.asarray(y, dtype=np.int64))
    return out


def linear(d: int) -> Network:
    nb = NetworkBuilder("logreg")
    x = nb.input("x", d)
    nb.identity("y", nb.dense("w", x, 1, weights=real(-1e6, 1e6), bias=None))
    return nb.build()


def objective(net: Network, w: np.ndarray, X: np.ndarray, y: np.ndarray, lam: float) -> float:
    fixed = net.with_params({"w": (w.reshape(1, -1), None)})
    return float(smooth_loss("cross_entropy", fixed.forward(X), y, 2)[0] + lam * np.abs(w).sum())


def run(name: str, X: np.ndarray, y: np.ndarray, epochs: int, batch: int, lr: float, gamma: float,
        n_p: int) -> dict[str, Any]:
    N, d = X.shape
    lam = 1.0 / N
    net = linear(d)
    t0 = time.perf_counter()
    sk = LogisticRegression(**L1, solver="liblinear", C=1.0 / (lam * N), fit_intercept=False, tol=1e-12,
                            max_iter=100_000, random_state=0).fit(X, y)
    sk_time = time.perf_counter() - t0
    w_sk = sk.coef_.ravel()
    F_sk = objective(net, w_sk, X, y, lam)
    rows: dict[str, Any] = {"sklearn_liblinear": {"objective": F_sk, "density": float(np.mean(w_sk != 0)),
                                                  "seconds": sk_time}}
    configs = {
        "obproxsg+": SparseConfig(method="obproxsg", lam=lam, lr=lr, epochs=epochs, batch=batch, n_p=n_p, n_o=None),
        # four cycles of Prox-SG then orthant epochs, ending on orthant epochs
        "obproxsg": SparseConfig(method="obproxsg", lam=lam, lr=lr, epochs=epochs, batch=batch,
                                 n_p=max(1, epochs // 10), n_o=max(1, epochs // 4 - max(1, epochs // 10))),
        "prox_sg": SparseConfig(method="prox_sg", lam=lam, lr=lr, epochs=epochs, batch=batch),
        "rda": SparseConfig(method="rda", lam=lam, gamma=gamma, epochs=epochs, batch=batch),
    }
    for key, cfg in configs.items():
        res = train_sparse(net, X, y, 2, cfg, x0=np.zeros(d))
        w = res.network.params()["w"][0].ravel()
        F = objective(net, w, X, y, lam)
        assert abs(F - res.objective) <= 1e-9 * max(1.0, abs(F))
        rows[key] = {"objective": F, "density": float(np.mean(w != 0)), "seconds": res.seconds,
                     "gap_to_sklearn": (F - F_sk) / abs(F_sk)}
    return {"dataset": name, "N": N, "d": d, "lambda": lam, "C": 1.0 / (lam * N), "epochs": epochs,
            "batch": batch, "lr": lr, "gamma": gamma, "n_p": n_p, "results": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, help="step size of OBProx-SG and Prox-SG (default: STEP per data set)")
    p.add_argument("--gamma", type=float, help="RDA: beta_t = gamma sqrt(t) (default: STEP per data set)")
    p.add_argument("--n-p", type=int, help="OBProx-SG: Prox-SG epochs per cycle (default: epochs / 5)")
    p.add_argument("--json", metavar="OUT")
    a = p.parse_args()
    out = {"machine": platform.platform(), "runs": []}
    for name, (X, y) in datasets().items():
        lr, gamma = STEP[name]
        r = run(name, X, y, a.epochs, a.batch, a.lr or lr, a.gamma or gamma, a.n_p or max(1, a.epochs // 5))
        out["runs"].append(r)  # type: ignore[attr-defined]
        print(f"\n{name}: N={r['N']} d={r['d']} lambda=1/N={r['lambda']:.3g} (C={r['C']:g}), {a.epochs} epochs, "
              f"batch {a.batch}, lr {r['lr']}, RDA gamma {r['gamma']}, n_p {r['n_p']}")
        print(f"{'method':<20}{'objective F':>14}{'gap to sklearn':>16}{'density':>10}{'seconds':>10}")
        for k, v in r["results"].items():
            gap = "-" if "gap_to_sklearn" not in v else f"{100 * v['gap_to_sklearn']:.3f}%"
            print(f"{k:<20}{v['objective']:>14.6f}{gap:>16}{v['density']:>10.3f}{v['seconds']:>10.2f}")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
