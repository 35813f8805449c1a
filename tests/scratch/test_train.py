"""Training the NumPy MLP on scikit-learn's digits."""

from __future__ import annotations

import numpy as np
import pytest

from trainwise.scratch.optimizers import SGD
from trainwise.scratch.train import load_digits_split, main, minibatches, train_digits


def test_digits_split_is_real_data() -> None:
    x_train, x_test, y_train, y_test = load_digits_split()
    assert x_train.shape == (1437, 64) and x_test.shape == (360, 64)
    assert 0.0 <= x_train.min() and x_train.max() == 1.0
    assert set(np.unique(y_test)) == set(range(10))


def test_minibatches_cover_every_example_once() -> None:
    batches = list(minibatches(10, 4, np.random.default_rng(0)))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate(batches)) == list(range(10))


def test_adam_reaches_95_percent_on_digits() -> None:
    result = train_digits(seed=0)
    assert result.test_accuracy >= 0.95
    assert result.epoch_losses[-1] < 0.25 * result.epoch_losses[0]


def test_sgd_momentum_reaches_95_percent_on_digits() -> None:
    result = train_digits(seed=1, lr=0.1, make_optimizer=lambda p, lr: SGD(p, lr=lr, momentum=0.9))
    assert result.test_accuracy >= 0.95


def test_main_reports_accuracy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "epoch   2  train loss" in out
    assert "test accuracy" in out
