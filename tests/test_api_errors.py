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
    "activation_unknown": (lambda: _nb()[0].activation("softplus", "a", "x"), "E0101"),
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


def _xor() -> object:
    nb = NetworkBuilder("xor")
    x = nb.input("x", 2)
    h = nb.step("a", nb.dense("h", x, 2, weights=real(-1, 1), bias=real(-1, 1)))
    nb.step("o", nb.dense("y", h, 2, weights=integer(-1, 1), bias=real(-1, 1)))
    return nb.build()


XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_Y = np.array([0, 1, 1, 0])


def _train(**kw: object) -> Callable[[], object]:
    def call() -> object:
        from nnmip.drivers.train import train_network

        args: dict[str, object] = {"net": _xor(), "X": XOR_X, "y": XOR_Y, "n_classes": 2, **kw}
        return train_network(**args)  # type: ignore[arg-type]
    return call


TRAIN = {
    "X_str": (_train(X="abc"), "E0108"),
    "X_strings": (_train(X=[["a", "b"]] * 4), "E0108"),
    "X_ragged": (_train(X=[[0, 0], [1], [1, 0], [1, 1]]), "E0108"),
    "X_complex": (_train(X=XOR_X + 1j), "E0108"),
    "y_str": (_train(y=["a", "b", "b", "a"]), "E0108"),
    "net_none": (_train(net=None), "E0108"),
    "net_str": (_train(net="xor"), "E0108"),
    "options_dict": (_train(options={"time_limit": 5}), "E0108"),
    "groups_short": (_train(groups=[0, 1]), "E0122"),
    "groups_neg": (_train(groups=[0, -1, 0, 1]), "E0109"),
    "warm_unknown_layer": (_train(warm_start={"zz": (np.zeros((2, 2)), None), "h": 0, "y": 0}), "E0163"),
    "warm_wrong_shape": (_train(warm_start={"h": (np.zeros((5, 5)), None), "y": 0}), "E0163"),
    "warm_bias_shape": (_train(warm_start={"h": (np.zeros((2, 2)), np.zeros(3))}), "E0163"),
    "warm_missing_layer": (_train(warm_start={"h": (np.zeros((2, 2)), None)}), "E0163"),
    "warm_not_pair": (_train(warm_start={"h": np.zeros((2, 2))}), "E0163"),
    "objectives_unknown": (_train(objectives=["foo"]), "E0156"),
    "objectives_str": (_train(objectives="max_margin"), "E0156"),
    "objectives_relax": (_train(objectives=["max_margin"], relax=True), "E0156"),
    # a step unit's pre-activation may then sit at 0, where the forward pass and the model disagree
    "eps_zero": (_train(eps=0.0), "E0109"),
}


def test_the_classifier_refuses_a_zero_activation_margin() -> None:
    from nnmip.sklearn import BinarizedNetworkClassifier

    with pytest.raises(NnmipError) as info:
        BinarizedNetworkClassifier(eps=0.0, strategy="exact").fit(XOR_X, XOR_Y)
    assert "eps" in str(info.value)


@pytest.mark.parametrize("name", sorted(TRAIN))
def test_train_network_refuses_bad_arguments(name: str) -> None:
    call, code = TRAIN[name]
    with pytest.raises(NnmipError) as info:
        call()
    assert [d.code for d in info.value.diagnostics] == [code]
    assert any(n.startswith("help:") for n in info.value.diagnostics[0].notes)


def test_train_network_accepts_a_fitting_warm_start_and_groups() -> None:
    from nnmip.backends import SolveOptions

    res = _train(warm_start={"h": ([[1.0, 1.0], [-1.0, -1.0]], [-0.5, 1.5]), "y": (np.eye(2), np.zeros(2))},
                 groups=np.arange(4),
                 options=SolveOptions(time_limit=20))()
    assert res.verified  # type: ignore[attr-defined]


def _fixed_net() -> object:
    nb = NetworkBuilder("f")
    x = nb.input("x", 2, lo=-1, hi=1)
    h = nb.relu("a", nb.dense("h", x, 2, weights=fixed([[1.0, -1.0], [0.5, 0.5]]), bias=fixed([0.0, 0.1])))
    nb.dense("y", h, 2, weights=fixed([[1.0, 0.0], [0.0, 1.0]]), bias=fixed([0.0, 0.0]))
    return nb.build()


def _verify(sets: Callable[[], object], prop: Callable[[], object], net: object = "default") -> Callable[[], object]:
    def call() -> object:
        from nnmip.drivers.verify import verify

        return verify(_fixed_net() if net == "default" else net, sets(), prop(), time_limit=10)  # type: ignore[arg-type]
    return call


def _spec() -> object:
    from nnmip.ir import spec

    return spec


VERIFY = {
    "sets_none": (_verify(lambda: None, lambda: _spec().classified(0)), "E0108"),  # type: ignore[attr-defined]
    "sets_list_str": (_verify(lambda: ["a"], lambda: _spec().classified(0)), "E0108"),  # type: ignore[attr-defined]
    "prop_none": (_verify(lambda: _spec().linf([0, 0], 0.1), lambda: None), "E0108"),  # type: ignore[attr-defined]
    "net_none": (_verify(lambda: _spec().linf([0, 0], 0.1), lambda: _spec().classified(0), net=None),  # type: ignore[attr-defined]
                 "E0108"),
    "radius_str": (lambda: _spec().linf([0, 0], "a"), "E0108"),  # type: ignore[attr-defined]
    "center_str": (lambda: _spec().l2(["a", "b"], 0.1), "E0108"),  # type: ignore[attr-defined]
    "center_ragged": (lambda: _spec().l1([[0, 1], [2]], 0.1), "E0108"),  # type: ignore[attr-defined]
    "box_str": (lambda: _spec().box("a", [1, 1]), "E0108"),  # type: ignore[attr-defined]
    "output_box_len": (_verify(lambda: _spec().linf([0, 0], 0.1),  # type: ignore[attr-defined]
                               lambda: _spec().output_box(lo=[0, 0, 0])), "E0412"),  # type: ignore[attr-defined]
    "output_box_str": (lambda: _spec().output_box(hi=["x"]), "E0108"),  # type: ignore[attr-defined]
}


@pytest.mark.parametrize("name", sorted(VERIFY))
def test_verify_refuses_bad_arguments(name: str) -> None:
    call, code = VERIFY[name]
    with pytest.raises(NnmipError) as info:
        call()
    assert [d.code for d in info.value.diagnostics] == [code]
    assert any(n.startswith("help:") for n in info.value.diagnostics[0].notes)


def test_output_box_of_the_right_length_still_verifies() -> None:
    from nnmip.drivers.verify import CERTIFIED, verify
    from nnmip.ir import spec

    res = verify(_fixed_net(), spec.linf([0, 0], 0.1), spec.output_box(lo=-10.0, hi=[10.0, 10.0]), time_limit=20)
    assert res.result == CERTIFIED


COMPRESS = {
    "lo_len": ({"lo": [0, 0, 0]}, "E0412"),
    "lo_str": ({"lo": "a"}, "E0108"),
    "hi_nan": ({"hi": [np.nan, 1]}, "E0412"),
    "net_none": ({"net": None}, "E0108"),
}


@pytest.mark.parametrize("name", sorted(COMPRESS))
def test_compress_refuses_bad_arguments(name: str) -> None:
    from nnmip.drivers.compress import compress

    kw, code = COMPRESS[name]
    args: dict[str, object] = {"net": _fixed_net(), **kw}
    with pytest.raises(NnmipError) as info:
        compress(**args)  # type: ignore[arg-type]
    assert [d.code for d in info.value.diagnostics] == [code]
