"""The analytical cost backend: the :class:`~exitspace.cost.base.CostBackend` face of :func:`evaluate_arrays`."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from exitspace.cost.analytical.evaluate import evaluate_arrays
from exitspace.cost.analytical.layers import DEFAULT_OPTIONS, ModelOptions
from exitspace.cost.base import LayerCost
from exitspace.hardware.model import Core
from exitspace.workload.layer import Layer

ANALYTICAL_VERSION = "1.1.0"


class AnalyticalBackend:
    """ZigZag-semantics cost model in closed form (``name = "analytical"``); ``options`` picks a variant of its
    semantics (see :class:`ModelOptions`), named in ``version`` so that caches keep the variants apart."""

    name = "analytical"
    options: ModelOptions = DEFAULT_OPTIONS
    version: str = ANALYTICAL_VERSION

    def __init__(self, options: ModelOptions = DEFAULT_OPTIONS) -> None:
        self.options = options
        self.version = ANALYTICAL_VERSION + options.tag

    def evaluate(self, layers: Sequence[Layer], core: Core) -> list[LayerCost]:
        """Cost of each layer on ``core``, in order (one vectorised pass)."""
        return self.evaluate_many(layers, core)

    def evaluate_many(self, layers: Sequence[Layer], core: Core) -> list[LayerCost]:
        """Vectorised evaluation of many layers on one core."""
        if not layers:
            return []
        r = evaluate_arrays(layers, core, self.options)
        out = []
        for i, layer in enumerate(layers):
            out.append(
                LayerCost(
                    layer=layer.name,
                    core=core.name,
                    backend=self.name,
                    energy_pj=float(r["energy"][i]),
                    latency_cycles=float(r["latency"][i]),
                    compute_cycles=float(r["compute"][i]),
                    stall_cycles=float(r["stall"][i]),
                    onload_cycles=float(r["onload"][i]),
                    offload_cycles=float(r["offload"][i]),
                    mac_energy_pj=float(r["mac_energy"][i]),
                    spatial_utilization=float(r["spatial_util"][i]),
                    utilization=float(r["util"][i]),
                    mem_energy_pj=r["mem_energy"][i],
                    mem_traffic_bits=r["mem_traffic"][i],
                )
            )
        return out

    def evaluate_table(self, layers: Sequence[Layer], core: Core) -> dict[str, np.ndarray]:
        """Vectorised evaluation returning only arrays (latency, energy, compute, ...): the fast path for sweeps."""
        r = evaluate_arrays(layers, core, self.options)
        return {k: v for k, v in r.items() if isinstance(v, np.ndarray)}
