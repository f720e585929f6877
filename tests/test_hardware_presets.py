"""Presets carry the reference paper's numbers (paper-setup.md section 4) and ZigZag's."""

from __future__ import annotations

import pytest

from exitspace.errors import ConfigError
from exitspace.hardware import CoreKind, load_core, load_system
from exitspace.hardware.presets import CORE_PRESETS, SYSTEM_PRESETS


def _mem(core, name):
    return next(m for m in core.memories if m.name == name)


def test_edge_tpu_like_has_the_paper_numbers() -> None:
    core = load_core("edge_tpu_like")
    assert core.operational_array.sizes == {"D1": 8, "D2": 8, "D3": 4, "D4": 4}
    assert core.operational_array.units == 1024
    assert core.operational_array.unit_energy_pj == pytest.approx(0.04)
    assert core.dataflow == {"D1": ("K",), "D2": ("C",), "D3": ("OX",), "D4": ("OY",)}
    w_reg, o_reg, w_sram, a_sram, dram = core.memories
    assert (w_reg.size_bits, w_reg.r_bw, w_reg.w_bw, w_reg.r_cost, w_reg.w_cost) == (32, 32, 32, 0.01, 0.01)
    assert w_reg.operands == ("W",) and w_reg.served_dimensions == ("D3", "D4")
    assert (o_reg.size_bits, o_reg.r_bw, o_reg.r_cost, o_reg.w_cost) == (32, 32, 0.02, 0.02)
    assert o_reg.operands == ("O",) and o_reg.served_dimensions == ("D2",)
    assert (w_sram.size_bits, w_sram.r_bw, w_sram.w_bw, w_sram.r_cost, w_sram.w_cost) == (32 * 1024 * 8, 512, 512, 22.9, 52.01)
    assert w_sram.operands == ("W",) and w_sram.min_r_granularity == 64 and w_sram.min_w_granularity == 64
    assert (a_sram.size_bits, a_sram.r_bw, a_sram.r_cost, a_sram.w_cost) == (2 * 1024 * 1024 * 8, 2048, 416.16, 378.4)
    assert set(a_sram.operands) == {"I", "O"} and a_sram.min_r_granularity == 64
    assert (dram.r_bw, dram.w_bw, dram.r_cost, dram.w_cost) == (64, 64, 700.0, 750.0)
    assert set(dram.operands) == {"I", "W", "O"} and dram.rw_port == 1
    for level in (w_sram, a_sram, dram):
        assert set(level.served_dimensions) == {"D1", "D2", "D3", "D4"}


def test_edge_tpu_quad_system() -> None:
    system = load_system("edge_tpu_quad")
    compute = system.cores_of(CoreKind.COMPUTE)
    assert [c.id for c in compute] == [0, 1, 2, 3]
    assert all(c.model_dump(exclude={"id"}) == load_core("edge_tpu_like").model_dump(exclude={"id"}) for c in compute)
    (pool,) = system.cores_of(CoreKind.POOLING)
    assert pool.operational_array.sizes == {"D1": 3, "D2": 3, "D3": 8}
    assert pool.operational_array.unit_energy_pj == pytest.approx(0.1)
    (pool_sram,) = pool.memories
    assert (pool_sram.size_bits, pool_sram.r_bw, pool_sram.w_bw, pool_sram.r_cost, pool_sram.w_cost) == (128 * 1024 * 8, 576, 512, 60, 75)
    (simd,) = system.cores_of(CoreKind.SIMD)
    assert simd.operational_array.units == 64 and simd.operational_array.unit_energy_pj == pytest.approx(0.1)
    assert (simd.memories[0].size_bits, simd.memories[0].r_bw, simd.memories[0].r_cost, simd.memories[0].w_cost) == (1048576, 512, 60, 75)
    offchip = system.offchip
    assert offchip is not None and offchip.kind == CoreKind.OFFCHIP
    assert (offchip.memories[0].r_bw, offchip.memories[0].r_cost, offchip.memories[0].w_cost) == (64, 1000, 1000)
    mesh = {frozenset((l.a, l.b)) for l in system.links if l.bus is None and l.a < 4 and l.b < 4}
    assert mesh == {frozenset(p) for p in ((0, 1), (1, 2), (2, 3), (3, 0))}
    assert all(l.bandwidth == 32 for l in system.links if l.bus is None)
    assert all(l.energy_per_bit_pj == 0 for l in system.links)
    for special in (pool.id, simd.id):
        assert {c.id for c in compute} <= {l.a for l in system.links if l.b == special and l.bus is None}
    bus = [l for l in system.links if l.bus is not None]
    assert bus and all(l.bandwidth == 64 for l in bus)
    assert {c.id for c in system.cores} - {offchip.id} <= {l.a for l in bus if l.b == offchip.id}


@pytest.mark.parametrize("name", sorted(CORE_PRESETS))
def test_every_core_preset_is_also_a_single_core_system(name: str) -> None:
    system = load_system(name)
    assert system.name == name and len(system.cores) == 1
    assert system.cores[0] == load_core(name)


def test_zigzag_presets_carry_zigzag_numbers() -> None:
    tpu = load_core("tpu_like")
    assert tpu.operational_array.sizes == {"D1": 32, "D2": 32}
    assert [m.name for m in tpu.memories] == ["rf_128B", "rf_2B", "sram_2MB", "dram"]
    assert tpu.memories[0].r_cost == pytest.approx(0.095)
    eyeriss = load_core("eyeriss_like")
    assert eyeriss.operational_array.sizes == {"D1": 14, "D2": 12}
    assert eyeriss.operational_array.unit_energy_pj == pytest.approx(0.5)
    assert len(eyeriss.memories) == 7
    zz_edge = load_core("edge_tpu_like_zigzag")
    assert zz_edge.memories[0].size_bits == 8 and zz_edge.memories[1].size_bits == 16


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        load_system("edge_tpu_octa")
    message = str(info.value)
    assert "\n" not in message
    for name in list(CORE_PRESETS) + list(SYSTEM_PRESETS):
        assert name in message


def test_load_core_from_a_system_preset_picks_a_compute_core() -> None:
    assert load_core("edge_tpu_quad").name == "edge_tpu_like"
    assert load_core("edge_tpu_quad", core_id=4).kind == CoreKind.POOLING
    with pytest.raises(ConfigError, match="core id 9"):
        load_core("edge_tpu_quad", core_id=9)
