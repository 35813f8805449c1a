"""Tensors passed to fit(...) follow data.normalize as named datasets do: training statistics only, recorded in preprocess.json."""

from __future__ import annotations

import json

import numpy as np
import torch
from sklearn.datasets import load_digits

import trainwise
from trainwise.doctor import diagnose

QUIET = {"train__epochs": 1, "train__progress": "none", "train__report": False, "doctor__live": False}


def digits_tensors():
    d = load_digits()
    x, y = torch.tensor(d.data, dtype=torch.float32), torch.tensor(d.target)  # pixel values 0..16, not standardized
    return (x[:1200], y[:1200]), (x[1200:1500], y[1200:1500]), (x[1500:], y[1500:])


def test_tensors_are_standardized_with_training_statistics_only(tmp_path):
    train, val, test = digits_tensors()
    run = trainwise.fit(train=train, val=val, test=test, out=tmp_path / "run", **QUIET)
    mean, std = train[0].double().mean(0), train[0].double().std(0, unbiased=False)
    std = torch.where(std < 1e-8, torch.ones_like(std), std)
    got = run.data.test.inputs[0].double()
    assert torch.allclose(got, (test[0].double() - mean) / std, atol=1e-5)  # the test split with the training split's statistics
    assert abs(float(run.data.train.inputs[0].mean())) < 1e-5
    saved = json.loads((tmp_path / "run" / "preprocess.json").read_text())["normalization"]["input"]
    assert np.allclose(saved["mean"], mean.numpy(), atol=1e-5) and np.allclose(saved["std"], std.numpy(), atol=1e-5)
    # predict takes raw inputs and applies the recorded statistics
    classes, _ = trainwise.predict(tmp_path / "run", test[0][:50])
    with torch.no_grad():
        expected = run.model.cpu()(((test[0][:50] - mean.float()) / std.float())).argmax(1)
    assert classes == [str(int(c)) for c in expected]


def test_normalize_false_keeps_tensors_as_given(tmp_path):
    train, val, test = digits_tensors()
    run = trainwise.fit(train=train, val=val, test=test, data__normalize=False, out=tmp_path / "raw", **QUIET)
    assert torch.equal(run.data.test.inputs[0], test[0])
    assert json.loads((tmp_path / "raw" / "preprocess.json").read_text())["normalization"] == {}


def test_the_doctor_never_recommends_normalize_when_it_is_on():
    stuck = [{"epoch": i + 1, "train_loss": 2.30, "val_loss": 2.30, "train_acc": 0.1, "val_acc": 0.1} for i in range(10)]
    fixes = lambda normalize: [fx for f in diagnose(stuck, {"data": {"name": "digits", "normalize": normalize}}) for fx in f.fixes]  # noqa: E731
    assert "data.normalize=true" not in fixes(True)
    assert "data.normalize=true" in fixes(False)
