"""Stochastic sparse optimisers in numpy: Prox-SG, RDA, OBProx-SG (+) and their group variants, SPR steps.

Pure update rules on a flat parameter vector; the training loop that feeds them mini-batch gradients of a network
lives in :mod:`nnmip.drivers.sparse`.  :mod:`nnmip.optim.prox` holds the proximal operators (soft thresholding,
group soft thresholding, the proximal step of the Structured Perspective Regulariser), :mod:`nnmip.optim.penalties`
the regularisers and :mod:`nnmip.optim.optimizers` the methods.  :mod:`nnmip.optim.torch_optim` offers the same
methods as ``torch.optim.Optimizer`` subclasses where PyTorch is installed (it is never required).
"""

from nnmip.optim.optimizers import RDA, SGD, OBProxSG, ProxSG, make_optimizer
from nnmip.optim.penalties import GroupPenalty, L1Penalty, NoPenalty, Penalty, SPRPenalty
from nnmip.optim.prox import group_soft_threshold, soft_threshold, spr_prox

__all__ = ["RDA", "SGD", "GroupPenalty", "L1Penalty", "NoPenalty", "OBProxSG", "Penalty", "ProxSG", "SPRPenalty",
           "group_soft_threshold", "make_optimizer", "soft_threshold", "spr_prox"]
