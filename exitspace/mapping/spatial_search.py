"""Per-layer spatial mapping search, as ZigZag runs it for a core that names no dataflow (the paper's fork).

The facts emulated are those of zigzag-dse 3.6.3's spatial mapping generator, which the paper's Stream fork pins:

- each array dimension gets candidate unrollings ``(loop, factor)``: the layer's loops in the iteration order of
  ZigZag's hint set (a Python set of loop-name objects hashed with SHA-512 of their pickle, hence a fixed
  order), each with every divisor of its largest unroll, largest first; the largest unroll is
  ``min(loop size, array size)``, lowered to ``port width // precision`` for operands that a shared register
  (every level but the outermost) serves along that dimension, unless the loop does not index the operand;
- candidates are the product over the array dimensions in order, kept when no loop is unrolled beyond its size,
  ranked by ``u + u / m - 1`` (``u`` the units used, ``m`` the largest total unroll of one loop), the first three
  kept (a stable sort), each then limited to its registers' capacity (the largest factor lowered by one until
  the operand's unrolled elements fit);
- each is costed and the lowest latency wins (ties: the least energy).

A factor below what the analytical engine would unroll (it unrolls ``min(array size, loop)``) is costed on a copy
of the core whose array dimension has that size.
"""

from __future__ import annotations

import pickle
from dataclasses import replace
from functools import lru_cache
from hashlib import sha512
from itertools import product
from typing import Sequence

import numpy as np

from exitspace.cost.base import CostBackend, LayerCost
from exitspace.hardware.model import Core, OperationalArray
from exitspace.workload.layer import Layer, OpType

COSTED = 3  # ZigZag's nb_mappings_generated
# pickle (protocol 4) of the class zigzag.datatypes.LayerDim, part of every loop name's hash in ZigZag
_LAYER_DIM_PICKLE = b"\x80\x04\x95!\x00\x00\x00\x00\x00\x00\x00\x8c\x10zigzag.datatypes\x94\x8c\x08LayerDim\x94\x93\x94."
# loop dims in the order the fork's parsers list them (conv: conv.py, fully connected: ZigZag's gemm parser)
_CONV_LOOPS = ("B", "K", "G", "OX", "OY", "C", "FX", "FY")
_GEMM_LOOPS = ("C", "D", "K")
Candidate = tuple[tuple[str, int], ...]  # per array dim: (loop, factor)


def _sha512_int(data: bytes) -> int:
    return int(sha512(data).hexdigest(), 16)


class _LoopName:
    """Stands in for a ZigZag LayerDim in a set: same hash, so the same iteration order."""

    __slots__ = ("name", "_hash")

    def __init__(self, name: str) -> None:
        self.name = name
        self._hash = _sha512_int(pickle.dumps(name, protocol=4)) ^ _sha512_int(_LAYER_DIM_PICKLE)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _LoopName) and other._hash == self._hash


@lru_cache(maxsize=None)
def hint_order(loops: tuple[str, ...]) -> tuple[str, ...]:
    """The order ZigZag 3.6.3 iterates the set of a layer's loop names in."""
    return tuple(item.name for item in {_LoopName(name) for name in loops})


def _divisors(n: int) -> list[int]:
    return sorted((d for d in range(1, n + 1) if n % d == 0), reverse=True)


def _layer_loops(layer: Layer) -> tuple[tuple[str, ...], dict[str, int], dict[str, set[str]]]:
    """Loop names (parser order), sizes, and the loops each operand does not depend on."""
    if layer.op == OpType.FC:
        sizes = {"C": layer.C, "D": layer.B, "K": layer.K}
        return _GEMM_LOOPS, sizes, {"W": {"D"}, "I": {"K"}, "O": {"C"}}
    g = layer.groups
    sizes = {"B": layer.B, "K": layer.K // g, "G": g, "OX": layer.OX, "OY": layer.OY, "C": layer.C // g,
             "FX": layer.FX, "FY": layer.FY}
    w_irrelevant = {"B", "OX", "OY"} | ({"K"} if g > 1 else set())
    return _CONV_LOOPS, sizes, {"W": w_irrelevant, "I": {"K"}, "O": {"C", "FX", "FY"}}


def _register_levels(core: Core) -> list[tuple[str, str]]:
    """(memory name, operand) of every level below the outermost one of its operand."""
    out = []
    for operand in ("W", "I", "O"):
        levels = core.levels_for(operand)
        out += [(mem.name, operand) for mem in levels[:-1]]
    return out


def _precisions(layer: Layer) -> dict[str, int]:
    return {"W": layer.precision.weight, "I": layer.precision.input, "O": layer.precision.psum}


@lru_cache(maxsize=4096)
def _chosen(core_json: str, layer: Layer) -> tuple[Candidate, ...]:
    """The (capacity-limited) candidates ZigZag costs for ``layer`` (anonymised) on the core (JSON form)."""
    core = Core.model_validate_json(core_json)
    loops, sizes, irrelevant = _layer_loops(layer)
    order = hint_order(loops)
    dims = list(core.operational_array.sizes)
    precision = _precisions(layer)
    memories = {mem.name: mem for mem in core.memories}
    registers = _register_levels(core)
    limits = {dim: {loop: min(sizes[loop], size) for loop in loops} for dim, size in core.operational_array.sizes.items()}
    for name, operand in registers:
        mem = memories[name]
        if precision[operand] <= 0:
            continue
        width = mem.w_bw if operand == "O" else mem.r_bw
        for dim in mem.served_dimensions:
            for loop in loops:
                if loop not in irrelevant[operand]:
                    limits[dim][loop] = min(limits[dim][loop], width // precision[operand])
    options = [[(loop, f) for loop in order for f in _divisors(max(limits[dim][loop], 1))] for dim in dims]
    index = {loop: i for i, loop in enumerate(loops)}
    grids = np.array(list(product(*[range(len(opts)) for opts in options])), dtype=np.int64)
    loop_of = np.stack([np.array([index[o[0]] for o in options[a]])[grids[:, a]] for a in range(len(dims))], axis=1)
    factor = np.stack([np.array([o[1] for o in options[a]])[grids[:, a]] for a in range(len(dims))], axis=1)
    totals = np.ones((len(grids), len(loops)), dtype=np.int64)
    contained = np.zeros((len(grids), len(loops)), dtype=bool)
    for a in range(len(dims)):
        totals[np.arange(len(grids)), loop_of[:, a]] *= factor[:, a]
        contained[np.arange(len(grids)), loop_of[:, a]] = True
    size_row = np.array([sizes[loop] for loop in loops])
    valid = np.all(totals <= size_row[None, :], axis=1)
    used = np.prod(factor, axis=1).astype(np.float64)
    largest = np.max(np.where(contained, totals, 1), axis=1)
    score = used + used / largest - 1
    rows = np.flatnonzero(valid)
    ranked = rows[np.argsort(-score[rows], kind="stable")][:COSTED]
    chosen = []
    for r in ranked:
        candidate = [(loops[loop_of[r, a]], int(factor[r, a])) for a in range(len(dims))]
        chosen.append(_capacity_limited(candidate, dims, registers, memories, precision, irrelevant))
    return tuple(chosen)


def _capacity_limited(candidate: list[tuple[str, int]], dims: list[str], registers: list[tuple[str, str]],
                      memories: dict, precision: dict[str, int], irrelevant: dict[str, set[str]]) -> Candidate:
    """Lower the largest factor by one until each register holds its operand's unrolled elements."""
    factors = [f for _, f in candidate]
    for name, operand in registers:
        mem = memories[name]
        if precision[operand] <= 0:
            continue
        capacity = mem.size_bits / precision[operand]
        members = [a for a, dim in enumerate(dims)
                   if dim in mem.served_dimensions and candidate[a][0] not in irrelevant[operand]]
        while members and float(np.prod([factors[a] for a in members])) > capacity:
            biggest = max(members, key=lambda a: factors[a])
            factors[biggest] -= 1
    return tuple((loop, f) for (loop, _), f in zip(candidate, factors))


def _variant(core: Core, layer: Layer, candidate: Candidate) -> Core:
    """The core with the candidate as its dataflow; an array dim sized down where the factor is below what the
    analytical engine unrolls."""
    _, sizes, _ = _layer_loops(layer)
    sizes_of_array = dict(core.operational_array.sizes)
    flow: dict[str, tuple[str, ...]] = {}
    for dim, (loop, factor) in zip(core.operational_array.sizes, candidate):
        engine_loop = "K" if loop == "D" else loop
        if factor <= 1 or loop == "D" or loop == "B":
            sizes_of_array[dim] = 1
            continue
        flow[dim] = (engine_loop,)
        if factor < min(sizes_of_array[dim], sizes[loop]):
            sizes_of_array[dim] = factor
    array = OperationalArray(**{**core.operational_array.model_dump(), "sizes": sizes_of_array})
    return core.model_copy(update={"dataflow": flow, "operational_array": array})


def searched_costs(layers: Sequence[Layer], core: Core, backend: CostBackend) -> list[LayerCost]:
    """Each layer's cost on ``core`` under ZigZag's spatial mapping search (see the module docstring)."""
    core_json = core.model_dump_json()
    variants: dict[str, tuple[Core, list[tuple[int, int]]]] = {}
    chosen = []
    for i, layer in enumerate(layers):
        candidates = _chosen(core_json, replace(layer, name="", block="", exit=None, inputs=()))
        chosen.append(candidates)
        for c, candidate in enumerate(candidates):
            variant = _variant(core, layer, candidate)
            entry = variants.setdefault(variant.model_dump_json(), (variant, []))
            entry[1].append((i, c))
    costs: dict[tuple[int, int], LayerCost] = {}
    for variant, members in variants.values():
        for (i, c), cost in zip(members, backend.evaluate([layers[i] for i, _ in members], variant)):
            costs[(i, c)] = cost
    out = []
    for i, candidates in enumerate(chosen):
        options = [costs[(i, c)] for c in range(len(candidates))]
        best = min(options, key=lambda cost: (cost.latency_cycles, cost.energy_pj))  # ZigZag: fastest, then least energy
        out.append(LayerCost.from_dict({**best.to_dict(), "core": core.name}))
    return out
