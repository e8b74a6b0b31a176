"""``nnmip import``: an ONNX network as a readable ``.nnmip`` file (large arrays in a side ``.npz``)."""

from __future__ import annotations

import argparse
import sys

from nnmip.cli.common import EXIT_OK, command


def _configure_import(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="an .onnx model")
    p.add_argument("-o", "--output", required=True, metavar="NET.nnmip", help="the .nnmip file to write")
    p.add_argument("--npz", metavar="FILE", help="side file of the large arrays (default: the output's name with "
                                                 ".npz)")
    p.add_argument("--name", help="network name (default: the ONNX graph's)")
    p.add_argument("--domain", nargs=2, type=float, metavar=("LO", "HI"),
                   help="input domain written as x: n real[LO, HI]")
    p.add_argument("--fold-scaling", action="store_true",
                   help="fold a Sub/Div input scaling into the first dense layer (the language has no scaling "
                        "node; folding rounds differently from the ONNX graph)")
    p.add_argument("--inline", type=int, default=None, metavar="N",
                   help="write fixed arrays of at most N numbers inline (default 8)")


@command("import", "turn an ONNX network into a .nnmip file (large weight arrays in a side .npz)")
def cmd_import(a: argparse.Namespace) -> int:
    from pathlib import Path

    from nnmip.cli.common import check_domain, check_number, preflight
    from nnmip.drivers.verify import fold_scaler
    from nnmip.io.onnx import import_onnx
    from nnmip.io.safe import check_writable
    from nnmip.io.source import INLINE, source_name, write_network
    from nnmip.io.writers import ExportError

    check_number("--inline", a.inline, integer=True, upper=10**6,
                 help_text="give the largest number of values written inline, e.g. --inline 8")
    check_domain(a.domain)
    preflight(a, inputs=[a.file], outputs={"--npz": a.npz})
    check_writable(a.output, "-o", source=True)
    net, scaler = import_onnx(a.file, name=source_name(a.name) if a.name else None)
    if scaler is not None:
        if not a.fold_scaling:
            raise ExportError.at("E0620", f"'{a.file}' scales its input (Sub/Div) before the first layer, and a "
                                 ".nnmip network has no scaling node",
                                 notes=["help: pass --fold-scaling to fold the scaling into the first dense layer "
                                        "(same function, rounded differently), or export the network without it"])
        net = fold_scaler(net, scaler)
    if a.domain is not None:
        net = net.with_input_domain(*a.domain)
    header = f"network imported from {Path(a.file).name} by nnmip import"
    out, side = write_network(net, a.output, a.npz, inline=INLINE if a.inline is None else a.inline, header=header)
    print(f"wrote {out}" + (f" and {side}" if side else ""), file=sys.stderr)
    return EXIT_OK


cmd_import.configure = _configure_import  # type: ignore[attr-defined]
