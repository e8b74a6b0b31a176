"""The parameters of a network as one flat vector, and the gradient of the mean loss by back-propagation.

The forward pass here runs the same ops as :meth:`nnmip.ir.network.Network.forward` (dense layers through
:meth:`Dense.affine`, the others through ``op.forward``); the vector-Jacobian products are the ops' ``backward``
methods.  Every trained network is re-run by ``Network.forward`` before anything is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nnmip.errors import CheckError
from nnmip.ir.losses import smooth_loss
from nnmip.ir.network import Network
from nnmip.ir.ops import Dense, Input, ParamDomain

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Params = dict[str, tuple[FloatArray, FloatArray | None]]


@dataclass
class Layout:
    """Where each dense layer's weights and bias sit in the flat vector ``x``."""

    keys: list[tuple[str, str]]                 # (layer, "W" | "b")
    shapes: list[tuple[int, ...]]
    offsets: list[int]
    lo: FloatArray                              # box of every coordinate (fixed parameters: lo == hi)
    hi: FloatArray
    trainable: BoolArray
    is_weight: BoolArray                        # a weight (W) entry, not a bias

    @property
    def size(self) -> int:
        return int(self.lo.size)

    def slice(self, layer: str, role: str) -> slice:
        i = self.keys.index((layer, role))
        return slice(self.offsets[i], self.offsets[i] + int(np.prod(self.shapes[i])))

    def has(self, layer: str, role: str) -> bool:
        return (layer, role) in self.keys

    def unpack(self, x: FloatArray) -> Params:
        out: dict[str, list[FloatArray | None]] = {}
        for (layer, role), shape, off in zip(self.keys, self.shapes, self.offsets, strict=False):
            arr = x[off:off + int(np.prod(shape))].reshape(shape)
            out.setdefault(layer, [None, None])[0 if role == "W" else 1] = arr
        return {k: (v[0], v[1]) for k, v in out.items()}  # type: ignore[misc]


def layout_of(net: Network) -> Layout:
    """The flat layout of every dense layer's weights and bias (integer domains are refused: E0170)."""
    keys: list[tuple[str, str]] = []
    shapes: list[tuple[int, ...]] = []
    offsets: list[int] = []
    lo, hi, tr, isw = [], [], [], []
    off = 0
    for n in net.dense_nodes():
        op = net.op(n)
        assert isinstance(op, Dense)
        assert op.weights is not None
        doms: list[tuple[str, ParamDomain]] = [("W", op.weights)]
        if op.bias is not None:
            doms.append(("b", op.bias))
        for role, dom in doms:
            if dom.kind == "int":
                raise CheckError.at("E0170", f"layer '{n}' has integer weights, which gradient training cannot "
                                    "keep integral", op.span,
                                    ["help: use weights=real[lo, hi] with strategy = obproxsg(...), prox_sg(...), "
                                     "rda(...) or spr(...)"])
            shape = (op.n_out, op.n_in) if role == "W" else (op.n_out,)
            k = int(np.prod(shape))
            keys.append((n, role))
            shapes.append(shape)
            offsets.append(off)
            off += k
            lo.append(np.broadcast_to(dom.lo, shape).ravel())
            hi.append(np.broadcast_to(dom.hi, shape).ravel())
            tr.append(np.full(k, dom.trainable))
            isw.append(np.full(k, role == "W"))
    return Layout(keys, shapes, offsets, np.concatenate(lo), np.concatenate(hi), np.concatenate(tr),
                  np.concatenate(isw))


def initial_point(net: Network, layout: Layout, rng: np.random.Generator) -> FloatArray:
    """Glorot-uniform weights ``U(-s, s)``, ``s = sqrt(6 / (n_in + n_out))``, zero biases, clipped to the
    domains; fixed parameters keep their values.
    """
    x = np.zeros(layout.size)
    for (layer, role), shape, off in zip(layout.keys, layout.shapes, layout.offsets, strict=False):
        op = net.op(layer)
        assert isinstance(op, Dense)
        k = int(np.prod(shape))
        sl = slice(off, off + k)
        dom = op.weights if role == "W" else op.bias
        assert dom is not None
        if not dom.trainable:
            x[sl] = np.broadcast_to(dom.value, shape).ravel()
        elif role == "W":
            s = np.sqrt(6.0 / (op.n_in + op.n_out))
            x[sl] = rng.uniform(-s, s, size=k)
    return np.clip(x, layout.lo, layout.hi)


def loss_and_grad(net: Network, layout: Layout, x: FloatArray, X: FloatArray, y: IntArray, n_classes: int,
                  loss: str) -> tuple[float, FloatArray]:
    """The mean loss over the rows ``X`` and its gradient with respect to ``x`` (back-propagation)."""
    params = layout.unpack(x)
    vals: dict[str, FloatArray] = {}
    order = net.nodes
    for n in order:
        op = net.op(n)
        if isinstance(op, Input):
            vals[n] = X
        elif isinstance(op, Dense):
            W, b = params[n]
            vals[n] = Dense.affine(vals[net.inputs_of(n)[0]], W, b)  # type: ignore[arg-type]
        elif op.arity != 1:      # several inputs (residual sums)
            vals[n] = op.forward_many([vals[s] for s in net.inputs_of(n)])  # type: ignore[attr-defined]
        else:
            vals[n] = op.forward(vals[net.inputs_of(n)[0]])
    value, g_out = smooth_loss(loss, vals[net.output], y, n_classes)
    grads: dict[str, FloatArray] = {net.output: g_out}
    gx = np.zeros(layout.size)
    for n in reversed(order):
        if n not in grads:
            continue
        op = net.op(n)
        if isinstance(op, Input):
            continue
        srcs = net.inputs_of(n)
        gy = grads.pop(n)
        if isinstance(op, Dense):
            W, _ = params[n]
            assert W is not None
            g_in, gW, gb = Dense.backward_params(vals[srcs[0]], gy, W)
            gx[layout.slice(n, "W")] = gW.ravel()
            if layout.has(n, "b"):
                gx[layout.slice(n, "b")] = gb
            g_ins = [g_in]
        elif op.arity != 1:
            g_ins = op.backward_many([vals[s] for s in srcs], gy)  # type: ignore[attr-defined]
        else:
            g_ins = [op.backward(vals[srcs[0]], gy)]
        for src, g_in in zip(srcs, g_ins, strict=True):
            if not isinstance(net.op(src), Input):
                grads[src] = grads[src] + g_in if src in grads else g_in
    gx[~layout.trainable] = 0.0
    return value, gx


def with_point(net: Network, layout: Layout, x: FloatArray) -> Network:
    """The fixed-weight network with the parameters ``x``."""
    return net.with_params({k: (W, b) for k, (W, b) in layout.unpack(np.array(x)).items()})
