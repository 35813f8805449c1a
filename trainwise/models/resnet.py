"""A small residual network for 28x28 / 32x32 images (ResNet basic blocks, with drop path).

Layers: ``stem`` (conv, norm, act), ``stage<s>.<b>`` (basic block b of stage s: conv1, bn1, act1, conv2,
bn2, act2, and where the shape changes ``shortcut`` = conv, norm), ``pool``, ``flatten``, ``drop``, ``head`` -- as in
``stage2.0.conv1``, ``stage2.0.shortcut.conv``. Older runs (``stem.0``, ``blocks.<i>``, ``shortcut.0``, ``head.3``)
still load (trainwise.models.names).
"""

from __future__ import annotations

from torch import nn

from trainwise.config import ModelConfig
from trainwise.models.cnn import image_shape
from trainwise.models.layers import activation, drop_path
from trainwise.models.names import LegacyNames, Named, part


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, act: str, drop_path_rate: float):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act1 = activation(act)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act2 = activation(act)
        self.drop_path_rate = drop_path_rate
        self.shortcut = (  # a projection where the shape changes: shortcut.conv, shortcut.norm (numbered 0, 1 before)
            nn.Identity() if stride == 1 and cin == cout
            else Named([("conv", nn.Conv2d(cin, cout, 1, stride=stride, bias=False)), ("norm", nn.BatchNorm2d(cout))], flat_before=True)
        )

    def forward(self, x):
        branch = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.act2(self.shortcut(x) + drop_path(branch, self.drop_path_rate, self.training))


class ResNet(LegacyNames, nn.Module):
    def __init__(self, input_shape, cfg: ModelConfig, out_dim: int):
        super().__init__()
        channels = image_shape(input_shape, "resnet")[0]
        self.unflatten = len(input_shape) == 2
        width = cfg.channels[0]
        self.stem = part(conv=nn.Conv2d(channels, width, 3, padding=1, bias=False), norm=nn.BatchNorm2d(width), act=activation(cfg.activation))
        self.legacy = {"stem.0": "stem.conv", "stem.1": "stem.norm", "stem.2": "stem.act"}
        total = len(cfg.channels) * cfg.blocks_per_stage
        i = 0
        for stage, cout in enumerate(cfg.channels, start=1):
            blocks = []
            for b in range(cfg.blocks_per_stage):
                # Stochastic depth grows linearly with depth (Huang et al. 2016).
                rate = cfg.drop_path * i / max(total - 1, 1)
                blocks.append((str(b), BasicBlock(width, cout, 2 if stage > 1 and b == 0 else 1, cfg.activation, rate)))
                self.legacy[f"blocks.{i}"] = f"stage{stage}.{b}"
                width, i = cout, i + 1
            self.add_module(f"stage{stage}", Named(blocks))
        self.stages = len(cfg.channels)
        rate = cfg.dropout if isinstance(cfg.dropout, float) else cfg.dropout[-1]
        self.pool, self.flatten, self.drop, self.head = nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(rate), nn.Linear(width, out_dim)
        self.legacy |= {"head.0": "pool", "head.1": "flatten", "head.2": "drop", "head.3": "head"}

    def forward(self, x):
        if self.unflatten:
            x = x.unsqueeze(1)
        x = self.stem(x)
        for stage in range(1, self.stages + 1):
            x = getattr(self, f"stage{stage}")(x)
        return self.head(self.drop(self.flatten(self.pool(x))))


def build_resnet(cfg: ModelConfig, *, input_shape, out_dim: int, **_) -> nn.Module:
    return ResNet(input_shape, cfg, out_dim)
