"""Diagnosis during training: at each epoch end, what is new since the last epoch.

``LiveDoctor.update(records)`` re-diagnoses the whole History (cheap: milliseconds for hundreds of
epochs) and returns only findings not reported before -- keyed by (code, severity), so a warning that
becomes an error is reported again, and a finding that flickers between epochs is reported once.
Expectations are checked with ``final=False`` until ``finish`` (deadlines not yet reached are pending).
The rules already hold back judgements that need a finished run (see ``rules.common.unfinished``).
"""

from __future__ import annotations

from typing import Any

from trainwise.doctor import Diagnosis, diagnose
from trainwise.doctor.codes import VERDICTS
from trainwise.doctor.expectations import ExpectationMiss, check_expectations
from trainwise.doctor.finding import Finding


class LiveDoctor:
    def __init__(self, config: Any = None, *, num_classes: int | None = None, task: str | None = None, user_model: bool = False,
                 expect: list[str] | None = None):
        self.config = config
        self.num_classes = num_classes
        self.task = task
        self.user_model = user_model
        cfg = config.to_dict() if hasattr(config, "to_dict") else (config or {})
        self.expect = list(expect if expect is not None else cfg.get("doctor", {}).get("expect", []) or [])
        self.latest: Diagnosis | None = None
        self._reported: set[tuple[str, str]] = set()
        self._missed: set[str] = set()

    def update(self, records: list[dict[str, Any]]) -> tuple[list[Finding], list[ExpectationMiss]]:
        """New findings (never ``healthy`` or ``too_short``: a run in progress is short by design) and new
        expectation misses for the History so far."""
        self.latest = diagnose(records, self.config, num_classes=self.num_classes, task=self.task, expect=[], user_model=self.user_model)
        new = [f for f in self.latest if f.code not in VERDICTS and (f.code, f.severity) not in self._reported]
        self._reported.update((f.code, f.severity) for f in new)
        return new, self._new_misses(check_expectations(records, self.expect, final=False))

    def finish(self, records: list[dict[str, Any]]) -> list[ExpectationMiss]:
        """Misses that only a finished run can have ("at end", deadlines past the last epoch)."""
        return self._new_misses(check_expectations(records, self.expect, final=True))

    def _new_misses(self, misses: list[ExpectationMiss]) -> list[ExpectationMiss]:
        fresh = [m for m in misses if m.expectation not in self._missed]
        self._missed.update(m.expectation for m in fresh)
        return fresh

    def state_dict(self) -> dict[str, Any]:
        """What was reported already, so a resumed run does not repeat it."""
        return {"reported": sorted(self._reported), "missed": sorted(self._missed)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._reported = {(code, severity) for code, severity in state.get("reported", [])}
        self._missed = set(state.get("missed", []))
