"""Memory-mapped .npy files (data.name = "npy"): the same splits, normalization and training as an NPZ file."""

from __future__ import annotations

import numpy as np
import pytest

import trainwise
from tests.helpers import same_weights, without_times
from trainwise.config import Config, DataConfig
from trainwise.data import prepare_data
from trainwise.data.npy import NpyDataset
from trainwise.errors import UserError

TRAIN = {"train.epochs": 2, "model.hidden": [32], "model.dropout": 0.1, "train.progress": "none", "train.threads": 1,
         "train.report": False, "data.num_workers": 0}


@pytest.fixture(scope="module")
def digits_files(tmp_path_factory):
    from sklearn.datasets import load_digits

    d = load_digits()
    root = tmp_path_factory.mktemp("npy")
    x = (d.images[:, None] / 16.0).astype(np.float32)
    np.save(root / "x.npy", x)
    np.save(root / "y.npy", d.target)
    np.savez(root / "digits.npz", x=x, y=d.target)
    return root


def test_streamed_npy_trains_like_the_npz_on_the_device(digits_files):
    npz = trainwise.fit(Config().replace({**TRAIN, "data.name": "arrays", "data.path": str(digits_files / "digits.npz")}))
    streamed = Config().replace({**TRAIN, "data.name": "npy", "data.path": str(digits_files), "data.loader": "dataloader"})
    data = prepare_data(streamed.data)
    assert isinstance(data.train.dataset, NpyDataset)  # rows read from the memory map, nothing loaded whole
    assert data.normalization == npz.data.normalization
    run = trainwise.fit(streamed)
    assert same_weights(run.model.state_dict(), npz.model.state_dict())
    assert without_times(run.history.records) == without_times(npz.history.records)
    # small enough for the device: data.loader = "auto" reads it whole and takes the device-resident path
    resident = prepare_data(DataConfig(name="npy", path=str(digits_files)))
    assert not hasattr(resident.train, "dataset") and len(resident.train) == len(data.train)


def test_npy_with_two_workers_and_a_test_file(digits_files, tmp_path):
    x, y = np.load(digits_files / "x.npy"), np.load(digits_files / "y.npy")
    for name, a in (("x", x[:1500]), ("y", y[:1500]), ("x_test", x[1500:]), ("y_test", y[1500:])):
        np.save(tmp_path / f"{name}.npy", a)
    cfg = Config().replace({**TRAIN, "train.epochs": 4, "optim.lr": 3e-3, "data.name": "npy", "data.path": str(tmp_path),
                            "data.loader": "dataloader", "data.num_workers": 2})
    run = trainwise.fit(cfg)
    assert sum(map(sum, run.summary["test"]["confusion"])) == 297 and run.summary["test"]["acc"] > 0.8


def test_npy_mistakes(tmp_path):
    with pytest.raises(UserError, match="needs a directory"):
        prepare_data(DataConfig(name="npy"))
    with pytest.raises(UserError, match="x.npy not found"):
        prepare_data(DataConfig(name="npy", path=str(tmp_path)))
    np.save(tmp_path / "x.npy", np.zeros((10, 3), np.float32))
    np.save(tmp_path / "y.npy", np.array(["a"] * 10))
    with pytest.raises(UserError, match="not numeric"):
        prepare_data(DataConfig(name="npy", path=str(tmp_path), loader="dataloader"))
