"""A sequential network: forward storing activations, backward by the chain rule."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trainwise.scratch.layers import Dense, Layer
from trainwise.scratch.losses import Loss


class Network:
    """Layers applied one after another, like ``torch.nn.Sequential``.

    ``forward`` keeps every intermediate output in ``activations`` (the input
    first, the network output last) because the backward pass needs them: the
    gradient of a weight is the product of the activation that fed it and the
    delta that came back to it.  ``backward`` fills ``activation_grads`` in
    the same order with ``dL/d(activation)``: for the output of a ``Dense``
    layer that is its delta ``dL/dz``.
    """

    def __init__(self, layers: Sequence[Layer]) -> None:
        self.layers = list(layers)
        self.activations: list[np.ndarray] = []
        self.activation_grads: list[np.ndarray] = []

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Run ``x`` through every layer, storing each output in ``activations``."""
        self.activations = [x]
        for layer in self.layers:
            x = layer.forward(x)
            self.activations.append(x)
        return x

    __call__ = forward

    def backward(self, grad_out: np.ndarray) -> list[np.ndarray]:
        """Backpropagate ``dL/d(output)`` through all layers, last to first.

        Each layer turns the gradient with respect to its output into the
        gradient with respect to its input (and stores its own parameter
        gradients on the way).  Returns the parameter gradients in the order
        of ``parameters()``.
        """
        grads = [grad_out]
        for layer in reversed(self.layers):
            grads.append(layer.backward(grads[-1]))
        self.activation_grads = grads[::-1]
        return self.gradients()

    def loss_and_grads(
        self, x: np.ndarray, y: np.ndarray, loss: Loss
    ) -> tuple[float, list[np.ndarray]]:
        """Forward, loss, backward in one call; returns ``(loss, gradients)``."""
        value = loss.forward(self.forward(x), y)
        return value, self.backward(loss.backward())

    def parameters(self) -> list[np.ndarray]:
        """All trainable arrays (``W1, b1, W2, b2, ...``); optimizers update them in place."""
        return [p for layer in self.layers for p in layer.parameters()]

    def gradients(self) -> list[np.ndarray]:
        """Gradients from the last backward pass, aligned with ``parameters()``."""
        return [g for layer in self.layers for g in layer.gradients()]

    @property
    def dense_layers(self) -> list[Dense]:
        """The ``Dense`` layers, in order (handy for per-layer reports)."""
        return [layer for layer in self.layers if isinstance(layer, Dense)]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class index per row: argmax of the output (threshold 0.5 for one output)."""
        out = self.forward(x)
        if out.shape[1] == 1:
            return (out[:, 0] >= 0.5).astype(int)
        return out.argmax(axis=1)


def mlp(
    sizes: Sequence[int],
    hidden: type[Layer],
    output: type[Layer] | None,
    init: str = "he",
    rng: np.random.Generator | None = None,
) -> Network:
    """Build ``Dense -> hidden -> ... -> Dense -> output`` for layer widths ``sizes``.

    ``mlp([64, 32, 10], ReLU, Softmax)`` gives a 64-32-10 classifier.  ``output``
    may be ``None`` to leave the last layer linear.
    """
    rng = rng if rng is not None else np.random.default_rng()
    layers: list[Layer] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Dense(n_in, n_out, init=init, rng=rng))
        if i < len(sizes) - 2:
            layers.append(hidden())
    if output is not None:
        layers.append(output())
    return Network(layers)
