"""The zigzag backend: input conversion (always) and tiny layers through zigzag-dse (only with the extra)."""

from __future__ import annotations

import math
import sys

import pytest

from exitspace.cost.base import CostBackend
from exitspace.cost.zigzag_backend import (
    ZigZagBackend,
    accelerator_dict,
    layer_key,
    spatial_unrolling,
    workload_entry,
)
from exitspace.errors import ExitspaceError
from exitspace.hardware.model import Core, MemoryLevel, OperationalArray
from exitspace.workload.layer import Layer, OpType, Precision


def tiny_core(dataflow: bool = True) -> Core:
    """A 4x2 array with a weight register, one shared SRAM and DRAM."""
    dims = ("D1", "D2")
    return Core(
        id=0,
        name="tiny core",
        operational_array=OperationalArray(unit_energy_pj=0.5, sizes={"D1": 4, "D2": 2}),
        memories=(
            MemoryLevel(name="w reg", size_bits=8, r_bw=8, w_bw=8, r_cost=0.1, w_cost=0.1, operands=("W",)),
            MemoryLevel(name="o reg", size_bits=16, r_bw=16, w_bw=16, r_cost=0.2, w_cost=0.2, operands=("O",),
                        served_dimensions=("D2",), r_port=2, w_port=2),
            MemoryLevel(name="sram", size_bits=64 * 1024, r_bw=128, w_bw=128, r_cost=5.0, w_cost=6.0,
                        operands=("W", "I", "O"), served_dimensions=dims, min_r_granularity=32, min_w_granularity=32),
            MemoryLevel(name="dram", size_bits=10**9, r_bw=32, w_bw=32, r_cost=100.0, w_cost=120.0,
                        operands=("W", "I", "O"), served_dimensions=dims, r_port=0, w_port=0, rw_port=1),
        ),
        dataflow={"D1": ("K",), "D2": ("C",)} if dataflow else {},
    )


CONV = Layer("conv", OpType.CONV, K=6, C=3, OY=4, OX=4, FY=3, FX=3, padding=(1, 1), precision=Precision.uniform(8))
DW = Layer("dw", OpType.DEPTHWISE, K=8, C=8, groups=8, OY=4, OX=4, FY=3, FX=3, stride=(2, 2), padding=(1, 1))


# ------------------------------------------------------------------------------------------------ conversion


def test_accelerator_dict_keeps_levels_ports_and_costs() -> None:
    acc, names = accelerator_dict(tiny_core())
    assert list(names.values()) == ["w reg", "o reg", "sram", "dram"] == list(acc["memories"])
    assert "dataflows" not in acc
    o_reg = acc["memories"]["o reg"]
    assert [p["allocation"] for p in o_reg["ports"]] == [["O, tl"], ["O, th"], ["O, fh"], ["O, fl"]]
    sram = acc["memories"]["sram"]
    assert sram["operands"] == ["I2", "I1", "O"]
    assert {p["bandwidth_min"] for p in sram["ports"]} == {32}
    dram = acc["memories"]["dram"]
    assert [p["type"] for p in dram["ports"]] == ["read_write"]
    assert acc["operational_array"]["sizes"] == [4, 2]


def test_workload_entry_uses_grouped_loops_and_precisions() -> None:
    entry = workload_entry(DW.with_precision(Precision(weight=4, input=4, output=4, psum=8)), 3, "x")
    sizes = dict(zip(entry["loop_dims"], entry["loop_sizes"]))
    assert sizes == {"B": 1, "K": 1, "G": 8, "OX": 4, "OY": 4, "C": 1, "FX": 3, "FY": 3}
    assert entry["dimension_relations"] == ["ix=2*ox+1*fx", "iy=2*oy+1*fy"]
    assert entry["operand_precision"] == {"W": 4, "I": 4, "O": 8, "O_final": 4}
    assert entry["padding"] == [[1, 1], [1, 1]]


def test_depthwise_unrolls_groups_where_the_dataflow_says_k() -> None:
    assert spatial_unrolling(DW, tiny_core()) == {"D1": ["G, 4"], "D2": ["C, 2"]}
    assert spatial_unrolling(DW, tiny_core(), depthwise_on_g=False) == {"D1": ["K, 4"], "D2": ["C, 2"]}
    assert spatial_unrolling(CONV, tiny_core()) == {"D1": ["K, 4"], "D2": ["C, 2"]}
    assert spatial_unrolling(CONV, tiny_core(dataflow=False)) is None


def test_non_mac_layers_are_refused_in_one_line() -> None:
    pool = Layer("pool", OpType.POOL, K=8, C=8, groups=8, OY=2, OX=2, FY=2, FX=2)
    with pytest.raises(ExitspaceError, match="MAC layers only") as info:
        ZigZagBackend().evaluate([pool], tiny_core())
    assert "\n" not in str(info.value)


def test_cores_zigzag_cannot_model_are_refused() -> None:
    from exitspace.hardware.model import MacScaling

    array = tiny_core().operational_array.model_copy(update={"precision_scaling": {8: MacScaling(throughput=1, energy_pj=1)}})
    with pytest.raises(ExitspaceError, match="precision_scaling"):
        ZigZagBackend().evaluate([CONV], tiny_core().model_copy(update={"operational_array": array}))
    fc_less = tiny_core().model_copy(update={"supported_ops": (OpType.CONV,)})
    with pytest.raises(ExitspaceError, match="does not run 'dwconv'"):
        ZigZagBackend().evaluate([CONV, DW], fc_less)


def test_layer_key_ignores_names_but_not_precision() -> None:
    renamed = Layer.from_dict({**CONV.to_dict(), "name": "other", "block": "b3"})
    assert layer_key(renamed) == layer_key(CONV)
    assert layer_key(CONV.with_precision(Precision.uniform(4))) != layer_key(CONV)


def test_missing_extra_is_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zigzag", None)  # makes `import zigzag` raise ImportError
    with pytest.raises(ExitspaceError, match=r"pip install -e \.\[zigzag\]") as info:
        ZigZagBackend().evaluate([CONV], tiny_core())
    assert "\n" not in str(info.value)


def test_backend_satisfies_the_protocol() -> None:
    backend = ZigZagBackend()
    assert isinstance(backend, CostBackend)
    assert backend.name == "zigzag" and "zigzag-dse" in backend.version


# ------------------------------------------------------------------------------------------------ through zigzag


@pytest.fixture(scope="module")
def costs() -> list:
    pytest.importorskip("zigzag")
    twin = Layer.from_dict({**CONV.to_dict(), "name": "conv twin"})
    return ZigZagBackend().evaluate_detailed([CONV, DW, twin], tiny_core())


@pytest.mark.slow
@pytest.mark.zigzag
def test_layer_cost_parts_add_up(costs: list) -> None:
    for detail in costs:
        cost = detail.cost
        parts = cost.compute_cycles + cost.stall_cycles + cost.onload_cycles + cost.offload_cycles
        assert parts == pytest.approx(cost.latency_cycles)
        mem = sum(v for level in cost.mem_energy_pj.values() for v in level.values())
        assert cost.mac_energy_pj + mem == pytest.approx(cost.energy_pj)
        assert 0 < cost.utilization <= cost.spatial_utilization <= 1
        assert cost.backend == "zigzag" and cost.core == "tiny core"
        assert set(cost.mem_energy_pj) == {"w reg", "o reg", "sram", "dram"}
        assert set(cost.mem_energy_pj["dram"]) == {"W", "I", "O"}


@pytest.mark.slow
@pytest.mark.zigzag
def test_compute_cycles_follow_the_unrolling(costs: list) -> None:
    conv, dw, _ = costs
    # K=6 on D1 (4 wide) -> 2 temporal, C=3 on D2 (2 wide) -> 2 temporal, then OY*OX*FY*FX
    assert conv.cost.compute_cycles == 2 * 2 * 4 * 4 * 3 * 3
    assert conv.cost.mac_energy_pj == pytest.approx(0.5 * CONV.macs)
    assert conv.spatial_mapping == {"D1": {"K": 4.0}, "D2": {"C": 2.0}}
    # depthwise: G=8 on D1 -> 2 temporal, nothing on D2
    assert dw.cost.compute_cycles == 2 * 4 * 4 * 3 * 3
    assert dw.cost.spatial_utilization == pytest.approx(math.ceil(DW.macs / 8) / dw.cost.compute_cycles)


@pytest.mark.slow
@pytest.mark.zigzag
def test_identical_layers_are_costed_once(costs: list) -> None:
    conv, _, twin = costs
    assert twin.cost.layer == "conv twin"
    assert {**twin.cost.to_dict(), "layer": "conv"} == conv.cost.to_dict()
    assert twin.seconds == conv.seconds


@pytest.mark.slow
@pytest.mark.zigzag
def test_same_figures_as_zigzags_own_api(costs: list, tmp_path) -> None:
    """Our stage pipeline gives what zigzag.api.get_hardware_performance_zigzag gives on the same inputs."""
    import logging

    import yaml
    from zigzag.api import get_hardware_performance_zigzag

    from exitspace.cost.zigzag_backend import mapping_entries

    core = tiny_core()
    accelerator, _ = accelerator_dict(core)
    (tmp_path / "acc.yaml").write_text(yaml.safe_dump(accelerator, sort_keys=False))
    (tmp_path / "map.yaml").write_text(yaml.safe_dump(mapping_entries([("layer0", CONV)], core), sort_keys=False))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:  # the API calls logging.basicConfig(INFO); undo that afterwards
        energy, latency, _ = get_hardware_performance_zigzag(
            [workload_entry(CONV, 0, "layer0")], str(tmp_path / "acc.yaml"), str(tmp_path / "map.yaml"),
            opt="latency", dump_folder=str(tmp_path / "out"), loma_show_progress_bar=False,
        )
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert costs[0].cost.energy_pj == pytest.approx(energy, rel=1e-12)
    assert costs[0].cost.latency_cycles == latency
