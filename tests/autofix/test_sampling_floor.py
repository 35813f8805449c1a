"""A validation score moves by sampling alone: trainwise fix keeps a change only beyond that noise."""

import math

import trainwise
from trainwise.autofix.score import sampling_floor

SMALL = {"data__name": "digits", "data__val_fraction": 0.2, "train__progress": "none", "train__threads": 1, "train__report": False}


def test_the_sampling_floor_is_the_two_proportion_noise_at_the_pooled_score():
    # 0.9653 and 0.9826 on 288 samples: pooled 0.974, 2 * sqrt(2 * 0.974 * 0.026 / 288) = 0.0264
    assert math.isclose(sampling_floor(0.9653, 0.9826, 288, "val_acc"), 2 * math.sqrt(2 * 0.97395 * 0.02605 / 288), rel_tol=1e-9)
    assert sampling_floor(0.9653, 0.9826, 288, "val_acc") > 0.9826 - 0.9653  # that gain is within it
    assert sampling_floor(0.5, 0.5, 10_000, "val_acc") < sampling_floor(0.5, 0.5, 100, "val_acc")  # more samples, less noise
    assert sampling_floor(0.9, -math.inf, 288, "val_acc") == sampling_floor(0.9, 0.9, 288, "val_acc")  # a diverged attempt
    assert sampling_floor(0.5, 0.4, 288, "val_loss") == 0.0 and sampling_floor(0.9, 0.95, None, "val_acc") == 0.0


def test_every_round_of_a_real_chain_clears_the_sampling_noise_of_its_validation_split(tmp_path):
    """30 digits learnt by heart: more data helps by 6 points on 288 validation samples, beyond their noise."""
    run = trainwise.fit(out=tmp_path / "tiny", data__train_subset=30, model__hidden=[256], train__epochs=30, **SMALL)
    n = run.summary["val_samples"]
    assert n == 288  # 20 % of digits' 1,437 training-and-validation images, as the split holds them
    chain = trainwise.fix(tmp_path / "tiny", rounds=1, out=tmp_path / "fix")
    (first,) = chain.rounds
    assert first["threshold"] >= sampling_floor(first["before"], first["after"], n, "val_acc") > 0.05
    assert first["kept"] == (first["gain"] > first["threshold"] or first["above_window"])
    assert "sampling noise of the 288 validation samples" in chain.noise["how"]
