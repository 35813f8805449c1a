"""Explicit weight penalties added to the loss.

Only weight matrices and convolution kernels (parameters with two or more dimensions) are penalized,
not biases or normalization weights. The L2 term is ``l2 * sum(w ** 2)`` (Keras' convention, no 1/2);
unlike ``optim.weight_decay`` with AdamW it passes through the optimizer's adaptive scaling.
"""

from __future__ import annotations

import torch


def penalized(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.ndim >= 2 and p.requires_grad]


def l1_penalty(params: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([p.abs().sum() for p in params]).sum()


def l2_penalty(params: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([p.pow(2).sum() for p in params]).sum()


def penalty(params: list[torch.Tensor], l1: float = 0.0, l2: float = 0.0) -> torch.Tensor:
    """``l1 * sum|w| + l2 * sum w^2`` over ``params`` (a scalar on their device)."""
    total = torch.zeros((), device=params[0].device if params else None)
    if params and l1:
        total = total + l1 * l1_penalty(params)
    if params and l2:
        total = total + l2 * l2_penalty(params)
    return total
