"""Reading histories written by trainwise and by other tools: Keras, Lightning, fastai, Hugging Face,
TensorBoard, text logs. The foreign logs are real ones from public repositories (benchmarks/real_logs,
benchmarks/real_logs_2 and benchmarks/real_logs_3)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.helpers import ROOT, run_cli
from trainwise.config import build_config, dump_toml, merge_overrides
from trainwise.doctor import diagnose, read_history
from trainwise.errors import UserError
from trainwise.history import History

REAL = ROOT / "benchmarks" / "real_logs" / "logs"
REAL_2 = ROOT / "benchmarks" / "real_logs_2" / "logs"
REAL_3 = ROOT / "benchmarks" / "real_logs_3" / "logs"
DATA = Path(__file__).parent / "data"

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
    ("notes.txt", "hello world\n", "no line with a loss or accuracy"),
    ("notes.csv", "hello,world\n1,2\n", "received columns hello, world"),
    ("state.json", '{"best_metric": 1}', "JSON dict with keys best_metric"),
    ("broken.json", '{"log_history": [', "not valid JSON"),
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
        rows.append(f"{e},{train:.4f},{min(0.99, 0.5 + 0.04 * e):.3f},{val:.4f},{0.8 + 0.004 * (e % 2):.3f}")
    found = diagnose(write(tmp_path, "log.csv", "\n".join(rows) + "\n"))
    assert found.codes[0] == "overfitting" and found[0].evidence["onset_epoch"] == 5


# ----------------------------------------------------------------------------- real foreign logs
def test_keras_csv_with_a_title_line_and_semicolons_from_a_real_repository():
    records, meta = read_history(REAL / "ManuMollon261297__Speech-Digit-Detector__model_history_log.csv")
    assert meta["format"] == "keras_csv_semicolon"
    assert len(records) == 17 and records[0]["epoch"] == 1
    assert records[0]["train_acc"] == pytest.approx(0.4098663628101349)
    assert records[16]["val_loss"] == pytest.approx(0.17382508516311646)


def test_fastai_csvlogger_metrics_are_validation_metrics():
    # Written by fastai 2.8.12's CSVLogger: a tabular learner on scikit-learn's digits, fit_one_cycle(8).
    records, meta = read_history(DATA / "fastai_digits_history.csv")
    assert meta["format"] == "fastai_csv" and len(records) == 8
    assert records[0] == {"epoch": 1, "train_loss": pytest.approx(2.2429914474487305), "val_loss": pytest.approx(1.8772239685058594),
                          "val_acc": pytest.approx(0.4512534737586975), "val_error_rate": pytest.approx(0.5487465262413025)}
    assert "accuracy is validation accuracy" in meta["assumptions"][0]


def test_fastai_error_rate_alone_becomes_validation_accuracy(tmp_path):
    text = "epoch,train_loss,valid_loss,error_rate,time\n0,1.2,0.9,0.30,00:04\n1,0.8,0.7,0.21,00:04\n"
    records, meta = read_history(write(tmp_path, "history.csv", text))
    assert [r["val_acc"] for r in records] == [pytest.approx(0.70), pytest.approx(0.79)]
    assert "val_acc is 1 - error_rate" in meta["assumptions"][0]


def test_semicolon_csv_with_decimal_commas(tmp_path):
    path = write(tmp_path, "log.csv", "epoch;loss;val_loss;val_accuracy\n0;2,30;2,10;0,21\n1;1,50;1,60;0,45\n")
    records, _ = read_history(path)
    assert [r["val_acc"] for r in records] == [0.21, 0.45] and records[1]["train_loss"] == 1.5


def test_appended_runs_are_split_never_averaged_and_one_can_be_chosen():
    path = REAL / "AkshatSharma5__Brain_Tumor_Image_Classification_using_CNN__training_log.csv"
    last, meta = read_history(path)
    assert [r["epoch"] for r in last] == [1, 2, 3, 4, 5]
    assert last[0]["train_loss"] == pytest.approx(1.245796799659729)  # the fourth run's first row, not a mean
    assert "4 runs" in meta["assumptions"][0] and "the last" in meta["assumptions"][0]
    third, meta3 = read_history(path, run=3)
    assert len(third) == 10 and third[-1]["val_acc"] == pytest.approx(0.7852882742881775)
    assert "run 3 of 4" in meta3["assumptions"][0]
    with pytest.raises(UserError, match="holds 4 runs") as err:
        read_history(path, run=7)
    assert "\n" not in str(err.value)


def test_runs_named_by_a_text_column_are_split_by_name():
    records, meta = read_history(REAL / "rigel-mb__eurosat-pytorch__results_history.csv")
    assert len(records) == 5 and records[-1]["val_loss"] == pytest.approx(0.14579309470192703)
    assert "6 runs" in meta["assumptions"][0] and "'mobilenet_finetuned'" in meta["assumptions"][0]
    frozen, _ = read_history(REAL / "rigel-mb__eurosat-pytorch__results_history.csv", run=5)
    assert len(frozen) == 8


def test_resumed_run_keeps_the_later_values_of_repeated_epochs(tmp_path):
    text = "epoch,loss,val_loss\n0,2.0,2.1\n1,1.5,1.6\n2,1.2,1.4\n3,1.1,1.3\n2,1.19,1.39\n3,1.0,1.2\n4,0.9,1.1\n"
    records, meta = read_history(write(tmp_path, "log.csv", text))
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5]
    assert records[2]["train_loss"] == 1.19 and records[3]["train_loss"] == 1.0
    assert any("resumed run" in a for a in meta["assumptions"])


def test_repeated_header_with_a_restarting_counter_is_a_second_run(tmp_path):
    text = "epoch,loss,val_loss\n0,2.0,2.1\n1,1.5,1.6\nepoch,loss,val_loss\n0,2.2,2.3\n1,1.9,2.0\n2,1.7,1.8\n"
    records, meta = read_history(write(tmp_path, "history.csv", text))
    assert [r["train_loss"] for r in records] == [2.2, 1.9, 1.7]
    assert "2 runs" in meta["assumptions"][0] and "line 5" in meta["assumptions"][0]


def test_lightning_steps_grouped_by_epoch_and_test_and_validate_rows_are_not_epochs():
    records, meta = read_history(REAL / "HCDescamps__cv-image-classification__lightning_logs_version_0_metrics.csv")
    assert meta["format"] == "lightning_csv"
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5]  # not 6: the validate() row after fit is no epoch
    assert records[0]["val_acc"] == pytest.approx(0.9761999845504761)
    first_epoch_steps = [0.634955883026123, 0.19590148329734802]  # the epoch mean of its 34 step losses
    assert records[0]["train_loss"] < first_epoch_steps[0] and records[0]["train_loss"] == pytest.approx(0.1299, abs=1e-4)
    assert meta["test"] == {"test_loss": pytest.approx(0.0322248712182045)}
    said = " | ".join(meta["assumptions"])
    assert "final evaluation, not an epoch" in said and "grouped by epoch" in said and "after the last training epoch" in said


def test_lightning_lr_monitor_rows_without_epoch_are_folded_in():
    records, _ = read_history(REAL / "LhoWann__trash-project__lightning_logs_version_0_metrics.csv")
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert records[1]["lr"] == pytest.approx(9.755282581475769e-05) and records[3]["val_loss"] == pytest.approx(1.2626969814300537)


def test_hf_trainer_state_evaluations_become_epochs_with_the_mean_step_loss():
    records, meta = read_history(REAL / "Tashu014__lora-imdb-distilbert__trainer_state.json")
    assert meta["format"] == "hf_trainer_state" and len(records) == 3
    assert records[0]["val_loss"] == pytest.approx(0.3951033353805542)
    assert records[0]["train_loss"] == pytest.approx((0.6899 + 0.6425 + 0.5277 + 0.5177 + 0.4469 + 0.4132) / 6)
    assert records[2]["step"] == 375 and meta["config"] == {"data": {"batch_size": 16}}
    assert "one evaluation per epoch" in meta["assumptions"][0]


def test_hf_trainer_state_without_evaluations_drops_the_closing_summary():
    records, meta = read_history(REAL / "Francis-xsc__BERT_Weibo_Rumor__trainer_state.json")
    assert len(records) == 51  # one per logged step; the summary row (train_loss averaged over the run) is no epoch
    assert records[0]["train_loss"] == 0.981 and records[-1]["train_loss"] == 0.1636
    assert not any("val_loss" in r for r in records)


def test_hf_trainer_state_evaluating_every_n_steps(tmp_path):
    log = [{"epoch": 0.25 * (i + 1), "loss": 1.0 - 0.05 * i, "learning_rate": 1e-4, "step": 10 * (i + 1)} for i in range(8)]
    for i in (1, 3, 5, 7):
        log.insert(log.index(next(e for e in log if e.get("step") == 10 * (i + 1))) + 1,
                   {"epoch": 0.25 * (i + 1), "eval_loss": 0.9 - 0.01 * i, "eval_accuracy": 0.6 + 0.01 * i, "step": 10 * (i + 1)})
    path = write(tmp_path, "trainer_state.json", json.dumps({"log_history": log, "train_batch_size": 8}))
    records, meta = read_history(tmp_path)  # found in the directory
    assert len(records) == 4 and records[0]["train_loss"] == pytest.approx(0.975)
    assert records[3]["val_acc"] == pytest.approx(0.67) and "4 evaluations over 2 epochs" in meta["assumptions"][0]
    assert read_history(path)[0] == records


def test_tensorboard_events_of_a_real_run_match_its_history():
    expected = History.load(DATA / "tensorboard_digits.history.jsonl").records
    records, meta = read_history(DATA / "tensorboard_digits")
    assert meta["format"] == "tensorboard" and [r["epoch"] for r in records] == [1, 2, 3, 4, 5, 6]
    for got, want in zip(records, expected):
        for key in ("train_loss", "val_loss", "val_acc", "lr"):
            assert got[key] == pytest.approx(want[key], rel=1e-6)  # event files hold float32


def test_tensorboard_keras_layout_train_and_validation_directories(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    for split, losses in (("train", [2.0, 1.2, 0.8, 0.6]), ("validation", [1.9, 1.3, 1.0, 0.95])):
        with SummaryWriter(str(tmp_path / "logs" / split)) as w:
            for epoch, loss in enumerate(losses):
                w.add_scalar("epoch_loss", loss, epoch)
                w.add_scalar("epoch_accuracy", 0.5 + 0.1 * epoch, epoch)
    records, meta = read_history(tmp_path / "logs")
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert records[3]["val_loss"] == pytest.approx(0.95) and records[0]["train_acc"] == pytest.approx(0.5)
    (tmp_path / "logs2" / "a").mkdir(parents=True)
    (tmp_path / "logs2" / "b").mkdir()
    for d in ("a", "b"):
        with SummaryWriter(str(tmp_path / "logs2" / d)) as w:
            w.add_scalar("loss", 1.0, 0)
    with pytest.raises(UserError, match="several runs"):
        read_history(tmp_path / "logs2")


def test_text_log_uses_test_accuracy_as_the_held_out_curve_and_says_so():
    records, meta = read_history(REAL / "5697526__CIFAR-10-Network__training.log")
    assert meta["format"] == "text_log" and len(records) == 35
    assert records[0] == {"epoch": 1, "train_loss": 1.6279, "val_acc": pytest.approx(0.5986)}
    said = " | ".join(meta["assumptions"])
    assert "test values (test_acc) are used as the held-out curve" in said and "percent" in said


def test_text_log_pytorch_example_format(tmp_path):
    text = ("Train Epoch: 1 [0/60000 (0%)]\tLoss: 2.300000\nTrain Epoch: 1 [640/60000 (1%)]\tLoss: 1.700000\n"
            "\nTest set: Average loss: 0.2000, Accuracy: 9400/10000 (94%)\n\n"
            "Train Epoch: 2 [0/60000 (0%)]\tLoss: 0.400000\nTrain Epoch: 2 [640/60000 (1%)]\tLoss: 0.200000\n"
            "\nTest set: Average loss: 0.1000, Accuracy: 9700/10000 (97%)\n")
    records, meta = read_history(write(tmp_path, "train.log", text))
    assert records == [{"epoch": 1, "train_loss": 2.0, "val_loss": 0.2, "val_acc": 0.94},
                       {"epoch": 2, "train_loss": pytest.approx(0.3), "val_loss": 0.1, "val_acc": 0.97}]
    assert any("held-out" in a for a in meta["assumptions"])


def test_csv_without_epoch_column_and_with_a_pandas_index():
    rows, meta = read_history(REAL / "IvanLopesGit__testeimgbirds__models_history.csv")
    assert [r["epoch"] for r in rows] == list(range(1, 11)) and "each row is taken as one epoch" in meta["assumptions"][0]
    indexed, meta2 = read_history(REAL / "tcotte__Cat_Dog__results_history.csv")
    assert [r["epoch"] for r in indexed] == list(range(1, 11)) and meta2["assumptions"] == []


def test_step_log_without_epochs_is_grouped_by_evaluation_and_says_so(tmp_path):
    lines = ["step,train_loss,val_loss,val_acc"]
    for step in range(1, 401):
        lines.append(f"{step},{2.0 - step / 400:.4f},,")
        if step % 50 == 0:
            lines.append(f"{step},,{1.9 - step / 500:.4f},{0.3 + step / 1000:.3f}")
    records, meta = read_history(write(tmp_path, "steps.csv", "\n".join(lines) + "\n"))
    assert len(records) == 8 and records[0]["step"] == 50
    assert records[0]["train_loss"] == pytest.approx(sum(2.0 - s / 400 for s in range(1, 51)) / 50, abs=1e-4)
    assert "8 evaluations (every 50 steps)" in meta["assumptions"][0]


def test_long_step_log_without_evaluations_is_grouped_by_a_stated_number_of_steps(tmp_path):
    lines = ["step,loss"] + [f"{s},{3.0 / (1 + s / 100):.5f}" for s in range(1, 1001)]
    records, meta = read_history(write(tmp_path, "steps.csv", "\n".join(lines) + "\n"))
    assert len(records) == 100 and "every 10 logged rows (10 steps)" in meta["assumptions"][0]


def test_per_epoch_test_columns_stand_in_for_validation(tmp_path):
    text = "epoch,train_loss,test_loss,test_acc\n1,2.0,1.9,0.30\n2,1.2,1.3,0.55\n3,0.9,1.1,0.61\n"
    records, meta = read_history(write(tmp_path, "log.csv", text))
    assert records[2] == {"epoch": 3, "train_loss": 0.9, "val_loss": 1.1, "val_acc": 0.61}
    assert "no validation data" in meta["assumptions"][0]
    both = "epoch,train_loss,val_loss,test_loss\n1,2.0,1.9,1.8\n2,1.2,1.3,1.25\n"
    kept, _ = read_history(write(tmp_path, "both.csv", both))
    assert kept[0]["test_loss"] == 1.8 and kept[0]["val_loss"] == 1.9  # with validation data, test stays test


def test_keras_history_json_dump(tmp_path):
    path = write(tmp_path, "history.json", json.dumps({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8]}))
    records, meta = read_history(path)
    assert records == [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.1, "train_acc": 0.5},
                       {"epoch": 2, "train_loss": 0.5, "val_loss": 0.7, "train_acc": 0.8}]
    assert meta["format"] == "keras_history_json"


# ----------------------------------------------------------------------------- diagnose: classes, task, config
def test_diagnose_states_the_readers_assumptions_and_unknown_classes():
    result = diagnose(REAL / "AkshatSharma5__Brain_Tumor_Image_Classification_using_CNN__training_log.csv")
    assert any("4 runs" in a for a in result.assumptions)
    assert result.to_dict()["assumptions"] == result.assumptions
    given = diagnose(REAL / "AkshatSharma5__Brain_Tumor_Image_Classification_using_CNN__training_log.csv", classes=3)
    assert not any("number of classes" in a for a in given.assumptions)


def test_foreign_config_maps_onto_trainwise_keys_without_trainwise_defaults(tmp_path):
    from trainwise.doctor.readers_config import foreign_config

    cfg, classes, task, said = foreign_config({
        "optimizer": "AdamW", "learning_rate": 3e-4, "lr_scheduler_type": "cosine", "per_device_train_batch_size": 32,
        "label_smoothing": 0.1, "mixup": 0.2, "num_train_epochs": 30, "num_labels": 5, "seed": 1, "fp16": True})
    assert cfg == {"optim": {"name": "adamw", "lr": 3e-4}, "schedule": {"name": "cosine"}, "data": {"batch_size": 32},
                   "regularization": {"label_smoothing": 0.1}, "mixup": {"mixup_alpha": 0.2}, "train": {"epochs": 30, "precision": "fp16"}}
    assert classes == 5 and task is None and said == ["config keys with no trainwise meaning, not used: seed"]
    nested, _, _, _ = foreign_config({"optimizer": {"name": "SGD", "lr": 0.1, "momentum": 0.9}, "optim": {"weight_decay": 5e-4}})
    assert nested == {"optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}}
    with pytest.raises(UserError, match="optim.lr"):
        foreign_config({"lr": -1})


def test_config_file_reaches_the_rules(tmp_path):
    log = REAL / "5697526__CIFAR-10-Network__training.log"
    (tmp_path / "run.yaml").write_text("optimizer: adam\nlearning_rate: 0.001\nlabel_smoothing: 0.05\nclasses: 10\n")
    result = diagnose(log, tmp_path / "run.yaml")
    assert not any("number of classes" in a for a in result.assumptions)
    from trainwise.doctor.context import Context

    ctx = Context(records=read_history(log)[0], config={"regularization": {"label_smoothing": 0.05}}, num_classes=10)
    assert ctx.train_loss_floor > 0.2  # the smoothing the file states is what the rules judge the loss against


def test_cli_diagnose_foreign_log_with_classes_task_config_and_run(tmp_path):
    log = REAL / "AkshatSharma5__Brain_Tumor_Image_Classification_using_CNN__training_log.csv"
    (tmp_path / "cfg.toml").write_text('optimizer = "adam"\nlr = 1e-4\nbatch_size = 32\n')
    out = run_cli("diagnose", str(log), "--classes", "3", "--task", "multiclass", "--config", str(tmp_path / "cfg.toml"),
                  "--run", "3", "--json")
    assert out.returncode in (0, 1), out.stderr
    data = json.loads(out.stdout)
    assert any("run 3 of 4" in a for a in data["assumptions"]) and data["findings"]
    text = run_cli("diagnose", str(log))
    assert "assumed: the log holds 4 runs" in text.stdout


@pytest.mark.parametrize(("args", "match"), [
    (["--task", "ranking"], "unknown task 'ranking'"),
    (["--classes", "1"], "not a number of classes"),
    (["--task", "binary", "--classes", "5"], "task binary with 5 classes"),
    (["--config", "nope.yaml"], "not found"),
    (["--run", "9"], "holds 4 runs"),
    (["--run", "last"], "bad --run"),
])
def test_cli_diagnose_bad_arguments_exit_2_with_one_line(args, match):
    log = REAL / "AkshatSharma5__Brain_Tumor_Image_Classification_using_CNN__training_log.csv"
    out = run_cli("diagnose", str(log), *args)
    assert out.returncode == 2 and match in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_cli_diagnose_unreadable_inputs_exit_2_with_one_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    log = REAL / "Aitzaz-Saleem__Detection-of-Tomato-Leaf-Diseases-Using-CNN__training_log.csv"
    for args in ([str(tmp_path / "missing.csv")], [str(write(tmp_path, "x.json", "[1, 2]"))],
                 [str(write(tmp_path, "e.csv", ""))], [str(log), "--config", str(tmp_path / "bad.yaml")]):
        out = run_cli("diagnose", *args)
        assert out.returncode == 2, (args, out.stdout)
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


@pytest.mark.parametrize(("logs", "at_least"), [(REAL, 40), (REAL_2, 40), (REAL_3, 25)], ids=["set1", "set2", "set3"])
def test_every_real_log_of_the_benchmark_is_read_and_labelled_in_the_vocabulary(logs, at_least):
    import tomllib

    from trainwise.doctor import CODES

    entries = tomllib.loads((logs.parent / "sources.toml").read_text())["log"]
    assert len(entries) >= at_least and len({e["file"] for e in entries}) == len(entries)
    assert {e["file"] for e in entries} == {p.name for p in logs.iterdir()}  # every stored log is listed
    for e in entries:
        assert e["label"] in CODES and len(e["commit"]) == 40 and e["reason"], e["file"]
        records, meta = read_history(logs / e["file"])
        assert len(records) >= 2, e["file"]
        assert any(k in r for r in records for k in ("train_loss", "val_loss", "train_acc", "val_acc")), e["file"]


def test_keras_verbose_output_with_nan_losses_is_read_as_diverged_values(tmp_path):
    text = ("Epoch 1/3\n469/469 [==============================] - 4s 8ms/step - loss: 2.3012 - accuracy: 0.1123"
            " - val_loss: 2.2950 - val_accuracy: 0.1135\nEpoch 2/3\n469/469 [==============================] - 3s 7ms/step"
            " - loss: nan - accuracy: 0.0987 - val_loss: nan - val_accuracy: 0.0980\nEpoch 3/3\n"
            "469/469 [==============================] - 3s 7ms/step - loss: nan - accuracy: 0.0987 - val_loss: nan"
            " - val_accuracy: 0.0980\n")
    records, _ = read_history(write(tmp_path, "fit.log", text))
    assert [r["epoch"] for r in records] == [1, 2, 3] and records[0]["val_acc"] == 0.1135
    assert records[1]["train_loss"] != records[1]["train_loss"]  # NaN kept: a diverged epoch, not a missing one


def test_hf_output_directory_reads_the_latest_checkpoint_and_says_so(tmp_path):
    for step, losses in ((500, [1.0, 0.9]), (1000, [1.0, 0.9, 0.8, 0.7])):
        log = []
        for i, loss in enumerate(losses):
            log += [{"epoch": i + 0.5, "loss": loss, "step": 250 * (2 * i + 1)},
                    {"epoch": i + 1.0, "eval_loss": loss + 0.1, "step": 250 * (2 * i + 2)}]
        write(tmp_path, f"checkpoint-{step}/trainer_state.json", json.dumps({"log_history": log}))
    records, meta = read_history(tmp_path)
    assert len(records) == 4 and records[-1]["val_loss"] == pytest.approx(0.8)
    assert meta["assumptions"][0] == "read checkpoint-1000/trainer_state.json, the latest of 2 checkpoints"


def test_corrupt_tensorboard_event_file_is_one_line(tmp_path):
    path = write(tmp_path, "events.out.tfevents.123.host", "not an event file at all")
    with pytest.raises(UserError) as err:
        read_history(path)
    assert "\n" not in str(err.value) and "Fix:" in str(err.value)


def test_header_written_again_by_a_resume_that_continues_the_counter_is_one_run(tmp_path):
    text = "epoch,loss,val_loss\n0,2.0,2.1\n1,1.5,1.6\nepoch,loss,val_loss\n2,1.2,1.4\n3,1.0,1.3\n"
    records, meta = read_history(write(tmp_path, "log.csv", text))
    assert [r["train_loss"] for r in records] == [2.0, 1.5, 1.2, 1.0] and meta["assumptions"] == []


def test_multi_output_keras_loss_is_a_sum_and_not_judged_against_ln_k():
    log = REAL / "AVINASHGK16__Multimodal-deepfake-detector__training_log.csv"
    records, meta = read_history(log)
    assert meta["composite_loss"] and records[0]["train_loss"] == pytest.approx(0.7577018141746521)
    assert "weighted sum of 3 output losses" in meta["assumptions"][0]
    result = diagnose(log, classes=2)
    assert not any("ln K" in f.message for f in result)


def test_tensorboard_directory_written_twice_from_step_0_holds_two_runs(tmp_path):
    import time

    from torch.utils.tensorboard import SummaryWriter

    for losses in ([2.0, 1.5, 1.2, 1.0], [2.3, 2.2, 2.1, 2.0, 1.9]):
        with SummaryWriter(str(tmp_path)) as w:
            for step, loss in enumerate(losses):
                w.add_scalar("train/loss", loss, step)
                w.add_scalar("val/loss", loss + 0.1, step)
        time.sleep(1.1)  # event files are named, and ordered, by their first event's time
    records, meta = read_history(tmp_path)
    assert [r["train_loss"] for r in records] == pytest.approx([2.3, 2.2, 2.1, 2.0, 1.9])
    assert "2 runs" in meta["assumptions"][0]


def test_config_file_in_trainwise_sections_is_a_trainwise_config(tmp_path):
    history = History.load(DATA / "tensorboard_digits.history.jsonl")
    (tmp_path / "run.toml").write_text('[optim]\nname = "sgd"\nlr = 0.05\n')
    result = diagnose(history, tmp_path / "run.toml")
    assert result.assumptions == []  # a trainwise run with a trainwise config: nothing foreign to say
    (tmp_path / "bad.toml").write_text('[optim]\nlr = "fast"\n')
    with pytest.raises(UserError, match="optim.lr"):
        diagnose(history, tmp_path / "bad.toml")


def test_cli_diagnose_each_run_of_a_log_with_run_all():
    log = REAL / "AkshatSharma5__Brain_Tumor_Image_Classification_using_CNN__training_log.csv"
    text = run_cli("diagnose", str(log), "--run", "all", "--classes", "3")
    assert [line for line in text.stdout.splitlines() if line.startswith("run ")] == [f"run {k} of 4:" for k in (1, 2, 3, 4)]
    data = json.loads(run_cli("diagnose", str(log), "--run", "all", "--json").stdout)
    assert [d["runs"] for d in data] == [4, 4, 4, 4]
    said = [next(a for a in d["assumptions"] if "4 runs" in a) for d in data]
    assert [re.search(r"run (\d) of 4", a).group(1) for a in said] == ["1", "2", "3", "4"]
    single = json.loads(run_cli("diagnose", str(REAL / "Aitzaz-Saleem__Detection-of-Tomato-Leaf-Diseases-Using-CNN__training_log.csv"),
                                "--run", "all", "--json").stdout)
    assert single["runs"] == 1  # one run: one diagnosis, as without --run


def test_multi_output_keras_log_takes_the_one_output_that_has_an_accuracy():
    # A capsule network's classifier output beside a reconstruction output (set 7): out_caps_acc is the accuracy.
    log = REAL.parents[1] / "real_logs_7" / "logs" / "AIR-Center__Capsnet-Cancer__log.csv"
    records, meta = read_history(log)
    assert records[0]["val_acc"] == pytest.approx(0.6000000238418579)
    assert records[-1]["train_acc"] == pytest.approx(0.6706730769230769)
    assert any("only output with an accuracy" in a for a in meta["assumptions"])


def test_two_outputs_with_accuracies_name_no_accuracy_for_the_run(tmp_path):
    text = ("epoch,loss,a_loss,a_acc,b_loss,b_acc,val_loss,val_a_loss,val_a_acc,val_b_loss,val_b_acc\n"
            "0,2.0,1.0,0.5,1.0,0.4,2.1,1.0,0.5,1.1,0.4\n1,1.5,0.7,0.6,0.8,0.5,1.6,0.8,0.6,0.8,0.5\n")
    records, meta = read_history(write(tmp_path, "log.csv", text))
    assert "val_acc" not in records[0] and records[0]["val_a_acc"] == 0.5


def test_tr_and_vl_are_splits_and_a_text_label_on_every_row_is_not_a_run_name():
    # Set 8: a two-phase fine-tune whose epoch column reads P1-1 .. P1-10, P2-1 .. P2-28, losses tr_loss, vl_loss.
    log = REAL.parents[1] / "real_logs_8" / "logs" / "Dfinnnn__VisionK_VitalK_IDSC2026__models_training_history.csv"
    records, meta = read_history(log)
    assert len(records) == 38 and not any("runs" in a for a in meta["assumptions"])
    assert records[0]["train_loss"] == pytest.approx(0.2488257903389949) and records[-1]["val_loss"] == pytest.approx(0.152, abs=1e-3)
    assert [r["phase"] for r in records].count(1.0) == 10


def test_a_history_dict_with_summary_numbers_beside_its_lists_reads_the_lists(tmp_path):
    log = REAL.parents[1] / "real_logs_8" / "logs" / "lequanganhtuan__PF-Food_Classification__outputs_training_history.json"
    records, meta = read_history(log)
    assert len(records) == 25 and records[0]["train_loss"] == pytest.approx(5.151807)
    assert any("single values beside the per-epoch lists" in a and "test_acc_top1" in a for a in meta["assumptions"])
    with pytest.raises(UserError):  # a dict of numbers alone is still no history
        read_history(write(tmp_path, "h.json", '{"best": 0.9, "epochs": 10}'))


SET9 = REAL.parents[1] / "real_logs_9" / "logs"


def test_ludwig_training_statistics_read_the_feature_with_an_accuracy():
    records, meta = read_history(SET9 / "RadescuIoana__MPS_Proiect1__results_experiment_Model_LadyBugs_training_statistics.json")
    assert len(records) == 100 and {"train_loss", "train_acc", "val_loss", "val_acc", "test_acc"} <= set(records[0])
    assert records[0]["train_loss"] == pytest.approx(0.6909953355789185) and records[-1]["val_acc"] == pytest.approx(0.8981937766075134)
    assert any("output feature 'rezultat testare'" in a for a in meta["assumptions"])
    # Newer files: "train" or "training", and an evaluation_frequency entry that is not a split
    records, meta = read_history(SET9 / "xxivk__ludwig-client__results_experiment_run_training_statistics.json")
    assert len(records) == 18 and "val_roc_auc" in records[0] and records[0]["val_loss"] == pytest.approx(1.7077100276947021) and "entry i of each list is epoch i + 1" in " ".join(meta["assumptions"])


def test_a_history_nested_beside_the_runs_description_reads_the_history(tmp_path):
    records, meta = read_history(SET9 / "SimonGonMon__resnet-concrete-crack-detection__training_statistics.json")
    assert len(records) == 25 and {"train_loss", "val_loss", "train_acc", "val_acc"} <= set(records[0])
    assert records[0]["val_loss"] == pytest.approx(0.21141549944877625)
    assert any("under 'training_history'" in a for a in meta["assumptions"])
    two = {"a": {"loss": [1.0, 0.9], "val_loss": [1.1, 1.0]}, "b": {"loss": [2.0, 1.9], "val_loss": [2.1, 2.0]}}
    # two histories side by side are two runs: split, never averaged, the last diagnosed unless run=K says otherwise
    records, meta = read_history(write(tmp_path, "h.json", json.dumps(two)))
    assert meta["runs"] == 2 and [r["train_loss"] for r in records] == [2.0, 1.9]


def test_a_log_txt_of_one_json_object_per_line_is_one_epoch_a_line(tmp_path):
    records, meta = read_history(SET9 / "parthagrawal02__ECG_MAE__output_dir_log.txt")  # MAE's fine-tuning log
    assert len(records) == 6 and records[0]["train_loss"] == pytest.approx(5.300944681376785)
    assert records[0]["val_acc"] == pytest.approx(0.014) and "one JSON object per line: each line is an epoch" in meta["assumptions"]
    mixed = 'starting\n{"epoch": 0, "train_loss": 1.0}\nEpoch 1: loss: 0.9\n'  # not every line an object: the text reader
    records, meta = read_history(write(tmp_path, "log.txt", mixed))
    assert "one JSON object per line: each line is an epoch" not in meta["assumptions"]


REAL_10 = ROOT / "benchmarks" / "real_logs_10" / "logs"
PHASED = REAL_10 / "Devansh2009__diabetic-retinopathy-classifier__outputs_history.json"


def test_histories_under_phase_keys_are_one_run_whose_records_carry_their_phase():
    # EfficientNetB0, head only for 13 epochs under "phase1", then 7 epochs fine-tuning under "phase2"
    records, meta = read_history(PHASED)
    assert len(records) == 20 and [r["epoch"] for r in records] == list(range(1, 21))
    assert [r["phase"] for r in records] == ["phase1"] * 13 + ["phase2"] * 7
    assert "consecutive phases of one run" in meta["assumptions"][0] and "epoch 14" in meta["assumptions"][0]
    assert "best_val_qwk" in meta["assumptions"][0]  # the summary beside the histories is said to be left out
    phased = [f for f in diagnose(PHASED) if f.code == "phase_regression"]
    assert phased and "'phase1' -> 'phase2' (epoch 14)" in phased[0].message  # the phase rules see the boundary


def test_histories_under_other_keys_are_runs_side_by_side_never_averaged(tmp_path):
    data = json.loads(PHASED.read_text())
    runs = tmp_path / "two_optimizers.json"
    runs.write_text(json.dumps({"adam": data["phase1"], "sgd": data["phase2"]}))
    records, meta = read_history(runs)
    assert meta["runs"] == 2 and len(records) == 7  # the last run, as for any log that holds several
    assert records[0]["train_loss"] == data["phase2"]["loss"][0] and "phase" not in records[0]
    assert "separate runs side by side" in " ".join(meta["assumptions"])
    first, _ = read_history(runs, run=1)
    assert len(first) == 13 and first[-1]["val_acc"] == data["phase1"]["val_accuracy"][-1]


REAL_11 = ROOT / "benchmarks" / "real_logs_11" / "logs"


def test_lists_beside_per_class_summaries_are_a_history_and_the_summaries_are_left_out():
    # 83 epochs of train/val loss and accuracy in percent, beside test scores and dicts of per-class accuracy
    # and image counts (describing the run, not its epochs)
    records, meta = read_history(REAL_11 / "AyushmanDhara__SkinGuard-CNN-AI--Skin-Disease-Detection-System__training_metrics.json")
    assert len(records) == 83 and max(r["val_acc"] for r in records) == pytest.approx(0.924)
    said = " ".join(meta["assumptions"])
    assert "per_class_acc" in said and "are a summary, not epochs" in said
    assert not any("per_class" in k or "class_counts" in k for r in records for k in r)


def test_a_csv_whose_quoted_cells_hold_the_separator_keeps_its_header():
    # Keras CSVLogger with F1 per class written as quoted lists ("[0.0, 0.14, ...]"): more commas in each data
    # line than in the header, the same number of fields
    records, _ = read_history(REAL_11 / "carlesoctav__bioinfo_uts__logs_training.csv")
    assert len(records) == 21 and records[0]["epoch"] == 1
    assert records[0]["train_loss"] == pytest.approx(20.5457, abs=1e-3) and records[-1]["val_acc"] == pytest.approx(0.813, abs=1e-3)


@pytest.mark.parametrize("text, said", [("{}", "received an empty JSON dict"), ("[]", "received an empty JSON list"),
                                        ('{"a": 1}', "received JSON dict with keys a")])
def test_a_json_file_that_holds_no_history_says_what_it_holds(tmp_path, text, said):
    path = tmp_path / "history.json"
    path.write_text(text)
    with pytest.raises(UserError, match=said):
        read_history(path)
