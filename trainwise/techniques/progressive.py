"""Progressive resizing with a FixRes-style final phase.

A schedule is a list of phases, each starting at an epoch: ``Phase(epoch=1, resolution=16, augment=True)``,
``Phase(epoch=6, resolution=28, augment=False)``. Early epochs train on small, cheap images; the last
phase trains at the test resolution, usually without augmentation, so that the apparent object size
and the statistics the network sees in training match those at test time (Touvron et al. 2019, FixRes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Phase:
    epoch: int  # first epoch (1-based) of the phase
    resolution: int | None = None  # image height in pixels (width keeps the aspect ratio); None: as loaded
    augment: bool = True  # training augmentation (pipeline and MixUp/CutMix) on or off

    def label(self) -> str:
        res = "full" if self.resolution is None else str(self.resolution)
        return f"res{res}" + ("+aug" if self.augment else "-noaug")


def phase_at(phases: list[Phase], epoch: int) -> Phase | None:
    """The phase in force at ``epoch``: the last one starting at or before it (None before the first)."""
    current = None
    for phase in sorted(phases, key=lambda p: p.epoch):
        if phase.epoch <= epoch:
            current = phase
    return current


def resize(x: torch.Tensor, resolution: int | None) -> torch.Tensor:
    """Images (N, C, H, W) or (N, H, W) scaled to height ``resolution`` (bilinear, antialiased when shrinking)."""
    h, w = x.shape[-2:]
    if resolution is None or resolution == h:
        return x
    size = (resolution, max(1, round(w * resolution / h)))
    squeeze = x.ndim == 3
    out = F.interpolate(x[:, None] if squeeze else x, size=size, mode="bilinear", align_corners=False, antialias=resolution < h)
    return out[:, 0] if squeeze else out
