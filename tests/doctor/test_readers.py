"""Reading histories written by trainwise, Keras CSVLogger, Lightning CSVLogger and arbitrary CSVs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainwise.config import build_config, dump_toml, merge_overrides
from trainwise.doctor import diagnose, read_history
from trainwise.errors import UserError
from trainwise.history import History

KERAS = """epoch,accuracy,learning_rate,loss,val_accuracy,val_loss
0,0.412,0.001,1.85,0.61,1.20
1,0.702,0.001,0.95,0.74,0.81
2,0.801,0.001,0.66,0.79,0.65
3,0.850,0.001,0.51,0.81,0.58
4,0.881,0.001,0.41,0.82,0.55
"""

# What Lightning's CSVLogger writes with self.log(..., on_step=True, on_epoch=True) for the training loss
# and on_epoch logging for validation: step rows, one epoch row for training, one row for validation.
LIGHTNING = """epoch,step,train_loss_epoch,train_loss_step,val_acc,val_loss
0,49,,2.10,,
0,99,,1.70,,
0,99,,,0.55,1.40
0,99,1.90,,,
1,149,,1.20,,
1,199,,1.00,,
1,199,,,0.71,0.95
1,199,1.10,,,
2,249,,0.80,,
2,299,,0.70,,
2,299,,,0.78,0.72
2,299,0.75,,,
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_keras_csv_becomes_one_based_trainwise_records(tmp_path):
    records, meta = read_history(write(tmp_path, "training.log.csv", KERAS))
    assert meta["format"] == "keras_csv"
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5]
    assert records[0] == {"epoch": 1, "train_acc": 0.412, "lr": 0.001, "train_loss": 1.85, "val_acc": 0.61, "val_loss": 1.20}


def test_lightning_rows_are_grouped_by_epoch_preferring_epoch_level_values(tmp_path):
    path = write(tmp_path, "lightning_logs/version_0/metrics.csv", LIGHTNING)
    records, meta = read_history(tmp_path)  # found inside the directory
    assert meta["format"] == "lightning_csv"
    assert len(records) == 3
    assert records[0]["train_loss"] == 1.90  # the logged epoch mean, not the mean of the two step rows
    assert records[1] == {"epoch": 2, "step": 199.0, "train_loss": 1.10, "val_acc": 0.71, "val_loss": 0.95}
    assert read_history(path)[0] == records


def test_step_only_columns_are_averaged_per_epoch(tmp_path):
    text = "epoch,step,train_loss_step,val_loss\n0,1,2.0,\n0,2,1.0,\n0,2,,1.2\n1,3,0.8,\n1,4,0.6,\n1,4,,0.9\n"
    records, _ = read_history(write(tmp_path, "metrics.csv", text))
    assert [r["train_loss"] for r in records] == [1.5, 0.7]


def test_column_mapping_and_percent_accuracy(tmp_path):
    text = "ep,objective,holdout_objective,holdout_top1\n1,2.0,1.9,35\n2,1.2,1.3,60\n3,0.9,1.0,71\n"
    path = write(tmp_path, "custom.csv", text)
    with pytest.raises(UserError, match="columns ep, objective") as err:
        read_history(path)
    assert "\n" not in str(err.value) and "columns=" in str(err.value)
    records, _ = read_history(path, {"ep": "epoch", "objective": "train_loss", "holdout_objective": "val_loss", "holdout_top1": "val_acc"})
    assert [r["epoch"] for r in records] == [1, 2, 3] and records[2]["val_acc"] == pytest.approx(0.71)


@pytest.mark.parametrize(("name", "text", "match"), [
    ("notes.txt", "hello world\n", "received columns hello world"),
    ("model.pt", "binary", "suffix"),
    ("empty.csv", "", "empty"),
    ("broken.jsonl", "{not json\n", "line 1 is not valid JSON"),
])
def test_unreadable_files_are_one_line_user_errors(tmp_path, name, text, match):
    with pytest.raises(UserError, match=match) as err:
        read_history(write(tmp_path, name, text))
    message = str(err.value)
    assert "\n" not in message and "expected" in message and ("Fix:" in message)


def test_missing_path_and_ambiguous_directory(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        read_history(tmp_path / "nope")
    write(tmp_path, "a/metrics.csv", LIGHTNING)
    write(tmp_path, "b/metrics.csv", LIGHTNING)
    with pytest.raises(UserError, match="several logs"):
        read_history(tmp_path)


def test_run_directory_brings_config_classes_and_test_predictions(tmp_path):
    records = [{"epoch": i + 1, "train_loss": 0.69 - 0.001 * i, "val_loss": 0.66, "val_acc": 0.63, "train_acc": 0.62} for i in range(8)]
    History(records).save(tmp_path / "history.jsonl")
    config = build_config(merge_overrides({}, {"data.name": "breast_cancer", "data.normalize": False, "optim.lr": 0.01}))
    (tmp_path / "config.toml").write_text(dump_toml(config))
    summary = {"num_classes": 2, "task": "binary", "test_acc": 0.63, "test_confusion": [[0, 42], [0, 72]]}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    got, meta = read_history(tmp_path)
    assert got == records and meta["config"]["optim"]["lr"] == 0.01
    assert meta["num_classes"] == 2 and meta["predictions"]["confusion"] == [[0, 42], [0, 72]]
    found = diagnose(tmp_path)
    assert found.codes[:2] == ["stuck_at_chance", "prediction_collapse"]
    assert found[0].evidence["chance_accuracy"] == pytest.approx(72 / 114, abs=1e-3)  # majority from the confusion
    assert "data.normalize=true" in found[0].fixes  # read from config.toml


def test_keras_csv_diagnoses_without_a_config(tmp_path):
    rows = ["epoch,loss,accuracy,val_loss,val_accuracy"]
    for e in range(15):
        train = 2.0 * 0.8**e
        val = 1.0 + 0.05 * (e - 4) ** 2 / 4 if e > 4 else 2.0 * 0.8**e + 0.1
        rows.append(f"{e},{train:.4f},{min(0.99, 0.5 + 0.04 * e):.3f},{val:.4f},0.8")
    found = diagnose(write(tmp_path, "log.csv", "\n".join(rows) + "\n"))
    assert found.codes[0] == "overfitting" and found[0].evidence["onset_epoch"] == 5
