"""stuck_at_chance (error): the model predicts no better than the class prior, and is not learning.

Fires when ``common.at_chance`` holds (docs/doctor.md has the whole rule): the final loss (validation,
else training; median of the last 3 epochs) is >= 0.85 x the largest loss a prior-only model at that
accuracy can have (``prior_entropy``; ln K at 1/K; [0.85, 1.3] ln K when no accuracy is logged), or the
loss is near ln K on training and validation while accuracy sits higher, at what the class mix gives;
*and* accuracy is within
max(10 points, a fifth of the way to 100 %) of what the prior alone gives -- the majority share when a
confusion matrix tells it, for binary the share implied by the loss itself (a constant predictor at
prior p has log loss H(p) and accuracy max(p, 1-p); an assumption the finding states), else 1/K --
*and* the curve is not leaving chance (the loss fell < 5 % of ln K since its first epochs, or no longer
slopes down, and accuracy rose < 3 points): a binary run that is still learning at epoch 4 is slow, not
stuck, and a live doctor must not stop it. When the training set is fitted far above chance while
validation stays there, the finding is overfitting (memorised labels), not this one.

The message ranks the usual causes by the evidence at hand: an LR above the optimizer's range, a layer
narrower than K, dead ReLUs, saturated units, vanishing gradients, an LR below the range, inputs not
normalised.
"""

from __future__ import annotations

from trainwise.doctor import fixes, signals
from trainwise.doctor.codes import Code
from trainwise.doctor.context import SAME_ACCURACY, Context
from trainwise.doctor.finding import Finding
from trainwise.doctor.rules.common import MIN_EPOCHS, at_chance, grad_ratio, layer_extreme, sig, span, with_medians_note

CODES = (
    Code("stuck_at_chance", "error", "loss near the prior-only level (ln K, or the class mix's entropy) and accuracy near the class prior, and not learning", priority=20,
         subsumes=frozenset({"underfitting", "plateau", "transient_dip", "val_above_train", "prediction_collapse:warning",
                             "overfitting:warning", "overfitting:info", "unstable_training"})),
)


def likely_causes(ctx: Context) -> tuple[list[str], list[str]]:
    """Causes in order of the evidence for them, and the fixes that go with them."""
    causes: list[str] = []
    fx: list[str | None] = []
    pos = ctx.lr_position()
    if pos == "high":
        # A step far too large is the one cause that explains the others: it kills ReLUs and, with them, the
        # gradient below them. Lowering it comes first; re-initialising or normalising a network the LR will
        # kill again does not help.
        causes.append(ctx.lr_position_text())
        fx.append(fixes.lower_lr(ctx))
    # A layer narrower than K caps the network whatever else is wrong, and a one-unit ReLU layer that died
    # takes the whole net with it: re-initialising or normalising it leaves the cap, so widening goes first.
    narrow = fixes.pinch(ctx)
    if narrow:
        causes.append(f"{narrow[1]} has {narrow[0]} units, fewer than the {ctx.num_classes} classes it must keep apart")
        fx.append(fixes.wider_model(ctx))
    train, val = ctx.series("train_loss"), ctx.series("val_loss")
    if ctx.has("val_loss", MIN_EPOCHS) and signals.theil_sen(train) < 0 <= signals.theil_sen(val):
        causes.append("training loss falls while validation loss does not: the labels may not follow from the "
                      "inputs (shuffled or misaligned)")
    dead = layer_extreme(ctx, "dead_frac")
    if dead and dead[1] >= 0.5:
        killed = " (a too-high LR kills them)" if pos == "high" else ""
        causes.append(f"{dead[1]:.0%} of the units in {dead[0]} are dead ReLUs (never active){killed}")
        fx += [*fixes.revive(ctx), "model.activation=leaky_relu"]
    sat = layer_extreme(ctx, "saturated_frac")
    if sat and sat[1] >= 0.5:
        causes.append(f"{sat[1]:.0%} of {sat[0]}'s outputs are saturated")
        fx += [*fixes.scale_repairs(ctx), "model.activation=relu"]
    ratio = grad_ratio(ctx)
    if ratio is not None and ratio < 1e-3:
        causes.append(f"the first layer's gradient is {ratio:.1e} of the last layer's (vanishing)")
        fx += [fixes.batch_norm(ctx), "model.activation=relu"]
    if pos == "low":
        causes.append(ctx.lr_position_text())
        fx.append(fixes.higher_lr(ctx))
    if ctx.cfg("data.normalize") is False:
        causes.append("inputs are not normalised (data.normalize=false)")
        fx.append(fixes.normalize(ctx))
    if len(causes) == bool(narrow):  # nothing else found: the usual suspects, after any width fix
        if not causes:
            causes.append("the usual causes are an LR far off (try 10x lower and 10x higher), labels that do not "
                          "match the inputs, or inputs on a wildly different scale")
        fx += [fixes.lower_lr(ctx), fixes.higher_lr(ctx), fixes.normalize(ctx)]
    return causes, fixes.keep(fixes.normalize(ctx), *fx)  # raw inputs first: the cheapest cause to rule out


def _answers_the_majority(ctx: Context) -> bool:
    """On data where one class is >= 90 % of the labels, a confusion matrix in which that class also takes
    >= 90 % of the predictions: the prior-only model is a collapse onto the majority, which
    prediction_collapse reports with the starved classes named -- the more specific finding."""
    p = ctx.predictions
    if p is None or p.confusion is None or p.confusion.sum() <= 0 or (ctx.majority_share or 0) < 0.9:
        return False
    conf = p.confusion
    top = int(conf.sum(0).argmax())
    return top == int(conf.sum(1).argmax()) and float(conf.sum(0)[top] / conf.sum()) >= 0.9


def _answers_a_minority(ctx: Context) -> bool:
    """Validation accuracy frozen at one value below 1/K: a constant answer, and not the majority class's
    (whose share is at least 1/K). A prior-only model answers the majority; this one collapsed onto a
    minority class, which prediction_collapse reports."""
    frozen = ctx.constant_answer
    return frozen is not None and bool(ctx.num_classes) and frozen[0] < 1.0 / ctx.num_classes - SAME_ACCURACY


def rule(ctx: Context) -> list[Finding]:
    stuck = at_chance(ctx)
    if stuck is None or stuck.train_fits or _answers_the_majority(ctx) or _answers_a_minority(ctx):
        return []
    ev: dict = {"loss": sig(stuck.level), "loss_key": stuck.loss_key, "chance_loss": sig(ctx.chance_loss),
                "loss_over_chance": sig(stuck.ratio)}
    acc_text = ""
    if stuck.acc_key is not None:
        ev |= {"accuracy": sig(stuck.acc), "accuracy_key": stuck.acc_key, "chance_accuracy": sig(stuck.chance_acc),
               "chance_accuracy_from": stuck.chance_source}
        acc_text = f", accuracy {stuck.acc:.3f} vs {stuck.chance_acc:.3f} from the prior alone ({stuck.chance_source})"
    causes, fx = likely_causes(ctx)
    return [
        Finding(
            "stuck_at_chance",
            "error",
            span(ctx, stuck.first),
            ev,
            with_medians_note(f"The model predicts no better than chance and is not learning: {stuck.loss_key.replace('_', ' ')} "
                              f"{stuck.level:.3g} is {stuck.ratio:.2f} x ln {ctx.num_classes}{acc_text}. Likely: {'; '.join(causes)}."),
            fx,
        )
    ]
