"""Step-level loss and learning rate, for the report's per-step curves (a warm-up shows as what it is).

Each optimizer step writes its batch loss and the LR it trained with into a device buffer (no host read
during the epoch); at the epoch's end one transfer appends the epoch's steps to ``steps.jsonl`` in the
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
        self.buffer: torch.Tensor | None = None
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
        self.buffer = torch.zeros((max(state.steps_per_epoch, 1), 2), device=state.device, dtype=torch.float64)
        self.steps = []
        if self.restored is not None:  # the steps a mid-epoch checkpoint carried
            n = len(self.restored["steps"])
            self.buffer[:n] = self.restored["values"].to(state.device)
            self.steps = list(self.restored["steps"])
            self.restored = None

    def on_step_end(self, state: State) -> None:
        if self.path is None or self.buffer is None or state.loss is None or len(self.steps) >= len(self.buffer):
            return
        i = len(self.steps)
        self.buffer[i, 0] = state.loss.detach().to(torch.float64)
        self.buffer[i, 1] = state.optimizer.param_groups[0]["lr"]  # the LR this step trained with
        self.steps.append(state.step)

    def on_epoch_end(self, state: State) -> None:
        if self.path is None or not self.steps:
            return
        values = self.buffer[: len(self.steps)].tolist()  # the epoch's one transfer
        lines = "".join(json.dumps({"step": s, "epoch": state.epoch, "loss": v[0], "lr": v[1]}) + "\n" for s, v in zip(self.steps, values))
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())
        self.steps = []

    def state_dict(self) -> dict[str, Any]:
        if self.buffer is None or not self.steps:
            return {"steps": [], "values": torch.zeros((0, 2), dtype=torch.float64)}
        return {"steps": list(self.steps), "values": self.buffer[: len(self.steps)].cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.restored = state if state.get("steps") else None
