"""Hardware stage: accelerator descriptions (cores, memory hierarchies, links), presets and YAML I/O."""

from exitspace.hardware.model import (
    Core,
    CoreKind,
    Link,
    MacScaling,
    MemoryLevel,
    Operand,
    OperationalArray,
    System,
)

__all__ = [
    "Core",
    "CoreKind",
    "Link",
    "MacScaling",
    "MemoryLevel",
    "Operand",
    "OperationalArray",
    "System",
]
