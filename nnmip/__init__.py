"""nnmip: neural networks as mixed-integer optimization models.

The public API::

    from nnmip import parse, check, load_program, NetworkBuilder, real, integer, fixed, train_network
"""

from __future__ import annotations

__version__ = "0.1.0"

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
from nnmip.model import MatrixModel
from nnmip.solution import SolveOptions, Status
from nnmip.syntax import format_program, parse, parse_file

__all__ = [
    "BackendUnavailable", "CheckError", "DataError", "FormulationError", "MatrixModel", "Network",
    "NetworkBuilder", "NnmipError", "NnmipSyntaxError", "NoSolutionError", "SolveOptions", "SolverError", "Status",
    "TrainResult", "check", "fixed", "format_program", "integer", "load_program", "parse", "parse_file", "real",
    "run_train_task", "train_network", "__version__",
]
