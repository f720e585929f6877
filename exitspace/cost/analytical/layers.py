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


@dataclass(frozen=True)
class ModelOptions:
    """Variants of the engine's semantics (the default is ZigZag's as exitspace hands layers to it).

    ``depthwise_on_g``: a grouped layer with one output channel per group unrolls its groups on the array dim
    the dataflow gives K (the zigzag backend's default); False maps it literally, as ZigZag does with a
    mapping file's dataflow (K per group is 1, so that array dim idles).
    ``pool_channel_loop``: pooling keeps an input-channel loop C = channels that indexes no operand, as the
    paper's Stream fork parses it, so it costs C times its real work (the ``stream`` cost profile).
    ``borrow_bandwidth``: one-shot on/off-loading may use a port's spare bandwidth during compute (zigzag-dse
    3.9.1); False: it is added after compute in full, as zigzag-dse 3.6.3 (the paper's Stream) counts it.
    ``real_input_size``: a layer's input extent is its real input tensor (:attr:`Layer.IX`), as ZigZag sizes
    it from an ONNX graph; False: the extent derived from the loop relation and padding, as ZigZag derives it
    from a workload file (what exitspace's zigzag backend hands it).
    """

    depthwise_on_g: bool = True
    pool_channel_loop: bool = False
    borrow_bandwidth: bool = True
    real_input_size: bool = False

    @property
    def tag(self) -> str:
        """Suffix of the backend version for a non-default variant ('' for the default)."""
        return (("" if self.depthwise_on_g else "+literal-dw") + ("+pool-c" if self.pool_channel_loop else "")
                + ("" if self.borrow_bandwidth else "+no-borrow") + ("+real-input" if self.real_input_size else ""))


DEFAULT_OPTIONS = ModelOptions()


def operands_of(op: OpType, options: ModelOptions = DEFAULT_OPTIONS) -> tuple[str, ...]:
    """The layer operands of an op: weights, input(s) and output."""
    if op.is_mac:
        return ("W", "I", "O")
    if op == OpType.ADD:
        return ("I", "I2", "O")
    if op == OpType.POOL and options.pool_channel_loop:
        return ("IP", "O")
    return ("I", "O")


def layer_loops(layer: Layer, options: ModelOptions = DEFAULT_OPTIONS) -> tuple[int, ...]:
    """ZigZag loop sizes (B, K, G, C, OX, OY, FX, FY): K and C per group, G the number of groups."""
    g = layer.groups
    if layer.op.is_mac:
        return (layer.B, layer.K // g, g, layer.C // g, layer.OX, layer.OY, layer.FX, layer.FY)
    channel_loop = layer.C if layer.op == OpType.POOL and options.pool_channel_loop else 1
    # pooling / element-wise: one op per output element and kernel tap, per channel
    return (layer.B, 1, layer.K, channel_loop, layer.OX, layer.OY, layer.FX, layer.FY)


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


def _geometry(layer: Layer, real_input: bool = False) -> tuple[float, float, float, float]:
    """x stride, y stride, whole input width and height without padding. ``real_input``: the layer's input
    tensor (:attr:`Layer.IX`, what ZigZag reads off an ONNX graph); otherwise the extent its windows reach,
    as ZigZag derives it from the loop relation and the padding (13 rows for a padded stride-2 3x3 layer with
    7 output rows, whose real input has 14)."""
    sy, sx = layer.stride
    if real_input:
        return (sx, sy, max(layer.IX, 1), max(layer.IY, 1))
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


def layer_arrays(layers: Sequence[Layer], core: Core, options: ModelOptions = DEFAULT_OPTIONS) -> LayerArrays:
    """Stack the layers' loop sizes, geometry, precisions and MAC scaling on ``core``."""
    nl = len(layers)
    loops = np.ones((nl, ND))
    loops[:, :8] = np.array([layer_loops(l, options) for l in layers], dtype=np.float64)
    stride = np.array([_geometry(l, options.real_input_size) for l in layers], dtype=np.float64)
    prec = {
        "W": np.array([l.precision.weight for l in layers], dtype=np.float64),
        "I": np.array([l.precision.input for l in layers], dtype=np.float64),
        "I2": np.array([l.precision.input for l in layers], dtype=np.float64),
        "IP": np.array([l.precision.input for l in layers], dtype=np.float64),
        "Of": np.array([l.precision.output for l in layers], dtype=np.float64),
        "Op": np.array([l.precision.psum for l in layers], dtype=np.float64),
    }
    macs = np.array([l.macs for l in layers], dtype=np.float64)
    if options.pool_channel_loop:  # the spurious channel loop multiplies the pooling's ops
        is_pool = np.array([l.op == OpType.POOL for l in layers])
        macs = np.where(is_pool, np.prod(loops[:, :8], axis=1), macs)
    scal = [_mac_scaling(core, max(l.precision.weight, l.precision.input)) for l in layers]
    throughput = np.array([s[0] for s in scal])
    mac_pj = np.array([s[1] for s in scal])
    return LayerArrays(loops, stride, prec, macs, throughput, mac_pj)
