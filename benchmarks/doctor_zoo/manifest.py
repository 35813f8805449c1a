"""Did the planted fault show? Checks on a run's outcome that do not ask the doctor.

A bug planted in code does not always produce the failure it is meant to: Adam at a high LR sometimes
trains anyway, a deep net with a large init sometimes dies instead of diverging. The zoo keeps a fault
only if it shows on most screening seeds (``run.py --screen``), and what "shows" means is decided here,
per expected code, from plain numbers of the run -- its loss and accuracy curves, the monitors' values,
the test confusion matrix -- and from the clean twin trained on the same seed. These checks are blunt on
purpose: they say whether the failure happened, not why; naming the cause is the doctor's job.

Each check takes the broken run's :class:`Outcome` and its twin's and returns ``(shown, evidence)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Check = Callable[["Outcome", "Outcome"], tuple[bool, str]]


@dataclass
class Outcome:
    """The numbers of one finished run that the checks read."""

    records: list[dict[str, Any]]
    test: dict[str, Any]
    num_classes: int

    def series(self, key: str) -> np.ndarray:
        out = []
        for r in self.records:
            v = r.get(key)
            out.append(float(v) if isinstance(v, (int, float)) or v in ("nan", "inf", "-inf") else math.nan)
        return np.asarray(out, dtype=float)

    def layers(self, prefix: str) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.records:
            seen.update(dict.fromkeys(k for k in r if k.startswith(prefix + "/")))
        return list(seen)

    @property
    def nonfinite(self) -> bool:
        loss = self.series("train_loss")
        return bool(np.any(~np.isfinite(loss)) or np.nansum(self.series("nonfinite_steps")) > 0)

    def final(self, key: str, last: int = 3) -> float:
        """Mean of the last ``last`` epochs; a non-finite run counts as chance accuracy / infinite loss."""
        s = self.series(key)[-last:]
        if not len(s) or not np.all(np.isfinite(s)):
            return 1.0 / self.num_classes if key.endswith("acc") else math.inf
        return float(s.mean())

    @property
    def chance_loss(self) -> float:
        return math.log(self.num_classes)

    @property
    def confusion(self) -> np.ndarray | None:
        c = self.test.get("confusion")
        return None if c is None else np.asarray(c, dtype=float)


def _setbacks(s: np.ndarray, rel: float) -> int:
    """Epochs whose value rose by more than ``rel`` (relative) over the epoch before."""
    s = s[np.isfinite(s)]
    return int(np.sum(s[1:] > s[:-1] * (1 + rel)))


# ----------------------------------------------------------------------------- checks, one per code
def diverged(bug: Outcome, twin: Outcome) -> tuple[bool, str]:
    """The loss became NaN/Inf, or blew up: training loss ending >= 3x ln K, where a fresh classifier starts."""
    if bug.nonfinite:
        return True, "non-finite loss"
    end = bug.final("train_loss", 2)
    return end >= 3 * bug.chance_loss, f"train loss ends at {end:.3g} ({end / bug.chance_loss:.2g}x ln K)"


def trains_worse(margin: float) -> Check:
    """Final training accuracy at least ``margin`` below the twin's: the model did not fit what it could."""

    def check(bug: Outcome, twin: Outcome) -> tuple[bool, str]:
        b, t = bug.final("train_acc"), twin.final("train_acc")
        return b <= t - margin, f"train acc {b:.2f} vs twin {t:.2f}"

    return check


def stuck(bug: Outcome, twin: Outcome) -> tuple[bool, str]:
    """Held-out loss still at (or above) 0.9 ln K and held-out accuracy near the largest class share:
    the model learnt nothing that carries to new samples (it may still memorise a few training ones)."""
    loss, acc = bug.final("val_loss"), bug.final("val_acc")
    conf = bug.confusion
    majority = float(conf.sum(1).max() / conf.sum()) if conf is not None and conf.sum() else 1.0 / bug.num_classes
    shown = (not math.isfinite(loss) or loss >= 0.9 * bug.chance_loss) and acc <= majority + 0.1
    return shown, f"val loss {loss:.3g} (ln K {bug.chance_loss:.3g}), val acc {acc:.2f} (majority {majority:.2f})"


def collapse(bug: Outcome, twin: Outcome) -> tuple[bool, str]:
    """On the test split one class takes >= 90 % of the predictions, or a class the twin recovers is lost."""
    conf, tconf = bug.confusion, twin.confusion
    if conf is None or not conf.sum():
        return False, "no test confusion matrix"
    pred, true = conf.sum(0) / conf.sum(), conf.sum(1) / conf.sum()
    top = int(np.argmax(pred))
    if pred[top] >= 0.9 and pred[top] - true[top] >= 0.2:
        return True, f"class {top} takes {pred[top]:.0%} of predictions ({true[top]:.0%} true)"
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.diag(conf) / conf.sum(1)
        trecall = np.diag(tconf) / tconf.sum(1) if tconf is not None else np.ones_like(recall)
    lost = [c for c in range(len(recall)) if conf[c].sum() and recall[c] <= 0.05 and trecall[c] >= 0.5]
    if lost:
        return True, f"class {lost[0]} recall {recall[lost[0]]:.2f} (twin {trecall[lost[0]]:.2f})"
    return False, f"top class {top} at {pred[top]:.0%} of predictions, lowest recall {np.nanmin(recall):.2f}"


def overfits(bug: Outcome, twin: Outcome) -> tuple[bool, str]:
    """Validation loss ends >= 25 % above its minimum while the training loss kept falling after it."""
    val, train = bug.series("val_loss"), bug.series("train_loss")
    if not np.all(np.isfinite(val)) or len(val) < 3:
        return False, "no finite validation loss"
    best = int(np.argmin(val))
    rise = val[-1] / val[best] if val[best] > 0 else math.inf
    shown = best < len(val) - 2 and rise >= 1.25 and train[-1] < train[best]
    return shown, f"val loss {val[best]:.3g} at epoch {best + 1} -> {val[-1]:.3g}; train loss {train[best]:.3g} -> {train[-1]:.3g}"


def vanishing(bug: Outcome, twin: Outcome) -> tuple[bool, str]:
    """The first layer's gradient is < 1 % of the last layer's, and the net trains far worse than the twin."""
    keys = bug.layers("grad_norm")
    if len(keys) < 2:
        return False, "no per-layer gradient norms"
    first, last = np.nanmean(bug.series(keys[0])), np.nanmean(bug.series(keys[-1]))
    ratio = first / last if last > 0 else math.inf
    worse, why = trains_worse(0.2)(bug, twin)
    return ratio < 0.01 and worse, f"first/last layer gradient {ratio:.2g}; {why}"


def dead(bug: Outcome, twin: Outcome) -> tuple[bool, str]:
    """A hidden layer with >= 90 % of its ReLUs silent for the whole of its last three epochs."""
    worst = max((bug.final(k) for k in bug.layers("dead_frac")), default=0.0)
    return worst >= 0.9, f"most dead layer {worst:.0%}"


def saturated(bug: Outcome, twin: Outcome) -> tuple[bool, str]:
    """A layer with >= 50 % of its sigmoid/tanh outputs at a bound over the last three epochs."""
    worst = max((bug.final(k) for k in bug.layers("saturated_frac")), default=0.0)
    return worst >= 0.5, f"most saturated layer {worst:.0%}"


def unstable(bug: Outcome, twin: Outcome) -> tuple[bool, str]:
    """Training or validation loss rises by > 10 % from one epoch to the next at least 3 times (twin: fewer)."""
    n = max(_setbacks(bug.series("train_loss"), 0.1), _setbacks(bug.series("val_loss"), 0.1))
    nt = max(_setbacks(twin.series("train_loss"), 0.1), _setbacks(twin.series("val_loss"), 0.1))
    return n >= 3 and n > nt, f"{n} epochs with a loss rise > 10 % (twin {nt})"


def lr_high(bug: Outcome, twin: Outcome) -> tuple[bool, str]:
    """Diverged; or trains far worse than the twin (>= 10 points); or worse (>= 3 points) with a training
    loss that goes up again and again. Too large a step shows as any of the three: NaN, a net whose
    units it killed, or a loss that bounces."""
    if bug.nonfinite:
        return True, "non-finite loss"
    b, t = bug.final("train_acc"), twin.final("train_acc")
    n = _setbacks(bug.series("train_loss"), 0.1)
    return b <= t - 0.1 or (b <= t - 0.03 and n >= 2), f"train acc {b:.2f} vs twin {t:.2f}; {n} epochs with a training-loss rise > 10 %"


def phase_turn(bug: Outcome, twin: Outcome) -> tuple[bool, str]:
    """At the first phase change the validation loss jumps >= 50 % above its level just before it."""
    phases = [r.get("phase") for r in bug.records]
    at = next((i for i in range(1, len(phases)) if phases[i] != phases[i - 1]), None)
    if at is None:
        return False, "no phase change"
    val = bug.series("val_loss")
    after = np.nanmax(val[at : at + 3]) if np.any(np.isfinite(val[at : at + 3])) else math.inf
    return after >= 1.5 * val[at - 1], f"val loss {val[at - 1]:.3g} before epoch {at + 1}, up to {after:.3g} after"


CHECKS: dict[str, Check] = {
    "diverged": diverged,
    "stuck_at_chance": stuck,
    "prediction_collapse": collapse,
    "overfitting": overfits,
    "vanishing_gradients": vanishing,
    "dead_units": dead,
    "saturated_units": saturated,
    "unstable_training": unstable,
    "lr_too_high": lr_high,
    "lr_too_low": trains_worse(0.2),
    "over_regularized": trains_worse(0.1),
    "underfitting": trains_worse(0.1),
    "phase_regression": phase_turn,
}
