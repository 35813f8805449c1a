"""Layers with explicit forward and backward passes.

Each layer caches what its backward pass needs during ``forward`` and, given
``dL/d(output)``, returns ``dL/d(input)`` from ``backward``.  Chaining those
calls from the loss back to the input is the chain rule, applied one layer at
a time.  Inputs are batches: arrays of shape ``(batch, features)``.
"""

from __future__ import annotations

import numpy as np

from trainwise.scratch import init as initializers


class Layer:
    """Base class: a differentiable map from a batch to a batch."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Compute the output for ``x`` and cache what ``backward`` needs."""
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """Given ``dL/d(output)``, store parameter gradients and return ``dL/d(input)``."""
        raise NotImplementedError

    def parameters(self) -> list[np.ndarray]:
        """Trainable arrays, updated in place by optimizers."""
        return []

    def gradients(self) -> list[np.ndarray]:
        """Gradients from the last ``backward``, in the order of ``parameters()``."""
        return []


class Dense(Layer):
    """Fully connected layer ``z = x @ W + b``.

    ``W`` has shape ``(in_features, out_features)`` so that a batch of row
    vectors multiplies from the left (torch's ``nn.Linear.weight`` is the
    transpose).  ``delta`` keeps ``dL/dz`` from the last backward pass: this is
    the "delta" of the delta rule, from which both weight gradients and the
    gradient for the previous layer follow.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        init: str = "he",
        rng: np.random.Generator | None = None,
    ) -> None:
        rng = rng if rng is not None else np.random.default_rng()
        self.W = initializers.get(init)(in_features, out_features, rng)
        # Biases start at zero under every scheme: the random weights already
        # break the symmetry between units.
        self.b = np.zeros(out_features)
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)
        self.delta: np.ndarray | None = None
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x @ self.W + self.b

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        assert self._x is not None, "forward must run before backward"
        self.delta = grad_out
        # z_j = sum_i x_i W_ij + b_j  =>  dL/dW_ij = x_i * delta_j, summed over
        # the batch; dL/db_j = delta_j; dL/dx_i = sum_j W_ij * delta_j.
        self.dW = self._x.T @ grad_out
        self.db = grad_out.sum(axis=0)
        return grad_out @ self.W.T

    def parameters(self) -> list[np.ndarray]:
        return [self.W, self.b]

    def gradients(self) -> list[np.ndarray]:
        return [self.dW, self.db]


class Sigmoid(Layer):
    """Logistic function ``1 / (1 + exp(-z))``; derivative ``s * (1 - s)``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        # Split by sign so that exp never overflows for large |x|.
        e = np.exp(-np.abs(x))
        self._out = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        return self._out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        s = self._out
        return grad_out * s * (1.0 - s)


class Tanh(Layer):
    """Hyperbolic tangent; derivative ``1 - tanh(z)^2``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._out = np.tanh(x)
        return self._out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out * (1.0 - self._out**2)


class ReLU(Layer):
    """Rectified linear unit ``max(0, z)``; derivative 1 where ``z > 0`` else 0."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._mask = x > 0
        return np.where(self._mask, x, 0.0)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out * self._mask


class LeakyReLU(Layer):
    """``z`` for ``z > 0`` and ``slope * z`` otherwise.

    The small slope keeps a gradient flowing through units that would be
    "dead" under a plain ReLU.  The default slope matches ``torch.nn.LeakyReLU``.
    """

    def __init__(self, slope: float = 0.01) -> None:
        self.slope = slope

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._mask = x > 0
        return np.where(self._mask, x, self.slope * x)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out * np.where(self._mask, 1.0, self.slope)


class Softmax(Layer):
    """Row-wise softmax ``p_i = exp(z_i) / sum_j exp(z_j)``.

    Its Jacobian is ``dp_i/dz_k = p_i (1[i=k] - p_k)``; multiplying a gradient
    ``g`` by it gives ``p * (g - sum(g * p))`` without forming the matrix.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        # Subtracting the row maximum leaves softmax unchanged and keeps exp
        # from overflowing.
        e = np.exp(x - x.max(axis=1, keepdims=True))
        self._out = e / e.sum(axis=1, keepdims=True)
        return self._out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        p = self._out
        return p * (grad_out - np.sum(grad_out * p, axis=1, keepdims=True))
