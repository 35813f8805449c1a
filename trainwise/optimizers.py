"""The optimizers trainwise knows, each with its builder and its usual learning rates, in one table.

``optim.name`` accepts exactly these names, ``optim.build_optimizer`` calls the builder, and the doctor
reads the LR range (evidence that an LR is unusually low or high) and the typical LR (where an LR fix
starts). Adding an optimizer is one entry here. The module imports torch only when a builder runs, so
that reading the config stays fast.

The ranges: adaptive optimizers normalise the step, so their range is narrower and lower than SGD's.
Sources: common defaults (Adam 1e-3, SGD 0.1 with momentum) and UMLAUT's lr > 0.01 flag, applied to
adaptive optimizers only because SGD at 0.1 is ordinary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from trainwise.config import OptimConfig


@dataclass(frozen=True)
class Optimizer:
    # (param groups, optim config, lr, extra keyword arguments such as fused) -> a torch optimizer
    build: Callable[[list, OptimConfig, float, dict[str, Any]], torch.optim.Optimizer]
    lr_range: tuple[float, float]  # usual LRs: below the first is unusually low, above the second unusually high
    typical_lr: float  # a usual starting LR


def _sgd(params, cfg, lr, extra):
    import torch

    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay, **extra)


def _adagrad(params, cfg, lr, extra):
    import torch

    return torch.optim.Adagrad(params, lr=lr, eps=1e-10, weight_decay=cfg.weight_decay, **extra)


def _rmsprop(params, cfg, lr, extra):
    import torch

    # torch's RMSprop takes no fused flag
    return torch.optim.RMSprop(params, lr=lr, alpha=cfg.alpha, eps=cfg.eps, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def _adam(params, cfg, lr, extra):
    import torch

    return torch.optim.Adam(params, lr=lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay, **extra)


def _adamw(params, cfg, lr, extra):
    import torch

    return torch.optim.AdamW(params, lr=lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay, **extra)


OPTIMIZERS: dict[str, Optimizer] = {
    "sgd": Optimizer(_sgd, lr_range=(1e-3, 0.5), typical_lr=0.05),
    "adagrad": Optimizer(_adagrad, lr_range=(1e-3, 0.5), typical_lr=1e-2),
    "rmsprop": Optimizer(_rmsprop, lr_range=(1e-4, 1e-2), typical_lr=1e-3),
    "adam": Optimizer(_adam, lr_range=(1e-4, 1e-2), typical_lr=1e-3),
    "adamw": Optimizer(_adamw, lr_range=(1e-4, 1e-2), typical_lr=1e-3),
}
