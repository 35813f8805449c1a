"""Loss functions for the two tasks, with label smoothing and soft targets.

- multiclass: cross-entropy on K logits; targets are class ids (N,) or probabilities (N, K) (MixUp/CutMix).
- binary: binary cross-entropy on one logit (BCEWithLogits, numerically stable); targets are 0/1 (N,)
  or probabilities in [0, 1]. Label smoothing moves targets toward 0.5: y * (1 - s) + s / 2.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F


def task_loss(logits: torch.Tensor, targets: torch.Tensor, task: str, label_smoothing: float = 0.0) -> torch.Tensor:
    if task == "binary":
        target = targets.to(logits.dtype).reshape(-1)
        if label_smoothing:
            target = target * (1 - label_smoothing) + label_smoothing / 2
        return F.binary_cross_entropy_with_logits(logits.reshape(-1), target)
    return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)


def loss_function(task: str, label_smoothing: float = 0.0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``task_loss`` with the task and smoothing fixed: (logits, targets) -> loss. The plain multiclass case is
    F.cross_entropy itself, as a hand-written loop calls it (no wrapper on the training step's path)."""
    if task != "binary" and not label_smoothing:
        return F.cross_entropy
    return functools.partial(task_loss, task=task, label_smoothing=label_smoothing)


def predictions(logits: torch.Tensor, task: str) -> torch.Tensor:
    """Predicted class ids: logit > 0 for binary, argmax for multiclass."""
    if task == "binary":
        return (logits.reshape(-1) > 0).long()
    return logits.argmax(dim=1)


def probabilities(logits: torch.Tensor, task: str) -> torch.Tensor:
    """Class probabilities (N, K); binary gives (N, 2) = [1 - p, p]."""
    if task == "binary":
        p = torch.sigmoid(logits.reshape(-1).float())
        return torch.stack([1 - p, p], dim=1)
    return torch.softmax(logits.float(), dim=1)


def hard_labels(targets: torch.Tensor, task: str) -> torch.Tensor:
    """Class ids from hard or soft targets (the dominant label, for accuracy under MixUp)."""
    if targets.is_floating_point():
        return targets.argmax(dim=1) if task != "binary" and targets.ndim == 2 else (targets.reshape(-1) > 0.5).long()
    return targets
