import json

import pytest
import torch

import trainwise
from tests.helpers import run_cli, same_weights, stopped_mid_epoch_then_resumed, without_times
from trainwise.checkpointing import load_weights
from trainwise.config import Config
from trainwise.errors import UserError


def small(quiet, **extra):
    return Config().replace({**quiet, "model.hidden": [32], "model.dropout": 0.1, "schedule.name": "cosine",
                             "schedule.warmup_epochs": 1, "early_stopping.enabled": True, "early_stopping.patience": 50, **extra})


def test_resume_equals_uninterrupted(tmp_path, quiet):
    straight = trainwise.fit(small(quiet, **{"train.epochs": 4}), out=tmp_path / "a")
    # The same config for 4 epochs, stopped after 2 by an exception, then resumed.
    class StopAfter2(trainwise.Callback):
        def on_epoch_end(self, state):
            if state.epoch == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainwise.fit(small(quiet, **{"train.epochs": 4}), out=tmp_path / "b", callbacks=[StopAfter2()])
    resumed = trainwise.resume(tmp_path / "b")
    assert same_weights(straight.model.state_dict(), resumed.model.state_dict())
    assert without_times(straight.history.records) == without_times(resumed.history.records)
    on_disk = [json.loads(line) for line in (tmp_path / "b" / "history.jsonl").read_text().splitlines()]
    assert without_times(on_disk) == without_times(straight.history.records)


def test_mid_epoch_checkpoint_resume(tmp_path, quiet):
    cfg = small(quiet, **{"train.epochs": 2, "checkpoint.every_n_steps": 5, "data.batch_size": 32})
    straight = trainwise.fit(cfg, out=tmp_path / "a")
    resumed = stopped_mid_epoch_then_resumed(cfg, tmp_path / "b", 23)  # after the checkpoint at step 20, inside epoch 1 (41 steps/epoch)
    assert same_weights(straight.model.state_dict(), resumed.model.state_dict())
    assert without_times(straight.history.records) == without_times(resumed.history.records)


def test_early_stopping_restores_best_weights(tmp_path, quiet):
    # A high learning rate without decay makes val_loss bounce, so the best epoch is not the last.
    cfg = Config().replace({**quiet, "optim.lr": 0.03, "train.epochs": 25, "early_stopping.enabled": True,
                            "early_stopping.patience": 3, "model.hidden": [64]})
    run = trainwise.fit(cfg, out=tmp_path / "r")
    best_epoch = run.summary["best_epoch"]
    assert best_epoch < run.summary["epochs_run"]
    assert run.summary["restored_epoch"] == best_epoch
    best = load_weights(tmp_path / "r" / "checkpoints" / "best.safetensors")
    assert same_weights(best, run.model.state_dict())
    # the restored model scores the best epoch's val_loss
    val = [r["val_loss"] for r in run.history.records]
    assert min(val) == pytest.approx(val[best_epoch - 1])


def test_checkpoint_round_trip(tmp_path, quiet):
    run = trainwise.fit(Config().replace({**quiet, "train.epochs": 2}), out=tmp_path / "r")
    final = load_weights(tmp_path / "r" / "checkpoints" / "final.safetensors")
    assert same_weights(final, run.model.state_dict())
    last = torch.load(tmp_path / "r" / "checkpoints" / "last.pt", weights_only=True)
    assert last["epoch"] == 2 and last["step"] == run.summary["steps"]
    rescored = trainwise.evaluate(tmp_path / "r", split="test")
    assert rescored["acc"] == pytest.approx(run.summary["test"]["acc"])


def test_resume_errors(tmp_path, quiet):
    with pytest.raises(UserError, match="does not exist"):
        trainwise.resume(tmp_path / "missing")
    trainwise.fit(Config().replace({**quiet, "train.epochs": 1}), out=tmp_path / "r")
    with pytest.raises(UserError, match="another config"):
        trainwise.resume(tmp_path / "r", config=Config().replace({"optim.lr": 0.5}))
    proc = run_cli("resume", str(tmp_path / "missing"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr
