"""TensorBoard: epoch metrics, the step loss and learning rate, gradient-norm histograms, the config.

Enabled with ``logging.tensorboard = true``; event files go to ``logging.tensorboard_dir`` or
``<run dir>/tensorboard``. The x-axis of every tag is the optimizer step. Tags:

- every numeric key of the epoch record under its own name (``train_loss``, ``val_acc``, ``lr``,
  ``epoch``, monitor values such as ``grad_norm/<layer>``, which TensorBoard groups by the prefix);
- ``step/train_loss`` and ``step/lr`` every ``logging.every_n_steps`` optimizer steps. Reading the loss
  waits for the device, which is why it happens every k steps and not every step;
- ``grad_norm_per_layer``: a histogram of the epoch's per-layer gradient norms (when monitors add them);
- ``config``: the resolved config as TOML text.

A resumed run appends to the same directory and drops the events a killed run wrote after its last
checkpoint (``purge_step``), so the curves have no duplicated stretch."""

from __future__ import annotations

from pathlib import Path

from trainwise.callbacks.loggers import finite, numeric_items
from trainwise.config import LoggingConfig, dump_toml
from trainwise.core import ORDER, Callback, State
from trainwise.errors import UserError
from trainwise.optional import require
from trainwise.rundir import TENSORBOARD


class TensorBoardLogger(Callback):
    order = ORDER["loggers"]

    def __init__(self, cfg: LoggingConfig, run_dir: Path | None):
        self.log_dir = Path(cfg.tensorboard_dir) if cfg.tensorboard_dir else (run_dir / TENSORBOARD if run_dir else None)
        self.every = cfg.every_n_steps
        self.writer = None
        self.last_logged = -1

    def on_fit_start(self, state: State) -> None:
        if self.log_dir is None:
            raise UserError("logging.tensorboard needs a directory", expected="a run directory or logging.tensorboard_dir",
                            fix="pass out=... (trainwise train --out) or set logging.tensorboard_dir")
        require("tensorboard", "logging.tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        # Events up to the checkpoint's step are in the files already; later ones came from the part of a
        # killed run that resume repeats, so they go.
        self.writer = SummaryWriter(str(self.log_dir), purge_step=state.step + 1 if state.step > 0 else None)
        if state.step == 0:
            self.writer.add_text("config", "```toml\n" + dump_toml(state.config) + "```", 0)

    def on_step_end(self, state: State) -> None:
        if state.step % self.every != 0 or state.step == self.last_logged or state.loss is None:
            return  # (a step skipped by the NaN guard leaves state.step unchanged)
        self.last_logged = state.step
        self.writer.add_scalar("step/train_loss", state.loss.item(), state.step)
        self.writer.add_scalar("step/lr", float(state.optimizer.param_groups[0]["lr"]), state.step)

    def on_epoch_end(self, state: State) -> None:
        values = numeric_items(state.record) | {"epoch": float(state.epoch)}
        for key, value in values.items():
            self.writer.add_scalar(key, value, state.step)
        layer_norms = finite([v for k, v in values.items() if k.startswith("grad_norm/")])
        if layer_norms:
            import numpy as np

            self.writer.add_histogram("grad_norm_per_layer", np.asarray(layer_norms), state.step)
        self.writer.flush()

    def on_fit_end(self, state: State) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    on_exception = on_fit_end  # close the files whichever way training ends
