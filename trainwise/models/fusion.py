"""Two inputs: an image (or vector) and an extra feature vector, each through its own branch, then fused.

This is the shape of a classifier that takes an image plus, say, motion features: ``model(image, features)``.

    image    -> image branch (CNN trunk: per block conv, norm, activation, pool, Dropout2d(model.dropout[k]))
    features -> feature branch (MLP trunk, model.feature_hidden)
    concatenation -> fusion layers (model.fusion_hidden; each Linear, norm, activation, Dropout(model.fusion_dropout[k]))
                  -> classifier (Linear)

For vectors the image branch is the MLP trunk (model.hidden). A video-frame classifier with a motion-feature
branch, Dropout2d 0.1 / 0.15 after its two conv blocks, dropout 0.2 after the fusion layer and 0.3 before
the classifier is ``channels = [32, 64], dropout = [0.1, 0.15], fusion_hidden = [128, 64],
fusion_dropout = [0.2, 0.3]``. Modules are named ``image`` (``image.stage1.conv`` ..., or ``image.hidden1.linear`` ...),
``features`` (``features.hidden1.linear`` ...), ``fusion`` (``fusion.hidden1.linear`` ...) and ``head``
(trainwise.models.names; the numbered layout of older runs still loads).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trainwise.config import ModelConfig
from trainwise.errors import UserError
from trainwise.models.cnn import cnn_trunk
from trainwise.models.layers import per_layer
from trainwise.models.mlp import mlp_trunk
from trainwise.models.names import Named


def fusion_layers(width: int, cfg: ModelConfig) -> tuple[Named, int]:
    """The layers after the concatenation of the branches, and the width they end with."""
    if not cfg.fusion_hidden:
        if isinstance(cfg.fusion_dropout, list) and cfg.fusion_dropout:
            raise UserError("model.fusion_dropout has rates for no fusion layer", expected="one rate (before the classifier) with fusion_hidden = []",
                            received=cfg.fusion_dropout, fix="give model.fusion_hidden one size per rate")
        rate = cfg.fusion_dropout if isinstance(cfg.fusion_dropout, float) else 0.0
        return Named([("drop", nn.Dropout(rate))] if rate > 0 else [], flat_before=True), width
    rates = per_layer(cfg.fusion_dropout, len(cfg.fusion_hidden), "model.fusion_dropout")
    # the fusion layers are an MLP trunk over the concatenation, with their own dropout rates
    return mlp_trunk(width, cfg.fusion_hidden, cfg.model_copy(update={"dropout": rates}))


class FusionNet(nn.Module):
    def __init__(self, cfg: ModelConfig, input_shape, feature_dim: int, out_dim: int):
        super().__init__()
        if len(input_shape) >= 2:
            self.image, width = cnn_trunk(input_shape, cfg)
        else:
            trunk, width = mlp_trunk(math.prod(input_shape), cfg.hidden, cfg)
            self.image = Named([("flatten", nn.Flatten()), *trunk.named_children()], flat_before=True)
        plain = cfg.model_copy(update={"dropout": 0.0})
        self.features, fwidth = mlp_trunk(feature_dim, cfg.feature_hidden, plain)
        self.fusion, width = fusion_layers(width + fwidth, cfg)
        self.head = nn.Linear(width, out_dim)

    def forward(self, image: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.fusion(torch.cat([self.image(image), self.features(features)], dim=1)))


def build_fusion(cfg: ModelConfig, *, input_shape, feature_dim: int, out_dim: int, **_) -> nn.Module:
    if feature_dim == 0:
        raise UserError("model 'fusion' needs an extra feature vector", expected="data.features naming it (NPZ key), or (x, features, y) tuples",
                        fix="set data.features, or use model.name=cnn/mlp")
    return FusionNet(cfg, input_shape, feature_dim, out_dim)
