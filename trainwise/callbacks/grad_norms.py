"""Gradient norms per layer and in total, before clipping: the evidence for exploding/vanishing gradients.

Every ``every_n_steps`` optimizer steps, at AFTER_BACKWARD (gradients present and unscaled), the L2
norm of each parameter's gradient is kept on the device (one ``_foreach_norm``), and the NaN guard reads
it too. At EVAL_END the epoch's samples come to the host in one transfer, become per-layer norms, and
their means go into the record as ``grad_norm`` and ``grad_norm/<layer>``. Samples whose total norm
is NaN/Inf are left out of the mean (the NaN guard counts them as ``nonfinite_steps``), so one bad step
does not hide the rest of the epoch; an epoch with no finite sample records NaN.
"""

from __future__ import annotations

import math

from trainwise.callbacks.monitoring import EpochMeanMonitor, LayerIndex, is_sampled, share_grad_norms
from trainwise.core import ORDER, State


class GradNormMonitor(EpochMeanMonitor):
    # Before anything that changes gradients at AFTER_BACKWARD (clipping, the NaN guard's skip), so the
    # norms are the raw ones.
    order = ORDER["grad_norms"]

    def __init__(self, every_n_steps: int = 50):
        super().__init__(every_n_steps, reduce=self._per_layer)
        self._index: LayerIndex | None = None
        self._keys: tuple[str, ...] = ()

    def on_fit_start(self, state: State) -> None:
        self.upgrade_restored(state.model)
        self._index = LayerIndex(state.model)
        self._keys = ("grad_norm", *(f"grad_norm/{name}" for name in self._index.names))

    def on_after_backward(self, state: State) -> None:
        if self._index is None or not is_sampled(state, self.every_n_steps):
            return
        row = self._index.grad_norms()
        if row is not None:
            share_grad_norms(state, row)
            self._means.add(self._keys, row)

    def _per_layer(self, keys: tuple[str, ...], row: list[float]) -> tuple[list[float], list[float]]:
        """Per-parameter norms -> (total and per-layer norms, weight 1 each where the total is finite, else 0)."""
        layer_sq = self._index.per_layer_sq(row)
        sample = [math.sqrt(v) for v in (sum(layer_sq), *layer_sq)]  # an Inf stays Inf, a NaN NaN
        return sample, [1.0 if math.isfinite(sample[0]) else 0.0] * len(sample)
