"""Kills and signals at awkward moments: a second Ctrl-C inside the checkpoint that the first one asked
for, a History emptied or cut short behind the checkpoint's back."""

from __future__ import annotations

import json
import os
import signal

import pytest

import trainwise
from tests.chaos.conftest import SMALL
from tests.chaos.harness import copy_run, invoke
from tests.helpers import same_weights, without_times
from trainwise import atomic
from trainwise.checkpointing import load_resumable, load_weights
from trainwise.config import Config
from trainwise.interrupt import SecondSignal


class SignalsWhileWriting:
    """A file handle that sends this process SIGINT after ``after`` writes (inside torch.save's zip writer)."""

    def __init__(self, handle, after: int):
        self.handle, self.after = handle, after

    def write(self, data):
        self.after -= 1
        if self.after == 0:
            os.kill(os.getpid(), signal.SIGINT)
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)


def test_a_second_sigint_during_the_signal_checkpoint_stops_at_once_and_cleanly(pristine, tmp_path, monkeypatch):
    class CtrlCAtStep7(trainwise.Callback):
        def on_step_end(self, state):
            if state.step == 7:
                os.kill(os.getpid(), signal.SIGINT)

    real = atomic.atomic_write

    def atomic_write(path, write, *hooks):
        if path.name == ".last.pt.ready" and signal.getsignal(signal.SIGINT).__self__.received is not None:
            return real(path, lambda handle: write(SignalsWhileWriting(handle, 3)), *hooks)
        return real(path, write, *hooks)

    monkeypatch.setattr(atomic, "atomic_write", atomic_write)
    run = tmp_path / "run"
    with pytest.raises(SecondSignal, match="interrupted again by SIGINT; stopped at once"):
        trainwise.fit(Config().replace(SMALL), out=run, callbacks=[CtrlCAtStep7()])
    monkeypatch.undo()
    assert load_resumable(run / "checkpoints" / "last.pt")["step"] == 5  # the previous complete checkpoint, intact
    assert not list(run.rglob("*.tmp")) and not (run / "checkpoints" / ".last.pt.ready").exists()
    trainwise.resume(run)
    assert same_weights(load_weights(run / "checkpoints" / "final.safetensors"), load_weights(pristine / "checkpoints" / "final.safetensors"))


def test_the_cli_says_it_in_one_line_with_the_signal_exit_code(monkeypatch):
    from trainwise import api

    def fit(*args, **kwargs):
        raise SecondSignal(signal.SIGINT)

    monkeypatch.setattr(api, "fit", fit)
    got = invoke(["train", "--out", "/tmp/never-written"])
    assert got.code == 130 and got.err.strip().splitlines() == [
        "interrupted again by SIGINT; stopped at once: the last complete checkpoint is intact (continue with trainwise resume RUN_DIR)"]


@pytest.mark.parametrize("how", ["emptied", "last line missing", "deleted"])
def test_a_history_shorter_than_the_checkpoint_is_rebuilt_from_it(how, pristine, tmp_path, caplog):
    run = copy_run(pristine, tmp_path / "run")
    (run / "summary.json").unlink()  # killed after the last checkpoint, before the final files
    path = run / "history.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    if how == "deleted":
        path.unlink()
    else:
        path.write_text("" if how == "emptied" else "".join(lines[:-1]))
    got = invoke(["resume", str(run)])
    assert got.code == 0, got.err
    assert any("rebuilt it from" in r.getMessage() for r in caplog.records)
    rebuilt = [json.loads(line) for line in path.read_text().splitlines()]
    assert without_times(rebuilt) == without_times([json.loads(line) for line in lines])


def test_an_old_checkpoint_without_the_history_refuses_clearly(pristine, tmp_path):
    import torch

    run = copy_run(pristine, tmp_path / "run")
    (run / "summary.json").unlink()  # killed after the last checkpoint, before the final files
    (run / "manifest.json").unlink()  # an old run: no checksums, no History in the checkpoint
    for name in ("last.pt", "previous.pt"):
        ckpt = load_resumable(run / "checkpoints" / name)
        del ckpt["history"]
        torch.save(ckpt, run / "checkpoints" / name)
    (run / "history.jsonl").write_text((run / "history.jsonl").read_text().splitlines(keepends=True)[0])
    got = invoke(["resume", str(run)])
    assert got.code == 2 and "holds 1 records, the checkpoint was written after 2" in got.err, got.err
    assert "restore history.jsonl" in got.err and len(got.err.strip().splitlines()) == 1
