"""Measures several rule families share: the main loss curve, outcome symptoms, evidence formatting."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trainwise.doctor import signals
from trainwise.doctor.context import Context

MIN_EPOCHS = 4  # below this a curve has no trend worth judging (live diagnosis starts here)
BIG_STEP = 0.10  # an epoch-to-epoch rise of the training loss by 10 % is unusual in a healthy run
RECOVER_WITHIN = 5  # a worse epoch back within this many is a transient dip, not a trend
UNSTABLE_SHARE = 0.15  # rises in >= 15 % of epochs (AUTOTRAINER: accuracy swings in >= 20 %); 3 in 20 epochs


MEDIANS_NOTE = "Curve levels quoted are 3-epoch medians (a one-epoch spike does not move them), not single epochs."


def with_medians_note(message: str) -> str:
    """A message that quotes smoothed levels (signals.tail_median, rolling_median) says so, so that it can be
    matched against the plotted per-epoch values."""
    return f"{message.rstrip()} {MEDIANS_NOTE}"


def sig(x: float, digits: int = 4) -> float:
    """Round to significant digits so evidence reads as numbers a person would quote."""
    if x == 0 or not math.isfinite(x):
        return float(x)
    return float(round(x, digits - 1 - int(math.floor(math.log10(abs(x))))))


def loss_scale_floor(ctx: Context) -> float:
    """Below this a loss change is noise however large in relative terms (0.0005 -> 0.0008 is not +60 %).

    A tenth of ln K: near convergence an SGD run's epoch loss wanders by a few hundredths (0.05 -> 0.10
    in a healthy 8-layer BN net on digits) without anything being wrong. With K unknown, the first training
    loss stands in; a classifier (accuracy logged) has at least two classes, so never less than ln 2 -- a
    fine-tune that starts at 0.3 does not make 0.026 -> 0.033 a turn.
    """
    first = signals.head_median(ctx.series("train_loss"), 1)
    ref = ctx.chance_loss or (first if math.isfinite(first) else 1.0)
    if ctx.chance_loss is None and ctx.task != "regression" and (ctx.has("val_acc") or ctx.has("train_acc")):
        ref = max(ref, math.log(2))
    return 0.10 * ref


@dataclass(frozen=True)
class Progress:
    """How far the training loss has come: the share of its initial excess removed, and how steadily."""

    removed: float  # 0: no progress, 1: reached the floor
    steady: float  # share of epochs whose loss went down
    first: float
    last: float


def train_progress(ctx: Context) -> Progress | None:
    loss = ctx.series("train_loss")
    f = signals.finite(loss)
    if len(f) < MIN_EPOCHS:
        return None
    first, last = float(f[0]), signals.tail_median(f, 2)
    removed = excess_removed(f, ctx.train_loss_floor, ctx.chance_loss)
    return Progress(removed=removed, steady=signals.share_decreasing(f), first=first, last=last)


def excess_removed(loss: np.ndarray, floor: float, chance: float | None) -> float:
    """The share of a loss curve's initial excess over ``floor`` removed by its end (median of the last 2).
    The first epoch's mean already includes learning within that epoch; a fresh classifier starts at ln K,
    so whichever is higher is the starting excess."""
    first = float(loss[0])
    start = max(first, chance or first) - floor
    return float(1.0 - (signals.tail_median(loss, 2) - floor) / start) if start > 0 else 0.0


@dataclass(frozen=True)
class Fit:
    """How far the training set is fitted, on a scale from chance (0) to a perfect fit (1)."""

    level: float
    source: str  # what it was read from, for the evidence
    threshold: float  # below this the model underfits (the same judgement on each scale)
    converged: float  # at or above this it has converged


# Underfitting: a training loss still above 55 % of ln K (above its floor) -- digits at ~1.3, ImageNet at ~3.8 --
# or accuracy less than 60 % of the way from chance to 100 %. (0.6 of the loss and 0.78 of accuracy, the
# old digits-sized 0.8, flagged a 600-image Fashion-MNIST CNN at 0.74 validation accuracy under augmentation.)
FIT_LOSS = 0.45
FIT_ACC = 0.6
FIT_CONVERGED_ACC = 0.89
VAL_ONLY_SOURCE = "validation loss against ln K (no training metrics logged: assumed to bound the training fit)"
ACC_SCALE_K = 100  # up to this K, accuracy above chance is comparable across tasks; beyond it, log-scaled


def fit_levels(ctx: Context) -> list[Fit]:
    """Scale-free fit of the training set, on each scale the History allows (loss and/or accuracy).

    From the training loss when K is known: 1 - (loss - floor) / (ln K - floor), the share of a
    fresh classifier's loss removed (label smoothing and MixUp floors subtracted). Else from accuracy:
    above chance, (acc - 1/K) / (1 - 1/K), for up to 100 classes (unknown K: chance 0); beyond, the
    log scale ln(acc K) / ln K, on which a 1000-class model at 64 % sits at 0.94 -- accuracy alone says
    little about capacity there, where labels are fine-grained and the loss is what moves. Under
    MixUp/CutMix training accuracy is measured on blended batches: validation accuracy is used when
    higher.
    """
    k = ctx.num_classes
    out: list[Fit] = []
    if k and k >= 2 and not ctx.has("train_loss", 1) and not ctx.has("train_acc", 1) and ctx.has("val_loss", 1):
        # Only validation is logged (a foreign log's eval rows): its loss is the fit's upper bound -- a
        # training set is fitted at least as well as held-out data, save for dropout/augmentation.
        loss = signals.tail_median(ctx.series("val_loss"))
        if math.isfinite(loss) and ctx.chance_loss:
            out.append(Fit(1 - loss / ctx.chance_loss, VAL_ONLY_SOURCE, FIT_LOSS, 0.9))
        return out
    if k and k >= 2 and ctx.has("train_loss", 1):
        loss = signals.tail_median(ctx.series("train_loss"))
        floor, chance = ctx.train_loss_floor, ctx.chance_loss or math.log(k)
        if math.isfinite(loss) and chance > floor:
            out.append(Fit(1 - (loss - floor) / (chance - floor), "training loss against ln K", FIT_LOSS, 0.9))
    if not ctx.has("train_acc", 1):
        return out
    acc = signals.tail_median(ctx.series("train_acc"))
    if ctx.mixed_batches and ctx.has("val_acc", 1):
        acc = max(acc, signals.tail_median(ctx.series("val_acc")))
    if k and k > ACC_SCALE_K:
        return out + [Fit(math.log(max(acc, 1e-12) * k) / math.log(k), "log-scaled accuracy", FIT_LOSS, 0.95)]
    return out + [Fit(above_chance(acc, k), "accuracy above chance", FIT_ACC, FIT_CONVERGED_ACC)]


def above_chance(acc: float, k: int | None) -> float:
    """The share of the way from chance (1/K; 0 when K is unknown or beyond ACC_SCALE_K) to a perfect
    accuracy that ``acc`` has come."""
    chance = 1.0 / k if k and k <= ACC_SCALE_K else 0.0
    return (acc - chance) / (1 - chance)


def underfits(ctx: Context) -> bool | None:
    """The training set is far from fitted (None: no scale available): on the accuracy scale when accuracy
    is logged (for K > 100, on either scale) -- it is what the model is for, and the loss of a slow but accurate binary model (SGD without
    momentum on breast_cancer: accuracy 0.9 at a loss of 0.4) says little -- else on the loss scale. (Both
    scales agreeing was required at first, and missed a one-unit bottleneck at 0.47 accuracy, loss 1.2.)"""
    levels = fit_levels(ctx)
    if not levels:
        return None
    if validation_fits(ctx):
        return False
    acc = [f for f in levels if "accuracy" in f.source]
    if (ctx.num_classes or 0) > ACC_SCALE_K:
        # Beyond 100 classes the log-scaled accuracy says little about capacity (fine-grained labels; the loss is
        # what moves): the training loss against ln K is heard too (Tiny-ImageNet at 19 %: 0.69 on the log scale,
        # 0.11 of the way from ln 200 to a fit).
        return any(f.level < f.threshold for f in levels)
    return any(f.level < f.threshold for f in (acc or levels))


def converged(ctx: Context) -> bool | None:
    """Some scale says the training set is fitted (None: no scale available)."""
    levels = fit_levels(ctx)
    if validation_fits(ctx):
        return True
    return any(f.level >= f.converged for f in levels) if levels else None


def validation_fits(ctx: Context) -> bool:
    """Validation accuracy (last 3 epochs) is at a converged level, K known and up to 100 classes: >= 0.89 of
    the way from 1/K to 1. Held-out accuracy is a lower bound on the training fit, so the model fits
    whatever its training loss says -- a loss that carries an extra term (a domain-adversarial head at
    ln 2 beside a classifier at 0.99) is not a model that cannot fit."""
    k = ctx.num_classes
    if not k or k < 2 or k > ACC_SCALE_K or not ctx.has("val_acc", 1):
        return False
    acc = signals.tail_median(ctx.series("val_acc"))
    return math.isfinite(acc) and (acc - 1 / k) / (1 - 1 / k) >= FIT_CONVERGED_ACC


def big_rises(ctx: Context, key: str, rise: float = BIG_STEP) -> tuple[int, int, int]:
    """(epochs rising by >= ``rise``, epochs falling by >= ``rise``, steps judged) for one loss curve."""
    steps = signals.relative_steps(ctx.series(key), loss_scale_floor(ctx))
    return int((steps >= rise).sum()), int((steps <= -rise).sum()), len(steps)


ACC_DROP = 0.03  # a validation accuracy drop of 3 points in one epoch


def val_acc_drops(ctx: Context) -> int:
    """Epochs whose validation accuracy fell >= 3 points from the epoch before (0 without accuracy)."""
    drops = -np.diff(signals.finite(ctx.series("val_acc")))
    return int((drops >= ACC_DROP).sum())


def is_oscillating(ctx: Context, key: str, rise: float) -> bool:
    """Several large rises that come back down: swinging, not a steady climb (overfitting) or descent."""
    ups, downs, n = big_rises(ctx, key, rise)
    return n >= MIN_EPOCHS and ups >= 2 and downs >= 2 and ups >= UNSTABLE_SHARE * n


def unfinished(ctx: Context) -> bool:
    """The config plans more epochs than the History holds: a live diagnosis in the middle of a run."""
    planned = ctx.cfg("train.epochs")
    return bool(planned) and ctx.n > 0 and ctx.epoch_at(ctx.n - 1) < int(planned)


def improving(ctx: Context, key: str, rate: float = 0.03) -> bool:
    """The curve's last 3 epochs fall by >= ``rate`` of its level per epoch."""
    f = signals.finite(ctx.series(key))
    return len(f) >= 3 and signals.theil_sen(f[-3:]) < -rate * abs(float(np.median(f[-3:])))


def near_chance(ctx: Context) -> tuple[bool, float]:
    """Whether the final loss (validation, else training) sits near ln K; returns (flag, loss / ln K)."""
    chance = ctx.chance_loss
    if chance is None or ctx.n < MIN_EPOCHS:
        return False, math.nan  # after one epoch every run is still near ln K
    key = "val_loss" if ctx.has("val_loss", MIN_EPOCHS) else "train_loss"
    series = ctx.series(key)
    level = signals.tail_median(series)
    ratio = level / chance if math.isfinite(level) else math.nan
    # A slow starter that is leaving ln K (falling >= 3 % per epoch lately) is not stuck there.
    leaving = improving(ctx, key)
    return bool(math.isfinite(ratio) and 0.85 <= ratio <= 1.3 and not leaving), ratio


LEARNING_DROP = 0.05  # a loss that fell by 5 % of ln K since its first epochs has left chance, however slowly
LEARNING_ACC = 0.03  # so has an accuracy that rose 3 points


def chance_tolerance(chance: float) -> float:
    """How far above the prior-only accuracy still counts as chance: 10 points, or a fifth of the way to
    100 % when that is more (a few labels that survived a shuffle lift a 10-class model to 16 %)."""
    return max(0.10, 0.2 * (1 - chance))


def learning(ctx: Context, loss_key: str, acc_key: str | None, chance: float | None = None) -> bool:
    """The curve is leaving chance: the loss fell >= 5 % of the chance level from its first two epochs (or
    from the chance level, if they were above it) to its last two, and it still moves: the loss slopes
    down over its second half, or the accuracy rose >= 3 points and still rises. Or it has not fallen
    that far yet but its second half's slope would take it there within as many epochs again, with the
    accuracy rising.

    ``chance`` is the loss a prior-only model reaches (``prior_entropy``; ln K by default). The loss must
    have left it: an accuracy that creeps up while the loss stays at chance is the argmax of near-uniform
    outputs flipping for a few samples (a 47-image validation set moves 2 points per sample), not learning."""
    chance = chance or ctx.chance_loss or 1.0
    loss = signals.finite(ctx.series(loss_key))
    if len(loss) < 3:
        return False
    if acc_key == "val_acc" and ctx.constant_from_start() is not None:
        return False  # the same answers at every epoch: a falling loss is the outputs fitting the class mix
    # From the chance level at most: a loss that blew up in its first epoch and came back has not learnt.
    drop = (min(signals.head_median(loss, 2), chance) - signals.tail_median(loss, 2)) / chance
    slope = signals.theil_sen(loss[len(loss) // 2 :])
    # Or a loss leaving at a pace that clears 5 % within as many epochs again, with accuracy rising: a
    # binary run at epoch 4 (0.688 -> 0.651, accuracy 0.56 -> 0.66) is slow, not stuck.
    pace = -slope * len(loss) / chance
    acc_rises = False
    if acc_key is not None:
        acc = signals.finite(ctx.series(acc_key))
        acc_rises = len(acc) >= 3 and signals.tail_median(acc, 2) - signals.head_median(acc, 2) >= LEARNING_ACC \
            and signals.theil_sen(acc[len(acc) // 2 :]) > 0
    if drop >= LEARNING_DROP:
        return slope < 0 or acc_rises
    return pace >= LEARNING_DROP and (acc_rises or acc_key is None)


def prior_entropy(acc: float, k: int) -> float:
    """The largest loss a model that learnt only the class prior can have while reaching accuracy ``acc``:
    the entropy of the most spread prior whose majority share is ``acc`` (the rest spread evenly over the
    other K - 1 classes). H(acc) for binary; ln K at acc = 1/K.

    A model that learnt anything from its inputs has a loss below the entropy of the prior it beats, and
    an accuracy at least that prior's majority share -- so a loss no lower than this bound says the
    accuracy, however high, comes from the class mix (an imbalanced 3-class set at 0.59 accuracy and a
    loss of 1.02, 0.95 being the bound)."""
    if k < 2:
        return math.nan
    a = min(max(acc, 1.0 / k), 1.0 - 1e-12)
    rest = (1 - a) / (k - 1)
    return float(-a * math.log(a) - (1 - a) * math.log(rest))


@dataclass(frozen=True)
class AtChance:
    """Validation (else training) predicts no better than the class prior."""

    loss_key: str
    level: float  # median of the last 3 epochs
    ratio: float  # level / ln K
    acc_key: str | None
    acc: float
    chance_acc: float
    chance_source: str
    first: int  # index from which the curve stayed at chance
    train_fits: bool  # while training fits far above chance: memorisation of labels, not a dead model


def train_fits(ctx: Context) -> bool:
    """Training fits far above chance: accuracy more than halfway from the prior to 100 %, or the training
    loss below half of the prior-only level (above its floor): ln K, or the entropy of the class mix
    when a confusion matrix gives its majority share (a 95 %-majority binary set: 0.2, not 0.69)."""
    if ctx.has("train_acc", 1):
        chance, _ = ctx.chance_accuracy()
        if signals.tail_median(ctx.series("train_acc")) >= chance + 0.5 * (1 - chance):
            return True
    if ctx.chance_loss is not None and ctx.has("train_loss", 1):
        reference = ctx.chance_loss
        if ctx.majority_share is not None and ctx.num_classes:
            reference = min(reference, prior_entropy(ctx.majority_share, ctx.num_classes))
        return signals.tail_median(ctx.series("train_loss")) - ctx.train_loss_floor <= 0.5 * reference
    return False


def at_chance(ctx: Context) -> AtChance | None:
    """The run ended at chance and is not leaving it.

    At chance, on validation (else training; last 3 epochs), either of:

    * accuracy within ``chance_tolerance`` of the prior (majority share, the binary share the loss
      implies, or 1/K) and the loss >= 0.85 x the largest loss a prior-only model at that accuracy can
      have (``prior_entropy``: ln K at 1/K, the prior's entropy H(p) for a binary class mix p -- a loss
      near the class mix's entropy, not ln K, is what a model that learnt the mix reaches);
    * accuracy above that (the majority share is unknown: 1/K is only a lower bound) but the loss near
      ln K (0.85-1.05 ln K: a prior-only model's loss is at most ln K) and, on training *and* validation, no lower than that bound: the accuracy is
      what the class mix gives.
      Requiring training too keeps an overconfident overfitting model (high validation loss, low
      training loss) out.

    Without accuracy, the loss within [0.85, 1.3] ln K. Not leaving: see ``learning``, measured against
    the prior-only level; a slow starter that is leaving it is not stuck. Loss alone is not enough
    (label smoothing and calibration move it) and accuracy alone is not (imbalanced data).
    """
    chance = ctx.chance_loss
    if chance is None or ctx.n < MIN_EPOCHS or ctx.task == "regression":
        return None  # after one epoch every run is still near ln K
    loss_key = "val_loss" if ctx.has("val_loss", MIN_EPOCHS) else "train_loss"
    series = ctx.series(loss_key)
    level = signals.tail_median(series)
    if not math.isfinite(level):
        return None
    ratio = level / chance
    acc_key = next((k for k in ("val_acc", "train_acc") if ctx.has(k, MIN_EPOCHS) and k.split("_")[0] == loss_key.split("_")[0]), None)
    acc, chance_acc, source = math.nan, math.nan, ""
    reference = chance
    k = ctx.num_classes or 2
    if acc_key is not None:
        acc = signals.tail_median(ctx.series(acc_key))
        chance_acc, source = ctx.chance_accuracy(level)
        # The binary class share implied by the loss itself is circular as a reference: ln 2 then.
        reference = prior_entropy(acc, k) if ctx.majority_share is not None or k > 2 else chance
        if acc > chance_acc + chance_tolerance(chance_acc):
            # A prior-only model's loss is at most ln K (the uniform prior); above it the outputs are miscalibrated.
            if not 0.85 <= ratio <= 1.05 or not _accuracy_from_class_mix(ctx, level, acc, k):
                return None
            source = "the class mix (the loss is no lower than a prior-only model's at this accuracy)"
            chance_acc = acc
        elif level < 0.85 * reference:
            return None
    elif not 0.85 <= ratio <= 1.3:
        return None
    if learning(ctx, loss_key, acc_key, reference):
        return None
    low = 0.85 * min(reference, chance)
    inside = np.isfinite(series) & (series >= low) & (series <= max(1.3, ratio * 1.05) * chance)
    first = ctx.n - 1
    while first > 0 and inside[first - 1]:
        first -= 1
    return AtChance(loss_key, float(level), float(ratio), acc_key, float(acc), float(chance_acc), source, first,
                    loss_key == "val_loss" and train_fits(ctx))


def _accuracy_from_class_mix(ctx: Context, level: float, acc: float, k: int) -> bool:
    """Validation and training losses both at or above ``prior_entropy`` of the accuracy reached (3 %
    slack): no model that learnt from the inputs sits there."""
    if not (ctx.has("val_loss", MIN_EPOCHS) and ctx.has("train_loss", MIN_EPOCHS)):
        return False
    train = signals.tail_median(ctx.series("train_loss"))
    train_acc = signals.tail_median(ctx.series("train_acc")) if ctx.has("train_acc", 1) else acc
    return level >= 0.97 * prior_entropy(acc, k) and train >= 0.97 * prior_entropy(max(train_acc, acc), k)


@dataclass(frozen=True)
class Degradation:
    best: int  # index of the best validation epoch
    val_rise: float  # validation loss at the end over its best, minus 1
    acc_drop: float  # validation accuracy points lost since its best (0 when not logged)


def degradation(ctx: Context) -> Degradation | None:
    """The run is getting worse: validation loss ends >= 20 % above its best and accuracy >= 3 points
    below (when logged), while the training loss did not improve either (< 10 % since). Overfitting
    needs an improving training loss, so this is what is left: unstable optimisation."""
    if ctx.n < 6 or not ctx.has("val_loss", 6) or not ctx.has("train_loss", 6):
        return None
    val, train = ctx.series("val_loss"), ctx.series("train_loss")
    smooth = signals.rolling_median(val)
    best = signals.argbest(smooth, "min")
    if best < 0 or best > ctx.n - 4:
        return None
    # Relative to the best, but never to less than a tenth of the loss scale: 0.0005 -> 0.0008 is not +60 %.
    rise = (signals.tail_median(val) - smooth[best]) / max(smooth[best], loss_scale_floor(ctx)) if smooth[best] > 0 else 0.0
    drop = 0.0
    if ctx.has("val_acc", 6):
        acc = signals.rolling_median(ctx.series("val_acc"))
        drop = float(np.nanmax(acc) - signals.tail_median(ctx.series("val_acc")))
    before = float(np.median(signals.finite(train[best : best + 3])))
    improved = (before - signals.tail_median(train)) / max(abs(before), 1e-12) >= 0.10
    if rise >= 0.2 and (drop >= 0.03 or not ctx.has("val_acc", 6)) and not improved:
        return Degradation(best, float(rise), drop)
    return None


def outcome_symptoms(ctx: Context) -> list[str]:
    """Outcome problems that make gradient/activation statistics worth reporting.

    The REFERENCES lesson: thresholds on gradients or activations alone flag a third of healthy models
    (DeepDiagnosis, mostly dead nodes). A network with many inactive ReLUs that still learns is sparse,
    not broken; so these rules speak only when the loss shows a problem.
    """
    out: list[str] = []
    loss = ctx.series("train_loss")
    if ctx.nonfinite("train_loss").any() or ctx.nonfinite("val_loss").any():
        out.append("the loss became NaN/Inf")
    stuck = at_chance(ctx)
    chance = stuck is not None
    if stuck is not None:
        out.append(f"the loss ended at {stuck.ratio:.2f} x the chance level ln K")
    prog = train_progress(ctx)
    if prog is not None and prog.removed < 0.5 and not chance and unfinished(ctx) and improving(ctx, "train_loss"):
        pass  # mid-run and still falling fast: slow so far, but not yet a symptom
    elif prog is not None and prog.removed < 0 and not chance:
        out.append("the training loss ended above where it started")
    elif prog is not None and prog.removed < 0.5 and not chance:
        out.append(f"the training loss removed only {prog.removed:.0%} of its initial excess")
    if len(signals.finite(loss)) >= MIN_EPOCHS and is_oscillating(ctx, "train_loss", BIG_STEP):
        out.append("the training loss oscillates")
    worse = degradation(ctx)
    if worse is not None:
        out.append(f"validation has got worse since epoch {ctx.epoch_at(worse.best)} while training did not improve")
    return out


def update_ratios(ctx: Context) -> tuple[float, float] | None:
    """(typical, fastest) per-step update ratio: the median over epochs of the median and of the maximum
    over layers. "Too high" reads the typical layer; "too low" needs even the fastest layer to be slow
    (dead layers have a ratio of 0 for reasons other than the LR)."""
    keys = ctx.layer_keys("update_ratio")
    if not keys:
        return None
    table = np.vstack([ctx.series(k) for k in keys])
    rows = np.isfinite(table).any(axis=0)
    if not rows.any():
        return None
    with np.errstate(all="ignore"):
        typical = np.nanmedian(table[:, rows], axis=0)
        fastest = np.nanmax(table[:, rows], axis=0)
    return float(np.median(typical)), float(np.median(fastest))


def lr_evidence(ctx: Context) -> dict[str, float | str]:
    """The LR facts a finding about the LR quotes: its value, the optimizer, the update ratios."""
    ev: dict[str, float | str] = {}
    if ctx.base_lr is not None:
        ev["lr"] = sig(ctx.base_lr)
    if ctx.optimizer:
        ev["optimizer"] = ctx.optimizer
    ratios = update_ratios(ctx)
    if ratios is not None:
        ev["update_ratio_typical"], ev["update_ratio_fastest"] = sig(ratios[0]), sig(ratios[1])
    return ev


def span(ctx: Context, first_index: int, last_index: int | None = None) -> tuple[int, int]:
    last_index = ctx.n - 1 if last_index is None else last_index
    return ctx.epoch_at(max(0, first_index)), ctx.epoch_at(max(first_index, last_index))


UNIT_SHARE = 0.5  # a layer counts as dead / saturated from this share of its units (SageMaker's DeadRelu)


def layers_at_least(ctx: Context, prefix: str, threshold: float = UNIT_SHARE) -> dict[str, float]:
    """Layers whose recent ``prefix/<layer>`` (median of the last 3 epochs) is >= ``threshold``, by name."""
    out = {}
    for key in ctx.layer_keys(prefix):
        level = signals.tail_median(ctx.series(key))
        if level >= threshold:
            out[key.split("/", 1)[1]] = level
    return out


def layer_extreme(ctx: Context, prefix: str, pick: str = "max") -> tuple[str, float] | None:
    """The layer with the largest (or smallest) recent value of ``prefix/<layer>`` (median of last 3)."""
    best: tuple[str, float] | None = None
    for key in ctx.layer_keys(prefix):
        level = signals.tail_median(ctx.series(key))
        if not math.isfinite(level):
            continue
        if best is None or (level > best[1] if pick == "max" else level < best[1]):
            best = (key.split("/", 1)[1], level)
    return best


def grad_layers(ctx: Context) -> tuple[list[str], np.ndarray]:
    """The ``grad_norm/<layer>`` keys of layers that train, and the epochs to judge them on.

    A frozen layer (finetune.freeze, until finetune.unfreeze_epoch) has a zero gradient because nothing
    asks for one -- not a vanishing gradient -- so layers whose norm is exactly 0 wherever logged are left
    out, and with a freeze that ends, only the epochs after it count.
    """
    keys = ctx.layer_keys("grad_norm")
    epochs = np.ones(ctx.n, dtype=bool)
    if ctx.frozen_until is not None and (ctx.epochs > ctx.frozen_until).any():
        epochs = ctx.epochs > ctx.frozen_until
    live = [k for k in keys if (np.nan_to_num(ctx.series(k)[epochs]) != 0).any()]
    return live, epochs


def grad_ratio(ctx: Context) -> float | None:
    """First-layer over last-layer gradient norm (median over epochs), AUTOTRAINER's vanishing measure,
    over the layers that train (``grad_layers``)."""
    keys, epochs = grad_layers(ctx)
    if len(keys) < 2:
        return None
    first, last = ctx.series(keys[0])[epochs], ctx.series(keys[-1])[epochs]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = signals.finite(first / last)
    return float(np.median(ratio)) if len(ratio) else None
