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

from exitspace.dynamic.calibration import Calibration
from exitspace.dynamic.metrics import DynamicMetrics, dynamic_metrics
from exitspace.mapping.allocation import Allocation
from exitspace.mapping.mapper import Mapper, check_ratios
from exitspace.mapping.optimise import GAConfig
from exitspace.mapping.schedule import Schedule


@dataclass
class Evaluation:
    """Everything computed for one design."""

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
) -> Evaluation:
    """Allocate (unless ``allocation`` is given), schedule, and compute the metrics of one design."""
    net = mapper.network(list(exit_keys))
    values = check_ratios(ratios, net.num_stages)
    if allocation is None:
        alloc_ratios = values if allocation_ratios is None else check_ratios(allocation_ratios, net.num_stages)
        allocation = mapper.allocate(net, strategy, alloc_ratios, objective, policy, seed, ga)
        static_strategy = strategy
    else:
        static_strategy = "greedy"
    schedule = mapper.schedule(net, allocation, policy)
    static = mapper.static_schedule(net.exit_keys[-1], static_strategy, objective, seed, ga)
    metrics = dynamic_metrics(schedule, values, static, exit_accuracy)
    return Evaluation(schedule=schedule, static_schedule=static, metrics=metrics)
