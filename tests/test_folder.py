"""Image folders (data.name = "folder"): the digits written as PNG files train like the digits arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import trainwise
from trainwise.config import Config, DataConfig
from trainwise.data import prepare_data
from trainwise.data.folder import FolderDataset
from trainwise.errors import UserError

TRAIN = {"train.epochs": 15, "optim.lr": 3e-3, "train.progress": "none", "train.threads": 1, "train.report": False,
         "doctor.live": False, "monitors.enabled": False}


def write_digits(root, split_dirs: bool = False):
    """The 1797 digits as 8x8 grayscale PNG files, one folder per class (values 0..16 scaled to 0..255)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    for i, (img, y) in enumerate(zip(d.images, d.target)):
        split = ("test" if i % 5 == 0 else "train") if split_dirs else ""
        folder = root / split / f"digit{y}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(img * 255 / 16).astype(np.uint8), mode="L").save(folder / f"{i:04d}.png")
    return root


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    return write_digits(tmp_path_factory.mktemp("digits"))


def test_folder_reads_classes_splits_and_shapes(digits_folder):
    d = prepare_data(DataConfig(name="folder", path=str(digits_folder)))
    assert d.class_names == [f"digit{k}" for k in range(10)] and d.num_classes == 10 and d.input_shape == (1, 8, 8)
    assert isinstance(d.train.dataset, FolderDataset)  # file names only: nothing decoded up front
    assert len(d.train) + len(d.val) + len(d.test) == 1797 and len(d.test) == 360
    # stratified: every class keeps its share in the test split
    counts = np.bincount(d.test.dataset.targets, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38
    again = prepare_data(DataConfig(name="folder", path=str(digits_folder)))
    assert again.test.dataset.files == d.test.dataset.files  # seeded
    x, y = d.train.dataset[0]
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32 and isinstance(y, int)
    big = prepare_data(DataConfig(name="folder", path=str(digits_folder), image_size=(16, 12), channels=3, normalize=False))
    assert big.input_shape == (3, 16, 12) and big.train.dataset[0][0].shape == (3, 16, 12)


def test_folder_trains_to_the_accuracy_of_the_arrays(digits_folder):
    arrays = trainwise.fit(Config().replace(TRAIN))
    folder = trainwise.fit(Config().replace({**TRAIN, "data.name": "folder", "data.path": str(digits_folder), "data.num_workers": 2}))
    # different files land in the splits (the orders differ), so the two test sets differ: 360 samples each,
    # one standard error of an accuracy near 0.96 is about 0.01
    assert arrays.summary["test"]["acc"] > 0.93
    assert abs(folder.summary["test"]["acc"] - arrays.summary["test"]["acc"]) <= 0.03, (folder.summary["test"], arrays.summary["test"])


def test_given_train_and_test_folders(tmp_path):
    write_digits(tmp_path, split_dirs=True)
    d = prepare_data(DataConfig(name="folder", path=str(tmp_path), val_fraction=0.1))
    assert len(d.test) == 360 and all("/test/" in f for f in d.test.dataset.files)
    assert len(d.train) + len(d.val) == 1797 - 360


def test_progressive_phases_set_the_decode_size(digits_folder):
    seen = {}

    class Shapes(trainwise.Callback):
        order = 0  # before augmentation and resizing: what the loader decoded

        def on_batch_start(self, state):
            seen.setdefault(state.epoch, tuple(state.inputs[0].shape[1:]))

    cfg = Config().replace({**TRAIN, "train.epochs": 2, "data.name": "folder", "data.path": str(digits_folder), "data.num_workers": 0,
                            "data.image_size": 16, "model.name": "cnn", "model.channels": [8],
                            "progressive.phases": [{"epoch": 1, "resolution": 8}, {"epoch": 2, "resolution": 16}]})
    trainwise.fit(cfg, callbacks=[Shapes()])
    assert seen == {1: (1, 8, 8), 2: (1, 16, 16)}


@pytest.mark.parametrize("workers", [0, 2])
def test_a_corrupt_image_is_named(digits_folder, tmp_path, workers):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(digits_folder, bad)
    (bad / "digit3" / "0003.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    cfg = Config().replace({**TRAIN, "train.epochs": 1, "data.name": "folder", "data.path": str(bad), "data.num_workers": workers})
    with pytest.raises(UserError, match=r"cannot decode image .*digit3/0003.png.*skip_corrupt") as err:
        trainwise.fit(cfg)
    assert "\n" not in str(err.value) and "Traceback" not in str(err.value)


def test_skip_corrupt_leaves_the_file_out_and_counts_it(digits_folder, tmp_path, caplog):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(digits_folder, bad)
    broken = sorted((bad / "digit3").iterdir())[:10]
    for path in broken:
        path.write_bytes(b"not an image")
    cfg = Config().replace({**TRAIN, "train.epochs": 1, "data.name": "folder", "data.path": str(bad), "data.skip_corrupt": True,
                            "data.num_workers": 2, "data.normalize": False})
    trainer = trainwise.Trainer(cfg)
    in_split = lambda split: sum(f in {str(p) for p in broken} for f in split.dataset.files)  # noqa: E731
    assert in_split(trainer.data.train) > 0
    import multiprocessing

    before = set(multiprocessing.active_children())
    with caplog.at_level("WARNING", logger="trainwise"):
        run = trainer.fit()
    assert not set(multiprocessing.active_children()) - before  # the run's DataLoader workers ended with it
    assert trainer.train_loader.skipped == in_split(trainer.data.train)
    assert f"left out {in_split(trainer.data.train)} corrupt image(s) of the training data in epoch 1" in caplog.text
    assert sum(map(sum, run.summary["test"]["confusion"])) == len(trainer.data.test) - in_split(trainer.data.test)


def test_folder_mistakes_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="needs a directory"):
        prepare_data(DataConfig(name="folder"))
    with pytest.raises(UserError, match="not found"):
        prepare_data(DataConfig(name="folder", path=str(tmp_path / "missing")))
    (tmp_path / "only").mkdir()
    with pytest.raises(UserError, match="1 class folder"):
        prepare_data(DataConfig(name="folder", path=str(tmp_path)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no images"):
        prepare_data(DataConfig(name="folder", path=str(tmp_path)))


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("shared_memory,grouped", [(False, True), (False, False), (True, False)])  # groups go by value
def test_batched_fetch_gives_the_per_sample_batches_in_the_same_order(digits_folder, monkeypatch, workers, shared_memory, grouped):
    """Workers decode whole batches into uint8 arrays, finished in the workers (CPU training) or on the
    training device (raw uint8 batches, as for a GPU), sent by value (small batches) or in shared memory,
    several small batches to a fetch or one: either way the batches are those of one ``dataset[i]`` per
    sample, collated, bit for bit, in the documented order."""
    from torch.utils.data import default_collate

    from trainwise.data import folder
    from trainwise.data.loader import epoch_order, loader_options, make_loader

    if shared_memory:
        monkeypatch.setattr(folder, "BY_VALUE_BYTES", 0)  # (before the workers start: they copy the module)
    if not grouped:
        monkeypatch.setattr(folder, "MAX_GROUP", 1)
    assert grouped == (not shared_memory and folder.MAX_GROUP > 1)
    d = prepare_data(DataConfig(name="folder", path=str(digits_folder)))
    ds = d.train.dataset
    assert d.normalization["input"]["std"][0][0][0] != 1.0  # standardized: the device step does it too
    cpu = torch.device("cpu")
    for raw_batches in (False, True):
        loader = make_loader(d.train, 64, cpu, shuffle=True, seed=3, options=loader_options(workers, cpu))
        assert ds.raw_batches is False  # the loader's choice on a CPU: finished in the workers
        ds.raw_batches = raw_batches  # (before the workers start: they copy the dataset)
        order = epoch_order(len(ds), 3, 2)
        got = list(loader.batches(epoch=2))
        assert len(got) == len(loader) == -(-len(ds) // 64)
        # 8x8 digits: 64 floats make 16 KiB, so up to MAX_GROUP batches travel in one fetch
        assert len(loader.plan) == (-(-len(loader) // folder.MAX_GROUP) if grouped else len(loader))
        assert ds.fetch_group(64) == (folder.MAX_GROUP if grouped else 1)
        for b, ((x,), y) in enumerate(got):
            want_x, want_y = default_collate([ds[i] for i in order[b * 64:(b + 1) * 64].tolist()])
            assert x.dtype == torch.float32 and torch.equal(x, want_x) and torch.equal(y, want_y)
        # a resumed epoch starts at its batch: the same batches from there on
        later = list(loader.batches(epoch=2, start=7))
        assert all(torch.equal(a[0][0], b[0][0]) and torch.equal(a[1], b[1]) for a, b in zip(later, got[7:], strict=True))
        # a progressive-resizing phase's height: the per-sample decode at that height
        (small,), ys = next(iter(loader.batches(epoch=1, height=4)))
        want_x, want_y = default_collate([ds[(i, 4)] for i in epoch_order(len(ds), 3, 1)[:64].tolist()])
        assert small.shape == (64, 1, 4, 4) and torch.equal(small, want_x) and torch.equal(ys, want_y)
        # what the DataLoader hands over: one DecodedBatch per batch (whole-batch fetches), uint8 when raw,
        # numpy arrays (by value) or tensors (shared memory)
        loader.plan.batches = [[0, 1, 2]]
        fetched = next(iter(loader.loader))
        assert isinstance(fetched, folder.DecodedBatch) and fetched.pixels.shape[0] == 3
        assert isinstance(fetched.pixels, torch.Tensor) == shared_memory
        assert (fetched.pixels.dtype in (np.uint8, torch.uint8)) == raw_batches
        loader.plan.batches = [[[0, 1], [2]]]  # a group: one array, and the batches' sizes
        fetched = next(iter(loader.loader))
        assert isinstance(fetched, folder.BatchGroup) and fetched.counts == (2, 1) and fetched.batch.pixels.shape[0] == 3


def test_rgb_folder_batches_match_the_samples(digits_folder, tmp_path):
    """Three channels: the workers' (N, H, W, 3) pixels become (N, 3, H, W) on the device, as one sample does."""
    from PIL import Image
    from torch.utils.data import default_collate

    from trainwise.data.loader import make_loader

    for k, path in enumerate(sorted(digits_folder.rglob("*.png"))[::9]):
        gray = np.asarray(Image.open(path))
        rgb = np.stack([gray, 255 - gray, np.roll(gray, 1, axis=1)], axis=-1)  # three different channels
        (tmp_path / path.parent.name).mkdir(exist_ok=True)
        Image.fromarray(rgb, mode="RGB").save(tmp_path / path.parent.name / f"{k:04d}.png")
    d = prepare_data(DataConfig(name="folder", path=str(tmp_path), image_size=(10, 6)))
    ds = d.train.dataset
    assert d.input_shape == (3, 10, 6) and ds.channels == 3
    want_x, want_y = default_collate([ds[i] for i in range(32)])
    for raw_batches in (False, True):
        loader = make_loader(d.train, 32, torch.device("cpu"), shuffle=False, num_workers=0)
        ds.raw_batches = raw_batches
        (x,), y = next(iter(loader.batches()))
        assert x.shape == (32, 3, 10, 6) and x.is_contiguous() and torch.equal(x, want_x) and torch.equal(y, want_y)
    assert not torch.equal(x[:, 0], x[:, 1])  # the channels kept apart


def test_folder_resume_mid_epoch_is_bit_identical(digits_folder, tmp_path):
    """Batches decoded whole, dropout in the model: a run stopped after a mid-epoch checkpoint and resumed
    trains to the weights and history of one uninterrupted run. (In the training process: the test above
    shows that workers give the same batches.)"""
    from tests.helpers import same_weights, stopped_mid_epoch_then_resumed, without_times

    cfg = Config().replace({**TRAIN, "train.epochs": 2, "data.name": "folder", "data.path": str(digits_folder), "data.num_workers": 0,
                            "data.batch_size": 64, "model.hidden": [32], "model.dropout": 0.1, "checkpoint.every_n_steps": 5,
                            "train.deterministic": True})
    straight = trainwise.fit(cfg, out=tmp_path / "a")
    resumed = stopped_mid_epoch_then_resumed(cfg, tmp_path / "b", 13)  # after the checkpoint at step 10, inside epoch 1 (19 steps)
    assert same_weights(straight.model.state_dict(), resumed.model.state_dict())
    assert without_times(straight.history.records) == without_times(resumed.history.records)


def test_the_dataloaders_pin_thread_pins_a_folder_batch_sent_by_value(digits_folder, monkeypatch):
    """On a GPU the DataLoader's pin thread runs torch's ``pin_memory`` over each fetch. The numpy arrays a
    worker sent by value must come out of it as pinned tensors -- a group's too -- so that the training
    thread only starts the copy. (Pinning needs CUDA; the CPU check marks the tensors that would be pinned.)"""
    from torch.utils.data._utils.pin_memory import pin_memory

    from trainwise.data import folder

    pinned = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda t, *a, **k: pinned.append(t) or t)
    ds = prepare_data(DataConfig(name="folder", path=str(digits_folder))).train.dataset
    ds.raw_batches = True
    single = ds.__getitems__([0, 1, 2])
    group = ds.__getitems__([[0, 1], [2]])
    assert isinstance(single.pixels, np.ndarray) and isinstance(group.batch.pixels, np.ndarray)  # sent by value
    out_single, out_group = pin_memory(single), pin_memory(group)
    assert isinstance(out_single, folder.DecodedBatch) and all(isinstance(t, torch.Tensor) for t in out_single)
    assert isinstance(out_group, folder.BatchGroup) and out_group.counts == (2, 1)
    assert all(isinstance(t, torch.Tensor) for t in out_group.batch) and len(pinned) == 4
    assert torch.equal(out_group.batch.pixels, torch.from_numpy(single.pixels))  # the same pixels, now tensors
