"""Distillation from other trained runs (``loss.teachers``): the loss, the pipeline, the guards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from exitspace.errors import ConfigError
from exitspace.train.config import load_train_config, parse_train_config
from exitspace.train.exit_table import ExitTable
from exitspace.train.losses import eenn_loss
from exitspace.train.pipeline import exit_table_path, run_training
from exitspace.train.progress import Reporter
from tiny_training import tiny_config


def _train(config, run_dir: Path) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return run_training(config, run_dir, reporter=Reporter(log_file=run_dir / "train.log", quiet=True))


def test_teacher_loss_mixes_into_the_final_heads_only() -> None:
    torch.manual_seed(0)
    logits = torch.randn(8, 3, 10)
    labels = torch.randint(0, 10, (8,))
    final = torch.tensor([False, True, True])
    _, plain = eenn_loss(logits, labels, torch.ones(3), final, temperature=2.0)
    agreeing = F.softmax(logits[:, 2] / 2.0, dim=-1)
    _, taught = eenn_loss(logits, labels, torch.ones(3), final, temperature=2.0, teacher_probs=agreeing, teacher_weight=1.0)
    assert torch.isclose(taught[0], plain[0])  # early heads untouched
    assert taught[2].abs() < 1e-5  # a final head that agrees with the teacher has nothing to learn from it
    assert taught[1] > 1e-3  # the other final head does
    _, half = eenn_loss(logits, labels, torch.ones(3), final, temperature=2.0, teacher_probs=agreeing, teacher_weight=0.5)
    assert torch.isclose(half[1], 0.5 * plain[1] + 0.5 * taught[1])


def test_student_trains_with_teachers_and_records_them(tmp_path: Path) -> None:
    teacher_dir = tmp_path / "teacher"
    _train(tiny_config(optim={"epochs": 3}), teacher_dir)
    alone = _train(tiny_config(), tmp_path / "alone")
    student = _train(tiny_config(loss={"teachers": [str(teacher_dir)], "teacher_weight": 0.7}), tmp_path / "student")
    table = ExitTable.load(exit_table_path(tmp_path / "student", (32, 32)))
    teacher_hash = ExitTable.load(exit_table_path(teacher_dir, (32, 32))).meta["model_hash"]
    assert table.meta["teachers"] == [{"run_dir": str(teacher_dir), "model_hash": teacher_hash}]
    assert table.meta["teacher_weight"] == 0.7
    assert student["pairs"]["32/32"]["model_hash"] != alone["pairs"]["32/32"]["model_hash"]
    from exitspace.train.results import export_results

    export_results(tmp_path / "student", tmp_path / "results" / "student")
    export_results(tmp_path / "alone", tmp_path / "results" / "alone")
    taught = (tmp_path / "results" / "student" / "results.md").read_text()
    assert f"learned from teachers `{teacher_dir}` (model hash {teacher_hash[:12]}), on every training batch, " \
           "with teacher weight 0.7." in taught
    assert "teachers" not in (tmp_path / "results" / "alone" / "results.md").read_text()
    assert "\n\n\n" not in taught


def test_teacher_guards_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"loss: teachers and teacher_weight go together"):
        parse_train_config({"loss": {"teacher_weight": 0.5}})
    with pytest.raises(ConfigError, match=r"loss: teachers and teacher_weight go together"):
        parse_train_config({"loss": {"teachers": ["runs/x"]}})
    with pytest.raises(ConfigError, match=r"loss.teachers: .* not an `exitspace train` run directory"):
        _train(tiny_config(loss={"teachers": [str(tmp_path / "none")], "teacher_weight": 0.5}), tmp_path / "a")
    other_split = tmp_path / "other_split"
    _train(tiny_config(data={"split_seed": 1}), other_split)
    with pytest.raises(ConfigError, match=r"loss.teachers: .* must share the split"):
        _train(tiny_config(loss={"teachers": [str(other_split)], "teacher_weight": 0.5}), tmp_path / "b")


def test_relative_teacher_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "configs"
    (folder / "runs" / "teacher").mkdir(parents=True)
    path = folder / "student.yaml"
    path.write_text("loss: {teachers: [runs/teacher], teacher_weight: 0.5}\n")
    assert load_train_config(path).loss.teachers == [(folder / "runs" / "teacher").resolve()]


def test_compiled_teachers_agree_with_eager_and_fall_back_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from exitspace.models import build_eenn
    from exitspace.train.teachers import TeacherEnsemble

    torch.manual_seed(0)
    models = [build_eenn(backbone="small_cnn", head_types=["pool4_fc1", "gap_fc"]) for _ in range(2)]
    x = torch.randn(8, 3, 32, 32)
    eager = TeacherEnsemble(models, 3.0, bf16=False)(x)
    assert eager.shape == (8, 10) and torch.allclose(eager.sum(1), torch.ones(8))
    compiled = TeacherEnsemble(models, 3.0, bf16=False, compile=True)(x)  # eager again where no compiler exists
    assert torch.allclose(compiled, eager, atol=1e-4)

    class Broken:
        def __call__(self, batch: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("no C++ compiler found\nmore detail")

    monkeypatch.setattr(torch, "compile", lambda model: Broken())
    lines: list[str] = []
    ensemble = TeacherEnsemble(models, 3.0, bf16=False, compile=True, log=lines.append)
    assert torch.allclose(ensemble(x), eager) and torch.allclose(ensemble(x), eager)
    assert lines == ["teachers: torch.compile failed (RuntimeError: no C++ compiler found); running them eagerly"]


def test_exported_weights_teach_as_the_run_directory_did(tmp_path: Path) -> None:
    import shutil

    from exitspace.data.registry import load_splits
    from exitspace.errors import CheckpointError
    from exitspace.train.pipeline import load_teachers
    from exitspace.train.results import export_results

    run_dir, exported = tmp_path / "teacher", tmp_path / "results" / "teacher"
    _train(tiny_config(swa={"epochs": 1, "lr": 0.01}), run_dir)  # QAT starts from the SWA phase: that one is exported
    info = export_results(run_dir, exported, weights=True)
    assert sorted(p.name for p in exported.iterdir()) == ["config.yaml", "exit_table_b32_e32.npz", "results.md",
                                                         "summary.json", "swa", "weights"]
    assert 0 < info["weight_bytes"] == (exported / "swa" / "model.pt").stat().st_size
    assert "can serve as a teacher" in (exported / "results.md").read_text()
    student = tiny_config(loss={"teachers": [str(run_dir)], "teacher_weight": 0.5})
    splits = load_splits(student.data)
    x = torch.randn(4, 3, 16, 16)
    original = load_teachers(student, splits)
    shutil.rmtree(run_dir)  # as on a machine that has only the checkout
    copy = load_teachers(student.model_copy(update={"loss": student.loss.model_copy(update={"teachers": [exported]})}), splits)
    assert original is not None and copy is not None
    assert copy.sources[0]["model_hash"] == original.sources[0]["model_hash"]
    assert torch.equal(copy(x), original(x))
    bare = tmp_path / "bare"  # a summary without the weights behind it
    bare.mkdir()
    shutil.copyfile(exported / "summary.json", bare / "summary.json")
    with pytest.raises(CheckpointError, match=r"bare: no finished float phase with its config.yaml"):
        export_results(bare, tmp_path / "again", weights=True)
