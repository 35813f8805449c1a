"""Adds the explicit L1/L2 weight penalties (regularization.l1 / l2) to the loss at AFTER_LOSS.

The reported ``train_loss`` includes the penalty (it is what is minimized).
"""

from __future__ import annotations

from trainwise.core import Callback, State
from trainwise.techniques.penalties import penalized, penalty


class WeightPenalty(Callback):
    step_work = "same"  # the same penalty kernels at every step: a CUDA graph can hold them

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1, self.l2 = l1, l2

    def on_after_loss(self, state: State) -> None:
        state.loss = state.loss + penalty(penalized(state.model), self.l1, self.l2)
