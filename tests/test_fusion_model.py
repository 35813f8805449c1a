"""The fusion model: two branches, a real fusion layer and dropout at every stage, as a config."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import trainwise
from trainwise.config import Config, ModelConfig
from trainwise.errors import UserError
from trainwise.models import build_model

# A video-frame classifier with motion features: Dropout2d 0.1 / 0.15 after the two conv blocks, Dropout 0.2
# after the fusion layer, 0.3 before the classifier.
FRAMES = {"name": "fusion", "channels": [32, 64], "dropout": [0.1, 0.15], "batch_norm": True, "feature_hidden": [32],
          "fusion_hidden": [128, 64], "fusion_dropout": [0.2, 0.3]}


def test_frames_layout_is_a_config():
    model = build_model(ModelConfig(**FRAMES), (3, 96, 96), 12, 1)
    drops = [(name, type(m).__name__, m.p) for name, m in model.named_modules() if isinstance(m, (nn.Dropout, nn.Dropout2d))]
    assert [(kind, p) for _, kind, p in drops] == [("Dropout2d", 0.1), ("Dropout2d", 0.15), ("Dropout", 0.2), ("Dropout", 0.3)]
    assert [n.split(".")[0] for n, _, _ in drops] == ["image", "image", "fusion", "fusion"]
    # the fusion layer reads both branches: 64 image channels + 32 features
    assert model.fusion.hidden1.linear.in_features == 64 + 32 and model.fusion.hidden1.linear.out_features == 128
    # the 0.3 dropout is the last thing before the classifier
    assert [n for n, _, _ in drops][-1] == "fusion.hidden2.drop" and model.fusion.hidden2.drop.p == 0.3 and model.head.in_features == 64
    x, f = torch.randn(4, 3, 96, 96), torch.randn(4, 12)
    model.eval()
    assert torch.equal(model(x, f), model(x, f)) and model(x, f).shape == (4, 1)
    model.train()
    assert not torch.equal(model(x, f), model(x, f))  # dropout acts in training


def test_joined_straight_into_the_classifier_and_mistakes():
    model = build_model(ModelConfig(name="fusion", channels=[8], fusion_hidden=[], fusion_dropout=0.3), (1, 8, 8), 4, 3)
    assert isinstance(model.fusion.drop, nn.Dropout) and model.head.in_features == 8 + 32
    with pytest.raises(UserError, match="fusion_dropout has 1 rates"):
        build_model(ModelConfig(name="fusion", fusion_hidden=[16, 8], fusion_dropout=[0.2]), (1, 8, 8), 4, 3)
    with pytest.raises(UserError, match="invalid value for 'model.fusion_dropout'"):
        Config().replace({"model.fusion_dropout": 1.5})


def test_fusion_trains_on_digits_with_a_feature_vector(quiet):
    """Digits plus a feature vector (row and column means): the seed layout learns both."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images[:, None] / 16.0).astype(np.float32)
    f = np.concatenate([x.mean(axis=2)[:, 0], x.mean(axis=3)[:, 0]], axis=1)
    cfg = Config().replace({**quiet, **{f"model.{k}": v for k, v in FRAMES.items()}, "model.channels": [16, 32], "train.epochs": 12,
                            "optim.lr": 3e-3})
    run = trainwise.fit(cfg, train=(x[:1400], f[:1400], d.target[:1400]), val=(x[1400:1600], f[1400:1600], d.target[1400:1600]),
                        test=(x[1600:], f[1600:], d.target[1600:]))
    assert run.summary["test"]["acc"] > 0.9
