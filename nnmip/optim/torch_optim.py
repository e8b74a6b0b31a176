"""The sparse optimisers as ``torch.optim.Optimizer`` subclasses (needs PyTorch; nnmip never requires it).

Same update rules as :mod:`nnmip.optim.optimizers` with the l1 penalty ``lambda * sum |w|`` on every parameter of
a group whose ``weight_decay``-like option ``lam`` is positive:

* :class:`ProxSGTorch`: ``w <- sign(v) max(|v| - lr lam, 0)``, ``v = w - lr grad``;
* :class:`OBProxSGTorch`: Prox-SG steps while ``stage == "prox"``, orthant steps while ``stage == "orthant"``
  (zeros frozen, step on ``grad + lam sign(w)``, sign changes projected to zero); call :meth:`start_epoch` before
  every epoch so that ``n_p`` / ``n_o`` (``None``: infinity, OBProx-SG+) switch the stages.

References: Chen et al., arXiv:2004.03639 (OBProx-SG); Chen et al., arXiv:2011.04868.
"""

from __future__ import annotations

from typing import Any

try:
    import torch
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("nnmip.optim.torch_optim needs PyTorch (pip install torch); the numpy optimisers of "
                      "nnmip.optim need nothing more") from exc


class ProxSGTorch(torch.optim.Optimizer):
    """Proximal stochastic gradient with the l1 penalty (soft thresholding after the step)."""

    def __init__(self, params: Any, lr: float = 0.1, lam: float = 1e-3) -> None:
        if lr <= 0 or lam < 0:
            raise ValueError("lr must be positive and lam non-negative")
        super().__init__(params, {"lr": lr, "lam": lam})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, lam = group["lr"], group["lam"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                v = p - lr * p.grad
                p.copy_(torch.sign(v) * torch.clamp(v.abs() - lr * lam, min=0.0))
        return loss


class OBProxSGTorch(torch.optim.Optimizer):
    """OBProx-SG: Prox-SG epochs alternating with orthant epochs (``n_o=None``: OBProx-SG+)."""

    def __init__(self, params: Any, lr: float = 0.1, lam: float = 1e-3, n_p: int = 5, n_o: int | None = 5) -> None:
        if lr <= 0 or lam < 0 or n_p < 0 or (n_o is not None and n_o < 1):
            raise ValueError("lr > 0, lam >= 0, n_p >= 0 and n_o >= 1 (or None) are required")
        super().__init__(params, {"lr": lr, "lam": lam})
        self.n_p, self.n_o = n_p, n_o
        self.epoch = 0

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def stage(self) -> str:
        if self.n_o is None:
            return "prox" if self.epoch < self.n_p else "orthant"
        return "prox" if self.epoch % (self.n_p + self.n_o) < self.n_p else "orthant"

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        orthant = self.stage == "orthant"
        for group in self.param_groups:
            lr, lam = group["lr"], group["lam"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if not orthant:
                    v = p - lr * p.grad
                    p.copy_(torch.sign(v) * torch.clamp(v.abs() - lr * lam, min=0.0))
                    continue
                sign = torch.sign(p)
                trial = p - lr * (p.grad + lam * sign)
                trial = torch.where(torch.sign(trial) == sign, trial, torch.zeros_like(trial))
                p.copy_(torch.where(sign == 0, torch.zeros_like(p), trial))
        return loss
