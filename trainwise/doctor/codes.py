"""The doctor's vocabulary: every finding code, declared by the rule module that emits it.

Each module under ``rules/`` lists its codes in ``CODES`` as :class:`Code` entries: the severity and
meaning the docs' codes table shows, a ``priority`` (within a severity, lower ranks first: root causes
before symptoms) and what the code *subsumes* -- the findings it explains, which the engine then drops.
The engine derives its ranking (``PRIORITY``) and subsumption table (``SUBSUMES``) from these
declarations, so adding a code is one entry in one place; ``tests/doctor/test_codes.py`` checks that
each code has a row in docs/doctor.md and a case that must fire and one that must not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

EVENT, STATE = "event", "state"


@dataclass(frozen=True)
class Code:
    name: str
    severity: str  # as the docs' table says it, e.g. "warning (info under early stopping)"
    meaning: str
    priority: int
    # Codes this one explains. "name:severity" restricts it to that severity of the other finding
    # ("prediction_collapse:warning": a partial collapse only).
    subsumes: frozenset[str] = field(default_factory=frozenset)
    # EVENT: removes only findings that begin inside its span (from one epoch before); STATE: any overlap.
    scope: str = STATE
    # Severities at which this code subsumes (a NaN guard's warning-level "diverged" explains nothing).
    subsumes_at: tuple[str, ...] = ("info", "warning", "error")

    def explains(self, code: str, severity: str) -> bool:
        return code in self.subsumes or f"{code}:{severity}" in self.subsumes


HEALTHY = Code("healthy", "info", "nothing of severity warning/error found", priority=0)
# In healthy's place when the run is shorter than any rule can judge: no verdict either way.
TOO_SHORT = Code("too_short", "info", "fewer epochs than the rules need to judge a trend (4): nothing found, nothing confirmed", priority=0)
VERDICTS = (HEALTHY.name, TOO_SHORT.name)  # what the engine says when no rule found anything
