"""``nnmip compress``: remove units that are stable over an input domain (see :mod:`nnmip.drivers.compress`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from nnmip.cli.common import EXIT_OK, EXIT_UNSOLVED, command, say, write_each, write_json
from nnmip.drivers.compress import compress, prove_equivalence, sampled_difference
from nnmip.errors import NnmipError
from nnmip.ir.network import Network


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", help="a .nnmip file whose network has fixed weights")
    p.add_argument("--network", metavar="NAME", help="the network of the .nnmip file (default: that of its compress "
                                                           "statement, else the first)")
    p.add_argument("--onnx", metavar="M.onnx", help="the network as an ONNX file")
    p.add_argument("--npz", metavar="W.npz", help="the network as an nnmip weights file")
    p.add_argument("--domain", nargs=2, type=float, metavar=("LO", "HI"),
                   help="input box in the model's input units (default: the declared input domain)")
    p.add_argument("--method", choices=("interval", "symbolic", "lp", "lp-cuts", "milp"), default=None,
                   help="how stability is proven (default milp: interval, symbolic, LP, then a MILP per unit)")
    p.add_argument("-o", "--output", action="append", metavar="OUT",
                   help="write the smaller network: .onnx or .npz (may be repeated); required unless the file's "
                        "compress statement names its outputs")
    p.add_argument("--samples", type=int, default=None, help="random inputs for the equivalence check (10000)")
    p.add_argument("--prove", action="store_true", help="prove max |f - g| = 0 by MILP (small networks)")
    p.add_argument("--solver", default="highs")
    p.add_argument("--time-limit", type=float, metavar="T")
    p.add_argument("--json", metavar="OUT", help="write the report as JSON ('-' for stdout)")


def _load(a: argparse.Namespace) -> tuple[Network, Any]:
    if a.onnx:
        from nnmip.io.onnx import import_onnx

        return import_onnx(a.onnx)
    if a.npz:
        from nnmip.io.weights import load_npz

        return load_npz(a.npz)
    if a.file:
        from nnmip.drivers.task import load_program

        cp = load_program(a.file)
        if not cp.networks:
            raise NnmipError.at("E0181", f"'{a.file}' defines no network")
        name = a.network or next(iter(cp.networks))
        if name not in cp.networks:
            raise NnmipError.at("E0102", f"'{a.file}' has no network '{name}'",
                                notes=[f"help: it defines {', '.join(cp.networks)}"])
        return cp.networks[name], None
    raise NnmipError.at("E0104", "give the network: --onnx, --npz or a .nnmip file")


@command("compress", "remove units that are stable over an input domain; the output computes the same function")
def cmd_compress(a: argparse.Namespace) -> int:
    from nnmip.cli.common import check_domain, check_number, preflight

    _from_statement(a)
    check_number("--samples", a.samples, upper=10**8, integer=True)
    check_number("--time-limit", a.time_limit, positive=True)
    check_domain(a.domain)
    for out in a.output:
        if not out.lower().endswith((".onnx", ".npz")):
            raise NnmipError.at("E0601", f"-o: unknown output format '{out}'", notes=["help: use .onnx or .npz"])
    if sum(1 for v in (a.file, a.onnx, a.npz) if v) > 1:
        raise NnmipError.at("E0104", "give the network only once: --onnx, --npz or a .nnmip file")
    from nnmip.backends import get_backend

    get_backend(a.solver)
    preflight(a, inputs=[a.file, a.onnx, a.npz], outputs={"-o": a.output, "--json": a.json})
    net, scaler = _load(a)
    from nnmip.io.files import check_memory

    check_memory(8.0 * a.samples * (net.n_inputs + sum(net.dim(m) for m in net.nodes)), f"--samples {a.samples}")
    n = net.n_inputs
    lo = hi = None
    if a.domain is not None:
        lo, hi = np.full(n, a.domain[0]), np.full(n, a.domain[1])
        if scaler is not None:        # the domain is given on raw inputs; the network sees scaled ones
            lo, hi = scaler.transform(lo[None, :])[0], scaler.transform(hi[None, :])[0]
    res = compress(net, lo, hi, method=a.method, solver=a.solver, time_limit=a.time_limit)
    op_in = net.op(net.input)
    lo_b = lo if lo is not None else op_in.lo  # type: ignore[attr-defined]
    hi_b = hi if hi is not None else op_in.hi  # type: ignore[attr-defined]
    res.samples = a.samples
    res.max_sampled_diff = sampled_difference(net, res.network, lo_b, hi_b, a.samples)
    if a.prove:
        res.proof = prove_equivalence(net, res.network, lo_b, hi_b, solver=a.solver, time_limit=a.time_limit)
    say(a, f"units {res.units_before} -> {res.units_after}, parameters {res.params_before} -> {res.params_after}, "
         f"folded layers {len(res.folded_layers)}; max |f - g| on {a.samples} samples {res.max_sampled_diff:.3g}"
         + ("" if res.proof is None else f"; proven max |f - g| <= {res.proof['bound']:.3g}"))
    written: list[str] = []

    def write_network(out: str) -> None:
        if out.lower().endswith(".onnx"):
            from nnmip.io.onnx import export_onnx

            export_onnx(res.network, out, scaler)
        else:
            from nnmip.io.weights import save_npz

            save_npz(res.network, out, scaler)
        written.append(out)

    writes: list[Callable[[], object]] = [lambda out=out: write_network(out) for out in a.output]
    if a.json:
        writes.append(lambda: write_json(a.json, res.to_dict()))
    try:
        write_each(writes)
    finally:
        for out in written:
            print(f"wrote {out}", file=sys.stderr)
    ok = res.max_sampled_diff is None or res.max_sampled_diff <= 1e-8
    ok = ok and (res.proof is None or res.proof["bound"] <= 1e-6)
    return EXIT_OK if ok else EXIT_UNSOLVED


def _from_statement(a: argparse.Namespace) -> None:
    """Fill the options the command line leaves open from the file's ``compress`` statement (if any)."""
    if a.file and not (a.onnx or a.npz):
        from pathlib import Path

        from nnmip.drivers.task import load_program

        cp = load_program(a.file)
        specs = [c for c in cp.compress_specs if a.network is None or c.network == a.network]
        if specs:
            c = specs[0]
            a.network = a.network or c.network
            a.domain = a.domain if a.domain is not None else (list(c.domain) if c.domain is not None else None)
            a.method = a.method or c.method
            a.output = a.output or [str(Path(cp.base_dir) / o) for o in c.outputs] or None
            a.samples = a.samples if a.samples is not None else c.samples
            a.time_limit = a.time_limit if a.time_limit is not None else c.time_limit
            a.prove = a.prove or c.prove
    a.method = a.method or "milp"
    a.samples = 10_000 if a.samples is None else a.samples
    if not a.output:
        raise NnmipError.at("E0104", "no output: give -o OUT (.onnx or .npz) or output = \"small.onnx\" in the "
                            "file's compress statement")


cmd_compress.configure = _configure  # type: ignore[attr-defined]
