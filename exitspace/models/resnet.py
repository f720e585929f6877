"""ResNet for CIFAR (He et al. 2016, section 4.2): 6n+2 layers, stages of 16/32/64 channels.

Shortcuts are option A by default (identity; when the shape changes, stride-2 subsampling and zero
padding of the new channels: no parameters, as in the paper's CIFAR experiments, giving 0.27 M
parameters for ResNet-20 including its final FC); ``shortcut="B"`` uses a 1x1 conv + BN projection
instead. The global-pool + FC classifier is not part of the backbone: it is the "gap_fc" exit head.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

from exitspace.errors import ConfigError
from exitspace.models.common import Backbone, BlockInfo, conv_bn_act, round_channels
from exitspace.models.registry import BackboneEntry, register_backbone

STAGE_CHANNELS = (16, 32, 64)


class BasicBlock(nn.Module):
    """conv3x3 + BN + ReLU -> conv3x3 + BN, plus shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, shortcut: Literal["A", "B"]) -> None:
        super().__init__()
        self.conv1 = conv_bn_act(in_channels, out_channels, 3, stride, activation=nn.ReLU)
        self.conv2 = conv_bn_act(out_channels, out_channels, 3, activation=None)
        self.relu = nn.ReLU(inplace=True)
        self.reshape = stride != 1 or in_channels != out_channels
        self.stride = stride
        self.pad_channels = out_channels - in_channels
        self.projection = (
            conv_bn_act(in_channels, out_channels, 1, stride, activation=None)
            if self.reshape and shortcut == "B"
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        if self.projection is not None:
            identity = self.projection(x)
        elif self.reshape:
            identity = F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, 0, self.pad_channels))
        else:
            identity = x
        return self.relu(out + identity)


class ResNetCifar(Backbone):
    """ResNet-(6n+2) for CIFAR; blocks b0 .. b(3n-1) are the basic blocks."""

    def __init__(
        self, depth: int, width: float = 1.0, in_channels: int = 3, shortcut: Literal["A", "B"] = "A"
    ) -> None:
        super().__init__()
        per_stage = (depth - 2) // 6
        channels = [round_channels(c * width) for c in STAGE_CHANNELS]
        self.in_channels = in_channels
        self.stem = conv_bn_act(in_channels, channels[0], 3, activation=nn.ReLU)
        self.stem_info = BlockInfo("stem", channels[0], 1)
        blocks: list[BasicBlock] = []
        infos: list[BlockInfo] = []
        current = channels[0]
        for stage, out_channels in enumerate(channels):
            for index in range(per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(BasicBlock(current, out_channels, stride, shortcut))
                infos.append(BlockInfo(f"b{len(infos)}", out_channels, stride))
                current = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.block_infos = tuple(infos)


def _resnet(depth: int) -> Callable[..., Backbone]:
    def build(width: float = 1.0, in_channels: int = 3, shortcut: str = "A") -> Backbone:
        if shortcut not in ("A", "B"):
            raise ConfigError(f"backbone shortcut: must be 'A' or 'B' (got {shortcut!r})")
        return ResNetCifar(depth, width=width, in_channels=in_channels, shortcut=shortcut)  # type: ignore[arg-type]

    return build


for _depth in (20, 32, 56):
    _blocks = 3 * ((_depth - 2) // 6)
    register_backbone(f"resnet{_depth}", BackboneEntry(
        _resnet(_depth), _blocks, tuple(range(_blocks - 1)),
        f"ResNet-{_depth} for CIFAR (He et al. 2016), option-A shortcuts by default"))
