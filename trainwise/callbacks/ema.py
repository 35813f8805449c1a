"""EMA (Polyak) weights: updated after every step, validated every epoch, checkpointed, tested when better.

- STEP_END: one EMA update (trainwise.techniques.ema).
- EVAL_END: the EMA weights are scored on validation; the record gets ``val_loss_ema``, ``val_acc_ema``,
  ``val_macro_f1_ema`` beside the raw weights' ``val_*``.
- FIT_END: raw and EMA weights are scored on validation by ``ema.monitor``; the better ones stay in the
  model for the final test and ``final.safetensors`` (``summary["test_weights"]`` says which), and the
  EMA weights are written to ``checkpoints/ema.safetensors`` (``trainwise evaluate RUN --weights ema``).
"""

from __future__ import annotations

from typing import Any

import torch

from trainwise import checkpointing
from trainwise.metrics import resolve_mode
from trainwise.config import EmaConfig
from trainwise.core import Callback, State
from trainwise.techniques.ema import copy_state, ema_decay, swapped_weights, update_state

RECORDED = ("loss", "acc", "macro_f1")


class EMA(Callback):
    order = 5  # after early stopping (-10) has restored the best raw weights at FIT_END

    def __init__(self, cfg: EmaConfig):
        self.cfg = cfg
        self.weights: dict[str, torch.Tensor] | None = None
        self.updates = 0

    def on_fit_start(self, state: State) -> None:
        if self.weights is None:
            self.weights = copy_state(state.model)
        else:  # resumed: the checkpoint's copy, loaded on the CPU
            self.weights = {k: v.to(state.device) for k, v in self.weights.items()}

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
                checkpointing.save_weights(state.model, state.run_dir / "checkpoints" / "ema.safetensors", {"updates": self.updates})
        if better:
            state.model.load_state_dict(self.weights)
        report["test_weights"] = "ema" if better else "raw"

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.weights, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = state["updates"]
        self.weights = {k: v.clone() for k, v in state["weights"].items()}
