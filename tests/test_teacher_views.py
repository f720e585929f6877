"""Fixed teacher views (``loss.teacher_views``): the views, the loader on them, the stored predictions, the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from exitspace.data.augment import crop_at, flip_where, normalize, random_crop, random_flip
from exitspace.data.base import ArrayDataset
from exitspace.data.loader import BatchLoader
from exitspace.data.registry import load_splits
from exitspace.data.views import FixedViews, draw_views, view_images
from exitspace.errors import ConfigError
from exitspace.train import teacher_views as tv
from exitspace.train.config import parse_train_config
from exitspace.train.exit_table import ExitTable
from exitspace.train.pipeline import exit_table_path, load_teachers, make_loaders, run_training
from exitspace.train.progress import Reporter
from exitspace.train.teachers import TeacherEnsemble
from tiny_training import tiny_config


def _train(config, run_dir: Path) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return run_training(config, run_dir, reporter=Reporter(log_file=run_dir / "train.log", quiet=True))


def _images(n: int = 6, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_random_crop_and_flip_are_crop_at_and_flip_where_of_their_draws() -> None:
    images = _images()
    cropped = random_crop(images, 2, torch.Generator().manual_seed(5))
    draws = torch.Generator().manual_seed(5)
    dy, dx = torch.randint(0, 5, (6,), generator=draws), torch.randint(0, 5, (6,), generator=draws)
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(6):
        assert torch.equal(cropped[i], padded[i, :, dy[i] : dy[i] + 8, dx[i] : dx[i] + 8])
    assert torch.equal(crop_at(images, 2, dy, dx), cropped)
    flipped = random_flip(images, torch.Generator().manual_seed(9))
    mask = torch.rand(6, generator=torch.Generator().manual_seed(9)) < 0.5
    assert 0 < int(mask.sum()) < 6
    assert torch.equal(flip_where(images, mask), flipped)
    assert torch.equal(flipped[mask], images[mask].flip(3)) and torch.equal(flipped[~mask], images[~mask])


def test_drawn_views_are_seeded_and_in_range() -> None:
    offsets = draw_views(500, 4, padding=3, flip=True, seed=1)
    assert offsets.shape == (500, 4, 3) and offsets.dtype == torch.uint8
    assert int(offsets[..., :2].max()) == 6 and int(offsets[..., :2].min()) == 0
    assert set(offsets[..., 2].unique().tolist()) == {0, 1}
    assert torch.equal(offsets, draw_views(500, 4, padding=3, flip=True, seed=1))
    assert not torch.equal(offsets, draw_views(500, 4, padding=3, flip=True, seed=2))
    assert int(draw_views(50, 2, padding=3, flip=False, seed=1)[..., 2].max()) == 0


def test_loader_shows_one_stored_view_per_image_with_its_target() -> None:
    n, k = 6, 3
    images = _images(n)
    dataset = ArrayDataset(images.permute(0, 2, 3, 1).numpy(), np.arange(n) % 10, [str(c) for c in range(10)], "t")
    offsets = draw_views(n, k, padding=2, flip=True, seed=0)
    targets = torch.softmax(torch.randn(n, k, 10), -1)
    mean, std = torch.zeros(3), torch.ones(3)
    loader = BatchLoader(dataset, 3, mean, std, augment=True, crop_padding=2, views=FixedViews(offsets, targets))
    seen: set[tuple[int, int]] = set()
    for epoch in range(8):
        for batch, (x, y, soft) in enumerate(loader.epoch_with_targets(epoch)):
            for row in range(3):
                i = batch * 3 + row
                assert int(y[row]) == i % 10
                views = [normalize(view_images(images[i : i + 1], offsets[i, j : j + 1], 2), mean, std)[0] for j in range(k)]
                shown = [j for j in range(k) if torch.equal(views[j], x[row])]
                assert shown, "each image is one of its stored views"
                assert any(torch.allclose(soft[row], targets[i, j]) for j in shown)
                seen.add((i, shown[0]))
        assert [b[0].shape for b in loader.epoch(epoch)] == [torch.Size([3, 3, 8, 8])] * 2  # (x, y) from epoch()
    assert len({j for _, j in seen}) == k  # every view gets its turn
    with pytest.raises(ValueError, match="views"):
        BatchLoader(dataset, 3, mean, std, views=FixedViews(offsets[:2], targets[:2]))


def _teacher_run(tmp_path: Path) -> Path:
    teacher_dir = tmp_path / "teacher"
    _train(tiny_config(), teacher_dir)
    return teacher_dir


def _student(teacher_dir: Path, **loss: Any):  # type: ignore[no-untyped-def]
    return tiny_config(loss={"teachers": [str(teacher_dir)], "teacher_weight": 0.7, **loss})


def test_stored_predictions_are_the_teachers_on_each_view_and_resume(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    config = _student(_teacher_run(tmp_path), teacher_views=2)
    splits = load_splits(config.data)
    teacher = load_teachers(config, splits)
    assert teacher is not None
    views = tv.fixed_teacher_views(config, make_loaders(config, splits)["train"], 10, teacher, tmp_path / "a", lambda line: None)
    images = torch.from_numpy(splits.train.images).permute(0, 3, 1, 2)
    mean, std = torch.tensor(splits.info["mean"]), torch.tensor(splits.info["std"])
    for k in range(2):
        x = normalize(view_images(images, views.offsets[:, k], config.data.crop_padding), mean, std)
        x = x.contiguous(memory_format=torch.channels_last)
        assert torch.allclose(views.targets[:, k].float(), teacher(x), atol=2e-3)
    torch.testing.assert_close(views.targets.float().sum(-1), torch.ones(views.targets.shape[:2]), atol=1e-2, rtol=0)

    # Interrupted after the first chunk (saved at once): the rebuilt file continues and equals the full build.
    monkeypatch.setattr(tv, "SAVE_EVERY_S", 0.0)
    calls = {"n": 0}
    real_call = TeacherEnsemble.__call__

    def failing(self: TeacherEnsemble, x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return real_call(self, x)

    config.runtime.eval_batch_size = 100
    monkeypatch.setattr(TeacherEnsemble, "__call__", failing)
    with pytest.raises(KeyboardInterrupt):
        tv.fixed_teacher_views(config, make_loaders(config, splits)["train"], 10, teacher, tmp_path / "b", lambda line: None)
    assert torch.load(tmp_path / "b" / tv.VIEWS_FILE, weights_only=False)["done"] == 100
    monkeypatch.setattr(TeacherEnsemble, "__call__", real_call)
    lines: list[str] = []
    resumed = tv.fixed_teacher_views(config, make_loaders(config, splits)["train"], 10, teacher, tmp_path / "b", lines.append)
    assert any("resuming at image 100" in line for line in lines)
    assert torch.equal(resumed.offsets, views.offsets)
    torch.testing.assert_close(resumed.targets.float(), views.targets.float(), atol=2e-3, rtol=0)


def test_stale_or_corrupt_views_are_rebuilt(tmp_path: Path) -> None:
    config = _student(_teacher_run(tmp_path), teacher_views=2)
    splits = load_splits(config.data)
    teacher = load_teachers(config, splits)
    assert teacher is not None
    lines: list[str] = []
    first = tv.fixed_teacher_views(config, make_loaders(config, splits)["train"], 10, teacher, tmp_path, lines.append)
    again = tv.fixed_teacher_views(config, make_loaders(config, splits)["train"], 10, teacher, tmp_path, lines.append)
    assert torch.equal(first.targets, again.targets) and sum("predicting" in line for line in lines) == 1
    teacher.temperature = 1.0
    sharper = tv.fixed_teacher_views(config, make_loaders(config, splits)["train"], 10, teacher, tmp_path, lines.append)
    assert "built for other teachers" in lines[-3] and sharper.targets.float().max() > first.targets.float().max()
    (tmp_path / tv.VIEWS_FILE).write_bytes(b"not a checkpoint")
    tv.fixed_teacher_views(config, make_loaders(config, splits)["train"], 10, teacher, tmp_path, lines.append)
    assert "unreadable" in lines[-3]


def test_student_trains_on_stored_views_without_asking_the_teacher_again(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    teacher_dir = _teacher_run(tmp_path)
    calls = {"n": 0}
    real_call = TeacherEnsemble.__call__

    def counted(self: TeacherEnsemble, x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return real_call(self, x)

    monkeypatch.setattr(TeacherEnsemble, "__call__", counted)
    student = _train(_student(teacher_dir, teacher_views=3), tmp_path / "student")
    assert calls["n"] == 2 * 3  # 256 training images in chunks of 128 (the eval batch), 3 views each
    live = _train(_student(teacher_dir), tmp_path / "live")
    assert calls["n"] == 2 * 3 + 2 * 4  # the live teacher answers every training batch: 2 epochs of 4
    assert (tmp_path / "student" / tv.VIEWS_FILE).is_file()
    table = ExitTable.load(exit_table_path(tmp_path / "student", (32, 32)))
    assert table.meta["teacher_views"] == 3
    assert student["pairs"]["32/32"]["model_hash"] != live["pairs"]["32/32"]["model_hash"]


def test_views_guards_are_one_line() -> None:
    with pytest.raises(ConfigError, match=r"loss: teacher_views needs teachers"):
        parse_train_config({"loss": {"teacher_views": 4}})
    with pytest.raises(ConfigError, match=r"loss.teacher_views: the views are random crops and flips; set data.augment"):
        parse_train_config({"loss": {"teachers": ["x"], "teacher_weight": 0.5, "teacher_views": 4},
                            "data": {"augment": False}})
    with pytest.raises(ConfigError, match=r"loss.teacher_views: .*greater than or equal to 0"):
        parse_train_config({"loss": {"teacher_views": -1}})


def test_status_reports_the_views_build(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from exitspace.cli.app import app
    from exitspace.cli.main import register_commands
    from exitspace.train.status import run_status

    teacher_dir = _teacher_run(tmp_path)
    assert run_status(teacher_dir)["teacher_views"] is None
    _train(_student(teacher_dir, teacher_views=2), tmp_path / "student")
    assert run_status(tmp_path / "student")["teacher_views"] == {"per_image": 2, "images_done": 256, "images": 256}
    register_commands()
    output = CliRunner().invoke(app, ["train-status", str(tmp_path / "student")]).output
    assert "teacher views: 2 per training image, 256/256 images predicted" in output
