"""Verification models side by side: nnmip against OMLT, PySCIPOpt-ML and gurobi-ml on the same ONNX networks.

Every peer is optional (``pip install omlt pyomo pyscipopt-ml gurobipy gurobi-machinelearning``); one that is not
installed is skipped with the reason printed.  The networks are the seeded ONNX MLPs of
``benchmarks/verify_omlt.py`` (float32 ``Gemm`` + ``Relu``, He-scaled weights).

Part 1, build: 784-128-128-10 and 784-256-256-256-10, an linf ball of radius eps around a random point of
[0, 1]^784 (intersected with [0, 1]), the question max ``y_j - y_c`` (c the class at the centre, j the runner-up).
Timed from the ONNX model in memory to a model held by the solver:

* nnmip: ``import_onnx`` + bounds (``tighten="auto"``: symbolic on these networks) + ``build_fixed_model`` +
  the objective + ``Highs.passModel``;
* OMLT: ``load_onnx_neural_network`` (with the input bounds) + ``OmltBlock`` + ``ReluBigMFormulation`` + the
  objective + ``set_instance`` of Pyomo's persistent HiGHS interface (appsi);
* PySCIPOpt-ML: a SCIP model with bounded inputs + ``add_predictor_constr`` (its default ReLU formulation) + the
  objective (SCIP holds the model as it is built);
* gurobi-ml: a Gurobi model with bounded inputs + ``add_predictor_constr`` (ReLU as Gurobi ``max`` general
  constraints) + the objective + ``Model.update``.

Each round runs every tool once, the order rotated from round to round; the ratio tool / nnmip is taken within
the round.

Part 2, solve: 20-64-64-2 networks (seeds 100..), an linf ball of radius eps (default 0.1) around a random point
of [0, 1]^20; max ``y_other - y_c`` solved to a relative gap of 1e-6 with one thread by nnmip (``verify`` with a
``maximize`` property, HiGHS), OMLT + HiGHS, PySCIPOpt-ML + SCIP and gurobi-ml + Gurobi, the order rotated per
instance; wall and CPU seconds (build included).  The input each tool returns is re-run by the numpy forward pass
and the optima are compared.  Then the hard instance: seed 0 at eps 0.25.

    python benchmarks/verify_peers.py [--json OUT] [--rounds 3] [--instances 10] [--first-seed 0] [--time-limit 120]
        [--hard-time-limit 240] [--tools nnmip,nnmip-lp,nnmip-bigm,nnmip-cuts,nnmip-lp-cuts,omlt,scip-ml,gurobi-ml]
        [--skip-build] [--skip-solve]

``nnmip`` is ``verify`` with its defaults: ``tighten="auto"`` (lp-cuts bounds on these networks), and a MILP not
solved within 15 s is solved again with ideal cuts.  ``nnmip-bigm`` names the big-M formulation
(``method={"relu": "bigm"}``), which keeps the first MILP to the end; ``nnmip-lp`` names ``tighten="lp"``, the
plain LP bounds and one big-M MILP: the default before both changes.  ``nnmip-cuts`` is nnmip with
``method={"relu": "ideal-cuts"}``; ``nnmip-lp-cuts`` also tightens the bounds with ``tighten="lp-cuts"`` (each
bound LP strengthened by ideal cuts of the earlier layers); ``nnmip-lp-cuts-bigm`` takes those bounds with the
plain big-M model.

Gurobi's pip licence is size-limited (2000 variables and 2000 constraints): models above it are built and timed
but cannot be optimised.  Exit status 1 when two tools that proved optimality disagree by more than 1e-5.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")     # one thread each: numpy's BLAS too (set before numpy is imported)

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from verify_omlt import case_of, mlp, question, small_question  # noqa: E402

from nnmip.drivers.verify import verify  # noqa: E402
from nnmip.formulations.verification import build_fixed_model, with_case  # noqa: E402
from nnmip.io.onnx import import_onnx  # noqa: E402
from nnmip.io.safe import check_writable, write_text  # noqa: E402
from nnmip.ir.spec import Region, linf, maximize  # noqa: E402
from nnmip.passes.bounds import tighten_bounds  # noqa: E402
from nnmip.solution import SolveOptions  # noqa: E402

GAP = 1e-6
TOOLS = ("nnmip", "nnmip-lp", "nnmip-bigm", "nnmip-cuts", "nnmip-lp-cuts", "omlt", "scip-ml", "gurobi-ml")


def available(tool: str) -> str | None:
    """None when the tool can run, else the reason it is skipped."""
    needs = {"omlt": ("omlt", "pyomo", "highspy"), "scip-ml": ("pyscipopt", "pyscipopt_ml"),
             "gurobi-ml": ("gurobipy", "gurobi_ml")}.get(tool, ())
    for mod in needs:
        try:
            __import__(mod)
        except ImportError:
            return f"{mod} is not installed"
    return None


def box(x0: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    return np.clip(x0 - eps, 0.0, 1.0), np.clip(x0 + eps, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------------- builders
# Each builder returns (solver handle, input read-back, extra info) and is timed from the ONNX model in memory.
def build_nnmip(model: onnx.ModelProto, x0: np.ndarray, eps: float, c: int, j: int) -> dict[str, Any]:
    import highspy

    from nnmip.backends.highs import HighsBackend

    net, _ = import_onnx(model)
    lo, hi = box(x0, eps)
    region = Region((linf(x0, eps),), np.zeros(x0.size), np.ones(x0.size))
    rep = tighten_bounds(net, region, method="symbolic")
    fm = build_fixed_model(net, region, rep.bounds)
    m = with_case(fm, case_of(c, j, net.n_outputs))
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    HighsBackend._pass_model(h, highspy, m)
    st = m.stats()
    return {"binaries": st["binaries"], "variables": st["variables"], "rows": st["rows"]}


def omlt_model(model: onnx.ModelProto, x0: np.ndarray, eps: float, c: int, j: int) -> Any:
    import pyomo.environ as pyo
    from omlt import OmltBlock
    from omlt.io import load_onnx_neural_network
    from omlt.neuralnet import ReluBigMFormulation

    lo, hi = box(x0, eps)
    net = load_onnx_neural_network(model, input_bounds={i: (float(lo[i]), float(hi[i])) for i in range(x0.size)})
    m = pyo.ConcreteModel()
    m.nn = OmltBlock()
    m.nn.build_formulation(ReluBigMFormulation(net))
    m.obj = pyo.Objective(expr=m.nn.outputs[j] - m.nn.outputs[c], sense=pyo.maximize)
    return m


def omlt_solver(time_limit: float | None) -> Any:
    from pyomo.contrib.appsi.solvers import Highs

    opt = Highs()
    opt.config.load_solution = False
    if time_limit is not None:
        opt.config.time_limit = time_limit
    opt.highs_options = {"mip_rel_gap": GAP, "threads": 1}
    return opt


def build_omlt(model: onnx.ModelProto, x0: np.ndarray, eps: float, c: int, j: int) -> dict[str, Any]:
    import pyomo.environ as pyo

    m = omlt_model(model, x0, eps, c, j)
    omlt_solver(None).set_instance(m)
    return {"binaries": sum(1 for v in m.component_data_objects(pyo.Var) if v.is_binary() and not v.fixed),
            "variables": sum(1 for _ in m.component_data_objects(pyo.Var)),
            "rows": sum(1 for _ in m.component_data_objects(pyo.Constraint, active=True))}


def scip_model(model: onnx.ModelProto, x0: np.ndarray, eps: float, c: int, j: int) -> tuple[Any, list[Any]]:
    import pyscipopt
    from pyscipopt_ml.add_predictor import add_predictor_constr

    lo, hi = box(x0, eps)
    s = pyscipopt.Model()
    s.hideOutput()
    x = np.array([[s.addVar(lb=float(lo[i]), ub=float(hi[i]), name=f"x{i}") for i in range(x0.size)]], dtype=object)
    n_out = model.graph.output[0].type.tensor_type.shape.dim[-1].dim_value
    y = np.array([[s.addVar(lb=None, ub=None, name=f"y{k}") for k in range(n_out)]], dtype=object)
    add_predictor_constr(s, model, x, y)
    s.setObjective(y[0, j] - y[0, c], sense="maximize")
    return s, list(x[0])


def build_scip(model: onnx.ModelProto, x0: np.ndarray, eps: float, c: int, j: int) -> dict[str, Any]:
    s, _ = scip_model(model, x0, eps, c, j)
    return {"binaries": s.getNBinVars(), "variables": s.getNVars(), "rows": s.getNConss()}


_GUROBI_ENV: list[Any] = []


def gurobi_env() -> Any:
    import gurobipy as gp

    if not _GUROBI_ENV:
        env = gp.Env(empty=True)
        env.setParam("OutputFlag", 0)
        env.start()
        _GUROBI_ENV.append(env)
    return _GUROBI_ENV[0]


def gurobi_model(model: onnx.ModelProto, x0: np.ndarray, eps: float, c: int, j: int) -> tuple[Any, Any]:
    import gurobipy as gp
    from gurobi_ml import add_predictor_constr

    lo, hi = box(x0, eps)
    g = gp.Model(env=gurobi_env())
    g.Params.Threads = 1
    x = g.addMVar((1, x0.size), lb=lo[None, :], ub=hi[None, :], name="x")
    n_out = model.graph.output[0].type.tensor_type.shape.dim[-1].dim_value
    y = g.addMVar((1, n_out), lb=-gp.GRB.INFINITY, name="y")
    add_predictor_constr(g, model, x, y)
    g.setObjective(y[0, j] - y[0, c], gp.GRB.MAXIMIZE)
    g.update()
    return g, x


def build_gurobi(model: onnx.ModelProto, x0: np.ndarray, eps: float, c: int, j: int) -> dict[str, Any]:
    g, _ = gurobi_model(model, x0, eps, c, j)
    return {"binaries": g.NumBinVars, "variables": g.NumVars, "rows": g.NumConstrs, "general": g.NumGenConstrs}


BUILDERS: dict[str, Callable[..., dict[str, Any]]] = {"nnmip": build_nnmip, "omlt": build_omlt,
                                                      "scip-ml": build_scip, "gurobi-ml": build_gurobi}


# ---------------------------------------------------------------------------------------------------- solvers
# Each returns status, objective, bound and the input point found (None without one); the caller times it.
def solve_nnmip(net: Any, model: onnx.ModelProto, x0: np.ndarray, eps: float, c: int, j: int, limit: float,
                relu: str = "bigm", tighten: str = "auto") -> dict[str, Any]:
    coef = np.zeros(net.n_outputs)
    coef[j], coef[c] = 1.0, -1.0
    r = verify(net, [linf(x0, eps)], maximize(coef), domain=(0, 1), time_limit=limit,
               method=None if relu == "bigm" else {"relu": relu.removesuffix("-named")},
               tighten=tighten, options=SolveOptions(threads=1, mip_gap=GAP))
    return {"status": "time limit" if r.timed_out else "optimal", "objective": r.value, "bound": r.bound,
            "x": None if r.counterexample is None else np.asarray(r.counterexample, dtype=float),
            "binaries": r.binaries}


def solve_omlt(net: Any, model: onnx.ModelProto, x0: np.ndarray, eps: float, c: int, j: int,
               limit: float) -> dict[str, Any]:
    from pyomo.contrib.appsi.base import TerminationCondition

    m = omlt_model(model, x0, eps, c, j)
    res = omlt_solver(limit).solve(m)
    x = None
    if res.best_feasible_objective is not None:
        res.solution_loader.load_vars()
        x = np.array([m.nn.inputs[i].value for i in range(x0.size)], dtype=float)
    return {"status": "optimal" if res.termination_condition == TerminationCondition.optimal else
            str(res.termination_condition).split(".")[-1], "objective": res.best_feasible_objective,
            "bound": res.best_objective_bound, "x": x}


def solve_scip(net: Any, model: onnx.ModelProto, x0: np.ndarray, eps: float, c: int, j: int,
               limit: float) -> dict[str, Any]:
    s, x = scip_model(model, x0, eps, c, j)
    s.setParam("limits/gap", GAP)
    s.setParam("limits/time", limit)
    s.setParam("parallel/maxnthreads", 1)
    s.optimize()
    sol = s.getBestSol() if s.getNSols() > 0 else None
    return {"status": s.getStatus(), "objective": s.getObjVal() if sol is not None else None,
            "bound": s.getDualbound(), "x": None if sol is None else np.array([s.getSolVal(sol, v) for v in x])}


def solve_gurobi(net: Any, model: onnx.ModelProto, x0: np.ndarray, eps: float, c: int, j: int,
                 limit: float) -> dict[str, Any]:
    import gurobipy as gp

    g, x = gurobi_model(model, x0, eps, c, j)
    g.Params.MIPGap = GAP
    g.Params.TimeLimit = limit
    g.optimize()
    status = {gp.GRB.OPTIMAL: "optimal", gp.GRB.TIME_LIMIT: "time limit"}.get(g.Status, f"status {g.Status}")
    has = g.SolCount > 0
    return {"status": status, "objective": g.ObjVal if has else None, "bound": g.ObjBound,
            "x": np.asarray(x.X, dtype=float).ravel() if has else None}


SOLVERS: dict[str, Callable[..., dict[str, Any]]] = {
    "nnmip": solve_nnmip, "nnmip-bigm": lambda *a: solve_nnmip(*a, relu="bigm-named"),
    "nnmip-lp": lambda *a: solve_nnmip(*a, tighten="lp"),
    "nnmip-cuts": lambda *a: solve_nnmip(*a, relu="ideal-cuts"),
    "nnmip-lp-cuts-bigm": lambda *a: solve_nnmip(*a, relu="bigm-named", tighten="lp-cuts"),
    "nnmip-lp-cuts": lambda *a: solve_nnmip(*a, relu="ideal-cuts", tighten="lp-cuts"), "omlt": solve_omlt,
    "scip-ml": solve_scip, "gurobi-ml": solve_gurobi}


def timed(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        out = fn(*args)
    except Exception as exc:  # a peer refusing a model (licence, size) is reported, not fatal
        out = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    out["wall"] = time.perf_counter() - w0
    out["cpu"] = time.process_time() - c0
    return out


def rotated(tools: list[str], k: int) -> list[str]:
    k %= len(tools)
    return tools[k:] + tools[:k]


# ---------------------------------------------------------------------------------------------------- parts
def part_build(tools: list[str], rounds: int, eps_list: list[float]) -> list[dict[str, Any]]:
    builders = [t for t in tools if t in BUILDERS]
    rows = []
    print(f"== build: ONNX in memory -> model held by the solver; {rounds} rounds, order rotated ==", flush=True)
    for sizes in ([784, 128, 128, 10], [784, 256, 256, 256, 10]):
        model, _ = mlp(sizes, seed=0)
        net, _ = import_onnx(model)
        for eps in eps_list:
            x0 = np.random.default_rng(1).random(784)
            c, j = question(net, x0)
            row: dict[str, Any] = {"network": "-".join(map(str, sizes)), "eps": eps, "rounds": []}
            for k in range(rounds):
                rnd = {t: timed(BUILDERS[t], model, x0, eps, c, j) for t in rotated(builders, k)}
                row["rounds"].append(rnd)
                line = f"{row['network']:>18} eps {eps:<5} round {k}:"
                for t in builders:
                    r = rnd[t]
                    if "error" in r:
                        line += f" | {t} ERROR {r['error']}"
                        continue
                    line += f" | {t} {r['wall']:.3f}s cpu {r['cpu']:.3f}s ({r['binaries']} bin)"
                    if t != "nnmip" and "error" not in rnd["nnmip"]:
                        line += f" x{r['wall'] / rnd['nnmip']['wall']:.2f} (cpu x{r['cpu'] / rnd['nnmip']['cpu']:.2f})"
                print(line, flush=True)
            summ = {}
            for t in builders:
                ok = [r for r in row["rounds"] if "error" not in r[t]]
                if not ok:
                    continue
                summ[t] = {"best_wall": min(r[t]["wall"] for r in ok), "best_cpu": min(r[t]["cpu"] for r in ok),
                           "ratio_median": statistics.median(r[t]["wall"] / r["nnmip"]["wall"] for r in ok),
                           "cpu_ratio_median": statistics.median(r[t]["cpu"] / r["nnmip"]["cpu"] for r in ok)}
            row["summary"] = summ
            print("   summary: " + ", ".join(f"{t} best {s['best_wall']:.3f}s (cpu {s['best_cpu']:.3f}s) ratio/nnmip "
                                             f"{s['ratio_median']:.2f} (cpu {s['cpu_ratio_median']:.2f})"
                                             for t, s in summ.items()), flush=True)
            rows.append(row)
    return rows


def forward_score(net: Any, x: np.ndarray | None, c: int, j: int, lo: np.ndarray, hi: np.ndarray) -> float | None:
    """The forward-pass score of a returned input (clipped into the box: solvers return it within tolerance)."""
    if x is None:
        return None
    y = net.forward(np.clip(x, lo, hi))[0]
    return float(y[j] - y[c])


def solve_one(tools: list[str], seed: int, eps: float, limit: float, rotate: int) -> dict[str, Any]:
    model, net, x0, c, j, _ = small_question(seed)
    lo, hi = box(x0, eps)
    row: dict[str, Any] = {"seed": seed, "eps": eps, "order": rotated(tools, rotate)}
    for t in row["order"]:
        r = timed(SOLVERS[t], net, model, x0, eps, c, j, limit)
        r["forward"] = forward_score(net, r.pop("x", None), c, j, lo, hi)
        row[t] = r
    opt = {t: row[t]["objective"] for t in tools if row[t].get("status") == "optimal"}
    row["max_diff"] = (max(opt.values()) - min(opt.values())) if len(opt) > 1 else 0.0
    line = f"seed {seed} eps {eps}:"
    for t in tools:
        r = row[t]
        if "error" in r:
            line += f" | {t} ERROR {r['error']}"
            continue
        obj = "-" if r["objective"] is None else f"{r['objective']:.6f}"
        line += f" | {t} {r['wall']:.2f}s cpu {r['cpu']:.2f}s {r['status']} {obj} (bound {r['bound']:.4g})"
    print(line + f" | max diff of optima {row['max_diff']:.2e}", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--eps-build", type=float, nargs="+", default=[0.02])
    ap.add_argument("--instances", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0, help="seed of the first solve instance")
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--time-limit", type=float, default=120.0, help="per solve of the eps instances")
    ap.add_argument("--hard-eps", type=float, default=0.25)
    ap.add_argument("--hard-time-limit", type=float, default=240.0)
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--skip-solve", action="store_true")
    ap.add_argument("--skip-hard", action="store_true")
    a = ap.parse_args(argv)
    if a.json:
        check_writable(a.json, "--json")    # refused before any work, not after it
    logging.getLogger("pyomo").setLevel(logging.ERROR)
    tools = []
    for t in a.tools.split(","):
        why = available(t)
        if why is None:
            tools.append(t)
        else:
            print(f"skipping {t}: {why}", file=sys.stderr)
    versions = {}
    for mod in ("highspy", "omlt", "pyomo", "pyscipopt", "pyscipopt_ml", "gurobipy", "gurobi_ml", "numpy", "onnx"):
        try:
            from importlib.metadata import version
            versions[mod] = version(mod.replace("_", "-") if mod != "gurobi_ml" else "gurobi-machinelearning")
        except Exception:
            versions[mod] = None
    out: dict[str, Any] = {"machine": {"python": platform.python_version(), "platform": platform.platform(),
                                       "cpus": os.cpu_count(), "load": os.getloadavg()},
                           "versions": versions, "tools": tools, "args": vars(a)}
    if not a.skip_build:
        out["build"] = part_build(tools, a.rounds, a.eps_build)
    ok = True
    if not a.skip_solve:
        print(f"== solve: 20-64-64-2, eps {a.eps}, {a.instances} instances from seed {a.first_seed}, gap {GAP}, "
              "1 thread ==", flush=True)
        out["solve"] = [solve_one(tools, s, a.eps, a.time_limit, s)
                        for s in range(a.first_seed, a.first_seed + a.instances)]
        summ = {}
        for t in tools:
            rs = [r[t] for r in out["solve"] if "error" not in r[t]]
            if rs:
                summ[t] = {"median_wall": statistics.median(r["wall"] for r in rs),
                           "median_cpu": statistics.median(r["cpu"] for r in rs),
                           "optimal": sum(r["status"] == "optimal" for r in rs), "of": len(out["solve"])}
        if "nnmip" in summ:
            for t in summ:
                summ[t]["cpu_ratio_median"] = statistics.median(
                    r[t]["cpu"] / r["nnmip"]["cpu"] for r in out["solve"] if "error" not in r[t])
        out["solve_summary"] = summ
        for t, s in summ.items():
            print(f"   {t}: median wall {s['median_wall']:.2f}s, CPU {s['median_cpu']:.2f}s, optimal {s['optimal']}"
                  f"/{s['of']}, CPU ratio to nnmip (median of instances) {s.get('cpu_ratio_median', 0):.2f}")
        worst = max(r["max_diff"] for r in out["solve"])
        print(f"   largest difference between proven optima: {worst:.2e}")
        ok &= worst <= 1e-5
    if not a.skip_hard:
        print(f"== hard instance: seed 0, eps {a.hard_eps}, limit {a.hard_time_limit}s ==", flush=True)
        out["hard"] = solve_one(tools, 0, a.hard_eps, a.hard_time_limit, 0)
    out["load_after"] = os.getloadavg()
    if a.json:
        write_text(a.json, json.dumps(out, indent=1, default=float))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
