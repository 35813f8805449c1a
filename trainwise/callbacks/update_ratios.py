"""Per-layer update ratio ||w_after - w_before|| / ||w_before|| of one optimizer step.

The ratio tells how fast a layer's weights move relative to their size; about 1e-3 per step is the
usual healthy order (Karpathy's rule of thumb), >= 1e-2 means the LR throws weights around, << 1e-4
means they barely move. On sampled steps the weights are copied at AFTER_BACKWARD (one ``_foreach_mul``
by 1) and at STEP_END the norms of the update and of the weights before it are kept as one row; the
ratios are worked out at the epoch's end over all its rows. A step the NaN guard skipped (``state.step``
did not advance) is not counted. A layer whose weights are all zero (a zero-initialised head) has no
ratio for that sample. Keys: ``update_ratio/<layer>``.
"""

from __future__ import annotations

import math

import torch

from trainwise.callbacks.monitoring import EpochMeanMonitor, LayerIndex, is_sampled
from trainwise.core import ORDER, State


class UpdateRatioMonitor(EpochMeanMonitor):
    order = ORDER["update_ratios"]

    def __init__(self, every_n_steps: int = 50):
        super().__init__(every_n_steps, reduce=self._ratios)
        self._index: LayerIndex | None = None
        self._keys: tuple[str, ...] = ()
        self._before: list[torch.Tensor] | None = None
        self._before_at = (-1, -1, -1)  # (epoch, batch index, step) of the copy

    def on_fit_start(self, state: State) -> None:
        self.upgrade_restored(state.model)
        self._index = LayerIndex(state.model)
        self._keys = tuple(f"update_ratio/{name}" for name in self._index.names)

    def on_after_backward(self, state: State) -> None:
        if self._index is None or not self._index.params or not is_sampled(state, self.every_n_steps):
            return
        with torch.no_grad():
            self._before = torch._foreach_mul(self._index.params, 1.0)  # a copy in one kernel; x * 1.0 is x, bit for bit
        self._before_at = (state.epoch, state.batch_index, state.step)

    def on_step_end(self, state: State) -> None:
        before = self._before
        if before is None:
            return
        self._before = None
        # A copy left over from a step that never reached STEP_END belongs to another batch. A skipped step
        # leaves state.step where it was (trainwise's Trainer clears skip_step before STEP_END, so the step
        # counter is the reliable sign); its ratio of 0 would drag the mean down.
        epoch, batch, step = self._before_at
        if (epoch, batch) != (state.epoch, state.batch_index) or state.skip_step or state.step == step:
            return
        with torch.no_grad():
            # the norms of the updates and of the weights before them, in one pass; the ratios at the epoch's end
            after = self._index.params
            self._means.add(self._keys, torch.stack(torch._foreach_norm([*torch._foreach_sub(after, before), *before])))

    def _ratios(self, keys: tuple[str, ...], row: list[float]) -> tuple[list[float], list[float]]:
        both = self._index.per_layer_sq(row, groups=2)
        delta_sq, weight_sq = both[: len(keys)], both[len(keys) :]
        ratios = [math.sqrt(d / max(w, 1e-30)) for d, w in zip(delta_sq, weight_sq)]  # NaN and Inf pass through
        return ratios, [1.0 if w > 0 and math.isfinite(r) else 0.0 for r, w in zip(ratios, weight_sq)]
