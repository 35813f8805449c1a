"""The batch-size finder: the largest training batch that fits in GPU memory.

It measures GPU memory: each candidate batch size runs a few real training steps (forward, backward,
optimizer step, with the config's precision, model and optimizer, the dataset already on the device
as training keeps it) and a CUDA out-of-memory error means "does not fit". The search:

1. start at ``data.batch_size``; on out-of-memory step down (halve) until a batch fits;
2. from there double while batches fit, up to the training-set size (or ``max_batch``);
3. bisect between the largest batch that fit and the smallest that did not, until they are within
   about 3% (1/32) of each other.

It reports the largest batch that fit and the largest power of two that fit (the safer choice: memory
fragments during a long run, and validation batches, ``data.eval_batch_size``, are not part of the
probe). Model, optimizer and random generators are restored afterwards. On a CPU there is no
out-of-memory error to catch (the operating system swaps or kills the process instead), so the command
needs a CUDA device; the Python function accepts any device for testing.
"""

from __future__ import annotations

import gc
import sys
from dataclasses import dataclass, field
from typing import Any

import torch

from trainwise.config import Config
from trainwise.errors import UserError
from trainwise.tools.lr_find import probe_config, probe_step, restore, snapshot


def is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


@dataclass
class BatchSizeResult:
    batch_size: int  # the largest batch that fit
    power_of_two: int  # the largest power of two that fit
    limit: int  # the largest batch considered (training-set size or max_batch)
    device: str
    tried: list[dict[str, Any]] = field(default_factory=list)  # batch, fits, peak_mib (CUDA)

    @property
    def reached_limit(self) -> bool:
        return self.batch_size >= self.limit


def find_batch_size(config: Config, *, model: torch.nn.Module | None = None, data=None, steps: int = 2,
                    max_batch: int | None = None, device: str | None = None) -> BatchSizeResult:
    """Find the largest training batch of ``config`` that fits on its device (see the module docstring)."""
    from trainwise.trainer import Trainer

    cfg = probe_config(config)
    if device is not None:
        cfg = cfg.replace({"train.device": device})
    trainer = Trainer(cfg, model=model, data=data)
    if trainer.device.type != "cuda" and device is None:
        raise UserError("the batch-size finder measures GPU memory, and this run is not on a CUDA device",
                        received=str(trainer.device), fix="run it on a machine with a GPU (train.device = auto or cuda)")
    train = trainer.train_loader.data  # on the device, or on the host when training streams batches to it
    limit = min(len(train), max_batch or len(train))
    saved = snapshot(trainer)
    tried: list[dict[str, Any]] = []

    def fits(batch: int) -> bool:
        fit = _try(trainer, train, batch, steps)
        entry: dict[str, Any] = {"batch": batch, "fits": fit}
        if trainer.device.type == "cuda":
            entry["peak_mib"] = round(torch.cuda.max_memory_allocated(trainer.device) / 2**20, 1)
        tried.append(entry)
        peak = f" (peak {entry['peak_mib']:.0f} MiB allocated)" if fit and "peak_mib" in entry else ""
        print(f"batch {batch}: {'fits' + peak if fit else 'out of memory'}", file=sys.stderr, flush=True)
        return fit

    try:
        good, bad = None, None
        batch = min(cfg.data.batch_size, limit)
        while good is None:  # step down until one fits
            if fits(batch):
                good = batch
            elif batch == 1:
                raise UserError("not even a batch of 1 fits in GPU memory", fix="use a smaller model, bf16/fp16 precision, or a larger GPU")
            else:
                bad, batch = batch, max(1, batch // 2)
        while bad is None and good < limit:  # grow while they fit
            batch = min(good * 2, limit)
            if fits(batch):
                good = batch
            else:
                bad = batch
        while bad is not None and bad - good > max(1, good // 32):  # bisect the boundary to ~3%
            mid = (good + bad) // 2
            if fits(mid):
                good = mid
            else:
                bad = mid
    finally:
        restore(trainer, saved)
        _free(trainer.device)
    return BatchSizeResult(batch_size=good, power_of_two=1 << (good.bit_length() - 1), limit=limit, device=str(trainer.device),
                           tried=tried)


def _try(trainer, train, batch: int, steps: int) -> bool:
    """``steps`` training steps on the first ``batch`` samples; False on out-of-memory."""
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(trainer.device)
    index = torch.arange(batch, device=train.targets.device)
    try:
        inputs = tuple(t[index].to(trainer.device) for t in train.inputs)
        targets = train.targets[index].to(trainer.device)
        for _ in range(steps):
            probe_step(trainer, inputs, targets)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        return True
    except Exception as err:
        if not is_out_of_memory(err):
            raise
    finally:
        trainer.optimizer.zero_grad(set_to_none=True)
    _free(trainer.device)  # after the traceback is gone: the failed batch's tensors can be collected
    return False


def _free(device: torch.device) -> None:
    """Give cached and cyclically referenced GPU memory back (a CPU has nothing worth a slow gc pass)."""
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
