"""Faults inside a run, in-process: a full disk, checkpoints that are corrupt, foreign or carry code, a run
directory of another config, a damaged History, SIGTERM from inside the loop, NaN with the rollback policy.
Each ends in one clear line (CLI exit code 2) or, where the run can go on, in the result of an uninterrupted run.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import math
import os
import pickle
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import trainwise
from tests.helpers import same_weights, without_times
from trainwise import atomic
from trainwise.checkpointing import load_weights
from trainwise.cli import app
from trainwise.config import Config
from trainwise.errors import UserError
from trainwise.interrupt import SignalCatcher, TrainingInterrupted

SMALL = {"train.epochs": 2, "model.hidden": [16], "checkpoint.every_n_steps": 5, "train.deterministic": True,
         "train.progress": "none", "train.threads": 1}


def cli(*args: str):
    """Run the CLI in this process; returns (exit code, stderr lines)."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stderr.strip().splitlines()


def one_error_line(code: int, lines: list[str], *fragments: str) -> None:
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> trainwise.Run:
    return trainwise.fit(Config().replace(SMALL), out=tmp_path_factory.mktemp("straight") / "run")


def assert_same(straight: trainwise.Run, run_dir: Path) -> None:
    assert same_weights(straight.model.state_dict(), load_weights(run_dir / "checkpoints" / "final.safetensors"))
    on_disk = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert without_times(on_disk) == without_times(straight.history.records)


# ------------------------------------------------------------------------------------------- disk full

class FillsUp:
    """A file handle that takes ``room`` bytes, then fails the way a full disk does."""

    def __init__(self, handle, room: int):
        self.handle, self.room = handle, room

    def write(self, data) -> int:
        if len(data) > self.room:
            self.handle.write(bytes(data[: self.room]))
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


@pytest.fixture
def full_disk(monkeypatch):
    """``full_disk(name, n)``: the n-th atomic write of a file called ``name`` runs out of space half-way."""

    def arm(name: str, n: int) -> None:
        real, seen = atomic.atomic_write, []

        def atomic_write(path, write, *hooks):
            if Path(path).name == name:
                seen.append(path)
                if len(seen) == n:
                    return real(path, lambda handle: write(FillsUp(handle, 1000)), *hooks)
            return real(path, write, *hooks)

        monkeypatch.setattr(atomic, "atomic_write", atomic_write)

    yield arm
    monkeypatch.undo()


def test_disk_full_during_a_checkpoint(full_disk, straight, tmp_path, monkeypatch):
    run = tmp_path / "run"
    full_disk(".last.pt.ready", 4)  # checkpoints at steps 5, 10, 15, then 20 fails inside torch.save
    code, lines = cli("train", *[a for k, v in SMALL.items() for a in ("--set", f"{k}={json.dumps(v)}")], "--out", str(run))
    one_error_line(code, lines, "disk full while writing", "last.pt", "previous version is intact", "trainwise resume")
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == 15
    assert not list(run.rglob("*.tmp"))
    monkeypatch.undo()  # space freed
    trainwise.resume(run)
    assert_same(straight, run)


def test_disk_full_at_fsync_keeps_the_history(straight, tmp_path, monkeypatch):
    run = tmp_path / "run"

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").split("/")[-1].startswith(".history.jsonl.") and (run / "history.jsonl").exists():
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    real_fsync = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", fsync)
    with pytest.raises(atomic.DiskFull, match="history.jsonl; its previous version is intact"):
        trainwise.fit(Config().replace(SMALL), out=run)
    assert len((run / "history.jsonl").read_text().splitlines()) == 1
    monkeypatch.undo()
    trainwise.resume(run)
    assert_same(straight, run)


# ------------------------------------------------------------------------------- checkpoints at resume

@pytest.fixture
def finished(straight, tmp_path) -> Path:
    """A copy of the finished run directory, to damage."""
    import shutil

    return Path(shutil.copytree(straight.run_dir, tmp_path / "run"))


class RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("writer", ["pickle protocol 2", "pickle protocol 4", "torch.save"])
def test_checkpoint_with_code_is_refused(writer, finished, tmp_path):
    marker = tmp_path / "code-ran"
    payload = {"model": RunsCode(marker)}
    last = finished / "checkpoints" / "last.pt"
    if writer.startswith("pickle"):
        last.write_bytes(pickle.dumps(payload, protocol=int(writer[-1])))
    else:
        torch.save(payload, last)
    code, lines = cli("resume", str(finished))
    one_error_line(code, lines, "refusing to load", "last.pt", "import and call posix.system", "only load checkpoints you trust")
    assert not marker.exists()
    with pytest.raises(UserError, match="refusing to load"):
        trainwise.evaluate(finished, weights="last")
    assert not marker.exists()


def test_garbage_last_checkpoint_falls_back_with_a_warning(finished, straight, caplog):
    (finished / "checkpoints" / "last.pt").write_bytes(b"garbage that starts like a pickle")
    trainwise.resume(finished)
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"warning: checkpoint {finished}/checkpoints/last.pt is corrupt or truncated (UnpicklingError: unreadable pickle data); "
        f"kept as last.pt.corrupt; resuming from {finished}/checkpoints/previous.pt"]
    assert_same(straight, finished)


def test_no_usable_checkpoint(finished):
    for name in ("last.pt", "previous.pt"):
        path = finished / "checkpoints" / name
        path.write_bytes(path.read_bytes()[:100])
    code, lines = cli("resume", str(finished))
    one_error_line(code, lines, "no usable checkpoint", "start the run again")


def test_foreign_pt_file_is_not_a_checkpoint(finished, straight):
    torch.save(straight.model.state_dict(), finished / "checkpoints" / "last.pt")  # plain weights, not resumable
    torch.save([1, 2], finished / "checkpoints" / "previous.pt")
    code, lines = cli("resume", str(finished))
    one_error_line(code, lines, "no usable checkpoint", "not a trainwise resumable checkpoint")


def test_run_directory_of_another_config(finished):
    config = finished / "config.toml"
    config.write_text(config.read_text().replace("hidden = [\n    16,\n]", "hidden = [\n    64,\n]"))
    code, lines = cli("resume", str(finished))
    one_error_line(code, lines, "belongs to another config: model.hidden differs", "[16]", "[64]")


def test_missing_run_directory(tmp_path):
    code, lines = cli("resume", str(tmp_path / "nowhere"))
    one_error_line(code, lines, "does not exist")


def test_damaged_history_names_the_line_and_resume_rebuilds_it(finished, straight, caplog):
    path = finished / "history.jsonl"
    first, second = path.read_text().splitlines()
    path.write_text(first + "\n" + second[: len(second) // 2] + "\n")
    code, lines = cli("diagnose", str(finished))
    one_error_line(code, lines, "history.jsonl line 2 is not valid JSON")
    (finished / "summary.json").unlink()  # killed before the end: resume has the final files to write
    trainwise.resume(finished)  # the checkpoint carries the History it was written after
    assert any("line 2 is not valid JSON" in r.getMessage() and "rebuilt it from" in r.getMessage() for r in caplog.records)
    assert_same(straight, finished)


def test_unloadable_callback_state_is_refused_when_saved(tmp_path):
    class KeepsNumpy(trainwise.Callback):
        def state_dict(self):
            return {"best": np.float64(0.5)}

    with pytest.raises(UserError, match=r"cannot checkpoint checkpoint\.callbacks\.KeepsNumpy\.best: it is a numpy\.float64"):
        trainwise.fit(Config().replace(SMALL), out=tmp_path / "run", callbacks=[KeepsNumpy()])


# ------------------------------------------------------------------------------------------ signals

def test_sigterm_in_process_saves_restores_handlers_and_resumes(straight, tmp_path):
    class Preempted(trainwise.Callback):
        def on_step_end(self, state):
            if state.step == 7:
                os.kill(os.getpid(), signal.SIGTERM)

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(TrainingInterrupted) as info:
        trainwise.fit(Config().replace(SMALL), out=tmp_path / "run", callbacks=[Preempted()])
    assert info.value.exit_code == 143 and "at epoch 1 step 7" in str(info.value)
    assert {s: signal.getsignal(s) for s in before} == before
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["step"] == 7
    trainwise.resume(tmp_path / "run")
    assert_same(straight, tmp_path / "run")


def test_a_second_signal_stops_at_once():
    catcher = SignalCatcher().install()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert catcher.received == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):  # called directly: a real signal's exception lands wherever Python is
            signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
    finally:
        catcher.restore()


def test_files_are_written_with_the_usual_mode(straight):
    umask = os.umask(0)
    os.umask(umask)
    assert (straight.run_dir / "history.jsonl").stat().st_mode & 0o777 == 0o666 & ~umask


# --------------------------------------------------------------------------------------- NaN rollback

@pytest.mark.skipif(importlib.util.find_spec("trainwise.callbacks.nan_guard") is None,
                    reason="the NaN guard with policies (trainwise.callbacks.nan_guard) is not in this checkout")
def test_nan_rollback_recovers_and_records_the_event(tmp_path):
    class PoisonOnce(trainwise.Callback):
        done = False

        def on_after_loss(self, state):
            if state.step == 30 and not self.done:
                self.done = True
                state.loss = state.loss * float("nan")

    cfg = Config().replace({**SMALL, "train.epochs": 3, "monitors.nan_policy": "rollback", "monitors.nan_lr_factor": 0.5})
    run = trainwise.fit(cfg, out=tmp_path / "run", callbacks=[PoisonOnce()])
    assert run.summary["stop_reason"] == "completed 3 epochs"
    assert any("nan_rollback" in str(r.get("event", "")) for r in run.history)
    assert run.history[-1]["lr"] == pytest.approx(cfg.optim.lr * 0.5)
    assert all(torch.isfinite(t).all() for t in run.model.state_dict().values())
    assert math.isfinite(run.summary["test"]["loss"])
