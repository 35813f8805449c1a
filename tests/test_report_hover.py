"""The report's curves show their values on hover (SVG <title>s, no script), and the page renders in a browser."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

import trainwise
from trainwise.config import Config

SETTINGS = {"train.epochs": 3, "model.hidden": [16], "schedule.name": "cosine", "schedule.warmup_epochs": 1,
            "train.progress": "none", "train.threads": 1}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("hover") / "run"
    run = trainwise.fit(Config().replace(SETTINGS), out=out)
    return out / "report.html", run


def test_epoch_points_carry_their_values(report):
    path, run = report
    titles = re.findall(r"<title>([^<]*)</title>", path.read_text())
    val = run.history.records[1]["val_loss"]
    assert f"epoch 2: val_loss = {val:.4g}" in titles
    assert sum(t.startswith("epoch ") and ": train_acc = " in t for t in titles) == 3  # one per epoch, per line


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    path, _ = report
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}", "--window-size=1200,2400",
                    path.as_uri()], capture_output=True, timeout=120, check=True)
    from PIL import Image

    with Image.open(shot) as im:
        colors = im.convert("RGB").resize((60, 120)).getcolors(maxcolors=10_000)
    assert im.size == (1200, 2400) and colors is not None and len(colors) > 20  # drawn: curves and text, not a blank page
