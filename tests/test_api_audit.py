"""Every public function of ``nnmip`` (the names of ``nnmip.__all__``), every parameter, every kind of bad value.

For each function a valid call is written once; the audit replaces one argument at a time by a value of the wrong
type, NaN, an infinity, a negative number, zero, an empty container, a huge number or ``None``.  The call must
either work (the value makes sense there) or raise an :class:`nnmip.NnmipError` with a code ``E####`` and a
``help:`` line; a ``ParameterError`` names the argument.  Nothing else may escape: no ``TypeError``,
``KeyError``, ``AttributeError``, bare ``ValueError``, ``MemoryError`` or ``OverflowError``.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nnmip
from nnmip.errors import NnmipError, ParameterError

BAD: dict[str, object] = {
    "str": "x", "object": object(), "nan": math.nan, "inf": math.inf, "-inf": -math.inf, "neg": -1, "negf": -0.5,
    "zero": 0, "empty": [], "huge": 1e300, "hugeint": 10**30, "none": None, "bool": True, "dict": {},
}


def _net() -> nnmip.Network:
    nb = nnmip.NetworkBuilder("f")
    x = nb.input("x", 2, lo=0.0, hi=1.0)
    h = nb.relu("r", nb.dense("h", x, 2, weights=nnmip.fixed([[1.0, -1.0], [0.5, 0.5]]),
                               bias=nnmip.fixed([0.0, -0.2])))
    nb.dense("y", h, 2, weights=nnmip.fixed([[1.0, 0.0], [-1.0, 1.0]]), bias=nnmip.fixed([0.0, 0.1]))
    return nb.build()


def _bnn() -> nnmip.Network:
    nb = nnmip.NetworkBuilder("b")
    x = nb.input("x", 2)
    h = nb.step("a", nb.dense("h", x, 2, weights=nnmip.real(-1, 1), bias=nnmip.real(-1, 1)))
    nb.step("o", nb.dense("y", h, 2, weights=nnmip.integer(-1, 1), bias=nnmip.real(-1, 1)))
    return nb.build()


X = np.array([[0.1, 0.2], [0.9, 0.8], [0.2, 0.1], [0.8, 0.9]])
Y = np.array([0, 1, 0, 1])
PROG = """\
network n(x: 2) {
    h = dense(x, 2, weights=real[-1, 1], bias=real[-1, 1])
    a = step(h)
    o = dense(a, 2, weights=int[-1, 1], bias=real[-1, 1])
    y = step(o)
}
"""
VNN = "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n" \
      "(assert (>= X_0 0.0))\n(assert (<= X_0 1.0))\n(assert (>= X_1 0.0))\n(assert (<= X_1 1.0))\n" \
      "(assert (>= Y_0 Y_1))\n"


_FOLDER: list[Path] = []


def _folder() -> Path:
    """The valid input files (written once per process; the calls only read them)."""
    if _FOLDER:
        return _FOLDER[0]
    d = Path(tempfile.mkdtemp(prefix="nnmip-audit-"))
    _FOLDER.append(d)
    (d / "p.nnmip").write_text(PROG)
    (d / "t.csv").write_text("0.1,0.2,0\n0.9,0.8,1\n0.2,0.1,0\n0.8,0.9,1\n")
    (d / "t.nnmip").write_text('data d = csv("t.csv", label=-1) split(train=1.0, seed=0)\n' + PROG +
                               "train n on d {\n    loss = hamming\n    time_limit = 5\n}\n")
    (d / "p.vnnlib").write_text(VNN)
    nnmip.save_npz(_net(), d / "w.npz")
    nnmip.export_onnx(_net(), d / "n.onnx")
    return d


def _opts(**kw: Any) -> nnmip.SolveOptions:
    return nnmip.SolveOptions(**kw)


def _model() -> nnmip.MatrixModel:
    from nnmip.drivers.compile import program_questions  # noqa: F401  (imported for its side effect: registry)
    from nnmip.model import ModelBuilder

    b = ModelBuilder()
    b.add_cols(1, lb=0.0, ub=1.0)
    return b.build()


# name -> (function, the valid arguments, the arguments to spoil)
Spec = tuple[Callable[..., Any], Callable[[Path], dict[str, Any]], tuple[str, ...]]
SPECS: dict[str, Spec] = {
    "SolveOptions": (nnmip.SolveOptions, lambda d: {"time_limit": 5.0, "mip_gap": 0.01, "threads": 1},
                     ("time_limit", "mip_gap", "threads", "verbose", "stop_objective", "stop_bound",
                      "solver_options", "solve_time_limit", "warm_start", "progress")),
    "NetworkBuilder": (nnmip.NetworkBuilder, lambda d: {"name": "n"}, ("name",)),
    "real": (nnmip.real, lambda d: {"lo": -1.0, "hi": 1.0}, ("lo", "hi")),
    "integer": (nnmip.integer, lambda d: {"lo": -1, "hi": 1}, ("lo", "hi")),
    "fixed": (nnmip.fixed, lambda d: {"values": [1.0, 2.0]}, ("values",)),
    "box": (nnmip.box, lambda d: {"lo": [0, 0], "hi": [1, 1]}, ("lo", "hi")),
    "linf": (nnmip.linf, lambda d: {"center": [0.5, 0.5], "radius": 0.1}, ("center", "radius")),
    "l1": (nnmip.l1, lambda d: {"center": [0.5, 0.5], "radius": 0.1}, ("center", "radius")),
    "l2": (nnmip.l2, lambda d: {"center": [0.5, 0.5], "radius": 0.1}, ("center", "radius")),
    "halfspaces": (nnmip.halfspaces, lambda d: {"A": [[1.0, 1.0]], "b": [1.0]}, ("A", "b")),
    "classified": (nnmip.classified, lambda d: {"label": 0}, ("label",)),
    "maximize": (nnmip.maximize, lambda d: {"coef": [1.0, 0.0], "offset": 0.0, "threshold": 1.0},
                 ("coef", "offset", "threshold")),
    "minimize": (nnmip.minimize, lambda d: {"coef": [1.0, 0.0], "offset": 0.0, "threshold": 1.0},
                 ("coef", "offset", "threshold")),
    "output_box": (nnmip.output_box, lambda d: {"lo": [-10, -10], "hi": [10, 10]}, ("lo", "hi")),
    "parse": (nnmip.parse, lambda d: {"text": PROG, "file": "p.nnmip"}, ("text", "file")),
    "parse_file": (nnmip.parse_file, lambda d: {"path": d / "p.nnmip"}, ("path",)),
    "check": (nnmip.check, lambda d: {"program": nnmip.parse(PROG), "base_dir": d}, ("program", "base_dir")),
    "format_program": (nnmip.format_program, lambda d: {"p": nnmip.parse(PROG)}, ("p",)),
    "load_program": (nnmip.load_program, lambda d: {"path": d / "p.nnmip"}, ("path",)),
    "train_network": (nnmip.train_network,
                      lambda d: {"net": _bnn(), "X": X, "y": Y, "n_classes": 2, "options": _opts(time_limit=5)},
                      ("net", "X", "y", "n_classes", "loss", "margin", "eps", "l1", "solver", "options", "groups",
                       "warm_start", "emit", "relax", "objectives", "stage_tolerance", "margin_cap")),
    "train_split": (nnmip.train_split,
                    lambda d: {"net": _bnn(), "X": X, "y": Y, "n_classes": 2, "time_budget": 5.0},
                    ("X_val", "y_val", "max_splits", "batch", "time_budget", "step_time", "seed", "select",
                     "emit", "objectives", "margin_cap")),
    "train_local_search": (nnmip.train_local_search,
                           lambda d: {"net": _bnn(), "X": X, "y": Y, "n_classes": 2, "time_budget": 5.0,
                                      "rounds": 1},
                           ("init", "rounds", "blocks", "time_budget", "step_time", "seed", "init_splits", "emit")),
    "run_train_task": (nnmip.run_train_task, lambda d: {"cp": nnmip.load_program(d / "t.nnmip")},
                       ("cp", "task", "solver", "options", "emit", "relax")),
    "verify": (nnmip.verify, lambda d: {"net": _net(), "sets": nnmip.linf([0.5, 0.5], 0.05),
                                        "prop": nnmip.classified(0), "time_limit": 10.0},
               ("net", "sets", "prop", "solver", "time_limit", "tighten", "options", "samples", "seed", "method",
                "domain", "on_case", "bab", "workers")),
    "robust_accuracy": (nnmip.robust_accuracy, lambda d: {"net": _net(), "X": X, "y": None, "eps": 0.01,
                                                          "time_limit": 10.0},
                        ("net", "X", "y", "eps", "domain", "solver", "time_limit", "tighten", "progress")),
    "verify_vnnlib": (nnmip.verify_vnnlib, lambda d: {"net": _net(), "vp": nnmip.parse_vnnlib(d / "p.vnnlib"),
                                                      "time_limit": 10.0},
                      ("net", "vp", "solver", "time_limit")),
    "compress": (nnmip.compress, lambda d: {"net": _net(), "time_limit": 10.0},
                 ("net", "lo", "hi", "method", "solver", "time_limit")),
    "propagate_bounds": (nnmip.propagate_bounds,
                         lambda d: {"net": _net(), "region": nnmip.Region((nnmip.box([0, 0], [1, 1]),))},
                         ("net", "region")),
    "tighten_bounds": (nnmip.tighten_bounds,
                       lambda d: {"net": _net(), "region": nnmip.Region((nnmip.box([0, 0], [1, 1]),)),
                                  "time_limit": 10.0},
                       ("net", "region", "method", "bounds", "solver", "time_limit", "method_map")),
    "import_onnx": (nnmip.import_onnx, lambda d: {"path_or_model": d / "n.onnx"},
                    ("path_or_model", "name")),
    "export_onnx": (nnmip.export_onnx, lambda d: {"net": _net(), "path": Path("o.onnx")},
                    ("net", "path", "scaler", "opset")),
    "load_npz": (nnmip.load_npz, lambda d: {"path": d / "w.npz"}, ("path",)),
    "save_npz": (nnmip.save_npz, lambda d: {"net": _net(), "path": Path("o.npz")}, ("net", "path", "scaler", "extra")),
    "parse_vnnlib": (nnmip.parse_vnnlib, lambda d: {"source": d / "p.vnnlib"}, ("source", "text")),
    "BinarizedNetworkClassifier": (
        lambda X, y, **kw: nnmip.BinarizedNetworkClassifier(**kw).fit(X, y),
        lambda d: {"X": X, "y": Y, "hidden": (2,), "time_limit": 5.0, "strategy": "exact"},
        ("X", "y", "hidden", "activation", "weights", "bias", "output_weights", "loss", "margin", "eps", "strategy",
         "strategy_options", "solver", "time_limit", "time_budget", "scale", "seed", "solve_time_limit", "ensemble",
         "objectives", "workers")),
}

CASES = [(f, p, v) for f, (_, _, params) in SPECS.items() for p in params for v in BAD]

# Values a parameter must refuse (an accepted one is a failure too).  Every parameter refuses an arbitrary object
# and NaN, and a dict unless it takes one; the kinds below refuse more.
DICT_OK = {"solver_options", "method", "method_map", "bounds", "strategy_options", "extra", "warm_start", "init"}
NUMBER_PARAMS = {"time_limit", "solve_time_limit", "mip_gap", "time_budget", "step_time", "eps", "l1", "radius",
                 "stage_tolerance", "margin", "margin_cap"}
COUNT_PARAMS = {"threads", "workers", "samples", "rounds", "max_splits", "init_splits", "n_classes", "opset"}
CHOICE_PARAMS = {"loss", "emit", "tighten", "bab", "blocks", "select", "scale", "activation", "strategy", "solver",
                 "method", "init"}
OBJECT_PARAMS = {"net", "cp", "vp", "program", "p", "text", "path", "source", "path_or_model", "region", "sets",
                 "prop", "X"}


def must_refuse(fname: str, param: str) -> set[str]:
    out = {"object", "nan"} | (set() if param in DICT_OK else {"dict"})
    if param in NUMBER_PARAMS:
        out |= {"str", "neg", "negf", "-inf", "empty"}
    if param in COUNT_PARAMS:
        out |= {"str", "neg", "negf", "inf", "-inf", "huge", "empty"}
    if param == "seed":
        out |= {"str", "neg", "negf", "inf", "huge", "hugeint", "empty"}
    if param in CHOICE_PARAMS:
        out |= {"str", "neg", "zero", "huge", "empty", "bool"}
    if param in OBJECT_PARAMS:
        out |= {"str", "neg", "zero", "huge", "hugeint", "empty", "bool", "none"}
        if param == "text":
            out -= {"str"} | ({"none"} if fname == "parse_vnnlib" else set())
        if param == "path" and fname in ("export_onnx", "save_npz"):
            out -= {"str"}   # 'x' is a fine name for a file to write
        if param == "sets":
            out -= {"empty"}   # no set: the whole input domain
        if param == "X":
            out -= {"none"}
    return out


class _Hang(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _Hang


def call(fname: str, param: str, value: str) -> tuple[str, str]:
    """Run one spoiled call: ('ok', '') when it is accepted or refused properly, else ('bad', why)."""
    fn, good, _ = SPECS[fname]
    d = _folder()
    kw = good(d)
    scratch = Path(tempfile.mkdtemp(prefix="nnmip-audit-run-"))
    kw[param] = BAD[value]
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(30)
    cwd = os.getcwd()
    os.chdir(scratch)   # a relative path such as 'x' lands in the case's own folder
    try:
        fn(**kw)
    except _Hang:
        return "bad", "took over 30 s"
    except ParameterError as e:
        if param not in str(e) and not any(param in n for dg in e.diagnostics for n in dg.notes):
            return "bad", f"ParameterError does not name '{param}': {e}"
        return _coded(e)
    except NnmipError as e:
        return _coded(e)
    except Exception as e:  # noqa: BLE001 -- the point of the audit
        return "bad", f"{type(e).__name__}: {e}"
    finally:
        os.chdir(cwd)
        shutil.rmtree(scratch, ignore_errors=True)
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    if value in must_refuse(fname, param):
        return "bad", f"{value} accepted"
    return "ok", ""


def _coded(e: NnmipError) -> tuple[str, str]:
    codes = [dg.code for dg in e.diagnostics] or [e.code]
    if not re.fullmatch(r"E\d{4}", codes[0]) or codes[0] in ("E0000", "E0900"):
        return "bad", f"no code: {codes} {e}"
    notes = [n for dg in e.diagnostics for n in dg.notes]
    if not any(n.startswith("help:") for n in notes):
        return "bad", f"{codes[0]} without a help line: {e}"
    return "ok", ""


@pytest.mark.parametrize(("fname", "param", "value"), CASES, ids=[f"{f}-{p}-{v}" for f, p, v in CASES])
def test_public_argument(fname: str, param: str, value: str) -> None:
    verdict, why = call(fname, param, value)
    assert verdict == "ok", why


if __name__ == "__main__":  # a report of every failure
    import sys
    bad = 0
    only = sys.argv[1:]
    for f, p, v in CASES:
        if only and f not in only:
            continue
        verdict, why = call(f, p, v)
        if verdict != "ok":
            bad += 1
            print(f"{f}.{p}={v}: {why[:160]}", flush=True)
    print(f"{bad} of {len(CASES)} bad")
