"""`exitspace profile` and `exitspace workload --onnx` on files that are no workload: one line, exit code 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from exitspace.cli.main import app, register_commands


def _files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    files = {
        "empty.onnx": b"",
        "random.onnx": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "random.json": rng.integers(0, 256, 512, dtype=np.uint8).tobytes(),
        "list.json": b"[1, 2, 3]",
        "bad_layers.json": b'{"format": "exitspace.workload", "layers": [{"name": "x"}]}',
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return {name: tmp_path / name for name in files}


@pytest.mark.parametrize("name", ["empty.onnx", "random.onnx", "random.json", "list.json", "bad_layers.json"])
def test_profile_and_workload_refuse_in_one_line(tmp_path: Path, name: str) -> None:
    register_commands()
    path = _files(tmp_path)[name]
    runner = CliRunner()
    commands = [["profile", str(path)]]
    commands.append(["workload", "--onnx", str(path)] if name.endswith(".onnx") else ["profile", str(path), "--json"])
    for command in commands:
        result = runner.invoke(app, command)
        assert result.exit_code == 2, (command, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert "Traceback" not in result.output and str(path.name) in result.output, result.output
        assert len(" ".join(lines)) < 400 and lines[0].startswith("error:"), result.output
