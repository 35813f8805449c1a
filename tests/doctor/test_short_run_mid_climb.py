"""Short runs stopped mid-climb, and Ultralytics' validation accuracy, on stored real logs (labelled by hand
before the doctor read them; benchmarks/real_logs_7 and real_logs_9)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from trainwise.doctor import diagnose, read_history

ROOT = Path(__file__).resolve().parents[2]


def _entry(set_dir: str, prefix: str) -> tuple[Path, dict]:
    root = ROOT / "benchmarks" / set_dir
    e = next(e for e in tomllib.loads((root / "sources.toml").read_text())["log"] if e["file"].startswith(prefix))
    return root / "logs" / e["file"], e


def _verdict(set_dir: str, prefix: str):
    path, e = _entry(set_dir, prefix)
    found = diagnose(path, e.get("config"), classes=e.get("classes") or None, task=e.get("task"))
    return [f for f in found if f.severity != "info"], e


def test_ultralytics_top1_accuracy_is_read_as_validation_accuracy():
    path, _ = _entry("real_logs_9", "AmirRghp__CIFAR-10")
    records = read_history(path)[0]
    assert [round(r["val_acc"], 4) for r in records] == [0.5536, 0.6301, 0.6838, 0.7209, 0.7411]
    assert "train_loss" in records[0] and "val_loss" in records[0]
    assert "metrics/accuracy_top5" in records[0] and "train_acc" not in records[0]  # top-5 keeps its name


@pytest.mark.parametrize("prefix", [
    "AmirRghp__CIFAR-10",  # 5 epochs, validation 0.554 -> 0.741, +3.7 and +2.0 points in the last two
    "rvloenhout__Playing-Card",  # 5 epochs on 53 classes, 0.325 -> 0.774, +1.9 and +4.6 in the last two
])
def test_a_short_run_still_climbing_well_short_of_a_fit_is_underfitting(prefix):
    found, e = _verdict("real_logs_9", prefix)
    assert e["label"] == "underfitting"
    assert found and found[0].code == "underfitting", [str(f) for f in found]
    # a foreign log has no config to change: the advice is in words, with the numbers
    assert "still climbing" in found[0].message and "Train longer" in found[0].message, found[0].message
    assert found[0].evidence["epochs"] == 5 and found[0].evidence["fit_from"] == "validation accuracy"


def test_a_short_run_still_gaining_near_its_fit_is_left_healthy():
    # VGG16 on CIFAR-10, 5 epochs: validation 0.802 -> 0.896, still +1 point an epoch, but the training set is
    # fitted beyond 80 % of the way from chance: a converging fine-tune, labelled healthy
    found, e = _verdict("real_logs_7", "GC-SHIRO__VGG16")
    assert e["label"] == "healthy"
    assert not found, [str(f) for f in found]


def test_a_trainwise_run_stopped_mid_climb_gets_more_epochs_first(tmp_path):
    import trainwise

    # digits under SGD at 5e-3 for 5 epochs: validation 0.18 -> 0.77, still gaining ~5 points an epoch
    run = trainwise.fit(out=tmp_path / "short", data__name="digits", data__val_fraction=0.2, optim__name="sgd", optim__lr=5e-3,
                        train__epochs=5, train__progress="none", train__threads=1, train__report=False)
    val = [r["val_acc"] for r in run.history.records]
    assert val[-1] - val[-3] > 0.04 and val[-1] < 0.85  # the run really stopped mid-climb
    found = [f for f in run.findings if f.severity != "info"]
    assert found and found[0].code == "underfitting", [str(f) for f in found]
    assert found[0].fixes[0] == "train.epochs=10", found[0].fixes
    # trained on as the fix says, the same run gains: the reading was right
    longer = trainwise.fit(out=tmp_path / "longer", data__name="digits", data__val_fraction=0.2, optim__name="sgd", optim__lr=5e-3,
                           train__epochs=10, train__progress="none", train__threads=1, train__report=False)
    assert longer.history.records[-1]["val_acc"] > val[-1] + 0.05
