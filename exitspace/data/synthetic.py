"""A small, learnable synthetic image dataset (tests and smoke runs only)."""

from __future__ import annotations

import numpy as np

from exitspace.data.base import ArrayDataset


def make_synthetic(
    num_train: int = 512, num_test: int = 256, num_classes: int = 10, size: int = 16, channels: int = 3, seed: int = 0
) -> tuple[ArrayDataset, ArrayDataset]:
    """Each class is a fixed random low-frequency template plus per-image noise and brightness jitter."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(num_classes, 4, 4, channels))
    templates = coarse.repeat(size // 4 + 1, axis=1).repeat(size // 4 + 1, axis=2)[:, :size, :size]
    classes = [f"class{i}" for i in range(num_classes)]

    def draw(n: int, name: str) -> ArrayDataset:
        labels = rng.integers(0, num_classes, size=n)
        noise = rng.normal(0, 40, size=(n, size, size, channels))
        jitter = rng.uniform(-30, 30, size=(n, 1, 1, 1))
        images = np.clip(templates[labels] + noise + jitter, 0, 255).astype(np.uint8)
        return ArrayDataset(images, labels.astype(np.int64), classes, name)

    return draw(num_train, "synthetic/train"), draw(num_test, "synthetic/test")
