"""resume on a finished run: one line, nothing written; resume --set train.epochs=N: the run goes on, schedule stretched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_cli, same_weights, without_times

import trainwise
from trainwise.config import Config
from trainwise.errors import RunFinished, UserError

SMALL = ["--set", "train.epochs=3", "--set", "model.hidden=[32]", "--set", "schedule.name='cosine'", "--set", "train.progress='none'",
         "--set", "doctor.live=false", "--set", "train.deterministic=true"]


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def history(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]


def test_a_finished_run_says_so_in_one_line_and_writes_nothing(tmp_path):
    run = tmp_path / "run"
    assert run_cli("train", *SMALL, "--out", str(run)).returncode == 0
    before = snapshot(run)
    done = run_cli("resume", str(run))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == [
        f"{run} is finished (3 of 3 epochs, completed); nothing was written. To train longer: trainwise resume {run} --set train.epochs=N (N > 3)"]
    assert snapshot(run) == before  # env.json, the report, the summary: all as they were


def test_resume_with_more_epochs_extends_a_finished_run_with_the_schedule_stretched(tmp_path):
    run, fresh = tmp_path / "run", tmp_path / "fresh"
    assert run_cli("train", *SMALL, "--out", str(run)).returncode == 0
    assert run_cli("train", *SMALL, "--set", "train.epochs=6", "--out", str(fresh)).returncode == 0
    first = history(run)
    done = run_cli("resume", str(run), "--set", "train.epochs=6")
    assert done.returncode == 0, done.stderr
    assert "test_acc" in done.stdout
    extended = history(run)
    assert len(extended) == 6 and without_times(extended[:3]) == without_times(first)  # the trained epochs are kept
    # stretched: from epoch 4 on, the LR is what a 6-epoch cosine schedule has at those steps
    assert [r["lr"] for r in extended[3:]] == pytest.approx([r["lr"] for r in history(fresh)[3:]], rel=1e-9)
    assert [r["lr"] for r in extended[:3]] != pytest.approx([r["lr"] for r in history(fresh)[:3]])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_run"] == 6 and summary["stop_reason"] == "completed 6 epochs"
    assert "epochs = 6" in (run / "config.toml").read_text()


def test_resume_changes_nothing_but_epochs_and_only_upwards(tmp_path):
    run = tmp_path / "run"
    assert run_cli("train", *SMALL, "--out", str(run)).returncode == 0
    for args, says in ((["--set", "optim.lr=0.1"], "error: resume cannot change optim.lr"),
                       (["--set", "train.epochs=2"], "error: cannot extend"),
                       (["--set", "train.epochs=many"], "error: bad --set train.epochs")):
        done = run_cli("resume", str(run), *args)
        assert done.returncode == 2 and done.stderr.startswith(says) and len(done.stderr.strip().splitlines()) == 1, done.stderr


def small(quiet, **extra) -> Config:
    return Config().replace({**quiet, "model.hidden": [32], "model.dropout": 0.1, "schedule.name": "cosine", "schedule.warmup_epochs": 1, **extra})


def test_an_interrupted_extension_resumes_exactly(tmp_path, quiet):
    trainwise.fit(small(quiet, **{"train.epochs": 2}), out=tmp_path / "a")
    straight = trainwise.resume(tmp_path / "a", epochs=4)
    trainwise.fit(small(quiet, **{"train.epochs": 2}), out=tmp_path / "b")

    class StopAt3(trainwise.Callback):
        def on_epoch_end(self, state):
            if state.epoch == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainwise.resume(tmp_path / "b", epochs=4, callbacks=[StopAt3()])
    resumed = trainwise.resume(tmp_path / "b")  # config.toml now says 4 epochs
    assert same_weights(straight.model.state_dict(), resumed.model.state_dict())
    assert without_times(straight.history.records) == without_times(resumed.history.records)
    with pytest.raises(RunFinished, match="is finished"):
        trainwise.resume(tmp_path / "b")


def test_a_run_that_stopped_early_is_not_extended(tmp_path, quiet):
    cfg = small(quiet, **{"train.epochs": 30, "optim.lr": 0.03, "early_stopping.enabled": True, "early_stopping.patience": 1})
    run = trainwise.fit(cfg, out=tmp_path / "r")
    assert run.summary["epochs_run"] < 30
    with pytest.raises(UserError, match="was stopped at epoch"):
        trainwise.resume(tmp_path / "r", epochs=40)


def test_an_early_stopped_run_is_not_offered_an_extension_it_would_refuse(tmp_path):
    run = tmp_path / "run"
    stop_soon = [*SMALL, "--set", "train.epochs=30", "--set", "early_stopping.enabled=true",
                 "--set", "early_stopping.patience=1", "--set", "early_stopping.min_delta=10"]
    assert run_cli("train", *stop_soon, "--out", str(run)).returncode == 0
    done = run_cli("resume", str(run))
    assert done.returncode == 0 and "finished" in done.stdout
    assert "--set train.epochs" not in done.stdout and "finetune.init_from" in done.stdout
