"""Optimizer trajectories against torch.optim: 100 steps, float64, within 1e-6."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from scratch_helpers import N, assert_same_path, trajectories

from trainwise.scratch import optimizers as scratch_optim

# (name, scratch class, torch class, keyword arguments shared by both)
CASES: list[tuple[str, type, type, dict[str, Any]]] = [
    ("sgd", scratch_optim.SGD, torch.optim.SGD, {"lr": 0.1}),
    ("sgd_weight_decay", scratch_optim.SGD, torch.optim.SGD, {"lr": 0.1, "weight_decay": 0.01}),
    ("momentum", scratch_optim.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}),
    ("momentum_dampening", scratch_optim.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "dampening": 0.5}),
    ("nesterov", scratch_optim.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("adagrad", scratch_optim.Adagrad, torch.optim.Adagrad, {"lr": 0.1}),
    ("adagrad_decay", scratch_optim.Adagrad, torch.optim.Adagrad,
     {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.01, "initial_accumulator_value": 0.1}),
    ("rmsprop", scratch_optim.RMSprop, torch.optim.RMSprop, {"lr": 0.01}),
    ("rmsprop_centered_momentum", scratch_optim.RMSprop, torch.optim.RMSprop,
     {"lr": 0.005, "alpha": 0.9, "momentum": 0.5, "centered": True, "weight_decay": 0.01}),
    ("adam", scratch_optim.Adam, torch.optim.Adam, {"lr": 0.01}),
    ("adam_l2", scratch_optim.Adam, torch.optim.Adam, {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.05}),
    ("adamw", scratch_optim.AdamW, torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}),
]  # fmt: skip


@pytest.mark.parametrize("name, ours, theirs, kwargs", CASES, ids=[c[0] for c in CASES])
def test_matches_torch_over_100_minibatch_steps(name: str, ours: type, theirs: type, kwargs: dict) -> None:
    assert_same_path(*trajectories(lambda p: ours(p, **kwargs), lambda p: theirs(p, **kwargs), batch_size=12))


@pytest.mark.parametrize("batch_size", [N, 12, 1], ids=["batch", "mini-batch", "stochastic"])
def test_gradient_descent_variants_match_torch(batch_size: int) -> None:
    assert_same_path(
        *trajectories(
            lambda p: scratch_optim.SGD(p, lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1), batch_size=batch_size
        )
    )


def test_adam_bias_correction_matters() -> None:
    """Without bias correction the first step would be ~ (1 - beta1) / sqrt(1 - beta2) times
    larger; with it the first Adam step moves every coordinate by almost exactly lr."""
    p = np.array([1.0, -2.0, 3.0])
    scratch_optim.Adam([p], lr=0.01).step([np.array([0.5, -7.0, 1e-3])])
    np.testing.assert_allclose(p, [0.99, -1.99, 2.99], atol=1e-7)


def test_adamw_decay_is_decoupled_from_the_gradient() -> None:
    """With zero gradient Adam's coupled decay still goes through the adaptive scaling
    (a step of about lr), while AdamW shrinks the weight by exactly lr * wd * p."""
    p_adam, p_adamw = np.array([2.0]), np.array([2.0])
    scratch_optim.Adam([p_adam], lr=0.1, weight_decay=0.1).step([np.zeros(1)])
    scratch_optim.AdamW([p_adamw], lr=0.1, weight_decay=0.1).step([np.zeros(1)])
    assert p_adamw[0] == pytest.approx(2.0 * (1 - 0.1 * 0.1), abs=1e-15)
    assert p_adam[0] == pytest.approx(2.0 - 0.1, abs=1e-6)


def test_step_checks_gradient_count() -> None:
    with pytest.raises(ValueError):
        scratch_optim.SGD([np.zeros(2), np.zeros(3)], lr=0.1).step([np.zeros(2)])
