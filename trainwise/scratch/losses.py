"""Cross-entropy losses on predicted probabilities.

A loss returns a scalar from ``forward`` (the mean over the batch, like
torch's default ``reduction="mean"``) and ``dL/d(prediction)`` from
``backward``: the starting point of backpropagation.

The losses take probabilities, i.e. the output of a ``Sigmoid`` or
``Softmax`` layer, so that every step of the chain rule stays visible.  Paired
with those layers the product of the two local gradients collapses to the
familiar ``p - y``, which the tests check.
"""

from __future__ import annotations

import numpy as np

#: Probabilities are kept at least this far from 0 and 1 so that ``log`` and
#: the ``1/p`` in the gradient stay finite even for a saturated output.
_TINY = 1e-15


class Loss:
    """Base class for losses; ``forward`` caches what ``backward`` needs."""

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        """Mean loss of the batch ``pred`` against ``target``."""
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        """Gradient of the mean loss with respect to ``pred``."""
        raise NotImplementedError


class BinaryCrossEntropy(Loss):
    """``L = -mean(y log p + (1 - y) log(1 - p))`` for probabilities ``p``.

    ``target`` holds 0/1 labels (or soft labels) with the shape of ``pred``.
    """

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        p = np.clip(pred, _TINY, 1.0 - _TINY)
        y = np.asarray(target, dtype=float).reshape(p.shape)
        self._p, self._y = p, y
        return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log(1.0 - p)))

    def backward(self) -> np.ndarray:
        p, y = self._p, self._y
        # d/dp of -(y log p + (1-y) log(1-p)) is -y/p + (1-y)/(1-p), which
        # simplifies to (p - y) / (p (1 - p)); the mean divides by the count.
        return (p - y) / (p * (1.0 - p)) / p.size


class CrossEntropy(Loss):
    """Multi-class cross-entropy ``L = -mean_n log p[n, y_n]``.

    ``pred`` holds one row of class probabilities per example; ``target`` is
    either integer class indices of shape ``(batch,)`` or one-hot rows.
    """

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        p = np.clip(pred, _TINY, None)
        target = np.asarray(target)
        if target.ndim == 1:
            onehot = np.zeros_like(p)
            onehot[np.arange(len(target)), target.astype(int)] = 1.0
        else:
            onehot = target.astype(float)
        self._p, self._onehot = p, onehot
        return float(-np.sum(onehot * np.log(p)) / len(p))

    def backward(self) -> np.ndarray:
        # Only the probability of the true class enters the loss: -y_k / p_k.
        return -self._onehot / self._p / len(self._p)
