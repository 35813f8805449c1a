"""MixUp / CutMix at BATCH_START: replaces ``state.inputs`` and ``state.targets`` with mixed inputs and soft targets.

All draws (whether to mix, which of the two, lambda, partners, box centre) come from torch's global CPU
generator, which checkpoints save, so resume is exact.
"""

from __future__ import annotations

import torch

from trainwise.config import MixupConfig
from trainwise.core import Callback, State
from trainwise.errors import UserError
from trainwise.techniques.mixup import cutmix_batch, cutmix_box, mixup_batch, sample_lambda, soft_targets


class MixUp(Callback):
    order = 2  # after the augmentation pipeline

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
