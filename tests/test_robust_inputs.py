"""Issue 25's bad inputs, one test each: every one exits with code 2 and one line naming the field and the fix,
never a traceback, never a silent result."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from exitspace.cli.main import app, register_commands
from exitspace.config import load_config
from exitspace.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
TABLES = REPO / "results" / "resnet20_cifar10"
RANDOM_BYTES = bytes(np.random.default_rng(25).integers(0, 256, 600, dtype=np.uint8))

register_commands()


def one_line_error(args: list[str], *expected: str) -> str:
    """Run the CLI in-process; assert exit code 2 and a last output line "error: ..." holding ``expected`` (lines
    before it may only be progress: no other error, no traceback)."""
    result = CliRunner().invoke(app, args)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert lines and lines[-1].startswith("error: "), result.output
    assert not any(line.startswith("error") for line in lines[:-1]) and "Traceback" not in result.output, result.output
    for text in expected:
        assert text in lines[-1], (text, lines[-1])
    return lines[-1]


@pytest.mark.parametrize(("command", "suffix"), [
    (["run"], ".yaml"), (["train"], ".yaml"), (["hardware", "validate"], ".yaml"), (["report"], ".json"),
    (["compare"], ".json"), (["workload", "--onnx"], ".onnx"),
])
def test_random_bytes_are_one_line(command: list[str], suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"noise{suffix}"
    path.write_bytes(RANDOM_BYTES)
    one_line_error([*command, str(path)], str(path.name))


@pytest.mark.parametrize("content", ["[]", '{"format": "exitspace.results"}', '"text"', "7", "[" * 100000])
def test_report_on_a_document_that_is_not_results(content: str, tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(content)
    one_line_error(["report", str(path)], "results")


def test_hv_reference_misspelt_or_nan_refused_at_load(tmp_path: Path) -> None:
    for text, expected in (("{epl: 1.5}", "unknown objective 'epl'"), ("{elp: .nan}", "finite number")):
        path = tmp_path / "hv.yaml"
        path.write_text(f"search:\n  hv_reference: {text}\n")
        with pytest.raises(ConfigError, match="search.hv_reference") as info:
            load_config(path)
        assert expected in str(info.value)
        one_line_error(["search", str(path), "--run-dir", str(tmp_path / "r")], "search.hv_reference", expected)


def test_partial_hv_reference_keeps_the_other_defaults(tmp_path: Path) -> None:
    path = tmp_path / "hv.yaml"
    path.write_text("search:\n  hv_reference: {elp: 2.0}\n")
    reference = load_config(path).search.hv_reference
    assert reference["elp"] == 2.0 and reference["exit_overhead"] == 1.0 and reference["accuracy"] == 0.0


def test_error_text_with_brackets_is_printed_as_written(tmp_path: Path) -> None:
    name = "cfg[/bold][accuracy, elp].yaml"
    line = one_line_error(["run", str(tmp_path / name)], name, "not found")
    assert "[/bold]" in line


def test_duplicate_section_in_run_config_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("search:\n  trials: 5\nreport:\n  designs: 2\nsearch:\n  trials: 7\n")
    one_line_error(["run", str(path)], "duplicate key 'search'", "line 5")


def test_run_dir_that_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line_error(["search", "default", "--run-dir", str(blocker), "--trials", "1"], "--run-dir", "is a file")
    one_line_error(["search", "default", "--run-dir", str(blocker / "below"), "--trials", "1"], "--run-dir", "is a file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_run_dir_read_only(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        one_line_error(["search", "default", "--run-dir", str(folder), "--trials", "1"], "--run-dir", "not writable")
    finally:
        folder.chmod(0o700)


def test_data_download_onto_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line_error(["data-download", str(blocker)], "download folder", "is a file")


def test_trials_bounded(tmp_path: Path) -> None:
    one_line_error(["search", "default", "--trials", str(10**25), "--run-dir", str(tmp_path)], "--trials", "1000000")
    path = tmp_path / "many.yaml"
    path.write_text(f"search: {{trials: {10**25}}}\n")
    one_line_error(["run", str(path)], "search.trials", "less than or equal to 1000000")


def test_max_cost_ratio_outside_zero_one_refused() -> None:
    for ratio in ("0", "-0.5", "1.5"):
        one_line_error(["evaluate", "--exits", "D,K", "--exit-table", str(TABLES / "exit_table_b8_e8.npz"),
                        "--max-cost-ratio", ratio], "--max-cost-ratio", "(0, 1]")


def test_empty_onnx_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    one_line_error(["workload", "--onnx", str(path)], "empty.onnx", "ONNX")


def test_zigzag_core_without_dram_refused(tmp_path: Path) -> None:
    text = (REPO / "tests" / "data" / "hardware" / "tiny_core.yaml").read_text()
    start = text.index("  dram:")
    end = text.index("operational_array:")
    path = tmp_path / "no_dram.yaml"
    path.write_text(text[:start] + text[end:])
    one_line_error(["hardware", "validate", str(path)], "no_dram.yaml", "no off-chip memory level", "add a DRAM level")


def _tables_with_a_corrupt_one(tmp_path: Path) -> Path:
    folder = tmp_path / "tables"
    shutil.copytree(TABLES, folder, ignore=shutil.ignore_patterns("*.md"))
    (folder / "exit_table_b4_e4.npz").write_bytes(b"PK\x03\x04 not a zip any more")
    return folder


def test_corrupt_exit_table_refused_not_skipped(tmp_path: Path) -> None:
    folder = _tables_with_a_corrupt_one(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text(f"exit_tables: {{dir: {folder}}}\nsearch: {{space: {{precision_pairs: [[8, 8]]}}}}\n")
    one_line_error(["search", str(config), "--run-dir", str(tmp_path / "r"), "--trials", "1"],
                   "exit_table_b4_e4.npz", "corrupt")


def test_bit_widths_no_network_is_trained_at_refused(tmp_path: Path) -> None:
    one_line_error(["evaluate", "--exits", "D,K", "--model", "resnet20", "--bits", "9/9", "--ratios", "0.5,0.5"],
                   "--bits", "bit width 9", "use one of")
    one_line_error(["compare", str(tmp_path), "--precision", "9/9"], "--precision", "bit width 9")
