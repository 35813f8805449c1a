"""What DistributedDataParallel costs a single process: trainwise's plain path against DDP with world size 1.

Both rows train the GPU speed benchmark's model and data (benchmarks/speed/bench.py: the reference conv
net on Fashion-MNIST, batch 512, bf16, channels_last, Nesterov SGD) through the same Trainer. The DDP row
runs as rank 0 of a one-process group (RANK=0, WORLD_SIZE=1, as torchrun would set them), so the model
is wrapped in DDP and every step pays its gradient bucketing, all-reduce and buffer broadcast; the data
order, sharding and metrics are those of a data-parallel run. Runs alternate (plain, DDP, plain, ...) so
machine noise hits both; the table gives the median seconds per step over epochs 2+ of every repeat.

    python benchmarks/ddp_overhead.py                 # on the GPU: 3 repeats x 4 epochs per row
    python benchmarks/ddp_overhead.py --repeats 5 --epochs 6
    python benchmarks/ddp_overhead.py --smoke         # a tiny CPU run (gloo) that checks the code paths
    python benchmarks/ddp_overhead.py --variants trainwise,static_graph --width 2   # DDP options, a wider net

``--variants`` compares DDP constructor options with trainwise's own (the ``trainwise`` row, one
gradient bucket in a one-process run): ``torch_buckets`` (torch's default bucket sizes: a 1 MB first
bucket, then 25 MB ones) and ``static_graph`` (DDP records the graph once and skips per-step bookkeeping). ``--width 2`` doubles the channels, a step with more arithmetic per launch.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import socket
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "speed"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import Settings, load_fashion, trainwise_run  # noqa: E402


@contextlib.contextmanager
def one_process_group():
    """The environment torchrun gives rank 0 of a one-process run, on a free port of 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# DDP constructor options added to trainwise's (gradient_as_bucket_view=True, broadcast_buffers=False).
DEFAULT = object()  # drop trainwise's value: torch's default
VARIANTS: dict[str, dict] = {
    "trainwise": {},
    "torch_buckets": {"bucket_cap_mb": DEFAULT},
    "static_graph": {"static_graph": True},
}


@contextlib.contextmanager
def ddp_options(extra: dict):
    """trainwise's DDP wrapper built with ``extra`` constructor options (it imports the class at call time)."""
    import torch.nn.parallel as parallel

    original = parallel.DistributedDataParallel

    class WithOptions(original):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{k: v for k, v in {**kwargs, **extra}.items() if v is not DEFAULT})

    WithOptions.__init__.__signature__ = inspect.signature(original.__init__)  # trainwise reads it to pick options

    parallel.DistributedDataParallel = WithOptions
    try:
        yield
    finally:
        parallel.DistributedDataParallel = original


def seconds_per_step(settings: Settings, data, variant: str | None) -> list[float]:
    """Seconds per step of epochs 2+ (epoch 1 pays warm-up); ``variant`` None is the plain path."""
    steps = -(-len(data[1]) // settings.batch_size)
    ddp = variant is not None
    with one_process_group() if ddp else contextlib.nullcontext(), ddp_options(VARIANTS[variant] if ddp else {}):
        result = trainwise_run(settings, data, variant or "plain", {"train.report": False})
    return [t / steps for t in result.epoch_times[1:] or result.epoch_times]


def profile(settings: Settings, data, variant: str | None, steps: int = 30) -> None:
    """Print the host-side operators that take the most time over ``steps`` steps of epoch 2."""
    from torch.profiler import ProfilerActivity, profile as torch_profile, schedule

    from trainwise import Callback

    per_epoch = -(-len(data[1]) // settings.batch_size)
    steps = max(1, min(steps, per_epoch - 5))  # inside epoch 2
    prof = torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA],
                         schedule=schedule(wait=per_epoch + 2, warmup=2, active=steps, repeat=1))

    class Step(Callback):
        def on_step_end(self, state):
            prof.step()

    ddp = variant is not None
    with prof, one_process_group() if ddp else contextlib.nullcontext(), ddp_options(VARIANTS[variant] if ddp else {}):
        trainwise_run(settings, data, variant or "plain", {"train.report": False, "train.epochs": 2}, callbacks=[Step()])
    events = prof.key_averages()
    cpu_ms = sum(e.self_cpu_time_total for e in events) / 1e3 / steps
    print(f"\n### {variant or 'plain'}: host time in operators {cpu_ms:.3f} ms/step over {steps} steps")
    print(events.table(sort_by="self_cpu_time_total", row_limit=18, max_name_column_width=60))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--smoke", action="store_true", help="tiny CPU run to check the code paths")
    p.add_argument("--variants", default="trainwise", help=f"comma-separated DDP option sets: {', '.join(VARIANTS)}")
    p.add_argument("--width", type=int, default=1, help="multiply the net's channels")
    p.add_argument("--profile", action="store_true", help="print torch.profiler tables of the plain path and the variants")
    args = p.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if set(variants) - set(VARIANTS):
        p.error(f"unknown variant(s) {sorted(set(variants) - set(VARIANTS))}; choose from {', '.join(VARIANTS)}")
    settings = Settings(epochs=args.epochs)
    settings.channels = tuple(c * args.width for c in settings.channels)
    if args.smoke:
        settings = Settings(epochs=2, batch_size=128, channels=(8, 8, 8, 8), train_subset=1024, device="cpu", precision="fp32")
        args.repeats = 1
    data = load_fashion(settings)
    if settings.device.startswith("cuda"):
        print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
        torch.backends.cudnn.benchmark = True
    rows: list[str | None] = [None, *variants]  # None: the plain path
    if args.profile:
        for row in rows:
            profile(settings, data, row)
        return 0
    times: dict[str | None, list[float]] = {row: [] for row in rows}
    for repeat in range(args.repeats):
        for row in rows:  # interleaved, so that machine noise hits every row
            times[row] += seconds_per_step(settings, data, row)
            print(f"repeat {repeat + 1}, {row or 'plain'}: {[round(t * 1e3, 3) for t in times[row][-(settings.epochs - 1 or 1):]]} ms/step",
                  flush=True)
    plain = statistics.median(times[None])
    print()
    print(f"model: conv net {settings.channels}, batch {settings.batch_size}, {settings.precision}, {settings.device}; "
          f"{args.repeats} repeats x {settings.epochs} epochs, median over epochs 2+")
    print("| path | ms/step (median) | vs plain | DDP's cost per step |")
    print("|---|---|---|---|")
    print(f"| plain Trainer | {plain * 1e3:.3f} | 1.000x | - |")
    for row in variants:
        t = statistics.median(times[row])
        print(f"| DDP, world size 1, {row} options | {t * 1e3:.3f} | {t / plain:.3f}x ({(t / plain - 1) * 100:+.1f}%) | {(t - plain) * 1e6:.0f} us |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
