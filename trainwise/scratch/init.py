"""Weight initializations for dense layers.

Every function returns a ``(fan_in, fan_out)`` float64 matrix.  The choice of
scale decides whether the signal keeps its size as it travels through many
layers: too small and activations (and gradients) shrink geometrically, too
large and they blow up.  Xavier/Glorot keeps the variance of a roughly linear
unit (tanh near zero) constant; He/Kaiming compensates for ReLU discarding
half of its input and keeps the variance of ReLU stacks constant.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: Standard deviation of the "naive" initialization: small enough to look safe,
#: small enough to make deep stacks collapse (see ``demos.init_variance``).
NAIVE_STD = 0.01

InitFn = Callable[[int, int, np.random.Generator], np.ndarray]


def zeros(fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """All-zero weights.

    Every hidden unit then computes the same function and receives the same
    gradient, so the units never become different: the symmetry problem.
    """
    del rng  # deterministic; the argument keeps one signature for all inits
    return np.zeros((fan_in, fan_out))


def naive(fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian weights with a fixed small standard deviation (0.01)."""
    return rng.normal(0.0, NAIVE_STD, size=(fan_in, fan_out))


def xavier(fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """Glorot/Xavier normal: ``std = sqrt(2 / (fan_in + fan_out))``.

    Balances the variance of the forward signal (needs ``1/fan_in``) and of the
    backward signal (needs ``1/fan_out``) for activations that are close to the
    identity around zero, such as tanh.
    """
    return rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=(fan_in, fan_out))


def he(fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """He/Kaiming normal: ``std = sqrt(2 / fan_in)``.

    The factor 2 makes up for ReLU zeroing half of its inputs, so the second
    moment of the activations stays constant from layer to layer.
    """
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_in, fan_out))


INITIALIZERS: dict[str, InitFn] = {
    "zeros": zeros,
    "naive": naive,
    "xavier": xavier,
    "he": he,
}


def get(name: str) -> InitFn:
    """Look up an initializer by name (``zeros``, ``naive``, ``xavier``, ``he``)."""
    try:
        return INITIALIZERS[name]
    except KeyError:
        raise ValueError(f"unknown init {name!r}; choose from {sorted(INITIALIZERS)}") from None
