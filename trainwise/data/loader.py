"""Batches for the training loop.

Data order is a contract (resume and the parity test rely on it): in epoch ``e`` (1-based) the training
samples are visited in the order ``torch.randperm(n, generator=torch.Generator().manual_seed(seed + e))``,
cut into consecutive batches. Both loaders below follow it.

- :class:`DeviceLoader`: the split lives on the training device; a batch is one indexing operation.
  For datasets of this size it is most of the speed: no per-sample collation, no host-to-device copies.
- :class:`WorkerLoader`: a torch DataLoader (workers, pinned memory) for splits too large for the device.

Data-parallel runs keep the contract: ``batch_size`` is the global batch, and after
``loader.shard(rank, world_size)`` rank ``r`` takes the ``r``-th of ``world_size`` contiguous slices of
every global batch (:meth:`DeviceLoader.rank_part`), so the union of the ranks' batch ``b`` is the
single-process batch ``b``. A last partial batch of ``m`` samples is split into slices whose sizes differ
by at most one; when ``m`` is smaller than the number of ranks, those samples are left out of the epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from trainwise.data import TensorData

Batch = tuple[tuple[torch.Tensor, ...], torch.Tensor]


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The training order of epoch ``epoch`` (see the module docstring)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))


class DeviceLoader:
    rank, world_size = 0, 1  # one process takes whole batches; see shard()

    def __init__(self, data: TensorData, batch_size: int, device: torch.device, shuffle: bool, seed: int = 0, drop_last: bool = False):
        self.data = data.to(device)
        self.batch_size = batch_size
        self.device = device
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last

    def __len__(self) -> int:
        full, rest = divmod(len(self.data), self.batch_size)
        return full + (0 if self.drop_last or rest < self.world_size else 1)

    def shard(self, rank: int, world_size: int) -> DeviceLoader:
        """From now on yield only rank ``rank``'s part of each batch (see the module docstring)."""
        if self.batch_size % world_size:
            raise ValueError(f"the global batch {self.batch_size} does not split over {world_size} processes")
        self.rank, self.world_size = rank, world_size
        return self

    def rank_part(self, b: int) -> tuple[int, int]:
        """Positions ``lo:hi`` in the epoch order of this rank's share of batch ``b``."""
        lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, len(self.data))
        base, extra = divmod(hi - lo, self.world_size)
        lo += self.rank * base + min(self.rank, extra)
        return lo, lo + base + (1 if self.rank < extra else 0)

    def batches(self, epoch: int = 1, start: int = 0) -> Iterator[Batch]:
        """Yield batches of ``epoch``, beginning at batch index ``start`` (for mid-epoch resume)."""
        n = len(self.data)
        order = epoch_order(n, self.seed, epoch).to(self.device) if self.shuffle else None
        for b in range(start, len(self)):
            lo, hi = self.rank_part(b)
            if order is None:
                yield tuple(t[lo:hi] for t in self.data.inputs), self.data.targets[lo:hi]
            else:
                idx = order[lo:hi]
                yield tuple(t[idx] for t in self.data.inputs), self.data.targets[idx]


class _TensorDataset(Dataset):
    def __init__(self, data: TensorData):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        return tuple(t[i] for t in self.data.inputs), self.data.targets[i]


class _OrderSampler(Sampler[int]):
    def __init__(self, order: list[int]):
        self.order = order

    def __iter__(self):
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


class WorkerLoader(DeviceLoader):
    """Same order and batches as DeviceLoader, produced by DataLoader workers into pinned memory."""

    def __init__(self, data: TensorData, batch_size: int, device: torch.device, shuffle: bool, seed: int = 0,
                 drop_last: bool = False, num_workers: int = 2):
        self.data = data  # stays on the host
        self.batch_size, self.device, self.shuffle, self.seed, self.drop_last = batch_size, device, shuffle, seed, drop_last
        self.num_workers = num_workers

    def batches(self, epoch: int = 1, start: int = 0) -> Iterator[Batch]:
        n = len(self.data)
        order = epoch_order(n, self.seed, epoch) if self.shuffle else torch.arange(n)
        order = torch.cat([order[slice(*self.rank_part(b))] for b in range(start, len(self))] or [order[:0]]).tolist()
        loader = DataLoader(
            _TensorDataset(self.data), batch_size=self.batch_size // self.world_size, sampler=_OrderSampler(order),
            num_workers=self.num_workers, pin_memory=self.device.type == "cuda", persistent_workers=False,
        )
        non_blocking = self.device.type == "cuda"
        for inputs, targets in loader:
            yield tuple(t.to(self.device, non_blocking=non_blocking) for t in inputs), targets.to(self.device, non_blocking=non_blocking)


# Splits above this size stream through DataLoader workers instead of living on the device.
DEVICE_RESIDENT_LIMIT_BYTES = 4 * 2**30


def make_loader(data: TensorData, batch_size: int, device: torch.device, *, shuffle: bool, seed: int = 0,
                drop_last: bool = False, mode: str = "auto", num_workers: int = 2) -> DeviceLoader:
    if mode == "dataloader" or (mode == "auto" and data.nbytes() > DEVICE_RESIDENT_LIMIT_BYTES):
        return WorkerLoader(data, batch_size, device, shuffle, seed, drop_last, num_workers)
    return DeviceLoader(data, batch_size, device, shuffle, seed, drop_last)
