"""Every question of a program as a solver-neutral model, for ``nnmip compile`` and LP/MPS export.

A *question* is one ``train`` statement (its exact training MILP, robust and pruning terms included) or one
failure case of one ``verify`` statement.  The models are the ones nnmip itself solves, so a solver that reads
the written file reaches the same optimum.

Verification models
-------------------
A verification case is exported as the MILP that maximises its *score* ``s = min_r -(G_r . y + h_r)`` over the
input set (see :func:`nnmip.formulations.verification.with_case`), with big-M constants from the same proven,
safety-widened bounds that ``verify`` uses:

* ``classified``, ``output_box`` and thresholded ``maximize``/``minimize``: the property fails on the case exactly
  when the optimum is ``>= 0`` (``> 0`` for strict rows, e.g. ``y_j > y_c`` for ``j > c``); an optimum ``< 0``
  certifies the case.
* ``maximize c.y``: the optimum is ``max c.y + offset`` over the set; ``minimize c.y``: the optimum is
  ``-(min c.y + offset)``.

File names
----------
One model is written to the given name.  Several are numbered in file order: question ``i`` goes to
``<stem>.q<i><ext>`` and, when its property has several failure cases, case ``k`` to ``<stem>.q<i>.c<k><ext>``
(``v.mps`` -> ``v.q0.mps``, ``v.q1.c0.mps``, ...; ``<ext>`` keeps ``.gz``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nnmip.errors import NO_SPAN, FormulationError, Span
from nnmip.ir.network import Network
from nnmip.ir.spec import InputSet, Property, Region
from nnmip.model import MatrixModel

FloatArray = npt.NDArray[np.float64]


@dataclass
class Question:
    """One model to write: which statement it comes from, which case, and the model itself."""

    index: int                  # position of the statement among the program's questions
    kind: str                   # "train" or "verify"
    title: str                  # e.g. "train bdnn on bcw" or "verify clf"
    model: MatrixModel
    case: int | None = None     # failure case of a verification property with several
    case_label: str = ""
    n_cases: int = 1
    span: Span = NO_SPAN
    notes: tuple[str, ...] = ()  # what a reader of the file must know (printed by ``nnmip compile``)

    def describe(self) -> str:
        where = f" (line {self.span.line})" if self.span.known else ""
        case = f", case {self.case}: {self.case_label}" if self.n_cases > 1 else ""
        return f"{self.title}{where}{case}"


def verification_models(net: Network, sets: Region | InputSet | Sequence[InputSet], prop: Property, *,
                        domain: tuple[npt.ArrayLike, npt.ArrayLike] | None = None, tighten: str = "auto",
                        solver: str = "highs", time_limit: float | None = None
                        ) -> list[tuple[str, MatrixModel]]:
    """One MILP per failure case of ``prop`` over ``sets``: ``(case label, model maximising the case score)``.

    The bounds are those :func:`nnmip.drivers.verify.verify` proves (``tighten`` as there; ``solver`` runs the
    bound LPs); see the module docs for how to read the optimum.
    """
    from nnmip.drivers.verify import as_region, auto_tighten
    from nnmip.formulations.verification import build_fixed_model, with_case
    from nnmip.passes.bounds import tighten_bounds

    region = as_region(net, sets, domain)
    if net.trainable:
        trainable = [n for n in net.dense_nodes() if net.op(n).trainable]  # type: ignore[attr-defined]
        raise FormulationError.at("E0421", f"layer '{trainable[0]}' of '{net.name}' has weights that are not fixed",
                                  net.op(trainable[0]).span,
                                  ["help: verification needs fixed weights: load(...) them, import an ONNX model, "
                                   "or train the network first"])
    lo, hi = region.box(net.n_inputs)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise FormulationError.at("E0413", "the input region is unbounded", region.span,
                                  ["help: give the input a domain or a bounded set (box, linf, ...)"])
    cases = prop.cases(net.n_outputs)
    if tighten == "auto":
        tighten = auto_tighten(net, solver)
    rep = tighten_bounds(net, region, method=tighten, solver=solver, time_limit=time_limit)
    fm = build_fixed_model(net, region, rep.bounds)
    return [(cs.label, with_case(fm, cs)) for cs in cases]


def _statements(cp: Any) -> list[tuple[str, Any]]:
    """``("train" | "verify", statement)`` of every question of a checked program, in file order."""
    stmts: list[tuple[tuple[int, int], str, Any]] = [((t.span.line, t.span.column), "train", t) for t in cp.tasks]
    stmts += [((s.span.line, s.span.column), "verify", s) for s in cp.verify_specs]
    stmts.sort(key=lambda t: t[0])
    return [(kind, st) for _, kind, st in stmts]


def program_questions(cp: Any, *, emit: str | None = None, relax: bool | None = None,
                      solver: str = "highs") -> list[Question]:
    """Every question of a checked program, in file order.

    ``emit``/``relax`` override the training tasks' own settings (the command line's ``--emit``/``--relax``).
    """
    from nnmip.check.training_ext import prune_config
    from nnmip.drivers.task import task_dataset
    from nnmip.drivers.verify import resolve_verify_spec
    from nnmip.errors import NnmipError
    from nnmip.formulations.training import build_training_model

    stmts = _statements(cp)
    out: list[Question] = []
    for i, (kind, st) in enumerate(stmts):
        if kind == "train":
            from nnmip.check.sparse_spec import is_gradient, no_training_model

            if is_gradient(st.strategy.kind):
                raise no_training_model(st, "compile", cp.program.source)
            ds = task_dataset(cp, st)
            net = cp.networks[st.network]
            mode = emit if emit is not None else getattr(st, "emit", "milp")
            relaxed = relax if relax is not None else bool(getattr(st, "relax", False))
            try:
                tm = build_training_model(net, ds.X(ds.train), ds.y[ds.train], ds.n_classes, st.loss.kind,
                                          st.loss.margin, st.eps, st.l1, robust=st.robust,
                                          prune=prune_config(st), emit=mode)
            except NnmipError as exc:
                raise exc.with_source(cp.program.source) from None
            model = tm.model.relaxed() if relaxed else tm.model
            out.append(Question(i, "train", f"train {st.network} on {st.data}", model, span=st.span,
                                notes=emission_notes(tm, mode)))
            continue
        vp = resolve_verify_spec(cp, st)
        try:
            models = verification_models(vp.net, vp.sets, vp.prop, domain=vp.domain, tighten=vp.tighten,
                                         solver=solver)
        except NnmipError as exc:
            raise exc.with_source(cp.program.source) from None
        for k, (label, model) in enumerate(models):
            out.append(Question(i, "verify", f"verify {st.name}", model, case=k, case_label=label,
                                n_cases=len(models), span=st.span))
    return out


def emission_notes(tm: Any, emit: str) -> tuple[str, ...]:
    """What a written training model does not say by itself about pruning's squared-norm term.

    The tangent emissions (``milp`` and ``perspective-cuts``) are refined by a cut loop while ``nnmip solve`` runs;
    a file holds the starting tangents only, an outer approximation.  A perspective emission of a task without the
    term changes nothing.
    """
    reg = tm.extension.reg if tm.extension is not None else None
    if reg is None:
        if emit != "milp":
            return (f"warning: --emit {emit} changes nothing here: the task has no squared-norm term to reformulate "
                    "or cut (it needs pruning groups with lambda * alpha > 0)",)
        return ()
    if reg.cuts:
        return ("note: the squared-norm term is written with its starting tangents only; nnmip solve adds cuts in a "
                "loop, so this file is an outer approximation whose optimum bounds the training objective from "
                "below",)
    return ()


def _split_ext(path: Path) -> tuple[str, str]:
    name = path.name
    low = name.lower()
    for ext in (".lp.gz", ".mps.gz", ".lp", ".mps"):
        if low.endswith(ext):
            return name[: -len(ext)], name[-len(ext):]
    return path.stem, path.suffix


def question_paths(out: str | Path, questions: Sequence[Question]) -> list[Path]:
    """The file of each question (see the module docs): ``out`` itself when there is only one."""
    return slot_paths(out, [(q.index, q.case, q.n_cases) for q in questions])


def slot_paths(out: str | Path, slots: Sequence[tuple[int, int | None, int]]) -> list[Path]:
    """The files of questions given as ``(index, case, number of cases)`` (:func:`question_slots`)."""
    out = Path(out)
    if len(slots) == 1:
        return [out]
    stem, ext = _split_ext(out)
    return [out.with_name(f"{stem}.q{index}" + (f".c{case}" if n_cases > 1 else "") + ext)
            for index, case, n_cases in slots]


def question_slots(cp: Any) -> list[tuple[int, int | None, int]]:
    """``(index, case, number of cases)`` of every question :func:`program_questions` will build, in the same
    order, without building anything: what the file names of the models depend on, so that ``nnmip compile`` can
    check every output path before the bound tightening and the model building, which can take long.
    """
    from nnmip.drivers.verify import resolve_verify_spec
    from nnmip.errors import NnmipError

    stmts = _statements(cp)
    slots: list[tuple[int, int | None, int]] = []
    for i, (kind, st) in enumerate(stmts):
        if kind == "train":
            slots.append((i, None, 1))
            continue
        try:
            vp = resolve_verify_spec(cp, st)
            n = len(vp.prop.cases(vp.net.n_outputs))
        except NnmipError as exc:
            raise exc.with_source(cp.program.source) from None
        slots += [(i, k, n) for k in range(n)]
    return slots


__all__ = ["Question", "emission_notes", "program_questions", "question_paths", "question_slots", "slot_paths",
           "verification_models"]
