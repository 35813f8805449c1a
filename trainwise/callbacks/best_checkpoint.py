"""Writes ``checkpoints/best.safetensors`` whenever the monitored metric improves."""

from __future__ import annotations

from trainwise.rundir import RunDir
from trainwise.callbacks.monitor_base import MetricWatcher, metric_value
from trainwise.config import CheckpointConfig
from trainwise.core import ORDER, Callback, State


class BestCheckpoint(Callback):
    order = ORDER["best_checkpoint"]

    def __init__(self, cfg: CheckpointConfig):
        self.watcher = MetricWatcher(cfg.monitor, cfg.mode)

    def on_epoch_end(self, state: State) -> None:
        if state.run_dir is None:
            return
        if self.watcher.update(metric_value(state.record, self.watcher.monitor), state.epoch):
            RunDir(state.run_dir).save_weights("best", state.model, {"epoch": state.epoch, self.watcher.monitor: self.watcher.best})

    def state_dict(self) -> dict:
        return self.watcher.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.watcher.load_state_dict(state)
