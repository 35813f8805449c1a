"""A model that does not fit its training data well: lr_too_low, over_regularized, underfitting, plateau.

The four share one symptom, a training loss far from its floor, and differ in cause; the engine lets
the specific ones (lr_too_low, over_regularized) subsume the generic ones (underfitting, plateau).

* lr_too_low (warning; error when still at chance): the training loss falls *steadily* (>= 75 % of
  epochs down; validation >= 60 %) but slowly (< 30 % of its initial excess removed), or still falls
  at its initial pace after many epochs (the last third's slope >= 60 % of the first third's; a healthy
  run decelerates) -- and the LR is implicated: below the optimizer's usual range, or even the fastest
  layer's update ratio < 1e-4 per step (DeepDiagnosis's lower bound on lr*||dW||/||W|| is 1e-5 with
  a different normalisation; 1e-4 for the ratio is Karpathy's "too low"). Without LR evidence the shape
  alone is not enough (a small model or a run stopped early look the same): that is underfitting, whose
  advice includes a larger LR. UMLAUT flags lr < 1e-7 statically; that misses 1e-5.
  Also a run that ended inside its LR warm-up: the logged LR rising at every one of its >= 3 epochs to the
  last, the run finished, and the loss still within 10 % of ln K.
* over_regularized (warning): a strong regulariser in the config (lr*weight_decay >= 3e-4 per step for
  AdamW/SGD, weight_decay >= 1e-2 for Adam/RMSprop/Adagrad L2, dropout >= 0.5 as UMLAUT, drop path >=
  0.3, label smoothing >= 0.3, MixUp/CutMix alpha >= 1, l1 >= 1e-3, l2 >= 1e-2) *and* the training set is not fitted (training
  accuracy < 0.85, or training loss excess >= 0.3 ln K) while the loss is flat or slow (the validation loss
  under MixUp/CutMix, whose training loss is on blended targets), with training
  accuracy no better than validation (not overfitting) and the LR not below its range (else lr_too_low).
* underfitting (warning): training accuracy < 0.8 with train and validation within 10 points, not at
  chance. AUTOTRAINER's "not converged" uses best accuracy < 0.6; 0.8 with the train~val condition
  separates "cannot fit" from "fits but does not generalise".
* plateau (warning): neither training nor validation loss improved by 2 % over the last max(5, n/4) epochs
  (a training loss up < 10 % is no better than flat)
  while the model is not converged (training accuracy < 0.9, or excess training loss >= 0.1 ln K).
  SageMaker's LossNotDecreasing uses < 0.1 % per 10 steps, which fires on every converged run. A training
  loss that went down in >= 80 % of the window's epochs is a slow descent, not a flat one. It ranks
  before underfitting: a flat stretch at a constant (or unknown) LR is the optimiser stalling, and decaying
  the LR is the cheaper lever than a larger model. Flat *through* LR drops (the logged LR ended <= half its
  peak) on an underfitted model is not reported as a plateau: smaller steps found nothing lower, so the
  model's capacity is the limit and underfitting says so.
"""

from __future__ import annotations

import math

import numpy as np

from trainwise.doctor import fixes, signals
from trainwise.doctor.codes import Code
from trainwise.doctor.context import Context
from trainwise.doctor.finding import Finding
from trainwise.doctor.rules.common import (
    MIN_EPOCHS,
    VAL_ONLY_SOURCE,
    above_chance,
    at_chance,
    converged,
    excess_removed,
    fit_levels,
    lr_evidence,
    near_chance,
    sig,
    span,
    train_progress,
    underfits,
    unfinished,
    update_ratios,
)

CODES = (
    Code("lr_too_low", "warning (error while still at chance)", "steady but very slow descent, with the LR implicated", priority=50,
         subsumes=frozenset({"stuck_at_chance", "underfitting", "plateau", "prediction_collapse:warning"})),
    Code("over_regularized", "warning", "cannot fit the training data and a strong regulariser is configured", priority=60,
         subsumes=frozenset({"underfitting", "plateau", "val_above_train", "prediction_collapse:warning"})),
    Code("plateau", "warning", "both losses flat for a long stretch at a constant LR while far from converged", priority=135),
    Code("underfitting", "warning", "the training loss stays far from its floor (scale-free: a share of ln K), train ~ validation",
         priority=140, subsumes=frozenset({"prediction_collapse:warning"})),
)

LOW_UPDATE_RATIO = 1e-4
STEADY_CREEP = 0.8  # share of epochs down in the plateau window that makes it a slow descent, not a flat stretch


def rule(ctx: Context) -> list[Finding]:
    return (_lr_too_low(ctx) or _inside_warmup(ctx)) + _over_regularized(ctx) + _underfitting(ctx) + _plateau(ctx)


def _slope_thirds(loss: np.ndarray) -> tuple[float, float]:
    f = signals.finite(loss)
    third = max(2, len(f) // 3)
    return signals.theil_sen(f[:third]), signals.theil_sen(f[-third:])


def _converged(ctx: Context) -> bool | None:
    """True/False when accuracy or the chance level can tell; None when nothing can."""
    return converged(ctx)


# ----------------------------------------------------------------------------- lr_too_low
def _lr_too_low(ctx: Context) -> list[Finding]:
    prog = train_progress(ctx)
    if prog is None or _converged(ctx):
        return []
    val_steady = signals.share_decreasing(ctx.series("val_loss")) if ctx.has("val_loss", MIN_EPOCHS) else 1.0
    if (prog.steady < 0.75 or val_steady < 0.6) and not (ctx.lr_position() == "low" and at_chance(ctx) is not None):
        return []
    early, late = _slope_thirds(ctx.series("train_loss"))
    linear = early < 0 and late <= 0.6 * early  # both negative: late still at >= 60 % of the early pace
    ratios = update_ratios(ctx)
    evidence = ctx.lr_position() == "low" or (ratios is not None and ratios[1] < LOW_UPDATE_RATIO)
    slow = prog.removed < 0.3
    # At chance with an LR below the optimizer's range, the steps are too small to move anything: the
    # epoch means wander with the batch order instead of falling steadily, and the LR is still the cause.
    frozen_at_chance = at_chance(ctx) is not None and ctx.lr_position() == "low"
    # A slow, steady descent is the LR's signature but not its proof: a small model, a hard task or a run
    # stopped early look the same. Without an LR record that implicates it, the observation is reported
    # (underfitting, whose advice includes a larger LR), not a cause the History cannot support.
    if not (((slow or linear) and evidence) or frozen_at_chance):
        return []
    chance, _ = near_chance(ctx)
    ev = lr_evidence(ctx) | {"loss_removed": sig(prog.removed), "share_epochs_down": sig(prog.steady),
                             "first_train_loss": sig(prog.first), "end_train_loss": sig(prog.last)}
    why = []
    if ctx.lr_position() == "low":
        why.append(ctx.lr_position_text())
    if ratios is not None and ratios[1] < LOW_UPDATE_RATIO:
        why.append(f"even the fastest layer moves only {ratios[1]:.1e} of its weights per step (healthy ~1e-3)")
    pace = "still falls at its initial pace" if linear else f"removed only {prog.removed:.0%} of its initial excess"
    return [
        Finding(
            "lr_too_low",
            "error" if chance else "warning",
            span(ctx, 0),
            ev,
            f"The training loss falls steadily ({prog.steady:.0%} of epochs down) but slowly: it {pace} "
            f"({prog.first:.3g} -> {prog.last:.3g}). Evidence on the LR: {'; '.join(why)}.",
            fixes.keep(fixes.higher_lr(ctx, 10.0 if (ratios and ratios[1] < 1e-5) or slow else 3.0), fixes.schedule(ctx, "onecycle")),
        )
    ]


# ----------------------------------------------------------------------------- ended inside its warm-up
WARMUP_MIN_EPOCHS = 3


def _inside_warmup(ctx: Context) -> list[Finding]:
    """The run ended inside its LR warm-up: the logged LR rose at every one of its >= 3 epochs to the last
    (a ramp that never reached its peak, let alone a plateau or a decay), the run is finished, and the loss
    (validation, else training) is still within 10 % of ln K -- it barely trained, and never at the LR its
    schedule was built for. Judged from the History's LR series, not from a configured LR. (A public
    fine-tune: 3 evaluations, LR 3.6e-6 -> 7.6e-6 -> 1.16e-5, loss 1.09 -> 1.00 against ln 3 = 1.10.)"""
    lr = ctx.series("lr")
    chance = ctx.chance_loss
    if ctx.n < WARMUP_MIN_EPOCHS or unfinished(ctx) or chance is None or not np.isfinite(lr).all():
        return []
    if not np.all(np.diff(lr) > 0):
        return []
    key = "val_loss" if ctx.has("val_loss", ctx.n) else "train_loss"
    level = signals.tail_median(ctx.series(key), 1)
    if not math.isfinite(level) or level < 0.9 * chance:
        return []
    ev = {"first_lr": sig(float(lr[0])), "last_lr": sig(float(lr[-1])), "loss": sig(level), "loss_key": key,
          "chance_loss": sig(chance), "epochs": ctx.n}
    return [Finding(
        "lr_too_low", "warning", span(ctx, 0), ev,
        f"The run ended inside its LR warm-up: the LR rose at every epoch ({lr[0]:.2g} -> {lr[-1]:.2g}) and never reached "
        f"the peak its schedule ramps to, and the {key.replace('_', ' ')} is still {level:.3g} against ln "
        f"{ctx.num_classes} = {chance:.3g}: the model trained only at a fraction of its LR. Train long enough for the "
        "warm-up to finish (or shorten the warm-up).",
        fixes.keep(fixes.more_epochs(ctx, 10)),
    )]


# ----------------------------------------------------------------------------- over_regularized
def strong_regularizers(ctx: Context) -> list[tuple[str, str]]:
    """(description, fix) for each regulariser set strong enough to limit fitting."""
    out: list[tuple[str, str]] = []
    wd = float(ctx.cfg("optim.weight_decay", 0.0) or 0.0)
    lr = ctx.base_lr or 0.0
    opt = ctx.optimizer
    if wd > 0 and opt in ("adamw", "sgd") and lr * wd >= 3e-4:
        out.append((f"weight decay {wd:g} (lr x wd = {lr * wd:.1e} shrinkage per step)", fixes.less_weight_decay(ctx)))
    elif wd >= 1e-2 and opt in ("adam", "rmsprop", "adagrad"):
        out.append((f"L2 weight decay {wd:g} with {opt}", fixes.less_weight_decay(ctx)))
    if ctx.max_dropout() >= 0.5:
        out.append((f"dropout {ctx.max_dropout():g}", "model.dropout=0.1"))
    drop_path = float(ctx.cfg("model.drop_path", 0.0) or 0.0)
    if drop_path >= 0.3:
        out.append((f"drop path {drop_path:g}", "model.drop_path=0.1"))
    smoothing = float(ctx.cfg("regularization.label_smoothing", 0.0) or 0.0)
    if smoothing >= 0.3:
        out.append((f"label smoothing {smoothing:g}", "regularization.label_smoothing=0.1"))
    for key, name in (("mixup.mixup_alpha", "mixup"), ("mixup.cutmix_alpha", "cutmix")):
        alpha = float(ctx.cfg(key, 0.0) or 0.0)
        if alpha >= 1.0:  # lam ~ Beta(1, 1) and wider: most batches are heavy blends
            out.append((f"{name} alpha {alpha:g}", f"{key}=0.2"))
    for key, name, limit in (("regularization.l1", "l1", 1e-3), ("regularization.l2", "l2", 1e-2)):
        value = float(ctx.cfg(key, 0.0) or 0.0)
        if value >= limit:
            out.append((f"{name} penalty {value:g}", f"{key}={fixes.fmt(fixes.nice(value / 10))}"))
    return out or stacked_regularizers(ctx)


STACK = 3  # moderate regularisers that together limit fitting (seed 002: dropout, drop path, weight decay, smoothing)


def stacked_regularizers(ctx: Context) -> list[tuple[str, str]]:
    """Several moderate regularisers at once, none strong alone: one entry naming them all, with each
    halved (towards the usual value) as the fixes."""
    found: list[tuple[str, str | None]] = []
    dropout = ctx.max_dropout()
    if dropout >= 0.2:
        found.append((f"dropout {dropout:g}", f"model.dropout={fixes.fmt(max(0.1, round(dropout / 2, 2)))}"))
    drop_path = float(ctx.cfg("model.drop_path", 0.0) or 0.0)
    if drop_path >= 0.1:
        found.append((f"drop path {drop_path:g}", f"model.drop_path={fixes.fmt(round(drop_path / 2, 2))}"))
    smoothing = float(ctx.cfg("regularization.label_smoothing", 0.0) or 0.0)
    if smoothing >= 0.1:
        found.append((f"label smoothing {smoothing:g}", f"regularization.label_smoothing={fixes.fmt(round(smoothing / 2, 3))}"))
    wd = float(ctx.cfg("optim.weight_decay", 0.0) or 0.0)
    typical = fixes.TYPICAL_WEIGHT_DECAY.get(ctx.optimizer or "", fixes.DEFAULT_L2_DECAY)
    if wd > typical:
        found.append((f"weight decay {wd:g}", f"optim.weight_decay={fixes.fmt(typical)}"))
    alpha = max(float(ctx.cfg("mixup.mixup_alpha", 0.0) or 0.0), float(ctx.cfg("mixup.cutmix_alpha", 0.0) or 0.0))
    if alpha >= 0.4:
        found.append((f"MixUp/CutMix alpha {alpha:g}", None))
    if len(found) < STACK:
        return []
    names = ", ".join(d for d, _ in found)
    return [(f"{len(found)} regularisers stacked ({names})", f) for _, f in found if f][:1] + \
           [("", f) for _, f in found[1:] if f]


def _fit_limited(ctx: Context) -> tuple[bool, dict]:
    """Is the training set left unfitted? Accuracy when logged, else the excess loss over ln K."""
    ev: dict = {}
    if ctx.has("train_acc", 1):
        acc = signals.tail_median(ctx.series("train_acc"))
        ev["train_acc"] = sig(acc)
        if ctx.has("val_acc", 1):
            val = signals.tail_median(ctx.series("val_acc"))
            ev["val_acc"] = sig(val)
            if acc > val + 0.02:
                return False, ev  # fits training better than validation: not a capacity limit
            if ctx.mixed_batches and val > acc:
                acc = val  # training accuracy on blended batches understates the fit; evaluation does not
        return acc < 0.85, ev
    if ctx.chance_loss is not None:
        excess = signals.tail_median(ctx.series("train_loss")) - ctx.train_loss_floor
        ev["train_loss_excess"] = sig(excess)
        return excess >= 0.3 * ctx.chance_loss, ev
    return False, ev


def _flat_or_slow(ctx: Context) -> bool:
    """The loss has stopped moving (the last quarter's best within 5 % of the best before it) or has removed
    less than half its initial excess. Best against best, not one epoch against another: SGD under weight
    decay 0.1 on digits sits at 0.88-0.99 for 14 epochs, and its last epoch landing 5 % under the one five
    epochs before is noise, not progress.

    Under MixUp/CutMix the training loss is measured against blended targets: its floor is only an
    expectation over the mixing weights drawn, and their draw-to-draw spread hides progress (CutMix 1.0 on
    600 Fashion-MNIST images: training loss 1.51, 1.52, 1.49, 1.52 over the last epochs while validation
    fell 1.07 -> 0.92). There the validation loss -- clean inputs, hard labels, floor 0 -- is read instead
    when logged, as ``_fit_limited`` reads validation accuracy."""
    if ctx.mixed_batches and ctx.has("val_loss", MIN_EPOCHS):
        return _stalled(signals.finite(ctx.series("val_loss")), 0.0, ctx.chance_loss)
    return _stalled(signals.finite(ctx.series("train_loss")), ctx.train_loss_floor, ctx.chance_loss)


def _stalled(loss: np.ndarray, floor: float, chance: float | None) -> bool:
    """``_flat_or_slow`` on one curve: flat over the last quarter, or less than half of the excess over
    ``floor`` removed since the start (ln K when known: the first epoch's mean already includes learning)."""
    window = max(3, len(loss) // 4)
    if len(loss) < MIN_EPOCHS or len(loss) <= window:
        return False
    before = float(loss[:-window].min())
    recent = (before - float(loss[-window:].min())) / max(abs(before), 1e-12)
    return recent < 0.05 or excess_removed(loss, floor, chance) < 0.5


def _over_regularized(ctx: Context) -> list[Finding]:
    strong = strong_regularizers(ctx)
    if not strong or ctx.n < MIN_EPOCHS or ctx.lr_position() is not None:
        return []  # an LR outside its usual range is the likelier cause (lr_too_low / lr_too_high)
    limited, ev = _fit_limited(ctx)
    if not limited or not _flat_or_slow(ctx):
        return []
    ev |= lr_evidence(ctx) | {"regularizers": "; ".join(d for d, _ in strong if d)}
    ratios = update_ratios(ctx)
    lr_note = ""
    if ctx.base_lr is not None and ctx.lr_range() is not None:
        lr_note = f" The LR ({ctx.base_lr:g}) is within {ctx.optimizer}'s usual range"
        lr_note += f" and weights move {ratios[0]:.1e} per step," if ratios else ","
        lr_note += " so the LR is not what holds it back."
    fit = f"training accuracy {ev['train_acc']:.3f}" if "train_acc" in ev else f"training loss {ev.get('train_loss_excess', 0):.3g} above its floor"
    return [
        Finding(
            "over_regularized",
            "warning",
            span(ctx, 0),
            ev,
            f"The model cannot fit even its training data ({fit}, flat or barely falling) and the config applies "
            f"{', '.join(d for d, _ in strong if d)}: regularisation this strong removes the capacity it needs.{lr_note}",
            fixes.keep(*(f for _, f in strong)),
        )
    ]


# ----------------------------------------------------------------------------- underfitting
def _underfitting(ctx: Context) -> list[Finding]:
    if ctx.n < MIN_EPOCHS or at_chance(ctx) is not None:
        return []
    if not underfits(ctx):
        return _stopped_while_learning(ctx)
    keys = {"training loss against ln K": "fit_from_loss", "log-scaled accuracy": "fit_from_log_accuracy",
            VAL_ONLY_SOURCE: "fit_from_val_loss"}
    ev: dict = {keys.get(f.source, "fit_from_accuracy"): sig(f.level) for f in fit_levels(ctx)}
    train = val = math.nan
    if ctx.has("train_acc", 1) and ctx.has("val_acc", 1):
        train, val = signals.tail_median(ctx.series("train_acc")), signals.tail_median(ctx.series("val_acc"))
        if train - val >= 0.1:
            return []  # fits training far better than validation: generalisation, not capacity
        ev |= {"train_acc": sig(train), "val_acc": sig(val)}
    if not ctx.has("train_loss", 1) and not _val_only_still_learning(ctx, ev):
        return []
    loss = signals.finite(ctx.series("train_loss" if ctx.has("train_loss", 1) else "val_loss"))
    quarter = max(2, len(loss) // 4)
    still = len(loss) > quarter and (loss[-quarter - 1] - loss[-1]) / max(loss[0], 1e-12) >= 0.05
    still = still or not ctx.has("train_loss", 1)  # validation alone: read only while still falling
    still = still or _val_acc_climbing(ctx)  # a loss that starts slowly can hide points still gained every epoch
    if still and unfinished(ctx):
        return []  # mid-run and still learning: judge it when it stops
    if still and ctx.train_handicaps() and math.isfinite(train) and val > train:
        # Augmentation / MixUp / dropout hold the training numbers down by design and validation, above
        # them, is still improving: a regularised run on a schedule that is not over yet, not a capacity limit.
        return []
    ev["still_improving"] = int(still)
    if still and fixes.narrower_than_classes(ctx):  # a layer narrower than K: capacity is the question already
        advice = "The loss is still falling, but a layer narrower than the number of classes caps what it can reach: widen it first."
        fx = fixes.keep(fixes.wider_model(ctx), fixes.more_epochs(ctx), fixes.higher_lr(ctx, 3.0))
    elif still:
        strong, held = _strong_regularizer_note(ctx, ev)
        advice = held or "The loss is still falling: it needs more epochs or a larger LR before capacity is the question."
        fx = fixes.keep(*(f for _, f in strong), fixes.more_epochs(ctx), fixes.higher_lr(ctx, 3.0), fixes.wider_model(ctx))
    else:
        advice = "The loss has flattened: the model is too small or too constrained for the task."
        fx = fixes.keep(fixes.wider_model(ctx), fixes.higher_lr(ctx, 3.0), fixes.more_epochs(ctx))
    return [
        Finding(
            "underfitting",
            "warning",
            span(ctx, 0),
            ev,
            f"{_fit_text(ctx, train, val)}: the model does not fit the training data, so the problem is capacity or "
            f"optimisation, not generalisation. {advice}",
            fx,
        )
    ]


STILL_LEARNING_FIT = 0.8  # below this share of the way from chance to a perfect fit, a run still improving has not finished
STILL_LEARNING_MIN_EPOCHS = 8
STILL_LEARNING_GAP = 0.05  # train - validation accuracy: larger is generalisation's business ...
STILL_LEARNING_GAP_FALLING_VAL = 0.10  # ... unless the validation loss is still at its best and falling (see below)


MID_CLIMB_GAIN = 0.01  # validation accuracy still gaining >= 1 point in each of the last two epochs
MID_CLIMB_GAP = 0.10  # train - validation accuracy: beyond this the gap is generalisation's business


def _val_acc_climbing(ctx: Context) -> bool:
    """Validation accuracy logged every epoch, at its best in the last one, and up >= 1 point in each of the
    last two: the run is still gaining where it stopped."""
    if ctx.n < 3 or not ctx.has("val_acc", ctx.n - 1):
        return False
    val = ctx.series("val_acc")
    return bool(np.all(np.isfinite(val)) and signals.argbest(val, "max") == ctx.n - 1 and np.all(np.diff(val)[-2:] >= MID_CLIMB_GAIN))


def _stopped_mid_climb(ctx: Context) -> list[Finding]:
    """A short run (4-7 epochs) stopped mid-climb: validation accuracy at its best in the last epoch, up at
    least 1 point in each of the last two epochs and in at least 3 of every 4 epochs, the training loss down
    in each of the last two, and the level short of a fit -- below 80 % of the way from chance to 1 (on the
    training accuracy when logged, else on validation's; chance 0 when K is unknown). Too few epochs for the
    slope tests of ``_stopped_while_learning``, and nothing to read a capacity from: the run ended while
    each epoch still added points (a pretrained classifier fine-tuned 5 epochs on CIFAR-10 at 0.55 -> 0.63 ->
    0.68 -> 0.72 -> 0.74). A converged short fine-tune still gaining a little sits above the level and is
    left alone, as is a gap of more than 10 points (overfitting's to judge)."""
    if not (MIN_EPOCHS <= ctx.n < STILL_LEARNING_MIN_EPOCHS) or unfinished(ctx) or not _val_acc_climbing(ctx):
        return []
    val = ctx.series("val_acc")
    steps = np.diff(val)
    if np.mean(steps > 0) < 0.75:
        return []
    if ctx.has("train_loss", ctx.n - 1) and np.any(np.diff(ctx.series("train_loss"))[-2:] >= 0):
        return []
    has_train = ctx.has("train_acc", ctx.n - 1)
    train = float(ctx.series("train_acc")[-1]) if has_train else math.nan
    if has_train and train - val[-1] > MID_CLIMB_GAP:
        return []
    if ctx.train_handicaps() and has_train and val[-1] > train:
        return []  # augmentation or dropout holds training down by design
    level = above_chance(train if has_train else float(val[-1]), ctx.num_classes)
    if level >= STILL_LEARNING_FIT:
        return []
    first, last = float(val[0]), float(val[-1])
    ev: dict = {"fit_level": sig(level), "fit_from": "training accuracy" if has_train else "validation accuracy",
                "val_acc_first": sig(first), "val_acc_end": sig(last), "last_step_gains": [sig(g) for g in steps[-2:]],
                "epochs": ctx.n, "still_improving": 1}
    if has_train:
        ev["train_acc"] = sig(train)
    assumed = "" if ctx.num_classes else " (the number of classes is unknown: the level is read with chance at 0)"
    strong, held = _strong_regularizer_note(ctx, ev)
    advice = held or "Train longer: the curve has not begun to flatten, so nothing here tells its capacity yet."
    return [Finding(
        "underfitting", "warning", span(ctx, 0), ev,
        f"The run stopped after {ctx.n} epochs while validation accuracy was still climbing: {first:.3f} -> {last:.3f}, "
        f"up {steps[-2]:+.3f} and {steps[-1]:+.3f} in the last two epochs, {level:.2f} of the way from chance to a "
        f"perfect fit{assumed}. {advice}",
        fixes.keep(*(f for _, f in strong), fixes.more_epochs(ctx), fixes.higher_lr(ctx, 3.0)),
    )]


def _stopped_while_learning(ctx: Context) -> list[Finding]:
    """The run ended while it was still learning, well short of a fit: the monitored curve (validation loss,
    else validation accuracy, else training loss) at its best within the last tenth of the run and still
    improving over the last quarter (Theil-Sen), the training loss still falling in >= 60 % of those epochs, training and
    validation accuracy within 5 points (no generalisation gap; 10 when the curve judged is the validation
    loss, still at its best, so the gap is not growing into overfitting), and training accuracy less than 80 % of
    the way from chance to 1 (0.74 on 10 classes, 0.86 on 2; up to 100 classes). Not a capacity limit -- the
    curve has not flattened -- and not healthy either: the run was stopped before it converged. (A small
    ViT on CIFAR-10 at 74 % / 71 % still rising at epoch 50; a cats-vs-dogs CNN at 0.86 / 0.85 still
    improving at its last epoch.) Runs the config plans to continue are judged when they stop; a run that
    fits better is left to the other rules (a converged model still gaining a little is healthy)."""
    if ctx.n < STILL_LEARNING_MIN_EPOCHS:
        return _stopped_mid_climb(ctx)
    if unfinished(ctx):
        return []
    # On the accuracy scale only: a loss's share of ln K removed is not comparable to it at this level.
    primary = [f for f in fit_levels(ctx) if f.source == "accuracy above chance"]
    if not ctx.has("train_acc", ctx.n // 2) or not primary or primary[0].level >= STILL_LEARNING_FIT:
        return []
    train, val = signals.tail_median(ctx.series("train_acc")), math.nan
    if ctx.has("val_acc", 1):
        val = signals.tail_median(ctx.series("val_acc"))
        # A gap of 5-10 points while the validation loss is still at its best and falling (checked below: the
        # curve judged is then the validation loss) is the ordinary gap of a small training set, not a model
        # that has started to overfit: a 600-image Fashion-MNIST CNN at 0.79 / 0.72 after 10 constant-LR
        # epochs, validation loss at its lowest in the last epoch, reached 0.79 validation when trained on.
        falling_val = ctx.has("val_loss", ctx.n // 2)
        if abs(train - val) >= (STILL_LEARNING_GAP_FALLING_VAL if falling_val else STILL_LEARNING_GAP):
            return []
        if ctx.train_handicaps() and val > train:
            return []  # augmentation or dropout holds training down by design: not read from these numbers
    key = next((k for k in ("val_loss", "val_acc", "train_loss") if ctx.has(k, ctx.n // 2)), None)
    if key is None:
        return []
    mode = "max" if key.endswith("acc") else "min"
    y = ctx.series(key)
    quarter = max(3, ctx.n // 4)
    slope = signals.theil_sen(y[-quarter - 1 :])
    # At its best in the last few epochs (a noisy curve's best need not be the very last), still sloping.
    best = signals.argbest(y, mode)
    if best < ctx.n - max(1, ctx.n // 10) or not (slope > 0 if mode == "max" else slope < 0):
        return []
    if ctx.has("train_loss", ctx.n // 2) and signals.share_decreasing(ctx.series("train_loss")[-quarter - 1 :]) < 0.6:
        return []
    start, end = float(np.nanmedian(y[-quarter - 2 : -quarter + 1])), signals.tail_median(y, 2)
    ev: dict = {"fit_level": sig(primary[0].level), "curve": key, "curve_start_of_last_quarter": sig(start), "curve_end": sig(end),
                "last_quarter_epochs": quarter, "best_epoch": ctx.epoch_at(best), "still_improving": 1}
    ev["train_acc"] = sig(train)
    if math.isfinite(val):
        ev["val_acc"] = sig(val)
    name = key.replace("_", " ")
    agree = "Training and validation agree, so this is not overfitting: the model" if math.isfinite(val) else "The model"
    strong, held = _strong_regularizer_note(ctx, ev)
    advice = held or "Train longer (or with a larger LR) before judging its capacity."
    return [Finding(
        "underfitting", "warning", span(ctx, ctx.n - 1 - quarter), ev,
        f"Training accuracy is only {train:.3f}{f' and validation {val:.3f}' if math.isfinite(val) else ''} "
        f"({primary[0].level:.2f} of the way from chance to a perfect fit), and the run stopped while still improving: the {name} went {start:.3g} -> {end:.3g} over "
        f"the last {quarter} epochs and was at its best at epoch {ctx.epoch_at(best)} of {ctx.epoch_at(ctx.n - 1)}. {agree}"
        f" has not finished fitting. {advice}",
        fixes.keep(*(f for _, f in strong), fixes.more_epochs(ctx), fixes.higher_lr(ctx, 3.0)),
    )]


def _strong_regularizer_note(ctx: Context, ev: dict) -> tuple[list[tuple[str, str]], str]:
    """A run short of a fit whose config applies a strong regulariser (over_regularized's list): the
    regulariser is what slows the fit and caps it, so lightening it comes before a longer run -- the same
    epochs, one re-run -- even while the loss still falls (weight decay 0.1 under SGD at 0.1 shrinks every
    weight 1 % a step; 40 epochs of it on digits ended worse than 20)."""
    strong = strong_regularizers(ctx)
    if not strong:
        return [], ""
    names = ", ".join(d for d, _ in strong if d)
    ev["regularizers"] = names
    return strong, (f"The config applies {names}, strong enough to slow and cap the fit: lighten it first, "
                    "then train longer if the fit is still short.")


def _val_only_still_learning(ctx: Context, ev: dict) -> bool:
    """With validation alone, underfitting is read only while its loss is at its best in the last epochs and
    still sloping down: a run stopped while it was learning, far from a fit. A curve that turned up could
    be overfitting, which validation alone cannot tell from it."""
    val = ctx.series("val_loss")
    best = signals.argbest(val, "min")
    if best < ctx.n - 2 or signals.theil_sen(val[ctx.n // 2 :]) >= 0:
        return False
    ev["assumption"] = "no training metrics logged: the validation loss is taken as an upper bound on the training fit"
    return True


def _fit_text(ctx: Context, train: float, val: float) -> str:
    parts = [f"{f.source} at {f.level:.2f} of the way from chance to a perfect fit" for f in fit_levels(ctx)]
    acc = f"Training accuracy is only {train:.3f} and validation {val:.3f}" if math.isfinite(train) else "The training set is far from fitted"
    return f"{acc} ({'; '.join(parts)})"


# ----------------------------------------------------------------------------- plateau
def _relative_change(y: np.ndarray, window: int) -> float:
    f = signals.finite(y)
    if len(f) <= window:
        return math.nan
    # Medians over a third of the window at each end (at least 3 and 2 epochs): a training loss that wanders
    # +-5 % from epoch to epoch around one level is flat, whichever two epochs happen to end the window.
    k = max(3, window // 3)
    start = float(np.median(f[-window - 2 : -window - 2 + k])) if len(f) > window + 1 else float(f[-window - 1])
    end = signals.tail_median(f, max(2, k - 1))
    return (start - end) / max(abs(start), 1e-12)


def _plateau(ctx: Context) -> list[Finding]:
    window = max(5, ctx.n // 4)
    if ctx.n < window + 3 or not ctx.has("train_loss", window + 1) or _converged(ctx) is not False:
        return []
    train_gain = _relative_change(ctx.series("train_loss"), window)
    val_gain = _relative_change(ctx.series("val_loss"), window) if ctx.has("val_loss", window + 1) else 0.0
    # Neither curve improved by 2 %; a training loss that drifted up a little (< 10 %) is no better than flat.
    if not (-0.10 < train_gain < 0.02 and -0.05 < val_gain < 0.02):
        return []
    if signals.share_decreasing(ctx.series("train_loss")[-window - 1 :]) >= STEADY_CREEP:
        return []  # down nearly every epoch, however slowly: a slow descent (underfitting, lr_too_low), not a flat one
    lr = signals.finite(ctx.series("lr"))
    decayed = len(lr) >= 2 and lr[-1] <= 0.5 * lr.max()
    if decayed and _underfitting(ctx):
        # Flat through LR drops: the optimiser was given smaller steps and still found nothing lower, so
        # the flat stretch is the model's limit -- underfitting's finding, whose first fix is a larger model.
        return []
    ev = {"window_epochs": window, "train_loss_change": sig(-train_gain), "val_loss_change": sig(-val_gain), "lr_decayed": int(decayed)}
    if ctx.has("train_acc", 1):
        ev["train_acc"] = sig(signals.tail_median(ctx.series("train_acc")))
    if decayed:
        advice = "The LR has already decayed, so a larger model is the next lever."
        fx = fixes.keep(fixes.wider_model(ctx), fixes.higher_lr(ctx, 3.0))
    else:
        advice = "With a constant LR the optimiser may be bouncing across a valley it cannot descend: decay the LR."
        fx = fixes.keep(fixes.decay_schedule(ctx) or fixes.schedule(ctx, "plateau"), fixes.lower_lr(ctx, 0.3), fixes.wider_model(ctx))
    return [
        Finding(
            "plateau",
            "warning",
            span(ctx, ctx.n - 1 - window),
            ev,
            f"Training and validation loss changed by less than 2 % over the last {window} epochs although the model "
            f"has not converged. {advice}",
            fx,
        )
    ]
