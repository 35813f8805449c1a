"""Searches that keep their count: --trials is the study's total across processes, a killed process's
trials are marked DIED (not counted) when the next command starts, and --workers processes die with
the command that started them."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from tests.chaos.harness import ROOT
from trainwise.tools.search import counts_as_done, fail_dead_trials, open_storage, past_the_total, storage_url, taken_places

SPACE = "[optim.lr]\nlow = 1e-3\nhigh = 3e-2\nlog = true\n"
TINY = ["--set", "train.threads=1", "--set", "model.hidden=[16]", "--set", "train.epochs=2", "--set", "data.train_subset=400"]
ENV = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}


def search_cmd(out, trials: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "trainwise", "search", "--space", str(out.parent / "space.toml"), "--trials", str(trials),
            "--sampler", "random", "--pruner", "none", "--out", str(out), *TINY, *extra]


def rows(out) -> list[dict]:
    with open(out / "trials.csv") as handle:
        return list(csv.DictReader(handle))


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_dead_trials_are_marked_and_do_not_count(tmp_path):
    url = storage_url(None, tmp_path)
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    import socket

    for attrs in ({"pid": dead_pid(), "host": socket.gethostname()},  # died on this host: marked now
                  {"pid": os.getpid(), "host": socket.gethostname()},  # this process: alive
                  {"pid": 1, "host": "another-machine"}):  # elsewhere: left to the heartbeat
        trial = study.ask()
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
    done = study.ask()
    study.tell(done, 1.0)
    assert taken_places(study) == 4 and past_the_total(study, 4, 4) and not past_the_total(study, 4, 5)
    assert fail_dead_trials(study) == [0]
    states = {t.number: (t.state.name, counts_as_done(t)) for t in study.get_trials()}
    assert states == {0: ("FAIL", False), 1: ("RUNNING", False), 2: ("RUNNING", False), 3: ("COMPLETE", True)}
    assert taken_places(study) == 3


def test_two_search_commands_on_one_storage_stop_at_the_total(tmp_path):
    (tmp_path / "space.toml").write_text(SPACE)
    out = tmp_path / "search"
    procs = [subprocess.Popen(search_cmd(out, 5), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV) for _ in range(2)]
    results = [(p.wait(timeout=900), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _ in results), results
    states = [r["state"] for r in rows(out)]
    assert states.count("COMPLETE") == 5 and "RUNNING" not in states, states  # was 5 + 5 - (what the second saw done)
    assert set(states) <= {"COMPLETE", "SURPLUS"}


def test_a_killed_search_leaves_no_orphans_and_the_rerun_fills_the_total(tmp_path):
    (tmp_path / "space.toml").write_text(SPACE)
    out = tmp_path / "search"
    # A total the command cannot reach before its spawned worker has started (on a loaded 2-core machine
    # that takes many seconds): the kill must find both processes inside a trial.
    main = subprocess.Popen(search_cmd(out, 1000, "--workers", "2", "--set", "train.epochs=20"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True)
    study_db = out / "study.db"
    workers = _wait_for_running_trials(study_db, out.name, 2, timeout=300, command=main)
    os.kill(main.pid, signal.SIGKILL)  # the command dies; its spawned worker must follow
    main.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers - {main.pid}):
        time.sleep(0.5)
    assert not any(_alive(pid) for pid in workers - {main.pid}), "a worker outlived the command"
    study = optuna.load_study(study_name=out.name, storage=open_storage(f"sqlite:///{study_db}"))
    total = sum(counts_as_done(t) for t in study.get_trials()) + 2  # the rerun owes the two trials that died
    rerun = subprocess.run(search_cmd(out, total, "--set", "train.epochs=20"), capture_output=True, text=True, env=ENV, timeout=900)
    assert rerun.returncode == 0, rerun.stderr
    assert "marked" in rerun.stderr and "whose process died" in rerun.stderr
    states = [r["state"] for r in rows(out)]
    assert states.count("COMPLETE") == total and "RUNNING" not in states and states.count("DIED") == 2, states


def _wait_for_running_trials(db, name, n, timeout, command):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if command.poll() is not None:
            pytest.fail(f"the search ended (exit {command.returncode}) before {n} processes ran trials: {command.stderr.read()[-2000:]}")
        if db.exists():
            try:
                study = optuna.load_study(study_name=name, storage=open_storage(f"sqlite:///{db}"))
                running = [t for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING" and "pid" in t.user_attrs]
                if len({t.user_attrs["pid"] for t in running}) >= n:
                    return {t.user_attrs["pid"] for t in running}
            except (KeyError, optuna.exceptions.StorageInternalError, Exception):  # the study is being created
                pass
        time.sleep(0.5)
    pytest.fail(f"fewer than {n} processes ran trials within {timeout} s")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by anyone) is not alive
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
