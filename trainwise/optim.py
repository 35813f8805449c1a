"""Optimizers (torch.optim) with parameter groups, the LR scaling rule, and learning-rate schedules.

Schedules are pure functions of the optimizer step (``lr_factor(step)``) wrapped in torch's LambdaLR,
so warm-up composes with any of them and resume needs nothing but the step count. OneCycle and
ReduceLROnPlateau are torch's own schedulers.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from trainwise.config import OptimConfig, ScheduleConfig

OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam", "adamw")
SCHEDULES = ("none", "step", "exponential", "cosine", "linear", "onecycle", "plateau")


def scaled_lr(cfg: OptimConfig, batch_size: int) -> float:
    """The linear (Goyal et al. 2017) or square-root scaling rule from ``base_batch_size``."""
    ratio = batch_size / cfg.base_batch_size
    return cfg.lr * {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[cfg.scale_lr]


def param_groups(model: nn.Module, weight_decay: float, exempt_bias_norm: bool, lr_multipliers: dict[str, float] | None = None) -> list[dict]:
    """Split parameters into decayed and non-decayed groups.

    Biases and normalization weights (all 1-D parameters) get no weight decay: decaying them pulls
    BatchNorm scales toward zero without any regularizing benefit. Frozen parameters are left out.
    """
    # Without weight decay the split changes nothing but costs a second pass of the optimizer's Python
    # per step (measurable on small CPU models), so everything stays in one group.
    exempt_bias_norm = exempt_bias_norm and weight_decay > 0
    if lr_multipliers:
        return groups_with_lr_multipliers(model, weight_decay, exempt_bias_norm, lr_multipliers)
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if exempt_bias_norm and p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


def groups_with_lr_multipliers(model: nn.Module, weight_decay: float, exempt_bias_norm: bool, lr_multipliers: dict[str, float]) -> list[dict]:
    """Like ``param_groups``, one group per (decay, LR multiplier): ``lr_mult`` scales the group's learning rate
    (fine-tuning's head and layer-wise decay). The multiplier-1 decayed group comes first, so the History's
    ``lr`` (the first group's) stays the base learning rate where there is one."""
    groups: dict[tuple[bool, float], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            decayed = not (exempt_bias_norm and p.ndim <= 1)
            groups.setdefault((decayed, lr_multipliers.get(name, 1.0)), []).append(p)
    keys = sorted(groups, key=lambda k: (k[1] != 1.0, not k[0]))
    return [{"params": groups[k], "weight_decay": weight_decay if k[0] else 0.0, "lr_mult": k[1]} for k in keys]


def build_optimizer(params, cfg: OptimConfig, lr: float) -> torch.optim.Optimizer:
    extra = {} if cfg.fused is None else {"fused": cfg.fused}
    params = [dict(g, lr=lr * g["lr_mult"]) if isinstance(g, dict) and "lr_mult" in g else g for g in params]
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay, **extra)
    if cfg.name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, eps=1e-10, weight_decay=cfg.weight_decay, **extra)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=cfg.alpha, eps=cfg.eps, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay, **extra)
    return torch.optim.AdamW(params, lr=lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay, **extra)


# ----------------------------------------------------------------------------------------- schedules

def lr_factor_fn(cfg: ScheduleConfig, steps_per_epoch: int, total_steps: int) -> Callable[[int], float]:
    """lr(step) / base_lr for the step-wise schedules; ``step`` counts optimizer steps from 0.

    Step and exponential decay change once per epoch, as torch's StepLR/ExponentialLR do when stepped
    per epoch; cosine and linear decay move every step (CosineAnnealingLR with T_max = total steps).
    """
    warmup = round(cfg.warmup_epochs * steps_per_epoch)

    def after_warmup(step: int) -> float:
        epoch = step // steps_per_epoch
        if cfg.name == "step":
            return cfg.gamma ** (epoch // cfg.step_size)
        if cfg.name == "exponential":
            return cfg.gamma**epoch
        span = max(total_steps - warmup, 1)
        t = min(max(step - warmup, 0), span) / span
        if cfg.name == "cosine":
            return cfg.min_lr_factor + (1 - cfg.min_lr_factor) * (1 + math.cos(math.pi * t)) / 2
        if cfg.name == "linear":
            return 1 - (1 - cfg.min_lr_factor) * t
        return 1.0

    def factor(step: int) -> float:
        if step < warmup:
            # Linear warm-up from start_factor to 1 over `warmup` steps (torch.optim.lr_scheduler.LinearLR).
            return cfg.warmup_start_factor + (1 - cfg.warmup_start_factor) * step / warmup
        return after_warmup(step)

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, steps_per_epoch: int, epochs: int):
    """A scheduler stepped after every optimizer step (plateau: after every epoch with the metric)."""
    total = steps_per_epoch * epochs
    if cfg.name == "onecycle":
        first = optimizer.param_groups[0]
        max_lr = [(cfg.max_lr or first["lr"] / first.get("lr_mult", 1.0)) * g.get("lr_mult", 1.0) for g in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=max_lr, total_steps=total, pct_start=cfg.pct_start,
            div_factor=cfg.div_factor, final_div_factor=cfg.final_div_factor,
            cycle_momentum=False,  # momentum cycling fights Adam's betas and is rarely worth it
        )
    if cfg.name == "plateau":
        mode = "max" if cfg.monitor.endswith(("acc", "f1", "precision", "recall")) else "min"
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=cfg.factor, patience=cfg.patience)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor_fn(cfg, steps_per_epoch, total))

