"""SIGINT (Ctrl-C) and SIGTERM (preemption) during ``Trainer.fit``: stop at a clean point, save, say how to resume.

While a run with a run directory trains, :class:`SignalCatcher` replaces the SIGINT and SIGTERM handlers
(main thread only) with one that only records the signal. The Trainer looks at it after every optimizer
step and after every epoch's checkpoint: it finishes the step, writes ``last.pt`` (mid-epoch position
included) and raises :class:`TrainingInterrupted`, which the CLI prints as one line and turns into exit
code 128 + signal number (130 for SIGINT, 143 for SIGTERM). A second signal while the first is being
handled stops at once (``KeyboardInterrupt``); the checkpoint on disk is then the previous complete one.
The previous handlers are restored when ``fit`` leaves its loop.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Raised by ``fit`` after a SIGINT/SIGTERM, once the resumable checkpoint is written."""

    def __init__(self, signum: int, epoch: int, step: int, run_dir: Path):
        self.signum, self.epoch, self.step, self.run_dir = signum, epoch, step, run_dir
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by {signal.Signals(signum).name} at epoch {epoch} step {step}; checkpoint saved; "
                         f"continue with: trainwise resume {run_dir}")


class SignalCatcher:
    """Records SIGINT/SIGTERM instead of acting on them; ``received`` is the first signal number, or None."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> SignalCatcher:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            # None: a handler installed outside Python; the default action is the closest we can put back.
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        if self.received is not None:
            raise SecondSignal(signum)
        self.received = signum


class SecondSignal(KeyboardInterrupt):
    """A second SIGINT/SIGTERM while the first was being handled: stop now, without writing anything more."""

    def __init__(self, signum: int):
        self.signum, self.exit_code = signum, 128 + signum
        super().__init__(f"interrupted again by {signal.Signals(signum).name}; stopped at once: the last complete checkpoint "
                         "is intact (continue with trainwise resume RUN_DIR)")
