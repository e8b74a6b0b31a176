"""The graph IR: a networkx DiGraph whose node key is the source name and whose ``op`` attribute is an Op."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import networkx as nx
import numpy as np
import numpy.typing as npt

from nnmip.errors import CheckError, DataError, Diagnostic, Span
from nnmip.ir.ops import NODE_ACTIVATIONS, Dense, Identity, Input, Op, ParamDomain

FloatArray = npt.NDArray[np.float64]


class Network:
    """A feed-forward network as a DAG of named ops with one input and one output.

    ``forward`` is the reference semantics every solution is checked against.
    """

    def __init__(self, graph: nx.DiGraph, name: str = "net") -> None:
        self.graph = graph
        self.name = name
        self._order = list(nx.lexicographical_topological_sort(graph))
        self._dims: dict[str, int] = {}
        for n in self._order:
            op = self.op(n)
            preds = self.inputs_of(n)
            self._dims[n] = op.out_dim(self._dims[preds[0]] if preds else 0)

    # structure ----------------------------------------------------------------------------------------------
    def op(self, node: str) -> Op:
        return self.graph.nodes[node]["op"]  # type: ignore[no-any-return]

    def inputs_of(self, node: str) -> list[str]:
        preds = self.graph.nodes[node].get("inputs")
        return list(preds) if preds is not None else list(self.graph.predecessors(node))

    @property
    def nodes(self) -> list[str]:
        """Node names in deterministic topological order."""
        return list(self._order)

    def dim(self, node: str) -> int:
        return self._dims[node]

    @property
    def input_nodes(self) -> list[str]:
        return [n for n in self._order if isinstance(self.op(n), Input)]

    @property
    def input(self) -> str:
        return self.input_nodes[0]

    @property
    def output(self) -> str:
        sinks = [n for n in self._order if self.graph.out_degree(n) == 0]
        return sinks[-1]

    @property
    def n_inputs(self) -> int:
        return self.dim(self.input)

    @property
    def n_outputs(self) -> int:
        return self.dim(self.output)

    def with_input_domain(self, lo: npt.ArrayLike, hi: npt.ArrayLike) -> Network:
        """The network with the input domain ``[lo, hi]`` (scalars or one value per input) in place of the one it
        declares; itself when they are the same.  Bounds and models clip the input to the declared domain, so a
        question over another box must replace it.
        """
        op = self.op(self.input)
        assert isinstance(op, Input)
        n = self.n_inputs
        lo_a = np.array(np.broadcast_to(np.asarray(lo, np.float64), (n,)))
        hi_a = np.array(np.broadcast_to(np.asarray(hi, np.float64), (n,)))
        if op.lo is not None and op.hi is not None and np.array_equal(op.lo, lo_a) and np.array_equal(op.hi, hi_a):
            return self
        g = self.graph.copy()
        g.nodes[self.input]["op"] = Input(dim=op.dim, lo=lo_a, hi=hi_a, span=op.span)
        return Network(g, self.name)

    def check_features(self, shape: tuple[int, ...], what: str = "data", span: Span | None = None,
                       notes: list[str] | None = None, source: str | None = None) -> None:
        """Raise ``DataError`` E0122 unless data of ``shape`` are rows of this network's inputs, ``(N, n_inputs)``.

        The one feature-count check of the package: training tasks, the training model, ``train_network`` and
        ``nnmip predict`` call it with their own wording of ``what`` and their own ``help:`` notes.
        """
        n = self.n_inputs
        if len(shape) == 2 and shape[1] == n:
            return
        got = f"{shape[1]} features" if len(shape) == 2 else f"shape {tuple(shape)}"
        raise DataError.at("E0122", f"{what} have {got} but network '{self.name}' takes {n} inputs",
                           self.op(self.input).span if span is None else span,
                           notes if notes is not None else [f"help: give rows of {n} features, shape (N, {n})"],
                           source=source)

    def consumers(self, node: str) -> list[str]:
        """Nodes whose input is ``node``, in topological order."""
        return [n for n in self._order if node in self.inputs_of(n)]

    def dense_users(self, node: str) -> list[str]:
        """Dense layers fed by ``node``, directly or through element-wise ops."""
        out: list[str] = []
        for n in self.consumers(node):
            out.extend([n] if isinstance(self.op(n), Dense) else self.dense_users(n))
        return out

    def dense_nodes(self) -> list[str]:
        return [n for n in self._order if isinstance(self.op(n), Dense)]

    @property
    def is_chain(self) -> bool:
        """Every node has at most one input and feeds at most one node (no residual connections)."""
        return all(len(self.inputs_of(n)) <= 1 and self.graph.out_degree(n) <= 1 for n in self._order)

    @property
    def notes(self) -> list[str]:
        """What an importer changed or cut (e.g. a softmax removed from the output), carried into reports."""
        return list(self.graph.graph.get("notes", []))

    @property
    def cut_output(self) -> list[str]:
        """Op types of the final nodes an importer cut off (Softmax, Sigmoid, ArgMax, ZipMap): the outputs of this
        network are the values before them, so only properties that compare outputs with each other carry over.
        """
        return list(self.graph.graph.get("cut_output", []))

    @property
    def source_shapes(self) -> dict[str, Any]:
        """Shapes of the input and output tensors in the file the network was read from (empty if none)."""
        return dict(self.graph.graph.get("source_shapes", {}))

    @property
    def trainable(self) -> bool:
        return any(self.op(n).trainable for n in self.dense_nodes())  # type: ignore[attr-defined]

    def items(self) -> Iterator[tuple[str, Op]]:
        for n in self._order:
            yield n, self.op(n)

    # semantics -----------------------------------------------------------------------------------------------
    def forward(self, X: npt.ArrayLike, *, all_nodes: bool = False) -> Any:
        """Run the numpy forward pass on rows ``X`` (N, d_in); return the output (or every node's values)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != self.n_inputs:
            raise ValueError(f"network '{self.name}' expects inputs of shape (N, {self.n_inputs}), got {X.shape}")
        vals: dict[str, FloatArray] = {}
        for n in self._order:
            op = self.op(n)
            if isinstance(op, Input):
                vals[n] = X
            elif op.arity == 1:
                vals[n] = op.forward(vals[self.inputs_of(n)[0]])
            else:
                vals[n] = op.forward_many([vals[s] for s in self.inputs_of(n)])  # type: ignore[attr-defined]
        return vals if all_nodes else vals[self.output]

    def predict(self, X: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Class index: argmax of the output (first index on ties); one output unit means class ``out > 0``."""
        out = self.forward(X)
        return predict_from_output(out)

    def interval(self, lo: npt.ArrayLike, hi: npt.ArrayLike) -> dict[str, tuple[FloatArray, FloatArray]]:
        """Interval bounds of every node for inputs in the box [lo, hi] (batched over leading axes)."""
        lo_a = np.asarray(lo, dtype=np.float64)
        hi_a = np.asarray(hi, dtype=np.float64)
        out: dict[str, tuple[FloatArray, FloatArray]] = {}
        for n in self._order:
            op = self.op(n)
            if isinstance(op, Input):
                out[n] = op.interval(lo_a, hi_a)
            else:
                out[n] = node_interval(self, n, out)
        return out

    # parameters ------------------------------------------------------------------------------------------------
    def params(self) -> dict[str, tuple[FloatArray, FloatArray]]:
        """Fixed weights and biases per dense node (raises if some are not fixed)."""
        out = {}
        for n in self.dense_nodes():
            op = self.op(n)
            assert isinstance(op, Dense)
            out[n] = (op.W, op.b)
        return out

    def with_params(self, params: dict[str, tuple[npt.ArrayLike, npt.ArrayLike | None]]) -> Network:
        """A copy whose dense layers named in ``params`` have the given fixed weights (and bias)."""
        g = self.graph.copy()
        for n, (W, b) in params.items():
            op = self.op(n)
            if not isinstance(op, Dense):
                raise KeyError(f"'{n}' is not a dense layer")
            W_a = np.asarray(W, dtype=np.float64).reshape(op.n_out, op.n_in)
            bias = None
            if op.bias is not None:
                bias = ParamDomain.fixed(np.zeros(op.n_out) if b is None else np.asarray(b, np.float64),
                                         op.bias.span)
            elif b is not None and np.any(np.asarray(b) != 0):
                raise ValueError(f"layer '{n}' has no bias")
            g.nodes[n]["op"] = Dense(n_in=op.n_in, n_out=op.n_out, weights=ParamDomain.fixed(W_a, op.span),
                                     bias=bias, span=op.span)
        return Network(g, self.name)

    def num_params(self) -> int:
        total = 0
        for n in self.dense_nodes():
            op = self.op(n)
            assert isinstance(op, Dense)
            total += op.nnz + (op.n_out if op.bias is not None else 0)
        return total

    # description ------------------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """A JSON-able description of the graph (node kinds, inputs, shapes, domains)."""
        nodes = []
        for n, op in self.items():
            d: dict[str, Any] = {"name": n, "op": op.kind, "inputs": self.inputs_of(n), "dim": self.dim(n)}
            if isinstance(op, Dense):
                d["weights"] = ("fixed" if op.sparse is not None else
                                op.weights.describe() if op.weights else None)
                d["bias"] = op.bias.describe() if op.bias else None
            if isinstance(op, Input) and op.lo is not None and op.hi is not None:
                d["domain"] = [op.lo.tolist(), op.hi.tolist()]
            nodes.append(d)
        return {"name": self.name, "nodes": nodes, "input": self.input, "output": self.output}

    def to_json(self) -> str:
        return json.dumps(self.describe(), indent=2)

    def __repr__(self) -> str:
        chain = " -> ".join(f"{n}:{self.op(n).kind}({self.dim(n)})" for n in self._order)
        return f"Network({self.name}: {chain})"


def node_interval(net: Network, node: str, bounds: dict[str, tuple[FloatArray, FloatArray]]
                  ) -> tuple[FloatArray, FloatArray]:
    """Interval of ``node``'s output from the intervals of its inputs in ``bounds``."""
    op = net.op(node)
    srcs = net.inputs_of(node)
    if op.arity == 1:
        return op.interval(*bounds[srcs[0]])
    return op.interval_many([bounds[s][0] for s in srcs], [bounds[s][1] for s in srcs])  # type: ignore


def predict_from_output(out: FloatArray) -> npt.NDArray[np.int64]:
    """Class indices from outputs: argmax with first-index ties; one output unit gives class ``output > 0``."""
    out = np.asarray(out)
    if out.ndim == 1:
        out = out[:, None]
    if out.shape[1] == 1:
        return (out[:, 0] > 0).astype(np.int64)
    return np.argmax(out, axis=1).astype(np.int64)


def from_description(desc: dict[str, Any], params: dict[str, tuple[FloatArray, FloatArray | None]]) -> Network:
    """Rebuild a fixed-weight network from :meth:`Network.describe` output and its parameters."""
    g = nx.DiGraph()
    for d in desc["nodes"]:
        kind = d["op"]
        if kind == "input":
            dom = d.get("domain")
            op: Op = Input(dim=int(d["dim"]), lo=np.asarray(dom[0]) if dom else None,
                           hi=np.asarray(dom[1]) if dom else None)
        elif kind == "dense":
            W, b = params[d["name"]]
            W = np.asarray(W, dtype=np.float64)
            op = Dense(n_in=W.shape[1], n_out=W.shape[0], weights=ParamDomain.fixed(W),
                       bias=None if b is None else ParamDomain.fixed(b))
        elif kind in NODE_ACTIVATIONS:
            op = NODE_ACTIVATIONS[kind]()
        else:
            raise ValueError(f"unknown op kind '{kind}'")
        g.add_node(d["name"], op=op, inputs=tuple(d["inputs"]))
        for src in d["inputs"]:
            g.add_edge(src, d["name"])
    return Network(g, desc.get("name", "net"))


def validate_graph(g: nx.DiGraph, name: str) -> list[Diagnostic]:
    """Structural checks shared by the language checker and the builder."""
    diags: list[Diagnostic] = []
    if not nx.is_directed_acyclic_graph(g):
        diags.append(Diagnostic("E0110", f"network '{name}' has a cycle"))
    inputs = [n for n, d in g.nodes(data=True) if isinstance(d["op"], Input)]
    if not inputs:
        diags.append(Diagnostic("E0111", f"network '{name}' has no input"))
    elif len(inputs) > 1:
        diags.append(Diagnostic("E0113", f"network '{name}' has {len(inputs)} inputs ({', '.join(inputs)}); "
                                "it takes exactly one", g.nodes[inputs[1]]["op"].span,
                                ("help: declare one input holding every feature, e.g. network n(x: 12)",)))
    sinks = [n for n in g.nodes if g.out_degree(n) == 0 and not isinstance(g.nodes[n]["op"], Input)]
    if len(sinks) > 1:
        op = g.nodes[sinks[0]]["op"]
        diags.append(Diagnostic("E0112", f"network '{name}' has {len(sinks)} outputs ({', '.join(sinks)}); "
                                "exactly one node may be unused", op.span,
                                ("help: every node but the output must feed another node",)))
    return diags


__all__ = ["Network", "predict_from_output", "from_description", "validate_graph", "Identity", "CheckError"]
