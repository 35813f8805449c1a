"""The doctor's output: a Finding names one problem (or health) with the numbers it rests on and the fix.

Codes are a fixed vocabulary so that runs can be compared and findings counted across a benchmark; the
message is free text written for a practitioner; ``fixes`` are ``--set`` overrides, most promising first,
given only where the key acts on the run (a trainwise config is known and uses it); ``advice`` states the
same changes in words and numbers, for any run, including logs of other tools.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


def __getattr__(name: str) -> Any:
    if name == "CODES":  # declared by the rule modules (trainwise.doctor.codes)
        from trainwise.doctor.rules import CODES

        return CODES
    raise AttributeError(name)


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
    advice: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # A typo in a rule must fail its tests, not produce a code no consumer knows.
        from trainwise.doctor.rules import CODES  # the registry imports this module

        if self.code not in CODES:
            raise ValueError(f"unknown finding code {self.code!r}; expected one of {', '.join(CODES)}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}; expected one of {', '.join(SEVERITIES)}")
        first, last = self.epochs
        if not 1 <= first <= last:
            raise ValueError(f"epochs must be 1-based and ordered, got {self.epochs}")
        # Rules compute with NumPy; evidence holds plain Python numbers so that json.dumps never fails on it.
        object.__setattr__(self, "evidence", {str(k): _plain(v) for k, v in self.evidence.items()})
        object.__setattr__(self, "epochs", (int(first), int(last)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "epochs": list(self.epochs),
            "evidence": {k: _json_number(v) for k, v in self.evidence.items()},
            "message": self.message,
            "fixes": list(self.fixes),
            "advice": list(self.advice),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        return cls(d["code"], d["severity"], tuple(d["epochs"]), dict(d["evidence"]), d["message"], list(d["fixes"]),
                   list(d.get("advice", [])))

    def __str__(self) -> str:
        first, last = self.epochs
        span = f"epoch {first}" if first == last else f"epochs {first}-{last}"
        if self.fixes:
            fix = f" Try: {', '.join(self.fixes)}."
        elif self.advice:
            fix = f" Try: {'; '.join(self.advice)}."
        else:
            fix = ""
        return f"[{self.severity}] {self.code} ({span}): {self.message}{fix}"


def _plain(v: Any) -> Any:
    """NumPy (or torch) scalars and arrays -> int/float/bool/list; containers converted item by item."""
    if isinstance(v, (str, bool, int, float)) or v is None:
        return v
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "tolist"):  # numpy.int64, numpy.ndarray, torch.Tensor: .tolist() gives Python numbers
        return _plain(v.tolist())
    if hasattr(v, "item"):
        return _plain(v.item())
    return str(v)


def _json_number(v: Any) -> Any:
    # JSON has no NaN/Inf; keep the History's convention of spelling them as strings.
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, list):
        return [_json_number(x) for x in v]
    if isinstance(v, dict):
        return {k: _json_number(x) for k, x in v.items()}
    return v
