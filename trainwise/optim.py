"""Optimizers (torch.optim) with parameter groups, the LR scaling rule, and learning-rate schedules.

Schedules are pure functions of the optimizer step (``lr_factor_fn``), so warm-up composes with any of
them and resume needs nothing but the step count; ``LearningRate`` is the one place that assigns the LR
(``base * lr_at(step) * plateau factor * State.lr_scale``, once before each step). OneCycle follows
torch's OneCycleLR formula and the plateau factor is torch's ReduceLROnPlateau.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from trainwise.config import OptimConfig, ScheduleConfig
from trainwise.metrics import resolve_mode
from trainwise.optimizers import OPTIMIZERS



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
    """``cfg.name``'s optimizer (trainwise.optimizers) on ``params``; a group's ``lr_mult`` scales its LR."""
    extra = {} if cfg.fused is None else {"fused": cfg.fused}
    params = [dict(g, lr=lr * g["lr_mult"]) if isinstance(g, dict) and "lr_mult" in g else g for g in params]
    return OPTIMIZERS[cfg.name].build(params, cfg, lr, extra)


# ----------------------------------------------------------------------------------------- schedules

def _cos_anneal(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)


def onecycle_factor(step: int, total_steps: int, pct_start: float, div_factor: float, final_div_factor: float) -> float:
    """lr(step) / max_lr of torch's OneCycleLR (two phases, cosine annealing, no momentum cycling):
    from max_lr / div_factor up to max_lr by step ``pct_start * total - 1``, then down to
    max_lr / (div_factor * final_div_factor) at the last step."""
    initial, final = 1 / div_factor, 1 / (div_factor * final_div_factor)
    peak = pct_start * total_steps - 1
    if step <= peak:
        return _cos_anneal(initial, 1.0, step / peak if peak > 0 else 1.0)
    return _cos_anneal(1.0, final, min((step - peak) / max(total_steps - 1 - peak, 1e-12), 1.0))


def _constant(step: int) -> float:
    return 1.0


def lr_factor_fn(cfg: ScheduleConfig, steps_per_epoch: int, total_steps: int) -> Callable[[int], float]:
    """lr(step) / base_lr for every schedule; ``step`` counts optimizer steps from 0.

    Step and exponential decay change once per epoch, as torch's StepLR/ExponentialLR do when stepped
    per epoch; cosine and linear decay move every step (CosineAnnealingLR with T_max = total steps).
    The linear warm-up (``warmup_epochs``) goes in front of every schedule but onecycle, which rises by
    itself (the config refuses both); under plateau and none it is the only per-step change. For
    onecycle the base is the peak (``max_lr``).
    """
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    if cfg.name == "onecycle":
        return lambda step: onecycle_factor(step, total_steps, cfg.pct_start, cfg.div_factor, cfg.final_div_factor)

    if not warmup and cfg.name in ("none", "plateau"):
        return _constant  # the trainer asks every step: the cheapest answer

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
        return 1.0  # none, plateau

    def factor(step: int) -> float:
        if step < warmup:
            # Linear warm-up from start_factor to 1 over `warmup` steps (torch.optim.lr_scheduler.LinearLR).
            return cfg.warmup_start_factor + (1 - cfg.warmup_start_factor) * step / warmup
        return after_warmup(step)

    return factor


class LearningRate:
    """The one owner of the learning rate: before every optimizer step the trainer calls ``set(step, scale)``,
    which assigns each param group ``base * lr_at(step) * plateau factor * scale`` (as nanoGPT does).

    ``base`` is the group's LR when the optimizer was built (the scaled ``optim.lr`` times the group's
    ``lr_mult``; onecycle: its peak). ``scale`` is ``State.lr_scale``, which the NaN guard lowers on a
    rollback. The plateau factor is torch's ReduceLROnPlateau run on a one-parameter stand-in optimizer
    whose LR is the factor, so its semantics (relative threshold, patience) stay torch's. Everything but
    the plateau factor follows from the step, so resume restores only that.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, steps_per_epoch: int, epochs: int):
        self.optimizer, self.cfg = optimizer, cfg
        groups = optimizer.param_groups
        if cfg.name == "onecycle" and cfg.max_lr is not None:
            self.base = [cfg.max_lr * g.get("lr_mult", 1.0) for g in groups]
        else:
            self.base = [g["lr"] for g in groups]
        self.lr_at = lr_factor_fn(cfg, steps_per_epoch, steps_per_epoch * epochs)
        self.plateau = None
        if cfg.name == "plateau":
            stand_in = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(stand_in, mode=resolve_mode(cfg.monitor),
                                                                      factor=cfg.factor, patience=cfg.patience)
        self.plateau_factor = 1.0
        self.set(0)

    def set(self, step: int, scale: float = 1.0) -> None:
        # Called before every step: a constant schedule skips its function (1.0 * x is x), and one group of
        # float LR (the usual case) skips the loop.
        factor = (1.0 if self.lr_at is _constant else self.lr_at(step)) * self.plateau_factor * scale
        groups = self.optimizer.param_groups
        if len(groups) == 1 and type(groups[0]["lr"]) is float:
            groups[0]["lr"] = self.base[0] * factor
            return
        for group, base in zip(groups, self.base):
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(base * factor)  # train.cuda_graphs: the replayed step reads the LR from device memory
            else:
                group["lr"] = base * factor

    def end_of_epoch(self, value: float) -> None:
        """Plateau: one epoch's monitored value (other schedules ignore it)."""
        if self.plateau is not None:
            self.plateau.step(value)
            self.plateau_factor = self.plateau.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict:
        return {"plateau": None if self.plateau is None else self.plateau.state_dict(), "plateau_factor": self.plateau_factor}

    def load_state_dict(self, state: dict) -> None:
        if self.plateau is not None and state.get("plateau") is not None:
            self.plateau.load_state_dict(state["plateau"])
            self.plateau_factor = state["plateau_factor"]
            self.plateau.optimizer.param_groups[0]["lr"] = self.plateau_factor


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, steps_per_epoch: int, epochs: int):
    """A torch scheduler with trainwise's schedule, for a loop of your own: LambdaLR stepped after every
    optimizer step (plateau: ReduceLROnPlateau stepped after every epoch with the metric; warm-up in front
    of it needs ``LearningRate``)."""
    if cfg.name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=resolve_mode(cfg.monitor), factor=cfg.factor, patience=cfg.patience)
    if cfg.name == "onecycle" and cfg.max_lr is not None:
        for g in optimizer.param_groups:
            g["lr"] = cfg.max_lr * g.get("lr_mult", 1.0)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor_fn(cfg, steps_per_epoch, steps_per_epoch * epochs))
