"""One writer per run directory, and where a run may be written.

A second ``train``/``resume`` on a directory another process is training into gets one line (exit 2);
``train`` into a directory that holds a run refuses unless ``--overwrite``, which removes that run's
files and nothing else; a ``--out`` that cannot be a directory, or cannot be written, is one line.
"""

from __future__ import annotations

import os
import subprocess
import sys


import pytest

from tests.chaos.harness import ROOT, SMALL, copy_run, invoke, judge
from trainwise.runlock import RunLock


def one_line(result, *fragments: str) -> None:
    assert judge(result, None, read_only=False) == "ok" and result.code == 2, (result.code, result.err)
    for fragment in fragments:
        assert fragment in result.err, result.err


def hold_lock(run_dir):
    """Another process that holds the run directory's lock until it is killed."""
    code = f"from trainwise.runlock import RunLock; RunLock({str(run_dir)!r}).acquire(); print('held', flush=True); import time; time.sleep(600)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_gets_one_line_and_the_lock_dies_with_its_holder(pristine, tmp_path):
    run = copy_run(pristine, tmp_path / "run")
    holder = hold_lock(run)
    try:
        one_line(invoke(["resume", str(run)]), "is in use", f"process {holder.pid}", "wait for it to finish")
        one_line(invoke(["train", *SMALL, "--out", str(run), "--overwrite"]), "is in use")
        one_line(invoke(["train", *SMALL, "--out", str(tmp_path / "run"), "--overwrite"]), "is in use")
        assert invoke(["evaluate", str(run)]).code == 0  # readers do not need the lock
    finally:
        holder.kill()
        holder.wait()
    assert invoke(["resume", str(run)]).code == 0  # the kernel dropped the lock of the killed holder


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    with RunLock(tmp_path / "run"), RunLock(tmp_path / "run"):
        pass
    with RunLock(tmp_path / "run"):  # released: it can be taken again
        pass


def test_two_trains_on_one_directory_at_once(tmp_path):
    """Real processes racing for one --out: one trains, the other says why it did not."""
    out = tmp_path / "run"
    args = [sys.executable, "-m", "trainwise", "train", *SMALL, "--set", "train.epochs=3", "--out", str(out)]
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stdout.read(), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, _, err in results if code == 2)
    assert loser.startswith("error: ") and len(loser.strip().splitlines()) == 1
    assert "is in use" in loser or "already holds" in loser, loser  # it lost the race, or came after the winner finished
    assert invoke(["evaluate", str(out)]).code == 0  # the winner's run is whole


def test_train_refuses_an_existing_run_unless_overwrite(pristine, tmp_path):
    run = copy_run(pristine, tmp_path / "run")
    (run / "checkpoints" / "ema.safetensors").write_bytes(b"from an older run")
    (run / "notes.txt").write_text("mine")
    one_line(invoke(["train", *SMALL, "--out", str(run)]), "already holds a finished run", "--overwrite")
    (run / "summary.json").unlink()
    one_line(invoke(["train", *SMALL, "--out", str(run)]), "already holds an unfinished run", f"trainwise resume {run}")
    got = invoke(["train", *SMALL, "--set", "train.epochs=1", "--out", str(run), "--overwrite"])
    assert got.code == 0, got.err
    assert not (run / "checkpoints" / "ema.safetensors").exists()  # nothing of the old run is left to mix in
    assert (run / "notes.txt").read_text() == "mine"  # and nothing of the user's is removed
    assert len((run / "history.jsonl").read_text().splitlines()) == 1


def test_fit_in_python_refuses_too(pristine, tmp_path):
    import trainwise
    from trainwise.errors import UserError

    run = copy_run(pristine, tmp_path / "run")
    with pytest.raises(UserError, match="already holds a finished run"):
        trainwise.fit(out=run, train__epochs=1)


@pytest.mark.parametrize("case", ["a file", "below a file", "not writable", "read-only filesystem"])
def test_an_out_that_cannot_be_written(case, tmp_path, monkeypatch):
    import errno
    from pathlib import Path

    out = tmp_path / "run"
    if case == "a file":
        out.write_text("x")
        why = "it is a file, not a directory"
    elif case == "below a file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "run"
        why = "a part of the path is a file"
    else:  # the tests run as root, whom permissions do not stop: the filesystem's answer is simulated
        code, why = (errno.EACCES, "permission denied") if case == "not writable" else (errno.EROFS, "the filesystem is read-only")
        real = Path.mkdir

        def mkdir(self, *args, **kwargs):
            if self == out:
                raise OSError(code, os.strerror(code), str(self))
            return real(self, *args, **kwargs)

        monkeypatch.setattr(Path, "mkdir", mkdir)
    got = invoke(["train", *SMALL, "--set", "train.epochs=1", "--out", str(out)])
    one_line(got, "cannot write the run directory", why)
