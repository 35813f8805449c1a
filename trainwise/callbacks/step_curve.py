"""Step-level loss and learning rate, for the report's per-step curves (a warm-up shows as what it is).

Each optimizer step keeps its batch loss (a detached device tensor: no kernel, no host read during the
epoch) and the LR it trained with; at the epoch's end one transfer appends the epoch's steps to ``steps.jsonl`` in the
run directory, one line per step: ``{"step": s, "epoch": e, "loss": l, "lr": r}``. A mid-epoch
checkpoint carries the steps of the epoch so far, and a resumed run first drops lines after the
checkpoint's step, so the file of a resumed run equals an uninterrupted run's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from trainwise.core import Callback, State
from trainwise.rundir import STEPS


class StepCurve(Callback):
    order = 95  # after the loggers; it only reads

    def __init__(self) -> None:
        self.path: Path | None = None
        # The epoch so far: each step's detached loss (a device tensor, read once at the epoch's end), LR and number.
        self.losses: list[torch.Tensor] = []
        self.lrs: list[float | torch.Tensor] = []
        self.steps: list[int] = []
        self.restored: dict[str, Any] | None = None

    def on_fit_start(self, state: State) -> None:
        if state.run_dir is None:
            return
        self.path = state.run_dir / STEPS
        if self.path.exists():  # a resumed run: keep what the checkpoint covers
            lines = [line for line in self.path.read_text().splitlines() if line.strip()]
            kept = [line for line in lines if json.loads(line)["step"] <= state.step - len(self._restored_steps())]
            if len(kept) != len(lines):
                self.path.write_text("".join(f"{line}\n" for line in kept))

    def _restored_steps(self) -> list[int]:
        return self.restored["steps"] if self.restored else []

    def on_epoch_start(self, state: State) -> None:
        if self.path is None:
            return
        self.losses, self.lrs, self.steps = [], [], []
        if self.restored is not None:  # the steps a mid-epoch checkpoint carried
            values = self.restored["values"].to(state.device)
            self.losses, self.lrs = list(values[:, 0]), values[:, 1].tolist()
            self.steps = list(self.restored["steps"])
            self.restored = None

    def on_step_end(self, state: State) -> None:
        if self.path is None or state.loss is None or len(self.steps) >= max(state.steps_per_epoch, 1):
            return
        lr = state.optimizer.param_groups[0]["lr"]  # the LR this step trained with
        self.losses.append(state.loss.detach())
        self.lrs.append(lr.clone() if isinstance(lr, torch.Tensor) else lr)  # train.cuda_graphs fills a tensor LR in place
        self.steps.append(state.step)

    def _values(self) -> torch.Tensor:
        """(steps, 2) float64 on the device: each step's loss and LR."""
        losses = torch.stack(self.losses).reshape(-1).double()
        if any(isinstance(lr, torch.Tensor) for lr in self.lrs):
            lrs = torch.stack([torch.as_tensor(lr, device=losses.device).reshape(()).double() for lr in self.lrs])
        else:
            lrs = torch.tensor(self.lrs, dtype=torch.float64, device=losses.device)
        return torch.stack([losses, lrs], dim=1)

    def on_epoch_end(self, state: State) -> None:
        if self.path is None or not self.steps:
            return
        values = self._values().tolist()  # the epoch's one transfer
        lines = "".join(json.dumps({"step": s, "epoch": state.epoch, "loss": v[0], "lr": v[1]}) + "\n" for s, v in zip(self.steps, values))
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())
        self.losses, self.lrs, self.steps = [], [], []

    def state_dict(self) -> dict[str, Any]:
        if not self.steps:
            return {"steps": [], "values": torch.zeros((0, 2), dtype=torch.float64)}
        return {"steps": list(self.steps), "values": self._values().cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.restored = state if state.get("steps") else None
