"""evaluate, ensemble and compare print a short summary a person reads; --json gives everything."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import run_cli

QUIET = ["--set", "train.epochs=2", "--set", "model.hidden=[32]", "--set", "train.progress='none'", "--set", "train.report=false",
         "--set", "doctor.live=false"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("short")
    runs = [root / "seed0", root / "seed1"]
    for seed, run in enumerate(runs):
        assert run_cli("train", *QUIET, "--set", f"train.seed={seed}", "--out", str(run)).returncode == 0
    return runs


def test_evaluate_prints_the_metrics_and_a_confusion_table(two_runs):
    done = run_cli("evaluate", str(two_runs[0]))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 4 + 10 and lines[0].startswith(f"{two_runs[0]}, test split, final weights: acc 0.")
    assert lines[2].split() == [str(c) for c in range(10)] and lines[4].startswith("true 0")
    full = json.loads(run_cli("evaluate", str(two_runs[0]), "--json").stdout)
    assert f"acc {full['acc']:.4f}" in lines[0] and lines[4].split()[2:] == [str(n) for n in full["confusion"][0]]


def test_ensemble_prints_the_metrics_the_confusion_table_and_the_members(two_runs):
    done = run_cli("ensemble", *map(str, two_runs))
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("ensemble of 2, test split, final weights: acc 0.") and "members" in text and len(text.splitlines()) < 25
    full = json.loads(run_cli("ensemble", *map(str, two_runs), "--json").stdout)
    assert len(full["members"]) == 2 and f"acc {full['acc']:.4f}" in text


def test_compare_of_a_300_epoch_run_is_a_short_table(two_runs, tmp_path):
    long = []
    for a in (tmp_path / "a", tmp_path / "b"):
        shutil.copytree(two_runs[0], a)
        record = json.loads((a / "history.jsonl").read_text().splitlines()[-1])
        (a / "history.jsonl").write_text("".join(json.dumps(record | {"epoch": e, "val_loss": 1 / e}) + "\n" for e in range(1, 301)))
        manifest = a / "manifest.json"  # the history is rewritten on purpose: drop its checksum
        if manifest.exists():
            entries = json.loads(manifest.read_text())
            entries.get("files", entries).pop("history.jsonl", None)
            manifest.write_text(json.dumps(entries))
        long.append(a)
    done = run_cli("compare", *map(str, long), "--json", str(tmp_path / "c.json"))
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) < 120
    assert "val_loss per epoch (12 of 300 epochs; all of them: --json FILE or --html FILE)" in done.stdout
    assert len(json.loads((tmp_path / "c.json").read_text())["per_epoch"]["val_loss"]) == 300
