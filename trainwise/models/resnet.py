"""A small residual network for 28x28 / 32x32 images (ResNet basic blocks, with drop path)."""

from __future__ import annotations

from torch import nn

from trainwise.config import ModelConfig
from trainwise.models.cnn import image_shape
from trainwise.models.layers import activation, drop_path


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
        self.shortcut = (
            nn.Identity() if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x):
        branch = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.act2(self.shortcut(x) + drop_path(branch, self.drop_path_rate, self.training))


class ResNet(nn.Module):
    def __init__(self, input_shape, cfg: ModelConfig, out_dim: int):
        super().__init__()
        channels = image_shape(input_shape, "resnet")[0]
        self.unflatten = len(input_shape) == 2
        width = cfg.channels[0]
        self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), activation(cfg.activation))
        total = len(cfg.channels) * cfg.blocks_per_stage
        blocks, i = [], 0
        for stage, cout in enumerate(cfg.channels):
            for b in range(cfg.blocks_per_stage):
                # Stochastic depth grows linearly with depth (Huang et al. 2016).
                rate = cfg.drop_path * i / max(total - 1, 1)
                blocks.append(BasicBlock(width, cout, 2 if stage > 0 and b == 0 else 1, cfg.activation, rate))
                width, i = cout, i + 1
        self.blocks = nn.Sequential(*blocks)
        rate = cfg.dropout if isinstance(cfg.dropout, float) else cfg.dropout[-1]
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(rate), nn.Linear(width, out_dim))

    def forward(self, x):
        if self.unflatten:
            x = x.unsqueeze(1)
        return self.head(self.blocks(self.stem(x)))


def build_resnet(cfg: ModelConfig, *, input_shape, out_dim: int, **_) -> nn.Module:
    return ResNet(input_shape, cfg, out_dim)
