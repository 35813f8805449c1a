"""Stochastic weight averaging (Izmailov et al. 2018, "Averaging Weights Leads to Wider Optima and Better
Generalization").

The final weights are the running mean of the weights at the end of each epoch from ``start_epoch`` on:
``avg <- avg + (w - avg) / (n + 1)``. Averaged weights have batch-norm statistics of no single model, so
they are recomputed with one pass over the training data (as ``torch.optim.swa_utils.update_bn`` does:
running statistics reset, cumulative averaging, no gradients, no augmentation). Integer buffers (batch
counters) are copied. SWA works best when the LR stays high while it averages (a constant or slowly
decaying schedule over the averaged epochs).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainwise.config import SwaConfig
from trainwise.core import ORDER, Callback, State
from trainwise.models.names import upgrade_keys
from trainwise.rundir import RunDir
from trainwise.techniques.ema import copy_state
from trainwise.techniques.registry import Technique, register


@torch.no_grad()
def add_to_average(average: dict[str, torch.Tensor], weights: dict[str, torch.Tensor], n: int) -> None:
    """In place: ``average`` (the mean of ``n`` states) becomes the mean of those and ``weights``."""
    for name, avg in average.items():
        w = weights[name].detach()
        if avg.is_floating_point():
            avg.add_(w.to(avg.dtype) - avg, alpha=1 / (n + 1))
        else:
            avg.copy_(w)


@torch.no_grad()
def recompute_batch_norm(model: nn.Module, batches) -> bool:
    """Batch-norm running statistics of ``model`` as the mean over ``batches`` (tuples of inputs); False without batch norm."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return False
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the pass
    was_training = model.training
    model.train()
    for inputs in batches:
        model(*inputs)
    model.train(was_training)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return True


# ------------------------------------------------------------ the callback

class SWA(Callback):
    """EPOCH_END (from ``swa.start_epoch``): the epoch's weights join the average. FIT_END: the averaged weights
    (batch norm recomputed) replace the model's for the final test and ``final.safetensors``, are written to
    ``checkpoints/swa.safetensors``, and ``summary["swa"]`` says how many epochs were averaged."""

    order = ORDER["swa"]

    def __init__(self, cfg: SwaConfig):
        self.cfg = cfg
        self.average: dict[str, torch.Tensor] | None = None
        self.n = 0

    def on_epoch_end(self, state: State) -> None:
        if state.epoch < self.cfg.start_epoch:
            return
        if self.average is None:
            self.average = copy_state(state.model)
        else:
            # resumed: loaded on the CPU, names of an older layout renamed
            self.average = {k: v.to(state.device) for k, v in upgrade_keys(state.model, self.average).items()}
            add_to_average(self.average, state.model.state_dict(), self.n)
        self.n += 1

    def on_fit_end(self, state: State) -> None:
        if self.average is None:
            state.extras.setdefault("summary", {})["swa"] = {"epochs_averaged": 0}
            return
        state.model.load_state_dict(self.average)
        bn = self.cfg.update_bn and recompute_batch_norm(
            state.model, (inputs for inputs, _ in state.train_loader.batches(max(state.epoch, 1))))
        if state.run_dir is not None:
            RunDir(state.run_dir).save_weights("swa", state.model, {"epochs_averaged": self.n})
        state.extras.setdefault("summary", {})["swa"] = {"epochs_averaged": self.n, "start_epoch": self.cfg.start_epoch,
                                                          "batch_norm_recomputed": bn}

    def state_dict(self) -> dict[str, Any]:
        return {"average": self.average, "n": self.n}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.n = state["n"]
        self.average = None if state["average"] is None else {k: v.clone() for k, v in state["average"].items()}


register(Technique(
    "swa", enabled=lambda cfg: cfg.swa.enabled, build=lambda cfg: [SWA(cfg.swa)],
    example={"swa.enabled": True, "swa.start_epoch": 2}, docs="Stochastic weight averaging (SWA)"))
