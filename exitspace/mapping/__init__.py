"""Mapping stage: layer-to-core allocation and the schedule of one inference with exits.

Main entry: :class:`~exitspace.mapping.mapper.Mapper`. Outputs: :class:`Allocation`, :class:`Schedule`
(a list of :class:`StageCost`), all with ``to_dict``. Rules and metric definitions: docs/metrics.md.
"""

from exitspace.mapping.allocation import Allocation
from exitspace.mapping.costs import CostModel, LayerCostCache, build_cost_model
from exitspace.mapping.mapper import Mapper, check_ratios
from exitspace.mapping.network import StagedNetwork, resolve_exits, stage_network, static_network
from exitspace.mapping.optimise import STRATEGIES, GAConfig
from exitspace.mapping.schedule import OBJECTIVES, POLICIES, NetworkEvaluator, Schedule, StageCost

__all__ = [
    "Allocation",
    "CostModel",
    "GAConfig",
    "LayerCostCache",
    "Mapper",
    "NetworkEvaluator",
    "OBJECTIVES",
    "POLICIES",
    "STRATEGIES",
    "Schedule",
    "StageCost",
    "StagedNetwork",
    "build_cost_model",
    "check_ratios",
    "resolve_exits",
    "stage_network",
    "static_network",
]
