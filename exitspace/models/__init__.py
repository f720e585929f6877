"""Models stage: backbone registry, exit heads and the early-exit supernet."""

from exitspace.models.common import Backbone, BlockInfo, round_channels
from exitspace.models.eenn import EENN, EENNSpec, EENNSubnet, PlainNet, build_eenn, build_plain, exit_label, head_key
from exitspace.models.heads import HEADS, build_head
from exitspace.models.registry import BACKBONES, build_backbone

__all__ = [
    "BACKBONES",
    "Backbone",
    "BlockInfo",
    "EENN",
    "EENNSpec",
    "EENNSubnet",
    "HEADS",
    "PlainNet",
    "build_backbone",
    "build_eenn",
    "build_head",
    "build_plain",
    "exit_label",
    "head_key",
    "round_channels",
]
