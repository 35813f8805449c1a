"""Shared test helpers."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TIME_KEYS = {"time_s", "samples_per_s"}


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: one thread, this checkout on the path, plus ``extra`` (e.g. TRAINWISE_FAULT)."""
    return {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **extra}


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainwise", *args], capture_output=True, text=True, cwd=cwd or ROOT,
                          timeout=timeout, env=env or cli_env())


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def without_times(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in records]


def worker_loader(data, batch_size, device, shuffle, seed=0, drop_last=False, num_workers=0):
    """The DataLoader path over the same tensors (the order must be the device loader's)."""
    from trainwise.data.loader import make_loader

    return make_loader(data, batch_size, device, shuffle=shuffle, seed=seed, drop_last=drop_last, mode="dataloader", num_workers=num_workers)


def interrupted_then_resumed(config, run_dir: Path, epoch: int):
    """Fit ``config`` into ``run_dir``, interrupted (KeyboardInterrupt) at the end of ``epoch``, then resume it."""
    import pytest

    import trainwise

    class StopAt(trainwise.Callback):
        def on_epoch_end(self, state):
            if state.epoch == epoch:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainwise.fit(config, out=run_dir, callbacks=[StopAt()])
    return trainwise.resume(run_dir)


def stopped_mid_epoch_then_resumed(config, run_dir: Path, step: int):
    """Fit ``config`` into ``run_dir``, interrupted (KeyboardInterrupt) after optimizer step ``step``, then resume it."""
    import pytest

    import trainwise

    class StopMidEpoch(trainwise.Callback):
        def on_step_end(self, state):
            if state.step == step:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainwise.fit(config, out=run_dir, callbacks=[StopMidEpoch()])
    return trainwise.resume(run_dir)


def report_figures(page: str) -> dict[str, tuple[dict, str]]:
    """Card title -> (hover data, SVG) of every plot of a report page that has a hover readout."""
    found = re.findall(r"<h3>([^<]*)</h3><figure class='tw-plot' data-hover='([^']*)'>(.*?)</figure>", page, re.S)
    return {html.unescape(title): (json.loads(html.unescape(data)), svg) for title, data, svg in found}
