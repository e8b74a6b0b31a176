"""Write networks and programs back as canonical ``.nnmip`` source, large arrays in a side ``.npz``.

:func:`network_stmt` lowers a :class:`~nnmip.ir.network.Network` to the AST of a ``network`` statement, which
:func:`nnmip.syntax.format.format_program` prints; :func:`write_network` and :func:`write_program` write files.

Canonical form
--------------
* Nodes in the network's (deterministic) order; every ``dense`` states its weights and its bias (``bias=none``
  when it has none), since the language's defaults are ``real[-1, 1]`` for both.
* A trainable parameter is its domain ``real[lo, hi]`` or ``int[lo, hi]``; a fixed one is a list literal when it
  has at most ``inline`` numbers (nested rows for weights), else ``load("<npz>", "<node>.weight")`` /
  ``load("<npz>", "<node>.bias")`` with the array stored in float64 in the side ``.npz``.
* Numbers are written with ``repr(float)``, so they read back bit for bit.

Hence ``.nnmip -> IR -> .nnmip`` reproduces the text and the arrays exactly once a file is canonical, and
``ONNX -> .nnmip -> ONNX`` gives back the same network (same weights, bit for bit) and the same exported model.

Errors: :class:`~nnmip.io.writers.ExportError` ``E0620`` for a network the language cannot say (an operation
other than dense/step/sign/relu/identity, a parameter domain that differs entry by entry, an input domain
open in some entries); ``E0603`` for an output that is not ``.nnmip``.
"""

from __future__ import annotations

import keyword
import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from nnmip.io.safe import atomic_write, check_writable, write_text
from nnmip.io.writers import ExportError
from nnmip.ir.network import Network
from nnmip.ir.ops import ACTIVATIONS, Dense, Input, ParamDomain
from nnmip.syntax import ast
from nnmip.syntax.format import format_program

__all__ = ["INLINE", "network_stmt", "network_source", "write_network", "write_program", "source_name"]

#: fixed arrays with at most this many numbers are written inline; larger ones go to the side ``.npz``
INLINE = 8
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: words the grammar reads as keywords or that a node name must not shadow
RESERVED = frozenset({"data", "network", "train", "on", "verify", "solve", "with", "robust", "input", "in",
                      "real", "int", "none", "true", "false"})


def _error(message: str, *notes: str) -> ExportError:
    return ExportError.at("E0620", message, notes=list(notes))


def source_name(name: str) -> str:
    """``name`` as a language name: letters, digits and ``_``, not starting with a digit, not a keyword."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", name) or "n"
    if s[0].isdigit():
        s = "n_" + s
    if s in RESERVED or keyword.iskeyword(s):
        s += "_"
    return s


def _num(x: float) -> ast.Num:
    f = float(x)
    if not np.isfinite(f):
        raise _error(f"the value {f} cannot be written in a .nnmip file", "help: give finite values")
    whole = f.is_integer() and abs(f) < 2**53 and not (f == 0.0 and np.signbit(f))   # keep -0.0
    return ast.Num(int(f) if whole else f)


def _list(a: npt.NDArray[np.float64]) -> ast.ListLit:
    if a.ndim == 1:
        return ast.ListLit(tuple(_num(v) for v in a.tolist()))
    return ast.ListLit(tuple(_list(r) for r in a))


def _param(dom: ParamDomain, node: str, what: str, npz: str, arrays: dict[str, np.ndarray],
           inline: int) -> ast.Value:
    if dom.kind == "fixed":
        v = np.asarray(dom.value, dtype=np.float64)
        if not np.isfinite(v).all():
            raise _error(f"the {what} of '{node}' hold non-finite values", "help: give finite values")
        if v.size <= inline:
            return _list(v)
        key = f"{node}.{what}"
        arrays[key] = v
        return ast.Call("load", (ast.Str(npz), ast.Str(key)))
    lo, hi = np.asarray(dom.lo), np.asarray(dom.hi)
    if lo.size and (np.any(lo != lo.flat[0]) or np.any(hi != hi.flat[0])):
        raise _error(f"the {what} domain of '{node}' differs from entry to entry, which a .nnmip file cannot say",
                     "help: give the layer one domain real[lo, hi] or int[lo, hi]")
    lo0 = float(lo.flat[0]) if lo.size else -1.0
    hi0 = float(hi.flat[0]) if hi.size else 1.0
    if dom.kind not in ("real", "int"):
        raise _error(f"the {what} domain of '{node}' has kind '{dom.kind}'")
    return ast.Domain(dom.kind, _num(lo0), _num(hi0))


def network_stmt(net: Network, npz: str = "weights.npz", *, inline: int = INLINE,
                 arrays: dict[str, np.ndarray] | None = None, name: str | None = None) -> ast.NetworkStmt:
    """The ``network`` statement of ``net``; fixed arrays above ``inline`` numbers are put in ``arrays`` under
    the keys that ``load(npz, key)`` names.

    Raises :class:`ExportError` ``E0620`` when the language cannot say the network (see the module docs).
    """
    arrays = arrays if arrays is not None else {}
    names = {n: source_name(n) for n in net.nodes}
    if len(set(names.values())) != len(names):
        dup = next(n for n in names if list(names.values()).count(names[n]) > 1)
        raise _error(f"node name '{dup}' of '{net.name}' collides with another once written as a language name",
                     "help: rename the nodes to letters, digits and '_'")
    params: list[ast.Param] = []
    nodes: list[ast.NodeDef] = []
    for n, op in net.items():
        src = [names[p] for p in net.inputs_of(n)]
        if isinstance(op, Input):
            dom: ast.Domain | ast.Call | None = None
            lo, hi = op.lo, op.hi
            if lo is not None or hi is not None:
                ends = [np.asarray(e, dtype=np.float64) for e in (lo, hi) if e is not None]
                if any(not np.isfinite(e).all() for e in ends):
                    raise _error(f"the domain of input '{n}' is open in some entries, which a .nnmip file cannot "
                                 "say", "help: give finite bounds, or leave the input without a domain")
                uniform = lo is not None and hi is not None and all(np.all(e == e[0]) for e in ends)
                if uniform:
                    dom = ast.Domain("real", _num(lo[0]), _num(hi[0]))
                else:   # entry by entry
                    args: list[ast.Value | ast.KwArg] = []
                    for key, e in (("lo", lo), ("hi", hi)):
                        if e is not None:
                            v = np.asarray(e, dtype=np.float64)
                            if v.size <= inline:
                                args.append(ast.KwArg(key, _list(v)))
                            else:
                                k = f"{names[n]}.{key}"
                                arrays[k] = v
                                args.append(ast.KwArg(key, ast.Call("load", (ast.Str(npz), ast.Str(k)))))
                    dom = ast.Call("box", tuple(args))
            params.append(ast.Param(names[n], op.dim, dom))
        elif isinstance(op, Dense) and (op.weights is None or getattr(op, "sparse", None) is not None):
            raise _error(f"node '{n}' of '{net.name}' is a sparse affine map of {op.n_out} x {op.n_in} (a convolution "
                         "or pooling read from ONNX), which the .nnmip language cannot say",
                         "help: the language has dense layers with full weight matrices, step, sign, relu and "
                         "identity nodes")
        elif isinstance(op, Dense):
            w = _param(op.weights, names[n], "weight", npz, arrays, inline)
            b: ast.Value = ast.Ref("none") if op.bias is None else \
                _param(op.bias, names[n], "bias", npz, arrays, inline)
            call = ast.Call("dense", (ast.Ref(src[0]), ast.Num(op.n_out), ast.KwArg("weights", w),
                                      ast.KwArg("bias", b)))
            nodes.append(ast.NodeDef(names[n], call))
        elif type(op) in ACTIVATIONS.values() and op.kind in ACTIVATIONS:
            nodes.append(ast.NodeDef(names[n], ast.Call(op.kind, (ast.Ref(src[0]),))))
        else:
            notes = ["help: the language has dense, step, sign, relu and identity nodes"]
            if op.smooth:
                notes.append("help: verify the ONNX file as it is: nnmip verify --onnx NET.onnx (with --vnnlib, or "
                             "--point and --linf)")
            raise _error(f"node '{n}' of '{net.name}' is a '{op.kind}' operation, which the .nnmip language cannot "
                         "say", *notes)
    if not params:
        raise _error(f"network '{net.name}' has no input")
    return ast.NetworkStmt(source_name(name or net.name), tuple(params), tuple(nodes))


def network_source(net: Network, npz: str = "weights.npz", *, inline: int = INLINE,
                   name: str | None = None) -> tuple[str, dict[str, np.ndarray]]:
    """Canonical text of ``net`` and the arrays its ``load(npz, ...)`` calls name."""
    arrays: dict[str, np.ndarray] = {}
    stmt = network_stmt(net, npz, inline=inline, arrays=arrays, name=name)
    return format_program(ast.Program((stmt,))), arrays


def _targets(path: str | os.PathLike[str], npz: str | os.PathLike[str] | None) -> tuple[Path, Path]:
    out = Path(path)
    if out.suffix.lower() != ".nnmip":
        raise ExportError.at("E0603", f"refusing to write .nnmip source to '{out}'",
                             notes=["help: give the output a .nnmip name"])
    side = Path(npz) if npz is not None else out.with_suffix(".npz")
    return out, side


def _relative(side: Path, out: Path) -> str:
    try:
        return os.path.relpath(side.resolve(), out.resolve().parent).replace(os.sep, "/")
    except ValueError:  # another drive on Windows
        return str(side.resolve())


def _save(out: Path, text: str, side: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Both files checked first, then written atomically (the side file before the text that loads it)."""
    check_writable(out, source=True)
    if arrays:
        check_writable(side)
        with atomic_write(side) as f:
            np.savez(f, **{k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()})  # type: ignore[arg-type]
    write_text(out, text, source=True)


def write_network(net: Network, path: str | os.PathLike[str], npz: str | os.PathLike[str] | None = None, *,
                  inline: int = INLINE, name: str | None = None, header: str = "") -> tuple[Path, Path | None]:
    """Write ``net`` as a ``.nnmip`` file (and its large arrays to ``npz``, default: the same name with
    ``.npz``); return both paths (the second None when every array is inline).  ``header`` becomes comment lines.
    """
    out, side = _targets(path, npz)
    text, arrays = network_source(net, _relative(side, out), inline=inline, name=name)
    comment = "".join(f"# {line}\n".replace("# \n", "#\n") for line in header.splitlines())
    _save(out, comment + ("\n" if comment else "") + text, side, arrays)
    return out, (side if arrays else None)


def write_program(program: ast.Program, path: str | os.PathLike[str], networks: Mapping[str, Network] | None = None,
                  npz: str | os.PathLike[str] | None = None, *, inline: int = INLINE) -> tuple[Path, Path | None]:
    """Write a whole program (its AST, e.g. ``parse_file(...)`` or one built in Python) as canonical text.

    The ``network`` statements named in ``networks`` are replaced by those networks (a trained network, say), with
    their large arrays in ``npz``; other statements are written as they are (their file paths unchanged).
    """
    out, side = _targets(path, npz)
    ref = _relative(side, out)
    arrays: dict[str, np.ndarray] = {}
    items: list[ast.Stmt] = []
    for s in program.items:
        if isinstance(s, ast.NetworkStmt) and networks and s.name in networks:
            items.append(network_stmt(networks[s.name], ref, inline=inline, arrays=arrays, name=s.name))
        else:
            items.append(s)
    _save(out, format_program(ast.Program(tuple(items))), side, arrays)
    return out, (side if arrays else None)
