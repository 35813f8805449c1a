"""Per-layer update ratio ||w_after - w_before|| / ||w_before|| of one optimizer step.

The ratio tells how fast a layer's weights move relative to their size; about 1e-3 per step is the
usual healthy order (Karpathy's rule of thumb), >= 1e-2 means the LR throws weights around, << 1e-4
means they barely move. On sampled steps the weights are copied at AFTER_BACKWARD and compared at
STEP_END; a step the NaN guard skipped (``state.step`` did not advance) is not counted. A layer whose weights are
all zero (a zero-initialised head) has no ratio for that sample. Keys: ``update_ratio/<layer>``.
"""

from __future__ import annotations

import torch

from trainwise.callbacks.monitoring import EpochMeanMonitor, LayerIndex, is_sampled
from trainwise.core import ORDER, State


class UpdateRatioMonitor(EpochMeanMonitor):
    order = ORDER["update_ratios"]

    def __init__(self, every_n_steps: int = 50):
        super().__init__(every_n_steps)
        self._index: LayerIndex | None = None
        self._keys: tuple[str, ...] = ()
        self._before: list[torch.Tensor] | None = None
        self._before_step = -1

    def on_fit_start(self, state: State) -> None:
        self.upgrade_restored(state.model)
        self._index = LayerIndex(state.model)
        self._keys = tuple(f"update_ratio/{name}" for name in self._index.names)

    def on_batch_start(self, state: State) -> None:
        self._before = None  # a copy left over from a step that never reached STEP_END

    def on_after_backward(self, state: State) -> None:
        if self._index is None or not self._index.params or not is_sampled(state, self.every_n_steps):
            return
        with torch.no_grad():
            self._before = [p.detach().clone() for p in self._index.params]
        self._before_step = state.step

    def on_step_end(self, state: State) -> None:
        before, self._before = self._before, None
        # A skipped step leaves state.step where it was (trainwise's Trainer clears skip_step before
        # STEP_END, so the step counter is the reliable sign); its ratio of 0 would drag the mean down.
        if before is None or self._index is None or state.skip_step or state.step == self._before_step:
            return
        with torch.no_grad():
            after = [p.detach() for p in self._index.params]
            # the squared norms of the updates and of the weights before them, in one pass
            both = self._index.per_layer_sq([*torch._foreach_sub(after, before), *before], tuple(self._index.slot), groups=2)
            delta_sq, weight_sq = both.chunk(2)
            ratio = (delta_sq / weight_sq.clamp_min(1e-30)).sqrt()
            valid = ((weight_sq > 0) & torch.isfinite(ratio)).float()
            self._means.add(self._keys, ratio, valid)
