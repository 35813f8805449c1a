"""Validation accuracy falling from its peak while the training loss keeps falling, on stored real logs
(labelled by hand before the doctor read them; benchmarks/real_logs_10): Ultralytics classifiers log no
training accuracy, and their validation loss can stay nearly level while the accuracy loses many points."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from trainwise.doctor import diagnose, read_history
from trainwise.doctor.context import Context
from trainwise.doctor.rules import generalization

ROOT = Path(__file__).resolve().parents[2]


def _entry(set_dir: str, prefix: str) -> tuple[Path, dict]:
    root = ROOT / "benchmarks" / set_dir
    e = next(e for e in tomllib.loads((root / "sources.toml").read_text())["log"] if e["file"].startswith(prefix))
    return root / "logs" / e["file"], e


@pytest.mark.parametrize("prefix, peak_epoch", [
    ("JavaKhangNguyen__ACNE11", 19),  # 11 classes: 0.706 at epoch 19 (0.749 at 22 is one lone epoch), ~0.62 at the end
    ("ngtranminhtuan__web_components", 1),  # a resumed checkpoint at 0.942, made worse by further training
])
def test_accuracy_falling_from_its_peak_while_training_loss_falls_is_overfitting(prefix, peak_epoch):
    path, e = _entry("real_logs_10", prefix)
    assert e["label"] == "overfitting"
    found = [f for f in diagnose(path, classes=e.get("classes") or None) if f.severity != "info"]
    assert found and found[0].code == "overfitting", [str(f) for f in found]
    ev = found[0].evidence
    assert ev["peak_val_acc_epoch"] == peak_epoch
    assert ev["best_val_acc"] - ev["end_val_acc"] >= 0.05 and ev["train_loss_drop"] >= 0.3
    assert "peaked at epoch" in found[0].message and "training loss fell another" in found[0].message


def _context(set_dir: str, prefix: str, **replace) -> Context:
    path, e = _entry(set_dir, prefix)
    records = read_history(path)[0]
    for key, values in replace.items():
        records = [r | {key: v} for r, v in zip(records, values)]
    return Context(records, classes=e.get("classes") or None, foreign=True)


def test_a_converged_classifier_whose_accuracy_wanders_a_few_points_is_not_read_this_way():
    # garbage sorting, 6 classes, labelled healthy: validation accuracy 0.90 by epoch 7 and 0.88-0.93 after
    ctx = _context("real_logs_10", "Soypime__Clasificador")
    assert ctx.has("val_acc", 40) and not ctx.has("train_acc")
    assert generalization._accuracy_fell_while_fitting(ctx) == []


def test_a_validation_loss_still_improving_keeps_the_rule_silent():
    # the ACNE11 accuracies beside a validation loss that keeps falling to the end: calibration moving, not a
    # model fitting noise -- the rule needs the loss to have stopped improving too
    records = read_history(_entry("real_logs_10", "JavaKhangNguyen__ACNE11")[0])[0]
    falling = [2.4 * 0.97 ** i for i in range(len(records))]
    assert generalization._accuracy_fell_while_fitting(_context("real_logs_10", "JavaKhangNguyen__ACNE11")) != []
    assert generalization._accuracy_fell_while_fitting(
        _context("real_logs_10", "JavaKhangNguyen__ACNE11", val_loss=falling)) == []
