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
    assert found.codes == ["too_short"] and not found.ok  # two epochs: no verdict, and an expectation missed
    assert found.to_dict()["expectation_misses"][0]["observed"] == 0.80
    assert diagnose(RECORDS, expect=["val_acc >= 0.8 at epoch 1"]).ok


# ----------------------------------------------------------------------------- relative checks
RISING = [
    {"epoch": 1, "val_acc": 0.90, "train_acc": 0.85, "val_loss": 0.40, "train_loss": 0.45},
    {"epoch": 2, "val_acc": 0.88, "train_acc": 0.90, "val_loss": 0.42, "train_loss": 0.30},
    {"epoch": 3, "val_acc": 0.89, "train_acc": 0.97, "val_loss": 0.45, "train_loss": 0.10},
]


@pytest.mark.parametrize(("text", "missed_at"), [
    ("val_acc does not decrease at epoch 2", 2),  # it fell 0.90 -> 0.88
    ("val_acc decreases at epoch 2", None),
    ("val_acc increases at epoch 2", 2),
    ("val_loss improves every epoch", 2),  # loss: "improves" means down
    ("train_loss improves every epoch", None),
    ("train_acc rises throughout", None),
    ("train/val accuracy gap < 5 points", 3),  # 0.97 - 0.89 at the end
    ("train/val accuracy gap < 5 points every epoch", 3),
    ("train/val accuracy gap < 10 %", None),
    ("train_acc - val_acc <= 0.02 at epoch 2", 2),
    ("train/val loss gap < 0.2 at epoch 2", None),  # val - train loss: 0.12
    ("val_acc increases by epoch 3", None),  # epoch 3 rose from epoch 2
])
def test_relative_checks(text, missed_at):
    misses = check_expectations(RISING, [text])
    assert [m.epoch for m in misses] == ([] if missed_at is None else [missed_at]), [str(m) for m in misses]


@pytest.mark.parametrize("text", ["val_accuracy >= 0.9", "val_acc goes up", "val_acc does not decrease at epoch 1",
                                  "train/val accuracy gap < 5 parsecs"])
def test_bad_relative_expectations_are_user_errors(text):
    with pytest.raises(UserError) as err:
        parse_expectation(text)
    assert "\n" not in str(err.value)


def test_a_bad_expectation_is_rejected_before_training_starts(tmp_path):
    from helpers import run_cli

    out = run_cli("train", "--set", "doctor.expect=['val_acc rises a lot']", "--set", "train.epochs=1", "--out", str(tmp_path / "run"))
    assert out.returncode == 2 and "doctor.expect" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / "run" / "history.jsonl").exists()


def test_diagnose_exit_codes(tmp_path):
    """0: nothing at error level and every expectation held; 1: an error-level finding or a miss; 2: a user mistake."""
    import json

    from helpers import run_cli

    def history(name: str, rows: list[dict]) -> str:
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return str(path)

    healthy = history("healthy", [{"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.1 / e, "val_acc": 0.5 + 0.04 * e} for e in range(1, 11)])
    stuck = history("stuck", [{"epoch": e, "train_loss": 2.302, "val_loss": 2.303, "val_acc": 0.1} for e in range(1, 11)])
    assert run_cli("diagnose", healthy).returncode == 0
    missed = run_cli("diagnose", healthy, "--expect", "val_acc >= 0.99")
    assert missed.returncode == 1 and "healthy" not in missed.stdout  # a missed expectation is never printed beside "healthy"
    assert "healthy" in run_cli("diagnose", healthy).stdout
    result = run_cli("diagnose", stuck, "--json")
    assert result.returncode == 1 and json.loads(result.stdout)["findings"][0]["code"] == "stuck_at_chance"
    bad = run_cli("diagnose", healthy, "--expect", "val_acc is great")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
