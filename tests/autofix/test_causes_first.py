"""trainwise fix on real runs: a hard cause is fixed before what follows from it, and a fix that steadies a
swinging run is kept.

A layer narrower than the number of classes is widened before more epochs, even while the loss still
falls; an LR outside the optimizer's usual range is fixed before the prediction collapse it causes; and an
attempt above every epoch of a diverging run's last epochs is kept although that run's swings make the
spread threshold larger than the gain."""

import math

import trainwise
from trainwise.autofix.attempt import load_attempt
from trainwise.autofix.chain import doctor_fixes
from trainwise.autofix.score import beats_window, window_best
from trainwise.doctor import fixes
from trainwise.doctor.context import Context

QUIET = {"train__progress": "none", "train__threads": 1, "train__report": False}
DIGITS = {"data__name": "digits", "data__val_fraction": 0.2, **QUIET}


def test_a_layer_narrower_than_the_classes_is_widened_before_more_epochs_while_the_loss_still_falls(tmp_path):
    run = trainwise.fit(out=tmp_path / "pinched", model__hidden=[64, 1, 64], train__epochs=20, train__seed=300, **DIGITS)
    under = next(f for f in run.findings if f.code == "underfitting")
    assert under.evidence["still_improving"] == 1, "the loss had stopped falling: this run does not test the order"
    assert under.fixes[:2] == ["model.hidden=[64, 64, 64]", "train.epochs=40"], under.fixes
    chain = trainwise.fix(tmp_path / "pinched", rounds=1, out=tmp_path / "fix")
    (first,) = chain.rounds
    assert first["change"] == "model.hidden=[64, 64, 64]" and first["kept"] and first["after"] > 0.9


def test_narrower_than_classes_reads_mlp_layers_and_a_cnns_last_stage():
    def ctx(model):
        return Context([{"epoch": 1, "train_loss": 2.3}], {"model": model}, num_classes=10)

    assert fixes.narrower_than_classes(ctx({"name": "mlp", "hidden": [64, 3]}))
    assert not fixes.narrower_than_classes(ctx({"name": "mlp", "hidden": [64, 10]}))
    assert fixes.narrower_than_classes(ctx({"name": "cnn", "channels": [32, 4]}))
    assert not fixes.narrower_than_classes(ctx({"name": "cnn", "channels": [2, 16]}))  # only the last stage reaches the head


def test_an_lr_below_the_usual_range_is_fixed_before_the_collapse_it_causes(tmp_path):
    trainwise.fit(out=tmp_path / "crawl", optim__lr=1e-6, train__epochs=8, **DIGITS)
    current = load_attempt(tmp_path / "crawl")
    codes = [f.code for f in current.problems]
    assert codes.index("prediction_collapse") < codes.index("lr_too_low"), "the doctor ranks them the other way: nothing to test"
    finding, change = next(doctor_fixes(current))
    assert finding.code == "lr_too_low" and change == "optim.lr=1e-3"
    # inside the usual range the doctor's rank stands
    trainwise.fit(out=tmp_path / "usual", optim__lr=1e-3, model__hidden=[64, 1, 64], train__epochs=8, **DIGITS)
    usual = load_attempt(tmp_path / "usual")
    assert [f.code for f, _ in doctor_fixes(usual)][:1] == [f.code for f in usual.problems][:1]


def test_a_fix_that_steadies_a_diverging_run_is_kept_above_its_swings(tmp_path):
    """Batch size 1 at SGD 0.1 on breast cancer: validation swings by 0.1 (0.86, 0.96, 0.87) before the loss overflows."""
    trainwise.fit(out=tmp_path / "b1", data__name="breast_cancer", data__val_fraction=0.2, data__batch_size=1, optim__name="sgd",
                  optim__lr=0.1, model__hidden=[64], train__epochs=10, train__seed=7, **QUIET)
    chain = trainwise.fix(tmp_path / "b1", rounds=1, out=tmp_path / "fix")
    (first,) = chain.rounds
    assert first["finding"] == "diverged" and first["change"].startswith("optim.lr=")
    broken = load_attempt(tmp_path / "b1")
    assert first["gain"] <= first["threshold"], "the spread threshold alone keeps it: this run does not test the window"
    assert first["kept"] and first["above_window"] and first["after"] > broken.window_best("val_acc")
    assert "kept: above every epoch of the run before" in chain.to_text()


def test_beats_window_needs_more_than_the_best_epoch_plus_the_attempts_own_noise():
    records = [{"epoch": i + 1, "val_acc": v} for i, v in enumerate([0.80, 0.62, 0.85])]
    best = window_best(records, "val_acc")
    assert best == 0.85
    assert beats_window(best, 0.95, 0.01, "val_acc")
    assert not beats_window(best, 0.853, 0.0, "val_acc")  # the floor: half a point
    assert not beats_window(best, 0.90, 0.03, "val_acc")  # within twice the attempt's own spread
    assert window_best([{"epoch": 1, "val_loss": 0.5}, {"epoch": 2, "val_loss": 0.4}], "val_loss") == 0.4  # losses: the lowest
    assert window_best([], "val_acc") == -math.inf
