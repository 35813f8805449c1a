"""Crash-exact resume with real kills: a `trainwise train` process is killed (SIGKILL) or signalled (SIGTERM,
SIGINT) at named points, resumed, and must end with the weights, History and summary of an uninterrupted run.

The points come from the test-only hook in trainwise.faults (TRAINWISE_FAULT=POINT@N[:SIGNAL]): the process
sends itself the signal the N-th time it passes POINT, so each case dies at exactly the place it names. One
case kills from outside at a random moment instead. Small MLP on digits, 3 epochs of 21 steps, a resumable
checkpoint every 5 steps: resumable checkpoints are written at steps 5, 10, 15, 20, 21 (end of epoch 1), 25, ...
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import trainwise
from tests.helpers import ROOT, cli_env, run_cli, same_weights, without_times
from trainwise.checkpointing import load_weights
from trainwise.config import Config

SETTINGS = {"train.epochs": 3, "model.hidden": [32], "model.dropout": 0.1, "schedule.name": "cosine", "schedule.warmup_epochs": 1,
            "early_stopping.enabled": True, "early_stopping.patience": 50, "checkpoint.every_n_steps": 5,
            "train.deterministic": True, "train.progress": "none", "train.threads": 1}
# Early stopping decides at epoch 2 (no improvement by 10 is possible), well before train.epochs.
STOPS_EARLY = {**SETTINGS, "train.epochs": 6, "early_stopping.patience": 0, "early_stopping.min_delta": 10.0}


def cli_args(settings: dict) -> list[str]:
    return [a for key, value in settings.items() for a in ("--set", f"{key}={json.dumps(value)}")]


def train_cli(out: Path, fault: str | None = None, settings: dict = SETTINGS) -> subprocess.CompletedProcess:
    env = cli_env(TRAINWISE_FAULT=fault) if fault else cli_env()
    return run_cli("train", *cli_args(settings), "--out", str(out), env=env)


def history(run_dir: Path) -> list[dict]:
    path = run_dir / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def assert_same_run(expected: Path, got: Path) -> None:
    """Same final weights, History and summary (times aside); nothing half-written left behind."""
    assert same_weights(load_weights(expected / "checkpoints" / "final.safetensors"), load_weights(got / "checkpoints" / "final.safetensors"))
    assert without_times(history(got)) == without_times(history(expected))
    summaries = [json.loads((d / "summary.json").read_text()) for d in (expected, got)]
    assert without_times(summaries)[0] == without_times(summaries)[1]
    assert not list(got.rglob(".*.tmp"))


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """The uninterrupted run every case is compared with (in-process: the same numbers as the CLI on one thread)."""
    out = tmp_path_factory.mktemp("straight") / "run"
    trainwise.fit(Config().replace(SETTINGS), out=out)
    return out


def last_step(path: Path) -> int:
    return torch.load(path, weights_only=True)["step"]


# (kill point, what the run directory looks like after the kill)
KILLS = {
    "mid-epoch": ("step@13", lambda d: last_step(d / "checkpoints" / "last.pt") == 10 and history(d) == []),
    "mid-evaluation": ("eval@2", lambda d: last_step(d / "checkpoints" / "last.pt") == 40 and len(history(d)) == 1),
    # the 6th checkpoint (step 25) dies with its bytes in a temporary file: last.pt is still the one of step 21
    "mid-checkpoint-write": ("write/.last.pt.ready@6", lambda d: last_step(d / "checkpoints" / "last.pt") == 21
                             and list((d / "checkpoints").glob("*.last.pt.ready.*.tmp"))),
    # last.pt already moved to previous.pt, the new one not yet renamed into place: resume uses previous.pt
    "between-renames": ("checkpoint-rename@6", lambda d: not (d / "checkpoints" / "last.pt").exists()
                        and last_step(d / "checkpoints" / "previous.pt") == 21),
    # epoch 2 is in history.jsonl, the checkpoint is still mid-epoch 2: resume truncates the History
    "history-ahead-of-checkpoint": ("write/best.safetensors@2", lambda d: len(history(d)) == 2
                                    and torch.load(d / "checkpoints" / "last.pt", weights_only=True)["history_len"] == 1),
}


@pytest.mark.parametrize("case", list(KILLS))
def test_sigkill_then_resume_is_exact(case, straight, tmp_path):
    fault, looks_right = KILLS[case]
    proc = train_cli(tmp_path / "run", fault)
    assert proc.returncode == -9, proc.stderr
    assert looks_right(tmp_path / "run")
    trainwise.resume(tmp_path / "run")
    assert_same_run(straight, tmp_path / "run")


def test_truncated_last_checkpoint_falls_back_to_previous(straight, tmp_path):
    run = tmp_path / "run"
    assert train_cli(run, "step@47").returncode == -9  # last.pt: step 45; previous.pt: step 42 (end of epoch 2)
    last = run / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    proc = run_cli("resume", str(run))
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "last.pt is corrupt or truncated" in warning[0] and "resuming from" in warning[0], proc.stderr
    assert "previous.pt" in warning[0] and (run / "checkpoints" / "last.pt.corrupt").exists()
    assert_same_run(straight, run)


def test_killed_again_while_resuming(straight, tmp_path):
    run = tmp_path / "run"
    assert train_cli(run, "step@13").returncode == -9
    # dies while writing epoch 1's History: history.jsonl keeps its previous (empty) content
    proc = run_cli("resume", str(run), env=cli_env(TRAINWISE_FAULT="write/history.jsonl@1"))
    assert proc.returncode == -9, proc.stderr
    assert history(run) == [] and list(run.glob(".history.jsonl.*.tmp"))
    trainwise.resume(run)
    assert_same_run(straight, run)


def test_sigkill_at_a_random_moment(straight, tmp_path):
    run = tmp_path / "run"
    delay = random.Random().uniform(0.0, 0.4)
    proc = subprocess.Popen([sys.executable, "-m", "trainwise", "train", *cli_args(SETTINGS), "--out", str(run)], cwd=ROOT,
                            env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not (run / "checkpoints" / "last.pt").exists() and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(delay)
        proc.kill()
    finally:
        proc.wait(timeout=120)
    print(f"killed {delay:.3f}s after the first checkpoint, exit code {proc.returncode}")  # shown if the test fails
    trainwise.resume(run)
    assert_same_run(straight, run)


@pytest.mark.parametrize("fault, name, code, where", [
    ("step@30:TERM", "SIGTERM", 143, "epoch 2 step 30"),  # mid-epoch: the step finishes, last.pt holds the position
    ("eval@2:INT", "SIGINT", 130, "epoch 2 step 42"),  # during validation: the epoch finishes first
])
def test_signal_saves_and_says_how_to_resume(fault, name, code, where, straight, tmp_path):
    run = tmp_path / "run"
    proc = train_cli(run, fault)
    assert proc.returncode == code
    assert proc.stderr.strip() == f"interrupted by {name} at {where}; checkpoint saved; continue with: trainwise resume {run}"
    trainwise.resume(run)
    assert_same_run(straight, run)


def test_kill_after_early_stopping_decided(tmp_path):
    """A run that stopped early and was killed before its final files must not train on when resumed."""
    straight = trainwise.fit(Config().replace(STOPS_EARLY), out=tmp_path / "straight")
    assert straight.summary["epochs_run"] == 2
    assert train_cli(tmp_path / "run", "write/final.safetensors@1", STOPS_EARLY).returncode == -9
    trainwise.resume(tmp_path / "run")
    assert_same_run(tmp_path / "straight", tmp_path / "run")
