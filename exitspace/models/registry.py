"""Backbone registry: ``build_backbone(name, **kwargs)`` and what each backbone offers."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

from exitspace.errors import ConfigError
from exitspace.models.common import Backbone
from exitspace.models.mobilenetv2 import MOBILENETV2_CIFAR_BLOCKS, MobileNetV2Cifar
from exitspace.models.resnet import ResNetCifar
from exitspace.models.small_cnn import SMALL_CNN_BLOCKS, SmallCNN


@dataclass(frozen=True)
class BackboneEntry:
    """A registered backbone: its builder, block count, default candidate mounting blocks, summary."""

    factory: Callable[..., Backbone]
    num_blocks: int
    default_candidates: tuple[int, ...]
    description: str


def _resnet(depth: int) -> Callable[..., Backbone]:
    def build(width: float = 1.0, in_channels: int = 3, shortcut: str = "A") -> Backbone:
        if shortcut not in ("A", "B"):
            raise ConfigError(f"backbone shortcut: must be 'A' or 'B' (got {shortcut!r})")
        return ResNetCifar(depth, width=width, in_channels=in_channels, shortcut=shortcut)  # type: ignore[arg-type]

    return build


def _resnet_blocks(depth: int) -> int:
    return 3 * ((depth - 2) // 6)


BACKBONES: dict[str, BackboneEntry] = {
    "mobilenetv2_cifar": BackboneEntry(
        MobileNetV2Cifar,
        len(MOBILENETV2_CIFAR_BLOCKS),
        tuple(range(10)),
        "the paper's 12-block MobileNetV2 for 32x32 inputs (195.33 M MACs, 1.39 M parameters at width 1)",
    ),
    **{
        f"resnet{depth}": BackboneEntry(
            _resnet(depth),
            _resnet_blocks(depth),
            tuple(range(_resnet_blocks(depth) - 1)),
            f"ResNet-{depth} for CIFAR (He et al. 2016), option-A shortcuts by default",
        )
        for depth in (20, 32, 56)
    },
    "small_cnn": BackboneEntry(
        SmallCNN, len(SMALL_CNN_BLOCKS), (0, 1, 2), "a 4-block conv-BN-ReLU CNN for fast runs and tests"
    ),
}


def backbone_entry(name: str) -> BackboneEntry:
    """The registry entry of ``name``; one-line ConfigError if unknown."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ConfigError(f"backbone {name!r}: unknown; use one of {sorted(BACKBONES)}") from None


def build_backbone(name: str, **kwargs: Any) -> Backbone:
    """Build a registered backbone (kwargs: ``width``, ``in_channels``, and ``shortcut`` for ResNets)."""
    entry = backbone_entry(name)
    accepted = set(inspect.signature(entry.factory).parameters)
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ConfigError(f"backbone {name!r}: unknown option(s) {unknown}; accepted: {sorted(accepted)}")
    width = kwargs.get("width", 1.0)
    if not isinstance(width, (int, float)) or width <= 0:
        raise ConfigError(f"backbone width: must be a positive number (got {width!r})")
    in_channels = kwargs.get("in_channels", 3)
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ConfigError(f"backbone in_channels: must be a positive integer (got {in_channels!r})")
    return entry.factory(**kwargs)
