"""`exitspace sweep` and `exitspace profile`: files written, staircase positions, JSON, one-line errors."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from exitspace.cli.app import app
from exitspace.cli.main import register_commands
from exitspace.cost.analytical import AnalyticalBackend
from exitspace.cost.sweep import parse_range, steps, sweep, template_layer
from exitspace.errors import ConfigError
from tests.test_cost_analytical import paper_core

register_commands()
runner = CliRunner()


def test_parse_range() -> None:
    assert parse_range("24:28") == [24, 25, 26, 27, 28]
    assert parse_range("8:32:8") == [8, 16, 24, 32]
    assert parse_range("3,5,9") == [3, 5, 9]
    for bad in ("a:b", "10:5", "0:4", "1:2:3:4", ""):
        with pytest.raises(ConfigError, match="--range"):
            parse_range(bad)


@pytest.mark.parametrize(("template", "dim", "values", "expected"), [
    ("conv", "K", range(17, 41), [25, 33]),
    ("conv", "C", range(17, 41), [25, 33]),
    ("conv", "OX", range(5, 17), [9, 13]),
    ("dw", "K", range(17, 41), [25, 33]),  # channels of a depthwise layer: groups on the 8-wide dimension
    ("pw", "OY", range(5, 17), [9, 13]),
])
def test_staircase_positions(template: str, dim: str, values: range, expected: list[int]) -> None:
    rows = sweep(AnalyticalBackend(), paper_core(), template_layer(template), dim, list(values))
    assert steps(rows, dim) == expected


def test_kernel_sweep_grows_compute_without_alignment_steps() -> None:
    rows = sweep(AnalyticalBackend(), paper_core(), template_layer("dw"), "kernel", [1, 3, 5, 7])
    assert [r["compute_cycles"] for r in rows] == sorted(r["compute_cycles"] for r in rows)
    assert steps(rows, "kernel") == []  # FX/FY are not unrolled on this core: more work, same efficiency


def test_bits_sweep_keeps_compute_and_lowers_energy() -> None:
    rows = sweep(AnalyticalBackend(), paper_core(), template_layer("conv"), "bits", [4, 8, 16])
    assert len({r["compute_cycles"] for r in rows}) == 1
    assert rows[0]["energy_pj"] < rows[1]["energy_pj"] < rows[2]["energy_pj"]
    assert steps(rows, "bits") == []


def test_sweep_cli_writes_csv_json_png(tmp_path) -> None:
    result = runner.invoke(app, ["sweep", "--dim", "K", "--range", "24:40", "--core", "edge_tpu_like",
                                 "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["steps"] == [25, 33]
    assert [r["K"] for r in payload["rows"]] == list(range(24, 41))
    files = {k: tmp_path / v.split("/")[-1] for k, v in payload["files"].items()}
    assert files["png"].stat().st_size > 1000
    with files["csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 17 and float(rows[1]["compute_cycles"]) > float(rows[0]["compute_cycles"])
    saved = json.loads(files["json"].read_text())
    assert saved["steps"] == [25, 33] and saved["core"] == "edge_tpu_like"


def test_sweep_cli_table_and_sizes(tmp_path) -> None:
    result = runner.invoke(app, ["sweep", "--dim", "OX", "--range", "6:10", "--layer", "pw", "--sizes", "K=16,C=16",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "steps at OX = [9]" in result.output


@pytest.mark.parametrize("args", [
    ["sweep", "--dim", "Q"],
    ["sweep", "--range", "5:1"],
    ["sweep", "--layer", "lstm"],
    ["sweep", "--core", "no_such_core"],
    ["sweep", "--sizes", "K:3"],
    ["sweep", "--backend", "magic"],
    ["sweep", "--layer", "fc", "--dim", "OX", "--range", "2:4"],
])
def test_sweep_cli_bad_input_is_one_line(args: list[str], tmp_path) -> None:
    result = runner.invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.output.strip().count("\n") <= 1, result.output


def test_profile_cli_json_on_a_system(tmp_path) -> None:
    workload_file = tmp_path / "w.json"
    from exitspace.workload.layer import Layer, OpType, Workload

    Workload("tiny", [
        Layer("conv", OpType.CONV, K=16, C=3, OX=16, OY=16, FX=3, FY=3, padding=(1, 1)),
        Layer("pool", OpType.POOL, K=16, C=16, OX=4, OY=4, FX=4, FY=4, groups=16, stride=(4, 4), exit="A:x"),
        Layer("add", OpType.ADD, K=16, C=16, OX=16, OY=16, groups=16),
        Layer("fc", OpType.FC, K=10, C=256, exit="A:x"),
    ]).to_json(workload_file)
    cache = tmp_path / "cost.sqlite"
    result = runner.invoke(app, ["profile", str(workload_file), "--hardware", "edge_tpu_quad", "--json",
                                 "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    cores = {r["layer"]: r["core"] for r in payload["rows"]}
    assert cores == {"conv": "edge_tpu_like", "pool": "edge_tpu_pooling", "add": "edge_tpu_simd", "fc": "edge_tpu_like"}
    assert all(r["energy_pj"] > 0 and r["latency_cycles"] > 0 for r in payload["rows"])
    assert payload["totals"]["latency_cycles"] == pytest.approx(sum(r["latency_cycles"] for r in payload["rows"]))
    assert cache.exists()
    table = runner.invoke(app, ["profile", str(workload_file), "--hardware", "edge_tpu_like"])
    assert table.exit_code == 0 and "total" in table.output


def test_profile_cli_bad_model_is_one_line() -> None:
    result = runner.invoke(app, ["profile", "no_such_net", "--hardware", "edge_tpu_like"])
    assert result.exit_code == 2 and "Traceback" not in result.output
