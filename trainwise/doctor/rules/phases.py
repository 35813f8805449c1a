"""phase_regression (warning): the metrics turn for the worse at a phase boundary and stay worse.

Records may carry ``phase``, a label that changes at a schedule step, an LR restart, a resolution or
augmentation change, unfreezing, or a resume. At each change the validation loss (else validation
accuracy, else training loss) before the boundary is compared with the new phase: a regression is a
median over the first 5 epochs of the new phase >= 10 % worse than the best of the old phase (2 points
for accuracy) that is still >= 10 % worse at the end of the phase. A turn that is back within 5 % by then
is a transient_dip at the boundary. The boundary is the cause named, with what changed there: read from
trainwise's labels (``res16+aug|head`` -> ``res28-noaug|all``: resolution, augmentation off/on,
unfreezing) or free-form ones (``resume``), and the LR jump when there is one.
"""

from __future__ import annotations

import math
import re

import numpy as np

from trainwise.doctor import fixes, signals
from trainwise.doctor.context import Context
from trainwise.doctor.finding import Finding
from trainwise.doctor.rules.common import sig, span

WORSE = 0.10
RECOVERED = 0.05
ACC_WORSE = 0.02
WINDOW = 5


def rule(ctx: Context) -> list[Finding]:
    labels = ctx.labels("phase")
    if all(label is None for label in labels):
        return []
    cuts = [i for i in range(1, ctx.n) if labels[i] != labels[i - 1]]
    out: list[Finding] = []
    for j, b in enumerate(cuts):
        start = cuts[j - 1] if j else 0
        stop = cuts[j + 1] if j + 1 < len(cuts) else ctx.n
        finding = _judge(ctx, start, b, stop, labels)
        if finding is not None:
            out.append(finding)
    return out


def _metric(ctx: Context, pre: slice, post: slice) -> tuple[str, str] | None:
    for key, mode in (("val_loss", "min"), ("val_acc", "max"), ("train_loss", "min")):
        y = ctx.series(key)
        if len(signals.finite(y[pre])) >= 2 and len(signals.finite(y[post])) >= 2:
            return key, mode
    return None


def _judge(ctx: Context, start: int, b: int, stop: int, labels: list) -> Finding | None:
    pre, post = slice(start, b), slice(b, stop)
    chosen = _metric(ctx, pre, post)
    if chosen is None:
        return None
    key, mode = chosen
    y = ctx.series(key)
    before, after = signals.finite(y[pre]), signals.finite(y[post])
    first_after = float(np.median(after[:WINDOW]))
    end = signals.tail_median(after)
    if mode == "min":
        best = float(before.min())
        worse, still, back = first_after >= best * (1 + WORSE), end >= best * (1 + WORSE), end <= best * (1 + RECOVERED)
        jumped = after[0] >= best * (1 + WORSE)
    else:
        best = float(before.max())
        worse, still, back = first_after <= best - ACC_WORSE, end <= best - ACC_WORSE, end >= best - ACC_WORSE / 2
        jumped = after[0] <= best - ACC_WORSE
    old, new = labels[b - 1], labels[b]
    ev: dict = {"boundary_epoch": ctx.epoch_at(b), "from_phase": str(old), "to_phase": str(new), "metric": key,
                "best_before": sig(best), "median_after": sig(first_after), "end_of_phase": sig(end)}
    lr = ctx.series("lr")
    lr_jump = math.nan
    if math.isfinite(lr[b - 1]) and math.isfinite(lr[b]) and lr[b - 1] > 0:
        lr_jump = float(lr[b] / lr[b - 1])
        ev |= {"lr_before": sig(float(lr[b - 1])), "lr_after": sig(float(lr[b]))}
    where = f"the phase change {old!r} -> {new!r} at epoch {ctx.epoch_at(b)}"
    kind = change_kind(str(old), str(new), lr_jump)
    ev["change"] = kind
    if worse and still:
        lr_text = f" The LR jumped {lr_jump:.3g}x at the boundary ({lr[b - 1]:.3g} -> {lr[b]:.3g})." if lr_jump >= 2 else ""
        return Finding(
            "phase_regression",
            "warning",
            span(ctx, b, stop - 1),
            ev,
            f"{key.replace('_', ' ').capitalize()} turned at {where} and did not recover: best {best:.3g} before, "
            f"{first_after:.3g} over the next epochs, {end:.3g} at the end of the phase.{lr_text} {_advice(kind)}",
            _fixes(ctx, kind),
        )
    if jumped and back:
        return Finding(
            "transient_dip",
            "info",
            span(ctx, b, b),
            ev,
            f"{key.replace('_', ' ').capitalize()} dipped at {where} and recovered: a brief adjustment to the new phase, not a regression.",
            [],
        )
    return None


def change_kind(old: str, new: str, lr_jump: float) -> str:
    """What changed at a boundary, from trainwise's labels (``res16+aug|head`` -> ``res28-noaug|all``) or
    free-form ones (``resume``, ``unfrozen``): resume, lr, unfreeze, resolution, augment_off, augment_on,
    or other."""
    o, n = old.lower(), new.lower()
    if "resum" in n:
        return "resume"
    if lr_jump >= 2:
        return "lr"
    before, after = (set(re.split(r"[|+\-\s_]+", x)) - {""} for x in (o, n))
    if "unfreez" in n or ("head" in before and "all" in after):
        return "unfreeze"
    if {t for t in before if re.fullmatch(r"res\d+", t)} != {t for t in after if re.fullmatch(r"res\d+", t)}:
        return "resolution"
    if ("aug" in before and ("noaug" in after or "aug" not in after)) or "noaug" in after:
        return "augment_off"
    if "aug" in after or "mix" in n:
        return "augment_on"
    return "other"


ADVICE = {
    "resume": "A resumed run that jumps usually lost optimizer or scheduler state; resume from a checkpoint that holds both.",
    "lr": "The new phase's LR is too high for weights that were already converging.",
    "unfreeze": "Unfrozen pretrained layers need a much smaller LR than the new head.",
    "resolution": "The model meets inputs of another scale; switch resolution earlier or in smaller steps, and at a lower LR.",
    "augment_off": "Training augmentation stopped here; without it the model starts fitting the training set itself.",
    "augment_on": "The new augmentation is too strong for this model or arrives too abruptly.",
    "other": "Whatever changed at this boundary hurts the model; change it more gradually or not at all.",
}


def _advice(kind: str) -> str:
    return ADVICE[kind]


def _fixes(ctx: Context, kind: str) -> list[str]:
    if kind == "resume":
        return []  # no config value restores lost optimizer state
    if kind == "lr":
        return fixes.keep("schedule.name=cosine", fixes.lower_lr(ctx, 0.3))
    if kind == "unfreeze":
        return fixes.keep("finetune.layer_decay=0.7", fixes.lower_lr(ctx, 0.1))
    if kind == "augment_off":
        return fixes.keep(fixes.early_stopping(ctx), fixes.more_weight_decay(ctx))
    if kind == "augment_on":
        alpha = float(ctx.cfg("mixup.mixup_alpha", 0.0) or 0.0)
        return ["mixup.mixup_alpha=0.2"] if alpha > 0.4 else []
    return [fixes.lower_lr(ctx, 0.3)]
