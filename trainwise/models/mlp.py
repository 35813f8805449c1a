"""Multi-layer perceptron: ``flatten``, then per hidden layer ``hidden<k>`` = linear -> (norm) -> act -> (drop), then ``head``.

Parameters are named ``hidden1.linear.weight``, ``hidden1.norm.bias``, ``head.weight`` (trainwise.models.names;
the flat numbered layout of older runs still loads).
"""

from __future__ import annotations

import math

from torch import nn

from trainwise.config import ModelConfig
from trainwise.models.layers import activation, per_layer
from trainwise.models.names import Named, part


def mlp_trunk(in_features: int, hidden: list[int], cfg: ModelConfig) -> tuple[Named, int]:
    """The hidden layers ``hidden1 .. hiddenN``, and the width they end with."""
    blocks = []
    rates = per_layer(cfg.dropout, len(hidden))
    width = in_features
    for k, (size, rate) in enumerate(zip(hidden, rates), start=1):
        blocks.append((f"hidden{k}", part(linear=nn.Linear(width, size), norm=nn.BatchNorm1d(size) if cfg.batch_norm else None,
                                          act=activation(cfg.activation), drop=nn.Dropout(rate) if rate > 0 else None)))
        width = size
    return Named(blocks, flat_before=True), width


def build_mlp(cfg: ModelConfig, *, input_shape, out_dim: int, **_) -> nn.Module:
    trunk, width = mlp_trunk(math.prod(input_shape), cfg.hidden, cfg)
    return Named([("flatten", nn.Flatten()), *trunk.named_children(), ("head", nn.Linear(width, out_dim))], flat_before=True)
