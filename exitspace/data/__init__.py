"""Datasets (CIFAR-10, Fashion-MNIST, synthetic), deterministic splits, batched augmentation."""

from exitspace.data.augment import channel_stats, cutout, normalize, random_crop, random_flip
from exitspace.data.base import ArrayDataset, DataSplits, carve_validation
from exitspace.data.cifar10 import download_cifar10_python, load_cifar10, load_cifar10_python, load_image_folder
from exitspace.data.fashion_mnist import load_fashion_mnist, read_idx
from exitspace.data.loader import BatchLoader
from exitspace.data.registry import DataConfig, load_splits
from exitspace.data.synthetic import make_synthetic

__all__ = [
    "ArrayDataset", "BatchLoader", "DataConfig", "DataSplits", "carve_validation", "channel_stats", "cutout",
    "download_cifar10_python", "load_cifar10", "load_cifar10_python", "load_fashion_mnist", "load_image_folder",
    "load_splits", "make_synthetic", "normalize", "random_crop", "random_flip", "read_idx",
]
