"""Hand-written History records for the doctor's tests: ``records(train_loss=[...], val_acc=[...])``."""

from __future__ import annotations

import numpy as np

# The 600-image Fashion-MNIST CNN of zoo v2 (benchmarks/doctor_zoo/v2.py), as a config the doctor reads.
FASHION_600 = {"data": {"name": "fashion_mnist", "train_subset": 600, "batch_size": 32},
               "model": {"name": "cnn", "channels": [8, 16, 32], "batch_norm": True},
               "optim": {"name": "adamw", "lr": 3e-3}, "train": {"epochs": 10}}


def records(**series: list) -> list[dict]:
    """One record per epoch (1-based); a None or a series shorter than the others leaves the key out."""
    n = max(len(v) for v in series.values())
    return [{"epoch": i + 1, **{k: v[i] for k, v in series.items() if i < len(v) and v[i] is not None}} for i in range(n)]


def decaying(start: float, end: float, n: int, rate: float = 4.0) -> list[float]:
    t = np.linspace(0, 1, n)
    return list(end + (start - end) * np.exp(-rate * t))


def spread(lo: float, hi: float, n: int) -> list[float]:
    return [float(x) for x in np.linspace(lo, hi, n)]
