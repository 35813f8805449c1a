"""Per-step overhead of trainwise's Trainer against a hand-written loop on the CPU (digits, MNIST-1D).

Both train the same MLP with the same data order, optimizer and batch size; the only difference is the
framework around the step. Runs alternate (hand, trainwise, hand, ...) so that machine noise hits both;
the table gives the median seconds per epoch of each and their ratio.

    python benchmarks/overhead_cpu.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trainwise  # noqa: E402
from trainwise.config import Config  # noqa: E402
from trainwise.data import prepare_data  # noqa: E402
from trainwise.data.loader import epoch_order  # noqa: E402
from trainwise.models import build_model  # noqa: E402


def hand_epoch_times(cfg: Config, data) -> list[float]:
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, data.input_shape, 0, data.num_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=0.0)
    x, y, bs = data.train.inputs[0], data.train.targets, cfg.data.batch_size
    times = []
    for epoch in range(1, cfg.train.epochs + 1):
        start = time.perf_counter()
        order = epoch_order(len(y), cfg.train.seed, epoch)
        for i in range(0, len(y), bs):
            idx = order[i : i + bs]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return times


def trainwise_epoch_times(cfg: Config, data) -> list[float]:
    run = trainwise.fit(cfg, data=data)
    return [r["time_s"] for r in run.history]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("| dataset | model | batch | hand loop s/epoch | trainwise s/epoch | trainwise monitors s/epoch | ratio | ratio with monitors |")
    print("|---|---|---|---|---|---|---|---|")
    for name, hidden, batch in (("digits", [256, 128], 64), ("mnist1d", [256, 256], 128)):
        cfg = Config().replace({"data.name": name, "data.batch_size": batch, "data.val_fraction": 0.0, "model.hidden": hidden,
                                "optim.weight_decay": 0.0, "train.epochs": args.epochs, "train.progress": "none",
                                "train.report": False, "monitors.enabled": False})
        data = prepare_data(cfg.data)
        hand, ours, mon = [], [], []
        for _ in range(args.repeats):
            hand += hand_epoch_times(cfg, data)[1:]  # the first epoch warms caches up
            ours += trainwise_epoch_times(cfg, data)[1:]
            mon += trainwise_epoch_times(cfg.replace({"monitors.enabled": True}), data)[1:]
        h, o, m = statistics.median(hand), statistics.median(ours), statistics.median(mon)
        print(f"| {name} | mlp {hidden} | {batch} | {h:.4f} | {o:.4f} | {m:.4f} | {o / h:.3f}x | {m / h:.3f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
