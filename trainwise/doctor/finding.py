"""The doctor's output: a Finding names one problem (or health) with the numbers it rests on and the fix.

Codes are a fixed vocabulary so that runs can be compared and findings counted across a benchmark; the
message is free text written for a practitioner; ``fixes`` are ``--set`` overrides, most promising first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

CODES: tuple[str, ...] = (
    "healthy",
    "overfitting",
    "underfitting",
    "lr_too_high",
    "lr_too_low",
    "over_regularized",
    "diverged",
    "exploding_gradients",
    "vanishing_gradients",
    "dead_units",
    "saturated_units",
    "stuck_at_chance",
    "unstable_training",
    "plateau",
    "prediction_collapse",
    "phase_regression",
    "val_above_train",
    "transient_dip",
)

SEVERITIES: tuple[str, ...] = ("info", "warning", "error")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}

Evidence = dict[str, float | int | str]


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    epochs: tuple[int, int]
    evidence: Evidence
    message: str
    fixes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # A typo in a rule must fail its tests, not produce a code no consumer knows.
        if self.code not in CODES:
            raise ValueError(f"unknown finding code {self.code!r}; expected one of {', '.join(CODES)}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}; expected one of {', '.join(SEVERITIES)}")
        first, last = self.epochs
        if not 1 <= first <= last:
            raise ValueError(f"epochs must be 1-based and ordered, got {self.epochs}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "epochs": list(self.epochs),
            "evidence": {k: _json_number(v) for k, v in self.evidence.items()},
            "message": self.message,
            "fixes": list(self.fixes),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        return cls(d["code"], d["severity"], tuple(d["epochs"]), dict(d["evidence"]), d["message"], list(d["fixes"]))

    def __str__(self) -> str:
        first, last = self.epochs
        span = f"epoch {first}" if first == last else f"epochs {first}-{last}"
        fix = f" Try: {', '.join(self.fixes)}." if self.fixes else ""
        return f"[{self.severity}] {self.code} ({span}): {self.message}{fix}"


def _json_number(v: float | int | str) -> float | int | str:
    # JSON has no NaN/Inf; keep the History's convention of spelling them as strings.
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v
