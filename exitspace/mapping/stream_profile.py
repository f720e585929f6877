"""The ``stream`` cost profile: the accounting of the paper's Stream fork, to reproduce and explain its figures.

It is not exitspace's accounting (``exitspace evaluate`` without ``--profile``); it exists so that a user can
put exitspace's figures next to the paper's and see where they part. The rules, each one switchable so that
``docs/stream-profile.md`` can walk from the paper's figures to exitspace's one difference at a time:

- ``dram_residency``: every compute-core layer is costed on its core *with* the in-core DRAM level, so it
  reads its inputs and weights from DRAM and writes its outputs back (ZigZag's per-layer view; exitspace
  instead keeps activations in the on-chip SRAM and counts off-chip traffic once at the system level);
- ``pool_channel_loop``: pooling keeps the input-channel loop the fork's pooling parser adds, so a max-pool
  costs C times its real work;
- ``weight_prefetch``: each layer's weights come from the off-chip core over its link, placed in the
  link's earliest idle window (ahead of use), paying the off-chip read and the write into the core's top
  weight memory; each head's result is written back over the same link when it is produced, which splits the
  link's idle time (a large head's weights wait for a window long enough);
- ``transfer_memory_energy``: a transfer between cores pays the sender's top-memory read and the receiver's
  top-memory write (links themselves cost their ``energy_per_bit_pj``, 0 on the paper's mesh);
- ``zigzag_363_latency``: on- and off-loading are not overlapped with compute (zigzag-dse 3.6.3, which the
  fork pins);
- ``runtime_excludes_offload``: a layer occupies its core for ZigZag's latency without the final output
  off-loading (Stream schedules ``latency_total1``); its energy still includes it;
- ``spatial_search``: the fork's cores name no dataflow; each layer takes the mapping ZigZag's generator
  finds (:mod:`exitspace.mapping.spatial_search`);
- ``simd_width_lanes``: the fork's element-wise parser loops over (B, C, H, W) and names the last one K, so the
  SIMD core's K lanes unroll the output width, not the channels.

Schedule: layer by layer in network order (each head right after its block); a layer starts when its core is
free, its inputs have arrived and its weights are in. Stage ``i``'s block latency is the span of its backbone
layers, its head latency the span of its head layers, its latency the span of both (so the transfer of the
block's output to the pooling core counts in the stage, in neither part), its energy that of its layers plus
the transfers of tensors they produce (weights: the layer that uses them).
``best_of_allocations``: each stage's figures come from whichever of the given allocations minimises that
stage's energy x latency (the paper's metric, no single deployable mapping); otherwise from the first.
Average ET = sum_i r_i E_cum,i L_cum,i (E in J, L in cycles); reduction vs static = E_cum,final x (sum of
block latencies) / average ET, as the fork's plotting script computes it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from exitspace.cost.analytical import AnalyticalBackend
from exitspace.cost.analytical.layers import ModelOptions
from exitspace.cost.base import LayerCost
from exitspace.errors import ConfigError
from exitspace.hardware.model import Core, CoreKind, MemoryLevel, System
from exitspace.mapping.costs import eligible_cores, layer_bits, onchip_core, route_table
from exitspace.mapping.network import StagedNetwork, head_label, stage_network
from exitspace.mapping.spatial_search import searched_costs
from exitspace.workload.layer import Layer, OpType, Workload

UNLIMITED_LINK = 2**31 - 1  # Stream's infinite-bandwidth SIMD links (see exitspace.hardware.stream_yaml)
PJ_PER_J = 1e12


@dataclass(frozen=True)
class StreamRules:
    """Which of the fork's accounting rules apply; all True: the paper's figures (see the module docstring)."""

    dram_residency: bool = True
    pool_channel_loop: bool = True
    weight_prefetch: bool = True
    transfer_memory_energy: bool = True
    zigzag_363_latency: bool = True
    runtime_excludes_offload: bool = True
    spatial_search: bool = True
    simd_width_lanes: bool = True
    best_of_allocations: bool = True

    def model_options(self) -> ModelOptions:
        """The analytical backend's variant these rules cost layers with."""
        return ModelOptions(pool_channel_loop=self.pool_channel_loop, borrow_bandwidth=not self.zigzag_363_latency,
                            real_input_size=True)


PAPER_RULES = StreamRules()


@dataclass
class StreamStage:
    """One exit stage under the stream profile (energy pJ, latency cycles)."""

    exit: str
    block_latency_cycles: float
    head_latency_cycles: float
    stage_latency_cycles: float
    stage_energy_pj: float
    layer_energy_pj: float
    transfer_energy_pj: float
    weight_fetch_energy_pj: float
    allocation: int  # index of the allocation the stage's figures come from


@dataclass
class StreamFigures:
    """Per-stage figures and the paper's averages for one network and its exit ratios."""

    exits: list[str]
    ratios: list[float]
    rules: dict[str, bool]
    stages: list[StreamStage]
    avg_et_j_cycles: float
    avg_latency_cycles: float
    avg_energy_j: float
    et_reduction_vs_static: float
    head_latency_share: float
    profile: str = "stream"
    note: str = field(default="the paper's Stream accounting (cost profile 'stream'), not exitspace's; see docs/stream-profile.md")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)


# ------------------------------------------------------------------------------------------------ allocation


def default_allocation(net: StagedNetwork, workload: Workload, system: System) -> dict[str, int]:
    """Every layer on the first core that may run it (so all MAC layers share the first compute core)."""
    out: dict[str, int] = {}
    for name, index in zip(net.layer_names, net.layer_index):
        layer = workload.layers[int(index)]
        out[name] = system.cores[eligible_cores(layer, system)[0]].id
    return out


# ------------------------------------------------------------------------------------------------ layer costs


def _top_level(core: Core, operand: str) -> MemoryLevel:
    levels = core.levels_for(operand)  # type: ignore[arg-type]
    if not levels:
        raise ConfigError(f"hardware: core {core.name!r} holds no {operand} memory; the stream profile needs one")
    return levels[-1]


def _costed_core(core: Core, rules: StreamRules) -> Core:
    return core if rules.dram_residency or core.kind == CoreKind.OFFCHIP else onchip_core(core)


class _LayerCosts:
    """Per (layer, core id) cost under the rules, computed once per core for all layers that run there."""

    def __init__(self, layers: dict[str, Layer], system: System, rules: StreamRules) -> None:
        self.layers, self.system, self.rules = layers, system, rules
        self.backend = AnalyticalBackend(rules.model_options())
        self.costs: dict[tuple[str, int], LayerCost] = {}

    def fill(self, allocation: dict[str, int]) -> None:
        """Cost every (layer, core) pair of ``allocation`` not costed yet."""
        todo: dict[int, list[str]] = {}
        for name, core_id in allocation.items():
            if (name, core_id) not in self.costs:
                todo.setdefault(core_id, []).append(name)
        for core_id, names in todo.items():
            core = _costed_core(self.system.core(core_id), self.rules)
            layers = [self.layers[name] for name in names]
            search = self.rules.spatial_search and core.kind == CoreKind.COMPUTE
            if self.rules.simd_width_lanes and core.kind == CoreKind.SIMD:
                core = core.model_copy(update={"dataflow": {dim: ("OX",) for dim in core.dataflow}})
            results = searched_costs(layers, core, self.backend) if search else self.backend.evaluate(layers, core)
            for name, cost in zip(names, results):
                self.costs[(name, core_id)] = cost


# ------------------------------------------------------------------------------------------------ schedule


class _OffchipLink:
    """The off-chip core's link: one medium, transfers placed in its earliest idle window (Stream's rule)."""

    def __init__(self) -> None:
        self.busy: list[tuple[float, float]] = []

    def place(self, ready: float, duration: float) -> float:
        """End time of a transfer of ``duration`` cycles that may start at ``ready``."""
        start = ready
        for begin, end in self.busy:
            if start + duration <= begin:
                break
            start = max(start, end)
        self.busy.append((start, start + duration))
        self.busy.sort()
        return start + duration


@dataclass
class _Timeline:
    start: np.ndarray
    end: np.ndarray
    layer_energy: np.ndarray
    transfer_energy: np.ndarray  # booked on the stage of the producing layer
    weight_energy: np.ndarray


def _transfer(bits: float, sender: Core, receiver: Core, receiver_operand: str, bandwidth: float, e_bit: float,
              rules: StreamRules) -> tuple[float, float]:
    """(cycles, energy pJ) of moving ``bits`` from ``sender``'s top output memory to ``receiver``'s."""
    cycles = 0.0 if bandwidth >= UNLIMITED_LINK or bits <= 0 else float(math.ceil(bits / bandwidth))
    energy = bits * e_bit
    if rules.transfer_memory_energy and bits > 0:
        out_level = _top_level(_costed_core(sender, rules), "O")
        in_level = _top_level(_costed_core(receiver, rules), receiver_operand)
        energy += math.ceil(bits / out_level.r_bw) * out_level.r_cost + math.ceil(bits / in_level.w_bw) * in_level.w_cost
    return cycles, energy


def _schedule(net: StagedNetwork, workload: Workload, system: System, allocation: dict[str, int],
              costs: _LayerCosts, rules: StreamRules) -> _Timeline:
    n = net.num_layers
    layers = [workload.layers[int(i)] for i in net.layer_index]
    hops, bandwidth, e_bit = route_table(system)
    position = {core.id: i for i, core in enumerate(system.cores)}
    offchip = system.offchip
    link = _OffchipLink()
    producers: list[list[int]] = [[] for _ in range(n)]
    for p, c in net.edges:
        producers[int(c)].append(int(p))
    sinks = set(range(n)) - {int(p) for p, _ in net.edges}
    core_free: dict[int, float] = {}
    tl = _Timeline(np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n))
    for j, layer in enumerate(layers):
        core_id = allocation[net.layer_names[j]]
        core = system.core(core_id)
        cost = costs.costs[(net.layer_names[j], core_id)]
        ready = core_free.get(core_id, 0.0)
        for slot, p in enumerate(producers[j]):
            arrival = tl.end[p]
            src = allocation[net.layer_names[p]]
            if src != core_id:
                a, b = position[src], position[core_id]
                operand = "W" if (layer.op == OpType.ADD and slot == 1) else "I"  # an add's 2nd input: ZigZag's I2
                cycles, energy = _transfer(layer_bits(layers[p])[2], system.core(src), core, operand,
                                           float(bandwidth[a, b]), float(e_bit[a, b]), rules)
                arrival += cycles
                tl.transfer_energy[p] += energy
            ready = max(ready, arrival)
        w_bits, in_bits, _ = layer_bits(layer)
        if offchip is not None:
            port = offchip.memories[0]
            if net.reads_input[j]:
                cycles, energy = _transfer(in_bits, offchip, core, "I", float(port.r_bw), 0.0, rules)
                ready = max(ready, link.place(0.0, cycles))
                tl.transfer_energy[j] += energy
            if rules.weight_prefetch and w_bits > 0:
                cycles, energy = _transfer(w_bits, offchip, core, "W", float(port.r_bw), 0.0, rules)
                ready = max(ready, link.place(0.0, cycles))
                tl.weight_energy[j] += energy
        tl.start[j] = ready
        runtime = cost.latency_cycles - (cost.offload_cycles if rules.runtime_excludes_offload else 0.0)
        tl.end[j] = ready + runtime
        tl.layer_energy[j] = cost.energy_pj
        core_free[core_id] = tl.end[j]
        if offchip is not None and j in sinks:  # a final output goes back to the off-chip core once it exists
            cycles, energy = _transfer(layer_bits(layer)[2], core, offchip, "O", float(offchip.memories[0].w_bw), 0.0, rules)
            link.place(float(tl.end[j]), cycles)
            tl.transfer_energy[j] += energy
    return tl


def _stages(net: StagedNetwork, tl: _Timeline, index: int) -> list[StreamStage]:
    out = []
    for s in range(net.num_stages):
        block = (net.stage_of == s) & ~net.is_head
        head = (net.stage_of == s) & net.is_head
        block_lat = float(tl.end[block].max() - tl.start[block].min()) if block.any() else 0.0
        head_lat = float(tl.end[head].max() - tl.start[head].min()) if head.any() else 0.0
        mask = net.stage_of == s
        span = float(tl.end[mask].max() - tl.start[mask].min())
        layer_e = float(tl.layer_energy[mask].sum())
        transfer_e = float(tl.transfer_energy[mask].sum())
        weight_e = float(tl.weight_energy[mask].sum())
        out.append(StreamStage(head_label(net.exit_keys[s]), block_lat, head_lat, span,
                               layer_e + transfer_e + weight_e, layer_e, transfer_e, weight_e, index))
    return out


# ------------------------------------------------------------------------------------------------ figures


def stream_figures(
    workload: Workload,
    exit_keys: Sequence[str],
    system: System,
    ratios: Sequence[float],
    rules: StreamRules = PAPER_RULES,
    allocations: Sequence[dict[str, int]] = (),
) -> StreamFigures:
    """The stream profile's per-stage figures and averages (see the module docstring).

    ``allocations``: {layer name: core id} maps to take stages from (missing layers: the default
    allocation's core); none given: the default allocation (all MAC layers on the first compute core).
    """
    net = stage_network(workload, list(exit_keys))
    if len(ratios) != net.num_stages:
        raise ConfigError(f"ratios: {len(ratios)} values for {net.num_stages} exits; give one ratio per exit")
    base = default_allocation(net, workload, system)
    candidates = [base | dict(a) for a in allocations] or [base]
    for alloc in candidates:
        for name, core_id in alloc.items():
            if name not in base:
                raise ConfigError(f"allocation: layer {name!r} is not in the network; layers {list(base)[:3]}...")
            system.core(core_id)
    costs = _LayerCosts({n: workload.layers[int(i)] for n, i in zip(net.layer_names, net.layer_index)}, system, rules)
    per_alloc = []
    for index, alloc in enumerate(candidates):
        costs.fill(alloc)
        per_alloc.append(_stages(net, _schedule(net, workload, system, alloc, costs, rules), index))
    pool = per_alloc if rules.best_of_allocations else per_alloc[:1]
    stages = [min((run[s] for run in pool), key=lambda st: st.stage_energy_pj * st.stage_latency_cycles)
              for s in range(net.num_stages)]
    return _figures(list(exit_keys), [float(r) for r in ratios], rules, stages)


def _figures(exits: list[str], ratios: list[float], rules: StreamRules, stages: list[StreamStage]) -> StreamFigures:
    r = np.asarray(ratios)
    cum_e = np.cumsum([st.stage_energy_pj for st in stages]) / PJ_PER_J
    cum_l = np.cumsum([st.stage_latency_cycles for st in stages])
    avg_et = float(r @ (cum_e * cum_l))
    static = float(cum_e[-1] * sum(st.block_latency_cycles for st in stages))
    total_latency = sum(st.stage_latency_cycles for st in stages)
    return StreamFigures(
        exits=exits,
        ratios=ratios,
        rules=asdict(rules),
        stages=stages,
        avg_et_j_cycles=avg_et,
        avg_latency_cycles=float(r @ cum_l),
        avg_energy_j=float(r @ cum_e),
        et_reduction_vs_static=static / avg_et if avg_et > 0 else math.inf,
        head_latency_share=sum(st.head_latency_cycles for st in stages) / total_latency if total_latency else 0.0,
    )


__all__ = ["PAPER_RULES", "StreamFigures", "StreamRules", "StreamStage", "default_allocation", "stream_figures"]
