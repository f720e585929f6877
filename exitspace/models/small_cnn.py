"""A small, fast CNN for quick runs and tests: a 3x3 stem and four conv-BN-ReLU blocks."""

from __future__ import annotations

from torch import nn

from exitspace.models.common import Backbone, BlockInfo, conv_bn_act, round_channels
from exitspace.models.registry import BackboneEntry, register_backbone

# (out channels, stride) per block at width 1.0.
SMALL_CNN_BLOCKS: tuple[tuple[int, int], ...] = ((16, 1), (32, 2), (32, 1), (64, 2))
STEM_CHANNELS = 16


class SmallCNN(Backbone):
    """stem 3x3 (-> 16) and blocks (16, s1), (32, s2), (32, s1), (64, s2); 35,312 parameters at width 1."""

    def __init__(self, width: float = 1.0, in_channels: int = 3) -> None:
        super().__init__()
        self.in_channels = in_channels
        stem_channels = round_channels(STEM_CHANNELS * width)
        self.stem = conv_bn_act(in_channels, stem_channels, 3, activation=nn.ReLU)
        self.stem_info = BlockInfo("stem", stem_channels, 1)
        blocks, infos = [], []
        channels = stem_channels
        for index, (out, stride) in enumerate(SMALL_CNN_BLOCKS):
            out_channels = round_channels(out * width)
            blocks.append(conv_bn_act(channels, out_channels, 3, stride, activation=nn.ReLU))
            infos.append(BlockInfo(f"b{index}", out_channels, stride))
            channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.block_infos = tuple(infos)


register_backbone("small_cnn", BackboneEntry(
    SmallCNN, len(SMALL_CNN_BLOCKS), (0, 1, 2), "a 4-block conv-BN-ReLU CNN for fast runs and tests"))
