"""Experiment loggers chosen by the ``[logging]`` config section (see tensorboard_logger, mlflow_logger)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from trainwise.config import LoggingConfig
from trainwise.core import Callback


def make_loggers(cfg: LoggingConfig, run_dir: Path | None) -> list[Callback]:
    """The enabled loggers. Their packages are imported at fit start, so evaluating a run never needs them."""
    loggers: list[Callback] = []
    if cfg.tensorboard:
        from trainwise.callbacks.tensorboard_logger import TensorBoardLogger

        loggers.append(TensorBoardLogger(cfg, run_dir))
    if cfg.mlflow:
        from trainwise.callbacks.mlflow_logger import MlflowLogger

        loggers.append(MlflowLogger(cfg, run_dir))
    return loggers


def numeric_items(record: dict[str, Any]) -> dict[str, float]:
    """The record's numbers as floats, without the counters ``epoch``, ``step`` and labels such as ``phase``."""
    out = {}
    for key, value in record.items():
        if key in ("epoch", "step") or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) or value in ("nan", "inf", "-inf"):
            out[key] = float(value)
    return out


def finite(values: list[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]
