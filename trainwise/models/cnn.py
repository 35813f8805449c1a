"""A plain CNN: per block ``stage<k>`` = conv3x3 -> (norm) -> act -> pool -> (drop, Dropout2d); then ``pool``, ``flatten``, ``head``.

Parameters are named ``stage1.conv.weight``, ``stage2.norm.bias``, ``head.weight`` (trainwise.models.names;
the flat numbered layout of older runs still loads).
"""

from __future__ import annotations

from torch import nn

from trainwise.config import ModelConfig
from trainwise.errors import UserError
from trainwise.models.layers import activation, per_layer
from trainwise.models.names import Named, part


def image_shape(input_shape: tuple[int, ...], model: str) -> tuple[int, int, int]:
    if len(input_shape) == 2:  # (H, W) -> one channel
        return (1, *input_shape)
    if len(input_shape) != 3:
        raise UserError(f"model {model!r} needs image inputs", expected="samples shaped (C, H, W) or (H, W)",
                        received=f"samples shaped {tuple(input_shape)}", fix="use model.name=mlp for vectors")
    return tuple(input_shape)


def cnn_trunk(input_shape, cfg: ModelConfig) -> tuple[Named, int]:
    channels, height, width = image_shape(input_shape, "cnn")
    rates = per_layer(cfg.dropout, len(cfg.channels))
    parts: list[tuple[str, nn.Module]] = []
    if len(input_shape) == 2:
        parts.append(("unflatten", nn.Unflatten(1, (1, *input_shape))))
    for k, (out, rate) in enumerate(zip(cfg.channels, rates), start=1):
        pool = None
        if min(height, width) >= 2:  # stop pooling once the map is 1x1
            pool = nn.MaxPool2d(2)
            height, width = height // 2, width // 2
        parts.append((f"stage{k}", part(conv=nn.Conv2d(channels, out, 3, padding=1, bias=not cfg.batch_norm),
                                        norm=nn.BatchNorm2d(out) if cfg.batch_norm else None, act=activation(cfg.activation),
                                        pool=pool, drop=nn.Dropout2d(rate) if rate > 0 else None)))
        channels = out
    parts += [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten())]
    return Named(parts, flat_before=True), channels


def build_cnn(cfg: ModelConfig, *, input_shape, out_dim: int, **_) -> nn.Module:
    trunk, width = cnn_trunk(input_shape, cfg)
    return Named([*trunk.named_children(), ("head", nn.Linear(width, out_dim))], flat_before=True)
