"""Data loaders, splits, augmentation: tiny files made in the test, never the real archives."""

from __future__ import annotations

import gzip
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from exitspace.data import (
    BatchLoader, DataConfig, carve_validation, load_cifar10, load_cifar10_python, load_fashion_mnist, load_image_folder,
    cutout, load_splits, make_synthetic, random_crop, random_flip, read_idx,
)
from exitspace.data import cifar10 as cifar10_module
from exitspace.data.cache import file_digest
from exitspace.errors import DataError

CLASSES = ["cat", "dog"]


def _write_tree(root: Path, fmt: str = "PNG", per_class: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """train/<class>/NNNN.png and test/<class>/NNNN.png with known pixels; returns the expected arrays."""
    per_class = per_class or {"train": 3, "test": 2}
    rng = np.random.default_rng(1)
    expected: dict[str, list] = {}
    for split, count in per_class.items():
        for label, cls in enumerate(CLASSES):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:04d}.{fmt.lower()}", format=fmt)
                expected.setdefault(f"{split}_images", []).append(pixels)
                expected.setdefault(f"{split}_labels", []).append(label)
    return {k: np.array(v) for k, v in expected.items()}


def _tar_gz(source: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(source / split, arcname=split)
    return target


def test_image_folder_tree_exact_pixels_labels_and_cache(tmp_path: Path) -> None:
    expected = _write_tree(tmp_path / "tree")
    train, test = load_image_folder(tmp_path / "tree", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(train.images, expected["train_images"])
    np.testing.assert_array_equal(train.labels, expected["train_labels"])
    np.testing.assert_array_equal(test.images, expected["test_images"])
    assert train.classes == CLASSES and train.image_shape == (3, 8, 8)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1


def test_image_folder_archive_decoded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _write_tree(tmp_path / "tree")
    archive = _tar_gz(tmp_path / "tree", tmp_path / "tiny.tar.gz")
    train, _ = load_image_folder(archive, cache_dir=tmp_path / "cache", sha256=file_digest(archive))
    np.testing.assert_array_equal(train.images, expected["train_images"])

    def fail(path: Path) -> None:
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(cifar10_module, "_read_folder_archive", fail)
    again, _ = load_cifar10(archive, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(again.images, train.images)


def test_jpeg_tree_decodes(tmp_path: Path) -> None:
    _write_tree(tmp_path / "tree", fmt="JPEG")
    train, test = load_image_folder(tmp_path / "tree", cache_dir=tmp_path / "cache")
    assert train.images.shape == (6, 8, 8, 3) and test.images.shape == (4, 8, 8, 3)


def test_wrong_checksum_corrupt_and_missing_archive(tmp_path: Path) -> None:
    _write_tree(tmp_path / "tree")
    archive = _tar_gz(tmp_path / "tree", tmp_path / "tiny.tar.gz")
    with pytest.raises(DataError, match="sha256"):
        load_image_folder(archive, sha256="0" * 64, cache_dir=tmp_path / "cache")
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match="corrupt") as info:
        load_image_folder(broken, cache_dir=tmp_path / "cache")
    assert "\n" not in str(info.value) and str(broken) in str(info.value)
    with pytest.raises(DataError, match="not found"):
        load_cifar10(tmp_path / "nope.tar.gz")
    with pytest.raises(DataError, match="data.path"):
        load_splits(DataConfig(name="cifar10", path=None))


def test_known_archive_name_is_checked(tmp_path: Path) -> None:
    _write_tree(tmp_path / "tree")
    fake = _tar_gz(tmp_path / "tree", tmp_path / "cifar10-jpeg.tar.gz")
    with pytest.raises(DataError, match="sha256"):
        load_image_folder(fake, cache_dir=tmp_path / "cache")


def _python_release(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(2)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    first = None
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
        first = data if first is None else first
        (folder / name).write_bytes(pickle.dumps({b"data": data, b"labels": [0, 1, 2, 9]}))
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return archive, first


def test_cifar10_python_release(tmp_path: Path) -> None:
    archive, first = _python_release(tmp_path)
    train, test = load_cifar10_python(archive, md5=None)
    assert train.images.shape == (20, 32, 32, 3) and test.images.shape == (4, 32, 32, 3)
    # channel-major rows: the first 1024 bytes are the red plane
    np.testing.assert_array_equal(train.images[0, :, :, 0].ravel(), first[0, :1024])
    np.testing.assert_array_equal(train.images[0, :, :, 2].ravel(), first[0, 2048:])
    assert train.labels.tolist()[:4] == [0, 1, 2, 9]
    folder_train, _ = load_cifar10(tmp_path / "cifar-10-batches-py")
    np.testing.assert_array_equal(folder_train.images, train.images)
    with pytest.raises(DataError, match="md5"):
        load_cifar10(archive)  # not the canonical file: the published MD5 does not match


def _idx(array: np.ndarray) -> bytes:
    return struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def test_fashion_mnist_idx_gz_and_raw(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.array([0, 3, 9, 1, 2], dtype=np.uint8)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images)))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(labels)))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(images[:2]))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx(labels[:2]))
    train, test = load_fashion_mnist(tmp_path)
    assert train.images.shape == (5, 28, 28, 1) and test.images.shape == (2, 28, 28, 1)
    np.testing.assert_array_equal(train.images[..., 0], images)
    assert train.labels.tolist() == labels.tolist()
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx(labels[:2])[:-1])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "t10k-labels-idx1-ubyte")
    with pytest.raises(DataError, match="not a folder"):
        load_fashion_mnist(tmp_path / "missing")


def test_split_is_deterministic_disjoint_and_stratified() -> None:
    train, test = make_synthetic(num_train=400, num_test=50, num_classes=4, size=8, seed=5)
    a = carve_validation(train, test, 40, seed=7, dataset_name="s")
    b = carve_validation(train, test, 40, seed=7, dataset_name="s")
    c = carve_validation(train, test, 40, seed=8, dataset_name="s")
    np.testing.assert_array_equal(a.val.images, b.val.images)
    assert not np.array_equal(a.val.images, c.val.images)
    assert len(a.train) + len(a.val) == 400 and len(a.val) == 40
    counts = np.bincount(a.val.labels, minlength=4)
    assert counts.max() - counts.min() <= 2
    val_rows = {row.tobytes() for row in a.val.images}
    assert not any(row.tobytes() in val_rows for row in a.train.images)
    assert a.info["split_seed"] == 7
    with pytest.raises(DataError, match="val_size"):
        carve_validation(train, test, 400, seed=0, dataset_name="s")


def test_random_crop_is_a_shifted_window_and_flip_mirrors() -> None:
    images = torch.arange(2 * 3 * 6 * 6, dtype=torch.uint8).view(2, 3, 6, 6)
    generator = torch.Generator().manual_seed(0)
    cropped = random_crop(images, 2, generator)
    assert cropped.shape == images.shape and cropped.dtype == torch.uint8
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for n in range(2):
        windows = [padded[n, :, y : y + 6, x : x + 6] for y in range(5) for x in range(5)]
        assert any(torch.equal(cropped[n], w) for w in windows)
    assert torch.equal(random_crop(images, 0, generator), images)
    flipped = random_flip(images, torch.Generator().manual_seed(0), p=1.0)
    assert torch.equal(flipped, images.flip(3))


def test_cutout_zeroes_one_clipped_square_per_image() -> None:
    images = torch.ones(64, 3, 10, 10)
    out = cutout(images, 4, torch.Generator().manual_seed(1))
    zeroed = out[:, 0] == 0
    assert torch.equal(zeroed, (out == 0).all(1))  # the same square in every channel
    for mask in zeroed:
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        assert 1 <= len(rows) <= 4 and 1 <= len(cols) <= 4
        assert int(mask.sum()) == len(rows) * len(cols)  # one axis-aligned rectangle
        assert rows.diff().eq(1).all() and cols.diff().eq(1).all()
    areas = zeroed.sum((1, 2))
    assert int(areas.max()) == 16 and int(areas.min()) < 16  # full squares inside, clipped ones at borders
    assert torch.equal(cutout(images, 0, torch.Generator()), images)


def test_loader_cutout_applies_to_training_batches_only() -> None:
    train, _ = make_synthetic(num_train=64, num_test=16, size=8, seed=0)
    mean, std = torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.25, 0.25, 0.25])
    plain = BatchLoader(train, 64, mean, std, shuffle=True, augment=True, seed=3)
    cut = BatchLoader(train, 64, mean, std, shuffle=True, augment=True, cutout_size=4, seed=3)
    (x_plain, y_plain), (x_cut, y_cut) = next(plain.epoch(0)), next(cut.epoch(0))
    assert torch.equal(y_plain, y_cut)  # the same order and crops: cutout draws after them
    differs = x_cut != x_plain
    assert differs.any() and (x_cut[differs] == 0).all()
    evaluation = BatchLoader(train, 64, mean, std, cutout_size=4)
    assert torch.equal(next(iter(evaluation))[0], next(iter(BatchLoader(train, 64, mean, std)))[0])


def test_loader_epochs_are_seeded_and_normalised() -> None:
    train, _ = make_synthetic(num_train=100, num_test=20, size=8, seed=0)
    mean, std = torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.25, 0.25, 0.25])
    make = lambda: BatchLoader(train, 32, mean, std, shuffle=True, augment=True, drop_last=True, seed=3)  # noqa: E731
    first, second = list(make().epoch(1)), list(make().epoch(1))
    other = list(make().epoch(2))
    assert len(first) == 3 and first[0][0].shape == (32, 3, 8, 8) and first[0][0].dtype == torch.float32
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, second))
    assert not torch.equal(first[0][1], other[0][1])
    plain = BatchLoader(train, 100, mean, std)
    x, y = next(iter(plain))
    expected = (torch.from_numpy(train.images).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    assert torch.allclose(x, expected) and torch.equal(y, torch.from_numpy(train.labels))


def test_load_splits_synthetic_records_stats() -> None:
    splits = load_splits(DataConfig(name="synthetic", val_size=32, synthetic_train=128, synthetic_test=32))
    assert len(splits.train) == 96 and len(splits.val) == 32
    assert len(splits.info["mean"]) == 3 and splits.info["num_classes"] == 10
