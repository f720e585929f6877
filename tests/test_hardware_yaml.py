"""ZigZag core / Stream system YAML: reading both dialects, writing, and lossless round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from exitspace.hardware import (
    CoreKind,
    dump_native,
    dump_stream_system,
    dump_zigzag_core,
    load_core,
    load_stream_system,
    load_system,
    load_zigzag_core,
)
from exitspace.hardware.presets import CORE_PRESETS
from exitspace.hardware.zigzag_yaml import zigzag_core_dict

DATA = Path(__file__).parent / "data" / "hardware"


def _ports(data: dict) -> dict:
    """Memory name -> ports with allocations as plain strings (how ZigZag files write them)."""
    return {name: [{**p, "allocation": list(p["allocation"])} for p in mem["ports"]] for name, mem in data["memories"].items()}


def test_zigzag_v3_core_reads_every_field() -> None:
    core = load_zigzag_core(DATA / "tiny_core.yaml", core_id=3)
    assert (core.id, core.name, core.kind) == (3, "tiny_core", CoreKind.COMPUTE)
    assert core.operational_array.sizes == {"D1": 4, "D2": 6}
    assert core.operational_array.unit_energy_pj == pytest.approx(0.05)
    assert core.dataflow == {"D1": ("K",), "D2": ("C",)}
    reg_w, reg_o, sram, dram = core.memories
    assert (reg_w.operands, reg_w.served_dimensions, reg_w.r_cost, reg_w.w_cost) == (("W",), ("D2",), 0.01, 0.02)
    assert (reg_o.size_bits, reg_o.r_bw, reg_o.r_port, reg_o.w_port) == (24, 24, 1, 1)
    assert (sram.r_bw, sram.w_bw, sram.min_r_granularity, sram.min_w_granularity) == (256, 128, 32, 16)
    assert (sram.operands, sram.area) == (("I", "W", "O"), 2.5)
    assert (dram.rw_port, dram.r_port, dram.w_port, dram.r_bw, dram.w_bw) == (1, 0, 0, 64, 64)
    assert all(level.ports is None for level in core.memories)  # all implied by widths and counts


def test_zigzag_core_round_trip_is_lossless(tmp_path: Path) -> None:
    original = yaml.safe_load((DATA / "tiny_core.yaml").read_text())
    core = load_zigzag_core(DATA / "tiny_core.yaml")
    dumped = zigzag_core_dict(core)
    assert _ports(dumped) == _ports(original)
    for name, mem in original["memories"].items():
        for key in ("size", "r_cost", "w_cost", "operands", "served_dimensions"):
            assert dumped["memories"][name][key] == mem[key]
    dump_zigzag_core(core, tmp_path / "again.yaml")
    assert load_zigzag_core(tmp_path / "again.yaml") == core


def test_unequal_ports_are_kept_verbatim() -> None:
    data = yaml.safe_load((DATA / "tiny_core.yaml").read_text())
    data["memories"]["sram_64KB"]["ports"].append(
        {"name": "rw_port_1", "type": "read_write", "bandwidth_min": 8, "bandwidth_max": 2048, "allocation": []}
    )
    core = load_zigzag_core(data)
    sram = core.memories[2]
    assert sram.ports is not None and len(sram.ports) == 3
    assert (sram.r_bw, sram.w_bw, sram.rw_port) == (2048, 2048, 1)
    assert _ports(zigzag_core_dict(core))["sram_64KB"] == data["memories"]["sram_64KB"]["ports"]
    assert load_zigzag_core(zigzag_core_dict(core)) == core


def test_legacy_zigzag_dialect_reads_and_writes_as_v3() -> None:
    core = load_zigzag_core(DATA / "legacy_core.yaml")
    rf, sram = core.memories
    assert core.operational_array.unit_energy_pj == pytest.approx(0.04)
    assert (rf.r_bw, rf.w_bw, rf.operands, rf.served_dimensions) == (8, 8, ("W",), ("D2",))
    assert (sram.r_bw, sram.w_bw, sram.min_r_granularity, sram.min_w_granularity) == (1024, 512, 64, 64)
    assert core.dataflow == {"D1": ("K",), "D2": ("C",)}
    dumped = zigzag_core_dict(core)
    assert dumped["memories"]["sram_1MB"]["ports"][0] == {
        "name": "r_port_1", "type": "read", "bandwidth_min": 64, "bandwidth_max": 1024,
        "allocation": ["I1, tl", "I2, tl", "O, tl", "O, th"],
    }
    assert load_zigzag_core(dumped) == core


def test_mapping_file_supplies_the_dataflow() -> None:
    data = yaml.safe_load((DATA / "tiny_core.yaml").read_text())
    del data["dataflows"]
    mapping = [{"name": "default", "spatial_mapping": {"D1": ["OX, 4"], "D2": ["K, 6"]}}]
    assert load_zigzag_core(data).dataflow == {}
    assert load_zigzag_core(data, mapping=mapping).dataflow == {"D1": ("OX",), "D2": ("K",)}


def test_stream_current_dialect() -> None:
    system = load_stream_system(DATA / "stream_current" / "dual.yaml")
    assert system.name == "dual_test" and system.offchip_core_id == 3
    assert [c.kind for c in system.cores] == [CoreKind.COMPUTE, CoreKind.COMPUTE, CoreKind.SIMD, CoreKind.OFFCHIP]
    assert system.cores[0].model_dump(exclude={"id"}) == system.cores[1].model_dump(exclude={"id"})
    assert system.cores[3].operational_array.sizes == {"D1": 1, "D2": 1}
    direct = [(l.a, l.b, l.bandwidth, l.energy_per_bit_pj) for l in system.links if l.bus is None]
    assert direct == [(0, 1, 32, 0.5), (0, 2, 16, 0.25)]
    bus = [l for l in system.links if l.bus is not None]
    assert len(bus) == 6 and {l.bandwidth for l in bus} == {128} and {l.energy_per_bit_pj for l in bus} == {0.5}


def test_stream_2024_dialect_links_offchip_over_one_shared_medium() -> None:
    system = load_system(DATA / "stream_2024" / "dual_2024.yaml")
    assert system.offchip_core_id == 2 and system.cores[2].kind == CoreKind.OFFCHIP
    assert [(l.a, l.b, l.bandwidth, l.bus) for l in system.links] == [(0, 1, 32, None), (0, 2, 64, "offchip"), (1, 2, 64, "offchip")]


@pytest.mark.parametrize("spec", [DATA / "stream_current" / "dual.yaml", "edge_tpu_quad", "tpu_like"])
def test_stream_system_round_trip(spec: Path | str, tmp_path: Path) -> None:
    system = load_system(spec)
    target = dump_stream_system(system, tmp_path)
    assert load_stream_system(target) == system
    assert load_system(target) == system


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_native_round_trip(suffix: str, tmp_path: Path) -> None:
    system = load_system("edge_tpu_quad")
    dump_native(system, tmp_path / f"quad{suffix}")
    assert load_system(tmp_path / f"quad{suffix}") == system
    core = load_core("eyeriss_like")
    dump_native(core, tmp_path / f"core{suffix}")
    assert load_core(tmp_path / f"core{suffix}") == core
    assert load_system(tmp_path / f"core{suffix}").cores == (core,)


def test_load_core_accepts_every_file_kind() -> None:
    assert load_core(DATA / "tiny_core.yaml").name == "tiny_core"
    assert load_core(DATA / "stream_current" / "dual.yaml", core_id=2).kind == CoreKind.SIMD
    assert load_core(DATA / "stream_current" / "dual.yaml").id == 0  # identical compute cores


# ------------------------------------------------------------------- with the optional zigzag extra

BUNDLED = ("tpu_like", "eyeriss_like", "edge_tpu_like", "ascend_like", "meta_prototype", "tesla_npu_like", "gemm_l1", "gemm_l1_l3")


def _zigzag_inputs() -> Path:
    zigzag = pytest.importorskip("zigzag")
    return Path(zigzag.__file__).parent / "inputs"


@pytest.mark.zigzag
@pytest.mark.parametrize("name", BUNDLED)
def test_zigzag_bundled_cores_load_unchanged_and_write_back_the_same(name: str) -> None:
    path = _zigzag_inputs() / "hardware" / f"{name}.yaml"
    original = yaml.safe_load(path.read_text())
    core = load_core(path)
    dumped = zigzag_core_dict(core)
    assert _ports(dumped) == _ports(original)
    assert dumped["operational_array"]["sizes"] == original["operational_array"]["sizes"]
    for mem_name, mem in original["memories"].items():
        assert dumped["memories"][mem_name]["size"] == mem["size"]
        assert dumped["memories"][mem_name]["r_cost"] == pytest.approx(mem["r_cost"])
        assert dumped["memories"][mem_name]["served_dimensions"] == mem["served_dimensions"]
    assert load_zigzag_core(dumped) == core


@pytest.mark.zigzag
@pytest.mark.parametrize("name", sorted(CORE_PRESETS))
def test_written_cores_pass_zigzags_own_validator(name: str) -> None:
    _zigzag_inputs()
    from zigzag.parser.accelerator_factory import AcceleratorFactory
    from zigzag.parser.accelerator_validator import AcceleratorValidator

    validator = AcceleratorValidator(zigzag_core_dict(load_core(name)))
    assert validator.validate()
    accelerator = AcceleratorFactory(validator.normalized_data).create()
    assert accelerator.operational_array.total_unit_count == load_core(name).operational_array.units or name == "edge_tpu_offchip"


@pytest.mark.zigzag
@pytest.mark.parametrize("name", ["tpu_like", "eyeriss_like"])
def test_zigzag_presets_equal_zigzags_files(name: str) -> None:
    inputs = _zigzag_inputs()
    mapping = inputs / "mapping" / ("tpu_like.yaml" if name == "tpu_like" else "default.yaml")
    assert load_zigzag_core(inputs / "hardware" / f"{name}.yaml", mapping=mapping) == load_core(name)


def test_stream_graph_dialect_builds_the_mesh_as_stream_did() -> None:
    system = load_system(DATA / "stream_graph" / "quad_graph.yaml")
    assert [c.kind for c in system.cores] == [CoreKind.COMPUTE] * 4 + [CoreKind.SIMD, CoreKind.OFFCHIP]
    mesh = {frozenset((l.a, l.b)) for l in system.links if l.bus is None and l.b < 4}
    assert mesh == {frozenset(p) for p in ((0, 2), (1, 3), (0, 1), (2, 3))}  # column-major 2 x 2 grid
    simd_links = [l for l in system.links if l.b == 4]
    assert [l.a for l in simd_links] == [0, 1, 2, 3] and all(l.energy_per_bit_pj == 0 for l in simd_links)
    offchip = [l for l in system.links if l.b == 5]
    assert [l.a for l in offchip] == [0, 1, 2, 3, 4] and {(l.bandwidth, l.bus) for l in offchip} == {(64, "offchip")}
