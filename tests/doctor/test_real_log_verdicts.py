"""Verdicts on stored real training logs (benchmarks/real_logs and benchmarks/real_logs_2, labelled by hand
before the doctor read them): each rule change has a log it must fire on and one it must not. The number of
classes and the task are passed as the benchmark passes them (sources.toml). Owners of the second set are
looked up with ``set2=True``."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from trainwise.doctor import diagnose, read_history

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "benchmarks" / "real_logs"
LOGS = tomllib.loads((REAL / "sources.toml").read_text())["log"]


ENTRIES = {e["file"].split("__")[0]: e for e in LOGS}
REAL_2 = ROOT / "benchmarks" / "real_logs_2"
LOGS_2 = tomllib.loads((REAL_2 / "sources.toml").read_text())["log"]


def entry(name: str, set2: bool = False) -> dict:
    """The log of this owner (the repository's owner, the file name's first part), or the one whose file
    name starts with ``name`` where an owner has several."""
    logs = LOGS_2 if set2 else LOGS
    return {e["file"].split("__")[0]: e for e in logs}.get(name) or next(e for e in logs if e["file"].startswith(name))


def findings(owner: str, set2: bool = False):
    e = entry(owner, set2)
    root = REAL_2 if set2 else REAL
    return diagnose(root / "logs" / e["file"], e.get("config"), classes=e.get("classes") or None, task=e.get("task"))


def verdict(owner: str, set2: bool = False) -> list[str]:
    """The warning/error codes, most serious first (``["healthy"]`` when none)."""
    return [f.code for f in findings(owner, set2) if f.severity != "info"] or ["healthy"]


# ----------------------------------------------------------------------------- stuck_at_chance
@pytest.mark.parametrize("owner", [
    "LeonGogin",  # 3 classes: loss 1.02 (ln 3 = 1.10), accuracy 0.59 = the class mix, flat for 19 epochs
    "arshiv-web",  # 5 classes: evaluation loss near ln 5 and rising, accuracy below the majority share it started at
    "ElectronicXX",  # binary: validation accuracy at the majority share for 17 epochs, loss at ln 2 throughout
])
def test_at_chance_from_the_class_mix_is_stuck_not_underfitting(owner):
    codes = verdict(owner)
    assert codes[0] == "stuck_at_chance", codes
    assert "underfitting" not in codes and "lr_too_low" not in codes, codes


@pytest.mark.parametrize("owner", [
    "tanmayai23",  # 43 classes, label smoothing floor: loss 0.57 at 0.98 accuracy, far below ln 43
    "Dantusaikamal",  # binary, loss 0.56 -> 0.46 and accuracy 0.72 -> 0.81: it learnt
])
def test_a_learnt_model_is_not_at_chance(owner):
    found = findings(owner)
    assert "stuck_at_chance" not in found.codes, [str(f) for f in found]
    assert not any("never left chance" in f.message for f in found), [str(f) for f in found]  # memorised noise


# ----------------------------------------------------------------------------- overfitting past the best epoch
@pytest.mark.parametrize("owner", [
    "Aitzaz-Saleem",  # 10 classes: validation loss best 0.29 (epoch 19), swings 0.30-0.46 after, training 0.13 -> 0.08
    "ManuMollon261297",  # 10 classes: best 0.144 (epoch 7), then 0.16-0.22 for 10 epochs while training halves
    "Dantusaikamal",  # binary, 7 epochs: best 0.457 (epoch 4), then up three epochs in a row while training halves
])
def test_validation_sitting_above_its_best_epoch_while_training_falls_is_overfitting(owner):
    assert verdict(owner)[0] == "overfitting", verdict(owner)


@pytest.mark.parametrize("owner", [
    "Farru049",  # MNIST: validation loss 11 % above its best over the last 3 epochs, as noisy as before it
    "Cawinchan",  # 100 epochs converged: validation loss wanders a few % around its best
    "BCbug-tw__Chest-Pneumonia-Classification-ResNet50FT",  # fine-tune: 0.014 -> 0.019, below a tenth of ln 2
])
def test_validation_wandering_near_its_best_is_not_overfitting(owner):
    assert "overfitting" not in verdict(owner), verdict(owner)


# ----------------------------------------------------------------------------- lr_too_low needs LR evidence
@pytest.mark.parametrize("owner", [
    "Lidbey",  # 4 classes: loss 1.39 -> 1.18 down every epoch, no optimizer or LR recorded
    "AkshatSharma5",  # lr 1e-4 logged, optimizer unknown: nothing says 1e-4 is low
])
def test_a_slow_descent_without_lr_evidence_is_underfitting_not_lr_too_low(owner):
    codes = verdict(owner)
    assert codes[0] == "underfitting" and "lr_too_low" not in codes, codes


def test_the_same_slow_descent_with_an_lr_below_the_range_is_lr_too_low():
    e = ENTRIES["Lidbey"]
    found = diagnose(REAL / "logs" / e["file"], {"optimizer": "adam", "learning_rate": 1e-6}, classes=e["classes"])
    f = found[0]
    assert f.code == "lr_too_low" and f.evidence["lr"] == 1e-6, [str(x) for x in found]


# ----------------------------------------------------------------------------- plateau vs underfitting
def test_flat_for_most_of_the_run_at_a_constant_lr_is_a_plateau_first():
    codes = verdict("Abhiswain97")  # losses ~0.82 and accuracy 0.55 from epoch 8 to 50, no LR drop logged
    assert codes[0] == "plateau" and "underfitting" in codes, codes


def test_flat_through_lr_halvings_is_underfitting_without_a_plateau():
    codes = verdict("AhmedZ41")  # LR 1e-3 halved three times, loss ~0.45 flat, accuracy 0.78 on both
    assert codes == ["underfitting"], codes


def test_a_loss_down_every_epoch_is_no_plateau():
    assert "plateau" not in verdict("Lidbey")  # falls < 2 % over the last 5 epochs, but every one of them


# ----------------------------------------------------------------------------- growing gap vs swinging validation
def test_validation_swinging_back_to_training_is_unstable_not_a_growing_gap():
    codes = verdict("pilot-j")  # validation 0.78 / 0.45 every few epochs, training smooth 0.50 -> 0.82
    assert codes[0] == "unstable_training" and "overfitting" not in codes, codes


def test_a_gap_that_grows_on_a_steady_validation_curve_is_still_overfitting():
    codes = verdict("tegemenozyurek")  # training 0.9+ while validation stays ~0.6, no swings
    assert codes[0] == "overfitting", codes


# ----------------------------------------------------------------------------- accuracy that is no accuracy
def test_a_constant_near_zero_accuracy_is_left_out_not_read_as_underfitting():
    found = findings("FabianoMendonca")  # regression: 'acc' 0.00025 / 0 at every epoch while MSE falls 3.9 -> 1.9
    assert "underfitting" not in found.codes, [str(f) for f in found]
    assert any("train_acc" in a and "not a classification accuracy" in a for a in found.assumptions), found.assumptions


def test_a_real_accuracy_is_kept():
    found = findings("Dantusaikamal")
    assert not any("not a classification accuracy" in a for a in found.assumptions)
    assert found[0].evidence.get("best_val_loss") and "healthy" not in found.codes


# ----------------------------------------------------------------------------- prediction collapse at near-perfect accuracy
def test_near_perfect_binary_metrics_are_no_collapse():
    codes = verdict("BhojanapuPavanKumar")  # segmentation: recall 1.0, precision = accuracy = 0.9999
    assert codes == ["healthy"], codes


# ----------------------------------------------------------------------------- validation-only logs
def test_validation_loss_alone_far_above_a_fit_and_still_falling_is_underfitting():
    codes = verdict("JulioContrerasH")  # EuroSAT, 10 classes: validation loss 2.27 -> 1.88 in a straight line
    assert codes == ["underfitting"], codes


def test_validation_loss_alone_near_a_fit_is_not_underfitting():
    e = ENTRIES["Deepender25"]  # MNIST: validation loss down to 0.009; its training columns dropped
    records, _ = read_history(REAL / "logs" / e["file"])
    val_only = [{k: v for k, v in r.items() if not k.startswith("train_")} for r in records]
    assert "underfitting" not in diagnose(val_only, classes=e["classes"]).codes


# ----------------------------------------------------------------------------- swings that stopped
def test_swings_that_stopped_with_validation_at_its_best_are_information():
    found = findings("BCbug-tw__Chest-Pneumonia-Classification-ResNet50FT")  # bumps at epochs 6 and 12, calm 14-20, 0.993
    assert verdict("BCbug-tw__Chest-Pneumonia-Classification-ResNet50FT") == ["healthy"], [str(f) for f in found]
    f = next(f for f in found if f.code == "unstable_training")
    assert f.severity == "info" and f.evidence["calm_last_epochs"] >= 4


@pytest.mark.parametrize("owner", [
    "AbijithT",  # validation accuracy 0.59 -> 0.39 -> 0.80 -> 0.66 -> 0.93 -> 0.87 to the end
    "pilot-j",  # validation 0.78 / 0.45 every few epochs to the last one
])
def test_swings_to_the_end_stay_a_warning(owner):
    assert verdict(owner)[0] == "unstable_training", verdict(owner)


def test_a_validation_rise_well_above_a_tenth_of_ln_k_is_still_overfitting():
    assert verdict("GalexyBrain__Plant")[0] == "overfitting"  # 0.136 -> 0.19-0.22 while training falls


# ----------------------------------------------------------------------------- one finding per code
@pytest.mark.parametrize("owner", ["AdityaT-19", "Sh-Vacle"])
def test_one_instability_read_by_two_rules_is_reported_once(owner):
    found = findings(owner)  # swings over the run, and a spike in both curves inside them
    unstable = [f for f in found if f.code == "unstable_training"]
    assert len(unstable) == 1 and unstable[0].epochs[0] == min(f.epochs[0] for f in unstable), [str(f) for f in found]


def test_different_codes_over_the_same_epochs_are_both_kept():
    assert verdict("Abhiswain97") == ["plateau", "underfitting"]


# ----------------------------------------------------------------------------- validation-only divergence
@pytest.mark.parametrize("classes", [2, 5, 1000])  # the repository does not say K; 2e7 is far above ln K for any
def test_a_validation_loss_astronomically_above_ln_k_is_diverged(classes):
    e = entry("ML-Ops-Burnsides-Bitches-Group-51")  # validation loss only: 7.9e12 after one epoch, 2e7-7e7 after ten
    found = diagnose(REAL / "logs" / e["file"], classes=classes)
    assert found[0].code == "diverged" and found[0].severity == "error", [str(f) for f in found]


def test_a_validation_loss_near_ln_k_is_not_diverged():
    assert "diverged" not in verdict("JulioContrerasH")  # 2.27 -> 1.88 against ln 10 = 2.30


# ----------------------------------------------------------------------------- a run that ended inside its warm-up
def test_a_run_that_ended_inside_its_warmup_near_ln_k_is_lr_too_low():
    found = findings("MohamedYoussef06")  # 3 evaluations, LR 3.6e-6 -> 1.16e-5 still rising, loss ~ ln 3
    assert found[0].code == "lr_too_low" and "warm-up" in found[0].message, [str(f) for f in found]


def test_a_warmup_whose_loss_already_left_ln_k_is_not():
    e = entry("tanmayai23")  # OneCycle: LR rising over epochs 1-4 while validation loss 2.91 -> 1.18 (ln 43 = 3.76)
    records, _ = read_history(REAL / "logs" / e["file"])
    for prefix in (records[:4], records):
        assert "lr_too_low" not in diagnose(prefix, classes=e["classes"]).codes


# ----------------------------------------------------------------------------- a constant answer (frozen validation accuracy)
def test_an_accuracy_frozen_from_the_first_epoch_at_the_prior_loss_is_stuck_at_chance():
    codes = verdict("ChanchalTaye", set2=True)  # 7 classes: 0.6698 at all 9 epochs, loss 1.22 -> 1.12 ~ the prior's entropy
    assert codes[0] == "stuck_at_chance", codes


def test_an_accuracy_frozen_from_the_first_epoch_below_the_prior_loss_is_a_collapse():
    found = findings("ArjunPesaru", set2=True)  # pixel accuracy 0.98660713 (+-6e-8) for 35 epochs, loss 0.79 -> 0.057
    codes = [f.code for f in found if f.severity != "info"]
    assert codes[:1] == ["prediction_collapse"] and "stuck_at_chance" not in codes, codes
    assert found[0].evidence["epochs_frozen"] == 35


def test_a_frozen_validation_accuracy_with_a_training_set_fitted_apart_from_it_is_no_collapse():
    # The 7-class log with training accuracy put at 0.95: a model that fits its training set far above the
    # share validation repeats answers it differently -- a small validation set's repeats, not a constant answer.
    e = entry("ChanchalTaye", set2=True)
    records, _ = read_history(REAL_2 / "logs" / e["file"])
    fitted = [dict(r, train_acc=0.95) for r in records]
    codes = diagnose(fitted, classes=e["classes"]).codes
    assert "prediction_collapse" not in codes and "stuck_at_chance" not in codes, codes


def test_an_accuracy_frozen_below_one_over_k_is_a_collapse_onto_a_minority_class():
    codes = verdict("ADITHYADEV2005", set2=True)  # 3 classes: 0.2000 at every epoch, below 1/3
    assert codes[0] == "prediction_collapse" and "stuck_at_chance" not in codes, codes


def test_an_accuracy_frozen_late_at_ln_k_stays_stuck_at_chance():
    codes = verdict("DarkEmbers", set2=True)  # 4 classes: 0.3167 over the last 10 of 20 epochs, loss ~ ln 4
    assert codes[0] == "stuck_at_chance", codes


@pytest.mark.parametrize("owner", [
    "BCbug-tw__Chest",  # binary fine-tune: 0.9926 at the last 5 of 20 epochs, loss near 0
    "Deepender25",  # 10 classes: 0.9957 at 3 epochs running
])
def test_a_converged_model_repeating_its_accuracy_is_no_collapse(owner):
    assert verdict(owner) == ["healthy"], verdict(owner)


# ----------------------------------------------------------------------------- overfitting: stalled with a large gap
def test_validation_stalled_with_a_large_accuracy_gap_is_overfitting():
    found = findings("Coderamrish", set2=True)  # val flat since epoch 5 of 12, training loss halves, accuracy 0.98 vs 0.79
    first = next(f for f in found if f.severity != "info")
    assert first.code == "overfitting" and first.evidence["accuracy_gap_end"] >= 0.15, [str(f) for f in found]


def test_a_stalled_validation_with_a_small_accuracy_gap_stays_mild():
    found = findings("be3013", set2=True)  # stalled since epoch 4 with accuracy 1.00 vs 0.97: the stall alone is information
    assert not any("accuracy_gap_end" in f.evidence for f in found if f.code == "overfitting"), [str(f) for f in found]


# ----------------------------------------------------------------------------- overfitting past a best epoch reached early
def test_a_rise_past_an_early_best_is_judged_against_the_whole_curves_noise():
    # Transfer learning: best 0.079 at epoch 3 (after a one-epoch dip at 2), 0.091-0.105 for 7 epochs while the
    # training loss falls 0.014 -> 0.0007: the two steps before the best are no measure of the curve's noise.
    found = findings("be3013", set2=True)
    first = next(f for f in found if f.severity != "info")
    assert first.code == "overfitting" and first.evidence["best_val_epoch"] == 3, [str(f) for f in found]


# ----------------------------------------------------------------------------- more than 100 classes
def test_beyond_100_classes_a_training_loss_near_ln_k_is_underfitting():
    found = findings("neelreddyrebala", set2=True)  # Tiny-ImageNet: 19 % (0.69 on the log scale), loss 4.72 of ln 200 = 5.30
    assert [f.code for f in found if f.severity != "info"][:1] == ["underfitting"], [str(f) for f in found]


def test_beyond_100_classes_a_fitted_loss_is_not_underfitting():
    assert verdict("Pedrov-b", set2=True) == ["healthy"]  # 120 dog breeds, a fine-tune far below ln 120


# ----------------------------------------------------------------------------- a gap larger than the training error
def test_a_growing_gap_larger_than_the_training_error_is_overfitting():
    # 100 epochs, 5 classes: validation loss flat from epoch 30 while training accuracy climbs to 0.89 and
    # validation stays at 0.75-0.76: a 13.5-point gap (under the 15-point threshold) above an 11 % training error.
    codes = verdict("BurakErguvn", set2=True)
    assert codes[0] == "overfitting", codes


def test_a_growing_gap_smaller_than_the_training_error_is_not():
    # The same curves with both accuracies 9 points lower: the same 13.5-point gap under a 20 % training
    # error is a model still short of its fit, not variance.
    e = entry("BurakErguvn", set2=True)
    records, _ = read_history(REAL_2 / "logs" / e["file"])
    lower = [dict(r, train_acc=r["train_acc"] - 0.09, val_acc=r["val_acc"] - 0.09) for r in records]
    assert "overfitting" not in diagnose(lower, classes=e["classes"]).codes


# ----------------------------------------------------------------------------- a gap still opening in the last epoch
def test_a_gap_still_opening_in_the_last_epoch_is_overfitting():
    # 7 epochs of a sign-language CNN (benchmarks/real_logs_8): training 0.46 -> 0.968, validation 0.10 -> 0.25,
    # a gap of 0.61, 0.61, 0.72 over the last three epochs -- its median ties the epochs before, its last epoch
    # does not; the validation loss 2.21 -> 3.97
    root = ROOT / "benchmarks" / "real_logs_8"
    e = next(e for e in tomllib.loads((root / "sources.toml").read_text())["log"] if e["file"].startswith("meetpatel94"))
    assert e["label"] == "overfitting"
    found = [f for f in diagnose(root / "logs" / e["file"]) if f.severity != "info"]
    assert found and found[0].code == "overfitting" and "pulls away from validation" in found[0].message, [str(f) for f in found]
    # the same curves without the last epoch's widening (the gap level at 0.61 to the end) stay as they were
    records, _ = read_history(root / "logs" / e["file"])
    flat = records[:-1] + [records[-1] | {"train_acc": records[-2]["train_acc"], "val_acc": records[-2]["val_acc"]}]
    assert not any("pulls away" in f.message for f in diagnose(flat)), [str(f) for f in diagnose(flat)]


# ----------------------------------------------------------------------------- a large gap that stands
@pytest.mark.parametrize("set_dir, owner, train, val", [
    ("real_logs_5", "JustJin28", 0.92, 0.76),  # brain tumour MRI: a 15-19 point gap from epoch 3 on, both still improving
    ("real_logs_7", "ANGELUSD11", 0.97, 0.68),  # level screenshots: the gap narrows 43 -> 30 points as validation creeps up
])
def test_a_large_gap_above_the_training_error_is_overfitting_even_when_it_no_longer_grows(set_dir, owner, train, val):
    root = ROOT / "benchmarks" / set_dir
    e = next(e for e in tomllib.loads((root / "sources.toml").read_text())["log"] if e["file"].startswith(owner))
    assert e["label"] == "overfitting"
    found = [f for f in diagnose(root / "logs" / e["file"], classes=e.get("classes") or None) if f.severity != "info"]
    assert found and found[0].code == "overfitting" and found[0].evidence["gap_reading"] == "standing", [str(f) for f in found]
    assert found[0].evidence["train_acc"] == pytest.approx(train, abs=0.01) and found[0].evidence["val_acc"] == pytest.approx(val, abs=0.01)
    assert "stands far above validation" in found[0].message


def test_a_large_gap_below_the_training_error_is_not_variance():
    # the tumour classifier's curves 20 points lower on both splits: the same 16-point gap under a 28 % training
    # error is a model short of its fit, which this reading leaves alone
    root = ROOT / "benchmarks" / "real_logs_5"
    e = next(e for e in tomllib.loads((root / "sources.toml").read_text())["log"] if e["file"].startswith("JustJin28"))
    records, _ = read_history(root / "logs" / e["file"])
    lower = [r | {"train_acc": r["train_acc"] - 0.2, "val_acc": r["val_acc"] - 0.2} for r in records]
    assert not any(f.evidence.get("gap_reading") == "standing" for f in diagnose(lower)), [str(f) for f in diagnose(lower)]


# ----------------------------------------------------------------------------- a memorised training set in a short run
def test_a_short_run_that_memorised_its_training_set_far_above_validation_is_overfitting():
    # a Ludwig text model, 5 epochs (benchmarks/real_logs_9): training accuracy 0.79 -> 0.99 while validation
    # swings 0.69-0.80, a 20-point gap: too short for the trend rules, no trend needed for variance
    root = ROOT / "benchmarks" / "real_logs_9"
    e = next(e for e in tomllib.loads((root / "sources.toml").read_text())["log"] if e["file"].startswith("cppxaxa"))
    assert e["label"] == "overfitting"
    found = [f for f in diagnose(root / "logs" / e["file"], classes=e.get("classes") or None) if f.severity != "info"]
    assert found and found[0].code == "overfitting" and "fits its training set almost perfectly" in found[0].message, [str(f) for f in found]
    assert found[0].evidence["train_acc"] >= 0.99 and found[0].evidence["gap"] >= 0.1
