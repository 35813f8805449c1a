"""Progressive resizing (trainwise.techniques.progressive): the phase in force sets the training resolution
and whether training augmentation runs; the History's ``phase`` field names it (``res16+aug``, ``res28-noaug``).

- FIT_START: warns about each phase that turns training augmentation off (expect the train/validation
  gap to widen from there); with ``eval_resolution = "phase"`` evaluation inputs are resized too.
- EPOCH_START: the phase of the epoch sets ``state.augment`` and the label.
- BATCH_START: images are resized after augmentation and mixing (so their pixel sizes mean the same in
  every phase).

By default evaluation stays at the loaded (test) resolution: the final phase at that resolution is what
makes training match testing (FixRes); earlier epochs' validation scores show the cost of the mismatch.
"""

from __future__ import annotations

import warnings

from trainwise.callbacks.phase import set_phase
from trainwise.config import ProgressiveConfig
from trainwise.core import Callback, State
from trainwise.techniques.progressive import Phase, phase_at, resize


class ProgressiveResize(Callback):
    order = 3  # after augmentation (1) and MixUp (2)

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
        if self.current is not None:
            set_phase(state, "progressive", self.current.label())

    def on_batch_start(self, state: State) -> None:
        if self.current is not None and self.current.resolution is not None:
            state.inputs = self._resize_inputs(state.inputs)
