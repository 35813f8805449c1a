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
    records: list[dict[str, Any]]
    config: dict[str, Any] = field(default_factory=dict)  # nested, as Config.to_dict(); {} when unknown
    num_classes: int | None = None
    task: str | None = None
    predictions: Predictions | None = None

    def __post_init__(self) -> None:
        if self.num_classes is None:
            self.num_classes = self._infer_num_classes()
        if self.task is None and self.num_classes is not None:
            self.task = "binary" if self.num_classes == 2 else "multiclass"

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

    @cached_property
    def base_lr(self) -> float | None:
        """The configured LR (what a fix changes); the largest logged LR when there is no config."""
        lr = self.cfg("optim.lr")
        if lr is not None:
            return float(lr)
        logged = signals.finite(self.series("lr"))
        return float(logged.max()) if len(logged) else None

    def lr_range(self) -> tuple[float, float] | None:
        return LR_RANGES.get(self.optimizer or "")

    def typical_lr(self) -> float | None:
        return TYPICAL_LR.get(self.optimizer or "")

    def lr_position(self) -> str | None:
        """'low' / 'high' when the configured LR lies outside the optimizer's usual range, else None."""
        rng = self.lr_range()
        if rng is None or self.base_lr is None:
            return None
        low, high = rng
        if self.base_lr < low:
            return "low"
        if self.base_lr > high:
            return "high"
        return None

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
        """What label smoothing makes the lowest reachable training loss (0 without smoothing)."""
        eps = float(self.cfg("regularization.label_smoothing", 0.0) or 0.0)
        return signals.smoothed_ce_floor(self.num_classes or 0, eps)

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


def _as_float(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and v.strip().lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
        return float(v.strip().lower().replace("infinity", "inf"))
    return None
