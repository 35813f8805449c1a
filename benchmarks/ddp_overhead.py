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


def seconds_per_step(settings: Settings, data, ddp: bool) -> list[float]:
    steps = -(-len(data[1]) // settings.batch_size)
    with one_process_group() if ddp else contextlib.nullcontext():
        result = trainwise_run(settings, data, "ddp" if ddp else "plain", {"train.report": False})
    return [t / steps for t in result.epoch_times[1:] or result.epoch_times]  # epoch 1 pays warm-up


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--smoke", action="store_true", help="tiny CPU run to check the code paths")
    args = p.parse_args(argv)
    settings = Settings(epochs=args.epochs)
    if args.smoke:
        settings = Settings(epochs=2, batch_size=128, channels=(8, 8, 8, 8), train_subset=1024, device="cpu", precision="fp32")
        args.repeats = 1
    data = load_fashion(settings)
    if settings.device.startswith("cuda"):
        print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
        torch.backends.cudnn.benchmark = True
    times: dict[bool, list[float]] = {False: [], True: []}
    for repeat in range(args.repeats):
        for ddp in (False, True):
            times[ddp] += seconds_per_step(settings, data, ddp)
            print(f"repeat {repeat + 1}, {'DDP' if ddp else 'plain'}: {[round(t * 1e3, 3) for t in times[ddp][-(settings.epochs - 1 or 1):]]} ms/step",
                  flush=True)
    plain, ddp = statistics.median(times[False]), statistics.median(times[True])
    print()
    print(f"model: conv net {settings.channels}, batch {settings.batch_size}, {settings.precision}, {settings.device}; "
          f"{args.repeats} repeats x {settings.epochs} epochs, median over epochs 2+")
    print("| path | ms/step (median) | vs plain |")
    print("|---|---|---|")
    print(f"| plain Trainer | {plain * 1e3:.3f} | 1.000x |")
    print(f"| DDP, world size 1 | {ddp * 1e3:.3f} | {ddp / plain:.3f}x ({(ddp / plain - 1) * 100:+.1f}%) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
