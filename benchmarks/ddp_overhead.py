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

``--variants`` compares DDP constructor options on top of trainwise's own (the ``trainwise`` row):
``static_graph`` (DDP records the graph once and skips per-step bookkeeping) and ``one_bucket`` (all
gradients in one all-reduce). ``--width 2`` doubles the channels, a step with more arithmetic per launch.
"""

from __future__ import annotations

import argparse
import contextlib
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
VARIANTS: dict[str, dict] = {
    "trainwise": {},
    "static_graph": {"static_graph": True},
    "one_bucket": {"bucket_cap_mb": 1024},
    "static_graph+one_bucket": {"static_graph": True, "bucket_cap_mb": 1024},
}


@contextlib.contextmanager
def ddp_options(extra: dict):
    """trainwise's DDP wrapper built with ``extra`` constructor options (it imports the class at call time)."""
    import torch.distributed as dist
    import torch.nn.parallel as parallel

    original, first_bucket = parallel.DistributedDataParallel, dist._DEFAULT_FIRST_BUCKET_BYTES

    class WithOptions(original):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, **extra})

    parallel.DistributedDataParallel = WithOptions
    if "bucket_cap_mb" in extra:
        dist._DEFAULT_FIRST_BUCKET_BYTES = extra["bucket_cap_mb"] * 2**20  # the first bucket is small by default
    try:
        yield
    finally:
        parallel.DistributedDataParallel, dist._DEFAULT_FIRST_BUCKET_BYTES = original, first_bucket


def seconds_per_step(settings: Settings, data, variant: str | None) -> list[float]:
    """Seconds per step of epochs 2+ (epoch 1 pays warm-up); ``variant`` None is the plain path."""
    steps = -(-len(data[1]) // settings.batch_size)
    ddp = variant is not None
    with one_process_group() if ddp else contextlib.nullcontext(), ddp_options(VARIANTS[variant] if ddp else {}):
        result = trainwise_run(settings, data, variant or "plain", {"train.report": False})
    return [t / steps for t in result.epoch_times[1:] or result.epoch_times]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--smoke", action="store_true", help="tiny CPU run to check the code paths")
    p.add_argument("--variants", default="trainwise", help=f"comma-separated DDP option sets: {', '.join(VARIANTS)}")
    p.add_argument("--width", type=int, default=1, help="multiply the net's channels")
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
