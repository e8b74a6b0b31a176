"""nnmip: neural networks as mixed-integer optimization models."""

__version__ = "0.1.0"
