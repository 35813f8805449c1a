"""Dead ReLU units and saturated sigmoid/tanh outputs, from forward hooks on sampled steps only.

Hooks are registered at BATCH_START of a sampled step and removed at AFTER_LOSS, so the other steps and
evaluation run without them. Definitions (per activation module call, averaged over the epoch's samples):

* ``dead_frac/<layer>`` (ReLU, LeakyReLU, ReLU6, GELU, SiLU, ELU, SELU): share of units whose output is
  never positive anywhere in the sampled batch. A *unit* is a channel (dim 1) after a convolution and
  the last dimension otherwise. DeepDiagnosis flags a layer at >= 70 % of outputs <= 0; counting units
  that are off for the whole batch is stricter, because a unit that fires for some inputs is alive.
* ``saturated_frac/<layer>`` (Sigmoid, Tanh): share of outputs within 0.01 of a bound (sigmoid: |x| >
  4.6; tanh: |x| > 2.65), where the local gradient is below 0.01. DeepDiagnosis uses |x| > 5 on the
  pre-activation; reading the output needs no extra hook and flags the same regime.

``<layer>`` is the parameter-owning module just before the activation (``hidden1.linear`` for ``hidden1.act``),
so activation keys line up with ``grad_norm/<layer>``; an activation with no such module keeps its name.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainwise.callbacks.monitoring import EpochMeanMonitor, is_sampled
from trainwise.core import ORDER, State

DEAD_KINDS = (nn.ReLU, nn.LeakyReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.ELU, nn.SELU)
SATURATING_KINDS = (nn.Sigmoid, nn.Tanh)
SATURATION_MARGIN = 0.01
CONV_KINDS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def alive_fraction(out: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """Share of units positive somewhere in the batch (and positions), float32 of shape (1,); the dead share
    is 1 minus it."""
    if out.dim() < 2:
        return (~(out.max() <= 0)).float().reshape(1)  # as the dead test: a NaN maximum is not dead
    positive = out > 0
    if out.dim() > 2 or channel_dim not in (-1, 1):
        positive = positive.movedim(channel_dim, -1).reshape(-1, out.shape[channel_dim])
    return torch.mean(positive.any(0), dim=0, keepdim=True, dtype=torch.float32)  # the mean converts the bools itself


def saturated_fraction(out: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """Share of outputs within SATURATION_MARGIN of a bound, float32 of shape (1,)."""
    if isinstance(module, nn.Sigmoid):
        near = (out < SATURATION_MARGIN) | (out > 1 - SATURATION_MARGIN)
    else:
        near = out.abs() > 1 - SATURATION_MARGIN
    return torch.mean(near.reshape(1, -1), dim=1, dtype=torch.float32)


class ActivationMonitor(EpochMeanMonitor):
    order = ORDER["activations"]

    def __init__(self, every_n_steps: int = 50):
        super().__init__(every_n_steps, reduce=self._dead_from_alive)
        self._targets: list[tuple[nn.Module, Any]] = []  # module, its hook (built once)
        self._handles: list[Any] = []

    def on_fit_start(self, state: State) -> None:
        self.upgrade_restored(state.model)
        self._targets = []
        if state.config.train.compile:
            # Hooks added and removed around a compiled model force recompilation (and break CUDA
            # graphs); a compiled run goes without activation statistics.
            return
        owner_name, owner_is_conv = None, False
        for name, module in state.model.named_modules():
            if any(True for _ in module.parameters(recurse=False)):
                owner_name, owner_is_conv = name, isinstance(module, CONV_KINDS)
            if isinstance(module, DEAD_KINDS):
                kind = "dead_frac"
            elif isinstance(module, SATURATING_KINDS):
                kind = "saturated_frac"
            else:
                continue
            self._targets.append((module, self._hook(f"{kind}/{owner_name or name}", kind, 1 if owner_is_conv else -1)))

    def on_batch_start(self, state: State) -> None:
        if self._handles:
            self._remove()
        if self._targets and is_sampled(state, self.every_n_steps):
            self._handles = [m.register_forward_hook(hook) for m, hook in self._targets]

    def _hook(self, key: str, kind: str, dim: int) -> Any:
        keys, add = (key,), self._means.add

        def hook(module: nn.Module, args: Any, out: Any) -> None:
            if not isinstance(out, torch.Tensor) or out.numel() == 0:
                return
            out = out.detach()  # cheaper than entering no_grad
            add(keys, alive_fraction(out, dim) if kind == "dead_frac" else saturated_fraction(out, module))

        return hook

    @staticmethod
    def _dead_from_alive(keys: tuple[str, ...], row: list[float]) -> tuple[list[float], None]:
        # the hook keeps the alive share (one kernel fewer per call); the dead share is the rest
        return ([1.0 - v for v in row] if keys[0].startswith("dead_frac/") else row), None

    def on_after_loss(self, state: State) -> None:
        if self._handles:
            self._remove()  # the forward pass is over; evaluation must not pay for hooks

    def on_step_end(self, state: State) -> None:
        if self._handles:  # a train_step of a subclass that fires no AFTER_LOSS: the next steps are not sampled
            self._remove()

    def on_fit_end(self, state: State) -> None:
        self._remove()

    def on_exception(self, state: State) -> None:
        self._remove()

    def _remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
