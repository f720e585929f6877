"""Hardware stage: accelerator descriptions (cores, memory hierarchies, links), presets and YAML I/O."""

from exitspace.hardware.model import (
    Core,
    CoreKind,
    Link,
    MacScaling,
    MemoryLevel,
    MemoryPort,
    Operand,
    OperationalArray,
    System,
)
from exitspace.hardware.loader import dump_native, load_core, load_system
from exitspace.hardware.presets import preset_names
from exitspace.hardware.stream_yaml import dump_stream_system, load_stream_system
from exitspace.hardware.zigzag_yaml import dump_zigzag_core, load_zigzag_core

__all__ = [
    "Core",
    "CoreKind",
    "Link",
    "MacScaling",
    "MemoryLevel",
    "MemoryPort",
    "Operand",
    "OperationalArray",
    "System",
    "dump_native",
    "dump_stream_system",
    "dump_zigzag_core",
    "load_core",
    "load_stream_system",
    "load_system",
    "load_zigzag_core",
    "preset_names",
]
