"""The value of an LR fix, from an LR range test on the run's own model and data.

The doctor's LR fixes know the direction (lower after a divergence, higher for a crawl) and move the LR
to a fixed point, the optimizer's usual start (1e-3 for Adam) or a factor of the old value: blind to the
run's model, data and length. When the finding is about the LR itself (``lr_too_low``, ``lr_too_high``,
``diverged``), the chain asks the run instead: trainwise's LR range test (trainwise.tools.lr_find with
its own defaults: 200 steps from 1e-7 to 10, the valley rule) on a fresh copy of the run's model and
data, seconds on a small model. Its suggestion, rounded to the 1-2-3-5 grid, replaces the doctor's value
when it moves the LR the way the doctor's fix does and lies within the optimizer's usual range; a
suggestion outside that range says more about another fault (a bad init makes the loss fall only at
tiny LRs) than about the LR. Otherwise the doctor's value stands, and the reason is recorded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainwise.config import Config, flatten_dotted, parse_override
from trainwise.doctor import fixes as fx
from trainwise.doctor.context import Context
from trainwise.doctor.finding import Finding
from trainwise.errors import UserError

LR_CODES = ("lr_too_low", "lr_too_high", "diverged")
LR_KEYS = ("optim.lr", "schedule.max_lr")


def lr_range(cfg: Config) -> tuple[float, float] | None:
    """The optimizer's usual LR range for this config (scaled down for a fine-tune), as the doctor uses it."""
    return Context.of_config(cfg).lr_range()


def range_tested(finding: Finding | None, change: str, cfg: Config, sources, data) -> tuple[str, dict[str, Any] | None]:
    """``change`` with its LR value from the range test where the finding is about the LR, and what the test said.

    Returns the change unaltered and None when no test applies (another finding, another key).
    """
    if finding is None or finding.code not in LR_CODES:
        return change, None
    key, value = parse_override(change)
    current = flatten_dotted(cfg.to_dict()).get(key)
    if key not in LR_KEYS or not isinstance(value, (int, float)) or not isinstance(current, (int, float)):
        return change, None
    info: dict[str, Any] = {"doctor_change": change, "used": False}
    try:
        result = _sweep(cfg, sources, data)
    except UserError as err:
        info["why"] = f"the range test measured nothing ({err})"
        return change, info
    lrs, smoothed = result.lrs, result.smoothed
    factor = 1.0
    if key == "optim.lr":  # the test measures the LR the optimizer sees; optim.scale_lr multiplies optim.lr by this
        from trainwise.optim import scaled_lr

        factor = scaled_lr(cfg.optim.model_copy(update={"lr": 1.0}), cfg.data.batch_size)
    info |= {"valley": result.valley, "steepest": result.steepest, "rule": "valley" if result.valley is not None else "steepest",
             "loss_min_lr": float(lrs[int(np.argmin(smoothed))]) / factor, "steps": len(lrs), "stop_reason": result.stop_reason,
             "result": result}
    if result.suggestion is None:
        info["why"] = "the range test found no LR to suggest"
        return change, info
    suggestion = fx.nice(result.suggestion / factor)
    info["suggestion"] = suggestion
    up = float(value) > float(current)
    rng = lr_range(cfg)
    if (up and suggestion <= current) or (not up and suggestion >= current):
        info["why"] = (f"the range test suggests {fx.fmt(suggestion)}, not {'above' if up else 'below'} the run's {fx.fmt(float(current))} "
                       f"as {finding.code} needs")
    elif rng is not None and not rng[0] <= suggestion <= rng[1]:
        info["why"] = (f"the range test suggests {fx.fmt(suggestion)}, outside {cfg.optim.name}'s usual range "
                       f"{fx.fmt(rng[0])}..{fx.fmt(rng[1])}")
    else:
        info["used"] = True
        return f"{key}={fx.fmt(suggestion)}", info
    return change, info


def _sweep(cfg: Config, sources, data):
    from trainwise.tools.lr_find import lr_find, probe_config
    from trainwise.trainer import Trainer

    probe = Trainer(probe_config(cfg), model=sources.build_model(cfg, data), data=data)
    return lr_find(probe)


def summary(info: dict[str, Any]) -> dict[str, Any]:
    """What fix.json keeps of a test (the curve itself goes to lr_find.json in the attempt's directory)."""
    return {k: v for k, v in info.items() if k != "result"}
