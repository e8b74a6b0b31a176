"""Semantic checks: AST -> typed, checked program (or one ``CheckError`` holding every diagnostic).

The checker never stops at the first problem: it collects every diagnostic it can find, then raises once.
Warnings (codes ``W0xxx``) are kept on the checked program and printed by the CLI.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from nnmip.backends import solver_names
from nnmip.errors import CheckError, Diagnostic, Span
from nnmip.io.data import DataSource, Preprocess
from nnmip.ir.builder import DomainSpec, NetworkBuilder
from nnmip.ir.network import Network
from nnmip.ir.ops import Dense, Identity, Input, ReLU, Sign, Step
from nnmip.model import MAX_MAGNITUDE
from nnmip.syntax import ast

from . import training_ext
from .specs import CheckedProgram, DataDecl, LossSpec, SolverSpec, StrategySpec, TrainTask, _describe, _span

LOSSES = ("hamming", "zero_one", "hinge", "min_weight", "max_margin", "cross_entropy", "squared_error")
MARGIN_LOSSES = ("zero_one", "hinge", "min_weight", "max_margin")
SOLVERS = tuple(solver_names())
#: ``emit`` of a train statement (language name -> the library's mode)
#: settings that are numbers but never enter a model (time budgets, counts): no magnitude limit (E0133)
_NOT_MODEL_NUMBERS = frozenset({"time_limit", "time_budget", "step_time", "solve_time_limit", "gap", "seed",
                                "samples", "lr", "decay"})
EMIT_MODES = {"milp": "milp", "perspective_cuts": "perspective-cuts", "perspective_conic": "perspective-conic"}
ACTIVATION_CALLS = {"step": "step", "sign": "sign", "relu": "relu", "identity": "identity"}
_REQUIRED = object()


class _Checker:
    def __init__(self, program: ast.Program, base_dir: Path) -> None:
        self.p = program
        self.base_dir = base_dir
        self.file = program.file
        self.diags: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []

    # -- helpers ---------------------------------------------------------------------------------------------
    def err(self, code: str, msg: str, span: Span, *notes: str) -> None:
        self.diags.append(Diagnostic(code, msg, span, tuple(notes)))

    def warn(self, code: str, msg: str, span: Span, *notes: str) -> None:
        self.warnings.append(Diagnostic(code, msg, span, tuple(notes), severity="warning"))

    def bind(self, call: ast.Call, params: list[tuple[str, str, Any]]) -> dict[str, Any] | None:
        """Bind a call's arguments to ``(name, type, default)`` params; report misuse; None on error."""
        out: dict[str, Any] = {}
        spans: dict[str, Span] = {}
        ok = True
        names = [p[0] for p in params]
        types = {p[0]: p[1] for p in params}
        seen_kw = False
        pos_i = 0
        sig = f"{call.func}(" + ", ".join(n if d is _REQUIRED else f"{n}=..." for n, _, d in params) + ")"
        for a in call.args:
            if isinstance(a, ast.KwArg):
                seen_kw = True
                if a.key not in types:
                    self.err("E0105", f"'{call.func}' has no argument '{a.key}'", a.span,
                             f"help: '{call.func}' takes {sig}")
                    ok = False
                    continue
                if a.key in spans:
                    self.err("E0106", f"argument '{a.key}' of '{call.func}' is given twice", a.span)
                    ok = False
                    continue
                key, val = a.key, a.value
            else:
                if seen_kw:
                    self.err("E0107", f"positional argument after keyword arguments in '{call.func}'",
                             _span(a), "help: put positional arguments first")
                    ok = False
                    continue
                if pos_i >= len(names):
                    self.err("E0104", f"'{call.func}' takes at most {len(names)} arguments, got more",
                             _span(a), f"help: '{call.func}' takes {sig}")
                    ok = False
                    continue
                key, val = names[pos_i], a
                pos_i += 1
            spans[key] = _span(val)   # given (a value that fails to convert is reported once, below)
            conv = self.convert(val, types[key], call.func, key)
            if conv is None:
                ok = False
                continue
            out[key] = conv
        for n, _, d in params:
            if n not in out and n not in spans:
                if d is _REQUIRED:
                    self.err("E0104", f"'{call.func}' needs argument '{n}'", call.span,
                             f"help: '{call.func}' takes {sig}")
                    ok = False
                else:
                    out[n] = d
        out["__spans__"] = spans
        return out if ok else None

    def convert(self, v: ast.Value, typ: str, func: str, key: str) -> Any:
        where = f"argument '{key}' of '{func}'"
        if typ == "any":
            return v
        if typ in ("num", "int", "posnum", "posint", "nonneg"):
            if not isinstance(v, ast.Num):
                self.err("E0108", f"{where} must be a number, got {_describe(v)}", _span(v))
                return None
            x = v.value
            if not math.isfinite(float(x)):
                self.err("E0108", f"{where} must be finite", v.span)
                return None
            if typ in ("int", "posint") and not (isinstance(x, int) or float(x).is_integer()):
                self.err("E0108", f"{where} must be an integer, got {x}", v.span)
                return None
            if typ in ("posnum", "posint") and float(x) <= 0:
                self.err("E0109", f"{where} must be positive, got {x}", v.span)
                return None
            if typ == "nonneg" and float(x) < 0:
                self.err("E0109", f"{where} must not be negative, got {x}", v.span)
                return None
            if typ in ("num", "posnum", "nonneg") and key not in _NOT_MODEL_NUMBERS \
                    and abs(float(x)) > MAX_MAGNITUDE:
                self.too_large(where, float(x), v.span)
                return None
            if key == "seed" and not 0 <= float(x) < 2**32:
                self.err("E0109", f"{where} must be between 0 and 2**32 - 1, got {x}", v.span,
                         "help: seeds are non-negative integers such as 0, 1 or 42")
                return None
            return int(x) if typ in ("int", "posint") else float(x)
        if typ == "str":
            if not isinstance(v, ast.Str):
                self.err("E0108", f"{where} must be a string, got {_describe(v)}", _span(v),
                         "help: strings use double quotes")
                return None
            return v.value
        if typ == "name":
            if not isinstance(v, ast.Ref):
                self.err("E0108", f"{where} must be a name, got {_describe(v)}", _span(v))
                return None
            return v.name
        if typ == "bool":
            if isinstance(v, ast.Ref) and v.name in ("true", "false"):
                return v.name == "true"
            self.err("E0108", f"{where} must be true or false, got {_describe(v)}", _span(v))
            return None
        raise AssertionError(typ)

    # -- statements --------------------------------------------------------------------------------------------
    def run(self) -> CheckedProgram:
        data: dict[str, DataDecl] = {}
        networks: dict[str, Network] = {}
        tasks: list[TrainTask] = []
        solver: SolverSpec | None = None
        verify: list[ast.VerifyStmt] = []
        compress: list[ast.CompressStmt] = []
        defined: dict[str, Span] = {}
        for s in self.p.items:
            if isinstance(s, (ast.DataStmt, ast.NetworkStmt)):
                if s.name in defined:
                    self.err("E0103", f"'{s.name}' is defined twice", s.span,
                             f"help: the first definition is at line {defined[s.name].line}")
                    continue
                defined[s.name] = s.span
            if isinstance(s, ast.DataStmt):
                d = self.data_stmt(s)
                if d is not None:
                    data[s.name] = d
            elif isinstance(s, ast.NetworkStmt):
                net = self.network_stmt(s)
                if net is not None:
                    networks[s.name] = net
            elif isinstance(s, ast.SolveStmt):
                if solver is not None:
                    self.err("E0103", "more than one 'solve with' statement", s.span,
                             "help: keep one; the command line --solver overrides it")
                    continue
                solver = self.solve_stmt(s)
            elif isinstance(s, ast.VerifyStmt):
                verify.append(s)
            elif isinstance(s, ast.CompressStmt):
                compress.append(s)
        for s in self.p.items:
            if isinstance(s, ast.TrainStmt):
                t = self.train_stmt(s, data, networks, defined)
                if t is not None:
                    tasks.append(t)
        from nnmip.check.verify_stmt import check_verify

        specs = [check_verify(self, s, networks, data, defined) for s in verify]
        from nnmip.check.compress_stmt import check_compress

        cspecs = [check_compress(self, s, networks, defined) for s in compress]
        if not tasks and not verify and not self.diags and not networks:
            self.err("E0180", "the file defines no network and no task", Span(1, 1, 1, 2, self.file),
                     "help: see docs/language.md for a complete example")
        if self.diags:
            raise CheckError(diagnostics=self.diags, source=self.p.source)
        return CheckedProgram(self.p, self.base_dir, data, networks, tasks, solver or SolverSpec(),
                              self.warnings, verify, verify_specs=[sp for sp in specs if sp is not None],
                              compress_specs=[c for c in cspecs if c is not None])

    # data ------------------------------------------------------------------------------------------------------
    def data_stmt(self, s: ast.DataStmt) -> DataDecl | None:
        src_call, rest = s.calls[0], s.calls[1:]
        src: DataSource | None = None
        pre_kw: dict[str, Any] = {}
        scale: str | None = None
        if src_call.func == "csv":
            b = self.bind(src_call, [("path", "str", _REQUIRED), ("delimiter", "str", ","),
                                     ("header", "bool", False), ("label", "int", -1), ("scale", "name", None)])
            if b is not None:
                if len(b["delimiter"]) != 1:
                    self.err("E0109", "argument 'delimiter' of 'csv' must be one character",
                             b["__spans__"]["delimiter"])
                src = DataSource("csv", path=b["path"], delimiter=b["delimiter"], header=b["header"],
                                 label=b["label"], span=src_call.span)
                scale = b["scale"]
                self.check_file(b["path"], b["__spans__"]["path"])
        elif src_call.func == "npz":
            b = self.bind(src_call, [("path", "str", _REQUIRED), ("x", "str", "X"), ("y", "str", "y"),
                                     ("scale", "name", None)])
            if b is not None:
                src = DataSource("npz", path=b["path"], x_key=b["x"], y_key=b["y"], span=src_call.span)
                scale = b["scale"]
                self.check_file(b["path"], b["__spans__"]["path"])
        elif src_call.func == "sklearn":
            b = self.bind(src_call, [("name", "str", _REQUIRED), ("scale", "name", None)])
            if b is not None:
                if b["name"] not in ("iris", "breast_cancer", "wine", "digits"):
                    self.err("E0308", f"unknown scikit-learn dataset '{b['name']}'", b["__spans__"]["name"],
                             "help: choose iris, breast_cancer, wine or digits")
                src = DataSource("sklearn", name=b["name"], span=src_call.span)
                scale = b["scale"]
        else:
            self.err("E0101", f"unknown data source '{src_call.func}'", src_call.span,
                     "help: a data statement starts with csv(...), npz(...) or sklearn(...)")
        for c in rest:
            if c.func == "split":
                b = self.bind(c, [("train", "nonneg", 1.0), ("validation", "nonneg", 0.0), ("test", "nonneg", 0.0),
                                  ("seed", "int", 0)])
                if b is not None:
                    total = b["train"] + b["validation"] + b["test"]
                    if abs(total - 1.0) > 1e-9:
                        self.err("E0306", f"split fractions add up to {total:g}, not 1", c.span,
                                 "help: for example split(train=0.5, validation=0.25, test=0.25)")
                    elif b["train"] <= 0:
                        self.err("E0306", "the train fraction must be positive", c.span)
                    pre_kw.update(train=b["train"], validation=b["validation"], test=b["test"], seed=b["seed"])
            elif c.func == "scale":
                b = self.bind(c, [("kind", "name", _REQUIRED)])
                if b is not None:
                    scale = b["kind"]
            else:
                self.err("E0101", f"unknown data step '{c.func}'", c.span,
                         "help: after the source come split(...) and scale(...)")
        if scale is not None and scale not in ("none", "minmax", "standard"):
            self.err("E0109", f"unknown scaling '{scale}'", src_call.span, "help: choose none, minmax or standard")
            scale = None
        if src is None:
            return None
        pre = Preprocess(scale=scale or "minmax", span=s.span, **pre_kw)
        return DataDecl(s.name, src, pre, s.span)

    def fits(self, estimate: float, what: str, span: Span) -> bool:
        """Whether ``estimate`` bytes fit the memory limit (else an ``E0430`` diagnostic; nothing is allocated)."""
        from nnmip.io.files import human_bytes, memory_limit

        if estimate <= memory_limit():
            return True
        self.err("E0430", f"{what} would need about {human_bytes(estimate)}, more than the limit of "
                 f"{human_bytes(memory_limit())}", span,
                 "help: make it smaller, or raise the limit with the environment variable NNMIP_MEMORY_LIMIT")
        return False

    def resolve(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else self.base_dir / p

    def check_file(self, path: str, span: Span) -> bool:
        from nnmip.io.safe import note_input

        note_input(self.resolve(path))
        if not self.resolve(path).is_file():
            self.err("E0301", f"file '{path}' does not exist", span,
                     f"help: paths are relative to the .nnmip file's folder ({self.base_dir})")
            return False
        return True

    # networks --------------------------------------------------------------------------------------------------
    def network_stmt(self, s: ast.NetworkStmt) -> Network | None:
        nb = NetworkBuilder(s.name)
        n_errors = len(self.diags)
        if not s.params:
            self.err("E0111", f"network '{s.name}' has no input", s.span, "help: write network name(x: 9) { ... }")
        for prm in s.params:
            if prm.dim <= 0:
                self.err("E0120", f"input '{prm.name}' must have a positive width, got {prm.dim}", prm.span)
                continue
            if not self.fits(16.0 * prm.dim, f"input '{prm.name}' of width {prm.dim}", prm.span):
                continue
            lo = hi = None
            if isinstance(prm.domain, ast.Call):
                box = self.input_box(prm)
                if box is None:
                    continue
                lo, hi = box
            elif prm.domain is not None:
                lo, hi = float(prm.domain.lo.value), float(prm.domain.hi.value)
                big = [x for x in (lo, hi) if math.isfinite(x) and abs(x) > MAX_MAGNITUDE]
                if big:
                    self.too_large(f"a bound of the domain of input '{prm.name}'", big[0], prm.domain.span)
                    continue
                if lo > hi:
                    self.err("E0130", f"input domain [{lo:g}, {hi:g}] of '{prm.name}' is empty", prm.domain.span,
                             "help: write the lower bound first")
                    continue
            if prm.name in nb.graph:
                self.err("E0103", f"node '{prm.name}' is defined twice", prm.span)
                continue
            nb.input(prm.name, prm.dim, lo, hi, span=prm.span)
        # nodes defined with an error: uses of them are not reported again
        self.failed_nodes: set[str] = {p.name for p in s.params if p.name not in nb.graph}
        for nd in s.nodes:
            self.node_def(nb, nd)
            if nd.name not in nb.graph:
                self.failed_nodes.add(nd.name)
        if len(self.diags) > n_errors:
            return None
        try:
            return nb.build()
        except CheckError as exc:
            self.diags.extend(d if d.span.known else Diagnostic(d.code, d.message, s.span, d.notes)
                              for d in exc.diagnostics)
            return None

    def input_box(self, prm: ast.Param) -> tuple[Any, Any] | None:
        """``box(lo=V, hi=V)``: a domain entry by entry (a number, a list of ``dim`` numbers, or ``load(...)``)."""
        from nnmip.check.verify_stmt import _array

        c = prm.domain
        assert isinstance(c, ast.Call)
        if c.func != "box":
            self.err("E0108", f"the domain of input '{prm.name}' must be real[lo, hi] or box(lo=..., hi=...)", c.span)
            return None
        b = self.bind(c, [("lo", "any", None), ("hi", "any", None)])
        if b is None:
            return None
        if b["lo"] is None and b["hi"] is None:
            self.err("E0104", "box needs lo or hi", c.span, "help: box(lo=0, hi=[1, 2, 3])")
            return None
        ends = []
        for key in ("lo", "hi"):
            if b[key] is None:
                ends.append(None)
                continue
            v = _array(self, b[key], 1, key)
            if v is None:
                return None
            if v.size not in (1, prm.dim):
                self.err("E0121", f"{key} of the domain of '{prm.name}' has {v.size} entries, expected {prm.dim}",
                         _span(b[key]))
                return None
            ends.append(np.broadcast_to(v, (prm.dim,)).copy())
        lo, hi = ends
        for end in (lo, hi):
            if end is not None and (np.isfinite(end) & (np.abs(end) > MAX_MAGNITUDE)).any():
                self.too_large(f"a bound of the domain of input '{prm.name}'",
                               float(end[np.argmax(np.isfinite(end) & (np.abs(end) > MAX_MAGNITUDE))]), c.span)
                return None
        if lo is not None and hi is not None and np.any(lo > hi):
            i = int(np.argmax(lo > hi))
            self.err("E0130", f"input domain of '{prm.name}' is empty at entry {i}: [{lo[i]:g}, {hi[i]:g}]", c.span,
                     "help: write the lower bounds first")
            return None
        return lo, hi

    def node_def(self, nb: NetworkBuilder, nd: ast.NodeDef) -> None:
        c = nd.call
        if nd.name in nb.graph:
            self.err("E0103", f"node '{nd.name}' is defined twice", nd.span)
            return
        if c.func == "dense":
            b = self.bind(c, [("input", "name", _REQUIRED), ("width", "posint", _REQUIRED),
                              ("weights", "any", None), ("bias", "any", None)])
            if b is None or not self.known_node(nb, b["input"], b["__spans__"]["input"]):
                return
            n_in, width = nb.dim(b["input"]), b["width"]
            if not self.fits(24.0 * width * n_in, f"layer '{nd.name}' ({width} x {n_in} weights)", nd.span):
                return
            w = self.param_domain(b["weights"], (width, n_in), "weights", nd.name) \
                if b["weights"] is not None else DomainSpec("real", -1.0, 1.0)
            if b["bias"] is None:
                bias: DomainSpec | None = DomainSpec("real", -1.0, 1.0)
            elif isinstance(b["bias"], ast.Ref) and b["bias"].name == "none":
                bias = None
            else:
                bias = self.param_domain(b["bias"], (width,), "bias", nd.name)
                if bias is None:
                    return
            if w is None:
                return
            try:
                nb.dense(nd.name, b["input"], width, weights=w, bias=bias, span=nd.span)
            except ValueError as exc:
                self.err("E0120", f"{exc} in layer '{nd.name}'", nd.span)
        elif c.func in ACTIVATION_CALLS:
            b = self.bind(c, [("input", "name", _REQUIRED)])
            if b is None or not self.known_node(nb, b["input"], b["__spans__"]["input"]):
                return
            nb.activation(ACTIVATION_CALLS[c.func], nd.name, b["input"], span=nd.span)
        else:
            self.err("E0101", f"unknown operation '{c.func}'", c.span,
                     "help: a node is dense(...), step(...), sign(...), relu(...) or identity(...)")

    def known_node(self, nb: NetworkBuilder, name: str, span: Span) -> bool:
        if name not in nb.graph and name in getattr(self, "failed_nodes", ()):
            return False
        if name not in nb.graph:
            close = [n for n in nb.graph.nodes if n.lower() == name.lower()]
            hint = (f"help: did you mean '{close[0]}'?",) if close else \
                ("help: a node can only use nodes defined above it",)
            self.err("E0102", f"unknown node '{name}'", span, *hint)
            return False
        return True

    def too_large(self, what: str, x: float, span: Span) -> None:
        """E0133: a number beyond what any solver keeps apart from infinity."""
        self.err("E0133", f"{what} is {x:g}, beyond {MAX_MAGNITUDE:g}, the largest magnitude nnmip gives a solver",
                 span, f"help: keep model numbers within +-{MAX_MAGNITUDE:g}; scale the data instead")

    def param_domain(self, v: ast.Value, shape: tuple[int, ...], what: str, layer: str) -> DomainSpec | None:
        if isinstance(v, ast.Domain):
            lo, hi = float(v.lo.value), float(v.hi.value)
            if not (math.isfinite(lo) and math.isfinite(hi)):
                self.err("E0108", f"{what} domain {v.kind}[{lo:g}, {hi:g}] of '{layer}' must have finite bounds",
                         v.span, "help: a number such as 1e999 overflows to infinity; give finite bounds")
                return None
            if max(abs(lo), abs(hi)) > MAX_MAGNITUDE:
                self.too_large(f"a bound of the {what} domain of '{layer}'", max(abs(lo), abs(hi)), v.span)
                return None
            if lo > hi:
                self.err("E0130", f"{what} domain {v.kind}[{lo:g}, {hi:g}] of '{layer}' is empty", v.span,
                         "help: write the lower bound first")
                return None
            if v.kind == "int":
                lo_i, hi_i = math.ceil(lo), math.floor(hi)
                if lo_i > hi_i:
                    self.err("E0130", f"{what} domain int[{lo:g}, {hi:g}] of '{layer}' holds no integer", v.span)
                    return None
                if lo_i == hi_i == 0:
                    self.warn("W0131", f"{what} of '{layer}' can only be 0", v.span)
                return DomainSpec("int", float(lo_i), float(hi_i), span=v.span)
            return DomainSpec("real", lo, hi, span=v.span)
        if isinstance(v, ast.ListLit):
            arr = _list_values(v)
            if arr is None:
                self.err("E0108", f"{what} of '{layer}' must be a list of numbers", v.span)
                return None
            if arr.size == int(np.prod(shape)) and arr.shape != shape and what == "bias":
                arr = arr.reshape(shape)
            if arr.shape != shape:
                self.err("E0121", f"{what} of '{layer}' have shape {arr.shape}, expected {shape}", v.span,
                         "help: weights are (width, inputs), one row per unit")
                return None
            return DomainSpec("fixed", values=arr, span=v.span)
        if isinstance(v, ast.Call) and v.func == "load":
            b = self.bind(v, [("path", "str", _REQUIRED), ("key", "str", _REQUIRED)])
            if b is None or not self.check_file(b["path"], b["__spans__"]["path"]):
                return None
            try:
                with np.load(self.resolve(b["path"])) as z:
                    if b["key"] not in z.files:
                        self.err("E0161", f"'{b['path']}' has no array '{b['key']}'", b["__spans__"]["key"],
                                 f"help: it holds {', '.join(z.files) or 'nothing'}")
                        return None
                    arr = np.asarray(z[b["key"]], dtype=np.float64)
            except (OSError, ValueError) as exc:
                self.err("E0162", f"'{b['path']}' is not a readable .npz file: {exc}", b["__spans__"]["path"])
                return None
            if arr.shape != shape and arr.size == int(np.prod(shape)) and what == "bias":
                arr = arr.reshape(shape)
            if arr.shape != shape:
                self.err("E0121", f"{what} of '{layer}' loaded from '{b['path']}' have shape {arr.shape}, "
                         f"expected {shape}", v.span, "help: weights are (width, inputs), one row per unit")
                return None
            if not np.isfinite(arr).all():
                self.err("E0303", f"{what} of '{layer}' loaded from '{b['path']}' contain NaN or infinity", v.span)
                return None
            return DomainSpec("fixed", values=arr, span=v.span)
        self.err("E0108", f"{what} of '{layer}' must be real[lo, hi], int[lo, hi], a list or load(...), "
                 f"got {_describe(v)}", _span(v))
        return None

    # solver ------------------------------------------------------------------------------------------------------
    def solve_stmt(self, s: ast.SolveStmt) -> SolverSpec | None:
        call = s.solver if isinstance(s.solver, ast.Call) else ast.Call(s.solver.name, (), span=s.solver.span)
        if call.func not in SOLVERS:
            self.err("E0503", f"unknown solver '{call.func}'", call.span,
                     f"help: choose one of {', '.join(SOLVERS)}")
            return None
        opts: list[tuple[str, Any]] = []
        known = {"time_limit": "posnum", "gap": "nonneg", "threads": "posint", "verbose": "bool"}
        vals: dict[str, Any] = {}
        for a in call.args:
            if not isinstance(a, ast.KwArg):
                self.err("E0107", "solver options are keyword arguments", _span(a),
                         "help: for example highs(time_limit=60, gap=0)")
                continue
            if a.key in known:
                conv = self.convert(a.value, known[a.key], call.func, a.key)
                if conv is not None:
                    vals[a.key] = conv
            else:
                if isinstance(a.value, (ast.Num, ast.Str)):
                    opts.append((a.key, a.value.value))
                elif isinstance(a.value, ast.Ref) and a.value.name in ("true", "false"):
                    opts.append((a.key, a.value.name == "true"))
                else:
                    self.err("E0108", f"solver option '{a.key}' must be a number, string or true/false",
                             a.span)
        return SolverSpec(call.func, vals.get("time_limit"), vals.get("gap"), vals.get("threads"),
                          bool(vals.get("verbose", False)), tuple(opts), s.span)

    # training ----------------------------------------------------------------------------------------------------
    def train_stmt(self, s: ast.TrainStmt, data: dict[str, DataDecl], networks: dict[str, Network],
                   defined: dict[str, Span]) -> TrainTask | None:
        ok = True
        if s.network not in networks:
            if s.network not in defined:
                self.err("E0102", f"unknown network '{s.network}'", s.span)
            elif s.network in data:
                self.err("E0102", f"'{s.network}' is a data set, not a network", s.span,
                         "help: write train <network> on <data>")
            ok = False
        if s.data not in data:
            if s.data not in defined:
                self.err("E0102", f"unknown data '{s.data}'", s.span)
            elif s.data in networks or s.data == s.network:
                self.err("E0102", f"'{s.data}' is a network, not a data set", s.span,
                         "help: write train <network> on <data>")
            ok = False
        loss = LossSpec("hamming", 1.0, s.span)
        eps: float | None = None
        l1 = 0.0
        subset = None
        strategy = StrategySpec()
        emit, relax, time_limit, warm_start = "milp", False, None, None
        seen: set[str] = set()
        for it in s.items:
            if isinstance(it, ast.SetDecl) or it.key in training_ext.KEYS:
                continue  # robust sets, prune, alpha and lambda: see training_ext.interpret below
            if it.key in seen:
                self.err("E0106", f"setting '{it.key}' is given twice", it.span)
                continue
            seen.add(it.key)
            v = it.value
            if it.key == "loss":
                parsed = self.loss(v)
                if parsed is None:
                    ok = False
                else:
                    loss = parsed
            elif it.key == "eps":
                e = self.convert(v, "posnum", "train", "eps")
                ok &= e is not None
                eps = e
            elif it.key == "l1":
                e = self.convert(v, "nonneg", "train", "l1")
                ok &= e is not None
                l1 = e or 0.0
            elif it.key == "subset":
                if isinstance(v, ast.Call) and v.func in ("first", "random"):
                    b = self.bind(v, [("n", "posint", _REQUIRED), ("seed", "int", 0)])
                    if b is None:
                        ok = False
                    else:
                        subset = (v.func, b["n"], b["seed"])
                else:
                    self.err("E0108", "subset must be first(n) or random(n, seed=s)", _span(v))
                    ok = False
            elif it.key == "emit":
                name = v.name if isinstance(v, ast.Ref) else v.value if isinstance(v, ast.Str) else None
                name = None if name is None else str(name).replace("-", "_")
                if name not in EMIT_MODES:
                    self.err("E0108", f"emit must be one of {', '.join(EMIT_MODES)}, got {_describe(v)}", _span(v))
                    ok = False
                else:
                    emit = EMIT_MODES[name]
            elif it.key == "relax":
                r = self.convert(v, "bool", "train", "relax")
                ok &= r is not None
                relax = bool(r)
            elif it.key == "time_limit":
                t = self.convert(v, "posnum", "train", "time_limit")
                ok &= t is not None
                time_limit = t
            elif it.key == "warm_start":
                path = v.value if isinstance(v, ast.Str) else None
                if isinstance(v, ast.Call) and v.func == "npz":
                    b = self.bind(v, [("path", "str", _REQUIRED)])
                    path = None if b is None else b["path"]
                if not isinstance(path, str):
                    self.err("E0108", "warm_start must be npz(\"weights.npz\"), an nnmip weights file", _span(v),
                             "help: write one with nnmip solve --save-weights or nnmip.io.weights.save_npz")
                    ok = False
                elif self.check_file(path, _span(v)):
                    warm_start = self.resolve(path)
                else:
                    ok = False
            elif it.key == "strategy":
                from nnmip.check.strategy_spec import check_strategy

                spec = check_strategy(self, v)
                ok &= spec is not None
                strategy = spec or strategy
            else:
                self.err("E0105", f"unknown training setting '{it.key}'", it.span,
                         "help: settings are loss, eps, l1, subset, strategy, prune, alpha, lambda, emit, relax, "
                         "time_limit, warm_start")
                ok = False
        from nnmip.check import sparse_spec

        gradient = sparse_spec.is_gradient(strategy.kind)
        ext = training_ext.interpret(self, s, networks.get(s.network), gradient=gradient)
        if ext is not None and ok:
            from nnmip.check.strategy_spec import check_combination

            ok &= check_combination(self, strategy, ext.robust, ext.prune)
        if not ok or ext is None:
            return None
        task = TrainTask(s.network, s.data, loss, eps, l1, subset, strategy, s.items, s.span,
                         robust=ext.robust, prune=ext.prune, alpha=ext.alpha, lam=ext.lam, emit=emit, relax=relax,
                         time_limit=time_limit, warm_start=warm_start)
        if gradient:
            return sparse_spec.check_task(self, networks[s.network], task, "loss" in seen)
        if not sparse_spec.loss_fits(self, task):
            return None
        self.check_trainable(networks[s.network], task)
        return task

    def loss(self, v: ast.Value) -> LossSpec | None:
        if isinstance(v, ast.ListLit):   # lexicographic: the loss first, then secondary objectives
            from nnmip.formulations.training import STAGES

            if not v.items:
                self.err("E0150", "an objective list needs at least the loss", _span(v),
                         "help: for example loss = [hamming, max_margin, min_weight]")
                return None
            first = self.loss(v.items[0])
            if first is None:
                return None
            then: list[str] = []
            for it in v.items[1:]:
                if not isinstance(it, ast.Ref) or it.name not in STAGES or it.name in then:
                    self.err("E0156", f"{_describe(it)} is not a secondary objective here", _span(it),
                             f"help: after the loss, list each of {', '.join(STAGES)} at most once")
                    return None
                then.append(it.name)
            if first.kind in ("min_weight", "max_margin") and then:
                self.err("E0156", f"the loss '{first.kind}' has hard margin rows and cannot lead an objective list",
                         _span(v), "help: lead with hamming, zero_one or hinge")
                return None
            return LossSpec(first.kind, first.margin, _span(v), tuple(then))
        if isinstance(v, ast.Ref):
            name, margin = v.name, 1.0
        elif isinstance(v, ast.Call):
            name = v.func
            b = self.bind(v, [("margin", "posnum", 1.0)]) if name in MARGIN_LOSSES else self.bind(v, [])
            if b is None:
                return None
            margin = b.get("margin", 1.0)
        else:
            self.err("E0150", f"loss must be one of {', '.join(LOSSES)}, got {_describe(v)}", _span(v))
            return None
        if name not in LOSSES:
            self.err("E0150", f"unknown loss '{name}'", _span(v), f"help: choose one of {', '.join(LOSSES)}")
            return None
        return LossSpec(name, float(margin), _span(v))

    def check_trainable(self, net: Network, task: TrainTask) -> None:
        """What the training MILP can express: trainable layers only on data or on binary activations."""
        kind: dict[str, str] = {}   # node -> "data" | "binary" | "linear" (depends on trainable weights) | "relu"
        for n, op in net.items():
            src = kind.get(net.inputs_of(n)[0], "data") if net.inputs_of(n) else "data"
            if isinstance(op, Input):
                kind[n] = "data"
            elif isinstance(op, Dense):
                if op.trainable and src in ("linear", "relu"):
                    self.err("E0141", f"layer '{n}' has trainable weights on a continuous input that depends on "
                             "other trainable weights: the product is bilinear", op.span,
                             "help: put step(...) or sign(...) before it, or give it fixed weights")
                kind[n] = "data" if (src == "data" and not op.trainable) else "linear"
                if src == "binary" and not op.trainable:
                    kind[n] = "linear"
            elif isinstance(op, (Step, Sign)):
                kind[n] = "data" if src == "data" else "binary"
            elif isinstance(op, ReLU):
                if src != "data":
                    self.err("E0140", f"relu '{n}' follows trainable weights, which makes training bilinear "
                             "and non-convex", op.span,
                             "help: use step(...) or sign(...) for training, or fixed weights (verification)")
                kind[n] = "data" if src == "data" else "relu"
            elif isinstance(op, Identity):
                kind[n] = src
        out = net.output
        out_op = net.op(out)
        if task.loss.kind == "hamming" and not isinstance(out_op, (Step, Sign)):
            self.err("E0151", f"loss hamming needs a step or sign output, but '{out}' is {out_op.kind}",
                     task.loss.span or task.span,
                     "help: end the network with step(...), or use hinge/zero_one on identity scores")
        if task.loss.kind in MARGIN_LOSSES and isinstance(out_op, (Step, Sign, ReLU)):
            self.err("E0151", f"loss {task.loss.kind} compares output scores, but '{out}' is {out_op.kind}",
                     task.loss.span or task.span,
                     "help: end the network with a dense layer (optionally identity(...)), or use loss = hamming")
        if not net.trainable:
            self.err("E0142", f"network '{net.name}' has no trainable weights", task.span,
                     "help: give a layer a domain such as weights=real[-1, 1]")
        self.trap_warning(net)

    def trap_warning(self, net: Network) -> None:
        """docs/formulations.md §4: 0/1 step inputs, integer weights in {-1,0,1} and an integer bias."""
        for n, op in net.items():
            if not isinstance(op, Dense) or op.weights is None or op.weights.kind != "int":
                continue
            src_op = net.op(net.inputs_of(n)[0])
            if not isinstance(src_op, Step):
                continue
            if float(op.weights.lo.min()) >= -1 and float(op.weights.hi.max()) <= 1 and \
                    (op.bias is None or op.bias.kind in ("int", "fixed")):
                self.warn("W0190", f"layer '{n}' has 0/1 step inputs, weights in {{-1, 0, 1}} and an integer "
                          "bias: the activation margin makes a = 0 impossible, so a unit fed by a single step "
                          "unit can neither copy nor negate it", op.span,
                          "help: use sign(...) activations, a wider weight range, or a continuous bias")


def _list_values(v: ast.ListLit) -> np.ndarray | None:
    def conv(x: Any) -> Any:
        if isinstance(x, ast.Num):
            return float(x.value)
        if isinstance(x, ast.ListLit):
            return [conv(i) for i in x.items]
        raise ValueError
    try:
        arr = np.array(conv(v), dtype=np.float64)
    except ValueError:
        return None
    return arr if np.isfinite(arr).all() else None


def _plain(v: ast.Value) -> Any:
    if isinstance(v, (ast.Num, ast.Str)):
        return v.value
    if isinstance(v, ast.Ref):
        return v.name
    if isinstance(v, ast.ListLit):
        return [_plain(i) for i in v.items]
    return v


def check(program: ast.Program, base_dir: str | Path | None = None) -> CheckedProgram:
    """Check a parsed program; ``base_dir`` resolves relative file paths (default: the file's folder)."""
    from nnmip.errors import ParameterError, check_path

    if not isinstance(program, ast.Program):
        raise ParameterError.of("program", f"must be a parsed program (nnmip.parse(text)), got "
                                f"{type(program).__name__}", "call nnmip.parse(text) or nnmip.parse_file(path) first",
                                code="E0108")
    if base_dir is not None:
        check_path("base_dir", base_dir)
    if base_dir is None:
        base_dir = Path(program.file).parent if program.file and not program.file.startswith("<") else Path(".")
    return _Checker(program, Path(base_dir)).run()
