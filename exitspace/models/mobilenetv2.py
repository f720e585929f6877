"""MobileNetV2 adapted to 32x32 inputs, as in the reference paper (paper-setup.md section 1).

Stem 3x3 stride 1 (3 -> 32), block 0 without expansion (depthwise 3x3 + pointwise 32 -> 16), blocks 1-11
inverted residuals with expansion 6; depthwise kernel 3 in blocks 0-6 and 7 in blocks 7-11; residual add
where input and output shapes agree; no 1280-channel conv and no global pooling (the classifier is an
exit head). At width 1.0: 1,388,288 parameters and 195.33 M MACs for a 32x32 input.
"""

from __future__ import annotations

import torch
from torch import nn

from exitspace.models.common import Backbone, BlockInfo, conv_bn_act, round_channels
from exitspace.models.registry import BackboneEntry, register_backbone

# (out channels, stride, depthwise kernel, expansion) per block, at width 1.0.
MOBILENETV2_CIFAR_BLOCKS: tuple[tuple[int, int, int, int], ...] = (
    (16, 1, 3, 1),
    (24, 1, 3, 6),
    (24, 1, 3, 6),
    (32, 1, 3, 6),
    (32, 1, 3, 6),
    (64, 2, 3, 6),
    (64, 1, 3, 6),
    (96, 1, 7, 6),
    (96, 1, 7, 6),
    (160, 2, 7, 6),
    (160, 1, 7, 6),
    (320, 1, 7, 6),
)
STEM_CHANNELS = 32


class InvertedResidual(nn.Module):
    """[1x1 expand + BN + ReLU6] -> kxk depthwise + BN + ReLU6 -> 1x1 linear projection + BN (+ input)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, kernel: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.expand = conv_bn_act(in_channels, hidden, 1) if expansion != 1 else None
        self.depthwise = conv_bn_act(hidden, hidden, kernel, stride, groups=hidden)
        self.project = conv_bn_act(hidden, out_channels, 1, activation=None)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x) if self.expand is not None else x
        out = self.project(self.depthwise(out))
        if self.use_residual:
            out = out + x
        return out


class MobileNetV2Cifar(Backbone):
    """The paper's 12-block MobileNetV2 for 32x32 images; ``width`` scales every channel count."""

    def __init__(self, width: float = 1.0, in_channels: int = 3) -> None:
        super().__init__()
        self.in_channels = in_channels
        stem_channels = round_channels(STEM_CHANNELS * width)
        self.stem = conv_bn_act(in_channels, stem_channels, 3)
        self.stem_info = BlockInfo("stem", stem_channels, 1)
        blocks, infos = [], []
        channels = stem_channels
        for index, (out, stride, kernel, expansion) in enumerate(MOBILENETV2_CIFAR_BLOCKS):
            out_channels = round_channels(out * width)
            blocks.append(InvertedResidual(channels, out_channels, stride, kernel, expansion))
            infos.append(BlockInfo(f"b{index}", out_channels, stride))
            channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.block_infos = tuple(infos)


register_backbone("mobilenetv2_cifar", BackboneEntry(
    MobileNetV2Cifar, len(MOBILENETV2_CIFAR_BLOCKS), tuple(range(10)),
    "the paper's 12-block MobileNetV2 for 32x32 inputs (195.33 M MACs, 1.39 M parameters at width 1)"))
