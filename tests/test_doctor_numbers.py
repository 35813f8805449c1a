"""The numbers a finding quotes can be found on the curves the user sees: smoothed levels say that they are medians."""

from __future__ import annotations

import numpy as np

from trainwise.doctor import diagnose
from trainwise.doctor.rules.common import MEDIANS_NOTE


def test_overfitting_quotes_three_epoch_medians_and_says_so():
    val = [1.6, 1.1, 0.8, 0.62, 0.55, 0.57, 0.63, 0.70, 0.76, 0.83, 0.90, 1.10, 0.96]
    train = [1.9, 1.2, 0.8, 0.55, 0.4, 0.3, 0.22, 0.16, 0.12, 0.09, 0.07, 0.02, 0.06]  # the last epochs jump about
    records = [{"epoch": i + 1, "train_loss": t, "val_loss": v} for i, (t, v) in enumerate(zip(train, val))]
    found = diagnose(records, {"data": {"name": "digits"}})[0]
    assert found.code == "overfitting" and MEDIANS_NOTE in found.message
    end_train = float(np.median(train[-3:]))  # 0.06, the median of 0.07, 0.02, 0.06
    assert f"-> {end_train:.3g})" in found.message and found.evidence["end_train_loss"] == end_train
    assert found.evidence["end_val_loss"] == float(np.median(val[-3:]))


def test_stuck_at_chance_says_its_level_is_a_median():
    records = [{"epoch": i + 1, "train_loss": 2.30 + 0.01 * (i % 3), "val_loss": 2.31, "val_acc": 0.1} for i in range(10)]
    found = next(f for f in diagnose(records, {"data": {"name": "digits"}}) if f.code == "stuck_at_chance")
    assert MEDIANS_NOTE in found.message
