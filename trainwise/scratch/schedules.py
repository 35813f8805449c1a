"""Learning-rate schedules as pure functions of the step (or epoch) count.

Each function gives the learning rate after ``t`` calls of the matching
``torch.optim.lr_scheduler`` class's ``step()`` (``t = 0`` is the rate before
any call), written in closed form instead of torch's recursive updates:

========================  ==============================================
``step_lr``               ``StepLR(step_size, gamma)``
``exponential_lr``        ``ExponentialLR(gamma)``
``cosine_lr``             ``CosineAnnealingLR(T_max, eta_min)``
``linear_warmup_lr``      ``LinearLR(start_factor, end_factor, total_iters)``
========================  ==============================================

To drive an optimizer, assign ``optimizer.lr = schedule(t)`` before step
``t``; ``scheduled`` builds such a one-argument schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

Schedule = Callable[[int], float]


def step_lr(base_lr: float, t: int, step_size: int, gamma: float = 0.1) -> float:
    """Multiply by ``gamma`` every ``step_size`` steps: ``base * gamma^floor(t / step_size)``."""
    return base_lr * gamma ** (t // step_size)


def exponential_lr(base_lr: float, t: int, gamma: float) -> float:
    """Multiply by ``gamma`` every step: ``base * gamma^t``."""
    return base_lr * gamma**t


def cosine_lr(base_lr: float, t: int, t_max: int, eta_min: float = 0.0) -> float:
    """Half a cosine from ``base`` down to ``eta_min`` over ``t_max`` steps.

    ``eta_min + (base - eta_min) * (1 + cos(pi * t / t_max)) / 2``.  Past
    ``t_max`` the formula continues periodically (back up, then down), which is
    also what torch's ``CosineAnnealingLR`` does when stepped beyond ``T_max``.
    """
    return eta_min + (base_lr - eta_min) * (1.0 + math.cos(math.pi * t / t_max)) / 2.0


def linear_warmup_lr(
    base_lr: float,
    t: int,
    start_factor: float = 1.0 / 3.0,
    end_factor: float = 1.0,
    total_iters: int = 5,
) -> float:
    """Warm-up: scale ``base`` linearly from ``start_factor`` to ``end_factor`` over ``total_iters``.

    Starting small gives adaptive optimizers time to collect gradient
    statistics before taking full-sized steps.  Defaults match torch's
    ``LinearLR``.
    """
    progress = min(t, total_iters) / total_iters
    return base_lr * (start_factor + (end_factor - start_factor) * progress)


SCHEDULES: dict[str, Callable[..., float]] = {
    "step": step_lr,
    "exponential": exponential_lr,
    "cosine": cosine_lr,
    "warmup": linear_warmup_lr,
}


def scheduled(name: str, base_lr: float, **kwargs: float) -> Schedule:
    """A schedule ``t -> lr`` by name, e.g. ``scheduled("cosine", 0.1, t_max=50)``."""
    return partial(SCHEDULES[name], base_lr, **kwargs)
