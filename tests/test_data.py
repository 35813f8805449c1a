import gzip

import numpy as np
import pytest
import torch

from trainwise.config import DataConfig
from trainwise.data import from_arrays, prepare_data
from trainwise.data.loader import DeviceLoader, epoch_order
from trainwise.data.sources import DEBIAN_FASHION_DIR, fashion_mnist_dir
from tests.helpers import worker_loader
from trainwise.errors import UserError


def test_digits_split_and_train_only_normalization():
    d = prepare_data(DataConfig(name="digits", val_fraction=0.1, test_fraction=0.2))
    assert d.num_classes == 10 and d.task == "multiclass" and d.input_shape == (1, 8, 8)
    n = len(d.train) + len(d.val) + len(d.test)
    assert n == 1797 and len(d.test) == 360
    x = d.train.inputs[0]
    # standardized with training statistics: the training split has mean 0 and std 1 exactly ...
    assert abs(x.mean().item()) < 1e-4 and abs(x.std(unbiased=False).item() - 1) < 1e-4
    # ... and the held-out splits do not (they were not used for the statistics)
    assert abs(d.test.inputs[0].mean().item()) > 1e-4


def test_breast_cancer_is_binary_with_per_feature_scaling():
    d = prepare_data(DataConfig(name="breast_cancer"))
    assert d.task == "binary" and d.num_classes == 2 and d.input_shape == (30,)
    assert torch.allclose(d.train.inputs[0].mean(0), torch.zeros(30), atol=1e-4)


def test_mnist1d_offline():
    d = prepare_data(DataConfig(name="mnist1d"))
    assert d.input_shape == (40,) and len(d.test) == 1000 and d.num_classes == 10


@pytest.mark.skipif(not (DEBIAN_FASHION_DIR and __import__("os").path.exists(DEBIAN_FASHION_DIR)), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_from_idx_and_class_subset():
    d = prepare_data(DataConfig(name="fashion_mnist", classes=[5, 7, 9], val_fraction=0.1))
    assert d.input_shape == (1, 28, 28) and d.num_classes == 3
    assert d.class_names == ["Sandal", "Sneaker", "Ankle boot"] and len(d.test) == 3000


def test_fashion_mnist_missing_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINWISE_DATA", str(tmp_path))
    monkeypatch.setattr("trainwise.data.sources.DEBIAN_FASHION_DIR", str(tmp_path / "nothing"))
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        fashion_mnist_dir(None)


def test_truncated_idx_is_reported(tmp_path, monkeypatch):
    header = bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    for stem in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        with gzip.open(tmp_path / f"{stem}.gz", "wb") as f:
            f.write(header + bytes(100))  # far fewer than 10*28*28 pixels
    for stem in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(tmp_path / f"{stem}.gz", "wb") as f:
            f.write(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + bytes(10))
    with pytest.raises(UserError, match="truncated"):
        prepare_data(DataConfig(name="fashion_mnist", path=str(tmp_path)))


def test_npz_arrays_with_nan_names_the_sample(tmp_path):
    x = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    x[17, 2] = np.nan
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(50) % 2)
    with pytest.raises(UserError, match="sample 17"):
        prepare_data(DataConfig(name="arrays", path=str(tmp_path / "d.npz")))


def test_labels_out_of_range(tmp_path):
    x = np.zeros((10, 3), np.float32)
    with pytest.raises(UserError, match=r"not class ids 0..2; .*received label values \{-1, 0, 1\}"):
        from_arrays((x, np.array([0, 1, 0, 1, -1, 0, 1, 0, 1, 0])))
    with pytest.raises(UserError, match="label -1 at sample 4"):
        from_arrays((x, np.array([0, 1, 0, 1, -1, 0, 1, 0, 1, 0])), num_classes=2)
    with pytest.raises(UserError, match="out of range"):
        from_arrays((x, np.arange(10) % 3), num_classes=2)


def test_csv_with_text_labels(tmp_path):
    rows = ["a,b,label"] + [f"{i},{i % 3},{'cat' if i % 2 else 'dog'}" for i in range(40)]
    (tmp_path / "d.csv").write_text("\n".join(rows))
    d = prepare_data(DataConfig(name="csv", path=str(tmp_path / "d.csv"), target="label"))
    assert d.class_names == ["cat", "dog"] and d.task == "binary" and d.input_shape == (2,)


def test_empty_csv(tmp_path):
    (tmp_path / "e.csv").write_text("a,y\n")
    with pytest.raises(UserError, match="no data rows"):
        prepare_data(DataConfig(name="csv", path=str(tmp_path / "e.csv")))


def test_unknown_dataset_suggests():
    with pytest.raises(UserError, match="did you mean 'digits'"):
        prepare_data(DataConfig(name="digit"))


def test_loaders_follow_the_documented_order():
    d = prepare_data(DataConfig(name="digits"))
    dev = DeviceLoader(d.train, 100, torch.device("cpu"), shuffle=True, seed=3)
    wrk = worker_loader(d.train, 100, torch.device("cpu"), shuffle=True, seed=3, num_workers=0)
    order = epoch_order(len(d.train), 3, 2)
    first_dev, first_wrk = next(dev.batches(2)), next(wrk.batches(2))
    assert torch.equal(first_dev[1], d.train.targets[order[:100]])
    assert torch.equal(first_wrk[1], first_dev[1]) and torch.equal(first_wrk[0][0], first_dev[0][0])
    # resuming at batch 3 yields exactly the tail of the epoch
    tail = list(dev.batches(2, start=3))
    assert len(tail) == len(dev) - 3 and torch.equal(tail[0][1], d.train.targets[order[300:400]])


def test_two_classes_are_a_binary_task_whatever_the_source(tmp_path):
    d = prepare_data(DataConfig(name="digits", classes=[3, 8]))
    assert d.task == "binary" and d.num_classes == 2
    x = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    np.savez(tmp_path / "two.npz", x=x, y=np.arange(60) % 2)
    assert prepare_data(DataConfig(name="arrays", path=str(tmp_path / "two.npz"))).task == "binary"
