"""stuck_at_chance (error): the model predicts no better than the class prior.

Fires when the final loss (validation, else training; median of the last 3 epochs) lies within
[0.85, 1.3] x ln K (0.693 for binary) *and* accuracy is within max(10 points, a fifth of the way to 100 %) of what the prior alone gives:
the majority share when a confusion matrix tells it, for binary the share implied by the loss itself
(a constant predictor at prior p has log loss H(p) and accuracy max(p, 1-p)), else 1/K. Loss alone is
not enough (label smoothing and calibration move it) and accuracy alone is not (imbalanced data).

The message ranks the usual causes by the evidence at hand: training loss falling while validation does
not (labels do not match inputs), dead ReLUs, saturated units, vanishing gradients, an LR outside the
optimizer's range, inputs not normalised.
"""

from __future__ import annotations

import numpy as np

from trainwise.doctor import fixes, signals
from trainwise.doctor.context import Context
from trainwise.doctor.finding import Finding
from trainwise.doctor.rules.common import MIN_EPOCHS, grad_ratio, layer_extreme, near_chance, sig, span


def chance_accuracy(ctx: Context, loss_level: float) -> tuple[float, float]:
    """(accuracy a prior-only model gets, tolerance): 10 points, or a fifth of the way to 100 % when
    that is more (a few labels that survived a shuffle lift a 10-class model to 16 %)."""
    if ctx.majority_share is not None:
        chance = ctx.majority_share
    elif ctx.num_classes == 2:
        chance = signals.prior_from_binary_loss(loss_level)
    else:
        chance = 1.0 / (ctx.num_classes or 2)
    return chance, max(0.10, 0.2 * (1 - chance))


def likely_causes(ctx: Context) -> tuple[list[str], list[str]]:
    """Causes in order of the evidence for them, and the fixes that go with them."""
    causes: list[str] = []
    fx: list[str | None] = []
    train, val = ctx.series("train_loss"), ctx.series("val_loss")
    if ctx.has("val_loss", MIN_EPOCHS) and signals.theil_sen(train) < 0 <= signals.theil_sen(val):
        causes.append("training loss falls while validation loss does not: the model memorises labels that do "
                      "not follow from the inputs (labels shuffled or misaligned with inputs)")
    dead = layer_extreme(ctx, "dead_frac")
    if dead and dead[1] >= 0.5:
        causes.append(f"{dead[1]:.0%} of the units in {dead[0]} are dead ReLUs (never active)")
        fx += ["model.activation=leaky_relu", "model.batch_norm=true"]
    sat = layer_extreme(ctx, "saturated_frac")
    if sat and sat[1] >= 0.5:
        causes.append(f"{sat[1]:.0%} of {sat[0]}'s outputs are saturated")
        fx += [fixes.normalize(ctx), "model.activation=relu", "model.batch_norm=true"]
    ratio = grad_ratio(ctx)
    if ratio is not None and ratio < 1e-3:
        causes.append(f"the first layer's gradient is {ratio:.1e} of the last layer's (vanishing)")
        fx += ["model.activation=relu", "model.batch_norm=true"]
    pos = ctx.lr_position()
    if pos == "high":
        causes.append(f"optim.lr={ctx.base_lr:g} is above the usual range for {ctx.optimizer}")
        fx.append(fixes.lower_lr(ctx))
    elif pos == "low":
        causes.append(f"optim.lr={ctx.base_lr:g} is below the usual range for {ctx.optimizer}")
        fx.append(fixes.higher_lr(ctx))
    if ctx.cfg("data.normalize") is False:
        causes.append("inputs are not normalised (data.normalize=false)")
        fx.append(fixes.normalize(ctx))
    if not causes:
        causes.append("the usual causes are an LR far off (try 10x lower and 10x higher), labels that do not "
                      "match the inputs, or inputs on a wildly different scale")
        fx += [fixes.lower_lr(ctx), fixes.higher_lr(ctx), fixes.normalize(ctx) or "data.normalize=true"]
    return causes, fixes.keep(*fx)


def rule(ctx: Context) -> list[Finding]:
    if ctx.n < MIN_EPOCHS or ctx.chance_loss is None:
        return []
    near, ratio = near_chance(ctx)
    if not near:
        return []
    loss_key = "val_loss" if ctx.has("val_loss", MIN_EPOCHS) else "train_loss"
    level = signals.tail_median(ctx.series(loss_key))
    ev: dict = {"loss": sig(level), "loss_key": loss_key, "chance_loss": sig(ctx.chance_loss), "loss_over_chance": sig(ratio)}
    acc_key = "val_acc" if ctx.has("val_acc", MIN_EPOCHS) else "train_acc"
    if ctx.has(acc_key, 1):
        acc = signals.tail_median(ctx.series(acc_key))
        chance_acc, tol = chance_accuracy(ctx, level)
        if acc > chance_acc + tol:
            return []
        ev |= {"accuracy": sig(acc), "accuracy_key": acc_key, "chance_accuracy": sig(chance_acc)}
    # The stretch at chance: from the first epoch after which the loss never left the band.
    series = ctx.series(loss_key)
    inside = np.isfinite(series) & (series >= 0.85 * ctx.chance_loss) & (series <= 1.3 * ctx.chance_loss)
    first = ctx.n - 1
    while first > 0 and inside[first - 1]:
        first -= 1
    causes, fx = likely_causes(ctx)
    acc_text = f", accuracy {ev['accuracy']:.3f} vs {ev['chance_accuracy']:.3f} from the prior alone" if "accuracy" in ev else ""
    return [
        Finding(
            "stuck_at_chance",
            "error",
            span(ctx, first),
            ev,
            f"The model predicts no better than chance: {loss_key.replace('_', ' ')} {level:.3g} is "
            f"{ratio:.2f} x ln {ctx.num_classes}{acc_text}. Likely: {'; '.join(causes)}.",
            fx,
        )
    ]
