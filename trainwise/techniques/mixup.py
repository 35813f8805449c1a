"""MixUp (Zhang et al. 2018) and CutMix (Yun et al. 2019) with soft targets.

Both mix each sample with a partner from the same batch (``perm``: a permutation of the batch) and
return the mixed inputs and soft targets: ``lam * y + (1 - lam) * y[perm]``. Multiclass soft targets are
probabilities (N, K), which ``losses.task_loss`` trains with cross-entropy; binary soft targets are
probabilities (N,) of the positive class, trained with BCE. ``losses.hard_labels`` takes the dominant
label of a soft target, which is what training accuracy is measured against.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from trainwise.config import MixupConfig
from trainwise.core import ORDER, Callback, State
from trainwise.errors import UserError
from trainwise.techniques.registry import Technique, register


def soft_targets(targets: torch.Tensor, task: str, num_classes: int) -> torch.Tensor:
    """Class ids -> one-hot rows (multiclass, (N, K)) or floats (binary, (N,)); soft targets pass through."""
    if targets.is_floating_point():
        return targets
    if task == "binary":
        return targets.float()
    return F.one_hot(targets, num_classes).float()


def mix_targets(soft: torch.Tensor, perm: torch.Tensor, lam: float) -> torch.Tensor:
    return lam * soft + (1 - lam) * soft[perm]


def mixup_batch(x: torch.Tensor, soft: torch.Tensor, lam: float, perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend whole inputs: ``lam * x + (1 - lam) * x[perm]``, and the targets alike."""
    return lam * x + (1 - lam) * x[perm], mix_targets(soft, perm, lam)


def cutmix_box(lam: float, height: int, width: int, center: tuple[float, float]) -> tuple[int, int, int, int]:
    """The pasted box (top, left, box_height, box_width) for ``lam``: area about (1 - lam), centred at
    ``center`` (fractions of height and width), clipped to the image as in the CutMix paper."""
    ratio = math.sqrt(1 - lam)
    ch, cw = round(height * ratio), round(width * ratio)
    cy, cx = round(center[0] * height), round(center[1] * width)
    top, bottom = max(cy - ch // 2, 0), min(cy + ch - ch // 2, height)
    left, right = max(cx - cw // 2, 0), min(cx + cw - cw // 2, width)
    return top, left, bottom - top, right - left


def cutmix_batch(x: torch.Tensor, soft: torch.Tensor, box: tuple[int, int, int, int],
                 perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Paste the box of each partner ``x[perm]`` into ``x``; targets are mixed by the pasted area.

    Returns the inputs, the soft targets and the effective lambda (1 - box area / image area).
    """
    top, left, bh, bw = box
    h, w = x.shape[-2:]
    out = x.clone()
    out[..., top:top + bh, left:left + bw] = x[perm][..., top:top + bh, left:left + bw]
    lam = 1 - (bh * bw) / (h * w)
    return out, mix_targets(soft, perm, lam), lam


def sample_lambda(alpha: float) -> float:
    """lam ~ Beta(alpha, alpha), drawn from torch's global CPU generator (checkpointed, so resume is exact)."""
    gammas = torch._standard_gamma(torch.full((2,), float(alpha), dtype=torch.float64))
    return float(gammas[0] / gammas.sum())


# ------------------------------------------------------------ the callback

class MixUp(Callback):
    """MixUp / CutMix at BATCH_START: replaces ``state.inputs`` and ``state.targets`` with mixed inputs and soft targets.

    All draws (whether to mix, which of the two, lambda, partners, box centre) come from torch's global CPU
    generator, which checkpoints save, so resume is exact.
    """

    order = ORDER["mixup"]

    def __init__(self, cfg: MixupConfig):
        self.cfg = cfg

    def on_batch_start(self, state: State) -> None:
        cfg = self.cfg
        if not state.augment or (cfg.mixup_alpha <= 0 and cfg.cutmix_alpha <= 0):
            return
        draws = torch.rand(2)  # [apply?, cutmix instead of mixup?]
        if draws[0] >= cfg.prob:
            return
        use_cutmix = cfg.cutmix_alpha > 0 and (cfg.mixup_alpha <= 0 or draws[1] < cfg.switch_prob)
        x, *rest = state.inputs
        perm = torch.randperm(x.shape[0]).to(x.device)
        soft = soft_targets(state.targets, state.task, state.num_classes)
        if use_cutmix:
            if x.ndim < 3:
                raise UserError("CutMix needs image inputs", received=f"inputs shaped {tuple(x.shape)}", fix="use mixup.mixup_alpha instead")
            center = torch.rand(2).tolist()
            box = cutmix_box(sample_lambda(cfg.cutmix_alpha), x.shape[-2], x.shape[-1], (center[0], center[1]))
            x, soft, lam = cutmix_batch(x, soft, box, perm)
        else:
            lam = sample_lambda(cfg.mixup_alpha)
            x, soft = mixup_batch(x, soft, lam, perm)
        rest = [lam * t + (1 - lam) * t[perm] for t in rest]  # an extra feature vector is blended by the same share
        state.inputs, state.targets = (x, *rest), soft


register(Technique(
    "mixup", enabled=lambda cfg: cfg.mixup.mixup_alpha > 0 or cfg.mixup.cutmix_alpha > 0,
    build=lambda cfg: [MixUp(cfg.mixup)],
    example={"mixup.mixup_alpha": 0.4, "mixup.cutmix_alpha": 1.0, "mixup.prob": 0.8},
    docs="MixUp and CutMix"))
