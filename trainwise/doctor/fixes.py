"""Concrete ``--set`` overrides computed from the run's own config, so a fix is a value, not advice.

Every string returned here parses with ``trainwise.config.parse_override`` and validates against
``Config`` (a test applies every fix the doctor gives on its test runs), and changes something that
acts on the run: the LR goes to the key that sets its peak (``schedule.max_lr`` under OneCycle), never
the wrong way and into the optimizer's usual range; no warm-up for a schedule that ignores it; no width
for a model that the key does not build; nothing already set. A helper returns None where no key acts.
"""

from __future__ import annotations

import math

from trainwise.doctor.context import CHANNEL_MODELS, HIDDEN_MODELS, Context

# Decoupled decay (AdamW) is applied as lr * wd per step, so its useful values are ~100x those of L2 decay.
TYPICAL_WEIGHT_DECAY = {"adamw": 0.05}
DEFAULT_L2_DECAY = 5e-4


def fmt(x: float) -> str:
    """3e-4, 0.05, 1.0: short, TOML-readable, and what a person would type."""
    if x == 0:
        return "0.0"
    if abs(x) < 1e-2 or abs(x) >= 1e4:
        mantissa, exp = f"{x:.0e}".split("e")
        return f"{mantissa}e{int(exp)}"
    text = f"{x:.3g}"
    return text if "." in text or "e" in text else text + ".0"


def nice(x: float) -> float:
    """Round to 1, 2, 3 or 5 times a power of ten (the values people try)."""
    if x <= 0 or not math.isfinite(x):
        return x
    exp = math.floor(math.log10(x))
    base = x / 10**exp
    step = min((1, 2, 3, 5, 10), key=lambda s: abs(math.log(base / s)))
    return float(step * 10**exp)


def lr(ctx: Context, factor: float, fallback: float) -> str | None:
    """The run's peak LR times ``factor``, on the key that sets it; ``fallback`` when the LR is unknown.

    An LR outside the optimizer's usual range moves at least to the usual starting point (AdamW at 5
    needs 1e-3, not 1.5), and never further out: a larger LR for one already above the range, or a
    smaller one below it, is no fix (None).
    """
    base, key = ctx.base_lr, ctx.lr_key
    if not base:
        return f"{key}={fmt(fallback)}"
    target, typical, position = base * factor, ctx.typical_lr(), ctx.lr_position()
    if (factor > 1 and position == "high") or (factor < 1 and position == "low"):
        return None
    if typical is not None:
        if factor < 1 and position == "high":
            target = min(target, typical)
        elif factor > 1 and position == "low":
            target = max(target, typical)
    target = nice(target)
    if (factor < 1 and target >= base) or (factor > 1 and target <= base):
        return None  # rounding undid the move
    return f"{key}={fmt(target)}"


def lower_lr(ctx: Context, factor: float = 0.1) -> str | None:
    return lr(ctx, factor, 3e-4)


def higher_lr(ctx: Context, factor: float = 10.0) -> str | None:
    return lr(ctx, factor, 3e-3)


def warmup(ctx: Context, epochs: float = 1.0) -> str | None:
    """A linear warm-up, where the schedule honours it and none is set yet."""
    if not ctx.warmup_acts or float(ctx.cfg("schedule.warmup_epochs", 0.0) or 0.0) >= epochs:
        return None
    return f"schedule.warmup_epochs={fmt(epochs)}"


def more_weight_decay(ctx: Context) -> str:
    wd = float(ctx.cfg("optim.weight_decay", 0.0) or 0.0)
    typical = TYPICAL_WEIGHT_DECAY.get(ctx.optimizer or "", DEFAULT_L2_DECAY)
    return f"optim.weight_decay={fmt(nice(wd * 5) if wd > 0 else typical)}"


def less_weight_decay(ctx: Context) -> str:
    """A tenth of the current value, but no more than the usual one for this optimizer."""
    wd = float(ctx.cfg("optim.weight_decay", 0.0) or 0.0)
    typical = TYPICAL_WEIGHT_DECAY.get(ctx.optimizer or "", DEFAULT_L2_DECAY)
    return f"optim.weight_decay={fmt(nice(min(wd / 10, typical)))}"


def more_dropout(ctx: Context) -> str | None:
    d = ctx.max_dropout()
    return None if d >= 0.5 else f"model.dropout={fmt(min(0.5, round(d + 0.2, 2)))}"


def mixup(ctx: Context) -> str | None:
    """MixUp as a regulariser against overfitting, unless it is already on."""
    return None if float(ctx.cfg("mixup.mixup_alpha", 0.0) or 0.0) > 0 else "mixup.mixup_alpha=0.2"


def early_stopping(ctx: Context) -> str | None:
    return None if ctx.cfg("early_stopping.enabled") else "early_stopping.enabled=true"


def more_epochs(ctx: Context, factor: int = 2) -> str:
    epochs = ctx.cfg("train.epochs") or (int(ctx.epochs[-1]) if ctx.n else 20)
    return f"train.epochs={int(epochs) * factor}"


def wider_model(ctx: Context) -> str | None:
    """Twice the width, on the key the configured builder reads; None for a model passed in by the user."""
    name = ctx.cfg("model.name", "mlp")
    if ctx.user_model:
        return None
    if name in CHANNEL_MODELS:
        return f"model.channels=[{', '.join(str(c * 2) for c in ctx.cfg('model.channels', [32, 64]))}]"
    if name in HIDDEN_MODELS:
        hidden = ctx.cfg("model.hidden") or [128, 64]
        return f"model.hidden=[{', '.join(str(h * 2) for h in hidden)}]"
    return None  # a package.module:factory model: its width is its own business


def clip() -> str:
    return "train.grad_clip_norm=1.0"


def normalize(ctx: Context) -> str | None:
    """Only when the run's config turned standardisation off (True is the default, and then it is on)."""
    return "data.normalize=true" if ctx.cfg("data.normalize") is False else None


def decay_schedule(ctx: Context) -> str | None:
    return None if ctx.cfg("schedule.name") not in (None, "none") else "schedule.name=cosine"


def schedule(ctx: Context, name: str) -> str | None:
    return None if ctx.cfg("schedule.name") == name else f"schedule.name={name}"


def keep_augmentation(ctx: Context) -> str | None:
    """The progressive phases with training augmentation kept on in every phase (FixRes fine-tunes at the
    test resolution *with* the training augmentation)."""
    phases = ctx.cfg("progressive.phases") or []
    if not phases or all(p.get("augment", True) for p in phases):
        return None
    tables = []
    for p in phases:
        items = [f"epoch = {int(p['epoch'])}"]
        if p.get("resolution") is not None:
            items.append(f"resolution = {int(p['resolution'])}")
        items.append("augment = true")
        tables.append("{" + ", ".join(items) + "}")
    return f"progressive.phases=[{', '.join(tables)}]"


def keep(*fixes: str | None) -> list[str]:
    """Drop the Nones (fixes that do not apply to this config) and second values for a key already set."""
    out: list[str] = []
    for f in fixes:
        if f and f.split("=", 1)[0] not in {o.split("=", 1)[0] for o in out}:
            out.append(f)
    return out
