"""The heads phase: the early exits' heads trained again on the frozen network, resumable, recipe fixed once used."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from exitspace.errors import ConfigError
from exitspace.models import build_eenn
from exitspace.train.checkpoint import load_checkpoint
from exitspace.train.config import TrainConfig, parse_train_config
from exitspace.train.exit_table import ExitTable
from exitspace.train.pipeline import exit_table_path, only_early_heads_learn, run_training
from exitspace.train.progress import Reporter
from exitspace.train.status import run_status
from exitspace.train.trainer import TrainingInterrupted

HEADS = {"epochs": 2, "lr": 0.05}


def _config(heads: dict[str, Any] | None = None, pairs: tuple[str, ...] = ("32/32",)) -> TrainConfig:
    return parse_train_config({
        "name": "tiny",
        "model": {"backbone": "small_cnn", "head_types": ["pool4_fc1"]},
        "data": {"name": "synthetic", "val_size": 64, "synthetic_train": 320, "synthetic_test": 64, "synthetic_size": 16},
        "optim": {"epochs": 1, "batch_size": 64, "lr": 0.05},
        "loss": {"head_grad_scale": 0.0, "distill_weight": 0.5},
        "heads": heads or {},
        "qat": {"pairs": list(pairs), "epochs": 1, "calibration_batches": 1},
        "runtime": {"threads": 1, "eval_batch_size": 128},
    })


def _train(config: TrainConfig, run_dir: Path, stop_after_steps: int | None = None) -> dict[str, Any]:
    return run_training(config, run_dir, reporter=Reporter(log_file=run_dir / "train.log", quiet=True),
                        stop_after_steps=stop_after_steps)


def _early_head_keys(state: dict[str, torch.Tensor], final_prefixes: tuple[str, ...]) -> set[str]:
    return {key for key in state if key.startswith("heads.") and not key.startswith(final_prefixes)}


def test_only_the_early_heads_change_and_the_float_table_starts_from_them(tmp_path: Path) -> None:
    summary = _train(_config(HEADS), tmp_path)
    before = load_checkpoint(tmp_path / "float" / "model.pt")["model"]
    after = load_checkpoint(tmp_path / "heads" / "model.pt")["model"]
    final_block = max(summary["head_blocks"])
    final_prefixes = tuple(f"heads.{key.replace(':', '_')}" for key, block in zip(summary["head_keys"], summary["head_blocks"])
                           if block == final_block)
    early = _early_head_keys(after, final_prefixes)
    assert early and all(not torch.equal(before[key], after[key]) for key in early if key.endswith("weight"))
    unchanged = [key for key in after if key not in early]
    assert any(key.startswith("backbone.") and key.endswith("running_mean") for key in unchanged)
    assert all(torch.equal(before[key], after[key]) for key in unchanged)  # backbone, BN statistics, final exit
    assert len(summary["heads_history"]) == 2 and "val_acc_heads" in summary["heads_history"][-1]
    table = ExitTable.load(exit_table_path(tmp_path, (32, 32)))
    assert table.meta["heads"] == HEADS
    assert [p["name"] for p in run_status(tmp_path)["phases"]] == ["float", "heads"]


def test_parameters_learn_again_after_the_phase() -> None:
    model = build_eenn({"backbone": "small_cnn", "head_types": ["pool4_fc1"], "num_classes": 10, "input_size": 16})
    with only_early_heads_learn(model):
        learning = {name for name, param in model.named_parameters() if param.requires_grad}
        assert learning and all(name.startswith("heads.") for name in learning)
    assert all(param.requires_grad for param in model.parameters())


def test_heads_phase_resumes_and_its_recipe_is_fixed_once_it_has_begun(tmp_path: Path) -> None:
    uninterrupted = _train(_config(HEADS), tmp_path / "a")
    with pytest.raises(TrainingInterrupted):  # float: 4 steps, then the heads phase stops in its second epoch
        _train(_config(HEADS), tmp_path / "b", stop_after_steps=6)
    with pytest.raises(ConfigError, match=r"^heads\.lr: "):  # the phase has begun: its recipe is fixed
        _train(_config({"epochs": 2, "lr": 0.01}), tmp_path / "b")
    resumed = _train(_config(HEADS), tmp_path / "b")
    assert "heads: resuming after epoch 1/2" in (tmp_path / "b" / "train.log").read_text()
    assert resumed["pairs"]["32/32"]["model_hash"] == uninterrupted["pairs"]["32/32"]["model_hash"]
    # a finished float phase with nothing built on it (copied, as the docs suggest) takes a heads phase
    _train(_config(), tmp_path / "plain")
    (tmp_path / "c").mkdir()
    shutil.copytree(tmp_path / "plain" / "float", tmp_path / "c" / "float")
    shutil.copy(tmp_path / "plain" / "config.yaml", tmp_path / "c" / "config.yaml")
    _train(_config(HEADS), tmp_path / "c")
    assert "float: already done" in (tmp_path / "c" / "train.log").read_text()
    assert (tmp_path / "c" / "heads" / "done.json").is_file()
