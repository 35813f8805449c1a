"""AUTOTRAINER's detection rules (Zhang et al., ICSE 2021), ported to a trainwise History as a baseline.

Facts from REFERENCES.md; the code is ours. AUTOTRAINER checks every 3 epochs once 30 % of the
epoch budget has passed; the union of what any check finds is its verdict. Its problems map to our
codes as follows:

| AUTOTRAINER            | rule (as published)                                                  | code                |
| ---------------------- | -------------------------------------------------------------------- | ------------------- |
| vanishing gradient     | ||g_first|| / ||g_last|| < 1e-3 and ||g_first|| < 1e-4               | vanishing_gradients |
| exploding gradient     | that ratio > 70, or NaN, or loss >= 1e3                              | exploding_gradients |
| dying ReLU             | >= 70 % of gradient entries exactly 0                                | dead_units          |
| oscillating loss       | paired local max-min of accuracy >= 0.03 in >= 20 % of epochs       | unstable_training   |
| slow convergence       | no epoch-to-epoch accuracy gain >= 0.01 on train or test             | plateau             |
| not converged          | best accuracy < 0.6                                                  | underfitting        |

Gradient rules (the first three) fire only when an accuracy symptom (the last three) is present, as in
the paper. Two approximations, because a History holds per-epoch means rather than first-batch tensors:
gradient norms are the monitors' epoch means (``grad_norm/<layer>``), and "gradient entries exactly 0"
is read as the dead-unit share (``dead_frac/<layer>``; a dead ReLU's incoming weights get exactly-zero
gradients). "Slow convergence" is judged over the 3 epochs before each check; "test" accuracy is the
validation accuracy, the only held-out curve a History has.
"""

from __future__ import annotations

import math
from typing import Any


def _series(records: list[dict[str, Any]], key: str) -> list[float]:
    out = []
    for r in records:
        v = r.get(key)
        out.append(float(v) if isinstance(v, (int, float)) or v in ("nan", "inf", "-inf") else math.nan)
    return out


def _layers(records: list[dict[str, Any]], prefix: str) -> list[str]:
    seen: dict[str, None] = {}
    for r in records:
        seen.update(dict.fromkeys(k for k in r if k.startswith(prefix + "/")))
    return list(seen)


def _oscillating(acc: list[float]) -> bool:
    """Paired local max then min (or min then max) differing by >= 0.03, in >= 20 % of epochs."""
    a = [x for x in acc if math.isfinite(x)]
    if len(a) < 3:
        return False
    swings = 0
    for i in range(1, len(a) - 1):
        if (a[i] > a[i - 1] and a[i] > a[i + 1] or a[i] < a[i - 1] and a[i] < a[i + 1]) and abs(a[i] - a[i + 1]) >= 0.03:
            swings += 1
    return swings >= 0.2 * len(a)


def _slow(train: list[float], val: list[float]) -> bool:
    def gains(a: list[float]) -> list[float]:
        f = [x for x in a[-4:] if math.isfinite(x)]
        return [y - x for x, y in zip(f, f[1:])]

    g = gains(train) + gains(val)
    return bool(g) and max(g) < 0.01


def _check(records: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    train, val = _series(records, "train_acc"), _series(records, "val_acc")
    loss = _series(records, "train_loss")
    accs = [x for x in train + val if math.isfinite(x)]
    if accs and max(accs) < 0.6:
        found.add("underfitting")
    if _oscillating(val if any(math.isfinite(x) for x in val) else train):
        found.add("unstable_training")
    if _slow(train, val):
        found.add("plateau")
    if not found:
        return found  # gradient rules need an accuracy symptom
    keys = _layers(records, "grad_norm")
    if len(keys) >= 2:
        g_first, g_last = _series(records, keys[0])[-1], _series(records, keys[-1])[-1]
        if math.isfinite(g_first) and math.isfinite(g_last) and g_last > 0:
            ratio = g_first / g_last
            if ratio < 1e-3 and g_first < 1e-4:
                found.add("vanishing_gradients")
            if ratio > 70:
                found.add("exploding_gradients")
        elif not (math.isfinite(g_first) and math.isfinite(g_last)):
            found.add("exploding_gradients")
    if any(math.isnan(x) for x in loss) or any(x >= 1e3 for x in loss if math.isfinite(x)):
        found.add("exploding_gradients")
    if any(_series(records, k)[-1] >= 0.7 for k in _layers(records, "dead_frac") if math.isfinite(_series(records, k)[-1])):
        found.add("dead_units")
    return found


def detect(records: list[dict[str, Any]], epochs_budget: int) -> set[str]:
    """Codes AUTOTRAINER would report over the run: checks every 3 epochs after 30 % of the budget."""
    start = max(1, math.ceil(0.3 * epochs_budget))
    found: set[str] = set()
    for n in range(start, len(records) + 1, 3):
        found |= _check(records[:n])
    if len(records) >= start and (len(records) - start) % 3:
        found |= _check(records)  # the run ended between checks: AUTOTRAINER checks at the end too
    return found
