"""train --autofix on real digits runs: roll back and continue on divergence (CLI and a mid-run NaN),
restart on dead units, the cap on repairs, and the repairs in the history, summary and report."""

import json

import torch

import trainwise
from tests.helpers import run_cli
from trainwise.config import parse_override
from trainwise.core import Callback

SMALL = {"data__name": "digits", "data__val_fraction": 0.2, "model__hidden": [64], "train__epochs": 8,
         "train__progress": "none", "train__threads": 1}


class PoisonOneBatch(Callback):
    """NaN inputs in the first batch of one epoch, once (a corrupt batch)."""

    def __init__(self, epoch: int):
        self.epoch, self.done = epoch, False

    def on_batch_start(self, state):
        if state.epoch == self.epoch and not self.done:
            self.done = True
            state.inputs = (state.inputs[0] * torch.nan,) + tuple(state.inputs[1:])


def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]


def test_cli_autofix_rolls_back_a_divergence_and_finishes(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("train", "--set", "data.name=digits", "--set", "data.val_fraction=0.2", "--set", "model.hidden=[64]",
                   "--set", "train.epochs=6", "--set", "optim.name=sgd", "--set", "optim.lr=2.0", "--set", "train.progress=none",
                   "--set", "train.threads=1", "--set", "train.report=true", "--autofix", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    (repair,) = summary["repairs"]
    assert repair["finding"] == "diverged" and repair["action"] == "rollback" and repair["change"].startswith("optim.lr=")
    assert "autofix: diverged at epoch" in proc.stdout and "rolled back to epoch" in proc.stdout
    records = _records(out)
    assert [r["epoch"] for r in records] == list(range(1, 7))  # one continuous history, no epoch twice
    first_after = records[repair["resumed_from"]]
    assert first_after["event"] == "autofix_rollback" and repair["change"] in first_after["repair"]
    new_lr = float(repair["change"].split("=")[1])
    assert all(abs(r["lr"] - new_lr) < 1e-12 for r in records[repair["resumed_from"]:])
    assert summary["test"]["acc"] > 0.85  # lr 2.0 without the repair ends at chance
    assert trainwise.load_config(out / "config.toml").optim.lr == new_lr  # the run's config is the repaired one
    assert "Repairs" in (out / "report.html").read_text() and "autofix" in (out / "report.html").read_text()


def test_rollback_to_the_last_good_epoch_keeps_the_epochs_before(tmp_path):
    run = trainwise.fit(out=tmp_path / "nan", callbacks=[PoisonOneBatch(epoch=4)], doctor__autofix=True, **SMALL)
    (repair,) = run.summary["repairs"]
    assert repair["action"] == "rollback" and repair["epoch"] == 4 and repair["resumed_from"] == 3
    records = run.history.records
    assert [r["epoch"] for r in records] == list(range(1, 9))
    assert records[3]["event"] == "autofix_rollback" and all("event" not in r for r in records[:3])
    losses = [r["train_loss"] for r in records]
    assert all(isinstance(v, float) and v == v for v in losses)  # no NaN kept: epoch 4 was trained again
    assert losses[3] < losses[2] and losses[-1] < losses[3]  # continued from epoch 3's weights, not from scratch
    new_lr = float(repair["change"].split("=")[1])
    assert [r["lr"] for r in records] == [records[0]["lr"]] * 3 + [new_lr] * 5
    assert records[-1]["val_acc"] > 0.85


def test_a_deep_sigmoid_net_stuck_at_chance_restarts_with_the_fix(tmp_path):
    deep_sigmoid = {"model__activation": "sigmoid", "model__hidden": [32] * 8, "optim__name": "sgd", "optim__lr": 0.05}
    run = trainwise.fit(out=tmp_path / "deep", doctor__autofix=True, **(SMALL | deep_sigmoid))
    repairs = run.summary["repairs"]
    assert repairs and all(r["action"] == "restart" and r["discarded_epochs"] >= 1 for r in repairs)
    # vanishing gradients through 8 unnormalised layers: batch norm first (it acts on this mlp and is off)
    assert repairs[0]["finding"] == "stuck_at_chance" and repairs[0]["change"] == "model.batch_norm=true"
    keys = [r["change"].split("=")[0] for r in repairs]
    assert len(keys) == len(set(keys))  # the finding came back: the next repair changes another key
    records = run.history.records
    assert [r["epoch"] for r in records] == list(range(1, 9)) and records[0]["event"] == "autofix_restart"
    assert all("event" not in r for r in records[1:])
    cfg = trainwise.load_config(tmp_path / "deep" / "config.toml")
    for r in repairs:  # every repair is in the saved config
        assert cfg.replace(dict([parse_override(r["change"])])) == cfg
    assert records[-1]["val_acc"] > 0.8  # without repair: 0.10 (chance)


def test_repairs_are_capped(tmp_path):
    run = trainwise.fit(out=tmp_path / "cap", doctor__autofix=True, doctor__max_repairs=0, **(SMALL | {"optim__name": "sgd", "optim__lr": 2.0}))
    assert run.summary["repairs"] == [] and run.history.records[-1]["val_acc"] < 0.3
    assert all("event" not in r for r in run.history.records)


def test_autofix_needs_the_live_doctor():
    import pytest

    with pytest.raises(trainwise.UserError, match="live doctor"):
        trainwise.fit(doctor__autofix=True, doctor__live=False, **SMALL)
