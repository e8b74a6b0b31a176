"""Sparse gradient training (OBProx-SG, Prox-SG, RDA, SPR), pruning and fine-tuning of continuous-weight networks.

From a ``.nnmip`` file: ``strategy = obproxsg(...)``, ``prox_sg(...)``, ``rda(...)`` or ``spr(...)`` in a
``train`` statement (docs/sparse.md); from Python :func:`train_sparse` with a :class:`SparseConfig`.
"""

from nnmip.drivers.sparse.prune import remove_dead
from nnmip.drivers.sparse.train import METHODS, SparseConfig, SparseResult, train_sparse

__all__ = ["METHODS", "SparseConfig", "SparseResult", "remove_dead", "train_sparse"]
