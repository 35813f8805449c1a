"""One rule for labels (trainwise.data.labels), through the CLI and the Python API, on digits and breast_cancer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import run_cli
from sklearn.datasets import load_breast_cancer, load_digits

import trainwise
from trainwise.errors import UserError

QUIET = ["--set", "train.epochs=2", "--set", "train.progress='none'", "--set", "train.report=false", "--set", "doctor.live=false"]
API_QUIET = {"train__epochs": 2, "train__progress": "none", "train__report": False, "doctor__live": False}
DIGITS = load_digits()
CANCER = load_breast_cancer()


def train_npz(tmp_path, name: str, *extra: str, **arrays):
    np.savez(tmp_path / f"{name}.npz", **arrays)
    return run_cli("train", *QUIET, "--set", "data.name='arrays'", "--set", f"data.path='{tmp_path / name}.npz'", *extra,
                   "--out", str(tmp_path / f"run-{name}"))


def error_line(done) -> str:
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def summary(tmp_path, name: str) -> dict:
    return json.loads((tmp_path / f"run-{name}" / "summary.json").read_text())


# --------------------------------------------------------------------- gaps: refused with a fix that works
def test_labels_0_and_7_are_refused_and_the_suggested_data_classes_trains(tmp_path):
    keep = np.isin(DIGITS.target, [0, 7])
    x, y = DIGITS.data[keep].astype(np.float32), DIGITS.target[keep]
    line = error_line(train_npz(tmp_path, "d07", x=x, y=y))
    assert "not class ids 0..1" in line and "received label values {0, 7}" in line and "--set data.classes=[0,7]" in line
    fix = line.split("(--set ")[1].rstrip(").")
    done = train_npz(tmp_path, "d07", "--set", fix, x=x, y=y)
    assert done.returncode == 0, done.stderr
    s = summary(tmp_path, "d07")
    assert s["task"] == "binary" and s["class_names"] == ["0", "7"] and s["test"]["acc"] > 0.9


def test_a_label_of_1000_among_0_to_9_is_refused_not_a_1001_class_model(tmp_path):
    y = DIGITS.target.copy()
    y[y == 2] = 1000
    line = error_line(train_npz(tmp_path, "d1000", x=DIGITS.data.astype(np.float32), y=y))
    assert "expected 10 classes numbered 0..9" in line and "1000}" in line


def test_a_label_of_10_to_the_12_is_one_line_and_its_fix_trains(tmp_path):
    y = CANCER.target.astype(np.int64) * 10**12
    x = CANCER.data.astype(np.float32)
    line = error_line(train_npz(tmp_path, "bc12", x=x, y=y))
    assert "{0, 1000000000000}" in line
    done = train_npz(tmp_path, "bc12", "--set", "data.classes=[0,1000000000000]", x=x, y=y)
    assert done.returncode == 0, done.stderr
    assert summary(tmp_path, "bc12")["class_names"] == ["0", "1000000000000"]


def test_data_classes_naming_an_absent_class_is_one_line():
    line = error_line(run_cli("train", *QUIET, "--set", "data.classes=[0,99]"))
    assert "data.classes names 99, which no training label has" in line and "{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}" in line


def test_the_api_refuses_gaps_and_follows_data_classes():
    keep = np.isin(DIGITS.target, [3, 8])
    x, y = DIGITS.data[keep].astype(np.float32), DIGITS.target[keep]
    with pytest.raises(UserError, match=r"data.classes=\[3,8\]"):
        trainwise.fit(train=(x, y), **API_QUIET)
    run = trainwise.fit(train=(x[:300], y[:300]), test=(x[300:], y[300:]), data__classes=[8, 3], **API_QUIET)
    assert run.data.class_names == ["8", "3"] and run.data.task == "binary"
    assert (run.data.train.targets.numpy() == (y[:300] == 3)).all()  # 8 -> 0, 3 -> 1, in the order given


# ----------------------------------------------------------------------------- text, floats, one-hot
def test_text_labels_in_a_csv_are_numbered_in_sorted_order_with_a_note(tmp_path):
    names = np.array(CANCER.target_names)[CANCER.target]  # 'malignant' / 'benign'
    rows = ["a,b,c,diagnosis"] + [f"{r[0]},{r[1]},{r[2]},{n}" for r, n in zip(CANCER.data, names)]
    (tmp_path / "bc.csv").write_text("\n".join(rows) + "\n")
    done = run_cli("train", *QUIET, "--set", "data.name='csv'", "--set", f"data.path='{tmp_path / 'bc.csv'}'", "--set", "data.target='diagnosis'",
                   "--out", str(tmp_path / "run-csv"))
    assert done.returncode == 0, done.stderr
    assert "note: the training labels are text: 2 classes numbered in sorted order (benign=0, malignant=1)" in done.stderr
    assert summary(tmp_path, "csv")["class_names"] == ["benign", "malignant"]


def test_float_labels_that_are_not_whole_numbers_are_refused(tmp_path):
    y = CANCER.target + 0.5  # 0.5 and 1.5: a regression target, not two classes
    line = error_line(train_npz(tmp_path, "halves", x=CANCER.data.astype(np.float32), y=y))
    assert "labels are not whole numbers" in line and "received 0.5 at sample" in line
    with pytest.raises(UserError, match="not whole numbers"):
        trainwise.fit(train=(CANCER.data, y), **API_QUIET)


def test_whole_number_float_labels_are_class_ids():
    run = trainwise.fit(train=(CANCER.data.astype(np.float32), CANCER.target.astype(np.float64)), **API_QUIET)
    assert run.data.task == "binary" and run.data.class_names == ["0", "1"]


def test_one_hot_labels_are_read_as_class_ids_through_the_cli_and_the_api(tmp_path):
    onehot = np.eye(10)[DIGITS.target]
    done = train_npz(tmp_path, "onehot", x=DIGITS.data.astype(np.float32), y=onehot)
    assert done.returncode == 0, done.stderr
    s = summary(tmp_path, "onehot")
    assert s["task"] == "multiclass" and s["num_classes"] == 10 and s["test"]["acc"] > 0.8
    run = trainwise.fit(train=(DIGITS.data[:1500], onehot[:1500]), test=(DIGITS.data[1500:], onehot[1500:]), **API_QUIET)
    assert run.data.num_classes == 10 and (run.data.test.targets.numpy() == DIGITS.target[1500:]).all()
    soft = onehot * 0.9 + 0.01  # label smoothing already applied: not one class per sample
    with pytest.raises(UserError, match="rows are not one-hot"):
        trainwise.fit(train=(DIGITS.data, soft), **API_QUIET)


# ------------------------------------------------------------------------------- splits that disagree
def test_a_test_class_never_seen_in_training_is_an_error(tmp_path):
    train = DIGITS.target != 9
    line = error_line(train_npz(tmp_path, "unseen", x=DIGITS.data[train].astype(np.float32), y=DIGITS.target[train],
                                x_test=DIGITS.data[:300].astype(np.float32), y_test=DIGITS.target[:300]))
    assert "the test labels hold class 9, which no training label has" in line
    with pytest.raises(UserError, match="the test labels hold class 9"):
        trainwise.fit(train=(DIGITS.data[train], DIGITS.target[train]), test=(DIGITS.data[:300], DIGITS.target[:300]), **API_QUIET)


def test_test_inputs_with_another_feature_count_are_one_line(tmp_path):
    x = DIGITS.data.astype(np.float32)
    line = error_line(train_npz(tmp_path, "features", x=x, y=DIGITS.target, x_test=x[:100, :60], y_test=DIGITS.target[:100]))
    assert "the test inputs have another shape than the training ones; expected samples shaped (64,)" in line
    with pytest.raises(UserError, match=r"the validation inputs have another shape"):
        trainwise.fit(train=(x, DIGITS.target), val=(x[:100, :60], DIGITS.target[:100]), **API_QUIET)
