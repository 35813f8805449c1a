"""Optimisation that runs away or swings: diverged, lr_too_high, unstable_training.

* diverged (error): a NaN/Inf loss, or a training loss that ends at >= 3x the level a fresh classifier
  starts at (ln K, or the first epoch when K is unknown); with only validation logged and K known, a
  validation loss that ends >= 3x ln K and never came down to ln K. A first epoch that starts high and then
  recovers is not divergence, nor a training loss that grew while validation improved or held (a ramped
  loss term), unless it never came down to ln K and ends >= 100x it (blown-up outputs). NaN/Inf steps that a NaN guard skipped or rolled back, with finite epoch
  losses, are reported as a warning: the run survived but sits at the edge of stability.
* lr_too_high (warning): the training loss oscillates (>= 2 rises and falls of >= 10 %, rises in >= 20 %
  of epochs, AUTOTRAINER's share) or rises in the first epochs, *and* the LR is implicated: above the
  optimizer's usual range, or typical per-step update ratios >= 1e-2 (weights move 1 % per step).
  Or, without swings, a run the LR has crippled: the LR above its range, training accuracy < 0.8 (and
  >= 10 points above chance, within 10 points of validation: neither stuck nor overfitting), and the
  damage visible in the monitors -- a layer with >= 50 % dead units or typical update ratios >= 1e-2.
  Adam at 100x its usual LR often kills most ReLUs in the first steps and then fits slowly with the
  survivors: a smooth, flat, underfitting curve whose cause is the step size, not the capacity.
* unstable_training (warning): the same swings (or validation-loss swings of >= 25 % that accuracy
  shares: >= 3-point drops in >= 15 % of epochs) without LR evidence -- and, for training-loss swings,
  validation swinging too (accuracy drops, or >= 25 % loss jumps in >= 15 % of epochs): wiggles
  validation does not feel are noise. The cause may be the
  batch size, the data order, or missing normalisation. Also a run that is getting worse without overfitting:
  validation loss ending >= 20 % above its best and accuracy >= 3 points below while the training loss
  did not improve since (lr_too_high when the LR is above its range). Swings without LR evidence that
  stopped -- the last third of the run (>= 4 epochs, runs of >= 12) calm on both curves and validation
  ending at its best (loss within 10 % of its minimum, accuracy within a point of its maximum) -- are info:
  the final model is unharmed. Unless they stopped only once the logged LR had been cut to half or less
  after swinging through at least half the run: then the LR is implicated after all (lr_too_high).
"""

from __future__ import annotations

import math

import numpy as np

from trainwise.doctor import fixes, signals
from trainwise.doctor.codes import EVENT, Code
from trainwise.doctor.context import Context
from trainwise.doctor.finding import Finding
from trainwise.doctor.rules.common import (
    BIG_STEP,
    MIN_EPOCHS,
    RECOVER_WITHIN,
    UNSTABLE_SHARE,
    Degradation,
    big_rises,
    degradation,
    is_oscillating,
    loss_scale_floor,
    lr_evidence,
    layers_at_least,
    sig,
    span,
    update_ratios,
    val_acc_drops,
)

CODES = (
    Code("diverged", "error (warning when a NaN guard absorbed it)",
         "NaN/Inf loss, or a training loss that ends far above its start while nothing else improves", priority=10, scope=EVENT,
         subsumes_at=("error",), subsumes=frozenset({
             "lr_too_high", "unstable_training", "overfitting", "plateau", "transient_dip", "phase_regression", "underfitting",
             "stuck_at_chance", "lr_too_low", "over_regularized", "val_above_train", "prediction_collapse"})),
    Code("lr_too_high", "warning",
         "loss oscillating or rising early, or a fit crippled by dead units or large steps, with the LR implicated",
         priority=40, subsumes=frozenset({"unstable_training", "underfitting", "plateau"})),
    Code("unstable_training", "warning (info when the swings stopped and validation ended at its best)",
         "large swings (or a spike in both curves) without LR evidence, or a run getting worse without overfitting", priority=130),
)

BLOWUP = 3.0  # loss this many times its starting level counts as blown up
HIGH_UPDATE_RATIO = 1e-2
VAL_SWING = 0.25  # validation loss is noisier than training loss (a few hundred samples)
TOGETHER_VAL_SHARE = 0.25  # validation jumps that back too few training rises: in a quarter of the epochs


def rule(ctx: Context) -> list[Finding]:
    out = _diverged(ctx)
    out += _too_high_or_unstable(ctx) or _crippled_by_lr(ctx) or _validation_accuracy_swings(ctx)
    return out


def _precision_fix(ctx: Context) -> str | None:
    return "train.precision=fp32" if ctx.cfg("train.precision") == "fp16" else None


def _diverged(ctx: Context) -> list[Finding]:
    if ctx.n == 0:
        return []
    loss = ctx.series("train_loss")
    bad = ctx.nonfinite("train_loss") | ctx.nonfinite("val_loss")
    finite_loss = signals.finite(loss)
    start = signals.head_median(loss, 1)
    ref = min(start, ctx.chance_loss) if ctx.chance_loss and math.isfinite(start) else start
    ev = lr_evidence(ctx)
    blown = np.nan_to_num(loss, nan=0.0) >= BLOWUP * ref if math.isfinite(ref) and ref > 0 else np.zeros(ctx.n, bool)
    if bad.any():
        first = int(np.argmax(bad | blown))
        first_nan = int(np.argmax(bad))
        ev |= {"first_nonfinite_epoch": ctx.epoch_at(first_nan), "nonfinite_epochs": int(bad.sum())}
        if len(finite_loss):
            ev["last_finite_train_loss"] = sig(float(finite_loss[-1]))
        what = f"the loss became NaN/Inf at epoch {ctx.epoch_at(first_nan)}"
        if first < first_nan:
            what = f"the loss blew up from epoch {ctx.epoch_at(first)} ({loss[first]:.3g}) and became NaN/Inf at epoch {ctx.epoch_at(first_nan)}"
        return [_diverged_finding(ctx, first, ev, what)]
    if not len(finite_loss):
        return _validation_blown_up(ctx) or _guarded_steps(ctx)
    if not math.isfinite(ref) or ref <= 0 or len(finite_loss) < 2:
        return _guarded_steps(ctx)
    end = signals.tail_median(loss, 2)
    if end >= BLOWUP * ref:
        first = int(np.argmax(np.nan_to_num(loss, nan=0.0) >= BLOWUP * ref))
        if not _outputs_blown_up(ctx, finite_loss, start, end) and (validation_improves(ctx, first) or validation_holds(ctx, first)):
            return _guarded_steps(ctx)  # the objective changed (a ramped loss term), the model did not break
        ev |= {"start_loss": sig(ref), "end_loss": sig(end), "growth": sig(end / ref)}
        what = f"the training loss grew from {ref:.3g} to {end:.3g} ({end / ref:.3g}x)"
        return [_diverged_finding(ctx, first, ev, what)]
    return _guarded_steps(ctx)


# A classifier's cross-entropy this many times ln K needs logits off by ~100 ln K nats: outputs that have
# blown up, not a training objective that gained a term.
BLOWN_OUTPUTS = 100.0


def _outputs_blown_up(ctx: Context, finite_loss: np.ndarray, start: float, end: float) -> bool:
    """K is known, the training loss never came down to ln K (a uniform guess's loss), ends >= 100x it and
    above where it started. (A loss summed over the batch starts far above ln K and falls: 813 -> 515 is
    learning on another scale, not outputs blowing up.)
    Validation accuracy that rose meanwhile does not make that a ramped loss term: SGD at 0.1 on batches of
    one (breast_cancer) keeps 85 % accuracy while its loss goes 1e13 -> 1e35 and then turns NaN."""
    chance = ctx.chance_loss
    return bool(chance and ctx.task != "regression" and float(finite_loss.min()) > chance and end >= BLOWN_OUTPUTS * chance
                and end > start)


def _validation_blown_up(ctx: Context) -> list[Finding]:
    """Only validation is logged (a foreign log's eval rows) and K is known: a cross-entropy that ends >= 3x
    ln K and never came down to ln K is what blown-up outputs give -- a uniform guess scores ln K, so no
    training run that works sits there. (A public classifier's validation loss: 7.9e12 after one epoch,
    still 2e7 after ten.) Falling from astronomical to huge is not learning."""
    chance = ctx.chance_loss
    val = signals.finite(ctx.series("val_loss"))
    if chance is None or ctx.task == "regression" or len(val) < 2:
        return []
    end = signals.tail_median(val, 2)
    if end < BLOWUP * chance or float(val.min()) <= chance:
        return []
    ev = lr_evidence(ctx) | {"end_val_loss": sig(end), "min_val_loss": sig(float(val.min())), "chance_loss": sig(chance),
                             "growth_over_chance": sig(end / chance), "assumption": "no training loss logged: judged on validation"}
    what = (f"the validation loss ends at {end:.3g}, {end / chance:.3g}x ln {ctx.num_classes} (a uniform guess scores "
            f"{chance:.3g}), and never came below it (lowest {val.min():.3g}); only validation is logged")
    return [_diverged_finding(ctx, 0, ev, what)]


def validation_improves(ctx: Context, since: int) -> bool:
    """Validation got better while the training loss grew: the training loss is not measuring the same thing
    over the run -- a composite loss whose weight ramps up (KL annealing, a penalty warm-up) -- so its growth
    is no divergence. Better: accuracy up >= 2 points, or the loss below everything before ``since``."""
    if ctx.has("val_acc", 3):
        acc = ctx.series("val_acc")
        before = signals.finite(acc[: since + 1])
        if len(before) and signals.tail_median(acc) >= float(np.median(before[-2:])) + 0.02:
            return True
    if ctx.has("val_loss", 3):
        val = ctx.series("val_loss")
        before = signals.finite(val[: since + 1])
        if len(before) and signals.tail_median(val) < float(before.min()) * 0.98 and signals.theil_sen(val[since:]) < 0:
            return True
    return False


def validation_holds(ctx: Context, since: int) -> bool:
    """Validation is no worse after ``since`` than before it, and ends near its best: accuracy (validation,
    else training: an accuracy that holds while the loss grew is the same sign) within half a point of its level before and 2 points of its best, else the loss no more than 10 % above
    its level before. A model whose training loss tripled because its weights broke is worse on validation
    too; one whose training objective gained a term (a domain-adversarial loss switched on at epoch 5:
    training 0.02 -> 0.70 while validation accuracy stays at 0.99) is not."""
    for key in ("val_acc", "train_acc"):  # training accuracy that holds while its loss grew says the same
        if ctx.has(key, 3):
            acc = ctx.series(key)
            before = signals.finite(acc[: since + 1])
            end = signals.tail_median(acc)
            return bool(len(before)) and end >= float(np.median(before[-2:])) - 0.005 and end >= float(np.nanmax(acc)) - 0.02
    if ctx.has("val_loss", 3):
        val = ctx.series("val_loss")
        before = signals.finite(val[: since + 1])
        return bool(len(before)) and signals.tail_median(val) <= float(np.median(before[-2:])) * 1.10
    return False


def _diverged_finding(ctx: Context, first: int, ev: dict, what: str) -> Finding:
    cause = "The LR is the usual cause"
    if ctx.lr_position() == "high":
        cause = f"{ctx.lr_position_text()}, the likely cause"
    elif ctx.cfg("train.precision") == "fp16":
        cause = "fp16 overflow or too high an LR are the usual causes"
    return Finding(
        "diverged",
        "error",
        span(ctx, first),
        ev,
        f"Training diverged: {what}. {cause}; clipping the gradient norm stops single bad batches from "
        "throwing the weights away.",
        fixes.keep(*fixes.before_lr(ctx), fixes.lower_lr(ctx), fixes.clip(), _precision_fix(ctx), fixes.warmup(ctx), fixes.batch_norm(ctx)),
    )


def _guarded_steps(ctx: Context) -> list[Finding]:
    steps = ctx.series("nonfinite_steps")
    hit = np.nan_to_num(steps) > 0
    rollbacks = [i for i, e in enumerate(ctx.labels("event")) if e == "nan_rollback"]
    if not hit.any() and not rollbacks:
        return []
    idx = np.flatnonzero(hit).tolist() + rollbacks
    first, last = min(idx), max(idx)
    ev = {"nonfinite_steps": int(np.nansum(steps)), "rollbacks": len(rollbacks)} | lr_evidence(ctx)
    return [
        Finding(
            "diverged",
            "warning",
            span(ctx, first, last),
            ev,
            f"{int(np.nansum(steps))} optimizer steps produced a NaN/Inf loss or gradient and were "
            f"{'rolled back' if rollbacks else 'skipped'}; the epoch losses stayed finite, but the run is at the "
            "edge of stability.",
            # The same causes as a run that diverged outright: standardised inputs, and batch norm for a deep
            # net without it whose LR is within its range (weights x10 in a 4-layer MLP at SGD 0.05: clipping
            # kept it finite at 0.91 validation, batch norm reached its clean twin's 0.95).
            fixes.keep(*fixes.before_lr(ctx), fixes.clip(), fixes.lower_lr(ctx, 0.5), _precision_fix(ctx)),
        )
    ]


def _degrading(ctx: Context, worse: Degradation) -> list[Finding]:
    ev = {"best_val_epoch": ctx.epoch_at(worse.best), "val_loss_rise": sig(worse.val_rise), "val_acc_drop": sig(worse.acc_drop)}
    ev |= lr_evidence(ctx)
    lr_high = ctx.lr_position() == "high"
    acc = f" and accuracy {worse.acc_drop * 100:.1f} points lower" if worse.acc_drop else ""
    return [
        Finding(
            "lr_too_high" if lr_high else "unstable_training",
            "warning",
            span(ctx, worse.best),
            ev,
            f"The run is getting worse: validation loss ended {worse.val_rise:.0%} above its best (epoch "
            f"{ctx.epoch_at(worse.best)}){acc}, while the training loss did not improve either -- not overfitting "
            "but unstable optimisation: too high an LR for this setup, or inputs/activations on a bad scale.",
            fixes.keep(*fixes.before_lr(ctx), fixes.lower_lr(ctx, 0.3), fixes.decay_schedule(ctx), fixes.clip()),
        )
    ]


CRIPPLED_ACC = 0.8  # as underfitting


def _crippled_by_lr(ctx: Context) -> list[Finding]:
    """lr_too_high without swings: the LR is above its range, the model fits poorly, and the monitors show
    the steps' damage (most units of a layer dead, or weights moving >= 1 % per step)."""
    if ctx.n < MIN_EPOCHS or ctx.lr_position() != "high" or not (ctx.has("train_acc", 1) and ctx.has("val_acc", 1)):
        return []
    train, val = signals.tail_median(ctx.series("train_acc")), signals.tail_median(ctx.series("val_acc"))
    chance = 1.0 / ctx.num_classes if ctx.num_classes else 0.0
    if not (chance + 0.1 <= train < CRIPPLED_ACC) or train - val >= 0.1:
        return []
    dead = layers_at_least(ctx, "dead_frac")  # as dead_units counts them
    ratios = update_ratios(ctx)
    why = [ctx.lr_position_text()]
    if dead:
        why.append("dead units: " + ", ".join(f"{name} {share:.0%}" for name, share in dead.items()))
    if ratios is not None and ratios[0] >= HIGH_UPDATE_RATIO:
        why.append(f"weights move {ratios[0]:.1%} per step (healthy is ~0.1 %)")
    if len(why) < 2:
        return []
    ev = {"train_acc": sig(train), "val_acc": sig(val)} | lr_evidence(ctx)
    return [
        Finding(
            "lr_too_high",
            "warning",
            span(ctx, 0),
            ev,
            f"Training accuracy is only {train:.3f} (validation {val:.3f}) and {'; '.join(why)}: the steps are too large "
            "for this model -- they killed units or keep overshooting -- so a larger model or more epochs would not help.",
            fixes.keep(fixes.lower_lr(ctx, 0.1), fixes.warmup(ctx), fixes.clip()),
        )
    ]


def _accuracy_swings(ctx: Context) -> bool:
    """Validation loss swings matter when accuracy swings with them (>= 3-point drops in >= 15 % of
    epochs); alone they are often a confident model's loss on a few hundred samples."""
    if not ctx.has("val_acc", MIN_EPOCHS):
        return True
    return val_acc_drops(ctx) >= max(2, UNSTABLE_SHARE * ctx.n)


def _both_curves_swing(ctx: Context) -> bool:
    """The training loss rises and falls back >= 10 % at least twice while the validation loss swings
    (>= 25 % jumps in >= a quarter of the epochs, at least 3, that come back down): fewer training rises
    than a swing of its own needs, so validation must swing clearly, more often than the 15 % that backs
    a training swing (zoo v1's deep_init_x2: training loss 0.07 -> 0.16 and 0.03 -> 0.11 while validation
    jumped 5 times in 19 steps; a batch-norm twin whose validation loss at 0.1-0.2 jumped 3 times, with
    accuracy at 0.96-0.98 throughout, is noise of a few hundred samples)."""
    if not ctx.has("val_loss", MIN_EPOCHS):
        return False
    ups, downs, n = big_rises(ctx, "train_loss", BIG_STEP)
    vups, vdowns, vn = big_rises(ctx, "val_loss", VAL_SWING)
    return n >= MIN_EPOCHS and ups >= 2 and downs >= 2 and vdowns >= 2 and vups >= max(3, TOGETHER_VAL_SHARE * vn)


def _early_rise(ctx: Context) -> int | None:
    """Index of an epoch in the first third whose training loss is >= 10 % above the first epoch's (not
    when validation improves meanwhile: a ramped loss term, not a step too large)."""
    loss = ctx.series("train_loss")
    if validation_improves(ctx, 0):
        return None
    third = max(3, ctx.n // 3)
    first = loss[0] if ctx.n else math.nan
    if not math.isfinite(first):
        return None
    for i in range(1, min(third, ctx.n)):
        if math.isfinite(loss[i]) and loss[i] >= first * (1 + BIG_STEP) and loss[i] - first >= loss_scale_floor(ctx):
            return i
    return None


def _too_high_or_unstable(ctx: Context) -> list[Finding]:
    if ctx.n < MIN_EPOCHS:
        return []
    together = not is_oscillating(ctx, "train_loss", BIG_STEP) and _both_curves_swing(ctx)
    train_swings = is_oscillating(ctx, "train_loss", BIG_STEP) or together
    val_swings = ctx.has("val_loss") and is_oscillating(ctx, "val_loss", VAL_SWING) and _accuracy_swings(ctx)
    early = _early_rise(ctx)
    worse = degradation(ctx)
    if not (train_swings or val_swings or early is not None):
        return [] if worse is None else _degrading(ctx, worse)
    steps = signals.relative_steps(ctx.series("train_loss"), loss_scale_floor(ctx))
    rises = np.flatnonzero(steps >= BIG_STEP) + 1
    vsteps = signals.relative_steps(ctx.series("val_loss"), loss_scale_floor(ctx))
    vrises = np.flatnonzero(vsteps >= VAL_SWING) + 1
    starts = [int(x) for x in (rises[:1].tolist() + vrises[:1].tolist() + ([early] if early is not None else []))]
    first = min(starts) if starts else 0
    ev: dict = {"train_rises": int(len(rises)), "val_rises": int(len(vrises)), "epochs_judged": ctx.n}
    ev |= lr_evidence(ctx)
    ratios = update_ratios(ctx)
    lr_high = ctx.lr_position() == "high" or (ratios is not None and ratios[0] >= HIGH_UPDATE_RATIO)
    shape = "oscillates" if (train_swings or val_swings) else "rises in the first epochs"
    curve = "training loss" if (train_swings or early is not None) else "validation loss"
    if together:
        curve, shape = "training and validation losses", "swing together"
    if lr_high and (train_swings or early is not None):
        why = []
        if ctx.lr_position() == "high":
            why.append(ctx.lr_position_text())
        if ratios is not None and ratios[0] >= HIGH_UPDATE_RATIO:
            why.append(f"weights move {ratios[0]:.1%} per step (healthy is ~0.1 %)")
        return [
            Finding(
                "lr_too_high",
                "warning",
                span(ctx, first),
                ev,
                f"The {curve} {shape} instead of falling steadily and {' and '.join(why)}: the steps overshoot.",
                fixes.keep(fixes.lower_lr(ctx, 0.3), fixes.decay_schedule(ctx), fixes.clip()),
            )
        ]
    val_jumpy = _felt_jumps(ctx, vrises) >= max(3, UNSTABLE_SHARE * ctx.n)
    # Without validation accuracy the validation loss is what must feel the swings; only a log without any
    # validation leaves the training curve to speak for itself.
    acc_swings = _accuracy_swings(ctx) if ctx.has("val_acc", MIN_EPOCHS) else not ctx.has("val_loss", MIN_EPOCHS)
    if not (val_swings or acc_swings or val_jumpy):
        # Training-loss wiggles that validation does not feel (a deep SGD net near convergence) are noise.
        return [] if worse is None else _degrading(ctx, worse)
    calm = settled(ctx)
    note = ""
    calmed = _calmed_by_lr_drop(ctx, vrises, calm) if calm else None
    if calmed is not None:
        return [calmed]  # the swings are explained by the LR the schedule had to cut
    if calm:
        ev["calm_last_epochs"] = calm
        note = (f" The swings stopped: the last {calm} epochs are calm on both curves and validation ended at its best, "
                "so the final model is unharmed; reported so that the earlier jumps are explained.")
    return [
        Finding(
            "unstable_training",
            "info" if calm else "warning",
            span(ctx, first),
            ev,
            f"The {curve} {shape} ({len(rises)} training and {len(vrises)} validation jumps over {ctx.n} epochs) "
            "rather than falling steadily; noisy steps come from too high an LR for this batch size, "
            "unnormalised inputs, or a few extreme samples." + note,
            fixes.keep(*fixes.before_lr(ctx), fixes.lower_lr(ctx, 0.5), fixes.clip(), fixes.decay_schedule(ctx)),
        )
    ]


FELT_DROP = 0.01  # a validation-loss jump counts as felt when accuracy fell at least this much with it


def _felt_jumps(ctx: Context, vrises: np.ndarray) -> int:
    """Validation-loss jumps (epoch indices) that validation accuracy, when logged, felt: down >= 1 point in
    the same epoch. A near-perfect classifier's loss at 0.004-0.05 jumps by half from one epoch to the next
    while its accuracy moves 0.7 points: that is calibration on a few samples, not a step thrown off."""
    if not ctx.has("val_acc", MIN_EPOCHS):
        return len(vrises)
    acc = ctx.series("val_acc")
    return int(sum(1 for i in vrises if 0 < i < len(acc) and acc[i - 1] - acc[i] >= FELT_DROP))


# The swings must have covered at least this share of the run, and the LR must have fallen at least this
# much between the last swing and the end, for the calm to be the LR's doing.
CALMED_SHARE = 0.5
CALMED_LR_DROP = 0.5


def _calmed_by_lr_drop(ctx: Context, vrises: np.ndarray, calm: int) -> Finding | None:
    """Validation swung through most of the run and went calm only once the LR had been cut (a plateau or step
    schedule halving it, each LR held for epochs): the LR the run started at was too high, and the LR that calmed it is the one to
    start from. The final model may be fine; the epochs before the cut were lost to the swings."""
    calm_from = ctx.n - calm
    swings = vrises[vrises < calm_from]  # the calm window may hold a transient dip (settled allows it)
    if not ctx.has("lr", ctx.n) or not len(swings):
        return None
    lr = ctx.series("lr")
    last = int(swings[-1])
    if last + 1 - int(swings[0]) < CALMED_SHARE * ctx.n:
        return None
    # Cuts, not a planned decay: a step or plateau schedule holds each LR for epochs. Swings at the peak of a
    # warm-up/cosine schedule that fade as it anneals are that schedule working as designed.
    changes = int((np.abs(np.diff(lr)) > 0.01 * np.abs(lr[:-1])).sum())
    if changes > max(1, ctx.n // 4):
        return None
    lr_swing, lr_calm = float(np.nanmax(lr[: last + 1])), float(np.nanmax(lr[calm_from:]))
    if not (lr_swing > 0 and lr_calm <= CALMED_LR_DROP * lr_swing) or float(lr[0]) < lr_swing:
        return None
    ev = lr_evidence(ctx) | {"val_rises": int(len(swings)), "last_swing_epoch": ctx.epoch_at(last),
                             "lr_while_swinging": sig(lr_swing), "lr_when_calm": sig(lr_calm), "calm_last_epochs": calm}
    return Finding(
        "lr_too_high", "warning", span(ctx, int(vrises[0]), last), ev,
        f"Validation swung ({len(swings)} jumps of the loss up to epoch {ctx.epoch_at(last)}) while the LR was "
        f"{lr_swing:.3g} and went calm only after the schedule cut it to {lr_calm:.3g}: the starting LR was too high "
        f"for this run, and {lr_swing / lr_calm:.3g}x lower is where it trains steadily. The epochs before the cut "
        "were spent on the swings.",
        fixes.keep(fixes.lower_lr(ctx, lr_calm / lr_swing), fixes.decay_schedule(ctx)),
    )


SETTLED_MIN_EPOCHS = 12
SWING_MIN_EPOCHS = 20  # a second half of >= 10 epochs: fewer moves say nothing about their median
SWING_JUMP = 0.02  # median epoch-to-epoch move of validation accuracy over the second half, points / 100
SWING_OVER_TRAIN = 3.0  # ... this many times training accuracy's own median move
SWING_DROP, SWING_DROP_SHARE = 0.05, 0.10  # drops of >= 5 points in >= 10 % of epochs


def _validation_accuracy_swings(ctx: Context) -> list[Finding]:
    """Validation accuracy that jumps from epoch to epoch while training moves smoothly: over the second half
    of the run its median move is >= 2 points and >= 3x training accuracy's, with drops of >= 5 points in
    >= 10 % of the epochs (a CIFAR-10 run whose test accuracy goes 84.6 -> 80.4, 85.3 -> 78.6 to its last
    epoch while the training loss falls smoothly). Late in a run the weights change little from one epoch
    to the next, so evaluation on the same samples should too; when it does not, the model's outputs are
    unstable -- too high an LR for the batch size, batch-norm statistics that swing, or too few validation
    samples to judge a checkpoint by. Caught by neither loss rule when no validation loss is logged or its
    swings stay under 25 %."""
    if ctx.n < SWING_MIN_EPOCHS or not ctx.has("val_acc", SWING_MIN_EPOCHS):
        return []
    acc = signals.finite(ctx.series("val_acc"))
    half = acc[len(acc) // 2 :]
    jump = float(np.median(np.abs(np.diff(half)))) if len(half) > 2 else 0.0
    train_jump = 0.0
    if ctx.has("train_acc", SWING_MIN_EPOCHS):
        train = signals.finite(ctx.series("train_acc"))
        train_jump = float(np.median(np.abs(np.diff(train[len(train) // 2 :]))))
    drops = -np.diff(acc)
    share = float((drops >= SWING_DROP).mean()) if len(drops) else 0.0
    if jump < SWING_JUMP or jump < SWING_OVER_TRAIN * train_jump or share < SWING_DROP_SHARE:
        return []
    worst = int(np.argmax(drops)) + 1
    ev = {"val_acc_median_move": sig(jump), "train_acc_median_move": sig(train_jump), "drops_of_5_points": int((drops >= SWING_DROP).sum()),
          "epochs_judged": ctx.n, "largest_drop": sig(float(drops.max())), "largest_drop_epoch": ctx.epoch_at(worst)}
    smooth = "training accuracy moves" if ctx.has("train_acc", SWING_MIN_EPOCHS) else "training moves smoothly"
    train_part = f"{smooth} {train_jump * 100:.1f} points" if ctx.has("train_acc", SWING_MIN_EPOCHS) else smooth
    return [Finding(
        "unstable_training", "warning", span(ctx, len(acc) // 2), ev,
        f"Validation accuracy swings from epoch to epoch: over the second half it moves a median {jump * 100:.1f} points per "
        f"epoch while {train_part}, and it dropped by >= 5 points in {ev['drops_of_5_points']} of {ctx.n} epochs (the largest, "
        f"{drops.max() * 100:.1f} points at epoch {ctx.epoch_at(worst)}). Late in a run the weights change little per epoch, so "
        "their predictions on the same samples should too: the steps are too large for this batch size, or batch-norm "
        "statistics swing. Pick checkpoints by a smoothed curve, not one epoch.",
        fixes.keep(fixes.lower_lr(ctx, 0.5), fixes.decay_schedule(ctx), fixes.clip()),
    )]


def settled(ctx: Context) -> int:
    """The number of calm final epochs (0: not settled) after swings: the last third of the run (>= 4 epochs)
    has no training-loss rise >= 10 %, and its validation-loss rises >= 25 % (both floored at a tenth of ln K)
    and validation-accuracy drops >= 3 points are at most transient dips, back within 5 epochs, at under
    half the rate of validation jumps earlier in the run (the swings died down; an animal-sound classifier
    with 16 jumps in its first 67 epochs and two dips that recovered in its last 33). And validation ends at its
    best -- loss (last 3) within 10 % of its minimum, accuracy within a point of its maximum. A fine-tune
    that bumped twice mid-run and ended at its best accuracy is not unstable now."""
    if ctx.n < SETTLED_MIN_EPOCHS or not ctx.has("val_loss", SETTLED_MIN_EPOCHS):
        return 0
    window = max(4, ctx.n // 3)
    floor = loss_scale_floor(ctx)
    train_steps = signals.relative_steps(ctx.series("train_loss")[-window - 1 :], floor)
    if (train_steps >= BIG_STEP).any():
        return 0
    val = ctx.series("val_loss")
    late = signals.finite(val[-window - 1 :])
    dips = _recovered_dips(late, signals.relative_steps(late, floor) >= VAL_SWING, lambda a, c: c <= a + VAL_SWING * max(abs(a), floor))
    if ctx.has("val_acc", SETTLED_MIN_EPOCHS) and dips is not None:
        acc = signals.finite(ctx.series("val_acc")[-window - 1 :])
        acc_dips = _recovered_dips(acc, -np.diff(acc) >= 0.03, lambda a, c: c >= a - 0.03)
        dips = None if acc_dips is None else max(dips, acc_dips)
    earlier = signals.relative_steps(signals.finite(val[:-window]), floor) >= VAL_SWING
    if dips is None or (dips and not dips / window < 0.5 * float(earlier.mean() if len(earlier) else 0.0)):
        return 0
    best = float(np.nanmin(val))
    if (signals.tail_median(val) - best) / max(best, floor) > 0.10:
        return 0
    if ctx.has("val_acc", SETTLED_MIN_EPOCHS):
        acc = ctx.series("val_acc")
        if signals.tail_median(acc) < float(np.nanmax(acc)) - 0.01:
            return 0
    return window


def _recovered_dips(y: np.ndarray, worse: np.ndarray, back) -> int | None:
    """How many dips the steps ``worse`` marks, when each is transient: back (``back(before, later)``) within
    RECOVER_WITHIN epochs, as transient_dip reads one; None when any is not."""
    dips, until = 0, -1
    for j in np.flatnonzero(worse):
        if j <= until:
            continue  # a step inside a dip already counted
        later = [k for k in range(j + 2, min(len(y), j + 2 + RECOVER_WITHIN)) if back(y[j], y[k])]
        if not later:
            return None
        dips, until = dips + 1, later[0] - 1
    return dips
