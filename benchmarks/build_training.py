"""Build the training MILP of a binarized network two ways and compare time, memory and model size.

* ``nnmip``: :func:`nnmip.formulations.training.build_training_model` (numpy / scipy.sparse blocks), then the
  hand-over of the finished model to HiGHS (``Highs.passModel``).
* ``mip``: the same model written term by term with python-mip expressions (one ``add_var`` per variable, one
  ``xsum`` and ``+=`` per constraint), the way published training code builds it.  The baseline below is
  written directly from docs/formulations.md §3, §4 and §7 and shares no code with nnmip's formulation.

The instance: BCW rows (minmax-scaled), network 9-16-16-2 with integer weights ``int[-1, 1]`` in every layer,
continuous biases ``real[-16, 16]`` (Kurtz & Bah's bound ``max(max_i ||x_i||_1, max_k d_k) = 16``), step
activations and the hamming loss on one-hot outputs.

Each method runs in its own subprocess, so the peak resident memory (``ru_maxrss``) is that method's alone::

    python benchmarks/build_training.py                 # 500 points, both methods, a table on stdout
    python benchmarks/build_training.py --points 100 --json out.json
    python benchmarks/build_training.py --child nnmip   # one method in this process (used internally)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data" / "breast-cancer-wisconsin.csv"


@dataclass(frozen=True)
class Spec:
    """The benchmark network: hidden and output widths, the weight range and the bias range of every layer."""

    widths: tuple[int, ...] = (16, 16, 2)
    w_lo: int = -1
    w_hi: int = 1
    b_lo: float = -16.0
    b_hi: float = 16.0
    eps: float = 1e-3


# ----------------------------------------------------------------------------------------------------------
# Data and network
# ----------------------------------------------------------------------------------------------------------
def load_points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, int, str]:
    """``n`` minmax-scaled BCW rows and their labels.

    The rows come from the example's train split (``split(train=0.5, validation=0.25, test=0.25, seed=0)``);
    when that split holds fewer than ``n`` rows, ``n`` random rows of the whole set are taken instead (the
    scaler is then fitted on the whole set).
    """
    from nnmip.io.data import DataSource, Preprocess, load_dataset

    src = DataSource("csv", path=str(DATA), delimiter=";", label=-1)
    ds = load_dataset(src, Preprocess(scale="minmax", train=0.5, validation=0.25, test=0.25, seed=0))
    where = f"{n} random rows of the train split ({ds.train.size} rows)"
    if n > ds.train.size:
        if n > ds.n_rows:
            raise SystemExit(f"the data set has only {ds.n_rows} rows")
        ds = load_dataset(src, Preprocess(scale="minmax", train=1.0, subset=("random", n, seed)))
        where = f"{n} random rows (seed {seed}) of all {ds.n_rows} rows: the train split is smaller"
    else:
        rows = np.sort(np.random.default_rng(seed).choice(ds.train, size=n, replace=False))
        return ds.X(rows), ds.y[rows], ds.n_classes, where
    return ds.X(ds.train), ds.y[ds.train], ds.n_classes, where


def network(spec: Spec, n_inputs: int = 9) -> Any:
    """The nnmip network ``n_inputs - widths...`` with step activations after every layer."""
    from nnmip.ir.builder import NetworkBuilder, integer, real

    nb = NetworkBuilder("bench")
    node = nb.input("x", n_inputs)
    for k, width in enumerate(spec.widths, start=1):
        h = nb.dense(f"h{k}", node, width, weights=integer(spec.w_lo, spec.w_hi), bias=real(spec.b_lo, spec.b_hi))
        node = nb.step(f"a{k}", h)
    return nb.build()


def build_nnmip(X: np.ndarray, y: np.ndarray, n_classes: int, spec: Spec) -> Any:
    from nnmip.formulations.training import build_training_model

    return build_training_model(network(spec, X.shape[1]), X, y, n_classes, "hamming", eps=spec.eps)


# ----------------------------------------------------------------------------------------------------------
# The baseline: python-mip, term by term
# ----------------------------------------------------------------------------------------------------------
@dataclass
class MipBuild:
    model: Any
    binaries: int
    W: list[list[list[Any]]] = field(repr=False)     # per layer: (n_out, n_in) variables
    b: list[list[Any]] = field(repr=False)           # per layer: (n_out,) variables


def build_mip(X: np.ndarray, y: np.ndarray, n_classes: int, spec: Spec) -> MipBuild:
    """The training MILP written with python-mip expressions, one Python object per variable and term.

    Math (docs/formulations.md §3-§4): first layer ``a_il = sum_j x_ij W_lj + b_l`` (linear in W on data); deeper layers
    ``a_il = sum_j s_ilj + b_l`` with ``s = W u`` linearised exactly by four McCormick rows; each unit a binary
    ``u`` with the margin rows ``a - (eps - L) u >= L`` and ``a - (U + eps) u <= -eps`` where ``[L, U]`` is
    the interval bound of ``a``; objective ``sum_ic T_ic + (1 - 2 T_ic) u_ic`` (hamming, one-hot ``T``).
    """
    import mip

    N, d_in = X.shape
    eps = spec.eps
    wl, wh = float(spec.w_lo), float(spec.w_hi)
    bl, bh = float(spec.b_lo), float(spec.b_hi)
    m = mip.Model(sense=mip.MINIMIZE, solver_name=mip.CBC)
    m.verbose = 0
    binaries = 0
    Ws: list[list[list[Any]]] = []
    bs: list[list[Any]] = []
    u_prev: list[list[Any]] | None = None
    for k, d_out in enumerate(spec.widths):
        W = [[m.add_var(lb=wl, ub=wh, var_type=mip.INTEGER) for _ in range(d_in)] for _ in range(d_out)]
        b = [m.add_var(lb=bl, ub=bh) for _ in range(d_out)]
        Ws.append(W)
        bs.append(b)
        u: list[list[Any]] = []
        for i in range(N):
            u_i = []
            for l in range(d_out):
                if k == 0:
                    # a = sum_j x_ij W_lj + b_l, bounds by interval arithmetic over the weight box
                    a = mip.xsum(float(X[i, j]) * W[l][j] for j in range(d_in) if X[i, j] != 0.0) + b[l]
                    L = sum(min(X[i, j] * wl, X[i, j] * wh) for j in range(d_in)) + bl
                    U = sum(max(X[i, j] * wl, X[i, j] * wh) for j in range(d_in)) + bh
                else:
                    assert u_prev is not None
                    s = [m.add_var(lb=min(wl, 0.0), ub=max(wh, 0.0)) for _ in range(d_in)]
                    for j in range(d_in):
                        m += s[j] - wl * u_prev[i][j] >= 0
                        m += s[j] - wh * u_prev[i][j] <= 0
                        m += s[j] - W[l][j] - wh * u_prev[i][j] >= -wh
                        m += s[j] - W[l][j] - wl * u_prev[i][j] <= -wl
                    a = mip.xsum(s) + b[l]
                    L = d_in * min(wl, 0.0) + bl
                    U = d_in * max(wh, 0.0) + bh
                # the sign of a is proven when L > -eps (u = 1) or U < eps (u = 0)
                v = m.add_var(var_type=mip.BINARY, lb=float(L + eps > 0.0), ub=float(U - eps >= 0.0))
                binaries += 1
                m += a - (eps - L) * v >= L
                m += a - (U + eps) * v <= -eps
                u_i.append(v)
            u.append(u_i)
        u_prev = u
        d_in = d_out
    assert u_prev is not None
    T = np.zeros((N, n_classes))
    T[np.arange(N), y] = 1.0
    m.objective = mip.minimize(
        mip.xsum(float(1.0 - 2.0 * T[i, c]) * u_prev[i][c] for i in range(N) for c in range(n_classes))
        + float(T.sum()))
    return MipBuild(m, binaries, Ws, bs)


# ----------------------------------------------------------------------------------------------------------
# Measuring one method (in a child process)
# ----------------------------------------------------------------------------------------------------------
def _rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(method: str, points: int, repeat: int, seed: int = 0) -> dict[str, Any]:
    """Build ``repeat`` times with ``method`` in this process; times, memory and model size."""
    import highspy  # noqa: F401 - imported before the baseline reading so both methods pay for it
    import mip  # noqa: F401

    import nnmip.formulations.training  # noqa: F401

    spec = Spec()
    X, y, n_classes, where = load_points(points, seed)
    gc.collect()
    rss0 = _rss_mib()
    times: list[float] = []
    out: dict[str, Any] = {"method": method, "points": int(X.shape[0]), "rows_used": where, "spec": asdict(spec)}
    for r in range(repeat):
        t0 = time.perf_counter()
        built = build_nnmip(X, y, n_classes, spec) if method == "nnmip" else build_mip(X, y, n_classes, spec)
        times.append(time.perf_counter() - t0)
        if method == "nnmip":
            st = built.model.stats()
            size = {"variables": st["variables"], "binaries": st["binaries"], "integers": st["integers"],
                    "rows": st["rows"], "nonzeros": st["nonzeros"]}
        else:
            m = built.model
            size = {"variables": m.num_cols, "binaries": built.binaries, "integers": m.num_int - built.binaries,
                    "rows": m.num_rows, "nonzeros": m.num_nz}
        if r < repeat - 1:
            del built
            gc.collect()
    last = built
    out.update(build_seconds=times, best_build_seconds=min(times), size=size,
               rss_before_mib=round(rss0, 1), peak_rss_mib=round(_peak_mib(), 1))
    out["peak_over_baseline_mib"] = round(out["peak_rss_mib"] - rss0, 1)
    if method == "nnmip":
        import highspy

        from nnmip.backends.highs import HighsBackend

        pass_times = []
        for _ in range(repeat):
            h = highspy.Highs()
            h.setOptionValue("output_flag", False)
            t0 = time.perf_counter()
            HighsBackend._pass_model(h, highspy, last.model)
            pass_times.append(time.perf_counter() - t0)
            lp = h.getLp()
            assert (lp.num_col_, lp.num_row_) == (size["variables"], size["rows"])
            del h, lp
        out["highs_pass_seconds"] = pass_times
        out["best_highs_pass_seconds"] = min(pass_times)
        out["peak_rss_after_pass_mib"] = round(_peak_mib(), 1)
    return out


# ----------------------------------------------------------------------------------------------------------
# The parent: one subprocess per method, then the comparison
# ----------------------------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    import highspy  # noqa: F401
    import mip
    import scipy

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from importlib.metadata import version

    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "mip": mip.__version__, "highspy": version("highspy"),
            "platform": platform.platform()}


def run_child(method: str, points: int, repeat: int, seed: int) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", method, "--points", str(points),
           "--repeat", str(repeat), "--seed", str(seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{method} run failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(ours: dict[str, Any], base: dict[str, Any]) -> str:
    rows = [("build seconds", f"{ours['best_build_seconds']:.3f} (best of {len(ours['build_seconds'])})",
             f"{base['best_build_seconds']:.3f} (best of {len(base['build_seconds'])})",
             f"{base['best_build_seconds'] / ours['best_build_seconds']:.1f}x"),
            ("peak RSS MiB (process)", f"{ours['peak_rss_mib']:.0f}", f"{base['peak_rss_mib']:.0f}",
             f"{base['peak_rss_mib'] / ours['peak_rss_mib']:.1f}x"),
            ("peak RSS over start MiB", f"{ours['peak_over_baseline_mib']:.0f}",
             f"{base['peak_over_baseline_mib']:.0f}",
             f"{base['peak_over_baseline_mib'] / max(ours['peak_over_baseline_mib'], 1e-9):.1f}x")]
    for key in ("variables", "binaries", "integers", "rows", "nonzeros"):
        a, b = ours["size"][key], base["size"][key]
        rows.append((key, f"{a:,}", f"{b:,}", "same" if a == b else "DIFFERENT"))
    rows.append(("HiGHS passModel seconds", f"{ours['best_highs_pass_seconds']:.3f}", "-", ""))
    head = ("", "nnmip", "python-mip term by term", "ratio")
    w = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    lines = ["| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(head)) + " |",
             "|" + "|".join("-" * (x + 2) for x in w) + "|"]
    lines += ["| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(r)) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3, help="builds of nnmip's model (best reported)")
    ap.add_argument("--baseline-repeat", type=int, default=1, help="builds of the python-mip model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="OUT", help="write every figure as JSON")
    ap.add_argument("--child", choices=("nnmip", "mip"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    from nnmip.io.safe import check_writable, write_text

    if a.json:
        check_writable(a.json, "--json")    # refused before any work, not after it
    if a.child:
        print(json.dumps(measure(a.child, a.points, a.repeat, a.seed)))
        return 0
    ours = run_child("nnmip", a.points, a.repeat, a.seed)
    base = run_child("mip", a.points, a.baseline_repeat, a.seed)
    report = {"machine": machine(), "command": " ".join(["python", "benchmarks/build_training.py", *(argv or
              sys.argv[1:])]), "nnmip": ours, "python_mip": base,
              "speedup": base["best_build_seconds"] / ours["best_build_seconds"],
              "same_size": all(ours["size"][k] == base["size"][k] for k in ours["size"])}
    print(f"# {ours['points']} points ({ours['rows_used']}); network 9-"
          f"{'-'.join(map(str, Spec().widths))}, weights int[-1, 1], biases real[-16, 16], step, hamming")
    print(table(ours, base))
    m = report["machine"]
    print(f"\nmachine: {m['nproc']} cpus, {m['cpu']}; python {m['python']}, numpy {m['numpy']}, "
          f"scipy {m['scipy']}, mip {m['mip']}, highspy {m['highspy']}")
    if a.json:
        write_text(a.json, json.dumps(report, indent=2) + "\n")
    return 0 if report["same_size"] else 1


if __name__ == "__main__":
    sys.exit(main())
