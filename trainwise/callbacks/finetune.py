"""Fine-tuning (trainwise.techniques.finetune): pretrained weights, a frozen body, unfreezing at an epoch.

- FIT_START (fresh runs only): loads ``finetune.init_from``'s weights, skipping the head (``reset_head``:
  new classes need a new head, even when their number is the same) and tensors whose shape differs;
  which were loaded and which skipped goes to stderr and ``summary["finetune"]``.
- EPOCH_START: before ``unfreeze_epoch`` the ``freeze`` parameters have ``requires_grad`` off (the phase
  label is ``frozen``), from it on they train (``unfrozen``). The optimizer holds every parameter from the start:
  torch optimizers skip parameters without gradients, so unfreezing needs no new optimizer and a resumed
  run is exact. Per-parameter learning rates (``head_lr_mult``, ``layer_decay``, ``lr_mult``) are set when
  the Trainer builds the optimizer.
- BATCH_START: frozen batch-norm layers stay in eval mode, so their running statistics do not move.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from trainwise import checkpointing
from trainwise.callbacks.phase import set_phase
from trainwise.config import FinetuneConfig
from trainwise.core import Callback, State
from trainwise.errors import UserError
from trainwise.techniques.finetune import frozen_names, head_names, load_matching, norm_modules_of, set_trainable


def pretrained_path(init_from: str, weights: str = "final") -> Path:
    path = Path(init_from)
    if path.is_dir():
        path = path / "checkpoints" / f"{weights}.safetensors"
    if not path.is_file():
        raise UserError(f"no pretrained weights at {path}", expected="a trainwise run directory or a .safetensors file",
                        fix="set finetune.init_from to a run directory written by trainwise train")
    return path


class Finetune(Callback):
    order = -20  # load weights before anything copies them (EMA)

    def __init__(self, cfg: FinetuneConfig):
        self.cfg = cfg
        self.frozen: list[str] = []
        self.norms: list = []
        self.active = False
        self.report: dict[str, Any] | None = None

    def on_fit_start(self, state: State) -> None:
        cfg = self.cfg
        if cfg.init_from and state.epoch == 0 and state.step == 0:
            path = pretrained_path(cfg.init_from, cfg.weights)
            skip = head_names(state.model, cfg.head or None) if cfg.reset_head else []
            loaded, skipped = load_matching(state.model, checkpointing.load_weights(path, state.device), skip)
            if not loaded:
                raise UserError(f"no tensor of {path} fits the model", expected="the same architecture (names and shapes)",
                                received=f"skipped: {', '.join(skipped)}", fix="fine-tune with the model config of the pretrained run")
            self.report = {"init_from": str(path), "loaded": loaded, "skipped": skipped}
            reasons = "; ".join(f"{k} ({v})" for k, v in skipped.items()) or "none"
            print(f"finetune: loaded {len(loaded)} tensors from {path}; skipped {len(skipped)}: {reasons}", file=sys.stderr)
        if self.report is not None:
            state.extras.setdefault("summary", {})["finetune"] = self.report
        self.frozen = frozen_names(state.model, cfg.freeze, cfg.head or None)
        self.norms = norm_modules_of(state.model, self.frozen) if cfg.freeze_norm_stats else []

    def on_epoch_start(self, state: State) -> None:
        if not self.frozen:
            return
        self.active = self.cfg.unfreeze_epoch is None or state.epoch < self.cfg.unfreeze_epoch
        set_trainable(state.model, self.frozen, not self.active)
        set_phase(state, "finetune", "frozen" if self.active else "unfrozen")

    def on_batch_start(self, state: State) -> None:
        if self.active:
            for module in self.norms:
                module.eval()

    def state_dict(self) -> dict[str, Any]:
        return {"report": self.report}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.report = state["report"]
