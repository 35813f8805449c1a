"""A run stopped while it was still learning, with the ordinary train/validation gap of a small training set.
Curves from real runs: the 600-image Fashion-MNIST CNN of zoo v2 (benchmarks/doctor_zoo/v2.py, AdamW,
300 validation images), seed 500, rounded to three decimals."""

from __future__ import annotations

from curves import FASHION_600 as FASHION_600_3E3, records

from trainwise.doctor import diagnose

FASHION_600 = {**FASHION_600_3E3, "optim": {"name": "adamw", "lr": 2e-3}}

# 10 epochs at a constant LR of 2e-3: the validation loss at its lowest in the last epoch and still falling,
# training accuracy 0.79 against 0.72 on validation. Trained on (25 epochs), validation reached 0.79-0.81.
STOPPED_EARLY = {
    "train_loss": [2.036, 1.632, 1.378, 1.206, 1.058, 0.946, 0.857, 0.784, 0.724, 0.697],
    "train_acc": [0.31, 0.528, 0.652, 0.715, 0.728, 0.743, 0.76, 0.773, 0.783, 0.793],
    "val_loss": [1.98, 1.546, 1.322, 1.16, 1.091, 0.945, 0.902, 0.928, 0.869, 0.844],
    "val_acc": [0.313, 0.607, 0.677, 0.69, 0.707, 0.753, 0.733, 0.677, 0.713, 0.72],
}
# The same network trained to the end of a 15-epoch cosine schedule at 3e-3 (the zoo's healthy twin).
CONVERGED = {
    "train_loss": [1.955, 1.508, 1.248, 1.073, 0.929, 0.841, 0.775, 0.727, 0.681, 0.656, 0.618, 0.597, 0.6, 0.588, 0.587],
    "train_acc": [0.352, 0.578, 0.653, 0.727, 0.727, 0.75, 0.773, 0.772, 0.79, 0.793, 0.802, 0.808, 0.82, 0.825, 0.817],
    "val_loss": [1.853, 1.477, 1.187, 1.059, 0.964, 0.864, 0.86, 0.797, 0.8, 0.753, 0.736, 0.726, 0.724, 0.715, 0.716],
    "val_acc": [0.427, 0.603, 0.673, 0.677, 0.713, 0.747, 0.73, 0.73, 0.73, 0.74, 0.75, 0.773, 0.757, 0.783, 0.787],
}


def warnings(found):
    return [f for f in found if f.severity != "info"]


def test_a_gap_of_seven_points_with_the_validation_loss_still_falling_is_a_run_stopped_early():
    found = warnings(diagnose(records(**STOPPED_EARLY), FASHION_600))
    assert found and found[0].code == "underfitting" and found[0].evidence["still_improving"] == 1, [str(f) for f in found]
    assert found[0].evidence["curve"] == "val_loss" and found[0].evidence["best_epoch"] == 10
    assert any(f.startswith("train.epochs=") for f in found[0].fixes), found[0].fixes


def test_without_a_validation_loss_the_same_gap_is_not_read_as_still_learning():
    accuracy_only = {k: v for k, v in STOPPED_EARLY.items() if k != "val_loss"}
    assert not [f for f in warnings(diagnose(records(**accuracy_only), FASHION_600)) if f.code == "underfitting"]


def test_the_converged_twin_is_healthy():
    cfg = {**FASHION_600, "optim": {"name": "adamw", "lr": 3e-3}, "schedule": {"name": "cosine"}, "train": {"epochs": 15}}
    assert warnings(diagnose(records(**CONVERGED), cfg)) == []
