"""`exitspace hardware list/show/export/validate`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from exitspace.cli.main import app, register_commands
from exitspace.hardware import load_core, load_system
from exitspace.hardware.presets import CORE_PRESETS, SYSTEM_PRESETS

DATA = Path(__file__).parent / "data" / "hardware"
register_commands()
runner = CliRunner()


def test_list_json_names_every_preset() -> None:
    result = runner.invoke(app, ["hardware", "list", "--json"])
    assert result.exit_code == 0, result.output
    names = {row["name"] for row in json.loads(result.stdout)}
    assert names == set(CORE_PRESETS) | set(SYSTEM_PRESETS)


def test_show_json_reports_sizes_widths_and_energies() -> None:
    result = runner.invoke(app, ["hardware", "show", "edge_tpu_quad", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    core0 = summary["cores"][0]
    assert core0["units"] == 1024 and core0["array"] == {"D1": 8, "D2": 8, "D3": 4, "D4": 4}
    weight_reg = core0["memories"][0]
    assert (weight_reg["instances"], weight_reg["size_bits"], weight_reg["r_cost_pj"]) == (64, 32, 0.01)
    assert core0["memories"][1]["instances"] == 128  # one output register per (D1, D3, D4)
    assert core0["memories"][3]["size"] == "2 MB"
    assert len(summary["links"]) == len(load_system("edge_tpu_quad").links)


def test_show_table_groups_identical_cores() -> None:
    result = runner.invoke(app, ["hardware", "show", "edge_tpu_quad"])
    assert result.exit_code == 0, result.output
    assert "cores 0,1,2,3: edge_tpu_like" in result.stdout
    assert "416.16/378.4" in result.stdout


@pytest.mark.parametrize("fmt", ["zigzag", "stream", "exitspace"])
def test_export_then_load_gives_the_same_hardware(fmt: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["hardware", "export", "edge_tpu_quad", "--format", fmt, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    if fmt == "zigzag":
        assert sorted(p.name for p in tmp_path.glob("*.yaml")) == [
            "edge_tpu_like.yaml", "edge_tpu_offchip.yaml", "edge_tpu_pooling.yaml", "edge_tpu_simd.yaml"
        ]
        assert load_core(tmp_path / "edge_tpu_like.yaml") == load_core("edge_tpu_like")
    else:
        assert load_system(tmp_path / "edge_tpu_quad.yaml") == load_system("edge_tpu_quad")


def test_validate_good_and_bad_files(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["hardware", "validate", str(DATA / "stream_current" / "dual.yaml"), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout) == {"valid": True, "name": "dual_test", "cores": 4, "links": 8, "kinds": ["compute", "offchip", "simd"]}
    bad = tmp_path / "edge.yaml"
    bad.write_text((DATA / "tiny_core.yaml").read_text().replace("size: 524288", "size: -1"))
    result = runner.invoke(app, ["hardware", "validate", str(bad)])
    assert result.exit_code == 2
    assert "edge.yaml: memories.sram_64KB.size: must be > 0 (got -1)" in result.output
    assert "Traceback" not in result.output


def test_unknown_preset_exits_2_with_one_line() -> None:
    result = runner.invoke(app, ["hardware", "show", "edge_tpu_octa"])
    assert result.exit_code == 2
    assert "unknown preset" in result.output and "edge_tpu_quad" in result.output
