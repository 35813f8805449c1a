"""The data-order contract of data-parallel runs, checked without starting processes."""

import pytest
import torch

from tests.helpers import worker_loader
from trainwise import distributed
from trainwise.config import Config
from trainwise.data import TensorData
from trainwise.data.loader import DeviceLoader, epoch_order
from trainwise.errors import UserError


def data(n: int) -> TensorData:
    return TensorData((torch.arange(n, dtype=torch.float32).unsqueeze(1),), torch.arange(n))


def rank_loaders(cls, n, batch, world, drop_last=False):
    extra = {"num_workers": 0} if cls is worker_loader else {}
    return [cls(data(n), batch, torch.device("cpu"), shuffle=True, seed=5, drop_last=drop_last, **extra).shard(r, world) for r in range(world)]


@pytest.mark.parametrize("cls", [DeviceLoader, worker_loader])
@pytest.mark.parametrize("n, batch, world", [(103, 16, 2), (100, 12, 3), (64, 32, 2), (33, 16, 2)])
def test_union_of_rank_batches_is_the_single_process_batch(cls, n, batch, world):
    single = DeviceLoader(data(n), batch, torch.device("cpu"), shuffle=True, seed=5)
    ranks = rank_loaders(cls, n, batch, world)
    assert len({len(r) for r in ranks}) == 1  # every rank takes the same number of steps
    for epoch in (1, 2):
        per_rank = [[t for _, t in r.batches(epoch)] for r in ranks]
        for b, (_, expected) in enumerate(single.batches(epoch)):
            if b == len(ranks[0]):  # a last batch smaller than the number of ranks is left out
                assert len(expected) < world
                break
            parts = [p[b] for p in per_rank]
            assert torch.equal(torch.cat(parts), expected), (epoch, b)
            assert max(map(len, parts)) - min(map(len, parts)) <= 1 and min(map(len, parts)) > 0
    # the contract itself: in epoch 1, rank 1's first batch is the second slice of the epoch order
    share = batch // world
    assert torch.equal(next(ranks[1].batches(1))[1], epoch_order(n, 5, 1)[share : 2 * share])


@pytest.mark.parametrize("cls", [DeviceLoader, worker_loader])
def test_mid_epoch_start_and_drop_last(cls):
    ranks = rank_loaders(cls, 103, 16, 2, drop_last=True)
    assert len(ranks[0]) == 6
    for r in ranks:
        everything = [t for _, t in r.batches(3)]
        assert all(len(t) == 8 for t in everything)
        assert [t.tolist() for _, t in r.batches(3, start=4)] == [t.tolist() for t in everything[4:]]


def test_eval_shards_cover_the_split_once():
    for n, world in ((360, 2), (7, 3), (2, 4)):
        bounds = [distributed.shard_bounds(n, r, world) for r in range(world)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        sizes = [hi - lo for lo, hi in bounds]
        assert max(sizes) - min(sizes) <= 1


def test_not_launched_means_single_process():
    ctx = distributed.setup(Config(), torch.device("cpu"))
    assert not ctx.active and ctx.world_size == 1 and ctx.global_batch == 64 and ctx.is_main


def test_config_mistakes_fail_before_any_process_group(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(UserError, match="does not split over 3 processes"):
        distributed.setup(Config(), torch.device("cpu"))
    with pytest.raises(UserError, match="sync_batchnorm needs GPUs"):
        distributed.setup(Config().replace({"train.sync_batchnorm": True}), torch.device("cpu"))
    assert not torch.distributed.is_initialized()


def test_a_failed_collective_reads_as_one_line():
    gloo = RuntimeError("Got the following error when running the callback: RuntimeError: [/src/gloo/transport/tcp/pair.cc:537] "
                        "Read error [127.0.0.1]:56725: Connection reset by peer. This is likely a remote worker crashing")
    assert distributed._is_collective_error(gloo) and not distributed._is_collective_error(RuntimeError("shape mismatch"))
    assert distributed._cause(str(gloo)) == "Read error [127.0.0.1]:56725: Connection reset by peer"
    assert distributed._cause("[/x/unbound_buffer.cc:78] Timed out waiting 4000ms for recv operation to complete") == \
        "Timed out waiting 4000ms for recv operation to complete"
