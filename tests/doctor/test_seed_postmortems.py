"""The seed documents' post-mortems as tests: what each run must, and must not, be diagnosed as."""

from __future__ import annotations

import pytest
from seed_histories import (
    SEED000_CONFIG,
    SEED000_SLOW_START,
    SEED000_TABLE,
    SEED002_EXPECT,
    SEED002_NEW,
    SEED002_NEW_CONFIG,
    SEED002_OLD,
    SEED002_OLD_CONFIG,
    SEED002_OVERCORRECTED,
    SEED002_OVERCORRECTED_CONFIG,
    SEED004,
    SEED004_ACC_ONLY,
    SEED004_CONFIG,
    SEED004_UNLABELLED,
)

from trainwise.doctor import diagnose
from trainwise.doctor.live import LiveDoctor


def serious(found) -> list[str]:
    return [f.code for f in found if f.severity != "info"]


# ----------------------------------------------------------------------------- seed 000
def test_seed000_table_is_healthy_with_the_epoch3_dip_explained():
    found = diagnose(SEED000_TABLE, SEED000_CONFIG, classes=2)
    assert found.codes[0] == "healthy" and serious(found) == [], [str(f) for f in found]
    dip = next(f for f in found if f.code == "transient_dip")
    assert dip.epochs == (3, 3)


@pytest.mark.parametrize("records", [SEED000_TABLE, SEED000_SLOW_START], ids=["table", "slow_start"])
def test_seed000_live_doctor_never_raises_an_error_while_the_binary_run_learns(records):
    live = LiveDoctor(SEED000_CONFIG, num_classes=2)
    for n in range(1, len(records) + 1):
        new, _ = live.update(records[:n])
        assert [f for f in new if f.severity == "error"] == [], (n, [str(f) for f in new])
    assert "stuck_at_chance" not in diagnose(SEED000_SLOW_START[:4], SEED000_CONFIG, classes=2).codes


def test_seed000_slow_start_left_at_chance_would_be_stuck():
    """The must-fire twin: the same four epochs with nothing moving are stuck at chance."""
    flat = [dict(r, train_loss=0.693, val_loss=0.69, train_acc=0.52, val_acc=0.55) for r in SEED000_SLOW_START[:6]]
    config = {**SEED000_CONFIG, "train": {"epochs": 6}}
    assert diagnose(flat, config, classes=2)[0].code == "stuck_at_chance"


# ----------------------------------------------------------------------------- seed 002
def test_seed002_corrected_config_is_judged_on_the_schedule_peak_not_optim_lr():
    for config in (SEED002_NEW_CONFIG, {**SEED002_NEW_CONFIG, "finetune": {}}):
        found = diagnose(SEED002_NEW, config)
        assert "lr_too_low" not in found.codes, [str(f) for f in found]
        assert found.codes[0] == "healthy", [str(f) for f in found]
    # The same records without a config: the LR comes from the logged series (peak 2.4e-4).
    assert "lr_too_low" not in diagnose(SEED002_NEW).codes


def test_seed002_old_config_peaks_at_epoch_1_and_overfits():
    found = diagnose(SEED002_OLD, SEED002_OLD_CONFIG)
    f = found[0]
    assert f.code == "overfitting" and f.evidence["onset_epoch"] == 1, [str(x) for x in found]
    assert "healthy" not in found.codes
    # LR fixes go to the key that sets the peak (OneCycle's max_lr), and down.
    lr_fixes = [x for x in f.fixes if "lr=" in x]
    assert all(x.startswith("schedule.max_lr=") and float(x.split("=")[1]) < 5e-4 for x in lr_fixes)


def test_seed002_overcorrected_config_is_over_regularized_not_healthy():
    found = diagnose(SEED002_OVERCORRECTED, SEED002_OVERCORRECTED_CONFIG)
    assert found.codes[0] in ("over_regularized", "lr_too_low"), [str(f) for f in found]
    f = found[0]
    assert all(not fix.startswith(("model.hidden", "model.channels")) for fix in f.fixes)  # a user model: no width keys


def test_seed002_warning_signs_as_expectations():
    old = diagnose(SEED002_OLD, SEED002_OLD_CONFIG, expect=SEED002_EXPECT)
    assert [m.expectation for m in old.misses] == ["train_loss <= 1.0 at epoch 1", "val_acc does not decrease at epoch 2",
                                                   "train/val accuracy gap < 5 points"]
    assert "not logged" in old.misses[0].reason and "not logged" in old.misses[2].reason  # the document gives no training metrics
    over = diagnose(SEED002_OVERCORRECTED, SEED002_OVERCORRECTED_CONFIG, expect=SEED002_EXPECT)
    assert [m.expectation for m in over.misses] == ["val_acc >= 0.85 at epoch 1", "train_loss <= 1.0 at epoch 1"]
    new = diagnose(SEED002_NEW, SEED002_NEW_CONFIG, expect=SEED002_EXPECT)
    assert new.misses == [], [str(m) for m in new.misses]


# ----------------------------------------------------------------------------- seed 004
@pytest.mark.parametrize("records", [SEED004, SEED004_ACC_ONLY, SEED004_UNLABELLED], ids=["labelled", "acc_only", "from_config"])
def test_seed004_final_phase_without_augmentation_is_the_finding(records):
    found = diagnose(records, SEED004_CONFIG, classes=1000)
    f = next((f for f in found if f.code in ("phase_regression", "overfitting") and f.severity == "warning"), None)
    assert f is not None, [str(x) for x in found]
    assert f.code == "phase_regression" and f.evidence["boundary_epoch"] == 51 and f.evidence["change"] == "augment_off"
    assert "keep training augmentation in the final phase" in f.advice
    assert f.fixes[0] == ("progressive.phases=[{epoch = 1, resolution = 128, augment = true}, "
                          "{epoch = 11, resolution = 224, augment = true}, {epoch = 51, resolution = 256, augment = true}]")
    assert "underfitting" not in found.codes and "healthy" not in found.codes
    assert not any(fix.startswith("model.hidden") for g in found for fix in g.fixes)


def test_seed004_as_a_foreign_log_states_the_fix_in_words():
    found = diagnose(SEED004, classes=1000)
    f = next(f for f in found if f.code == "phase_regression")
    assert f.fixes == [] and f.advice[0] == "keep training augmentation in the final phase"
    assert "underfitting" not in found.codes
