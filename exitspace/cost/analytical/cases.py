"""Cases: one (layer, loop order) pair per row, with the per-layer arrays repeated for each of its cases."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from exitspace.cost.analytical.layers import LayerArrays
from exitspace.cost.analytical.loops import ND, ORDER_ARRAY, ORDER_SPLITS, PSEUDO
from exitspace.cost.analytical.unroll import Unrolling

UnrollKind = Literal["int", "frac", "lat"]  # integer, fractional (energy) or latency-side unroll


@dataclass(frozen=True)
class SpatialProducts:
    """Per-case spatial unroll of each loop dim, over any set of array dims (memoised)."""

    per_array_dim: dict[str, list[np.ndarray]]  # kind -> per array dim, (N, ND) unroll of each loop dim
    n: int
    cache: dict[tuple[str, tuple[int, ...]], np.ndarray] = field(default_factory=dict)

    def of(self, array_dims: list[int], kind: UnrollKind) -> np.ndarray:
        """(N, ND) product of unrolls over the given array dims, per loop dim."""
        key = (kind, tuple(array_dims))
        hit = self.cache.get(key)
        if hit is None:
            hit = np.ones((self.n, ND))
            for a in array_dims:
                hit = hit * self.per_array_dim[kind][a]
            self.cache[key] = hit
        return hit


def _spatial_products(unroll: Unrolling, case_layer: np.ndarray) -> SpatialProducts:
    """Scatter each case's per-array-dim unrolls onto the loop dims they unroll."""
    n = len(case_layer)
    rows = np.arange(n)
    flow = unroll.flow[case_layer]
    per_array_dim: dict[str, list[np.ndarray]] = {}
    for kind, u in (("int", unroll.u_int[case_layer]), ("frac", unroll.u_frac[case_layer]),
                    ("lat", unroll.u_lat[case_layer])):
        mats = []
        for a in range(flow.shape[1]):
            mat = np.ones((n, ND))
            has = flow[:, a] >= 0
            mat[rows[has], flow[has, a]] = u[has, a]
            mats.append(mat)
        per_array_dim[kind] = mats
    return SpatialProducts(per_array_dim, n)


@dataclass(frozen=True)
class CaseArrays:
    """Everything one case run needs, one row per case (``tile_*`` stay per layer: index with ``case_layer``)."""

    case_layer: np.ndarray  # (N,) layer of each case
    split_small: np.ndarray  # (N,) take the smallest register tile at a capacity boundary (see evaluate)
    temporal: np.ndarray  # (N, ND) temporal loops; pseudo loops merged back where the order keeps them whole
    splits: np.ndarray  # (N, len(PSEUDO)) whether the order places each pseudo loop itself
    order: np.ndarray  # (N, ND) the loop order, innermost first
    stride: np.ndarray  # (N, 4) see footprint()
    prec: dict[str, np.ndarray]  # (N,) bits per operand
    u_frac: np.ndarray  # (N, na) fractional unroll per array dim
    total: np.ndarray  # (N,) temporal iterations
    rows: np.ndarray  # (N,) 0 .. N-1, for per-row fancy indexing
    spatial: SpatialProducts
    tile_sizes: np.ndarray  # (nl, ND, width)
    tile_whole: np.ndarray  # (nl, len(PSEUDO), width)

    @property
    def n(self) -> int:
        """The number of cases."""
        return len(self.case_layer)


def case_arrays(
    arrays: LayerArrays, unroll: Unrolling, case_layer: np.ndarray, case_order: np.ndarray, split_small: np.ndarray
) -> CaseArrays:
    """The per-layer arrays repeated for each case, with the case's loop order applied."""
    temporal = unroll.temporal[case_layer]
    splits = ORDER_SPLITS[case_order]  # (N, pseudo loops)
    for k, (pseudo, real) in enumerate(PSEUDO):
        keep = ~splits[:, k]
        temporal[keep, real] = temporal[keep, real] * temporal[keep, pseudo]
        temporal[keep, pseudo] = 1.0
    return CaseArrays(
        case_layer=case_layer,
        split_small=split_small,
        temporal=temporal,
        splits=splits,
        order=ORDER_ARRAY[case_order],  # (N, ND)
        stride=arrays.stride[case_layer],
        prec={k: v[case_layer] for k, v in arrays.prec.items()},
        u_frac=unroll.u_frac[case_layer],
        total=np.prod(temporal, axis=1),
        rows=np.arange(len(case_layer)),
        spatial=_spatial_products(unroll, case_layer),
        tile_sizes=unroll.tile_sizes,
        tile_whole=unroll.tile_whole,
    )
