"""Finite-difference gradient checks for every layer type, both losses and whole networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scratch_helpers import torch_loss, torch_mirror

from trainwise.scratch.gradcheck import check_layer, check_loss, check_network, relative_error
from trainwise.scratch.layers import Dense, Layer, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from trainwise.scratch.losses import BinaryCrossEntropy, CrossEntropy
from trainwise.scratch.network import Network, mlp

TOL = 1e-6


def _away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Inputs with |x| >= 0.1, so a 1e-6 probe never crosses the ReLU kink."""
    return rng.choice([-1.0, 1.0], size=shape) * (0.1 + np.abs(rng.normal(size=shape)))


@pytest.mark.parametrize(
    "layer",
    [Sigmoid(), Tanh(), ReLU(), LeakyReLU(0.1), Softmax()],
    ids=["sigmoid", "tanh", "relu", "leaky_relu", "softmax"],
)
def test_activation_gradients(layer: Layer) -> None:
    rng = np.random.default_rng(0)
    errors = check_layer(layer, _away_from_zero(rng, (5, 7)), rng)
    assert set(errors) == {"input"}
    assert errors["input"] < TOL


def test_dense_gradients() -> None:
    rng = np.random.default_rng(1)
    layer = Dense(4, 3, init="xavier", rng=rng)
    layer.b[:] = rng.normal(size=3)
    errors = check_layer(layer, rng.normal(size=(6, 4)), rng)
    assert set(errors) == {"input", "param0", "param1"}
    assert max(errors.values()) < TOL


def test_loss_gradients() -> None:
    rng = np.random.default_rng(2)
    p = rng.uniform(0.05, 0.95, size=(8, 1))
    assert check_loss(BinaryCrossEntropy(), p, rng.integers(0, 2, size=(8, 1))) < TOL
    probs = Softmax().forward(rng.normal(size=(8, 5)))
    assert check_loss(CrossEntropy(), probs, rng.integers(0, 5, size=8)) < TOL


def test_network_with_every_layer_type() -> None:
    rng = np.random.default_rng(3)
    net = Network(
        [
            Dense(5, 6, init="xavier", rng=rng), Sigmoid(),
            Dense(6, 6, init="xavier", rng=rng), Tanh(),
            Dense(6, 6, init="he", rng=rng), LeakyReLU(0.05),
            Dense(6, 6, init="he", rng=rng), ReLU(),
            Dense(6, 4, init="xavier", rng=rng), Softmax(),
        ]
    )  # fmt: skip
    x, y = rng.normal(size=(10, 5)), rng.integers(0, 4, size=10)
    errors = check_network(net, CrossEntropy(), x, y)
    assert list(errors) == ["W1", "b1", "W2", "b2", "W3", "b3", "W4", "b4", "W5", "b5"]
    assert max(errors.values()) < TOL


def test_binary_network() -> None:
    rng = np.random.default_rng(4)
    net = mlp([3, 5, 1], Tanh, Sigmoid, init="xavier", rng=rng)
    x, y = rng.normal(size=(9, 3)), rng.integers(0, 2, size=(9, 1))
    assert max(check_network(net, BinaryCrossEntropy(), x, y).values()) < TOL


def test_gradcheck_catches_a_wrong_derivative() -> None:
    class BrokenSigmoid(Sigmoid):
        def backward(self, grad_out: np.ndarray) -> np.ndarray:
            return grad_out * self._out  # missing the (1 - s) factor

    rng = np.random.default_rng(5)
    assert check_layer(BrokenSigmoid(), rng.normal(size=(4, 3)), rng)["input"] > 1e-2


def test_output_deltas_reduce_to_prediction_minus_target() -> None:
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(6, 4))
    y = rng.integers(0, 4, size=6)
    net = Network([Softmax()])
    net.loss_and_grads(logits, y, CrossEntropy())
    expected = (net.activations[-1] - np.eye(4)[y]) / 6
    np.testing.assert_allclose(net.activation_grads[0], expected, atol=1e-14)

    net = Network([Sigmoid()])
    yb = rng.integers(0, 2, size=(6, 1))
    net.loss_and_grads(logits[:, :1], yb, BinaryCrossEntropy())
    np.testing.assert_allclose(net.activation_grads[0], (net.activations[-1] - yb) / 6, atol=1e-14)


@pytest.mark.parametrize("loss", [CrossEntropy(), BinaryCrossEntropy()], ids=["ce", "bce"])
def test_backprop_matches_torch_autograd(loss: CrossEntropy | BinaryCrossEntropy) -> None:
    rng = np.random.default_rng(7)
    n_out = 3 if isinstance(loss, CrossEntropy) else 1
    net = Network(
        [Dense(4, 5, rng=rng), LeakyReLU(), Dense(5, 5, rng=rng), Tanh(), Dense(5, n_out, rng=rng),
         Softmax() if n_out > 1 else Sigmoid()]
    )  # fmt: skip
    x = rng.normal(size=(7, 4))
    y = rng.integers(0, 3, size=7) if n_out > 1 else rng.integers(0, 2, size=(7, 1))
    value, grads = net.loss_and_grads(x, y, loss)

    model = torch_mirror(net)
    reference = torch_loss(loss, model(torch.from_numpy(x)), y)
    reference.backward()
    assert value == pytest.approx(reference.item(), abs=1e-12)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    torch_grads = [g for m in linears for g in (m.weight.grad.numpy().T, m.bias.grad.numpy())]
    for ours, theirs in zip(grads, torch_grads, strict=True):
        assert relative_error(ours, theirs) < 1e-12
