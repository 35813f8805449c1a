"""Gradient-descent optimizers that mirror ``torch.optim`` update rules.

Each class follows the algorithm printed in the corresponding ``torch.optim``
documentation, operation for operation, so that the same gradients produce
the same parameter trajectory (the tests compare 100 steps in float64).  An
optimizer holds references to the parameter arrays and updates them in place;
``step(grads)`` takes the gradients in the same order.

Batch, mini-batch and stochastic gradient descent are one algorithm, ``SGD``;
they differ only in how many examples the gradient is averaged over, which is
the training loop's choice (see ``train.minibatches``).  Classical momentum
and Nesterov momentum are ``SGD(momentum=...)`` and
``SGD(momentum=..., nesterov=True)``, as in torch.

``lr`` is a plain attribute, so a learning-rate schedule simply assigns to it
before each step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class Optimizer:
    """Base class: keeps the parameters, the learning rate and a step counter."""

    def __init__(self, params: Sequence[np.ndarray], lr: float) -> None:
        self.params = list(params)
        self.lr = lr
        self.t = 0  # number of steps taken; Adam's bias correction needs it

    def step(self, grads: Sequence[np.ndarray]) -> None:
        """Update every parameter in place from its gradient."""
        if len(grads) != len(self.params):
            raise ValueError(f"{len(grads)} gradients for {len(self.params)} parameters")
        self.t += 1
        for i, (p, g) in enumerate(zip(self.params, grads)):
            self._update(i, p, g)

    def _update(self, i: int, p: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError

    def _with_l2(self, p: np.ndarray, g: np.ndarray, weight_decay: float) -> np.ndarray:
        """torch's coupled ``weight_decay``: add ``wd * p`` to the gradient (L2 penalty)."""
        return g + weight_decay * p if weight_decay else g


class SGD(Optimizer):
    """Plain, momentum and Nesterov gradient descent (``torch.optim.SGD``).

    With ``mu = momentum``::

        g   = grad + weight_decay * p
        buf = g                                   (first step)
        buf = mu * buf + (1 - dampening) * g      (later steps)
        g   = g + mu * buf   if nesterov  else  buf
        p   = p - lr * g

    Note torch's convention: the learning rate multiplies the whole buffer
    rather than being folded into it, and the buffer starts at the first
    gradient rather than at zero.
    """

    def __init__(
        self,
        params: Sequence[np.ndarray],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires momentum > 0 and zero dampening")
        super().__init__(params, lr)
        self.momentum, self.dampening = momentum, dampening
        self.nesterov, self.weight_decay = nesterov, weight_decay
        self.buffers: list[np.ndarray | None] = [None] * len(self.params)

    def _update(self, i: int, p: np.ndarray, g: np.ndarray) -> None:
        g = self._with_l2(p, g, self.weight_decay)
        if self.momentum:
            buf = self.buffers[i]
            if buf is None:
                buf = g.copy()
            else:
                buf = self.momentum * buf + (1.0 - self.dampening) * g
            self.buffers[i] = buf
            # Nesterov evaluates the step "ahead": the fresh gradient plus the
            # momentum that will be applied next, instead of the buffer alone.
            g = g + self.momentum * buf if self.nesterov else buf
        p -= self.lr * g


class Adagrad(Optimizer):
    """Per-coordinate step sizes from the sum of squared gradients (``torch.optim.Adagrad``).

    ::

        clr = lr / (1 + (t - 1) * lr_decay)
        sum = sum + g^2
        p   = p - clr * g / (sqrt(sum) + eps)

    Coordinates with large past gradients take smaller steps; since ``sum``
    only grows, the effective learning rate decays monotonically.
    """

    def __init__(
        self,
        params: Sequence[np.ndarray],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ) -> None:
        super().__init__(params, lr)
        self.lr_decay, self.weight_decay, self.eps = lr_decay, weight_decay, eps
        self.sums = [np.full_like(p, initial_accumulator_value) for p in self.params]

    def _update(self, i: int, p: np.ndarray, g: np.ndarray) -> None:
        g = self._with_l2(p, g, self.weight_decay)
        clr = self.lr / (1.0 + (self.t - 1) * self.lr_decay)
        self.sums[i] += g * g
        p -= clr * g / (np.sqrt(self.sums[i]) + self.eps)


class RMSprop(Optimizer):
    """Adagrad with a forgetting average of squared gradients (``torch.optim.RMSprop``).

    ::

        v   = alpha * v + (1 - alpha) * g^2
        avg = sqrt(v) + eps                     (centered: sqrt(v - m^2) + eps,
                                                 m = alpha * m + (1 - alpha) * g)
        buf = momentum * buf + g / avg;  p = p - lr * buf    (momentum > 0)
        p   = p - lr * g / avg                                (otherwise)

    The exponential average lets the step size recover after a burst of large
    gradients, which Adagrad's ever-growing sum cannot.
    """

    def __init__(
        self,
        params: Sequence[np.ndarray],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        super().__init__(params, lr)
        self.alpha, self.eps, self.weight_decay = alpha, eps, weight_decay
        self.momentum, self.centered = momentum, centered
        self.square_avgs = [np.zeros_like(p) for p in self.params]
        self.grad_avgs = [np.zeros_like(p) for p in self.params]
        self.buffers = [np.zeros_like(p) for p in self.params]

    def _update(self, i: int, p: np.ndarray, g: np.ndarray) -> None:
        g = self._with_l2(p, g, self.weight_decay)
        a = self.alpha
        self.square_avgs[i] = a * self.square_avgs[i] + (1.0 - a) * g * g
        if self.centered:
            # Subtracting the squared mean turns the second moment into a
            # variance estimate.
            self.grad_avgs[i] = a * self.grad_avgs[i] + (1.0 - a) * g
            avg = np.sqrt(self.square_avgs[i] - self.grad_avgs[i] ** 2) + self.eps
        else:
            avg = np.sqrt(self.square_avgs[i]) + self.eps
        if self.momentum > 0:
            self.buffers[i] = self.momentum * self.buffers[i] + g / avg
            p -= self.lr * self.buffers[i]
        else:
            p -= self.lr * g / avg


class Adam(Optimizer):
    """Adaptive moment estimation with bias correction (``torch.optim.Adam``).

    ::

        g = grad + weight_decay * p            (coupled L2, Adam only)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    ``m`` and ``v`` start at zero, so early on they underestimate the true
    moments by the factors ``1 - beta^t``; dividing by those factors removes
    the bias.  As in torch, ``eps`` is added after the square root of the
    corrected ``v``.
    """

    decoupled = False

    def __init__(
        self,
        params: Sequence[np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        self.beta1, self.beta2 = betas
        self.eps, self.weight_decay = eps, weight_decay
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]

    def _update(self, i: int, p: np.ndarray, g: np.ndarray) -> None:
        if self.decoupled:
            # AdamW: shrink the weights directly, outside the adaptive scaling,
            # so that decay is not weakened for coordinates with large gradients.
            p *= 1.0 - self.lr * self.weight_decay
        else:
            g = self._with_l2(p, g, self.weight_decay)
        b1, b2 = self.beta1, self.beta2
        self.m[i] = b1 * self.m[i] + (1.0 - b1) * g
        self.v[i] = b2 * self.v[i] + (1.0 - b2) * g * g
        step_size = self.lr / (1.0 - b1**self.t)
        denom = np.sqrt(self.v[i]) / np.sqrt(1.0 - b2**self.t) + self.eps
        p -= step_size * self.m[i] / denom


class AdamW(Adam):
    """Adam with decoupled weight decay (``torch.optim.AdamW``).

    Before the Adam step: ``p = p * (1 - lr * weight_decay)``.  The default
    ``weight_decay=1e-2`` matches torch; ``betas`` and ``eps`` are Adam's.
    """

    decoupled = True

    def __init__(
        self, params: Sequence[np.ndarray], lr: float = 1e-3, weight_decay: float = 1e-2, **adam_kwargs: Any
    ) -> None:
        super().__init__(params, lr, weight_decay=weight_decay, **adam_kwargs)
