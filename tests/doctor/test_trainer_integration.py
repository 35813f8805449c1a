"""The monitors, the NaN guard and the doctor inside trainwise's own Trainer, through a run directory."""

from __future__ import annotations

import json

import pytest

from trainwise import fit
from trainwise.callbacks.doctor import DoctorCallback
from trainwise.config import build_config, merge_overrides
from trainwise.core import Callback, State
from trainwise.doctor import diagnose

# The Trainer adds the monitors itself (from [monitors]) and, with doctor.live, a DoctorCallback.
QUIET = {"train.progress": "none", "train.threads": 1, "train.report": False, "monitors.every_n_steps": 5, "train.epochs": 8}


def _config(**overrides):
    return build_config(merge_overrides({}, {**QUIET, **overrides}))


def test_run_directory_round_trip(tmp_path):
    cfg = _config(**{"data.name": "digits", "model.hidden": [64], "doctor.live": False})
    lines: list[str] = []
    run = fit(cfg, callbacks=[DoctorCallback(emit=lines.append)], out=tmp_path)
    last = json.loads((tmp_path / "history.jsonl").read_text().splitlines()[-1])
    assert {"grad_norm", "update_ratio/hidden1.linear", "dead_frac/hidden1.linear", "nonfinite_steps"} <= set(last)
    found = diagnose(tmp_path)
    assert found.codes[0] == "healthy" and lines == []
    assert [f.code for f in run.findings] == found.codes
    assert json.loads((tmp_path / "findings.json").read_text())["findings"][0]["code"] == "healthy"


def test_broken_run_directory_uses_config_and_test_confusion(tmp_path):
    # The zoo's raw_cancer case: raw features in the thousands kill every ReLU in the first epoch.
    cfg = _config(**{"data.name": "breast_cancer", "data.normalize": False, "data.val_fraction": 0.2, "model.hidden": [64],
                     "optim.name": "sgd", "optim.lr": 1e-3, "train.epochs": 20})
    fit(cfg, out=tmp_path)
    found = diagnose(tmp_path)
    collapse = next(f for f in found if f.code == "prediction_collapse")
    assert collapse.evidence["source"] == "test confusion matrix"
    assert "data.normalize=true" in collapse.fixes


class Poison(Callback):
    order = -1000

    def __init__(self, call: int):
        self.call, self.count = call, 0

    def on_batch_start(self, state: State) -> None:
        if self.count == self.call:
            state.inputs = (state.inputs[0] * float("nan"),)
        self.count += 1


def test_rollback_inside_the_trainer():
    cfg = _config(**{"data.name": "digits", "model.hidden": [64], "monitors.nan_policy": "rollback", "train.epochs": 3})
    run = fit(cfg, callbacks=[Poison(30)])
    records = run.history.records
    bad = next(i for i, r in enumerate(records) if r.get("event") == "nan_rollback")
    assert records[bad]["nonfinite_steps"] == 1
    assert records[-1]["lr"] == pytest.approx(cfg.optim.lr * cfg.monitors.nan_lr_factor)
    assert "stop_reason" in run.summary and "completed" in run.summary["stop_reason"]
    assert diagnose(records, cfg)[0].code == "diverged"  # a warning: the guard absorbed it


def test_a_gentle_unfreeze_is_a_boundary_without_a_finding(tmp_path):
    # Digits 0-4 pretrain an MLP; 5-9 fine-tune it, head only until epoch 4, everything after, at AdamW 1e-3:
    # the validation loss keeps falling through the boundary (a benign one the phase rule must leave alone).
    fit(_config(**{"data.name": "digits", "data.classes": [0, 1, 2, 3, 4], "train.epochs": 10, "doctor.live": False}),
        out=tmp_path / "pre")
    run = fit(_config(**{"data.name": "digits", "data.classes": [5, 6, 7, 8, 9], "finetune.init_from": str(tmp_path / "pre"),
                         "finetune.freeze": ["*"], "finetune.unfreeze_epoch": 4, "optim.lr": 1e-3, "train.epochs": 10,
                         "doctor.live": False}))
    val = [r["val_loss"] for r in run.history.records]
    assert val[3] < val[2]  # the boundary itself helped
    assert [f.code for f in run.findings if f.severity != "info"] == []
    assert "phase_regression" not in {f.code for f in run.findings}
