"""The graph IR: ops with numpy semantics, the Network, and the Python builder."""

from nnmip.ir.builder import NetworkBuilder, fixed, integer, real
from nnmip.ir.network import Network
from nnmip.ir.ops import Dense, Identity, Input, ParamDomain, ReLU, Sigmoid, Sign, Step, Tanh

__all__ = ["Dense", "Identity", "Input", "Network", "NetworkBuilder", "ParamDomain", "ReLU", "Sigmoid", "Sign", "Step",
           "Tanh", "fixed", "integer", "real"]
