"""Analyses and transforms of networks that come before formulation (bounds, ...)."""

from nnmip.passes.bounds import BoundMap, BoundReport, propagate_bounds, tighten_bounds

__all__ = ["BoundMap", "BoundReport", "propagate_bounds", "tighten_bounds"]
