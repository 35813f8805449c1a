"""The learning-rate finder (Smith 2017, "Cyclical Learning Rates", section 3.3; fastai's lr_find).

Train for a few hundred steps while the learning rate grows exponentially from ``start_lr`` to
``end_lr`` and record the training loss of every step. The sweep stops once a running (bias-corrected
exponential) average of the loss exceeds ``diverge`` times its best value: the loss exploded. The
curve the rules read is smoothed with the same average run forwards and then backwards, which does not
lag behind the learning rate the way a running average does (with 200 steps over 8 decades, a running
average with beta 0.98 trails by about two decades). Two rules read a learning rate off it:

- steepest: where the smoothed loss falls fastest per decade of learning rate (most negative slope),
  before the curve's minimum;
- valley: the longest chain of points along which the smoothed loss keeps falling, each fall larger
  than 1% of the curve's whole fall (so the flat, noisy start does not count as descent); the learning
  rate of the chain's middle point. It is the suggestion: lower than the steepest slope and less
  sensitive to one noisy step (fastai made the same choice).

The sweep's steps are plain ones (forward, loss, backward, clipping, optimizer step, in the run's
precision) without the run's callbacks: augmentation, MixUp or penalties would change the loss the
rules read. The sweep leaves no trace: model weights and buffers, optimizer state (learning rates included), grad
scaler and every random generator are restored afterwards, so a fit after ``lr_find`` on the same
Trainer equals a fit without it. Dropout masks during the sweep come from ``seed`` (``train.seed`` by
default) and batches follow the Trainer's data order, so the same seed gives the same curve and the same
suggestion.
"""

from __future__ import annotations

import copy
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainwise import atomic, checkpointing
from trainwise.config import Config
from trainwise.errors import UserError
from trainwise.optim import scaled_lr


@dataclass
class LRFindResult:
    lrs: list[float]
    losses: list[float]  # raw training loss of each step
    smoothed: list[float]  # the losses smoothed forwards and backwards (centered_smooth)
    steepest: float | None
    valley: float | None
    stop_reason: str
    seed: int
    beta: float

    @property
    def suggestion(self) -> float | None:
        """The valley rule's learning rate, or the steepest slope's when there is no valley."""
        return self.valley if self.valley is not None else self.steepest

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"suggestion": self.suggestion, "rule": "valley" if self.valley is not None else "steepest"}

    def save(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``lr_find.json`` and ``lr_find.png`` into ``out_dir``."""
        out_dir = Path(out_dir)
        atomic.write_json(out_dir / "lr_find.json", self.to_dict())
        png = out_dir / "lr_find.png"
        self.plot(png)
        return out_dir / "lr_find.json", png

    def plot(self, path: str | Path) -> None:
        from matplotlib.figure import Figure  # no pyplot: no global backend, safe in notebooks and servers

        fig = Figure(figsize=(6.4, 4.2), layout="constrained")
        ax = fig.add_subplot()
        ax.semilogx(self.lrs, self.losses, color="tab:blue", alpha=0.25, lw=1, label="loss")
        ax.semilogx(self.lrs, self.smoothed, color="tab:blue", lw=2, label=f"smoothed (centered EMA, beta {self.beta})")
        for lr, name, color in ((self.steepest, "steepest", "tab:orange"), (self.valley, "valley", "tab:green")):
            if lr is not None:
                ax.axvline(lr, color=color, ls="--", lw=1.5, label=f"{name}: {lr:.2e}")
        finite = [s for s in self.smoothed if math.isfinite(s)]
        if finite:
            low, first = min(finite), finite[0]
            ax.set_ylim(low - 0.05 * abs(low), max(first, low) * 1.3 + 1e-8)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        ax.set_title(f"lr-find ({len(self.lrs)} steps; {self.stop_reason})", fontsize=10)
        ax.legend(fontsize=8)
        fig.savefig(path, dpi=110)


# ------------------------------------------------------------------------------------- suggestions

def ema_smooth(losses: list[float], beta: float) -> list[float]:
    """Exponential moving average with bias correction (the first values are not pulled toward 0)."""
    avg, out = 0.0, []
    for i, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta**i))
    return out


def centered_smooth(losses: list[float], beta: float) -> list[float]:
    """The moving average run forwards, then backwards over the result: smooth and without lag."""
    return ema_smooth(ema_smooth(losses, beta)[::-1], beta)[::-1]


def steepest_lr(lrs: list[float], smoothed: list[float], skip_start: int = 0) -> float | None:
    """The LR of the most negative slope d loss / d log10(lr), before the curve's minimum."""
    end = int(np.argmin(smoothed)) + 1
    if end - skip_start < 3:
        return None
    y = np.asarray(smoothed[skip_start:end])
    slope = np.gradient(y, np.log10(np.asarray(lrs[skip_start:end])))
    return float(lrs[skip_start + int(np.argmin(slope))])


def valley_lr(lrs: list[float], smoothed: list[float], min_fall: float = 0.01) -> float | None:
    """The middle of the longest chain of falling points (each fall > ``min_fall`` x the curve's fall)."""
    n = len(smoothed)
    if n < 3:
        return None
    low = int(np.argmin(smoothed))
    tol = min_fall * (max(smoothed[: low + 1]) - smoothed[low])
    length, prev = [1] * n, [-1] * n
    for i in range(n):  # longest decreasing subsequence, O(n^2): a few hundred points
        for j in range(i):
            if smoothed[i] < smoothed[j] - tol and length[j] + 1 > length[i]:
                length[i], prev[i] = length[j] + 1, j
    chain = [int(np.argmax(length))]
    while prev[chain[-1]] != -1:
        chain.append(prev[chain[-1]])
    if len(chain) < 3:
        return None
    return float(lrs[chain[::-1][len(chain) // 2]])


# ------------------------------------------------------------------------------------------ sweep

def lr_find(trainer, *, start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 200, beta: float = 0.9,
            diverge: float = 4.0, seed: int | None = None) -> LRFindResult:
    """Sweep the learning rate on ``trainer`` (a :class:`trainwise.Trainer`) and restore it afterwards."""
    if not 0 < start_lr < end_lr:
        raise UserError("bad lr-find range", expected="0 < start_lr < end_lr", received=f"{start_lr} .. {end_lr}")
    if steps < 5:
        raise UserError("too few lr-find steps", expected="at least 5", received=steps)
    model, opt = trainer.model, trainer.optimizer
    seed = trainer.config.train.seed if seed is None else seed
    saved = snapshot(trainer)
    trainer.lr = sweep = SweepLR(opt, trainer.lr.base)  # restore() puts the trainer's own back
    gamma = (end_lr / start_lr) ** (1 / (steps - 1))
    lrs: list[float] = []
    losses: list[float] = []
    stop_reason = f"reached end_lr {end_lr:g}"
    torch.manual_seed(seed)
    try:
        model.train()
        best, avg = math.inf, 0.0
        for i, (inputs, targets) in enumerate(_endless_batches(trainer.train_loader)):
            if i == steps:
                break
            lr = sweep.lr = start_lr * gamma**i
            loss = float(probe_step(trainer, inputs, targets).detach())
            if not math.isfinite(loss):
                stop_reason = f"loss became non-finite at lr {lr:.3g}"
                break
            lrs.append(lr)
            losses.append(loss)
            avg = beta * avg + (1 - beta) * loss
            smooth = avg / (1 - beta ** (i + 1))
            best = min(best, smooth)
            if smooth > diverge * best:
                stop_reason = f"loss exploded at lr {lr:.3g} (average loss > {diverge:g} x its best)"
                break
    finally:
        restore(trainer, saved)
    if len(losses) < 5:
        raise UserError("lr-find stopped before it could measure anything", received=stop_reason,
                        fix="lower start_lr (--start-lr) or check the data and model")
    smoothed = centered_smooth(losses, beta)
    return LRFindResult(lrs=lrs, losses=losses, smoothed=smoothed, steepest=steepest_lr(lrs, smoothed, skip_start=len(lrs) // 10),
                        valley=valley_lr(lrs, smoothed), stop_reason=stop_reason, seed=seed, beta=beta)


def _endless_batches(loader):
    """The loader's batches, epoch after epoch (epoch 1, 2, ... in the Trainer's data order)."""
    epoch = 1
    while True:
        yield from loader.batches(epoch)
        epoch += 1


def snapshot(trainer) -> dict[str, Any]:
    """What a probe (lr-find, the batch-size finder) changes: weights and buffers, optimizer, scaler, RNGs."""
    return {
        "model": {k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
        "optimizer": copy.deepcopy(trainer.optimizer.state_dict()),
        "scaler": trainer.scaler.state_dict(),
        "rng": checkpointing.rng_state(),
        "training": trainer.model.training,
        "lr": trainer.lr, "step": trainer.state.step,
        "train_metrics": (trainer.train_metrics.loss_sum.clone(), trainer.train_metrics.confusion.clone(), trainer.train_metrics.count),
    }


def restore(trainer, saved: dict[str, Any]) -> None:
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.model.load_state_dict(saved["model"])
    trainer.optimizer.load_state_dict(saved["optimizer"])
    trainer.scaler.load_state_dict(saved["scaler"])
    checkpointing.set_rng_state(saved["rng"])
    trainer.model.train(saved["training"])
    trainer.lr, trainer.state.step = saved["lr"], saved["step"]
    metrics = trainer.train_metrics
    metrics.loss_sum, metrics.confusion, metrics.count = saved["train_metrics"]


def probe_step(trainer, inputs, targets) -> torch.Tensor:
    """One training step as fit takes it (``Trainer.train_step``: autocast, scaler, clipping, the LR owner),
    with the callbacks left out; returns the batch's loss (on the device)."""
    state = trainer.state
    state.inputs, state.targets = inputs, targets
    trainer.train_step(events=False)
    return state.loss


class SweepLR:
    """Stands in for the trainer's LR owner during the sweep: every step at ``lr``, times each param group's
    multiplier (fine-tuning's head and layer-wise LRs keep their ratios)."""

    def __init__(self, optimizer: torch.optim.Optimizer, base: list[float]):
        self.optimizer, self.ratios, self.lr = optimizer, [b / base[0] for b in base], base[0]

    def set(self, step: int, scale: float = 1.0) -> None:
        for group, ratio in zip(self.optimizer.param_groups, self.ratios):
            group["lr"] = self.lr * ratio


# ----------------------------------------------------------------------------- optim.lr = "auto"

PLACEHOLDER_LR = 1e-3  # the optimizer needs some number to be built; the sweep sets its own


def probe_config(cfg: Config) -> Config:
    """``cfg`` with a number in place of ``optim.lr = "auto"`` and no progress output."""
    overrides: dict[str, Any] = {"train.progress": "none"}
    if cfg.optim.lr == "auto":
        overrides["optim.lr"] = PLACEHOLDER_LR
    return cfg.replace(overrides)


def resolve_auto_lr(cfg: Config, *, model: torch.nn.Module | None = None, data=None, out: str | Path | None = None,
                    **sweep: Any) -> tuple[Config, Any]:
    """Run lr-find for a config with ``optim.lr = "auto"``; return the config with the suggestion, and the data.

    The suggestion is the learning rate the optimizer should see; with ``optim.scale_lr`` the value
    written to ``optim.lr`` is divided by the scaling factor so that scaling gives it back. The sweep's
    plot and numbers go to ``out`` (the run directory) when given. Returns the data the probe loaded, so
    the caller does not load it twice.
    """
    from trainwise.trainer import Trainer

    probe = Trainer(probe_config(cfg), model=model, data=data)
    result = lr_find(probe, **sweep)
    if result.suggestion is None:
        raise UserError("lr-find found no learning rate to suggest", received=result.stop_reason,
                        fix="set optim.lr to a number, or run trainwise lr-find and read the plot")
    factor = scaled_lr(probe.config.optim.model_copy(update={"lr": 1.0}), cfg.data.batch_size)
    lr = float(f"{result.suggestion / factor:.3g}")
    if out is not None:
        result.save(out)
    rule = "valley" if result.valley is not None else "steepest"
    print(f"lr-find: optim.lr = auto -> {lr:.3g} ({rule} rule; steepest {_fmt(result.steepest)}, valley {_fmt(result.valley)})",
          file=sys.stderr)
    return cfg.replace({"optim.lr": lr}), probe.data


def _fmt(lr: float | None) -> str:
    return "none" if lr is None else f"{lr:.3g}"
