"""Watching one metric for improvement (shared by early stopping, best checkpoints and plateau logic)."""

from __future__ import annotations

import math

from trainwise.metrics import resolve_mode


class MetricWatcher:
    """Tracks the best value of ``monitor``; ``improved(value)`` is true when it beats the best by ``min_delta``."""

    def __init__(self, monitor: str, mode: str = "auto", min_delta: float = 0.0):
        self.monitor = monitor
        self.mode = resolve_mode(monitor, mode)
        self.min_delta = min_delta
        self.best: float | None = None
        self.best_epoch: int | None = None

    def improved(self, value: float) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, value: float, epoch: int) -> bool:
        if self.improved(value):
            self.best, self.best_epoch = value, epoch
            return True
        return False

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]


def metric_value(record: dict, monitor: str) -> float:
    from trainwise.errors import UserError

    if monitor not in record:
        keys = sorted(k for k, v in record.items() if isinstance(v, (int, float)))
        raise UserError(f"monitored metric {monitor!r} is not in the History", expected=f"one of {', '.join(keys)}",
                        fix="set the monitor to one of the listed keys (validation metrics need data.val_fraction > 0)")
    return record[monitor]
