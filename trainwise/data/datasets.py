"""Splits served by a torch ``Dataset`` or ``DataLoader`` instead of tensors held in memory.

``fit(train=..., val=..., test=...)`` takes, per split, a tuple of arrays, a map-style ``Dataset``, an
``IterableDataset`` with a ``__len__``, or a ``DataLoader``. A sample is ``(x, y)`` or ``(x, features, y)``
with an integer class id ``y``.

- A ``TensorDataset`` is tensors: it becomes :class:`~trainwise.data.TensorData` and, where it fits,
  lives on the device like arrays do (the fast path).
- Any other map-style Dataset becomes :class:`DatasetData`. Its batches come from one DataLoader, built
  once by trainwise, that visits the samples in trainwise's documented order (trainwise.data.loader).
- A DataLoader with torch's default sampling (``shuffle=True/False``, no sampler of its own): trainwise
  keeps its dataset, batch size, ``collate_fn``, workers and their options, and replaces only the
  sampling, so the order and exact resume are the same as for a Dataset.
- A DataLoader with a sampler or batch sampler of its own, or over an IterableDataset: used as given.
  Each epoch calls ``set_epoch(epoch)`` on its sampler (or dataset) where there is one, and a mid-epoch
  resume skips the batches already trained on by reading past them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, IterableDataset, RandomSampler, SequentialSampler, TensorDataset
from torch.utils.data import default_collate

from trainwise.errors import UserError

# DataLoader settings a user's loader carries over to the loader trainwise builds in its place.
_CARRIED = ("num_workers", "collate_fn", "pin_memory", "timeout", "worker_init_fn", "multiprocessing_context",
            "persistent_workers", "pin_memory_device", "in_order")


@dataclass
class DatasetData:
    """A split read from a Dataset by DataLoader workers (nothing is loaded up front)."""

    dataset: Dataset
    loader: DataLoader | None = None  # a user's DataLoader used as given (its own sampler or an iterable dataset)
    options: dict[str, Any] = field(default_factory=dict)  # DataLoader settings taken over from a user's loader
    batch_size: int | None = None  # a user's DataLoader's batch size
    shuffle: bool | None = None  # a user's DataLoader with default sampling: whether it shuffled
    name: str = "training"

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def iterable(self) -> bool:
        return isinstance(self.dataset, IterableDataset)

    def nbytes(self) -> int:
        return 0  # never moved to the device whole

    def head(self, n: int) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """The first ``n`` samples as one batch ``(inputs, targets)`` (for shape checks and the model check)."""
        if self.loader is not None or self.iterable:
            source = self.loader if self.loader is not None else DataLoader(self.dataset, batch_size=n)
            batch = next(iter(source), None)
            if batch is None:
                raise UserError(f"the {self.name} data yields no batch", expected="at least one sample", fix="check the Dataset or DataLoader")
            inputs, targets = split_batch(batch, self.name)
            return tuple(t[:n] for t in inputs), targets[:n]
        collate = self.options.get("collate_fn") or default_collate
        samples = [self.dataset[i] for i in range(min(n, len(self.dataset)))]
        return split_batch(collate(samples), self.name)


class BatchGroup(NamedTuple):
    """Consecutive batches that one DataLoader fetch carried (a Dataset with ``fetch_group``, see
    trainwise.data.loader): their samples collated as one batch, and how many samples each batch kept."""

    batch: Any
    counts: tuple[int, ...]


def split_batch(batch: Any, name: str = "training") -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """A collated batch ``[x, y]`` or ``[x, features, y]`` -> ``((x,) or (x, features), y)`` with class ids as int64."""
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3) or not all(isinstance(t, torch.Tensor) for t in batch):
        got = type(batch).__name__ if not isinstance(batch, (tuple, list)) else f"a {type(batch).__name__} of {len(batch)}: " + \
            ", ".join(type(t).__name__ for t in batch)
        raise UserError(f"bad {name} samples", expected="samples (x, y) or (x, features, y) that collate to tensors",
                        received=got, fix="make __getitem__ return a tuple of a tensor (or array) and an integer class id")
    *inputs, targets = batch
    if not targets.is_floating_point():
        targets = targets.long()
    return tuple(inputs), targets.reshape(len(targets), *targets.shape[1:])


def as_split(split: Any, name: str):
    """A user's Dataset or DataLoader as the split trainwise trains on (TensorData or DatasetData); None if it is neither."""
    from trainwise.data import TensorData

    if isinstance(split, DataLoader):
        return _from_loader(split, name)
    if isinstance(split, TensorDataset):
        *xs, y = split.tensors
        if not xs or len(xs) > 2:
            raise UserError(f"bad {name} TensorDataset", expected="tensors (x, y) or (x, features, y)", received=f"{len(split.tensors)} tensors")
        return TensorData(tuple(t if t.is_floating_point() else t.float() for t in xs), y.long())
    if isinstance(split, Dataset):
        _check_length(split, name)
        return DatasetData(split, name=name)
    return None


def _check_length(dataset: Dataset, name: str) -> None:
    try:
        n = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        raise UserError(f"the {name} Dataset has no length", expected="a map-style Dataset, or an IterableDataset with __len__",
                        received=type(dataset).__name__, fix="define __len__ (the schedule and the progress need the number of samples)") from None
    if n == 0:
        raise UserError(f"the {name} set is empty", expected="at least one sample", fix="check the Dataset")


def _from_loader(loader: DataLoader, name: str):
    _check_length(loader.dataset, name)
    default_sampling = (not isinstance(loader.dataset, IterableDataset) and isinstance(loader.batch_sampler, BatchSampler)
                        and type(loader.batch_sampler) is BatchSampler and type(loader.sampler) in (RandomSampler, SequentialSampler)
                        and not getattr(loader.sampler, "replacement", False) and getattr(loader.sampler, "_num_samples", None) is None)
    if not default_sampling:
        return DatasetData(loader.dataset, loader=loader, batch_size=loader.batch_size, name=name)
    options = {k: getattr(loader, k) for k in _CARRIED if hasattr(loader, k)}
    if loader.num_workers > 0:
        options["prefetch_factor"] = loader.prefetch_factor
    return DatasetData(loader.dataset, options=options, batch_size=loader.batch_size, shuffle=isinstance(loader.sampler, RandomSampler), name=name)


def dataset_labels(data: DatasetData) -> np.ndarray:
    """All class ids of a split: its ``targets`` attribute (torchvision's convention) or one pass over the samples."""
    targets = getattr(data.dataset, "targets", None)
    if targets is not None:
        return np.asarray(targets.cpu() if isinstance(targets, torch.Tensor) else targets).reshape(-1)
    source = data.loader if data.loader is not None else DataLoader(
        data.dataset, batch_size=256, collate_fn=data.options.get("collate_fn"), num_workers=0)
    labels = [split_batch(batch, data.name)[1].reshape(-1) for batch in source]
    return torch.cat(labels).numpy() if labels else np.zeros(0, dtype=np.int64)
