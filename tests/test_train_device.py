"""runtime.device: where training runs (the CPU here; the GPU test runs only where torch sees one)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from exitspace.errors import ConfigError
from exitspace.train.exit_table import ExitTable
from exitspace.train.pipeline import exit_table_path, make_loaders, run_training, training_device
from exitspace.data.registry import load_splits
from tiny_training import quiet_reporter, tiny_config

HAS_GPU = torch.cuda.is_available()


def test_device_choices_and_their_one_line_errors() -> None:
    assert training_device(tiny_config()) == torch.device("cpu")  # the default
    assert training_device(tiny_config(runtime={"device": "auto"})) == torch.device("cuda" if HAS_GPU else "cpu")
    with pytest.raises(ConfigError, match=r"runtime\.device"):
        tiny_config(runtime={"device": "tpu"})
    if not HAS_GPU:
        with pytest.raises(ConfigError, match=r"^runtime\.device: cuda:1, but this torch \(.*\) sees no GPU; use cpu, or auto"):
            training_device(tiny_config(runtime={"device": "cuda:1"}))


def test_loaders_hand_batches_to_the_device_and_keep_their_content() -> None:
    config = tiny_config(runtime={"device": "auto"}, data={"cutout": 4})
    loaders = make_loaders(config, load_splits(config.data))
    x, y, targets = next(loaders["train"].epoch_with_targets(3))
    assert x.device.type == y.device.type == training_device(config).type and targets is None
    on_cpu = make_loaders(tiny_config(data={"cutout": 4}), load_splits(config.data))["train"]
    x_cpu, y_cpu, _ = next(on_cpu.epoch_with_targets(3))  # same seed and epoch: the same augmented batch
    assert torch.equal(x.cpu(), x_cpu) and torch.equal(y.cpu(), y_cpu)


@pytest.mark.skipif(not HAS_GPU, reason="needs a GPU that torch sees")
def test_training_on_the_gpu_writes_tables_as_on_the_cpu(tmp_path: Path) -> None:
    teacher = tmp_path / "teacher"
    run_training(tiny_config(runtime={"device": "cuda"}), teacher, reporter=quiet_reporter(teacher))
    config = tiny_config(runtime={"device": "cuda", "compile": True}, qat={"pairs": ["32/32", "8/8"]}, swa={"epochs": 1},
                     loss={"teachers": [str(teacher)], "teacher_weight": 0.5, "teacher_views": 2})
    summary = run_training(config, tmp_path / "student", reporter=quiet_reporter(tmp_path / "student"))
    for pair in ((32, 32), (8, 8)):
        table = ExitTable.load(exit_table_path(tmp_path / "student", pair))
        assert table.logits["test"].shape[:2] == (64, len(summary["head_keys"]))
        assert table.meta["accuracy"]["test"][summary["head_keys"][-1]] > 0.2  # ten classes: chance is 0.1
