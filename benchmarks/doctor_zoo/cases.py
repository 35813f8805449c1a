"""The zoo's cases: broken runs on real small data, each with the code it must produce and a clean twin.

A case is a config plus, where no config value can express the fault, a *bug* planted the way it
happens in real code (labels shuffled by a broken join, a bias initialisation bug, raw pixel values,
an LR restart at a phase change). ``expect`` is the code a correct diagnosis names; ``also`` are codes
that are true of the broken run as well (a dead-ReLU run *is* stuck at chance) and are neither
rewarded nor punished. The twin is the same run with the fault removed; it must come out clean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from trainwise.core import Callback, State
from trainwise.data import DataSplits


@dataclass(frozen=True)
class Bug:
    """A fault outside the config: edits the data, the model, and/or adds callbacks."""

    name: str = ""
    data: Callable[[DataSplits, int], None] | None = None
    model: Callable[[torch.nn.Module], None] | None = None
    callbacks: Callable[[], list[Callback]] | None = None


@dataclass(frozen=True)
class Case:
    name: str
    overrides: dict[str, Any]
    expect: str
    twin: dict[str, Any]  # overrides that remove the fault (applied on top of ``overrides``)
    bug: Bug = Bug()
    also: frozenset[str] = field(default_factory=frozenset)
    twin_bug: Bug = Bug()  # what the twin keeps of the bug's machinery (a harmless phase change)


# ----------------------------------------------------------------------------- planted bugs
def shuffle_train_labels(data: DataSplits, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    data.train.targets = data.train.targets[torch.randperm(len(data.train.targets), generator=g)]


def raw_pixels(data: DataSplits, seed: int) -> None:
    """Inputs as stored in an image file (0..255) instead of standardised."""
    for split in (data.train, data.val, data.test):
        if split is not None:
            split.inputs = tuple(t * 16.0 for t in split.inputs)


def hidden_biases(value: float) -> Callable[[torch.nn.Module], None]:
    def apply(model: torch.nn.Module) -> None:
        linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            for m in linears[:-1]:
                m.bias.fill_(value)

    return apply


def weight_scale(factor: float) -> Callable[[torch.nn.Module], None]:
    def apply(model: torch.nn.Module) -> None:
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.Linear):
                    m.weight.mul_(factor)

    return apply


class PhaseChange(Callback):
    """Labels epochs with a phase and multiplies the LR at the change, as a schedule restart would."""

    def __init__(self, at_epoch: int, lr_factor: float, before: str = "base", after: str = "restart"):
        self.at_epoch, self.lr_factor, self.before, self.after = at_epoch, lr_factor, before, after

    def on_epoch_start(self, state: State) -> None:
        state.phase = self.before if state.epoch < self.at_epoch else self.after
        if state.epoch == self.at_epoch:
            for group in state.optimizer.param_groups:
                group["lr"] *= self.lr_factor


def lr_restart(factor: float) -> Callable[[], list[Callback]]:
    return lambda: [PhaseChange(12, factor)]


def conv1d(input_shape: tuple[int, ...], out_dim: int, channels: int = 32) -> torch.nn.Module:
    """A small 1-D CNN for MNIST-1D (``model.name = "cases:conv1d"``): the model family that fits it.

    An MLP of any width on MNIST-1D either stays near 0.75 training accuracy after 20 epochs or
    memorises it at ~0.6 validation accuracy; convolutions reach ~0.9 (the dataset's paper: CNN 94 %,
    MLP 68 %), so this is the healthy contrast to ``tiny_model``'s 3-unit bottleneck.
    """
    (length,) = input_shape
    act = torch.nn.ReLU
    return torch.nn.Sequential(
        torch.nn.Unflatten(1, (1, length)),
        torch.nn.Conv1d(1, channels, 5, padding=2), act(),
        torch.nn.Conv1d(channels, channels, 3, padding=1, stride=2), act(),
        torch.nn.Conv1d(channels, channels, 3, padding=1, stride=2), act(),
        torch.nn.Flatten(), torch.nn.Linear(channels * ((length + 3) // 4), out_dim),
    )


DIGITS = {"data.name": "digits", "data.val_fraction": 0.2, "model.hidden": [64], "train.epochs": 20}
MNIST1D = {"data.name": "mnist1d", "data.val_fraction": 0.2, "train.epochs": 20}
CANCER = {"data.name": "breast_cancer", "data.val_fraction": 0.2, "model.hidden": [64], "train.epochs": 20}

CASES: list[Case] = [
    Case("lr_high_adam", {**DIGITS, "optim.lr": 0.05, "model.hidden": [128, 128]}, "lr_too_high", {"optim.lr": 1e-3},
         also=frozenset({"unstable_training", "dead_units"})),
    Case("lr_kills_relus", {**DIGITS, "optim.name": "sgd", "optim.lr": 2.0}, "stuck_at_chance", {"optim.lr": 0.05},
         also=frozenset({"dead_units", "prediction_collapse", "lr_too_high", "diverged", "exploding_gradients", "vanishing_gradients"})),
    Case("diverge_deep", {**DIGITS, "model.hidden": [64] * 8, "optim.name": "sgd", "optim.lr": 0.1}, "diverged",
         {"model.batch_norm": True}, Bug("weights x3", model=weight_scale(3.0)),
         also=frozenset({"exploding_gradients", "dead_units", "lr_too_high", "unstable_training", "stuck_at_chance",
                         "prediction_collapse", "vanishing_gradients"})),
    Case("lr_low_adam", {**DIGITS, "optim.lr": 1e-5}, "lr_too_low", {"optim.lr": 1e-3},
         also=frozenset({"stuck_at_chance", "underfitting", "plateau"})),
    Case("lr_low_sgd", {**DIGITS, "optim.name": "sgd", "optim.lr": 1e-4, "optim.momentum": 0.0}, "lr_too_low",
         {"optim.lr": 0.05, "optim.momentum": 0.9}, also=frozenset({"stuck_at_chance", "underfitting", "plateau"})),
    Case("dropout_09", {**DIGITS, "model.dropout": 0.9, "model.hidden": [64, 64]}, "over_regularized", {"model.dropout": 0.1},
         also=frozenset({"underfitting", "plateau", "stuck_at_chance"})),
    Case("weight_decay_30", {**DIGITS, "optim.weight_decay": 30.0}, "over_regularized", {"optim.weight_decay": 0.05},
         also=frozenset({"underfitting", "plateau"})),
    # The twin swaps the 3-unit MLP for a small 1-D CNN at the same LR: ~0.95 training / ~0.87 validation
    # accuracy after 20 epochs, where a [64, 64] MLP stopped near 0.75 (a weak run, rightly "underfitting").
    Case("tiny_model", {**MNIST1D, "model.hidden": [3], "optim.lr": 3e-3}, "underfitting", {"model.name": "cases:conv1d"},
         also=frozenset({"plateau"})),
    Case("shuffled_labels", DIGITS, "stuck_at_chance", {}, Bug("shuffled labels", data=shuffle_train_labels),
         also=frozenset({"prediction_collapse", "underfitting", "plateau"})),
    Case("dead_relu", {**DIGITS, "model.hidden": [64, 64]}, "dead_units", {}, Bug("ReLU biases -5", model=hidden_biases(-5.0)),
         also=frozenset({"stuck_at_chance", "prediction_collapse", "vanishing_gradients", "plateau", "underfitting"})),
    Case("deep_sigmoid", {**DIGITS, "model.activation": "sigmoid", "model.hidden": [32] * 8, "optim.name": "sgd", "optim.lr": 0.05},
         "vanishing_gradients", {"model.activation": "relu", "model.batch_norm": True},
         also=frozenset({"stuck_at_chance", "prediction_collapse", "plateau", "underfitting", "saturated_units"})),
    Case("saturated_raw_pixels", {**DIGITS, "model.activation": "tanh", "data.normalize": False, "optim.name": "sgd",
                                  "optim.lr": 0.1, "model.hidden": [64, 64]},
         "saturated_units", {"data.normalize": True}, Bug("pixels 0..255", data=raw_pixels),
         also=frozenset({"lr_too_high", "unstable_training", "stuck_at_chance", "prediction_collapse", "plateau", "underfitting"})),
    # The twin stops early: with batch norm the 8-layer net fits digits by epoch ~12, and left to run 20
    # epochs its validation loss can double while training loss keeps falling (seed 3: 0.079 -> 0.164),
    # which is real overfitting, not a clean run.
    Case("deep_init_x2", {**DIGITS, "model.hidden": [64] * 8, "optim.name": "sgd", "optim.lr": 0.05}, "unstable_training",
         {"model.batch_norm": True, "early_stopping.enabled": True}, Bug("weights x2", model=weight_scale(2.0)),
         also=frozenset({"lr_too_high", "exploding_gradients", "dead_units", "diverged"})),
    Case("overfit_small_data", {**MNIST1D, "model.hidden": [256, 256], "train.epochs": 40, "data.train_subset": 400},
         "overfitting", {"early_stopping.enabled": True}),
    Case("lr_restart", {**DIGITS, "train.epochs": 24}, "phase_regression", {}, Bug("LR x100 at epoch 12", callbacks=lr_restart(100.0)),
         also=frozenset({"lr_too_high", "unstable_training", "overfitting", "dead_units"}),
         twin_bug=Bug("same phases, LR x1", callbacks=lr_restart(1.0))),
    Case("raw_cancer", {**CANCER, "data.normalize": False, "optim.name": "sgd", "optim.lr": 1e-3}, "prediction_collapse",
         {"data.normalize": True}, also=frozenset({"stuck_at_chance", "dead_units", "underfitting", "plateau", "vanishing_gradients"})),
]
