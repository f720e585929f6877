"""CIFAR-10 from the canonical python release or from an image-folder tree / its tar.gz.

The image-folder form (``train/<class>/NNNN.jpg``, ``test/<class>/NNNN.jpg``) is decoded once with
Pillow and cached as uint8 arrays in the cache directory, keyed by the archive's sha256 (or by the
tree's file list), so later runs load in well under a second.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import urllib.request
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np

from exitspace.data.base import ArrayDataset
from exitspace.data.cache import default_cache_dir, file_digest, load_arrays, save_arrays, verify_checksum
from exitspace.errors import DataError
from exitspace.files import writable_folder

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR10_PYTHON_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_PYTHON_MD5 = "c58f30108f718f92721af3b95e74349a"
#: Known archives of the image-folder form, by file name -> sha256.
KNOWN_FOLDER_ARCHIVES = {"cifar10-jpeg.tar.gz": "0bfcb68717a0ecb0d51ed61034906a773d48d424d94b766a46d7d1c55702a4d9"}
_PY_TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def download_cifar10_python(dest_dir: Path) -> Path:
    """Download the canonical python release into ``dest_dir`` and verify its MD5 (needs internet)."""
    dest_dir = writable_folder(dest_dir, "download folder")
    target = dest_dir / "cifar-10-python.tar.gz"
    if not target.is_file() or file_digest(target, "md5") != CIFAR10_PYTHON_MD5:
        tmp = target.with_suffix(".part")
        try:
            urllib.request.urlretrieve(CIFAR10_PYTHON_URL, tmp)  # noqa: S310 (fixed https URL)
        except OSError as exc:
            raise DataError(f"{CIFAR10_PYTHON_URL}: download failed ({exc}); download it by hand into {dest_dir}") from None
        tmp.replace(target)
    verify_checksum(target, CIFAR10_PYTHON_MD5, "md5", f"delete it and download again from {CIFAR10_PYTHON_URL}")
    return target


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles what a CIFAR-10 python batch holds (dicts, lists, bytes, numbers, numpy arrays) and refuses
    every other global, so that a crafted batch file cannot run code (the archive is MD5-checked; an
    extracted folder has no published checksum per file)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode"), ("copy_reg", "_reconstructor"),
        ("copyreg", "_reconstructor"), ("__builtin__", "object"), ("builtins", "object"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not part of a CIFAR-10 batch")
        return super().find_class(module, name)


def _unpickle(blob: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _BatchUnpickler(io.BytesIO(blob), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DataError(f"{where}: not a CIFAR-10 python batch ({type(exc).__name__}); re-download the release") from None
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def load_cifar10_python(path: Path, md5: str | None = CIFAR10_PYTHON_MD5) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test) from ``cifar-10-python.tar.gz`` (MD5-checked) or its extracted ``cifar-10-batches-py``."""
    path = Path(path)
    fix = "give data.path as cifar-10-python.tar.gz or its cifar-10-batches-py folder (`exitspace data-download DIR` fetches it)"
    blobs: dict[str, bytes] = {}
    if path.is_dir():
        for name in _PY_TRAIN_BATCHES + ["test_batch"]:
            file = path / name
            if not file.is_file():
                raise DataError(f"{file}: not found; {fix}")
            blobs[name] = file.read_bytes()
    else:
        verify_checksum(path, md5, "md5", fix)
        try:
            with tarfile.open(path, "r:*") as tar:
                for member in tar:
                    base = member.name.rsplit("/", 1)[-1]
                    if member.isfile() and base in _PY_TRAIN_BATCHES + ["test_batch"]:
                        handle = tar.extractfile(member)
                        assert handle is not None
                        blobs[base] = handle.read()
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise DataError(f"{path}: corrupt archive ({type(exc).__name__}); {fix}") from None
        missing = [n for n in _PY_TRAIN_BATCHES + ["test_batch"] if n not in blobs]
        if missing:
            raise DataError(f"{path}: archive lacks {missing}; {fix}")
    parts = [_unpickle(blobs[n], f"{path}:{n}") for n in _PY_TRAIN_BATCHES]
    train = ArrayDataset(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                         list(CIFAR10_CLASSES), "cifar10/train")
    test_x, test_y = _unpickle(blobs["test_batch"], f"{path}:test_batch")
    return train, ArrayDataset(test_x, test_y, list(CIFAR10_CLASSES), "cifar10/test")


def _decode(blob: bytes, where: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(blob)) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{where}: cannot decode image ({type(exc).__name__}); the archive is corrupt, replace it") from None


def _class_order(names: set[str]) -> list[str]:
    return list(CIFAR10_CLASSES) if names == set(CIFAR10_CLASSES) else sorted(names)


def _assemble(items: list[tuple[str, str, str, np.ndarray]], where: str) -> dict[str, np.ndarray]:
    """items: (split, class, file name, image) -> arrays, ordered by (split, class, name)."""
    splits = {"train", "test"}
    found = {s for s, *_ in items}
    if found != splits:
        raise DataError(f"{where}: needs train/<class>/*.jpg and test/<class>/*.jpg (found splits {sorted(found)}); fix the layout")
    classes = _class_order({c for _, c, _, _ in items})
    index = {c: i for i, c in enumerate(classes)}
    arrays: dict[str, np.ndarray] = {"classes": np.array(classes)}
    for split in sorted(splits):
        chosen = sorted((c, n, img) for s, c, n, img in items if s == split)
        shapes = {img.shape for _, _, img in chosen}
        if len(shapes) != 1:
            raise DataError(f"{where}: images of different sizes {sorted(shapes)} in {split}; resize them to one size")
        arrays[f"{split}_images"] = np.stack([img for _, _, img in chosen])
        arrays[f"{split}_labels"] = np.array([index[c] for c, _, _ in chosen], dtype=np.int64)
    return arrays


def _split_member(name: str) -> tuple[str, str, str] | None:
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if len(parts) < 3 or not parts[-1].lower().endswith(_IMAGE_SUFFIXES):
        return None
    split, cls, file = parts[-3], parts[-2], parts[-1]
    return (split, cls, file) if split in ("train", "test") else None


def _read_folder_archive(path: Path) -> dict[str, np.ndarray]:
    items: list[tuple[str, str, str, np.ndarray]] = []
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                key = _split_member(member.name) if member.isfile() else None
                if key is None:
                    continue
                handle = tar.extractfile(member)
                assert handle is not None
                items.append((*key, _decode(handle.read(), f"{path}:{member.name}")))
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt archive ({type(exc).__name__}); replace it with an intact copy") from None
    return _assemble(items, str(path))


def _read_folder_tree(root: Path) -> dict[str, np.ndarray]:
    items = []
    for file in sorted(root.rglob("*")):
        key = _split_member(str(file.relative_to(root))) if file.is_file() else None
        if key is not None:
            items.append((*key, _decode(file.read_bytes(), str(file))))
    return _assemble(items, str(root))


def _tree_fingerprint(root: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    for file in sorted(root.rglob("*")):
        if file.is_file():
            stat = file.stat()
            digest.update(f"{file.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def load_image_folder(
    path: Path, sha256: str | None = None, cache_dir: Path | None = None, name: str = "cifar10"
) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test) from an image-folder tree or its tar(.gz), decoded once and cached as ``.npz``.

    ``sha256`` (or the known digest for a known archive name) is checked before decoding.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found; give data.path as the image-folder tree or its .tar.gz")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    reader: Callable[[Path], dict[str, np.ndarray]]
    if path.is_dir():
        key = _tree_fingerprint(path)
        reader = _read_folder_tree
    else:
        expected = sha256 or KNOWN_FOLDER_ARCHIVES.get(path.name)
        key = file_digest(path, "sha256")
        if expected is not None and key != expected.lower():
            raise DataError(f"{path}: sha256 is {key}, expected {expected}; the archive is corrupt or another file, replace it")
        reader = _read_folder_archive
    cache_file = cache_dir / f"{name}-folder-{key[:20]}.npz"
    arrays = load_arrays(cache_file)
    if arrays is None:
        arrays = reader(path)
        save_arrays(cache_file, **arrays)
    classes = [str(c) for c in arrays["classes"]]
    return (
        ArrayDataset(arrays["train_images"], arrays["train_labels"], classes, f"{name}/train"),
        ArrayDataset(arrays["test_images"], arrays["test_labels"], classes, f"{name}/test"),
    )


def load_cifar10(path: Path, cache_dir: Path | None = None, checksum: str | None = None) -> tuple[ArrayDataset, ArrayDataset]:
    """CIFAR-10 from whichever form ``path`` is: the python release (archive or folder) or an image folder."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found; set data.path to cifar-10-python.tar.gz, cifar-10-batches-py/ or an image-folder tree/.tar.gz")
    if (path.is_dir() and (path / "data_batch_1").is_file()) or path.name.startswith("cifar-10-python"):
        return load_cifar10_python(path, md5=checksum or CIFAR10_PYTHON_MD5)
    return load_image_folder(path, sha256=checksum, cache_dir=cache_dir, name="cifar10")
