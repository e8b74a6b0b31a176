"""``nnmip compress``: remove units that are stable over an input domain (see :mod:`nnmip.drivers.compress`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from nnmip.cli.common import EXIT_OK, EXIT_UNSOLVED, box_text, command, say, write_each, write_json
from nnmip.drivers.compress import SAMPLE_CHUNK, compress, prove_equivalence, sampled_points
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
    p.add_argument("--samples", type=int, default=None,
                   help="random inputs for the equivalence check, 1 to 1e8 (10000)")
    p.add_argument("--prove", action="store_true", help="prove max |f - g| = 0 by MILP (small networks)")
    p.add_argument("--solver", default="highs")
    p.add_argument("--time-limit", type=float, metavar="T",
                   help="wall-clock budget of the whole run in seconds (bounds, MILPs and the proof share it)")
    p.add_argument("--json", metavar="OUT", help="write the report as JSON ('-' for stdout)")


def _load(a: argparse.Namespace, cp: Any) -> tuple[Network, Any]:
    """The network (and its input scaler) of --onnx, --npz or the .nnmip file (``cp``, read already, or None)."""
    if a.onnx or a.npz:
        from nnmip.drivers.verify import load_file

        return load_file("onnx" if a.onnx else "npz", a.onnx or a.npz)
    if a.file:
        from nnmip.drivers.task import load_program

        cp = cp or load_program(a.file)
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
    import time

    from nnmip.cli.common import check_domain, check_number, preflight
    from nnmip.drivers.deadline import Deadline

    started = time.monotonic()    # the budget counts from here: the file's compress statement may give it
    cp = _from_statement(a)
    check_number("--samples", a.samples, positive=True, upper=10**8, integer=True,
                 help_text="give a whole number from 1 to 1e8, e.g. --samples 10000")
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
    # one wall-clock budget for the whole run: reading, bound tightening, the proof and the writing share it
    deadline = Deadline(None, end=None if a.time_limit is None else started + a.time_limit)
    net, scaler = _load(a, cp)
    onnx_out = any(out.lower().endswith(".onnx") for out in a.output)
    if onnx_out:
        import nnmip.io.onnx  # noqa: F401  (the exporter's import takes a second: spent now, not after the budget)
    from nnmip.io.files import check_memory

    # the samples run in chunks: the memory of one chunk's forward pass
    check_memory(8.0 * min(a.samples, SAMPLE_CHUNK) * (net.n_inputs + sum(net.dim(m) for m in net.nodes)),
                 f"--samples {a.samples}")
    n = net.n_inputs
    lo = hi = None
    if a.domain is not None:
        lo, hi = np.full(n, a.domain[0]), np.full(n, a.domain[1])
        if scaler is not None:        # the domain is given on raw inputs; the network sees scaled ones
            lo, hi = scaler.transform(lo[None, :])[0], scaler.transform(hi[None, :])[0]
            lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)     # a negative scale swaps the ends
    res = compress(net, lo, hi, method=a.method, solver=a.solver, deadline=deadline)
    assert res.domain is not None
    lo_b, hi_b = res.domain       # the box compressed over, in the network's (scaled) input units
    raw_lo, raw_hi = _raw_box(lo_b, hi_b, scaler, a.domain)
    res.max_sampled_diff, res.samples = sampled_points(net, res.network, lo_b, hi_b, a.samples, deadline=deadline)
    if a.prove:
        res.proof = prove_equivalence(net, res.network, lo_b, hi_b, solver=a.solver, deadline=deadline)
    say(a, f"units {res.units_before} -> {res.units_after}, parameters {res.params_before} -> {res.params_after}, "
         f"folded layers {len(res.folded_layers)}; max |f - g| on {res.samples} samples {res.max_sampled_diff:.3g}"
         + ("" if res.samples == a.samples else f" (of {a.samples}: the time ran out or Ctrl-C came)")
         + ("" if res.proof is None else f"; proven max |f - g| <= {res.proof['bound']:.3g}")
         + ("" if res.proof is None or res.proof["optimal"] else " (not optimal: the time ran out or a MILP "
            "was no proof)")
         + f"; compressed over {box_text(raw_lo, raw_hi)}" + (" (raw inputs)" if scaler is not None else "")
         + ", which the output declares as its input domain"
         + (f" (.onnx: in the metadata property {ONNX_DOMAIN_KEY})"
            if onnx_out else ""))
    report = res.to_dict()
    if scaler is not None:
        report["raw_domain"] = {"lo": raw_lo.tolist(), "hi": raw_hi.tolist()}
    written: list[str] = []

    def write_network(out: str) -> None:
        if out.lower().endswith(".onnx"):
            _write_onnx(res.network, out, scaler, raw_lo, raw_hi)
        else:
            from nnmip.io.weights import save_npz

            save_npz(res.network, out, scaler)
        written.append(out)

    writes: list[Callable[[], object]] = [lambda out=out: write_network(out) for out in a.output]
    if a.json:
        writes.append(lambda: write_json(a.json, report))
    try:
        write_each(writes)
    finally:
        for out in written:
            print(f"wrote {out}", file=sys.stderr)
    ok = res.max_sampled_diff is None or res.max_sampled_diff <= 1e-8
    ok = ok and (res.proof is None or res.proof["bound"] <= 1e-6)
    return EXIT_OK if ok else EXIT_UNSOLVED


#: the ONNX metadata property holding the input box a compressed network is valid on (ONNX inputs have no domain)
ONNX_DOMAIN_KEY = "nnmip.input_domain"


def _raw_box(lo: np.ndarray, hi: np.ndarray, scaler: Any, given: Any) -> tuple[np.ndarray, np.ndarray]:
    """The compression box in the raw units of the ONNX output: ``--domain`` as given, else the scaled box mapped
    back (``x = x_scaled * scale + offset``, ends swapped for a negative scale)."""
    if scaler is None:
        return lo, hi
    if given is not None:
        return np.full(lo.size, float(given[0])), np.full(hi.size, float(given[1]))
    a, b = scaler.inverse(lo[None, :])[0], scaler.inverse(hi[None, :])[0]
    return np.minimum(a, b), np.maximum(a, b)


def _write_onnx(net: Network, out: str, scaler: Any, lo: np.ndarray, hi: np.ndarray) -> None:
    """``export_onnx`` with the box the network is valid on in the metadata property ``nnmip.input_domain``
    (JSON ``{"lo": [...], "hi": [...]}`` in the units of the ONNX input): an ONNX input declares no domain."""
    import json
    from pathlib import Path

    from nnmip.io.onnx import to_onnx
    from nnmip.io.safe import check_writable, write_bytes

    target = Path(out)
    check_writable(target)
    model = to_onnx(net, scaler)
    prop = model.metadata_props.add()
    prop.key = ONNX_DOMAIN_KEY
    prop.value = json.dumps({"lo": lo.tolist(), "hi": hi.tolist()})
    model.doc_string += (f"; compressed by nnmip compress: equals the original network only on the input box in "
                         f"the metadata property {ONNX_DOMAIN_KEY}")
    write_bytes(target, model.SerializeToString())


def _from_statement(a: argparse.Namespace) -> Any:
    """Fill the options the command line leaves open from the file's ``compress`` statement (if any); the checked
    program when the network comes from a .nnmip file (read once here), else None."""
    cp = None
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
    return cp


cmd_compress.configure = _configure  # type: ignore[attr-defined]
