"""The analytical cost backend: hand-checkable cases, alignment staircases, precision, non-MAC ops, vectorisation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from exitspace.cost.analytical import AnalyticalBackend, evaluate_arrays
from exitspace.cost.base import CostBackend
from exitspace.cost.registry import get_backend
from exitspace.errors import ConfigError
from exitspace.hardware.model import CoreKind, Core, MacScaling, MemoryLevel, OperationalArray
from exitspace.workload.layer import Layer, OpType, Precision


def paper_core(precision_scaling: dict[int, MacScaling] | None = None) -> Core:
    """The paper's Edge-TPU-like core (paper-setup.md section 4), built by hand."""
    return Core(
        id=0,
        name="edge_tpu_like_test",
        operational_array=OperationalArray(
            unit_energy_pj=0.04, sizes={"D1": 8, "D2": 8, "D3": 4, "D4": 4}, precision_scaling=precision_scaling
        ),
        memories=(
            MemoryLevel(name="rf_w", size_bits=32, r_bw=32, w_bw=32, r_cost=0.01, w_cost=0.01, operands=("W",),
                        served_dimensions=("D3", "D4")),
            MemoryLevel(name="rf_o", size_bits=32, r_bw=32, w_bw=32, r_cost=0.02, w_cost=0.02, operands=("O",),
                        served_dimensions=("D2",), r_port=2, w_port=2),
            MemoryLevel(name="sram_w", size_bits=32 * 1024 * 8, r_bw=512, w_bw=512, r_cost=22.9, w_cost=52.01,
                        operands=("W",), served_dimensions=("D1", "D2", "D3", "D4"), min_r_granularity=64,
                        min_w_granularity=64),
            MemoryLevel(name="sram_act", size_bits=2 * 1024 * 1024 * 8, r_bw=2048, w_bw=2048, r_cost=416.16,
                        w_cost=378.4, operands=("I", "O"), served_dimensions=("D1", "D2", "D3", "D4"),
                        min_r_granularity=64, min_w_granularity=64),
            MemoryLevel(name="dram", size_bits=10**10, r_bw=64, w_bw=64, r_cost=700, w_cost=750,
                        operands=("I", "W", "O"), served_dimensions=("D1", "D2", "D3", "D4"), r_port=0, w_port=0,
                        rw_port=1),
        ),
        dataflow={"D1": ("K",), "D2": ("C",), "D3": ("OX",), "D4": ("OY",)},
    )


def simd_core() -> Core:
    return Core(
        id=5, name="simd", kind=CoreKind.SIMD,
        operational_array=OperationalArray(unit_energy_pj=0.1, sizes={"D1": 64}),
        memories=(MemoryLevel(name="sram", size_bits=1 << 20, r_bw=512, w_bw=512, r_cost=60, w_cost=75,
                              operands=("I", "W", "O"), served_dimensions=("D1",), r_port=0, w_port=0, rw_port=2),),
        dataflow={"D1": ("K",)},
    )


def pooling_core() -> Core:
    return Core(
        id=4, name="pool", kind=CoreKind.POOLING,
        operational_array=OperationalArray(unit_energy_pj=0.1, sizes={"D1": 3, "D2": 3, "D3": 8}),
        memories=(MemoryLevel(name="sram", size_bits=1 << 20, r_bw=576, w_bw=512, r_cost=60, w_cost=75,
                              operands=("I", "W", "O"), served_dimensions=("D1", "D2", "D3")),),
        dataflow={"D1": ("FX",), "D2": ("FY",), "D3": ("K",)},
    )


CORE = paper_core()
BACKEND = AnalyticalBackend()


def conv(K: int = 32, C: int = 32, OX: int = 16, OY: int = 16, F: int = 3, bits: int = 8, **kw) -> Layer:
    return Layer("conv", OpType.CONV, K=K, C=C, OX=OX, OY=OY, FX=F, FY=F, precision=Precision.uniform(bits), **kw)


def cost(layer: Layer, core: Core = CORE):
    return BACKEND.evaluate([layer], core)[0]


def test_backend_protocol_and_registry() -> None:
    assert isinstance(BACKEND, CostBackend)
    assert BACKEND.name == "analytical" and BACKEND.version
    assert get_backend("analytical").name == "analytical"
    with pytest.raises(ConfigError, match="unknown backend"):
        get_backend("nope")


def test_layer_filling_the_array_exactly() -> None:
    # K=16, C=16, 16x16 output, 3x3: every unroll divides the array -> MACs / 1024 cycles, spatial util 1
    layer = conv(K=16, C=16)
    c = cost(layer)
    assert c.compute_cycles == layer.macs / 1024
    assert c.spatial_utilization == pytest.approx(1.0)
    assert c.latency_cycles == c.compute_cycles + c.stall_cycles + c.onload_cycles + c.offload_cycles
    total_mem = sum(v for per in c.mem_energy_pj.values() for v in per.values())
    assert c.energy_pj == pytest.approx(c.mac_energy_pj + total_mem)
    assert c.mac_energy_pj == pytest.approx(0.04 * layer.macs)


def test_ceil_effect_k25_on_8_wide_k() -> None:
    c = cost(conv(K=25))
    # K=25 needs ceil(25/8)=4 passes of the 8-wide K dimension, like K=32
    assert c.compute_cycles == 4 * 4 * 4 * 4 * 9
    assert c.spatial_utilization == pytest.approx(math.ceil(25 * 32 * 256 * 9 / 1024) / (4 * 4 * 4 * 4 * 9))
    assert c.compute_cycles == cost(conv(K=32)).compute_cycles


def test_matches_zigzag_run_by_hand() -> None:
    # zigzag-dse 3.9.1, opt=latency, this core (32-bit registers), K=C=32, 16x16 out, 3x3, 8 bit, no padding:
    # latency_total2 = 3602 (2304 temporal + 1296 onloading + 2 offloading), energy 3,170,004.64 pJ,
    # DRAM energy per operand W 806,400 / I 907,200 / O 768,000 (read from its mem_energy_breakdown).
    c = cost(conv())
    assert c.compute_cycles == 2304
    assert c.onload_cycles == 1296  # the whole 18x18x32 input at 64 bit/cycle
    assert c.latency_cycles == 3602
    assert c.mem_energy_pj["dram"] == pytest.approx({"W": 806400.0, "I": 907200.0, "O": 768000.0})
    assert c.energy_pj == pytest.approx(3170004.64, rel=1e-3)


@pytest.mark.parametrize(("dim", "width"), [("K", 8), ("C", 8), ("OX", 4), ("OY", 4)])
def test_compute_staircase_at_array_multiples(dim: str, width: int) -> None:
    values = list(range(width + 1, 4 * width + 1))
    layers = [conv(**{dim: v}) for v in values]
    computes = [c.compute_cycles for c in BACKEND.evaluate(layers, CORE)]
    steps = [v for v, prev, cur in zip(values[1:], computes, computes[1:]) if cur > prev]
    assert steps == [2 * width + 1, 3 * width + 1]
    # flat between steps although MACs grow
    assert all(cur >= prev for prev, cur in zip(computes, computes[1:]))


def test_precision_lowers_traffic_not_mac_cost_by_default() -> None:
    c8, c4 = cost(conv(bits=8)), cost(conv(bits=4))
    assert c4.compute_cycles == c8.compute_cycles
    assert c4.mac_energy_pj == c8.mac_energy_pj
    dram8 = sum(c8.mem_traffic_bits["dram"].values())
    dram4 = sum(c4.mem_traffic_bits["dram"].values())
    assert dram4 == pytest.approx(dram8 / 2)
    assert c4.energy_pj < c8.energy_pj
    assert c4.onload_cycles == c8.onload_cycles / 2


def test_precision_scalable_macs_change_throughput_and_energy() -> None:
    scalable = paper_core({8: MacScaling(throughput=1.0, energy_pj=0.04), 4: MacScaling(throughput=2.0, energy_pj=0.015)})
    layer8, layer4 = conv(bits=8), conv(bits=4)
    c8, c4 = cost(layer8, scalable), cost(layer4, scalable)
    assert c8.compute_cycles == cost(layer8).compute_cycles
    assert c4.compute_cycles == c8.compute_cycles / 2
    assert c4.mac_energy_pj == pytest.approx(0.015 * layer4.macs)


def test_depthwise_unrolls_groups_on_the_k_dimension() -> None:
    dw = Layer("dw", OpType.DEPTHWISE, K=32, C=32, OX=16, OY=16, FX=3, FY=3, groups=32)
    c = cost(dw)
    # G on D1 (8), C per group 1 on D2, OX/OY 4x4: 128 of 1024 MACs busy
    assert c.compute_cycles == 4 * 4 * 4 * 9
    assert c.spatial_utilization == pytest.approx(dw.macs / 1024 / c.compute_cycles)
    assert c.spatial_utilization == pytest.approx(0.125)


def test_fc_pool_add_are_never_free() -> None:
    fc = Layer("fc", OpType.FC, K=10, C=512)
    pool = Layer("pool", OpType.POOL, K=16, C=16, OX=4, OY=4, FX=8, FY=8, groups=16, stride=(8, 8))
    add = Layer("add", OpType.ADD, K=24, C=24, OX=32, OY=32, groups=24)
    for layer, core in ((fc, CORE), (pool, pooling_core()), (add, simd_core()), (pool, CORE), (add, CORE)):
        c = cost(layer, core)
        assert c.energy_pj > 0 and c.latency_cycles > 0 and c.compute_cycles > 0, (layer.name, core.name)
        assert c.mac_energy_pj == pytest.approx(core.operational_array.unit_energy_pj * layer.macs)
    # the add reads two inputs and writes one output at one op per lane per cycle
    c = cost(add, simd_core())
    assert c.compute_cycles == 32 * 32  # 24 channels on 64 lanes: one pass per pixel
    assert c.spatial_utilization == pytest.approx(24 / 64)


def test_core_that_cannot_run_the_op_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError, match="cannot run"):
        cost(conv(), pooling_core())


def test_vectorised_equals_one_by_one() -> None:
    layers = [conv(K=k, C=c, OX=o, OY=o, F=f, bits=b) for k, c, o, f, b in
              [(24, 16, 8, 1, 8), (33, 7, 13, 3, 4), (64, 96, 16, 1, 8), (10, 2560, 1, 1, 8), (5, 3, 32, 3, 8)]]
    layers.append(Layer("dw", OpType.DEPTHWISE, K=96, C=96, OX=16, OY=16, FX=7, FY=7, groups=96))
    together = BACKEND.evaluate(layers, CORE)
    alone = [BACKEND.evaluate([layer], CORE)[0] for layer in layers]
    assert [c.to_dict() for c in together] == [c.to_dict() for c in alone]


def test_evaluate_table_matches_layer_costs() -> None:
    layers = [conv(K=k) for k in range(20, 41)]
    table = BACKEND.evaluate_table(layers, CORE)
    costs = BACKEND.evaluate(layers, CORE)
    np.testing.assert_allclose(table["latency"], [c.latency_cycles for c in costs])
    np.testing.assert_allclose(table["energy"], [c.energy_pj for c in costs])


def test_weights_larger_than_the_weight_sram_stall_on_dram() -> None:
    # 160 -> 960 pointwise on 8x8: 1.2 Mbit of weights do not fit in 256 kbit; DRAM at 64 b/cycle bounds it
    big = Layer("pw", OpType.POINTWISE, K=960, C=160, OX=8, OY=8)
    c = cost(big)
    assert c.stall_cycles > 0
    assert c.latency_cycles >= big.weight_count * 8 / 64


def test_stride_and_padding_shrink_the_input_read() -> None:
    plain = cost(conv(F=3))
    padded = cost(conv(F=3, padding=(1, 1)))
    assert padded.mem_traffic_bits["dram"]["I"] == pytest.approx(16 * 16 * 32 * 8)
    assert plain.mem_traffic_bits["dram"]["I"] == pytest.approx(18 * 18 * 32 * 8)
    strided = cost(Layer("s", OpType.DEPTHWISE, K=32, C=32, OX=8, OY=8, FX=1, FY=1, groups=32, stride=(2, 2)))
    assert strided.mem_traffic_bits["dram"]["I"] == pytest.approx(8 * 8 * 32 * 8)  # only touched pixels


def test_evaluate_arrays_reports_best_order_per_layer() -> None:
    r = evaluate_arrays([conv(), conv(K=96, C=160, OX=8, OY=8, F=1)], CORE)
    assert r["order"].shape == (2,)
    assert np.all(r["latency"] >= r["compute"])


def test_random_layers_give_sane_costs() -> None:
    rng = np.random.default_rng(7)
    layers = []
    for i in range(150):
        kind = rng.integers(0, 4)
        f = int(rng.choice([1, 3, 5, 7]))
        s = int(rng.choice([1, 2]))
        ox, oy = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        bits = int(rng.choice([2, 4, 8, 16]))
        prec = Precision.uniform(bits)
        if kind == 0:
            layers.append(Layer(f"c{i}", OpType.CONV, K=int(rng.integers(1, 300)), C=int(rng.integers(1, 300)), OX=ox,
                                OY=oy, FX=f, FY=f, stride=(s, s), padding=(f // 2, f // 2), precision=prec,
                                B=int(rng.integers(1, 3))))
        elif kind == 1:
            ch = int(rng.integers(1, 600))
            layers.append(Layer(f"d{i}", OpType.DEPTHWISE, K=ch, C=ch, OX=ox, OY=oy, FX=f, FY=f, groups=ch,
                                stride=(s, s), padding=(f // 2, f // 2), precision=prec))
        elif kind == 2:
            g = int(rng.choice([2, 4]))
            layers.append(Layer(f"g{i}", OpType.CONV, K=g * int(rng.integers(1, 40)), C=g * int(rng.integers(1, 40)),
                                OX=ox, OY=oy, FX=f, FY=f, groups=g, precision=prec))
        else:
            layers.append(Layer(f"f{i}", OpType.FC, K=int(rng.integers(1, 2000)), C=int(rng.integers(1, 5000)),
                                precision=prec))
    for layer, c in zip(layers, BACKEND.evaluate(layers, CORE)):
        values = [c.energy_pj, c.latency_cycles, c.compute_cycles, c.stall_cycles, c.onload_cycles, c.offload_cycles]
        assert all(np.isfinite(v) and v >= 0 for v in values), layer
        assert c.latency_cycles >= c.compute_cycles >= math.ceil(layer.macs / 1024), layer
        assert 0 < c.utilization <= c.spatial_utilization <= 1.0 + 1e-12, layer
        assert c.energy_pj >= c.mac_energy_pj > 0, layer
