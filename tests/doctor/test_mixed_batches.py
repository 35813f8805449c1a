"""Under MixUp/CutMix the training numbers are measured on blended batches; the doctor reads the clean
evaluation where they mislead. Curves from real runs (the 600-image Fashion-MNIST CNN of zoo v2,
benchmarks/doctor_zoo/v2.py, development seed 1), rounded to three decimals."""

from __future__ import annotations

from curves import FASHION_600, records

from trainwise.doctor import diagnose

# CutMix alpha 1.0 alone, 10 epochs: training loss on blended batches flat at ~1.5 over the last four epochs,
# while validation fell from 1.07 to 0.92 and validation accuracy reached 0.76.
CUTMIX_1 = {
    "train_loss": [2.201, 1.997, 1.827, 1.772, 1.682, 1.607, 1.512, 1.521, 1.49, 1.52],
    "train_acc": [0.205, 0.348, 0.45, 0.44, 0.48, 0.58, 0.627, 0.613, 0.632, 0.583],
    "val_loss": [2.112, 1.746, 1.442, 1.28, 1.167, 1.091, 1.069, 0.992, 0.917, 0.935],
    "val_acc": [0.347, 0.423, 0.55, 0.593, 0.68, 0.697, 0.73, 0.717, 0.72, 0.763],
}
# MixUp 1.0 + dropout 0.5 + label smoothing 0.3, same seed and data: validation loss crawls 2.27 -> 2.06.
MIXUP_STACK = {
    "train_loss": [2.415, 2.346, 2.285, 2.297, 2.284, 2.267, 2.26, 2.256, 2.246, 2.235],
    "train_acc": [0.122, 0.105, 0.177, 0.168, 0.152, 0.198, 0.167, 0.202, 0.202, 0.237],
    "val_loss": [2.274, 2.243, 2.211, 2.187, 2.168, 2.149, 2.126, 2.088, 2.064, 2.057],
    "val_acc": [0.18, 0.29, 0.363, 0.37, 0.397, 0.397, 0.4, 0.417, 0.433, 0.43],
}


def serious(found) -> list[str]:
    return [f.code for f in found if f.severity != "info"]


def test_cutmix_whose_validation_still_falls_is_not_over_regularized():
    cfg = {**FASHION_600, "mixup": {"cutmix_alpha": 1.0}}
    assert serious(diagnose(records(**CUTMIX_1), cfg)) == []


def test_a_stack_of_strong_regularisers_under_mixup_is_still_over_regularized():
    cfg = {**FASHION_600, "mixup": {"mixup_alpha": 1.0}, "model": {**FASHION_600["model"], "dropout": 0.5},
           "regularization": {"label_smoothing": 0.3}}
    f = diagnose(records(**MIXUP_STACK), cfg)[0]
    assert f.code == "over_regularized" and "mixup alpha 1" in f.evidence["regularizers"]


def test_the_same_flat_training_loss_without_blended_batches_is_read_from_training():
    # Without MixUp/CutMix the training loss is the model's own: flat at 1.5 with dropout 0.5 is over-regularised,
    # whatever validation does.
    cfg = {**FASHION_600, "model": {**FASHION_600["model"], "dropout": 0.5}}
    assert "over_regularized" in serious(diagnose(records(**CUTMIX_1), cfg))
