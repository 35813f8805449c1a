"""User expectations about a run, checked against its History: ``"val_acc >= 0.85 at epoch 1"``.

Two forms, each with an optional *when*::

    <quantity> <op> <number>[ points | %]   [when]      val_acc >= 0.85 at epoch 1
    <quantity> [does not] increases|decreases|rises|falls|improves   [when]
                                                        val_acc does not decrease at epoch 2

* quantity: a History key (``val_acc``, ``grad_norm/net.0``), a difference ``train_acc - val_acc``, or
  ``train/val accuracy gap`` (train - validation accuracy; ``train/val loss gap`` is validation -
  training loss). ``points`` and ``%`` divide the number by 100: ``train/val accuracy gap < 5 points``.
* op: >= <= > < == (``=`` too).
* when: ``at epoch N`` (that epoch; for a change: from epoch N-1 to N), ``by epoch N`` (some epoch up to
  N: a milestone), ``every epoch`` / ``throughout`` (all of them), ``at end`` (the default: the last
  epoch, or its change from the one before). ``improves`` means down for a loss, up otherwise.

A miss is not a Finding: findings say what went wrong in training, whatever the user hoped; a miss
says that a stated hope failed. They are returned separately (``check_expectations``, and
``Diagnosis.misses`` from ``diagnose``) so a CI job can fail on either, and with ``doctor.stop_on_error``
a miss stops training like an error-level finding. An expectation whose epoch has not been reached yet
(live checking during training, ``final=False``) is pending, not missed. ``parse_expectation`` rejects
a malformed one, and a key that is a near miss of a History key (``val_accuracy`` for ``val_acc``), with
one line saying what was expected; the config validates ``doctor.expect`` this way before training starts.
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
_KEY = r"[A-Za-z_][\w/.\-]*"
_QUANTITY = (rf"(?:train/val\s+(?P<gapof>[A-Za-z_0-9]+)\s+gap|(?P<metric>{_KEY})(?:\s+-\s+(?P<minus>{_KEY}))?)")
_WHEN = (r"(?:\s+(?P<when>at|by)\s+epoch\s+(?P<epoch>\d+)|\s+(?P<end>at\s+end)"
         r"|\s+(?P<every>every\s+epoch|at\s+every\s+epoch|throughout|each\s+epoch))?")
_NUMBER = r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?"
_COMPARE = re.compile(rf"^\s*{_QUANTITY}\s*(?P<op>>=|<=|==|=|>|<)\s*(?P<target>{_NUMBER})\s*(?P<unit>points?|pts|%)?{_WHEN}\s*$",
                      re.IGNORECASE)
_TREND = re.compile(rf"^\s*{_QUANTITY}\s+(?P<neg>does\s+not\s+|doesn't\s+|never\s+)?"
                    rf"(?P<dir>increases?|decreases?|rises?|falls?|improves?|drops?|grows?){_WHEN}\s*$", re.IGNORECASE)
GRAMMAR = ('"<metric> <op> <number> [at epoch N | by epoch N | every epoch | at end]" or "<metric> [does not] '
           'increase|decrease [at epoch N | every epoch | at end]", e.g. "val_acc >= 0.85 at epoch 1", '
           '"val_acc does not decrease at epoch 2", "train/val accuracy gap < 5 points"')


@dataclass(frozen=True)
class Expectation:
    text: str
    metric: str
    op: str  # a comparison op, or "up" / "down" / "not up" / "not down" for a change
    target: float
    mode: str  # "at" | "by" | "end" | "every"
    epoch: int | None = None
    minus: str | None = None  # the quantity is metric - minus

    @property
    def is_change(self) -> bool:
        return self.op in ("up", "down", "not up", "not down")

    def holds(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.is_change:
            return {"up": value > 0, "down": value < 0, "not up": value <= 0, "not down": value >= 0}[self.op]
        return OPS[self.op](value, self.target)

    def value(self, record: dict[str, Any]) -> float | None:
        v = _value(record, self.metric)
        if v is None or self.minus is None:
            return v
        w = _value(record, self.minus)
        return None if w is None else v - w

    @property
    def quantity(self) -> str:
        return self.metric if self.minus is None else f"{self.metric} - {self.minus}"


@dataclass(frozen=True)
class ExpectationMiss:
    expectation: str
    metric: str
    epoch: int | None  # the epoch judged (the deadline for "by", the last for "at end")
    observed: float | None  # the value at that epoch (for "by": the best value up to it; for a change: the change)
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"expectation missed: {self.expectation!r}: {self.reason}"


def _gap_keys(of: str) -> tuple[str, str]:
    name = {"accuracy": "acc", "acc": "acc", "loss": "loss"}.get(of.lower(), of.lower())
    return (f"val_{name}", f"train_{name}") if name == "loss" else (f"train_{name}", f"val_{name}")


# Other tools' names for trainwise's History keys: an expectation using one would never be checked.
FOREIGN_NAMES = {
    "val_accuracy": "val_acc", "valid_acc": "val_acc", "validation_accuracy": "val_acc", "accuracy": "train_acc",
    "acc": "train_acc", "train_accuracy": "train_acc", "loss": "train_loss", "training_loss": "train_loss",
    "valid_loss": "val_loss", "validation_loss": "val_loss", "learning_rate": "lr", "val_f1_score": "val_f1",
}


def _check_key(key: str, text: str) -> None:
    if key in FOREIGN_NAMES:
        right = FOREIGN_NAMES[key]
        raise UserError(f"expectation {text!r} names {key!r}, which trainwise's History does not log",
                        expected=f"trainwise's key {right!r}", fix=f"write {right!r}")


def parse_expectation(text: str) -> Expectation:
    m = _COMPARE.match(text) or _TREND.match(text)
    if m is None:
        raise UserError(f"cannot read the expectation {text!r}", expected=GRAMMAR, fix="write it in one of those forms")
    groups = m.groupdict()
    if groups.get("gapof"):
        metric, minus = _gap_keys(groups["gapof"])
    else:
        metric, minus = groups["metric"], groups.get("minus")
    for key in (metric, minus):
        if key:
            _check_key(key, text)
    if groups.get("every"):
        mode = "every"
    else:
        when = (groups.get("when") or "").lower()
        mode = when if when in ("at", "by") else "end"
    epoch = int(groups["epoch"]) if groups.get("epoch") else None
    if epoch is not None and epoch < 1:
        raise UserError(f"expectation {text!r}: epochs count from 1", received=epoch, fix="use epoch 1 or later")
    if "op" in groups and groups.get("op"):
        target = float(groups["target"]) / (100.0 if groups.get("unit") else 1.0)
        return Expectation(text.strip(), metric, groups["op"], target, mode, epoch, minus)
    direction = groups["dir"].lower().rstrip("s")
    lower_better = "loss" in metric and minus is None
    up = {"increase": True, "rise": True, "grow": True, "decrease": False, "fall": False, "drop": False, "improve": not lower_better}[direction]
    op = ("not " if groups.get("neg") else "") + ("up" if up else "down")
    if mode == "at" and epoch == 1:
        raise UserError(f"expectation {text!r}: a change at epoch 1 has no epoch before it", fix="use epoch 2 or later")
    return Expectation(text.strip(), metric, op, 0.0, mode, epoch, minus)


def _value(record: dict[str, Any], metric: str) -> float | None:
    v = record.get(metric)
    if isinstance(v, bool) or v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _describe(e: Expectation, value: float) -> str:
    if e.is_change:
        return f"{e.quantity} changed by {value:+.4g}"
    return f"{e.quantity} was {value:.4g}"


def check_expectations(records: list[dict[str, Any]], expect: list[str] | None, *, final: bool = True) -> list[ExpectationMiss]:
    """Misses among ``expect`` for these records. ``final=False`` during training: later deadlines are pending."""
    misses: list[ExpectationMiss] = []
    by_epoch = {int(r.get("epoch", i + 1)): r for i, r in enumerate(records)}
    epochs = sorted(by_epoch)
    last = epochs[-1] if epochs else 0
    for text in expect or []:
        e = parse_expectation(text)

        def value_at(epoch: int) -> float | None:
            record = by_epoch.get(epoch)
            if record is None:
                return None
            v = e.value(record)
            if not e.is_change or v is None:
                return v
            before = [p for p in epochs if p < epoch]
            prev = e.value(by_epoch[before[-1]]) if before else None
            return None if prev is None else v - prev

        def miss(epoch: int | None, observed: float | None, reason: str) -> None:
            misses.append(ExpectationMiss(e.text, e.quantity, epoch, observed, reason))

        if e.mode in ("end", "every"):
            if not by_epoch or (e.mode == "end" and not final):
                continue
            judged = [last] if e.mode == "end" else [p for p in epochs if not e.is_change or p > epochs[0]]
            where = (lambda p: f"the last epoch ({p})") if e.mode == "end" else (lambda p: f"epoch {p}")
            for epoch in judged:
                value = value_at(epoch)
                if value is None or not e.holds(value):
                    miss(epoch, value, f"{e.quantity} is not logged at {where(epoch)}" if value is None
                         else f"{_describe(e, value)} at {where(epoch)}")
                    break
            continue
        assert e.epoch is not None
        if last < e.epoch:
            if final:
                miss(e.epoch, None, f"the run ended at epoch {last}, before epoch {e.epoch}")
            continue
        if e.mode == "at":
            value = value_at(e.epoch)
            if value is None:
                miss(e.epoch, None, f"{e.quantity} is not logged at epoch {e.epoch}"
                     + (f" or {e.epoch - 1}" if e.is_change else ""))
            elif not e.holds(value):
                miss(e.epoch, value, f"{_describe(e, value)} at epoch {e.epoch}")
            continue
        values = [v for p in epochs if p <= e.epoch and (v := value_at(p)) is not None]
        if not any(e.holds(v) for v in values):
            finite = [v for v in values if math.isfinite(v)]
            best = None
            if finite:
                best = max(finite) if e.op in (">=", ">", "up", "not down") else min(finite)
            seen = f"best {best:.4g}" if best is not None else "never logged"
            miss(e.epoch, best, f"not reached by epoch {e.epoch} ({e.quantity} {seen})")
    return misses
