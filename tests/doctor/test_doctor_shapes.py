"""Hand-written histories for shapes that real runs make too rarely to rely on: one dip, a resolution
change, monitor statistics without (and with) a bad outcome, collapsed predictions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from curves import decaying, records

from trainwise.doctor import CODES, Finding, diagnose
from trainwise.errors import UserError

DIGITS = {"data": {"name": "digits"}}


def codes(found) -> list[str]:
    return [f.code for f in found]


def serious(found) -> list[str]:
    return [f.code for f in found if f.severity != "info"]


# ----------------------------------------------------------------------------- trends, not epochs
def test_one_jump_then_seven_epochs_of_improvement_is_healthy():
    val = [1.6, 1.1, 0.8, 0.62, 0.55, 0.95, 0.52, 0.48, 0.45, 0.42, 0.40, 0.38, 0.37]
    train = decaying(1.9, 0.3, len(val))
    found = diagnose(records(train_loss=train, val_loss=val), DIGITS)
    assert serious(found) == []
    assert codes(found)[0] == "healthy"
    dip = next(f for f in found if f.code == "transient_dip")
    assert dip.severity == "info" and dip.epochs == (6, 6)


def test_same_jump_that_stays_is_overfitting_with_its_onset():
    val = [1.6, 1.1, 0.8, 0.62, 0.55, 0.57, 0.63, 0.70, 0.76, 0.83, 0.90, 0.96, 1.02]
    train = decaying(1.9, 0.05, len(val))
    found = diagnose(records(train_loss=train, val_loss=val), DIGITS)
    f = found[0]
    assert f.code == "overfitting" and f.severity == "warning"
    assert f.evidence["onset_epoch"] == 5 and f.epochs == (5, 13)
    assert "transient_dip" not in codes(found)


def test_overfitting_needs_training_to_keep_improving():
    """Both curves rising is not overfitting (it is the LR's or the data's problem)."""
    val = [1.6, 1.1, 0.8, 0.62, 0.55, 0.57, 0.63, 0.70, 0.76, 0.83, 0.90, 0.96, 1.02]
    train = [1.9, 1.2, 0.9, 0.7, 0.6, 0.62, 0.66, 0.71, 0.75, 0.8, 0.86, 0.9, 0.95]
    assert "overfitting" not in codes(diagnose(records(train_loss=train, val_loss=val), DIGITS))


def test_overfitting_from_accuracy_when_no_loss_is_logged():
    val_acc = [0.5, 0.7, 0.8, 0.85, 0.86, 0.85, 0.83, 0.82, 0.81, 0.80, 0.79]
    train_acc = [0.5, 0.72, 0.83, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.99, 1.0]
    f = diagnose(records(train_acc=train_acc, val_acc=val_acc))[0]
    assert f.code == "overfitting" and f.evidence["onset_epoch"] == 5


def test_overfitting_under_early_stopping_is_information():
    val = [1.6, 1.1, 0.8, 0.62, 0.55, 0.57, 0.63, 0.70, 0.76, 0.83]
    train = decaying(1.9, 0.05, len(val))
    config = DIGITS | {"early_stopping": {"enabled": True}}
    found = diagnose(records(train_loss=train, val_loss=val), config)
    assert codes(found) == ["healthy", "overfitting"] and found[1].severity == "info"


# ----------------------------------------------------------------------------- val above train
def test_val_above_train_with_dropout_is_explained_information():
    n = 12
    rec = records(train_acc=[0.5 + 0.03 * i for i in range(n)], val_acc=[0.6 + 0.03 * i + 0.06 for i in range(n)],
                  train_loss=decaying(2.0, 0.5, n), val_loss=decaying(1.8, 0.3, n))
    # Flat but not bit-identical: an accuracy at one value at every epoch is a constant answer (prediction_collapse).
    rec_flat = [dict(r, train_acc=0.8 + 0.004 * (i % 2), val_acc=0.88 - 0.004 * (i % 2)) for i, r in enumerate(rec)]
    found = diagnose(rec_flat, DIGITS | {"model": {"dropout": 0.3}})
    f = next(f for f in found if f.code == "val_above_train")
    assert f.severity == "info" and "dropout 0.3" in f.message and codes(found)[0] == "healthy"


def test_large_unexplained_val_above_train_is_a_warning():
    n = 12
    rec = [dict(r, train_acc=0.8, val_acc=0.9) for r in records(train_loss=decaying(2.0, 0.5, n), val_loss=decaying(1.8, 0.4, n))]
    f = next(f for f in diagnose(rec, DIGITS) if f.code == "val_above_train")
    assert f.severity == "warning" and "duplicated" in f.message


def test_val_above_train_from_epoch_averaging_lag_is_not_reported():
    n = 10
    train_acc = [0.5 + 0.04 * i for i in range(n)]
    val_acc = [a + 0.02 for a in train_acc]  # the epoch mean trails by about half an epoch of progress
    found = diagnose(records(train_acc=train_acc, val_acc=val_acc, train_loss=decaying(2, 0.4, n)), DIGITS)
    assert "val_above_train" not in codes(found)


# ----------------------------------------------------------------------------- chance
def test_binary_at_chance_with_imbalanced_prior_inferred_from_the_loss():
    # a model that learned only the prior p = 0.7: loss H(0.7) = 0.611, accuracy 0.7
    n = 10
    rec = records(train_loss=[0.62] * n, val_loss=[0.611 + 0.002 * (i % 2) for i in range(n)], val_acc=[0.70] * n, train_acc=[0.7] * n)
    f = diagnose(rec, num_classes=2)[0]
    assert f.code == "stuck_at_chance" and f.severity == "error"
    assert abs(f.evidence["chance_accuracy"] - 0.7) < 0.01
    assert "LR far off" in f.message or "labels" in f.message


def test_binary_near_ln2_but_accurate_is_not_stuck():
    n = 10
    wobble = [0.9 + 0.004 * (i % 2) for i in range(n)]  # not bit-identical: that would be a constant answer
    rec = records(train_loss=decaying(0.69, 0.60, n), val_loss=decaying(0.69, 0.6, n), val_acc=wobble, train_acc=wobble)
    assert "stuck_at_chance" not in codes(diagnose(rec, num_classes=2))


def test_without_the_number_of_classes_a_flat_initial_loss_at_ln_k_states_k_as_an_assumption():
    n = 10
    rec = records(train_loss=[2.30] * n, val_loss=[2.30] * n, val_acc=[0.1] * n)
    f = diagnose(rec)[0]
    assert f.code == "stuck_at_chance" and "K = 10 classes assumed" in f.evidence["assumptions"]
    assert "assumptions" not in diagnose(rec, num_classes=10)[0].evidence
    # A learning run's first epoch is already below ln K: no K is guessed, the chance rules stay silent.
    learning = records(train_loss=decaying(1.9, 0.2, n), val_loss=decaying(1.7, 0.3, n))
    assert all("assumptions" not in f.evidence for f in diagnose(learning))


# ----------------------------------------------------------------------------- over-regularisation vs LR
def _stalled_fit() -> list[dict]:
    n = 15
    return records(train_loss=decaying(2.3, 1.3, n, 6), val_loss=decaying(2.3, 1.25, n, 6),
                   train_acc=decaying(0.1, 0.62, n, 6), val_acc=decaying(0.1, 0.64, n, 6))


def test_same_curves_read_as_over_regularized_or_not_by_the_config():
    strong = diagnose(_stalled_fit(), DIGITS | {"model": {"dropout": 0.6}, "optim": {"weight_decay": 1.0}})
    assert codes(strong)[0] == "over_regularized"
    assert "dropout 0.6" in strong[0].message and "weight decay 1" in strong[0].message
    assert set(strong[0].fixes) == {"model.dropout=0.1", "optim.weight_decay=0.05"}
    plain = diagnose(_stalled_fit(), DIGITS)
    assert "over_regularized" not in codes(plain) and "underfitting" in codes(plain)


def test_slow_steady_descent_with_a_tiny_lr_is_lr_too_low_not_over_regularized():
    n = 15
    rec = records(train_loss=list(np.linspace(2.3, 1.9, n)), val_loss=list(np.linspace(2.29, 1.91, n)),
                  train_acc=list(np.linspace(0.1, 0.45, n)), val_acc=list(np.linspace(0.1, 0.44, n)))
    found = diagnose(rec, DIGITS | {"optim": {"lr": 1e-5}, "model": {"dropout": 0.6}})
    assert codes(found)[0] == "lr_too_low" and "over_regularized" not in codes(found)
    assert found[0].fixes[0] == "optim.lr=1e-3"  # 10x would still be below AdamW's range: its usual starting point


def test_label_smoothing_floor_is_not_underfitting():
    n = 15
    floor = 1.876  # entropy of targets smoothed by 0.6 over 10 classes
    rec = records(train_loss=decaying(2.3, floor + 0.02, n), val_loss=decaying(2.0, 0.9, n),
                  train_acc=decaying(0.3, 0.99, n), val_acc=decaying(0.5, 0.98, n))
    found = diagnose(rec, DIGITS | {"regularization": {"label_smoothing": 0.6}})
    assert serious(found) == []


# ----------------------------------------------------------------------------- plateau
def test_plateau_far_from_converged_with_constant_lr():
    n = 20
    train = decaying(2.0, 0.9, 8, 8) + [0.9 + 0.002 * (i % 2) for i in range(12)]
    val = decaying(1.9, 0.95, 8, 8) + [0.95 + 0.003 * (i % 2) for i in range(12)]
    rec = records(train_loss=train, val_loss=val, train_acc=[0.85] * n, val_acc=[0.83] * n, lr=[1e-3] * n)
    found = diagnose(rec, DIGITS)
    f = next(f for f in found if f.code == "plateau")
    assert f.fixes[0] == "schedule.name=cosine"
    assert "plateau" not in codes(diagnose([dict(r, train_acc=0.99, val_acc=0.97) for r in rec], DIGITS))


# ----------------------------------------------------------------------------- divergence
def test_nan_loss_is_divergence_and_subsumes_the_rest():
    train = [2.0, 1.4, 1.1, 3.5, 40.0, float("nan"), float("nan"), float("nan")]
    rec = records(train_loss=train, val_loss=[1.9, 1.3, 1.2, 4.0, 60.0, "nan", "nan", "nan"], val_acc=[0.4, 0.6, 0.6, 0.3, 0.1, 0.1, 0.1, 0.1])
    found = diagnose(rec, DIGITS | {"optim": {"lr": 0.5}})
    assert codes(found) == ["diverged"]
    assert found[0].epochs == (5, 8) and found[0].evidence["first_nonfinite_epoch"] == 6
    assert found[0].fixes[0] == "optim.lr=1e-3"  # a tenth of 0.5 is still far above AdamW's range


def test_first_epoch_spike_that_recovers_is_not_divergence():
    rec = records(train_loss=[60.0, 0.9, 0.6, 0.45, 0.4, 0.35], val_loss=[0.9, 0.7, 0.5, 0.45, 0.4, 0.38])
    assert "diverged" not in codes(diagnose(rec, num_classes=10))


def test_guarded_nan_steps_are_a_warning():
    rec = records(train_loss=decaying(2.0, 0.3, 8), val_loss=decaying(1.9, 0.35, 8), nonfinite_steps=[0, 0, 3, 0, 0, 0, 0, 0])
    rec[2]["event"] = "nan_rollback"
    f = diagnose(rec, DIGITS)[0]
    assert (f.code, f.severity, f.epochs) == ("diverged", "warning", (3, 3))
    assert f.evidence["nonfinite_steps"] == 3 and "rolled back" in f.message


@pytest.mark.parametrize("model, lr, first_fix", [
    ({"hidden": [64] * 4}, 0.05, "model.batch_norm=true"),  # deep, unnormalised, LR in range: the scale compounds
    ({"hidden": [64] * 4, "batch_norm": True}, 0.05, "train.grad_clip_norm=1.0"),  # batch norm is there already
    ({"hidden": [64] * 4}, 2.0, "train.grad_clip_norm=1.0"),  # an LR above SGD's range is the likelier cause
])
def test_guarded_nan_steps_in_a_deep_unnormalised_net_try_batch_norm_first(model, lr, first_fix):
    rec = records(train_loss=decaying(2.0, 0.3, 8), val_loss=decaying(1.9, 0.35, 8), nonfinite_steps=[1, 0, 0, 0, 0, 0, 0, 0])
    cfg = DIGITS | {"model": {"name": "mlp", **model}, "optim": {"name": "sgd", "lr": lr}}
    f = next(f for f in diagnose(rec, cfg) if f.code == "diverged")
    assert f.fixes[0] == first_fix, f.fixes


def test_oscillating_loss_without_lr_evidence_is_unstable_training():
    train = [2.0, 1.2, 1.5, 0.9, 1.3, 0.8, 1.2, 0.7, 1.1, 0.75, 1.05, 0.7]
    found = diagnose(records(train_loss=train, val_loss=[t + 0.1 for t in train]), num_classes=10)
    assert codes(found)[0] == "unstable_training"
    found = diagnose(records(train_loss=train, val_loss=[t + 0.1 for t in train]), DIGITS | {"optim": {"lr": 0.1}})
    assert codes(found)[0] == "lr_too_high" and "unstable_training" not in codes(found)


def test_smooth_underfit_with_dead_units_at_a_high_lr_is_lr_too_high_not_underfitting():
    """Adam at 0.1 kills most ReLUs early and fits slowly with the rest: no swings, but the LR is the cause."""
    n = 20
    base = records(train_loss=decaying(2.2, 1.3, n), val_loss=decaying(2.1, 1.3, n),
                   train_acc=decaying(0.2, 0.55, n), val_acc=decaying(0.2, 0.56, n), **{"dead_frac/net.0": [0.9] * n})
    high = DIGITS | {"optim": {"name": "adam", "lr": 0.1}}
    found = diagnose(base, high)
    assert serious(found)[0] == "lr_too_high"
    assert {"underfitting", "plateau"}.isdisjoint(codes(found))
    assert "optim.lr=1e-3" in found[0].fixes
    # Same curves at the usual LR, or at the high LR without a monitor showing damage: underfitting.
    assert "lr_too_high" not in codes(diagnose(base, DIGITS | {"optim": {"name": "adam", "lr": 1e-3}}))
    alive = [{k: (0.1 if k.startswith("dead_frac") else v) for k, v in r.items()} for r in base]
    assert "underfitting" in codes(diagnose(alive, high)) and "lr_too_high" not in codes(diagnose(alive, high))


def test_training_wiggles_that_validation_does_not_feel_are_noise():
    """A deep SGD net with batch norm near convergence: loss 0.05 -> 0.13 -> 0.07, accuracy steady at 97 %."""
    train = [1.67, 0.63, 0.45, 0.31, 0.25, 0.18, 0.16, 0.098, 0.078, 0.128, 0.12, 0.092, 0.098, 0.052, 0.131, 0.066, 0.071, 0.057, 0.06, 0.093]
    n = len(train)
    calm = records(train_loss=train, val_loss=[max(0.12, t * 0.9 + 0.08) for t in train], val_acc=[0.96 + 0.001 * (i % 3) for i in range(n)],
                   train_acc=[0.97] * n)
    assert serious(diagnose(calm, DIGITS)) == []
    swinging = [dict(r, val_acc=0.96 - 0.05 * (i % 2)) for i, r in enumerate(calm)]
    assert "unstable_training" in codes(diagnose(swinging, DIGITS))


def test_a_run_getting_worse_without_overfitting_is_unstable():
    val = [0.37, 0.54, 0.72, 0.53, 0.63, 0.72, 0.48, 0.56, 0.58, 0.66, 0.55, 0.68, 0.8, 0.81, 0.78]
    train = [1.19, 0.45, 0.5, 0.51, 0.51, 0.55, 0.52, 0.55, 0.6, 0.61, 0.62, 0.66, 0.65, 0.6, 0.66]
    acc = [0.89, 0.85, 0.78, 0.81, 0.8, 0.72, 0.83, 0.82, 0.78, 0.8, 0.83, 0.81, 0.75, 0.71, 0.77]
    found = diagnose(records(train_loss=train, val_loss=val, val_acc=acc, train_acc=[0.8] * 15), DIGITS | {"optim": {"name": "sgd", "lr": 0.1}})
    f = next(f for f in found if f.code == "unstable_training")
    assert f.evidence["best_val_epoch"] == 1 and "not overfitting" in f.message
    assert "overfitting" not in codes(found)


# ----------------------------------------------------------------------------- gradients and activations
def _grad_records(loss: list[float], first: list[float], last: list[float], **extra: list) -> list[dict]:
    rec = records(train_loss=loss, val_loss=[x + 0.05 for x in loss], **extra)
    for r, g0, g1 in zip(rec, first, last):
        r["grad_norm/net.0"], r["grad_norm/net.4"], r["grad_norm"] = g0, g1, math.hypot(g0, g1)
    return rec


def test_vanishing_gradient_ratio_needs_a_symptom():
    n = 10
    tiny, normal = [1e-7] * n, [0.3] * n
    good = _grad_records(decaying(2.3, 0.1, n), tiny, normal)
    assert serious(diagnose(good, DIGITS)) == []  # same ratio, healthy loss: silent
    stuck = _grad_records([2.30 + 0.003 * (i % 2) for i in range(n)], tiny, normal)
    assert "vanishing_gradients" in codes(diagnose(stuck, DIGITS))


def test_exploding_gradients_with_an_unstable_loss():
    n = 10
    loss = [2.0, 1.5, 1.8, 1.2, 1.9, 1.3, 2.2, 1.4, 2.5, 1.6]
    grow = [0.5 * 2.0**i for i in range(n)]
    found = diagnose(_grad_records(loss, grow, grow), num_classes=10)
    f = next(f for f in found if f.code == "exploding_gradients")
    assert f.evidence["growth"] >= 10 and f.fixes == [] and f.advice[0] == "gradient-norm clipping 1.0"  # a log without a trainwise config: words
    assert "exploding_gradients" not in codes(diagnose(_grad_records(decaying(2.3, 0.1, n), grow, grow), num_classes=10))


@pytest.mark.parametrize(("key", "code"), [("dead_frac/net.0", "dead_units"), ("saturated_frac/net.0", "saturated_units")])
def test_activation_statistics_need_a_symptom(key, code):
    n = 10
    healthy = records(train_loss=decaying(2.3, 0.1, n), val_loss=decaying(2.2, 0.15, n), **{key: [0.8] * n})
    assert code not in codes(diagnose(healthy, DIGITS))
    stuck = records(train_loss=[2.30] * n, val_loss=[2.31] * n, **{key: [0.8] * n})
    f = next(f for f in diagnose(stuck, DIGITS) if f.code == code)
    assert f.evidence["worst_layer"] == "net.0" and f.evidence["worst_share"] == 0.8


# ----------------------------------------------------------------------------- phases
def test_regression_at_a_resolution_change_names_the_boundary():
    val = [1.5, 1.0, 0.7, 0.55, 0.5, 0.48, 0.47, 0.62, 0.64, 0.63, 0.62, 0.63, 0.64]
    phase = ["res16"] * 7 + ["res32"] * 6
    f = diagnose(records(train_loss=decaying(1.8, 0.3, 13), val_loss=val, phase=phase), DIGITS)[0]
    assert f.code == "phase_regression" and f.epochs == (8, 13)
    assert (f.evidence["from_phase"], f.evidence["to_phase"], f.evidence["boundary_epoch"]) == ("res16", "res32", 8)
    assert f.evidence["change"] == "resolution" and f.fixes == ["optim.lr=3e-4"]


@pytest.mark.parametrize(("old", "new", "kind"), [
    ("res16+aug|head", "res16+aug|all", "unfreeze"),
    ("res16+aug", "res28+aug", "resolution"),
    ("res28+aug", "res28-noaug", "augment_off"),
    ("plain", "mixup", "augment_on"),
    ("run", "resumed", "resume"),
    ("a", "b", "other"),
])
def test_phase_changes_are_read_from_the_labels(old, new, kind):
    from trainwise.doctor.rules.phases import change_kind

    assert change_kind(old, new, lr_jump=1.0) == kind
    assert change_kind(old, new, lr_jump=10.0) == ("resume" if kind == "resume" else "lr")


def test_brief_turn_at_a_boundary_is_a_transient_dip():
    val = [1.5, 1.0, 0.7, 0.55, 0.5, 0.48, 0.47, 0.60, 0.47, 0.45, 0.44, 0.43, 0.42]
    phase = ["frozen"] * 7 + ["unfrozen"] * 6
    found = diagnose(records(train_loss=decaying(1.8, 0.3, 13), val_loss=val, phase=phase), DIGITS)
    assert serious(found) == [] and "transient_dip" in codes(found)


# Real zoo runs (tests/doctor/data/zoo_phase_runs.json says which): a backbone unfrozen at the head's LR,
# whose validation loss went 0.649 -> 4.37 at the boundary (above epoch 1's 1.04) and then recovered.
ZOO_RUNS = json.loads((Path(__file__).parent / "data" / "zoo_phase_runs.json").read_text())


def zoo_run(name: str) -> dict:
    return {k: v for k, v in ZOO_RUNS[name].items() if k != "about"}


UNFREEZE_HOT = zoo_run("unfreeze_hot_seed0")
UNFREEZE_CFG = {"finetune": {"init_from": "pre", "freeze": ["*"], "unfreeze_epoch": 4}, "optim": {"name": "adamw", "lr": 0.05}}


def test_a_boundary_that_undoes_the_run_is_a_phase_regression_even_when_it_recovers():
    found = diagnose(records(**UNFREEZE_HOT), UNFREEZE_CFG)
    f = found[0]
    assert f.code == "phase_regression" and f.severity == "warning" and f.epochs == (4, 4)
    assert (f.evidence["change"], f.evidence["boundary_epoch"], f.evidence["first_epoch_value"]) == ("unfreeze", 4, 1.041)
    assert "much smaller LR" in f.message and any(fix.startswith("finetune.layer_decay") for fix in f.fixes)
    assert "unstable_training" not in codes(found) and "healthy" not in codes(found)


def test_a_boundary_spike_that_stays_under_the_first_epochs_loss_is_a_dip():
    # The same run with a spike to 0.95 (1.5x the best, under epoch 1's 1.04): the boundary cost nothing.
    calm = dict(UNFREEZE_HOT, val_loss=[1.04, 0.83, 0.649, 0.95, 0.541, 0.508, 0.393, 0.245],
                val_acc=[0.613, 0.673, 0.78, 0.70, 0.847, 0.853, 0.893, 0.927])
    found = diagnose(records(**calm), UNFREEZE_CFG)
    assert serious(found) == [] and "transient_dip" in codes(found)


def test_a_phase_that_never_regains_the_old_best_is_a_phase_regression():
    val = [1.5, 1.0, 0.7, 0.55, 0.5, 0.48, 0.47, 0.56, 0.55, 0.54, 0.52, 0.50, 0.49]  # 3 of 5 >= 10 % worse, never < 0.47
    phase = ["res16"] * 7 + ["res32"] * 6
    f = diagnose(records(train_loss=decaying(1.8, 0.3, 13), val_loss=val, phase=phase), DIGITS)[0]
    assert f.code == "phase_regression" and f.epochs == (8, 13) and "best epoch" in f.message
    regained = val[:11] + [0.46, 0.45]
    assert serious(diagnose(records(train_loss=decaying(1.8, 0.3, 13), val_loss=regained, phase=phase), DIGITS)) == []


def test_resume_regression_says_what_was_lost():
    val = [1.5, 1.0, 0.7, 0.55, 0.5, 0.9, 0.85, 0.8, 0.78, 0.77]
    phase = ["run"] * 5 + ["resume"] * 5
    f = diagnose(records(train_loss=decaying(1.8, 0.3, 10), val_loss=val, phase=phase), DIGITS)[0]
    assert f.code == "phase_regression" and "optimizer or scheduler state" in f.message and f.fixes == []


# ----------------------------------------------------------------------------- predictions
def _fine_curves(n: int = 8) -> list[dict]:
    return records(train_loss=decaying(1.0, 0.3, n), val_loss=decaying(1.0, 0.35, n), val_acc=[0.8] * n)


def test_collapse_from_a_confusion_matrix():
    conf = [[5, 95, 0], [0, 100, 0], [1, 99, 0]]
    f = diagnose(_fine_curves(), predictions=conf)[0]
    assert (f.code, f.severity, f.evidence["top_class"]) == ("prediction_collapse", "error", 1)


def test_classes_never_recovered_are_a_partial_collapse():
    conf = [[90, 10, 0], [5, 95, 0], [40, 60, 0]]
    f = diagnose(_fine_curves(), predictions=conf)[0]
    assert (f.code, f.severity, f.evidence["starved_classes"]) == ("prediction_collapse", "warning", "2")


def test_precision_one_recall_zero_is_collapse():
    pred = {"precision": [0.5, 1.0, 0.52], "recall": [0.97, 0.04, 0.9]}
    f = diagnose(_fine_curves(), predictions=pred)[0]
    assert f.code == "prediction_collapse" and f.evidence["rarely_predicted"] == "1"


def test_a_summary_test_block_is_accepted_as_predictions():
    block = {"acc": 0.9, "precision": 0.9, "recall": 0.9, "per_class_precision": [0.5, 1.0, 0.52],
             "per_class_recall": [0.97, 0.04, 0.9]}
    f = diagnose(_fine_curves(), predictions=block)[0]
    assert f.code == "prediction_collapse" and f.evidence["rarely_predicted"] == "1"


def test_binary_history_predicting_everything_positive():
    n = 8
    rec = records(train_loss=decaying(0.8, 0.55, n), val_loss=[0.62] * n, val_acc=[0.64] * n, val_precision=[0.64] * n, val_recall=[1.0] * n)
    f = next(f for f in diagnose(rec, num_classes=2) if f.code == "prediction_collapse")
    assert "every sample" in f.message


def test_balanced_confusion_is_not_collapse():
    assert "prediction_collapse" not in codes(diagnose(_fine_curves(), predictions=[[80, 20], [15, 85]]))


# ----------------------------------------------------------------------------- contract
def test_findings_serialise_and_reject_unknown_codes():
    found = diagnose(records(train_loss=[2.0, float("nan")], val_loss=[1.9, "inf"]), DIGITS)
    data = json.loads(json.dumps([f.to_dict() for f in found]))
    assert data[0]["code"] in CODES and Finding.from_dict(data[0]) == found[0]
    with pytest.raises(ValueError, match="unknown finding code"):
        Finding("overfit", "warning", (1, 2), {}, "", [])
    with pytest.raises(ValueError, match="severity"):
        Finding("overfitting", "fatal", (1, 2), {}, "", [])


def test_ranking_puts_errors_first_and_healthy_only_alone():
    rec = records(train_loss=[2.3] * 10, val_loss=[2.3] * 10, val_acc=[0.1] * 10, **{"dead_frac/net.0": [0.9] * 10})
    found = diagnose(rec, DIGITS)
    ranks = [("info", "warning", "error").index(f.severity) for f in found]
    assert ranks == sorted(ranks, reverse=True) and "healthy" not in codes(found)


def test_empty_or_odd_sources_are_user_errors():
    with pytest.raises(UserError, match="nothing to diagnose"):
        diagnose([])
    with pytest.raises(UserError, match="cannot diagnose"):
        diagnose(42)  # type: ignore[arg-type]


def test_one_epoch_is_too_short_to_judge_not_healthy():
    found = diagnose(records(train_loss=[2.0], val_loss=[1.9]), DIGITS)
    assert codes(found) == ["too_short"] and "too few to judge" in found[0].message
    assert codes(diagnose(records(train_loss=[2.0, 1.5, 1.2, 1.0], val_loss=[1.9, 1.4, 1.2, 1.1]), DIGITS)) == ["healthy"]


def test_lr_fixes_move_an_lr_far_out_of_range_to_the_usual_start_and_keep_in_range_ones_relative():
    from trainwise.doctor import fixes
    from trainwise.doctor.context import Context

    def fix(name: str, lr: float, factor: float) -> str:
        ctx = Context(records(train_loss=[1.0, 0.9, 0.8]), {"optim": {"name": name, "lr": lr}})
        return fixes.lr(ctx, factor, 1e-3)

    assert fix("adamw", 5.0, 0.1) == "optim.lr=1e-3"  # not 0.5
    assert fix("adamw", 5e-3, 0.1) == "optim.lr=5e-4"  # inside the range: a tenth of it
    assert fix("sgd", 1e-6, 10.0) == "optim.lr=0.05"
    assert fix("sgd", 0.01, 10.0) == "optim.lr=0.1"


# A real run: Fashion-MNIST, 1,500 training images, the shipped CNN without dropout or schedule, 30 epochs
# (trainwise train configs/fashion_mnist_cnn.toml --set data.train_subset=1500 --set train.epochs=30
#  --set early_stopping.enabled=false --set schedule.name=none --set model.dropout=0.0), rounded.
MEMORISED = {
    "train_loss": [1.254, 0.715, 0.555, 0.486, 0.426, 0.369, 0.321, 0.29, 0.255, 0.202, 0.194, 0.194, 0.15, 0.113, 0.108, 0.09,
                   0.062, 0.079, 0.052, 0.033, 0.024, 0.018, 0.015, 0.012, 0.01, 0.008, 0.007, 0.006, 0.006, 0.005],
    "train_acc": [0.609, 0.757, 0.798, 0.815, 0.855, 0.875, 0.893, 0.909, 0.913, 0.942, 0.939, 0.939, 0.956, 0.97, 0.972, 0.976,
                  0.988, 0.981, 0.991, 0.997, 0.999, 0.999, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
    "val_loss": [0.962, 0.831, 0.641, 0.658, 0.936, 0.537, 0.609, 0.709, 0.775, 0.857, 0.59, 0.777, 0.59, 0.656, 0.735, 0.635,
                 0.929, 0.578, 0.448, 0.52, 0.642, 0.566, 0.499, 0.65, 0.502, 0.618, 0.51, 0.528, 0.529, 0.619],
    "val_acc": [0.693, 0.685, 0.773, 0.76, 0.69, 0.8, 0.772, 0.776, 0.722, 0.713, 0.809, 0.767, 0.806, 0.799, 0.787, 0.796, 0.735,
                0.819, 0.851, 0.838, 0.813, 0.831, 0.846, 0.818, 0.848, 0.829, 0.851, 0.847, 0.849, 0.828],
}
FASHION = {"data": {"name": "fashion_mnist"}, "optim": {"name": "adamw", "lr": 3e-3}, "early_stopping": {"enabled": True}}


def test_a_memorised_training_set_far_above_validation_is_overfitting_without_an_upturn():
    # Validation loss is noisy but no worse at the end than at epoch 20, so the trend rule stays quiet;
    # training accuracy 1.000 against 0.85 is still the run's problem, and early stopping does not fix it.
    found = diagnose(records(**MEMORISED), FASHION)
    f = found[0]
    assert f.code == "overfitting" and f.severity == "warning"
    assert f.epochs == (19, 30) and f.evidence["gap"] > 0.14
    assert f.fixes[0].startswith("optim.weight_decay=") and "early_stopping.enabled=true" not in f.fixes


def test_a_small_gap_at_full_training_accuracy_is_healthy():
    acc = MEMORISED["train_acc"]
    close = [min(a, 0.95) for a in acc]  # validation within 5 points of a memorised training set
    found = diagnose(records(train_loss=decaying(1.2, 0.02, 30), val_loss=decaying(1.1, 0.15, 30), train_acc=acc, val_acc=close), FASHION)
    assert serious(found) == []


# ----------------------------------------------------------------------------- coverage of the gaps between rules
def test_accuracy_frozen_at_the_majority_share_is_a_collapse():
    n = 10
    rec = records(train_loss=decaying(0.7, 0.62, n), val_loss=decaying(0.69, 0.655, n), val_acc=[0.55, 0.6] + [0.627] * 8,
                  train_acc=[0.6] * n)
    f = next(f for f in diagnose(rec, num_classes=2) if f.code == "prediction_collapse")
    assert f.severity == "error" and f.evidence["epochs_frozen"] == 8 and f.epochs == (3, 10)
    # A converged model that repeats its accuracy has a loss far below what a constant predictor can reach.
    converged = records(train_loss=decaying(0.6, 0.05, n), val_loss=decaying(0.5, 0.09, n), val_acc=[0.9, 0.93] + [0.9649] * 8)
    assert "prediction_collapse" not in codes(diagnose(converged, num_classes=2))


def test_a_spike_in_both_curves_is_instability_not_noise():
    val = [1.6, 1.1, 0.8, 0.62, 0.55, 0.95, 0.52, 0.48, 0.45, 0.42, 0.40, 0.38, 0.37]
    train = decaying(1.9, 0.3, len(val))
    broken = list(train)
    broken[5] = broken[4] * 1.8  # the training loss broke in the same epoch
    found = diagnose(records(train_loss=broken, val_loss=val), DIGITS)
    f = found[0]
    assert (f.code, f.severity, f.epochs) == ("unstable_training", "warning", (6, 6)) and "transient_dip" not in codes(found)
    assert "healthy" in codes(diagnose(records(train_loss=train, val_loss=val), DIGITS))


def test_a_ramped_loss_term_that_grows_while_validation_improves_is_not_divergence():
    """KL annealing: the training objective's weight on a second term ramps up, so the loss grows by design."""
    n = 12
    train = [0.6 + 0.25 * i for i in range(n)]  # 0.6 -> 3.35: more than 3x its start
    val_acc = decaying(0.5, 0.93, n)
    found = diagnose(records(train_loss=train, val_acc=val_acc), num_classes=10)
    assert "diverged" not in codes(found) and "lr_too_high" not in codes(found), [str(f) for f in found]
    falling = decaying(0.5, 0.3, n)
    assert "diverged" in codes(diagnose(records(train_loss=train, val_acc=falling), num_classes=10))


def test_outputs_blown_up_while_accuracy_holds_are_divergence_and_a_falling_summed_loss_is_not():
    """SGD at 0.1 on batches of one: the cross-entropy goes 1e13 -> 1e35 (never near ln 2) while validation
    accuracy holds near 0.85 -- no ramped loss term explains logits that far off. A loss summed over the batch
    starts far above ln K too, but falls: that is learning on another scale."""
    n = 8
    blown = [float(10 ** (13 + 3 * i)) for i in range(n)]
    holding = [0.80] + [0.85 + 0.01 * (i % 2) for i in range(n - 1)]  # even a little better than epoch 1
    found = diagnose(records(train_loss=blown, val_acc=holding), num_classes=2)
    assert found[0].code == "diverged" and found[0].severity == "error", [str(f) for f in found]
    summed = list(np.linspace(813.0, 515.0, n))
    assert "diverged" not in codes(diagnose(records(train_loss=summed, val_acc=decaying(0.4, 0.7, n)), num_classes=10))


def test_validation_loss_far_above_ln_k_with_accuracy_at_chance_is_never_healthy():
    """Shuffled labels: training accuracy 0.90, validation 0.10, validation loss 2.3 -> 3.9."""
    n = 15
    rec = records(train_loss=decaying(2.3, 0.35, n), val_loss=list(np.linspace(2.3, 3.9, n)),
                  train_acc=decaying(0.11, 0.90, n), val_acc=[0.1 + 0.01 * (i % 3) for i in range(n)])
    for config, kwargs in ((DIGITS, {}), (None, {"num_classes": 10})):
        found = diagnose(rec, config, **kwargs)
        f = found[0]
        assert (f.code, f.severity) == ("overfitting", "error") and "healthy" not in codes(found), [str(x) for x in found]
        assert "labels" in f.message and f.fixes == [] and f.advice


def test_a_large_and_growing_gap_is_overfitting_before_validation_turns():
    n = 20
    train_acc = list(np.linspace(0.3, 0.93, n))
    val_acc = [min(t, 0.3 + 0.5 * (t - 0.3)) for t in train_acc]  # validation gains half as fast
    rec = records(train_acc=train_acc, val_acc=val_acc, train_loss=decaying(2.0, 0.3, n), val_loss=decaying(2.0, 0.9, n))
    f = next(f for f in diagnose(rec, DIGITS) if f.code == "overfitting")
    assert f.evidence["gap_end"] > 0.25 and f.severity == "warning"


def test_healthy_is_never_beside_a_warning_or_error():
    for rec in (records(train_loss=[2.3] * 10, val_loss=[2.3] * 10, val_acc=[0.1] * 10),
                records(train_loss=decaying(1.9, 0.05, 13), val_loss=[1.6, 1.1, 0.8, 0.62, 0.55, 0.57, 0.63, 0.70, 0.76, 0.83, 0.90, 0.96, 1.02])):
        found = diagnose(rec, DIGITS)
        assert ("healthy" in codes(found)) == all(f.severity == "info" for f in found)


def test_frozen_layers_have_zero_gradients_that_are_not_vanishing():
    n = 10
    flat = [2.30 + 0.003 * (i % 2) for i in range(n)]
    rec = records(train_loss=flat, val_loss=flat, **{"grad_norm/backbone.0": [0.0] * n, "grad_norm/backbone.1": [0.0] * n,
                                                      "grad_norm/head": [0.3] * n})
    frozen = DIGITS | {"finetune": {"init_from": "base.safetensors", "freeze": ["backbone.*"]}}
    assert "vanishing_gradients" not in codes(diagnose(rec, frozen))
    # After unfreezing, a first layer 1e-7 of the last is vanishing again.
    thawed = [dict(r, **{"grad_norm/backbone.0": 1e-7 if r["epoch"] > 5 else 0.0}) for r in rec]
    later = DIGITS | {"finetune": {"init_from": "base.safetensors", "freeze": ["backbone.*"], "unfreeze_epoch": 6}}
    assert "vanishing_gradients" in codes(diagnose(thawed, later))


def test_model_fixes_act_only_on_a_model_the_config_builds():
    """Width goes to model.channels for the CNN family, nowhere for a user model; no key the config already has."""
    stalled = records(train_loss=decaying(2.3, 1.3, 15, 6), val_loss=decaying(2.3, 1.25, 15, 6),
                      train_acc=decaying(0.1, 0.62, 15, 6), val_acc=decaying(0.1, 0.64, 15, 6))

    def fixes_of(config, **kw):
        return [fix for f in diagnose(stalled, config, **kw) for fix in f.fixes]

    assert any(f.startswith("model.hidden=") for f in fixes_of(DIGITS))
    cnn = fixes_of(DIGITS | {"model": {"name": "resnet", "channels": [16, 32]}})
    assert "model.channels=[32, 64]" in cnn and not any(f.startswith("model.hidden") for f in cnn)
    assert not any(f.startswith("model.") for f in fixes_of(DIGITS, user_model=True))
    assert not any(f.startswith("model.") for f in fixes_of(DIGITS | {"model": {"name": "mypkg.nets:build"}}))


def test_lr_fixes_fit_the_optimizer_and_never_move_the_wrong_way():
    from trainwise.doctor import fixes
    from trainwise.doctor.context import Context

    def ctx(config):
        return Context(records(train_loss=[1.0, 0.9, 0.8]), config)

    assert fixes.lower_lr(ctx({"optim": {"name": "adam", "lr": 0.5}})) == "optim.lr=1e-3"  # not 0.05
    assert fixes.higher_lr(ctx({"optim": {"name": "adam", "lr": 0.5}}), 3.0) is None  # never further up
    assert fixes.lower_lr(ctx({"optim": {"name": "adam", "lr": 1e-7}})) is None  # never further down
    onecycle = {"optim": {"name": "adamw", "lr": 3e-5}, "schedule": {"name": "onecycle", "max_lr": 2.4e-4}}
    assert fixes.lower_lr(ctx(onecycle), 0.5) == "schedule.max_lr=1e-4"  # the key that sets the peak
    assert fixes.warmup(ctx(onecycle)) is None and fixes.warmup(ctx({"schedule": {"name": "cosine"}})) == "schedule.warmup_epochs=1.0"


def test_a_three_epoch_fine_tune_whose_validation_loss_turns_is_overfitting():
    """A BERT fine-tune from a public log: validation loss 0.318, 0.320, 0.443 while training accuracy rose 0.82 -> 0.96."""
    rec = records(train_loss=[0.386, 0.227, 0.113], val_loss=[0.318, 0.320, 0.443], train_acc=[0.823, 0.910, 0.962],
                  val_acc=[0.858, 0.865, 0.861])
    f = diagnose(rec, num_classes=2)[0]
    assert (f.code, f.evidence["onset_epoch"]) == ("overfitting", 1)
    # Mid-run (live) it waits; a validation loss that keeps falling is fine.
    assert "overfitting" not in codes(diagnose(rec, {"train": {"epochs": 10}}, num_classes=2))
    assert "overfitting" not in codes(diagnose(records(train_loss=[0.386, 0.227, 0.113], val_loss=[0.318, 0.30, 0.29]), num_classes=2))


# Zoo v2's v2_fixres_noaug, seed 2: augmentation off from epoch 13 of 30. Validation loss jumps 0.764 -> 0.871
# at the boundary and recovers (a transient dip), while training accuracy runs to 0.99 and validation stays
# near 0.78. Its twin (seed 0) keeps augmentation on: training accuracy stays under validation.
FIXRES_NOAUG, FIXRES_AUG = zoo_run("fixres_noaug_seed2"), zoo_run("fixres_aug_twin_seed0")


def _fixres_config(final_augment: bool) -> dict:
    return {"data": {"name": "fashion_mnist"}, "augment": {"train": [{"op": "translate", "pad": 3}, {"op": "erase", "p": 0.5}]},
            "mixup": {"mixup_alpha": 0.4}, "progressive": {"phases": [{"epoch": 1, "resolution": 28, "augment": True},
                                                                      {"epoch": 13, "resolution": 28, "augment": final_augment}]}}


def test_a_dip_at_the_boundary_does_not_hide_a_phase_that_overfits():
    found = diagnose(records(**FIXRES_NOAUG), _fixres_config(False))
    f = next(f for f in found if f.code == "phase_regression")
    assert (f.evidence["change"], f.evidence["boundary_epoch"]) == ("augment_off", 13) and f.severity == "warning"
    assert "healthy" not in codes(found)


def test_the_same_phases_with_augmentation_kept_are_healthy():
    assert serious(diagnose(records(**FIXRES_AUG), _fixres_config(True))) == []


def test_a_training_loss_jump_after_validation_already_jumped_is_an_instability_not_a_stage():
    # Zoo v1's no_zero_grad_adam, seed 4: validation 0.43 -> 0.85 at epoch 7, then training 0.39 -> 1.08 at
    # epoch 8 while validation moved 17 %: the weights were thrown off first, so no new training stage.
    found = diagnose(records(**zoo_run("no_zero_grad_adam_seed4")), {"optim": {"name": "adamw", "lr": 1e-3}, **DIGITS})
    assert serious(found)[0] == "unstable_training" and "phase_regression" not in codes(found)


def test_both_losses_swinging_together_is_unstable_training():
    # Zoo v1's deep_init_x2, seed 12: two training-loss rises (0.07 -> 0.16, 0.025 -> 0.11), too few for a
    # swing of their own in 20 epochs, while validation jumped >= 25 % five times: the curves bear each other out.
    cfg = {"optim": {"name": "sgd", "lr": 0.05}, "model": {"hidden": [64] * 8}, **DIGITS}
    found = diagnose(records(**zoo_run("deep_init_x2_seed12")), cfg)
    f = next(f for f in found if f.code == "unstable_training")
    assert f.severity == "warning" and "swing together" in f.message and f.evidence["val_rises"] == 5
    # Its twin (batch norm, early stopping) has three training rises and one validation jump: noise.
    twin = {**cfg, "model": {"hidden": [64] * 8, "batch_norm": True}, "early_stopping": {"enabled": True}}
    assert serious(diagnose(records(**zoo_run("deep_init_x2_twin_seed12")), twin)) == []
