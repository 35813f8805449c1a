"""Gradient checking by central finite differences.

A hand-written backward pass is easy to get subtly wrong; comparing it with
``(f(x + eps) - f(x - eps)) / (2 eps)`` for every coordinate catches that.
The central difference has error ``O(eps^2)``, against ``O(eps)`` for the
one-sided version, so in float64 with ``eps = 1e-6`` a correct gradient
agrees to roughly ten significant digits.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from trainwise.scratch.layers import Layer
from trainwise.scratch.losses import Loss
from trainwise.scratch.network import Network


def numerical_gradient(
    f: Callable[[], float], x: np.ndarray, eps: float = 1e-6
) -> np.ndarray:
    """Central-difference gradient of the scalar ``f()`` with respect to array ``x``.

    ``x`` is perturbed in place, one entry at a time, and restored, so ``f``
    can read it from wherever it lives (for example a layer's weights).
    """
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        idx = it.multi_index
        saved = x[idx]
        x[idx] = saved + eps
        f_plus = f()
        x[idx] = saved - eps
        f_minus = f()
        x[idx] = saved
        grad[idx] = (f_plus - f_minus) / (2.0 * eps)
    return grad


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """``||a - n|| / (||a|| + ||n||)``, and 0 when both are exactly zero.

    Relative rather than absolute, so the threshold means the same for tiny
    and for large gradients.
    """
    denom = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    return 0.0 if denom == 0 else float(np.linalg.norm(analytic - numeric) / denom)


def check_layer(
    layer: Layer, x: np.ndarray, rng: np.random.Generator, eps: float = 1e-6
) -> dict[str, float]:
    """Relative errors of ``layer``'s input and parameter gradients.

    The layer output is reduced to a scalar with a fixed random weighting
    ``f = sum(R * layer(x))``, so that every output coordinate takes part and
    ``dL/d(output)`` is simply ``R``.  Keys: ``"input"``, then ``"param0"``,
    ``"param1"``, ... in the order of ``layer.parameters()``.
    """
    x = x.astype(float).copy()
    weights = rng.normal(size=layer.forward(x).shape)

    def f() -> float:
        return float(np.sum(weights * layer.forward(x)))

    layer.forward(x)
    errors = {"input": relative_error(layer.backward(weights), numerical_gradient(f, x, eps))}
    analytic = [g.copy() for g in layer.gradients()]
    for i, (p, g) in enumerate(zip(layer.parameters(), analytic)):
        errors[f"param{i}"] = relative_error(g, numerical_gradient(f, p, eps))
    return errors


def check_loss(
    loss: Loss, pred: np.ndarray, target: np.ndarray, eps: float = 1e-6
) -> float:
    """Relative error of ``loss.backward()`` with respect to the predictions."""
    pred = pred.astype(float).copy()
    loss.forward(pred, target)
    analytic = loss.backward()
    return relative_error(analytic, numerical_gradient(lambda: loss.forward(pred, target), pred, eps))


def check_network(
    net: Network, loss: Loss, x: np.ndarray, y: np.ndarray, eps: float = 1e-6
) -> dict[str, float]:
    """Relative error of every parameter gradient of ``net`` under ``loss``.

    Keys are ``"W1"``, ``"b1"``, ``"W2"``, ... numbered by dense layer.
    """

    def f() -> float:
        return loss.forward(net.forward(x), y)

    _, grads = net.loss_and_grads(x, y, loss)
    analytic = [g.copy() for g in grads]
    names = [f"{kind}{i}" for i in range(1, len(net.dense_layers) + 1) for kind in ("W", "b")]
    return {
        name: relative_error(g, numerical_gradient(f, p, eps))
        for name, p, g in zip(names, net.parameters(), analytic)
    }
