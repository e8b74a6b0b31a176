"""Branching priorities on the earliest layers' unstable units (``method={"branching": "layers"}``) and the
``nnmip verify --relu/--branching`` options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from verify_nets import mlp_layers, mlp_onnx

from nnmip.backends import get_backend, is_installed
from nnmip.cli import main
from nnmip.drivers.verify import network_from_layers, verify
from nnmip.errors import ParameterError
from nnmip.formulations.verification import build_fixed_model, layer_priorities
from nnmip.ir import spec as vs
from nnmip.passes.bounds import tighten_bounds
from nnmip.solution import SolveOptions


def _question(seed: int = 2, sizes: tuple[int, ...] = (4, 12, 12, 12, 2), eps: float = 0.3) -> tuple[Any, ...]:
    net = network_from_layers(mlp_layers(list(sizes), seed), "relu")
    x0 = np.random.default_rng(seed).random(sizes[0])
    coef = np.zeros(sizes[-1])
    coef[0], coef[-1] = 1.0, -1.0
    return net, x0, eps, coef


def test_layer_priorities_rank_the_binary_blocks_by_layer() -> None:
    net, x0, eps, _ = _question()
    region = vs.Region((vs.linf(x0, eps),), np.zeros(x0.size), np.ones(x0.size))
    fm = build_fixed_model(net, region, tighten_bounds(net, region, method="interval").bounds)
    m = fm.model
    prio = layer_priorities(m)
    blocks = [b for b in m.col_blocks if b.role == "d" and b.size]
    assert len(blocks) == 3                       # three ReLU layers, each with unstable units here
    for k, blk in enumerate(blocks):
        assert (prio[blk.slice] == 3 - k).all()  # the first layer highest
    binary = m.vtype == "B"
    assert (prio[~binary] == 0).all()
    assert binary.sum() == (prio > 0).sum()


def test_unknown_branching_is_refused() -> None:
    net, x0, eps, coef = _question()
    with pytest.raises(ParameterError) as exc:
        verify(net, [vs.linf(x0, eps)], vs.maximize(coef), domain=(0, 1), method={"branching": "deep"})
    assert exc.value.diagnostics[0].code == "E0427"


@pytest.mark.parametrize("solver", ["highs", "scip", "gurobi"])
def test_priorities_reach_only_the_backends_that_take_them(solver: str, monkeypatch) -> None:
    if not is_installed(solver):
        pytest.skip(f"{solver} is not installed")
    backend = type(get_backend(solver))
    seen: list[Any] = []
    real = backend.solve

    def spy(self: Any, model: Any, opts: SolveOptions) -> Any:
        seen.append((model, opts.branch_priority))
        return real(self, model, opts)

    monkeypatch.setattr(backend, "solve", spy)
    net, x0, eps, coef = _question()
    try:
        on = verify(net, [vs.linf(x0, eps)], vs.maximize(coef), domain=(0, 1), samples=0, solver=solver,
                    tighten="interval", method={"branching": "layers"})
    except Exception as exc:  # an unlicensed Gurobi
        if "licen" in str(exc).lower():
            pytest.skip(str(exc))
        raise
    milp = [(m, p) for m, p in seen if m.is_mip]
    assert milp
    for model, prio in milp:
        if backend.capabilities.branch_priority:
            assert prio is not None
            assert np.array_equal(prio, layer_priorities(model))
        else:
            assert prio is None
    seen.clear()
    off = verify(net, [vs.linf(x0, eps)], vs.maximize(coef), domain=(0, 1), samples=0, solver=solver,
                 tighten="interval")
    assert all(p is None for _, p in seen)
    assert on.result == off.result == "certified"
    assert on.value == pytest.approx(off.value, abs=1e-6)
    assert on.bound == pytest.approx(off.bound, abs=1e-6)


@pytest.fixture
def onnx_net(tmp_path: Path) -> Path:
    p = tmp_path / "net.onnx"
    onnx.save(mlp_onnx(mlp_layers([4, 10, 10, 3], 3), "relu"), p)
    return p


def test_cli_relu_and_branching_options(tmp_path: Path, onnx_net: Path) -> None:
    out = {}
    for relu in ("bigm", "ideal-cuts", "extended"):
        js = tmp_path / f"{relu}.json"
        rc = main(["verify", "--onnx", str(onnx_net), "--point", "0.3,0.6,0.2,0.8", "--linf", "0.3",
                   "--domain", "0", "1", "--maximize", "1,0,-1", "--tighten", "interval", "--relu", relu,
                   "--branching", "layers", "-q", "--json", str(js)])
        assert rc == 0
        out[relu] = json.loads(js.read_text())
    assert out["ideal-cuts"]["bound"] == pytest.approx(out["bigm"]["bound"], abs=1e-6)
    assert out["extended"]["bound"] == pytest.approx(out["bigm"]["bound"], abs=1e-6)
    assert any("ideal ReLU cuts at the root" in n for n in out["ideal-cuts"]["notes"])
    assert not any("ideal ReLU cuts" in n for n in out["bigm"]["notes"])


@pytest.mark.parametrize(("option", "value"), [("--relu", "ideal"), ("--branching", "first")])
def test_cli_refuses_unknown_choices(onnx_net: Path, option: str, value: str, capsys) -> None:
    rc = main(["verify", "--onnx", str(onnx_net), "--point", "0.3,0.6,0.2,0.8", "--linf", "0.3", option, value])
    assert rc == 2
    assert "E0190" in capsys.readouterr().err
