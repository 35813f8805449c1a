"""A cold `trainwise train`: where its wall clock goes (--profile-startup) and TorchDynamo loaded beside the set-up."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import ROOT, cli_env, run_cli


def test_profile_startup_splits_the_wall_clock_of_a_real_run(tmp_path):
    out = tmp_path / "run"
    done = run_cli("train", "configs/digits.toml", "--out", str(out), "--profile-startup",
                   "--set", "train.epochs=3", "--set", "train.progress='none'", "--set", "train.report=false")
    assert done.returncode == 0, done.stderr
    profile = json.loads((out / "startup_profile.json").read_text())
    phases = {p["name"]: p for p in profile["phases"]}
    for name in ("import torch and trainwise", "data read", "model build", "optimizer, schedule, callbacks",
                 "training, first epoch", "training, later epochs", "validation", "checkpoint (last.pt)"):
        assert name in phases, (name, sorted(phases))
    assert phases["training, later epochs"]["count"] == 2 and phases["validation"]["count"] == 3
    assert all(p["seconds"] >= 0 for p in profile["phases"])
    # the phases are laps of one clock: together they cannot exceed the process's own age
    assert 0 < profile["accounted_s"] <= profile["total_s"] + 1e-6
    assert "import torch and trainwise" in done.stdout and "wall clock since the process began" in done.stdout


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=cli_env(), timeout=300)


def test_the_background_import_loads_the_module_the_optimizer_needs_once():
    done = _python(
        "import sys, torch\n"
        "from trainwise import preload\n"
        "assert 'torch._dynamo' not in sys.modules\n"
        "t = preload.start()\n"
        "assert t is not None and preload.start() is t\n"
        "opt = torch.optim.SGD(torch.nn.Linear(3, 2).parameters(), lr=0.1)  # waits for the thread's import\n"
        "assert 'torch._dynamo' in sys.modules\n"
        "t.join(60)\n"
        "assert not t.is_alive()\n"
        "print('ok')\n")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_no_thread_when_the_module_is_already_there():
    done = _python("import torch, torch._dynamo\nfrom trainwise import preload\nassert preload.start() is None\nprint('ok')\n")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
