"""The teachers' predictions for fixed augmented views of the training set, built once per run directory.

With ``loss.teacher_views: K``, every training image gets K seeded crop/flip views; the teacher ensemble
predicts each view once (softened at ``loss.distill_temperature``), and training then shows one stored
view per image and epoch with its stored prediction (``exitspace.data.views``). A teacher that costs
several times the student's step is then paid for K passes over the data instead of one per epoch.

The predictions are kept in ``RUN_DIR/teacher_views.pt``, saved every few minutes while they are built, so an
interrupted build resumes where it stopped. A file made for other teachers, views or data is rebuilt.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from exitspace.data.augment import normalize
from exitspace.data.loader import BatchLoader
from exitspace.data.views import FixedViews, draw_views, view_images
from exitspace.errors import CheckpointError
from exitspace.train.checkpoint import load_checkpoint, save_checkpoint
from exitspace.train.config import TrainConfig
from exitspace.train.teachers import TeacherEnsemble

VIEWS_FILE = "teacher_views.pt"
SAVE_EVERY_S = 120.0


def _data_fingerprint(images: torch.Tensor, labels: torch.Tensor) -> str:
    """blake2b of the training images and labels: views are indexed by image position."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(images.contiguous().numpy().tobytes())
    digest.update(labels.contiguous().numpy().tobytes())
    return digest.hexdigest()


def views_identity(config: TrainConfig, loader: BatchLoader, teacher: TeacherEnsemble) -> dict[str, Any]:
    """What the stored predictions depend on; a file with another identity is rebuilt."""
    return {"teachers": [source.get("model_hash") for source in teacher.sources], "temperature": teacher.temperature,
            "per_image": config.loss.teacher_views, "seed": config.runtime.seed, "crop_padding": loader.crop_padding,
            "flip": loader.flip, "data": _data_fingerprint(loader.images, loader.labels)}


def fixed_teacher_views(config: TrainConfig, loader: BatchLoader, num_classes: int, teacher: TeacherEnsemble,
                        run_dir: Path, log: Callable[[str], None]) -> FixedViews:
    """Fixed views of the training ``loader``'s images with the teachers' predictions: loaded from ``run_dir``, or
    built (resuming a half-built file) and saved there."""
    identity = views_identity(config, loader, teacher)
    path = Path(run_dir) / VIEWS_FILE
    state = _matching_state(path, identity, log)
    if state is None:
        count = loader.images.shape[0]
        offsets = draw_views(count, config.loss.teacher_views, loader.crop_padding, loader.flip, config.runtime.seed)
        state = {"identity": identity, "offsets": offsets, "done": 0,
                 "targets": torch.zeros(*offsets.shape[:2], num_classes, dtype=torch.float16)}
    if state["done"] < loader.images.shape[0]:
        _predict_views(state, loader, config.runtime.eval_batch_size, teacher, path, log)
    return FixedViews(offsets=state["offsets"], targets=state["targets"])


def _matching_state(path: Path, identity: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any] | None:
    """The saved state at ``path`` when it was made for ``identity``; None (with a log line saying why) otherwise."""
    if not path.is_file():
        return None
    try:
        state = load_checkpoint(path)
    except CheckpointError:
        log(f"teacher views: {path} is unreadable; building it again")
        return None
    if state.get("identity") != identity:
        log(f"teacher views: {path} was built for other teachers, views or data; building it again")
        return None
    return state


@torch.no_grad()
def _predict_views(state: dict[str, Any], loader: BatchLoader, chunk: int, teacher: TeacherEnsemble, path: Path,
                   log: Callable[[str], None]) -> None:
    """Fill ``state["targets"]`` from image ``state["done"]`` on, ``chunk`` images at a time, normalised as ``loader``
    does; save to ``path`` every few minutes and at the end."""
    images = loader.images
    total, per_image = images.shape[0], state["offsets"].shape[1]
    start_done, started, saved_at = state["done"], time.perf_counter(), time.perf_counter()
    log(f"teacher views: predicting {per_image} views of {total - start_done} training images "
        f"({'resuming at image ' + str(start_done) if start_done else 'new'}; saved to {path})")
    for begin in range(start_done, total, max(1, chunk)):
        end = min(total, begin + chunk)
        for k in range(per_image):
            x = normalize(view_images(images[begin:end], state["offsets"][begin:end, k], loader.crop_padding),
                          loader.mean, loader.std)
            if loader.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            state["targets"][begin:end, k] = teacher(x.to(loader.device)).to(torch.float16).cpu()
        state["done"] = end
        if time.perf_counter() - saved_at >= SAVE_EVERY_S or end == total:
            save_checkpoint(path, state)
            saved_at = time.perf_counter()
            rate = (end - start_done) * per_image / (saved_at - started)
            log(f"teacher views: {end}/{total} images done, {rate:.0f} views/s")
