"""Backbone registry: ``build_backbone(name, **kwargs)`` and what each backbone offers.

A new backbone is one family file in this package that calls :func:`register_backbone` at import; every
module of the package is imported below, so nothing else needs to list it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable

from exitspace.errors import ConfigError
from exitspace.models.common import Backbone


@dataclass(frozen=True)
class BackboneEntry:
    """A registered backbone: its builder, block count, default candidate mounting blocks, summary."""

    factory: Callable[..., Backbone]
    num_blocks: int
    default_candidates: tuple[int, ...]
    description: str


BACKBONES: dict[str, BackboneEntry] = {}
"""Every backbone, by name; a family file (``exitspace/models/<family>.py``) adds its own with
:func:`register_backbone` when the package is imported."""


def register_backbone(name: str, entry: BackboneEntry) -> None:
    """Make ``name`` buildable by :func:`build_backbone` (and usable as ``model.backbone`` in configs)."""
    BACKBONES[name] = entry


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


def _import_families() -> None:
    """Import every module of ``exitspace.models`` so that each family file registers its backbones."""
    package = __name__.rpartition(".")[0]
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        importlib.import_module(f"{package}.{module.name}")


_import_families()
