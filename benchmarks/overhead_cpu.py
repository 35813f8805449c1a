"""Per-step overhead of trainwise's Trainer against a hand-written loop on the CPU (digits, MNIST-1D).

Both train the same MLP with the same data order, optimizer and batch size; the only difference is the
framework around the step. Each repeat runs hand, trainwise, trainwise + monitors one after the other,
so machine noise hits all three alike; a repeat's ratio compares its own runs (paired). The table gives
the median ratio over repeats with its interquartile range, and the ratio of the fastest runs of each
(on a shared machine the least disturbed ones).

A run's time is the sum over its epochs after the first (which warms caches up), so steps the monitors
sample (every ``monitors.every_n_steps``) count at the rate they happen. The default clock is the
thread's CPU time (``--clock cpu``): on a shared machine, wall time mostly measures the other jobs.
``--clock wall`` gives the History's ``time_s`` instead. Many short repeats beat a few long ones here.

    OMP_NUM_THREADS=1 python benchmarks/overhead_cpu.py --repeats 30 --epochs 5 --threads 1
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
from trainwise.core import Callback  # noqa: E402
from trainwise.data import prepare_data  # noqa: E402
from trainwise.data.loader import epoch_order  # noqa: E402
from trainwise.models import build_model  # noqa: E402

CLOCKS = {"cpu": time.thread_time, "wall": time.perf_counter}


def hand_epoch_times(cfg: Config, data, clock=time.perf_counter) -> list[float]:
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, data.input_shape, 0, data.num_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=0.0)
    x, y, bs = data.train.inputs[0], data.train.targets, cfg.data.batch_size
    times = []
    for epoch in range(1, cfg.train.epochs + 1):
        start = clock()
        order = epoch_order(len(y), cfg.train.seed, epoch)
        for i in range(0, len(y), bs):
            idx = order[i : i + bs]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        times.append(clock() - start)
    return times


class EpochClock(Callback):
    """The span the History's time_s covers (an epoch's training and its training metrics), on ``clock``:
    from after every other EPOCH_START handler to before every other EVAL_END handler."""

    def __init__(self, clock):
        self.clock, self.times, self.started = clock, [], 0.0
        self.end = _EpochEnd(self)

    order = 10**9  # last at EPOCH_START

    def on_epoch_start(self, state) -> None:
        self.started = self.clock()


class _EpochEnd(Callback):
    order = -(10**9)  # first at EVAL_END (no validation split here: right after the training metrics)

    def __init__(self, timer: EpochClock):
        self.timer = timer

    def on_eval_end(self, state) -> None:
        self.timer.times.append(self.timer.clock() - self.timer.started)


def trainwise_epoch_times(cfg: Config, data, clock=None) -> list[float]:
    if clock is None:
        return [r["time_s"] for r in trainwise.fit(cfg, data=data).history]
    timer = EpochClock(clock)
    trainwise.fit(cfg, data=data, callbacks=[timer, timer.end])
    return timer.times


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    clock = CLOCKS[args.clock]
    print(f"clock: {args.clock}; {args.repeats} repeats of {args.epochs} epochs (the first left out)")
    print("| dataset | model | batch | hand loop ms/step | trainwise ms/step | trainwise + monitors ms/step "
          "| ratio: median (IQR), fastest | ratio with monitors: median (IQR), fastest |")
    print("|---|---|---|---|---|---|---|---|")
    for name, hidden, batch in (("digits", [256, 128], 64), ("mnist1d", [256, 256], 128)):
        cfg = Config().replace({"data.name": name, "data.batch_size": batch, "data.val_fraction": 0.0, "model.hidden": hidden,
                                "optim.weight_decay": 0.0, "train.epochs": args.epochs, "train.progress": "none",
                                "train.report": False, "monitors.enabled": False})
        data = prepare_data(cfg.data)
        steps_per_epoch = -(-len(data.train.targets) // batch)
        per_step = lambda times: sum(times[1:]) / (len(times[1:]) * steps_per_epoch)  # noqa: E731
        ours_clock = None if args.clock == "wall" else clock
        hand, ours, mon = [], [], []
        for _ in range(args.repeats):
            hand.append(per_step(hand_epoch_times(cfg, data, clock)))
            ours.append(per_step(trainwise_epoch_times(cfg, data, ours_clock)))
            mon.append(per_step(trainwise_epoch_times(cfg.replace({"monitors.enabled": True}), data, ours_clock)))

        def ratio(runs: list[float]) -> str:
            r = [a / h for a, h in zip(runs, hand)]
            q1, _, q3 = statistics.quantiles(r, n=4) if len(r) > 1 else (r[0], 0, r[0])
            return f"{statistics.median(r):.3f}x ({q1:.3f}-{q3:.3f}), {min(runs) / min(hand):.3f}x"

        ms = lambda v: f"{statistics.median(v) * 1e3:.3f}"  # noqa: E731
        print(f"| {name} | mlp {hidden} | {batch} | {ms(hand)} | {ms(ours)} | {ms(mon)} | {ratio(ours)} | {ratio(mon)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
