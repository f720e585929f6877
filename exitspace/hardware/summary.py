"""Plain summaries of a hardware description (for ``exitspace hardware show`` and reports)."""

from __future__ import annotations

from math import prod
from typing import Any

from exitspace.hardware.model import Core, MemoryLevel, System


def memory_instances(core: Core, level: MemoryLevel) -> int:
    """How many copies of ``level`` the core holds: one per position of the array dimensions it does
    not serve (ZigZag semantics: a level serving every dimension exists once)."""
    return prod(size for dim, size in core.operational_array.sizes.items() if dim not in level.served_dimensions)


def human_bits(bits: int) -> str:
    """A size in bits as the usual byte unit (32 KB, 2 MB) or bits below a byte multiple."""
    if bits % 8:
        return f"{bits} b"
    value = bits // 8
    units = ("B", "KB", "MB", "GB", "TB")
    power = 0
    while power < len(units) - 1 and value >= 1024 ** (power + 1):
        power += 1
    scaled = value / 1024**power
    return f"{int(scaled)} {units[power]}" if scaled == int(scaled) else f"{scaled:.3g} {units[power]}"


def core_summary(core: Core) -> dict[str, Any]:
    """The facts of one core as plain data."""
    array = core.operational_array
    return {
        "id": core.id,
        "name": core.name,
        "kind": core.kind.value,
        "array": dict(array.sizes),
        "units": array.units,
        "unit_energy_pj": array.unit_energy_pj,
        "dataflow": {dim: list(loops) for dim, loops in core.dataflow.items()},
        "ops": [op.value for op in core.ops],
        "memories": [
            {
                "name": level.name,
                "operands": list(level.operands),
                "size_bits": level.size_bits,
                "size": human_bits(level.size_bits),
                "instances": memory_instances(core, level),
                "r_bw": level.r_bw,
                "w_bw": level.w_bw,
                "min_r_granularity": level.min_r_granularity,
                "min_w_granularity": level.min_w_granularity,
                "r_cost_pj": level.r_cost,
                "w_cost_pj": level.w_cost,
                "served_dimensions": list(level.served_dimensions),
                "ports": {"r": level.r_port, "w": level.w_port, "rw": level.rw_port},
            }
            for level in core.memories
        ],
    }


def system_summary(system: System) -> dict[str, Any]:
    """The facts of a system as plain data (cores, links)."""
    return {
        "name": system.name,
        "offchip_core_id": system.offchip_core_id,
        "cores": [core_summary(core) for core in system.cores],
        "links": [
            {"a": link.a, "b": link.b, "bandwidth": link.bandwidth, "energy_per_bit_pj": link.energy_per_bit_pj, "bus": link.bus}
            for link in system.links
        ],
    }
