"""Progressive resizing with a FixRes-style final phase.

A schedule is a list of phases, each starting at an epoch: ``Phase(epoch=1, resolution=16, augment=True)``,
``Phase(epoch=6, resolution=28, augment=False)``. Early epochs train on small, cheap images; the last
phase trains at the test resolution, usually without augmentation, so that the apparent object size
and the statistics the network sees in training match those at test time (Touvron et al. 2019, FixRes).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from trainwise.callbacks.phase import set_phase
from trainwise.config import ProgressiveConfig
from trainwise.core import ORDER, Callback, State
from trainwise.techniques.registry import Technique, register


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


# ------------------------------------------------------------ the callback

class ProgressiveResize(Callback):
    """Progressive resizing (trainwise.techniques.progressive): the phase in force sets the training resolution
    and whether training augmentation runs; the History's ``phase`` field names it (``res16+aug``, ``res28-noaug``).

    - FIT_START: warns about each phase that turns training augmentation off (expect the train/validation
      gap to widen from there); with ``eval_resolution = "phase"`` evaluation inputs are resized too.
    - EPOCH_START: the phase of the epoch sets ``state.augment``, the label and ``state.extras["resolution"]``
      (image folders decode at that height, so small phases cost small decodes).
    - BATCH_START: images are resized after augmentation and mixing (so their pixel sizes mean the same in
      every phase).

    By default evaluation stays at the loaded (test) resolution: the final phase at that resolution is what
    makes training match testing (FixRes); earlier epochs' validation scores show the cost of the mismatch.
    """

    order = ORDER["progressive"]

    def __init__(self, cfg: ProgressiveConfig):
        self.phases = [Phase(p.epoch, p.resolution, p.augment) for p in cfg.phases]
        self.eval_at_phase = cfg.eval_resolution == "phase"
        self.current: Phase | None = None

    def on_fit_start(self, state: State) -> None:
        cfg = state.config
        augmenting = bool(cfg.augment.train) or cfg.mixup.mixup_alpha > 0 or cfg.mixup.cutmix_alpha > 0
        ordered = sorted(self.phases, key=lambda p: p.epoch)
        for before, phase in zip([None, *ordered], ordered):
            if augmenting and not phase.augment and (before is None or before.augment) and phase.epoch <= cfg.train.epochs:
                warnings.warn(f"progressive phase from epoch {phase.epoch} turns training augmentation off: "
                              "expect the train/validation gap to widen from there", UserWarning, stacklevel=2)
        if self.eval_at_phase:
            state.eval_transforms.append(self._resize_inputs)

    def _resize_inputs(self, inputs):
        resolution = self.current.resolution if self.current is not None else None
        return (resize(inputs[0], resolution), *inputs[1:])

    def on_epoch_start(self, state: State) -> None:
        self.current = phase_at(self.phases, state.epoch)
        state.augment = self.current is None or self.current.augment
        # sources that decode images (image folders) decode at the phase's height; the rest are resized at batch start
        state.extras["resolution"] = None if self.current is None else self.current.resolution
        if self.current is not None:
            set_phase(state, "progressive", self.current.label())

    def on_batch_start(self, state: State) -> None:
        if self.current is not None and self.current.resolution is not None:
            state.inputs = self._resize_inputs(state.inputs)


register(Technique(
    "progressive", enabled=lambda cfg: bool(cfg.progressive.phases),
    build=lambda cfg: [ProgressiveResize(cfg.progressive)],
    example={"progressive.phases": [{"epoch": 1, "resolution": 6}, {"epoch": 2, "resolution": 8}]},
    docs="Progressive resizing and a FixRes phase"))
