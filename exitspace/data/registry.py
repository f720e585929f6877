"""The data section of a config and the one entry point ``load_splits``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from exitspace.data.augment import channel_stats
from exitspace.data.base import ArrayDataset, DataSplits, carve_validation
from exitspace.data.cifar10 import load_cifar10
from exitspace.data.fashion_mnist import load_fashion_mnist
from exitspace.data.synthetic import make_synthetic
from exitspace.errors import DataError


class DataConfig(BaseModel):
    """Which dataset, where, and how it is split and augmented."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: Literal["cifar10", "fashion_mnist", "synthetic"] = "cifar10"
    path: Path | None = Field(None, description="archive, folder or IDX folder; not used for synthetic")
    checksum: str | None = Field(None, description="expected sha256 (image folder) or md5 (python release)")
    cache_dir: Path | None = Field(None, description="decoded-array cache; default $EXITSPACE_CACHE or ~/.cache/exitspace")
    val_size: int = Field(5000, ge=0)
    split_seed: int = 0
    augment: bool = True
    crop_padding: int = Field(4, ge=0)
    flip: bool = True
    cutout: int = Field(0, ge=0, description="side in px of the square zeroed per training image (0 = off)")
    trivial_augment: bool = Field(False, description="one random TrivialAugment operation per training image, "
                                  "after crop and flip, before cutout")
    # synthetic only
    synthetic_train: int = Field(512, ge=16)
    synthetic_test: int = Field(256, ge=16)
    synthetic_size: int = Field(16, ge=8)
    synthetic_classes: int = Field(10, ge=2)


def _raw(config: DataConfig) -> tuple[ArrayDataset, ArrayDataset]:
    if config.name == "synthetic":
        return make_synthetic(config.synthetic_train, config.synthetic_test, config.synthetic_classes,
                              config.synthetic_size, seed=config.split_seed)
    if config.name == "fashion_mnist":
        return load_fashion_mnist(config.path)
    if config.path is None:
        raise DataError("data.path: required for cifar10; give cifar-10-python.tar.gz or the image-folder .tar.gz")
    return load_cifar10(config.path, cache_dir=config.cache_dir, checksum=config.checksum)


def load_splits(config: DataConfig) -> DataSplits:
    """Load the dataset, carve val from train (seeded), and record per-channel normalisation stats."""
    train, test = _raw(config)
    splits = carve_validation(train, test, config.val_size, config.split_seed, config.name)
    mean, std = channel_stats(torch.from_numpy(splits.train.images))
    splits.info.update(mean=mean.tolist(), std=std.tolist(), num_classes=train.num_classes,
                       image_shape=list(train.image_shape), classes=train.classes)
    return splits
