"""prediction_collapse: the model answers (almost) one class whatever the input.

Sources, best first:

* a confusion matrix (``predictions``, or ``test_confusion`` in summary.json): error when one class
  takes >= 90 % of the predictions while it is >= 20 points rarer among the true labels; warning when
  some classes with support are (almost) never recovered (recall <= 5 %) while the others average
  >= 80 % recall (a model poor everywhere is underfitting, not collapsing).
* per-class precision/recall lists: error when one class has recall >= 95 % and every other class
  <= 10 %; warning for a class with precision >= 95 % and recall <= 10 % (it is predicted only when
  certain, i.e. almost never -- the model has collapsed onto the other classes).
* the History of a binary run (``val_precision``/``val_recall`` of the positive class, last 3 epochs):
  recall <= 5 % (positive never predicted), or recall >= 99 % with precision equal to accuracy
  (every sample predicted positive: then precision = accuracy = positive share), where accuracy is
  <= 95 % (above it every good model has precision ~ accuracy, and the test cannot tell).
"""

from __future__ import annotations

import numpy as np

from trainwise.doctor import fixes, signals
from trainwise.doctor.codes import Code
from trainwise.doctor.context import Context, Predictions
from trainwise.doctor.finding import Finding
from trainwise.doctor.rules.common import MIN_EPOCHS, sig, span

CODES = (
    Code("prediction_collapse", "error (warning: some classes never recovered)",
         "one class predicted almost always (or an accuracy frozen at one value)", priority=30),
)

DOMINANT = 0.90
STARVED_RECALL = 0.05
# The other classes must be learnt well for a starved one to count as given up: at 0.7 a weak Fashion-MNIST
# CNN that never says "shirt" (the class its neighbours absorb) was called collapsed.
GAVE_UP_OTHERS = 0.8


def _fixes(ctx: Context) -> list[str]:
    return fixes.keep(fixes.normalize(ctx), fixes.lower_lr(ctx, 0.3), "regularization.label_smoothing=0.1")


def rule(ctx: Context) -> list[Finding]:
    p = ctx.predictions
    if p is not None and p.confusion is not None:
        found = _from_confusion(ctx, p)
    elif p is not None and p.recall is not None:
        found = _from_per_class(ctx, p)
    elif ctx.num_classes == 2 or ctx.task == "binary":
        found = _from_history(ctx)
    else:
        found = []
    return found or _frozen_accuracy(ctx)


def _frozen_accuracy(ctx: Context) -> list[Finding]:
    """Validation accuracy identical (to float32 precision) over the last 4+ epochs while the loss moves
    (``Context.constant_answer``): the predictions do not change at all, which a constant predictor does --
    its accuracy is then the share of the class it predicts. Counted only where that share is plausible
    (at most the majority share when known; for K >= 3 at most 2/K; for binary any) and where the loss is
    no lower than a constant predictor can reach (the labels' entropy, at least H(share)), so a converged
    model repeating 0.965 is left alone -- unless the accuracy has had that value since the first epoch
    while the validation loss moved >= 5 % and training accuracy sits at that share too (and it is at most
    the majority share, when known; ``Context.constant_from_start``): then the answers
    never changed whatever the outputs learnt (a segmentation model at the background's pixel share for 35 epochs while its loss fell 0.79 -> 0.057)."""
    frozen = ctx.constant_answer
    if frozen is None:
        return []
    level, first = frozen
    loss = signals.finite(ctx.series("val_loss"))
    run = ctx.n - first
    share = ctx.majority_share
    plausible = level <= share + 0.005 if share is not None else (ctx.num_classes == 2 or (ctx.num_classes and level <= 2 / ctx.num_classes))
    # A constant predictor cannot beat the entropy of the labels, which is at least H(share of its class).
    constant = plausible and float(loss[-1]) >= 0.9 * signals.binary_entropy(level)
    # From the first epoch, whatever the loss: but a constant answer never beats the majority share, when known.
    from_start = ctx.constant_from_start() is not None and (share is None or level <= share + 0.005)
    if not (constant or from_start):
        return []
    ev = {"val_acc": sig(level), "epochs_frozen": run, "source": "validation history"}
    if share is not None:
        ev["majority_share"] = sig(share)
    where = f", the majority share ({share:.3f})" if share is not None and abs(level - share) <= 0.005 else ""
    return [Finding(
        "prediction_collapse", "error", span(ctx, first), ev,
        f"Validation accuracy is exactly {level:.4f} at each of the last {run} epochs while the validation loss moves: the "
        f"predictions never change, as when the model answers the same class for every input; {level:.4f} is then that "
        f"class's share{where}.",
        _fixes(ctx))]


def _last(ctx: Context) -> tuple[int, int]:
    return span(ctx, ctx.n - 1) if ctx.n else (1, 1)


def _from_confusion(ctx: Context, p: Predictions) -> list[Finding]:
    conf = np.asarray(p.confusion, dtype=float)
    total = conf.sum()
    if total <= 0:
        return []
    pred_share, true_share = conf.sum(0) / total, conf.sum(1) / total
    top = int(np.argmax(pred_share))
    ev: dict = {"source": f"{p.source} confusion matrix", "top_class": top, "top_predicted_share": sig(float(pred_share[top])),
                "top_true_share": sig(float(true_share[top]))}
    if pred_share[top] >= DOMINANT and pred_share[top] - true_share[top] >= 0.2:
        return [Finding(
            "prediction_collapse", "error", _last(ctx), ev,
            f"The model predicts class {top} for {pred_share[top]:.0%} of the {p.source} samples although only "
            f"{true_share[top]:.0%} belong to it: it has collapsed onto one class.",
            _fixes(ctx))]
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.diag(conf) / conf.sum(1)
    starved = [int(c) for c in np.flatnonzero((conf.sum(1) > 0) & (recall <= STARVED_RECALL))]
    others = np.delete(recall, starved) if starved else recall
    # Only a model that works for the other classes has "given up" on these; a model that is poor
    # everywhere is underfitting, and its weakest classes say nothing more.
    if starved and len(starved) < len(recall) and np.nanmean(others) >= GAVE_UP_OTHERS:
        ev["starved_classes"] = ", ".join(map(str, starved))
        return [Finding(
            "prediction_collapse", "warning", _last(ctx), ev,
            f"Class{'es' if len(starved) > 1 else ''} {ev['starved_classes']} {'are' if len(starved) > 1 else 'is'} almost never "
            f"recovered on the {p.source} set (recall <= {STARVED_RECALL:.0%}): the model has given up on them.",
            fixes.keep("regularization.label_smoothing=0.1", fixes.lower_lr(ctx, 0.3)))]
    return []


def _from_per_class(ctx: Context, p: Predictions) -> list[Finding]:
    recall = np.asarray(p.recall, dtype=float)
    precision = np.asarray(p.precision, dtype=float) if p.precision is not None else None
    top = int(np.argmax(recall))
    others = np.delete(recall, top)
    ev: dict = {"source": f"{p.source} per-class metrics", "top_class": top, "top_recall": sig(float(recall[top]))}
    if recall[top] >= 0.95 and len(others) and others.max() <= 0.10:
        ev["max_other_recall"] = sig(float(others.max()))
        return [Finding(
            "prediction_collapse", "error", _last(ctx), ev,
            f"Class {top} has recall {recall[top]:.2f} and every other class at most {others.max():.2f}: the model "
            f"answers class {top} for almost everything.",
            _fixes(ctx))]
    if precision is not None:
        shy = [int(c) for c in np.flatnonzero((precision >= 0.95) & (recall <= 0.10))]
        if shy:
            ev["rarely_predicted"] = ", ".join(map(str, shy))
            return [Finding(
                "prediction_collapse", "warning", _last(ctx), ev,
                f"Class{'es' if len(shy) > 1 else ''} {ev['rarely_predicted']}: precision near 1 but recall near 0, i.e. "
                "predicted almost never; the model has collapsed onto the other classes.",
                _fixes(ctx))]
    return []


def _from_history(ctx: Context) -> list[Finding]:
    if not (ctx.has("val_recall", MIN_EPOCHS) and ctx.has("val_precision", MIN_EPOCHS)):
        return []
    recall, precision = signals.tail_median(ctx.series("val_recall")), signals.tail_median(ctx.series("val_precision"))
    acc = signals.tail_median(ctx.series("val_acc")) if ctx.has("val_acc", 1) else np.nan
    ev: dict = {"source": "validation history", "val_recall": sig(recall), "val_precision": sig(precision)}
    if recall <= STARVED_RECALL:
        what = f"never predicts the positive class (recall {recall:.2f})"
    elif recall >= 0.99 and np.isfinite(acc) and _all_positive(precision, acc):
        ev["val_acc"] = sig(float(acc))
        what = f"predicts the positive class for every sample (recall {recall:.2f}, precision = accuracy = {acc:.3f})"
    else:
        return []
    stuck = np.flatnonzero(~_collapsed_each(ctx))
    first = int(stuck[-1]) + 1 if len(stuck) else 0
    return [Finding("prediction_collapse", "error", span(ctx, min(first, ctx.n - 1)), ev,
                    f"The model {what} over the last epochs: it has collapsed onto one class.", _fixes(ctx))]


def _collapsed_each(ctx: Context) -> np.ndarray:
    recall, precision, acc = ctx.series("val_recall"), ctx.series("val_precision"), ctx.series("val_acc")
    with np.errstate(invalid="ignore"):
        return (recall <= STARVED_RECALL) | ((recall >= 0.99) & _all_positive(precision, acc))


SHARE_TOLERANCE = 0.01


def _all_positive(precision, acc):
    """Precision equal to accuracy (within a point): what predicting every sample positive gives (both are
    then the positive share). The test tells that apart from a good model only where the negatives are a
    share several times the tolerance (>= 5 %): at 99.99 % accuracy every model has precision = accuracy."""
    return (np.abs(precision - acc) <= SHARE_TOLERANCE) & (1 - acc >= 5 * SHARE_TOLERANCE)
