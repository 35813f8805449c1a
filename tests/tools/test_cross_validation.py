"""Cross-validation on real data: disjoint stratified folds, a fixed test split, statistics, warnings,
findings per fold and in common, the fold ensemble, the CLI."""

import json

import numpy as np
import pytest
import torch

from tests.tools.cli import invoke
from trainwise import load_config
from trainwise.data import prepare_data
from trainwise.errors import UserError
from trainwise.tools.cross_validation import cross_validate, load_cv_ensemble, make_folds

TINY = {"train.progress": "none", "train.threads": 1, "model.hidden": [16], "train.epochs": 2}


def test_folds_are_disjoint_stratified_and_share_the_test_split():
    cfg = load_config("configs/breast_cancer.toml", TINY | {"data.normalize": False})
    folds = make_folds(cfg, 4)
    single = prepare_data(cfg.data)  # what one run with this config trains and tests on
    pool = torch.cat([single.train.inputs[0], single.val.inputs[0]])
    vals = torch.cat([f.val.inputs[0] for f in folds])
    assert len(vals) == len(pool) and torch.equal(vals.sort(dim=0).values, pool.sort(dim=0).values)  # a partition
    share = single.train.targets.float().mean().item()
    for f in folds:
        assert len(f.train) + len(f.val) == len(pool)
        assert abs(f.val.targets.float().mean().item() - share) < 0.02  # stratified
        assert torch.equal(f.test.inputs[0], single.test.inputs[0]) and torch.equal(f.test.targets, single.test.targets)


def test_each_fold_is_normalized_with_its_own_training_statistics():
    folds = make_folds(load_config("configs/breast_cancer.toml", TINY), 3)
    for f in folds:
        x = f.train.inputs[0].double()
        assert x.mean(0).abs().max() < 1e-4 and (x.std(0, unbiased=False) - 1).abs().max() < 1e-3
    assert not torch.equal(folds[1].test.inputs[0], folds[0].test.inputs[0])  # each fold's statistics, on test too


def test_too_many_folds_for_a_class():
    with pytest.raises(UserError, match="too few for 5 stratified folds"):
        make_folds(load_config(None, TINY | {"data.train_subset": 20}), 5)
    with pytest.raises(UserError, match="2 or more"):
        make_folds(load_config(None, TINY), 1)


class Finding:
    def __init__(self, code, severity):
        self.code, self.severity = code, severity


def stand_in_diagnose(run_dir):
    extra = [Finding("overfitting", "warning")] if run_dir.name == "fold-2" else []
    return [Finding("healthy", "info"), *extra]


def test_cross_validate_writes_folds_summary_findings_and_an_ensemble(tmp_path):
    cfg = load_config("configs/breast_cancer.toml", TINY)
    result = cross_validate(cfg, folds=3, out=tmp_path, max_std=0.0, diagnose=stand_in_diagnose)
    summary = json.loads((tmp_path / "cv_summary.json").read_text())
    for k in (1, 2, 3):
        assert (tmp_path / f"fold-{k}" / "history.jsonl").is_file()
    acc = summary["metrics"]["val_acc"]
    assert acc["values"] == [r.history[-1]["val_acc"] for r in result.runs]
    assert acc["mean"] == pytest.approx(np.mean(acc["values"])) and acc["std"] == pytest.approx(np.std(acc["values"], ddof=1))
    assert any("high spread" in w and "val_acc" in w for w in summary["warnings"])  # max_std = 0: always
    assert summary["doctor"]["common"] == ["healthy"] and summary["doctor"]["some_folds"] == {"overfitting": [2]}
    assert "doctor, in fold 2 only: overfitting" in result.to_text()

    ensemble = load_cv_ensemble(tmp_path)
    raw = prepare_data(cfg.data.model_copy(update={"val_fraction": 0.0, "normalize": False})).test.inputs[0][:20]
    with torch.no_grad():
        out = ensemble(raw)  # raw inputs; each member standardizes them with its fold's statistics
        assert out.shape == (20, 1) and torch.allclose(out, result.ensemble(raw), atol=1e-5)
        p = torch.stack([torch.sigmoid(r.model.eval()(r.data.test.inputs[0][:20])) for r in result.runs]).mean(0)
        assert torch.allclose(torch.sigmoid(out), p, atol=1e-5)
    assert 0.5 < summary["ensemble"]["test"]["acc"] <= 1

    # The same cross-validation again: finished folds are read back, an interrupted one resumes.
    (tmp_path / "fold-3" / "summary.json").unlink()  # as if fold 3 was interrupted after its last checkpoint
    before = (tmp_path / "fold-1" / "history.jsonl").stat().st_mtime_ns
    again = cross_validate(cfg, folds=3, out=tmp_path, max_std=0.0, diagnose=stand_in_diagnose)
    assert (tmp_path / "fold-1" / "history.jsonl").stat().st_mtime_ns == before  # not trained again
    assert again.summary["metrics"] == summary["metrics"] and again.summary["ensemble"] == summary["ensemble"]

    calm = cross_validate(cfg, folds=3, max_std=1.0)
    assert calm.summary["warnings"] == [] and calm.summary["doctor"]["available"] is False


def test_cli_cv(tmp_path):
    result = invoke("cv", "--folds", "2", "--set", "model.hidden=[16]", "--set", "train.epochs=1", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "2-fold cross-validation" in result.stdout and "ensemble of the 2 fold models" in result.stdout
    assert (tmp_path / "cv_summary.json").is_file()
