"""The schedule of one inference with exits on one allocation: per-stage and cumulative cost.

Public API (used by ``dynamic`` and ``search``):

- :class:`StageCost` / :class:`Schedule`: plain dataclasses with ``to_dict``. Units: energy pJ, latency
  cycles. ``Schedule.cum_energy`` / ``cum_latency`` are the cost of a sample that leaves at each exit.
- :class:`NetworkEvaluator`: the numpy hot path. Built once per (cost model, staged network); evaluates a
  batch of allocations ``[P, n]`` (core positions) at once: :meth:`NetworkEvaluator.cumulative` gives
  ``E_cum, L_cum [P, S]`` and :meth:`NetworkEvaluator.objective` one scalar per allocation.
- :func:`build_schedule`: the full :class:`Schedule` of one allocation.

Policies: ``"wait"`` runs the layers one after the other in execution order (the backbone continues
only after each head has decided), so a stage's latency is the sum of its layers' latencies including
their inbound transfers; ``"overlap"`` list-schedules the layers (each core runs one layer at a time;
the backbone chain and each head chain are ordered; a layer's inbound transfers run one after the other
once all its inputs and its chain predecessor are done, and it starts when they have arrived and its
core is free; link contention is not modelled), so the next backbone segment runs while a head decides. A sample that leaves at exit i
under overlap leaves at ``D_i = max_{k<=i} finish(head k)`` and has paid for every layer of stages <= i
plus every layer that started before ``D_i`` (counted in full): the latter is its *wasted* energy.
Per-layer cost = backend cost + off-chip traffic (weight streaming unless pinned, activation spill,
network input) + inbound transfers over the links; see docs/metrics.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from exitspace.errors import ConfigError
from exitspace.mapping.allocation import Allocation
from exitspace.mapping.costs import CostModel
from exitspace.mapping.network import StagedNetwork, head_label

Policy = Literal["wait", "overlap"]
POLICIES: tuple[str, ...] = ("wait", "overlap")
Objective = Literal["avg_product", "product_of_averages", "energy", "latency"]
OBJECTIVES: tuple[str, ...] = ("avg_product", "product_of_averages", "energy", "latency")
UNROUTABLE = 1e30


def check_policy(policy: str, where: str = "policy") -> str:
    """``policy`` if it is an exit-head policy (wait / overlap); else a one-line error naming ``where``."""
    if policy not in POLICIES:
        raise ConfigError(f"{where}: unknown exit-head policy {policy!r}; use one of {list(POLICIES)}")
    return policy


def check_objective(objective: str, where: str = "objective") -> str:
    """``objective`` if it is an allocation objective; else a one-line error naming ``where``."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"{where}: unknown {objective!r}; use one of {list(OBJECTIVES)}")
    return objective


@dataclass
class StageCost:
    """Cost of exit stage ``index`` (0-based) on one allocation.

    ``energy_pj`` / ``latency_cycles``: the stage's increment, i.e. ``cum_*[i] - cum_*[i-1]``.
    ``backbone_*`` / ``head_*``: energy and busy time of the stage's backbone-segment and head layers
    (each including its inbound transfers and off-chip traffic); ``transfer_*`` and ``offchip_*`` are
    the parts of those spent on links and off-chip memory. ``wasted_energy_pj``: speculative work a
    sample that leaves here has paid for (0 under ``wait``). ``cum_energy_pj`` / ``cum_latency_cycles``:
    what a sample that leaves at this exit costs in total. ``macs`` / ``cum_macs``: MACs of the stage's
    layers / of all stages up to here (speculative overlap work not included). ``streamed_weight_bits``:
    weights of the stage's layers that are not pinned on their core and are read from off-chip memory on
    every inference.
    """

    index: int
    exit: str
    label: str
    block: str
    energy_pj: float
    latency_cycles: float
    backbone_energy_pj: float
    backbone_latency_cycles: float
    head_energy_pj: float
    head_latency_cycles: float
    transfer_energy_pj: float
    transfer_latency_cycles: float
    offchip_energy_pj: float
    offchip_latency_cycles: float
    wasted_energy_pj: float
    cum_energy_pj: float
    cum_latency_cycles: float
    macs: int = 0
    cum_macs: int = 0
    streamed_weight_bits: float = 0.0

    @property
    def cum_product(self) -> float:
        """E_cum * L_cum of a sample that leaves here (pJ * cycles)."""
        return self.cum_energy_pj * self.cum_latency_cycles

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (with ``cum_product``)."""
        data = asdict(self)
        data["cum_product"] = self.cum_product
        return data


@dataclass
class Schedule:
    """One inference with exits on ONE allocation: the stages in exit order."""

    network: str
    policy: str
    stages: list[StageCost]
    allocation: Allocation

    @property
    def exits(self) -> list[str]:
        """Head keys, network order."""
        return [stage.exit for stage in self.stages]

    @property
    def cum_energy(self) -> np.ndarray:
        """[S] energy (pJ) of a sample that leaves at each exit."""
        return np.array([stage.cum_energy_pj for stage in self.stages])

    @property
    def cum_latency(self) -> np.ndarray:
        """[S] latency (cycles) of a sample that leaves at each exit."""
        return np.array([stage.cum_latency_cycles for stage in self.stages])

    @property
    def cum_macs(self) -> np.ndarray:
        """[S] MACs of a sample that leaves at each exit."""
        return np.array([stage.cum_macs for stage in self.stages], dtype=float)

    @property
    def head_energy(self) -> np.ndarray:
        """[S] energy of each stage's head layers."""
        return np.array([stage.head_energy_pj for stage in self.stages])

    @property
    def wasted_energy(self) -> np.ndarray:
        """[S] speculative energy of a sample that leaves at each exit (overlap)."""
        return np.array([stage.wasted_energy_pj for stage in self.stages])

    @property
    def backbone_cum_energy(self) -> np.ndarray:
        """[S] energy of the backbone layers a sample that leaves at each exit has run."""
        return np.cumsum([stage.backbone_energy_pj for stage in self.stages])

    @property
    def backbone_cum_latency(self) -> np.ndarray:
        """[S] summed latency of the backbone layers up to each exit (their busy time, transfers included)."""
        return np.cumsum([stage.backbone_latency_cycles for stage in self.stages])

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "network": self.network,
            "policy": self.policy,
            "stages": [stage.to_dict() for stage in self.stages],
            "allocation": self.allocation.to_dict(),
        }


@dataclass
class LayerBatch:
    """Per-layer cost of a batch of allocations, [P, n] each (energy pJ, latency cycles)."""

    energy: np.ndarray
    latency: np.ndarray
    transfer_energy: np.ndarray
    transfer_latency: np.ndarray
    offchip_energy: np.ndarray
    offchip_latency: np.ndarray
    streamed: np.ndarray
    edge_cycles: np.ndarray  # [P, E] cycles of each data edge's transfer


class NetworkEvaluator:
    """Cost of one staged network under many allocations; numpy only (see module docstring)."""

    def __init__(self, model: CostModel, net: StagedNetwork) -> None:
        self.model = model
        self.net = net
        idx = net.layer_index
        n, stages = net.num_layers, net.num_stages
        self.n = n
        self.rows = np.arange(n)
        self.row_offset = self.rows * model.num_cores  # flat index of (layer, core 0) in the [n, C] tables
        self.eligible = model.eligible[idx]
        self.energy = model.base_energy[idx] + model.spill_energy[idx]
        self.latency = model.base_latency[idx] + model.spill_latency[idx]
        self.spill_energy = model.spill_energy[idx]
        self.spill_latency = model.spill_latency[idx]
        self.stream_energy = model.weight_stream_energy[idx]
        self.stream_latency = model.weight_stream_latency[idx]
        self.weight_bits = model.weight_bits[idx]
        self.macs = np.array([model.workload.layers[i].macs for i in idx], dtype=np.int64)
        self.stage_macs = np.bincount(net.stage_of, weights=self.macs, minlength=stages).astype(np.int64)
        self.capacity = model.weight_capacity
        self.src = net.edges[:, 0]
        self.dst = net.edges[:, 1]
        self.edge_bits = model.output_bits[idx[self.src]]
        # no route and no off-chip memory: a huge finite cost keeps sums free of inf * 0 = nan
        self.x_energy = np.where(np.isfinite(model.transfer_energy_per_bit), model.transfer_energy_per_bit, UNROUTABLE)
        self.x_cycles = np.where(np.isfinite(model.transfer_cycles_per_bit), model.transfer_cycles_per_bit, UNROUTABLE)
        self.stage_onehot = np.zeros((n, stages))
        self.stage_onehot[self.rows, net.stage_of] = 1.0
        self.head_onehot = self.stage_onehot * net.is_head[:, None]
        self.backbone_onehot = self.stage_onehot * (~net.is_head)[:, None]
        self.consumer_onehot = np.zeros((len(self.src), n))
        self.consumer_onehot[np.arange(len(self.src)), self.dst] = 1.0
        self.in_edges = [np.flatnonzero(self.dst == j) for j in range(n)]
        self._in_edges_list = [edges.tolist() for edges in self.in_edges]
        self._src_list = self.src.tolist()
        self._chain_list = net.chain_prev.tolist()
        # each layer's predecessors in the overlap schedule: its producers and its chain predecessor
        self.preds = [
            np.unique(np.concatenate([self.src[edges], [net.chain_prev[j]] if net.chain_prev[j] >= 0 else []]))
            .astype(np.int64)
            for j, edges in enumerate(self.in_edges)
        ]
        self.upto = net.stage_of[None, :] <= np.arange(stages)[:, None]  # [S, n]
        first = np.flatnonzero(self.eligible.any(axis=1) == 0)
        if first.size:
            raise ConfigError(f"hardware: no core may run layer {net.layer_names[first[0]]!r}")
        self.default = self.eligible.argmax(axis=1)  # first eligible core per layer
        self.free = np.flatnonzero(self.eligible.sum(axis=1) > 1)

    def layers(self, alloc: np.ndarray) -> LayerBatch:
        """Per-layer costs of allocations ``alloc`` [P, n] (or [n])."""
        alloc = np.atleast_2d(alloc)
        cell = alloc + self.row_offset  # flat (layer, core) cells of the [n, C] tables
        base_e = self.energy.take(cell)
        base_t = self.latency.take(cell)
        streamed = self._streamed(alloc)
        off_e = self.spill_energy.take(cell) + streamed * self.stream_energy
        off_t = self.spill_latency.take(cell) + streamed * self.stream_latency
        if self.src.size:
            route = alloc[:, self.src] * self.model.num_cores + alloc[:, self.dst]  # flat (source, destination) cells
            edge_e = self.x_energy.take(route) * self.edge_bits
            edge_t = self.x_cycles.take(route) * self.edge_bits
            x_e = edge_e @ self.consumer_onehot
            x_t = edge_t @ self.consumer_onehot
        else:
            x_e = np.zeros(alloc.shape)
            x_t = np.zeros(alloc.shape)
            edge_t = np.zeros((alloc.shape[0], 0))
        energy = base_e + streamed * self.stream_energy + x_e
        latency = base_t + streamed * self.stream_latency + x_t
        return LayerBatch(energy, latency, x_e, x_t, off_e, off_t, streamed, edge_t)

    def _streamed(self, alloc: np.ndarray) -> np.ndarray:
        """[P, n] True where a layer's weights are not pinned: the weights of the layers up to it (execution
        order) on its core exceed the core's weight capacity."""
        count, cores = alloc.shape[0], self.model.num_cores
        cell = alloc * self.n + self.rows  # flat (core, layer) cells of a [C, n] table per allocation
        per_core = np.zeros((count, cores * self.n))
        np.put_along_axis(per_core, cell, np.broadcast_to(self.weight_bits, alloc.shape), axis=1)
        running = np.cumsum(per_core.reshape(count, cores, self.n), axis=2).reshape(count, -1)
        running = np.take_along_axis(running, cell, axis=1)  # weights on the layer's core up to and including it
        return running > self.capacity[alloc]

    def overlap_times(self, alloc: np.ndarray, batch: LayerBatch) -> tuple[np.ndarray, np.ndarray]:
        """(start, finish) [P, n] of every layer under the overlap list schedule."""
        alloc = np.atleast_2d(alloc)
        count = alloc.shape[0]
        edge_t = batch.edge_cycles
        busy = batch.latency - batch.transfer_latency  # transfers delay readiness, they do not hold the core
        if count == 1:
            return self._overlap_one(alloc[0].tolist(), edge_t[0].tolist(), busy[0].tolist())
        # layer-major [n, P] rows: one row per step of the list schedule, vectorised over the allocations
        inbound = (edge_t @ self.consumer_onehot).T if self.src.size else np.zeros((self.n, count))
        alloc_t, busy_t = alloc.T, busy.T
        start = np.empty((self.n, count))
        finish = np.empty((self.n, count))
        core_free = np.zeros((self.model.num_cores, count))
        who = np.arange(count)
        for j, preds in enumerate(self.preds):
            if preds.size == 1:
                ready = finish[preds[0]] + inbound[j]
            elif preds.size:
                ready = finish[preds].max(axis=0) + inbound[j]
            else:
                ready = inbound[j]  # inbound transfers start once every input is done, one after the other
            core = alloc_t[j]
            begin = np.maximum(ready, core_free[core, who])
            start[j] = begin
            finish[j] = done = begin + busy_t[j]
            core_free[core, who] = done
        return start.T, finish.T

    def _overlap_one(self, cores: list[int], edge_t: list[float], busy: list[float]) -> tuple[np.ndarray, np.ndarray]:
        """The same list schedule for one allocation, in plain Python (faster than numpy for P = 1)."""
        start = [0.0] * self.n
        finish = [0.0] * self.n
        core_free = [0.0] * self.model.num_cores
        for j in range(self.n):
            ready, inbound = 0.0, 0.0
            for e in self._in_edges_list[j]:
                ready = max(ready, finish[self._src_list[e]])
                inbound += edge_t[e]
            prev = self._chain_list[j]
            if prev >= 0:
                ready = max(ready, finish[prev])
            begin = max(ready + inbound, core_free[cores[j]])
            start[j] = begin
            finish[j] = core_free[cores[j]] = begin + busy[j]
        return np.array([start]), np.array([finish])

    def cumulative(self, alloc: np.ndarray, policy: str = "wait") -> tuple[np.ndarray, np.ndarray]:
        """(E_cum, L_cum) [P, S]: cost of a sample that leaves at each exit."""
        batch = self.layers(alloc)
        return self._cumulative(np.atleast_2d(alloc), batch, policy)[:2]

    def _cumulative(
        self, alloc: np.ndarray, batch: LayerBatch, policy: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        stage_e = batch.energy @ self.stage_onehot
        if policy == "wait":
            cum_e = np.cumsum(stage_e, axis=1)
            cum_l = np.cumsum(batch.latency @ self.stage_onehot, axis=1)
            return cum_e, cum_l, np.zeros_like(cum_e)
        check_policy(policy)
        start, finish = self.overlap_times(alloc, batch)
        decided = np.maximum.accumulate(finish[:, self.net.head_last], axis=1)  # [P, S]
        own = np.cumsum(stage_e, axis=1)
        cum_e = np.empty_like(own)
        for s in range(self.net.num_stages):
            paid = self.upto[s][None, :] | (start < decided[:, s : s + 1])
            cum_e[:, s] = (batch.energy * paid).sum(axis=1)
        return cum_e, decided, cum_e - own

    def objective(
        self, alloc: np.ndarray, ratios: np.ndarray, objective: str = "avg_product", policy: str = "wait"
    ) -> np.ndarray:
        """[P] objective of each allocation for exit ratios ``ratios`` [S]."""
        cum_e, cum_l = self.cumulative(alloc, policy)
        return objective_value(cum_e, cum_l, ratios, objective)

    def schedule(self, alloc: np.ndarray, policy: str = "wait", allocation: Allocation | None = None) -> Schedule:
        """The full :class:`Schedule` of one allocation [n]."""
        check_policy(policy)
        alloc2 = np.atleast_2d(alloc)
        if alloc2.shape[0] != 1:
            raise ValueError("schedule() takes one allocation")
        batch = self.layers(alloc2)
        if self.src.size:
            bad = np.flatnonzero(self.x_energy[alloc2[0, self.src], alloc2[0, self.dst]] >= UNROUTABLE)
            if bad.size:
                e = bad[0]
                a, b = (self.model.core_names[alloc2[0, self.src[e]]], self.model.core_names[alloc2[0, self.dst[e]]])
                raise ConfigError(
                    f"allocation: {self.net.layer_names[self.src[e]]!r} on {a} feeds "
                    f"{self.net.layer_names[self.dst[e]]!r} on {b}, but no link path or off-chip memory joins "
                    "them; add a link or move one layer"
                )
        cum_e, cum_l, wasted = self._cumulative(alloc2, batch, policy)
        bb_e = (batch.energy @ self.backbone_onehot)[0]
        bb_t = (batch.latency @ self.backbone_onehot)[0]
        hd_e = (batch.energy @ self.head_onehot)[0]
        hd_t = (batch.latency @ self.head_onehot)[0]
        x_e = (batch.transfer_energy @ self.stage_onehot)[0]
        x_t = (batch.transfer_latency @ self.stage_onehot)[0]
        o_e = (batch.offchip_energy @ self.stage_onehot)[0]
        o_t = (batch.offchip_latency @ self.stage_onehot)[0]
        w_bits = ((batch.streamed * self.weight_bits) @ self.stage_onehot)[0]
        cum_macs = np.cumsum(self.stage_macs)
        prev_e = np.concatenate([[0.0], cum_e[0, :-1]])
        prev_l = np.concatenate([[0.0], cum_l[0, :-1]])
        if allocation is None:
            from exitspace.mapping.allocation import from_array

            allocation = from_array(self.model, self.net, alloc2[0], strategy="given")
        stages = [
            StageCost(
                index=s,
                exit=key,
                label=head_label(key),
                block=self.net.exit_blocks[s],
                energy_pj=float(cum_e[0, s] - prev_e[s]),
                latency_cycles=float(cum_l[0, s] - prev_l[s]),
                backbone_energy_pj=float(bb_e[s]),
                backbone_latency_cycles=float(bb_t[s]),
                head_energy_pj=float(hd_e[s]),
                head_latency_cycles=float(hd_t[s]),
                transfer_energy_pj=float(x_e[s]),
                transfer_latency_cycles=float(x_t[s]),
                offchip_energy_pj=float(o_e[s]),
                offchip_latency_cycles=float(o_t[s]),
                wasted_energy_pj=float(wasted[0, s]),
                cum_energy_pj=float(cum_e[0, s]),
                cum_latency_cycles=float(cum_l[0, s]),
                macs=int(self.stage_macs[s]),
                cum_macs=int(cum_macs[s]),
                streamed_weight_bits=float(w_bits[s]),
            )
            for s, key in enumerate(self.net.exit_keys)
        ]
        return Schedule(network=self.net.name, policy=policy, stages=stages, allocation=allocation)


def objective_value(cum_e: np.ndarray, cum_l: np.ndarray, ratios: np.ndarray, objective: str) -> np.ndarray:
    """[P] value of ``objective`` from cumulative costs [P, S] and exit ratios [S]."""
    if objective == "avg_product":
        return (cum_e * cum_l) @ ratios
    if objective == "product_of_averages":
        return (cum_e @ ratios) * (cum_l @ ratios)
    if objective == "energy":
        return cum_e @ ratios
    if objective == "latency":
        return cum_l @ ratios
    check_objective(objective)
    raise AssertionError("unreachable")
