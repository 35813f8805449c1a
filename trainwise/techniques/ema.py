"""Exponential moving average (Polyak averaging) of a model's weights.

``ema <- decay * ema + (1 - decay) * weights`` after every optimizer step. Early on the average would
be dominated by the random initial weights, so the warm-up uses ``min(decay, (1 + t) / (10 + t))``
after ``t`` updates (TensorFlow's ExponentialMovingAverage with ``num_updates``): 0.1, 0.18, 0.25 ...
rising towards ``decay``. Floating-point buffers (batch-norm running statistics) are averaged too;
integer buffers (batch counters) are copied.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def ema_decay(decay: float, updates: int, warmup: bool = True) -> float:
    """The decay used for the update after ``updates`` earlier updates."""
    return min(decay, (1 + updates) / (10 + updates)) if warmup else decay


@torch.no_grad()
def ema_update(ema: list[torch.Tensor], params: list[torch.Tensor], decay: float) -> None:
    """In place: each ``ema[i] = decay * ema[i] + (1 - decay) * params[i]``."""
    torch._foreach_mul_(ema, decay)
    torch._foreach_add_(ema, params, alpha=1 - decay)


def copy_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@torch.no_grad()
def update_state(ema: dict[str, torch.Tensor], model: torch.nn.Module, decay: float) -> None:
    """One EMA step of a whole state dict: floats averaged, the rest copied."""
    current = model.state_dict()
    names = [k for k, v in ema.items() if v.is_floating_point()]
    ema_update([ema[k] for k in names], [current[k].detach() for k in names], decay)
    for k, v in ema.items():
        if not v.is_floating_point():
            v.copy_(current[k])


@contextmanager
def swapped_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> Iterator[torch.nn.Module]:
    """Temporarily load ``weights`` into ``model`` (e.g. to evaluate the EMA); the raw weights come back after."""
    raw = copy_state(model)
    model.load_state_dict(weights)
    try:
        yield model
    finally:
        model.load_state_dict(raw)
