"""Augments each training batch on the device at BATCH_START (trainwise.techniques.augment).

Only the first input (the image) is augmented; an extra feature vector passes through. The pipeline is
skipped while ``state.augment`` is False (a progressive-resizing phase without augmentation).
"""

from __future__ import annotations

from typing import Any

from trainwise.core import Callback, State
from trainwise.techniques.augment import Pipeline


class Augmentation(Callback):
    order = 1  # before MixUp (mix augmented images) and before resizing

    def __init__(self, specs: list[dict[str, Any]]):
        self.pipeline = Pipeline(specs, where="augment.train")

    def on_batch_start(self, state: State) -> None:
        if state.augment and len(self.pipeline):
            state.inputs = (self.pipeline(state.inputs[0]), *state.inputs[1:])
