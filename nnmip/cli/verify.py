"""``nnmip verify``: certify, falsify or bound a fixed-weight network.

::

    nnmip verify --onnx net.onnx --point x.npy --linf 0.05 --label 3 [--domain 0 1] [--json OUT]
    nnmip verify --onnx net.onnx --points data.csv --linf 0.02 [--json OUT]       # robust accuracy
    nnmip verify --onnx net.onnx --vnnlib prop.vnnlib [--counterexample OUT]      # VNN-COMP answer
    nnmip verify model.nnmip                                                       # the file's verify statements

Exit codes: 0 every question got a definite answer (certified, or a counterexample re-checked by the forward
pass); 1 some answer is unknown (time limit, undecided); 2 bad input; 3 solver problem.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from nnmip.cli.common import (
    EXIT_OK,
    EXIT_UNSOLVED,
    ProgressPrinter,
    add_executor_args,
    add_solver_args,
    command,
    make_executor_from_args,
    say,
    write_each,
    write_json,
)
from nnmip.errors import NnmipError, Span
from nnmip.solution import STOP


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", help="a .nnmip file with verify statements")
    src = p.add_argument_group("network")
    src.add_argument("--onnx", metavar="M.onnx", help="the network as an ONNX file")
    src.add_argument("--npz", metavar="W.npz", help="the network as an nnmip weights file (save_npz)")
    st = p.add_argument_group("input set (intersected with --domain)")
    st.add_argument("--point", metavar="X", help="center: .npy/.csv/.txt file or comma-separated numbers")
    st.add_argument("--points", metavar="DATA", help="verify every row of a .csv/.npz/.npy file (robust accuracy)")
    st.add_argument("--label-column", metavar="K",
                    help="label column of --points text files (default -1, the last; 'none': no labels)")
    st.add_argument("--linf", type=float, metavar="EPS", help="linf ball radius around the point")
    st.add_argument("--l1", type=float, metavar="R", help="l1 ball radius around the point")
    st.add_argument("--l2", type=float, metavar="R", help="l2 ball radius (needs a conic solver)")
    st.add_argument("--domain", nargs=2, type=float, metavar=("LO", "HI"), help="input domain, e.g. 0 1")
    pr = p.add_argument_group("property")
    pr.add_argument("--label", type=int, metavar="C", help="classified as C everywhere (default: the prediction "
                                                           "at the point)")
    pr.add_argument("--maximize", metavar="C0,C1,...", help="maximise this linear combination of the outputs")
    pr.add_argument("--minimize", metavar="C0,C1,...", help="minimise this linear combination of the outputs")
    pr.add_argument("--threshold", type=float, metavar="T",
                    help="with --maximize: prove c.y < T; with --minimize: prove c.y > T")
    pr.add_argument("--vnnlib", metavar="PROP", help="a VNN-LIB 1.0 property (input box and output constraints)")
    pr.add_argument("--counterexample", metavar="OUT",
                    help="with --vnnlib: write the VNN-COMP result file (sat/unsat/...; '-' for stdout)")
    p.add_argument("--tighten", choices=("interval", "symbolic", "lp", "lp-cuts", "milp", "auto"),
                   help="bound tightening (default auto: lp-cuts on small networks (lp with cbc), symbolic on large "
                        "ones; lp-cuts: the LPs strengthened by ideal cuts, tighter and slower than lp)")
    p.add_argument("--relu", choices=("bigm", "ideal-cuts", "extended"),
                   help="ReLU formulation (default bigm, and with --tighten auto an optimisation MILP not solved "
                        "within 15 s is solved again with lp-cuts bounds and ideal cuts; naming one keeps it; "
                        "ideal-cuts adds rounds of ideal ReLU cuts at the root; "
                        "extended: the ideal formulation with a copy of each unstable unit's inputs, for small "
                        "layers)")
    p.add_argument("--cuts", choices=("root", "tree"), default="root",
                   help="with --relu ideal-cuts: cut rounds at the root (default), or also in the solver's tree "
                        "(gurobi: a user-cut callback, scip: a separator; highs and cbc: the root only)")
    p.add_argument("--branching", choices=("none", "layers"), default="none",
                   help="branching priorities (default none; layers: earliest layers' unstable units first, for "
                        "gurobi and scip)")
    p.add_argument("--bab", choices=("auto", "on", "off", "input", "relu"), default="auto",
                   help="branch and bound (default auto: split the input box of ReLU networks with at most 16 "
                        "inputs, unstable ReLUs of larger ones; input/relu force one kind; off: the MILP; "
                        "sigmoid/tanh networks: the input split only)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="processes for branch and bound (default 1)")
    p.add_argument("--point-time-limit", type=float, metavar="T",
                   help="with --points: seconds for each point at most (--time-limit bounds the whole run)")
    add_solver_args(p)
    add_executor_args(p)
    p.add_argument("--json", metavar="OUT", help="write the result(s) as JSON ('-' for stdout)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress")


def _is_file(text: str) -> bool:
    """Whether ``text`` names a file (a name too long for the file system or holding NUL is not one)."""
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def _is_dir(text: str) -> bool:
    try:
        return Path(text).is_dir()
    except (OSError, ValueError):
        return False


def _vector(text: str, option: str = "--point") -> np.ndarray:
    from nnmip.drivers.verify import load_points

    is_file, is_dir = _is_file(text), _is_dir(text)
    if is_file:
        X, _ = load_points(text, label_column=None)
        return X.ravel()
    if is_dir:
        raise NnmipError.at("E0301", f"{option}: '{text}' is a folder, not a file or a list of numbers",
                            Span(file=text), ["help: give a .npy/.csv file inside it, or comma-separated numbers"])
    try:
        v = np.array([float(v) for v in text.replace(";", ",").split(",") if v.strip()])
    except ValueError:
        broken = os.path.lexists(text) if len(text) < 4096 and "\x00" not in text else False
        what = "is a symbolic link to nothing" if broken else "is neither a file nor a list of numbers"
        raise NnmipError.at("E0301", f"{option}: '{text[:80]}' {what}",
                            Span(file=text[:80]) if "," not in text else Span(),
                            ["help: give a .npy/.csv file or comma-separated numbers"]) from None
    if v.size == 0:
        raise NnmipError.at("E0301", f"{option}: '{text}' holds no numbers",
                            notes=["help: give a .npy/.csv file or comma-separated numbers"])
    if not np.isfinite(v).all():
        raise NnmipError.at("E0109", f"{option}: entry {int(np.argmax(~np.isfinite(v))) + 1} is not a finite "
                            "number", notes=["help: every entry must be a finite number"])
    return v


def _check_args(a: argparse.Namespace) -> None:
    """Every option checked before any file is read or any solve starts."""
    from nnmip.cli.common import (
        check_count,
        check_domain,
        check_executor_args,
        check_number,
        check_solver_args,
        preflight,
    )

    check_solver_args(a)
    check_executor_args(a)
    for opt in ("linf", "l1", "l2"):
        check_number(f"--{opt}", getattr(a, opt))
    check_count("--workers", a.workers)
    check_number("--point-time-limit", a.point_time_limit, positive=True)
    if a.threshold is not None and not np.isfinite(a.threshold):
        raise NnmipError.at("E0109", f"--threshold: {a.threshold} is not a finite number")
    check_domain(a.domain)
    if a.label is not None and a.label < 0:
        raise NnmipError.at("E0414", f"--label: class {a.label} does not exist (classes count from 0)")
    if a.label_column is not None:
        lc = str(a.label_column).strip().lower()
        try:
            a.label_column = lc if lc == "none" else str(int(lc))
        except ValueError:
            raise NnmipError.at("E0109", f"--label-column: '{a.label_column}' is not a column number or 'none'",
                                notes=["help: give a column number (0 first, -1 last) or 'none'"]) from None
    for opt in ("maximize", "minimize"):
        if getattr(a, opt) is not None and not getattr(a, opt).replace(",", " ").replace(";", " ").strip():
            raise NnmipError.at("E0109", f"--{opt}: '{getattr(a, opt)}' gives no coefficient",
                                notes=[f"help: give one coefficient per network output, e.g. --{opt} 1,0,-1"])
    given = [o for o in ("file", "onnx", "npz") if getattr(a, o)]
    if len(given) > 1:
        names = " and ".join("a .nnmip file" if g == "file" else "--" + g for g in given)
        raise NnmipError.at("E0104", f"give the network only once: {names} were given")
    _check_question_options(a)
    point_file = a.point if a.point is not None and _is_file(a.point) else None
    preflight(a, inputs=[a.file, a.onnx, a.npz, a.vnnlib, a.points, point_file],
              outputs={"--json": a.json, "--counterexample": a.counterexample})


def _options(a: argparse.Namespace, *names: str) -> list[str]:
    """The options among ``names`` (attribute names) that the command line gives."""
    return ["--" + n.replace("_", "-") for n in names if getattr(a, n) is not None]


def _refuse(options: list[str], why: str, help_text: str) -> None:
    if options:
        said = " and ".join(options) if len(options) < 3 else ", ".join(options[:-1]) + " and " + options[-1]
        raise NnmipError.at("E0104", f"{said} {'does' if len(options) == 1 else 'do'} not go with {why}",
                            notes=[f"help: {help_text}"])


def _check_question_options(a: argparse.Namespace) -> None:
    """Refuse options that another option makes meaningless, instead of ignoring them (``E0104``)."""
    if a.file:
        _refuse(_options(a, "point", "points", "label_column", "linf", "l1", "l2", "domain", "label", "maximize",
                         "minimize", "threshold", "vnnlib", "counterexample"),
                f"a .nnmip file: its verify statements ask the questions of '{a.file}'",
                "write the question into a verify statement of the file, or ask it of the network alone "
                "(nnmip verify --onnx NET.onnx --point X --linf EPS)")
    elif a.vnnlib:
        _refuse(_options(a, "point", "points", "label_column", "linf", "l1", "l2", "label", "maximize", "minimize",
                         "threshold"),
                "--vnnlib: the property file gives the input set and the property",
                "ask the question either by --vnnlib or by --point/--points and a property option")
    elif a.points:
        _refuse(_options(a, "point", "l1", "l2", "label", "maximize", "minimize", "threshold"),
                "--points: every row is checked for its own label in the --linf ball around it",
                "verify one point with --point, or the rows of a file with --points and --linf")
    if a.point_time_limit is not None and not a.points:
        raise NnmipError.at("E0104", "--point-time-limit is the limit of each point of --points",
                            notes=["help: without --points, --time-limit is the budget of the question"])
    if a.counterexample and not a.vnnlib:
        raise NnmipError.at("E0104", "--counterexample writes the VNN-COMP result file of a --vnnlib question",
                            notes=["help: without --vnnlib the counterexample is printed and is in the --json "
                                   "output"])
    if a.maximize and a.minimize:
        raise NnmipError.at("E0104", "give only one of --maximize and --minimize")
    if not a.file and not a.vnnlib:
        if a.maximize or a.minimize:
            _refuse(_options(a, "label"), "--maximize or --minimize: the property is the bound of c.y",
                    "ask for a class with --label, or for a bound with --maximize/--minimize")
        elif a.threshold is not None:
            raise NnmipError.at("E0104", "--threshold needs --maximize or --minimize",
                                notes=["help: --maximize C --threshold T proves c.y < T; --minimize C --threshold T "
                                       "proves c.y > T"])
    if not a.points:
        _refuse(_options(a, "label_column"), "a question without --points",
                "--label-column names the label column of the --points file")


def _progress(enabled: bool) -> Any:
    """Progress of a batch on stderr: tasks done / running / failed and the robust points so far."""
    tty = sys.stderr.isatty()
    state = {"robust": 0, "last": 0.0}

    def cb(st: Any, out: Any) -> None:
        if out.ok and out.value.get("robust"):
            state["robust"] += 1
        if not enabled:
            return
        now = time.perf_counter()
        if not tty and st.finished < st.total and now - state["last"] < 2.0:
            return
        state["last"] = now
        width = 30
        fill = int(width * st.finished / max(st.total, 1))
        line = (f"  [{'#' * fill}{'.' * (width - fill)}] {st.finished}/{st.total}  running {st.running}  "
                f"failed {st.failed}  robust {state['robust']}  {now - st.started:6.1f}s")
        sys.stderr.write(("\r" + line) if tty else (line + "\n"))
        if tty and st.finished == st.total:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return cb


def _summary(r: Any) -> str:
    parts = [f"{r.result}: {r.property}"]
    if r.bound is not None:
        parts.append(f"bound {r.bound:.6g}")
    if r.value is not None:
        parts.append(f"value {r.value:.6g}")
    smooth = r.bounds.get("smooth_units") if isinstance(r.bounds, dict) else None
    if smooth:      # sigmoid / tanh units: bounds and search, no MILP
        units = ", ".join(f"{n} {kind} units" for kind, n in smooth.items())
        parts.append(f"{units} ({r.bounds.get('method', 'symbolic')} bounds, no MILP), {r.seconds:.2f}s")
    else:
        parts.append(f"{r.stable_units}/{r.total_units} units stable, {r.binaries} binaries, {r.seconds:.2f}s")
    return ", ".join(parts)


@command("verify", "certify, falsify or bound a fixed-weight network over an input set")
def cmd_verify(a: argparse.Namespace) -> int:
    from nnmip.drivers.deadline import Deadline

    _check_args(a)
    deadline = Deadline(a.time_limit)        # the whole run's budget, loading included
    if a.file:
        return _run_file(a, deadline)
    if bool(a.onnx) == bool(a.npz):
        raise NnmipError.at("E0104", "give the network with exactly one of --onnx, --npz, or a .nnmip file",
                            notes=["help: nnmip verify --onnx net.onnx --point x.npy --linf 0.05"])
    if a.points and not a.vnnlib and a.linf is None:
        raise NnmipError.at("E0104", "--points needs --linf EPS")
    if a.points and not a.vnnlib:     # the worker processes start while the network and the points load
        with make_executor_from_args(a) as ex:
            return _verify_loaded(a, deadline, ex)
    return _verify_loaded(a, deadline, None)


def load_raw_network(kind: str, path: Any) -> Any:
    """The network of an ONNX or npz file on raw inputs, its input scaling folded into the first dense layer.

    An npz file holds the network on scaled inputs and declares its input domain in those units (``real[0, 1]``
    after min-max scaling); once the scaling is folded in, the network takes raw inputs, so that domain is mapped
    to raw units too (``lo * scale + offset``, the ends swapped for a negative scale), with a note saying so.
    """
    from nnmip.drivers.verify import fold_scaler, load_file
    from nnmip.ir.network import Network
    from nnmip.ir.ops import Input

    net, scaler = load_file(kind, path)
    folded = fold_scaler(net, scaler)     # the declared domain mapped to raw units with it
    if scaler is None or kind == "onnx":     # an ONNX graph takes raw inputs and declares no domain
        return folded
    op = folded.op(folded.input)
    assert isinstance(op, Input)
    note = (f"'{Path(path).name}' scales its input, (x - offset) / scale; the scaling is folded into the first "
            "layer, so --point, --points, --domain and counterexamples are raw (unscaled) inputs")
    if op.lo is not None and op.hi is not None:
        from nnmip.cli.common import box_text

        note += f"; the declared input domain (in scaled units) is, in raw units, {box_text(op.lo, op.hi)}"
    g = folded.graph.copy()
    g.graph["notes"] = [*folded.notes, note]
    return Network(g, folded.name)


def _verify_loaded(a: argparse.Namespace, deadline: Any, ex: Any) -> int:
    from nnmip.check import SolverSpec
    from nnmip.drivers.task import solve_options
    from nnmip.drivers.verify import UNKNOWN

    net = load_raw_network("onnx" if a.onnx else "npz", a.onnx or a.npz)
    for note in net.notes:       # e.g. a final softmax cut off at import (also in the JSON's "notes")
        print(f"note: {note}", file=sys.stderr)
    solver = a.solver or "highs"
    opts = solve_options(SolverSpec(solver), gap=a.gap, threads=a.threads, verbose=a.verbose)
    opts.time_limit = None
    common = {"solver": solver, "deadline": deadline, "tighten": a.tighten or "auto", "options": opts,
              "bab": a.bab, "workers": max(1, a.workers), "method": _method(a)}
    domain = None if a.domain is None else (np.full(net.n_inputs, a.domain[0]), np.full(net.n_inputs, a.domain[1]))
    if domain is not None:     # --domain is the question's input domain: it replaces the declared one
        net = net.with_input_domain(*domain)
    if not a.points:    # one question: the solver's progress on stderr (a batch reports its tasks instead)
        opts.progress = ProgressPrinter(not a.quiet, solver)
    if a.vnnlib:
        return _run_vnnlib(a, net, domain, common)
    if a.points:
        return _run_points(a, net, domain, common, ex)
    if a.point is None:
        raise NnmipError.at("E0104", "give --point (with --linf/--l1/--l2), --points, --vnnlib or a .nnmip file")
    r = _run_point(a, net, _vector(a.point), domain, common)
    say(a, _summary(r))
    if r.counterexample is not None and r.result == "counterexample":
        say(a, "counterexample: " + " ".join(f"{v:.9g}" for v in r.counterexample))
        say(a, "output:         " + " ".join(f"{v:.9g}" for v in r.output))
    if a.json:
        write_json(a.json, r.to_dict())
    return EXIT_UNSOLVED if r.result == UNKNOWN else EXIT_OK


def _method(a: argparse.Namespace) -> dict[str, str]:
    """The formulation choices of ``--relu``, ``--cuts`` and ``--branching`` as a ``verify(..., method=...)`` map."""
    chosen = {"cuts": a.cuts, "branching": a.branching}
    return chosen if a.relu is None else {"relu": a.relu, **chosen}     # unnamed: verify's default


def _sets(a: argparse.Namespace, x0: np.ndarray) -> list[Any]:
    from nnmip.ir import spec as vs

    sets = []
    if a.linf is not None:
        sets.append(vs.linf(x0, a.linf))
    if a.l1 is not None:
        sets.append(vs.l1(x0, a.l1))
    if a.l2 is not None:
        sets.append(vs.l2(x0, a.l2))
    if not sets:
        raise NnmipError.at("E0104", "give a set around the point: --linf EPS, --l1 R or --l2 R")
    return sets


def _run_point(a: argparse.Namespace, net: Any, x0: np.ndarray, domain: Any, common: dict[str, Any]) -> Any:
    from nnmip.drivers.verify import verify
    from nnmip.ir import spec as vs

    if x0.size != net.n_inputs:
        where = Span(file=a.point) if a.point and _is_file(a.point) else Span()
        raise NnmipError.at("E0412", f"--point has {x0.size} entries but the network has {net.n_inputs} inputs",
                            where, notes=["help: give one value per network input"])
    if a.maximize or a.minimize:
        kind = "maximize" if a.maximize else "minimize"
        coef = _vector(a.maximize or a.minimize, "--maximize" if a.maximize else "--minimize")
        prop = getattr(vs, kind)(coef, threshold=a.threshold)
    else:
        if a.label is not None and not 0 <= a.label < max(net.n_outputs, 2):
            top = max(net.n_outputs, 2) - 1
            raise NnmipError.at("E0414", f"--label: class {str(a.label)[:20]} does not exist: the network has "
                                f"{net.n_outputs} outputs", notes=[f"help: classes are 0 to {top}"])
        label = a.label if a.label is not None else int(net.predict(x0[None, :])[0])
        prop = vs.classified(label)
    try:
        with common["options"].progress:
            return verify(net, _sets(a, x0), prop, domain=domain, **common)
    except NnmipError as exc:
        if exc.diagnostics and exc.diagnostics[0].code in ("E0410", "E0133") and not exc.diagnostics[0].span.known:
            d = exc.diagnostics[0]
            exc.diagnostics = (replace(d, notes=("note: the input set is the ball around --point (with --linf, "
                                                 "--l1 or --l2) within the input domain (--domain)", *d.notes)),
                               *exc.diagnostics[1:])
        raise


def _run_points(a: argparse.Namespace, net: Any, domain: Any, common: dict[str, Any], ex: Any) -> int:
    from nnmip.drivers.verify import load_points, robust_accuracy

    if a.linf is None:
        raise NnmipError.at("E0104", "--points needs --linf EPS")
    col = None if a.label_column == "none" else -1 if a.label_column is None else int(a.label_column)
    X, y = load_points(a.points, label_column=col, label_option="--label-column")
    if X.shape[1] != net.n_inputs:
        raise NnmipError.at("E0412", f"'{a.points}' has {X.shape[1]} features but the network has "
                            f"{net.n_inputs} inputs", Span(file=a.points), notes=["help: check --label-column"])
    n_classes = max(2, net.n_outputs)
    if y is not None and y.size and (y.min() < 0 or y.max() >= n_classes):
        i = int(np.argmax((y < 0) | (y >= n_classes)))
        raise NnmipError.at("E0414", f"label {int(y[i])} in data row {i + 1} of '{a.points}' is not a class of the "
                            f"network (0..{n_classes - 1})", notes=["help: check --label-column"])
    t0 = time.perf_counter()
    if not a.quiet:
        print(f"verifying {X.shape[0]} points, linf {a.linf:g}, on {ex.describe()}", file=sys.stderr)
    # the points run on workers (perhaps other machines): each gets what is left of the run's --time-limit when
    # it starts, at most --point-time-limit
    per_point = {**common, "time_limit": a.point_time_limit}
    acc, rows = robust_accuracy(net, X, y, a.linf, domain=domain, progress=_progress(not a.quiet), executor=ex,
                                **per_point)
    clean = float(np.mean(net.predict(X) == (y if y is not None else net.predict(X))))
    unknown = sum(1 for r in rows if r.get("result") == "unknown")
    errors = [r for r in rows if r.get("result") == "error"]
    skipped = sum(1 for r in rows if r.get("result") == "interrupted")
    say(a, f"robust accuracy {acc:.4f} ({sum(r['robust'] for r in rows)}/{len(rows)}), clean accuracy {clean:.4f}, "
         f"{unknown} unknown, {len(errors)} errors, {time.perf_counter() - t0:.1f}s"
         + (f"; interrupted: {skipped} points not run" if STOP.is_set() else ""))
    for r in errors:
        print(f"error[{r['error']['code']}]: point {r['index']}: {r['error']['message']}", file=sys.stderr)
    if a.json:
        status = {"status": "interrupted", "not_run": skipped} if STOP.is_set() else {}
        write_json(a.json, {**status, "robust_accuracy": acc, "clean_accuracy": clean, "eps": a.linf,
                            "points": len(rows), "unknown": unknown, "errors": len(errors),
                            "seconds": round(time.perf_counter() - t0, 3), "results": rows})
    return EXIT_UNSOLVED if unknown or errors or skipped else EXIT_OK


def _run_vnnlib(a: argparse.Namespace, net: Any, domain: Any, common: dict[str, Any]) -> int:
    from nnmip.drivers.verify import verify_vnnlib
    from nnmip.io.vnnlib import format_counterexample, parse_vnnlib

    vp = parse_vnnlib(a.vnnlib)
    if vp.empty and not a.quiet:
        from nnmip.drivers.verify import vacuous_note

        print(f"warning: {vacuous_note(vp)}", file=sys.stderr)
    with common["options"].progress:
        r = verify_vnnlib(net, vp, domain=domain, **common)
    say(a, r.vnn_answer)
    if not a.quiet:
        print(_summary(r), file=sys.stderr)
    writes: list[Callable[[], object]] = []
    if a.counterexample:
        text = format_counterexample(r.counterexample, r.output) if r.result == "counterexample" \
            else r.vnn_answer + "\n"
        from nnmip.io.safe import write_text

        if a.counterexample == "-":
            writes.append(lambda: sys.stdout.write(text))
        else:
            writes.append(lambda: write_text(a.counterexample, text, "--counterexample"))
    if a.json:
        writes.append(lambda: write_json(a.json, dict(r.to_dict(), answer=r.vnn_answer)))
    write_each(writes)
    return EXIT_UNSOLVED if r.vnn_answer in ("unknown", "timeout") else EXIT_OK


def _run_file(a: argparse.Namespace, deadline: Any) -> int:
    from nnmip.cli.common import preflight
    from nnmip.drivers.task import load_program, solve_options
    from nnmip.drivers.verify import UNKNOWN, run_verify_spec

    cp = load_program(a.file)
    preflight(a, outputs={"--json": a.json, "--counterexample": a.counterexample})
    if not cp.verify_specs:
        raise NnmipError.at("E0181", f"'{a.file}' has no verify statement",
                            notes=["help: add verify <network> { input x in linf(...); property = ... }"])
    from nnmip.drivers.deadline import Deadline

    opts = solve_options(cp.solver, gap=a.gap, threads=a.threads, verbose=a.verbose or None)
    opts.time_limit = None
    if a.time_limit is None and cp.solver.time_limit is not None:
        deadline = Deadline.of(cp.solver.time_limit, deadline)
    results = []
    worst = EXIT_OK
    for spec in cp.verify_specs:
        try:
            r = run_verify_spec(cp, spec, solver=a.solver, options=opts, tighten=a.tighten, deadline=deadline,
                                method=_method(a), bab=a.bab, workers=max(1, a.workers))
        except NnmipError as exc:   # a model or data file named by the statement: locate the error there
            from nnmip.cli.common import located

            raise located(exc, spec.span, cp.program.source) from None
        say(a, f"{spec.name} (line {spec.span.line}): {_summary(r)}")
        if r.result == "counterexample" and r.counterexample is not None:
            say(a, "  counterexample: " + " ".join(f"{v:.9g}" for v in r.counterexample))
        results.append(dict(r.to_dict(), name=spec.name, line=spec.span.line))
        if r.result == UNKNOWN:
            worst = EXIT_UNSOLVED
    if a.json:
        write_json(a.json, {"file": a.file, "results": results})
    return worst


cmd_verify.configure = _configure  # type: ignore[attr-defined]
