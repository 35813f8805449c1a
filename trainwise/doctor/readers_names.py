"""Map a foreign log's metric names onto trainwise keys, whatever the framework called them.

A name is cut into words (``val_accuracy``, ``Loss/train``, ``train_loss_epoch``, ``validation/epoch_acc``
all work) and mapped only when it is exactly a split plus a metric: ``{train, val, test}`` x ``{loss,
acc}``. Anything more specific (``val_loss_bbox``, ``train_kl_loss``, ``val_top_k_acc``) keeps its own
name, because calling a component loss "the" loss would mislead every rule. A trailing ``_step`` /
``_epoch`` (Lightning) or a leading ``epoch_`` / ``batch_`` (Keras' TensorBoard callback) says at which
level the value was logged.
"""

from __future__ import annotations

import re

SPLIT_WORDS = {
    "train": "train", "training": "train", "trn": "train", "tr": "train",
    "val": "val", "valid": "val", "validation": "val", "eval": "val", "evaluation": "val", "dev": "val", "vl": "val",
    "test": "test", "tst": "test",
    # Ultralytics' results.csv puts the validation split's scores under metrics/ (metrics/accuracy_top1 of a
    # classification run is validation top-1; its training side logs only train/loss).
    "metrics": "val",
}
# Plurals too: a loop that appends each epoch's value to a list often names the list train_losses, val_accs.
METRIC_WORDS = {"loss": "loss", "acc": "acc", "accuracy": "acc", "top1": "acc", "acc1": "acc",
                "losses": "loss", "accs": "acc", "accuracies": "acc"}
# Multi-word spellings of the same metric, folded before the name is cut into words.
PHRASES = (
    ("sparse_categorical_accuracy", "acc"), ("categorical_accuracy", "acc"), ("binary_accuracy", "acc"),
    ("top_1_accuracy", "acc"), ("top1_accuracy", "acc"), ("accuracy_top1", "acc"), ("accuracy_top5", "top5"),
    ("top_1", "top1"), ("learning_rate", "lr"),
    ("global_step", "step"),
)
STEP_WORDS = ("step", "iter", "iteration", "iterations", "batch", "steps")
LEVEL_SUFFIXES = {"step": "step", "epoch": "epoch"}
LEVEL_PREFIXES = {"epoch": "epoch", "batch": "step", "step": "step"}

Level = str | None  # "step", "epoch" or None (not said)


def words(name: str) -> list[str]:
    # CamelCase names are words too: TrainLoss, ValAcc, learningRate.
    low = re.sub(r"(?<=[a-z0-9])(?=[A-Z][a-z])", " ", name.strip()).lower()
    for phrase, short in PHRASES:
        low = low.replace(phrase, short)
    return [w for w in re.split(r"[/_\-.\s:()\[\]#%]+", low) if w]


def canonical(name: str) -> tuple[str, Level]:
    """(trainwise key, level) for a source name; unknown names come back unchanged with level None."""
    w = words(name)
    if not w:
        return name, None
    if w == ["epoch"] or w == ["epochs"]:
        return "epoch", None
    if len(w) == 1 and w[0] in STEP_WORDS:
        return "step", None
    if w[0] == "lr":  # lr, lr-Adam (Lightning's LearningRateMonitor), lr_0, learning_rate
        return "lr", None
    level: Level = None
    if len(w) > 1 and w[-1] in LEVEL_SUFFIXES:
        level, w = LEVEL_SUFFIXES[w[-1]], w[:-1]
    else:  # epoch_loss, validation/epoch_loss, step/train_loss
        marked = [x for x in w if x in LEVEL_PREFIXES]
        if len(marked) == 1 and len(w) > 1:
            level, w = LEVEL_PREFIXES[marked[0]], [x for x in w if x not in LEVEL_PREFIXES]
    splits = [SPLIT_WORDS[x] for x in w if x in SPLIT_WORDS]
    metrics = [METRIC_WORDS[x] for x in w if x in METRIC_WORDS]
    if len(metrics) == 1 and len(splits) <= 1 and len(w) == len(splits) + 1:
        return f"{splits[0] if splits else 'train'}_{metrics[0]}", level
    return name.strip(), None


def with_split(name: str, split: str) -> str:
    """``loss`` read from a directory or a line about ``split`` (Keras' ``validation/`` event files, a
    "Test set:" line) becomes ``validation/loss``; a name that says its split already is left alone."""
    if any(x in SPLIT_WORDS for x in words(name)):
        return name
    return f"{split}/{name}"
