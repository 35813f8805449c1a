"""The prepared-splits cache: a hit returns the same tensors without preparing again; anything that changes the data misses."""

from __future__ import annotations

import pytest
import torch

from trainwise.config import DataConfig
from trainwise.data import cache, prepare_data


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINWISE_CACHE", str(tmp_path))
    return tmp_path / "data"


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for s in ("train", "val", "test")
               for x, y in zip((*getattr(a, s).inputs, getattr(a, s).targets), (*getattr(b, s).inputs, getattr(b, s).targets)))


def _forbid_loading(monkeypatch):
    def refuse(cfg):
        raise AssertionError("prepared again instead of read from the cache")

    monkeypatch.setattr("trainwise.data.load_raw", refuse)


def test_second_preparation_is_read_from_the_cache(cache_dir, monkeypatch):
    first = prepare_data(DataConfig(name="digits"))
    assert len(list(cache_dir.glob("digits-*.safetensors"))) == 1
    _forbid_loading(monkeypatch)
    second = prepare_data(DataConfig(name="digits", batch_size=7))  # batching does not change the splits
    assert _same(first, second)
    assert (second.num_classes, second.task, second.class_names, second.normalization) == (
        first.num_classes, first.task, first.class_names, first.normalization)


def test_a_key_that_changes_the_splits_misses(cache_dir, monkeypatch):
    prepare_data(DataConfig(name="digits"))
    _forbid_loading(monkeypatch)
    for changed in ({"val_fraction": 0.2}, {"split_seed": 1}, {"normalize": False}, {"classes": [0, 1, 2]}):
        with pytest.raises(AssertionError, match="prepared again"):
            prepare_data(DataConfig(name="digits", **changed))


def test_a_damaged_cache_file_is_prepared_again(cache_dir):
    first = prepare_data(DataConfig(name="breast_cancer"))
    (path,) = cache_dir.glob("breast_cancer-*.safetensors")
    raw = bytearray(path.read_bytes())
    path.write_bytes(bytes(raw[: len(raw) // 2]))  # truncated, as by a full disk
    assert cache.load(DataConfig(name="breast_cancer")) is None
    again = prepare_data(DataConfig(name="breast_cancer"))
    assert _same(first, again)
    assert cache.load(DataConfig(name="breast_cancer")) is not None  # rewritten whole


def test_damaged_bytes_inside_a_tensor_are_a_miss_not_wrong_data(cache_dir):
    first = prepare_data(DataConfig(name="digits"))
    (path,) = cache_dir.glob("digits-*.safetensors")
    raw = bytearray(path.read_bytes())
    raw[-100:-68] = bytes(32)  # 32 bytes inside the last tensor's data
    path.write_bytes(bytes(raw))
    assert cache.load(DataConfig(name="digits")) is None
    assert _same(first, prepare_data(DataConfig(name="digits")))


def test_cache_off_writes_nothing(cache_dir):
    prepare_data(DataConfig(name="digits", cache=False))
    assert not cache_dir.exists() or not list(cache_dir.iterdir())
