"""Real, small training runs for the doctor and monitor tests.

A compact training loop (about a hundred lines) driven by a trainwise ``Config``: it fires the events in
the order ``trainwise/core.py`` describes and writes per-epoch records with the History's keys, so the
doctor is tested on curves that real optimisation produced, not on curves we imagined. Broken runs are
made the way users break them: a bad config value (LR, weight decay, dropout, no normalisation), or a
bug outside the config (``Bugs``: shuffled labels, a bad initialisation, an LR jump at a phase change).

Nothing is cached on disk; a run on digits takes well under a second on one CPU core.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from trainwise.config import Config, build_config, merge_overrides
from trainwise.core import Callback, Event, State
from trainwise.history import History
from trainwise.losses import task_loss

DATASETS = ("digits", "breast_cancer", "mnist1d")


@dataclass(frozen=True)
class Bugs:
    """Faults that no config value expresses, planted the way they happen in real code."""

    shuffle_labels: bool = False  # labels permuted independently of inputs (a broken join)
    bias_init: float | None = None  # every hidden bias set to this (e.g. -5: ReLUs dead from the start)
    weight_scale: float = 1.0  # multiply the default initial weights (large: saturation/explosion)
    input_scale: float = 1.0  # multiply raw inputs before any normalisation (e.g. pixel values 0..255)
    phases: dict[int, tuple[str, float]] = field(default_factory=dict)  # epoch -> (phase label, lr multiplier)


@dataclass
class Run:
    records: list[dict[str, Any]]
    config: dict[str, Any]
    num_classes: int
    task: str
    confusion: list[list[int]]  # validation confusion matrix after the last epoch (rows: true class)
    state: State


class MLP(nn.Module):
    """Same layout as trainwise's mlp builder: Linear [BatchNorm] activation [Dropout] per hidden layer."""

    def __init__(self, in_dim: int, num_classes: int, cfg: Config):
        super().__init__()
        acts = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "silu": nn.SiLU,
                "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "elu": nn.ELU, "selu": nn.SELU}
        hidden = cfg.model.hidden
        drops = cfg.model.dropout if isinstance(cfg.model.dropout, list) else [cfg.model.dropout] * len(hidden)
        layers: list[nn.Module] = []
        width = in_dim
        for h, p in zip(hidden, drops):
            layers.append(nn.Linear(width, h))
            if cfg.model.batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(acts[cfg.model.activation]())
            if p > 0:
                layers.append(nn.Dropout(p))
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def load_data(cfg: Config, bugs: Bugs) -> tuple[tuple[torch.Tensor, ...], int]:
    """(x_train, y_train, x_val, y_val), num_classes; split by ``data.split_seed``, normalised on train."""
    name = cfg.data.name
    if name == "digits":
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
    elif name == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        x, y = load_breast_cancer(return_X_y=True)
    elif name == "mnist1d":
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.num_samples = 2000
        d = make_dataset(args)
        x, y = np.concatenate([d["x"], d["x_test"]]), np.concatenate([d["y"], d["y_test"]])
    else:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    rng = np.random.default_rng(cfg.data.split_seed)
    order = rng.permutation(len(y))
    x, y = x[order].astype(np.float32) * bugs.input_scale, y[order].astype(np.int64)
    n_val = int(round(len(y) * cfg.data.val_fraction))
    x_tr, y_tr, x_va, y_va = x[n_val:], y[n_val:], x[:n_val], y[:n_val]
    if cfg.data.train_subset:
        x_tr, y_tr = x_tr[: cfg.data.train_subset], y_tr[: cfg.data.train_subset]
    if bugs.shuffle_labels:
        y_tr = rng.permutation(y_tr)
    if cfg.data.normalize:
        mean, std = x_tr.mean(0), x_tr.std(0)
        std[std < 1e-6] = 1.0  # constant features (digit border pixels) stay constant, as in StandardScaler
        x_tr, x_va = (x_tr - mean) / std, (x_va - mean) / std
    tensors = tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in (x_tr, y_tr, x_va, y_va))
    return tensors, int(y.max()) + 1


def make_optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    o = cfg.optim
    decay = [p for p in model.parameters() if p.ndim >= 2 or not o.no_decay_bias_norm]
    rest = [p for p in model.parameters() if not (p.ndim >= 2 or not o.no_decay_bias_norm)]
    groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov)
    if o.name == "adam":
        return torch.optim.Adam(groups, lr=o.lr, betas=o.betas, eps=o.eps)
    if o.name == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr, betas=o.betas, eps=o.eps)
    if o.name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=o.lr, momentum=o.momentum, alpha=o.alpha, eps=o.eps)
    return torch.optim.Adagrad(groups, lr=o.lr, eps=o.eps)


def lr_at_epoch(cfg: Config, epoch: int) -> float:
    """Per-epoch schedule (enough for tests): none, step, cosine."""
    s, lr = cfg.schedule, cfg.optim.lr
    if s.name == "step":
        return lr * s.gamma ** ((epoch - 1) // s.step_size)
    if s.name == "cosine":
        t = (epoch - 1) / max(1, cfg.train.epochs - 1)
        return lr * (s.min_lr_factor + (1 - s.min_lr_factor) * 0.5 * (1 + math.cos(math.pi * t)))
    return lr


def _metrics(logits: torch.Tensor, y: torch.Tensor, k: int) -> tuple[dict[str, float], np.ndarray]:
    pred = logits.argmax(1).numpy()
    conf = np.zeros((k, k), dtype=np.int64)
    np.add.at(conf, (y.numpy(), pred), 1)
    tp = np.diag(conf).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = np.nan_to_num(tp / conf.sum(0))
        rec = np.nan_to_num(tp / conf.sum(1))
        f1 = np.nan_to_num(2 * prec * rec / (prec + rec))
    # Binary: the positive class (1), as trainwise reports; multi-class: macro averages.
    pick = (lambda a: float(a[1])) if k == 2 else (lambda a: float(a.mean()))
    out = {"val_precision": pick(prec), "val_recall": pick(rec), "val_f1": pick(f1), "val_macro_f1": float(f1.mean())}
    return out, conf


def train(overrides: dict[str, Any] | None = None, bugs: Bugs = Bugs(), callbacks: list[Callback] = ()) -> Run:
    """One run: ``overrides`` are dotted config keys (as ``--set``), ``bugs`` plant faults outside it."""
    defaults = {"train.epochs": 20, "data.val_fraction": 0.2, "model.hidden": [64]}
    cfg = build_config(merge_overrides({}, {**defaults, **(overrides or {})}))
    torch.manual_seed(cfg.train.seed)
    torch.set_num_threads(1)  # tiny matrices: threads only add overhead and nondeterminism
    (x_tr, y_tr, x_va, y_va), k = load_data(cfg, bugs)
    model = MLP(x_tr.shape[1], k, cfg)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.mul_(bugs.weight_scale)
                if bugs.bias_init is not None and m is not model.net[-1]:
                    m.bias.fill_(bugs.bias_init)
    opt = make_optimizer(model, cfg)
    bs = cfg.data.batch_size
    steps_per_epoch = math.ceil(len(y_tr) / bs)
    state = State(config=cfg, model=model, optimizer=opt, scheduler=None, history=History(), device=torch.device("cpu"),
                  task="binary" if k == 2 else "multiclass", num_classes=k, steps_per_epoch=steps_per_epoch)
    cbs = sorted(callbacks, key=lambda c: c.order)

    def fire(event: Event) -> None:
        for cb in cbs:
            cb.on_event(event, state)

    gen = torch.Generator().manual_seed(cfg.train.seed)
    lr_mult = 1.0
    fire(Event.FIT_START)
    for epoch in range(1, cfg.train.epochs + 1):
        state.epoch = epoch
        if epoch in bugs.phases:
            state.phase, factor = bugs.phases[epoch]
            lr_mult *= factor
        epoch_lr = lr_at_epoch(cfg, epoch) * lr_mult
        fire(Event.EPOCH_START)
        model.train()
        t0, loss_sum, correct, seen = time.perf_counter(), 0.0, 0, 0
        for i, idx in enumerate(torch.randperm(len(y_tr), generator=gen).split(bs)):
            state.batch_index, state.inputs, state.targets = i, (x_tr[idx],), y_tr[idx]
            fire(Event.BATCH_START)
            state.outputs = model(*state.inputs)
            # trainwise's task loss (label smoothing included); the zoo's MLP has K logits even for K = 2
            state.loss = task_loss(state.outputs, state.targets, "multiclass", cfg.regularization.label_smoothing)
            fire(Event.AFTER_LOSS)
            opt.zero_grad(set_to_none=True)
            state.loss.backward()
            fire(Event.AFTER_BACKWARD)
            if state.skip_step:  # cleared before STEP_END, as trainwise's Trainer does
                state.skip_step = False
                opt.zero_grad(set_to_none=True)
            else:
                if cfg.train.grad_clip_norm:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip_norm)
                for group in opt.param_groups:  # state.lr_scale: lowered by the NaN guard's rollbacks
                    group["lr"] = epoch_lr * state.lr_scale
                opt.step()
                state.step += 1
                loss_sum += float(state.loss.detach()) * len(idx)  # the test loop may sync; trainwise does not
                correct += int((state.outputs.argmax(1) == state.targets).sum())
                seen += len(idx)
            fire(Event.STEP_END)
        model.eval()
        with torch.no_grad():
            logits = model(x_va)
            val_loss = float(nn.functional.cross_entropy(logits, y_va))
        extra, conf = _metrics(logits, y_va, k)
        elapsed = time.perf_counter() - t0
        state.record = {
            "epoch": epoch,
            "train_loss": loss_sum / seen if seen else float("nan"),
            "train_acc": correct / seen if seen else float("nan"),
            "val_loss": val_loss,
            "val_acc": float((logits.argmax(1) == y_va).float().mean()),
            **extra,
            "lr": opt.param_groups[0]["lr"],
            "time_s": elapsed,
            "samples_per_s": len(y_tr) / elapsed,
            "step": state.step,
        }
        if state.phase is not None:
            state.record["phase"] = state.phase
        fire(Event.EVAL_END)
        state.history.append(state.record)
        fire(Event.EPOCH_END)
        if state.stop:
            break
    fire(Event.FIT_END)
    return Run(state.history.records, cfg.to_dict(), k, state.task, conf.tolist(), state)


@dataclass(frozen=True)
class Scenario:
    """A run to make and the finding it must produce (``healthy`` for clean twins)."""

    overrides: dict[str, Any]
    bugs: Bugs = Bugs()
    expect: str = "healthy"
    note: str = ""


SCENARIOS: dict[str, Scenario] = {
    # Clean runs: only ``healthy`` (plus info) may come out.
    "digits": Scenario({}),
    "digits_sgd": Scenario({"optim.name": "sgd", "optim.lr": 0.05}),
    "digits_dropout_bn": Scenario({"model.dropout": 0.2, "model.batch_norm": True, "model.hidden": [128, 64]}),
    "digits_smoothing": Scenario({"regularization.label_smoothing": 0.6}, note="train loss floor 1.88 from smoothing"),
    "digits_tanh_raw": Scenario({"model.activation": "tanh", "data.normalize": False, "model.hidden": [64, 64]},
                                Bugs(input_scale=16.0), note="saturated first layer, learns anyway"),
    "digits_sparse_relu": Scenario({"model.hidden": [256]}, Bugs(bias_init=-2.0), note="~60 % dead ReLUs, learns anyway"),
    "digits_deep_relu": Scenario({"model.hidden": [64] * 8, "optim.name": "sgd", "optim.lr": 0.02}, Bugs(weight_scale=2.5)),
    "breast_cancer": Scenario({"data.name": "breast_cancer"}),
    # Broken runs.
    "mnist1d_mlp_gap": Scenario({"data.name": "mnist1d", "model.hidden": [128, 128]}, expect="overfitting",
                                note="an MLP on MNIST-1D: training 0.73, validation 0.49, the gap growing every epoch"),
    "overfit_mnist1d": Scenario({"data.name": "mnist1d", "model.hidden": [256, 256], "train.epochs": 40, "data.train_subset": 400},
                                expect="overfitting"),
    "diverge_sgd": Scenario({"optim.name": "sgd", "optim.lr": 2.0}, expect="diverged"),
    "lr_high_adam": Scenario({"optim.lr": 0.05, "model.hidden": [128, 128]}, expect="lr_too_high"),
    "lr_low_adam": Scenario({"optim.lr": 1e-5}, expect="lr_too_low"),
    "lr_low_sgd": Scenario({"optim.name": "sgd", "optim.lr": 1e-4, "optim.momentum": 0.0}, expect="lr_too_low"),
    "dropout_09": Scenario({"model.dropout": 0.9, "model.hidden": [64, 64]}, expect="over_regularized"),
    "weight_decay_30": Scenario({"optim.weight_decay": 30.0}, expect="over_regularized"),
    "tiny_mnist1d": Scenario({"data.name": "mnist1d", "model.hidden": [3], "optim.lr": 3e-3}, expect="underfitting"),
    "shuffled_labels": Scenario({}, Bugs(shuffle_labels=True), expect="stuck_at_chance"),
    "dead_relu_bias": Scenario({"model.hidden": [64, 64]}, Bugs(bias_init=-5.0), expect="dead_units"),
    "deep_sigmoid": Scenario({"model.activation": "sigmoid", "model.hidden": [32] * 8, "optim.name": "sgd", "optim.lr": 0.05},
                             expect="vanishing_gradients"),
    "lr_restart": Scenario({"train.epochs": 24}, Bugs(phases={1: ("base", 1.0), 12: ("restart", 30.0)}), expect="phase_regression"),
    "raw_breast_cancer": Scenario({"data.name": "breast_cancer", "data.normalize": False, "optim.name": "sgd", "optim.lr": 1e-3},
                                  expect="prediction_collapse"),
}


def run_scenario(name: str, monitors: bool = True, every_n_steps: int = 5) -> Run:
    from trainwise.callbacks.monitors import make_monitors

    s = SCENARIOS[name]
    callbacks = make_monitors(build_config({"monitors": {"every_n_steps": every_n_steps}})) if monitors else []
    return train(s.overrides, s.bugs, callbacks)
