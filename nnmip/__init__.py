"""nnmip: neural networks as mixed-integer optimization models.

The public API, by stage of the pipeline::

    # the language
    from nnmip import parse, parse_file, check, format_program, load_program
    # networks (the IR) and input sets / properties for verification
    from nnmip import Network, NetworkBuilder, real, integer, fixed
    from nnmip import box, linf, l1, l2, halfspaces, Region, classified, maximize, minimize, output_box
    # training: the exact MILP, the strategies, the scikit-learn estimator
    from nnmip import train_network, train_split, train_local_search, run_train_task, BinarizedNetworkClassifier
    # fixed networks: verification and lossless compression
    from nnmip import verify, robust_accuracy, verify_vnnlib, compress, propagate_bounds, tighten_bounds
    # files: ONNX, nnmip weights, LP / MPS, VNN-LIB
    from nnmip import import_onnx, export_onnx, load_npz, save_npz, write_model, parse_vnnlib

The core names load with the package; the heavier ones (drivers, ONNX, scikit-learn) load on first use, so
``import nnmip`` stays quick for the command line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"


# first: Ctrl-C while the command line loads ends it quietly (see nnmip/_start.py)
import nnmip._start  # noqa: F401, I001

from nnmip.check import check
from nnmip.drivers.task import load_program, run_train_task
from nnmip.drivers.train import TrainResult, train_network
from nnmip.errors import (
    BackendUnavailable,
    CheckError,
    DataError,
    FormulationError,
    NnmipError,
    NnmipSyntaxError,
    NoSolutionError,
    SolverError,
)
from nnmip.ir import Network, NetworkBuilder, fixed, integer, real
from nnmip.ir.spec import (
    InputSet,
    Property,
    Region,
    box,
    classified,
    halfspaces,
    l1,
    l2,
    linf,
    maximize,
    minimize,
    output_box,
)
from nnmip.model import MatrixModel
from nnmip.solution import SolveOptions, Status
from nnmip.syntax import format_program, parse, parse_file

if TYPE_CHECKING:  # the lazily loaded names, for type checkers and IDEs
    from nnmip.drivers.compress import CompressResult, compress
    from nnmip.drivers.strategies import train_local_search, train_split
    from nnmip.drivers.verify import VerifyResult, robust_accuracy, verify, verify_vnnlib
    from nnmip.io.onnx import export_onnx, import_onnx
    from nnmip.io.vnnlib import parse_vnnlib
    from nnmip.io.weights import load_npz, save_npz
    from nnmip.io.writers import write_model
    from nnmip.passes.bounds import propagate_bounds, tighten_bounds
    from nnmip.sklearn import BinarizedNetworkClassifier

#: name -> module of the names loaded on first use
_LAZY = {
    "verify": "nnmip.drivers.verify",
    "VerifyResult": "nnmip.drivers.verify",
    "robust_accuracy": "nnmip.drivers.verify",
    "verify_vnnlib": "nnmip.drivers.verify",
    "compress": "nnmip.drivers.compress",
    "CompressResult": "nnmip.drivers.compress",
    "train_split": "nnmip.drivers.strategies",
    "train_local_search": "nnmip.drivers.strategies",
    "propagate_bounds": "nnmip.passes.bounds",
    "tighten_bounds": "nnmip.passes.bounds",
    "import_onnx": "nnmip.io.onnx",
    "export_onnx": "nnmip.io.onnx",
    "load_npz": "nnmip.io.weights",
    "save_npz": "nnmip.io.weights",
    "write_model": "nnmip.io.writers",
    "parse_vnnlib": "nnmip.io.vnnlib",
    "BinarizedNetworkClassifier": "nnmip.sklearn",
}


def __getattr__(name: str) -> Any:
    """Load the heavier public names on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nnmip' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BackendUnavailable", "BinarizedNetworkClassifier", "CheckError", "CompressResult", "DataError",
    "FormulationError", "InputSet", "MatrixModel", "Network", "NetworkBuilder", "NnmipError", "NnmipSyntaxError",
    "NoSolutionError", "Property", "Region", "SolveOptions", "SolverError", "Status", "TrainResult", "VerifyResult",
    "box", "check", "classified", "compress", "export_onnx", "fixed", "format_program", "halfspaces",
    "import_onnx", "integer", "l1", "l2", "linf", "load_npz", "load_program", "maximize", "minimize", "output_box",
    "parse", "parse_file", "parse_vnnlib", "propagate_bounds", "real", "robust_accuracy", "run_train_task",
    "save_npz", "tighten_bounds", "train_local_search", "train_network", "train_split", "verify",
    "verify_vnnlib", "write_model", "__version__",
]
