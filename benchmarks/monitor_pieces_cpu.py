"""What one sampled monitor step costs, piece by piece, timed inside the training loop (CPU).

Two Trainers on the same data take turns epoch by epoch: one without monitors, one whose monitors
sample the first step of every epoch (``monitors.every_n_steps`` = steps per epoch), so every epoch
holds exactly one sampled step and one epoch-end reduction. Each monitor handler is timed on the
thread's CPU clock at the sampled step and at EVAL_END; so is the whole training step, sampled and not.

    OMP_NUM_THREADS=1 python benchmarks/monitor_pieces_cpu.py --data digits --epochs 150
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from overhead_cpu_interleaved import SETTINGS, bench_config  # noqa: E402

from trainwise.config import Config  # noqa: E402
from trainwise.core import Event  # noqa: E402
from trainwise.data import prepare_data  # noqa: E402
from trainwise.trainer import Trainer  # noqa: E402

TIMED = (Event.BATCH_START, Event.AFTER_LOSS, Event.AFTER_BACKWARD, Event.STEP_END, Event.EVAL_END)


def timed_trainer(cfg: Config, data, tag: str, times: dict[str, list[int]]) -> Trainer:
    """A Trainer whose per-step handlers and train_step record their thread CPU time in ``times``."""
    tr = Trainer(cfg, data=data)
    tr.fire(Event.FIT_START)
    table = tr._dispatch_table()

    def wrap(event: Event, handler):
        name = f"{event.value}: {type(handler.__self__).__name__}"

        def timed(state):
            start = time.thread_time_ns()
            handler(state)
            if event is Event.EVAL_END or state.batch_index == 0:  # the sampled step is each epoch's first
                times[name].append(time.thread_time_ns() - start)
        return timed

    for event in TIMED:
        table[event] = [wrap(event, h) for h in table[event]]
    tr._dispatch = table
    step = tr.train_step

    def train_step(*args, **kwargs):
        start = time.thread_time_ns()
        step(*args, **kwargs)
        times[f"{tag}: train_step, " + ("first (sampled)" if tr.state.batch_index == 0 else "other")].append(time.thread_time_ns() - start)

    tr.train_step = train_step
    return tr


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=sorted(SETTINGS), default="digits")
    p.add_argument("--epochs", type=int, default=150)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = bench_config(args.data)
    data = prepare_data(cfg.data)
    times: dict[str, list[int]] = defaultdict(list)
    off = timed_trainer(cfg.replace({"monitors.enabled": False}), data, "monitors off", times)
    steps = len(off.train_loader)
    runs = {"monitors off": off, "monitors on": timed_trainer(cfg.replace({"monitors.every_n_steps": steps}), data, "monitors on", times)}
    for epoch in range(1, args.epochs + 1):
        for tr in runs.values():
            tr.state.epoch = epoch
            tr.fire(Event.EPOCH_START)
            tr.train_epoch(epoch)
            tr.train_metrics.compute_loss_acc(tr.task)
            tr.state.record = {}
            tr.fire(Event.EVAL_END)
    print(f"{args.data}, {steps} steps per epoch, {args.epochs} epochs; thread CPU time, first fifth left out as warm-up")
    print("| piece | median us | p10 us |\n|---|---|---|")
    p10 = {}
    for name, v in sorted(times.items()):
        v = v[len(v) // 5:]
        p10[name] = statistics.quantiles(v, n=10)[0] / 1e3
        print(f"| {name} | {statistics.median(v) / 1e3:.1f} | {p10[name]:.1f} |")
    at_end = sum(v for k, v in p10.items() if k.startswith("eval_end"))
    at_step = sum(v for k, v in p10.items() if not k.startswith(("eval_end", "monitors ")))
    step = p10["monitors on: train_step, first (sampled)"] - p10["monitors off: train_step, first (sampled)"]
    print(f"\nsampled step, on - off (p10): +{step:.0f} us, of which {at_step:.0f} us in the handlers (sum of p10s); "
          f"epoch-end reduction {at_end:.0f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
