"""One EENN design end to end: allocation, schedule, static baseline and dynamic metrics.

    evaluation = evaluate_design(mapper, exit_keys, ratios=[.2549, .1531, .3114, .2806],
                                 exit_accuracy=[.991, .969, .957, .664], strategy="ga", seed=0)
    evaluation.schedule.stages      # per-stage cost on ONE allocation
    evaluation.metrics.avg_product  # sum_i r_i E_cum,i L_cum,i ; also product_of_averages, reductions...

The exit ratios used to optimise the allocation (``allocation_ratios``, e.g. the validation split's)
may differ from the ones the metrics are reported for (``ratios``, e.g. the test split's).
The static baseline uses the same strategy (and seed) on the backbone + final head alone (``greedy``
when the EENN's allocation is given).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from exitspace.dynamic.calibration import Calibration
from exitspace.dynamic.metrics import DynamicMetrics, dynamic_metrics
from exitspace.mapping.allocation import Allocation
from exitspace.mapping.mapper import Mapper, check_ratios
from exitspace.mapping.network import StagedNetwork
from exitspace.mapping.optimise import GAConfig
from exitspace.mapping.schedule import Schedule


@dataclass
class DesignEvaluation:
    """Everything computed for one design on one deployable allocation."""

    schedule: Schedule
    static_schedule: Schedule
    metrics: DynamicMetrics
    calibration: Calibration | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "metrics": self.metrics.to_dict(),
            "schedule": self.schedule.to_dict(),
            "static_schedule": self.static_schedule.to_dict(),
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
        }


def evaluate_design(
    mapper: Mapper,
    exit_keys: Sequence[str],
    ratios: Sequence[float],
    exit_accuracy: Sequence[float | None] | None = None,
    strategy: str = "greedy",
    policy: str = "wait",
    objective: str = "avg_product",
    seed: int = 0,
    allocation: Allocation | None = None,
    allocation_ratios: Sequence[float] | None = None,
    ga: GAConfig | None = None,
) -> DesignEvaluation:
    """Allocate (unless ``allocation`` is given), schedule, and compute the metrics of one design."""
    net = mapper.network(list(exit_keys))
    values = check_ratios(ratios, net.num_stages)
    static_strategy = strategy if allocation is None else "greedy"
    if allocation is None and allocation_ratios is not None:
        values_to_allocate = check_ratios(allocation_ratios, net.num_stages)
    else:
        values_to_allocate = values
    allocation, schedule = deploy(mapper, net, strategy, values_to_allocate, objective, policy, seed, allocation, ga)
    static = mapper.static_schedule(net.exit_keys[-1], static_strategy, objective, seed, ga)
    metrics = dynamic_metrics(schedule, values, static, exit_accuracy)
    return DesignEvaluation(schedule=schedule, static_schedule=static, metrics=metrics)


def deploy(
    mapper: Mapper,
    net: StagedNetwork,
    strategy: str,
    allocation_ratios: Sequence[float] | np.ndarray,
    objective: str,
    policy: str,
    seed: int = 0,
    allocation: Allocation | None = None,
    ga: GAConfig | None = None,
) -> tuple[Allocation, Schedule]:
    """The one deployable mapping of a design, as ``exitspace evaluate`` and the search both compute it: the
    allocation ``strategy`` finds for ``allocation_ratios`` (unless ``allocation`` is given), and its schedule
    under the head ``policy`` (``wait`` / ``overlap``)."""
    if allocation is None:
        allocation = mapper.allocate(net, strategy, allocation_ratios, objective, policy, seed, ga)
    return allocation, mapper.schedule(net, allocation, policy)
