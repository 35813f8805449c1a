"""A run's score on a validation metric, and how much of a difference between two scores is noise.

The score is the metric of the weights the run ends with: the last epoch's value, or the restored
epoch's when early stopping put the best weights back. Non-finite values (a diverged run) count as the
worst possible.

Noise, two ways:

* ``spread`` (free): the epoch-to-epoch spread of the metric over the last ``WINDOW`` epochs up to the
  scored one, as the standard deviation of successive differences divided by sqrt(2) (the von Neumann
  estimator: a trend, such as a curve still rising, does not count as noise). Two runs' scores differ
  by noise alone within ``2 * sqrt(sa^2 + sb^2)`` about 95 % of the time; that is the threshold.
* A floor under either threshold: half a point for scores in [0, 1] (accuracy, F1), 0.5 % of the value
  for losses. A run stuck at chance has no spread at all, and one more correct validation sample is not
  a repair.
* Beside the threshold: an attempt better than every epoch of the current run's window (its best value
  over those epochs), by more than twice the attempt's own spread (floored as above), is better whatever
  the current run's swings (``beats_window``): a run that swings because it is broken has a spread that
  is the fault, not the measurement's noise.
* Under both, for an accuracy-like score (in [0, 1]) on a validation split of known size n, the noise of
  the split itself: two models of accuracy p scored on n samples differ by about ``sqrt(2 p (1 - p) / n)``
  from sampling alone (p pooled over the two, as a two-proportion test has it), and a gain must exceed
  twice that (``sampling_floor``). The spread measures one
  run's swings on the same samples and misses it: an 8-layer net at 0.965 on 360 digits, its LR halved,
  gained 1.7 points on validation (spread threshold 1.2) and lost 1.1 on the test split; the sampling
  floor there is 2.6 points.
* ``repeat`` (one more run): the original config trained again with the next seed; the threshold is
  the absolute difference between the two seeds' scores, the seed-to-seed variation itself.

Whether a run was still improving when it ended (``still_improving``) decides whether a repair that
left it healthy is worth following further (trainwise.autofix.follow_through).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

WINDOW = 5
NOISE_SOURCES = ("spread", "repeat")


def mode_of(metric: str) -> str:
    """Losses are minimised, everything else (accuracy, F1, precision, recall) maximised."""
    return "min" if "loss" in metric else "max"


def _value(v: Any) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    if v in ("nan", "inf", "-inf"):
        return float(v)
    return math.nan


def scored_index(records: list[dict[str, Any]], restored_epoch: int | None) -> int:
    if restored_epoch is not None:
        for i, r in enumerate(records):
            if r.get("epoch") == restored_epoch:
                return i
    return len(records) - 1


def worst(metric: str) -> float:
    """The worst possible value of ``metric``: -inf for one maximised, +inf for one minimised."""
    return -math.inf if mode_of(metric) == "max" else math.inf


def window_values(records: list[dict[str, Any]], metric: str, restored_epoch: int | None = None) -> list[float]:
    """The finite values of ``metric`` over the last WINDOW epochs up to the scored one."""
    end = scored_index(records, restored_epoch) + 1
    values = [_value(r.get(metric)) for r in records[max(0, end - WINDOW):end]]
    return [v for v in values if math.isfinite(v)]


def score(records: list[dict[str, Any]], metric: str, restored_epoch: int | None = None) -> float:
    """The metric of the final weights; a non-finite value is the worst (-inf for max, +inf for min)."""
    if not records:
        return worst(metric)
    v = _value(records[scored_index(records, restored_epoch)].get(metric))
    return v if math.isfinite(v) else worst(metric)


def spread(records: list[dict[str, Any]], metric: str, restored_epoch: int | None = None) -> float:
    """Epoch-to-epoch noise of ``metric`` over the last WINDOW epochs up to the scored one (0 when too few)."""
    values = window_values(records, metric, restored_epoch)
    if len(values) < 3:
        return 0.0
    diffs = [b - a for a, b in zip(values, values[1:])]
    return math.sqrt(sum(d * d for d in diffs) / len(diffs) / 2)


def improvement(before: float, after: float, metric: str) -> float:
    """How much better ``after`` is (positive: better), in the metric's units; nan when both are the worst."""
    gain = after - before if mode_of(metric) == "max" else before - after
    return gain if not math.isnan(gain) else -math.inf


def spread_threshold(noise_before: float, noise_after: float) -> float:
    return 2 * math.sqrt(noise_before**2 + noise_after**2)


def floor(threshold: float, before: float, metric: str) -> float:
    """The threshold, but at least the smallest difference worth keeping (see the module docstring)."""
    least = 0.005 if mode_of(metric) == "max" else 0.005 * abs(before) if math.isfinite(before) else 0.0
    return max(threshold, least)


def sampling_floor(before: float, after: float, n: int | None, metric: str) -> float:
    """Twice the sampling noise of the difference of two accuracy-like scores on ``n`` validation samples, at
    their pooled level p (the two-proportion test's): ``2 sqrt(2 p (1 - p) / n)``; 0 for a loss, an unknown n,
    or scores outside [0, 1]."""
    scores = [v for v in (before, after) if math.isfinite(v) and 0.0 <= v <= 1.0]
    if mode_of(metric) != "max" or not n or not scores:
        return 0.0
    p = sum(scores) / len(scores)
    return 2 * math.sqrt(2 * p * (1 - p) / n)


def window_best(records: list[dict[str, Any]], metric: str, restored_epoch: int | None = None) -> float:
    """The best value of ``metric`` over the last WINDOW epochs up to the scored one (the worst when none)."""
    values = window_values(records, metric, restored_epoch)
    if not values:
        return worst(metric)
    return max(values) if mode_of(metric) == "max" else min(values)


def beats_window(before_best: float, after: float, noise_after: float, metric: str) -> bool:
    """Is ``after`` better than every epoch of the current run's window, by more than its own noise (floored)?

    The spread threshold treats both runs' swings as measurement noise. When the current run swings because
    it is broken (batch size 1 at an LR that makes it diverge: validation 0.82, 0.63, 0.85), that swing is
    the fault, and a fix that makes the run steady at 0.99 would have to beat 2 x 0.15 to count. A score
    above the best the current run reached anywhere in its window is not one of its swings.
    """
    gain = improvement(before_best, after, metric)
    return math.isfinite(gain) and gain > floor(2 * noise_after, before_best, metric)


def still_improving(records: list[dict[str, Any]], metric: str, restored_epoch: int | None = None) -> bool:
    """Was the metric still getting better at the run's end, by more than its noise?

    The trend over the last WINDOW epochs up to the scored one (a Theil-Sen slope, which one odd epoch
    cannot tilt, times the window's length) against twice the spread of those epochs (floored as
    above). A run whose early stopping restored its best weights had stopped improving by definition.
    """
    import numpy as np  # here only: the score itself stays plain Python

    from trainwise.doctor.signals import theil_sen

    if restored_epoch is not None:
        return False
    values = window_values(records, metric, restored_epoch)
    if len(values) < 3:
        return False
    slope = theil_sen(np.asarray(values))
    trend = (slope if mode_of(metric) == "max" else -slope) * (len(values) - 1)
    return trend > floor(2 * spread(records, metric, restored_epoch), values[-1], metric)


# A network with capacity to spare leaves fewer than 3 % of its training set wrong by the end of a run.
FITTED_TRAIN_ACC = 0.97


def short_of_fit(records: list[dict[str, Any]], restored_epoch: int | None = None) -> bool:
    """Training accuracy over the last WINDOW epochs up to the scored one (their median) below 0.97: the
    run has not shown what it can fit, levelled off or not (a deep sigmoid net that batch norm brought from
    chance to 0.94 on its training set, where its ReLU twin fits all of it). False without train_acc."""
    values = window_values(records, "train_acc", restored_epoch)
    return bool(values) and statistics.median(values) < FITTED_TRAIN_ACC
