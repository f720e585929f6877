"""In-memory image datasets and the deterministic train/val/test split."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from exitspace.errors import DataError


@dataclass
class ArrayDataset:
    """Images as uint8 ``[N, H, W, C]`` and int64 labels ``[N]``, fully in memory."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    name: str = "dataset"

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise DataError(f"{self.name}: images must be uint8 [N, H, W, C] (got {self.images.dtype} {self.images.shape})")
        if self.labels.shape != (self.images.shape[0],):
            raise DataError(f"{self.name}: {self.labels.shape[0]} labels for {self.images.shape[0]} images")
        self.labels = self.labels.astype(np.int64, copy=False)
        if self.labels.size and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise DataError(f"{self.name}: labels outside 0..{len(self.classes) - 1}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) as the network sees it."""
        _, h, w, c = self.images.shape
        return (int(c), int(h), int(w))

    def subset(self, index: np.ndarray, name: str | None = None) -> "ArrayDataset":
        """The images at ``index`` (a copy)."""
        return ArrayDataset(self.images[index], self.labels[index], self.classes, name or self.name)


@dataclass
class DataSplits:
    """Train / val / test datasets plus how the split was made (recorded in exit tables)."""

    train: ArrayDataset
    val: ArrayDataset
    test: ArrayDataset
    info: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> ArrayDataset:
        """One split by name."""
        if name not in ("train", "val", "test"):
            raise DataError(f"split {name!r}: unknown; use train, val or test")
        return getattr(self, name)


def carve_validation(
    train: ArrayDataset, test: ArrayDataset, val_size: int, seed: int, dataset_name: str
) -> DataSplits:
    """Carve a validation set of ``val_size`` images out of ``train``, stratified by class, seeded.

    The same (train, val_size, seed) always yields the same split; the indices are sorted so that
    val order does not depend on the permutation.
    """
    if not 0 <= val_size < len(train):
        raise DataError(f"data.val_size: must be in [0, {len(train)}) (got {val_size}); lower it")
    rng = np.random.default_rng(seed)
    val_parts: list[np.ndarray] = []
    classes = np.unique(train.labels)
    # Stratified: each class contributes in proportion; remainders distributed to the first classes.
    counts = np.bincount(train.labels, minlength=train.num_classes)[classes]
    quota = np.floor(counts / counts.sum() * val_size).astype(int)
    quota[: val_size - int(quota.sum())] += 1
    for cls, q in zip(classes, quota):
        members = np.flatnonzero(train.labels == cls)
        val_parts.append(rng.permutation(members)[:q])
    val_index = np.sort(np.concatenate(val_parts)) if val_parts else np.zeros(0, dtype=np.int64)
    mask = np.ones(len(train), dtype=bool)
    mask[val_index] = False
    train_index = np.flatnonzero(mask)
    info = {"dataset": dataset_name, "val_size": int(val_size), "split_seed": int(seed),
            "train_size": int(train_index.size), "test_size": len(test)}
    return DataSplits(
        train=train.subset(train_index, f"{dataset_name}/train"),
        val=train.subset(val_index, f"{dataset_name}/val"),
        test=test,
        info=info,
    )
