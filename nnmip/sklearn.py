"""A scikit-learn classifier trained by mixed-integer optimisation: :class:`BinarizedNetworkClassifier`.

>>> from sklearn.datasets import load_iris
>>> from nnmip.sklearn import BinarizedNetworkClassifier
>>> X, y = load_iris(return_X_y=True)
>>> clf = BinarizedNetworkClassifier(hidden=(2,), time_limit=5).fit(X[::5], y[::5])
>>> clf.verified_
True

The network is ``dense -> step`` (or ``sign``) per hidden width, then a dense output layer: one unit for two
classes, one per class otherwise, followed by the same activation for the ``hamming`` loss or by identity
scores for ``hinge`` and ``zero_one``.  ``fit`` trains it with the chosen strategy (the exact MILP, data
splitting or local search), checks the result by the numpy forward pass and keeps the verified loss.
"""

from __future__ import annotations

import logging
import re
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from nnmip.drivers.train import TrainResult
from nnmip.errors import ArgumentTypeError, NoSolutionError, ParameterError, check_number
from nnmip.io.data import Scaler
from nnmip.ir.builder import DomainSpec, NetworkBuilder
from nnmip.ir.ensemble import Ensemble
from nnmip.ir.network import Network
from nnmip.model import MAX_MAGNITUDE
from nnmip.solution import SolveOptions, stops_on_ctrl_c

log = logging.getLogger(__name__)

STRATEGIES = ("exact", "split", "local_search")


def _bad(message: str) -> ParameterError:
    """A bad estimator parameter (``E0109``, a ``ValueError`` as scikit-learn expects)."""
    e = ParameterError.at("E0109", message, notes=["help: see help(BinarizedNetworkClassifier) for the parameters"])
    assert isinstance(e, ParameterError)
    return e
_DOMAIN = re.compile(r"^\s*(real|int)\s*\[\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*\]\s*$")


def parse_domain(spec: str | tuple[str, float, float], what: str) -> DomainSpec:
    """``"real[-1, 1]"``, ``"int[-1, 1]"`` or ``("real", -1, 1)`` -> a parameter domain."""
    if isinstance(spec, str):
        m = _DOMAIN.match(spec)
        if m is None:
            raise _bad(f"{what} must look like 'real[-1, 1]' or 'int[-1, 1]', got {spec!r}")
        kind, lo, hi = m.group(1), float(m.group(2)), float(m.group(3))
    else:
        try:
            kind, lo, hi = spec[0], float(spec[1]), float(spec[2])
        except (TypeError, ValueError, IndexError, KeyError):
            raise _bad(f"{what} must look like 'real[-1, 1]' or ('int', -1, 1), got {spec!r}") from None
    if kind not in ("real", "int") or not lo <= hi or not (np.isfinite(lo) and np.isfinite(hi)):
        raise _bad(f"{what} must be a finite real or int domain with lo <= hi, got {spec!r}")
    return DomainSpec(kind, lo, hi)


def expected_failed_checks(estimator: BinarizedNetworkClassifier) -> dict[str, str]:
    """scikit-learn common checks that cannot apply to this estimator, each with the reason.

    Pass it to ``parametrize_with_checks(..., expected_failed_checks=expected_failed_checks)`` or
    ``check_estimator(est, expected_failed_checks=expected_failed_checks(est))``.
    """
    return {
        "check_sample_weight_equivalence_on_dense_data":
            "the training MILP has no sample weights (fit takes none)",
        "check_sample_weights_not_an_array": "fit takes no sample_weight",
        "check_classifiers_train":
            "the check asks for training accuracy > 0.83 on three overlapping blobs; data splitting with a small "
            "split budget cannot reach it (points of one cluster share their activations, so no hidden "
            "hyperplane may cut a cluster) and a budget that does takes minutes per fit",
    }


class BinarizedNetworkClassifier(ClassifierMixin, BaseEstimator):
    """A binarized (step or sign) network trained by MILP, as a scikit-learn classifier.

    Parameters
    ----------
    hidden : tuple of int, default=(4,)
        Widths of the hidden layers.
    activation : {"step", "sign"}, default="step"
        Activation of every hidden layer (and of the output layer for the hamming loss).
    weights : str or tuple, default="real[-1, 1]"
        Domain of the hidden layers' weights: ``"real[lo, hi]"`` or ``"int[lo, hi]"``.
    bias : str or tuple, default="real[-10, 10]"
        Domain of every bias.
    output_weights : str, tuple or None, default="int[-1, 1]"
        Domain of the output layer's weights (``None``: the same as ``weights``).
    loss : {"hamming", "hinge", "zero_one"}, default="hamming"
        Training loss (docs/formulations.md §7).
    margin : float, default=1.0
        Output margin of the hinge and zero_one losses.
    eps : float > 0 or None, default=0.05
        Activation margin of the step units on the scaled features (``None``: the library default 1e-3; a
        wider margin generalises better on minmax-scaled data, see docs/training.md).
    strategy : {"exact", "split", "local_search"}, default="split"
        The exact MILP, iterative data splitting or local search (docs/training.md); with ``ensemble``, the
        strategy of every member.
    strategy_options : dict or None, default=None
        Extra keyword arguments of the strategy, e.g. ``{"max_splits": 10}``.
    solver : str, default="highs"
        MILP backend.
    time_limit : float or None, default=10.0
        Seconds for the whole fit (every solve gets what remains; an ensemble's members share it).
    time_budget : float or None, default=None
        Seconds for a whole strategy run (default: ``time_limit``).
    solve_time_limit : float or None, default=None
        Seconds per MILP solve (a cap inside the fit's budget).
    ensemble : {None, "one_vs_one", "one_vs_rest"}, default=None
        Train one binary network per pair of classes (majority vote, ties to the smallest class) or per class
        (highest output score) instead of one multi-class network; see docs/training.md.
    objectives : tuple of str, default=()
        Secondary objectives after the loss, solved lexicographically: ``"max_margin"``, ``"min_weight"``.
    workers : int, default=2
        Processes training ensemble members at once.
    scale : {"minmax", "none"}, default="minmax"
        Feature scaling fitted in ``fit``; ``"none"`` when a scaler comes before this estimator in a Pipeline.
    seed : int, default=0
        Seeds the strategy (batches, 2-means splits, random starts).

    Attributes
    ----------
    network_ : Network or Ensemble
        The trained network (on scaled features), or the ensemble.
    scaler_ : Scaler
        The feature scaling fitted in ``fit``.
    loss_ : float
        The training loss of ``network_`` by the forward pass.
    status_ : str
        How the last solve or strategy ended (``optimal`` only when proven).
    verified_ : bool
        Whether the forward pass reproduced the solver's activations.
    history_ : list of dict
        One record per strategy iteration.
    classes_, n_features_in_
        As usual.
    """

    def __init__(self, hidden: tuple[int, ...] = (4,), activation: str = "step", weights: Any = "real[-1, 1]",
                 bias: Any = "real[-10, 10]", output_weights: Any = "int[-1, 1]", loss: str = "hamming",
                 margin: float = 1.0, eps: float | None = 0.05, strategy: str = "split",
                 strategy_options: dict[str, Any] | None = None, solver: str = "highs",
                 time_limit: float | None = 10.0, time_budget: float | None = None, scale: str = "minmax",
                 seed: int = 0, solve_time_limit: float | None = None, ensemble: str | None = None,
                 objectives: tuple[str, ...] = (), workers: int = 2) -> None:
        self.hidden = hidden
        self.activation = activation
        self.weights = weights
        self.bias = bias
        self.output_weights = output_weights
        self.loss = loss
        self.margin = margin
        self.eps = eps
        self.strategy = strategy
        self.strategy_options = strategy_options
        self.solver = solver
        self.time_limit = time_limit
        self.time_budget = time_budget
        self.scale = scale
        self.seed = seed
        self.solve_time_limit = solve_time_limit
        self.ensemble = ensemble
        self.objectives = objectives
        self.workers = workers

    #: scikit-learn's own parameter validation (``_validate_params`` in ``fit``); its InvalidParameterError is
    #: turned into a ParameterError naming the parameter
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "hidden": [Interval(Integral, 1, None, closed="left"), tuple, list, np.ndarray],
        "activation": [StrOptions({"step", "sign"})],
        "weights": [str, tuple, list],
        "bias": [str, tuple, list],
        "output_weights": [str, tuple, list, None],
        "loss": [StrOptions({"hamming", "hinge", "zero_one"})],
        "margin": [Interval(Real, 0, MAX_MAGNITUDE, closed="right")],
        "eps": [Interval(Real, 0, MAX_MAGNITUDE, closed="right"), None],
        "strategy": [StrOptions(set(STRATEGIES))],
        "strategy_options": [dict, None],
        "solver": [str],
        "time_limit": [Interval(Real, 0, None, closed="neither"), None],
        "time_budget": [Interval(Real, 0, None, closed="neither"), None],
        "solve_time_limit": [Interval(Real, 0, None, closed="neither"), None],
        "scale": [StrOptions({"minmax", "none"})],
        "seed": [Interval(Integral, 0, 2**32 - 1, closed="both")],
        "ensemble": [StrOptions({"one_vs_one", "one_vs_rest"}), None],
        "objectives": [tuple, list],
        "workers": [Interval(Integral, 1, 1024, closed="both")],
    }

    def _check_parameters(self) -> None:
        """scikit-learn's validation of ``_parameter_constraints``, as a ParameterError naming the parameter."""
        try:
            self._validate_params()
        except InvalidParameterError as exc:
            m = re.search(r"The '(\w+)' parameter", str(exc))
            name = m.group(1) if m else "parameter"
            e = ParameterError.at("E0109", f"argument '{name}': {exc}",
                                  notes=["help: see help(BinarizedNetworkClassifier) for the parameters"])
            raise e from None
        if self.strategy_options:
            import inspect

            from nnmip.drivers import strategies, train

            fn = {"exact": train.train_network, "split": strategies.train_split,
                  "local_search": strategies.train_local_search}[self.strategy]
            known = set(inspect.signature(fn).parameters) - {"net", "X", "y", "n_classes"}
            for key in self.strategy_options:
                if not isinstance(key, str) or key not in known:
                    raise _bad(f"argument 'strategy_options' holds {key!r}, not an option of the {self.strategy} "
                               f"strategy (options: {', '.join(sorted(known))})")

    # -- scikit-learn protocol ---------------------------------------------------------------------------------
    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False       # the training MILP needs finite data
        tags.input_tags.sparse = False          # dense numpy only
        tags.classifier_tags.multi_class = True
        tags.target_tags.single_output = True
        tags.non_deterministic = self.time_limit is not None   # a time-limited solve may stop at any incumbent
        return tags

    def build_network(self, n_features: int, n_classes: int) -> Network:
        """The untrained network for ``n_features`` inputs and ``n_classes`` classes."""
        if self.activation not in ("step", "sign"):
            raise _bad(f"activation must be 'step' or 'sign', got {self.activation!r}")
        if self.loss not in ("hamming", "hinge", "zero_one"):
            raise _bad(f"loss must be 'hamming', 'hinge' or 'zero_one', got {self.loss!r}")
        try:
            widths = tuple(int(w) for w in np.atleast_1d(np.asarray(self.hidden, dtype=np.int64)))
        except (TypeError, ValueError, OverflowError):
            raise _bad(f"hidden must be a width or a tuple of widths, got {self.hidden!r}") from None
        if not widths or any(w < 1 for w in widths):
            raise _bad(f"hidden widths must be positive, got {self.hidden!r}")
        from nnmip.io.files import check_memory

        sizes = (n_features, *widths, max(n_classes, 2))
        check_memory(24.0 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True)), "the network's weights")
        w_dom = parse_domain(self.weights, "weights")
        b_dom = parse_domain(self.bias, "bias")
        o_dom = w_dom if self.output_weights is None else parse_domain(self.output_weights, "output_weights")
        nb = NetworkBuilder("classifier")
        x = nb.input("x", n_features)
        for i, w in enumerate(widths, start=1):
            x = nb.activation(self.activation, f"a{i}", nb.dense(f"h{i}", x, w, weights=w_dom, bias=b_dom))
        n_out = 1 if n_classes == 2 or self.ensemble is not None else n_classes
        out = nb.dense("out", x, n_out, weights=o_dom, bias=b_dom)
        if self.loss == "hamming":
            nb.activation(self.activation, "y", out)
        else:
            nb.identity("y", out)
        return nb.build()

    @stops_on_ctrl_c
    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> BinarizedNetworkClassifier:
        """Train the network on ``X`` (n_samples, n_features) and labels ``y``."""
        self._check_parameters()
        try:
            Xv, y = validate_data(self, X, y, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ParameterError):
                raise
            name = "y" if re.search(r"\by\b|label|target", str(exc)) else "X"
            cls = ArgumentTypeError if isinstance(exc, TypeError) else ParameterError
            raise cls.at("E0108", f"argument '{name}': {exc}",
                         notes=["help: X is a finite float array (n_samples, n_features), y one label per row"]
                         ) from None
        X = np.asarray(Xv, dtype=np.float64)
        try:
            check_classification_targets(y)
        except ValueError as exc:
            raise _bad(f"argument 'y': {exc}") from None
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if self.classes_.size < 2:
            raise _bad(f"the classifier needs at least 2 classes in the data, got 1 class: "
                             f"{self.classes_[0]!r}")
        if self.scale not in ("minmax", "none"):
            raise _bad(f"scale must be 'minmax' or 'none', got {self.scale!r}")
        if self.strategy not in STRATEGIES:
            raise _bad(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        check_number("margin", self.margin, strict=True)
        check_number("eps", self.eps, strict=True, none=True)
        check_number("time_limit", self.time_limit, strict=True, none=True)
        check_number("time_budget", self.time_budget, strict=True, none=True)
        check_number("solve_time_limit", self.solve_time_limit, strict=True, none=True)
        check_number("workers", self.workers, integer=True, strict=True)
        check_number("seed", self.seed, integer=True)
        if not isinstance(self.solver, str):
            raise _bad(f"solver must be a solver name such as 'highs', got {self.solver!r}")
        if self.ensemble not in (None, "one_vs_one", "one_vs_rest"):
            raise _bad(f"ensemble must be None, 'one_vs_one' or 'one_vs_rest', got {self.ensemble!r}")
        self.scaler_ = Scaler.fit(self.scale, X)
        Xs = self.scaler_.transform(X)
        net = self.build_network(X.shape[1], int(self.classes_.size))
        res = self._train(net, Xs, y_idx.astype(np.int64), int(self.classes_.size))
        if res.predictor is None:
            raise NoSolutionError.at("E0502", f"training ended '{res.status}' without a verified network",
                                     notes=["help: raise time_limit, or use strategy='split'"])
        self.result_ = res
        self.network_ = res.predictor
        self.loss_ = res.loss
        self.status_ = str(res.status)
        self.verified_ = bool(res.verified)
        self.history_ = list(res.history)
        return self

    def _train(self, net: Network, X: npt.NDArray[np.float64], y: npt.NDArray[np.int64],
               n_classes: int) -> TrainResult:
        opts = SolveOptions(time_limit=self.time_limit, solve_time_limit=self.solve_time_limit)
        common: dict[str, Any] = dict(loss=self.loss, margin=self.margin, eps=self.eps, solver=self.solver,
                                      options=opts, objectives=tuple(self.objectives))
        extra = dict(self.strategy_options or {})
        if self.strategy != "exact":
            extra.setdefault("seed", self.seed)
            extra.setdefault("time_budget", self.time_budget)
        if self.ensemble is not None:
            from nnmip.drivers.strategies import train_ensemble

            budget = extra.pop("time_budget", None)
            return train_ensemble(net, X, y, n_classes, kind=self.ensemble, member=self.strategy,
                                  member_options=extra, workers=self.workers, time_budget=budget, **common)
        if self.strategy == "exact":
            from nnmip.drivers.train import train_network

            return train_network(net, X, y, n_classes, **common, **extra)
        if self.strategy == "split":
            from nnmip.drivers.strategies import train_split

            return train_split(net, X, y, n_classes, **common, **extra)
        from nnmip.drivers.strategies import train_local_search

        return train_local_search(net, X, y, n_classes, **common, **extra)

    def decision_function(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The network's output on ``X``: step/sign bits for hamming, scores for hinge and zero_one; for an
        ensemble, the vote counts (one_vs_one) or member scores (one_vs_rest), one column per class.
        """
        check_is_fitted(self, "network_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        Xs = self.scaler_.transform(X)
        if isinstance(self.network_, Ensemble):
            return self.network_.votes(Xs)
        out = np.asarray(self.network_.forward(Xs), dtype=np.float64)
        return out[:, 0] if out.shape[1] == 1 else out

    def predict(self, X: npt.ArrayLike) -> npt.NDArray[Any]:
        """Class labels: argmax of the outputs (first index on ties); ``out > 0`` for one output unit; an
        ensemble's vote (ties to the smallest class).
        """
        check_is_fitted(self, "network_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.classes_[self.network_.predict(self.scaler_.transform(X))]  # type: ignore[no-any-return]

    def to_onnx(self, path: str) -> str:
        """Export the fitted network, raw features in, as ONNX (with the scaling folded in)."""
        check_is_fitted(self, "network_")
        if isinstance(self.network_, Ensemble):
            from nnmip.io.ensemble import export_ensemble_onnx

            export_ensemble_onnx(self.network_, path, self.scaler_)
            return path
        from nnmip.io.onnx import export_onnx

        export_onnx(self.network_, path, self.scaler_)
        return path
