"""Short real runs for the technique callbacks: a small CNN on scikit-learn's digits (8x8 images)."""

import pytest

from trainwise.config import Config


@pytest.fixture
def cnn_config(quiet):
    def make(**overrides) -> Config:
        base = {**quiet, "model.name": "cnn", "model.channels": [8, 16], "train.epochs": 2, "data.batch_size": 64,
                "optim.lr": 2e-2}
        return Config().replace({**base, **overrides})

    return make
