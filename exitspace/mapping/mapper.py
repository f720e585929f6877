"""The mapping stage's entry point: one object per (workload at one precision, system, backend).

    mapper = Mapper(workload.with_precision(Precision.uniform(8), Precision.uniform(8)), system, backend)
    net = mapper.network(["D:pool4_fc1", "F:pool4_fc1", "I:pool4_fc1", "K:pool4_fc1"])
    allocation = mapper.allocate(net, "ga", ratios=[.2549, .1531, .3114, .2806], seed=0)
    schedule = mapper.schedule(net, allocation, policy="wait")        # per-stage and cumulative cost

Cost matrices are built once (backend results cached per (layer, core)); staged networks and their
evaluators are cached per exit list, so scoring another candidate is numpy sums only.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from exitspace.cost.base import CostBackend
from exitspace.errors import ConfigError
from exitspace.hardware.model import System
from exitspace.mapping.allocation import Allocation, from_array, to_array
from exitspace.mapping.costs import CostModel, LayerCostCache, build_cost_model
from exitspace.mapping.network import StagedNetwork, stage_network, static_network
from exitspace.mapping.optimise import GAConfig, optimise
from exitspace.mapping.schedule import NetworkEvaluator, Schedule, check_policy
from exitspace.workload.layer import Workload


def check_ratios(ratios: Sequence[float] | np.ndarray, num_exits: int, tolerance: float = 1e-3) -> np.ndarray:
    """Exit ratios as an array that sums to exactly 1; one-line errors for a wrong count, a negative
    value or a sum off 1 by more than ``tolerance``."""
    values = np.asarray(list(ratios), dtype=float)
    if values.ndim != 1 or values.size != num_exits:
        raise ConfigError(f"ratios: {values.size} values for {num_exits} exits; give one ratio per exit")
    if not np.all(np.isfinite(values)) or (values < 0).any():
        raise ConfigError(f"ratios: {values.tolist()} has a negative or non-finite value; ratios are shares >= 0")
    total = float(values.sum())
    if abs(total - 1.0) > tolerance:
        raise ConfigError(f"ratios: sum to {total:.4f}, not 1; give shares of samples leaving at each exit")
    return values / total


class Mapper:
    """Allocation and schedule of candidate networks of one workload on one system (see module docstring)."""

    def __init__(
        self,
        workload: Workload,
        system: System,
        backend: CostBackend,
        cache: LayerCostCache | None = None,
        strip_offchip_levels: bool = True,
    ) -> None:
        self.workload = workload
        self.system = system
        self.model: CostModel = build_cost_model(workload, system, backend, cache, strip_offchip_levels)
        self._networks: dict[tuple[str, ...], StagedNetwork] = {}
        self._evaluators: dict[tuple[str, ...], NetworkEvaluator] = {}
        self._static: dict[tuple[object, ...], Schedule] = {}

    def network(self, exit_keys: Sequence[str]) -> StagedNetwork:
        """The staged network of a candidate (head keys, network order, final exit last)."""
        key = tuple(exit_keys)
        if key not in self._networks:
            self._networks[key] = stage_network(self.workload, list(key))
        return self._networks[key]

    def static(self, final_key: str) -> StagedNetwork:
        """The static baseline: backbone + final head, no early exits."""
        key = ("static", final_key)
        if key not in self._networks:
            self._networks[key] = static_network(self.workload, final_key)
        return self._networks[key]

    def evaluator(self, net: StagedNetwork) -> NetworkEvaluator:
        """The cached batched evaluator of a staged network."""
        key = (net.name, *net.exit_keys)
        if key not in self._evaluators:
            self._evaluators[key] = NetworkEvaluator(self.model, net)
        return self._evaluators[key]

    def allocate(
        self,
        net: StagedNetwork,
        strategy: str,
        ratios: Sequence[float] | np.ndarray | None = None,
        objective: str = "avg_product",
        policy: str = "wait",
        seed: int = 0,
        ga: GAConfig | None = None,
    ) -> Allocation:
        """Find an allocation with ``strategy``; ratios default to all samples at the final exit."""
        if ratios is None:
            values = np.zeros(net.num_stages)
            values[-1] = 1.0
        else:
            values = check_ratios(ratios, net.num_stages)
        result = optimise(self.evaluator(net), strategy, values, objective, policy, seed, ga)
        return from_array(
            self.model, net, result.positions, strategy, objective, result.value,
            seed if strategy == "ga" else None, result.evaluations,
        )

    def schedule(self, net: StagedNetwork, allocation: Allocation, policy: str = "wait") -> Schedule:
        """Per-stage and cumulative cost of ``net`` on ``allocation``."""
        check_policy(policy)
        positions = to_array(self.model, net, allocation)
        return self.evaluator(net).schedule(positions, policy, allocation)

    def static_schedule(
        self,
        final_key: str,
        strategy: str = "greedy",
        objective: str = "avg_product",
        seed: int = 0,
        ga: GAConfig | None = None,
    ) -> Schedule:
        """Schedule of the static baseline (backbone + final head) on its own best allocation under
        ``strategy``; cached. One stage, so both products and both policies coincide."""
        key = (final_key, strategy, objective, seed)
        if key not in self._static:
            net = self.static(final_key)
            allocation = self.allocate(net, strategy, [1.0], objective, "wait", seed, ga)
            self._static[key] = self.schedule(net, allocation, "wait")
        return self._static[key]


__all__ = ["Mapper", "check_ratios"]
