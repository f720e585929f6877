"""Cost stage: per-layer energy, latency and utilization of a layer on one core."""

from exitspace.cost.base import CostBackend, LayerCost

__all__ = ["CostBackend", "LayerCost"]
