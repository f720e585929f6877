"""The reference paper's way of computing the metrics, kept only to show how far it is from ours.

As paper-setup.md section 5 describes it: each exit stage (backbone segment + its head) gets its own
allocation, the one that minimises that stage's own E_i * L_i with the whole on-chip weight memory to
itself; ``E_cum`` / ``L_cum`` add those stage costs, so the total is no single deployable mapping; the
static baseline's energy is the backbone's plus every head's, its latency the backbone's alone. The
average product is ``sum_i r_i E_cum,i L_cum,i`` as in :mod:`exitspace.dynamic.metrics`.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from exitspace.mapping.mapper import Mapper, check_ratios
from exitspace.mapping.network import StagedNetwork
from exitspace.mapping.optimise import GAConfig, optimise


@dataclass
class PaperStyleMetrics:
    """Per-stage costs from per-stage allocations and the paper's average product and static baseline."""

    stage_energy_pj: list[float]
    stage_latency_cycles: list[float]
    cum_energy_pj: list[float]
    cum_latency_cycles: list[float]
    avg_product: float
    static_energy_pj: float
    static_latency_cycles: float
    static_product: float
    reduction_avg_product: float
    allocations: list[dict[str, int]]

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)


def paper_style_metrics(
    mapper: Mapper,
    net: StagedNetwork,
    ratios: Sequence[float],
    strategy: str = "ga",
    seed: int = 0,
    ga: GAConfig | None = None,
) -> PaperStyleMetrics:
    """The paper's computation for ``net`` and exit ratios ``ratios`` (see module docstring)."""
    r = check_ratios(ratios, net.num_stages)
    evaluator = mapper.evaluator(net)
    stage_e, stage_l, backbone_l, allocations = [], [], [], []
    for stage in range(net.num_stages):
        mask = net.stage_of == stage
        alone = copy.copy(evaluator)
        alone.weight_bits = np.where(mask, evaluator.weight_bits, 0.0)  # the stage has the memory to itself

        def stage_product(alloc: np.ndarray, alone=alone, mask=mask) -> np.ndarray:
            batch = alone.layers(alloc)
            return batch.energy[:, mask].sum(axis=1) * batch.latency[:, mask].sum(axis=1)

        found = optimise(alone, strategy, r, seed=seed, ga=ga, custom=stage_product)
        batch = alone.layers(found.positions[None, :])
        stage_e.append(float(batch.energy[0, mask].sum()))
        stage_l.append(float(batch.latency[0, mask].sum()))
        backbone_l.append(float(batch.latency[0, mask & ~net.is_head].sum()))
        allocations.append(
            {net.layer_names[j]: mapper.model.core_ids[int(found.positions[j])] for j in np.flatnonzero(mask)}
        )
    cum_e = np.cumsum(stage_e)
    cum_l = np.cumsum(stage_l)
    avg_product = float(r @ (cum_e * cum_l))
    static_e, static_l = float(cum_e[-1]), float(sum(backbone_l))
    return PaperStyleMetrics(
        stage_energy_pj=stage_e,
        stage_latency_cycles=stage_l,
        cum_energy_pj=cum_e.tolist(),
        cum_latency_cycles=cum_l.tolist(),
        avg_product=avg_product,
        static_energy_pj=static_e,
        static_latency_cycles=static_l,
        static_product=static_e * static_l,
        reduction_avg_product=1.0 - avg_product / (static_e * static_l),
        allocations=allocations,
    )
