"""Spatial unrolling (the alignment effect) and the temporal loops and tile sizes it leaves, per layer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from exitspace.cost.analytical.layers import loop_factors, sub_products
from exitspace.cost.analytical.loops import G, K, ND, PSEUDO
from exitspace.cost.analytical.plan import CorePlan

LoopFactors = dict[int, tuple[int, ...]]


@dataclass(frozen=True)
class Unrolling:
    """Per layer (rows): how the array unrolls its loops and what stays temporal."""

    flow: np.ndarray  # (nl, na) loop dim unrolled on each array dim (-1: none)
    u_int: np.ndarray  # (nl, na) integer unroll per array dim
    u_frac: np.ndarray  # (nl, na) fractional unroll (energy side)
    u_lat: np.ndarray  # (nl, na) integer unroll of ZigZag's latency side
    temporal: np.ndarray  # (nl, ND) temporal loop sizes, pseudo loops split off
    tile_sizes: np.ndarray  # (nl, ND, width) every tile size a level may take of each loop (padded with 1)
    tile_whole: np.ndarray  # (nl, len(PSEUDO), width) the same for the loops with a pseudo loop, kept whole
    total_cycles: np.ndarray  # (nl,) temporal iterations


def spatial_unrolling(plan: CorePlan, loops: np.ndarray, literal: bool = False) -> Unrolling:
    """Unroll = min(array size, loop size), temporal = ceil; then LOMA factors, pseudo loops and tile sizes.
    ``literal``: the dataflow's K stays K for grouped layers (no groups on K's array dim)."""
    flow = _array_flow(plan, loops, literal)
    u_int, unrolled = _integer_unroll(plan, loops, flow)
    temporal = np.ceil(loops / unrolled)  # (nl, ND)
    frac_total = loops / temporal  # fractional unroll per dim (energy)
    lpfs = [loop_factors(tuple(int(t) for t in row[:8])) for row in temporal]
    _split_pseudo_loops(temporal, lpfs)
    tile_sizes, tile_whole = _tile_sizes(lpfs)
    u_frac = _fractional_unroll(u_int, flow, frac_total, unrolled)
    # ZigZag's latency side uses the integer unroll floor(L / T) on the adjusted array dim
    u_lat = np.where(u_frac != u_int, np.floor(u_frac + 1e-9), u_int)
    total_cycles = np.prod(temporal, axis=1)
    return Unrolling(flow, u_int, u_frac, u_lat, temporal, tile_sizes, tile_whole, total_cycles)


def _array_flow(plan: CorePlan, loops: np.ndarray, literal: bool = False) -> np.ndarray:
    """(nl, na) the loop dim each array dim unrolls per layer (-1: none)."""
    nl = len(loops)
    flow = np.full((nl, len(plan.array_dims)), -1, dtype=np.int64)
    for a, dim in enumerate(plan.dataflow):
        if dim is None:
            continue
        d = np.full(nl, dim, dtype=np.int64)
        if dim == K and not literal:  # depthwise / pooling / element-wise: K per group is 1, the groups take K's place
            d = np.where((loops[:, K] == 1) & (loops[:, G] > 1), G, K)
        flow[:, a] = d
    return flow


def _integer_unroll(plan: CorePlan, loops: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nl, na) integer unroll per array dim, and (nl, ND) the total unroll per loop dim."""
    nl, na = flow.shape
    u_int = np.ones((nl, na))
    unrolled = np.ones((nl, ND))
    for a in range(na):
        for dim in range(8):
            sel = flow[:, a] == dim
            if not sel.any():
                continue
            left = np.ceil(loops[sel, dim] / unrolled[sel, dim])
            u = np.minimum(plan.array_sizes[a], left)
            u_int[sel, a] = u
            unrolled[sel, dim] *= u
    return u_int, unrolled


def _split_pseudo_loops(temporal: np.ndarray, lpfs: list[LoopFactors]) -> None:
    """In place: each pseudo loop takes its loop's smallest LOMA factor, so orders can place it apart from
    the rest."""
    for pseudo, real in PSEUDO:
        first_factor = np.array([f[real][0] if f.get(real) else 1 for f in lpfs], dtype=np.float64)
        temporal[:, pseudo] = first_factor
        temporal[:, real] = temporal[:, real] / first_factor


def _with_pseudo_factors(lpfs: list[LoopFactors]) -> list[LoopFactors]:
    """The LOMA factors per layer with each pseudo loop's factor moved off its loop."""
    dim_factors: list[LoopFactors] = []
    for f in lpfs:
        f = dict(f)
        for pseudo, real in PSEUDO:
            if f.get(real):
                f[pseudo] = (f[real][0],)
                f[real] = f[real][1:]
        dim_factors.append(f)
    return dim_factors


def _tile_sizes(lpfs: list[LoopFactors]) -> tuple[np.ndarray, np.ndarray]:
    """Every tile size a level may take of each loop: products of sub-multisets of its factors (padded with 1);
    per loop dim with pseudo loops split off, and for the loops with a pseudo loop kept whole."""
    nl = len(lpfs)
    subs = [[sub_products(f.get(d, ())) for d in range(ND)] for f in _with_pseudo_factors(lpfs)]
    whole = [[sub_products(f.get(real, ())) for _, real in PSEUDO] for f in lpfs]  # loops kept whole
    width = max(max(len(x) for row in subs for x in row), max(len(x) for row in whole for x in row))
    tile_sizes = np.ones((nl, ND, width))
    for i, row in enumerate(subs):
        for d, sizes in enumerate(row):
            tile_sizes[i, d, : len(sizes)] = sizes
    tile_whole = np.ones((nl, len(PSEUDO), width))
    for i, row in enumerate(whole):
        for k, sizes in enumerate(row):
            tile_whole[i, k, : len(sizes)] = sizes
    return tile_sizes, tile_whole


def _fractional_unroll(
    u_int: np.ndarray, flow: np.ndarray, frac_total: np.ndarray, unrolled: np.ndarray
) -> np.ndarray:
    """Fractional unroll per array dim: the whole correction on the first array dim of that loop dim."""
    nl, na = flow.shape
    u_frac = u_int.copy()
    for dim in range(8):
        first_done = np.zeros(nl, dtype=bool)
        for a in range(na):
            sel = (flow[:, a] == dim) & ~first_done
            if sel.any():
                u_frac[sel, a] = u_int[sel, a] * frac_total[sel, dim] / unrolled[sel, dim]
                first_done |= sel
    return u_frac
