"""Test-time augmentation: average the model's probabilities over the image and its mirror image.

``flip_logits`` returns log-probabilities (multiclass) or a logit (binary) of the averaged probabilities,
so the usual loss and argmax apply to the averaged prediction unchanged.
"""

from __future__ import annotations

import torch

from trainwise.errors import UserError
from trainwise.losses import probabilities
from trainwise.techniques.registry import Technique, register


def averaged_logits(prob: torch.Tensor, task: str) -> torch.Tensor:
    """Logits whose softmax (multiclass) or sigmoid (binary) is ``prob`` (N, K), the average of several predictions."""
    prob = prob.clamp(1e-12, 1.0)
    if task == "binary":
        return (prob[:, 1].log() - prob[:, 0].log())[:, None]
    return prob.log()


def flip_logits(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], task: str) -> torch.Tensor:
    image = inputs[0]
    if image.ndim < 3:
        raise UserError("flip test-time augmentation needs image inputs", received=f"inputs shaped {tuple(image.shape)}",
                        fix="set evaluation.tta_flip=false for vector data")
    plain = model(*inputs).float()
    mirrored = model(image.flip(-1), *inputs[1:]).float()
    return averaged_logits((probabilities(plain, task) + probabilities(mirrored, task)) / 2, task)


# The Trainer's eval_logits averages over the mirror image when evaluation.tta_flip is on.
register(Technique(
    "tta", enabled=lambda cfg: cfg.evaluation.tta_flip, example={"evaluation.tta_flip": True},
    docs="Test-time augmentation"))
