"""A core's description, pre-digested once per core: array dims, dataflow and each operand's memory chain."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from exitspace.cost.analytical.loops import DIM_INDEX, ND, RELEVANT, STORAGE, K
from exitspace.hardware.model import Core, MemoryLevel


@dataclass(frozen=True)
class ChainLevel:
    """One memory of an operand's chain."""

    index: int  # position in core.memories
    mem: MemoryLevel
    served: frozenset[str]


@dataclass(frozen=True)
class CorePlan:
    """What the engine needs from a core: array dims, dataflow and each operand's memory chain."""

    core: Core
    array_dims: tuple[str, ...]
    array_sizes: tuple[int, ...]
    dataflow: tuple[int | None, ...]  # loop dim index unrolled on each array dim (None: nothing)
    chains: dict[str, tuple[ChainLevel, ...]]  # core operand -> its levels, innermost first
    units: int

    def first_served(self, operand: str) -> list[list[int]]:
        """For each level of ``operand``, the array dims (indices) first served at that level."""
        seen: set[str] = set()
        out: list[list[int]] = []
        for lvl in self.chains[operand]:
            new = [i for i, d in enumerate(self.array_dims) if d in lvl.served and d not in seen]
            seen |= set(lvl.served)
            out.append(new)
        return out


@lru_cache(maxsize=64)
def _plan_cached(core_json: str) -> CorePlan:
    """The plan of a core given as JSON (memoised)."""
    core = Core.model_validate_json(core_json)
    return _build_plan(core)


_plans_by_id: dict[int, tuple[Core, CorePlan]] = {}


def core_plan(core: Core) -> CorePlan:
    """The pre-digested plan of a core (memoised per object and on the core's JSON form)."""
    hit = _plans_by_id.get(id(core))
    if hit is not None and hit[0] is core:
        return hit[1]
    plan = _plan_cached(core.model_dump_json())
    if len(_plans_by_id) > 256:
        _plans_by_id.clear()
    _plans_by_id[id(core)] = (core, plan)
    return plan


def _build_plan(core: Core) -> CorePlan:
    """Array dims, the loop each unrolls (K where the core names none) and the memory chain of W, I and O."""
    dims = tuple(core.operational_array.sizes)
    sizes = tuple(core.operational_array.sizes[d] for d in dims)
    flow: list[int | None] = []
    for d in dims:
        loops = core.dataflow.get(d, ())
        flow.append(DIM_INDEX[loops[0]] if loops else None)
    if all(f is None for f in flow):
        flow[0] = K
    chains: dict[str, tuple[ChainLevel, ...]] = {}
    for operand in ("W", "I", "O"):
        chains[operand] = tuple(
            ChainLevel(i, mem, frozenset(mem.served_dimensions))
            for i, mem in enumerate(core.memories)
            if operand in mem.operands
        )
    return CorePlan(core, dims, sizes, tuple(flow), chains, core.operational_array.units)


@dataclass(frozen=True)
class OperandView:
    """One layer operand seen through the core: where it is stored and which loops index it."""

    operand: str  # layer operand: W, I, I2 (second input of an add) or O
    store: str  # the core memory operand holding it
    chain: tuple[ChainLevel, ...]  # its memories, innermost first
    first_served: list[list[int]]  # per level, the array dims first served there
    irrelevant: np.ndarray  # (ND,) mask of the loop dims that do not index it

    @property
    def is_output(self) -> bool:
        """Whether this is the output operand."""
        return self.operand == "O"

    def served_above(self, m: int) -> list[int]:
        """The array dims first served at levels above ``m``."""
        return [a for mm in range(m + 1, len(self.chain)) for a in self.first_served[mm]]


def operand_view(plan: CorePlan, operand: str) -> OperandView:
    """``operand``'s memory chain on the planned core and its irrelevant loops."""
    store = STORAGE[operand]
    irrelevant = np.zeros(ND, dtype=bool)
    irrelevant[[d for d in range(ND) if d not in RELEVANT[operand]]] = True
    return OperandView(operand, store, plan.chains[store], plan.first_served(store), irrelevant)
