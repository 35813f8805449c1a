"""The doctor on real small training runs: each broken run gets its code, each clean twin only ``healthy``."""

from __future__ import annotations

import numpy as np
import pytest
from make_runs import SCENARIOS

from trainwise.config import Config, parse_override
from trainwise.doctor import diagnose

BROKEN = [name for name, s in SCENARIOS.items() if s.expect != "healthy"]
CLEAN = [name for name, s in SCENARIOS.items() if s.expect == "healthy"]


def _diagnose(run):
    return diagnose(run.records, run.config, predictions={"confusion": run.confusion, "source": "validation"})


@pytest.mark.parametrize("name", BROKEN)
def test_broken_run_gets_its_code(runs, name):
    found = _diagnose(runs(name))
    assert SCENARIOS[name].expect in found.codes, [str(f) for f in found]
    assert "healthy" not in found.codes


@pytest.mark.parametrize("name", CLEAN)
def test_clean_run_is_only_healthy(runs, name):
    found = _diagnose(runs(name))
    assert found.codes[0] == "healthy", [str(f) for f in found]
    assert all(f.severity == "info" for f in found), [str(f) for f in found]


@pytest.mark.parametrize("name", ["digits", "breast_cancer", "digits_sgd", "digits_sparse_relu"])
def test_clean_run_is_healthy_at_every_epoch(runs, name):
    """Live diagnosis sees every prefix of a run; a false alarm at any epoch would be printed."""
    run = runs(name)
    for n in range(1, len(run.records) + 1):
        found = diagnose(run.records[:n], run.config)
        assert [f.code for f in found if f.severity != "info"] == [], (n, [str(f) for f in found])


def test_sparse_relu_and_saturated_tanh_runs_really_have_the_statistics(runs):
    """The clean twins above are only meaningful if the monitors saw what the rules would flag."""
    assert runs("digits_sparse_relu").records[-1]["dead_frac/net.0"] >= 0.5
    assert runs("digits_tanh_raw").records[-1]["saturated_frac/net.0"] >= 0.5
    assert min(r["val_acc"] for r in runs("digits_sparse_relu").records[-3:]) > 0.95


def test_overfitting_onset_is_the_validation_minimum(runs):
    run = runs("overfit_mnist1d")
    finding = next(f for f in _diagnose(run) if f.code == "overfitting")
    val = np.array([r["val_loss"] for r in run.records])
    best_epoch = int(np.argmin(val)) + 1
    assert abs(finding.evidence["onset_epoch"] - best_epoch) <= 2
    assert finding.epochs == (finding.evidence["onset_epoch"], len(run.records))
    assert finding.fixes[0] == "early_stopping.enabled=true"


def test_lr_findings_point_the_lr_the_right_way(runs):
    low = next(f for f in _diagnose(runs("lr_low_adam")) if f.code == "lr_too_low")
    high = next(f for f in _diagnose(runs("lr_high_adam")) if f.code == "lr_too_high")
    diverged = next(f for f in _diagnose(runs("diverge_sgd")) if f.code == "diverged")
    value = lambda fix: float(parse_override(fix)[1])  # noqa: E731
    assert low.fixes[0].startswith("optim.lr=") and value(low.fixes[0]) > 1e-5
    assert high.fixes[0].startswith("optim.lr=") and value(high.fixes[0]) < 0.05
    assert diverged.fixes[0].startswith("optim.lr=") and value(diverged.fixes[0]) < 2.0
    assert low.evidence["update_ratio_fastest"] < 1e-4
    assert high.evidence["update_ratio_typical"] >= 1e-2


def test_over_regularized_names_the_regulariser_and_clears_the_lr(runs):
    dropout = next(f for f in _diagnose(runs("dropout_09")) if f.code == "over_regularized")
    decay = next(f for f in _diagnose(runs("weight_decay_30")) if f.code == "over_regularized")
    assert "dropout 0.9" in dropout.message and dropout.fixes == ["model.dropout=0.1"]
    assert "weight decay 30" in decay.message and decay.fixes[0].startswith("optim.weight_decay=")
    assert float(parse_override(decay.fixes[0])[1]) < 30
    assert "not what holds it back" in decay.message  # LR 1e-3 is in range: it says so
    assert "lr_too_low" not in _diagnose(runs("weight_decay_30")).codes


def test_divergence_starts_where_the_loss_blew_up(runs):
    run = runs("diverge_sgd")
    finding = _diagnose(run).__getitem__(0)
    assert finding.code == "diverged" and finding.severity == "error"
    assert finding.epochs[0] == 1  # 940 after one epoch, far above ln 10
    assert {"lr_too_high", "unstable_training", "underfitting"}.isdisjoint(_diagnose(run).codes)


def test_stuck_run_names_the_likely_cause(runs):
    shuffled = next(f for f in _diagnose(runs("shuffled_labels")) if f.code == "stuck_at_chance")
    dead = next(f for f in _diagnose(runs("dead_relu_bias")) if f.code == "stuck_at_chance")
    assert "labels" in shuffled.message
    # dead from the start at a usual LR: a fresh init (biases zero) first, then batch norm, then an activation swap
    assert "dead ReLUs" in dead.message and dead.fixes[:3] == ["init.scheme=he_normal", "model.batch_norm=true", "model.activation=leaky_relu"]


def test_phase_regression_names_the_boundary(runs):
    finding = next(f for f in _diagnose(runs("lr_restart")) if f.code == "phase_regression")
    assert finding.evidence["boundary_epoch"] == 12
    assert (finding.evidence["from_phase"], finding.evidence["to_phase"]) == ("base", "restart")
    assert "30x" in finding.message


def test_every_fix_is_a_valid_override(runs):
    """Fixes are pasted into --set: each must parse and validate against Config."""
    seen = 0
    for name in SCENARIOS:
        for finding in _diagnose(runs(name)):
            for fix in finding.fixes:
                key, value = parse_override(fix)
                seen += 1
                Config().replace({key: value})
    assert seen >= 20
