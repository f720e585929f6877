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
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from exitspace.cost.base import CostBackend, LayerCost
from exitspace.cost.cache import CostCache, cached_evaluate
from exitspace.errors import ConfigError
from exitspace.hardware.model import OFFCHIP_NAME, Core, CoreKind, MemoryLevel, System
from exitspace.workload.layer import Layer, OpType, Workload



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


def route_table(system: System) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per core pair (positions in ``system.cores``): hops (-1: no route), bottleneck bandwidth (bits/cycle) and
    energy per bit of the route transfers take (see :func:`_routes`)."""
    return _routes(system)


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


@dataclass(frozen=True)
class _LayerSizes:
    """Per-layer sizes in bits: ``bits`` [L, 3] (weight, input, output) and ``reads`` [L], the activations
    each layer reads (its producers' outputs, or the network input where ``reads_input``)."""

    bits: np.ndarray
    reads: list[float]
    reads_input: list[bool]

    @classmethod
    def of(cls, layers: Sequence[Layer]) -> _LayerSizes:
        """The sizes of ``layers`` (a workload's layers, in order)."""
        bits = np.array([layer_bits(layer) for layer in layers]).reshape(len(layers), 3)
        reads: list[float] = []
        names = {layer.name: li for li, layer in enumerate(layers)}
        for layer in layers:
            if layer.inputs:
                reads.append(float(sum(bits[names[p], 2] for p in layer.inputs if p in names)))
            else:
                reads.append(float(bits[names[layer.name], 1]))
        return cls(bits, reads, [not layer.inputs for layer in layers])


def activation_fit_matrix(workload: Workload, system: System) -> np.ndarray:
    """[layers, cores] True where the layer's input + output activations fit the core's activation memory."""
    caps = [activation_capacity(core) for core in system.cores]
    fit = np.ones((len(workload.layers), len(caps)), dtype=bool)
    for li, layer in enumerate(workload.layers):
        _, in_bits, out_bits = layer_bits(layer)
        for ci, (cap_i, cap_o, shared) in enumerate(caps):
            fit[li, ci] = (in_bits + out_bits <= cap_i) if shared else (in_bits <= cap_i and out_bits <= cap_o)
    return fit


@dataclass(frozen=True)
class _CoreMemory:
    """A core's on-chip activation capacities (bits) and its outermost on-chip weight level."""

    cap_i: float
    cap_o: float
    shared: bool  # one level holds both inputs and outputs
    weights: MemoryLevel | None
    weights_with_inputs: bool  # the weight level is the input level

    @classmethod
    def of(cls, core: Core) -> _CoreMemory:
        """The activation and weight memories of ``core``."""
        cap_i, cap_o, shared = activation_capacity(core)
        mem_w = _outermost(core, "W")
        return cls(cap_i, cap_o, shared, mem_w, mem_w is not None and mem_w is _outermost(core, "I"))

    def overflow(self, in_bits: float, out_bits: float, weight_bits: float) -> float:
        """Activation bits of one layer that do not fit on chip."""
        if self.shared:
            own_w = weight_bits if self.weights_with_inputs else 0.0
            return max(0.0, in_bits + out_bits + own_w - self.cap_i)
        return max(0.0, in_bits - self.cap_i) + max(0.0, out_bits - self.cap_o)


@dataclass(frozen=True)
class _CoreCosts:
    """The [layers x cores] matrices of a cost model, filled core by core, with the backend's results and
    each core's weight capacity."""

    base_energy: np.ndarray
    base_latency: np.ndarray
    spill_energy: np.ndarray
    spill_latency: np.ndarray
    weight_capacity: np.ndarray
    layer_costs: dict[tuple[int, int], LayerCost]

    @classmethod
    def empty(cls, n_layers: int, n_cores: int) -> _CoreCosts:
        """Base costs ``inf`` (not runnable), spills and weight capacities 0."""
        return cls(
            base_energy=np.full((n_layers, n_cores), np.inf),
            base_latency=np.full((n_layers, n_cores), np.inf),
            spill_energy=np.zeros((n_layers, n_cores)),
            spill_latency=np.zeros((n_layers, n_cores)),
            weight_capacity=np.zeros(n_cores),
            layer_costs={},
        )

    def record(self, ci: int, rows: np.ndarray, results: Sequence[LayerCost]) -> None:
        """Store the backend's costs of the layers ``rows`` on core ``ci``."""
        for r, cost in zip(rows, results):
            self.base_energy[r, ci] = cost.energy_pj
            self.base_latency[r, ci] = cost.latency_cycles
            self.layer_costs[(int(r), ci)] = cost

    def add_spills(
        self, ci: int, rows: np.ndarray, sizes: _LayerSizes, memory: _CoreMemory, port: OffchipPort | None
    ) -> list[float]:
        """Add the off-chip spill (and network-input read) of the layers ``rows`` on core ``ci``; return
        each layer's activation working set (bits read plus written)."""
        bits = sizes.bits
        working_sets = []
        for r in rows:
            in_bits, out_bits = sizes.reads[r], bits[r, 2]
            overflow = memory.overflow(in_bits, out_bits, bits[r, 0])
            working_sets.append(in_bits + out_bits)
            if port is not None:
                e_w, t_w = port.write(overflow)
                e_r, t_r = port.read(overflow)
                self.spill_energy[r, ci] = e_w + e_r
                self.spill_latency[r, ci] = t_w + t_r
                if sizes.reads_input[r]:
                    e_in, t_in = port.read(bits[r, 1])
                    self.spill_energy[r, ci] += e_in
                    self.spill_latency[r, ci] += t_in
        return working_sets


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
    eligible = _eligibility(layers, system)
    port = offchip_port(system) if strip_offchip_levels else None
    costs = _CoreCosts.empty(len(layers), len(cores))
    sizes = _LayerSizes.of(layers)
    for ci, core in enumerate(cores):
        rows = np.flatnonzero(eligible[:, ci])
        if rows.size == 0:
            continue
        costed = onchip_core(core) if strip_offchip_levels else core
        costs.record(ci, rows, cache.costs([layers[r] for r in rows], costed, backend))
        memory = _CoreMemory.of(core)
        working_sets = costs.add_spills(ci, rows, sizes, memory, port)
        costs.weight_capacity[ci] = _weight_capacity(memory, port, working_sets)
    w_stream_e, w_stream_t = _weight_streams(sizes.bits, port)
    per_bit_e, per_bit_t, hops = _transfer_costs(system, port)
    return CostModel(
        workload=workload,
        system=system,
        backend_name=backend.name,
        layer_names=[layer.name for layer in layers],
        core_ids=[core.id for core in cores],
        core_names=[core.name for core in cores],
        eligible=eligible,
        base_energy=costs.base_energy,
        base_latency=costs.base_latency,
        spill_energy=costs.spill_energy,
        spill_latency=costs.spill_latency,
        weight_stream_energy=w_stream_e,
        weight_stream_latency=w_stream_t,
        weight_bits=sizes.bits[:, 0].copy(),
        weight_capacity=costs.weight_capacity,
        output_bits=sizes.bits[:, 2].copy(),
        transfer_energy_per_bit=per_bit_e,
        transfer_cycles_per_bit=per_bit_t,
        transfer_hops=hops,
        layer_costs=costs.layer_costs,
    )


def _eligibility(layers: Sequence[Layer], system: System) -> np.ndarray:
    """[layers x cores] bool: which cores may run each layer (see :func:`eligible_cores`)."""
    eligible = np.zeros((len(layers), len(system.cores)), dtype=bool)
    for li, layer in enumerate(layers):
        eligible[li, eligible_cores(layer, system)] = True
    return eligible


def _weight_capacity(memory: _CoreMemory, port: OffchipPort | None, working_sets: list[float]) -> float:
    """Bits of weights a core can keep pinned: unbounded without an off-chip port, else its weight level
    less the largest working set where that level also holds activations (0 without a weight level)."""
    mem_w = memory.weights
    if port is None:
        return math.inf
    if mem_w is None:
        return 0.0
    capacity = float(mem_w.size_bits)
    if any(op in mem_w.operands for op in ("I", "O")):
        capacity = max(0.0, capacity - max(working_sets, default=0.0))
    return capacity


def _weight_streams(bits: np.ndarray, port: OffchipPort | None) -> tuple[np.ndarray, np.ndarray]:
    """(energy, latency) [L] of reading each layer's weights from off-chip; zero without a port."""
    w_stream_e = np.zeros(len(bits))
    w_stream_t = np.zeros(len(bits))
    if port is not None:
        for li in range(len(bits)):
            w_stream_e[li], w_stream_t[li] = port.read(bits[li, 0])
    return w_stream_e, w_stream_t


def _transfer_costs(system: System, port: OffchipPort | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per core pair: energy and cycles per bit of a transfer (over the links; through off-chip memory where
    no route exists, ``inf`` without an off-chip port) and the route's hops (-1: no route)."""
    hops, bandwidth, e_bit = _routes(system)
    per_bit_e = np.where(hops >= 0, e_bit, np.inf)
    per_bit_t = np.where(hops >= 0, 1.0 / np.where(hops >= 0, bandwidth, 1.0), np.inf)
    np.fill_diagonal(per_bit_t, 0.0)
    if port is not None:
        via_e = port.w_cost / port.w_bw + port.r_cost / port.r_bw
        via_t = 1.0 / port.w_bw + 1.0 / port.r_bw
        per_bit_e = np.where(hops >= 0, per_bit_e, via_e)
        per_bit_t = np.where(hops >= 0, per_bit_t, via_t)
    return per_bit_e, per_bit_t, hops
