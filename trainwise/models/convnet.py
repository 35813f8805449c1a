"""A fast VGG-style net for small images: a conv stem, blocks of (conv-BN-act) x2 + max-pool, global max pool.

``model.channels = [64, 128, 256, 256]`` means a 64-channel stem and three blocks of 128, 256 and 256
channels. Few, wide layers keep the GPU busy with few kernel launches (the shape used by fast
CIFAR-10/Fashion-MNIST recipes). Layers: ``stem`` (conv, norm, act), ``stage<k>`` (conv1, norm1, act1,
conv2, norm2, act2, pool), ``pool``, ``flatten``, ``drop``, ``head`` (trainwise.models.names; the flat
numbered layout of older runs still loads).
"""

from __future__ import annotations

from torch import nn

from trainwise.config import ModelConfig
from trainwise.models.cnn import image_shape
from trainwise.models.layers import activation
from trainwise.models.names import Named, part


def _conv_bn(cin: int, cout: int, act: str, suffix: str = "") -> dict[str, nn.Module]:
    return {f"conv{suffix}": nn.Conv2d(cin, cout, 3, padding=1, bias=False), f"norm{suffix}": nn.BatchNorm2d(cout), f"act{suffix}": activation(act)}


def build_convnet(cfg: ModelConfig, *, input_shape, out_dim: int, **_) -> nn.Module:
    channels = image_shape(input_shape, "convnet")[0]
    stem, *widths = cfg.channels
    parts: list[tuple[str, nn.Module]] = [("unflatten", nn.Unflatten(1, (1, *input_shape)))] if len(input_shape) == 2 else []
    parts.append(("stem", part(**_conv_bn(channels, stem, cfg.activation))))
    width = stem
    for k, out in enumerate(widths, start=1):
        parts.append((f"stage{k}", part(**_conv_bn(width, out, cfg.activation, "1"), **_conv_bn(out, out, cfg.activation, "2"), pool=nn.MaxPool2d(2))))
        width = out
    rate = cfg.dropout if isinstance(cfg.dropout, float) else cfg.dropout[-1]
    parts += [("pool", nn.AdaptiveMaxPool2d(1)), ("flatten", nn.Flatten()), ("drop", nn.Dropout(rate)), ("head", nn.Linear(width, out_dim, bias=False))]
    return Named(parts, flat_before=True)
