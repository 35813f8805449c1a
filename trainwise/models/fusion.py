"""Two inputs: an image (or vector) and an extra feature vector, each through its own branch, then joined.

This is the shape of a classifier that takes an image plus, say, motion features: ``model(image, features)``.
The image branch is the CNN trunk for images and the MLP trunk for vectors.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trainwise.config import ModelConfig
from trainwise.errors import UserError
from trainwise.models.cnn import cnn_trunk
from trainwise.models.mlp import mlp_trunk


class FusionNet(nn.Module):
    def __init__(self, cfg: ModelConfig, input_shape, feature_dim: int, out_dim: int):
        super().__init__()
        if len(input_shape) >= 2:
            self.image, width = cnn_trunk(input_shape, cfg)
        else:
            trunk, width = mlp_trunk(math.prod(input_shape), cfg.hidden, cfg)
            self.image = nn.Sequential(nn.Flatten(), *trunk)
        plain = cfg.model_copy(update={"dropout": 0.0})
        self.features, fwidth = mlp_trunk(feature_dim, cfg.feature_hidden, plain)
        self.head = nn.Linear(width + fwidth, out_dim)

    def forward(self, image: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.image(image), self.features(features)], dim=1))


def build_fusion(cfg: ModelConfig, *, input_shape, feature_dim: int, out_dim: int, **_) -> nn.Module:
    if feature_dim == 0:
        raise UserError("model 'fusion' needs an extra feature vector", expected="data.features naming it (NPZ key), or (x, features, y) tuples",
                        fix="set data.features, or use model.name=cnn/mlp")
    return FusionNet(cfg, input_shape, feature_dim, out_dim)
