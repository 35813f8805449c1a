"""Data-parallel training: one config on N processes, one model replica each (torch DistributedDataParallel).

``trainwise train CONFIG --devices N`` starts N local processes through torch's elastic launcher (the code
behind ``torchrun``); ``torchrun --nproc-per-node N [--nnodes ... --rdzv-endpoint ...] -m trainwise train
CONFIG`` does the same by hand, on one node or several. A process learns that it is one of many from the
launcher's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT); without it, everything
here is a no-op and the Trainer runs exactly as in a single process.

What changes in the loop, each at one call from trainer.py:

- process group: NCCL on GPUs (rank r uses cuda:LOCAL_RANK), gloo on CPUs, with ``train.dist_timeout_s``
  so that a dead or stuck peer ends the others with an error instead of a hang.
- data: ``data.batch_size`` is the global batch (``data.per_device_batch``: per process). Rank r takes
  its contiguous slice of every global batch (``DeviceLoader.rank_part``); validation and test are cut
  into contiguous shards of nearly equal size, without padding.
- gradients: DDP averages them during backward. A last partial batch split unevenly is averaged with
  weights (samples of the rank / samples of the batch), so every step uses the mean gradient of the same
  samples as a single process would. After backward every rank holds the same gradients, takes the same
  step and keeps the same weights: gradient-norm and update-ratio monitors read identical numbers on
  every rank, which is why recording rank 0's is the aggregate. Evaluation uses the bare module.
- metrics: loss sums, confusion matrices and counts are all-reduced, so they are exact over whole splits.
- decisions: rank 0's epoch record (with its stop decision) is broadcast at each epoch end; within an
  epoch a stop or skip-step request from any rank is agreed on, so all ranks stop or skip together.
- outputs: only rank 0 writes the run directory and prints progress; checkpoints carry every rank's RNG.
- shutdown: the DDP wrapper is released and garbage-collected before ``destroy_process_group()`` (gloo
  can abort a process at exit otherwise).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import gc
import inspect
import logging
import os
import random
import re
import sys
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist

from trainwise import checkpointing
from trainwise.core import ORDER, Callback, State
from trainwise.errors import UserError

if TYPE_CHECKING:
    from trainwise.config import Config
    from trainwise.data.loader import DeviceLoader
    from trainwise.metrics import MetricAccumulator
    from trainwise.trainer import Trainer


def launched() -> bool:
    """True inside a process started by torchrun (or ``--devices``), even a single one."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def is_main_process() -> bool:
    """Rank 0 of a launched run, or any process that was not launched: the one that prints and writes."""
    return os.environ.get("RANK", "0") == "0"


@dataclass
class Distributed:
    """This process's place in a data-parallel run (``active`` is False for an ordinary single process)."""

    device: torch.device
    global_batch: int
    rank: int = 0
    world_size: int = 1
    active: bool = False
    owns_group: bool = False
    control: Any = None  # the group for small CPU messages (gloo); None: the default group
    ddp: Any = None  # the DistributedDataParallel wrapper (training forwards)
    plain_forward: Any = None  # the forward without DDP (evaluation)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------------------------------- set-up
    def wrap_model(self, model: torch.nn.Module, forward, cfg: Config):
        """DDP around ``model`` (SyncBatchNorm first when asked); returns the forward the Trainer calls.

        Also gives each rank its own random stream from here on (dropout, augmentation), derived from
        the seed and the rank; the weights were initialized before this, identically on every rank.
        """
        if not self.active:
            return forward
        from torch.nn.parallel import DistributedDataParallel

        if cfg.train.sync_batchnorm and self.world_size > 1:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # replaces the model's children in place
        self.ddp = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                                           **ddp_options(DistributedDataParallel, model, self.world_size))
        train = torch.compile(self.ddp, mode=cfg.train.compile_mode) if cfg.train.compile else self.ddp
        self.plain_forward = forward
        if self.world_size > 1:
            seed_rank(cfg.train.seed, self.rank)
        return _Forward(train, forward)

    def callbacks(self, trainer: Trainer) -> list[Callback]:
        return [RankSync(self, trainer)] if self.active and self.world_size > 1 else []

    def shard_eval(self, loaders: dict[str, DeviceLoader]) -> dict[str, DeviceLoader]:
        """Cut each evaluation split into contiguous shards, one per rank, sizes differing by at most one."""
        if self.world_size > 1:
            for loader in loaders.values():
                loader.keep_range(*shard_bounds(loader.num_samples(), self.rank, self.world_size))
        return loaders

    def describe(self) -> dict[str, Any]:
        """Keys for env.json."""
        if not self.active:
            return {}
        return {"world_size": self.world_size, "backend": dist.get_backend(), "global_batch": self.global_batch}

    # ------------------------------------------------------------------------------ during the run
    def all_reduce(self, acc: MetricAccumulator) -> MetricAccumulator:
        return acc.all_reduce_() if self.active and self.world_size > 1 else acc

    def end_train_epoch(self, model: torch.nn.Module, train_metrics: MetricAccumulator) -> MetricAccumulator:
        """Before validation: every rank takes rank 0's buffers (BatchNorm statistics), and the epoch's
        training sums become totals over all ranks."""
        if self.active and self.world_size > 1:
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)
        return self.all_reduce(train_metrics)

    def add_rank_states(self, ckpt: dict[str, Any], train_metrics: MetricAccumulator) -> dict[str, Any]:
        """Every rank's RNG state into the checkpoint (a collective: all ranks call it); mid-epoch, the
        partial training sums as totals over the ranks (resume gives them to rank 0 and zeros to the rest)."""
        if not (self.active and self.world_size > 1):
            return ckpt
        states: list[Any] = [None] * self.world_size
        dist.all_gather_object(states, checkpointing.rng_state(), group=self.control)
        ckpt["rank_rng"], ckpt["world_size"] = states, self.world_size
        if not ckpt["epoch_done"]:
            total = copy.copy(train_metrics).all_reduce_()
            ckpt["train_metrics"] = {"loss_sum": total.loss_sum, "confusion": total.confusion, "count": total.count}
        return ckpt

    def restore_rank_state(self, trainer: Trainer, ckpt: dict[str, Any]) -> None:
        """After ``load_checkpoint``: this rank's RNG state, and the partial training sums on rank 0 only."""
        if not (self.active and self.world_size > 1):
            return
        states = ckpt.get("rank_rng")
        if states is not None and len(states) == self.world_size:
            checkpointing.set_rng_state(states[self.rank])
        else:
            seed_rank(trainer.config.train.seed + ckpt["step"], self.rank)
            if self.is_main:
                print(f"note: the checkpoint was written by {ckpt.get('world_size', 1)} process(es), this run has {self.world_size}: "
                      "the data order is the same, random augmentation and dropout differ from an uninterrupted run", file=sys.stderr)
        if not self.is_main:
            trainer.train_metrics.reset()

    def shutdown(self, trainer: Trainer) -> None:
        """Release DDP, collect it, then leave the process group (when this process created it)."""
        if not self.active:
            return
        trainer.forward = self.plain_forward or trainer.forward
        self.ddp = self.plain_forward = None
        gc.collect()
        self.active = False
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


class _Forward:
    """Forwards with gradients (training) go through DDP; forwards without (evaluation) use the bare module,
    which runs no collectives, so ranks may evaluate shards of different sizes."""

    def __init__(self, train, plain):
        self.train, self.plain = train, plain

    def __call__(self, *inputs):
        return (self.train if torch.is_grad_enabled() else self.plain)(*inputs)


def ddp_options(ddp_class, model: torch.nn.Module, world_size: int) -> dict[str, Any]:
    """DDP constructor options that cut per-step work; each one only where the installed torch has it.

    Small steps are bound by kernel launches, and DDP's cost there is launches: one gradient copy (with
    the division by the world size) per parameter into its bucket, plus one all-reduce per bucket.
    - gradient_as_bucket_view: gradients live in the buckets (no copy back after the all-reduce).
    - one process: all gradients in one bucket. Buckets exist so that all-reduces overlap the rest of
      backward; with nothing to send there is nothing to overlap, and each bucket costs a collective
      (on an H100, 6.7% -> 2.0% of a 6.3 ms step; docs/benchmarks.md). Several processes keep torch's
      buckets.
    - batched_grad_copy (torch >= 2.13): the per-parameter copies become one foreach copy and one
      division per bucket.
    - no per-step broadcast of BatchNorm statistics (rank 0's are sent to every rank at each epoch end
      instead, see end_train_epoch): forward_sync_buffers=False where it exists, which replaced
      broadcast_buffers=False.
    """
    params = inspect.signature(ddp_class.__init__).parameters
    options: dict[str, Any] = {"gradient_as_bucket_view": True}
    if world_size == 1:
        grads = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
        options["bucket_cap_mb"] = grads / 2**20 + 1
    if "batched_grad_copy" in params:
        options["batched_grad_copy"] = True
    options["forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"] = False
    return options


def setup(cfg: Config, device: torch.device) -> Distributed:
    """Join the process group when launched (creating it unless the caller already did)."""
    initialized = dist.is_available() and dist.is_initialized()
    if not (launched() or initialized):
        return Distributed(device, cfg.data.batch_size)
    world = dist.get_world_size() if initialized else int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", torch.cuda.current_device() if device.type == "cuda" else 0))
    if device.type not in ("cpu", "cuda"):
        raise UserError("data-parallel runs need CUDA GPUs or the CPU", received=f"train.device={cfg.train.device} ({device.type})",
                        fix="set train.device=cuda or cpu")
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise UserError(f"process {local_rank} on this node has no GPU", expected=f"at most {torch.cuda.device_count()} processes per node",
                            fix="start one process per GPU (--devices / --nproc-per-node)")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif cfg.train.sync_batchnorm and world > 1:
        raise UserError("train.sync_batchnorm needs GPUs", expected="train.device=cuda", received="a CPU run",
                        fix="set train.sync_batchnorm=false on the CPU (torch's SyncBatchNorm runs on GPUs only)")
    global_batch = cfg.data.batch_size * world if cfg.data.per_device_batch else cfg.data.batch_size
    if global_batch % world:
        raise UserError(f"data.batch_size {global_batch} does not split over {world} processes", expected=f"a multiple of {world}",
                        fix=f"set data.batch_size to a multiple of {world}, or data.per_device_batch=true")
    if not initialized:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=cfg.train.dist_timeout_s),
                                device_id=device if device.type == "cuda" else None)
    control = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
    return Distributed(device, global_batch, rank=dist.get_rank(), world_size=dist.get_world_size(), active=True,
                       owns_group=not initialized, control=control)


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rank ``rank``'s contiguous share of ``n`` items: the first ``n % world_size`` ranks get one more."""
    base, extra = divmod(n, world_size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def seed_rank(seed: int, rank: int) -> None:
    """Seed Python, NumPy and torch with a stream of their own for ``rank``."""
    value = int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


# ------------------------------------------------------------------------------------- agreement

class _Share:
    weight = 1.0


def _weighted_allreduce(share: _Share, bucket):
    """DDP comm hook: sum over ranks of (this rank's share of the batch's samples) x its mean gradient."""
    buffer = bucket.buffer().mul_(share.weight)
    return dist.all_reduce(buffer, async_op=True).get_future().then(lambda fut: fut.value()[0])


class RankSync(Callback):
    """Keeps the ranks of a run in step: same records, same stop and skip decisions, exact gradient means."""

    order = ORDER["rank_sync"]

    def __init__(self, ctx: Distributed, trainer: Trainer):
        self.ctx, self.loader = ctx, trainer.train_loader
        self.share: _Share | None = None

    def on_fit_start(self, state: State) -> None:
        rest = self.loader.num_samples() % self.loader.batch_size
        uneven = not self.loader.drop_last and rest >= self.ctx.world_size and rest % self.ctx.world_size
        if uneven and self.share is None:
            self.share = _Share()
            self.ctx.ddp.register_comm_hook(self.share, _weighted_allreduce)

    def on_batch_start(self, state: State) -> None:
        if self.share is not None:
            lo, hi = self.loader.rank_part(state.batch_index)
            start = state.batch_index * self.loader.batch_size
            self.share.weight = (hi - lo) / (min(start + self.loader.batch_size, self.loader.num_samples()) - start)

    def on_after_backward(self, state: State) -> None:
        state.skip_step = self._any(state.skip_step)

    def on_step_end(self, state: State) -> None:
        if self._any(state.stop):
            reasons: list[Any] = [None] * self.ctx.world_size
            dist.all_gather_object(reasons, state.stop_reason, group=self.ctx.control)
            state.request_stop(next((r for r in reasons if r), "stopped by another process"))

    def on_eval_end(self, state: State) -> None:
        state.record = self._from_rank0(state.record)

    def on_epoch_end(self, state: State) -> None:
        state.stop, state.stop_reason = self._from_rank0((state.stop, state.stop_reason))

    def _any(self, flag: bool) -> bool:
        value = torch.tensor([int(flag)])
        dist.all_reduce(value, op=dist.ReduceOp.MAX, group=self.ctx.control)
        return bool(value.item())

    def _from_rank0(self, obj: Any) -> Any:
        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self.ctx.control)
        return box[0]


# ------------------------------------------------------------------------------------ launching

def launch(nproc: int, argv: list[str], resume_hint: str) -> int:
    """Run ``python -m trainwise ARGV`` in ``nproc`` local processes with torch's elastic launcher, as
    ``torchrun --nproc-per-node NPROC -m trainwise ARGV`` would; returns the exit code.

    If a process fails, the launcher stops the others; this prints one line that names the first failure.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    args = parse_args([
        "--nnodes=1", f"--nproc-per-node={nproc}", "--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:0",
        f"--rdzv-id={uuid.uuid4()}", "--max-restarts=0", "--local-addr=127.0.0.1", "--module", "trainwise", *argv,
    ])
    for name in ("torch.distributed.elastic", "torch.distributed.run"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        run(args)
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        if failure.exitcode == UserError.exit_code:
            return failure.exitcode  # a user mistake: the process said what and how to fix; nothing to resume
        how = f"was killed by {failure.signal_name()}" if failure.exitcode < 0 else f"exited with code {failure.exitcode}"
        print(f"error: data-parallel run failed: rank {rank} (pid {failure.pid}) {how}; the other processes were stopped. "
              f"Continue from the last checkpoint with: {resume_hint}", file=sys.stderr)
        return failure.exitcode if failure.exitcode > 0 else 1
    return 0


@contextlib.contextmanager
def failures_reported(resume_hint: str):
    """In a launched process, turn a failed collective (a peer died, hung or timed out) into one line, exit 1."""
    try:
        yield
    except Exception as err:
        if not (launched() and _is_collective_error(err)):
            raise
        cause = _cause(str(err)) or type(err).__name__
        what = "no answer from another process in time" if re.search(r"time ?out|timed out", cause, re.I) else "lost contact with another process"
        print(f"error: rank {os.environ['RANK']}: {what} ({cause}); it failed, hung or was stopped (see its own message). "
              f"Continue from the last checkpoint with: {resume_hint}", file=sys.stderr)
        raise SystemExit(1) from None


_MARKERS = re.compile(r"time ?out|timed out|connection (?:reset|closed)|pair closure|peer|NCCL|gloo", re.I)


def _is_collective_error(err: BaseException) -> bool:
    """A DistError, or an error raised inside torch.distributed / DDP, or one that names a peer or a timeout."""
    if isinstance(err, getattr(dist, "DistError", ())):
        return True
    tb, files = err.__traceback__, []
    while tb is not None:
        files.append(tb.tb_frame.f_code.co_filename.replace("\\", "/"))
        tb = tb.tb_next
    inside = any("torch/distributed/" in f or "torch/nn/parallel/" in f for f in files)
    return isinstance(err, RuntimeError) and (inside or bool(_MARKERS.search(str(err))))


def _cause(text: str) -> str:
    """The line of a backend error that says what happened, without gloo's source-file prefix."""
    lines = [line for line in text.splitlines() if line.strip()]
    line = next((line for line in lines if _MARKERS.search(line)), lines[0] if lines else "")
    line = re.sub(r"^.*?\[[^\]]*\.(?:cc|cpp|h):\d+\]\s*", "", line)  # "[.../pair.cc:537] " -> ""
    sentence = next((x for x in line.split(". ") if _MARKERS.search(x)), line)
    return sentence.strip().rstrip(".")[:160]
