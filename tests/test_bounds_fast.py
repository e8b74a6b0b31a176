"""Symbolic bounds: the shared-side, live-column back-substitution gives the plain one's bounds (to rounding).

``reference_symbolic_bounds`` is the straightforward back-substitution (both sides separately, every product
in full) that the fast path must reproduce; sampled forward values must lie inside either.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from verify_nets import dag_network, mlp_layers, random_dense

from nnmip.drivers.verify import network_from_layers
from nnmip.ir import spec as vs
from nnmip.ir.network import Network
from nnmip.ir.ops import Dense, Input, MaxPool, ParamDomain, ReLU, Sum
from nnmip.passes.bounds import (
    BoundMap,
    FloatArray,
    Interval,
    Region,
    _box_interval,
    _concretize,
    _maxpool_relaxation,
    _relax,
    _relaxation,
    _right_times,
    _Shared,
    _stacked,
    propagate_bounds,
    symbolic_bounds,
    tighten_bounds,
    unstable_mask,
    widen,
)


def reference_symbolic_bounds(net: Network, region: Region, node: str, bounds: BoundMap, shared: object = None
                              ) -> Interval:
    """The plain back-substitution, one side after the other, every product formed in full (``shared``, what
    nnmip's passes share, is not used: this code recomputes everything)."""
    op = net.op(node)
    assert isinstance(op, Dense)
    n_out = op.n_out
    inf = (np.full(n_out, -np.inf), np.full(n_out, np.inf))
    # pending linear bounds on each node: upper  sum_v Au[v] z_v + cu,  lower  sum_v Al[v] z_v + cl
    Au: dict[str, FloatArray] = {}
    Al: dict[str, FloatArray] = {}
    cu = op.b.astype(np.float64).copy()
    cl = cu.copy()
    src = net.inputs_of(node)[0]
    Au[src] = _right_times(np.eye(n_out), op.matrix)
    Al[src] = Au[src].copy()
    order = net.nodes
    pos = {n: i for i, n in enumerate(order)}
    x_node = net.input

    def push(target: str, A: dict[str, FloatArray], M: FloatArray) -> None:
        A[target] = A[target] + M if target in A else M

    for cur in sorted(set(order[:pos[node]]), key=lambda v: -pos[v]):
        if cur not in Au:
            continue
        cop = net.op(cur)
        if isinstance(cop, Input):
            continue
        au, al = Au.pop(cur), Al.pop(cur)
        srcs = net.inputs_of(cur)
        if isinstance(cop, Dense):
            bc = cop.b.astype(np.float64)
            cu, cl = cu + au @ bc, cl + al @ bc
            push(srcs[0], Au, _right_times(au, cop.matrix))
            push(srcs[0], Al, _right_times(al, cop.matrix))
        elif isinstance(cop, Sum):
            for s_ in srcs:
                push(s_, Au, au)
                push(s_, Al, al)
        elif isinstance(cop, MaxPool):
            L, U = bounds[srcs[0]]
            if not (np.isfinite(L).all() and np.isfinite(U).all()):
                return inf
            low, up, const = _maxpool_relaxation(cop, L, U)
            aup, aun = np.maximum(au, 0.0), np.minimum(au, 0.0)
            alp, aln = np.maximum(al, 0.0), np.minimum(al, 0.0)
            # upper: positive coefficients take the upper relaxation, negative ones the lower one
            cu = cu + aup @ const
            push(srcs[0], Au, _right_times(aup, up) + _right_times(aun, low))
            cl = cl + aln @ const
            push(srcs[0], Al, _right_times(alp, low) + _right_times(aln, up))
        else:
            L, U = bounds[srcs[0]]
            if not (np.isfinite(L).all() and np.isfinite(U).all()):
                return inf
            sl, tl, su, tu = _relaxation(cop, L, U)
            # upper bound of sum_i Au_i y_i: Au_i >= 0 takes the upper relaxation, Au_i < 0 the lower one
            aup, aun = np.maximum(au, 0.0), np.minimum(au, 0.0)
            cu = cu + aup @ tu + aun @ tl
            push(srcs[0], Au, aup * su + aun * sl)
            alp, aln = np.maximum(al, 0.0), np.minimum(al, 0.0)
            cl = cl + alp @ tl + aln @ tu
            push(srcs[0], Al, alp * sl + aln * su)
    lo_x, hi_x = bounds[x_node]
    if x_node not in Au:      # the node does not depend on the input
        return widen(cl, cu)
    _, up_ = _concretize(Au[x_node], region, lo_x, hi_x)
    down, _ = _concretize(Al[x_node], region, lo_x, hi_x)
    return widen(down + cl, up_ + cu)


def _compare(net: Network, region: vs.Region, seed: int) -> None:
    rep = tighten_bounds(net, region, method="symbolic")
    bm = rep.bounds
    checked = 0
    for n, op in net.items():
        if not isinstance(op, Dense) or isinstance(net.op(net.inputs_of(n)[0]), Input):
            continue
        new = symbolic_bounds(net, region, n, bm)
        ref = reference_symbolic_bounds(net, region, n, bm)
        scale = 1e-9 * (1 + np.abs(ref[0]) + np.abs(ref[1]))
        assert np.all(new[0] >= ref[0] - scale), n      # the same or tighter, to rounding
        assert np.all(new[1] <= ref[1] + scale), n
        np.testing.assert_allclose(new[0], ref[0], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(new[1], ref[1], rtol=1e-9, atol=1e-9)
        checked += 1
    assert checked >= 1
    vals = net.forward(region.sample(net.n_inputs, 3000, np.random.default_rng(seed)), all_nodes=True)
    for n in net.nodes:
        assert np.all(vals[n] >= bm[n][0] - 1e-9), n
        assert np.all(vals[n] <= bm[n][1] + 1e-9), n


@pytest.mark.parametrize("seed", range(5))
def test_fast_back_substitution_matches_the_plain_one_on_random_mlps(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = [int(rng.integers(3, 9))] + [int(rng.integers(4, 20)) for _ in range(int(rng.integers(2, 5)))] + [3]
    net = network_from_layers(mlp_layers(sizes, seed), "relu")
    x0 = rng.random(sizes[0])
    eps = float(rng.choice([0.02, 0.1, 0.3]))
    region = vs.Region((vs.linf(x0, eps), vs.l2(x0, 2 * eps)), np.zeros(sizes[0]), np.ones(sizes[0]))
    _compare(net, region, seed)


@pytest.mark.parametrize("seed", range(3))
def test_fast_back_substitution_on_a_residual_max_pool_network(seed: int) -> None:
    rng = np.random.default_rng(seed)
    nodes = [("x", Input(dim=4), ()), ("h1", random_dense(rng, 4, 6), ("x",)), ("r1", ReLU(), ("h1",)),
             ("h2", random_dense(rng, 6, 6), ("r1",)), ("s", Sum(), ("r1", "h2")),
             ("p", MaxPool(index=np.array([[0, 1], [2, 3], [4, 5]])), ("s",)), ("h3", random_dense(rng, 3, 5), ("p",)),
             ("r3", ReLU(), ("h3",)), ("o", random_dense(rng, 5, 2), ("r3",))]
    net = dag_network(nodes)
    x0 = rng.random(4)
    _compare(net, vs.Region((vs.linf(x0, 0.2),), np.zeros(4), np.ones(4)), seed)


@pytest.mark.parametrize("seed", range(3))
def test_two_relu_branches_summed_keep_their_own_coefficients(seed: int) -> None:
    """A sum of two ReLU branches hands one coefficient array to both; relaxing one branch (done in place) must
    not change what the other branch receives."""
    rng = np.random.default_rng(200 + seed)
    nodes = [("x", Input(dim=4), ()), ("h1", random_dense(rng, 4, 6), ("x",)), ("r1", ReLU(), ("h1",)),
             ("h2", random_dense(rng, 4, 6), ("x",)), ("r2", ReLU(), ("h2",)), ("s", Sum(), ("r1", "r2")),
             ("h3", random_dense(rng, 6, 5), ("s",)), ("r3", ReLU(), ("h3",)), ("o", random_dense(rng, 5, 2), ("r3",))]
    net = dag_network(nodes)
    x0 = rng.random(4)
    region = vs.Region((vs.linf(x0, 0.3),), np.zeros(4), np.ones(4))
    bm = tighten_bounds(net, region, method="symbolic").bounds
    assert unstable_mask(ReLU(), *bm["h3"]).any()       # so the coefficients reach the sum stacked
    _compare(net, region, seed)


@pytest.mark.parametrize("stacked", [False, True])
@pytest.mark.parametrize("n_split", [0, 2, 30])
@pytest.mark.parametrize("constant_lower", [False, True])
def test_relaxation_step_matches_the_sign_split_formula(stacked: bool, n_split: int, constant_lower: bool) -> None:
    """``_relax`` (whole rows or gathered columns) against the plain sign split, term for term."""
    rng = np.random.default_rng(n_split + 10 * stacked + 100 * constant_lower)
    k, m = 7, 40
    A = rng.normal(size=(2 * k if stacked else k, m))
    A[:, 5] = 0.0
    sl = rng.choice([0.0, 1.0], size=m)
    su, tu, tl = sl.copy(), np.zeros(m), np.zeros(m)
    split = rng.choice(m, size=n_split, replace=False)
    su[split] = rng.random(n_split)
    tu[split] = rng.random(n_split)
    if constant_lower:
        tl[split] = -rng.random(n_split)
    au, al = (A[:k], A[k:]) if stacked else (A, A)
    ap_u, an_u, ap_l, an_l = (np.maximum(au, 0.0), np.minimum(au, 0.0), np.maximum(al, 0.0), np.minimum(al, 0.0))
    want = np.vstack((ap_u * su + an_u * sl, ap_l * sl + an_l * su))
    want_cu, want_cl = ap_u @ tu + an_u @ tl, ap_l @ tl + an_l @ tu
    const: list[Any] = [None, None]
    got = _stacked(_relax(A.copy(), stacked, k, sl, tl, su, tu, const))
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(const[0], want_cu, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(const[1], want_cl, rtol=1e-13, atol=1e-14)


def test_all_dead_layer_gives_constant_bounds() -> None:
    """A hidden layer whose units are all dead: the next layer's bounds are its bias, exactly."""
    layers = [(np.array([[1.0, 1.0], [2.0, -1.0]]), np.array([-10.0, -10.0])),
              (np.array([[3.0, -2.0]]), np.array([0.5]))]
    net = network_from_layers(layers, "relu")
    region = vs.Region((vs.box(np.zeros(2), np.ones(2)),))
    bm = propagate_bounds(net, region)
    out = [n for n, op in net.items() if isinstance(op, Dense)][-1]
    lo, hi = symbolic_bounds(net, region, out, bm)
    assert lo[0] == pytest.approx(0.5, abs=1e-6)
    assert hi[0] == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_fast_back_substitution_over_a_box_matches_the_plain_one(seed: int) -> None:
    """linf ball and box regions take the centre / half-width concretisation; shifted biases kill many units, so
    dead columns are dropped from the products, and a stable-only network keeps both sides in one array."""
    rng = np.random.default_rng(100 + seed)
    sizes = [int(rng.integers(3, 9))] + [int(rng.integers(8, 24)) for _ in range(3)] + [3]
    layers = mlp_layers(sizes, seed)
    if seed % 2:
        layers = [(W, b - 1.0) for W, b in layers[:-1]] + [layers[-1]]    # most units dead
    net = network_from_layers(layers, "relu")
    x0 = rng.random(sizes[0])
    region = (vs.Region((vs.linf(x0, 0.1),), np.zeros(sizes[0]), np.ones(sizes[0])) if seed < 2
              else vs.Region((vs.box(x0 - 0.2, x0 + 0.1),)))
    _compare(net, region, seed)


def test_fast_back_substitution_when_every_unit_is_stable() -> None:
    rng = np.random.default_rng(7)
    layers = [(rng.normal(size=(6, 4)), np.full(6, 20.0)), (np.abs(rng.normal(size=(5, 6))), np.full(5, -5.0)),
              (rng.normal(size=(2, 5)), np.zeros(2))]
    net = network_from_layers(layers, "relu")
    region = vs.Region((vs.box(np.zeros(4), np.ones(4)),))
    bm = tighten_bounds(net, region, method="symbolic").bounds
    relu_inputs = [net.inputs_of(n)[0] for n, op in net.items() if isinstance(op, ReLU)]
    assert len(relu_inputs) == 2
    assert all(np.all(bm[n][0] > 0) for n in relu_inputs)
    _compare(net, region, 7)


def test_the_side_by_side_benchmark_runs_and_finds_the_same_bounds(tmp_path: Path,
                                                                   benchmark_script: Callable[[str], Any]) -> None:
    """``benchmarks/symbolic_bounds.py`` on a small network: both codes time, and their bounds agree to rounding."""
    mod = benchmark_script("symbolic_bounds")
    out = tmp_path / "sym.json"
    assert mod.main(["--sizes", "12", "16", "16", "3", "--rounds", "2", "--eps", "0.1", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["unstable"] == row["unstable_plain"] > 0
    assert row["largest_relative_loosening"] <= 1e-12
    assert row["nnmip_best"] > 0
    assert row["plain_best"] > 0
    assert row["floor_best"] > 0
    assert row["floor_in_rounds"]
    assert mod.main(["--sizes", "12", "16", "16", "3", "--rounds", "2", "--eps", "0.1", "--no-floor", "--json",
                     str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert not row["floor_in_rounds"]
    assert "floor_best" not in row
    assert row["largest_relative_loosening"] <= 1e-12


def test_the_cached_sign_split_of_a_dense_layer_stays_out_of_its_pickle() -> None:
    """Interval bounds cache ``W+`` and ``W-`` on the layer; a pickled copy (sent to a worker) leaves them out and
    computes the same intervals."""
    import pickle

    rng = np.random.default_rng(0)
    op = Dense(n_in=30, n_out=20, weights=ParamDomain.fixed(rng.normal(size=(20, 30))),
               bias=ParamDomain.fixed(rng.normal(size=20)))
    before = len(pickle.dumps(op))
    lo, hi = op.interval(np.zeros(30), np.ones(30))
    assert "_fixed_parts" in op.__dict__
    assert len(pickle.dumps(op)) == before
    copy = pickle.loads(pickle.dumps(op))
    assert "_fixed_parts" not in copy.__dict__
    lo2, hi2 = copy.interval(np.zeros(30), np.ones(30))
    assert np.array_equal(lo, lo2)
    assert np.array_equal(hi, hi2)
    W = op.W
    assert np.array_equal(lo, np.maximum(W, 0) @ np.zeros(30) + np.minimum(W, 0) @ np.ones(30) + op.b)


def _random_mlp_question(seed: int, eps: float = 0.2) -> tuple[Network, vs.Region, BoundMap, list[str]]:
    rng = np.random.default_rng(seed)
    sizes = [12, 24, 24, 24, 3]
    net = network_from_layers(mlp_layers(sizes, seed), "relu")
    region = vs.Region((vs.linf(rng.random(12), eps),), np.zeros(12), np.ones(12))
    bm = tighten_bounds(net, region, method="symbolic").bounds
    later = [n for n, op in net.items() if isinstance(op, Dense) and not isinstance(net.op(net.inputs_of(n)[0]), Input)]
    return net, region, bm, later


@pytest.mark.parametrize("seed", range(3))
def test_back_substitution_starts_from_the_weights_and_never_writes_them(seed: int) -> None:
    """The first coefficients are the layer's own weight matrix (read-only, not a copy): every layer's bounds,
    the first one over a box included, equal the plain ones, and no weight changes."""
    net, _, _, _ = _random_mlp_question(seed)
    for region in (vs.Region((vs.linf(np.random.default_rng(seed).random(12), 0.2),), np.zeros(12), np.ones(12)),
                   vs.Region((vs.box(np.zeros(12), np.ones(12)),))):
        bm = tighten_bounds(net, region, method="symbolic").bounds
        before = {n: op.W.copy() for n, op in net.items() if isinstance(op, Dense)}
        flags = {n: net.op(n).W.flags.writeable for n in before}
        for n in before:
            new = symbolic_bounds(net, region, n, bm)
            ref = reference_symbolic_bounds(net, region, n, bm)
            np.testing.assert_allclose(new[0], ref[0], rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(new[1], ref[1], rtol=1e-9, atol=1e-9)
        for n, W in before.items():
            np.testing.assert_array_equal(net.op(n).W, W)
            assert net.op(n).W.flags.writeable == flags[n]      # a view's flag is its own


def test_bounds_do_not_share_memory_with_the_scratch_of_later_calls() -> None:
    """The scratch buffers are handed to the next call: no returned bound may live in them."""
    net, region, bm, later = _random_mlp_question(0)
    first = symbolic_bounds(net, region, later[0], bm)
    kept = (first[0].copy(), first[1].copy())
    for n in later:                        # later calls reuse (and overwrite) this thread's scratch
        symbolic_bounds(net, region, n, bm)
    np.testing.assert_array_equal(first[0], kept[0])
    np.testing.assert_array_equal(first[1], kept[1])
    again = symbolic_bounds(net, region, later[0], bm)
    np.testing.assert_array_equal(again[0], kept[0])      # warm scratch, bit for bit the same bounds
    np.testing.assert_array_equal(again[1], kept[1])


def test_threads_computing_bounds_at_once_get_the_serial_answers() -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from nnmip.passes import bounds as bounds_mod

    jobs = [_random_mlp_question(seed) for seed in range(4)]
    serial = [[symbolic_bounds(net, region, n, bm) for n in later] for net, region, bm, later in jobs]
    kept: dict[int, set[int]] = {}            # thread -> ids of the scratch buffers it keeps
    lock = threading.Lock()

    def run(j):  # type: ignore[no-untyped-def]
        out = [symbolic_bounds(j[0], j[1], n, j[2]) for n in j[3]]
        with lock:
            kept.setdefault(threading.get_ident(), set()).update(id(b) for b in bounds_mod._Scratch._local.free)
        return out

    with ThreadPoolExecutor(4) as ex:
        for _ in range(3):
            par = list(ex.map(run, jobs))
            for got, want in zip(par, serial, strict=True):
                for (lo, hi), (wlo, whi) in zip(got, want, strict=True):
                    np.testing.assert_array_equal(lo, wlo)
                    np.testing.assert_array_equal(hi, whi)
    sets = list(kept.values())
    assert all(sets)
    assert all(not (a & b) for k, a in enumerate(sets) for b in sets[k + 1:])   # no buffer kept by two threads


def test_the_scratch_kept_between_calls_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    from nnmip.passes import bounds as bounds_mod

    net, region, bm, later = _random_mlp_question(1)
    for cap in (0, 30_000):
        monkeypatch.setattr(bounds_mod, "SCRATCH_KEEP", cap)
        want = reference_symbolic_bounds(net, region, later[-1], bm)
        got = symbolic_bounds(net, region, later[-1], bm)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-9, atol=1e-9)
        kept = bounds_mod._Scratch._local.free
        assert sum(b.nbytes for b in kept) <= cap
        assert (len(kept) > 0) == (cap > 0)


@pytest.mark.parametrize("seed", range(4))
def test_centre_radius_interval_of_a_dense_layer_matches_the_sign_split_one(seed: int) -> None:
    """``W c -+ |W| r + b`` (two passes over the weights) is ``W+ lo + W- hi + b`` to rounding, also for
    degenerate inputs (lo = hi) and for ends near the largest float (no overflow in ``c`` or ``r``)."""
    rng = np.random.default_rng(seed)
    op = Dense(n_in=40, n_out=25, weights=ParamDomain.fixed(rng.normal(size=(25, 40))),
               bias=ParamDomain.fixed(rng.normal(size=25)))
    net = dag_network([("x", Input(dim=40), ()), ("h", op, ("x",))])
    lo = rng.normal(size=40)
    hi = lo + rng.random(40) * (rng.random(40) > 0.3)          # some inputs fixed (lo = hi)
    for scale in (1.0, 1e300):
        got = _box_interval(net, "h", {"x": (lo * scale, hi * scale)})
        want = op.interval(lo * scale, hi * scale)
        assert np.isfinite(got[0]).all()
        assert np.isfinite(got[1]).all()
        np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-12 * scale)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-12 * scale)


def test_a_tightening_pass_shares_relaxations_and_rows_only_while_their_bounds_are_the_same() -> None:
    """Within one ``tighten_bounds`` call the passes reuse each activation's relaxation and each weight matrix
    without its dead units' rows; both are recomputed for other bounds, and the shared pass gives exactly the
    bounds of passes that share nothing."""
    net, region, bm, later = _random_mlp_question(3, eps=0.05)     # most units stable: rows are left out
    relu = next(n for n, op in net.items() if isinstance(op, ReLU))
    L, U = bm[net.inputs_of(relu)[0]]
    sh = _Shared()
    try:
        first = sh.relaxation(relu, net.op(relu), L, U)
        assert sh.relaxation(relu, net.op(relu), L, U) is first
        other = sh.relaxation(relu, net.op(relu), L - 1.0, U + 1.0)
        assert other is not first
        assert not np.array_equal(other[2], first[2])
        M = np.arange(12.0).reshape(4, 3)
        a = sh.live_rows(M, np.array([0, 2]))
        assert np.array_equal(a, M[[0, 2]])
        assert sh.live_rows(M, np.array([0, 2])) is a
        assert np.array_equal(sh.live_rows(M, np.array([1, 3])), M[[1, 3]])
    finally:
        sh.close()
    alone = {n: symbolic_bounds(net, region, n, bm) for n in later}
    sh = _Shared()
    try:
        together = {n: symbolic_bounds(net, region, n, bm, sh) for n in later}
        assert sh.rows      # some weight matrix was used without its dead rows, and kept for the next pass
    finally:
        sh.close()
    for n in later:
        assert np.array_equal(alone[n][0], together[n][0]), n
        assert np.array_equal(alone[n][1], together[n][1]), n
