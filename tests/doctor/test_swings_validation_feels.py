"""Swings count as instability only where validation feels them, on stored real logs (labelled by hand
before the doctor read them; benchmarks/real_logs_1 .. real_logs_10)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from trainwise.doctor import diagnose, read_history
from trainwise.doctor.context import Context
from trainwise.doctor.engine import diagnose_context

ROOT = Path(__file__).resolve().parents[2]


def _entry(set_dir: str, prefix: str) -> tuple[Path, dict]:
    root = ROOT / "benchmarks" / set_dir
    e = next(e for e in tomllib.loads((root / "sources.toml").read_text())["log"] if e["file"].startswith(prefix))
    return root / "logs" / e["file"], e


def _alarms(set_dir: str, prefix: str) -> tuple[list, dict]:
    path, e = _entry(set_dir, prefix)
    found = diagnose(path, e.get("config"), classes=e.get("classes") or None, task=e.get("task"))
    return [f for f in found if f.severity != "info"], e


def test_training_loss_wiggles_under_a_smooth_validation_loss_without_accuracy_are_not_instability():
    # glaucoma fundus classifier, two phases, AUC but no accuracy: training loss 0.25 -> 0.09 with 8 rises of
    # >= 10 % over 38 epochs while the validation loss falls smoothly 0.26 -> 0.15
    found, e = _alarms("real_logs_8", "Dfinnnn__VisionK")
    assert e["label"] == "healthy"
    assert not [f for f in found if f.code in ("unstable_training", "lr_too_high")], [str(f) for f in found]


def test_a_near_perfect_classifiers_loss_jumps_that_accuracy_does_not_feel_are_not_instability():
    # cherry-leaf mildew, binary: validation loss 0.004-0.05 jumps by half from epoch to epoch while accuracy
    # moves under a point (one bad epoch, 0.945, recovered at the last)
    found, e = _alarms("real_logs_10", "peleisaac__mildew")
    assert e["label"] == "healthy"
    assert not found, [str(f) for f in found]


@pytest.mark.parametrize("set_dir, prefix", [
    ("real_logs", "AbijithT__Lung-Cancer"),
    ("real_logs_5", "CICO224__tb-detection"),
])
def test_swings_validation_loss_shares_are_instability_with_or_without_accuracy(set_dir, prefix):
    path, e = _entry(set_dir, prefix)
    assert e["label"] == "unstable_training"
    records = read_history(path)[0]
    without_accuracy = [{k: v for k, v in r.items() if k != "val_acc"} for r in records]
    for recs in (records, without_accuracy):
        found = [f for f in diagnose_context(Context(recs, foreign=True)) if f.severity != "info"]
        assert found and found[0].code == "unstable_training", [str(f) for f in found]
