"""Cost stage: per-layer energy, latency and utilization of a layer on one core.

Backends: ``get_backend("analytical")`` (ZigZag semantics in closed form, numpy-vectorised, the default) and
``get_backend("zigzag")`` (the optional extra, the reference). ``CostCache`` + ``cached_evaluate`` put a
persistent SQLite cache in front of any backend.
"""

from exitspace.cost.base import CostBackend, LayerCost
from exitspace.cost.cache import CostCache, cached_evaluate
from exitspace.cost.registry import BACKENDS, get_backend

__all__ = ["BACKENDS", "CostBackend", "CostCache", "LayerCost", "cached_evaluate", "get_backend"]
