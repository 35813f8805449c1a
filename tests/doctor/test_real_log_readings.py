"""Verdicts and readings on the third and fourth sets of stored real logs (benchmarks/real_logs_3 and _4,
labelled by hand before the doctor read them, scored once, development data since): each reading has a
log it must fire on and one it must not."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from trainwise.doctor import diagnose, read_history
from trainwise.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
SETS = {1: ROOT / "benchmarks" / "real_logs", 2: ROOT / "benchmarks" / "real_logs_2",
        3: ROOT / "benchmarks" / "real_logs_3", 4: ROOT / "benchmarks" / "real_logs_4",
        5: ROOT / "benchmarks" / "real_logs_5", 6: ROOT / "benchmarks" / "real_logs_6",
        7: ROOT / "benchmarks" / "real_logs_7"}


def entry(set_no: int, owner: str) -> tuple[Path, dict]:
    root = SETS[set_no]
    logs = tomllib.loads((root / "sources.toml").read_text())["log"]
    e = next(e for e in logs if e["file"].startswith(owner if "__" in owner else owner + "__"))
    return root / "logs" / e["file"], e


def findings(set_no: int, owner: str):
    path, e = entry(set_no, owner)
    return diagnose(path, e.get("config"), classes=e.get("classes") or None, task=e.get("task"))


def verdict(set_no: int, owner: str) -> list[str]:
    return [f.code for f in findings(set_no, owner) if f.severity != "info"] or ["healthy"]


# ----------------------------------------------------------------------------- overfitting from a best first epoch
def test_validation_best_at_the_first_epoch_then_rising_is_overfitting():
    # Sentiment, 150 epochs: validation loss best at epoch 0 (0.111), 0.66 at the end; training loss 0.169 -> 0.003.
    found = findings(3, "HoaiHanVu")
    assert found[0].code == "overfitting" and found[0].severity == "warning", [str(f) for f in found]
    path, _ = entry(3, "HoaiHanVu")
    assert found[0].evidence["best_val_epoch"] == read_history(path)[0][0]["epoch"]


# ----------------------------------------------------------------------------- stopped while still learning
@pytest.mark.parametrize("set_no, owner", [
    (2, "QianQing26"),  # a small ViT on CIFAR-10: 74 % / 71 %, validation loss at its best at epoch 50 of 50
    (2, "AntoineDW"),  # cats vs dogs: 0.86 / 0.85, both losses still falling at the last epoch
])
def test_a_run_stopped_while_still_learning_far_from_a_fit_is_underfitting(set_no, owner):
    found = [f for f in findings(set_no, owner) if f.severity != "info"]
    assert found and found[0].code == "underfitting", [str(f) for f in found]
    assert found[0].evidence["still_improving"] == 1
    assert any("number of epochs" in a for a in found[0].advice), found[0].advice  # a foreign log: the change in words


@pytest.mark.parametrize("set_no, owner", [
    (2, "AayushThapliyalEXE"),  # 38 plant diseases, still improving at 0.92 validation: close to a fit
    (2, "Arifoo00"),  # pneumonia, 0.96 validation: close to a fit
    (3, "1Yangone1"),  # CIFAR-10 at 93 % / 89 %, best at the last epoch: converged enough
])
def test_a_run_still_improving_near_its_fit_is_healthy(set_no, owner):
    assert verdict(set_no, owner) == ["healthy"]


# ----------------------------------------------------------------------------- validation accuracy that swings
@pytest.mark.parametrize("set_no, owner", [
    (2, "Venus315"),  # CIFAR-10 test accuracy 84.6 -> 80.4, 85.3 -> 78.6 ... to epoch 101, training loss smooth
    (3, "Jannik-m12"),  # 27 species: validation accuracy 0.43 -> 0.18 -> 0.32, 0.61 -> 0.41 -> 0.64
])
def test_validation_accuracy_swinging_under_smooth_training_is_unstable(set_no, owner):
    assert verdict(set_no, owner)[0] == "unstable_training"


@pytest.mark.parametrize("set_no, owner", [
    (3, "JosephHuang913"),  # 132 epochs, single-epoch dips of a few points around 0.96-0.99
    (1, "GalexyBrain__CNN"),  # blood groups: small validation set, a few 3-point moves
])
def test_a_few_validation_dips_are_not_swings(set_no, owner):
    assert "unstable_training" not in verdict(set_no, owner)


# ----------------------------------------------------------------------------- a loss that gained a term
def test_a_training_loss_that_jumps_while_accuracy_holds_is_not_divergence():
    # Domain-adversarial training switched on at epoch 5: training loss 0.022 -> 0.70, accuracy stays 0.99.
    assert verdict(4, "Rishiatweb") == ["healthy"]


def test_a_tiny_regression_loss_wandering_is_not_a_run_getting_worse():
    # MSE 0.072 -> 0.001, validation 0.0005 -> 0.0008 at the end: +60 % of nothing.
    assert verdict(4, "AmmarRashed") == ["healthy"]


# ----------------------------------------------------------------------------- readers
def test_a_text_log_resumed_from_a_checkpoint_keeps_the_later_epochs():
    # Epochs 1-25, then a resume from the epoch-20 checkpoint (epochs 21-30), checkpoint lines naming epoch=20.
    path, _ = entry(4, "Akash05-kr")
    records, meta = read_history(path)
    assert [r["epoch"] for r in records] == list(range(1, 31))
    assert records[20]["train_loss"] == pytest.approx(0.7671)  # the resumed run's epoch 21, not the first run's 0.9320
    assert records[19]["train_loss"] == pytest.approx(0.9302)
    said = " ".join(meta["assumptions"])
    assert "resumed run" in said and "restate that epoch" in said


def test_camel_case_names_are_read(tmp_path):
    log = tmp_path / "train_log.csv"
    log.write_text("Epoch,TrainLoss,ValLoss,TrainAcc,ValAcc\n" + "".join(
        f"{e},{1.0 / e:.3f},{1.1 / e:.3f},{0.5 + e / 40:.3f},{0.5 + e / 45:.3f}\n" for e in range(1, 9)))
    records, _ = read_history(log)
    assert {"train_loss", "val_loss", "train_acc", "val_acc"} <= set(records[0])


def test_logging_lines_with_values_in_brackets_are_read(tmp_path):
    # "Epoch: [0][300/320]\t Loss [ 0.69090915] Avg Loss [ 0.6879074] Accuracy 0.587"
    path, _ = entry(5, "Haisu7025")
    records, _ = read_history(path)
    assert [r["epoch"] for r in records] == list(range(1, 61))  # counted from 0 in the log
    assert records[0]["train_loss"] == pytest.approx(0.6879074)  # the epoch's average, said after the batch's
    assert records[0]["train_acc"] == pytest.approx(0.587)
    # a line with name: value pairs keeps that reading: "7ms/step 12" is no value of "step"
    keras = tmp_path / "train.log"
    keras.write_text("Epoch 1/2\n12/12 - 3s 7ms/step - loss: 0.9 - accuracy: 0.6 - val_loss: 1.0 - val_accuracy: 0.5\n"
                     "Epoch 2/2\n12/12 - 3s 7ms/step - loss: 0.7 - accuracy: 0.7 - val_loss: 0.9 - val_accuracy: 0.6\n")
    records, _ = read_history(keras)
    assert [(r["train_loss"], r["val_acc"]) for r in records] == [(0.9, 0.5), (0.7, 0.6)]
    no_metric = tmp_path / "notes.log"
    no_metric.write_text("Saving model 3 of 10\nbest 0.93\n")
    with pytest.raises(UserError, match="no line with a loss or accuracy"):
        read_history(no_metric)


def test_a_bare_accuracy_beside_named_losses_is_validation_accuracy(tmp_path):
    path, _ = entry(4, "Rishiatweb")  # epoch,train_loss,val_loss,EER,AUC,F1,Acc,...
    records, meta = read_history(path)
    assert "val_acc" in records[0] and "train_acc" not in records[0]
    assert any("'Acc'" in a for a in meta["assumptions"])
    keras = tmp_path / "history.csv"  # Keras: a bare loss beside the bare accuracy, which is the training one
    keras.write_text("epoch,accuracy,loss,val_accuracy,val_loss\n0,0.5,1.0,0.55,0.9\n1,0.6,0.8,0.62,0.8\n")
    records, _ = read_history(keras)
    assert records[0]["train_acc"] == 0.5 and records[0]["val_acc"] == 0.55


# ----------------------------------------------------------------------------- a mild, sustained turn
def test_a_mild_sustained_rise_beyond_the_curves_own_noise_is_overfitting():
    # Mask R-CNN fine-tune: validation loss best 0.154 at epoch 9, 0.161 at the end (+4 %, its usual step 2 %)
    # while training loss keeps falling 0.14 -> 0.12.
    found = [f for f in findings(2, "Deeprockz22") if f.severity != "info"]
    assert found and found[0].code == "overfitting", [str(f) for f in found]
    assert found[0].evidence["val_loss_rise"] < 0.10 < found[0].evidence["val_loss_rise"] + 0.10
    assert found[0].evidence["val_loss_rise"] > found[0].evidence["val_epoch_noise"]


def test_a_mild_rise_within_the_curves_own_noise_is_not_overfitting():
    # Brain-tumour classifier: validation loss 7 % above its best at the end, but it steps ~10 % an epoch.
    assert verdict(4, "Kushagra-SethG") == ["healthy"]


# ----------------------------------------------------------------------------- swings that died down
def test_swings_that_died_down_to_recovered_dips_are_not_a_warning():
    # Animal sounds, 100 epochs: 16 validation jumps in the first 67 epochs, two dips in the last 33 that are
    # back within 5 epochs, validation accuracy ending at 0.97 (its best 0.98).
    found = findings(4, "AbyssDrn")
    unstable = [f for f in found if f.code == "unstable_training"]
    assert unstable and unstable[0].severity == "info" and unstable[0].evidence["calm_last_epochs"] >= 30, [str(f) for f in found]
    assert verdict(4, "AbyssDrn") == ["healthy"]


@pytest.mark.parametrize("owner, lr_swinging, lr_calm", [
    ("Mounisha-2005", 1e-3, 2.5e-4),  # birds: validation accuracy 0.45-0.71 at 1e-3, 0.76-0.81 once halved twice
    ("ShouryaDesai135", 5e-4, 6.25e-5),  # grape leaves: 0.45-0.81 through epoch 35, calm at <= 6e-5
])
def test_swings_that_stopped_only_when_the_schedule_cut_the_lr_say_the_lr_was_too_high(owner, lr_swinging, lr_calm):
    found = [f for f in findings(6, owner) if f.severity != "info"]
    assert found and found[0].code == "lr_too_high", [str(f) for f in found]
    ev = found[0].evidence
    assert (ev["lr_while_swinging"], ev["lr_when_calm"]) == (lr_swinging, lr_calm)
    assert any("learning rate" in a for a in found[0].advice), found[0].advice
    # The animal-sound run above calmed at one LR: its swings stay info.
    assert [f.code for f in findings(4, "AbyssDrn") if f.severity != "info"] == []


def test_validation_that_keeps_jumping_to_the_end_is_unstable():
    # A fine-tune whose validation loss jumps >= 25 % six times in its last 16 of 50 epochs: not died down.
    assert verdict(1, "pilot-j")[0] == "unstable_training"


# ----------------------------------------------------------------------------- set 5 (scored once, development data since)
def test_a_fine_tunes_small_loss_wandering_is_not_overfitting_with_k_unknown():
    # K unknown, first training loss 0.31: validation loss 0.026 -> 0.030-0.037 at 0.99 accuracy, last epoch its best.
    assert verdict(5, "DrGenuisCodist7") == ["healthy"]
    # ... while a K-unknown run whose validation loss turns on its own scale still is overfitting.
    assert verdict(5, "Navroz-Singh")[0] == "overfitting"


def test_k_is_read_from_a_loss_that_barely_moved_in_its_first_epochs():
    # Training loss 2.07, 1.98, 2.03 (within 5 %) ~ ln 8: K = 8, so accuracy 0.20 is read against 1/8.
    found = findings(5, "Manjunathvpoojari")
    assert any("K = 8 classes assumed" in a for a in found.assumptions), found.assumptions
    assert verdict(5, "Manjunathvpoojari")[0] == "stuck_at_chance"
    # A loss that fell 0.31 -> 0.07 in its first epochs says nothing about K.
    assert not any("classes assumed" in a for a in findings(5, "DrGenuisCodist7").assumptions)


def test_a_run_at_its_best_near_the_end_and_still_sloping_down_is_stopped_while_learning():
    # K = 6 from the initial loss; 0.795 / 0.798 after 50 epochs, validation loss best at epoch 47, still falling.
    found = [f for f in findings(5, "DeeThunder") if f.severity != "info"]
    assert found and found[0].code == "underfitting" and found[0].evidence["still_improving"] == 1, [str(f) for f in found]
    assert found[0].evidence["best_epoch"] == 47


def test_a_training_loss_that_jumps_while_validation_holds_is_a_new_stage():
    # Training loss 0.31 -> 0.81 at epoch 16 while validation 0.37 -> 0.40, then 0.43 to the end.
    found = [f for f in findings(5, "HelanMS") if f.severity != "info"]
    assert found and found[0].code == "phase_regression", [str(f) for f in found]
    assert found[0].evidence["change"] == "stage" and found[0].evidence["boundary_epoch"] == 16
    assert "does not name" in found[0].message
    # A converged loss wandering 0.006 -> 0.024 is no stage; a jump on both curves is an instability.
    assert "phase_regression" not in verdict(5, "Lxr-max")
    assert verdict(5, "SriHarshaBoyina")[0] == "unstable_training"


def test_validation_frozen_while_training_wanders_is_a_plateau():
    # Validation loss 0.512 to 4 digits for 30 epochs, training loss wandering 0.375-0.436 (up 6 % over the window).
    assert verdict(3, "Lokendra2244")[0] == "plateau"
    # A loss still creeping down over the same kind of window is no plateau.
    assert "plateau" not in verdict(5, "DeeThunder")


def test_a_validation_loss_rising_while_accuracy_keeps_climbing_is_info():
    # DNABERT-2: evaluation loss 0.232 -> 0.29 while accuracy 0.917 -> 0.943 and MCC 0.83 -> 0.88, best at the end.
    found = findings(5, "ShashankBommana")
    assert [f.code for f in found if f.severity != "info"] == []
    info = next(f for f in found if f.code == "overfitting")
    assert info.evidence["val_acc_gain_since_onset"] >= 0.02 and not info.fixes
    # MNIST: validation loss 0.059 -> 0.099 with accuracy flat at 0.98 since the loss's best is overfitting.
    assert verdict(4, "NebusokuDev")[0] == "overfitting"
    # Blastocysts: validation loss best at epoch 7 (0.481), 26 % above it at the end; accuracy 0.812 there and
    # 0.817 at the end -- the loss's best was the accuracy's peak too, so accuracy has not kept climbing.
    assert verdict(6, "Rida-Nuha")[0] == "overfitting"


# ----------------------------------------------------------------------------- an LR column without an optimizer
def test_an_lr_below_every_optimizers_range_is_lr_too_low_and_its_fix_raises_it():
    # Brain tumour MRI at 1e-6 (halved twice): 0.694 -> 0.662 against ln 2 in 23 epochs.
    found = [f for f in findings(6, "2200090203") if f.severity != "info"]
    assert found and found[0].code == "lr_too_low", [str(f) for f in found]
    assert "every common optimizer" in found[0].message
    assert any("learning rate 1e-5 (now 1e-6)" in a for a in found[0].advice), found[0].advice
    # A logged 1e-5 (float32: 9.99999975e-06) is on the range's edge, not below it: no LR verdict, no lower LR.
    edge = findings(5, "SKR18156592")
    assert "lr_too_low" not in [f.code for f in edge]
    assert not any("learning rate" in a and "(now 1e-5)" in a and "1e-6" in a for f in edge for a in f.advice)


def test_a_foreign_fine_tune_at_a_small_lr_is_not_called_low():
    # DNABERT-2 fine-tuned at 3e-5 (linear decay): inside fine-tuning's usual range, whatever the optimizer.
    assert "lr_too_low" not in verdict(5, "ShashankBommana")


# ----------------------------------------------------------------------------- plural metric names
def test_lists_named_in_the_plural_are_read_as_the_metrics():
    # A PyTorch loop's JSON: train_losses, val_losses, train_accs, val_accs; validation loss rising from epoch 3.
    path, _ = entry(7, "Amber016020")
    records, _ = read_history(path)
    assert {"train_loss", "val_loss", "train_acc", "val_acc"} <= set(records[0]) and len(records) == 8
    assert verdict(7, "Amber016020")[0] == "overfitting"
