"""Evaluation: layers expanded into (layer, loop order) cases, each case costed, each layer's best order kept."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, cast

import numpy as np

from exitspace.cost.analytical.cases import case_arrays
from exitspace.cost.analytical.latency import link_latency, port_stalls
from exitspace.cost.analytical.layers import DEFAULT_OPTIONS, LayerArrays, ModelOptions, layer_arrays, operands_of
from exitspace.cost.analytical.levels import level_data
from exitspace.cost.analytical.loops import ND, ORDER_ARRAY, ORDERS
from exitspace.cost.analytical.plan import CorePlan, core_plan, operand_view
from exitspace.cost.analytical.temporal import map_temporal_loops
from exitspace.cost.analytical.transfers import Ledger, OperandLinks, input_transfers, output_transfers
from exitspace.cost.analytical.unroll import Unrolling, spatial_unrolling
from exitspace.errors import ConfigError
from exitspace.hardware.model import Core
from exitspace.workload.layer import Layer

PerLevel = dict[int, dict[str, np.ndarray]]  # core.memories index -> core operand -> value per case


def evaluate_arrays(
    layers: Sequence[Layer], core: Core, options: ModelOptions = DEFAULT_OPTIONS
) -> dict[str, np.ndarray | list]:
    """Cost every layer on ``core``; returns per-layer arrays (and per-level dicts) for the best loop order."""
    plan = core_plan(core)
    n = len(layers)
    for layer in layers:
        if layer.op not in core.ops:
            raise ConfigError(
                f"layer {layer.name!r}.op: core {core.name!r} ({core.kind.value}) cannot run {layer.op.value!r}; "
                f"use a core that supports it (this one runs {[o.value for o in core.ops]})"
            )
    result = _empty_result(n)
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, layer in enumerate(layers):
        groups.setdefault(operands_of(layer.op, options), []).append(i)
    for operands, idx in groups.items():
        sub = [layers[i] for i in idx]
        part = _evaluate_group(sub, plan, operands, options)
        for key, value in part.items():
            if isinstance(result[key], list):
                for j, i in enumerate(idx):
                    result[key][i] = value[j]
            else:
                cast(np.ndarray, result[key])[idx] = value  # cast: not a list, so an array
    return result


def _empty_result(n: int) -> dict[str, np.ndarray | list]:
    """Zeroed per-layer outputs of :func:`evaluate_arrays`."""
    keys = (
        "energy", "latency", "compute", "stall", "onload", "offload", "mac_energy",
        "spatial_util", "util", "ideal",
    )
    out: dict[str, np.ndarray | list] = {k: np.zeros(n) for k in keys}
    out["mem_energy"] = [None] * n
    out["mem_traffic"] = [None] * n
    out["order"] = np.zeros(n, dtype=np.int64)
    return out


@dataclass(frozen=True)
class _Group:
    """Layers with the same operands, prepared for one core."""

    plan: CorePlan
    operands: tuple[str, ...]
    arrays: LayerArrays
    unroll: Unrolling
    options: ModelOptions = DEFAULT_OPTIONS


@dataclass(frozen=True)
class _CaseCosts:
    """Costs per case (rows)."""

    latency: np.ndarray
    energy: np.ndarray
    stall: np.ndarray
    onload: np.ndarray
    offload: np.ndarray
    mem_energy: PerLevel
    mem_traffic: PerLevel
    ambiguous: np.ndarray  # a smaller register tile was also possible: worth a second run

    @staticmethod
    def concatenate(runs: list[_CaseCosts]) -> _CaseCosts:
        """The cases of several runs one after the other (every run books the same memories and operands)."""
        return _CaseCosts(
            latency=np.concatenate([r.latency for r in runs]),
            energy=np.concatenate([r.energy for r in runs]),
            stall=np.concatenate([r.stall for r in runs]),
            onload=np.concatenate([r.onload for r in runs]),
            offload=np.concatenate([r.offload for r in runs]),
            mem_energy=_concatenate_per_level([r.mem_energy for r in runs]),
            mem_traffic=_concatenate_per_level([r.mem_traffic for r in runs]),
            ambiguous=np.concatenate([r.ambiguous for r in runs]),
        )


def _concatenate_per_level(runs: list[PerLevel]) -> PerLevel:
    """Per memory and operand, the runs' values one after the other."""
    return {lv: {op: np.concatenate([r[lv][op] for r in runs]) for op in per} for lv, per in runs[0].items()}


def _evaluate_group(
    layers: Sequence[Layer], plan: CorePlan, operands: tuple[str, ...], options: ModelOptions = DEFAULT_OPTIONS
) -> dict[str, np.ndarray | list]:
    """Cost layers that share their operands; per-layer outputs for each layer's best order."""
    arrays = layer_arrays(layers, plan.core, options)
    literal = not options.depthwise_on_g and "W" in operands  # MAC layers only
    group = _Group(plan, operands, arrays, spatial_unrolling(plan, arrays.loops, literal), options)
    first = _distinct_cases(group.unroll.temporal)
    base_layer, base_order = first // len(ORDERS), first % len(ORDERS)
    # each distinct order runs first with the largest register tile at a capacity boundary; the cases where a
    # smaller tile was possible run again taking the SMALLEST one (small register tiles refill fast; LOMA
    # finds both through its permutations)
    runs = [_run_cases(group, base_layer, base_order, np.zeros(len(first), dtype=bool))]
    amb = runs[0].ambiguous
    layers_of = [base_layer]
    orders_of = [base_order]
    if amb.any():
        runs.append(_run_cases(group, base_layer[amb], base_order[amb], np.ones(int(amb.sum()), dtype=bool)))
        layers_of.append(base_layer[amb])
        orders_of.append(base_order[amb])
    case_layer = np.concatenate(layers_of)
    costs = _CaseCosts.concatenate(runs)
    pick = _best_cases(len(layers), case_layer, costs.latency, costs.energy)
    return _group_result(group, costs, pick, np.concatenate(orders_of)[pick])


def _distinct_cases(temporal: np.ndarray) -> np.ndarray:
    """Flat (layer * len(ORDERS) + order) indices of the distinct cases, ascending.

    Orders that differ only in loops of size 1 are the same mapping: keep one case per distinct order.
    """
    nl, no = len(temporal), len(ORDERS)
    active = temporal[:, ORDER_ARRAY] > 1  # (nl, no, ND)
    packed = np.where(active, ORDER_ARRAY[None, :, :], ND)
    packed = np.take_along_axis(packed, np.argsort(~active, axis=2, kind="stable"), axis=2)
    keys = np.concatenate([np.repeat(np.arange(nl), no)[:, None], packed.reshape(nl * no, ND)], axis=1)
    _, first = np.unique(keys, axis=0, return_index=True)
    return np.sort(first)


def _run_cases(group: _Group, case_layer: np.ndarray, case_order: np.ndarray, split_small: np.ndarray) -> _CaseCosts:
    """Cost each (layer, order) case: temporal mapping and transfers per operand, then stalls and links."""
    core = group.plan.core
    case = case_arrays(group.arrays, group.unroll, case_layer, case_order, split_small)
    ledger = Ledger()
    ambiguous = np.zeros(case.n, dtype=bool)
    used_bits: dict[int, np.ndarray] = {}  # per memory, bits already claimed by earlier operands
    inputs: list[OperandLinks] = []
    output: OperandLinks | None = None
    for operand in group.operands:
        view = operand_view(group.plan, operand)
        temporal = map_temporal_loops(case, view, used_bits)
        ambiguous |= temporal.ambiguous
        levels = level_data(case, view, group.plan.array_dims, temporal.alloc, used_bits)
        if view.is_output:
            output = output_transfers(ledger, case, view, levels)
        else:
            inputs.append(input_transfers(ledger, case, view, levels))
    assert output is not None, "every operand set ends with the output"
    # ---- latency: stalls per port, on-loading, off-loading ----------------------------------------------------
    stall, avg_bw = port_stalls(core, ledger.transfers, case.total)
    compute_phase = case.total + stall if group.options.borrow_bandwidth else np.zeros(case.n)
    onload, offload = link_latency(core, inputs, output, compute_phase, avg_bw)
    compute = np.ceil(case.total / group.arrays.throughput[case_layer])
    latency = compute + stall + onload + offload
    mem_total = np.zeros(case.n)
    for per_level in ledger.mem_energy.values():
        for v in per_level.values():
            mem_total = mem_total + v
    mac_energy = (group.arrays.macs * group.arrays.mac_pj)[case_layer]
    energy = mac_energy + mem_total
    return _CaseCosts(latency, energy, stall, onload, offload, ledger.mem_energy, ledger.mem_traffic, ambiguous)


def _best_cases(nl: int, case_layer: np.ndarray, latency: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Per layer, the case with the minimum latency, then the minimum energy."""
    best_lat = np.full(nl, np.inf)
    np.minimum.at(best_lat, case_layer, latency)
    tied = np.isclose(latency, best_lat[case_layer], rtol=1e-12, atol=1e-9)
    ranked = np.lexsort((np.where(tied, energy, np.inf), case_layer))
    starts = np.searchsorted(case_layer[ranked], np.arange(nl))
    return ranked[starts]


def _group_result(
    group: _Group, costs: _CaseCosts, pick: np.ndarray, best_order: np.ndarray
) -> dict[str, np.ndarray | list]:
    """Per-layer outputs of the picked cases."""
    arrays = group.arrays
    compute_l = np.ceil(group.unroll.total_cycles / arrays.throughput)
    ideal_l = np.ceil(np.ceil(arrays.macs / group.plan.units) / arrays.throughput)
    names = [m.name for m in group.plan.core.memories]
    return {
        "energy": costs.energy[pick],
        "latency": costs.latency[pick],
        "compute": compute_l,
        "stall": costs.stall[pick],
        "onload": costs.onload[pick],
        "offload": costs.offload[pick],
        "mac_energy": arrays.macs * arrays.mac_pj,
        "ideal": ideal_l,
        "spatial_util": ideal_l / compute_l,
        "util": ideal_l / costs.latency[pick],
        "order": best_order,
        "mem_energy": _per_layer(costs.mem_energy, names, pick),
        "mem_traffic": _per_layer(costs.mem_traffic, names, pick),
    }


def _per_layer(values: PerLevel, names: list[str], pick: np.ndarray) -> list[dict[str, dict[str, float]]]:
    """Per picked case: memory name -> core operand -> value."""
    return [
        {names[lv]: {op: float(v[p]) for op, v in per.items()} for lv, per in sorted(values.items())}
        for p in pick
    ]
