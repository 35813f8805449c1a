"""After a kept change leaves the run healthy: more of what helped, while it keeps helping.

The doctor falls silent once a run looks healthy, and healthy is not as good as it gets: the LR fix that
takes AdamW from 1e-6 to 1e-3 ends ``lr_too_low``, yet a 10-epoch run may want 3e-3; a 2-channel CNN
widened twice is no longer underfitting by the doctor's measure and still gains from a third doubling.
A kept change confirmed its finding's diagnosis with a gain above the noise, and a careful practitioner
then tries one step further along the same line before stopping, unless the run has levelled off (a
validation curve still climbing at the last epoch has not shown what the change can give; a flat one
has: trainwise.autofix.score.still_improving) and fits its training set (a run that still gets more than
3 % of it wrong has not shown it either: trainwise.autofix.score.short_of_fit). So does the chain, while
rounds and budget remain:

1. the kept key one step further the same way: the LR by half a decade (x3 or /3, the grid step of LR
   searches, rounded to the 1-2-3-5 grid), within the optimizer's usual range; after an LR range test
   upwards, whichever way the fix moved, since the test's valley is the cautious end of the window in
   which the loss falls, and never past the LR at which the test's loss was lowest; a width
   (``model.hidden``, ``model.channels``) widened again by the doctor's own rule; more of the training
   data the config holds back (``data.train_subset`` x4 again);
2. then the finding's other fixes not tried yet, in the doctor's order (an over-regularised run whose
   dropout fix helped tries the smaller label smoothing next).

The same step (``step``) comes first when a kept change left its finding in place: it helped and is not
done. Each step is an ordinary round, kept only when it beats the noise. The follow-through ends at the first
rejected step (more of it no longer helps), when a problem shows again (the doctor's findings lead once
more), or when rounds or budget run out. A run that was healthy to begin with is still left alone:
this only continues a repair.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from trainwise.autofix.lr_test import LR_KEYS, lr_range
from trainwise.config import Config, flatten_dotted, parse_override
from trainwise.doctor import fixes as fx
from trainwise.doctor.context import Context
from trainwise.doctor.finding import Finding

LR_STEP = 3.0  # half a decade
WIDTH_KEYS = ("model.hidden", "model.channels")


def further(finding: Finding, kept: str, before: Config, after: Config, lr_info: dict[str, Any] | None) -> Iterator[tuple[Finding, str]]:
    """The follow-through candidates after ``kept`` (a change from ``finding``) turned ``before`` into ``after``."""
    key, _ = parse_override(kept)
    ahead = step(kept, before, after, lr_info)
    if ahead:
        yield finding, ahead
    for change in finding.fixes:
        if parse_override(change)[0] != key:  # the kept key moves by its step above, not back to the finding's value
            yield finding, change


def step(kept: str, before: Config, after: Config, lr_info: dict[str, Any] | None = None) -> str | None:
    """The kept key one step further the same way (None for a key with no line to follow: a switch)."""
    key, _ = parse_override(kept)
    return (_lr_step(key, before, after, lr_info) if key in LR_KEYS else _wider(after) if key in WIDTH_KEYS
            else _more_data(after) if key == "data.train_subset" else None)


def raised_lr(kept: str, before: Config, after: Config) -> bool:
    """Did ``kept`` raise an LR key?"""
    key, _ = parse_override(kept)
    values = _numbers(key, before, after) if key in LR_KEYS else None
    return values is not None and values[1] > values[0]


def _numbers(key: str, before: Config, after: Config) -> tuple[float, float] | None:
    """The numeric value of ``key`` before and after a change (None when either is not a number)."""
    old, new = (flatten_dotted(c.to_dict()).get(key) for c in (before, after))
    return (old, new) if isinstance(old, (int, float)) and isinstance(new, (int, float)) else None


def _lr_step(key: str, before: Config, after: Config, lr_info: dict[str, Any] | None) -> str | None:
    values = _numbers(key, before, after)
    if values is None or values[0] == values[1]:
        return None
    old, new = values
    # After a range test, the line runs up its window: the valley it suggested sits at the window's cautious
    # end (on the descent, before the steepest fall), and the loss keeps falling up to loss_min_lr.
    tested = bool(lr_info and lr_info.get("used") and lr_info.get("loss_min_lr"))
    up = tested or new > old
    target = fx.nice(new * LR_STEP if up else new / LR_STEP)
    rng = lr_range(after)
    if rng is not None:
        target = min(max(target, rng[0]), rng[1])
    if tested:
        target = min(target, fx.nice(lr_info["loss_min_lr"]))
    if (up and target <= new) or (not up and target >= new):
        return None  # at the edge of the range, or of the range test's curve
    return f"{key}={fx.fmt(target)}"


def _wider(after: Config) -> str | None:
    return fx.wider_model(Context.of_config(after))


def _more_data(after: Config) -> str | None:
    return fx.more_data(Context.of_config(after))
