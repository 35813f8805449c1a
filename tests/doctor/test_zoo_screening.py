"""The doctor zoo's manifestation checks (benchmarks/doctor_zoo/manifest.py) on real short runs.

Screening keeps a case only when its fault shows; these checks decide that without the doctor, so they
must see a planted fault on the broken run and not on its clean twin.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ZOO = Path(__file__).resolve().parents[2] / "benchmarks" / "doctor_zoo"
sys.path.insert(0, str(ZOO))

import run as zoo  # noqa: E402
from cases import CASES  # noqa: E402


@pytest.mark.parametrize("name", ["init_x10_no_norm", "bottleneck_1", "imbalance_95_5"])
def test_fault_shows_on_the_broken_run_and_not_on_its_twin(name):
    case = next(c for c in CASES if c.name == name)
    bug, twin = zoo.run_pair(case, seed=0)
    shown, evidence = bug.shown
    assert shown, evidence
    assert not case.manifested(twin.outcome, twin.outcome)[0]
    assert not twin.ours, twin.findings  # the twin is clean for the doctor too


def test_screen_table_keeps_a_case_only_on_enough_seeds():
    case = next(c for c in CASES if c.name == "bottleneck_1")
    bug, twin = zoo.run_pair(case, seed=0)
    missed = zoo.Result(**{**bug.__dict__, "seed": 1, "shown": (False, "not shown")})
    table = zoo.screen_table([bug, twin] * 3 + [missed, twin])
    assert "| bottleneck_1 |" in table and "3 of 4 | yes" in table
    assert "2 of 4 | **no**" in zoo.screen_table([bug, twin] * 2 + [missed, twin] * 2)


def test_zoo_v2_cases_are_valid_configs_with_twins_and_disjoint_halves():
    import v2

    names = [c.name for c in v2.DEV + v2.HELD_OUT]
    assert len(names) == len(set(names)) and set(v2.DEV_SEEDS).isdisjoint(v2.HELD_OUT_SEEDS)
    for case in v2.DEV + v2.HELD_OUT:
        for extra in ({}, case.twin):
            raw = {k: ("runs/pretrained" if v == v2.PRETRAINED else v) for k, v in {**case.overrides, **extra}.items()}
            zoo.build_config(zoo.merge_overrides({}, {**raw, **zoo.BASE}))
        assert case.twin or case.bug.name, case.name  # a twin differs from its broken run


def test_zoo_v2_gap_check_sees_training_pull_away_in_the_last_phase():
    import v2
    from manifest import Outcome

    def outcome(train_end: float, val_end: float) -> Outcome:
        train = [0.5 + 0.01 * i for i in range(8)] + [train_end] * 6
        val = [0.55 + 0.01 * i for i in range(8)] + [val_end] * 6
        return Outcome([{"epoch": i + 1, "train_acc": t, "val_acc": v} for i, (t, v) in enumerate(zip(train, val))], {}, 10)

    assert v2.gap_jump(outcome(0.75, 0.62), outcome(0.58, 0.63))[0]
    assert not v2.gap_jump(outcome(0.60, 0.64), outcome(0.58, 0.63))[0]


def test_weight_decay_that_flattens_the_loss_is_over_regularized_through_its_noise():
    """SGD with weight decay 0.1 on digits: the training loss sits at 0.88-0.99 from epoch 6 to 20 at 0.72
    training accuracy; its last epoch lands 5 % under the one five epochs before, which is noise -- the
    last quarter's best is within 2 % of the best before it. The twin (weight decay 1e-4) is left alone."""
    case = next(c for c in CASES if c.name == "weight_decay_0.1")
    bug, twin = zoo.run_pair(case, seed=8)
    assert "over_regularized" in bug.ours, bug.findings
    assert "over_regularized" not in twin.ours and not twin.ours, twin.findings


def test_a_run_short_of_a_fit_under_strong_weight_decay_lightens_it_before_training_longer():
    """SGD with weight decay 0.1 on digits, seed 400: 0.80 training accuracy and the loss still falling, so
    the finding is underfitting, not over_regularized; but the config's decay (1 % of every weight a step)
    is what slows the fit, so its fix comes first. Trained 40 epochs instead, the same run ended worse."""
    case = next(c for c in CASES if c.name == "weight_decay_0.1")
    bug, _ = zoo.run_pair(case, seed=400)
    finding = next(f for f in bug.findings if "underfitting" in f)
    assert "weight decay 0.1" in finding and "Try: optim.weight_decay=" in finding, bug.findings
