"""Fixtures of the chaos cases: one small finished run (and its twin, for compare) and new inputs to predict."""

from __future__ import annotations

from pathlib import Path

import pytest

import trainwise
from trainwise.config import Config

SMALL = {"train.epochs": 2, "model.hidden": [16], "checkpoint.every_n_steps": 5, "train.deterministic": True,
         "train.progress": "none", "train.threads": 1}


@pytest.fixture(scope="session")
def pristine(tmp_path_factory) -> Path:
    """A finished run that the cases copy and damage (never changed itself)."""
    return trainwise.fit(Config().replace(SMALL), out=tmp_path_factory.mktemp("pristine") / "run").run_dir


@pytest.fixture(scope="session")
def twin(tmp_path_factory) -> Path:
    return trainwise.fit(Config().replace(SMALL | {"optim.lr": 0.003}), out=tmp_path_factory.mktemp("twin") / "run").run_dir


@pytest.fixture(scope="session")
def inputs(tmp_path_factory) -> Path:
    from tests.chaos.harness import new_inputs

    return new_inputs(tmp_path_factory.mktemp("inputs") / "x.npy")
