"""Train/validation relations: overfitting, transient_dip, val_above_train.

* overfitting (warning): validation loss stops improving at an *onset* epoch (the minimum of its 3-epoch
  running median, so one lucky epoch cannot set it) and ends >= 10 % above that best, with most later
  epochs (>= 60 %) above it, while the training loss keeps falling (>= 10 % further, down in >= 60 % of
  the epochs since: a training loss that swings is the LR's problem) and the gap widens;
  and the validation loss had learned something (best <= 0.9 ln K), else it is stuck_at_chance. Without
  a validation loss, the same on accuracy: >= 2 points below the best while training accuracy rises.
  With early stopping restoring the best weights the final model is unharmed: severity info. So is a turn
  while validation accuracy keeps climbing (>= 1 point since the loss's best, at its best at the end):
  calibration drift, and the last weights are the best yet. A milder
  form, validation loss *and* accuracy flat for >= max(5, 25 % of the run) epochs while the training
  loss halves, is info (a warning with training accuracy >= 15 points above validation at the end). And a memorised training set, with no upturn needed: training accuracy >= 0.99
  and validation >= 10 points below it (a tiny training set with a big model; fixes lead with
  regularisation, since early stopping cannot close that gap). Reference: SageMaker's Overfit rule
  fires at (val - train) / train > 0.1 on a single step and UMLAUT on "val loss up while train loss
  not up"; both fire on noise a trend ignores.
* transient_dip (info): the validation loss jumps by >= 15 % (or accuracy drops >= 3 points) and is
  back within 5 epochs. One bad epoch is not a trend; reported so that it is explained, not alarming.
* val_above_train (info; warning when large and unexplained): validation accuracy above training
  accuracy over the second half of the run, beyond what the epoch-averaging lag of the training metric
  explains. Dropout, drop path, augmentation/MixUp and loss penalties make the training pass harder than
  evaluation; with none configured, a gap >= 5 points (UMLAUT's threshold) and training accuracy no
  longer rising (a learning model's epoch mean trails by more than its slope), suspect leakage or an
  easier validation split.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from trainwise.doctor import fixes, signals
from trainwise.doctor.codes import EVENT, Code
from trainwise.doctor.context import Context
from trainwise.doctor.finding import Finding
from trainwise.doctor.rules.common import (ACC_DROP, MIN_EPOCHS, RECOVER_WITHIN, UNSTABLE_SHARE, at_chance, chance_tolerance, loss_scale_floor, sig, span, unfinished,
                                           val_acc_drops, with_medians_note)

CODES = (
    Code("overfitting", "warning (error when validation never left chance; info under early stopping with restore_best, or when mild)",
         "validation stops improving while training keeps improving; a large and growing train/validation gap; "
         "a memorised training set far above validation", priority=80, scope=EVENT, subsumes=frozenset({"transient_dip"})),
    Code("val_above_train", "info (warning when large and unexplained)", "validation better than training", priority=160),
    Code("transient_dip", "info", "one or two bad epochs that recovered", priority=170),
)

MIN_EPOCHS_OVERFIT = 6
MIN_AFTER_ONSET = 3
RISE = 0.10
SUSTAINED = 0.60
ACC_DROP = 0.02
DIP_RISE = 0.15
DIP_ACC = ACC_DROP
ABOVE_GAP = 0.01
ABOVE_GAP_UNEXPLAINED = 0.05
MEMORISED_ACC = 0.99  # training accuracy of a memorised training set
MEMORISED_GAP = 0.10  # train - validation accuracy, points / 100
GAP_LARGE = 0.15  # a train/validation accuracy gap this large ...
GAP_GROWTH = 0.05  # ... that widened this much since the first third of the run
MIN_EPOCHS_NOISE = 4
TRAIN_SPIKE = 0.5  # the training loss collapsing: up by half in one epoch (a quarter flagged MixUp's noise)
VAL_ONLY_DROP = 0.05  # without training metrics, a larger fall before it counts
SHORT_RISE, SHORT_DROP = 0.25, 0.30  # runs of 3-5 epochs: validation loss up a quarter, training down 30 %
PAST_BEST_RISE = 0.15  # median validation loss after its best epoch, over that best
PAST_BEST_TRAIN_DROP = 0.30  # the training loss still fitting: down 30 % since the best validation epoch
ACC_STILL_GAINING = 0.01  # validation accuracy up >= 1 point since the loss's best, and at its best at the end
MILD_RISE = 0.03  # a milder turn: validation loss up >= 3 % (and more than its own epoch-to-epoch step)


def rule(ctx: Context) -> list[Finding]:
    return _overfitting(ctx) + _transient_dips(ctx) + _val_above_train(ctx)


# ----------------------------------------------------------------------------- overfitting
def _onset(raw: np.ndarray, mode: str) -> int:
    """The best epoch of the 3-epoch running median, refined to the best raw epoch next to it.

    The running median keeps one lucky epoch from setting the onset; among tied smoothed values (a
    flat top) and their neighbours the raw best is the epoch a person would point at.
    """
    smooth = signals.rolling_median(raw)
    i = signals.argbest(smooth, mode)
    if i < 0:
        return i
    tied = np.flatnonzero(np.isclose(smooth, smooth[i], rtol=0, atol=1e-12))
    lo, hi = max(0, tied.min() - 1), min(len(raw), tied.max() + 2)
    return lo + signals.argbest(raw[lo:hi], mode)


def _overfitting(ctx: Context) -> list[Finding]:
    noise = _memorised_noise(ctx)
    if noise:
        return noise
    if ctx.n < MIN_EPOCHS_OVERFIT:
        # Too short for the trend rules; a memorised training set far above validation needs no trend.
        return _short_run(ctx) or (_memorised(ctx) if ctx.n >= MIN_EPOCHS and not unfinished(ctx) else [])
    found: list[Finding] = []
    if ctx.has("val_loss", MIN_EPOCHS_OVERFIT) and ctx.has("train_loss", MIN_EPOCHS_OVERFIT):
        found = _overfitting_loss(ctx)
    elif ctx.has("val_acc", MIN_EPOCHS_OVERFIT) and ctx.has("train_acc", MIN_EPOCHS_OVERFIT):
        found = _overfitting_acc(ctx)
    elif ctx.has("val_acc", MIN_EPOCHS_OVERFIT):
        found = _overfitting_val_only(ctx)
    if not _warns(found):
        # The loss curves can stay level while validation accuracy falls from its peak (a YOLO classifier's
        # validation loss moves a few per cent while its accuracy loses 14 points): the accuracy decides then.
        found = _accuracy_fell_while_fitting(ctx) or found
    if _warns(found):
        return found
    # A memorised training set, or a large gap that keeps growing, says more than a stalled validation curve.
    return _memorised(ctx) or _growing_gap(ctx) or found


def _warns(found: list[Finding]) -> bool:
    return any(f.severity == "warning" for f in found)


def _short_run(ctx: Context) -> list[Finding]:
    """A finished run of 3-5 epochs -- a fine-tune, typically -- whose validation loss ended >= 25 % above
    its best while the training loss fell >= 30 % more and validation accuracy (when logged) gained no
    more than a point: too short for a trend, too large a turn to be noise (a BERT fine-tune: validation
    loss 0.318, 0.320, 0.443 while training accuracy rose 0.82 -> 0.96). Live diagnosis waits."""
    if ctx.n < 3 or unfinished(ctx) or not (ctx.has("val_loss", 3) and ctx.has("train_loss", 3)):
        return []
    val, train = ctx.series("val_loss"), ctx.series("train_loss")
    best = signals.argbest(val, "min")
    if best < 0 or best > ctx.n - 2 or not (math.isfinite(val[-1]) and math.isfinite(train[-1]) and math.isfinite(train[best])):
        return []
    rise, drop = val[-1] / val[best] - 1, 1 - train[-1] / train[best] if train[best] > 0 else 0.0
    gain = 0.0
    if ctx.has("val_acc", 3):
        acc = ctx.series("val_acc")
        gain = float(acc[-1] - acc[best]) if math.isfinite(acc[-1]) and math.isfinite(acc[best]) else 0.0
    if rise < SHORT_RISE or drop < SHORT_DROP or gain > 0.01:
        return []
    ev = {"onset_epoch": ctx.epoch_at(best), "best_val_loss": sig(float(val[best])), "end_val_loss": sig(float(val[-1])),
          "val_loss_rise": sig(float(rise)), "train_loss_drop": sig(float(drop))}
    return _overfit(
        ctx, best, ev,
        f"Validation loss was best at epoch {ctx.epoch_at(best)} ({val[best]:.3g}) and ended {rise:.0%} higher ({val[-1]:.3g}) "
        f"while the training loss fell another {drop:.0%}: in a run this short (a fine-tune, typically) that is the model "
        "fitting its training set past the point where validation gains; stop at the best epoch or lower the LR.",
    )


def _memorised_noise(ctx: Context) -> list[Finding]:
    """Validation never left chance while the training set is fitted far above it: labels that do not
    follow from the inputs (shuffled, misaligned), learnt by heart. An error: the model is useless."""
    stuck = at_chance(ctx)
    if stuck is None or not stuck.train_fits or stuck.acc_key is None and not ctx.has("val_loss", MIN_EPOCHS_NOISE):
        return []
    ev: dict = {"val_loss": sig(stuck.level), "chance_loss": sig(ctx.chance_loss), "val_loss_over_chance": sig(stuck.ratio)}
    never_left = True
    if stuck.acc_key is not None:
        best = float(np.nanmax(signals.rolling_median(ctx.series(stuck.acc_key))))
        never_left = best <= stuck.chance_acc + chance_tolerance(stuck.chance_acc)
        ev |= {"val_acc": sig(stuck.acc), "best_val_acc": sig(best), "chance_accuracy": sig(stuck.chance_acc),
               "chance_accuracy_from": stuck.chance_source}
    if not never_left:
        return []
    val_loss = signals.finite(ctx.series("val_loss"))
    fit = []
    if ctx.has("train_acc", 1):
        ev["train_acc"] = sig(signals.tail_median(ctx.series("train_acc")))
        fit.append(f"training accuracy {ev['train_acc']:.3f}")
    if ctx.has("train_loss", 1):
        ev["train_loss"] = sig(signals.tail_median(ctx.series("train_loss")))
        fit.append(f"training loss {ev['train_loss']:.3g}")
    rising = ""
    if len(val_loss) >= 2:
        ev |= {"first_val_loss": sig(float(val_loss[0]))}
        rising = f", validation loss {val_loss[0]:.3g} -> {stuck.level:.3g} against ln {ctx.num_classes} = {ctx.chance_loss:.3g}"
    acc = f" (accuracy {stuck.acc:.3f}, chance {stuck.chance_acc:.3f}{rising})" if stuck.acc_key else f" ({rising.lstrip(', ')})"
    # A training set the config cut to a few samples per class looks the same from the curves: its one fix to try.
    more = fixes.more_data(ctx)
    withheld = (f" Unless the training set is too small to generalise from: the config keeps only data.train_subset="
                f"{ctx.cfg('data.train_subset')} samples; {more} tests that.") if more else ""
    return [Finding(
        "overfitting", "error", span(ctx, 0), ev,
        f"Validation never left chance{acc} while the model fits its training set ({', '.join(fit)}): it memorises "
        "training labels that do not follow from the inputs. Usual causes: labels shuffled or misaligned with their "
        "inputs (a broken join or sort), or a validation set labelled differently from the training set. No training "
        "setting fixes this; check how labels reach the model." + withheld,
        fixes.keep(more), ["check that each training label belongs to its input (shuffled or misaligned labels)",
                           "check that validation labels use the same class ids as training"],
    )]


def _growing_gap(ctx: Context) -> list[Finding]:
    """Train/validation accuracy gap >= 15 points at the end (or >= 10 points and above the training error:
    the gap is most of validation's error), >= 5 points wider than over the first third of
    the run and still widening: variance that grows, whether or not validation loss has turned yet. (10
    points flagged a 600-image Fashion-MNIST CNN at 0.78 / 0.67 after 10 epochs, which is still learning.)"""
    if not (ctx.has("train_acc", MIN_EPOCHS_OVERFIT) and ctx.has("val_acc", MIN_EPOCHS_OVERFIT)):
        return []
    gap = ctx.series("train_acc") - ctx.series("val_acc")
    third = max(2, ctx.n // 3)
    early, late, end = float(np.nanmedian(gap[:third])), float(np.nanmedian(gap[-third - 1 : -third + 1])), signals.tail_median(gap)
    # Large: >= 15 points; or >= 10 points and larger than the training error itself -- more of validation's
    # error is the gap than what training leaves (0.89 / 0.76); a model still short of its fit (0.78 / 0.67) is not.
    train_error = 1 - signals.tail_median(ctx.series("train_acc"))
    large = end >= GAP_LARGE or (end >= MEMORISED_GAP and end > train_error)
    # Still widening: the end above the epochs before it, as a median or in the last epoch (a median of
    # 0.61, 0.61, 0.72 ties the 0.61 before it while the gap is still opening).
    growing = large and end - early >= GAP_GROWTH and (end > late or float(gap[-1]) > late)
    # Or standing: >= 15 points and more than the training error, whether or not it still grows -- most of
    # validation's error is variance (a public level classifier at 0.97 / 0.68 whose gap narrowed from 43 to
    # 30 points as validation crept up; a tumour classifier at 0.92 / 0.76 since epoch 3).
    standing = end >= GAP_LARGE and end > train_error
    if not (growing or standing):
        return []
    envelope = _swinging_validation_gap(ctx, third)
    if envelope is not None and envelope < GAP_LARGE:
        return []  # validation keeps coming back up to training: its low epochs are swings, not a gap
    wide = np.flatnonzero(np.nan_to_num(gap) >= min(GAP_LARGE, early + GAP_GROWTH))
    first = int(wide[0]) if len(wide) else third
    ev = {"gap_early": sig(early), "gap_end": sig(end), "train_acc": sig(signals.tail_median(ctx.series("train_acc"))),
          "val_acc": sig(signals.tail_median(ctx.series("val_acc")))}
    what = (f"Training accuracy pulls away from validation: the gap grew from {early * 100:.1f} to {end * 100:.1f} points" if growing else
            f"Training accuracy stands far above validation: a gap of {end * 100:.1f} points ({early * 100:.1f} over the first "
            f"third), more than the training error of {train_error * 100:.1f}")
    return _overfit(
        ctx, first, ev | {"gap_reading": "growing" if growing else "standing"},
        f"{what} (training {ev['train_acc']:.3f}, validation {ev['val_acc']:.3f}) -- the model fits what validation does not share.",
        memorised=True,
    )


def _swinging_validation_gap(ctx: Context, window: int) -> float | None:
    """For a validation accuracy that swings (drops of >= 3 points in >= 15 % of epochs, at least 3): the gap
    between training accuracy and validation's best epoch over the last ``window`` epochs. A curve that jumps
    between 0.78 and 0.45 every few epochs has a gap of 30 points on its low epochs and none on its high
    ones; the high ones show what the weights can do, the low ones are instability (unstable_training's
    finding). None when validation does not swing."""
    if val_acc_drops(ctx) < max(3, UNSTABLE_SHARE * ctx.n):
        return None
    val = ctx.series("val_acc")
    recent = signals.finite(val[-window:])
    return signals.tail_median(ctx.series("train_acc")) - float(recent.max()) if len(recent) else None


def _memorised(ctx: Context) -> list[Finding]:
    """The training set fitted almost perfectly, validation far behind: variance, even with no upturn yet."""
    if not (ctx.has("train_acc", MIN_EPOCHS) and ctx.has("val_acc", MIN_EPOCHS)):
        return []
    train_acc, val_acc = ctx.series("train_acc"), ctx.series("val_acc")
    train, val = signals.tail_median(train_acc), signals.tail_median(val_acc)
    if train < MEMORISED_ACC or train - val < MEMORISED_GAP:
        return []
    first = int(np.flatnonzero(np.nan_to_num(train_acc) >= MEMORISED_ACC)[0])
    ev = {"train_acc": sig(train), "val_acc": sig(val), "gap": sig(train - val), "memorised_from_epoch": ctx.epoch_at(first),
          "best_val_acc": sig(float(np.nanmax(val_acc)))}
    if ctx.has("val_loss") and ctx.has("train_loss"):
        ev |= {"end_train_loss": sig(signals.tail_median(ctx.series("train_loss"))), "end_val_loss": sig(signals.tail_median(ctx.series("val_loss")))}
    loss = f" (loss {ev['end_train_loss']:.3g} vs {ev['end_val_loss']:.3g})" if "end_val_loss" in ev else ""
    return _overfit(
        ctx, first, ev,
        f"The model fits its training set almost perfectly (accuracy {train:.3f}) while validation stays at {val:.3f}{loss}: "
        f"a {(train - val) * 100:.0f}-point gap is variance -- memorised training samples -- even though validation has not "
        "turned worse. More epochs will not close it; regularisation, augmentation or more data can.",
        memorised=True,
    )


def _severity_and_note(ctx: Context) -> tuple[str, str]:
    if ctx.cfg("early_stopping.enabled") and ctx.cfg("early_stopping.restore_best", True):
        return "info", " Early stopping restores the best weights, so the final model is unaffected; the later epochs were wasted."
    return "warning", ""


def _overfit(ctx: Context, onset: int, ev: dict, text: str, memorised: bool = False) -> list[Finding]:
    """An overfitting finding. ``memorised``: the gap is in the best weights too, so early stopping
    neither excuses it (severity stays warning) nor fixes it (regularisers come first)."""
    severity, note = ("warning", "") if memorised else _severity_and_note(ctx)
    regularise = (fixes.more_weight_decay(ctx), fixes.more_dropout(ctx), fixes.mixup(ctx))
    # More of the data the config holds back: first for a memorised training set (a few samples per class
    # are learnt by heart whatever the regulariser), after early stopping for a gap that opened late.
    fx = (fixes.keep(fixes.more_data(ctx), *regularise, fixes.early_stopping(ctx)) if memorised
          else fixes.keep(fixes.early_stopping(ctx), fixes.more_data(ctx), *regularise))
    return [Finding("overfitting", severity, span(ctx, onset), ev, with_medians_note(text) + note, fx)]


def _after_onset(ctx: Context, metric: str, mode: str):
    """(validation, training, smoothed validation, onset, finite values after it) of ``metric``, or None
    without enough epochs after the onset."""
    val, train = ctx.series(f"val_{metric}"), ctx.series(f"train_{metric}")
    onset = _onset(val, mode)
    post = signals.finite(val[onset + 1 :])
    if onset < 0 or len(post) < MIN_AFTER_ONSET:
        return None
    return val, train, signals.rolling_median(val), onset, post


def _overfitting_loss(ctx: Context) -> list[Finding]:
    if ctx.chance_loss is not None and at_chance(ctx) is not None \
            and float(np.nanmin(ctx.series("val_loss"))) > 0.9 * ctx.chance_loss:
        return []  # validation never learned: stuck_at_chance's (or memorised noise's) business
    found = _after_onset(ctx, "loss", "min")
    if found is None:
        return _past_best_epoch(ctx)
    val, train, smooth_val, onset, post = found
    best = float(smooth_val[onset])
    end_val, end_train = signals.tail_median(val), signals.tail_median(train)
    floor = ctx.train_loss_floor
    # The training level at the onset, from the onset forward: a first epoch that started far off
    # (unnormalised inputs, 40 x ln K) must not make the rest look like progress.
    train_at_onset = float(np.median(signals.finite(train[onset : onset + 3])))
    train_steady = signals.share_decreasing(train[onset:])
    train_drop = 1 - (end_train - floor) / (train_at_onset - floor) if train_at_onset > floor else 0.0
    gap_onset, gap_end = best - train_at_onset, end_val - end_train
    # Relative to the best, but never to less than a tenth of ln K: 0.11 -> 0.126 (+15 %) on a 10-class model
    # whose validation accuracy is still at its best is a confident model's loss wandering, not a turn.
    rise = (end_val - best) / max(best, loss_scale_floor(ctx)) if best > 0 else 0.0
    above = float((post > best * 1.03).mean())
    ev = {
        "onset_epoch": ctx.epoch_at(onset),
        "best_val_loss": sig(best),
        "end_val_loss": sig(end_val),
        "val_loss_rise": sig(rise),
        "train_loss_at_onset": sig(train_at_onset),
        "end_train_loss": sig(end_train),
        "gap_at_onset": sig(gap_onset),
        "gap_at_end": sig(gap_end),
    }
    if ctx.has("val_acc"):
        ev["best_val_acc"] = sig(float(np.nanmax(ctx.series("val_acc"))))
    # Below a 10 % rise the turn must stand out from the curve's own epoch-to-epoch step before its best,
    # validation must sit above training at the end (a validation loss below training is not a gap to close),
    # and validation accuracy, when logged, must have left its best (else a confident model's loss wanders).
    noise = _epoch_noise(ctx, val, onset)
    acc_held = ctx.has("val_acc") and signals.tail_median(ctx.series("val_acc")) >= float(np.nanmax(ctx.series("val_acc"))) - 0.01
    turned = rise >= RISE or (rise >= max(MILD_RISE, noise) and gap_end > 0 and not acc_held)
    if turned and above >= SUSTAINED and train_drop >= 0.10 and train_steady >= 0.6 and gap_end > gap_onset:
        gained = _accuracy_gain_since(ctx, onset)
        if acc_held and gained >= ACC_STILL_GAINING:
            # Validation accuracy kept climbing to its best while the loss rose: the model grows more confident
            # on what it still gets wrong (calibration), and the weights at the end are the best yet.
            return [Finding("overfitting", "info", span(ctx, onset), ev | {"val_acc_gain_since_onset": sig(gained)},
                            f"Validation loss rose {rise:.0%} above its best (epoch {ctx.epoch_at(onset)}, {best:.3g}) while "
                            f"validation accuracy kept improving by {gained * 100:.1f} points to its best at the end: the "
                            "model grows more confident on the examples it gets wrong. Not yet overfitting: early stopping "
                            "on the validation loss would keep worse weights; monitor the accuracy instead, and stop when it turns.",
                            [])]
        return _overfit(
            ctx, onset, ev | {"val_epoch_noise": sig(noise)},
            f"Validation loss stopped improving at epoch {ctx.epoch_at(onset)} ({best:.3g}) and ended {rise:.0%} higher "
            f"while training loss kept falling ({train_at_onset:.3g} -> {end_train:.3g}); the gap grew from "
            f"{gap_onset:.3g} to {gap_end:.3g}.",
        )
    return _past_best_epoch(ctx) or _stalled(ctx, onset, train_drop, gap_onset, gap_end, ev)


def _accuracy_gain_since(ctx: Context, onset: int) -> float:
    """Validation accuracy at the end (3-epoch median) minus the best it reached up to ``onset``; 0 without
    it. Against the best epoch, not a median around the onset: a loss minimum that is also the accuracy
    peak (a blastocyst classifier: 0.812 at epoch 7, 0.817 at the end) has not kept climbing."""
    if not ctx.has("val_acc", MIN_EPOCHS_OVERFIT):
        return 0.0
    acc = ctx.series("val_acc")
    before = signals.finite(acc[: onset + 1])
    return signals.tail_median(acc) - float(np.max(before)) if len(before) else 0.0


def _past_best_epoch(ctx: Context) -> list[Finding]:
    """Overfitting read from the best validation epoch itself, for curves the smoothed onset misses:

    * *sustained*: the validation loss after its best epoch sits, as a median over all later epochs, >= 15 %
      above that best -- and above it by more than the curve's own typical epoch-to-epoch change before
      the best (the whole curve's with fewer than 3 steps before it; so a lucky epoch on a noisy curve
      does not make a trend) -- with >= 60 % of the later epochs
      above it and the last 3 epochs still >= 10 % above (not coming back down); or
    * *climbing*: every one of the last >= 3 epochs since the best rose, ending >= 10 % above it (a
      patience-3 early stop would have ended the run there);

    while the training loss fell >= 30 % further (Theil-Sen slope down since the best). Changes are taken
    relative to max(best, a tenth of ln K): a fine-tune at 0.015 that wanders to 0.02 has not turned.
    """
    val, train = ctx.series("val_loss"), ctx.series("train_loss")
    best = signals.argbest(val, "min")
    post = signals.finite(val[best + 1 :]) if best >= 0 else np.zeros(0)
    # A best first epoch counts too: a fine-tune or a big model on a small set is often best after one epoch.
    if best < 0 or len(post) < MIN_AFTER_ONSET or not np.isfinite(val[best + 1 :]).all():
        return []
    floor = max(float(val[best]), loss_scale_floor(ctx))
    level = float(np.median(post))
    rise = (level - val[best]) / floor
    noise = _epoch_noise(ctx, val, best)
    end_rise = (signals.tail_median(val) - val[best]) / floor
    sustained = rise >= max(PAST_BEST_RISE, noise) and end_rise >= RISE and float((post > val[best] * 1.03).mean()) >= SUSTAINED
    climb = bool(np.all(np.diff(val[best:]) > 0)) and (val[-1] - val[best]) / floor >= RISE
    train_at_best, end_train, drop = _training_fall_since(train, best)
    if not (sustained or climb) or drop < PAST_BEST_TRAIN_DROP:
        return []
    ev = {"best_val_epoch": ctx.epoch_at(best), "best_val_loss": sig(float(val[best])), "val_loss_after_best_median": sig(level),
          "end_val_loss": sig(float(val[-1])), "val_rise_over_best": sig(float(rise)), "val_epoch_noise": sig(noise),
          "train_loss_at_best": sig(train_at_best), "end_train_loss": sig(end_train), "train_loss_drop": sig(float(drop)),
          "reading": "climbing every epoch since the best" if climb and not sustained else "sustained above the best"}
    how = (f"has risen in each of the {ctx.n - 1 - best} epochs since, to {val[-1]:.3g}" if climb and not sustained else
           f"has sat {rise:.0%} above it since (median {level:.3g} over {len(post)} epochs, more than its usual "
           f"epoch-to-epoch change of {noise:.0%})")
    return _overfit(
        ctx, best, ev,
        f"Validation loss was best at epoch {ctx.epoch_at(best)} ({val[best]:.3g}) and {how}, while the training loss fell "
        f"another {drop:.0%} ({train_at_best:.3g} -> {end_train:.3g}): the model fits its training set past the point "
        "where validation gains.",
    )


def _training_fall_since(train: np.ndarray, i: int) -> tuple[float, float, float]:
    """(training loss at epoch ``i`` as a median of it and its neighbours, at the end as a 3-epoch median, the
    share it fell between them); the share is 0 unless the loss still slopes down since ``i`` (Theil-Sen)."""
    at = float(np.median(signals.finite(train[max(0, i - 1) : i + 2])))
    end = signals.tail_median(train)
    falling = at > 0 and signals.theil_sen(train[i:]) < 0
    return at, end, (1 - end / at) if falling else 0.0


def _epoch_noise(ctx: Context, val: np.ndarray, best: int) -> float:
    """The validation curve's typical relative step before its best epoch; with fewer than 3 steps there (a
    fine-tune at its best by epoch 3, one of whose 2 steps is a dip) that is no estimate, and the whole
    curve's median step is used."""
    before = val[: best + 1] if best >= MIN_AFTER_ONSET else val
    return float(np.median(np.abs(signals.relative_steps(before, loss_scale_floor(ctx)))))


def _stalled(ctx: Context, onset: int, train_drop: float, gap_onset: float, gap_end: float, ev: dict) -> list[Finding]:
    """Validation loss and accuracy both flat for a long stretch while training loss halves: info."""
    acc_best = signals.argbest(signals.rolling_median(ctx.series("val_acc")), "max") if ctx.has("val_acc") else onset
    since = ctx.n - 1 - max(onset, acc_best)
    if since < max(5, ctx.n // 4) or train_drop < 0.5 or gap_end <= gap_onset:
        return []
    first = max(onset, acc_best)
    ev = ev | {"epochs_without_val_gain": since}
    text = (f"Validation loss and accuracy have not improved since epoch {ctx.epoch_at(first)} ({since} epochs) while "
            f"training loss fell by another {train_drop:.0%}: the model now mostly memorises the training set.")
    acc_gap = _accuracy_gap(ctx)
    if acc_gap is not None and acc_gap >= GAP_LARGE:
        # Stalled with training accuracy far above validation: the gap is large and still growing (in loss), not mild.
        return _overfit(ctx, first, ev | {"accuracy_gap_end": sig(acc_gap)},
                        f"{text[:-1]}, {acc_gap * 100:.0f} points of accuracy above validation.")
    return [Finding("overfitting", "info", span(ctx, first), ev, text,
                    fixes.keep(fixes.early_stopping(ctx), fixes.more_weight_decay(ctx)))]


def _accuracy_gap(ctx: Context) -> float | None:
    """Training minus validation accuracy over the last 3 epochs (medians); None without both."""
    if not (ctx.has("train_acc", MIN_EPOCHS_OVERFIT) and ctx.has("val_acc", MIN_EPOCHS_OVERFIT)):
        return None
    gap = signals.tail_median(ctx.series("train_acc") - ctx.series("val_acc"))
    return gap if math.isfinite(gap) else None


def _overfitting_acc(ctx: Context) -> list[Finding]:
    found = _after_onset(ctx, "acc", "max")
    if found is None:
        return []
    val, train, smooth, onset, post = found
    best, end_val = float(smooth[onset]), signals.tail_median(val)
    train_gain = signals.tail_median(train) - float(signals.rolling_median(train)[onset])
    drop = best - end_val
    if drop < ACC_DROP or train_gain < ACC_DROP or float((post < best - 0.01).mean()) < SUSTAINED:
        return []
    ev = {"onset_epoch": ctx.epoch_at(onset), "best_val_acc": sig(best), "end_val_acc": sig(end_val), "train_acc_gain": sig(train_gain)}
    return _overfit(
        ctx, onset, ev,
        f"Validation accuracy peaked at epoch {ctx.epoch_at(onset)} ({best:.3f}) and ended {drop * 100:.1f} points lower "
        f"while training accuracy rose another {train_gain * 100:.1f} points.",
    )


def _sustained_accuracy_fall(ctx: Context) -> tuple[int, float, float] | None:
    """(peak index, peak, end) when validation accuracy ended >= 5 points below its peak (3-epoch median at
    the end) and >= 60 % of the later epochs sat a point or more under it; else None."""
    val = ctx.series("val_acc")
    peak = _onset(val, "max")
    post = signals.finite(val[peak + 1 :])
    if peak < 0 or len(post) < MIN_AFTER_ONSET:
        return None
    best, end_val = float(val[peak]), signals.tail_median(val)
    if best - end_val < VAL_ONLY_DROP or float((post < best - 0.01).mean()) < SUSTAINED:
        return None
    return peak, best, end_val


def _overfitting_val_only(ctx: Context) -> list[Finding]:
    """Only validation accuracy is logged: a sustained fall of >= 5 points from its best. Without training
    metrics overfitting cannot be told from instability; the finding says which reading it takes."""
    fall = _sustained_accuracy_fall(ctx)
    if fall is None:
        return []
    onset, best, end_val = fall
    ev = {"onset_epoch": ctx.epoch_at(onset), "best_val_acc": sig(best), "end_val_acc": sig(end_val),
          "assumption": "no training metrics logged: read as overfitting, the usual cause of a sustained fall from an early peak"}
    tune = ""
    if ctx.finetuning:
        tune = (" A fine-tune that peaks this early moves too far from its pretrained weights: a lower peak LR and stopping "
                "at the best epoch keep what the first epoch reached.")
    found = _overfit(
        ctx, onset, ev,
        f"Validation accuracy peaked at epoch {ctx.epoch_at(onset)} ({best:.3f}) and fell to {end_val:.3f} "
        f"({(best - end_val) * 100:.1f} points) and stayed lower. No training metrics are logged, so this reads it as "
        f"overfitting (training keeps fitting while validation declines).{tune}",
    )
    if ctx.finetuning:
        found = [dataclasses.replace(f, fixes=fixes.keep(fixes.lower_lr(ctx, 0.3), *f.fixes)) for f in found]
    return found


def _accuracy_fell_while_fitting(ctx: Context) -> list[Finding]:
    """Validation accuracy fell >= 5 points from its peak (3-epoch median at the end) and stayed lower (>= 60 %
    of later epochs a point under it), while the training loss fell >= 30 % further (Theil-Sen slope down) and
    the validation loss did not improve on its best up to the peak. Read from the training *loss*, for logs
    whose training accuracy is missing; with training accuracy the accuracy rule above already decided."""
    if ctx.has("train_acc", MIN_EPOCHS_OVERFIT) or not (ctx.has("val_acc", MIN_EPOCHS_OVERFIT)
                                                       and ctx.has("train_loss", MIN_EPOCHS_OVERFIT)):
        return []
    fall = _sustained_accuracy_fall(ctx)
    if fall is None:
        return []
    peak, best, end_acc = fall
    train_at_peak, end_train, drop = _training_fall_since(ctx.series("train_loss"), peak)
    if drop < PAST_BEST_TRAIN_DROP:
        return []
    ev = {"peak_val_acc_epoch": ctx.epoch_at(peak), "best_val_acc": sig(best), "end_val_acc": sig(end_acc),
          "train_loss_at_peak": sig(train_at_peak), "end_train_loss": sig(end_train), "train_loss_drop": sig(drop)}
    if ctx.has("val_loss", MIN_EPOCHS_OVERFIT):
        val = ctx.series("val_loss")
        best_loss = float(np.nanmin(val[: peak + 1]))
        end_loss = signals.tail_median(val)
        if end_loss < best_loss:
            return []  # validation loss still improving: calibration moving, not the model fitting noise
        ev |= {"best_val_loss_to_peak": sig(best_loss), "end_val_loss": sig(end_loss)}
    return _overfit(
        ctx, peak, ev,
        f"Validation accuracy peaked at epoch {ctx.epoch_at(peak)} ({best:.3f}) and fell to {end_acc:.3f} "
        f"({(best - end_acc) * 100:.1f} points) and stayed lower, while the training loss fell another {drop:.0%} "
        f"({train_at_peak:.3g} -> {end_train:.3g}): the model fits its training set past the point where validation gains.",
    )


# ----------------------------------------------------------------------------- transient dips
def _transient_dips(ctx: Context) -> list[Finding]:
    dips: dict[int, float] = {}
    if ctx.has("val_loss", 3):
        for i, recovered in signals.spikes(ctx.series("val_loss"), DIP_RISE, loss_scale_floor(ctx), RECOVER_WITHIN):
            if recovered:
                v = ctx.series("val_loss")
                dips[i] = max(dips.get(i, 0.0), float(v[i] / v[i - 1] - 1))
    if ctx.has("val_acc", 3):
        acc = ctx.series("val_acc")
        for i in range(1, ctx.n - 1):
            if math.isfinite(acc[i - 1]) and math.isfinite(acc[i]) and acc[i - 1] - acc[i] >= DIP_ACC:
                after = signals.finite(acc[i + 1 : i + 1 + RECOVER_WITHIN])
                if len(after) and after.max() >= acc[i - 1] - 0.005:
                    dips.setdefault(i, 0.0)
    if not dips:
        return []
    both = [i for i in sorted(dips) if _training_spiked(ctx, i)]
    if both:
        return _spike_in_both(ctx, both)
    if len(dips) > 2:
        return []  # three or more are not transient: unstable_training's business
    idx = sorted(dips)
    epochs = ", ".join(str(ctx.epoch_at(i)) for i in idx)
    ev = {"dips": len(idx), "largest_val_loss_jump": sig(max(dips.values())), "dip_epochs": epochs}
    return [
        Finding(
            "transient_dip",
            "info",
            span(ctx, idx[0], idx[-1]),
            ev,
            f"Validation got worse for a single epoch ({epochs}) and recovered within {RECOVER_WITHIN} epochs: "
            "noise of a small validation set or one unlucky batch order, not a trend.",
            [],
        )
    ]


def _training_spiked(ctx: Context, i: int) -> bool:
    """The training curve broke at epoch index ``i`` too: its loss up >= 50 % (floored at a tenth of ln K)
    or its accuracy down >= 10 points. Validation noise leaves training alone; a bad step does not."""
    loss, acc = ctx.series("train_loss"), ctx.series("train_acc")
    if math.isfinite(loss[i]) and math.isfinite(loss[i - 1]):
        # ... and far beyond the curve's own epoch-to-epoch wandering (MixUp's random blends make it wander).
        usual = 3 * float(np.median(np.abs(signals.relative_steps(loss, loss_scale_floor(ctx))))) if ctx.n > 3 else 0.0
        if (loss[i] - loss[i - 1]) / max(abs(loss[i - 1]), loss_scale_floor(ctx)) >= max(TRAIN_SPIKE, usual):
            return True
    return bool(math.isfinite(acc[i]) and math.isfinite(acc[i - 1]) and acc[i - 1] - acc[i] >= 0.10)


def _spike_in_both(ctx: Context, idx: list[int]) -> list[Finding]:
    epochs = ", ".join(str(ctx.epoch_at(i)) for i in idx)
    ev = {"spikes": len(idx), "spike_epochs": epochs}
    return [Finding(
        "unstable_training", "warning", span(ctx, idx[0], idx[-1]), ev,
        f"Validation got worse at epoch {epochs} and the training loss broke at the same epoch: one step (or a few) "
        "threw the weights off, and the model had to re-learn. That is an instability, not noise of the validation set, "
        "even though it recovered; it returns when the run is longer or the LR higher.",
        fixes.keep(fixes.clip(), fixes.lower_lr(ctx, 0.5), fixes.warmup(ctx)),
    )]


# ----------------------------------------------------------------------------- val above train
def _explainers(ctx: Context) -> list[str]:
    found = ctx.train_handicaps()
    for key, name in (("regularization.l1", "l1"), ("regularization.l2", "l2")):
        if float(ctx.cfg(key, 0.0) or 0.0) > 0:
            found.append(f"{name} penalty")
    if ctx.cfg("model.batch_norm"):
        found.append("batch norm in training mode")
    return found


def _val_above_train(ctx: Context) -> list[Finding]:
    if ctx.n < 4 or not (ctx.has("val_acc", 2) and ctx.has("train_acc", 2)):
        return []
    half = ctx.n // 2
    val, train = ctx.series("val_acc")[half:], ctx.series("train_acc")[half:]
    diff = signals.finite(val - train)
    if len(diff) < 2:
        return []
    gap = float(np.median(diff))
    lag = max(0.0, signals.theil_sen(train))  # the epoch mean trails the end-of-epoch model by ~this much
    if gap - lag <= ABOVE_GAP:
        return []
    explainers = _explainers(ctx)
    ev = {"median_gap": sig(gap), "train_acc_slope": sig(lag), "from_epoch": ctx.epoch_at(half)}
    if explainers:
        ev["explained_by"] = ", ".join(explainers)
        severity = "info"
        msg = (f"Validation accuracy is {gap * 100:.1f} points above training accuracy since epoch {ctx.epoch_at(half)}. "
               f"Expected with {', '.join(explainers)}: the training pass is harder than evaluation, which runs without them.")
    elif ctx.config_known and gap >= ABOVE_GAP_UNEXPLAINED and abs(lag) <= 0.005:
        severity = "warning"
        msg = (f"Validation accuracy is {gap * 100:.1f} points above training accuracy since epoch {ctx.epoch_at(half)} and "
               "no dropout, augmentation or penalty explains it: check for validation samples duplicated in the "
               "training set, or a validation split that is easier than the training data.")
    elif ctx.config_known:
        severity = "info"
        msg = (f"Validation accuracy is {gap * 100:.1f} points above training accuracy since epoch {ctx.epoch_at(half)}; "
               "small, and nothing configured lowers the training numbers alone (no dropout, augmentation, MixUp or "
               "penalty): the validation split is probably a little easier (class mix).")
    else:
        severity = "info"
        msg = (f"Validation accuracy is {gap * 100:.1f} points above training accuracy since epoch {ctx.epoch_at(half)}; "
               "usual with dropout or augmentation, which only the training pass sees.")
    return [Finding("val_above_train", severity, span(ctx, half), ev, msg, [])]
