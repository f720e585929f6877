"""Malformed hardware files: each gives one ConfigError line naming the file and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
import yaml

from exitspace.errors import ConfigError
from exitspace.hardware import load_core, load_system

DATA = Path(__file__).parent / "data" / "hardware"


def _core() -> dict:
    return yaml.safe_load((DATA / "tiny_core.yaml").read_text())


def _edit(change: Callable[[dict], None]) -> dict:
    data = _core()
    change(data)
    return data


def _system(tmp_path: Path, text: str) -> Path:
    (tmp_path / "cores").mkdir(exist_ok=True)
    (tmp_path / "cores" / "tiny.yaml").write_text((DATA / "tiny_core.yaml").read_text())
    path = tmp_path / "sys.yaml"
    path.write_text(text)
    return path


def _drop_weights(data: dict) -> None:
    """Remove I2 (weights) from every memory, its operands and its port allocations."""
    data["memories"].pop("reg_w")
    for mem in data["memories"].values():
        mem["operands"] = [o for o in mem["operands"] if o != "I2"]
        for port in mem["ports"]:
            port["allocation"] = [a for a in port["allocation"] if not a.startswith("I2")]


CORE_CASES: list[tuple[str, Callable[[dict], None], str]] = [
    ("missing size", lambda d: d["memories"]["sram_64KB"].pop("size"), "memories.sram_64KB.size: required field is missing"),
    ("negative size", lambda d: d["memories"]["sram_64KB"].update(size=-1), "memories.sram_64KB.size: must be > 0 (got -1)"),
    ("unknown operand", lambda d: d["memories"]["reg_w"].update(operands=["I3"]), "memories.reg_w.operands[0]: unknown operand 'I3'"),
    ("unknown served dimension", lambda d: d["memories"]["reg_o"].update(served_dimensions=["D7"]), "memories.reg_o.served_dimensions[0]: unknown array dimension 'D7'"),
    ("negative read energy", lambda d: d["memories"]["dram"].update(r_cost=-5), "memories.dram.r_cost: must be >= 0 (got -5)"),
    ("sizes do not match dimensions", lambda d: d["operational_array"].update(sizes=[4]), "operational_array.sizes: needs one size per dimension"),
    ("missing unit energy", lambda d: d["operational_array"].pop("unit_energy"), "operational_array.unit_energy: required field is missing"),
    ("bad port type", lambda d: d["memories"]["reg_w"]["ports"][0].update(type="readonly"), "memories.reg_w.ports[0].type: must be read, write or read_write"),
    ("granularity above width", lambda d: d["memories"]["sram_64KB"]["ports"][0].update(bandwidth_min=512), "memories.sram_64KB.ports[0].bandwidth_min: must be <= bandwidth_max 256"),
    ("unknown loop dimension", lambda d: d["dataflows"].update(D1=["Q, 4"]), "dataflows.D1[0]: unknown loop dimension 'Q'"),
    ("operand held nowhere", lambda d: _drop_weights(d), "memories: no level holds operand W"),
    ("size not an integer", lambda d: d["memories"]["reg_o"].update(size="big"), "memories.reg_o.size: must be an integer (got 'big')"),
]


@pytest.mark.parametrize("label, change, expected", CORE_CASES, ids=[c[0] for c in CORE_CASES])
def test_malformed_core_names_the_field(label: str, change: Callable[[dict], None], expected: str, tmp_path: Path) -> None:
    data = _edit(change)
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_core(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("edge.yaml: ")
    assert expected in message


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\nmemories:\n  sram: {size: 8\n  other: 1\n")
    with pytest.raises(ConfigError) as info:
        load_core(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith("broken.yaml: line ") and "malformed YAML" in message


def test_missing_core_file_in_a_system(tmp_path: Path) -> None:
    path = _system(tmp_path, "name: s\ncores:\n  0: ./cores/tiny.yaml\n  1: ./cores/nope.yaml\noffchip_core_id: 0\ncore_connectivity: []\n")
    with pytest.raises(ConfigError, match=r"^sys\.yaml: cores\.1: core file './cores/nope\.yaml' not found"):
        load_system(path)


def test_duplicate_core_id(tmp_path: Path) -> None:
    path = _system(tmp_path, "name: s\ncores:\n  0: ./cores/tiny.yaml\n  0: ./cores/tiny.yaml\noffchip_core_id: 0\ncore_connectivity: []\n")
    with pytest.raises(ConfigError, match=r"^sys\.yaml: line 4: .*duplicate key 0"):
        load_system(path)


def test_duplicate_core_id_in_our_own_format(tmp_path: Path) -> None:
    system = load_system("edge_tpu_quad").model_dump(mode="json")
    system["cores"][1]["id"] = 0
    path = tmp_path / "quad.json"
    path.write_text(json.dumps(system))
    with pytest.raises(ConfigError, match=r"^quad\.json: cores: ids must be unique"):
        load_system(path)


def test_link_to_unknown_core(tmp_path: Path) -> None:
    path = _system(
        tmp_path,
        "name: s\ncores:\n  0: ./cores/tiny.yaml\n  1: ./cores/tiny.yaml\noffchip_core_id: 1\n"
        "core_connectivity:\n  - {type: link, cores: [0, 9], bandwidth: 32}\n",
    )
    with pytest.raises(ConfigError, match=r"^sys\.yaml: core_connectivity\[0\]\.cores\[1\]: core id 9 does not exist"):
        load_system(path)


def test_link_with_three_cores_and_bad_bandwidth(tmp_path: Path) -> None:
    head = "name: s\ncores:\n  0: ./cores/tiny.yaml\n  1: ./cores/tiny.yaml\n  2: ./cores/tiny.yaml\noffchip_core_id: 2\n"
    path = _system(tmp_path, head + "core_connectivity:\n  - {type: link, cores: [0, 1, 2], bandwidth: 32}\n")
    with pytest.raises(ConfigError, match=r"core_connectivity\[0\]\.cores: a link joins exactly two cores"):
        load_system(path)
    path.write_text(head + "core_connectivity:\n  - {type: bus, cores: [0, 1, 2], bandwidth: -4}\n")
    with pytest.raises(ConfigError, match=r"core_connectivity\[0\]\.bandwidth: must be >= 0"):
        load_system(path)


def test_error_inside_a_core_file_names_that_file(tmp_path: Path) -> None:
    path = _system(tmp_path, "name: s\ncores:\n  0: ./cores/tiny.yaml\n  1: ./cores/bad.yaml\noffchip_core_id: 0\ncore_connectivity: []\n")
    (tmp_path / "cores" / "bad.yaml").write_text(yaml.safe_dump(_edit(lambda d: d["memories"]["dram"].update(size=0))))
    with pytest.raises(ConfigError, match=r"^bad\.yaml: memories\.dram\.size: must be > 0 \(got 0\)"):
        load_system(path)


def test_offchip_core_id_must_exist(tmp_path: Path) -> None:
    path = _system(tmp_path, "name: s\ncores:\n  0: ./cores/tiny.yaml\noffchip_core_id: 5\ncore_connectivity: []\n")
    with pytest.raises(ConfigError, match=r"^sys\.yaml: offchip_core_id: 5 is not a core id"):
        load_system(path)


def test_our_format_names_the_model_field(tmp_path: Path) -> None:
    core = load_core("edge_tpu_like").model_dump(mode="json")
    core["memories"][2]["size_bits"] = -8
    path = tmp_path / "core.yaml"
    path.write_text(yaml.safe_dump(core))
    with pytest.raises(ConfigError) as info:
        load_core(path)
    assert str(info.value) == "core.yaml: memories.2.size_bits: must be > 0 (got -8)"


def test_missing_file_and_not_hardware(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_system(tmp_path / "absent.yaml")
    path = tmp_path / "other.yaml"
    path.write_text("epochs: 3\n")
    with pytest.raises(ConfigError, match="^other.yaml: not a hardware description"):
        load_system(path)


def test_imc_cores_are_refused_clearly() -> None:
    zigzag = pytest.importorskip("zigzag")
    path = Path(zigzag.__file__).parent / "inputs" / "hardware" / "dimc.yaml"
    with pytest.raises(ConfigError, match=r"^dimc\.yaml: operational_array\.is_imc: in-memory-computing arrays are not supported"):
        load_core(path)
