"""A fast VGG-style net for small images: a conv stem, blocks of (conv-BN-act) x2 + max-pool, global max pool.

``model.channels = [64, 128, 256, 256]`` means a 64-channel stem and three blocks of 128, 256 and 256
channels. Few, wide layers keep the GPU busy with few kernel launches (the shape used by fast
CIFAR-10/Fashion-MNIST recipes).
"""

from __future__ import annotations

from torch import nn

from trainwise.config import ModelConfig
from trainwise.models.cnn import image_shape
from trainwise.models.layers import activation


def _conv_bn(cin: int, cout: int, act: str) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), activation(act)]


def build_convnet(cfg: ModelConfig, *, input_shape, out_dim: int, **_) -> nn.Module:
    channels = image_shape(input_shape, "convnet")[0]
    stem, *widths = cfg.channels
    layers: list[nn.Module] = [nn.Unflatten(1, (1, *input_shape))] if len(input_shape) == 2 else []
    layers += _conv_bn(channels, stem, cfg.activation)
    width = stem
    for out in widths:
        layers += _conv_bn(width, out, cfg.activation) + _conv_bn(out, out, cfg.activation) + [nn.MaxPool2d(2)]
        width = out
    rate = cfg.dropout if isinstance(cfg.dropout, float) else cfg.dropout[-1]
    layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Dropout(rate), nn.Linear(width, out_dim, bias=False)]
    return nn.Sequential(*layers)
