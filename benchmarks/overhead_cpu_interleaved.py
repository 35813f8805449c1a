"""Per-step overhead against a hand-written loop, epoch by epoch: a steadier reading on a shared CPU.

benchmarks/overhead_cpu.py times whole runs; on a machine shared with other jobs their spread is as
large as the overhead itself. Here the hand loop, a Trainer and a Trainer with the monitors are built
once and then take turns epoch by epoch (hand epoch 1, trainwise epoch 1, monitors epoch 1, hand epoch
2, ...) for hundreds of epochs, each timed on the thread's CPU clock; the low percentiles of each
one's epoch times are the least disturbed epochs, and their ratios the overhead. An epoch of the
Trainer is ``train_epoch`` plus its training metrics (what the History's ``time_s`` covers) plus
EVAL_END, where the monitors reduce the epoch's samples to the means they record.

Epochs that contain a step the monitors sample (every ``monitors.every_n_steps``) are slower; they are
kept apart, and the table gives the extra cost of one sampled step and the overhead with the sampled
steps spread over the steps at the rate they happen. A fourth run samples the first step of every
epoch, which measures that cost from every epoch rather than from the few that hold a sampled step.

    OMP_NUM_THREADS=1 python benchmarks/overhead_cpu_interleaved.py --data digits --epochs 250
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

from trainwise.config import Config  # noqa: E402
from trainwise.core import Event  # noqa: E402
from trainwise.data import prepare_data  # noqa: E402
from trainwise.data.loader import epoch_order  # noqa: E402
from trainwise.models import build_model  # noqa: E402
from trainwise.trainer import Trainer  # noqa: E402

EVERY_EPOCH = "monitors, one sampled step in every epoch"
SETTINGS = {"digits": ([256, 128], 64), "mnist1d": ([256, 256], 128)}


def bench_config(data: str) -> Config:
    """The benchmark's MLP, batch and optimizer for ``data`` (monitors at their defaults)."""
    hidden, batch = SETTINGS[data]
    return Config().replace({"data.name": data, "data.batch_size": batch, "data.val_fraction": 0.0, "model.hidden": hidden,
                             "optim.weight_decay": 0.0, "train.epochs": 10**6, "train.progress": "none", "train.report": False})


class HandLoop:
    def __init__(self, cfg: Config, data):
        torch.manual_seed(cfg.train.seed)
        self.cfg, self.data, self.epoch = cfg, data, 0
        self.model = build_model(cfg.model, data.input_shape, 0, data.num_classes)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.optim.lr, weight_decay=0.0)

    def run_epoch(self) -> bool:
        self.epoch += 1
        x, y, bs = self.data.train.inputs[0], self.data.train.targets, self.cfg.data.batch_size
        order = epoch_order(len(y), self.cfg.train.seed, self.epoch)
        for i in range(0, len(y), bs):
            idx = order[i : i + bs]
            loss = F.cross_entropy(self.model(x[idx]), y[idx])
            loss.backward()
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
        return False


class TrainerEpochs:
    def __init__(self, cfg: Config, data):
        self.trainer = Trainer(cfg, data=data)
        self.trainer.fire(Event.FIT_START)
        self.every = cfg.monitors.every_n_steps if cfg.monitors.enabled else 0
        self.epoch = 0

    def run_epoch(self) -> bool:
        """One epoch; True when it held a step the monitors sample."""
        tr, self.epoch = self.trainer, self.epoch + 1
        tr.state.epoch = self.epoch
        first = tr.state.step
        tr.fire(Event.EPOCH_START)
        tr.train_epoch(self.epoch)
        tr.train_metrics.compute_loss_acc(tr.task)
        tr.state.record = {}
        tr.fire(Event.EVAL_END)  # the monitors' epoch means (nothing else handles it here; no validation split)
        k = self.every
        return bool(k) and (first % k == 0 or first // k != (tr.state.step - 1) // k)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=sorted(SETTINGS), default="digits")
    p.add_argument("--epochs", type=int, default=250)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = bench_config(args.data).replace({"monitors.enabled": False})
    batch = cfg.data.batch_size
    data = prepare_data(cfg.data)
    runs = {"hand loop": HandLoop(cfg, data), "trainwise": TrainerEpochs(cfg, data),
            "trainwise + monitors": TrainerEpochs(cfg.replace({"monitors.enabled": True}), data)}
    steps = len(runs["trainwise"].trainer.train_loader)
    every = runs["trainwise + monitors"].every
    # The same monitors sampling the first step of every epoch: the cost of a sampled step from every
    # epoch instead of the few that hold one at the configured rate.
    runs[EVERY_EPOCH] = TrainerEpochs(cfg.replace({"monitors.enabled": True, "monitors.every_n_steps": steps}), data)
    for run in runs.values():
        run.run_epoch()  # warm-up
    plain: dict[str, list[float]] = {name: [] for name in runs}
    sampled: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.epochs):
        for name, run in runs.items():
            start = time.thread_time()
            was_sampled = run.run_epoch()
            (sampled if was_sampled else plain)[name].append((time.thread_time() - start) / steps * 1e6)

    def p10(v: list[float]) -> float:
        return statistics.quantiles(v, n=10)[0] if len(v) >= 10 else min(v)

    hand = p10(plain["hand loop"])
    print(f"{args.data}, batch {batch}, {steps} steps per epoch, {args.epochs} epochs each; thread CPU time; "
          f"monitors sample every {every} steps")
    print("| run | us/step (p10 of epochs) | ratio (p10) | ratio (median) | one sampled step costs | ratio, sampled steps included |")
    print("|---|---|---|---|---|---|")
    for name in runs:
        v, s = plain[name], sampled[name]
        if name == EVERY_EPOCH:  # no plain epochs: against the monitors' plain epochs, spread at the configured rate
            base = p10(plain["trainwise + monitors"])
            extra = max(p10(s) - base, 0.0) * steps
            print(f"| {name} | {p10(s):.1f} | {p10(s) / hand:.3f}x | - | +{extra:.0f} us | {(base + extra / every) / hand:.3f}x |")
            continue
        row = f"| {name} | {p10(v):.1f} | {p10(v) / hand:.3f}x | {statistics.median(v) / statistics.median(plain['hand loop']):.3f}x"
        if s:
            extra = max(p10(s) - p10(v), 0.0) * steps  # us for the one sampled step in such an epoch
            row += f" | +{extra:.0f} us | {(p10(v) + extra / every) / hand:.3f}x |"
        else:
            row += " | - | - |"
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
