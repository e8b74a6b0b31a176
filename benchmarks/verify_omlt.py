"""Verification models: nnmip against OMLT's big-M ReLU encoding (optional: ``pip install omlt pyomo``).

Part 1, build: ONNX MLPs 784-128-128-10 and 784-256-256-256-10 with random seeded weights (He-scaled normal
weights, small biases), an linf ball of radius eps in {0.02, 0.05} around a random point of [0, 1]^784
(intersected with [0, 1]). One question: the largest ``y_j - y_c`` (c the class at the center, j the runner-up).
Timed from the in-memory ONNX model to a model a solver can take: nnmip = import_onnx + interval bounds +
formulation (+ the objective), with interval bounds, symbolic (back-substitution) bounds, and for the smaller
network LP bounds too (their time includes the LPs); OMLT = load_onnx_neural_network (with input bounds) + OmltBlock +
ReluBigMFormulation + the objective.  Binaries are counted as the models hold them (OMLT: unfixed binary
variables).

Part 2, solve: 20-64-64-2 ReLU networks, one instance per seed, an linf ball of radius eps around a random
point of [0, 1]^20; the question max ``y_other - y_c`` is solved to optimality (relative gap 1e-6) with HiGHS by
both: nnmip (``verify`` with a maximize property: bounds, LP tightening, MILP) and OMLT through Pyomo's
``appsi_highs``.  Also nnmip's decision answer (``classified``), which may stop early.  Both optima must agree.

    python benchmarks/verify_omlt.py [--json OUT] [--repeat 3] [--instances 10] [--eps-solve 0.1] [--no-omlt]

Exit status 1 when the two tools disagree on an optimum.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import time
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nnmip.drivers.verify import verify
from nnmip.formulations.verification import build_fixed_model, with_case
from nnmip.io.onnx import import_onnx
from nnmip.ir.spec import Case, Region, linf
from nnmip.passes.bounds import tighten_bounds


def mlp(sizes: list[int], seed: int) -> tuple[onnx.ModelProto, list[tuple[np.ndarray, np.ndarray]]]:
    """An ONNX MLP (float32 Gemm with explicit alpha/beta/transB, Relu between layers) and its weights."""
    rng = np.random.default_rng(seed)
    layers = []
    nodes, inits = [], []
    cur = "input"
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        W = (rng.normal(size=(b, a)) * np.sqrt(2.0 / a)).astype(np.float32)
        bias = (rng.normal(size=b) * 0.05).astype(np.float32)
        layers.append((W.astype(np.float64), bias.astype(np.float64)))
        inits += [numpy_helper.from_array(W, f"W{k}"), numpy_helper.from_array(bias, f"b{k}")]
        out = "output" if k == len(sizes) - 2 else f"a{k}"
        nodes.append(helper.make_node("Gemm", [cur, f"W{k}", f"b{k}"], [out], name=f"fc{k}", alpha=1.0, beta=1.0,
                                      transB=1))
        cur = out
        if k < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [cur], [f"r{k}"], name=f"relu{k}"))
            cur = f"r{k}"
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", sizes[0]])]
    graph = helper.make_graph(nodes, "mlp", inputs,
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", sizes[-1]])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model, layers


def question(net: Any, x0: np.ndarray) -> tuple[int, int]:
    y = net.forward(x0)[0]
    order = np.argsort(-y)
    return int(order[0]), int(order[1])


def small_question(seed: int, sizes: tuple[int, ...] = (20, 64, 64, 2)
                   ) -> tuple[onnx.ModelProto, Any, np.ndarray, int, int, np.ndarray]:
    """Instance ``seed`` of the 20-64-64-2 solve benchmarks (or of another ``sizes``): the ONNX model (weights of
    seed ``100 + seed``), the network, the centre ``x0`` (a random point of [0, 1]^n), the class ``c`` at ``x0``,
    the runner-up ``j`` and the coefficients of ``y_j - y_c``.
    """
    model, _ = mlp(list(sizes), seed=100 + seed)
    net, _ = import_onnx(model)
    x0 = np.random.default_rng(seed).random(sizes[0])
    c, j = question(net, x0)
    coef = np.zeros(sizes[-1])
    coef[j], coef[c] = 1.0, -1.0
    return model, net, x0, c, j, coef


def case_of(c: int, j: int, n_out: int) -> Case:
    G = np.zeros((1, n_out))
    G[0, c], G[0, j] = 1.0, -1.0          # score y_j - y_c
    return Case(G, np.zeros(1), np.array([False]))


# ----------------------------------------------------------------------------------------------------------
def nnmip_build(model: onnx.ModelProto, x0: np.ndarray, eps: float, tighten: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    net, _ = import_onnx(model)
    region = Region((linf(x0, eps),), np.zeros(x0.size), np.ones(x0.size))
    rep = tighten_bounds(net, region, method=tighten)
    fm = build_fixed_model(net, region, rep.bounds)
    c, j = question(net, x0)
    m = with_case(fm, case_of(c, j, net.n_outputs))
    secs = time.perf_counter() - t0
    st = m.stats()
    return {"seconds": secs, "binaries": st["binaries"], "variables": st["variables"], "rows": st["rows"],
            "stable_units": fm.stable_units, "units": fm.total_units, "bounds_seconds": rep.seconds}


def omlt_model(model: onnx.ModelProto, x0: np.ndarray, eps: float, c: int, j: int) -> tuple[Any, float]:
    import pyomo.environ as pyo
    from omlt import OmltBlock
    from omlt.io import load_onnx_neural_network
    from omlt.neuralnet import ReluBigMFormulation

    lo, hi = np.clip(x0 - eps, 0, 1), np.clip(x0 + eps, 0, 1)
    t0 = time.perf_counter()
    net = load_onnx_neural_network(model, input_bounds={i: (float(lo[i]), float(hi[i])) for i in range(x0.size)})
    m = pyo.ConcreteModel()
    m.nn = OmltBlock()
    m.nn.build_formulation(ReluBigMFormulation(net))
    m.obj = pyo.Objective(expr=m.nn.outputs[j] - m.nn.outputs[c], sense=pyo.maximize)
    return m, time.perf_counter() - t0


def omlt_build(model: onnx.ModelProto, x0: np.ndarray, eps: float, c: int, j: int) -> dict[str, Any]:
    import pyomo.environ as pyo

    m, secs = omlt_model(model, x0, eps, c, j)
    binaries = sum(1 for v in m.component_data_objects(pyo.Var) if v.is_binary() and not v.fixed)
    variables = sum(1 for _ in m.component_data_objects(pyo.Var))
    rows = sum(1 for _ in m.component_data_objects(pyo.Constraint, active=True))
    return {"seconds": secs, "binaries": binaries, "variables": variables, "rows": rows}


def omlt_solve(model: onnx.ModelProto, x0: np.ndarray, eps: float, c: int, j: int) -> dict[str, Any]:
    import pyomo.environ as pyo

    m, build = omlt_model(model, x0, eps, c, j)
    opt = pyo.SolverFactory("appsi_highs")
    opt.highs_options = {"mip_rel_gap": 1e-6, "threads": 1}
    t0 = time.perf_counter()
    opt.solve(m)
    solve = time.perf_counter() - t0
    return {"build": build, "solve": solve, "total": build + solve, "objective": float(pyo.value(m.obj))}


# ----------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument("--repeat", type=int, default=3, help="builds per configuration (the best is reported)")
    ap.add_argument("--instances", type=int, default=10, help="20-64-64-2 solve instances")
    ap.add_argument("--eps-solve", type=float, default=0.1)
    ap.add_argument("--no-omlt", action="store_true", help="measure nnmip only")
    ap.add_argument("--lp", action="store_true", help="also LP tightening on the 784-256-256-256-10 network (slow)")
    a = ap.parse_args(argv)
    logging.getLogger("pyomo").setLevel(logging.ERROR)
    have_omlt = not a.no_omlt
    if have_omlt:
        try:
            import omlt  # noqa: F401
            import pyomo  # noqa: F401
        except ImportError:
            print("omlt/pyomo not installed: measuring nnmip only", file=sys.stderr)
            have_omlt = False
    out: dict[str, Any] = {"machine": {"python": platform.python_version(), "platform": platform.platform()},
                           "build": [], "solve": []}
    ok = True
    print("== build: ONNX model in memory -> solver-ready model ==")
    for sizes in ([784, 128, 128, 10], [784, 256, 256, 256, 10]):
        model, _ = mlp(sizes, seed=0)
        for eps in (0.02, 0.05):
            x0 = np.random.default_rng(1).random(784)
            row: dict[str, Any] = {"network": "-".join(map(str, sizes)), "eps": eps}
            kinds = ("interval", "symbolic") + (("lp",) if a.lp or sizes[1] == 128 else ())
            for tighten in kinds:
                runs = [nnmip_build(model, x0, eps, tighten) for _ in range(a.repeat if tighten != "lp" else 1)]
                row[f"nnmip_{tighten}"] = min(runs, key=lambda r: r["seconds"])
            if have_omlt:
                net, _ = import_onnx(model)
                c, j = question(net, x0)
                runs = [omlt_build(model, x0, eps, c, j) for _ in range(a.repeat)]
                row["omlt"] = min(runs, key=lambda r: r["seconds"])
                row["speedup"] = row["omlt"]["seconds"] / row["nnmip_interval"]["seconds"]
            out["build"].append(row)
            line = f"{row['network']:>22} eps {eps:<5}"
            for tighten in kinds:
                r = row[f"nnmip_{tighten}"]
                line += f" | nnmip {tighten} {r['seconds']:.3f}s {r['binaries']} bin"
            if have_omlt:
                o = row["omlt"]
                line += f" | OMLT {o['seconds']:.2f}s {o['binaries']} bin | {row['speedup']:.0f}x"
            print(line, flush=True)

    print(f"== solve: 20-64-64-2, eps {a.eps_solve}, {a.instances} instances, HiGHS, gap 1e-6 ==")
    for seed in range(a.instances):
        _, net, x0, c, j, coef = small_question(seed)
        from nnmip.ir.spec import classified, maximize
        from nnmip.solution import SolveOptions

        opts = SolveOptions(threads=1)
        t0 = time.perf_counter()
        r = verify(net, [linf(x0, a.eps_solve)], maximize(coef), domain=(0, 1), samples=0, options=opts)
        nn_total = time.perf_counter() - t0
        nn_solve = sum(cs.seconds for cs in r.cases)
        t0 = time.perf_counter()
        d = verify(net, [linf(x0, a.eps_solve)], classified(c), domain=(0, 1), options=opts)
        nn_decide = time.perf_counter() - t0
        row = {"seed": seed, "nnmip_total": nn_total, "nnmip_case": nn_solve, "nnmip_bound": r.bound,
               "nnmip_value": r.value, "nnmip_binaries": r.binaries, "nnmip_decide": nn_decide,
               "decide_result": d.result}
        line = (f"seed {seed:2d}: nnmip {nn_total:.3f}s (MILP stage {nn_solve:.3f}s, {r.binaries} bin, "
                f"opt {r.bound:.6g}) decide {nn_decide:.3f}s {d.result}")
        if have_omlt:
            o = omlt_solve(model, x0, a.eps_solve, c, j)
            row["omlt"] = o
            agree = abs(o["objective"] - r.bound) <= 1e-5 * (1 + abs(r.bound))
            row["agree"] = agree
            ok &= agree
            line += f" | OMLT solve {o['solve']:.3f}s total {o['total']:.3f}s opt {o['objective']:.6g}"
            line += "" if agree else "  DISAGREE"
        out["solve"].append(row)
        print(line, flush=True)
    s = out["solve"]
    summary = {"nnmip_total_median": statistics.median(r["nnmip_total"] for r in s),
               "nnmip_decide_median": statistics.median(r["nnmip_decide"] for r in s)}
    if have_omlt:
        summary["omlt_solve_median"] = statistics.median(r["omlt"]["solve"] for r in s)
        summary["omlt_total_median"] = statistics.median(r["omlt"]["total"] for r in s)
    out["solve_summary"] = summary
    print("medians: " + ", ".join(f"{k} {v:.3f}s" for k, v in summary.items()))
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2, default=float)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
