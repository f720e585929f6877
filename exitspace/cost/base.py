"""The cost-backend protocol and its result type."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

from exitspace.hardware.model import Core
from exitspace.workload.layer import Layer


@dataclass(frozen=True)
class LayerCost:
    """Cost of one layer on one core (one inference, batch as in the layer).

    ``latency_cycles = compute_cycles + stall_cycles + onload_cycles + offload_cycles``;
    ``energy_pj = mac_energy_pj + sum of mem_energy_pj``. ``mem_energy_pj`` and ``mem_traffic_bits`` are
    keyed ``memory level name -> operand (W/I/O) -> value``.
    """

    layer: str
    core: str
    backend: str
    energy_pj: float
    latency_cycles: float
    compute_cycles: float
    stall_cycles: float
    onload_cycles: float
    offload_cycles: float
    mac_energy_pj: float
    spatial_utilization: float
    utilization: float
    mem_energy_pj: dict[str, dict[str, float]] = field(default_factory=dict)
    mem_traffic_bits: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LayerCost":
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


@runtime_checkable
class CostBackend(Protocol):
    """Anything that costs layers on a core. ``version`` enters the persistent cache key."""

    name: str
    version: str

    def evaluate(self, layers: Sequence[Layer], core: Core) -> list[LayerCost]:
        """Cost of each layer on ``core``, in order."""
        ...
