"""Which way each History key improves, early stopping's patience, the LR each epoch trained with, warm-up under
every schedule, and checkpointed state of two callbacks of one class: on short real digits runs."""

import math

import pytest
import torch

import trainwise
from trainwise.config import Config, OptimConfig, ScheduleConfig
from trainwise.metrics import DIRECTIONS, base_key, direction
from trainwise.optim import LearningRate, build_optimizer, lr_factor_fn


def short(quiet, **extra):
    return Config().replace({**quiet, "model.hidden": [32], "train.epochs": 3, **extra})


@pytest.mark.parametrize("key, expected", [
    ("val_loss", "min"), ("train_loss", "min"), ("val_loss_ema", "min"), ("val_acc", "max"), ("val_acc_ema", "max"),
    ("val_macro_f1", "max"), ("val_macro_f1_ema", "max"), ("val_f1", "max"), ("val_precision", "max"),
    ("val_recall", "max"), ("train_acc", "max"), ("lr", None), ("grad_norm/net.0", None), ("dead_frac/net.1", None),
    ("my_top5_acc", "max"), ("my_error", "min")])
def test_direction_of_keys(key, expected):
    assert direction(key) == expected


def test_every_history_key_has_a_direction(tmp_path, quiet):
    """A run with every monitor, EMA, a phase and the NaN guard's rollback writes every key the Trainer knows."""
    class PoisonOnce(trainwise.Callback):
        def on_after_loss(self, state):
            if state.step == 30 and state.epoch == 2:
                state.loss = state.loss * float("nan")

    cfg = short(quiet, **{"monitors.grad_norms": True, "monitors.update_ratios": True, "monitors.activations": True,
                          "monitors.every_n_steps": 5, "monitors.nan_policy": "rollback", "ema.enabled": True,
                          "finetune.freeze": ["hidden1.*"], "finetune.unfreeze_epoch": 2})
    run = trainwise.fit(cfg, out=tmp_path / "r", callbacks=[PoisonOnce()])
    keys = {k for record in run.history for k in record}
    assert {"val_acc_ema", "grad_norm", "event", "phase", "nonfinite_steps"} <= keys
    unknown = sorted(k for k in keys if base_key(k) not in DIRECTIONS)
    assert not unknown, f"History keys without a direction in trainwise.metrics.DIRECTIONS: {unknown}"


@pytest.mark.parametrize("monitor", ["val_acc_ema", "val_macro_f1_ema"])
def test_early_stopping_on_an_ema_score_keeps_its_best(tmp_path, quiet, monitor):
    cfg = short(quiet, **{"train.epochs": 6, "ema.enabled": True, "ema.decay": 0.9, "early_stopping.enabled": True,
                          "early_stopping.monitor": monitor, "early_stopping.patience": 10, "checkpoint.monitor": monitor})
    run = trainwise.fit(cfg, out=tmp_path / "r")
    values = [r[monitor] for r in run.history]
    assert run.summary["best_value"] == max(values) and values[run.summary["best_epoch"] - 1] == max(values)
    assert min(values) < max(values)  # the test means something only while the score moves


def test_plateau_on_an_ema_accuracy_reduces_only_when_it_stops_rising(quiet):
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], OptimConfig(name="sgd", lr=0.1), 0.1)
    lr = LearningRate(opt, ScheduleConfig(name="plateau", monitor="val_acc_ema", patience=0, factor=0.5), 4, 10)
    for acc in (0.5, 0.6, 0.7):  # rising: no reduction
        lr.end_of_epoch(acc)
    lr.set(12)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    lr.end_of_epoch(0.65)
    lr.set(16)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


@pytest.mark.parametrize("patience", [1, 3])
def test_early_stopping_stops_after_patience_epochs_without_improvement(tmp_path, quiet, patience):
    # min_delta 10: no epoch after the first counts as an improvement of val_loss.
    cfg = short(quiet, **{"train.epochs": 10, "early_stopping.enabled": True, "early_stopping.patience": patience,
                          "early_stopping.min_delta": 10.0})
    run = trainwise.fit(cfg)
    assert run.summary["best_epoch"] == 1 and run.summary["epochs_run"] == 1 + patience
    assert f"for {patience} epochs" in run.summary["stop_reason"]


def test_history_lr_is_what_the_epoch_trained_with(quiet):
    run = trainwise.fit(short(quiet, **{"optim.name": "sgd", "optim.lr": 0.1, "schedule.name": "step",
                                        "schedule.step_size": 1, "schedule.gamma": 0.5}))
    assert [r["lr"] for r in run.history] == pytest.approx([0.1, 0.05, 0.025])


def test_history_lr_of_a_per_step_schedule_is_the_last_steps(quiet):
    cfg = short(quiet, **{"optim.lr": 0.01, "schedule.name": "cosine"})
    run = trainwise.fit(cfg)
    spe = run.history[0]["step"]
    f = lr_factor_fn(cfg.schedule, spe, 3 * spe)
    assert [r["lr"] for r in run.history] == pytest.approx([0.01 * f(r["step"] - 1) for r in run.history])


@pytest.mark.parametrize("name", ["none", "plateau"])
def test_warmup_applies_under_plateau_and_none(quiet, name):
    lrs = []

    class Spy(trainwise.Callback):
        def on_step_end(self, state):
            lrs.append(state.optimizer.param_groups[0]["lr"])

    cfg = short(quiet, **{"optim.lr": 0.01, "schedule.name": name, "schedule.warmup_epochs": 1,
                          "schedule.warmup_start_factor": 0.1, "train.epochs": 2})
    run = trainwise.fit(cfg, callbacks=[Spy()])
    spe = run.history[0]["step"]
    assert lrs[0] == pytest.approx(0.001) and lrs[:spe] == sorted(lrs[:spe]) and lrs[spe - 1] < 0.01
    assert lrs[spe:] == pytest.approx([0.01] * spe)  # warm-up over; plateau has not reduced yet
    assert run.history[0]["lr"] == pytest.approx(lrs[spe - 1])


def test_onecycle_refuses_warmup_epochs():
    with pytest.raises(ValueError, match="onecycle rises by itself"):
        ScheduleConfig(name="onecycle", warmup_epochs=1)


def test_onecycle_matches_torch():
    cfg = ScheduleConfig(name="onecycle", max_lr=1.0, pct_start=0.25, div_factor=10, final_div_factor=100)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    torch_sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=40, pct_start=0.25, div_factor=10,
                                                      final_div_factor=100, cycle_momentum=False)
    theirs = []
    for _ in range(40):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        torch_sched.step()
    f = lr_factor_fn(cfg, 4, 40)
    assert [f(s) for s in range(40)] == pytest.approx(theirs, rel=1e-9)


class Counter(trainwise.Callback):
    """Adds ``by`` to its count at every step; the count is checkpointed."""

    def __init__(self, by):
        self.by, self.count = by, 0

    def on_step_end(self, state):
        self.count += self.by

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


def test_two_callbacks_of_one_class_keep_their_own_state_across_resume(tmp_path, quiet):
    class StopIn2(trainwise.Callback):  # the checkpoint of epoch 1 stays
        def on_epoch_end(self, state):
            if state.epoch == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainwise.fit(short(quiet), out=tmp_path / "b", callbacks=[Counter(1), Counter(1000), StopIn2()])
    saved = torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)["callbacks"]
    steps = saved["Counter"]["count"]
    assert saved["Counter#2"]["count"] == 1000 * steps
    ones, thousands = Counter(1), Counter(1000)
    resumed = trainwise.resume(tmp_path / "b", callbacks=[ones, thousands])
    assert (ones.count, thousands.count) == (resumed.summary["steps"], 1000 * resumed.summary["steps"])
    assert not math.isnan(resumed.history[-1]["val_loss"])
