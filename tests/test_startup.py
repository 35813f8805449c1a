"""A cold `trainwise train`: where its wall clock goes (--profile-startup) and TorchDynamo imported while CUDA's context is created."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

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


def test_the_import_and_the_work_beside_it_both_finish_before_the_call_returns():
    # a deterministic run's set-up (which imports TorchInductor) right after: nothing imports beside it
    done = _python(
        "import sys, threading, torch\n"
        "from trainwise import preload\n"
        "assert 'torch._dynamo' not in sys.modules\n"
        "seen = []\n"
        "preload.import_beside(lambda: seen.append(float((torch.ones(256, 256) @ torch.ones(256, 256)).sum())), 'torch._dynamo')\n"
        "assert 'torch._dynamo' in sys.modules and seen == [256.0 ** 3]\n"
        "assert [t.name for t in threading.enumerate()] == ['MainThread']\n"
        "torch.use_deterministic_algorithms(True, warn_only=True)\n"
        "torch.optim.SGD(torch.nn.Linear(3, 2).parameters(), lr=0.1).step()\n"
        "print('ok')\n")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_an_error_in_the_work_beside_the_import_reaches_the_caller():
    done = _python(
        "import sys\n"
        "from trainwise import preload\n"
        "def fail():\n"
        "    raise RuntimeError('no context')\n"
        "try:\n"
        "    preload.import_beside(fail, 'torch._dynamo')\n"
        "except RuntimeError as e:\n"
        "    assert str(e) == 'no context' and 'torch._dynamo' in sys.modules\n"
        "    print('ok')\n")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_a_cpu_run_starts_no_thread():
    done = _python("import sys, torch\nfrom trainwise import preload\n"
                   "assert preload.cuda_context_beside_dynamo_import(torch.device('cpu')) is False\n"
                   "assert 'torch._dynamo' not in sys.modules\nprint('ok')\n")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="creates a CUDA context: needs a GPU")
def test_on_a_gpu_the_context_is_created_beside_the_import():
    done = _python("import sys, torch\nfrom trainwise import preload\n"
                   "assert preload.cuda_context_beside_dynamo_import(torch.device('cuda')) is True\n"
                   "assert torch.cuda.is_initialized() and 'torch._dynamo' in sys.modules\nprint('ok')\n")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
