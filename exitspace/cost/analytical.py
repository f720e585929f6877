"""The analytical cost backend: ZigZag's cost semantics in closed form, vectorised with numpy.

One pass evaluates many layers at once: every layer is expanded into a set of canonical temporal loop orders
(deduplicated per layer), each order is allocated to the memory hierarchy as ZigZag's LOMA allocator would
(innermost level first, the fitting prefix with the fewest accesses to the level above; the outermost level
takes the rest), access counts, energies, bandwidth stalls and on/off-loading are computed per (layer, order),
and each layer keeps its minimum-latency order (ties: minimum energy), which is ZigZag's ``opt="latency"``
criterion. The equations, the ZigZag details emulated and the measured agreement are in ``docs/cost-model.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from exitspace.cost.base import LayerCost
from exitspace.errors import ConfigError
from exitspace.hardware.model import Core, MemoryLevel
from exitspace.workload.layer import Layer, OpType

ANALYTICAL_VERSION = "1.1.0"

DIMS = ("B", "K", "G", "C", "OX", "OY", "FX", "FY")
_B, _K, _G, _C, _OX, _OY, _FX, _FY = range(8)
# pseudo loops: the smallest LOMA factor of OY's / C's temporal loop, so an order can move it apart from the rest
_OY2 = 8
_C2 = 9
ND = 10
PSEUDO = ((_OY2, _OY), (_C2, _C))
_DIM_INDEX = {name: i for i, name in enumerate(DIMS)}

# Loop dimensions that index each operand ("I2" is the second input of an element-wise add).
RELEVANT: dict[str, tuple[int, ...]] = {
    "W": (_K, _G, _C, _FX, _FY, _C2),
    "I": (_B, _G, _C, _OX, _OY, _FX, _FY, _OY2, _C2),
    "I2": (_B, _G, _OX, _OY, _OY2),
    "O": (_B, _K, _G, _OX, _OY, _OY2),
}
# Which core memory operand stores each layer operand (ZigZag: the second input of an add is memory operand I2,
# the one weights use).
STORAGE = {"W": "W", "I": "I", "I2": "W", "O": "O"}

# Canonical temporal loop orders, innermost loop first (a small stand-in for LOMA's permutation search). Kept:
# the orders that win on some layer of the golden sets and of MobileNetV2 / ResNet-20 on the four ZigZag cores.
ORDERS: tuple[tuple[int, ...], ...] = (
    (_C, _FX, _FY, _OY, _OX, _K, _G, _B),  # output stationary, reduction innermost
    (_FX, _FY, _C, _OY, _OX, _K, _G, _B),
    (_K, _C, _FX, _FY, _OY, _OX, _G, _B),  # input reuse innermost
    (_OY, _OX, _C, _FX, _FY, _K, _G, _B),  # weight stationary
    (_C, _FX, _FY, _G, _OY, _OX, _K, _B),
    (_OY2, _C, _FX, _FY, _OX, _K, _OY, _G, _B),  # a factor of OY innermost (weights reused twice or more)
    (_OY2, _C, _FX, _FY, _K, _OX, _OY, _G, _B),
    (_OY2, _C, _FX, _FY, _OX, _OY, _K, _G, _B),
    (_OY2, _FX, _FY, _G, _OX, _OY, _C, _K, _B),
    (_OY2, _FY, _FX, _OX, _G, _OY, _C, _K, _B),
    (_OY2, _FY, _FX, _C, _OX, _K, _OY, _G, _B),
    (_C2, _FX, _FY, _K, _OY2, _OY, _OX, _C, _G, _B),  # part of C innermost, the rest outermost
    (_C2, _FX, _FY, _OY2, _OY, _OX, _K, _C, _G, _B),
    (_C2, _FX, _FY, _K, _OX, _OY, _OY2, _C, _G, _B),
    (_C, _FY, _OY, _OX, _K, _FX, _G, _B),  # kernel columns outermost: big-kernel layers whose weights overflow
    (_C, _FY, _OY, _OX, _FX, _K, _G, _B),
    (_C, _FX, _FY, _OX, _K, _OY, _G, _B),
    (_K, _OX, _FX, _FY, _OY, _C, _G, _B),
    (_K, _C, _FY, _OY, _OX, _FX, _G, _B),  # low precision: several outputs per output register
)


def _with_pseudo(order: tuple[int, ...]) -> tuple[int, ...]:
    """Orders that do not place a pseudo loop keep its loop whole: the pseudo loop (the loop's smallest factor)
    sits right inside it."""
    for pseudo, real in PSEUDO:
        if pseudo not in order:
            i = order.index(real)
            order = order[:i] + (pseudo,) + order[i:]
    return order


_ORDER_ARRAY = np.array([_with_pseudo(o) for o in ORDERS], dtype=np.int64)
# which orders place each pseudo loop themselves; the others keep that loop whole (pseudo loop of size 1)
_ORDER_SPLITS = np.array([[pseudo in o for pseudo, _ in PSEUDO] for o in ORDERS], dtype=bool)


# ----------------------------------------------------------------------------------------------------------
# Core description, pre-digested once per core
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Level:
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
    chains: dict[str, tuple[_Level, ...]]  # core operand -> its levels, innermost first
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
    dims = tuple(core.operational_array.sizes)
    sizes = tuple(core.operational_array.sizes[d] for d in dims)
    flow: list[int | None] = []
    for d in dims:
        loops = core.dataflow.get(d, ())
        flow.append(_DIM_INDEX[loops[0]] if loops else None)
    if all(f is None for f in flow):
        flow[0] = _K
    chains: dict[str, tuple[_Level, ...]] = {}
    for operand in ("W", "I", "O"):
        chains[operand] = tuple(
            _Level(i, mem, frozenset(mem.served_dimensions))
            for i, mem in enumerate(core.memories)
            if operand in mem.operands
        )
    return CorePlan(core, dims, sizes, tuple(flow), chains, core.operational_array.units)


# ----------------------------------------------------------------------------------------------------------
# Layers as arrays
# ----------------------------------------------------------------------------------------------------------


def _operands_of(op: OpType) -> tuple[str, ...]:
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


_ZZ_DIM_ORDER = (_B, _K, _G, _OX, _OY, _C, _FX, _FY)  # ZigZag's loop-dim order (ties in LPF merging)


def _prime_factors(n: int) -> list[int]:
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
def _sub_products(factors: tuple[int, ...]) -> tuple[int, ...]:
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


# ----------------------------------------------------------------------------------------------------------
# The engine
# ----------------------------------------------------------------------------------------------------------


def _footprint(operand: str, p: np.ndarray, stride: np.ndarray, truncate: bool = False) -> np.ndarray:
    """Elements of ``operand`` touched by loops with per-dim products ``p`` (..., ND).

    ``stride`` (..., 4) holds x stride, y stride and the layer's whole input width and height (padding removed),
    which caps a tile's input extent as in ZigZag. ``truncate``: the input's row/column loops are truncated to
    integers first, as ZigZag's memory allocator sizes tiles (fractional unrolls make tiles look smaller).
    """
    wide = p.shape[-1] > 8
    c = p[..., _C] * p[..., _C2] if wide else p[..., _C]
    oy = p[..., _OY] * p[..., _OY2] if wide else p[..., _OY]
    # products in the order of ZigZag's equation indices (W[g][k][c][fy][fx], O[b][g][k][oy][ox],
    # I[b][g][c][iy][ix]): its allocator compares such products exactly, so rounding decides near-ties
    if operand == "W":
        return p[..., _G] * p[..., _K] * c * p[..., _FY] * p[..., _FX]
    if operand == "O":
        return p[..., _B] * p[..., _G] * p[..., _K] * oy * p[..., _OX]
    if operand == "I2":
        return p[..., _B] * p[..., _G] * oy * p[..., _OX]
    ox, fx, fy = p[..., _OX], p[..., _FX], p[..., _FY]
    if truncate:
        ox, oy, fx, fy = np.floor(ox + 1e-9), np.floor(oy + 1e-9), np.floor(fx + 1e-9), np.floor(fy + 1e-9)
    ix = np.minimum(_unique_indices(stride[..., 0], ox, fx), stride[..., 2])
    iy = np.minimum(_unique_indices(stride[..., 1], oy, fy), stride[..., 3])
    return p[..., _B] * p[..., _G] * c * iy * ix


def _unique_indices(s: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distinct input positions s*i + j for i < a, j < b (unit dilation): the input extent of a tile."""
    return a * b - np.maximum(0.0, b - s) * (a - 1)


@lru_cache(maxsize=4096)
def _divisors(n: int) -> tuple[int, ...]:
    return tuple(d for d in range(1, n + 1) if n % d == 0)


@dataclass
class _Transfer:
    """One periodic data movement of one operand at one memory (per instance of that memory)."""

    level: int  # core.memories index
    is_read: bool
    toward_high: bool  # direction relative to this memory: True = to/from the level above
    operand: str
    bits: np.ndarray  # bits per period per instance
    periods: np.ndarray  # period count
    period: np.ndarray  # cycles per period
    allowed: np.ndarray  # cycles allowed per period
    units: np.ndarray  # instances


def evaluate_arrays(layers: Sequence[Layer], core: Core) -> dict[str, np.ndarray | list]:
    """Cost every layer on ``core``; returns per-layer arrays (and per-level dicts) for the best loop order."""
    plan = core_plan(core)
    n = len(layers)
    for layer in layers:
        if layer.op not in core.ops:
            raise ConfigError(
                f"layer {layer.name!r}.op: core {core.name!r} ({core.kind.value}) cannot run {layer.op.value!r}; "
                f"use a core that supports it (this one runs {[o.value for o in core.ops]})"
            )
    result = _empty_result(n, core)
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, layer in enumerate(layers):
        groups.setdefault(_operands_of(layer.op), []).append(i)
    for operands, idx in groups.items():
        sub = [layers[i] for i in idx]
        part = _evaluate_group(sub, plan, operands)
        for key, value in part.items():
            if isinstance(result[key], list):
                for j, i in enumerate(idx):
                    result[key][i] = value[j]
            else:
                result[key][idx] = value
    return result


def _empty_result(n: int, core: Core) -> dict[str, np.ndarray | list]:
    keys = (
        "energy", "latency", "compute", "stall", "onload", "offload", "mac_energy",
        "spatial_util", "util", "ideal",
    )
    out: dict[str, np.ndarray | list] = {k: np.zeros(n) for k in keys}
    out["mem_energy"] = [None] * n
    out["mem_traffic"] = [None] * n
    out["order"] = np.zeros(n, dtype=np.int64)
    return out


def _evaluate_group(layers: Sequence[Layer], plan: CorePlan, operands: tuple[str, ...]) -> dict:
    core = plan.core
    nl = len(layers)
    no = len(ORDERS)
    loops = np.ones((nl, ND))
    loops[:, :8] = np.array([layer_loops(l) for l in layers], dtype=np.float64)
    stride1 = np.array([_geometry(l) for l in layers], dtype=np.float64)
    prec_l = {
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

    # ---- spatial unrolling (alignment effect): unroll = min(array size, loop size), temporal = ceil ----------
    na = len(plan.array_dims)
    u_int = np.ones((nl, na))
    flow = np.full((nl, na), -1, dtype=np.int64)
    for a, (size, dim) in enumerate(zip(plan.array_sizes, plan.dataflow)):
        if dim is None:
            continue
        d = np.full(nl, dim, dtype=np.int64)
        if dim == _K:  # depthwise / pooling / element-wise: K per group is 1, the groups take K's place
            d = np.where((loops[:, _K] == 1) & (loops[:, _G] > 1), _G, _K)
        flow[:, a] = d
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
    temporal = np.ceil(loops / unrolled)  # (nl, ND)
    frac_total = loops / temporal  # fractional unroll per dim (energy)
    lpfs = [loop_factors(tuple(int(t) for t in row[:8])) for row in temporal]
    # each pseudo loop takes its loop's smallest LOMA factor, so orders can place it apart from the rest
    for pseudo, real in PSEUDO:
        first_factor = np.array([f[real][0] if f.get(real) else 1 for f in lpfs], dtype=np.float64)
        temporal[:, pseudo] = first_factor
        temporal[:, real] = temporal[:, real] / first_factor
    dim_factors: list[dict[int, tuple[int, ...]]] = []
    for f in lpfs:
        f = dict(f)
        for pseudo, real in PSEUDO:
            if f.get(real):
                f[pseudo] = (f[real][0],)
                f[real] = f[real][1:]
        dim_factors.append(f)
    # every tile size a level may take of each loop: products of sub-multisets of its factors (padded with 1)
    subs = [[_sub_products(f.get(d, ())) for d in range(ND)] for f in dim_factors]
    whole = [[_sub_products(f.get(real, ())) for _, real in PSEUDO] for f in lpfs]  # loops kept whole
    width = max(max(len(x) for row in subs for x in row), max(len(x) for row in whole for x in row))
    tile_sizes = np.ones((nl, ND, width))
    for i, row in enumerate(subs):
        for d, sizes in enumerate(row):
            tile_sizes[i, d, : len(sizes)] = sizes
    tile_whole = np.ones((nl, len(PSEUDO), width))
    for i, row in enumerate(whole):
        for k, sizes in enumerate(row):
            tile_whole[i, k, : len(sizes)] = sizes
    # fractional unroll per array dim: the whole correction on the first array dim of that loop dim
    u_frac = u_int.copy()
    for dim in range(8):
        first_done = np.zeros(nl, dtype=bool)
        for a in range(na):
            sel = (flow[:, a] == dim) & ~first_done
            if sel.any():
                u_frac[sel, a] = u_int[sel, a] * frac_total[sel, dim] / unrolled[sel, dim]
                first_done |= sel
    # ZigZag's latency side uses the integer unroll floor(L / T) on the adjusted array dim
    u_lat = np.where(u_frac != u_int, np.floor(u_frac + 1e-9), u_int)
    total_cycles_l = np.prod(temporal, axis=1)
    ideal = np.ceil(macs / plan.units)

    # ---- expand to (layer, order) cases ---------------------------------------------------------------------
    # orders that differ only in loops of size 1 are the same mapping: keep one case per distinct order
    active = temporal[:, _ORDER_ARRAY] > 1  # (nl, no, ND)
    packed = np.where(active, _ORDER_ARRAY[None, :, :], ND)
    packed = np.take_along_axis(packed, np.argsort(~active, axis=2, kind="stable"), axis=2)
    keys = np.concatenate([np.repeat(np.arange(nl), no)[:, None], packed.reshape(nl * no, ND)], axis=1)
    _, first = np.unique(keys, axis=0, return_index=True)
    first = np.sort(first)
    # each distinct order runs first with the largest register tile at a capacity boundary; the cases where a
    # smaller tile was possible run again taking the SMALLEST one (small register tiles refill fast; LOMA
    # finds both through its permutations)
    def run_cases(case_layer: np.ndarray, case_order: np.ndarray, split_small: np.ndarray) -> dict:
        N = len(case_layer)
        rep = lambda x: x[case_layer]  # noqa: E731
        T = rep(temporal)
        splits = _ORDER_SPLITS[case_order]  # (N, pseudo loops)
        for k, (pseudo, real) in enumerate(PSEUDO):
            keep = ~splits[:, k]
            T[keep, real] = T[keep, real] * T[keep, pseudo]
            T[keep, pseudo] = 1.0
        stride = rep(stride1)
        order = _ORDER_ARRAY[case_order]  # (N, ND)
        uf = rep(u_frac)
        ul = rep(u_lat)
        ui = rep(u_int)
        fl = rep(flow)
        prec = {k: rep(v) for k, v in prec_l.items()}
        total = np.prod(T, axis=1)
        rows = np.arange(N)
        ambiguous = np.zeros(N, dtype=bool)

        per_dim: dict[str, list[np.ndarray]] = {}
        for kind, u in (("int", ui), ("frac", uf), ("lat", ul)):
            mats = []
            for a in range(na):
                mat = np.ones((N, ND))
                has = fl[:, a] >= 0
                mat[rows[has], fl[has, a]] = u[has, a]
                mats.append(mat)
            per_dim[kind] = mats
        sp_cache: dict[tuple, np.ndarray] = {}

        def spatial_products(dim_sets: list[int], use_frac: bool | str) -> np.ndarray:
            """(N, ND) product of unrolls over the given array dims, per loop dim."""
            kind = "lat" if use_frac == "lat" else ("frac" if use_frac else "int")
            key = (kind, tuple(dim_sets))
            hit = sp_cache.get(key)
            if hit is None:
                hit = np.ones((N, ND))
                for a in dim_sets:
                    hit = hit * per_dim[kind][a]
                sp_cache[key] = hit
            return hit

        o_ir = [d for d in range(ND) if d not in RELEVANT["O"]]

        mem_energy: dict[int, dict[str, np.ndarray]] = {}
        mem_traffic: dict[int, dict[str, np.ndarray]] = {}
        transfers: list[_Transfer] = []
        onload_links: dict[str, list[tuple[list[tuple[int, bool, np.ndarray, np.ndarray]], np.ndarray]]] = {}
        offload_links: list[list[tuple[int, bool, np.ndarray, np.ndarray]]] = []
        innermost_bits: dict[str, np.ndarray] = {}
        used_bits: dict[int, np.ndarray] = {}  # per memory, bits already claimed by earlier operands

        for operand in operands:
            store = STORAGE[operand]
            chain = plan.chains[store]
            nlev = len(chain)
            first = plan.first_served(store)
            rel = RELEVANT[operand]
            irr = [d for d in range(ND) if d not in rel]
            irr_mask = np.zeros(ND, dtype=bool)
            irr_mask[irr] = True
            is_out = operand == "O"
            p_in = prec[operand] if not is_out else None

            # --- greedy allocation of the order to the levels --------------------------------------------------
            alloc = np.ones((nlev, N, ND))
            rem = T.copy()
            cum = np.ones((N, ND))
            served_so_far: list[int] = []
            for m, lvl in enumerate(chain):
                served_so_far = served_so_far + first[m]
                sp = spatial_products(served_so_far, use_frac=True)
                sp_above_ir = np.zeros(N, dtype=bool)
                if is_out:
                    later = [a for mm in range(m + 1, nlev) for a in first[mm]]
                    sp_later = spatial_products(later, use_frac=False)
                    sp_above_ir = np.any(sp_later[:, o_ir] > 1, axis=1)
                if m == nlev - 1:
                    alloc[m] = rem
                    cum = cum * rem
                    rem = np.ones_like(rem)
                    break
                cap = lvl.mem.size_bits - used_bits.get(lvl.index, np.zeros(N))
                # ZigZag sizes outputs at partial-sum width while any reduction loop is still unallocated
                if is_out:
                    partial_here = np.any(rem[:, o_ir] > 1, axis=1) | sp_above_ir
                    lvl_bits = np.where(partial_here, prec["Op"], prec["Of"])
                else:
                    lvl_bits = p_in
                # ZigZag's allocator keeps the prefix of the order with the fewest accesses to the level above
                # (remaining iterations x tile size; ties: the longer prefix). All prefixes at once: prefix j
                # holds the first j loops of the order; the loop that crosses the capacity may add part of itself.
                cum_start, rem_start = cum, rem
                t_ord = rem[rows[:, None], order]  # (N, ND) remaining loop sizes in order
                cum_p = np.empty((N, ND + 1, ND))
                cum_p[:, 0] = cum
                for j in range(ND):
                    cum_p[:, j + 1] = cum_p[:, j]
                    cum_p[rows, j + 1, order[:, j]] *= t_ord[:, j]
                fp_p = _footprint(operand, cum_p * sp[:, None, :], stride[:, None, :], truncate=True)
                fit_p = fp_p * lvl_bits[:, None] <= cap[:, None]
                n_fit = np.where(fit_p.all(axis=1), ND + 1, np.argmin(fit_p, axis=1))  # footprints only grow
                acc_p = np.prod(rem_start[:, None, :] / (cum_p / cum_start[:, None, :]), axis=2) * (
                    fp_p * lvl_bits[:, None]
                )
                idx = np.arange(ND + 1)[None, :]
                acc_p = np.where((idx < n_fit[:, None]) | (idx == 0), acc_p, np.inf)
                part_acc = np.full(N, np.inf)
                part_cum = cum_start.copy()
                pos = np.clip(n_fit - 1, 0, ND - 1)  # order position of the loop crossing the capacity
                r_cross = t_ord[rows, pos]
                partial_rows = (n_fit >= 1) & (n_fit <= ND) & (r_cross > 1)
                if partial_rows.any():
                    sel = np.nonzero(partial_rows)[0]
                    bsel = cum_p[sel, n_fit[sel] - 1]
                    dsel = order[sel, pos[sel]]
                    rs = r_cross[sel]
                    spsel = sp[sel]
                    strsel = stride[sel]
                    k = len(sel)

                    def ok(cand: np.ndarray) -> np.ndarray:
                        pk = np.repeat(bsel[:, None, :], cand.shape[1], axis=1)  # (k, D, ND)
                        pk[np.arange(k), :, dsel] = pk[np.arange(k), :, dsel] * cand
                        fp = _footprint(operand, pk * spsel[:, None, :], strsel[:, None, :], truncate=True)
                        return fp * lvl_bits[sel][:, None] <= cap[sel][:, None]

                    cand = tile_sizes[case_layer[sel], dsel]  # (k, D): products of the loop's LOMA factors
                    for kk, (pseudo, real) in enumerate(PSEUDO):
                        merged = (dsel == real) & ~splits[sel, kk]
                        if merged.any():
                            cand[merged] = tile_whole[case_layer[sel][merged], kk]
                    cand = np.where(np.mod(rs[:, None], cand) == 0, cand, 1.0)
                    fitting = np.where(ok(cand), cand, 1.0)
                    largest = fitting.max(axis=1)
                    smallest = np.where(fitting > 1, fitting, np.inf).min(axis=1)
                    smallest = np.where(np.isfinite(smallest), smallest, 1.0)
                    take = np.where(split_small[sel], smallest, largest)
                    ambiguous[sel] |= smallest < largest
                    pc = bsel.copy()
                    pc[np.arange(k), dsel] *= take
                    prem = rem_start[sel] / (pc / cum_start[sel])
                    pacc = np.prod(prem, axis=1) * (_footprint(operand, pc * spsel, strsel, truncate=True) * lvl_bits[sel])
                    part_acc[sel] = np.where(take > 1, pacc, np.inf)
                    part_cum[sel] = pc
                all_acc = np.concatenate([acc_p, part_acc[:, None]], axis=1)
                best = (ND + 1) - np.argmin(all_acc[:, ::-1], axis=1)  # the last (longest) minimum
                cum = np.where((best == ND + 1)[:, None], part_cum, cum_p[rows, np.minimum(best, ND)])
                rem = rem_start / (cum / cum_start)
                alloc[m] = cum / cum_start
                # bits this operand occupies at this memory (for operands sharing it later)
                fp_here = _footprint(operand, cum * sp, stride)
                bits_here = fp_here * lvl_bits
                used_bits[lvl.index] = used_bits.get(lvl.index, np.zeros(N)) + bits_here

            # --- per-level quantities ---------------------------------------------------------------------------
            tcum = np.cumprod(alloc, axis=0)  # (nlev, N, 8) temporal products at levels <= m
            cyc_le = np.prod(tcum, axis=2)  # (nlev, N)
            served_so_far = []
            data_le = []  # per-instance elements at level m (temporal <= m, spatial served <= m)
            data_low = []  # per-instance elements fetched for one refill of what is below (temporal < m)
            units = []
            data_le_l = []  # the same with the integer (latency) unroll
            data_low_l = []
            for m, lvl in enumerate(chain):
                served_so_far = served_so_far + first[m]
                sp_f = spatial_products(served_so_far, use_frac=True)
                sp_l = spatial_products(served_so_far, use_frac="lat")
                below_t = tcum[m - 1] if m > 0 else np.ones((N, ND))
                data_le.append(_footprint(operand, tcum[m] * sp_f, stride, truncate=True))
                data_low.append(_footprint(operand, below_t * sp_f, stride, truncate=True))
                data_le_l.append(_footprint(operand, tcum[m] * sp_l, stride))
                data_low_l.append(_footprint(operand, below_t * sp_l, stride))
                not_served = [a for a, dname in enumerate(plan.array_dims) if dname not in lvl.served]
                units.append(np.prod(uf[:, not_served], axis=1) if not_served else np.ones(N))
            # psum flag per level: partial outputs live at level m (ir loops at levels >= m or spatial ir above m)
            psum_flag = []
            if is_out:
                for m in range(nlev):
                    t_ir = np.any(np.prod(alloc[m:], axis=0)[:, o_ir] > 1, axis=1)
                    later = [a for mm in range(m + 1, nlev) for a in first[mm]]
                    s_ir = np.any(spatial_products(later, use_frac=False)[:, o_ir] > 1, axis=1) if later else np.zeros(N, bool)
                    psum_flag.append(t_ir | s_ir)
                psum_flag.append(np.zeros(N, dtype=bool))
            # stationarity of the innermost level's reads (ZigZag: same data is no new access)
            stat = np.ones(N)
            if not is_out:
                going = np.ones(N, dtype=bool)
                for j in range(ND):
                    d = order[:, j]
                    f = alloc[0, rows, d]
                    is_irr = irr_mask[d]
                    mult = going & is_irr & (f > 1)
                    stat = np.where(mult, stat * f, stat)
                    going = going & ~((~is_irr) & (f > 1))
            # top irrelevant loop product per level (for the non-double-buffered update window)
            top_ir = []
            for m in range(nlev):
                t = np.ones(N)
                going = np.ones(N, dtype=bool)
                for j in range(ND - 1, -1, -1):
                    d = order[:, j]
                    f = alloc[m, rows, d]
                    is_irr = irr_mask[d]
                    t = np.where(going & is_irr & (f > 1), t * f, t)
                    going = going & ~((~is_irr) & (f > 1))
                top_ir.append(t)
            # double buffering: the level holds at most half its capacity
            dbuf = []
            for m, lvl in enumerate(chain):
                occ = used_bits.get(lvl.index, np.zeros(N)) if m < nlev - 1 else np.zeros(N)
                dbuf.append(occ <= 0.5 * lvl.mem.size_bits)

            def add(level: _Level, is_read: bool, high: bool, bits_el: np.ndarray, amount: np.ndarray,
                    amount_lat: np.ndarray, periods: np.ndarray, period: np.ndarray, allowed: np.ndarray,
                    unit: np.ndarray) -> None:
                mem = level.mem
                bits = amount * bits_el
                bw = mem.r_bw if is_read else mem.w_bw
                gran = (mem.min_r_granularity if is_read else mem.min_w_granularity) or bw
                gran = min(gran, bw)
                accesses = np.floor(np.ceil(np.round(bits / gran, 9)) * (gran / bw) * periods * unit + 1e-9)
                cost = mem.r_cost if is_read else mem.w_cost
                e = mem_energy.setdefault(level.index, {})
                e[store] = e.get(store, 0.0) + accesses * cost
                t = mem_traffic.setdefault(level.index, {})
                t[store] = t.get(store, 0.0) + bits * periods * unit
                transfers.append(
                    _Transfer(level.index, is_read, high, operand, amount_lat * bits_el, periods, period, allowed, unit)
                )

            if not is_out:
                innermost_bits[operand] = data_le_l[0] * p_in
                links = []
                for m, lvl in enumerate(chain):
                    # reads towards the level below (or the array)
                    per = stat if m == 0 else cyc_le[m - 1]
                    allowed_low = np.where(dbuf[m - 1], per, per / top_ir[m - 1]) if m > 0 else per
                    add(lvl, True, False, p_in, data_low[m], data_low_l[m], total / per, per, allowed_low, units[m])
                    if m < nlev - 1:
                        per_h = cyc_le[m]
                        allowed_h = np.where(dbuf[m], per_h, per_h / top_ir[m])
                        add(lvl, False, True, p_in, data_le[m], data_le_l[m], total / per_h, per_h, allowed_h, units[m])
                        # on-loading link m <- m+1: (memory index, is_read, bits per instance, periods)
                        nxt = chain[m + 1]
                        links.append(([
                            (lvl.index, False, data_le_l[m] * p_in, total / per_h, True),
                            (nxt.index, True, data_low_l[m + 1] * p_in, total / per_h, False),
                        ], total / per_h))
                onload_links[operand] = links  # type: ignore[assignment]
            else:
                innermost_bits["O"] = data_le_l[0] * np.where(psum_flag[0], prec["Op"], prec["Of"])
                for m, lvl in enumerate(chain):
                    per = cyc_le[m - 1] if m > 0 else np.ones(N)
                    pbits_low = np.where(psum_flag[m], prec["Op"], prec["Of"])
                    allowed_low = np.where(dbuf[m - 1], per, per / top_ir[m - 1]) if m > 0 else per
                    add(lvl, False, False, pbits_low, data_low[m], data_low_l[m], total / per, per, allowed_low, units[m])
                    add(lvl, True, False, np.where(psum_flag[m], pbits_low, 0.0), data_low[m], data_low_l[m], total / per, per,
                        allowed_low, units[m])
                    if m < nlev - 1:
                        per_h = cyc_le[m]
                        pbits_h = np.where(psum_flag[m + 1], prec["Op"], prec["Of"])
                        allowed_h = np.where(dbuf[m], per_h, per_h / top_ir[m])
                        add(lvl, True, True, pbits_h, data_le[m], data_le_l[m], total / per_h, per_h, allowed_h, units[m])
                        add(lvl, False, True, np.where(psum_flag[m + 1], pbits_h, 0.0), data_le[m], data_le_l[m], total / per_h,
                            per_h, allowed_h, units[m])
                        nxt = chain[m + 1]
                        offload_links.append([
                            (lvl.index, True, data_le_l[m] * pbits_h, total / per_h, True),
                            (nxt.index, False, data_low_l[m + 1] * pbits_h, total / per_h, False),
                        ])

        # ---- latency: stalls per port, on-loading, off-loading ----------------------------------------------------
        def port_of(level: int, is_read: bool, high: bool = False) -> tuple[int, str]:
            mem = core.memories[level]
            if mem.r_port == 0 and mem.w_port == 0:
                # one shared port; with two or more, ZigZag's files put writes on one and reads on another
                return (level, ("r" if is_read else "w") if mem.rw_port >= 2 else "rw")
            if (mem.r_port if is_read else mem.w_port) == 0:
                return (level, "rw")
            count = mem.r_port if is_read else mem.w_port
            side = "h" if (high and count >= 2) else ""
            return (level, ("r" if is_read else "w") + side)

        def port_bw(level: int, is_read: bool) -> int:
            mem = core.memories[level]
            return mem.r_bw if is_read else mem.w_bw

        ports: dict[tuple[int, str], list[_Transfer]] = {}
        for t in transfers:
            ports.setdefault(port_of(t.level, t.is_read, t.toward_high), []).append(t)
        stall = np.zeros(N)
        avg_bw: dict[tuple[int, str], np.ndarray] = {}
        for key, acts in ports.items():
            pos = np.zeros(N)
            neg_real = np.zeros(N)
            pos_allowed = np.zeros(N)
            window_sum = np.zeros(N)
            full_window = np.zeros(N, dtype=bool)
            n_active = np.zeros(N)
            single = np.zeros(N)
            bw_sum = np.zeros(N)
            for t in acts:
                active = (t.periods > 1) & (t.bits > 0)
                real = np.ceil(np.round(t.bits / port_bw(t.level, t.is_read), 9))
                s = (real - t.allowed) * (t.periods - 1)
                pos += np.where(active & (s > 0), s, 0.0)
                neg_real += np.where(active & (s <= 0), real * (t.periods - 1), 0.0)
                pos_allowed += np.where(active & (s > 0), t.allowed * (t.periods - 1), 0.0)
                window_sum += np.where(active, t.allowed * (t.periods - 1), 0.0)
                full_window |= active & (t.allowed >= t.period)
                n_active += active
                single = np.where(active, s, single)
                bw_sum += np.where(active, np.ceil(t.bits / np.maximum(t.period, 1)), 0.0)
            union = np.where(full_window, total, np.minimum(total, window_sum))
            multi = pos + np.maximum(0.0, neg_real + pos_allowed - union)
            port_stall = np.where(n_active > 1, multi, np.where(n_active == 1, single, 0.0))
            stall = np.maximum(stall, port_stall)
            avg_bw[key] = bw_sum
        compute_phase = total + stall

        # one-shot transfers (period count 1) may borrow each port's spare bandwidth during compute, largest first,
        # down to one innermost tile; periodic links cost one period's transfer
        one_shot: dict[tuple[int, str], list[tuple[np.ndarray, np.ndarray, list]]] = {}
        side_cycles: dict[int, np.ndarray] = {}
        all_sides: list[tuple] = []
        for operand, links in onload_links.items():
            for sides, _pc in links:
                for side in sides:
                    all_sides.append((side, innermost_bits[operand]))
        for sides in offload_links:
            for side in sides:
                all_sides.append((side, innermost_bits["O"]))
        for k, (side, min_bits) in enumerate(all_sides):
            level, is_read, bits, periods, high = side
            bw = port_bw(level, is_read)
            real = np.ceil(np.round(bits / bw, 9))
            side_cycles[k] = real
            floor = np.minimum(real, np.ceil(np.round(min_bits / bw, 9)))
            reducible = np.where(periods <= 1, np.maximum(real - floor, 0.0), 0.0)
            one_shot.setdefault(port_of(level, is_read, high), []).append((real, reducible, [k]))
        for key, entries in one_shot.items():
            level = key[0]
            bw = core.memories[level].r_bw if key[1].startswith("r") else core.memories[level].w_bw
            surplus = np.maximum(0.0, (bw - avg_bw.get(key, 0.0)) / bw * compute_phase)
            reals = np.stack([e[0] for e in entries])
            reds = np.stack([e[1] for e in entries])
            order_desc = np.argsort(-reals, axis=0, kind="stable")
            for pos in range(len(entries)):
                which = order_desc[pos]
                avail = reds[which, np.arange(N)]
                take = np.minimum(avail, surplus)
                surplus = surplus - take
                for e_idx, entry in enumerate(entries):
                    k = entry[2][0]
                    side_cycles[k] = np.where(which == e_idx, side_cycles[k] - take, side_cycles[k])
        side_index = {id(side): k for k, (side, _m) in enumerate(all_sides)}

        def link_cycles(sides: list) -> np.ndarray:
            return np.maximum(side_cycles[side_index[id(sides[0])]], side_cycles[side_index[id(sides[1])]])

        # on-loading: per operand, level pairs on private ports add up; two inputs combine as ZigZag does
        input_ops = [o for o in operands if o != "O"]
        shared_mem = {
            i for i, mem in enumerate(core.memories) if sum(STORAGE[o] in mem.operands for o in input_ops) > 1
        }
        individual, halfshared, fully = {}, {}, {}
        for operand in input_ops:
            ind, half, shr = np.zeros(N), np.zeros(N), np.zeros(N)
            for sides, _pc in onload_links.get(operand, []):
                longest = link_cycles(sides)
                sh = [s[0] in shared_mem for s in sides]
                if all(sh):
                    shr += longest
                elif not any(sh):
                    ind += longest
                else:
                    half = np.maximum(half, longest)
            individual[operand], halfshared[operand], fully[operand] = ind, half, shr
        if len(input_ops) == 1:
            onload = individual[input_ops[0]] + halfshared[input_ops[0]] + fully[input_ops[0]]
        elif input_ops:
            a, b = input_ops[0], input_ops[1]
            p1 = fully[a] + np.maximum(fully[b] + halfshared[b] + individual[b], halfshared[a] + individual[a])
            p2 = fully[b] + np.maximum(fully[a] + halfshared[a] + individual[a], halfshared[b] + individual[b])
            onload = np.minimum(p1, p2)
        else:
            onload = np.zeros(N)
        offload = np.zeros(N)
        for sides in offload_links:
            offload += link_cycles(sides)

        throughput_n = rep(throughput)
        compute = np.ceil(total / throughput_n)
        stall_n = stall
        latency = compute + stall_n + onload + offload
        mem_total = np.zeros(N)
        for per_level in mem_energy.values():
            for v in per_level.values():
                mem_total = mem_total + v
        mac_energy = rep(macs * mac_pj)
        energy = mac_energy + mem_total

        return {
            "latency": latency, "energy": energy, "stall": stall_n, "onload": onload, "offload": offload,
            "mem_energy": mem_energy, "mem_traffic": mem_traffic, "ambiguous": ambiguous,
        }

    base_layer, base_order = first // no, first % no
    runs = [run_cases(base_layer, base_order, np.zeros(len(first), dtype=bool))]
    amb = runs[0]["ambiguous"]
    layers_of = [base_layer]
    orders_of = [base_order]
    if amb.any():
        runs.append(run_cases(base_layer[amb], base_order[amb], np.ones(int(amb.sum()), dtype=bool)))
        layers_of.append(base_layer[amb])
        orders_of.append(base_order[amb])
    case_layer = np.concatenate(layers_of)
    case_order = np.concatenate(orders_of)
    latency = np.concatenate([r["latency"] for r in runs])
    energy = np.concatenate([r["energy"] for r in runs])
    stall_n = np.concatenate([r["stall"] for r in runs])
    onload = np.concatenate([r["onload"] for r in runs])
    offload = np.concatenate([r["offload"] for r in runs])
    mem_energy = {lv: {op: np.concatenate([r["mem_energy"][lv][op] for r in runs]) for op in per}
                  for lv, per in runs[0]["mem_energy"].items()}
    mem_traffic = {lv: {op: np.concatenate([r["mem_traffic"][lv][op] for r in runs]) for op in per}
                   for lv, per in runs[0]["mem_traffic"].items()}
    # ---- pick the best order per layer: min latency, then min energy --------------------------------------
    best_lat = np.full(nl, np.inf)
    np.minimum.at(best_lat, case_layer, latency)
    tied = np.isclose(latency, best_lat[case_layer], rtol=1e-12, atol=1e-9)
    ranked = np.lexsort((np.where(tied, energy, np.inf), case_layer))
    starts = np.searchsorted(case_layer[ranked], np.arange(nl))
    pick = ranked[starts]
    best = case_order[pick]

    compute_l = np.ceil(total_cycles_l / throughput)
    ideal_l = np.ceil(ideal / throughput)
    out: dict = {
        "energy": energy[pick],
        "latency": latency[pick],
        "compute": compute_l,
        "stall": stall_n[pick],
        "onload": onload[pick],
        "offload": offload[pick],
        "mac_energy": macs * mac_pj,
        "ideal": ideal_l,
        "spatial_util": ideal_l / compute_l,
        "util": ideal_l / latency[pick],
        "order": best,
    }
    names = [m.name for m in core.memories]
    out["mem_energy"] = [
        {names[lv]: {op: float(v[p]) for op, v in per.items()} for lv, per in sorted(mem_energy.items())}
        for p in pick
    ]
    out["mem_traffic"] = [
        {names[lv]: {op: float(v[p]) for op, v in per.items()} for lv, per in sorted(mem_traffic.items())}
        for p in pick
    ]
    return out


# ----------------------------------------------------------------------------------------------------------
# The backend
# ----------------------------------------------------------------------------------------------------------


class AnalyticalBackend:
    """ZigZag-semantics cost model in closed form (``name = "analytical"``)."""

    name = "analytical"
    version = ANALYTICAL_VERSION

    def evaluate(self, layers: Sequence[Layer], core: Core) -> list[LayerCost]:
        """Cost of each layer on ``core``, in order (one vectorised pass)."""
        return self.evaluate_many(layers, core)

    def evaluate_many(self, layers: Sequence[Layer], core: Core) -> list[LayerCost]:
        """Vectorised evaluation of many layers on one core."""
        if not layers:
            return []
        r = evaluate_arrays(layers, core)
        out = []
        for i, layer in enumerate(layers):
            out.append(
                LayerCost(
                    layer=layer.name,
                    core=core.name,
                    backend=self.name,
                    energy_pj=float(r["energy"][i]),
                    latency_cycles=float(r["latency"][i]),
                    compute_cycles=float(r["compute"][i]),
                    stall_cycles=float(r["stall"][i]),
                    onload_cycles=float(r["onload"][i]),
                    offload_cycles=float(r["offload"][i]),
                    mac_energy_pj=float(r["mac_energy"][i]),
                    spatial_utilization=float(r["spatial_util"][i]),
                    utilization=float(r["util"][i]),
                    mem_energy_pj=r["mem_energy"][i],
                    mem_traffic_bits=r["mem_traffic"][i],
                )
            )
        return out

    def evaluate_table(self, layers: Sequence[Layer], core: Core) -> dict[str, np.ndarray]:
        """Vectorised evaluation returning only arrays (latency, energy, compute, ...): the fast path for sweeps."""
        r = evaluate_arrays(layers, core)
        return {k: v for k, v in r.items() if isinstance(v, np.ndarray)}
