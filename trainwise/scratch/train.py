"""Mini-batch training of a small MLP on scikit-learn's digits.

The 8x8 digit images (1,797 of them, bundled with scikit-learn, so nothing
is downloaded) are split 80/20 with stratification, scaled to [0, 1] and fed
to a 64-64-10 ReLU/softmax network trained with Adam on mini-batches.
``python -m trainwise.scratch.train`` prints the per-epoch loss and the test
accuracy.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from trainwise.scratch.layers import ReLU, Softmax
from trainwise.scratch.losses import CrossEntropy
from trainwise.scratch.network import Network, mlp
from trainwise.scratch.optimizers import Adam, Optimizer


@dataclass
class TrainResult:
    """What ``train_digits`` measured."""

    network: Network
    train_accuracy: float
    test_accuracy: float
    epoch_losses: list[float] = field(default_factory=list)


def minibatches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Index arrays covering ``range(n)`` in a fresh random order, ``batch_size`` at a time.

    ``batch_size = n`` gives batch gradient descent, ``1`` stochastic gradient
    descent, anything between mini-batch gradient descent.
    """
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def load_digits_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``x_train, x_test, y_train, y_test`` for digits: 80/20 stratified, pixels in [0, 1]."""
    x, y = load_digits(return_X_y=True)
    x = x / 16.0  # pixel intensities are 0..16
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
    return x_train, x_test, y_train, y_test


def accuracy(net: Network, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose predicted class equals ``y``."""
    return float(np.mean(net.predict(x) == y))


def train_digits(
    hidden: int = 64,
    epochs: int = 30,
    batch_size: int = 32,
    lr: float = 5e-3,
    seed: int = 0,
    make_optimizer: Callable[[list[np.ndarray], float], Optimizer] = lambda p, lr: Adam(p, lr=lr),
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a ``64-hidden-10`` ReLU/softmax MLP on digits with mini-batch updates.

    ``log``, if given, receives one line per epoch.  The run is deterministic
    for a given ``seed``.
    """
    x_train, x_test, y_train, y_test = load_digits_split(seed)
    rng = np.random.default_rng(seed)
    net = mlp([x_train.shape[1], hidden, 10], ReLU, Softmax, init="he", rng=rng)
    opt, loss = make_optimizer(net.parameters(), lr), CrossEntropy()

    result = TrainResult(net, 0.0, 0.0)
    for epoch in range(1, epochs + 1):
        total = 0.0
        for idx in minibatches(len(x_train), batch_size, rng):
            value, grads = net.loss_and_grads(x_train[idx], y_train[idx], loss)
            opt.step(grads)
            total += value * len(idx)
        result.epoch_losses.append(total / len(x_train))
        if log is not None:
            log(f"epoch {epoch:3d}  train loss {result.epoch_losses[-1]:.4f}")
    result.train_accuracy = accuracy(net, x_train, y_train)
    result.test_accuracy = accuracy(net, x_test, y_test)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Train on digits and print the loss per epoch and the final accuracies; returns 0.

    ``argv=None`` means the defaults (not ``sys.argv``).
    """
    parser = argparse.ArgumentParser(
        prog="python -m trainwise.scratch.train", description="Train the NumPy MLP on scikit-learn digits."
    )
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args([] if argv is None else argv)
    result = train_digits(args.hidden, args.epochs, args.batch_size, args.lr, args.seed, log=print)
    print(f"train accuracy {result.train_accuracy:.4f}")
    print(f"test accuracy  {result.test_accuracy:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
