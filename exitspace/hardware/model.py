"""Validated accelerator description, following ZigZag's core and Stream's system concepts.

Units: sizes and port widths in bits (bandwidth in bits per cycle), energies in pJ per access (per MAC
for the operational array). Memory levels are listed innermost (registers) first, outermost (DRAM)
last. Operands are named by role: ``W`` weights, ``I`` input activations, ``O`` outputs / partial sums
(ZigZag calls them I2, I1 and O).
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from exitspace.workload.layer import OpType

Operand = Literal["W", "I", "O"]
LoopDim = Literal["K", "C", "OX", "OY", "FX", "FY", "G", "B"]


class CoreKind(str, Enum):
    """What a core is for; decides which ops it may run."""

    COMPUTE = "compute"
    POOLING = "pooling"
    SIMD = "simd"
    OFFCHIP = "offchip"


DEFAULT_OPS: dict[CoreKind, tuple[OpType, ...]] = {
    CoreKind.COMPUTE: (OpType.CONV, OpType.DEPTHWISE, OpType.POINTWISE, OpType.FC, OpType.POOL, OpType.ADD, OpType.ACT),
    CoreKind.POOLING: (OpType.POOL,),
    CoreKind.SIMD: (OpType.ADD, OpType.ACT, OpType.POOL),
    CoreKind.OFFCHIP: (),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


PortDirection = Literal["fh", "tl", "fl", "th"]


class MemoryPort(_Strict):
    """One explicit memory port (ZigZag 3 ``ports`` entry), kept only when a file's ports differ from the
    ones implied by ``r_bw``/``w_bw``/``r_port``/``w_port``/``rw_port`` (e.g. ports of unequal width).

    ``allocation`` pairs an operand with a data direction: ``fh`` written from the higher level, ``tl``
    read towards the lower level, ``fl`` written from the lower level, ``th`` read towards the higher one.
    """

    name: str
    type: Literal["read", "write", "read_write"]
    bandwidth_min: int = Field(gt=0, description="smallest access, bits")
    bandwidth_max: int = Field(gt=0, description="port width, bits per cycle")
    allocation: tuple[tuple[Operand, PortDirection], ...] = ()


OFFCHIP_NAME = re.compile(r"dram|off[-_ ]?chip|external|hbm|lpddr", re.IGNORECASE)
"""How an off-chip memory level is recognised: by its name (DRAM, off-chip, external, HBM, LPDDR)."""


class MemoryLevel(_Strict):
    """One memory instance of a core's hierarchy."""

    name: str
    size_bits: int = Field(gt=0, description="capacity in bits (one instance)")
    r_bw: int = Field(gt=0, description="read port width, bits per cycle")
    w_bw: int = Field(gt=0, description="write port width, bits per cycle")
    r_cost: float = Field(ge=0, description="energy per read access of r_bw bits, pJ")
    w_cost: float = Field(ge=0, description="energy per write access of w_bw bits, pJ")
    operands: tuple[Operand, ...] = Field(min_length=1)
    served_dimensions: tuple[str, ...] = Field(
        default=(), description="array dimensions over which one instance is shared (ZigZag semantics)"
    )
    min_r_granularity: int | None = Field(default=None, gt=0, description="smallest read in bits")
    min_w_granularity: int | None = Field(default=None, gt=0, description="smallest write in bits")
    latency: int = Field(default=1, ge=0)
    area: float = Field(default=0.0, ge=0)
    r_port: int = Field(default=1, ge=0)
    w_port: int = Field(default=1, ge=0)
    rw_port: int = Field(default=0, ge=0)
    ports: tuple[MemoryPort, ...] | None = Field(
        default=None, description="explicit ports; None: the ones implied by the widths and port counts"
    )


class MacScaling(_Strict):
    """Throughput and energy of a precision-scalable MAC at one operand width."""

    throughput: float = Field(gt=0, description="MACs per unit per cycle at this width")
    energy_pj: float = Field(ge=0, description="energy per MAC at this width")


class OperationalArray(_Strict):
    """The array of MAC (or pooling / SIMD) units."""

    unit_energy_pj: float = Field(ge=0)
    unit_area: float = Field(default=1.0, ge=0)
    sizes: dict[str, int] = Field(min_length=1, description="array dimension name -> size, e.g. D1: 8")
    precision_scaling: dict[int, MacScaling] | None = Field(
        default=None,
        description="bit width -> throughput/energy; None: MACs cost the same at every width (ZigZag's default)",
    )

    @model_validator(mode="after")
    def _positive_sizes(self) -> "OperationalArray":
        for dim, size in self.sizes.items():
            if size < 1:
                raise ValueError(f"sizes.{dim} must be >= 1 (got {size})")
        return self

    @property
    def units(self) -> int:
        """Number of units (product of the sizes)."""
        total = 1
        for size in self.sizes.values():
            total *= size
        return total


class Core(_Strict):
    """One core: array, memory hierarchy (innermost first) and dataflow (spatial unrolling)."""

    id: int = Field(ge=0)
    name: str
    kind: CoreKind = CoreKind.COMPUTE
    operational_array: OperationalArray
    memories: tuple[MemoryLevel, ...] = Field(min_length=1)
    dataflow: dict[str, tuple[LoopDim, ...]] = Field(
        default_factory=dict,
        description="array dimension -> loop dimension(s) unrolled on it, e.g. D1: [K]",
    )
    supported_ops: tuple[OpType, ...] | None = Field(default=None, description="None: the kind's defaults")

    @model_validator(mode="after")
    def _check(self) -> "Core":
        dims = set(self.operational_array.sizes)
        for mem in self.memories:
            unknown = set(mem.served_dimensions) - dims
            if unknown:
                raise ValueError(
                    f"memories[{mem.name}].served_dimensions: {sorted(unknown)} not in operational_array.sizes {sorted(dims)}"
                )
        unknown = set(self.dataflow) - dims
        if unknown:
            raise ValueError(f"dataflow: {sorted(unknown)} not in operational_array.sizes {sorted(dims)}")
        if self.kind != CoreKind.OFFCHIP:
            for operand in ("W", "I", "O"):
                if not any(operand in mem.operands for mem in self.memories):
                    raise ValueError(f"memories: no level holds operand {operand}; add one that lists it")
        return self

    @property
    def ops(self) -> tuple[OpType, ...]:
        """Ops this core can run."""
        return self.supported_ops if self.supported_ops is not None else DEFAULT_OPS[self.kind]

    def levels_for(self, operand: Operand) -> list[MemoryLevel]:
        """The memory levels that hold ``operand``, innermost first."""
        return [mem for mem in self.memories if operand in mem.operands]


class Link(_Strict):
    """A bidirectional link between two cores."""

    a: int
    b: int
    bandwidth: int = Field(gt=0, description="bits per cycle")
    energy_per_bit_pj: float = Field(default=0.0, ge=0)
    bus: str | None = Field(
        default=None, description="links naming the same bus share one medium (Stream's 'bus'); None: dedicated"
    )


class System(_Strict):
    """A multi-core accelerator: cores (compute, pooling, SIMD, off-chip) and the links between them."""

    name: str
    cores: tuple[Core, ...] = Field(min_length=1)
    links: tuple[Link, ...] = ()
    offchip_core_id: int | None = None

    @model_validator(mode="after")
    def _check(self) -> "System":
        ids = [core.id for core in self.cores]
        if len(ids) != len(set(ids)):
            raise ValueError(f"cores: ids must be unique (got {ids})")
        for link in self.links:
            for end in (link.a, link.b):
                if end not in ids:
                    raise ValueError(f"links: core id {end} does not exist; known ids {ids}")
        if self.offchip_core_id is not None and self.offchip_core_id not in ids:
            raise ValueError(f"offchip_core_id: {self.offchip_core_id} is not a core id {ids}")
        return self

    def core(self, core_id: int) -> Core:
        """The core with this id."""
        for core in self.cores:
            if core.id == core_id:
                return core
        raise KeyError(core_id)

    def cores_of(self, kind: CoreKind) -> list[Core]:
        """Cores of one kind."""
        return [core for core in self.cores if core.kind == kind]

    def unbacked_core(self) -> Core | None:
        """A compute core with no off-chip level while the system has no off-chip core either (its tensors that
        exceed the on-chip levels would have nowhere to live), or None."""
        if self.offchip_core_id is not None:
            return None
        return next((core for core in self.cores if core.kind == CoreKind.COMPUTE
                     and not any(OFFCHIP_NAME.search(m.name) for m in core.memories)), None)

    @property
    def offchip(self) -> Core | None:
        """The off-chip memory core, if any."""
        return None if self.offchip_core_id is None else self.core(self.offchip_core_id)
