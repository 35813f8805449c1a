"""Data-parallel training on the CPU: 2 processes, gloo, 127.0.0.1, a small MLP on digits.

Every launch has a timeout, so a hang fails the test instead of blocking CI; inside the runs,
train.dist_timeout_s bounds how long a process waits for a peer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import trainwise
from tests.distributed.worker import StopAtStep
from tests.helpers import ROOT, run_cli, same_weights, without_times
from trainwise.checkpointing import load_weights
from trainwise.config import Config

LAUNCH_TIMEOUT = 300
# Each launch runs two ranks (and, for the DataLoader path, their workers): under the suite's xdist
# "loadgroup" distribution these tests run one after another on one worker, so that two launches never
# share the 2-core CI machine at once nor race each other for a rendezvous port.
pytestmark = pytest.mark.xdist_group("torchrun")
ENV = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}

# Per-rank batch 32 on 2 ranks against batch 64 on one process. The training split (1293 samples) ends
# in a batch of 13, split 7 + 6 between the ranks; linear LR scaling must see the global batch.
PARITY = {"train.progress": "none", "train.report": False, "train.epochs": 3, "train.seed": 3, "model.hidden": [32],
          "data.batch_size": 32, "data.per_device_batch": True, "optim.scale_lr": "linear", "optim.base_batch_size": 32,
          "train.dist_timeout_s": 120}
STOP_STEP = 47  # inside epoch 3 (21 steps per epoch); requested by rank 1 only
CLI_SETS = ["train.epochs=2", "model.hidden=[32]", "model.dropout=0.2", "model.batch_norm=true", "data.batch_size=16",
            "checkpoint.every_n_steps=10", "train.report=false", "train.dist_timeout_s=120"]


def torchrun(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2", "--rdzv-backend=c10d",
           "--rdzv-endpoint=127.0.0.1:0", "--max-restarts=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=LAUNCH_TIMEOUT)


def failure(proc: subprocess.CompletedProcess) -> str:
    """What a failed launch printed: the first rank's traceback comes early, torchrun's summary last."""
    err = proc.stderr
    return err if len(err) <= 6000 else f"{err[:3000]}\n[...]\n{err[-3000:]}"


def test_two_ranks_against_one_process(tmp_path):
    """One launch (tests are spread over processes in CI, so each launch lives in one test)."""
    proc = torchrun(str(ROOT / "tests" / "distributed" / "worker.py"), json.dumps(PARITY), str(tmp_path), str(STOP_STEP))
    assert proc.returncode == 0, failure(proc)
    assert "terminate called" not in proc.stderr
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    trainer = trainwise.Trainer(Config().replace({**PARITY, "data.batch_size": 64, "data.per_device_batch": False}),
                                callbacks=[StopAtStep(STOP_STEP, rank=0)])
    single = trainer.fit()

    # parameters bit-identical across ranks; rank 0's records (times included) reached every rank
    assert same_weights(r0["state"], r1["state"])
    assert r0["history"] == r1["history"]

    # 2 ranks x batch 32 (LR scaled for the global 64) == 1 process x batch 64, same data order
    expected = single.model.state_dict()
    for k, v in r0["state"].items():
        torch.testing.assert_close(v, expected[k], rtol=1e-4, atol=1e-5, msg=k)
    got, want = without_times(r0["history"]), without_times(single.history.records)
    assert [r["step"] for r in got] == [r["step"] for r in want]
    for a, b in zip(got, want):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-6)

    # rank 1 alone asked to stop: both ranks stopped after the same step, with its reason
    for r in (r0, r1):
        assert r["summary"]["steps"] == STOP_STEP == single.summary["steps"]
        assert r["summary"]["stop_reason"] == f"test stop at step {STOP_STEP}"

    # test metrics equal a single process's evaluation of the same weights: every sample counted once
    trainer.model.load_state_dict(r0["state"])
    test = trainer.evaluate("test")
    for r in (r0, r1):
        assert r["summary"]["test"]["confusion"] == test["confusion"]
        assert sum(map(sum, test["confusion"])) == len(trainer.data.test)
        assert r["summary"]["test"]["loss"] == pytest.approx(test["loss"], rel=1e-5)

    # rank 0 alone wrote the run directory; the History on disk is the one every rank kept
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["test"]["confusion"] == test["confusion"]
    assert [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()] == r0["history"]


def test_two_ranks_through_dataloaders_match_one_process_on_the_device(tmp_path):
    """The DataLoader path (the one Datasets, image folders and .npy files take) shards like the device path."""
    overrides = {**PARITY, "data.loader": "dataloader", "data.num_workers": 1}
    proc = torchrun(str(ROOT / "tests" / "distributed" / "worker.py"), json.dumps(overrides), str(tmp_path), "0")
    assert proc.returncode == 0, failure(proc)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert same_weights(r0["state"], r1["state"])
    single = trainwise.fit(Config().replace({**PARITY, "data.batch_size": 64, "data.per_device_batch": False}))
    for k, v in r0["state"].items():
        torch.testing.assert_close(v, single.model.state_dict()[k], rtol=1e-4, atol=1e-5, msg=k)
    assert r0["summary"]["test"]["confusion"] == single.summary["test"]["confusion"]  # each test sample counted once


# ------------------------------------------------------------------------------ the command line

def cli_args(out: Path, *extra: str) -> list[str]:
    return ["train", *[a for s in CLI_SETS for a in ("--set", s)], *extra, "--out", str(out)]


def _rank_pids(launcher: int) -> dict[int, int]:
    pids = {}
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == launcher:
                env = dict(kv.split("=", 1) for kv in (d / "environ").read_text().split("\0") if "=" in kv)
                pids[int(env["RANK"])] = int(d.name)
        except (OSError, KeyError, ValueError):
            continue
    return pids


def test_devices_run_killed_rank_and_resume(tmp_path):
    # an uninterrupted `--devices 2` run: rank 0 reports and writes, teardown is clean
    expected = tmp_path / "expected"
    proc = run_cli(*cli_args(expected, "--devices", "2"), timeout=LAUNCH_TIMEOUT)
    assert proc.returncode == 0, failure(proc)
    assert proc.stdout.count("run directory:") == 1 and proc.stderr.count("epoch 2 |") == 1
    assert "terminate called" not in proc.stderr
    env = json.loads((expected / "env.json").read_text())
    assert env["world_size"] == 2 and env["backend"] == "gloo"
    # BatchNorm statistics are rank 0's on every rank, so a single process re-scores the same numbers
    summary = json.loads((expected / "summary.json").read_text())
    rescored = trainwise.evaluate(expected, split="test")
    assert rescored["confusion"] == summary["test"]["confusion"]
    assert rescored["loss"] == pytest.approx(summary["test"]["loss"], rel=1e-5)

    # the same run, with rank 0 killed after its first checkpoint
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "trainwise", *cli_args(out, "--devices", "2")]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + LAUNCH_TIMEOUT
        while not (out / "checkpoints" / "last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        pids = _rank_pids(proc.pid)
        assert len(pids) == 2, f"rank processes not found: {pids}"
        os.kill(pids[0], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=LAUNCH_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode not in (0, None)
    assert "rank 0" in stderr and "killed by SIGKILL" in stderr and f"trainwise resume {out} --devices 2" in stderr
    assert "Traceback" not in stderr
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert len(ckpt["rank_rng"]) == 2 and ckpt["step"] < 2 * 81  # stopped before the end

    # resumed with 2 processes, it ends where the uninterrupted run ended: dropout RNG of every rank restored
    proc = run_cli("resume", str(out), "--devices", "2", timeout=LAUNCH_TIMEOUT)
    assert proc.returncode == 0, failure(proc)
    final = load_weights(out / "checkpoints" / "final.safetensors")
    assert same_weights(final, load_weights(expected / "checkpoints" / "final.safetensors"))
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert without_times(history) == without_times([json.loads(x) for x in (expected / "history.jsonl").read_text().splitlines()])


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_hung_rank_ends_the_others_with_a_message_after_the_timeout(tmp_path):
    """Without a launcher that watches the processes, train.dist_timeout_s is what ends the wait."""
    out, port = tmp_path / "run", free_port()
    procs = []
    for rank in (0, 1):
        env = {**ENV, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        cmd = [sys.executable, "-m", "trainwise", *cli_args(out, "--set", "train.dist_timeout_s=4")]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        deadline = time.monotonic() + LAUNCH_TIMEOUT
        while not (out / "checkpoints" / "last.pt").exists() and procs[0].poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(procs[1].pid, signal.SIGSTOP)  # rank 1 hangs: alive, silent
        _, stderr = procs[0].communicate(timeout=LAUNCH_TIMEOUT)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
    assert procs[0].returncode == 1
    assert "error: rank 0: no answer from another process in time" in stderr and f"trainwise resume {out}" in stderr
    assert "Traceback" not in stderr


def test_devices_run_with_a_user_mistake_exits_2_without_a_resume_hint(tmp_path):
    # every rank rejects the config before training: one clear message, exit 2, nothing to resume
    proc = run_cli(*cli_args(tmp_path / "bad", "--devices", "2", "--set", "data.batch_size=33"), timeout=LAUNCH_TIMEOUT)
    assert proc.returncode == 2
    assert "does not split over 2 processes" in proc.stderr and "Traceback" not in proc.stderr
    assert "resume" not in proc.stderr
