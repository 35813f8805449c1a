"""Progress: a rich progress bar with live loss/accuracy and ETA on a terminal; one log line per epoch elsewhere.

The bar reads the running loss at most every ``refresh_s`` seconds: each read waits for the device,
so reading every step would put a host sync in the training step.
"""

from __future__ import annotations

import sys
import time

from trainwise.core import Callback, State


def format_record(record: dict) -> str:
    parts = [f"epoch {record['epoch']}"]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "val_f1"):
        if isinstance(record.get(key), float):
            parts.append(f"{key} {record[key]:.4f}")
    if "lr" in record:
        parts.append(f"lr {record['lr']:.3g}")
    parts.append(f"{record.get('time_s', 0):.1f}s")
    if record.get("phase"):
        parts.append(f"phase {record['phase']}")
    return " | ".join(parts)


class LogLines(Callback):
    """Plain lines, one per epoch (CI logs, files, notebooks without a terminal)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr

    def on_epoch_end(self, state: State) -> None:
        self.write(format_record(state.record))

    def write(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


class ProgressBar(Callback):
    def __init__(self, refresh_s: float = 0.5):
        self.refresh_s = refresh_s
        self.progress = None

    def on_fit_start(self, state: State) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"), transient=False, stderr=True,
        )
        self.progress.start()
        self.task = None
        self.epochs = state.config.train.epochs

    def on_epoch_start(self, state: State) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task("train", total=state.steps_per_epoch, epoch=state.epoch, epochs=self.epochs, metrics="")
        self.last = time.monotonic()

    def on_step_end(self, state: State) -> None:
        self.progress.advance(self.task)
        now = time.monotonic()
        if now - self.last >= self.refresh_s and state.loss is not None:
            self.last = now
            self.progress.update(self.task, metrics=f"loss {state.loss.item():.4f}")

    def on_epoch_end(self, state: State) -> None:
        self.write(format_record(state.record))

    def write(self, line: str) -> None:
        if self.progress is not None:
            self.progress.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=sys.stderr, flush=True)

    def on_fit_end(self, state: State) -> None:
        self.close()

    def on_exception(self, state: State) -> None:
        self.close()

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def make_progress(mode: str) -> Callback | None:
    if mode == "none":
        return None
    if mode == "bar" or (mode == "auto" and sys.stderr.isatty()):
        return ProgressBar()
    return LogLines()
