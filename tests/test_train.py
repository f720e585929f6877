"""Training flow on tiny synthetic data: end to end, resume after interruption (float and mid-QAT), config errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from exitspace.cli.app import app
from exitspace.cli.main import register_commands
from exitspace.errors import ConfigError
from exitspace.train.config import load_train_config, parse_train_config
from exitspace.train.exit_table import ExitTable
from exitspace.train.losses import eenn_loss, head_loss_weights
from exitspace.train.pipeline import exit_table_path, run_training
from exitspace.train.results import export_results
from exitspace.train.trainer import TrainingInterrupted, rebuilt_schedule

from tiny_training import quiet_reporter, table_hash, tiny_config

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "train" / "smoke.yaml"


def test_end_to_end_smoke_config_learns_and_writes_tables(tmp_path: Path) -> None:
    config = load_train_config(SMOKE)
    summary = run_training(config, tmp_path, pairs=["32/32", "8/4"], reporter=quiet_reporter(tmp_path))
    for pair in ((32, 32), (8, 4)):
        table = ExitTable.load(exit_table_path(tmp_path, pair))
        assert table.head_keys == summary["head_keys"] and table.logits["test"].shape == (256, 8, 10)
        assert table.precision_pair == pair and table.meta["split_seed"] == 0 and table.meta["dataset"] == "synthetic"
        assert table.meta["model_spec"]["backbone"] == "small_cnn"
    accuracy = summary["pairs"]["32/32"]["accuracy"]["test"]
    assert max(accuracy.values()) > 0.5  # chance is 0.1
    last_epoch = summary["float_history"][-1]  # every head's validation accuracy (bf16; the table's in float32)
    val_accuracy = summary["pairs"]["32/32"]["accuracy"]["val"]
    assert last_epoch["val_acc_heads"] == pytest.approx([val_accuracy[key] for key in summary["head_keys"]], abs=2.5 / 128)
    assert last_epoch["val_acc_heads"][-1] == pytest.approx(last_epoch["val_acc_last_head"], abs=1e-4)
    assert summary["pairs"]["8/4"]["model_hash"] != summary["pairs"]["32/32"]["model_hash"]
    log = (tmp_path / "train.log").read_text()
    assert "float 3/3 done" in log and "qat 8/4 1/1 done" in log
    info = export_results(tmp_path, tmp_path / "results", heads=["pool4_fc1"])
    small = ExitTable.load(tmp_path / "results" / "exit_table_b8_e4.npz")
    assert all(key.endswith("pool4_fc1") for key in small.head_keys) and len(info["exit_table_bytes"]) == 2
    assert "| A:pool4_fc1 (b0) |" in (tmp_path / "results" / "results.md").read_text()


def test_float_resume_after_interruption_matches_uninterrupted(tmp_path: Path) -> None:
    config = tiny_config()
    run_training(config, tmp_path / "a", reporter=quiet_reporter(tmp_path / "a"))
    steps_per_epoch = 256 // 64
    with pytest.raises(TrainingInterrupted):
        run_training(config, tmp_path / "b", reporter=quiet_reporter(tmp_path / "b"), stop_after_steps=steps_per_epoch + 2)
    assert (tmp_path / "b" / "float" / "checkpoint.pt").is_file() and not (tmp_path / "b" / "float" / "done.json").exists()
    run_training(config, tmp_path / "b", reporter=quiet_reporter(tmp_path / "b"))
    assert "resuming after epoch 1/2" in (tmp_path / "b" / "train.log").read_text()
    assert table_hash(tmp_path / "a", (32, 32)) == table_hash(tmp_path / "b", (32, 32))
    # a third run skips everything and changes nothing
    before = exit_table_path(tmp_path / "b", (32, 32)).stat().st_mtime_ns
    run_training(config, tmp_path / "b", reporter=quiet_reporter(tmp_path / "b"))
    assert exit_table_path(tmp_path / "b", (32, 32)).stat().st_mtime_ns == before


def test_qat_resume_mid_phase_matches_uninterrupted(tmp_path: Path) -> None:
    config = tiny_config(optim={"epochs": 1}, qat={"pairs": ["8/4"], "epochs": 2})
    run_training(config, tmp_path / "a", reporter=quiet_reporter(tmp_path / "a"))
    qat_steps_per_epoch = 4  # the float phase (4 steps) stays below the limit, which counts per phase
    with pytest.raises(TrainingInterrupted):
        run_training(config, tmp_path / "b", reporter=quiet_reporter(tmp_path / "b"), stop_after_steps=qat_steps_per_epoch + 1)
    assert (tmp_path / "b" / "qat_b8_e4" / "checkpoint.pt").is_file()
    run_training(config, tmp_path / "b", reporter=quiet_reporter(tmp_path / "b"))
    assert "qat 8/4: resuming after epoch 1/2" in (tmp_path / "b" / "train.log").read_text()
    assert table_hash(tmp_path / "a", (8, 4)) == table_hash(tmp_path / "b", (8, 4))


def test_loss_weights_and_distillation() -> None:
    weights = head_loss_weights([0, 0, 1, 3, 3], "increasing")
    assert torch.allclose(weights, torch.tensor([0.125, 0.125, 0.5, 0.5, 0.5]))
    assert torch.allclose(head_loss_weights([0, 3], "uniform"), torch.ones(2))
    with pytest.raises(ConfigError, match="loss.weights"):
        head_loss_weights([0, 3], [1.0])
    logits = torch.randn(8, 3, 10)
    labels = torch.randint(0, 10, (8,))
    final = torch.tensor([False, False, True])
    total, per_head = eenn_loss(logits, labels, torch.ones(3), final)
    _, distilled = eenn_loss(logits, labels, torch.ones(3), final, distill_weight=1.0)
    assert torch.isclose(total, per_head.sum()) and torch.isclose(distilled[2], per_head[2])
    teacher_copy = logits.clone()
    teacher_copy[:, 0] = teacher_copy[:, 2]
    _, same = eenn_loss(teacher_copy, labels, torch.ones(3), final, distill_weight=1.0)
    assert same[0].abs() < 1e-5  # a head that equals the teacher has zero distillation loss


def test_config_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"optim.lr") as info:
        parse_train_config({"optim": {"lr": -1}})
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="optim.lrr"):
        parse_train_config({"optim": {"lrr": 0.1}})
    with pytest.raises(ConfigError, match="qat.pairs"):
        parse_train_config({"qat": {"pairs": ["8/3x"]}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [1, 2\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_train_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_train_config(tmp_path / "missing.yaml")


def test_cli_train_json_and_errors(tmp_path: Path) -> None:
    register_commands()
    runner = CliRunner()
    config = tmp_path / "tiny.yaml"
    import yaml

    config.write_text(yaml.safe_dump(tiny_config(optim={"epochs": 1}).model_dump(mode="json")))
    result = runner.invoke(app, ["train", str(config), "--run-dir", str(tmp_path / "run"), "--pairs", "32/32", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(payload["pairs"]) == {"32/32"} and len(payload["head_keys"]) == 4
    bad = runner.invoke(app, ["train", str(config), "--pairs", "8/5x"])
    assert bad.exit_code == 2 and "precision pair" in bad.output
    missing = runner.invoke(app, ["train-export", str(tmp_path / "nothing"), str(tmp_path / "out")])
    assert missing.exit_code == 2 and "summary.json" in missing.output
    logits = np.load(exit_table_path(tmp_path / "run", (32, 32)))["test_logits"]
    assert logits.dtype == np.float16


def test_changed_epoch_count_rescales_schedule_on_resume(tmp_path: Path) -> None:
    with pytest.raises(TrainingInterrupted):
        run_training(tiny_config(optim={"epochs": 4}), tmp_path, reporter=quiet_reporter(tmp_path), stop_after_steps=5)
    summary = run_training(tiny_config(optim={"epochs": 2}), tmp_path, reporter=quiet_reporter(tmp_path))
    assert "schedule rescaled from 4 to 2 epochs at epoch 1" in (tmp_path / "train.log").read_text()
    history = summary["float_history"]
    fresh = run_training(tiny_config(optim={"epochs": 2}), tmp_path / "fresh", reporter=quiet_reporter(tmp_path / "fresh"))
    assert len(history) == 2 and history[-1]["lr_end"] == pytest.approx(fresh["float_history"][-1]["lr_end"])
    assert history[-1]["lr_end"] < 0.1 * history[0]["lr_end"]


def test_resuming_under_a_changed_config_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(TrainingInterrupted):
        run_training(tiny_config(), tmp_path, reporter=quiet_reporter(tmp_path), stop_after_steps=5)
    for changed, field in (({"loss": {"distill_weight": 0.5}}, "loss.distill_weight"),
                           ({"model": {"head_types": ["gap_fc"]}}, "model.head_types"),
                           ({"data": {"cutout": 4}}, "data.cutout")):
        with pytest.raises(ConfigError, match=rf"^{field}: .* was trained with .*use a new --run-dir, or restore {field}"):
            run_training(tiny_config(**changed), tmp_path, reporter=quiet_reporter(tmp_path))
    # the same model spelt out with its defaults, other threads, a new run name and QAT recipe resume
    same = tiny_config(name="renamed", model={"width": 1.0}, runtime={"threads": 2}, qat={"lr": 0.002})
    run_training(same, tmp_path, reporter=quiet_reporter(tmp_path))
    assert "resuming after epoch 1/2" in (tmp_path / "train.log").read_text()


def test_qat_recipe_is_fixed_only_while_a_qat_phase_is_half_done(tmp_path: Path) -> None:
    config = tiny_config(optim={"epochs": 1}, qat={"pairs": ["8/4"], "epochs": 2})
    with pytest.raises(TrainingInterrupted):
        run_training(config, tmp_path, reporter=quiet_reporter(tmp_path), stop_after_steps=5)
    assert (tmp_path / "qat_b8_e4" / "checkpoint.pt").is_file()
    with pytest.raises(ConfigError, match=r"^qat\.lr: "):
        run_training(tiny_config(optim={"epochs": 1}, qat={"pairs": ["8/4"], "epochs": 2, "lr": 0.01}), tmp_path,
                     reporter=quiet_reporter(tmp_path))
    run_training(config, tmp_path, reporter=quiet_reporter(tmp_path))
    more = tiny_config(optim={"epochs": 1}, qat={"pairs": ["8/4", "8/8"], "epochs": 2, "lr": 0.01})
    summary = run_training(more, tmp_path, reporter=quiet_reporter(tmp_path))  # 8/4 is done: a new recipe for 8/8
    assert set(summary["pairs"]) == {"8/4", "8/8"}


def test_early_head_gradient_scaling() -> None:
    from exitspace.models import build_eenn
    from exitspace.train.losses import scale_early_head_gradients

    grads = {}
    for scale in (1.0, 0.25):
        torch.manual_seed(0)
        model = build_eenn(backbone="small_cnn", head_types=["pool4_fc1"], input_size=16)
        scale_early_head_gradients(model, scale)
        out = model(torch.randn(4, 3, 16, 16))
        (out[:, 0].sum() + out[:, -1].sum()).backward()  # first (early) head and the final head
        grads[scale] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    stem = "backbone.stem.0.weight"
    early_head = next(n for n in grads[1.0] if n.startswith("heads.A"))
    assert torch.allclose(grads[0.25][early_head], grads[1.0][early_head])  # the head itself trains fully
    assert not torch.allclose(grads[0.25][stem], grads[1.0][stem])
    last_block = "backbone.blocks.3.0.weight"  # after the early head's block: only the final head reaches it
    assert torch.allclose(grads[0.25][last_block], grads[1.0][last_block])


def test_zero_gradient_scale_trains_the_backbone_for_the_final_exit_alone() -> None:
    from exitspace.models import build_eenn
    from exitspace.train.losses import scale_early_head_gradients

    grads = {}
    for name, scale, with_early in (("final only", 1.0, False), ("detached", 0.0, True)):
        torch.manual_seed(0)
        model = build_eenn(backbone="small_cnn", head_types=["pool4_fc1"], input_size=16)
        scale_early_head_gradients(model, scale)
        out = model(torch.randn(4, 3, 16, 16))
        loss = out[:, -1].sum() + (out[:, 0].sum() if with_early else 0)
        loss.backward()
        grads[name] = {n: p.grad for n, p in model.named_parameters()}
    early_head = next(n for n in grads["detached"] if n.startswith("heads.A"))
    assert grads["detached"][early_head].abs().sum() > 0 and not grads["final only"][early_head].any()
    for n, g in grads["final only"].items():
        if n.startswith("backbone."):
            assert torch.equal(grads["detached"][n], g), n


def test_failed_compile_falls_back_to_eager_with_one_log_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(torch, "compile", lambda model: Broken())
    eager = run_training(tiny_config(), tmp_path / "eager", reporter=quiet_reporter(tmp_path / "eager"))
    fallback = run_training(tiny_config(runtime={"compile": True}), tmp_path / "c", reporter=quiet_reporter(tmp_path / "c"))
    assert fallback["pairs"]["32/32"]["model_hash"] == eager["pairs"]["32/32"]["model_hash"]  # same training
    log = (tmp_path / "c" / "train.log").read_text()
    assert "torch.compile failed (RuntimeError: no C++ compiler found); training eagerly" in log


def test_head_lr_scales_put_early_and_final_heads_in_slower_groups_in_float_and_qat(tmp_path: Path) -> None:
    from exitspace.data.registry import load_splits
    from exitspace.train.pipeline import _float_settings, qat_settings, build_float_model, model_spec

    config = tiny_config(model={"head_types": ["pool4_fc1", "pool4_fc2"]},
                     optim={"head_lr_scale": 0.1, "final_head_lr_scale": 0.5, "epochs": 1})
    model = build_float_model(config, model_spec(config, load_splits(config.data)))
    early, final = ({id(p) for p in model.head_parameters(final=flag)} for flag in (False, True))
    assert early and final and not early & final
    final_module = model.head(model.head_keys[-1])
    assert {id(p) for p in final_module.parameters()} <= final
    for settings, peak in ((_float_settings(config, model), 0.05), (qat_settings(config, model), config.qat.lr)):
        optimizer = settings.make_optimizer(model)
        backbone_group, early_group, final_group = optimizer.param_groups
        assert {id(p) for p in early_group["params"]} == early and {id(p) for p in final_group["params"]} == final
        assert len(backbone_group["params"]) + len(early) + len(final) == len(list(model.parameters()))
        scheduler = settings.make_scheduler(optimizer, 100)
        for _ in range(15):  # one-cycle peaks after 15% of the steps; QAT's cosine decays from its start
            optimizer.step(); scheduler.step()
        rates = scheduler.get_last_lr()
        assert rates[1:] == pytest.approx([0.1 * rates[0], 0.5 * rates[0]]) and rates[0] <= peak + 1e-12
        rebuilt = rebuilt_schedule(settings, optimizer, 100, 15)  # as a resume with a changed epoch count does
        assert rebuilt.get_last_lr() == pytest.approx(rates)
    assert not qat_settings(config, model).compile  # ResNet-20's two short QAT epochs do not repay a compile
    assert qat_settings(tiny_config(runtime={"compile_qat": True}), model).compile
    only_early = _float_settings(tiny_config(optim={"head_lr_scale": 0.1}), model).make_optimizer(model)
    assert [g.get("lr_scale") for g in only_early.param_groups] == [None, 0.1]
    unscaled = _float_settings(tiny_config(), model).make_optimizer(model)
    assert len(unscaled.param_groups) == 1  # older checkpoints (one group) keep loading
    summary = run_training(config, tmp_path, reporter=quiet_reporter(tmp_path))
    assert max(summary["pairs"]["32/32"]["accuracy"]["test"].values()) > 0.1


def test_swa_averages_the_epoch_weights_resumes_and_fixes_its_recipe_once_used(tmp_path: Path) -> None:
    from exitspace.train.checkpoint import load_checkpoint

    base: dict[str, Any] = {"optim": {"epochs": 1}, "qat": {"pairs": ["32/32"]}}
    with pytest.raises(TrainingInterrupted):  # float half done without SWA: adding SWA is still allowed
        run_training(tiny_config(**base), tmp_path / "b", reporter=quiet_reporter(tmp_path / "b"), stop_after_steps=2)
    config = tiny_config(**base, swa={"epochs": 2, "lr": 0.02})
    with pytest.raises(TrainingInterrupted):  # float (4 steps) completes, SWA stops in its second epoch
        run_training(config, tmp_path / "b", reporter=quiet_reporter(tmp_path / "b"), stop_after_steps=5)
    swa_dir = tmp_path / "b" / "swa"
    after_first = load_checkpoint(swa_dir / "checkpoint.pt")["model"]
    with pytest.raises(ConfigError, match=r"^swa\.lr: "):
        run_training(tiny_config(**base, swa={"epochs": 2, "lr": 0.05}), tmp_path / "b", reporter=quiet_reporter(tmp_path / "b"))
    summary = run_training(config, tmp_path / "b", reporter=quiet_reporter(tmp_path / "b"))
    after_second = load_checkpoint(swa_dir / "checkpoint.pt")["model"]
    averaged = load_checkpoint(swa_dir / "model.pt")["model"]
    parameters = [key for key in averaged if not key.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert parameters and not torch.equal(after_first[parameters[0]], after_second[parameters[0]])
    for key in parameters:
        assert torch.allclose(averaged[key], (after_first[key] + after_second[key]) / 2, atol=1e-6), key
    running = next(key for key in averaged if key.endswith("running_mean"))
    assert not torch.equal(averaged[running], after_second[running])  # BatchNorm statistics recomputed
    assert summary["swa_history"][-1]["epoch"] == "average" and "val_acc_last_head" in summary["swa_history"][-1]
    assert ExitTable.load(exit_table_path(tmp_path / "b", (32, 32))).meta["swa"] == {"epochs": 2, "lr": 0.02}
    run_training(config, tmp_path / "a", reporter=quiet_reporter(tmp_path / "a"))
    assert table_hash(tmp_path / "a", (32, 32)) == table_hash(tmp_path / "b", (32, 32))


def test_resume_within_an_epoch_matches_uninterrupted(tmp_path: Path) -> None:
    config = tiny_config(runtime={"checkpoint_minutes": 0})  # a checkpoint after every step
    run_training(tiny_config(), tmp_path / "a", reporter=quiet_reporter(tmp_path / "a"))
    with pytest.raises(TrainingInterrupted):  # 4 steps an epoch: stop in the middle of the second
        run_training(config, tmp_path / "b", reporter=quiet_reporter(tmp_path / "b"), stop_after_steps=6)
    run_training(config, tmp_path / "b", reporter=quiet_reporter(tmp_path / "b"))
    log = (tmp_path / "b" / "train.log").read_text()
    assert "resuming after epoch 1/2, step 2/4 of the next" in log
    assert table_hash(tmp_path / "a", (32, 32)) == table_hash(tmp_path / "b", (32, 32))
    first = json.loads((tmp_path / "a" / "summary.json").read_text())["float_history"]
    resumed = json.loads((tmp_path / "b" / "summary.json").read_text())["float_history"]
    assert [r["train_loss"] for r in resumed] == pytest.approx([r["train_loss"] for r in first])


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04truncated zip"])
def test_corrupt_checkpoint_is_a_one_line_error(tmp_path: Path, content: bytes) -> None:
    from exitspace.errors import CheckpointError
    from exitspace.train.checkpoint import load_checkpoint

    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"unreadable checkpoint .*delete it to restart that phase") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)
