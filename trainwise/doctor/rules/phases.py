"""phase_regression (warning): the run turns for the worse at a phase boundary and stays worse.

Boundaries come from every place that records one: the History's ``phase`` label (a schedule step, LR
restart, resolution or augmentation change, unfreezing, resume); when the records carry none, the
config's progressive phases (``res224+aug`` -> ``res256-noaug``) and ``finetune.unfreeze_epoch``; and
an LR that jumps up >= 2x after holding or falling (a restart the labels do not name; a warm-up or
OneCycle ramp rises from the first epoch and is no boundary); and, in a log that names no boundary at
all, a training loss that jumps >= 2x after >= 3 epochs of holding or falling, giving back >= a quarter
of its progress since the first epoch, while validation loss (the same weights, evaluated) moves < 25 %:
the weights were not thrown off, what the training pass does changed -- layers unfrozen, augmentation or
dropout switched on, a second stage of a script (an instability would show in validation too).

At each boundary two judgements:

* the metric (validation loss, else validation accuracy, else training loss) over the first 5 epochs of
  the new phase is >= 10 % worse than the best of the old phase (2 points for accuracy) and still >= 10 %
  worse at the end of the phase -- a regression; a turn that recovers is still one when it cost the run
  something real: it threw the metric (within the boundary's first two epochs) to >= 1.5x the old best and
  past where the run stood after its first epoch (the change undid what was learnt before it, as a
  pretrained backbone unfrozen at the head's LR does), or it was >= 10 % worse for most of the first
  epochs and the phase never regained the old best (its best epoch lost); otherwise back within 5 % by
  the end is a ``transient_dip``;
* the train/validation accuracy gap widens by >= 5 points while training accuracy jumps and validation
  gains less than a third as much -- the new phase overfits (seed 004: the FixRes phase without training
  augmentation took training accuracy from 56 % to 67-71 % while validation stalled at 63-64 %); judged
  even where the boundary also had a transient dip, which the opening of such a phase often has.

The boundary is the cause named, with what changed there (several can change at once: augmentation
switched off is named before a resolution change, since it is what lets training pull away), and the
fix that acts on it: keep training augmentation in the final phase, a smaller LR for unfrozen layers,
optimizer state for a resume.
"""

from __future__ import annotations

import math
import re

import numpy as np

from trainwise.doctor import fixes, signals
from trainwise.doctor.advice import KEEP_AUGMENTATION
from trainwise.doctor.codes import EVENT, Code
from trainwise.doctor.context import Context
from trainwise.doctor.finding import Finding
from trainwise.doctor.rules.common import sig, span

CODES = (
    Code("phase_regression", "warning", "metrics (or the train/validation gap) turn for the worse at a phase boundary and stay worse",
         priority=70, scope=EVENT, subsumes=frozenset({"overfitting", "unstable_training", "lr_too_high", "transient_dip"})),
)

WORSE = 0.10
RECOVERED = 0.05
ACC_WORSE = 0.02
WINDOW = 5
THROWN = 0.5  # a boundary that takes the metric to 1.5x the old best (10 points of accuracy) ...
ACC_THROWN = 0.10
THROWN_WITHIN = 2  # ... within its first two epochs, and past where the run stood after its first epoch


GAP_WIDER = 0.05  # the train/validation accuracy gap widening by 5 points at a boundary ...
VAL_SHARE = 1 / 3  # ... while validation gains less than a third of training's jump
LR_JUMP = 2.0
TRAIN_JUMP = 2.0  # a training loss this many times its previous epoch's ...
VAL_HELD = 0.25  # ... while validation loss moves less than this: the training regime changed, not the weights
GIVEN_BACK = 0.25  # ... and the jump undoes this share of the training loss's progress since the first epoch


def phase_labels(ctx: Context) -> list:
    """One label per record: the History's ``phase``, else what the config's phases say for that epoch."""
    labels = ctx.labels("phase")
    if any(label is not None for label in labels):
        return labels
    phases = sorted(ctx.cfg("progressive.phases") or [], key=lambda p: int(p.get("epoch", 1)))
    unfreeze = ctx.cfg("finetune.unfreeze_epoch") if ctx.cfg("finetune.freeze") else None
    if not phases and not unfreeze:
        return labels
    out = []
    for epoch in ctx.epochs:
        parts = []
        if unfreeze:
            parts.append("frozen" if epoch < int(unfreeze) else "unfrozen")
        current = next((p for p in reversed(phases) if int(p.get("epoch", 1)) <= epoch), None)
        if current is not None:
            res = "full" if current.get("resolution") is None else str(current["resolution"])
            parts.append(f"res{res}" + ("+aug" if current.get("augment", True) else "-noaug"))
        out.append("|".join(parts) if parts else None)
    return out


def lr_restarts(ctx: Context) -> list[int]:
    """Indices where the logged LR jumps up >= 2x after an epoch in which it held or fell."""
    lr = ctx.series("lr")
    out = []
    for i in range(2, ctx.n):
        a, b, c = lr[i - 2], lr[i - 1], lr[i]
        if all(map(math.isfinite, (a, b, c))) and b > 0 and c >= LR_JUMP * b and b <= a:
            out.append(i)
    return out


def regime_changes(ctx: Context) -> list[int]:
    """Indices where the training loss jumps >= 2x its previous epoch after >= 3 epochs of holding or
    falling, by >= a quarter of its progress since the first epoch, while the validation loss moves < 25 %
    (in that epoch and the one before): a new training stage the log does not name."""
    if not (ctx.has("train_loss", 4) and ctx.has("val_loss", 4)):
        return []
    train, val = ctx.series("train_loss"), ctx.series("val_loss")
    out = []
    for i in range(3, ctx.n):
        a, b, c, v_, v0, v1 = train[i - 2], train[i - 1], train[i], val[i - 2], val[i - 1], val[i]
        if not all(map(math.isfinite, (a, b, c, v_, v0, v1))) or b <= 0 or v0 <= 0 or v_ <= 0:
            continue
        # Validation held in the epoch before as well: one that had just jumped (0.43 -> 0.85, then the
        # training loss 0.39 -> 1.08) shows weights already thrown off, an instability, not a new stage.
        if abs(v0 / v_ - 1) >= VAL_HELD:
            continue
        # Large on the run's own scale too: it gives back >= a quarter of the progress made since the first
        # epoch (a converged loss wandering 0.004 -> 0.025 is 6x, and nothing happened).
        given_back = (c - b) / (train[0] - b) if math.isfinite(train[0]) and train[0] > b else 0.0
        if c >= TRAIN_JUMP * b and b <= a * 1.05 and abs(v1 / v0 - 1) < VAL_HELD and given_back >= GIVEN_BACK:
            out.append(i)
    return out


def boundaries(ctx: Context) -> tuple[list[int], list]:
    """(indices where a new phase starts, per-record labels, with LR restarts labelled ``lr-restart-N`` and,
    where nothing else names a boundary, training-regime changes ``stage-N``)."""
    labels = list(phase_labels(ctx))
    cuts = {i for i in range(1, ctx.n) if labels[i] != labels[i - 1] and labels[i - 1] is not None}
    restarts = [i for i in lr_restarts(ctx) if i not in cuts]
    for k, i in enumerate(restarts):
        for j in range(i, ctx.n):  # the restart starts a phase of its own name
            labels[j] = f"{labels[j] or 'run'}+lr-restart-{k + 1}"
        cuts.add(i)
    if not cuts:
        stages = regime_changes(ctx)
        base = labels[0] if labels else None  # one label throughout, or none: nothing else marks a boundary
        for j in range(ctx.n if stages else 0):
            k = 1 + sum(i <= j for i in stages)
            labels[j] = f"{base}+stage-{k}" if base else f"stage-{k}"
        cuts.update(stages)
    return sorted(cuts), labels


def rule(ctx: Context) -> list[Finding]:
    cuts, labels = boundaries(ctx)
    out: list[Finding] = []
    for j, b in enumerate(cuts):
        start = cuts[j - 1] if j else 0
        stop = cuts[j + 1] if j + 1 < len(cuts) else ctx.n
        finding = _judge(ctx, start, b, stop, labels)
        if finding is None or finding.severity == "info":  # a dip at the boundary can open a phase that overfits
            finding = _gap_jump(ctx, start, b, stop, labels) or finding
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
    lr_jump = _lr_jump(ctx, b)
    if not math.isnan(lr_jump):  # both LRs logged
        ev |= {"lr_before": sig(float(lr[b - 1])), "lr_after": sig(float(lr[b]))}
    where = f"the phase change {old!r} -> {new!r} at epoch {ctx.epoch_at(b)}"
    found = changes(str(old), str(new), lr_jump)
    kind = found[0]
    if kind == "stage":
        tl, vl = ctx.series("train_loss"), ctx.series("val_loss")
        where = (f"a new training stage at epoch {ctx.epoch_at(b)}, which the log does not name (read from the curves: "
                 f"training loss {tl[b - 1]:.3g} -> {tl[b]:.3g} while validation loss went {vl[b - 1]:.3g} -> {vl[b]:.3g})")
    ev |= {"change": kind, "changes": ", ".join(found)}
    lr_text = f" The LR jumped {lr_jump:.3g}x at the boundary ({lr[b - 1]:.3g} -> {lr[b]:.3g})." if lr_jump >= 2 else ""
    name = key.replace("_", " ").capitalize()
    if worse and still:
        return Finding(
            "phase_regression",
            "warning",
            span(ctx, b, stop - 1),
            ev,
            f"{name} turned at {where} and did not recover: best {best:.3g} before, "
            f"{first_after:.3g} over the next epochs, {end:.3g} at the end of the phase.{lr_text} {_advice(kind)}",
            _fixes(ctx, kind, b),
            _words(kind, ctx, b),
        )
    cost = _cost(y, mode, best, b, stop, where)
    if cost is not None:
        text, last, extra = cost
        return Finding(
            "phase_regression",
            "warning",
            span(ctx, b, last),
            ev | extra,
            f"{name} {text}.{lr_text} {_advice(kind)}",
            _fixes(ctx, kind, b),
            _words(kind, ctx, b),
        )
    if jumped and back:
        return Finding(
            "transient_dip",
            "info",
            span(ctx, b, b),
            ev,
            f"{name} dipped at {where} and recovered: a brief adjustment to the new phase, not a regression.",
            [],
        )
    return None


def _cost(y: np.ndarray, mode: str, best: float, b: int, stop: int, where: str) -> tuple[str, int, dict] | None:
    """A turn at a boundary that recovered later but cost the run something real: (what happened, the index
    it ended at, evidence), or None for a dip that cost nothing.

    * thrown back: within the boundary's first two epochs the metric is >= 1.5x the old phase's best (10
      points for accuracy) and worse than at the run's first epoch -- the change undid everything learnt
      before it (a pretrained backbone unfrozen at the head's LR: validation loss 0.65 -> 4.4, above epoch
      1's 1.04), and the epochs after it re-learn what the run already had; unless the phase throws the
      metric that far again later on its own (then the throw is one of the curve's swings);
    * lost: >= 10 % worse (2 points) for most of the new phase's first epochs and never back to the old
      best in the whole phase -- the phase cost the run its best epoch.
    """
    after = y[b:stop]
    first = next((float(v) for v in y[:b] if math.isfinite(v)), math.nan)
    early = signals.finite(after[:THROWN_WITHIN])
    if mode == "min":
        worse_than = lambda v: v >= best * (1 + WORSE)  # noqa: E731
        peak = float(early.max()) if len(early) else math.nan
        thrown = peak >= best * (1 + THROWN) and first > best and peak > first
        beaten = bool(np.any(signals.finite(after) < best))
    else:
        worse_than = lambda v: v <= best - ACC_WORSE  # noqa: E731
        peak = float(early.min()) if len(early) else math.nan
        thrown = peak <= best - ACC_THROWN and first < best and peak < first
        beaten = bool(np.any(signals.finite(after) > best))
    # A throw the phase repeats later on its own (16 validation images: loss 0.35 -> 2.23 at the boundary and
    # 2.56 six epochs later) is one of the curve's swings, not the boundary's doing: unstable_training's to judge.
    later = signals.finite(after[THROWN_WITHIN + 1:])
    if thrown and len(later) and (np.any(later >= best * (1 + THROWN)) if mode == "min" else np.any(later <= best - ACC_THROWN)):
        thrown = False
    bad = [bool(math.isfinite(v) and worse_than(v)) for v in after]
    # the first epoch at or beyond the boundary that is no longer worse: where the cost ended
    back = next((i for i, v in enumerate(bad) if not v), len(bad))
    extra = {"first_epoch_value": sig(first), "peak_after": sig(peak), "epochs_worse": back}
    if thrown:
        again = (f"within 10 % of the old best again after {back} epoch{'s' if back > 1 else ''}" if back < len(bad)
                 else "never back within 10 % of the old best")
        return (f"was thrown at {where} from its best of {best:.3g} to {peak:.3g}, worse than after the run's first "
                f"epoch ({first:.3g}): the change undid what the run had learnt before it, and the epochs after it "
                f"re-learnt it ({again}), even if the run ends well", b + max(back, 1) - 1, extra)
    n = min(WINDOW, len(bad))
    if n >= 3 and sum(bad[:n]) > n / 2 and not beaten:
        return (f"turned >= 10 % worse at {where} and never got back to the old phase's best ({best:.3g}) in the "
                f"{len(bad)} epochs after it: the phase cost the run its best epoch", b + len(bad) - 1, extra)
    return None


def _lr_jump(ctx: Context, b: int) -> float:
    lr = ctx.series("lr")
    if math.isfinite(lr[b - 1]) and math.isfinite(lr[b]) and lr[b - 1] > 0:
        return float(lr[b] / lr[b - 1])
    return math.nan


def _gap_jump(ctx: Context, start: int, b: int, stop: int, labels: list) -> Finding | None:
    """The new phase lets training pull away from validation: the accuracy gap widens >= 5 points while
    training accuracy jumps and validation gains less than a third as much (or loses)."""
    if not (ctx.has("train_acc", 4) and ctx.has("val_acc", 4)):
        return None
    train, val = ctx.series("train_acc"), ctx.series("val_acc")
    pre = slice(max(start, b - 3), b)
    post = slice(min(b + 1, stop - 1), stop)  # the boundary epoch itself is a mix of both phases' steps
    tb, vb = signals.finite(train[pre]), signals.finite(val[pre])
    ta, va = signals.finite(train[post]), signals.finite(val[post])
    if min(len(tb), len(vb), len(ta), len(va)) < 2:
        return None
    train_gain, val_gain = float(np.median(ta) - np.median(tb)), float(np.median(va) - np.median(vb))
    gap_before, gap_after = float(np.median(tb) - np.median(vb)), float(np.median(ta) - np.median(va))
    if not (gap_after - gap_before >= GAP_WIDER and train_gain >= GAP_WIDER and val_gain < VAL_SHARE * train_gain):
        return None
    old, new = labels[b - 1], labels[b]
    found = changes(str(old), str(new), _lr_jump(ctx, b))
    kind = found[0]
    ev: dict = {"boundary_epoch": ctx.epoch_at(b), "from_phase": str(old), "to_phase": str(new), "change": kind,
                "changes": ", ".join(found), "train_acc_before": sig(float(np.median(tb))), "train_acc_after": sig(float(np.median(ta))),
                "val_acc_before": sig(float(np.median(vb))), "val_acc_after": sig(float(np.median(va))),
                "gap_before": sig(gap_before), "gap_after": sig(gap_after)}
    loss_text = ""
    if ctx.has("val_loss", 4):
        vl = ctx.series("val_loss")
        lb, la = signals.finite(vl[pre]), signals.finite(vl[post])
        if len(lb) and len(la):
            ev |= {"val_loss_before": sig(float(np.median(lb))), "val_loss_end": sig(signals.tail_median(la))}
            if signals.tail_median(la) > float(np.median(lb)) * 1.02:
                loss_text = f", and validation loss rose ({np.median(lb):.3g} -> {signals.tail_median(la):.3g})"
    return Finding(
        "phase_regression",
        "warning",
        span(ctx, b, stop - 1),
        ev,
        f"At the phase change {old!r} -> {new!r} (epoch {ctx.epoch_at(b)}) training accuracy jumped "
        f"{np.median(tb):.3f} -> {np.median(ta):.3f} while validation moved {np.median(vb):.3f} -> {np.median(va):.3f}: "
        f"the train/validation gap went from {gap_before * 100:+.1f} to {gap_after * 100:+.1f} points{loss_text}. "
        f"The new phase overfits. {_advice(kind)}",
        _fixes(ctx, kind, b),
        _words(kind, ctx, b),
    )


def changes(old: str, new: str, lr_jump: float) -> list[str]:
    """What changed at a boundary, most causal first, from trainwise's labels (``res16+aug|frozen`` ->
    ``res28-noaug|unfrozen``) or free-form ones (``resume``, ``unfrozen``): resume, lr, unfreeze,
    augment_off, resolution, augment_on, stage (a training-regime change read from the curves) -- or ["other"]."""
    o, n = old.lower(), new.lower()
    if "resum" in n:
        return ["resume"]
    found = []
    if lr_jump >= LR_JUMP or "lr-restart" in n and "lr-restart" not in o:
        found.append("lr")
    before, after = (set(re.split(r"[|+\-\s_]+", x)) - {""} for x in (o, n))
    if "unfreez" in n or ("head" in before and "all" in after) or ("frozen" in before and "unfrozen" in after):
        found.append("unfreeze")
    if ("aug" in before and ("noaug" in after or "aug" not in after)) or ("noaug" in after and "noaug" not in before):
        found.append("augment_off")
    if {t for t in before if re.fullmatch(r"res\w+", t)} != {t for t in after if re.fullmatch(r"res\w+", t)}:
        found.append("resolution")
    if ("aug" in after and "aug" not in before) or ("mix" in n and "mix" not in o):
        found.append("augment_on")
    if not found and re.findall(r"stage-\d+", n) != re.findall(r"stage-\d+", o):
        found.append("stage")
    return found or ["other"]


def change_kind(old: str, new: str, lr_jump: float) -> str:
    return changes(old, new, lr_jump)[0]


ADVICE = {
    "resume": "A resumed run that jumps usually lost optimizer or scheduler state; resume from a checkpoint that holds both.",
    "lr": "The new phase's LR is too high for weights that were already converging.",
    "unfreeze": "Unfrozen pretrained layers need a much smaller LR than the new head.",
    "resolution": "The model meets inputs of another scale; switch resolution earlier or in smaller steps, and at a lower LR.",
    "augment_off": "Training augmentation stopped here; without it the model starts fitting the training set itself. "
                   "Keep training augmentation in the final phase (FixRes fine-tunes at the new resolution with it).",
    "augment_on": "The new augmentation is too strong for this model or arrives too abruptly.",
    "stage": "The training loss jumped here while validation held, so the training pass itself changed (layers "
             "unfrozen, augmentation or dropout switched on, a second stage of the script), and the new stage "
             "left validation worse than the first stage's best. Keep the first stage's best weights, or start "
             "the new stage at a lower LR.",
    "other": "Whatever changed at this boundary hurts the model; change it more gradually or not at all.",
}


def _words(kind: str, ctx: Context, b: int) -> list[str]:
    """Advice that holds whatever tool trained the run (the config keys come in ``_fixes``)."""
    phase_lr = _phase_lr(ctx, b)
    if phase_lr is not None and kind in ("lr", "other"):
        return [f"a lower learning rate for the new phase: {fixes.fmt(fixes.nice(phase_lr * LR_FACTOR[kind]))} "
                f"(it ran at {fixes.fmt(phase_lr)})"]
    if kind == "augment_off":
        return [KEEP_AUGMENTATION]
    if kind == "resume":
        return ["resume from a checkpoint that holds the optimizer and scheduler state"]
    if kind == "unfreeze":
        at = f" ({fixes.fmt(fixes.nice(phase_lr * LR_FACTOR[kind]))}; they ran at {fixes.fmt(phase_lr)})" if phase_lr else ""
        return [f"train unfrozen pretrained layers at a much smaller LR than the head (e.g. a tenth){at}"]
    if kind == "stage":
        return ["keep the best weights of the first stage (checkpoint on validation)",
                "start the second stage at a lower LR (e.g. a tenth), or leave it out"]
    return []


def _advice(kind: str) -> str:
    return ADVICE[kind]


LR_FACTOR = {"lr": 0.3, "unfreeze": 0.1, "other": 0.3}  # the lower LR each kind of boundary asks for


def _phase_lr(ctx: Context, b: int) -> float | None:
    """The LR the new phase ran at, for a foreign log that logs it: there the run's peak LR, which a config
    key would scale, is not what the phase used (a fine-tune at 1e-4 after a head trained at 1e-3)."""
    if ctx.config_known or b >= ctx.n:
        return None
    lr = ctx.series("lr")
    return float(lr[b]) if math.isfinite(lr[b]) and lr[b] > 0 else None


def _lower_lr(ctx: Context, b: int, factor: float) -> str | None:
    # A foreign log with the phase's own LR gets the advice in words (_words): "learning rate 3e-4 (now 1e-3)"
    # against the peak would raise a phase that ran at 1e-4.
    return None if _phase_lr(ctx, b) is not None else fixes.lower_lr(ctx, factor)


def _fixes(ctx: Context, kind: str, b: int) -> list[str]:
    if kind == "resume":
        return []  # no config value restores lost optimizer state
    if kind == "lr":
        return fixes.keep("schedule.name=cosine", _lower_lr(ctx, b, LR_FACTOR[kind]))
    if kind == "unfreeze":
        return fixes.keep("finetune.layer_decay=0.7" if ctx.cfg("finetune.layer_decay", 1.0) > 0.7 else None,
                          _lower_lr(ctx, b, LR_FACTOR[kind]))
    if kind == "augment_off":
        return fixes.keep(fixes.keep_augmentation(ctx), fixes.early_stopping(ctx), fixes.more_weight_decay(ctx))
    if kind == "stage":
        return fixes.keep(fixes.early_stopping(ctx))
    if kind == "augment_on":
        alpha = float(ctx.cfg("mixup.mixup_alpha", 0.0) or 0.0)
        return ["mixup.mixup_alpha=0.2"] if alpha > 0.4 else []
    return fixes.keep(_lower_lr(ctx, b, LR_FACTOR["other"]))
