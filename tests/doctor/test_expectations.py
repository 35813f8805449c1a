"""Expectations: parsed strictly, judged per mode, pending while the run has not reached the deadline."""

from __future__ import annotations

import pytest

from trainwise.doctor import check_expectations, diagnose, parse_expectation
from trainwise.errors import UserError

RECORDS = [
    {"epoch": 1, "val_acc": 0.80, "train_loss": 1.20},
    {"epoch": 2, "val_acc": 0.86, "train_loss": 0.70},
    {"epoch": 3, "val_acc": 0.84, "train_loss": 0.50},
]


@pytest.mark.parametrize(("text", "parsed"), [
    ("val_acc >= 0.85 at epoch 1", ("val_acc", ">=", 0.85, "at", 1)),
    ("train_loss<=1.0 at epoch 1", ("train_loss", "<=", 1.0, "at", 1)),
    ("val_acc > 0.9 by epoch 10", ("val_acc", ">", 0.9, "by", 10)),
    ("grad_norm/net.0 < 1e3", ("grad_norm/net.0", "<", 1000.0, "end", None)),
    ("val_loss <= .5 AT END", ("val_loss", "<=", 0.5, "end", None)),
])
def test_parse(text, parsed):
    e = parse_expectation(text)
    assert (e.metric, e.op, e.target, e.mode, e.epoch) == parsed


@pytest.mark.parametrize("text", ["val_acc is high", "val_acc >= at epoch 1", "val_acc >= 0.9 at epoch 0", ">= 0.9"])
def test_bad_expectations_are_user_errors(text):
    with pytest.raises(UserError) as err:
        parse_expectation(text)
    assert "\n" not in str(err.value)


def test_misses_per_mode():
    expect = [
        "val_acc >= 0.85 at epoch 1",  # missed: 0.80
        "train_loss <= 1.0 at epoch 1",  # missed: 1.20
        "val_acc >= 0.85 by epoch 2",  # met at epoch 2
        "val_acc >= 0.85 at end",  # missed: 0.84
        "val_acc >= 0.9 by epoch 3",  # missed: best 0.86
        "val_f1 >= 0.5 at epoch 2",  # missed: not logged
        "train_loss < 0.6",  # met
    ]
    misses = check_expectations(RECORDS, expect)
    assert [m.expectation for m in misses] == [expect[0], expect[1], expect[3], expect[4], expect[5]]
    assert misses[0].observed == 0.80 and misses[0].epoch == 1
    assert misses[3].observed == 0.86 and "best 0.86" in misses[3].reason
    assert misses[4].observed is None and "not logged" in misses[4].reason


def test_live_checking_leaves_future_deadlines_pending():
    expect = ["val_acc >= 0.95 by epoch 5", "val_acc >= 0.99 at end", "val_acc >= 0.85 at epoch 1"]
    live = check_expectations(RECORDS, expect, final=False)
    assert [m.expectation for m in live] == [expect[2]]
    done = check_expectations(RECORDS, expect)
    assert [m.expectation for m in done] == expect
    assert "ended at epoch 3" in done[0].reason


def test_diagnose_returns_misses_beside_findings_and_reads_them_from_the_config():
    found = diagnose(RECORDS, {"doctor": {"expect": ["val_acc >= 0.85 at epoch 1"]}})
    assert [m.expectation for m in found.misses] == ["val_acc >= 0.85 at epoch 1"]
    assert found.codes == ["healthy"] and not found.ok
    assert found.to_dict()["expectation_misses"][0]["observed"] == 0.80
    assert diagnose(RECORDS, expect=["val_acc >= 0.8 at epoch 1"]).ok
