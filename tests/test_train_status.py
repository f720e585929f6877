"""`exitspace train-status`: a run's phases, pace and exit tables, read from its directory while and after it trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from exitspace.cli.app import app
from exitspace.cli.main import register_commands
from exitspace.errors import CheckpointError, ConfigError
from exitspace.train.checkpoint import load_checkpoint
from exitspace.train.config import TrainConfig, parse_train_config
from exitspace.train.pipeline import run_training
from exitspace.train.progress import Reporter
from exitspace.train.status import run_status
from exitspace.train.trainer import TrainingInterrupted

STEPS_PER_EPOCH = 256 // 64


def _config() -> TrainConfig:
    return parse_train_config({
        "name": "tiny",
        "model": {"backbone": "small_cnn", "head_types": ["pool4_fc1"]},
        "data": {"name": "synthetic", "val_size": 64, "synthetic_train": 320, "synthetic_test": 64, "synthetic_size": 16},
        "optim": {"epochs": 3, "batch_size": 64, "lr": 0.05},
        "qat": {"pairs": ["32/32", "8/8"], "epochs": 1, "calibration_batches": 1},
        "runtime": {"threads": 1, "eval_batch_size": 128, "checkpoint_minutes": 0},
    })


def _train(run_dir: Path, pairs: list[str] | None = None, stop_after_steps: int | None = None) -> None:
    run_training(_config(), run_dir, pairs=pairs, reporter=Reporter(log_file=run_dir / "train.log", quiet=True),
                 stop_after_steps=stop_after_steps)


def test_status_of_an_interrupted_run_then_of_the_finished_one(tmp_path: Path) -> None:
    with pytest.raises(TrainingInterrupted):
        _train(tmp_path, stop_after_steps=STEPS_PER_EPOCH + 2)
    status = run_status(tmp_path)
    float_phase, qat_phase = status["phases"]
    assert (float_phase["name"], float_phase["state"], float_phase["epochs"]) == ("float", "partial", 3)
    assert (float_phase["epochs_done"], float_phase["steps_into_next"]) == (1, 2)
    assert 0 < float_phase["val_acc_last_head"] <= 1 and float_phase["seconds_per_epoch"] > 0
    # two epochs left at the first one's pace, less the time already spent in the second
    spent = load_checkpoint(tmp_path / "float" / "checkpoint.pt")["partial"]["seconds"]
    assert spent > 0
    assert float_phase["seconds_left"] == pytest.approx(max(0.0, 2 * float_phase["seconds_per_epoch"] - spent))
    assert (qat_phase["name"], qat_phase["directory"], qat_phase["state"]) == ("qat 8/8", "qat_b8_e8", "to do")
    assert [(t["pair"], t["written"]) for t in status["exit_tables"]] == [("32/32", False), ("8/8", False)]
    assert "float 1/3 done" in status["last_log_line"] and status["training_pid"] is None

    _train(tmp_path)
    status = run_status(tmp_path)
    assert [(p["state"], p["epochs_done"], p["seconds_left"]) for p in status["phases"]] == [("done", 3, None), ("done", 1, None)]
    summary = json.loads((tmp_path / "summary.json").read_text())
    last = summary["head_keys"][-1]
    assert [t["test_acc_last_head"] for t in status["exit_tables"]] == [
        summary["pairs"][pair]["accuracy"]["test"][last] for pair in ("32/32", "8/8")]
    assert status["phases"][0]["val_acc_last_head"] == summary["float_history"][-1]["val_acc_last_head"]


def test_pairs_added_on_the_command_line_are_listed(tmp_path: Path) -> None:
    _train(tmp_path, pairs=["4/8"])
    status = run_status(tmp_path)
    assert [p["name"] for p in status["phases"]] == ["float", "qat 8/8", "qat 4/8"]
    assert [(t["pair"], t["written"]) for t in status["exit_tables"]] == [("32/32", False), ("8/8", False), ("4/8", True)]


def test_cli_prints_a_table_or_json_and_bad_directories_get_one_line(tmp_path: Path) -> None:
    register_commands()
    runner = CliRunner()
    run_dir = tmp_path / "run"
    _train(run_dir, pairs=["32/32"])
    result = runner.invoke(app, ["train-status", str(run_dir)])
    assert result.exit_code == 0 and "float" in result.output and "to do" in result.output
    assert "32/32" in result.output and "not yet" in result.output
    parsed = json.loads(runner.invoke(app, ["train-status", str(run_dir), "--json"]).output)
    assert parsed["name"] == "tiny" and parsed["phases"][0]["state"] == "done"

    with pytest.raises(ConfigError, match="no config.yaml"):
        run_status(tmp_path)
    result = runner.invoke(app, ["train-status", str(tmp_path)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    (run_dir / "float" / "done.json").write_text("{truncated")
    with pytest.raises(CheckpointError, match="done.json: not a JSON object"):
        run_status(run_dir)
