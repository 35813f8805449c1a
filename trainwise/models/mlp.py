"""Multi-layer perceptron: [Linear -> (BatchNorm) -> activation -> Dropout] x n -> Linear."""

from __future__ import annotations

import math

from torch import nn

from trainwise.config import ModelConfig
from trainwise.models.layers import activation, per_layer


def mlp_trunk(in_features: int, hidden: list[int], cfg: ModelConfig) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    rates = per_layer(cfg.dropout, len(hidden))
    width = in_features
    for size, rate in zip(hidden, rates):
        layers.append(nn.Linear(width, size))
        if cfg.batch_norm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(activation(cfg.activation))
        if rate > 0:
            layers.append(nn.Dropout(rate))
        width = size
    return nn.Sequential(*layers), width


def build_mlp(cfg: ModelConfig, *, input_shape, out_dim: int, **_) -> nn.Module:
    trunk, width = mlp_trunk(math.prod(input_shape), cfg.hidden, cfg)
    return nn.Sequential(nn.Flatten(), *trunk, nn.Linear(width, out_dim))
