"""Explicit weight penalties added to the loss.

Only weight matrices and convolution kernels (parameters with two or more dimensions) are penalized,
not biases or normalization weights. The L2 term is ``l2 * sum(w ** 2)`` (Keras' convention, no 1/2);
unlike ``optim.weight_decay`` with AdamW it passes through the optimizer's adaptive scaling.
"""

from __future__ import annotations

import torch

from trainwise.core import Callback, State
from trainwise.techniques.registry import Technique, register


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


# ------------------------------------------------------------ the callback

class WeightPenalty(Callback):
    """Adds the explicit L1/L2 weight penalties (regularization.l1 / l2) to the loss at AFTER_LOSS.

    The reported ``train_loss`` includes the penalty (it is what is minimized).
    """

    step_work = "same"  # the same penalty kernels at every step: a CUDA graph can hold them

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1, self.l2 = l1, l2

    def on_after_loss(self, state: State) -> None:
        state.loss = state.loss + penalty(penalized(state.model), self.l1, self.l2)


register(Technique(
    "penalties", enabled=lambda cfg: cfg.regularization.l1 > 0 or cfg.regularization.l2 > 0,
    build=lambda cfg: [WeightPenalty(cfg.regularization.l1, cfg.regularization.l2)],
    example={"regularization.l1": 1e-5, "regularization.l2": 1e-4},
    docs="Regularization"))
