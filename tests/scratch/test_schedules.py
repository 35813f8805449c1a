"""Learning-rate schedules against torch.optim.lr_scheduler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from scratch_helpers import assert_same_path, trajectories

from trainwise.scratch import schedules
from trainwise.scratch.optimizers import SGD, Adam

BASE_LR = 0.1
STEPS = 100

CASES: list[tuple[str, Callable[[int], float], Callable[[torch.optim.Optimizer], Any]]] = [
    ("step", schedules.scheduled("step", BASE_LR, step_size=7, gamma=0.5),
     lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.5)),
    ("exponential", schedules.scheduled("exponential", BASE_LR, gamma=0.95),
     lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.95)),
    # 100 steps with T_max = 30 also cover torch's behaviour past T_max.
    ("cosine", schedules.scheduled("cosine", BASE_LR, t_max=30, eta_min=0.001),
     lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=30, eta_min=0.001)),
    ("warmup", schedules.scheduled("warmup", BASE_LR, start_factor=0.1, total_iters=10),
     lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=10)),
    ("warmup_defaults", schedules.scheduled("warmup", BASE_LR), lambda o: torch.optim.lr_scheduler.LinearLR(o)),
]  # fmt: skip


def _torch_lrs(make: Callable[[torch.optim.Optimizer], Any]) -> list[float]:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=BASE_LR)
    scheduler = make(opt)
    lrs = []
    for _ in range(STEPS):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize("name, ours, theirs", CASES, ids=[c[0] for c in CASES])
def test_schedule_matches_torch(name: str, ours: Callable[[int], float], theirs: Callable) -> None:
    expected = _torch_lrs(theirs)
    got = [ours(t) for t in range(STEPS)]
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert len(set(round(v, 12) for v in got)) > 3  # the schedule really changes the rate


def test_closed_forms() -> None:
    assert schedules.step_lr(1.0, 9, step_size=3, gamma=0.5) == 0.125
    assert schedules.exponential_lr(2.0, 3, gamma=0.5) == 0.25
    assert schedules.cosine_lr(1.0, 0, t_max=10) == 1.0
    assert schedules.cosine_lr(1.0, 5, t_max=10) == pytest.approx(0.5)
    assert schedules.cosine_lr(1.0, 10, t_max=10, eta_min=0.1) == pytest.approx(0.1)
    assert schedules.linear_warmup_lr(1.0, 0, start_factor=0.25, total_iters=4) == 0.25
    assert schedules.linear_warmup_lr(1.0, 2, start_factor=0.25, total_iters=4) == 0.625
    assert schedules.linear_warmup_lr(1.0, 40, start_factor=0.25, total_iters=4) == 1.0


@pytest.mark.parametrize("name", ["step", "cosine"])
def test_scheduled_training_matches_torch(name: str) -> None:
    """Schedule and optimizer together: assign ``opt.lr`` before each step, as torch's scheduler does."""
    ours_schedule, torch_scheduler = next((c[1], c[2]) for c in CASES if c[0] == name)
    if name == "step":
        make_ours, make_torch = (lambda p: SGD(p, lr=BASE_LR, momentum=0.9)), (
            lambda p: torch.optim.SGD(p, lr=BASE_LR, momentum=0.9)
        )
    else:
        make_ours, make_torch = (lambda p: Adam(p, lr=BASE_LR)), (lambda p: torch.optim.Adam(p, lr=BASE_LR))
    assert_same_path(
        *trajectories(make_ours, make_torch, 12, schedule=ours_schedule, torch_scheduler=torch_scheduler)
    )
