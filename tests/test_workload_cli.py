"""``exitspace workload`` command."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from exitspace.cli.workload_cmds import workload
from exitspace.workload.layer import Workload

# A private app with a callback, so that "workload" stays a sub-command however many commands exist.
cli = typer.Typer()
cli.command()(workload)
cli.callback()(lambda: None)
runner = CliRunner()


def test_table_lists_layers_and_totals() -> None:
    result = runner.invoke(cli, ["workload", "small_cnn", "--heads", "gap_fc", "--candidates", "1"])
    assert result.exit_code == 0, result.output
    assert "A:gap_fc" in result.output and "b3.0" in result.output and "total MACs" in result.output


def test_out_and_json(tmp_path: Path) -> None:
    out = tmp_path / "w.json"
    result = runner.invoke(cli, ["workload", "resnet20", "--width", "0.5", "--bits", "4", "--exit-bits", "8", "--out", str(out)])
    assert result.exit_code == 0, result.output
    loaded = Workload.from_json(out)
    assert {layer.precision.weight for layer in loaded.backbone()} == {4}
    assert {layer.precision.weight for layer in loaded if layer.exit} == {8}
    result = runner.invoke(cli, ["workload", "small_cnn", "--candidates", "", "--json"])
    payload = json.loads(result.output)
    assert [layer["exit"] for layer in payload["layers"] if layer["exit"]] == ["A:pool4_fc1"] * 2 + ["A:pool4_fc2"] * 3


def test_bad_input_is_one_line_with_exit_code_2() -> None:
    for args, fragment in [
        (["workload", "vgg"], "backbone 'vgg': unknown"),
        (["workload", "mobilenetv2_cifar", "--candidates", "11"], "out of range"),
        (["workload", "small_cnn", "--candidates", "x"], "--candidates"),
        (["workload", "--onnx", "/no/such.onnx"], "not found"),
        (["workload"], "MODEL: missing"),
    ]:
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert fragment in result.output and len(result.output.strip().splitlines()) == 1, result.output
