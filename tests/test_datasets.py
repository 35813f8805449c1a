"""Training on a torch Dataset or DataLoader: the same numbers as the array path, exact resume after a kill.

Digits as (1, 8, 8) images; an MLP with dropout (so a resumed run must restore the random stream too).
Run as a script (``python tests/test_datasets.py KIND OUT``) it trains KIND into OUT: the kill tests start it
with TRAINWISE_FAULT so that it dies at a chosen step.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trainwise  # noqa: E402
from tests.helpers import ROOT, cli_env, same_weights, without_times  # noqa: E402
from trainwise.config import Config  # noqa: E402
from trainwise.data.loader import DatasetLoader, DeviceLoader  # noqa: E402
from trainwise.errors import UserError  # noqa: E402

SETTINGS = {"train.epochs": 2, "optim.lr": 0.01, "model.hidden": [32], "model.dropout": 0.1, "schedule.name": "cosine", "schedule.warmup_epochs": 1,
            "data.batch_size": 64, "checkpoint.every_n_steps": 5, "train.progress": "none", "train.threads": 1,
            "train.deterministic": True, "data.num_workers": 0,
            "data.normalize": False}  # a Dataset's inputs are used as given; the arrays they are compared with too


def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images[:, None] / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target)
    return (x[:1400], y[:1400]), (x[1400:], y[1400:])


class Digits(Dataset):
    """A plain map-style Dataset: one sample per __getitem__, the label as a Python int."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


class Stream(IterableDataset):
    """An iterable dataset with a stated length; it reverses its order in even epochs (set_epoch)."""

    def __init__(self, x, y):
        self.x, self.y, self.epoch = x, y, 0

    def __len__(self):
        return len(self.y)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __iter__(self):
        order = range(len(self.y) - 1, -1, -1) if self.epoch % 2 == 0 else range(len(self.y))
        return ((self.x[i], int(self.y[i])) for i in order)


def splits(kind: str):
    (x, y), (xv, yv) = digits()
    if kind == "tensor":
        return TensorDataset(x, y), TensorDataset(xv, yv)
    if kind == "dataset":
        return Digits(x, y), Digits(xv, yv)
    if kind == "workers":  # the same Dataset read by two persistent workers
        return Digits(x, y), Digits(xv, yv)
    raise ValueError(kind)


def config(kind: str) -> Config:
    return Config().replace({**SETTINGS, **({"data.num_workers": 2} if kind == "workers" else {})})


@pytest.fixture(scope="module")
def array_run():
    (x, y), (xv, yv) = digits()
    return trainwise.fit(config("dataset"), train=(x, y), val=(xv, yv))


@pytest.mark.parametrize("kind", ["tensor", "dataset", "workers"])
def test_dataset_trains_like_the_arrays(kind, array_run):
    train, val = splits(kind)
    trainer = trainwise.Trainer(config(kind), data=trainwise.data.from_arrays(train, val))
    # a TensorDataset is tensors: it stays on the device; any other Dataset goes through one DataLoader
    assert type(trainer.train_loader) is (DeviceLoader if kind == "tensor" else DatasetLoader)
    run = trainer.fit()
    assert same_weights(run.model.state_dict(), array_run.model.state_dict())
    assert without_times(run.history.records) == without_times(array_run.history.records)
    assert run.summary["num_classes"] == 10 and run.history.records[-1]["val_acc"] > 0.5


def test_a_ready_dataloader_keeps_its_batch_size_and_the_order_contract(array_run):
    (x, y), (xv, yv) = digits()
    loader = DataLoader(Digits(x, y), batch_size=64, shuffle=True, num_workers=0)
    run = trainwise.fit(config("dataset").replace({"data.batch_size": 32}), train=loader, val=Digits(xv, yv))
    assert run.config.data.batch_size == 64  # the loader's, recorded in the config
    assert same_weights(run.model.state_dict(), array_run.model.state_dict())


def test_a_dataloader_with_its_own_order_is_used_as_given(quiet):
    (x, y), (xv, yv) = digits()
    stream = Stream(x, y)
    seen: list[tuple[int, int]] = []

    class FirstLabel(trainwise.Callback):
        def on_batch_start(self, state):
            if state.batch_index == 0:
                seen.append((state.epoch, int(state.targets[0])))

    run = trainwise.fit(Config().replace({**quiet, "train.epochs": 2, "model.hidden": [16]}), train=DataLoader(stream, batch_size=100),
                        val=(xv, yv), callbacks=[FirstLabel()])
    assert run.summary["steps"] == 2 * 14  # len(stream) / 100 per epoch
    assert seen == [(1, int(y[0])), (2, int(y[-1]))]  # set_epoch(epoch) reached the dataset before each epoch


def test_the_dataloader_is_built_once(monkeypatch, quiet):
    built = []
    original = DataLoader.__init__

    def counting(self, *args, **kwargs):
        built.append(kwargs.get("batch_sampler"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(DataLoader, "__init__", counting)
    train, val = splits("dataset")
    trainwise.fit(Config().replace({**quiet, "train.epochs": 3, "model.hidden": [16], "data.num_workers": 0}), train=train, val=val)
    # training and validation: one DataLoader each, whatever the number of epochs
    assert len([b for b in built if b is not None]) == 2


def test_bad_datasets_are_user_errors(quiet):
    (x, y), _ = digits()

    class NoLabel(Digits):
        def __getitem__(self, i):
            return self.x[i]

    class Unsized(IterableDataset):
        def __iter__(self):
            return iter([])

    with pytest.raises(UserError, match="bad training samples.*expected samples \\(x, y\\)"):
        trainwise.fit(Config().replace(quiet), train=NoLabel(x, y))
    with pytest.raises(UserError, match="has no length"):
        trainwise.fit(Config().replace(quiet), train=Unsized())

    class Negative(Digits):
        def __getitem__(self, i):
            return self.x[i], -1

    with pytest.raises(UserError, match="not class ids"):
        trainwise.fit(Config().replace(quiet), train=Negative(x, y))
    # digits 0-9 shifted to 20-29: not K = 30 with twenty empty classes
    with pytest.raises(UserError, match=r"not the class ids 0..K-1; expected each of 0..29.*received 10 distinct values: 20, 21"):
        trainwise.fit(Config().replace(quiet), train=Digits(x, y + 20))
    with pytest.raises(UserError, match="validation labels hold classes that the training labels lack.*received 9"):
        trainwise.fit(Config().replace(quiet), train=Digits(x[y < 9], y[y < 9]), val=Digits(x, y))
    from trainwise.data import from_arrays

    # classes meant to be 0..9 where the training split lacks one: say K, and it trains
    data = from_arrays(Digits(x[y != 4], y[y != 4]), num_classes=10)
    run = trainwise.fit(Config().replace({**quiet, "train.epochs": 1}), data=data)
    assert data.num_classes == 10 and run.model(torch.zeros(1, 1, 8, 8)).shape == (1, 10)


@pytest.mark.parametrize("kind", ["tensor", "dataset", "workers"])
def test_sigkill_mid_epoch_then_resume_is_bit_identical(kind, tmp_path):
    train, val = splits(kind)
    straight = trainwise.fit(config(kind), train=train, val=val, out=tmp_path / "straight")
    # killed right after step 13 (last checkpoint: step 10, inside epoch 1 of 22 steps)
    proc = subprocess.run([sys.executable, __file__, kind, str(tmp_path / "run")], capture_output=True, text=True,
                          env=cli_env(TRAINWISE_FAULT="step@13"), cwd=ROOT, timeout=300)
    assert proc.returncode == -9, proc.stderr
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["step"] == 10
    train, val = splits(kind)
    resumed = trainwise.resume(tmp_path / "run", train=train, val=val)
    assert same_weights(straight.model.state_dict(), resumed.model.state_dict())
    assert without_times(straight.history.records) == without_times(resumed.history.records)


if __name__ == "__main__":
    kind, out = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    train, val = splits(kind)
    trainwise.fit(config(kind), train=train, val=val, out=out)
    os._exit(0)
