"""Per-layer cost matrices [layers x cores] and the system-level cost rules of the mapping stage.

:class:`CostModel` is built once per (workload at one precision, system, backend). It holds, for every
layer of the workload (backbone and all candidate heads) and every core:

- ``base_energy`` / ``base_latency``: the backend's :class:`~exitspace.cost.base.LayerCost` of the layer
  on the core's *on-chip* hierarchy (levels named like DRAM / off-chip are removed from the core before
  it is costed, so that off-chip traffic is counted once, here), ``inf`` where the core may not run it;
- ``spill_energy`` / ``spill_latency``: activations that do not fit the core's on-chip activation memory
  (written to and read back from off-chip once), and the read of the network input from off-chip;
- ``weight_stream_energy`` / ``weight_stream_latency`` [layers]: reading the layer's weights from off-chip,
  paid when the layer's weights are not pinned on its core (see :mod:`exitspace.mapping.schedule`);
- ``weight_bits`` [layers] and ``weight_capacity`` [cores]: for the pinning rule;
- ``output_bits`` [layers] and ``transfer_energy_per_bit`` / ``transfer_cycles_per_bit`` [cores x cores]:
  inter-core transfers over the links (shortest path in hops; through off-chip memory where no path).

Units: energy pJ, latency cycles, sizes bits. The exact rules are in docs/metrics.md.
Backend results are cached per (layer, core, backend name, backend version) in a process-wide
:class:`LayerCostCache`, so rebuilding a model (another precision, another system) costs only new pairs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from exitspace.cost.base import CostBackend, LayerCost
from exitspace.cost.cache import CostCache, cached_evaluate
from exitspace.errors import ConfigError
from exitspace.hardware.model import Core, CoreKind, MemoryLevel, System
from exitspace.workload.layer import Layer, OpType, Workload

OFFCHIP_NAME = re.compile(r"dram|off[-_ ]?chip|external|hbm|lpddr", re.IGNORECASE)


def is_offchip_level(memory: MemoryLevel) -> bool:
    """A memory level that lives off chip (recognised by its name: DRAM, off-chip, external, HBM, LPDDR)."""
    return bool(OFFCHIP_NAME.search(memory.name))


def onchip_core(core: Core) -> Core:
    """The core with its off-chip memory levels removed (unchanged if it has none or only off-chip ones)."""
    kept = tuple(mem for mem in core.memories if not is_offchip_level(mem))
    if len(kept) == len(core.memories) or not kept:
        return core
    return core.model_copy(update={"memories": kept})


@dataclass(frozen=True)
class OffchipPort:
    """Bandwidth (bits/cycle) and energy per access of the off-chip memory."""

    r_bw: int
    w_bw: int
    r_cost: float
    w_cost: float

    def read(self, bits: float) -> tuple[float, float]:
        """(energy pJ, cycles) to read ``bits`` (whole accesses)."""
        accesses = math.ceil(bits / self.r_bw) if bits > 0 else 0
        return accesses * self.r_cost, float(accesses)

    def write(self, bits: float) -> tuple[float, float]:
        """(energy pJ, cycles) to write ``bits`` (whole accesses)."""
        accesses = math.ceil(bits / self.w_bw) if bits > 0 else 0
        return accesses * self.w_cost, float(accesses)


def offchip_port(system: System) -> OffchipPort | None:
    """The off-chip core's memory if the system has one, else the first DRAM-like level of a core, else None."""
    levels: list[MemoryLevel] = []
    if system.offchip is not None:
        levels = list(system.offchip.memories)
    if not levels:
        levels = [mem for core in system.cores for mem in core.memories if is_offchip_level(mem)]
    if not levels:
        return None
    mem = levels[0]
    return OffchipPort(r_bw=mem.r_bw, w_bw=mem.w_bw, r_cost=mem.r_cost, w_cost=mem.w_cost)


def _outermost(core: Core, operand: str) -> MemoryLevel | None:
    levels = [mem for mem in core.memories if operand in mem.operands and not is_offchip_level(mem)]
    return levels[-1] if levels else None


def activation_capacity(core: Core) -> tuple[float, float, bool]:
    """(input capacity, output capacity, shared) in bits of the core's outermost on-chip I and O levels;
    ``shared`` when one level holds both. ``inf`` where the core has no on-chip level for the operand."""
    mem_i, mem_o = _outermost(core, "I"), _outermost(core, "O")
    cap_i = float(mem_i.size_bits) if mem_i else math.inf
    cap_o = float(mem_o.size_bits) if mem_o else math.inf
    return cap_i, cap_o, (mem_i is not None and mem_i is mem_o)


def layer_bits(layer: Layer) -> tuple[float, float, float]:
    """(weight, input, output) bits of one layer at its precision."""
    p = layer.precision
    return float(layer.weight_count * p.weight), float(layer.input_count * p.input), float(layer.output_count * p.output)


def eligible_cores(layer: Layer, system: System) -> list[int]:
    """Positions (in ``system.cores``) of the cores that may run ``layer``: MAC ops on compute cores;
    pooling on the pooling cores and element-wise ops on the SIMD cores where the system has them, else
    on any compute core that supports the op. One-line ConfigError when none can."""
    cores = list(system.cores)

    def of_kind(kind: CoreKind) -> list[int]:
        return [pos for pos, core in enumerate(cores) if core.kind == kind and layer.op in core.ops]

    if layer.op == OpType.POOL:
        found = of_kind(CoreKind.POOLING) or of_kind(CoreKind.COMPUTE) or of_kind(CoreKind.SIMD)
    elif layer.op in (OpType.ADD, OpType.ACT):
        found = of_kind(CoreKind.SIMD) or of_kind(CoreKind.COMPUTE)
    else:
        found = of_kind(CoreKind.COMPUTE)
    if not found:
        raise ConfigError(
            f"hardware {system.name!r}: no core can run layer {layer.name!r} (op {layer.op.value}); add a core "
            "whose kind or supported_ops include it"
        )
    return found


class LayerCostCache(CostCache):
    """The mapper's in-memory cost cache: a :class:`CostCache` without a file (layers of one shape,
    precision and core share one entry). ``exitspace run`` also keeps an on-disk cache behind its backend."""

    def __init__(self) -> None:
        super().__init__(None)

    def costs(self, layers: Sequence[Layer], core: Core, backend: CostBackend) -> list[LayerCost]:
        """Costs of ``layers`` on ``core``; only the missing ones go to the backend (one batched call)."""
        return cached_evaluate(backend, layers, core, self)


DEFAULT_CACHE = LayerCostCache()


def _routes(system: System) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per core pair: hops, bottleneck bandwidth (bits/cycle) and energy per bit summed over the route.

    The route has the fewest hops; among those, the widest bottleneck; among those, the least energy.
    Links on a shared bus count as direct links between every pair on it (contention is not modelled).
    """
    ids = [core.id for core in system.cores]
    pos = {cid: i for i, cid in enumerate(ids)}
    n = len(ids)
    adjacency: dict[int, list[tuple[int, float, float]]] = {i: [] for i in range(n)}
    for link in system.links:
        a, b = pos[link.a], pos[link.b]
        adjacency[a].append((b, float(link.bandwidth), link.energy_per_bit_pj))
        adjacency[b].append((a, float(link.bandwidth), link.energy_per_bit_pj))
    hops = np.full((n, n), -1, dtype=np.int64)
    bandwidth = np.zeros((n, n))
    energy = np.zeros((n, n))
    for src in range(n):
        hops[src, src] = 0
        bandwidth[src, src] = math.inf
        frontier = [src]
        while frontier:
            best: dict[int, tuple[float, float]] = {}
            for here in frontier:
                for there, bw, e_bit in adjacency[here]:
                    if hops[src, there] >= 0:
                        continue
                    label = (min(bandwidth[src, here], bw), energy[src, here] + e_bit)
                    old = best.get(there)
                    if old is None or label[0] > old[0] or (label[0] == old[0] and label[1] < old[1]):
                        best[there] = label
            for there, (bw, e_bit) in best.items():
                hops[src, there] = hops[src, frontier[0]] + 1
                bandwidth[src, there] = bw
                energy[src, there] = e_bit
            frontier = sorted(best)
    return hops, bandwidth, energy


@dataclass
class CostModel:
    """Cost matrices of one workload (at one precision) on one system; see the module docstring."""

    workload: Workload
    system: System
    backend_name: str
    layer_names: list[str]
    core_ids: list[int]
    core_names: list[str]
    eligible: np.ndarray  # [L, C] bool
    base_energy: np.ndarray  # [L, C]
    base_latency: np.ndarray  # [L, C]
    spill_energy: np.ndarray  # [L, C]
    spill_latency: np.ndarray  # [L, C]
    weight_stream_energy: np.ndarray  # [L]
    weight_stream_latency: np.ndarray  # [L]
    weight_bits: np.ndarray  # [L]
    weight_capacity: np.ndarray  # [C]
    output_bits: np.ndarray  # [L]
    transfer_energy_per_bit: np.ndarray  # [C, C]
    transfer_cycles_per_bit: np.ndarray  # [C, C]
    transfer_hops: np.ndarray  # [C, C], -1 where routed through off-chip memory
    layer_costs: dict[tuple[int, int], LayerCost] = field(default_factory=dict)

    @property
    def num_cores(self) -> int:
        """Number of cores (positions in ``system.cores``)."""
        return len(self.core_ids)

    def core_position(self, core_id: int) -> int:
        """Position of a core id in the matrices; one-line error for an unknown id."""
        try:
            return self.core_ids.index(core_id)
        except ValueError:
            raise ConfigError(
                f"allocation: unknown core {core_id!r} for hardware {self.system.name!r}; known ids {self.core_ids}"
            ) from None

    @property
    def compute_positions(self) -> list[int]:
        """Positions of the compute cores."""
        return [i for i, core in enumerate(self.system.cores) if core.kind == CoreKind.COMPUTE]


def build_cost_model(
    workload: Workload,
    system: System,
    backend: CostBackend,
    cache: LayerCostCache | None = None,
    strip_offchip_levels: bool = True,
) -> CostModel:
    """Cost every layer of ``workload`` on every core that may run it and apply the system-level rules.

    With ``strip_offchip_levels=False`` the cores go to the backend as described (DRAM levels kept) and
    the mapping adds no off-chip traffic of its own (weights pinned, no spill, input free), so that
    nothing is counted twice.
    """
    cache = cache if cache is not None else DEFAULT_CACHE
    layers = workload.layers
    cores = list(system.cores)
    n_layers, n_cores = len(layers), len(cores)
    eligible = np.zeros((n_layers, n_cores), dtype=bool)
    for li, layer in enumerate(layers):
        eligible[li, eligible_cores(layer, system)] = True

    port = offchip_port(system) if strip_offchip_levels else None
    base_e = np.full((n_layers, n_cores), np.inf)
    base_t = np.full((n_layers, n_cores), np.inf)
    spill_e = np.zeros((n_layers, n_cores))
    spill_t = np.zeros((n_layers, n_cores))
    bits = np.array([layer_bits(layer) for layer in layers]).reshape(n_layers, 3)
    layer_costs: dict[tuple[int, int], LayerCost] = {}
    producers_bits: list[float] = []
    names = {layer.name: li for li, layer in enumerate(layers)}
    for layer in layers:
        if layer.inputs:
            producers_bits.append(float(sum(bits[names[p], 2] for p in layer.inputs if p in names)))
        else:
            producers_bits.append(float(bits[names[layer.name], 1]))

    weight_capacity = np.zeros(n_cores)
    for ci, core in enumerate(cores):
        rows = np.flatnonzero(eligible[:, ci])
        if rows.size == 0:
            continue
        costed = onchip_core(core) if strip_offchip_levels else core
        results = cache.costs([layers[r] for r in rows], costed, backend)
        for r, cost in zip(rows, results):
            base_e[r, ci] = cost.energy_pj
            base_t[r, ci] = cost.latency_cycles
            layer_costs[(int(r), ci)] = cost
        cap_i, cap_o, shared = activation_capacity(core)
        mem_w = _outermost(core, "W")
        working_sets = []
        for r in rows:
            in_bits, out_bits = producers_bits[r], bits[r, 2]
            if shared:
                own_w = bits[r, 0] if (mem_w is not None and mem_w is _outermost(core, "I")) else 0.0
                overflow = max(0.0, in_bits + out_bits + own_w - cap_i)
            else:
                overflow = max(0.0, in_bits - cap_i) + max(0.0, out_bits - cap_o)
            working_sets.append(in_bits + out_bits)
            if port is not None:
                e_w, t_w = port.write(overflow)
                e_r, t_r = port.read(overflow)
                spill_e[r, ci] = e_w + e_r
                spill_t[r, ci] = t_w + t_r
                if not layers[r].inputs:
                    e_in, t_in = port.read(bits[r, 1])
                    spill_e[r, ci] += e_in
                    spill_t[r, ci] += t_in
        if port is None:
            weight_capacity[ci] = math.inf
        elif mem_w is not None:
            capacity = float(mem_w.size_bits)
            if any(op in mem_w.operands for op in ("I", "O")):
                capacity = max(0.0, capacity - max(working_sets, default=0.0))
            weight_capacity[ci] = capacity

    w_stream_e = np.zeros(n_layers)
    w_stream_t = np.zeros(n_layers)
    if port is not None:
        for li in range(n_layers):
            w_stream_e[li], w_stream_t[li] = port.read(bits[li, 0])

    hops, bandwidth, e_bit = _routes(system)
    per_bit_e = np.where(hops >= 0, e_bit, np.inf)
    per_bit_t = np.where(hops >= 0, 1.0 / np.where(hops >= 0, bandwidth, 1.0), np.inf)
    np.fill_diagonal(per_bit_t, 0.0)
    if port is not None:
        via_e = port.w_cost / port.w_bw + port.r_cost / port.r_bw
        via_t = 1.0 / port.w_bw + 1.0 / port.r_bw
        per_bit_e = np.where(hops >= 0, per_bit_e, via_e)
        per_bit_t = np.where(hops >= 0, per_bit_t, via_t)
    return CostModel(
        workload=workload,
        system=system,
        backend_name=backend.name,
        layer_names=[layer.name for layer in layers],
        core_ids=[core.id for core in cores],
        core_names=[core.name for core in cores],
        eligible=eligible,
        base_energy=base_e,
        base_latency=base_t,
        spill_energy=spill_e,
        spill_latency=spill_t,
        weight_stream_energy=w_stream_e,
        weight_stream_latency=w_stream_t,
        weight_bits=bits[:, 0].copy(),
        weight_capacity=weight_capacity,
        output_bits=bits[:, 2].copy(),
        transfer_energy_per_bit=per_bit_e,
        transfer_cycles_per_bit=per_bit_t,
        transfer_hops=hops,
        layer_costs=layer_costs,
    )
