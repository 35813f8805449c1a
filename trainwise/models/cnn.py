"""A plain CNN: per block Conv3x3 -> (BatchNorm) -> activation -> MaxPool -> Dropout2d; then pool and a linear head."""

from __future__ import annotations

from torch import nn

from trainwise.config import ModelConfig
from trainwise.errors import UserError
from trainwise.models.layers import activation, per_layer


def image_shape(input_shape: tuple[int, ...], model: str) -> tuple[int, int, int]:
    if len(input_shape) == 2:  # (H, W) -> one channel
        return (1, *input_shape)
    if len(input_shape) != 3:
        raise UserError(f"model {model!r} needs image inputs", expected="samples shaped (C, H, W) or (H, W)",
                        received=f"samples shaped {tuple(input_shape)}", fix="use model.name=mlp for vectors")
    return tuple(input_shape)


def cnn_trunk(input_shape, cfg: ModelConfig) -> tuple[nn.Sequential, int]:
    channels, height, width = image_shape(input_shape, "cnn")
    rates = per_layer(cfg.dropout, len(cfg.channels))
    layers: list[nn.Module] = []
    if len(input_shape) == 2:
        layers.append(nn.Unflatten(1, (1, *input_shape)))
    for out, rate in zip(cfg.channels, rates):
        layers.append(nn.Conv2d(channels, out, 3, padding=1, bias=not cfg.batch_norm))
        if cfg.batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(activation(cfg.activation))
        if min(height, width) >= 2:  # stop pooling once the map is 1x1
            layers.append(nn.MaxPool2d(2))
            height, width = height // 2, width // 2
        if rate > 0:
            layers.append(nn.Dropout2d(rate))
        channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), channels


def build_cnn(cfg: ModelConfig, *, input_shape, out_dim: int, **_) -> nn.Module:
    trunk, width = cnn_trunk(input_shape, cfg)
    return nn.Sequential(*trunk, nn.Linear(width, out_dim))
