"""Exponential moving average (Polyak averaging) of a model's weights.

``ema <- decay * ema + (1 - decay) * weights`` after every optimizer step. Early on the average would
be dominated by the random initial weights, so the warm-up uses ``min(decay, (1 + t) / (10 + t))``
after ``t`` updates (TensorFlow's ExponentialMovingAverage with ``num_updates``): 0.1, 0.18, 0.25 ...
rising towards ``decay``. Floating-point buffers (batch-norm running statistics) are averaged too;
integer buffers (batch counters) are copied.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from trainwise.rundir import RunDir
from trainwise.config import EmaConfig
from trainwise.core import ORDER, Callback, State
from trainwise.metrics import resolve_mode
from trainwise.models.names import upgrade_keys
from trainwise.techniques.registry import Technique, register


def ema_decay(decay: float, updates: int, warmup: bool = True) -> float:
    """The decay used for the update after ``updates`` earlier updates."""
    return min(decay, (1 + updates) / (10 + updates)) if warmup else decay


@torch.no_grad()
def ema_update(ema: list[torch.Tensor], params: list[torch.Tensor], decay: float) -> None:
    """In place: each ``ema[i] = decay * ema[i] + (1 - decay) * params[i]``."""
    torch._foreach_mul_(ema, decay)
    torch._foreach_add_(ema, params, alpha=1 - decay)


def copy_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@torch.no_grad()
def update_state(ema: dict[str, torch.Tensor], model: torch.nn.Module, decay: float) -> None:
    """One EMA step of a whole state dict: floats averaged, the rest copied."""
    current = model.state_dict()
    names = [k for k, v in ema.items() if v.is_floating_point()]
    ema_update([ema[k] for k in names], [current[k].detach() for k in names], decay)
    for k, v in ema.items():
        if not v.is_floating_point():
            v.copy_(current[k])


@contextmanager
def swapped_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> Iterator[torch.nn.Module]:
    """Temporarily load ``weights`` into ``model`` (e.g. to evaluate the EMA); the raw weights come back after."""
    raw = copy_state(model)
    model.load_state_dict(weights)
    try:
        yield model
    finally:
        model.load_state_dict(raw)


# ------------------------------------------------------------ the callback

RECORDED = ("loss", "acc", "macro_f1")


class EMA(Callback):
    """EMA (Polyak) weights: updated after every step, validated every epoch, checkpointed, tested when better.

    - STEP_END: one EMA update (trainwise.techniques.ema).
    - EVAL_END: the EMA weights are scored on validation; the record gets ``val_loss_ema``, ``val_acc_ema``,
      ``val_macro_f1_ema`` beside the raw weights' ``val_*``.
    - FIT_END: raw and EMA weights are scored on validation by ``ema.monitor``; the better ones stay in the
      model for the final test and ``final.safetensors`` (``summary["test_weights"]`` says which), and the
      EMA weights are written to ``checkpoints/ema.safetensors`` (``trainwise evaluate RUN --weights ema``).
    """

    order = ORDER["ema"]

    def __init__(self, cfg: EmaConfig):
        self.cfg = cfg
        self.weights: dict[str, torch.Tensor] | None = None
        self.updates = 0

    def on_fit_start(self, state: State) -> None:
        if self.weights is None:
            self.weights = copy_state(state.model)
        else:  # resumed: the checkpoint's copy, loaded on the CPU (names of an older layout renamed)
            self.weights = {k: v.to(state.device) for k, v in upgrade_keys(state.model, self.weights).items()}

    def on_step_end(self, state: State) -> None:
        update_state(self.weights, state.model, ema_decay(self.cfg.decay, self.updates, self.cfg.warmup))
        self.updates += 1

    def _score(self, state: State) -> dict[str, Any]:
        with swapped_weights(state.model, self.weights):
            return state.evaluate("val")

    def on_eval_end(self, state: State) -> None:
        if state.evaluate is not None and "val_loss" in state.record:
            scores = self._score(state)
            state.record |= {f"val_{k}_ema": scores[k] for k in RECORDED}

    def on_fit_end(self, state: State) -> None:
        report = state.extras.setdefault("summary", {})
        last = state.history[-1] if len(state.history) else {}
        if state.evaluate is not None and "val_loss" in last:
            key = self.cfg.monitor.removeprefix("val_")
            raw, ema = state.evaluate("val")[key], self._score(state)[key]
            better = ema > raw if resolve_mode(self.cfg.monitor, "auto") == "max" else ema < raw
            report["ema"] = {"monitor": self.cfg.monitor, "raw": raw, "ema": ema}
        else:
            better = False  # nothing to judge by: keep the raw weights
        if state.run_dir is not None:
            with swapped_weights(state.model, self.weights):
                RunDir(state.run_dir).save_weights("ema", state.model, {"updates": self.updates})
        if better:
            state.model.load_state_dict(self.weights)
        report["test_weights"] = "ema" if better else "raw"

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.weights, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = state["updates"]
        self.weights = {k: v.clone() for k, v in state["weights"].items()}


register(Technique(
    "ema", enabled=lambda cfg: cfg.ema.enabled, build=lambda cfg: [EMA(cfg.ema)],
    example={"ema.enabled": True, "ema.decay": 0.9}, docs="EMA (Polyak) weights"))
