"""Helpers for the training tests: a seconds-long training config, a quiet reporter, an exit table's hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exitspace.train.config import TrainConfig, parse_train_config
from exitspace.train.exit_table import ExitTable
from exitspace.train.pipeline import exit_table_path
from exitspace.train.progress import Reporter


def tiny_config(**overrides: Any) -> TrainConfig:
    """A small CNN on tiny synthetic data, 2 float epochs; ``overrides`` replace or extend config sections."""
    data: dict[str, Any] = {
        "name": "tiny",
        "model": {"backbone": "small_cnn", "head_types": ["pool4_fc1"]},
        "data": {"name": "synthetic", "val_size": 64, "synthetic_train": 320, "synthetic_test": 64, "synthetic_size": 16},
        "optim": {"epochs": 2, "batch_size": 64, "lr": 0.05},
        "qat": {"pairs": ["32/32"], "epochs": 2, "calibration_batches": 1},
        "runtime": {"threads": 1, "eval_batch_size": 128, "bf16": True},
    }
    for section, values in overrides.items():
        data[section] = {**data.get(section, {}), **values} if isinstance(values, dict) else values
    return parse_train_config(data)


def quiet_reporter(run_dir: Path) -> Reporter:
    """A reporter that logs to the run directory and prints nothing."""
    return Reporter(log_file=run_dir / "train.log", quiet=True)


def table_hash(run_dir: Path, pair: tuple[int, int]) -> str:
    """The model hash recorded in a run's exit table of ``pair``."""
    return str(ExitTable.load(exit_table_path(run_dir, pair)).meta["model_hash"])
