"""Live doctor as a callback (``[doctor] live``, ``stop_on_error``, ``expect``).

At EPOCH_END (the record is in the History) it reports each new finding and expectation miss once
through ``emit`` (print by default; a trainer can pass its progress bar's writer), keeps the current
diagnosis in ``state.extras["diagnosis"]``, and with ``doctor.stop_on_error`` asks training to stop on
an error-level finding or a missed expectation, naming it. At FIT_END it reports the misses only a finished run can have.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trainwise.core import ORDER, Callback, State
from trainwise.doctor.live import LiveDoctor


class DoctorCallback(Callback):
    # After early stopping and checkpointing (which act on the record first); it only reads.
    order = ORDER["doctor"]

    def __init__(self, emit: Callable[[str], None] = print, stop_on_error: bool | None = None):
        self.emit = emit
        self.stop_on_error = stop_on_error
        self._live: LiveDoctor | None = None
        self._restored: dict[str, Any] = {}

    def on_fit_start(self, state: State) -> None:
        self._live = LiveDoctor(state.config, num_classes=state.num_classes, task=state.task,
                                user_model=bool(state.extras.get("user_model")))
        self._live.load_state_dict(self._restored)
        if self.stop_on_error is None:
            self.stop_on_error = state.config.doctor.stop_on_error

    def on_epoch_end(self, state: State) -> None:
        if self._live is None:
            return
        findings, misses = self._live.update(state.history.records)
        state.extras["diagnosis"] = self._live.latest
        for f in findings:
            self.emit(f"epoch {state.epoch}: {f}")
        for m in misses:
            self.emit(f"epoch {state.epoch}: {m}")
        errors = [f for f in findings if f.severity == "error"]
        if self.stop_on_error and errors:
            f = errors[0]
            fix = f" Try: {', '.join(f.fixes)}." if f.fixes else ""
            state.request_stop(f"doctor: {f.code} at epoch {state.epoch}: {f.message}{fix}")
        elif self.stop_on_error and misses:
            state.request_stop(f"doctor: at epoch {state.epoch}, {misses[0]}")

    def on_fit_end(self, state: State) -> None:
        if self._live is not None:
            for m in self._live.finish(state.history.records):
                self.emit(str(m))

    def state_dict(self) -> dict[str, Any]:
        return self._live.state_dict() if self._live is not None else dict(self._restored)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._restored = dict(state)  # the trainer may load before or after FIT_START
        if self._live is not None:
            self._live.load_state_dict(state)
