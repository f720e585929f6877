"""Dynamic-inference metrics of one EENN on one schedule, against the static baseline.

With exit ratios ``r_i`` (sum 1) and, from ONE schedule, the cumulative cost ``E_cum,i`` / ``L_cum,i`` of a
sample that leaves at exit i (definitions in docs/metrics.md):

- ``energy_avg = sum_i r_i E_cum,i``, ``latency_avg = sum_i r_i L_cum,i``;
- ``avg_product = sum_i r_i E_cum,i L_cum,i`` (the paper's "energy-latency product", E[E*L]);
- ``product_of_averages = energy_avg * latency_avg``;
- static baseline: the backbone + final head without early exits, on its own allocation: ``E_s, L_s``
  and ``E_s * L_s`` (both products coincide for it); ``reduction_* = 1 - eenn / static``;
- exit overhead: ``overhead_energy = sum_i r_i (E_cum,i - backbone energy up to exit i)`` = heads run +
  wasted overlap work; ``overhead_latency = sum_i r_i (L_cum,i - backbone latency up to exit i)``; both
  also as a share of ``energy_avg`` / ``latency_avg``;
- latency percentiles over samples: the latency of a sample is ``L_cum`` of its exit, so the p-th
  percentile is ``L_cum,i`` of the first exit (in exit order) where the cumulative ratio reaches p/100;
- ``accuracy = sum_i r_i acc_i`` when per-exit accuracies are known;
- ``early_exit_share = 1 - r_N``; ``macs_avg = sum_i r_i MACs_cum,i`` (the hardware-blind proxy).

:class:`DynamicMetrics` is a plain dataclass with ``to_dict``. :func:`dynamic_metrics` is the hot path
(a few numpy dot products).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence, final

import numpy as np

from exitspace.errors import ConfigError
from exitspace.mapping.mapper import check_ratios
from exitspace.mapping.schedule import Schedule

PERCENTILES: tuple[int, ...] = (50, 95, 99)


@final  # also tells mypy that an instance is always true (``baseline and baseline.product``)
@dataclass
class StaticBaseline:
    """Cost of the static network (no early exits) on its own allocation."""

    energy_pj: float
    latency_cycles: float
    allocation_strategy: str

    @property
    def product(self) -> float:
        """E * L of the static network (pJ * cycles)."""
        return self.energy_pj * self.latency_cycles

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {**asdict(self), "product": self.product}


@dataclass
class DynamicMetrics:
    """Metrics of one EENN (see module docstring). Energy pJ, latency cycles, products pJ*cycles."""

    exits: list[str]
    policy: str
    ratios: list[float]
    exit_accuracy: list[float | None] | None
    accuracy: float | None
    energy_avg_pj: float
    latency_avg_cycles: float
    avg_product: float
    product_of_averages: float
    static: StaticBaseline | None
    reduction_avg_product: float | None
    reduction_product_of_averages: float | None
    reduction_energy: float | None
    reduction_latency: float | None
    overhead_energy_pj: float
    overhead_energy_share: float
    overhead_latency_cycles: float
    overhead_latency_share: float
    head_energy_pj: float
    wasted_energy_pj: float
    latency_percentiles: dict[str, float]
    early_exit_share: float = 0.0
    macs_avg: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        data = asdict(self)
        data["static"] = None if self.static is None else self.static.to_dict()
        return data


def latency_percentiles(
    latencies: Sequence[float] | np.ndarray, ratios: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """p50/p95/p99 of a discrete latency distribution (value ``latencies[i]`` with weight ``ratios[i]``)."""
    lat = np.asarray(latencies, dtype=float)
    weights = np.asarray(ratios, dtype=float)
    order = np.argsort(lat, kind="stable")
    cdf = np.cumsum(weights[order])
    result = {}
    for p in PERCENTILES:
        pos = int(np.searchsorted(cdf, p / 100.0 - 1e-12, side="left"))
        result[f"p{p}"] = float(lat[order[min(pos, lat.size - 1)]])
    return result


def expected_costs(ratios: np.ndarray, cum_energy: np.ndarray, cum_latency: np.ndarray) -> tuple[float, float, float]:
    """``(energy_avg, latency_avg, avg_product)`` of exit ratios over each exit's cumulative energy and latency."""
    return float(ratios @ cum_energy), float(ratios @ cum_latency), float(ratios @ (cum_energy * cum_latency))


def _checked_exit_accuracy(exit_accuracy: Sequence[float | None] | None, exits: int) -> list[float | None] | None:
    """Per-exit accuracies as fractions (None where unknown), after one-line checks; None without any."""
    if exit_accuracy is None:
        return None
    if len(exit_accuracy) != exits:
        raise ConfigError(f"exit_accuracy: {len(exit_accuracy)} values for {exits} exits; give one per exit")
    exit_acc = [None if a is None or not np.isfinite(a) else float(a) for a in exit_accuracy]
    for a in exit_acc:
        if a is not None and not 0.0 <= a <= 1.0:
            raise ConfigError(f"exit_accuracy: {a} is not a fraction in [0, 1]")
    return exit_acc


def _baseline(static: Schedule | StaticBaseline | None) -> StaticBaseline | None:
    """The static network's totals: given, or taken from its schedule."""
    if isinstance(static, Schedule):
        return StaticBaseline(float(static.cum_energy[-1]), float(static.cum_latency[-1]), static.allocation.strategy)
    return static


def _reduction(value: float, reference: float | None) -> float | None:
    """1 - value / reference; None without a positive reference."""
    if reference is None or reference <= 0:
        return None
    return 1.0 - value / reference


def dynamic_metrics(
    schedule: Schedule,
    ratios: Sequence[float] | np.ndarray,
    static: Schedule | StaticBaseline | None = None,
    exit_accuracy: Sequence[float | None] | None = None,
) -> DynamicMetrics:
    """Metrics of ``schedule`` for exit ratios ``ratios`` (checked: one per exit, >= 0, summing to 1)."""
    r = check_ratios(ratios, len(schedule.stages))
    cum_e, cum_l = schedule.cum_energy, schedule.cum_latency
    energy_avg, latency_avg, avg_product = expected_costs(r, cum_e, cum_l)
    product_avg = energy_avg * latency_avg
    overhead_e = float(r @ (cum_e - schedule.backbone_cum_energy))
    overhead_l = float(r @ (cum_l - schedule.backbone_cum_latency))
    head_e = float(r @ np.cumsum(schedule.head_energy))
    wasted = float(r @ schedule.wasted_energy)

    exit_acc = _checked_exit_accuracy(exit_accuracy, len(r))
    accuracy = None if exit_acc is None else float(sum(ri * (a or 0.0) for ri, a in zip(r, exit_acc)))
    baseline = _baseline(static)

    return DynamicMetrics(
        exits=schedule.exits,
        policy=schedule.policy,
        ratios=[float(x) for x in r],
        exit_accuracy=exit_acc,
        accuracy=accuracy,
        energy_avg_pj=energy_avg,
        latency_avg_cycles=latency_avg,
        avg_product=avg_product,
        product_of_averages=product_avg,
        static=baseline,
        reduction_avg_product=_reduction(avg_product, baseline and baseline.product),
        reduction_product_of_averages=_reduction(product_avg, baseline and baseline.product),
        reduction_energy=_reduction(energy_avg, baseline and baseline.energy_pj),
        reduction_latency=_reduction(latency_avg, baseline and baseline.latency_cycles),
        overhead_energy_pj=overhead_e,
        overhead_energy_share=overhead_e / energy_avg if energy_avg > 0 else 0.0,
        overhead_latency_cycles=overhead_l,
        overhead_latency_share=overhead_l / latency_avg if latency_avg > 0 else 0.0,
        head_energy_pj=head_e,
        wasted_energy_pj=wasted,
        latency_percentiles=latency_percentiles(cum_l, r),
        early_exit_share=float(1.0 - r[-1]),
        macs_avg=float(r @ schedule.cum_macs),
    )
