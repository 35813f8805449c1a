"""Early stopping that restores the best epoch's weights (Keras' restore_best_weights, on by default).

Patience follows Keras and Lightning: training stops after ``patience`` epochs in a row without
improvement (``patience = 3``: best at epoch 4, epochs 5, 6, 7 no better, stop after epoch 7).
``patience = 0`` stops at the first epoch that does not improve, as ``patience = 1`` does.
"""

from __future__ import annotations

import copy

from trainwise.callbacks.monitor_base import MetricWatcher, metric_value
from trainwise.config import EarlyStoppingConfig
from trainwise.core import ORDER, Callback, State


class EarlyStopping(Callback):
    order = ORDER["early_stopping"]

    def __init__(self, cfg: EarlyStoppingConfig):
        self.cfg = cfg
        self.watcher = MetricWatcher(cfg.monitor, cfg.mode, cfg.min_delta)
        self.wait = 0
        self.best_weights: dict | None = None

    def on_epoch_end(self, state: State) -> None:
        value = metric_value(state.record, self.cfg.monitor)
        if self.watcher.update(value, state.epoch):
            self.wait = 0
            if self.cfg.restore_best:
                # A CPU copy: small next to the model on the GPU, and it survives in the checkpoint.
                self.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in state.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.cfg.patience:
            by = f" by more than {self.cfg.min_delta:g}" if self.cfg.min_delta else ""
            state.request_stop(
                f"early stopping: {self.cfg.monitor} did not improve{by} for "
                f"{self.wait} epochs (best {self.watcher.best:.4g} at epoch {self.watcher.best_epoch})"
            )

    def on_fit_end(self, state: State) -> None:
        if self.cfg.restore_best and self.best_weights is not None and self.watcher.best_epoch != state.epoch:
            state.model.load_state_dict(self.best_weights)
            state.extras["restored_epoch"] = self.watcher.best_epoch

    def state_dict(self) -> dict:
        return {"watcher": self.watcher.state_dict(), "wait": self.wait, "best_weights": copy.copy(self.best_weights)}

    def load_state_dict(self, state: dict) -> None:
        self.watcher.load_state_dict(state["watcher"])
        self.wait = state["wait"]
        self.best_weights = state["best_weights"]
