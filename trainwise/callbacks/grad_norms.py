"""Gradient norms per layer and in total, before clipping: the evidence for exploding/vanishing gradients.

Every ``every_n_steps`` optimizer steps, at AFTER_BACKWARD (gradients present and unscaled), the L2
norm of each layer's gradient is added to a device-side running sum. At EVAL_END the epoch's means go
into the record as ``grad_norm`` and ``grad_norm/<layer>`` with a single transfer to the host. Samples
whose total norm is NaN/Inf are left out of the mean (the NaN guard counts them as ``nonfinite_steps``),
so one bad step does not hide the rest of the epoch; an epoch with no finite sample records NaN.
"""

from __future__ import annotations

import torch

from trainwise.callbacks.monitoring import EpochMeanMonitor, LayerIndex, is_sampled
from trainwise.core import ORDER, State


class GradNormMonitor(EpochMeanMonitor):
    # Before anything that changes gradients at AFTER_BACKWARD (clipping, the NaN guard's skip), so the
    # norms are the raw ones.
    order = ORDER["grad_norms"]

    def __init__(self, every_n_steps: int = 50):
        super().__init__(every_n_steps)
        self._index: LayerIndex | None = None
        self._keys: tuple[str, ...] = ()

    def on_fit_start(self, state: State) -> None:
        self.upgrade_restored(state.model)
        self._index = LayerIndex(state.model)
        self._keys = ("grad_norm", *(f"grad_norm/{name}" for name in self._index.names))

    def on_after_backward(self, state: State) -> None:
        if self._index is None or not is_sampled(state, self.every_n_steps):
            return
        grads, slots = self._index.grads()
        if not grads:
            return
        layer_sq = self._index.per_layer_sq(grads, slots)
        sample = torch.cat([layer_sq.sum().view(1), layer_sq]).sqrt()
        weight = torch.isfinite(sample[0]).float().expand_as(sample)
        self._means.add(self._keys, sample, weight)
