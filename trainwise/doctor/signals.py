"""Robust trend measures over short, noisy per-epoch curves.

Runs have 5 to 200 epochs and validation sets of a few hundred samples, so a single epoch can move by
10 %. Every rule therefore looks at medians, Theil-Sen slopes and best-so-far values, never at one epoch.
All functions take 1-D float arrays where NaN marks a missing value and ignore those entries.
"""

from __future__ import annotations

import math

import numpy as np


def finite(y: np.ndarray) -> np.ndarray:
    return y[np.isfinite(y)]


def theil_sen(y: np.ndarray, x: np.ndarray | None = None) -> float:
    """Median of pairwise slopes: one outlying epoch cannot tilt it (breakdown point 29 %)."""
    x = np.arange(len(y), dtype=float) if x is None else np.asarray(x, dtype=float)
    keep = np.isfinite(y) & np.isfinite(x)
    x, y = x[keep], y[keep]
    if len(y) < 2:
        return 0.0
    i, j = np.triu_indices(len(y), k=1)
    dx = x[j] - x[i]
    ok = dx != 0
    return float(np.median((y[j] - y[i])[ok] / dx[ok])) if ok.any() else 0.0


def rolling_median(y: np.ndarray, window: int = 3) -> np.ndarray:
    """Centred running median (shrinking at the ends); kills single-epoch spikes, keeps steps."""
    half = window // 2
    out = np.full(len(y), np.nan)
    for i in range(len(y)):
        seg = finite(y[max(0, i - half) : i + half + 1])
        if len(seg):
            out[i] = np.median(seg)
    return out


def tail_median(y: np.ndarray, k: int = 3) -> float:
    """Median of the last ``k`` finite values: the level a curve ended at, robust to its last epoch."""
    f = finite(y)
    return float(np.median(f[-k:])) if len(f) else math.nan


def head_median(y: np.ndarray, k: int = 3) -> float:
    f = finite(y)
    return float(np.median(f[:k])) if len(f) else math.nan


def relative_steps(y: np.ndarray, scale_floor: float = 0.0) -> np.ndarray:
    """Epoch-to-epoch changes relative to the previous value (floored, so 1e-4 -> 2e-4 is not +100 %)."""
    f = finite(y)
    if len(f) < 2:
        return np.zeros(0)
    prev = np.maximum(np.abs(f[:-1]), scale_floor)
    with np.errstate(divide="ignore", invalid="ignore"):
        steps = np.diff(f) / prev
    return np.nan_to_num(steps, nan=0.0, posinf=0.0, neginf=0.0)


def share_decreasing(y: np.ndarray) -> float:
    """Share of epoch-to-epoch steps that go down (1.0: strictly monotone decrease)."""
    d = np.diff(finite(y))
    return float((d < 0).mean()) if len(d) else 0.0


def argbest(y: np.ndarray, mode: str = "min") -> int:
    """Index of the best finite value (first occurrence); -1 if none."""
    f = np.where(np.isfinite(y), y, np.inf if mode == "min" else -np.inf)
    if not np.isfinite(f).any():
        return -1
    return int(np.argmin(f) if mode == "min" else np.argmax(f))


def spikes(y: np.ndarray, rise: float, scale_floor: float = 0.0, recover_within: int = 3) -> list[tuple[int, bool]]:
    """Epochs (indices) where ``y`` jumps up by ``rise`` (relative) over the previous epoch.

    Each comes with whether the curve returned to (within 2 % of) its pre-jump value within
    ``recover_within`` epochs. A jump in the last epoch has no future yet and is left out.
    """
    out: list[tuple[int, bool]] = []
    for i in range(1, len(y) - 1):
        prev, cur = y[i - 1], y[i]
        if not (np.isfinite(prev) and np.isfinite(cur)):
            continue
        if (cur - prev) / max(abs(prev), scale_floor) >= rise:
            after = finite(y[i + 1 : i + 1 + recover_within])
            out.append((i, bool(len(after) and after.min() <= prev * 1.02 + 1e-12)))
    return out


def binary_entropy(p: float) -> float:
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def prior_from_binary_loss(loss: float) -> float:
    """Majority share ``p >= 0.5`` of a constant predictor whose log loss is ``loss`` (inverse of H(p)).

    A binary classifier that learned only the class prior p has log loss H(p) and accuracy max(p, 1-p);
    so a loss near ln 2 and the accuracy it implies say together whether a run is at chance.
    """
    if not math.isfinite(loss) or loss >= math.log(2):
        return 0.5
    lo, hi = 0.5, 1.0
    for _ in range(60):  # bisection: H is decreasing on [0.5, 1]
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if binary_entropy(mid) > loss else (lo, mid)
    return (lo + hi) / 2


def smoothed_ce_floor(num_classes: int, eps: float) -> float:
    """Lowest cross-entropy reachable with label smoothing ``eps``: the entropy of the smoothed target.

    With eps = 0.1 and 10 classes this is 0.50, so a training loss that stops there has converged; rules
    that read the training loss subtract this floor before judging how far from converged a run is.
    """
    if eps <= 0 or num_classes < 2:
        return 0.0
    on = 1 - eps + eps / num_classes
    off = eps / num_classes
    return -(on * math.log(on) + (num_classes - 1) * off * math.log(off))


def mixed_target_entropy(alpha: float) -> float:
    """Expected entropy (nats) of a MixUp/CutMix target blending two classes with lam ~ Beta(alpha, alpha).

    A blended target's cross-entropy cannot go below its entropy H(lam); for the symmetric Beta its mean
    is digamma(2 alpha + 1) - digamma(alpha + 1): 0.5 for alpha = 1, 0.18 for alpha = 0.2.
    """
    if alpha <= 0:
        return 0.0
    from scipy.special import digamma

    return float(digamma(2 * alpha + 1) - digamma(alpha + 1))
