"""Gradient clipping, as in ``torch.nn.utils``.

Clipping bounds the size of an update when a gradient explodes.  Clipping by
norm rescales all gradients together and so keeps the update direction;
clipping by value caps each coordinate separately and so can turn it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def global_norm(grads: Sequence[np.ndarray]) -> float:
    """L2 norm of all gradients taken together as one long vector."""
    return float(np.sqrt(sum(float(np.sum(g * g)) for g in grads)))


def clip_grad_norm(grads: Sequence[np.ndarray], max_norm: float) -> float:
    """Scale ``grads`` in place so that their global norm is at most ``max_norm``.

    Mirrors ``torch.nn.utils.clip_grad_norm_``: the factor is
    ``min(max_norm / (norm + 1e-6), 1)`` (the ``1e-6`` guards against a zero
    norm).  Returns the norm measured before clipping.
    """
    total = global_norm(grads)
    coef = min(max_norm / (total + 1e-6), 1.0)
    for g in grads:
        g *= coef
    return total


def clip_grad_value(grads: Sequence[np.ndarray], clip_value: float) -> None:
    """Clamp every gradient entry in place to ``[-clip_value, clip_value]``.

    Mirrors ``torch.nn.utils.clip_grad_value_``.
    """
    for g in grads:
        np.clip(g, -clip_value, clip_value, out=g)
