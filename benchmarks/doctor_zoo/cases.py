"""The zoo's cases: broken runs on real small data, each with the code it must produce and a clean twin.

A case is a config plus, where no config value can express the fault, a *bug* planted the way it
happens in real code (labels shuffled by a broken join, a bias initialisation bug, raw pixel values,
an LR restart at a phase change). ``expect`` is the code a correct diagnosis names; ``also`` are codes
that are true of the broken run as well (a dead-ReLU run *is* stuck at chance) and are neither
rewarded nor punished. The twin is the same run with the fault removed; it must come out clean. Some
twins are hard negatives: batch size 1 at a small LR (noisy but healthy), weights x10 *with* batch norm,
the same phase change without the LR jump.

``expect`` is what the fault really does to the run, not what it was meant to do: a missing
``zero_grad`` with SGD makes the loss blow up (``diverged``), inputs x255 into a ReLU net with SGD
leave it predicting one class (``prediction_collapse``). ``fault`` names the fault as the issue lists
it. Whether the fault showed on a given seed is decided by ``manifest.py``, without the doctor;
``run.py --screen`` counts it over the screening seeds, and ``dropped`` records a case that failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from manifest import CHECKS, Check, Outcome
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
    fault: str = ""  # the fault in the issue's words, for the docs' table
    check: Check | None = None  # how the fault shows in the outcome (manifest.py); None: the check for ``expect``
    dropped: str = ""  # why screening took the case out of the scored zoo ("": kept)

    def manifested(self, bug: Outcome, twin: Outcome) -> tuple[bool, str]:
        return (self.check or CHECKS[self.expect])(bug, twin)


# ----------------------------------------------------------------------------- planted bugs
def shuffle_train_labels(data: DataSplits, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    data.train.targets = data.train.targets[torch.randperm(len(data.train.targets), generator=g)]


def noisy_train_labels(share: float) -> Callable[[DataSplits, int], None]:
    """Replace ``share`` of the training labels by uniformly drawn ones (a sloppy annotation pass)."""

    def apply(data: DataSplits, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        y = data.train.targets.clone()
        hit = torch.rand(len(y), generator=g) < share
        y[hit] = torch.randint(0, data.num_classes, (int(hit.sum()),), generator=g).to(y.dtype)
        data.train.targets = y

    return apply


def scale_inputs(factor: float) -> Callable[[DataSplits, int], None]:
    """Inputs multiplied by ``factor`` in every split: pixel values 0..255 where the model expects 0..1."""

    def apply(data: DataSplits, seed: int) -> None:
        for split in (data.train, data.val, data.test):
            if split is not None:
                split.inputs = tuple(t * factor for t in split.inputs)

    return apply


def minority_share(cls: int, share: float) -> Callable[[DataSplits, int], None]:
    """Keep only enough samples of class ``cls`` in every split that it makes up ``share`` of it (95/5)."""

    def apply(data: DataSplits, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        for name in ("train", "val", "test"):
            split = getattr(data, name)
            if split is None:
                continue
            y = split.targets.long()
            minority, rest = torch.nonzero(y == cls).flatten(), torch.nonzero(y != cls).flatten()
            keep = max(1, round(share / (1 - share) * len(rest)))
            picked = minority[torch.randperm(len(minority), generator=g)[:keep]]
            setattr(data, name, split.subset(torch.cat([rest, picked]).sort().values))

    return apply


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


def normal_init(std: float) -> Callable[[torch.nn.Module], None]:
    """Every linear layer drawn from N(0, std^2) with zero biases, whatever its fan-in (old tutorials' 0.01)."""

    def apply(model: torch.nn.Module) -> None:
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.Linear):
                    m.weight.normal_(0.0, std)
                    m.bias.zero_()

    return apply


class NoZeroGrad(Callback):
    """Gradients pile up over steps, as when ``optimizer.zero_grad()`` is missing from a hand-written loop.

    The Trainer clears gradients after every step, so the bug is re-created: after each backward the
    previous step's (already accumulated) gradients are added back. It runs before the monitors, which
    therefore see the gradients the optimizer uses, as they would in the buggy loop.
    """

    order = -100

    def __init__(self) -> None:
        self.previous: dict[int, torch.Tensor] = {}

    def on_after_backward(self, state: State) -> None:
        for p in state.model.parameters():
            if p.grad is None:
                continue
            if id(p) in self.previous:
                p.grad.add_(self.previous[id(p)])
            self.previous[id(p)] = p.grad.detach().clone()


class PhaseChange(Callback):
    """Labels epochs with a phase and multiplies the LR at the change, as a schedule restart would."""

    def __init__(self, at_epoch: int, lr_factor: float, before: str = "base", after: str = "restart"):
        self.at_epoch, self.lr_factor, self.before, self.after = at_epoch, lr_factor, before, after

    def on_epoch_start(self, state: State) -> None:
        state.phase = self.before if state.epoch < self.at_epoch else self.after
        if state.epoch == self.at_epoch:
            # The Trainer assigns the LR before every step (trainwise.optim.LearningRate); its lr_scale
            # multiplies that LR from here on, as the planted restart needs.
            state.lr_scale *= self.lr_factor


def lr_restart(factor: float) -> Callable[[], list[Callback]]:
    return lambda: [PhaseChange(12, factor)]


def conv1d(input_shape: tuple[int, ...], out_dim: int, channels: int = 32) -> torch.nn.Module:
    """A small 1-D CNN for MNIST-1D (``model.name = "cases:conv1d"``): the model family that fits it.

    An MLP of any width on MNIST-1D either stays near 0.75 training accuracy after 20 epochs or
    memorises it at ~0.6 validation accuracy; convolutions reach ~0.9 (the dataset's paper: CNN 94 %,
    MLP 68 %), so this is the healthy contrast to ``bottleneck_3_mnist1d``'s 3-unit MLP.
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
FASHION = {"data.name": "fashion_mnist", "data.val_fraction": 0.05, "data.train_subset": 2000, "model.hidden": [128],
           "train.epochs": 10}
STUCK_ALSO = frozenset({"stuck_at_chance", "prediction_collapse", "underfitting", "plateau"})

CASES: list[Case] = [
    Case("lr_x100_adam", {**DIGITS, "optim.lr": 0.1, "model.hidden": [128, 128]}, "lr_too_high", {"optim.lr": 1e-3},
         fault="LR x100 (AdamW)", also=frozenset({"unstable_training", "dead_units", "stuck_at_chance", "prediction_collapse", "underfitting"})),
    Case("lr_x100_sgd", {**DIGITS, "optim.name": "sgd", "optim.lr": 2.0}, "stuck_at_chance", {"optim.lr": 0.02},
         fault="LR x100 (SGD)",
         also=frozenset({"dead_units", "prediction_collapse", "lr_too_high", "diverged", "exploding_gradients", "vanishing_gradients"})),
    Case("lr_x1e-4_adam", {**DIGITS, "optim.lr": 1e-7}, "lr_too_low", {"optim.lr": 1e-3}, fault="LR x1e-4 (AdamW)",
         also=STUCK_ALSO),
    Case("lr_low_sgd", {**DIGITS, "optim.name": "sgd", "optim.lr": 1e-4, "optim.momentum": 0.0}, "lr_too_low",
         {"optim.lr": 0.01, "optim.momentum": 0.9}, fault="LR x1e-2, no momentum (SGD)", also=STUCK_ALSO),
    Case("deep_sigmoid_small_init", {**DIGITS, "model.activation": "sigmoid", "model.hidden": [32] * 8, "optim.name": "sgd",
                                     "optim.lr": 0.05},
         "vanishing_gradients", {"model.activation": "relu", "model.batch_norm": True}, Bug("N(0, 0.01) init", model=normal_init(0.01)),
         fault="deep sigmoid net, small init", also=STUCK_ALSO | {"saturated_units"}),
    Case("init_x10_no_norm", {**DIGITS, "model.hidden": [64] * 4, "optim.name": "sgd", "optim.lr": 0.05}, "diverged",
         {"model.batch_norm": True}, Bug("weights x10", model=weight_scale(10.0)), fault="init x10 without normalization",
         twin_bug=Bug("weights x10", model=weight_scale(10.0)),
         also=frozenset({"exploding_gradients", "dead_units", "lr_too_high", "unstable_training"}) | STUCK_ALSO),
    Case("diverge_deep", {**DIGITS, "model.hidden": [64] * 8, "optim.name": "sgd", "optim.lr": 0.1}, "diverged",
         {"model.batch_norm": True}, Bug("weights x3", model=weight_scale(3.0)), fault="init x3, 8 layers, no normalization",
         also=frozenset({"exploding_gradients", "dead_units", "lr_too_high", "unstable_training", "vanishing_gradients"}) | STUCK_ALSO),
    # The twin stops early: with batch norm the 8-layer net fits digits by epoch ~12, and left to run 20
    # epochs its validation loss can double while training loss keeps falling (real overfitting).
    Case("deep_init_x2", {**DIGITS, "model.hidden": [64] * 8, "optim.name": "sgd", "optim.lr": 0.05}, "unstable_training",
         {"model.batch_norm": True, "early_stopping.enabled": True}, Bug("weights x2", model=weight_scale(2.0)),
         fault="init x2, 8 layers, no normalization", also=frozenset({"lr_too_high", "exploding_gradients", "dead_units", "diverged"})),
    Case("shuffled_labels", DIGITS, "stuck_at_chance", {}, Bug("shuffled labels", data=shuffle_train_labels),
         fault="shuffled labels", also=frozenset({"prediction_collapse", "underfitting", "plateau"})),
    Case("label_noise_60", {**DIGITS, "model.hidden": [256, 256], "train.epochs": 40, "optim.lr": 3e-3}, "overfitting", {},
         Bug("60 % of training labels redrawn", data=noisy_train_labels(0.6)), fault="heavy label noise",
         also=frozenset({"underfitting", "val_above_train"})),
    Case("tiny_train_big_model", {**MNIST1D, "model.hidden": [256, 256], "train.epochs": 40, "data.train_subset": 400},
         "overfitting", {"early_stopping.enabled": True}, fault="tiny training set, big model"),
    Case("weight_decay_0.1", {**DIGITS, "model.hidden": [64, 64], "optim.name": "sgd", "optim.lr": 0.1, "optim.weight_decay": 0.1},
         "over_regularized", {"optim.weight_decay": 1e-4}, fault="weight decay 0.1 (SGD)",
         also=frozenset({"underfitting", "plateau"})),
    Case("dropout_0.8", {**DIGITS, "model.dropout": 0.8, "model.hidden": [64, 64]}, "over_regularized", {"model.dropout": 0.1},
         fault="dropout 0.8", also=frozenset({"underfitting", "plateau", "stuck_at_chance", "val_above_train"})),
    Case("dropout_0.9", {**DIGITS, "model.dropout": 0.9, "model.hidden": [64, 64]}, "over_regularized", {"model.dropout": 0.1},
         fault="dropout 0.9", also=frozenset({"underfitting", "plateau", "stuck_at_chance"})),
    Case("weight_decay_30", {**DIGITS, "optim.weight_decay": 30.0}, "over_regularized", {"optim.weight_decay": 0.05},
         fault="weight decay 30 (decoupled, AdamW)", also=frozenset({"underfitting", "plateau"})),
    Case("bottleneck_1", {**DIGITS, "model.hidden": [64, 1, 64]}, "underfitting", {"model.hidden": [64, 64, 64]},
         fault="one-unit bottleneck", also=frozenset({"plateau", "dead_units"})),
    # The twin swaps the 3-unit MLP for a small 1-D CNN at the same LR: ~0.95 training / ~0.87 validation
    # accuracy after 20 epochs, where a [64, 64] MLP stopped near 0.75 (a weak run, rightly "underfitting").
    Case("bottleneck_3_mnist1d", {**MNIST1D, "model.hidden": [3], "optim.lr": 3e-3}, "underfitting", {"model.name": "cases:conv1d"},
         fault="three-unit model", also=frozenset({"plateau"})),
    # The twin is a hard negative: still batch size 1, at a small LR -- noisy steps, a healthy run.
    Case("batch1_high_lr", {**CANCER, "data.batch_size": 1, "optim.name": "sgd", "optim.lr": 0.1, "train.epochs": 10},
         "diverged", {"optim.lr": 1e-3}, fault="batch size 1 with high LR",
         also=frozenset({"lr_too_high", "diverged", "exploding_gradients", "dead_units"}) | STUCK_ALSO),
    Case("no_zero_grad", {**DIGITS, "optim.name": "sgd", "optim.lr": 0.05}, "diverged", {},
         Bug("gradients never zeroed", callbacks=lambda: [NoZeroGrad()]), fault="missing zero_grad",
         also=frozenset({"unstable_training", "diverged", "exploding_gradients", "dead_units"}) | STUCK_ALSO),
    Case("no_zero_grad_adam", DIGITS, "unstable_training", {},
         Bug("gradients never zeroed", callbacks=lambda: [NoZeroGrad()]), fault="missing zero_grad (AdamW)",
         also=frozenset({"lr_too_high", "diverged", "exploding_gradients", "dead_units"}) | STUCK_ALSO),
    Case("inputs_x255_tanh", {**DIGITS, "model.activation": "tanh", "data.normalize": False, "optim.name": "sgd",
                              "optim.lr": 0.1, "model.hidden": [64, 64]},
         "saturated_units", {"data.normalize": True}, Bug("pixels 0..255", data=scale_inputs(16.0)), fault="inputs x255 (tanh)",
         also=frozenset({"lr_too_high", "unstable_training"}) | STUCK_ALSO),
    Case("fashion_inputs_x255", {**FASHION, "data.normalize": False, "optim.name": "sgd", "optim.lr": 0.05},
         "prediction_collapse", {}, Bug("pixels 0..255", data=scale_inputs(255.0)), fault="inputs x255 (Fashion-MNIST, ReLU)",
         also=frozenset({"lr_too_high", "unstable_training", "diverged", "exploding_gradients", "dead_units", "stuck_at_chance",
                         "underfitting", "plateau"})),
    Case("fashion_lr_x100", {**FASHION, "optim.lr": 0.1}, "lr_too_high", {"optim.lr": 1e-3}, fault="LR x100 (Fashion-MNIST, AdamW)",
         also=frozenset({"unstable_training", "dead_units"}) | STUCK_ALSO),
    Case("imbalance_95_5", {**CANCER, "optim.name": "sgd", "optim.lr": 0.01, "optim.momentum": 0.0}, "prediction_collapse", {},
         Bug("malignant cut to 5 %", data=minority_share(0, 0.05)), fault="95/5 class imbalance",
         also=frozenset({"underfitting", "plateau", "stuck_at_chance"})),
    Case("dead_relu", {**DIGITS, "model.hidden": [64, 64]}, "dead_units", {}, Bug("ReLU biases -5", model=hidden_biases(-5.0)),
         fault="ReLU biases -5", also=frozenset({"vanishing_gradients"}) | STUCK_ALSO),
    Case("lr_restart", {**DIGITS, "train.epochs": 24}, "phase_regression", {}, Bug("LR x100 at epoch 12", callbacks=lr_restart(100.0)),
         fault="LR x100 at a phase change", also=frozenset({"lr_too_high", "unstable_training", "overfitting", "dead_units"}),
         twin_bug=Bug("same phases, LR x1", callbacks=lr_restart(1.0))),
    Case("raw_cancer", {**CANCER, "data.normalize": False, "optim.name": "sgd", "optim.lr": 1e-3}, "prediction_collapse",
         {"data.normalize": True}, fault="inputs not standardized (breast_cancer)",
         also=frozenset({"stuck_at_chance", "dead_units", "underfitting", "plateau", "vanishing_gradients"})),
]
