"""Per-layer spatial mapping search: the most-utilising loop-to-array assignments, costed, the fastest kept.

What ZigZag's spatial mapping generator does when a core gives no dataflow (the paper's Stream fork hands it
cores without one): every array dimension unrolls one loop, as far as the array dimension, the loop size and
the bandwidth of the register that a shared array dimension reads allow (an operand held in a register that
serves dims S cannot take more distinct elements over S than the register's port carries); the assignments
with the highest spatial utilization are costed and the lowest latency (then energy) wins.
"""

from __future__ import annotations

from itertools import permutations
from typing import Sequence

from exitspace.cost.base import CostBackend, LayerCost
from exitspace.hardware.model import Core
from exitspace.workload.layer import Layer

# loop dims each operand is indexed by (ZigZag's relevance; partial relevance of inputs to FX/FY/OX/OY kept)
_RELEVANT = {"W": {"K", "C", "FX", "FY", "G"}, "I": {"C", "OX", "OY", "FX", "FY", "G"}, "O": {"K", "OX", "OY", "G"}}
Dataflow = dict[str, tuple[str, ...]]


def _loop_sizes(layer: Layer) -> dict[str, int]:
    g = layer.groups
    return {"K": layer.K // g, "C": layer.C // g, "G": g, "OX": layer.OX, "OY": layer.OY, "FX": layer.FX, "FY": layer.FY}


def _operand_bits(layer: Layer, operand: str) -> int:
    p = layer.precision
    return {"W": p.weight, "I": p.input, "O": p.psum}[operand]


def _register_caps(core: Core, layer: Layer) -> list[tuple[frozenset[str], str, int]]:
    """(dims served, operand, most distinct elements per access) of each register-like level shared over dims."""
    caps = []
    for mem in core.memories:
        if not mem.served_dimensions or len(mem.served_dimensions) == len(core.operational_array.sizes):
            continue
        for operand in mem.operands:
            bits = _operand_bits(layer, operand)
            if bits > 0:
                caps.append((frozenset(mem.served_dimensions), operand, max(1, min(mem.r_bw, mem.w_bw) // bits)))
    return caps


def _unrolls(core: Core, layer: Layer, assignment: Sequence[str | None]) -> tuple[int, ...]:
    """Per array dim, how far its assigned loop (None: idle) unrolls: array size, loop size, register caps."""
    dims = list(core.operational_array.sizes)
    sizes = _loop_sizes(layer)
    caps = _register_caps(core, layer)
    unroll: list[int] = []
    for dim, loop in zip(dims, assignment):
        if loop is None:
            unroll.append(1)
            continue
        u = min(core.operational_array.sizes[dim], sizes[loop])
        for served, operand, cap in caps:
            if dim in served and loop in _RELEVANT[operand]:
                used = 1
                for other_dim, other_loop, other_u in zip(dims, assignment, unroll):
                    if other_dim in served and other_loop in _RELEVANT[operand]:
                        used *= other_u
                u = max(1, min(u, cap // used))
        unroll.append(u)
    return tuple(unroll)


def candidate_dataflows(core: Core, layer: Layer) -> list[Dataflow]:
    """The assignments of distinct loops to the array dims with the highest spatial utilization."""
    dims = list(core.operational_array.sizes)
    loops: list[str | None] = [loop for loop, size in _loop_sizes(layer).items() if size > 1]
    if not loops:
        return [dict(core.dataflow)] if core.dataflow else [{dims[0]: ("K",)}]
    padded = loops + [None] * max(0, len(dims) - len(loops))
    utilization: dict[tuple[str | None, ...], int] = {}
    for assignment in set(permutations(padded, len(dims))):
        product = 1
        for u in _unrolls(core, layer, assignment):
            product *= u
        utilization[assignment] = product
    top = max(utilization.values())
    chosen = sorted((a for a, v in utilization.items() if v == top), key=lambda a: [x or "" for x in a])
    return [{dim: (loop,) for dim, loop in zip(dims, a) if loop is not None} for a in chosen]


def searched_costs(layers: Sequence[Layer], core: Core, backend: CostBackend) -> list[LayerCost]:
    """Each layer's cost on ``core`` under its fastest most-utilising spatial mapping (ties: least energy)."""
    by_flow: dict[tuple[tuple[str, tuple[str, ...]], ...], list[int]] = {}
    for i, layer in enumerate(layers):
        for flow in candidate_dataflows(core, layer):
            by_flow.setdefault(tuple(sorted(flow.items())), []).append(i)
    best: list[LayerCost | None] = [None] * len(layers)
    for flow_key, idx in by_flow.items():
        variant = core.model_copy(update={"dataflow": dict(flow_key)})
        for i, cost in zip(idx, backend.evaluate([layers[i] for i in idx], variant)):
            old = best[i]
            if old is None or (cost.latency_cycles, cost.energy_pj) < (old.latency_cycles, old.energy_pj):
                best[i] = cost
    return [cost for cost in best if cost is not None]
