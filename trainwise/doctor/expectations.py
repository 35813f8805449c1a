"""User expectations about a run, checked against its History: ``"val_acc >= 0.85 at epoch 1"``.

Grammar: ``<metric> <op> <number> [at epoch N | by epoch N | at end]`` with op one of >= <= > < ==.

* ``at epoch N``: the value logged at epoch N must satisfy the comparison.
* ``by epoch N``: some epoch up to N must satisfy it (a milestone).
* ``at end`` (the default): the last epoch must satisfy it.

A miss is not a Finding: findings say what went wrong in training, whatever the user hoped; a miss
says that a stated hope failed. They are returned separately (``check_expectations``, and
``Diagnosis.misses`` from ``diagnose``) so a CI job can fail on either. An expectation whose epoch has
not been reached yet (live checking during training, ``final=False``) is pending, not missed.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from trainwise.errors import UserError

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq, "=": operator.eq,
}
_PATTERN = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][\w/.\-]*)\s*(?P<op>>=|<=|==|=|>|<)\s*(?P<target>[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)"
    r"\s*(?:(?P<when>at|by)\s+epoch\s+(?P<epoch>\d+)|(?P<end>at\s+end))?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Expectation:
    text: str
    metric: str
    op: str
    target: float
    mode: str  # "at" | "by" | "end"
    epoch: int | None = None

    def holds(self, value: float) -> bool:
        return math.isfinite(value) and OPS[self.op](value, self.target)


@dataclass(frozen=True)
class ExpectationMiss:
    expectation: str
    metric: str
    epoch: int | None  # the epoch judged (the deadline for "by", the last for "at end")
    observed: float | None  # the value at that epoch (for "by": the best value up to it)
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"expectation missed: {self.expectation!r}: {self.reason}"


def parse_expectation(text: str) -> Expectation:
    m = _PATTERN.match(text)
    if m is None:
        raise UserError(
            f"cannot read the expectation {text!r}",
            expected='"<metric> <op> <number> [at epoch N | by epoch N | at end]", e.g. "val_acc >= 0.85 at epoch 1"',
            fix="write it in that form (ops: >=, <=, >, <, ==)",
        )
    when = (m.group("when") or "").lower()
    mode = when if when in ("at", "by") else "end"
    epoch = int(m.group("epoch")) if m.group("epoch") else None
    if epoch is not None and epoch < 1:
        raise UserError(f"expectation {text!r}: epochs count from 1", received=epoch, fix="use epoch 1 or later")
    return Expectation(text.strip(), m.group("metric"), m.group("op"), float(m.group("target")), mode, epoch)


def _value(record: dict[str, Any], metric: str) -> float | None:
    v = record.get(metric)
    if isinstance(v, bool) or v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def check_expectations(records: list[dict[str, Any]], expect: list[str] | None, *, final: bool = True) -> list[ExpectationMiss]:
    """Misses among ``expect`` for these records. ``final=False`` during training: later deadlines are pending."""
    misses: list[ExpectationMiss] = []
    by_epoch = {int(r.get("epoch", i + 1)): r for i, r in enumerate(records)}
    last = max(by_epoch) if by_epoch else 0
    for text in expect or []:
        e = parse_expectation(text)
        if e.mode == "end":
            if not final or not by_epoch:
                continue
            value = _value(by_epoch[last], e.metric)
            if value is None:
                misses.append(ExpectationMiss(e.text, e.metric, last, None, f"{e.metric} is not logged at the last epoch ({last})"))
            elif not e.holds(value):
                misses.append(ExpectationMiss(e.text, e.metric, last, value, f"{e.metric} was {value:.4g} at the last epoch ({last})"))
            continue
        assert e.epoch is not None
        if last < e.epoch:
            if final:
                misses.append(ExpectationMiss(e.text, e.metric, e.epoch, None, f"the run ended at epoch {last}, before epoch {e.epoch}"))
            continue
        if e.mode == "at":
            value = _value(by_epoch.get(e.epoch, {}), e.metric)
            if value is None:
                misses.append(ExpectationMiss(e.text, e.metric, e.epoch, None, f"{e.metric} is not logged at epoch {e.epoch}"))
            elif not e.holds(value):
                misses.append(ExpectationMiss(e.text, e.metric, e.epoch, value, f"{e.metric} was {value:.4g} at epoch {e.epoch}"))
            continue
        values = [v for ep, r in by_epoch.items() if ep <= e.epoch and (v := _value(r, e.metric)) is not None]
        if not any(e.holds(v) for v in values):
            finite = [v for v in values if math.isfinite(v)]
            best = (max(finite) if e.op in (">=", ">") else min(finite)) if finite else None
            seen = f"best {best:.4g}" if best is not None else "never logged"
            misses.append(ExpectationMiss(e.text, e.metric, e.epoch, best, f"not reached by epoch {e.epoch} ({e.metric} {seen})"))
    return misses
