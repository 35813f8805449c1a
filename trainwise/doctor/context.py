"""What every rule reads: the records as arrays, the config (when known), the task and the predictions.

Rules never touch raw dicts; they ask the context for a series (NaN where an epoch lacks the key), for a
config value (None when the run's config is unknown, e.g. a Keras CSV) and for derived reference levels
such as the chance loss ln K or the floor that label smoothing puts under the training loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from trainwise.data.sources import SOURCES
from trainwise.doctor import signals
from trainwise.optimizers import OPTIMIZERS

# Classes of the built-in datasets, so a run directory without summary.json still has a chance level.
DATASET_CLASSES = {name: source.classes for name, source in SOURCES.items() if source.classes is not None}

# Learning rates outside each optimizer's usual range are unusual enough to count as evidence (never alone
# as a finding): too low below, too high above. A fix sends an LR outside it to the typical one.
# Both live with the optimizers (trainwise/optimizers.py, where their sources are named).
LR_RANGES = {name: opt.lr_range for name, opt in OPTIMIZERS.items()}
TYPICAL_LR = {name: opt.typical_lr for name, opt in OPTIMIZERS.items()}
# Fine-tuning pretrained weights (finetune.init_from) runs 10-100x lower: ViT/BERT recipes use AdamW at
# 1e-5 to 1e-4 (seed 002's EVA02 fine-tune: 3e-5, OneCycle peak 2.4e-4), ResNet fine-tunes SGD at 1e-3 to
# 1e-2. So the range reaches 100x lower and stops 10x lower, and the typical LR is a twentieth.
FINETUNE_RANGE_SCALE = (1e-2, 1e-1)
# The optimizer unknown (another tool's log with an lr column): only an LR outside every common optimizer's
# usual range, fine-tuning included, is out of range -- below 1e-5 (under AdamW fine-tunes' 1e-5 to 1e-4,
# 10x under Adam's 1e-4 from scratch), above 1 (above SGD's 0.5).
UNKNOWN_OPTIMIZER_RANGE = (1e-5, 1.0)
FINETUNE_TYPICAL_SCALE = 0.05
# Schedules that ignore schedule.warmup_epochs (OneCycle has its own ramp, pct_start).
WARMUP_IGNORED_BY = ("onecycle",)
CONSTANT_EPOCHS = 4  # a validation accuracy this many epochs at one value, the loss moving: a constant answer
SAME_ACCURACY = 1e-6  # "one value": equal to float32 precision
CONSTANT_TRAIN_GAP = 0.02  # a constant answer scores the same share on the training set, within this
# Models whose width model.hidden sets; cnn/convnet/resnet/fusion image branches take model.channels.
HIDDEN_MODELS = ("mlp",)
CHANNEL_MODELS = ("cnn", "convnet", "resnet", "fusion")


@dataclass
class Predictions:
    """Class-level results of a finished run: a confusion matrix (rows: true class) and/or per-class metrics."""

    confusion: np.ndarray | None = None
    precision: np.ndarray | None = None
    recall: np.ndarray | None = None
    source: str = "test"

    @classmethod
    def parse(cls, value: Any, source: str = "test") -> Predictions | None:
        """Accepts a confusion matrix (list of lists / array) or a dict with ``confusion``/``precision``/``recall``."""
        if value is None:
            return None
        if isinstance(value, Predictions):
            return value
        if isinstance(value, dict):
            # Also a summary's "test" block: per-class lists under per_class_*; its scalar
            # precision/recall (positive class or macro) are not per-class and are ignored.
            def per_class(*keys: str) -> np.ndarray | None:
                for key in keys:
                    arr = None if value.get(key) is None else np.asarray(value[key], dtype=float)
                    if arr is not None and arr.ndim == 1 and len(arr) >= 2:
                        return arr
                return None

            conf = value.get("confusion", value.get("test_confusion"))
            return cls(
                confusion=None if conf is None else np.asarray(conf, dtype=float),
                precision=per_class("precision", "per_class_precision", "test_precision_per_class"),
                recall=per_class("recall", "per_class_recall", "test_recall_per_class"),
                source=str(value.get("source", source)),
            )
        arr = np.asarray(value, dtype=float)
        if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
            raise ValueError(f"predictions: expected a square confusion matrix, got shape {arr.shape}")
        return cls(confusion=arr, source=source)


@dataclass
class Context:
    """``classes`` (K) and ``task`` are what the caller knows; ``num_classes`` is the same K under its older
    name. Without them K comes from the predictions, a binary task, or the initial loss (~ ln K), and
    every such guess is written to ``assumptions`` (findings quote them)."""

    records: list[dict[str, Any]]
    config: dict[str, Any] = field(default_factory=dict)  # nested, as Config.to_dict(); {} when unknown
    num_classes: int | None = None
    task: str | None = None
    predictions: Predictions | None = None
    classes: int | None = None
    user_model: bool = False  # the model was passed in, not built from model.name: no model.* fix acts on it
    foreign: bool = False  # another tool's log: no trainwise key acts on it, fixes are stated in words
    assumptions: list[str] = field(default_factory=list)

    @classmethod
    def of_config(cls, config: Any) -> Context:
        """What a config alone says (LR range and position, regularisers, the model's keys), before or
        without a history: ``config`` a trainwise Config."""
        return cls(records=[], config=config.to_dict())

    def __post_init__(self) -> None:
        self._drop_meaningless_accuracy()
        if self.num_classes is None:
            self.num_classes = self.classes
        if self.num_classes is None:
            self.num_classes = self._infer_num_classes()
        if self.num_classes is None:
            self.num_classes = self._classes_from_initial_loss()
        self.classes = self.num_classes
        if self.task is None and self.num_classes is not None:
            self.task = "binary" if self.num_classes == 2 else "multiclass"

    def _drop_meaningless_accuracy(self) -> None:
        """An ``acc`` column that is one value at or below 1 % for the whole run while the loss moves >= 10 %
        is not a classifier's accuracy: even a constant classifier scores the share of the class it predicts,
        and a learning one moves. Keras logs ``accuracy`` for regression models too (then ~0). It is left
        out, and the assumption says so, so that no rule reads it as a model at 0 % accuracy."""
        for key in ("train_acc", "val_acc"):
            acc = signals.finite(self.series(key))
            loss = signals.finite(self.series(key.replace("acc", "loss")))
            if len(acc) < 4 or len(loss) < 4 or np.ptp(acc) > 1e-9 or float(acc.max()) > 0.01:
                continue
            if float(np.ptp(loss)) < 0.10 * float(np.max(np.abs(loss))):
                continue
            self.records = [{k: v for k, v in r.items() if k != key} for r in self.records]
            self.assumptions.append(f"{key} is {float(acc[0]):.3g} at every epoch while the loss moves: not a classification "
                                    "accuracy (a regression model's metric, typically), so it was left out")

    # ------------------------------------------------------------------ records
    @cached_property
    def epochs(self) -> np.ndarray:
        return np.array([int(r.get("epoch", i + 1)) for i, r in enumerate(self.records)], dtype=int)

    @property
    def n(self) -> int:
        return len(self.records)

    def epoch_at(self, index: int) -> int:
        return int(self.epochs[index])

    def series(self, key: str) -> np.ndarray:
        """Values of ``key`` over epochs as floats; NaN where missing or not finite."""
        out = np.full(self.n, np.nan)
        for i, r in enumerate(self.records):
            v = _as_float(r.get(key))
            if v is not None and math.isfinite(v):
                out[i] = v
        return out

    def nonfinite(self, key: str) -> np.ndarray:
        """True where ``key`` is present but NaN/Inf (a diverged value, not a missing one)."""
        out = np.zeros(self.n, dtype=bool)
        for i, r in enumerate(self.records):
            v = _as_float(r.get(key))
            out[i] = v is not None and not math.isfinite(v)
        return out

    def has(self, key: str, at_least: int = 1) -> bool:
        return int(np.isfinite(self.series(key)).sum()) >= at_least

    def layer_keys(self, prefix: str) -> list[str]:
        """Keys ``prefix/<layer>`` in the order first seen (the monitors write them input side first)."""
        seen: dict[str, None] = {}
        for r in self.records:
            for k in r:
                if k.startswith(prefix + "/"):
                    seen[k] = None
        return list(seen)

    def labels(self, key: str) -> list[Any]:
        return [r.get(key) for r in self.records]

    # ------------------------------------------------------------------ config
    @property
    def config_known(self) -> bool:
        return bool(self.config)

    def cfg(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.config
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    @property
    def optimizer(self) -> str | None:
        return self.cfg("optim.name")

    @property
    def schedule(self) -> str | None:
        return self.cfg("schedule.name")

    @property
    def lr_key(self) -> str:
        """The config key that sets the peak LR of this run: OneCycle with max_lr ignores optim.lr."""
        return "schedule.max_lr" if self.schedule == "onecycle" and self.cfg("schedule.max_lr") else "optim.lr"

    @cached_property
    def base_lr(self) -> float | None:
        """The peak LR the run trained with (what a fix changes, through ``lr_key``): the config's value
        when known (OneCycle: its max_lr), else the largest LR the History logged."""
        configured = self.cfg(self.lr_key)
        if isinstance(configured, (int, float)) and not isinstance(configured, bool):
            return float(configured)
        logged = signals.finite(self.series("lr"))
        return float(logged.max()) if len(logged) else None

    @property
    def finetuning(self) -> bool:
        return bool(self.cfg("finetune.init_from"))

    def lr_range(self) -> tuple[float, float] | None:
        rng = LR_RANGES.get(self.optimizer or "")
        if rng is None and self.optimizer is None:
            return UNKNOWN_OPTIMIZER_RANGE
        if rng is None or not self.finetuning:
            return rng
        return rng[0] * FINETUNE_RANGE_SCALE[0], rng[1] * FINETUNE_RANGE_SCALE[1]

    def typical_lr(self) -> float | None:
        typical = TYPICAL_LR.get(self.optimizer or "")
        return typical * FINETUNE_TYPICAL_SCALE if typical is not None and self.finetuning else typical

    def lr_position(self) -> str | None:
        """'low' / 'high' when the run's peak LR lies outside the optimizer's usual range, else None."""
        rng = self.lr_range()
        if rng is None or self.base_lr is None:
            return None
        low, high = rng
        # Within float32 rounding of an edge is on it: a logged 1e-5 reads back as 9.99999975e-06.
        if self.base_lr < low * (1 - 1e-6):
            return "low"
        if self.base_lr > high * (1 + 1e-6):
            return "high"
        return None

    def lr_position_text(self) -> str:
        """The sentence that says where the LR lies: 'optim.lr=1e-06 is below the usual range for adam'."""
        side = "below" if self.lr_position() == "low" else "above"
        if self.optimizer is None:
            low, high = UNKNOWN_OPTIMIZER_RANGE
            return f"the logged LR {self.base_lr:g} is {side} the usual range of every common optimizer ({low:g} to {high:g})"
        return f"optim.lr={self.base_lr:g} is {side} the usual range for {self.optimizer}"

    @property
    def warmup_acts(self) -> bool:
        """Whether schedule.warmup_epochs changes this run's LR (a known config whose schedule honours it)."""
        return self.config_known and self.schedule not in WARMUP_IGNORED_BY

    # ------------------------------------------------------------------ techniques
    @property
    def mixed_batches(self) -> list[str]:
        """MixUp / CutMix in use: training accuracy is measured on blended batches against the dominant label."""
        return [name for key, name in (("mixup.mixup_alpha", "MixUp"), ("mixup.cutmix_alpha", "CutMix"))
                if float(self.cfg(key, 0.0) or 0.0) > 0]

    def train_handicaps(self) -> list[str]:
        """What makes the training pass harder than evaluation, so training accuracy reads lower."""
        found = []
        if self.max_dropout() > 0:
            found.append(f"dropout {self.max_dropout():g}")
        if float(self.cfg("model.drop_path", 0.0) or 0.0) > 0:
            found.append(f"drop path {self.cfg('model.drop_path'):g}")
        ops = [spec.get("op", "?") for spec in self.cfg("augment.train", []) or [] if isinstance(spec, dict)]
        if ops:
            found.append(f"augmentation ({', '.join(ops)})")
        for key, name in (("mixup.mixup_alpha", "MixUp"), ("mixup.cutmix_alpha", "CutMix")):
            if float(self.cfg(key, 0.0) or 0.0) > 0:
                found.append(f"{name} (alpha {self.cfg(key):g})")
        return found

    @cached_property
    def frozen_until(self) -> int | None:
        """Last epoch in which finetune.freeze holds (None: nothing frozen); a frozen layer has zero gradients."""
        if not self.cfg("finetune.freeze"):
            return None
        unfreeze = self.cfg("finetune.unfreeze_epoch")
        return int(unfreeze) - 1 if unfreeze else (int(self.epochs.max()) if self.n else 0)

    def max_dropout(self) -> float:
        d = self.cfg("model.dropout", 0.0) or 0.0
        return float(max(d) if isinstance(d, list) and d else d or 0.0)

    # ------------------------------------------------------------------ reference levels
    @property
    def chance_loss(self) -> float | None:
        """Cross-entropy of a uniform prediction, ln K (0.693 for binary); None when K is unknown."""
        return math.log(self.num_classes) if self.num_classes and self.num_classes >= 2 else None

    @cached_property
    def train_loss_floor(self) -> float:
        """The lowest reachable training loss: the entropy label smoothing leaves in the targets, plus the
        expected entropy of MixUp/CutMix's blended targets (0 with neither)."""
        eps = float(self.cfg("regularization.label_smoothing", 0.0) or 0.0)
        floor = signals.smoothed_ce_floor(self.num_classes or 0, eps)
        mixup, cutmix = (float(self.cfg(k, 0.0) or 0.0) for k in ("mixup.mixup_alpha", "mixup.cutmix_alpha"))
        if mixup > 0 or cutmix > 0:
            switch = float(self.cfg("mixup.switch_prob", 0.5)) if mixup > 0 and cutmix > 0 else (1.0 if cutmix > 0 else 0.0)
            blend = (1 - switch) * signals.mixed_target_entropy(mixup) + switch * signals.mixed_target_entropy(cutmix)
            floor += float(self.cfg("mixup.prob", 1.0)) * blend
        return min(floor, self.chance_loss or math.inf)

    def chance_accuracy(self, loss_level: float | None = None) -> tuple[float, str]:
        """Accuracy of a model that learned only the class prior, and where that number comes from: the
        majority share of a confusion matrix; for binary, the share a prior-only model's log loss implies
        (an assumption); else 1/K."""
        if self.majority_share is not None:
            return self.majority_share, "majority share of the confusion matrix"
        frozen = self.constant_from_start()
        if frozen is not None and self.num_classes and frozen >= 1.0 / self.num_classes - SAME_ACCURACY:
            # A constant answer at or above 1/K can be the majority class: its accuracy is that class's share.
            return frozen, "the validation accuracy, one value at every epoch (a constant answer scores its class's share)"
        if self.num_classes == 2 and loss_level is not None and math.isfinite(loss_level):
            return signals.prior_from_binary_loss(loss_level), "class share implied by the binary log loss (assumed: a prior-only model)"
        return 1.0 / (self.num_classes or 2), f"1/K for K = {self.num_classes}"

    @cached_property
    def constant_answer(self) -> tuple[float, int] | None:
        """(accuracy, first index) of a validation accuracy that is one value -- to float32 precision -- over
        its last >= 4 epochs while the validation loss moves: the predictions do not change at all, which is
        what a model answering one class for every input does; its accuracy is then that class's share.
        None otherwise. Keras sums its metrics in float32, so identical predictions can differ in the 8th
        digit (0.9866071939 and 0.9866071343); 1e-6 is below one sample of any validation set under a million."""
        acc, loss = signals.finite(self.series("val_acc")), signals.finite(self.series("val_loss"))
        if len(acc) < CONSTANT_EPOCHS or len(loss) < CONSTANT_EPOCHS or self.task == "regression":
            return None
        level = float(acc[-1])
        # 0 and 1 are no class's share to read: an accuracy column of a regression model, a solved validation set.
        if np.ptp(acc[-CONSTANT_EPOCHS:]) > SAME_ACCURACY or not SAME_ACCURACY < level < 1 - SAME_ACCURACY:
            return None
        if float(np.ptp(loss[-CONSTANT_EPOCHS:])) <= 1e-4 * max(abs(float(loss[-1])), 1e-12):
            return None  # nothing moves at all: a stopped (or tiny-LR) run, not a constant answer
        first = len(acc) - 1
        while first > 0 and abs(acc[first - 1] - level) <= SAME_ACCURACY:
            first -= 1
        return level, first

    def constant_from_start(self) -> float | None:
        """The constant answer's accuracy when validation accuracy has had that one value since the first
        epoch while the validation loss moved by >= 5 % of its level -- the outputs changed, the answers never
        did -- and the training set is answered the same way: training accuracy (last 3 epochs) within 2
        points of that share (the splits' class mixes differ a little). A small validation set repeats its
        accuracy too (19 of 20 at every epoch of a fine-tune), but its model fits the training set apart
        from it. None otherwise, and without a training accuracy."""
        frozen = self.constant_answer
        if frozen is None or frozen[1] != 0 or not self.has("train_acc", 1):
            return None
        if abs(signals.tail_median(self.series("train_acc")) - frozen[0]) > CONSTANT_TRAIN_GAP:
            return None
        loss = signals.finite(self.series("val_loss"))
        return frozen[0] if float(np.ptp(loss)) >= 0.05 * float(np.min(np.abs(loss))) else None

    @cached_property
    def majority_share(self) -> float | None:
        """Share of the most frequent class, from a confusion matrix when one is available."""
        p = self.predictions
        if p is not None and p.confusion is not None and p.confusion.sum() > 0:
            support = p.confusion.sum(1)
            return float(support.max() / support.sum())
        return None

    def _infer_num_classes(self) -> int | None:
        p = self.predictions
        if p is not None:
            for arr in (p.confusion, p.precision, p.recall):
                if arr is not None and len(arr) >= 2:
                    return int(len(arr))
        # Not from config.data.name: a config merged with defaults names "digits" whether or not it was.
        return 2 if self.task == "binary" else None

    def _classes_from_initial_loss(self) -> int | None:
        """K from a loss that has not moved yet: a fresh classifier's cross-entropy is ln K.

        Sound only where the first epochs did not learn (an epoch-0 evaluation, or a training loss flat
        over its first three epochs within 2 %): the first epoch of a learning run is already below
        ln K. The guess is kept only when the loss lies within 2 % of ln K for an integer K.
        """
        loss = self.series("train_loss")
        first = signals.finite(loss[:3])
        level = None
        if self.n and int(self.epochs[0]) == 0 and math.isfinite(loss[0]):
            level = float(loss[0])
        elif len(first) == 3 and (first.max() - first.min()) <= 0.05 * abs(float(first[0])):
            level = float(first[0])
        if level is None or level < 0.5 or level > math.log(100_000):  # beyond 100,000 classes: a loss of another kind
            return None
        k = int(round(math.exp(level)))
        if k < 2 or abs(level - math.log(k)) > 0.02 * math.log(k):
            return None
        self.assumptions.append(f"K = {k} classes assumed from the initial loss {level:.3g} ~ ln {k} (pass classes= to state it)")
        return k


def _as_float(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and v.strip().lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
        return float(v.strip().lower().replace("infinity", "inf"))
    return None
