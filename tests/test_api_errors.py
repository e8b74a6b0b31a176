"""Bad arguments to the Python API raise an :class:`NnmipError` with a code, never a bare ValueError/KeyError."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from nnmip.errors import NnmipError
from nnmip.ir.builder import NetworkBuilder, fixed, integer, real


def _nb() -> tuple[NetworkBuilder, str]:
    nb = NetworkBuilder("n")
    return nb, nb.input("x", 2)


def _dense(**kw: object) -> Callable[[], object]:
    def call() -> object:
        nb, x = _nb()
        return nb.dense(**{"name": "h", "x": x, "width": 2, **kw})  # type: ignore[arg-type]
    return call


BUILDER = {
    "input_dim_neg": (lambda: NetworkBuilder("n").input("x", -1), "E0120"),
    "input_dim_zero": (lambda: NetworkBuilder("n").input("x", 0), "E0120"),
    "input_dim_float": (lambda: NetworkBuilder("n").input("x", 2.5), "E0120"),
    "input_dim_str": (lambda: NetworkBuilder("n").input("x", "2"), "E0120"),
    "input_lo_gt_hi": (lambda: NetworkBuilder("n").input("x", 2, lo=1, hi=0), "E0130"),
    "input_lo_nan": (lambda: NetworkBuilder("n").input("x", 2, lo=np.nan), "E0109"),
    "input_lo_wrong_len": (lambda: NetworkBuilder("n").input("x", 2, lo=[0, 0, 0]), "E0121"),
    "input_lo_str": (lambda: NetworkBuilder("n").input("x", 2, lo="a"), "E0108"),
    "name_none": (lambda: NetworkBuilder("n").input(None, 2), "E0108"),
    "name_empty": (lambda: NetworkBuilder("n").input("", 2), "E0108"),
    "net_name_int": (lambda: NetworkBuilder(3), "E0108"),
    "width_neg": (_dense(width=-1), "E0120"),
    "width_zero": (_dense(width=0), "E0120"),
    "width_float": (_dense(width=1.5), "E0120"),
    "width_str": (_dense(width="2"), "E0120"),
    "weights_str": (_dense(weights="real"), "E0108"),
    "weights_list": (_dense(weights=[[1, 2], [3, 4]]), "E0108"),
    "fixed_wrong_shape": (_dense(width=1, weights=fixed([[1, 2, 3]])), "E0121"),
    "bias_fixed_wrong": (_dense(width=1, bias=fixed([1, 2, 3])), "E0121"),
    "fixed_nan": (lambda: fixed([np.nan]), "E0109"),
    "fixed_str": (lambda: fixed(["a"]), "E0108"),
    "fixed_object": (lambda: fixed(np.array([1, None], dtype=object)), "E0108"),
    "fixed_ragged": (lambda: fixed([[1, 2], [3]]), "E0108"),
    "real_reversed": (lambda: real(1, -1), "E0130"),
    "real_nan": (lambda: real(np.nan, 1), "E0109"),
    "real_inf": (lambda: real(-1, np.inf), "E0109"),
    "real_str": (lambda: real("a", 1), "E0109"),
    "int_empty": (lambda: integer(1, 0), "E0130"),
    "int_str": (lambda: integer("a", 1), "E0109"),
    "int_fraction": (lambda: integer(0.5, 1), "E0109"),
    "activation_unknown": (lambda: _nb()[0].activation("tanh", "a", "x"), "E0101"),
    "activation_name_none": (lambda: _nb()[0].relu(None, "x"), "E0108"),
}


@pytest.mark.parametrize("name", sorted(BUILDER))
def test_builder_refuses_bad_arguments(name: str) -> None:
    call, code = BUILDER[name]
    with pytest.raises(NnmipError) as info:
        call()
    assert isinstance(info.value, ValueError)
    assert [d.code for d in info.value.diagnostics] == [code]
    assert any(n.startswith("help:") for n in info.value.diagnostics[0].notes)


def test_builder_still_accepts_good_arguments() -> None:
    nb = NetworkBuilder("n")
    x = nb.input("x", 2, lo=[-1, -np.inf], hi=1)
    h = nb.dense("h", x, np.int64(2), weights=integer(-1, 1), bias=fixed([0.5, -0.5]))
    nb.dense("y", nb.step("a", h), 1, weights=fixed([1.0, 2.0]), bias=real(-1, 1))
    net = nb.build()
    assert net.n_outputs == 1
    assert net.op("x").lo.tolist() == [-1.0, -np.inf]
