"""steps.jsonl: the loss and LR of every optimizer step (the report's per-step curves), exact after a kill."""

from __future__ import annotations

import json

import pytest

import trainwise
from tests.helpers import cli_env, run_cli
from trainwise.config import Config

SETTINGS = {"train.epochs": 2, "model.hidden": [32], "model.dropout": 0.1, "schedule.name": "cosine", "schedule.warmup_epochs": 1,
            "checkpoint.every_n_steps": 5, "train.progress": "none", "train.threads": 1, "train.deterministic": True}


def steps(run_dir):
    return [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]


def test_every_step_is_recorded_and_the_warm_up_shows(tmp_path):
    run = trainwise.fit(Config().replace(SETTINGS), out=tmp_path / "run")
    rows = steps(tmp_path / "run")
    assert [r["step"] for r in rows] == list(range(1, run.summary["steps"] + 1))
    assert [r["epoch"] for r in rows][:21] == [1] * 21 and rows[-1]["epoch"] == 2
    per_epoch = run.summary["steps"] // 2
    warm = [r["lr"] for r in rows[:per_epoch]]
    assert all(a < b for a, b in zip(warm, warm[1:])) and warm[0] < 0.1 * warm[-1]  # the warm-up, step by step
    assert rows[-1]["lr"] < warm[-1]  # then the cosine decay
    assert all(r["loss"] > 0 for r in rows) and rows[-1]["loss"] < rows[0]["loss"]
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Loss per step" in html and "Learning rate per step" in html


@pytest.mark.parametrize("fault, written", [("step@13", 0), ("step@33", 21)])  # inside epoch 1; inside epoch 2 (21 steps per epoch)
def test_steps_after_a_kill_and_resume_equal_an_uninterrupted_run(tmp_path, fault, written):
    trainwise.fit(Config().replace(SETTINGS), out=tmp_path / "straight")
    args = [a for k, v in SETTINGS.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    proc = run_cli("train", *args, "--out", str(tmp_path / "run"), env=cli_env(TRAINWISE_FAULT=fault))
    assert proc.returncode == -9, proc.stderr
    path = tmp_path / "run" / "steps.jsonl"
    assert (len(steps(tmp_path / "run")) if path.exists() else 0) == written  # epochs are written whole, at their end
    trainwise.resume(tmp_path / "run")
    assert steps(tmp_path / "run") == steps(tmp_path / "straight")
