"""The training loader of an image folder alone (no model): images per second per decoder and worker count.

    python benchmarks/folder_loader.py /tmp/fmnist-png --device cuda --workers 8 12 --decoders pillow opencv

Each measurement runs in its own process: epoch 1 starts the workers, epoch 2 is timed (on a GPU the raw
uint8 batches are copied and finished on the device, as in training, and the clock waits for the device).
Write the folder first with ``python benchmarks/data_pipeline.py write DIR``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(root: str, device: str, workers: int, decoder: str) -> float:
    import torch

    sys.path.insert(0, str(ROOT))
    from trainwise.config import DataConfig
    from trainwise.data import prepare_data
    from trainwise.data.loader import loader_options, make_loader

    dev = torch.device(device)
    d = prepare_data(DataConfig(name="folder", path=root, val_fraction=0.0, decoder=decoder))
    loader = make_loader(d.train, 128, dev, shuffle=True, options=loader_options(workers, dev))
    for _ in loader.batches(1):
        pass
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    sync()
    started, n = time.perf_counter(), 0
    for _, y in loader.batches(2):
        n += len(y)
    sync()
    seconds = time.perf_counter() - started
    for worker in multiprocessing.active_children():
        worker.kill()
        worker.join()
    return n / seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root")
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    p.add_argument("--decoders", nargs="+", default=["pillow", "opencv"])
    p.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # device workers decoder: one measurement, in this process
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.root, args.one[0], int(args.one[1]), args.one[2])), flush=True)
        os._exit(0)  # the workers are gone already
    print(f"{args.device}: the training loader alone, epoch 2, images/s\n| workers | " + " | ".join(args.decoders) + " |")
    print("|---|" + "---|" * len(args.decoders))
    for w in args.workers:
        rates = []
        for decoder in args.decoders:
            done = subprocess.run([sys.executable, __file__, args.root, "--one", args.device, str(w), decoder],
                                  capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(done.stderr[-2000:])
            rates.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"| {w} | " + " | ".join(f"{r:,.0f}" for r in rates) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
