"""Facts about the environment a run ran in (env.json): versions, device, seed, git revision."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime, timezone

import numpy as np
import torch


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(device: torch.device, seed: int) -> dict:
    from trainwise import __version__

    info = {
        "trainwise": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "seed": seed,
        "git_revision": git_revision(),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info
