"""Sharpness-aware minimization (Foret et al. 2021, "Sharpness-Aware Minimization for Efficiently Improving
Generalization").

SAM looks for weights whose whole neighbourhood has a low loss. Each step takes the gradient g at the
weights w, moves to the worst nearby point w + e with e = rho * g / ||g|| (the first-order solution of
max over ||e|| <= rho of L(w + e)), takes the gradient there, steps back to w and lets the optimizer
apply that second gradient. Any optimizer works as the base one (the paper's SGD, or Adam/AdamW).

Costs two forward and backward passes per step. The second pass is the task loss (``state.forward_loss``,
label smoothing and soft MixUp targets included); explicit L1/L2 penalties enter only the first. Batch-norm
running statistics see both passes.
"""

from __future__ import annotations

import torch

from trainwise.config import SamConfig
from trainwise.core import ORDER, Callback, State
from trainwise.errors import UserError
from trainwise.techniques.registry import Technique, register


@torch.no_grad()
def ascent_step(params: list[torch.Tensor], grads: list[torch.Tensor], rho: float) -> list[torch.Tensor]:
    """Move ``params`` in place by e = rho * g / ||g|| (the norm over all of them) and return e, to undo it.

    The norm stays on the device: nothing waits for it."""
    norm = torch.linalg.vector_norm(torch.stack([n.float() for n in torch._foreach_norm(grads)]))
    eps = torch._foreach_mul(grads, (rho / (norm + 1e-12)).to(grads[0].dtype))
    torch._foreach_add_(params, eps)
    return eps


@torch.no_grad()
def descend_back(params: list[torch.Tensor], eps: list[torch.Tensor]) -> None:
    torch._foreach_sub_(params, eps)


# ------------------------------------------------------------ the callback

class SAM(Callback):
    """At AFTER_BACKWARD (the gradients are unscaled and the monitors and NaN guard have read them): the
    ascent step, a second forward/backward through ``state.forward_loss``, the step back. The optimizer
    step that follows uses the second gradient; clipping applies to it."""

    order = ORDER["sam"]

    def __init__(self, cfg: SamConfig):
        self.rho = cfg.rho

    def on_fit_start(self, state: State) -> None:
        if state.config.train.precision == "fp16":
            raise UserError("SAM with train.precision=fp16 is not supported", expected="fp32 or bf16",
                            received="sam.rho > 0 with fp16 (its loss scaling would need a second scaler pass)",
                            fix="set train.precision=bf16 or fp32")

    def on_after_backward(self, state: State) -> None:
        if state.skip_step:
            return
        params = [p for p in state.model.parameters() if p.grad is not None]
        if not params:
            return
        eps = ascent_step(params, [p.grad for p in params], self.rho)
        for p in params:
            p.grad = None
        _, loss = state.forward_loss(state.inputs, state.targets)
        loss.backward()
        descend_back(params, eps)


register(Technique(
    "sam", enabled=lambda cfg: cfg.sam.rho > 0, build=lambda cfg: [SAM(cfg.sam)],
    example={"sam.rho": 0.05}, docs="Sharpness-aware minimization (SAM)"))
