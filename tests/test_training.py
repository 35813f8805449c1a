"""End-to-end training on real data: the accuracy the README promises, binary tasks, precision, the CLI."""

import json

import pytest

import trainwise
from tests.helpers import ROOT, run_cli


def test_digits_default_config_reaches_095(quiet):
    run = trainwise.fit(ROOT / "configs" / "digits.toml", **{k.replace(".", "__"): v for k, v in quiet.items()})
    assert run.summary["test"]["acc"] >= 0.95


def test_breast_cancer_binary_bce_reaches_095(quiet):
    run = trainwise.fit(ROOT / "configs" / "breast_cancer.toml", **{k.replace(".", "__"): v for k, v in quiet.items()})
    assert run.summary["task"] == "binary"
    assert run.model[-1].out_features == 1  # one logit, BCE
    assert run.summary["test"]["acc"] >= 0.95
    assert {"val_precision", "val_recall", "val_f1", "val_macro_f1"} <= set(run.history[0])


@pytest.mark.parametrize("precision", ["bf16"])
def test_mixed_precision_on_cpu(quiet, precision):
    run = trainwise.fit(train__epochs=3, train__precision=precision, train__progress="none")
    assert run.summary["test"]["acc"] > 0.8


def test_clipping_by_norm_and_value(quiet):
    run = trainwise.fit(train__epochs=2, train__grad_clip_norm=0.5, train__grad_clip_value=0.01, train__progress="none")
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"] * 1.05


def test_deterministic_reruns_are_identical(quiet):
    a = trainwise.fit(train__epochs=2, train__deterministic=True, train__progress="none", model__dropout=0.3)
    b = trainwise.fit(train__epochs=2, train__deterministic=True, train__progress="none", model__dropout=0.3)
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]


def test_cli_train_writes_the_run_directory(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("train", "--set", "train.epochs=2", "--set", "model.hidden=[32]", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "epoch 2" in proc.stderr  # plain log lines when not a terminal
    for name in ("config.toml", "history.jsonl", "summary.json", "env.json", "checkpoints/best.safetensors",
                 "checkpoints/last.pt", "checkpoints/final.safetensors"):
        assert (out / name).is_file(), name
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert len(history) == 2
    assert {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "time_s", "val_precision", "val_recall", "val_f1"} <= set(history[0])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_epoch"] in (1, 2) and 0 <= summary["test"]["acc"] <= 1
    assert "hidden = [\n    32,\n]" in (out / "config.toml").read_text() or "hidden = [32]" in (out / "config.toml").read_text()

    proc = run_cli("evaluate", str(out), "--split", "val", "--json")
    assert proc.returncode == 0 and 0 < json.loads(proc.stdout)["acc"] <= 1
    proc = run_cli("resume", str(out))  # finished runs resume to the same end
    assert proc.returncode == 0, proc.stderr


def test_cli_missing_data_and_bad_labels(tmp_path):
    proc = run_cli("train", "--set", "data.name=arrays", "--set", f"data.path={tmp_path}/none.npz")
    assert proc.returncode == 2 and "not found" in proc.stderr and "Traceback" not in proc.stderr
    import numpy as np

    np.savez(tmp_path / "d.npz", x=np.zeros((20, 3), np.float32), y=np.arange(20) - 1)
    proc = run_cli("train", "--set", "data.name=arrays", "--set", f"data.path={tmp_path}/d.npz")
    assert proc.returncode == 2 and "not class ids 0..19" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_cli_version_and_help():
    assert run_cli("--version").stdout.startswith("trainwise ")
    out = run_cli("--help").stdout
    for command in ("train", "resume", "evaluate"):
        assert command in out


def test_plateau_schedule_with_an_unknown_monitor_is_a_user_error():
    import pytest

    from trainwise.errors import UserError

    with pytest.raises(UserError, match="'val_los' is not in the History"):
        trainwise.fit(train__epochs=1, train__progress="none", schedule__name="plateau", schedule__monitor="val_los")
    # without a validation split, val_* monitors fall back to the training metric
    run = trainwise.fit(train__epochs=2, train__progress="none", schedule__name="plateau", data__val_fraction=0.0)
    assert run.config.schedule.monitor == "train_loss"


def test_auto_lr_needs_fit_not_a_bare_trainer():
    import pytest

    from trainwise.errors import UserError

    with pytest.raises(UserError, match="optim.lr = 'auto'"):
        trainwise.Trainer(trainwise.Config().replace({"optim.lr": "auto"}))
