"""Layers as arrays: ZigZag loop sizes, LOMA loop factors, input geometry, precisions and MAC scaling."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from exitspace.cost.analytical.loops import B, C, FX, FY, G, K, ND, OX, OY
from exitspace.hardware.model import Core
from exitspace.workload.layer import Layer, OpType

_ZZ_DIM_ORDER = (B, K, G, OX, OY, C, FX, FY)  # ZigZag's loop-dim order (ties in LPF merging)


def operands_of(op: OpType) -> tuple[str, ...]:
    """The layer operands of an op: weights, input(s) and output."""
    if op.is_mac:
        return ("W", "I", "O")
    if op == OpType.ADD:
        return ("I", "I2", "O")
    return ("I", "O")


def layer_loops(layer: Layer) -> tuple[int, ...]:
    """ZigZag loop sizes (B, K, G, C, OX, OY, FX, FY): K and C per group, G the number of groups."""
    g = layer.groups
    if layer.op.is_mac:
        return (layer.B, layer.K // g, g, layer.C // g, layer.OX, layer.OY, layer.FX, layer.FY)
    # pooling / element-wise: one op per output element and kernel tap, per channel
    return (layer.B, 1, layer.K, 1, layer.OX, layer.OY, layer.FX, layer.FY)


def _prime_factors(n: int) -> list[int]:
    """Prime factors of ``n``, ascending, with multiplicity."""
    out, f = [], 2
    while f * f <= n:
        while n % f == 0:
            out.append(f)
            n //= f
        f += 1
    if n > 1:
        out.append(n)
    return out


@lru_cache(maxsize=4096)
def loop_factors(temporal: tuple[int, ...], lpf_limit: int = 6) -> dict[int, tuple[int, ...]]:
    """The temporal loop factors LOMA permutes (ZigZag's ``lpf_limit``): prime factors of every temporal loop,
    the two smallest of the dimension with most factors merged until at most ``lpf_limit`` remain."""
    factors = {d: sorted(_prime_factors(temporal[d])) for d in _ZZ_DIM_ORDER if temporal[d] > 1}
    limit = max(lpf_limit, len(factors))
    while sum(len(f) for f in factors.values()) > limit:
        most = max(len(f) for f in factors.values())
        dim = next(d for d in _ZZ_DIM_ORDER if d in factors and len(factors[d]) == most)
        f = factors[dim]
        merged = f[0] * f[1]
        factors[dim] = sorted(f[2:] + [merged])
    return {d: tuple(f) for d, f in factors.items()}


@lru_cache(maxsize=16384)
def sub_products(factors: tuple[int, ...]) -> tuple[int, ...]:
    """Every product of a sub-multiset of ``factors`` (the tile sizes a permutation can put below a level)."""
    products = {1}
    for f in factors:
        products |= {p * f for p in products}
    return tuple(sorted(products))


def _geometry(layer: Layer) -> tuple[float, float, float, float]:
    """x stride, y stride, whole input width and height without padding (ZigZag's IX/IY sizes)."""
    sy, sx = layer.stride
    py, px = layer.padding
    ix = layer.OX * layer.FX - max(0, layer.FX - sx) * (layer.OX - 1) - 2 * px
    iy = layer.OY * layer.FY - max(0, layer.FY - sy) * (layer.OY - 1) - 2 * py
    return (sx, sy, max(ix, 1), max(iy, 1))


def _mac_scaling(core: Core, bits: int) -> tuple[float, float]:
    """(throughput per unit per cycle, energy per MAC) at ``bits``."""
    arr = core.operational_array
    if not arr.precision_scaling:
        return 1.0, arr.unit_energy_pj
    table = arr.precision_scaling
    fitting = sorted(b for b in table if b >= bits)
    key = fitting[0] if fitting else max(table)
    return table[key].throughput, table[key].energy_pj


@dataclass(frozen=True)
class LayerArrays:
    """Per-layer inputs of one evaluation group, one row per layer."""

    loops: np.ndarray  # (nl, ND) loop sizes; the pseudo loops are 1
    stride: np.ndarray  # (nl, 4) x stride, y stride, whole input width and height (see _geometry)
    prec: dict[str, np.ndarray]  # bits per operand; "Of" final outputs, "Op" partial sums
    macs: np.ndarray
    throughput: np.ndarray  # MACs per unit per cycle at the layer's precision
    mac_pj: np.ndarray  # energy per MAC at the layer's precision


def layer_arrays(layers: Sequence[Layer], core: Core) -> LayerArrays:
    """Stack the layers' loop sizes, geometry, precisions and MAC scaling on ``core``."""
    nl = len(layers)
    loops = np.ones((nl, ND))
    loops[:, :8] = np.array([layer_loops(l) for l in layers], dtype=np.float64)
    stride = np.array([_geometry(l) for l in layers], dtype=np.float64)
    prec = {
        "W": np.array([l.precision.weight for l in layers], dtype=np.float64),
        "I": np.array([l.precision.input for l in layers], dtype=np.float64),
        "I2": np.array([l.precision.input for l in layers], dtype=np.float64),
        "Of": np.array([l.precision.output for l in layers], dtype=np.float64),
        "Op": np.array([l.precision.psum for l in layers], dtype=np.float64),
    }
    macs = np.array([l.macs for l in layers], dtype=np.float64)
    scal = [_mac_scaling(core, max(l.precision.weight, l.precision.input)) for l in layers]
    throughput = np.array([s[0] for s in scal])
    mac_pj = np.array([s[1] for s in scal])
    return LayerArrays(loops, stride, prec, macs, throughput, mac_pj)
